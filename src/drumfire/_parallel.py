"""Several worker processes, each with its own event loop and connection pool.

The parent reads the input and writes the output; it hands rows to workers in
chunks and gets results back in batches, both as orjson bytes over a pipe (one
message per chunk, not one pickled object per row)::

    parent: source --chunks--> worker 1..N (Engine on uvloop) --result batches--> parent: sink

Each worker keeps about two chunks queued, so the parent reads the input only
as fast as the workers consume it (memory stays flat), beside the rows it has
parked for an origin the server holds (up to a bound: see ``parked_most``).
Results are put back in input order by the parent when ``--ordered`` is set, so
output rows are the same whatever the number of processes.

Every row the parent reads ends once: written (the summary counts what is
written) or left out for --resume. The parent keeps each worker's rows sent
and not answered yet (``pending``), so that:

- a worker told to stop (Ctrl-C, an unreachable target) ends the rows it
  started and sends Done; the rows it had queued but not started are left out,
  as rows never read are (--resume sends them), and --ordered holds no row
  after them;
- a worker that dies (SIGKILL, the OOM killer, a crash: end of file or a reset
  on its pipe, a failed send) leaves its pending rows in doubt: whether it had
  sent them is unknown, so each ends as ``cancelled: worker process ...`` (--resume
  sends it again, as the rows a stop cuts off in flight), none is given to
  another worker (a POST would be sent twice), the others go on with the rest
  of the input, and the run ends with exit status 1 and one line naming it.

Messages (:mod:`drumfire._messages`, orjson bytes):

- parent → worker: :class:`RowChunk` ``[[seq, line, row | null, problem | null], ...]``,
  :class:`End` (no more rows), :class:`Stop` (stop now: Ctrl-C, or another
  worker found the target unreachable);
- worker → parent: :class:`ResultBatch` ``[[seq, id, status, elapsed_ms, attempts,
  error, fields, kept], ...]``, :class:`Status` when the failure examples or
  "unreachable" changed (the target found unreachable stops every worker),
  :class:`Load` (its requests in flight and limit, its rows parked for origins
  held and waiting to retry, the origins held: see :mod:`drumfire._loads`), then
  :class:`Done`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ._instream import socket_wake
from ._job import Job
from ._lifeline import close_inherited, die_with_parent
from ._loads import Told, is_news, load_now, note_loads
from ._loop import new_event_loop
from ._messages import (
    Done,
    End,
    Load,
    ResultBatch,
    RowChunk,
    Status,
    Stop,
    ToWorker,
    from_parent,
    from_worker,
)
from ._ordering import Reorder
from ._parse import load_parse_function
from ._progress import Progress, draws_live, format_deaths, format_summary, format_unreachable
from ._result import Result, Stats
from ._resume import DuplicateCounter
from ._rows import SKIPPED, WAIT, InputProblem, Item, LineMap, Rows, row_id
from ._sinks import Sink
from ._sources import Source
from ._values import mark_floats

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["auto_processes", "execute_parallel", "format_deaths", "nan_columns"]

CHUNK = 256  # rows per message to a worker
QUEUED_CHUNKS = 2  # chunks a worker holds beyond what is in flight
RESULT_BATCH = 256  # results per message back, or whatever is ready at each flush
FLUSH_EVERY = 1.0


def auto_processes(url_template: str) -> int:
    """``-p auto``: one process per core, less one when the server shares the machine.

    On a 2-core machine with the server on it, one process: a second would
    take the CPU the server needs.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    local = any(h in url_template for h in ("://127.", "://localhost", "://[::1]", "://0.0.0.0"))
    if local:
        return max(1, min(cores - 1, cores // 2)) if cores > 2 else 1
    return max(1, min(cores, 16))


# -- worker ---------------------------------------------------------------------


def _worker(
    conn: Connection,
    job: Job,
    parse_spec: str | None,
    parent: int,
    inherited: tuple[int, ...] = (),
    fmt: str = "worker",
    nans: frozenset[str] | None = None,
    stagger: float = 0.0,
) -> None:
    # The parent decides when to stop: Ctrl-C, and a SIGTERM sent to the whole process
    # group (systemd, kill -TERM -PGID), reach every worker too; killed by it, a worker
    # would leave its rows cancelled in doubt rather than end them as the parent's Stop does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Die with the parent, however it ends (kill -9 included): the kernel's
    # parent-death signal, and end of file on the pipe, which this worker sees
    # only once it holds no copy of the parent's ends (a fork copies them all).
    die_with_parent(parent)
    close_inherited(inherited)
    parse = None
    if parse_spec:
        parse = load_parse_function(parse_spec)
    loop = new_event_loop()
    # Whether a result may hold a NaN or an infinity, which the pipe's JSON has no
    # number for: a --parse field, an -e expression's (JMESPath's to_number('NaN')),
    # a kept value of a column that may hold one (JSON answers and text rows hold none).
    floats = (
        parse is not None
        or bool(job.extract)
        or (bool(job.keep) if nans is None else any(column in nans for column in job.keep))
    )
    queued: deque[list[Any]] = deque()
    lines = LineMap()  # where the rows start in the input, as the parent tells
    seqs: dict[int, int] = {}  # the engine's local seq -> the parent's seq
    state = {"end": False, "gone": False, "local": 0}
    out: list[list[Any]] = []

    def items() -> Iterator[Item]:
        while True:
            if queued:
                seq, line, row, problem = queued.popleft()
                seqs[state["local"]] = seq
                state["local"] += 1
                yield line, (InputProblem(line, problem) if problem is not None else row)
            elif state["end"]:
                return
            else:
                yield WAIT

    told = [0, False]  # failure examples and "unreachable" already sent to the parent

    def send(data: bytes) -> None:
        if state["gone"]:
            return
        try:
            conn.send_bytes(data)
        except (BrokenPipeError, ConnectionResetError):
            # The parent closed its end (it stopped on a file problem, or died):
            # nobody reads the results any more, so stop sending rows at once.
            state["gone"] = state["end"] = True
            engine.stop(grace=0)

    def flush() -> None:
        stats = engine.stats
        if len(stats.examples) != told[0] or (stats.unreachable is not None) != told[1]:
            told[:] = [len(stats.examples), stats.unreachable is not None]
            send(Status(stats.examples, stats.unreachable).encode())
        if out:
            send(ResultBatch(out).encode(floats=False))  # marked by on_result
            out.clear()

    def on_result(result: Result, local: int) -> None:
        row = [seqs.pop(local), *result]
        if floats:
            # Each row's fields and kept values, where a NaN may be: walking the whole
            # batch instead took 4 µs a row, as nearly every batch's JSON has a null.
            row[6], row[7] = mark_floats(row[6]), mark_floats(row[7])
        out.append(row)
        if len(out) >= RESULT_BATCH:
            flush()

    told_load = [Load(0, 0)]  # the last told to the parent (see _loads)
    told_at = [0.0]

    def on_tick(stats: Stats) -> None:
        flush()
        now, load = time.monotonic(), load_now(stats, engine.origins.held_rows())
        if is_news(load, told_load[0], now - told_at[0]):
            told_at[0], told_load[0] = now, load
            send(load.encode())

    engine = job.engine(
        _WorkerSource(fmt),
        _numbered_only,
        on_numbered=on_result,
        parse=parse,
        on_tick=on_tick,
        tick_interval=0.01,
        line_of=lines.line_of,
        stagger=stagger,
    )

    def receive(message: ToWorker | None) -> None:
        if message is None:  # the parent went away
            state["end"] = True
            engine.stop(grace=0)
        elif type(message) is RowChunk:
            queued.extend(message.rows)
            lines.extend(message.lines)
        elif type(message) is End:
            state["end"] = True
        elif type(message) is Stop and not message.unreachable:
            state["end"] = True
            engine.stop(grace=0 if message.now else 2.0)
            if message.now:  # a second Ctrl-C: no grace
                engine.cancel_all()
        else:  # another worker found the target unreachable
            state["end"] = True
            if engine.stats.unreachable is None:
                engine.stats.unreachable = "found by another worker"  # the parent has it
            engine.stop(grace=0)
        engine.wake()

    def reader() -> None:
        # A thread, because the event loop's add_reader makes the pipe
        # non-blocking and Connection.recv_bytes cannot handle partial reads.
        # One hand-off per chunk of rows, not per row.
        while True:
            try:
                message: ToWorker | None = from_parent(conn.recv_bytes())
            except (EOFError, OSError):
                message = None
            try:
                loop.call_soon_threadsafe(receive, message)
            except RuntimeError:  # the loop is closed: the run is over
                return
            # Not after End (a Ctrl-C may come while rows wait for a retry), nor a first Stop.
            if message is None or (type(message) is Stop and (message.now or message.unreachable)):
                return

    thread = threading.Thread(target=reader, name="drumfire-pipe", daemon=True)
    thread.start()
    try:
        loop.run_until_complete(engine.run(items()))
        flush()
        send(Done().encode())  # a parent that is gone is not told
    finally:
        loop.close()
        conn.close()


#: Input formats whose rows never hold a NaN or an infinity: text, and JSON (no token for them).
_NO_FLOATS = frozenset({"csv", "tsv", "text", "jsonl"})


def nan_columns(source: Source) -> frozenset[str] | None:
    """The columns whose values may hold a NaN or an infinity: none for text, an Arrow
    input's float columns (its schema says), None for Python rows (any value may)."""
    return frozenset() if source.fmt in _NO_FLOATS else source.nan_columns


def _numbered_only(result: Result) -> None:
    raise AssertionError("a worker's engine hands on results with their numbers")


class _WorkerSource(Source):
    def __init__(self, fmt: str) -> None:
        # The input's format: CSV cells are text, read as the text input path reads them.
        super().__init__(iter(()), None, fmt)


# -- parent ---------------------------------------------------------------------


class _Worker:
    __slots__ = ("conn", "done", "load", "number", "pending", "process")

    def __init__(self, number: int, conn: Connection, process: Any) -> None:
        self.number = number  # from 1, as the messages name it
        self.conn = conn
        self.process = process
        # The rows sent whose results are not back yet, by number: each its chunk
        # entry [seq, line, row, problem], what the parent needs to end it alone.
        self.pending: dict[int, list[Any]] = {}
        self.done = False
        self.load: Told | None = None  # its engine's last Load


def _tell(worker: _Worker, message: End | Stop) -> None:
    """Send End or a Stop; a worker that already ended (its Done not read yet) needs none.

    One that died is found by the read of its pipe (end of file or a reset)."""
    try:
        worker.conn.send_bytes(message.encode())
    except OSError:  # BrokenPipeError, ConnectionResetError
        pass


def _how_it_ended(process: Any) -> str:
    """How a worker process that closed its pipe without its Done ended (it is reaped)."""
    process.join(timeout=5)  # end of file comes as it exits: no wait in practice
    if process.is_alive():  # it closed its pipe and runs on: nobody would read it
        process.kill()
        process.join()
        return "closed its pipe"
    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def execute_parallel(
    job: Job,
    source: Source,
    sink: Sink,
    processes: int,
    *,
    quiet: bool = False,
    output_label: str | None = None,
    parse_spec: str | None = None,
    console: Console | None = None,
    skip: Callable[[str], bool] | None = None,
    skip_problem: Callable[[int], bool] | None = None,
    saved: Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
    resumed: int = 0,
) -> tuple[Stats, int]:
    """Run the batch over ``processes`` workers; same results and exit statuses as ``execute``."""
    if console is None:
        from rich.console import Console  # a run that shows nothing needs no rich

        console = Console(stderr=True)
    show = not quiet and draws_live(console)
    clock = time.perf_counter
    stats = Stats(clock, source.total)
    id_column = job.check(job.plan(), source)
    # The parent takes ids, counts duplicates and skips (--resume); the workers prepare.
    # Its kept columns: a saved file's row (--resume), a dead worker's rows.
    rows = Rows(
        None,
        id_column=id_column,
        keep=job.keep,
        skip=skip,
        skip_problem=skip_problem,
        saved=saved,
        duplicates=DuplicateCounter(),
    )
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    # Each worker gets its share of the limits; the parent puts rows in order.
    share = dataclasses.replace(
        job,
        ordered=False,
        rate=job.rate / processes if job.rate else None,
        max_concurrency=max(1, job.max_concurrency // processes),
        concurrency=-(-job.concurrency // processes) if job.concurrency else None,
        per_host_rate=job.per_host_rate / processes if job.per_host_rate else None,
        per_host_concurrency=(
            -(-job.per_host_concurrency // processes) if job.per_host_concurrency else None
        ),
    )
    floats = nan_columns(source)  # where a row may hold a NaN (see RowChunk.encode)
    workers: list[_Worker] = []
    parent = os.getpid()
    for number in range(1, processes + 1):
        parent_end, child_end = ctx.Pipe(duplex=True)
        # A forked worker inherits the parent's end of its own pipe and of the
        # pipes of the workers before it; it closes them (spawn inherits none).
        inherited = (
            (*(w.conn.fileno() for w in workers), parent_end.fileno()) if method == "fork" else ()
        )
        # Under --rate and --per-host-rate, worker k starts k - 1 intervals of the whole
        # rate late: the workers' starts interleave (they went N at once, each interval
        # of a worker; an origin's, from the worker's first row for it).
        stagger = (number - 1) / processes
        proc = ctx.Process(
            target=_worker,
            args=(child_end, share, parse_spec, parent, inherited, source.fmt, floats, stagger),
            daemon=True,
        )
        proc.start()
        child_end.close()
        workers.append(_Worker(number, parent_end, proc))

    # --ordered: the workers run unordered; results wait here for the rows before them.
    order: Reorder[Result] | None = Reorder(sink.write) if job.ordered else None
    got_signal: list[int] = []

    def deliver(seq: int, result: Result | None) -> None:
        if result is not None:
            stats.add(result)
        if order is not None:
            order.put(seq, result)
        elif result is not None:
            sink.write(result)

    items = source.items
    seq_counter = [0]
    exhausted = [False]
    # Each worker sends at its share of --rate: rows dealt 256 at a time went all
    # to the first worker in a short run (600 rows at --rate 100/s -p 2: 512 to one,
    # at 50/s, 10 s for 6), and to one alone at the end of a long one. Under a rate,
    # a chunk is about half a second of a worker's share, two held beyond those in
    # flight (see feed).
    size = CHUNK if share.rate is None else max(1, min(CHUNK, int(share.rate / 2)))
    window = 64 * job.max_concurrency + size * QUEUED_CHUNKS * processes
    # A worker's rows parked for an origin its server holds wait for the server, not
    # for the worker (on disk, or in memory past which it reads no more rows): it is
    # dealt rows past them, up to this many, so the other origins' rows go on. Their
    # entries in ``pending`` are the parent's memory: 64 x --max-concurrency in all.
    parked_most = 64 * share.max_concurrency

    span = [0, 0]  # the row numbers of the last chunk's first and last items

    def next_chunk(pending: dict[int, list[Any]]) -> list[list[Any]]:
        """The next rows for a worker, each also put in its ``pending``."""
        chunk: list[list[Any]] = []
        while len(chunk) < size and not exhausted[0]:
            if order is not None and order.ahead(seq_counter[0]) >= window:
                break
            try:
                item = next(items)
            except StopIteration:
                exhausted[0] = True
                break
            if item is WAIT:  # a pipe's rows not come: those read go now
                break
            if not chunk:
                span[0] = item[0]
            span[1] = item[0]
            seq = seq_counter[0]
            seq_counter[0] += 1
            screened = rows.screen(item, stats)
            if screened is SKIPPED:
                stats.skipped += 1  # --resume: its row (or error row) is in the output
                deliver(seq, None)
            elif isinstance(screened, Result):  # --resume: its saved file is complete
                deliver(seq, screened)
            else:
                entry: list[Any]
                if isinstance(screened, InputProblem):  # the line the error names
                    entry = [seq, screened.line, None, screened.message]
                else:
                    entry = [seq, item[0], item[1], None]
                chunk.append(entry)
                pending[seq] = entry
        return chunk

    def feed(worker: _Worker) -> None:
        pending = worker.pending
        held = size * QUEUED_CHUNKS
        if share.rate is not None and worker.load is not None:
            # Under a rate its chunks are small: the rows it has in flight (a slow
            # server's, seconds of them) come on top, or they would cap its rate.
            held += worker.load.load.inflight
        if worker.load is not None:
            held += min(worker.load.load.parked, parked_most)
        while not worker.done and len(pending) < held:
            chunk = next_chunk(pending)
            if chunk:
                first, last = span
                marks = source.lines.between(first, last) if source.lines is not None else []
                try:
                    worker.conn.send_bytes(RowChunk(chunk, marks).encode(floats))
                except OSError:  # BrokenPipeError, ConnectionResetError: it died
                    lost(worker)
                    return
            if exhausted[0]:
                break
            if not chunk:
                return

    deaths: list[tuple[str, int]] = []  # each dead worker and how it ended, its rows cancelled

    def lost(worker: _Worker) -> None:
        """The worker ended without its Done (killed, the OOM killer, a crash).

        Whether it had sent the rows it held is unknown (a POST may have reached
        the server): each ends as ``cancelled``, saying why, and --resume sends them
        again, as it does the rows a stop cuts off in flight. None is given to
        another worker: that would send twice a row the dead one had sent.
        """
        worker.done = True
        worker.conn.close()
        how = _how_it_ended(worker.process)
        unfinished, worker.pending = worker.pending, {}
        error = f"cancelled: worker process {how}"
        cancelled = 0
        for seq, (_seq, line, row, problem) in sorted(unfinished.items()):
            if problem is not None:  # no request: the row it would have written
                deliver(seq, InputProblem(line, problem).result())
            else:
                # Its attempts and their time are unknown: 0, as a row never sent has.
                id_ = row_id(row, line, id_column)
                deliver(seq, Result(id_, None, 0.0, 0, error, None, rows.kept(row)))
                cancelled += 1
        who = f"worker process {worker.number} of {processes} (pid {worker.process.pid})"
        deaths.append((f"{who} {how}", cancelled))

    def receive(worker: _Worker) -> None:
        """Take one message from the worker (its pipe is ready to read)."""
        try:
            message = worker.conn.recv_bytes()
        except (EOFError, OSError):  # end of file; a reset when it left bytes unread
            lost(worker)
            return
        batch = from_worker(message)
        if type(batch) is Done:
            worker.done = True
            # Its engine ended every row it started. Told to stop, it started none of
            # those still pending: they are left out, as rows never read are (--resume
            # sends them), and --ordered holds no row after them.
            for seq in sorted(worker.pending):
                deliver(seq, None)
            worker.pending.clear()
        elif type(batch) is Load:
            tick()  # the time since the last tick was the old Load's
            worker.load = Told(batch, clock())
        elif type(batch) is Status:
            for reason, example in batch.examples.items():
                stats.examples.setdefault(reason, example)
            if stats.unreachable is None:
                stats.unreachable = batch.unreachable
            if stats.unreachable is not None:
                exhausted[0] = True  # no more rows to anyone: the run stops
        else:
            assert type(batch) is ResultBatch
            pending = worker.pending
            for seq, result in batch.results():
                pending.pop(seq, None)
                deliver(seq, result)

    def tick() -> None:  # the workers' last Loads, as one engine's tick (see _loads)
        note_loads(stats, [(w.load, len(w.pending)) for w in workers if not w.done], clock())

    def on_signal(signum: int, _frame: Any) -> None:
        got_signal.append(signum)

    # A pipe's rows, read by a thread, go to the workers as they come (they waited in a
    # chunk for the writer's next ones); the thread wakes this loop on a socket.
    woken = socket_wake(items)
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(console, clock)
    progress.resumed = resumed  # --resume: done/total starts at the rows already written
    stopping = False
    hurried = False  # told the workers to end their rows in flight now
    ended: set[int] = set()
    last_flush = clock()
    stats.waited_s = 0.0  # measured, from the workers' Loads
    try:
        if show:
            progress.__enter__()
        for w in workers:
            feed(w)
        while not all(w.done for w in workers):
            if (got_signal or stats.unreachable is not None) and not stopping:
                stopping = True
                stats.stopped = True
                exhausted[0] = True
                halt = Stop(unreachable=not got_signal)
                for w in workers:
                    if not w.done:
                        _tell(w, halt)
                        ended.add(id(w))
            if len(got_signal) > 1 and not hurried:
                # A second signal: the workers end their rows in flight now, as -p 1 does.
                hurried = True
                for w in workers:
                    if not w.done:
                        _tell(w, Stop(now=True))
            if exhausted[0]:
                for w in workers:
                    if id(w) not in ended and not w.done:
                        _tell(w, End())
                        ended.add(id(w))
            ready = wait([*(w.conn for w in workers if not w.done), *woken[:1]], timeout=0.1)
            if woken and woken[0] in ready:
                woken[0].recv(4096)
            for w in workers:
                if not w.done and w.conn in ready:
                    receive(w)
            if not stopping:
                # Each live worker, not only those that answered: one may wait for rows
                # the --ordered window held back until a slow (or dead) one's rows ended.
                for w in workers:
                    feed(w)
            now = clock()
            if now - last_flush >= FLUSH_EVERY:
                sink.flush()
                last_flush = now
            tick()
            if show:
                progress.update(stats)
    finally:
        # Signals from here on change nothing (every row has ended), nor raise in the
        # close (a Parquet merge, the last flush): the handler stays until it is done.
        signals = len(got_signal)
        try:
            if show:
                progress.__exit__(None, None, None)
            for end in woken:
                end.close()
            for w in workers:
                w.conn.close()
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join()
            if deaths and not exhausted[0]:
                stats.stopped = True  # no worker left to send the rest of the input
            stats.finished = clock()
            sink.close()
            if source.close is not None:
                source.close()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            del got_signal[signals:]
    if not quiet:
        console.print(format_summary(stats, output_label), highlight=False, soft_wrap=True)
    # Shown even with --quiet: they are the run's outcome.
    outcome = [
        None if got_signal else format_unreachable(stats),
        format_deaths(deaths, stats.stopped and not got_signal) if deaths else None,
    ]
    for line in outcome:
        if line is not None:
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    if got_signal:
        return stats, 128 + got_signal[0]
    return stats, 1 if any(outcome) else 0

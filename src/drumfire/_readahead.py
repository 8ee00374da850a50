"""Read-ahead: a child process reads the rest of the input and prepares the requests.

Against a fast local server ``drumfire run`` is limited by its one Python
core, and about a third of its work per row needs no network: read and split
the input line, take the id, check for a duplicate and for ``--resume``,
render the request bytes (:meth:`Rows.make <drumfire._rows.Rows.make>`).
When the engine finds its own CPU is the limit (the moment it starts
pipelining), the command line forks a child that takes over the input where
the engine left it, does that part, and sends the outcome, in input order, in
chunks over a pipe (:class:`~drumfire._messages.PreparedChunk`). The usual
chunk (every row a request to one origin, no kept columns) is two lists, ids
and request bytes: a pipelined fill takes a piece of it as it has room
(:meth:`ReadAhead.take`) and makes each row's :class:`~drumfire._rows.Flight`
already sent, in one pass; other items come one by one. In the child the
usual row is made without a ``Flight`` (:meth:`Rows.usual_maker
<drumfire._rows.Rows.usual_maker>`). On a slow or remote server the engine is
never CPU-bound, and no child is started.

* **Order and every row.** The child sends one entry per input item: a
  prepared row, an error row (input or template problem), or "skipped"
  (``--resume``). The engine numbers them as they arrive, as it numbers
  items read in-process, so ``--ordered``, the reorder window and the error
  rows behave the same. The child starts from the engine's state: the ids
  seen so far (duplicates), the ``--resume`` ids not yet met.
* **Priority.** The child runs at ``SCHED_IDLE``: only on CPU time nobody else
  wants. So the server is never pushed onto the engine's core: at normal
  priority, or ``nice 10``, the engine was preempted 6 000-10 000 times per
  200 000 rows against nginx (2.08-2.10 s), at ``SCHED_IDLE`` 1 500-4 000
  times (1.98-2.00 s). The child only started because the client was
  CPU-bound while the machine had CPU to spare; if other processes later take
  every core, the child gets little CPU and the run slows down.
* **Never blocking the engine.** The parent reads the pipe without blocking;
  with no whole chunk at hand the engine waits (deadlines, flushing and
  Ctrl-C go on) and is woken when the pipe has more.
* **Ending.** Ctrl-C goes to the process group: the child ignores it and the
  parent decides. :meth:`ReadAhead.close` closes the pipe and kills and reaps
  the child, which holds nothing but the input it reads. The child dies with
  its parent (``PR_SET_PDEATHSIG``), even while blocked reading stdin, and
  closes its copies of the parent's sockets at once, so a connection the
  parent closes is closed for the server too.
* **Failures.** An error while reading the input in the child (an I/O error,
  a corrupt gzip stream) ends the run with an :class:`~drumfire.InputError`
  naming it. If the pipe or the fork cannot be made, the engine goes on
  reading in-process.

Linux only (``fork``, ``SCHED_IDLE``) and only with 2 or more CPUs;
``drumfire run --no-read-ahead`` turns it off.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import pickle
import signal
import stat
import struct
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._errors import InputError
from ._instream import Background
from ._lifeline import die_with_parent
from ._messages import PreparedChunk
from ._request import Prepared
from ._rows import SKIPPED, WAIT, Flight, Item, UsualRun

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["ReadAhead", "Starter", "available"]

CHUNK_ROWS = 512  # entries per message: about 35 kB of pickle for OSRM-like rows
PIPE_BYTES = 1 << 20  # the pipe's capacity: the child may run ~15 chunks ahead
_HEADER = struct.Struct("<I")
_HELD = {signal.SIGINT, signal.SIGTERM}
_new_prepared = tuple.__new__
_HEAD_ENDS = itertools.repeat(b"\r\n\r\n")


def available() -> bool:
    """Whether this machine can run a read-ahead process usefully."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    return len(os.sched_getaffinity(0)) >= 2


class ReadAhead:
    """The child process and the parent's end of its pipe; iterate for the engine's items.

    ``items`` is the rest of the engine's source (see
    :meth:`Engine.hand_over_items`); iterate the read-ahead once in its place.
    Create it from inside the engine's event loop: the child is a fork of this
    process taken there, never returns to the loop, and ends with ``os._exit``.
    The parent never blocks on the pipe: with no whole chunk at hand, the
    engine gets ``WAIT`` and is woken when the pipe has more.

    Raises :class:`OSError` when the pipe or the fork cannot be made (the
    caller goes on reading in-process).
    """

    def __init__(self, engine: Engine, items: Iterator[Item]) -> None:
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        try:
            _enlarge(write_fd)
            parent = os.getpid()
            # A Ctrl-C between the fork and the child's own handlers would run
            # the parent's handler in the child, which writes to the loop's
            # wake-up socket the two share: hold the signals until then.
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
            try:
                with warnings.catch_warnings():
                    # 3.12+ warns of fork() with threads running: the child
                    # touches no lock of theirs (only its input and the pipe).
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
                if pid == 0:  # the child
                    code = 0
                    try:
                        os.close(read_fd)
                        _detach(parent, write_fd)
                        _serve(engine, items, write_fd)
                    except BaseException:  # the child must never return into the caller
                        code = 1
                    finally:
                        os._exit(code)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        self.pid = pid
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._fd = read_fd
        self._buffer = bytearray()
        self._taken = 0  # where the first message not yet taken starts
        self._eof = False
        self._watching = False
        self._closed = False
        self._run: UsualRun | None = None  # the usual chunk at hand; _pos its next row
        self._pos = 0
        self._after: tuple[int, str | None] | None = None  # what follows the chunk at hand
        self._pending: Any = None  # a message take() read that the item path takes
        self._listing = False  # the item path is giving another chunk's entries
        self._final = False  # the last message (the end, or why reading failed) was read

    def __iter__(self) -> Iterator[Flight | Any]:
        return self._items()

    def _items(self) -> Iterator[Flight | Any]:
        """The engine's items, one by one: each row of a usual chunk the engine did not
        :meth:`take`, the entries of other chunks, then the end."""
        while True:
            run = self._run
            if run is not None and self._pos < len(run.ids):
                i = self._pos
                self._pos = i + 1
                yield run.flight(i)
                continue  # (take may have moved on meanwhile: look again)
            after, self._after = self._after, None
            if after is not None:  # what followed the usual chunk: its repeats, its end
                duplicates, failure = after
                if duplicates:
                    yield duplicates  # counted once the rows before it are taken
                if failure is not None:
                    if failure:
                        raise InputError(failure)
                    return  # the end of the input
            message, self._pending = self._pending, None
            if message is None:
                message = self._message()
            if message is None:  # no whole chunk yet: wait for the pipe
                self._watch()
                yield WAIT
                continue
            entries, duplicates, failure, common = message[:4]
            if common is not None:  # the usual chunk: rows to send, one origin and method
                self._load(message)
                continue
            items: list[Flight | Any] = [
                Flight(-1, e[0], e[2], _new_prepared(Prepared, e[1]))
                if type(e) is tuple
                else SKIPPED
                if e is None
                else e  # an error row
                for e in entries
            ]
            if duplicates:
                items.append(duplicates)  # counted once the rows before it are taken
            self._listing = True  # take() waits until these are taken
            yield from items
            self._listing = False
            if failure is not None:
                if failure:
                    raise InputError(failure)
                return  # the end of the input

    def take(self, most: int) -> UsualRun | None:
        """Up to ``most`` rows of the usual chunk at hand, in one piece (see
        :class:`~drumfire._rows.UsualRuns`); None when the next items are not such rows."""
        run = self._run
        if run is None or self._pos >= len(run.ids):
            run = self._next_run()
            if run is None:
                return None
        start = self._pos
        ids = run.ids
        if start == 0 and most >= len(ids):  # the whole chunk
            self._pos = len(ids)
            return run
        end = min(start + most, len(ids))
        self._pos = end
        return UsualRun(
            ids[start:end],
            run.data[start:end],
            run.origin,
            run.method,
            run.idempotent,
            run.pipelinable,
        )

    def _next_run(self) -> UsualRun | None:
        """The next usual chunk, when nothing else comes before it."""
        if self._listing or self._pending is not None or self._final:
            # (after the last message nothing more comes: the item path ends the input)
            return None
        after = self._after
        if after is not None:
            if after != (0, None):
                return None  # repeats to count, or the end: the item path's
            self._after = None
        message = self._message()
        if message is None:
            return None
        if message[3] is None:  # not the usual chunk: the item path's
            self._pending = message
            return None
        self._load(message)
        return self._run

    def _load(self, message: Any) -> None:
        _entries, duplicates, failure, common, ids, data = message
        origin, method, idempotent = common
        # A GET request without a body ends with its header block: it may be pipelined
        # (the pipelined dispatch's rule for one request, checked once for the chunk).
        pipelinable = method == "GET" and all(map(bytes.endswith, data, _HEAD_ENDS))
        self._run = UsualRun(ids, data, origin, method, idempotent, pipelinable)
        self._pos = 0
        self._after = (duplicates, failure) if duplicates or failure is not None else None

    def _message(self) -> Any:
        """The next whole message from the child, or None if it has not arrived yet.

        One read may bring many messages: they are taken from ``_taken`` on,
        and the buffer is compacted only before the next read (when what is
        left is at most part of one message), not after each message.
        """
        buffer = self._buffer
        size = _HEADER.size
        while True:
            start = self._taken
            if len(buffer) - start >= size:
                end = start + size + _HEADER.unpack_from(buffer, start)[0]
                if len(buffer) >= end:
                    self._taken = end
                    message = pickle.loads(buffer[start + size : end])
                    self._final = message[2] is not None
                    return message
            if self._eof:
                raise InputError("the read-ahead process ended before the end of the input")
            if start:
                del buffer[:start]
                self._taken = 0
            try:
                data = os.read(self._fd, PIPE_BYTES)
            except BlockingIOError:
                return None
            if data:
                buffer += data
            else:
                self._eof = True

    def _watch(self) -> None:
        if not self._watching:
            self._watching = True
            self._loop.add_reader(self._fd, self._readable)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._fd)

    def _readable(self) -> None:
        self._unwatch()
        self._engine.wake()

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """End the child (it only reads) and reap it; idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._loop.is_closed():
            self._unwatch()
        os.close(self._fd)
        self._signal(signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class Starter:
    """The engine's ``on_cpu_bound`` hook: hand the rest of its input to a read-ahead child.

    :meth:`close` (idempotent) ends the child, if one was started.
    """

    def __init__(self) -> None:
        self.reader: ReadAhead | None = None
        self.error: OSError | None = None  # why no child could be started

    def __call__(self, engine: Engine) -> None:
        def take(items: Iterator[Item]) -> Iterator[Any]:
            try:
                self.reader = ReadAhead(engine, items)
            except OSError as exc:  # out of file descriptors or processes
                self.error = exc
                return items  # the engine goes on reading them itself
            return iter(self.reader)

        engine.hand_over_items(take)
        if self.reader is not None:
            engine.take_runs(self.reader)  # the usual chunks, in pieces, for pipelined fills

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _serve(engine: Engine, items: Iterator[Item], fd: int) -> None:
    """The child: prepare every item, send the entries in chunks, then the end."""
    # What the child inherited from the parent is not its garbage: out of the
    # collector's sight, a collection looks only at what the child makes (about a
    # tenth of the child's instructions went to collections that found nothing).
    gc.freeze()
    stats = engine.stats
    rows = engine.rows
    make = rows.make
    keep = rows.keep
    entries: list[Any] = []
    ids: list[str] = []  # the usual chunk (see PreparedChunk): while ``common`` holds
    data: list[bytes] = []
    common: tuple[Any, str, bool] | None = None
    usual = True
    reported = stats.duplicates  # those seen before the fork are counted already
    failure: str | None = ""

    def send(end: str | None) -> None:
        nonlocal reported, common, usual
        duplicates = stats.duplicates - reported
        reported = stats.duplicates
        if ids:
            chunk = PreparedChunk([], duplicates, end, common, ids, data)
        else:
            chunk = PreparedChunk(entries, duplicates, end)
        blob = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
        _write_all(fd, _HEADER.pack(len(blob)) + blob)
        entries.clear()
        ids.clear()
        data.clear()
        common, usual = None, True

    def unusual() -> None:
        """The chunk is not the usual one after all: its rows so far as ``entries``."""
        nonlocal usual
        usual = False
        if ids:
            assert common is not None
            origin, method, idempotent = common
            entries.extend(
                (id_, (origin, d, method, idempotent), None)
                for id_, d in zip(ids, data, strict=True)
            )
            ids.clear()
            data.clear()

    quick = rows.usual_maker(stats)
    add_id, add_data = ids.append, data.append  # (send empties the lists in place)
    # A pipe (see Background): a thread reads it, and the rows read go to the parent
    # when the next has not come (they waited in the chunk for the writer's next rows).
    came = threading.Event()
    if isinstance(items, Background):
        items.attach(came.set)
    try:
        for item in items:
            if item is WAIT:
                if ids or entries:
                    send(None)
                came.wait()
                came.clear()
                continue
            got = quick(item) if quick is not None else None
            if got is not None:  # the usual row (no kept columns): made without a Flight
                id_, (origin, request, method, idempotent) = got
                if usual:
                    shared = origin, method, idempotent
                    if common is None:
                        common = shared
                    if shared == common:
                        add_id(id_)
                        add_data(request)
                        if len(ids) >= CHUNK_ROWS:
                            send(None)
                        continue
                    unusual()
                entries.append((id_, (origin, request, method, idempotent), None))
                if len(entries) >= CHUNK_ROWS:
                    send(None)
                continue
            made = make(item, stats)
            if type(made) is Flight:
                kept = rows.kept(made.row) if keep else None
                prepared = made.prepared
                if usual:
                    shared = (prepared.origin, prepared.method, prepared.idempotent)
                    if common is None:
                        common = shared
                    if kept is None and shared == common:
                        ids.append(made.id)
                        data.append(prepared.data)
                        if len(ids) >= CHUNK_ROWS:
                            send(None)
                        continue
                    unusual()
                entries.append((made.id, tuple(prepared), kept))
            else:
                if usual:
                    unusual()
                entries.append(None if made is SKIPPED else made)
            if len(entries) >= CHUNK_ROWS:
                send(None)
    except InputError as exc:  # already one line naming the input
        failure = str(exc)[:500]
    except Exception as exc:  # an unreadable input: the parent ends the run with it
        failure = f"reading or preparing the input failed: {type(exc).__name__}: {exc}"[:500]
    send(failure)


def _detach(parent: int, write_fd: int) -> None:
    """The child's first steps: its own signals and priority, none of the parent's sockets."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)  # the event loop's, shared with the parent
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    die_with_parent(parent)  # even while blocked reading stdin or a FIFO
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # it then runs at the parent's priority
    # Copies of the parent's sockets (its connections, the loop's wake-up
    # pair) would keep them open after the parent closes them: a server
    # would see no FIN or RST until the child ends. Standard output and
    # error may be a pipe someone waits on: the child writes to neither.
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != write_fd:
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.close(fd)
            except OSError:
                pass


def _enlarge(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # a smaller pipe only means more turns


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

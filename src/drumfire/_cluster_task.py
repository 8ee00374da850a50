"""One partition of a cluster run, on a worker: the Dask task :func:`run_part`.

It reads its own rows, runs the ordinary engine on an event loop of its own in
a thread of its own (never on the worker's communication loop), sends progress
events, and writes its part (or rewrites a finished one whose rows are to be
sent again), with the figures the client adds up. Part of ``drumfire run
--cluster`` (:mod:`drumfire._cluster`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._cluster_plan import SUFFIX, Part, part_name
from ._cluster_store import Store, open_binary, optional_module
from ._result import is_failure

if TYPE_CHECKING:
    from ._job import Job
    from ._result import Result, Stats

def open_part(part: Part, scratch: str) -> Any:
    """The partition's rows as a Source, its row numbers and lines those of the whole input."""
    from ._rows import InputProblem
    from ._sources import Source, open_source

    if part.fmt == "parquet":
        from ._frames import frame_source
        from ._parquet import require_pyarrow

        _, pq = require_pyarrow("--cluster")
        with open_binary(part.path) as f:
            table = pq.ParquetFile(f).read_row_groups(list(range(part.start, part.end)))
        source = frame_source(table, "arrow")
        line_shift = part.first_row  # an input error row names the row of the whole input
    else:
        # The worker copies its byte range to a local file (behind the header)
        # and reads it as drumfire reads any input: same parsing, same input errors.
        local = os.path.join(scratch, "input" + SUFFIX[part.fmt])
        with open_binary(part.path) as src, open(local, "wb") as dst:
            dst.write(part.header)
            src.seek(part.start)
            left = part.end - part.start
            while left > 0:
                block = src.read(min(left, 1 << 20))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
        source = open_source(
            local,
            part.fmt,
            part.encoding,
            count=False,
            delimiter=part.delimiter,
            whole=part.first_row == 0,
        )
        # The local file's rows start after the header's lines (a quoted name may hold
        # line breaks; the header always ends with one when rows follow it).
        line_shift = part.first_line - part.header.count(b"\n") - 1

    def shifted(items: Iterator[Any]) -> Iterator[Any]:
        for n, row in items:
            if isinstance(row, InputProblem):
                row = InputProblem(row.line + line_shift, row.message)
            yield n + part.first_row, row

    if source.lines is not None:  # template error rows name the whole input's lines
        source.lines.moved(part.first_row, line_shift)
    items = shifted(source.items)
    return Source(items, source.columns, source.fmt, part.rows, source.close, source.lines)


@dataclass(frozen=True)
class TaskOptions:
    """What a task needs beyond the job's settings (picklable).

    ``parse``: ``--parse``, as (file name, the file's text, function name): the
    file travels with the task, so the workers need not share the client's
    files (what it imports must be installed on them). ``again``:
    ``--retry-failed``'s :class:`~drumfire._resume.Selection`: the rows of a
    finished part it picks are sent again and the part rewritten.
    """

    parse: tuple[str, bytes, str] | None = None
    again: Any = None


def parse_option(spec: str) -> tuple[str, bytes, str]:
    """``FILE.py:FUNCTION`` (already checked by loading it) as a task carries it."""
    path, _, name = spec.rpartition(":")
    with open(path, "rb") as f:
        return os.path.basename(path), f.read(), name


_PARSERS: dict[str, Any] = {}  # loaded --parse functions, per worker process


def scratch_root() -> str | None:
    """Where a task keeps its scratch files: its Dask worker's local directory (None: the
    system's temporary directory, when not run by a Dask worker).

    The worker's directory (``dask-scratch-space/worker-*`` under ``TMPDIR``, or Dask's
    ``temporary-directory``) is removed by Dask when the worker ends, however it ends:
    its nanny removes it once the process is gone (closed, or killed by a LocalCluster's
    close, or by a signal), and a worker started without a nanny purges the directories
    of dead ones on its start. A task cut short there (a stopped run, a closed cluster)
    never leaves the ``with TemporaryDirectory()`` of its scratch, which was left in
    ``/tmp``, one a stopped partition.
    """
    try:
        worker = optional_module("distributed").get_worker()
    except (ImportError, ValueError):
        return None
    return str(worker.local_directory)


def _parser(spec: tuple[str, bytes, str]) -> Any:
    """The ``--parse`` function on a worker: the file written once and loaded once
    per worker process (a folder named by the file's hash: files of one name but
    other texts never meet)."""
    from ._parse import load_parse_function

    filename, text, name = spec
    key = hashlib.sha256(text).hexdigest()[:16] + ":" + name
    func = _PARSERS.get(key)
    if func is None:
        root = scratch_root() or tempfile.gettempdir()
        folder = os.path.join(root, f"drumfire-parse-{key[:16]}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, filename)
        if not os.path.exists(path):
            temp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(temp, "wb") as f:
                f.write(text)
            os.replace(temp, path)
        func = _PARSERS[key] = load_parse_function(f"{path}:{name}")
    return func


def part_results(
    part: Part, job: Job, options: TaskOptions | None = None, skip: Any = None
) -> tuple[list[Result], Stats]:
    """Run the partition's rows through the engine on its own loop and thread."""
    parse = _parser(options.parse) if options is not None and options.parse else None
    with tempfile.TemporaryDirectory(prefix="drumfire-part-", dir=scratch_root()) as scratch:
        source = open_part(part, scratch)
        try:
            return run_source(source, job, part.index, parse=parse, skip=skip)
        finally:
            if source.close is not None:
                source.close()


def run_source(
    source: Any, job: Job, index: int, *, parse: Any = None, skip: Any = None
) -> tuple[list[Result], Stats]:
    """The engine on an event loop of its own, in a thread of its own (the task's
    thread waits, sending progress events; the worker's own loop is never used).

    ``skip``: ids of rows the part keeps (``--retry-failed``); input-error rows
    are then kept too (sent again they would fail the same way)."""
    from ._loop import new_event_loop

    results: list[Result] = []
    extra: dict[str, Any] = {}
    if skip is not None:
        extra = {"skip": skip, "skip_problem": lambda line: True}
    engine = job.engine(source, results.append, parse=parse, **extra)
    loop = new_event_loop()
    failure: list[BaseException] = []
    stats: list[Stats] = []

    def work() -> None:
        try:
            stats.append(loop.run_until_complete(engine.run(source.items, source.total)))
        except BaseException as exc:  # handed to the task's thread
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=work, name=f"drumfire-part-{index}")
    thread.start()
    report = _reporter(index)
    seen = failed = 0
    while thread.is_alive():
        thread.join(REPORT_EVERY)
        if report is not None:  # rows done so far, for the client's live line
            now = len(results)
            failed += sum(1 for r in results[seen:now] if is_failure(r.status, r.error))
            seen = now
            report({"part": index, "done": now, "failed": failed})
    if failure:
        raise failure[0]
    return results, stats[0]


REPORT_EVERY = 0.5  # seconds between a running partition's progress events
TOPIC = "drumfire-progress"


def _reporter(index: int) -> Any:
    """Sends progress events to the client when running as a Dask task (else None)."""
    try:
        worker = optional_module("distributed").get_worker()
    except (ImportError, ValueError):
        return None

    def report(msg: dict[str, Any]) -> None:
        worker.log_event(TOPIC, msg)

    return report


def _records(data: bytes, out_fmt: str) -> list[tuple[str, int | None, str]]:
    """``(id, status, error)`` of every row of a part, in its order."""
    if out_fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data), columns=["id", "status", "error"])
        return list(
            zip(
                (str(i) for i in table.column("id").to_pylist()),
                table.column("status").to_pylist(),
                (e or "" for e in table.column("error").to_pylist()),
                strict=True,
            )
        )
    records = []
    for line in data.splitlines():
        row = json.loads(line)
        records.append((str(row["id"]), row["status"], row["error"] or ""))
    return records


def _encode(results: list[Result], job: Job, out_fmt: str, learn: bool) -> bytes:
    """A part's bytes: a Parquet file, or JSON Lines."""
    names = [name for name, _ in job.extract]
    if out_fmt == "parquet":
        import pyarrow.parquet as pq

        from ._parquet import results_table

        buffer = io.BytesIO()
        pq.write_table(results_table(results, names, job.keep, learn=learn), buffer)
        return buffer.getvalue()
    from ._result import BlankFields

    blank = BlankFields(tuple(names))
    return b"".join(
        json.dumps(blank(r).as_dict(), default=str).encode() + b"\n" for r in results
    )


def _merge(
    old: bytes, keep: list[bool], results: list[Result], job: Job, out_fmt: str, learn: bool
) -> bytes:
    """A rewritten part: the rows it keeps (in order), then the rows sent again."""
    new = _encode(results, job, out_fmt, learn)
    if out_fmt != "parquet":
        kept = [line for line, k in zip(old.splitlines(), keep, strict=True) if k]
        return b"".join(line + b"\n" for line in kept) + new
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._cluster_schema import as_text

    before = pq.read_table(io.BytesIO(old)).filter(pa.array(keep, pa.bool_()))
    after = pq.read_table(io.BytesIO(new))
    for name in set(before.column_names) & set(after.column_names):
        was, now = before.schema.field(name), after.schema.field(name)
        if was.type == now.type:
            continue
        i, j = before.column_names.index(name), after.column_names.index(name)
        # A side without a value (the rows sent again all failed, or the part's rows
        # had none) takes the other's type: nulls cast to any (both were made text,
        # numbers included); whole numbers (int64) beside fractions become float64,
        # as in one process. Else both are text (numbers before, text now), each value
        # as one process writes it in a string column.
        floats = {was.type, now.type} == {pa.int64(), pa.float64()}
        if after.column(j).null_count == after.num_rows or (floats and was.type == pa.float64()):
            cast = _cast(after, j, was)
            if cast is not None:
                after = cast
                continue
        if before.column(i).null_count == before.num_rows or (floats and now.type == pa.float64()):
            cast = _cast(before, i, now)
            if cast is not None:
                before = cast
                continue
        before = before.set_column(i, name, as_text(before.column(i)))
        after = after.set_column(j, name, as_text(after.column(j)))
    table = pa.concat_tables([before, after], promote_options="permissive")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _cast(table: Any, index: int, field: Any) -> Any:
    """``table`` with column ``index`` cast to ``field``, or None where that would change
    a value (an integer beyond 2**53 as a float64)."""
    import pyarrow as pa

    try:
        return table.set_column(index, field, table.column(index).cast(field.type))
    except pa.ArrowInvalid:
        return None


def figures(stats: Stats) -> dict[str, Any]:
    """A partition's :class:`Stats` as plain values, for the client to add up."""
    return {
        "done": stats.done,
        "ok": stats.ok,
        "requests": stats.requests,
        "reasons": dict(stats.reasons),
        "statuses": dict(stats.statuses),
        "latency": stats.latency.encode(),
        "longest_ms": stats.longest_ms,
        "examples": dict(stats.examples),
        "duplicates": stats.duplicates,
        "pipelined": stats.pipelined,
        "resent": stats.resent,
    }


def add_figures(stats: Stats, got: dict[str, Any]) -> None:
    """Add a partition's :func:`figures` to the run's ``stats``."""
    stats.done += got["done"]
    stats.ok += got["ok"]
    stats.requests += got["requests"]
    stats.reasons.update(got["reasons"])
    stats.statuses.update(got["statuses"])
    stats.latency.decode_and_add(got["latency"])
    longest = got.get("longest_ms")
    if longest is None:  # a part written by an older drumfire: its histogram's max
        from hdrh.histogram import HdrHistogram

        longest = HdrHistogram.decode(got["latency"]).get_max_value() / 1000.0
    stats.longest_ms = max(stats.longest_ms, longest)
    for reason, example in got["examples"].items():
        stats.examples.setdefault(reason, example)
    stats.duplicates += got["duplicates"]
    stats.pipelined += got["pipelined"]
    stats.resent += got.get("resent", 0)  # (a part written by an older drumfire: none)


def run_part(
    part: Part, job: Job, directory: str, out_fmt: str, options: TaskOptions | None = None
) -> dict[str, Any]:
    """The Dask task: write the partition's part unless it is there; its figures.

    A finished part is kept as it is, unless some of its rows are to be sent
    again (``cancelled`` ones, as every resume does, or those ``--retry-failed``
    picks): then those rows alone are sent and the part is rewritten whole.
    """
    from ._resume import DoneIds, is_cancelled

    options = options or TaskOptions()
    store = Store(directory)
    name = part_name(part.index, out_fmt)
    learn = options.parse is not None
    started = time.monotonic()
    kept = 0
    if store.done(name):  # done before (a re-run of this task, or --resume)
        old = store.read(name)
        records = _records(old, out_fmt)
        again = options.again
        keep = [
            r[0] == "" or not (is_cancelled(r) or (again is not None and again.matches(r[2], r[1])))
            for r in records
        ]
        # The part holds one row for each row of the partition, but rows that share
        # an id cannot be told apart: an id one of whose rows goes is sent whole.
        going = {r[0] for r, k in zip(records, keep, strict=True) if not k}
        if going:
            keep = [k and r[0] not in going for r, k in zip(records, keep, strict=True)]
        failed_kept = sum(
            1 for r, k in zip(records, keep, strict=True) if k and is_failure(r[1], r[2])
        )
        if all(keep):
            return {
                "index": part.index,
                "rows": len(records),
                "failed": failed_kept,
                "skipped": True,
            }
        ids = DoneIds(r[0] for r, k in zip(records, keep, strict=True) if k and r[0] != "")
        results, stats = part_results(part, job, options, skip=ids.take)
        data = _merge(old, keep, results, job, out_fmt, learn)
        kept = keep.count(True)
    else:
        failed_kept = 0
        results, stats = part_results(part, job, options)
        data = _encode(results, job, out_fmt, learn)
    if stats.unreachable is not None:
        # The target refused every connection and the engine stopped (as without a
        # cluster): no request reached a server, and the rows never sent have no
        # result. A part of its cancelled rows alone would pass for a finished one,
        # so none is written (a finished part is left as it was): --resume sends the
        # partition's rows again. The client stops the run and says why.
        return {
            "index": part.index,
            "rows": kept,
            "failed": failed_kept,
            "skipped": False,
            "kept": kept,
            "unreachable": stats.unreachable,
        }
    failed = failed_kept + sum(1 for r in results if is_failure(r.status, r.error))
    store.write(name, data, {"rows": kept + len(results), "failed": failed})
    return {
        "index": part.index,
        "rows": kept + len(results),
        "failed": failed,
        "skipped": False,
        "kept": kept,
        "seconds": time.monotonic() - started,
        "stats": figures(stats),
    }

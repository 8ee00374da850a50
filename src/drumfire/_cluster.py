"""Running one batch on a Dask cluster: ``drumfire run --cluster`` and :func:`run_dask`.

The input is cut into partitions on the client (byte ranges of CSV/TSV/JSON
Lines/URL files, cut at row starts outside quoted fields; groups of Parquet row
groups). Each partition is a Dask task that reads its own rows, runs the
ordinary engine on its own event loop in a thread of its own (never on the
worker's communication loop) and writes one part file, ``part-NNNNNN.parquet``
(or ``.jsonl``), under a hidden temporary name renamed when complete. The
partition number is the part's name, so a task that Dask runs twice (a dead
worker, a retry) writes the same part again, and a task whose part exists
skips: every input row is in exactly one complete part.

``dask`` and ``distributed`` are imported inside the functions only: nothing in
the core imports this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import InputError, UsageError
from ._sources import QUOTE_MAX_BYTES, QUOTE_MAX_LINES

if TYPE_CHECKING:
    from ._api import Job
    from ._result import Result, Stats

__all__ = ["Part", "plan_parts", "run_cluster", "run_dask", "run_part"]

EXTRA = "pip install 'drumfire[dask]'"
MANIFEST = "_drumfire_cluster.json"
#: Input bytes per partition by default: about 200,000 short CSV rows, so a
#: re-run after a worker death costs seconds, and the scheduler (about 1 ms of
#: work per task) is never the limit.
PARTITION_SIZE = 16 * 1024 * 1024
_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "text": ".txt"}


def _require_dask(what: str) -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{what}: needs dask and distributed: {EXTRA}") from None


def _module(name: str) -> Any:
    """An optional dependency, imported when first used (and typed as Any: it ships no types)."""
    import importlib

    return importlib.import_module(name)


# -- where the input and the parts live: a local path, or any fsspec URL ---------------------


def is_local(path: str) -> bool:
    """A local path (``file://`` included); anything else with ``://`` goes through fsspec."""
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    return os.path.abspath(path[7:] if path.startswith("file://") else path)


def _fs(url: str) -> tuple[Any, str]:
    """``(filesystem, path in it)`` for an fsspec URL (``s3://``, ``gs://``, ``memory://``...)."""
    try:
        core = _module("fsspec.core")
    except ImportError:
        raise UsageError(f"{url!r}: a URL path needs fsspec: {EXTRA}") from None
    try:
        fs, path = core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise UsageError(f"{url!r}: {exc}".splitlines()[0]) from None
    return fs, path


def open_binary(path: str) -> Any:
    """A file object to read ``path`` (local, or an fsspec URL) as bytes; seekable."""
    if is_local(path):
        return open(local_path(path), "rb", buffering=1 << 20)
    fs, inner = _fs(path)
    return fs.open(inner, "rb")


def _exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(local_path(path))
    fs, inner = _fs(path)
    return bool(fs.exists(inner))


class Store:
    """The output dataset directory: where parts are written, found and counted.

    Local (a path or ``file://``): a part is written under a hidden temporary
    name, synced, and renamed over its final name (atomic on one file system).
    Any other fsspec URL (an object store: ``s3://``, ``gs://``, ``az://``;
    ``memory://`` in tests) has no atomic rename: a part is written to its final
    name in one write (an object store's PUT, or a multipart upload completed
    at close, is atomic: the object is whole or absent), and it counts as
    finished only once its entry ``_drumfire_done/part-NNNNNN.json`` is written
    after it. A part without its entry is written again by the next attempt
    or ``--resume``; readers skip the ``_``-prefixed entries.
    """

    DONE = "_drumfire_done"

    def __init__(self, directory: str) -> None:
        self.local = is_local(directory)
        if self.local:
            self.fs: Any = None
            self.root = local_path(directory)
        else:
            self.fs, self.root = _fs(directory)

    def path(self, name: str) -> str:
        return os.path.join(self.root, name) if self.local else f"{self.root}/{name}"

    def _entry(self, name: str) -> str:
        return f"{self.root}/{self.DONE}/{name}.json"

    def makedirs(self) -> None:
        if self.local:
            os.makedirs(self.root, exist_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def names(self) -> list[str]:
        if self.local:
            return os.listdir(self.root)
        if not self.fs.exists(self.root):
            return []
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]

    def remove(self, name: str) -> None:
        if self.local:
            os.unlink(os.path.join(self.root, name))
        else:
            self.fs.rm(self.path(name), recursive=True)

    def done(self, name: str) -> bool:
        """Whether the part ``name`` is complete."""
        if self.local:
            return os.path.exists(self.path(name))
        return bool(self.fs.exists(self._entry(name)))

    def read(self, name: str) -> bytes:
        if self.local:
            with open(self.path(name), "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(self.path(name)))

    def write(self, name: str, data: bytes, entry: dict[str, Any]) -> None:
        """Write the part ``name`` so that a partial one is never taken for a finished one."""
        if not self.local:
            self.fs.pipe_file(self.path(name), data)
            self.fs.pipe_file(self._entry(name), json.dumps(entry).encode())
            return
        # A name of its own per attempt: two runs of one task never write one file.
        temp = os.path.join(self.root, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path(name))  # atomic: the part is complete or absent
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def put_text(self, name: str, text: str) -> None:
        if self.local:
            with open(self.path(name) + ".tmp", "w") as f:
                f.write(text)
            os.replace(self.path(name) + ".tmp", self.path(name))
        else:
            self.fs.pipe_file(self.path(name), text.encode())

    def get_text(self, name: str) -> str | None:
        try:
            return self.read(name).decode()
        except (OSError, ValueError):  # FileNotFoundError included
            return None

    def clean(self) -> None:
        """Remove attempts cut short by a dead worker (local temporary files)."""
        if self.local:
            for name in os.listdir(self.root):
                if name.startswith(".part-") and name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.root, name))


@dataclass(frozen=True)
class Part:
    """One partition of the input: what a task reads. Picklable."""

    index: int
    path: str
    fmt: str  # csv, tsv, jsonl, text, parquet
    start: int  # a byte offset, or the first row group
    end: int  # a byte offset, or the row group after the last (exclusive)
    first_row: int  # rows of the input before this partition
    first_line: int  # the file line where it starts (1-based; 0 for Parquet)
    rows: int
    header: bytes = b""
    encoding: str = "utf-8"


def part_name(index: int, out_fmt: str) -> str:
    return f"part-{index:06d}.{'parquet' if out_fmt == 'parquet' else 'jsonl'}"


# -- planning (on the client) ---------------------------------------------------------


def plan_parts(
    path: str, fmt: str, encoding: str = "utf-8", size: int = PARTITION_SIZE
) -> list[Part]:
    """Cut ``path`` into partitions of about ``size`` input bytes."""
    if path == "-":
        raise UsageError("--cluster: the workers read the input themselves; give a file, not stdin")
    if not _exists(path):
        raise InputError(f"input file {path!r} does not exist")
    if is_local(path):
        path = local_path(path)
    if fmt == "parquet":
        return _plan_parquet(path, size)
    if path.endswith(".gz"):
        raise UsageError(
            f"--cluster: {path!r} is compressed and cannot be cut into byte ranges; "
            "decompress it first (or convert it to Parquet)"
        )
    csv_like = fmt in ("csv", "tsv")
    delimiter = 9 if fmt == "tsv" else 44  # tab, comma
    parts: list[Part] = []
    header = b""

    def part(start: int, end: int, first_row: int, first_line: int, rows: int) -> Part:
        return Part(
            len(parts), path, fmt, start, end, first_row, first_line, rows, header, encoding
        )

    with open_binary(path) as f:
        offset = 0
        line_no = 0
        if csv_like:
            header = f.readline()
            offset, line_no = len(header), 1
        start, first_line, first_row, rows = offset, line_no + 1, 0, 0
        inside = False  # inside a quoted CSV field: a line start there is no row start
        # Where the open quote's line ends, and that record's size so far: a quote
        # that runs past the reader's limits (or to the end) costs one row there,
        # and reading goes on after its line, as the reader does (see _guarded).
        reopen, held_lines, held_bytes = (0, 0), 0, 0
        while True:
            line = f.readline()
            if inside and (
                not line or held_lines >= QUOTE_MAX_LINES or held_bytes >= QUOTE_MAX_BYTES
            ):
                offset, line_no = reopen
                f.seek(offset)
                inside = False
                continue
            if not line:
                break
            line_no += 1
            if not inside:
                if offset - start >= size and rows:
                    parts.append(part(start, offset, first_row, first_line, rows))
                    start, first_line, first_row, rows = offset, line_no, first_row + rows, 0
                text = line.strip()
                if text and not (fmt == "text" and text.startswith(b"#")):
                    rows += 1
            else:
                held_lines += 1
                held_bytes += len(line)
            offset += len(line)
            if csv_like and (inside or b'"' in line):
                was, inside = inside, _ends_inside(line, inside, delimiter)
                if inside and not was:
                    reopen, held_lines, held_bytes = (offset, line_no), 0, 0
        if rows or not parts:
            parts.append(part(start, offset, first_row, first_line, rows))
    return parts


def _ends_inside(line: bytes, inside: bool, delimiter: int) -> bool:
    """Whether ``line`` ends inside a quoted field, by the csv module's rules: a quote
    opens a field only at its start, ``""`` in a quoted field is a quote, and text
    after a closing quote goes on unquoted (the reader is not strict)."""
    quoted, after_quote, at_start = inside, False, not inside
    for c in line:
        if quoted:
            if c == 34:
                quoted, after_quote = False, True
            continue
        if after_quote and c == 34:  # "" inside a quoted field
            quoted, after_quote = True, False
            continue
        after_quote = False
        if c == delimiter or c in (10, 13):
            at_start = True
        elif at_start and c == 34:
            quoted, at_start = True, False
        else:
            at_start = False
    return quoted


def _parquet_files(path: str) -> list[str]:
    if is_local(path):
        if os.path.isdir(path):
            return sorted(
                os.path.join(path, n)
                for n in os.listdir(path)
                if n.endswith((".parquet", ".pq")) and not n.startswith((".", "_"))
            )
        return [path]
    fs, inner = _fs(path)
    if not fs.isdir(inner):
        return [path]
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(inner, detail=False)]
    return sorted(
        f"{path.rstrip('/')}/{n}"
        for n in names
        if n.endswith((".parquet", ".pq")) and not n.startswith((".", "_"))
    )


def _plan_parquet(path: str, size: int) -> list[Part]:
    from ._parquet import require_pyarrow

    _, pq = require_pyarrow("--cluster")
    parts: list[Part] = []
    first_row = 0
    for name in _parquet_files(path):
        with open_binary(name) as f:
            meta = pq.ParquetFile(f).metadata
        start, rows, nbytes = 0, 0, 0
        for group in range(meta.num_row_groups):
            if nbytes >= size and rows:
                parts.append(Part(len(parts), name, "parquet", start, group, first_row, 0, rows))
                first_row, start, rows, nbytes = first_row + rows, group, 0, 0
            rows += meta.row_group(group).num_rows
            nbytes += meta.row_group(group).total_byte_size
        if rows:
            parts.append(
                Part(len(parts), name, "parquet", start, meta.num_row_groups, first_row, 0, rows)
            )
            first_row += rows
    return parts


# -- one partition (on a worker) ------------------------------------------------------


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
        line_shift = 0
    else:
        # The worker copies its byte range to a local file (behind the header)
        # and reads it as drumfire reads any input: same parsing, same input errors.
        local = os.path.join(scratch, "input" + _SUFFIX[part.fmt])
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
        source = open_source(local, part.fmt, part.encoding, count=False)
        line_shift = part.first_line - (2 if part.header else 1)

    def shifted(items: Iterator[Any]) -> Iterator[Any]:
        for n, row in items:
            if isinstance(row, InputProblem):
                row = InputProblem(row.line + line_shift, row.message)
            yield n + part.first_row, row

    return Source(shifted(source.items), source.columns, source.fmt, part.rows, source.close)


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


def _parser(spec: tuple[str, bytes, str]) -> Any:
    """The ``--parse`` function on a worker: the file written once and loaded once."""
    from ._parse import load_parse_function

    filename, text, name = spec
    key = hashlib.sha256(text).hexdigest()[:16] + ":" + name
    func = _PARSERS.get(key)
    if func is None:
        folder = os.path.join(tempfile.gettempdir(), f"drumfire-parse-{key[:16]}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, filename)
        if not os.path.exists(path):
            temp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(temp, "wb") as f:
                f.write(text)
            os.replace(temp, path)
        func = _PARSERS[key] = load_parse_function(f"{path}:{name}")
    return func


def _results(
    part: Part, job: Job, options: TaskOptions | None = None, skip: Any = None
) -> tuple[list[Result], Stats]:
    """Run the partition's rows through the engine on its own loop and thread."""
    parse = _parser(options.parse) if options is not None and options.parse else None
    with tempfile.TemporaryDirectory(prefix="drumfire-part-") as scratch:
        source = open_part(part, scratch)
        try:
            return _run_source(source, job, part.index, parse=parse, skip=skip)
        finally:
            if source.close is not None:
                source.close()


def _run_source(
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
            failed += sum(1 for r in results[seen:now] if r.error)
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
        worker = _module("distributed").get_worker()
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

    before = pq.read_table(io.BytesIO(old)).filter(pa.array(keep, pa.bool_()))
    after = pq.read_table(io.BytesIO(new))
    try:
        table = pa.concat_tables([before, after], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # A column typed differently in the two (numbers before, text now): text in both.
        for name in set(before.column_names) & set(after.column_names):
            a, b = before.schema.field(name).type, after.schema.field(name).type
            if a != b:
                i, j = before.column_names.index(name), after.column_names.index(name)
                before = before.set_column(i, name, before.column(name).cast(pa.string()))
                after = after.set_column(j, name, after.column(name).cast(pa.string()))
        table = pa.concat_tables([before, after], promote_options="permissive")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def figures(stats: Stats) -> dict[str, Any]:
    """A partition's :class:`Stats` as plain values, for the client to add up."""
    return {
        "done": stats.done,
        "ok": stats.ok,
        "requests": stats.requests,
        "reasons": dict(stats.reasons),
        "statuses": dict(stats.statuses),
        "latency": stats.latency.encode(),
        "examples": dict(stats.examples),
        "duplicates": stats.duplicates,
        "pipelined": stats.pipelined,
    }


def add_figures(stats: Stats, got: dict[str, Any]) -> None:
    """Add a partition's :func:`figures` to the run's ``stats``."""
    stats.done += got["done"]
    stats.ok += got["ok"]
    stats.requests += got["requests"]
    stats.reasons.update(got["reasons"])
    stats.statuses.update(got["statuses"])
    stats.latency.decode_and_add(got["latency"])
    for reason, example in got["examples"].items():
        stats.examples.setdefault(reason, example)
    stats.duplicates += got["duplicates"]
    stats.pipelined += got["pipelined"]


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
        failed_kept = sum(1 for r, k in zip(records, keep, strict=True) if k and r[2])
        if all(keep):
            return {
                "index": part.index,
                "rows": len(records),
                "failed": failed_kept,
                "skipped": True,
            }
        ids = DoneIds(r[0] for r, k in zip(records, keep, strict=True) if k and r[0] != "")
        results, stats = _results(part, job, options, skip=ids.take)
        data = _merge(old, keep, results, job, out_fmt, learn)
        kept = keep.count(True)
    else:
        failed_kept = 0
        results, stats = _results(part, job, options)
        data = _encode(results, job, out_fmt, learn)
    failed = failed_kept + sum(1 for r in results if r.error)
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


# -- the run (on the client) ----------------------------------------------------------


def split_job(job: Job, slots: int) -> Job:
    """The settings of one task when ``slots`` tasks run at once: the run's limits shared."""
    slots = max(1, slots)
    return dataclasses.replace(
        job,
        rate=None if job.rate is None else job.rate / slots,
        concurrency=None if job.concurrency is None else max(1, math.ceil(job.concurrency / slots)),
        max_concurrency=max(1, math.ceil(job.max_concurrency / slots)),
    )


def connect(address: str) -> tuple[Any, Any]:
    """``(client, cluster)``: ``local:N`` starts a LocalCluster of N worker processes."""
    dist = _module("distributed")
    Client, LocalCluster = dist.Client, dist.LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address[6:])
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"--cluster {address!r}: say local:N with N worker processes (N >= 1)")
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        )
        return Client(cluster), cluster
    try:
        return Client(address, timeout=30), None
    except (OSError, ValueError) as exc:  # unreachable, timed out, or not an address
        raise UsageError(f"--cluster {address!r}: cannot reach the scheduler: {exc}") from None


def _stamp(path: str) -> tuple[int, Any]:
    """``(size, modification stamp)`` of an input file, local or an fsspec URL."""
    if is_local(path):
        st = os.stat(local_path(path))
        return st.st_size, st.st_mtime_ns
    fs, inner = _fs(path)
    info = fs.info(inner)
    stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
    return int(info.get("size") or 0), str(stamp)


def _manifest(parts: list[Part], path: str, out_fmt: str, size: int) -> dict[str, Any]:
    input_size, mtime = _stamp(parts[0].path if parts else path)
    return {
        "input": local_path(path) if is_local(path) else path,
        "input_size": input_size,
        "input_mtime_ns": mtime,
        "partition_size": size,
        "partitions": len(parts),
        "output_format": out_fmt,
    }


def _prepare_directory(
    output: str, manifest: dict[str, Any], resume: str | None, overwrite: bool
) -> None:
    """``resume``: the option that keeps the parts (``--resume``, ``--retry-failed``), or None."""
    store = Store(output)
    store.makedirs()
    names = store.names()
    ours = [n for n in names if n.startswith(("part-", ".part-")) or n in (MANIFEST, Store.DONE)]
    other = [n for n in names if n not in ours and n not in (".drumfire.lock", "_unfit.jsonl")]
    if other:
        raise UsageError(
            f"output {output!r} holds files drumfire did not write ({other[0]!r}); "
            "choose another -o"
        )
    holds = any(n.startswith("part-") for n in names)
    if holds and resume:
        text = store.get_text(MANIFEST)
        try:
            before = json.loads(text) if text is not None else None
        except ValueError:
            before = None
        if before != manifest:
            raise UsageError(
                f"{resume}: {output!r} was written for another input or partitioning "
                "(its input file, size or --partition-size changed); use --overwrite"
            )
        return
    if holds and not overwrite and not resume:
        raise UsageError(
            f"output {output!r} already holds parts; say --resume to complete it "
            "or --overwrite to replace it"
        )
    for n in ours:
        store.remove(n)
    store.put_text(MANIFEST, json.dumps(manifest))


class _Line:
    """One live line on stderr for the whole run (a terminal only), then the summary."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.live = not quiet and sys.stderr.isatty()
        self.quiet = quiet
        self.started = time.monotonic()
        self.done = self.failed = self.sent = 0
        # Rows done so far by partitions still running, from their workers' events
        # (the latest event of a partition; a re-run after a worker death starts over).
        self.running: dict[int, tuple[int, int]] = {}
        self.finished: set[int] = set()
        self.lock = threading.Lock()

    def event(self, event: Any) -> None:
        """A worker's progress event (called on the client's event loop)."""
        msg = event[1]
        with self.lock:
            if msg["part"] not in self.finished:
                self.running[msg["part"]] = (msg["done"], msg["failed"])
        self.show()

    def add(self, figures: dict[str, Any]) -> None:
        with self.lock:
            self.finished.add(figures["index"])
            self.running.pop(figures["index"], None)
            self.done += figures["rows"]
            self.failed += figures["failed"]
            if not figures["skipped"]:
                self.sent += figures["rows"] - figures.get("kept", 0)
        self.show()

    def show(self) -> None:
        if not self.live:
            return
        with self.lock:
            done = self.done + sum(d for d, _ in self.running.values())
            sent = self.sent + sum(d for d, _ in self.running.values())
            failed = self.failed + sum(f for _, f in self.running.values())
        elapsed = max(time.monotonic() - self.started, 1e-9)
        sys.stderr.write(
            f"\r{done:,}/{self.total:,} rows  {sent / elapsed:,.0f} rows/s  {failed:,} failed "
        )
        sys.stderr.flush()


def run_cluster(
    input_path: str,
    job: Job,
    *,
    cluster: str,
    output: str,
    out_fmt: str,
    input_format: str | None = None,
    encoding: str = "utf-8",
    resume: str | bool | None = None,
    overwrite: bool = False,
    partition_size: int = PARTITION_SIZE,
    quiet: bool = False,
    options: TaskOptions | None = None,
) -> tuple[Stats, int]:
    """``drumfire run INPUT --cluster ADDRESS``: the run's figures and exit status.

    ``resume``: ``"--resume"`` or ``"--retry-failed"`` (which also needs
    ``options.again``) to complete the dataset, else None. ``input_path`` and
    ``output`` may be fsspec URLs (``s3://...``): the workers read and write
    them themselves.
    """
    from ._outfile import OutputLock
    from ._sources import format_for, open_source

    if resume is True:
        resume = "--resume"
    resume = resume or None
    if input_path == "-":
        raise UsageError("--cluster: the workers read the input themselves; give a file, not stdin")
    if output == "-":
        raise UsageError("--cluster writes a dataset directory of parts: give -o DIR.parquet")
    if out_fmt not in ("parquet", "jsonl"):
        raise UsageError(f"--cluster writes Parquet or JSON Lines parts, not {out_fmt}")
    _require_dask("--cluster")
    fmt = input_format or format_for(input_path, None)
    parts = plan_parts(input_path, fmt, encoding, partition_size)
    # Templates against the columns before anything starts, as without --cluster.
    if is_local(input_path):
        source = open_source(local_path(input_path), fmt, encoding, count=False)
        try:
            job.check(job.plan(), source)
        finally:
            if source.close is not None:
                source.close()
    elif parts:
        with tempfile.TemporaryDirectory(prefix="drumfire-check-") as scratch:
            source = open_part(parts[0], scratch)
            try:
                job.check(job.plan(), source)
            finally:
                if source.close is not None:
                    source.close()
    # A local output is locked (DIR/.drumfire.lock); an object store has no locks:
    # one client per output (see docs/scale-out.md).
    lock = (
        OutputLock.acquire_output(local_path(output), "parquet") if is_local(output) else None
    )
    try:
        _prepare_directory(
            output, _manifest(parts, input_path, out_fmt, partition_size), resume, overwrite
        )
        return _drive(parts, job, cluster, output, out_fmt, quiet, options)
    finally:
        if lock is not None:
            lock.close()


def _drive(
    parts: list[Part],
    job: Job,
    address: str,
    output: str,
    out_fmt: str,
    quiet: bool,
    options: TaskOptions | None = None,
) -> tuple[Stats, int]:
    from ._result import Stats

    as_completed = _module("distributed").as_completed

    directory = local_path(output) if is_local(output) else output
    line = _Line(sum(p.rows for p in parts), quiet)
    stats = Stats(time.monotonic, line.total)
    stats.started = line.started
    client, cluster = connect(address)
    errors: list[str] = []
    interrupted = False
    slots = 0
    try:
        slots = sum(client.nthreads().values()) or 1
        if line.live:
            client.subscribe_topic(TOPIC, line.event)
        task_job = split_job(job, slots)
        run_id = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                run_part,
                part,
                task_job,
                directory,
                out_fmt,
                options,
                key=f"drumfire-part-{part.index:06d}-{run_id}",
            )
            for part in parts
        ]
        try:
            for future in as_completed(futures):
                try:
                    got = future.result()
                except Exception as exc:  # a task that failed for good: its part is missing
                    errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                    continue
                line.add(got)
                if got["skipped"]:
                    stats.skipped += got["rows"]
                else:
                    stats.skipped += got.get("kept", 0)
                    add_figures(stats, got["stats"])
        except KeyboardInterrupt:
            # Finished parts stay; the tasks are released (a remote cluster may finish
            # those already running, which --resume then skips).
            interrupted = True
            stats.stopped = True
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        Store(directory).clean()
    stats.finished = time.monotonic()
    if line.live:
        sys.stderr.write("\n")
    elapsed = stats.finished - line.started
    if not quiet:
        sys.stderr.write(
            f"drumfire: {line.done:,} of {line.total:,} rows in {len(parts)} partitions "
            f"({line.done - line.sent:,} already done), {line.failed:,} failed, "
            f"{elapsed:.1f} s, {line.sent / max(elapsed, 1e-9):,.0f} rows/s sent on {slots} "
            f"worker threads; output {output}\n"
        )
    if interrupted:
        sys.stderr.write("drumfire: interrupted; the finished parts are kept\n")
        return stats, 130
    for message in errors[:3]:
        sys.stderr.write(f"drumfire: error: a partition failed: {message}\n")
    if errors:
        sys.stderr.write(f"  resume with the same command and --resume ({len(errors)} missing)\n")
        return stats, 1
    return stats, 0


# -- the Python API ---------------------------------------------------------------------


def _meta(job: Job, extra: tuple[str, ...] = ()) -> Any:
    import pandas as pd

    columns: dict[str, Any] = {
        "id": pd.Series([], dtype=object),
        "status": pd.Series([], dtype="Int64"),
        "elapsed_ms": pd.Series([], dtype="float64"),
        "attempts": pd.Series([], dtype="int64"),
        "error": pd.Series([], dtype=object),
    }
    for name in [n for n, _ in job.extract] + list(job.keep) + list(extra):
        columns[name] = pd.Series([], dtype=object)
    return pd.DataFrame(columns)


def _frame(results: list[Result], job: Job, index: Any = None) -> Any:
    import pandas as pd

    from ._result import BlankFields

    blank = BlankFields(tuple(name for name, _ in job.extract))
    meta = _meta(job)
    if not results:
        return meta
    frame = pd.DataFrame.from_records([blank(r).as_dict() for r in results])
    for column in meta.columns:
        if column not in frame:
            frame[column] = None
    frame["status"] = frame["status"].astype("Int64")
    frame["attempts"] = frame["attempts"].astype("int64")
    for column in meta.columns[5:]:
        frame[column] = frame[column].astype(object)
    if index is not None:
        frame.index = index
    return frame[list(meta.columns)]


def _path_partition(part: Part, job: Job) -> Any:
    results, _ = _results(part, dataclasses.replace(job, ordered=True))
    return _frame(results, job)


def _frame_partition(frame: Any, job: Job) -> Any:
    from ._sources import rows_source

    source = rows_source(frame)  # ids: the id column, else row numbers in the partition
    source.total = len(frame)
    results, _ = _run_source(source, dataclasses.replace(job, ordered=True), -1)
    return _frame(results, job, frame.index if len(results) == len(frame) else None)


def run_dask(
    data: Any,
    url: str = "{url}",
    *,
    workers: int | None = None,
    partition_size: int = PARTITION_SIZE,
    input_format: str | None = None,
    encoding: str = "utf-8",
    **settings: Any,
) -> Any:
    """A lazy ``dask.dataframe.DataFrame`` of results, one partition per input partition.

    Args:
        data: a ``dask.dataframe.DataFrame`` (each partition is sent as one
            batch; the result keeps its index), or the path of an input file,
            cut as ``drumfire run --cluster`` cuts it.
        url, settings: as :func:`drumfire.run` (``rate``, ``concurrency`` and
            ``max_concurrency`` are for the whole run: divided by ``workers``).
        workers: how many partitions run at once, to share the limits; default:
            the worker threads of the current Dask client, else 1.
        partition_size: input bytes per partition, for a path.

    Nothing is sent until the frame is computed; rows are in input order
    within each partition. Columns: ``id status elapsed_ms attempts error``,
    the extracted names, then the kept columns (a ``parse`` function is not
    supported here).
    """
    _require_dask("run_dask")
    dd = _module("dask.dataframe")

    from ._api import make_job

    job = make_job(url, **settings)
    job.extractor()
    if workers is None:
        try:
            workers = sum(_module("distributed").default_client().nthreads().values())
        except ValueError:
            workers = 1
    task_job = split_job(job, workers or 1)
    if isinstance(data, str | os.PathLike):
        from ._sources import format_for

        path = os.fspath(data)
        fmt = input_format or format_for(path, None)
        parts = plan_parts(path, fmt, encoding, partition_size)
        return dd.from_map(_path_partition, parts, job=task_job, meta=_meta(job))
    return data.map_partitions(_frame_partition, task_job, meta=_meta(job))

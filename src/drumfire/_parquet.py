"""Parquet output and input, with pyarrow (the ``[parquet]`` extra), imported only when used.

Output is a *dataset directory* (``results.parquet/part-00000.parquet``,
``part-00001.parquet``...), not one file: a Parquet file can be read only once
its footer is written, so one file kept open for the whole run would be lost
entirely to a ``kill -9``. Each flush of the run (about once a second, and
when a part reaches :data:`MAX_PART_ROWS` rows) writes the rows completed
since the last one as one part — one row group — under a temporary name
(``.part-00000.parquet.tmp``, which Parquet readers skip) and renames it into
place, so every part present is complete and a crash loses at most about the
last second of rows, as for CSV and JSON Lines. ``pandas.read_parquet``,
``pyarrow.dataset``, polars, DuckDB and Spark read such a directory as one
table. ``--resume`` reads the ``id`` column of the parts and adds new ones.

Column types: see :mod:`drumfire._columns`. Values that do not fit the type
their column took from the first rows are written as null and kept whole in
``_unfit.jsonl`` in the same directory (one JSON object per value: id, column,
value), which Parquet readers skip too. A resume first drops the entries whose
rows are gone (sent again): see :meth:`ParquetSink._prune_unfit`.

Input is read record batch by record batch (:meth:`pyarrow.parquet.ParquetFile.iter_batches`),
so memory holds one batch, never the file; values keep their types (an int64
column gives ``int`` values, rendered ``3`` in a template), and those JSON has
no type for (decimal, timestamp, duration, binary...) are read as text: see
:mod:`drumfire._arrow_rows`.

Why this module is long (about 690 lines): the sink's parts, their resume (ids
read back, values set aside pruned), the merge of small parts and the input side
share the pyarrow plumbing and the dataset layout; split, each part would reach
into the others' helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from ._arrow_rows import BatchRows, nan_columns
from ._columns import (
    UNFIT,
    WAIT_FOR_VALUES,
    column_kind,
    convert,
    lacks_values,
    learn_names,
    unfit_line,
    unfit_warning,
)
from ._durable import sync_directory, sync_file
from ._errors import InputError, UsageError, columns_differ
from ._instream import STDIN_PARQUET
from ._lifeline import die_with_parent
from ._result import BASE_COLUMNS, Result
from ._rows import Item, check_unique_columns

__all__ = [
    "MAX_PART_ROWS",
    "ParquetSink",
    "drop_parquet_rows",
    "open_parquet_source",
    "parquet_records",
    "results_table",
]

#: A part is written as soon as it holds this many rows, flush or not (bounded memory).
MAX_PART_ROWS = 100_000
#: Rows per record batch when reading an input.
BATCH_ROWS = 8192
_PART = re.compile(r"part-(\d+)\.parquet")
_UNFIT = "_unfit.jsonl"
_UNFIT_TEMP = "._unfit.jsonl.tmp"  # _UNFIT rewritten (a resume), renamed over it
_REPLACES = b"drumfire.replaces"  # in a compacted part's schema metadata: the parts it holds
#: At the end of a run, its parts under this many rows are merged (see ParquetSink._compact).
COMPACT_BELOW = 50_000
#: The most rows in a merged part.
COMPACT_ROWS = 1_000_000
#: A merged part's row groups: each small part as it is, or several put together up to
#: this many rows. Bigger row groups cost more memory (the writer holds one whole) than
#: they save readers; measured in docs/benchmarks.md.
ROW_GROUP_ROWS = 8192
EXTRA = "pip install 'drumfire[parquet]'"


def require_pyarrow(what: str) -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or a one-line :class:`UsageError` naming the extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(f"{what}: Parquet needs pyarrow: {EXTRA}") from None
    return pa, pq


def _parts(directory: str, pq: Any = None, *, finish: bool = False) -> list[tuple[int, str]]:
    """The complete parts of a dataset directory, in order: ``(number, path)``.

    With ``pq`` (pyarrow.parquet), parts that a compacted part replaces (see
    :meth:`ParquetSink._compact`) are left out, and with ``finish`` deleted:
    a crash between the compacted part's rename and those deletions then
    neither loses nor repeats a row.
    """
    found = []
    for name in os.listdir(directory):
        m = _PART.fullmatch(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    found.sort()
    if pq is None:
        return found
    replaced: set[str] = set()
    for _, path in found:
        metadata = pq.read_schema(path).metadata or {}
        names = metadata.get(_REPLACES, b"").decode()
        replaced.update(n for n in names.split(",") if n)
    if not replaced:
        return found
    if finish:
        for name in replaced:
            if os.path.exists(os.path.join(directory, name)):
                os.remove(os.path.join(directory, name))
    return [(n, p) for n, p in found if os.path.basename(p) not in replaced]


#: The file a run locks to be the only writer of the directory (see ``_outfile``).
LOCK_NAME = ".drumfire.lock"


def _is_ours(name: str) -> bool:
    return (
        bool(_PART.fullmatch(name))
        or name in (_UNFIT, _UNFIT_TEMP, LOCK_NAME)
        or name.endswith(".parquet.tmp")
    )


class ParquetSink:
    """Writes results as typed Parquet parts in a dataset directory (see the module docstring)."""

    def __init__(
        self,
        directory: str | None,
        fields: Sequence[str],
        keep: Sequence[str],
        *,
        append: bool = False,
        learn: bool = False,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self._pa, self._pq = require_pyarrow(f"output {directory!r}" if directory else "Arrow")
        self._dir = directory
        self._fields = list(fields)
        self._declared = dict(kinds or {})  # fields of fixed types (saved_bytes...)
        self._keep = list(keep)
        self._learn = learn and not self._fields
        self._rows: list[Result] = []
        self._schema: Any = None
        self._kinds: list[str] = []
        self._waited = 0  # flushes put off for a column without a value (see _columns)
        self._next = 0
        self._written: list[tuple[str, int]] = []  # this run's parts: (name, rows)
        self._failed = False  # a part could not be written (see _write_part)
        self.unfit = 0
        self._unfit_first = ""
        if directory is not None:  # None: only to build tables (results_table)
            self._open(append)

    def _open(self, append: bool) -> None:
        path = self._dir
        assert path is not None
        if os.path.isfile(path):
            if append:
                raise UsageError(
                    f"--resume: {path!r} is a single file; drumfire writes Parquet output "
                    "as a directory of part files"
                )
            os.remove(path)  # as a CSV output is overwritten
        if not os.path.isdir(path):
            os.mkdir(path)
            return
        entries = os.listdir(path)
        for name in entries:
            if name.endswith(".parquet.tmp") or name == _UNFIT_TEMP:  # a crash left it unfinished
                os.remove(os.path.join(path, name))
        if not append:
            foreign = sorted(n for n in entries if not _is_ours(n))
            if foreign:
                raise UsageError(
                    f"output {path!r} is a directory holding other files ({foreign[0]}...); "
                    "choose a new name"
                )
            for name in entries:
                if name == LOCK_NAME:  # held by this run
                    continue
                if _is_ours(name) and os.path.exists(os.path.join(path, name)):
                    os.remove(os.path.join(path, name))
            return
        try:
            parts = _parts(path, self._pq, finish=True)
            if parts and all(self._pq.read_metadata(p).num_rows == 0 for _, p in parts):
                # Only the empty part a run of no rows leaves (see close), or parts whose
                # rows all went to be sent again: their types were decided from no value,
                # so they go, and this run's rows decide (a text column for numbers else).
                for _, part in parts:
                    os.remove(part)
                parts = []
        except (OSError, self._pa.ArrowException) as exc:
            raise UsageError(f"cannot read output {path!r}: {exc}") from None
        if not parts:
            self._prune_unfit(parts)
            return
        self._next = parts[-1][0] + 1
        try:
            schema = self._pq.read_schema(parts[0][1])
        except (OSError, self._pa.ArrowException) as exc:
            raise UsageError(f"cannot read output {parts[0][1]!r}: {exc}") from None
        names = list(schema.names)
        if self._learn and names[: len(BASE_COLUMNS)] == list(BASE_COLUMNS):
            self._fields = names[len(BASE_COLUMNS) : len(names) - len(self._keep)]
            self._learn = False
        columns = [*BASE_COLUMNS, *self._fields, *self._keep]
        if names != columns:
            raise columns_differ(repr(path), names, columns)
        self._schema = schema
        self._kinds = [_kind_of(self._pa, schema.field(n).type) for n in columns[5:]]
        self._prune_unfit(parts)

    def _prune_unfit(self, parts: list[tuple[int, str]]) -> None:
        """Drop the ``_unfit.jsonl`` entries no row of ``parts`` holds (see :mod:`._columns`).

        Opening to add (``--resume``, ``--retry-failed``): the rows to send
        again are gone from the parts already, so their entries go too before
        their new rows bring new ones; and entries a crash left without their
        part (written first), or a torn last line, go as well. A line that is
        not such an entry is left as it is. The file is rewritten under a
        temporary name renamed over it; the parts are read only when it has an
        entry.
        """
        assert self._dir is not None
        path = os.path.join(self._dir, _UNFIT)
        try:
            with open(path, "rb") as f:
                lines = f.readlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UsageError(f"cannot read output {path!r}: {exc.strerror or exc}") from None
        keys = [_unfit_key(line) for line in lines]
        wanted: dict[str, set[str]] = {}
        for key in keys:
            if key:
                wanted.setdefault(key[0], set()).add(key[1])
        held = self._held(parts, wanted) if wanted else set()
        kept = [line for line, key in zip(lines, keys, strict=True) if key is None or key in held]
        if len(kept) == len(lines):
            return
        temp = os.path.join(self._dir, _UNFIT_TEMP)
        try:
            if kept:
                with open(temp, "wb") as f:
                    f.writelines(kept)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temp, path)
            else:
                os.remove(path)
        except OSError as exc:
            raise UsageError(f"cannot write output {path!r}: {exc.strerror or exc}") from None

    def _held(
        self, parts: list[tuple[int, str]], wanted: dict[str, set[str]]
    ) -> set[tuple[str, str]]:
        """The ``(id, column)`` of ``wanted`` for which a row of ``parts`` has a null cell."""
        import pyarrow.compute as pc

        pa, pq = self._pa, self._pq
        named = set().union(*wanted.values())
        ids = pa.array(list(wanted), pa.string())
        held: set[tuple[str, str]] = set()
        try:
            for _, part in parts:
                f = pq.ParquetFile(part)
                columns = sorted(named.intersection(f.schema_arrow.names) - set(BASE_COLUMNS))
                if not columns:
                    continue
                table = f.read(columns=["id", *columns], use_threads=False)
                table = table.filter(pc.is_in(table.column("id"), value_set=ids))
                for row in table.to_pylist():
                    id_ = row["id"]
                    for name in wanted[id_]:
                        if name in row and row[name] is None:
                            held.add((id_, name))
        except (OSError, pa.ArrowException) as exc:
            raise UsageError(f"cannot read output {self._dir!r}: {exc}") from None
        return held

    def _decide(self, rows: list[Result]) -> None:
        pa = self._pa
        if self._learn:
            self._fields = learn_names(rows)
            self._learn = False
        self._kinds = [
            self._declared.get(n) or column_kind((r.fields or {}).get(n) for r in rows)
            for n in self._fields
        ]
        self._kinds += [column_kind((r.kept or {}).get(n) for r in rows) for n in self._keep]
        types = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64()}
        self._schema = pa.schema(
            [
                ("id", pa.string()),
                ("status", pa.int32()),
                ("elapsed_ms", pa.float64()),
                ("attempts", pa.int32()),
                ("error", pa.string()),
                *(
                    (name, types.get(kind, pa.string()))
                    for name, kind in zip([*self._fields, *self._keep], self._kinds, strict=True)
                ),
            ]
        )

    def write(self, result: Result) -> None:
        self._rows.append(result)
        if len(self._rows) >= MAX_PART_ROWS:
            self._write_part()

    def flush(self, final: bool = False) -> None:
        if not self._rows:
            return
        if self._learn and not final and not any(r.fields for r in self._rows):
            return  # --parse: no field names yet (only failures so far); see learn_names
        if self._schema is None and not final and self._waited < WAIT_FOR_VALUES:
            fields = learn_names(self._rows) if self._learn else self._fields
            if lacks_values(self._rows, fields, self._keep, self._declared):
                self._waited += 1
                return  # a column typed from no value would be a string column
        self._write_part()

    def _write_part(self) -> None:
        rows, self._rows = self._rows, []
        if self._schema is None:
            self._decide(rows)
        table, unfit = self._table(rows)
        name = f"part-{self._next:05d}.parquet"
        self._next += 1
        assert self._dir is not None
        final = os.path.join(self._dir, name)
        temp = os.path.join(self._dir, f".{name}.tmp")
        try:
            # Before the part: a crash between them loses no entry; the entries
            # left without their rows go when the output is resumed (_prune_unfit).
            if unfit:
                with open(os.path.join(self._dir, _UNFIT), "ab") as f:
                    f.writelines(unfit)
                    f.flush()
                    os.fsync(f.fileno())  # on disk before the part too
            self._pq.write_table(table, temp)
            sync_file(temp)  # on disk before its name says complete (see _durable)
            os.replace(temp, final)
        except OSError as exc:
            # A full disk: the room the half part took is given back, and the
            # parts written stay as they are (a merge would need room too).
            self._failed = True
            with contextlib.suppress(OSError):
                os.remove(temp)
            raise UsageError(f"cannot write output {final!r}: {exc.strerror or exc}") from None
        self._written.append((name, len(rows)))

    def _table(self, rows: list[Result]) -> tuple[Any, list[bytes]]:
        """The rows as an Arrow table of this output's schema, and the unfit values' lines."""
        pa = self._pa
        columns = [
            arrow_array(pa, [r.id for r in rows], pa.string()),
            arrow_array(pa, [r.status for r in rows], pa.int32()),
            arrow_array(pa, [r.elapsed_ms for r in rows], pa.float64()),
            arrow_array(pa, [r.attempts for r in rows], pa.int32()),
            arrow_array(pa, [r.error for r in rows], pa.string()),
        ]
        unfit: list[bytes] = []
        names = [*self._fields, *self._keep]
        nfields = len(self._fields)
        schema = self._schema
        for i, (name, kind) in enumerate(zip(names, self._kinds, strict=True)):
            values = []
            for r in rows:
                holder = r.fields if i < nfields else r.kept
                value = holder.get(name) if holder else None
                cell = convert(value, kind)
                if cell is UNFIT:
                    cell = None
                    self.unfit += 1
                    self._unfit_first = self._unfit_first or name
                    unfit.append(unfit_line(r.id, name, value))
                values.append(cell)
            columns.append(arrow_array(pa, values, schema.field(5 + i).type))
        return pa.Table.from_arrays(columns, schema=schema), unfit

    def _compact(self) -> None:
        """Merge this run's small parts, so a slow run leaves a few files, not one a second.

        Consecutive parts under :data:`COMPACT_BELOW` rows are rewritten into
        a new part of at most :data:`COMPACT_ROWS` rows (see :func:`merge_parts`),
        in a child process: its memory then never adds to the run's peak, and
        a merge that fails (or is interrupted) leaves the parts as they were,
        with a warning.
        """
        groups: list[list[tuple[str, int]]] = [[]]
        for name, rows in self._written:
            group = groups[-1]
            if rows >= COMPACT_BELOW or sum(r for _, r in group) + rows > COMPACT_ROWS:
                groups.append([])
                group = groups[-1]
            if rows < COMPACT_BELOW:
                group.append((name, rows))
        self._written = []
        merges = [[name for name, _ in group] for group in groups if len(group) > 1]
        if not merges or self._dir is None:
            return
        job = orjson.dumps(
            {"directory": self._dir, "merges": merges, "first": self._next, "parent": os.getpid()}
        )
        self._next += len(merges)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", "from drumfire._parquet import merge_main; merge_main()"],
                input=job,
                capture_output=True,
                check=False,
            )
            failed = proc.returncode != 0
            detail = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        except OSError as exc:
            failed, detail = True, str(exc)
        if failed:
            print(
                f"drumfire: warning: could not merge the small parts of {self._dir!r} "
                f"(they are complete as they are): {detail}",
                file=sys.stderr,
            )

    def close(self) -> None:
        if not self._failed:
            self.flush(final=True)
        if self._schema is not None and not self._failed:
            self._compact()
        if self._dir is not None and not self._failed and not _parts(self._dir):
            self._write_empty()
        if self.unfit and self._dir is not None:
            where = os.path.join(self._dir, _UNFIT)
            print(unfit_warning(self.unfit, self._unfit_first, where), file=sys.stderr)


    def _write_empty(self) -> None:
        """A run of no rows (an empty input, every row skipped) leaves one part of no rows
        with the output's columns, as pandas and Dask's ``to_parquet`` do: readers refuse
        a directory without a part. Its types are those of no value (text but for the
        declared columns); a resume that adds rows replaces it (see :meth:`_open`)."""
        if self._schema is None:
            self._decide([])
        self._write_part()

def merge_parts(directory: str, names: list[str], number: int) -> None:
    """Rewrite the parts ``names`` of ``directory`` as one part, ``part-{number}``.

    Read one at a time without a thread pool (its malloc arenas cost more
    memory than the time they save), written in row groups of at least
    :data:`ROW_GROUP_ROWS` rows. The new part's metadata names the parts it
    replaces; it is renamed into place, then those are deleted. A crash
    before the rename leaves the small parts; after it, :func:`_parts`
    ignores (and on the next open deletes) the replaced ones.
    """
    pa, pq = require_pyarrow("merge")
    name = f"part-{number:05d}.parquet"
    final = os.path.join(directory, name)
    temp = os.path.join(directory, f".{name}.tmp")
    schema = pq.read_schema(os.path.join(directory, names[0]))
    schema = schema.with_metadata({_REPLACES: ",".join(names).encode()})
    pending: list[Any] = []
    count = 0
    try:
        with pq.ParquetWriter(temp, schema) as writer:
            for part in names:
                path = os.path.join(directory, part)
                table = pq.ParquetFile(path).read(use_threads=False).cast(schema)
                pending.append(table)
                count += table.num_rows
                if count >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=count)
                    pending, count = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=count)
        sync_file(temp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temp)  # a full disk gets its room back; the parts are as they were
        raise
    os.replace(temp, final)
    sync_directory(directory)  # the merged part's name on disk before the parts go
    for part in names:
        os.remove(os.path.join(directory, part))


def merge_main() -> None:
    """The merging child process: a JSON job on stdin (see :meth:`ParquetSink._compact`).

    It ends with the run (:func:`~drumfire._lifeline.die_with_parent`): the run's
    lock goes with the run, and a merge that outlived a ``kill -9`` of it went on
    beside the ``--resume`` that followed, which numbers its new parts from the
    parts it finds: the merged part, renamed into place, took the name of the
    resume's first part and replaced it, and those rows were lost. Killed, the
    merge leaves the small parts or the merged one (see :func:`merge_parts`).
    """
    job = orjson.loads(sys.stdin.buffer.read())
    die_with_parent(job["parent"])
    for i, names in enumerate(job["merges"]):
        merge_parts(job["directory"], names, job["first"] + i)


def arrow_array(pa: Any, values: list[Any], dtype: Any) -> Any:
    """An Arrow array of ``values`` (None: null) of type ``dtype``: string, bool, int or float.

    Built from a string builder or NumPy buffers rather than ``pa.array``,
    which imports pandas on first use when it is installed: about 50 MB of
    resident memory for a run that has no use for it.
    """
    try:
        import numpy as np

        builder_type = pa.lib.StringBuilder
    except (ImportError, AttributeError):  # pragma: no cover - other pyarrow builds
        return pa.array(values, dtype)
    if pa.types.is_string(dtype):
        builder = builder_type()
        builder.append_values(values)
        return builder.finish()
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
    nulls = n - int(np.count_nonzero(valid))
    if nulls:
        values = [0 if v is None else v for v in values]
    if pa.types.is_boolean(dtype):
        data = pa.py_buffer(np.packbits(np.array(values, dtype=np.bool_), bitorder="little"))
    else:
        data = pa.py_buffer(np.array(values, dtype=dtype.to_pandas_dtype()))
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(dtype, n, [validity, data], null_count=nulls)


def results_table(
    results: list[Result],
    fields: Sequence[str],
    keep: Sequence[str],
    *,
    learn: bool = False,
    kinds: Mapping[str, str] | None = None,
) -> Any:
    """A pyarrow Table of ``results``, built column by column (no dict per row).

    The types follow the Parquet output's rules, decided here from every row,
    so no value is unfit: a column whose rows disagree is string (JSON text);
    ``kinds`` fixes some fields' (``Job.field_kinds``).
    """
    builder = ParquetSink(None, fields, keep, learn=learn, kinds=kinds)
    builder._decide(results)
    table, _ = builder._table(results)
    return table


def _unfit_key(line: bytes) -> tuple[str, str] | tuple[()] | None:
    """``(id, column)`` of an ``_unfit.jsonl`` line; ``()`` for a torn last line (a
    crash), dropped; None for a line that is no such entry, kept as it is."""
    if not line.endswith(b"\n"):
        return ()
    try:
        entry = json.loads(line)  # not orjson: a value may be NaN (see _columns.json_text)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    id_, column = entry.get("id"), entry.get("column")
    if type(id_) is not str or type(column) is not str:
        return None
    return id_, column


def _kind_of(pa: Any, dtype: Any) -> str:
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int64"
    if pa.types.is_floating(dtype):
        return "float64"
    return "string"


#: What an output row says about itself for a resume: (id, status, error).
Record = tuple[str, "int | None", str]


def parquet_records(path: str) -> Iterator[Record]:
    """``(id, status, error)`` of every row of a Parquet output directory, part by part."""
    pa, pq = require_pyarrow(f"output {path!r}")  # read without --resume too (holds_rows)
    try:
        for _, part in _parts(path, pq):
            f = pq.ParquetFile(part)
            for batch in f.iter_batches(
                batch_size=65536, columns=["id", "status", "error"], use_threads=False
            ):
                ids, statuses, errors = (c.to_pylist() for c in batch.columns)
                for id_, status, error in zip(ids, statuses, errors, strict=True):
                    yield str(id_), status, error or ""
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"cannot read output {path!r}: {exc}") from None


def drop_parquet_rows(path: str, resend: Any) -> int:
    """Remove the rows ``resend(record)`` picks (to be sent again); return how many.

    Each part holding such rows is rewritten without them under a temporary
    name and renamed over itself, so every part stays complete whatever stops
    the rewrite (a row dropped is one the resume sends again).
    """
    pa, pq = require_pyarrow(f"output {path!r}")
    dropped = 0
    try:
        for _, part in _parts(path, pq, finish=True):
            table = pq.ParquetFile(part).read(use_threads=False)
            records = zip(
                table.column("id").to_pylist(),
                table.column("status").to_pylist(),
                table.column("error").to_pylist(),
                strict=True,
            )
            keep = [not resend((str(i), s, e or "")) for i, s, e in records]
            gone = keep.count(False)
            if not gone:
                continue
            temp = os.path.join(path, "." + os.path.basename(part) + ".tmp")
            pq.write_table(table.filter(pa.array(keep, pa.bool_())), temp)
            sync_file(temp)
            os.replace(temp, part)
            dropped += gone
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(f"--resume: cannot rewrite {path!r}: {exc}") from None
    return dropped


def open_parquet_source(
    path: str,
) -> tuple[Iterator[Item], frozenset[str], int, Callable[[], None], frozenset[str]]:
    """A Parquet file or dataset directory, streamed: items, columns, rows, closer, NaN columns,
    of which :func:`drumfire._sources.open_source` makes the ``Source`` (no import cycle)."""
    if path == "-":
        raise InputError(STDIN_PARQUET)
    pa, pq = require_pyarrow(f"input {path!r}")
    if os.path.isdir(path):
        try:
            ours = {p for _, p in _parts(path)}
            live = {p for _, p in _parts(path, pq)}  # without parts a compacted one replaces
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read input {path!r} as Parquet: {exc}") from None
        files = sorted(
            os.path.join(path, n)
            for n in os.listdir(path)
            if n.endswith(".parquet") and not n.startswith((".", "_"))
        )
        files = [f for f in files if f in live or f not in ours]
        if not files:
            raise InputError(f"input {path!r} is a directory with no .parquet files")
    elif os.path.exists(path):
        files = [path]
    else:
        raise InputError(f"input file {path!r} does not exist")
    try:
        opened = [pq.ParquetFile(f) for f in files]
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read input {path!r} as Parquet: {exc}") from None
    for f, name in zip(opened, files, strict=True):
        # A row is a mapping: of two columns of one name one would be sent, the other never.
        check_unique_columns(list(f.schema_arrow.names), f"input {name!r}")
    columns = frozenset(opened[0].schema_arrow.names)
    total = sum(f.metadata.num_rows for f in opened)
    floats = nan_columns(pa, [f.schema_arrow for f in opened])  # where a NaN may be

    def close() -> None:
        for f in opened:
            f.close()

    return _items(opened, path, pa), columns, total, close, floats


def _items(files: list[Any], path: str, pa: Any) -> Iterator[Item]:
    reader = BatchRows(pa)  # values JSON has no type for read as text (see _arrow_rows)
    try:
        for f in files:
            # use_threads=False: the read-ahead process is a fork, and batches are small.
            for batch in f.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
                yield from reader.rows(batch)
    except (OSError, OverflowError, pa.ArrowException) as exc:
        raise InputError(f"cannot read input {path!r} after row {reader.count}: {exc}") from None

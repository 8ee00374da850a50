"""Cutting a cluster run's input into partitions (on the client): byte ranges of
CSV/TSV/JSON Lines/URL files at row starts outside quoted fields, groups of
Parquet row groups. Part of ``drumfire run --cluster`` (:mod:`drumfire._cluster`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ._cluster_store import filesystem, is_local, local_path, open_binary, path_exists
from ._errors import InputError, UsageError
from ._sources import QUOTE_MAX_BYTES, QUOTE_MAX_LINES, codec_name, record_closes

if TYPE_CHECKING:
    pass

#: Input bytes per partition by default: about 200,000 short CSV rows, so a
#: re-run after a worker death costs seconds, and the scheduler (about 1 ms of
#: work per task) is never the limit.
PARTITION_SIZE = 16 * 1024 * 1024
SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "text": ".txt"}
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
    delimiter: str | None = None  # --delimiter, as given to open_source (None: its default)


def part_name(index: int, out_fmt: str) -> str:
    return f"part-{index:06d}.{'parquet' if out_fmt == 'parquet' else 'jsonl'}"


# -- planning (on the client) ---------------------------------------------------------


def plan_parts(
    path: str,
    fmt: str,
    encoding: str = "utf-8",
    size: int = PARTITION_SIZE,
    delimiter: str | None = None,
) -> list[Part]:
    """Cut ``path`` into partitions of about ``size`` input bytes.

    ``delimiter``: a CSV's (``--delimiter``), which decides where a quoted field
    opens; each part reads its rows with it. None: a comma, a tab for TSV.
    """
    if path == "-":
        raise UsageError("--cluster: the workers read the input themselves; give a file, not stdin")
    if not path_exists(path):
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
    if delimiter is not None and not csv_like:  # as open_source says it
        raise InputError(f"a delimiter separates CSV fields; {path!r} is read as {fmt}")
    sep = delimiter or ("\t" if fmt == "tsv" else ",")
    codec = codec_name(encoding)
    parts: list[Part] = []
    header = b""

    def part(start: int, end: int, first_row: int, first_line: int, rows: int) -> Part:
        return Part(
            len(parts),
            path,
            fmt,
            start,
            end,
            first_row,
            first_line,
            rows,
            header,
            encoding,
            delimiter,
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
        long_cell = False  # past QUOTE_MAX_LINES, but seen to close: read on, as the reader
        while True:
            line = f.readline()
            over = inside and line and held_lines >= QUOTE_MAX_LINES
            if over and not long_cell and held_bytes < QUOTE_MAX_BYTES:
                here = f.tell()
                long_cell = _closes_ahead(f, line, QUOTE_MAX_BYTES - held_bytes, sep, codec)
                f.seek(here)
            if inside and (
                not line
                or (held_lines >= QUOTE_MAX_LINES and not long_cell)
                or held_bytes >= QUOTE_MAX_BYTES
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
                # Decoded, so that a delimiter of several bytes (UTF-8 '§') is one character.
                decoded = line.decode(codec, "replace")
                was, inside = inside, _ends_inside(decoded, inside, sep)
                if inside and not was:
                    reopen, held_lines, held_bytes = (offset, line_no), 0, 0
                    long_cell = False
        if rows or not parts:
            parts.append(part(start, offset, first_row, first_line, rows))
    return parts


def _closes_ahead(f: IO[bytes], line: bytes, budget: int, delimiter: str, encoding: str) -> bool:
    """Whether a quoted field open before ``line`` closes cleanly (see
    :func:`~drumfire._sources.record_closes`) within ``budget`` more bytes: then
    the reader reads it whole, however many lines it takes. Reads ``f`` on."""
    while line:
        budget -= len(line)
        if budget < 0:
            return False
        verdict, _ = record_closes(line.decode(encoding, "replace"), delimiter, True)
        if verdict is not None:
            return verdict
        line = f.readline()
    return False


def _ends_inside(line: str, inside: bool, delimiter: str) -> bool:
    """Whether ``line`` ends inside a quoted field, by the csv module's rules: a quote
    opens a field only at its start, ``""`` in a quoted field is a quote, and text
    after a closing quote goes on unquoted (the reader is not strict)."""
    quoted, after_quote, at_start = inside, False, not inside
    for c in line:
        if quoted:
            if c == '"':
                quoted, after_quote = False, True
            continue
        if after_quote and c == '"':  # "" inside a quoted field
            quoted, after_quote = True, False
            continue
        after_quote = False
        if c == delimiter or c in "\n\r":
            at_start = True
        elif at_start and c == '"':
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
    fs, inner = filesystem(path)
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

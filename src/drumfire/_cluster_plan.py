"""Cutting a cluster run's input into partitions (on the client): byte ranges of
CSV/TSV/JSON Lines/URL files at row starts outside quoted fields, groups of
Parquet row groups. Part of ``drumfire run --cluster`` (:mod:`drumfire._cluster`).

The plan counts rows as the reader (:mod:`drumfire._sources`) reads them, so that
every part's first row number is the one the whole file gives it: the header is
the first line past leading blank ones, and a line is blank when its text, decoded
in the input's encoding, is white space only (``str.strip``, which also drops a
no-break space or U+3000), unquoted and without a delimiter; in a URL list a
``#`` comment too. The lines are read as bytes, and only one that could be blank
once decoded (no printable ASCII byte first after its ASCII white space) is decoded.
"""

from __future__ import annotations

import codecs
import csv
import functools
import os
from dataclasses import dataclass
from typing import IO

from ._cluster_store import filesystem, is_local, local_path, open_binary, path_exists
from ._errors import InputError, UsageError
from ._instream import check_text_start
from ._sources import QUOTE_MAX_BYTES, QUOTE_MAX_LINES, codec_name, record_closes

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

    # A line whose first byte after its ASCII white space is printable ASCII is a row
    # (or, in a URL list, a comment when that byte is '#'): no decoding can make it
    # blank. With an encoding that does not read ASCII as ASCII, every line is decoded.
    plain = _PLAIN if _reads_ascii(codec) else frozenset[int]()
    comments = fmt == "text"
    # In UTF-8 and the common one-byte encodings a CSV line that ends with printable
    # ASCII, or holds the delimiter, is a row too: one that starts with 'É' need not
    # be decoded. (A byte, as an int: quicker to look for; "\n" is in no stripped line.)
    apart = csv_like and codec in _ASCII_APART and sep.isascii()
    ends = plain if apart else frozenset[int]()
    mark = ord(sep if apart else "\n")
    is_row = functools.partial(_is_row, fmt=fmt, codec=codec, sep=sep)
    with open_binary(path) as f:
        # A UTF-16/32 file cut at the byte "\n" would split characters: refused in one
        # line here, as the reader refuses it (--encoding utf-16 is refused by codec_name).
        # So are a gzip file not named .gz and a Parquet file read as text, before any task.
        start = f.read(4)
        check_text_start(start, path, lambda: _ends_parquet(f))
        f.seek(0)
        offset = 0
        line_no = 0
        if csv_like:
            header, offset, line_no = _header(f, codec, sep)
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
                if text and text[0] in plain:
                    if not (comments and text[0] == _HASH) or b"\r" in text:
                        rows += 1  # (a comment holding a lone CR: an error row, see _is_row)
                elif (text and (text[-1] in ends or mark in text)) or is_row(line, line_no == 1):
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


#: Printable ASCII bytes (not white space in any text), and the one that starts a comment.
_PLAIN = frozenset(range(0x21, 0x7F))
_HASH = ord("#")

#: Encodings in which a byte below 0x80 is always that ASCII character, never part of
#: another one (in Shift_JIS U+3000, white space, is 81 40, '@' its second byte).
_ASCII_APART = frozenset(
    ["utf-8", "utf-8-sig", "ascii", "iso8859-1", "iso8859-15", "koi8-r", "koi8-u", "mac-roman"]
    + [f"cp125{i}" for i in range(9)]
)


@functools.cache
def _reads_ascii(codec: str) -> bool:
    """Whether ``codec`` decodes printable ASCII and ASCII white space as ASCII (not
    UTF-7, where ``+AKA-`` is a no-break space, nor EBCDIC)."""
    sample = bytes(range(0x20, 0x7F)) + b"\t\n\r\x0b\x0c"
    try:
        return sample.decode(codec) == sample.decode("ascii")
    except (UnicodeError, LookupError):  # LookupError: a codec of bytes to bytes
        return False


def _ends_parquet(f: IO[bytes]) -> bool:
    """Whether the file ``f`` ends as a Parquet file does."""
    f.seek(-4, os.SEEK_END)
    return f.read(4) == b"PAR1"


def _without_bom(line: bytes) -> bytes:
    """The first line as the reader sees it: a UTF-8 byte order mark dropped, whatever
    the format and the encoding."""
    if line.startswith(codecs.BOM_UTF8):
        return line[len(codecs.BOM_UTF8) :]
    return line


def _is_row(line: bytes, first: bool, *, fmt: str, codec: str, sep: str) -> bool:
    """Whether the reader makes a row of ``line`` (outside a quoted field): the exact
    test, on the decoded text. Not blank (white space only after ``str.strip``, which
    drops U+00A0, U+3000, U+0085, \\x1c-\\x1f as well as ASCII white space), not a URL
    list's ``#`` comment; a CSV line holding its delimiter is a record of empty
    fields, one holding a quote a value (``""``); an undecodable line, or one the
    csv module refuses (a carriage return inside it), an error row.
    JSON Lines: blank is ASCII white space only, as that reader tests the bytes."""
    if first:
        line = _without_bom(line)
    if fmt == "jsonl":
        return bool(line.strip())
    try:
        text = line.decode(codec)
    except UnicodeDecodeError:
        return True
    bare = text.strip()
    if fmt == "text":  # a comment holding a lone CR is an error row (lines ended by CR)
        return bool(bare) and (not bare.startswith("#") or "\r" in bare)
    if bare or sep in text:
        return True
    try:  # white space: a carriage return inside it is malformed CSV, an error row
        next(csv.reader([text], delimiter=sep, strict=True), None)
    except csv.Error:
        return True
    return False


def _header(f: IO[bytes], codec: str, sep: str) -> tuple[bytes, int, int]:
    """A CSV's header record, the offset after it and its last line's number, ``f`` read
    up to there: the first record past the leading lines the reader skips (the csv module
    reads them as no field or one of white space only: ``""``, spaces). A quoted name may hold line
    breaks: the record then runs over several lines, as the reader reads it (one that
    never closes is the reader's to refuse). ``b""`` for a file without one."""
    offset = line_no = 0
    while line := f.readline():
        offset, line_no = offset + len(line), line_no + 1
        text = _without_bom(line) if line_no == 1 else line
        if _ends_inside(text.decode(codec, "replace"), False, sep):
            while more := f.readline():  # a quoted name over several lines
                line, offset, line_no = line + more, offset + len(more), line_no + 1
                if not _ends_inside(more.decode(codec, "replace"), True, sep):
                    break
            return line, offset, line_no
        try:
            fields = next(csv.reader([text.decode(codec)], delimiter=sep, strict=True), [])
        except (UnicodeDecodeError, csv.Error):  # the header, which the reader refuses
            return line, offset, line_no
        if fields and (len(fields) > 1 or fields[0].strip()):  # not blank, as _sources reads it
            return line, offset, line_no
    return b"", offset, line_no


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
    from ._rows import check_unique_columns

    _, pq = require_pyarrow("--cluster")
    parts: list[Part] = []
    first_row = 0
    for name in _parquet_files(path):
        with open_binary(name) as f:
            opened = pq.ParquetFile(f)
            meta = opened.metadata
            # Refused before any task, as the single-machine reader refuses it.
            check_unique_columns(list(opened.schema_arrow.names), f"input {name!r}")
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

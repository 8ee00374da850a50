"""Input sources: CSV/TSV with a header, JSON Lines, a text file of URLs, stdin.

Every source is streamed (one row at a time from a buffered file) and yields
``(row_number, row)`` where row_number counts data rows from 1 and row is a
mapping, or an :class:`~drumfire._engine.InputProblem` for a row that cannot be
read — so a bad row becomes an error row, not a crash or a silent gap.
"""

from __future__ import annotations

import codecs
import csv
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson

from ._engine import InputProblem, Item
from ._errors import InputError

__all__ = ["FORMATS", "TEXT_FORMATS", "Source", "count_rows", "open_source", "rows_source"]

FORMATS = ("csv", "tsv", "jsonl", "text", "parquet")
TEXT_FORMATS = frozenset({"csv", "tsv", "text"})  # every row value is a str
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "text",
    ".urls": "text",
    ".list": "text",
    ".parquet": "parquet",
    ".pq": "parquet",
}

csv.field_size_limit(64 * 1024 * 1024)


@dataclass
class Source:
    """An opened input: its columns (when known before reading) and its items."""

    items: Iterator[Item]
    columns: frozenset[str] | None
    fmt: str
    total: int | None = None
    close: Any = None


def format_for(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown input format {fmt!r} (choose from {', '.join(FORMATS)})")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".gz",):
        suffix = Path(path[:-3]).suffix.lower()
    found = _EXTENSIONS.get(suffix)
    if found is None:
        raise InputError(
            f"cannot tell the format of {path!r} from its extension; "
            f"say --format {{{','.join(FORMATS)}}}"
        )
    return found


def _sniff(first: str) -> str:
    text = first.lstrip("\ufeff").lstrip()
    if text.startswith("{"):
        return "jsonl"
    if text.startswith(("http://", "https://")):
        return "text"
    return "tsv" if "\t" in text and "," not in text else "csv"


_BAD = "\ufffe\ufffe"  # stands for an undecodable line inside the CSV reader


def open_source(
    path: str, fmt: str | None = None, encoding: str = "utf-8", *, count: bool = True
) -> Source:
    """Open ``path`` (or ``-`` for stdin) as a streamed source.

    The file is read as bytes and decoded line by line, so an undecodable line
    becomes one error row naming its line, and the rows around it go on.
    Raises :class:`InputError` for a missing or unreadable file or an unusable
    header: problems found before the first request. ``count``: count the
    rows of a regular file first, for the progress display's total (a read of
    the whole file; the command line skips it when nothing is displayed).
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (--encoding)") from None
    if codec.startswith(("utf-16", "utf-32")):
        raise InputError(
            f"--encoding {encoding}: only ASCII-compatible encodings are "
            "supported (UTF-8, Latin-1, cp1252...); convert the file to UTF-8"
        )
    if fmt == "parquet" or (fmt is None and path != "-" and format_for(path, fmt) == "parquet"):
        from ._parquet import open_parquet_source

        return cast(Source, open_parquet_source(path))
    total: int | None = None
    raw: IO[bytes]
    if path == "-":
        raw = sys.stdin.buffer
        if fmt is None:
            first = raw.readline()
            fmt = _sniff(first.decode(codec, "replace"))
            raw = _Prepend(first, raw)  # type: ignore[assignment]
    else:
        fmt = format_for(path, fmt)
        try:
            if path.endswith(".gz"):
                import gzip

                raw = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
            else:
                raw = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
                if count:
                    total = count_rows(path, header=fmt in ("csv", "tsv"))
        except FileNotFoundError:
            raise InputError(f"input file {path!r} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"input {path!r} is a directory") from None
        except OSError as exc:
            raise InputError(f"cannot read input {path!r}: {exc.strerror or exc}") from None
    close = raw.close
    try:
        if fmt in ("csv", "tsv"):
            lines = cast(Iterator[str], _decoded(raw, codec, _BAD + "\n"))
            return _csv_source(lines, "\t" if fmt == "tsv" else ",", fmt, total, close)
        if fmt == "jsonl":
            return Source(_jsonl_items(raw, codec), None, fmt, total, close)
        return Source(
            _text_items(_decoded(raw, codec, None)), frozenset({"url"}), fmt, total, close
        )
    except BaseException:
        raw.close()
        raise


def _decoded(raw: IO[bytes], codec: str, bad: str | None) -> Iterator[str | None]:
    """Decode line by line (dropping a UTF-8 BOM); an undecodable line becomes ``bad``."""
    first = True
    for line in raw:
        if first:
            first = False
            if codec == "utf-8" and line.startswith(codecs.BOM_UTF8):
                line = line[3:]
        try:
            yield line.decode(codec)
        except UnicodeDecodeError:
            yield bad


class _Prepend:
    """A binary stream with one line already read put back in front."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        self._first = None
        yield from self._rest

    def close(self) -> None:
        pass  # stdin stays open


def count_rows(path: str, header: bool) -> int | None:
    """Count data lines cheaply (newlines in binary), for the progress display's total.

    An estimate for CSV with quoted line breaks; None if the file is not a
    regular file.
    """
    try:
        if not os.path.isfile(path):
            return None
        n = 0
        last = b"\n"
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                n += chunk.count(b"\n") - chunk.count(b"\n\n") - chunk.count(b"\n\r\n")
                last = chunk[-1:]
        if last != b"\n":
            n += 1
        return max(0, n - 1) if header else n
    except OSError:
        return None


def _csv_source(
    lines: Iterator[str], delimiter: str, fmt: str, total: int | None, close: Any
) -> Source:
    # ``lines`` stands an undecodable line for _BAD (see open_source), never None.
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        while header is not None and (not header or header == [""]):
            header = next(reader, None)  # leading blank lines
    except csv.Error as exc:
        raise InputError(f"cannot read the header line: {exc}") from None
    if header is None:
        raise InputError("the input is empty: expected a header line naming the columns")
    if header == [_BAD]:
        raise InputError("the header line is not valid text in this encoding; say --encoding")
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise InputError(f"the header line has an empty column name: {header!r}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"the header line names columns more than once: {', '.join(dupes)}")
    return Source(_csv_items(reader, header), frozenset(header), fmt, total, close)


def _csv_items(reader: Any, header: list[str]) -> Iterator[Item]:
    width = len(header)
    n = 0
    while True:
        try:
            for fields in reader:
                # The usual row first: as many fields as the header, and (for a
                # one-column file) not blank and not an undecodable line.
                if len(fields) == width and (
                    width > 1 or (fields[0] != _BAD and fields[0].strip())
                ):
                    n += 1
                    yield n, dict(zip(header, fields, strict=True))
                    continue
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                n += 1
                if len(fields) == 1 and fields[0] == _BAD:
                    yield n, InputProblem(reader.line_num, "undecodable bytes (say --encoding)")
                else:
                    yield (
                        n,
                        InputProblem(
                            reader.line_num, f"expected {width} fields, found {len(fields)}"
                        ),
                    )
            return
        except csv.Error as exc:
            # The reader goes on with the next line after a malformed one.
            n += 1
            yield n, InputProblem(reader.line_num, f"malformed CSV: {exc}")


def _jsonl_items(raw: IO[bytes], codec: str) -> Iterator[Item]:
    n = 0
    for line_no, line in enumerate(raw, 1):
        if line_no == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[3:]
        if not line.strip():
            continue
        n += 1
        try:
            # orjson reads UTF-8 bytes directly; other encodings are decoded first.
            value = orjson.loads(line if codec == "utf-8" else line.decode(codec))
        except orjson.JSONDecodeError as exc:
            yield n, InputProblem(line_no, f"not JSON: {exc}")
            continue
        except UnicodeDecodeError:
            yield n, InputProblem(line_no, "undecodable bytes (say --encoding)")
            continue
        if type(value) is not dict:
            yield n, InputProblem(line_no, f"not a JSON object but {type(value).__name__}")
            continue
        yield n, value


def _text_items(lines: Iterator[str | None]) -> Iterator[Item]:
    n = 0
    for line_no, line in enumerate(lines, 1):
        if line is None:
            n += 1
            yield n, InputProblem(line_no, "undecodable bytes (say --encoding)")
            continue
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        n += 1
        yield n, {"url": url}


def rows_source(rows: Any) -> Source:
    """A source over Python objects: dicts, strings (URLs), or a pandas DataFrame."""
    total: int | None = None
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        columns = frozenset(str(c) for c in rows.columns)
        total = len(rows)
        return Source(_frame_items(rows), columns, "frame", total)
    try:
        total = len(rows)
    except TypeError:
        total = None
    it = iter(rows)
    try:
        first = next(it)
    except StopIteration:
        return Source(iter(()), frozenset(), "rows", 0)
    if isinstance(first, str):
        keys = frozenset({"url"})
    elif isinstance(first, Mapping):
        keys = frozenset(str(k) for k in first)
    else:
        raise InputError(f"rows must be mappings or URL strings, not {type(first).__name__}")
    return Source(_object_items(first, it), keys, "rows", total)


def _object_items(first: Any, rest: Iterator[Any]) -> Iterator[Item]:
    for n, row in enumerate(_chain(first, rest), 1):
        if isinstance(row, str):
            yield n, {"url": row}
        elif isinstance(row, Mapping):
            yield n, row
        else:
            yield n, InputProblem(n, f"row is a {type(row).__name__}, not a mapping")


def _chain(first: Any, rest: Iterable[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _frame_items(frame: Any) -> Iterator[Item]:
    columns = [str(c) for c in frame.columns]
    for n, values in enumerate(frame.itertuples(index=False, name=None), 1):
        yield n, dict(zip(columns, values, strict=True))

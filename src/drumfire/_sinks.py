"""Output sinks: CSV, JSON Lines (file or stdout).

Rows are written as they complete into a 1 MiB buffer and flushed by the run
at least once a second (and at the end), so a crash loses at most about the
last second of completed rows.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, cast

import orjson

from ._errors import UsageError, columns_differ
from ._result import BASE_COLUMNS, Result
from ._values import cell_text, dumps

__all__ = [
    "OUTPUT_FORMATS",
    "CsvSink",
    "JsonlSink",
    "ListSink",
    "Sink",
    "open_sink",
    "output_format_for",
]

OUTPUT_FORMATS = ("csv", "jsonl", "parquet", "sqlite")
TABLE_FORMATS = ("parquet", "sqlite")  # typed outputs, in their own modules


class Sink(Protocol):
    def write(self, result: Result) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def output_format_for(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in OUTPUT_FORMATS:
            raise UsageError(
                f"unknown output format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})"
            )
        return fmt
    if path.startswith("sqlite:"):
        return "sqlite"
    if path == "-":
        return "csv"
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv", ".txt", ""):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".sqlite", ".sqlite3", ".db"):
        return "sqlite"
    raise UsageError(f"cannot tell the output format of {path!r}; say --output-format")


_PLAIN = frozenset({str, int, float, type(None)})  # written as they are


def csv_writers(stream: IO[str]) -> tuple[Any, Any]:
    """The writers of drumfire's CSV: LF line ends and minimal quoting; and the one for a
    row with a lone carriage return in a cell (see :func:`has_cr`), which quotes every
    cell but the numbers.

    Python's ``csv.writer`` quotes a cell for the characters of its line terminator only,
    so with ``\\n`` a CR was written bare; but a CR alone ends a line for CSV readers
    (Python's ``csv``, pandas, and ``--resume``, which then read one row as two).
    """
    return (
        csv.writer(stream, lineterminator="\n"),
        csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC),
    )


def has_cr(row: Sequence[Any]) -> bool:
    """Whether a cell of ``row`` holds a carriage return (written by the second of
    :func:`csv_writers`)."""
    return any(type(v) is str and "\r" in v for v in row)


def _cell(value: Any) -> Any:
    """A CSV cell: objects as JSON text, a date or a decimal as its text (``_values``)."""
    if value is None or type(value) in (str, int, float):
        return value
    return cell_text(value)


#: The CSV column that holds, as a JSON object, the fields a parse function
#: returned that the header has no column for (see CsvSink).
PARSE_EXTRA = "parse_extra"
#: Rows held back, waiting for an answer to learn the parse columns from.
_LEARN_WITHIN = 1000
#: The mark :meth:`CsvSink._row` ends a row with when a cell holds a lone CR.
_CR = object()
#: Text a CSV cell cannot hold as it is: the writer quotes it (a lone CR: csv_writers).
_QUOTED = re.compile('[,"\n\r]').search


def _fields_line(names: tuple[str, ...]) -> Callable[[Result], str | None]:
    """The CSV line of a row of a sink of extracted fields only (no parse function, no
    kept columns), as generated code; None for a row the csv writer must write.

    The line is what ``csv.writer`` (minimal quoting, LF) writes for the row, text as
    it is, None as nothing, a float as its repr, an int as its text; so it is given only
    for rows whose text cells need no quoting (no comma, double quote, LF or CR: see
    :func:`csv_writers`) and whose cells are of those types. The others go the writer's
    way (:meth:`CsvSink._row`).
    """
    head = "{id_},{status},{elapsed:.3f},{attempts},{error}"  # the base columns
    lines = [
        "def line(result):",
        "    id_, status, elapsed, attempts, error, fields, kept = result",
        "    if type(id_) is not str or quoted(id_) or (error and quoted(error)):",
        "        return None",
        "    if type(status) is not int or type(attempts) is not int:",
        "        return None",
        "    if fields is None:",
        f"        return f'{head}{',' * len(names)}\\n'",
    ]
    for i, name in enumerate(names):
        lines += [
            f"    v = fields.get({name!r})",
            "    t = type(v)",
            "    if t is float:",
            f"        c{i} = repr(v)",
            "    elif t is int:",
            f"        c{i} = str(v)",
            "    elif v is None:",
            f"        c{i} = ''",
            "    elif t is str and not quoted(v):",
            f"        c{i} = v",
            "    else:",
            "        return None",
        ]
    cells = "".join(f",{{c{i}}}" for i in range(len(names)))
    lines.append(f"    return f'{head}{cells}\\n'")
    namespace: dict[str, Any] = {"quoted": _QUOTED}
    exec("\n".join(lines), namespace)  # names as literals from repr, built above
    return cast(Callable[[Result], "str | None"], namespace["line"])


class CsvSink:
    """CSV with the base columns, then extracted fields, then kept columns.

    With a parse function (``parse``), its fields follow the extracted ones:
    the columns ``parse_columns`` declares, or else those the first answered
    row's parse function returned (rows before it are held back, up to 1000),
    then ``parse_extra``: a JSON object of the fields a row returned that the
    header has no column for ("" when none). A CSV cannot grow columns, and
    nothing a parse function returns is dropped.
    """

    def __init__(
        self,
        stream: IO[str],
        fields: Sequence[str],
        keep: Sequence[str],
        header: bool = True,
        learn: bool = False,
        parse_columns: Sequence[str] | None = None,
        parse: bool = False,
    ) -> None:
        self._stream = stream
        self._writer, self._quoted = csv_writers(stream)
        self._keep = tuple(keep)
        self._extract = tuple(fields)
        self._parse = parse or learn or parse_columns is not None
        self._set_fields((*self._extract, *(parse_columns or ())))
        # learn: take the parse fields' names from the first answered row.
        learn = learn and parse_columns is None
        self._pending_header = header and learn
        self._learning = learn
        self._early: list[Result] = []
        if header and not learn:
            self._header()

    def _set_fields(self, names: Sequence[str]) -> None:
        self._fields = tuple(dict.fromkeys(names))  # in order, once each
        self._nones = (None,) * len(self._fields)
        self._known = frozenset(self._fields)
        extra = [PARSE_EXTRA] if self._parse else []
        self.columns = [*BASE_COLUMNS, *self._fields, *extra, *self._keep]
        # The usual output (extracted fields only) has its lines made by generated code.
        plain = not self._parse and not self._keep
        self._line_of = _fields_line(self._fields) if plain else None

    def learn_fields(self, result: Result) -> None:
        """With a parse function the field names are known only from the first answer."""
        if self._learning and result.fields:
            self._set_fields((*self._extract, *result.fields))
        self._learning = False

    def write(self, result: Result) -> None:
        if self._learning:
            unanswered = result.status is None or result.error.startswith("parse:")
            if unanswered and self._pending_header and len(self._early) < _LEARN_WITHIN:
                self._early.append(result)
                return
            if unanswered:
                self._learning = False  # long enough: the columns stay as they are
            else:
                self.learn_fields(result)
            if self._pending_header:
                self._pending_header = False
                self._header()
                early, self._early = self._early, []
                for r in early:
                    self._write(r)
        self._write(result)

    def write_all(self, results: list[Result]) -> None:
        """:meth:`write` for the rows answered together (the engine's usual hand-over):
        one ``write`` of their lines, or one ``writerows``, but for a row with a lone CR
        (see :func:`csv_writers`)."""
        if self._learning:
            for result in results:
                self.write(result)
            return
        line_of = self._line_of
        if line_of is not None:
            lines: list[str] = []
            for result in results:
                line = line_of(result)
                if line is None:  # the csv writer's, after the lines before it
                    if lines:
                        self._stream.write("".join(lines))
                        lines = []
                    self._write(result)
                else:
                    lines.append(line)
            if lines:
                self._stream.write("".join(lines))
            return
        rows: list[list[Any]] = []
        for result in results:
            row = self._row(result)
            if row[-1] is _CR:
                if rows:
                    self._writer.writerows(rows)
                    rows = []
                self._quoted.writerow(row[:-1])
            else:
                rows.append(row)
        if rows:
            self._writer.writerows(rows)

    def _write(self, result: Result) -> None:
        row = self._row(result)
        if row[-1] is _CR:
            self._quoted.writerow(row[:-1])
        else:
            self._writer.writerow(row)

    def _row(self, result: Result) -> list[Any]:
        """The row's cells; a row that holds a lone CR anywhere ends with :data:`_CR`."""
        id_, status, elapsed, attempts, error, fields, kept = result
        row: list[Any] = [id_, status, f"{elapsed:.3f}", attempts, error]
        cr = "\r" in id_ or "\r" in error  # (a lone CR must be quoted: see csv_writers)
        if self._fields:
            if fields is None:
                row.extend(self._nones)
            else:
                for f in self._fields:
                    value = fields.get(f)
                    if type(value) in _PLAIN:
                        if type(value) is str and "\r" in value:
                            cr = True
                        row.append(value)
                    else:  # as text (bytes, a str subclass, a date...): a CR in it too
                        cell = _cell(value)
                        if type(cell) is str and "\r" in cell:
                            cr = True
                        row.append(cell)
        if self._parse:
            known = self._known
            extra = {k: v for k, v in fields.items() if k not in known} if fields else None
            row.append(dumps(extra).decode() if extra else "")
        if self._keep:
            kept = kept or {}
            for k in self._keep:
                cell = _cell(kept.get(k))
                if type(cell) is str and "\r" in cell:
                    cr = True
                row.append(cell)
        if cr:
            row.append(_CR)
        return row

    def _header(self) -> None:
        """The header row (a column name with a CR, from --keep or -e, is quoted too)."""
        (self._quoted if has_cr(self.columns) else self._writer).writerow(self.columns)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        if self._pending_header:  # no row was answered: the header without parse fields
            self._pending_header = self._learning = False
            self._header()
            early, self._early = self._early, []
            for r in early:
                self._write(r)
        _close(self._stream)


class JsonlSink:
    """One JSON object per line, keys in the same order as the CSV columns."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, result: Result) -> None:
        d = result.as_dict()
        d["elapsed_ms"] = round(result.elapsed_ms, 3)
        self._stream.write(dumps(d, orjson.OPT_APPEND_NEWLINE))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        _close(self._stream)


def _close(stream: IO[Any]) -> None:
    """Flush and close ``stream`` (only flush standard output).

    ``close`` closes the file even when its flush fails (a full disk): the
    rows left in the buffer are dropped then, never written later by the
    garbage collector after a ``--resume`` has appended them again. Standard
    output is looked up only here: ``sys.stdout`` is None when it is closed
    (``>&-``), and the rows of a file output must be written all the same.
    """
    out = sys.stdout
    if out is not None and (stream is out or stream is getattr(out, "buffer", None)):
        stream.flush()
    else:
        stream.close()


def _parse_columns_of(path: str, fields: Sequence[str], keep: Sequence[str]) -> list[str] | None:
    """The parse columns a CSV written with learned ones has (for --resume), or None."""
    with open(path, encoding="utf-8", newline="") as f:
        found = next(csv.reader(f), [])
    head = [*BASE_COLUMNS, *fields]
    tail = [PARSE_EXTRA, *keep]
    if found[: len(head)] != head or found[len(found) - len(tail) :] != tail:
        return None
    return found[len(head) : len(found) - len(tail)]


def _check_csv_header(path: str, columns: list[str]) -> None:
    with open(path, encoding="utf-8", newline="") as f:
        found = next(csv.reader(f), [])
    if found != columns:
        raise columns_differ(repr(path), found, columns)


def open_sink(
    path: str,
    fmt: str | None,
    fields: Sequence[str],
    keep: Sequence[str],
    *,
    append: bool = False,
    learn: bool = False,
    parse_columns: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> Sink:
    """Open the output; raise :class:`UsageError` if it cannot be written.

    ``append`` (for ``--resume``) adds to an existing file, writing the CSV
    header only when the file is new or empty, and checking it otherwise.
    ``learn`` (a parse function is used): the CSV has its fields, as
    ``parse_columns`` declares them or else learned (see :class:`CsvSink`);
    resuming a CSV with learned ones takes them from its header.
    ``kinds``: the fixed types of some fields in a typed output (``Job.field_kinds``).
    """
    fmt = output_format_for(path, fmt)
    if fmt in TABLE_FORMATS:
        return _open_table_sink(path, fmt, fields, keep, append=append, learn=learn, kinds=kinds)
    if path == "-" and sys.stdout is None:  # started with standard output closed (>&-)
        raise UsageError("cannot write output standard output: it is closed")
    existing = append and path != "-" and os.path.exists(path) and os.path.getsize(path) > 0
    mode = "a" if append else "w"
    try:
        if fmt == "csv":
            parse = learn or parse_columns is not None
            if existing and learn and parse_columns is None:
                parse_columns = _parse_columns_of(path, fields, keep)
            columns = [*BASE_COLUMNS, *fields, *(parse_columns or ()), *keep]
            if parse:
                columns[len(columns) - len(keep) : len(columns) - len(keep)] = [PARSE_EXTRA]
            if existing:
                _check_csv_header(path, columns)
            if path == "-":
                text: IO[str] = sys.stdout
            else:
                text = open(path, mode, encoding="utf-8", newline="", buffering=1 << 20)  # noqa: SIM115
            return CsvSink(
                text,
                fields,
                keep,
                header=not existing,
                learn=learn,
                parse_columns=parse_columns,
                parse=parse,
            )
        if path == "-":
            binary: IO[bytes] = sys.stdout.buffer
        else:
            binary = open(path, mode + "b", buffering=1 << 20)  # noqa: SIM115
        return JsonlSink(binary)
    except OSError as exc:
        raise UsageError(f"cannot write output {path!r}: {exc.strerror or exc}") from None


def _open_table_sink(
    path: str,
    fmt: str,
    fields: Sequence[str],
    keep: Sequence[str],
    *,
    append: bool,
    learn: bool,
    kinds: Mapping[str, str] | None,
) -> Sink:
    if path == "-":
        raise UsageError(f"{fmt} output needs a path (-o results.{fmt}), not standard output")
    try:
        if fmt == "parquet":
            from ._parquet import ParquetSink

            return ParquetSink(path, fields, keep, append=append, learn=learn, kinds=kinds)
        from ._sqlite import SqliteSink

        return SqliteSink(path, fields, keep, append=append, learn=learn, kinds=kinds)
    except OSError as exc:
        raise UsageError(f"cannot write output {path!r}: {exc.strerror or exc}") from None


class ListSink:
    """Collects results in memory (tests, small API runs)."""

    def __init__(self) -> None:
        self.results: list[Result] = []

    def write(self, result: Result) -> None:
        self.results.append(result)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

"""SQLite output: ``-o results.sqlite`` (or ``.db``, ``.sqlite3``), or ``sqlite:///path?table=name``.

Each flush of the run (about once a second, and at the end) inserts the rows
completed since the last one in one transaction, so a crash loses at most
about the last second of rows and never leaves half a flush. The database is
in WAL mode, so another process can query the table while the run writes it.

The URL form follows SQLAlchemy: ``sqlite:///results.db`` is a path relative
to the current directory, ``sqlite:////tmp/results.db`` an absolute one;
``?table=`` names the table (default ``results``). Without ``--resume`` that
table is replaced (other tables in the file are left alone); with it, rows are
added and the ids already there are skipped.

Column types follow :mod:`drumfire._columns` (declared ``INTEGER``, ``REAL``
or ``TEXT``). A ``TEXT`` column takes any later value, as its text (a value
JSON has no type for: :mod:`drumfire._values`); ``bytes`` are stored as a
``BLOB`` in any column; a number in an ``INTEGER`` or ``REAL`` column is
stored as a number.

Except what a number column cannot keep exactly. SQLite's column affinity
makes text that looks like a number a number (``'0012'`` becomes 12, a
``Decimal('1.10')``'s text 1.1, long digits a rounded REAL); it stores a NaN as
NULL, a missing value; a ``REAL`` column makes a boolean 1.0. So a string, or a
value written as its text, in an ``INTEGER`` or ``REAL`` column, an integer
beyond 64 bits in an ``INTEGER`` column, a NaN in either, and a boolean in a
``REAL`` column are, as in the Parquet output, a null cell and the value kept
whole in the table ``<table>_unfit`` (``id``, ``column``, ``value`` as JSON
text; a NaN as ``NaN``), with a warning at the end. In an ``INTEGER`` column a
boolean is 1 or 0, as SQLite keeps booleans, and an infinity is a ``REAL``. A
column whose first values hold an integer beyond 64 bits is ``TEXT`` (its exact
digits); in a ``REAL`` column it is a float, as in Parquet. That table is
replaced and resumed with its table; a resume first deletes the entries whose
rows are gone (sent again): see :meth:`SqliteSink._prune_unfit`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._columns import (
    BOOL,
    FLOAT,
    INT,
    UNFIT,
    WAIT_FOR_VALUES,
    column_kind,
    convert,
    json_text,
    lacks_values,
    learn_names,
    unfit_warning,
)
from ._errors import UsageError, columns_differ
from ._result import BASE_COLUMNS, Result
from ._values import cell_text

__all__ = [
    "SqliteSink",
    "drop_sqlite_rows",
    "sqlite_records",
    "sqlite_target",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DECLARED = {BOOL: "INTEGER", INT: "INTEGER", FLOAT: "REAL"}
_UNFIT = "_unfit"  # the table of values no cell could hold: "<table>_unfit"
_INT64 = 1 << 63  # SQLite's INTEGER: -2**63 to 2**63 - 1


def sqlite_target(output: str) -> tuple[str, str]:
    """``(database path, table)`` for ``-o`` (a file path or a ``sqlite:///`` URL)."""
    if not output.startswith("sqlite:"):
        return output, "results"
    parts = urlsplit(output)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise UsageError(
            f"output {output!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path[1:])
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"table"})
    if unknown:
        raise UsageError(f"output {output!r}: unknown parameter {unknown[0]!r} (only table=)")
    table = query.get("table", ["results"])[-1]
    if not _NAME.fullmatch(table):
        raise UsageError(f"output {output!r}: table name {table!r} must be letters, digits and _")
    return path, table


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> Any:
    """A value for an INTEGER column, or UNFIT.

    Text is UNFIT, whatever it is: the column's affinity would make text that
    looks like a number a number ('0012' 12, '1.10' 1.1, long digits a rounded
    REAL). A value JSON has no type for would be its text (a Decimal's "1.10").
    A NaN is UNFIT: SQLite stores it as NULL, a missing value. A boolean is 1
    or 0, as SQLite keeps booleans (it has no type for them: a column of
    booleans is declared INTEGER, so a resume cannot tell it from integers).
    """
    t = type(value)
    if t is int:
        return value if -_INT64 <= value < _INT64 else UNFIT
    if value is None or t is bytes:
        return value
    if t is float:
        return value if value == value else UNFIT  # an infinity is a REAL: kept
    if t is bool:
        return int(value)
    return UNFIT


def _real_cell(value: Any) -> Any:
    """A value for a REAL column, or UNFIT: as :func:`_cell`, except that an integer
    is a float, UNFIT where a float would round it (beyond 2**53: REAL stores a
    float), and that a boolean is UNFIT, as in Parquet (REAL would make it 1.0, a
    number like any other, not SQLite's boolean 1)."""
    t = type(value)
    if t is float:
        return value if value == value else UNFIT
    if t is int:
        return convert(value, FLOAT)
    if value is None or t is bytes:
        return value
    return UNFIT


def _text_cell(value: Any) -> Any:
    """A value for a TEXT column: JSON text for objects, as in Parquet (``_values``)."""
    if value is None or type(value) in (str, bytes):
        return value
    return cell_text(value)


#: The cell function of each declared type (any other: _text_cell).
_CELLS = {"INTEGER": _cell, "REAL": _real_cell}


def _connect(path: str) -> sqlite3.Connection:
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        if conn is not None:  # a full disk fails the first PRAGMA: the file is not kept open
            conn.close()
        raise UsageError(f"cannot write output {path!r}: {exc}") from None
    return conn


def _table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({_quote(table)})")]


class SqliteSink:
    """Inserts results into a table, one transaction per flush."""

    def __init__(
        self,
        output: str,
        fields: Sequence[str],
        keep: Sequence[str],
        *,
        append: bool = False,
        learn: bool = False,
        kinds: Mapping[str, str] | None = None,
    ) -> None:
        self._path, self._table = sqlite_target(output)
        self._fields = list(fields)
        self._declared = dict(kinds or {})  # fields of fixed types (saved_bytes...)
        self._keep = list(keep)
        self._learn = learn and not self._fields
        self._rows: list[Result] = []
        self._insert: str | None = None
        self._waited = 0  # flushes put off for a column without a value (see _columns)
        self._cells: list[Any] = []  # a _CELLS function for each extracted and kept column
        self.unfit = 0
        self._unfit_first = ""
        self._conn = _connect(self._path)
        try:
            existing = _table_columns(self._conn, self._table)
            if not append:
                self._conn.execute(f"DROP TABLE IF EXISTS {_quote(self._table + _UNFIT)}")
            if existing and not append:
                self._conn.execute(f"DROP TABLE {_quote(self._table)}")
            elif existing:
                if self._learn and existing[: len(BASE_COLUMNS)] == list(BASE_COLUMNS):
                    self._fields = existing[len(BASE_COLUMNS) : len(existing) - len(self._keep)]
                    self._learn = False
                columns = [*BASE_COLUMNS, *self._fields, *self._keep]
                if existing != columns:
                    where = f"table {self._table!r} in {self._path!r}"
                    raise columns_differ(where, existing, columns)
                self._insert = self._insert_sql(columns)
                info = self._conn.execute(f"PRAGMA table_info({_quote(self._table)})")
                declared = [row[2].upper() for row in info][len(BASE_COLUMNS) :]
                self._cells = [_CELLS.get(t, _text_cell) for t in declared]
            if append:
                self._prune_unfit(existing)
        except sqlite3.Error as exc:
            self._conn.close()
            raise UsageError(f"cannot write output {self._path!r}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    def _prune_unfit(self, columns: list[str]) -> None:
        """Delete the ``<table>_unfit`` entries no row of the table holds (see :mod:`._columns`).

        Opening to add (``--resume``, ``--retry-failed``): the rows to send
        again are deleted already, so their entries go too before their new
        rows bring new ones. One statement a column named by an entry, in one
        transaction; nothing when the table of entries is empty or absent.
        """
        conn, table = self._conn, _quote(self._table)
        unfit = _quote(self._table + _UNFIT)
        if not _table_columns(conn, self._table + _UNFIT):
            return
        if not columns:  # no table of results: nothing holds them
            conn.execute(f"DROP TABLE {unfit}")
            return
        named = [row[0] for row in conn.execute(f'SELECT DISTINCT "column" FROM {unfit}')]
        if not named:
            return
        ours = set(columns[len(BASE_COLUMNS) :])
        conn.execute("BEGIN")
        for name in named:
            if name in ours:
                conn.execute(
                    f'DELETE FROM {unfit} WHERE "column" = ? AND id NOT IN '
                    f"(SELECT id FROM {table} WHERE {_quote(name)} IS NULL AND id IS NOT NULL)",
                    (name,),
                )
            elif name is not None:  # not a column of the table: no cell of it is null
                conn.execute(f'DELETE FROM {unfit} WHERE "column" = ?', (name,))
        conn.execute("COMMIT")

    def _insert_sql(self, columns: list[str]) -> str:
        return (
            f"INSERT INTO {_quote(self._table)} ({', '.join(map(_quote, columns))}) "
            f"VALUES ({', '.join('?' * len(columns))})"
        )

    def _create(self, rows: list[Result]) -> None:
        if self._learn:
            self._fields = learn_names(rows)
            self._learn = False
        declared = [
            ("id", "TEXT"),
            ("status", "INTEGER"),
            ("elapsed_ms", "REAL"),
            ("attempts", "INTEGER"),
            ("error", "TEXT"),
        ]
        for name in self._fields:
            kind = self._declared.get(name) or column_kind((r.fields or {}).get(name) for r in rows)
            declared.append((name, _DECLARED.get(kind, "TEXT")))
        for name in self._keep:
            kind = column_kind((r.kept or {}).get(name) for r in rows)
            declared.append((name, _DECLARED.get(kind, "TEXT")))
        extra = declared[len(BASE_COLUMNS) :]
        self._cells = [_CELLS.get(t, _text_cell) for _, t in extra]
        body = ", ".join(f"{_quote(n)} {t}" for n, t in declared)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {_quote(self._table)} ({body})")
        self._insert = self._insert_sql([n for n, _ in declared])

    def write(self, result: Result) -> None:
        self._rows.append(result)
        if len(self._rows) >= 100_000:  # bounded memory between flushes
            self.flush(final=True)  # final: no more waiting for --parse field names

    def flush(self, final: bool = False) -> None:
        if not self._rows:
            return
        if self._learn and not final and not any(r.fields for r in self._rows):
            return  # --parse: no field names yet (only failures so far); see learn_names
        if self._insert is None and not final and self._waited < WAIT_FOR_VALUES:
            fields = learn_names(self._rows) if self._learn else self._fields
            if lacks_values(self._rows, fields, self._keep, self._declared):
                self._waited += 1
                return  # a column typed from no value would be a string column
        rows, self._rows = self._rows, []
        fields, keep = self._fields, self._keep
        try:
            conn = self._conn
            conn.execute("BEGIN")
            if self._insert is None:
                self._create(rows)
                fields, keep = self._fields, self._keep
            assert self._insert is not None
            unfit: list[tuple[str, str, str]] = []
            conn.executemany(self._insert, (self._row(r, fields, keep, unfit) for r in rows))
            if unfit:  # in the same transaction: the row and its value, or neither
                table = _quote(self._table + _UNFIT)
                columns = 'id TEXT, "column" TEXT, value TEXT'
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
                conn.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", unfit)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise UsageError(f"cannot write output {self._path!r}: {exc}") from None

    def _row(
        self, r: Result, fields: list[str], keep: list[str], unfit: list[tuple[str, str, str]]
    ) -> list[Any]:
        """The values to insert for ``r``; a value no cell can hold goes to ``unfit``."""
        row: list[Any] = [r.id, r.status, r.elapsed_ms, r.attempts, r.error]
        nf = len(fields)
        for i, cell in enumerate(self._cells):
            name, holder = (fields[i], r.fields) if i < nf else (keep[i - nf], r.kept)
            value = holder.get(name) if holder else None
            stored = cell(value)
            if stored is UNFIT:
                stored = None
                self.unfit += 1
                self._unfit_first = self._unfit_first or name
                unfit.append((r.id, name, json_text(value)))
            row.append(stored)
        return row

    def close(self) -> None:
        try:
            self.flush(final=True)
        finally:
            self._conn.close()
        if self.unfit:
            where = f"table {self._table + _UNFIT!r} of {self._path}"
            print(unfit_warning(self.unfit, self._unfit_first, where), file=sys.stderr)


#: What an output row says about itself for a resume: (id, status, error).
Record = tuple[str, "int | None", str]


def sqlite_records(output: str) -> Iterator[Record]:
    """``(id, status, error)`` of every row of the output table."""
    path, table = sqlite_target(output)
    if not os.path.exists(path):
        return
    conn = sqlite3.connect(path)
    try:
        if not _table_columns(conn, table):
            return
        query = f"SELECT id, status, error FROM {_quote(table)}"
        for id_, status, error in conn.execute(query):
            yield str(id_), status if type(status) is int else None, error or ""
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read output {path!r}: {exc}") from None
    finally:
        conn.close()


def drop_sqlite_rows(output: str, resend: Callable[[Record], bool]) -> int:
    """Delete the rows ``resend(record)`` picks (to be sent again), in one transaction."""
    path, table = sqlite_target(output)
    if not os.path.exists(path):
        return 0
    conn = _connect(path)
    try:
        if not _table_columns(conn, table):
            return 0
        rows = conn.execute(f"SELECT rowid, id, status, error FROM {_quote(table)}")
        gone = [
            (rowid,)
            for rowid, id_, status, error in rows
            if resend((str(id_), status if type(status) is int else None, error or ""))
        ]
        conn.execute("BEGIN")
        conn.executemany(f"DELETE FROM {_quote(table)} WHERE rowid = ?", gone)
        conn.execute("COMMIT")
        return len(gone)
    except sqlite3.Error as exc:
        raise UsageError(f"--resume: cannot rewrite {path!r}: {exc}") from None
    finally:
        conn.close()

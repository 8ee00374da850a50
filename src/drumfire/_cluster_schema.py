"""One schema for the Parquet parts of a ``--cluster`` run (see :mod:`drumfire._cluster`).

Each task types its part's columns from its own rows (the rules of
:mod:`drumfire._columns`), so a field without a value in a partition (every row
failed there: an outage, OSRM's ``NoRoute``) is a text column in that part
while the other parts hold numbers. Readers then refuse the parts as one table
or change them: ``pyarrow.dataset`` and ``pandas.read_parquet`` take the first
part's type (numbers read as text, or a failed cast), polars refuses
(``data type mismatch``).

So at the end of every run the client reads each part's footer (the column
statistics count the nulls) and rewrites the parts where a column holds no
value and is typed unlike the one type that the parts holding values agree on:
a column of nulls casts to any type, so no value changes. Where the parts with
values hold integers in some and floats in others, the integer parts become
float64, as one process's output types such a column (an integer beyond 2**53,
which a float would round, keeps its part as it is). A part is rewritten
whole and atomically, as a task writes it (:meth:`Store.replace`); a run cut
short leaves every part complete, and the next run's end does the rest. Parts
whose values disagree (numbers in one, text in another) are left as they are:
no type holds both without changing values.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ._cluster_store import Store

__all__ = ["share_schema"]

_PART = re.compile(r"part-\d+\.parquet")


def _valueless(meta: Any) -> set[str]:
    """The columns of a part (its footer ``meta``) that hold no value: every cell null."""
    names = set(meta.schema.to_arrow_schema().names)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            stats = column.statistics
            if stats is None or not stats.has_null_count or stats.null_count < group.num_rows:
                names.discard(column.path_in_schema)  # a value, or no statistics to say
    return names


def share_schema(directory: str) -> str | None:
    """Give the finished parts of ``directory`` one type per column where that changes no
    value (see the module docstring). Returns None, or why it could not (one line):
    the parts are complete either way."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = Store(directory)
    try:
        names = sorted(n for n in store.names() if _PART.fullmatch(n) and store.done(n))
        schemas: dict[str, Any] = {}
        empty: dict[str, set[str]] = {}
        for name in names:
            with store.open(name) as f:
                meta = pq.read_metadata(f)
            schemas[name] = meta.schema.to_arrow_schema()
            empty[name] = _valueless(meta)
        targets: dict[str, dict[str, Any]] = {}  # part -> column -> its new type
        columns = {field for name in names for field in schemas[name].names}
        for column in sorted(columns):
            held = {
                schemas[n].field(column).type
                for n in names
                if column in schemas[n].names and column not in empty[n]
            }
            if held == {pa.int64(), pa.float64()}:
                held = {pa.float64()}  # whole numbers in some parts only, as in one process
            if len(held) != 1:
                continue  # no value anywhere, or values of several types
            (kind,) = held
            for n in names:
                if column not in schemas[n].names:
                    continue
                now = schemas[n].field(column).type
                if now != kind and (column in empty[n] or now == pa.int64()):
                    targets.setdefault(n, {})[column] = kind
        for name, changes in targets.items():
            table = pq.read_table(io.BytesIO(store.read(name)))
            for column, kind in changes.items():
                i = table.column_names.index(column)
                try:
                    cells = table.column(i).cast(kind)  # safe: refuses to change a value
                except pa.ArrowInvalid:
                    continue  # an integer beyond 2**53, which a float64 would round
                table = table.set_column(i, pa.field(column, kind), cells)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            store.replace(name, buffer.getvalue())
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None

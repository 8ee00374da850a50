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
float64, as one process's output types such a column. Where they disagree
otherwise (numbers in one part, text or booleans in another), or an integer
beyond 2**53 would be rounded as a float, the column is string in every part,
as a column whose values disagree is when one process types it from all its
rows (``run_all``'s Arrow result): each value as that process writes it in a
string column (:func:`as_text`). A part is rewritten whole and atomically, as
a task writes it (:meth:`Store.replace`); a run cut short leaves every part
complete, and the next run's end does the rest.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ._cluster_store import Store
from ._columns import STRING, convert

__all__ = ["as_text", "share_schema"]

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


def as_text(column: Any) -> Any:
    """A part's column (an Arrow array) as text, each value as one process writes it in
    a string column (:func:`drumfire._columns.convert`): ``3``, ``100.0``, ``true``,
    ``NaN``, not Arrow's cast (``100``, ``nan``)."""
    import pyarrow as pa

    if column.type == pa.string():
        return column
    return pa.array([convert(v, STRING) for v in column.to_pylist()], pa.string())


def _column_kinds(schemas: dict[str, Any], empty: dict[str, set[str]]) -> dict[str, Any]:
    """Each column's one type, from the parts that hold values in it (none: left out)."""
    import pyarrow as pa

    kinds: dict[str, Any] = {}
    for column in sorted({field for schema in schemas.values() for field in schema.names}):
        held = {
            schema.field(column).type
            for name, schema in schemas.items()
            if column in schema.names and column not in empty[name]
        }
        if held == {pa.int64(), pa.float64()}:
            kinds[column] = pa.float64()  # whole numbers in some parts only, as in one process
        elif len(held) == 1:
            (kinds[column],) = held
        elif held:
            kinds[column] = pa.string()  # values that disagree: text, as in one process
    return kinds


def _exact_floats(store: Store, names: list[str], column: str) -> bool:
    """Whether the whole numbers of ``column`` in these parts are all exact as float64
    (none beyond 2**53, which a float would round)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name in names:
        with store.open(name) as f:
            cells = pq.read_table(f, columns=[column]).column(0)
        try:
            cells.cast(pa.float64())  # safe: refuses to change a value
        except pa.ArrowInvalid:
            return False
    return True


def share_schema(directory: str) -> str | None:
    """Give the finished parts of ``directory`` one type per column, with no value
    changed (see the module docstring). Returns None, or why it could not (one line):
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
        kinds = _column_kinds(schemas, empty)
        for column, kind in kinds.items():
            if kind == pa.float64():
                ints = [
                    n
                    for n in names
                    if column in schemas[n].names
                    and column not in empty[n]
                    and schemas[n].field(column).type == pa.int64()
                ]
                if not _exact_floats(store, ints, column):
                    kinds[column] = pa.string()
        targets: dict[str, dict[str, Any]] = {}  # part -> column -> its new type
        for n in names:
            for column, kind in kinds.items():
                if column in schemas[n].names and schemas[n].field(column).type != kind:
                    targets.setdefault(n, {})[column] = kind
        for name, changes in targets.items():
            table = pq.read_table(io.BytesIO(store.read(name)))
            for column, kind in changes.items():
                i = table.column_names.index(column)
                cells = table.column(i)
                cells = as_text(cells) if kind == pa.string() else cells.cast(kind)
                table = table.set_column(i, pa.field(column, kind), cells)
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            store.replace(name, buffer.getvalue())
    except (OSError, ValueError, pa.ArrowException) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None

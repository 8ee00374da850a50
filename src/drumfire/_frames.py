"""Arrow tables and polars frames in the Python API (pyarrow imported only when one is given).

Rows are read from Arrow record batches of 8,192 rows (a polars frame through
``to_arrow()``, zero-copy), each turned into row mappings only when the engine
takes it. ``run_all`` returns the same kind it was given, built column by
column from the results (no dict per row), with the Parquet output's types:
see :func:`drumfire._parquet.results_table`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._arrow_rows import BatchRows, nan_columns
from ._rows import Item, check_unique_columns
from ._sources import Source

if TYPE_CHECKING:
    from ._job import Job
    from ._result import Result

__all__ = ["frame_kind", "frame_source", "run_all_frame"]

BATCH_ROWS = 8192


def frame_kind(rows: Any) -> str | None:
    """``"arrow"`` for a pyarrow Table or RecordBatch, ``"polars"`` for a polars DataFrame."""
    cls = type(rows)
    module = cls.__module__ or ""
    if module.startswith("pyarrow") and cls.__name__ in ("Table", "RecordBatch"):
        return "arrow"
    if module.startswith("polars") and cls.__name__ == "DataFrame":
        return "polars"
    return None


def _table(rows: Any, kind: str) -> Any:
    from ._parquet import require_pyarrow

    pa, _ = require_pyarrow("a polars frame" if kind == "polars" else "an Arrow table")
    table = rows.to_arrow() if kind == "polars" else rows
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    return table


def frame_source(rows: Any, kind: str) -> Source:
    table = _table(rows, kind)
    import pyarrow as pa  # there since the table is one

    check_unique_columns(list(table.column_names), "the Arrow table")
    floats = nan_columns(pa, [table.schema])
    columns = frozenset(table.column_names)
    return Source(_items(table), columns, kind, table.num_rows, nan_columns=floats)


def _items(table: Any) -> Iterator[Item]:
    import pyarrow as pa  # there since the table is one

    reader = BatchRows(pa)  # as a Parquet input: decimals, timestamps... as text
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield from reader.rows(batch)


def run_all_frame(
    rows: Any,
    kind: str,
    url: str,
    as_frame: bool | None,
    kwargs: Any,
    collect: Callable[..., tuple[list[Result], Job]],
) -> Any:
    """``run_all`` for an Arrow table or a polars frame: the same kind back, in input order.

    ``collect``: runs :func:`drumfire._api.run` and returns its results and
    its job, whose fields are the columns (extracted, then ``saved_path``...
    with ``save_body``, of fixed types); passed in by ``_api`` (which imports
    this module) so that this module does not import ``_api`` back. A parse
    function's fields follow those, in the order the rows first return them.
    """
    from ._columns import learn_names
    from ._parquet import results_table

    kwargs.setdefault("ordered", True)
    results, job = collect(rows, url, **kwargs)
    if as_frame is False:
        return [r.as_dict() for r in results]
    names = job.field_names()
    if kwargs.get("parse") is not None:
        names = list(dict.fromkeys([*names, *learn_names(results)]))
    table = results_table(results, names, list(job.keep), kinds=job.field_kinds())
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(table)
    return table

"""Arrow record batches as rows (Parquet input, Arrow tables and polars frames).

``RecordBatch.to_pylist`` makes a ``Decimal`` or a ``datetime`` of a value
JSON has no type for, and raises ``OverflowError`` (losing the whole batch)
for a timestamp or date out of Python's years 1 to 9999. So a column of such
a type is converted by Arrow first, into values every driver, template and
output treats alike (a worker process gets the same text a template in the
parent would):

* decimal: its exact text (``"1.10"`` for decimal(5, 2));
* timestamp: ISO 8601 with ``T``, the column's precision (``2024-01-02T03:04:05.123456``
  for microseconds), and its UTC offset when it has a time zone (``+01:00``);
  also outside years 1 to 9999 (``10000-01-01T00:00:00.000000``);
* date and time: ISO 8601 (``2024-01-02``, ``03:04:05.123``);
* duration: ISO 8601 in seconds, exact (``PT90.5S``, ``-PT0.000000001S``);
  see :func:`drumfire._values.duration_text`;
* inside lists, structs and maps the same.

Other columns, the most common, go through ``to_pylist`` as they are, with no
cost added. pyarrow is imported only when a batch is converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._rows import Item
from ._values import duration_text

__all__ = ["BatchRows"]

_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _needs(pa: Any, t: Any) -> bool:
    """Whether a column of Arrow type ``t`` must be converted before ``to_pylist``."""
    types = pa.types
    if types.is_dictionary(t):
        return _needs(pa, t.value_type)
    if types.is_struct(t):
        return any(_needs(pa, t.field(i).type) for i in range(t.num_fields))
    if types.is_map(t):
        return _needs(pa, t.key_type) or _needs(pa, t.item_type)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return _needs(pa, t.value_type)
    if types.is_temporal(t):  # timestamp, date, time, duration; not an interval
        return not types.is_interval(t)
    return bool(types.is_decimal(t))


def _strings(pa: Any, texts: list[str | None]) -> Any:
    """A string array of ``texts`` (a builder: ``pa.array`` would import pandas)."""
    builder_type = getattr(pa.lib, "StringBuilder", None)
    if builder_type is None:  # pragma: no cover - other pyarrow builds
        return pa.array(texts, pa.string())
    builder = builder_type()
    builder.append_values(texts)
    return builder.finish()


def _nested(pa: Any, array: Any, mask: Any) -> Any:
    """A list, struct or map array with its values converted."""
    t = array.type
    types = pa.types
    masked = {} if mask is None else {"mask": mask}  # a map's mask: pyarrow 17
    if types.is_struct(t):
        children = [_convert(pa, array.field(i)) for i in range(t.num_fields)]
        fields = [pa.field(t.field(i).name, c.type) for i, c in enumerate(children)]
        return pa.StructArray.from_arrays(children, fields=fields, **masked)
    if types.is_map(t):
        keys, items = _convert(pa, array.keys), _convert(pa, array.items)
        return pa.MapArray.from_arrays(array.offsets, keys, items, **masked)
    if types.is_fixed_size_list(t):
        size = t.list_size  # not flatten(): it leaves out the values of null entries
        own = array.values.slice(array.offset * size, len(array) * size)
        return pa.FixedSizeListArray.from_arrays(_convert(pa, own), size, **masked)
    values = _convert(pa, array.values)
    return type(array).from_arrays(array.offsets, values, **masked)


def _convert(pa: Any, array: Any) -> Any:
    """``array`` converted (see the module docstring)."""
    import pyarrow.compute as pc

    t = array.type
    types = pa.types
    if not _needs(pa, t):
        return array
    if types.is_dictionary(t):
        return _convert(pa, array.dictionary_decode())
    if types.is_nested(t):
        mask = array.is_null() if array.null_count else None
        try:
            return _nested(pa, array, mask)
        except TypeError:  # no mask= in this pyarrow: its values as to_pylist gives them
            return array
    if types.is_timestamp(t):
        return pc.strftime(array, "%Y-%m-%dT%H:%M:%S" + ("%Ez" if t.tz else ""))
    if types.is_duration(t):
        digits = _DIGITS[t.unit]
        counts = array.cast(pa.int64()).to_pylist()
        return _strings(pa, [None if c is None else duration_text(c, digits) for c in counts])
    return array.cast(pa.string())  # decimal, date, time


class BatchRows:
    """Rows of record batches, numbered on from one batch to the next (see the module docstring)."""

    def __init__(self, pa: Any) -> None:
        self._pa = pa
        self._schema: Any = None
        self._needs: list[bool] = []
        self.count = 0  # rows given so far

    def rows(self, batch: Any) -> Iterator[Item]:
        """The rows of ``batch`` as items: ``(row number, row)``."""
        pa = self._pa
        if batch.schema is not self._schema and batch.schema != self._schema:
            self._schema = batch.schema
            self._needs = [_needs(pa, f.type) for f in batch.schema]
        if any(self._needs):
            columns = [
                _convert(pa, column) if need else column
                for column, need in zip(batch.columns, self._needs, strict=True)
            ]
            batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        n = self.count
        for row in batch.to_pylist():
            n += 1
            self.count = n
            yield n, row

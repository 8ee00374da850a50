"""Arrow record batches as rows (Parquet input, Arrow tables and polars frames).

``RecordBatch.to_pylist`` makes a ``Decimal``, a ``datetime`` or ``bytes`` of
a value JSON has no type for, and raises ``OverflowError`` (losing the whole
batch) for a timestamp or date out of Python's years 1 to 9999. So a column of
such a type is converted by Arrow first, into values every driver, template
and output treats alike (a worker process gets the same text a template in
the parent would):

* decimal: its exact text in plain notation (``"1.10"`` for decimal(5, 2),
  ``"0.00000010"`` for decimal(10, 8), where Arrow's own text is ``1.0E-7``);
* timestamp: ISO 8601 with ``T`` and its UTC offset when it has a time zone
  (``+01:00``), its fraction of a second as Python's ``isoformat`` (and pandas'
  ``Timestamp``) writes it: none when it is zero, six digits, nine when it has
  nanoseconds (``2024-01-02T03:04:05``, ``…05.005000+01:00``, ``…05.000000007``),
  whatever the column's unit: the same text as a DataFrame read from the same
  file gives (``pandas.read_parquet``), so that a run and its ``--resume`` agree
  on an id however the file is read; also outside years 1 to 9999
  (``10000-01-01T00:00:00``);
* date and time: ISO 8601 (``2024-01-02``, ``03:04:05.123000``: a time's fraction
  as a timestamp's);
* duration: ISO 8601 in seconds, exact (``PT90.5S``, ``-PT0.000000001S``);
  see :func:`drumfire._values.duration_text`;
* interval (``month_day_nano_interval``): ISO 8601 with months, days and exact
  seconds (``P1M2DT0.5S``), not the ``MonthDayNano(months=1, ...)`` that
  ``to_pylist`` gives; see :func:`drumfire._values.interval_text`;
* float32: the shortest decimal that reads back as the same float32 (``1.1``,
  not ``1.100000023841858``), as a float;
* binary: its text when it is UTF-8 (strings written without Parquet's UTF-8
  annotation); a value that is not makes its row an error row,
  ``input: line N: column 'x' is binary, not UTF-8 text`` (no template could
  send it as text, and drumfire cannot tell whether one uses the column);
* inside lists, structs and maps the same.

Other columns, the most common, go through ``to_pylist`` as they are, with no
cost added. pyarrow is imported only when a batch is converted.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any

from ._rows import InputProblem, Item
from ._values import duration_text, interval_text

__all__ = ["BatchRows", "nan_columns"]

_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def _inside(pa: Any, t: Any, leaf: Callable[[Any, Any], bool]) -> bool:
    """Whether ``leaf(pa, t)`` holds for ``t`` or, for a dictionary, struct, map or list
    type, for a type inside it."""
    types = pa.types
    if types.is_dictionary(t):
        return _inside(pa, t.value_type, leaf)
    if types.is_struct(t):
        return any(_inside(pa, t.field(i).type, leaf) for i in range(t.num_fields))
    if types.is_map(t):
        return _inside(pa, t.key_type, leaf) or _inside(pa, t.item_type, leaf)
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        return _inside(pa, t.value_type, leaf)
    return leaf(pa, t)


def _needs(pa: Any, t: Any) -> bool:
    """Whether a column of Arrow type ``t`` must be converted before ``to_pylist``."""
    return _inside(pa, t, _leaf_needs)


def _leaf_needs(pa: Any, t: Any) -> bool:
    types = pa.types
    if types.is_temporal(t):  # timestamp, date, time, duration, interval
        return True
    binary_view = getattr(types, "is_binary_view", None)  # pyarrow 16
    return bool(
        types.is_float32(t)
        or types.is_decimal(t)
        or types.is_binary(t)
        or types.is_large_binary(t)
        or types.is_fixed_size_binary(t)
        or (binary_view is not None and binary_view(t))
    )


def _may_hold_nan(pa: Any, t: Any) -> bool:
    """Whether a value of Arrow type ``t``, as a row holds it, may be or hold a NaN or an
    infinity: a float, or a list, struct or map with one; not an integer, string,
    boolean, decimal, temporal or binary value (those are ints, str, bool or text here).
    A type not known to hold none is taken as one that may."""
    return _inside(pa, t, _leaf_may_hold_nan)


def _leaf_may_hold_nan(pa: Any, t: Any) -> bool:
    types = pa.types
    string_view = getattr(types, "is_string_view", None)  # pyarrow 16
    return not (
        types.is_integer(t)
        or types.is_boolean(t)
        or types.is_null(t)
        or types.is_string(t)
        or types.is_large_string(t)
        or (string_view is not None and string_view(t))
        or (_leaf_needs(pa, t) and not types.is_float32(t))  # decimal, temporal, binary: text
    )


def nan_columns(pa: Any, schemas: list[Any]) -> frozenset[str]:
    """The columns of ``schemas`` whose values may hold a NaN or an infinity (the
    worker pipes mark those: :meth:`drumfire._messages.RowChunk.encode`)."""
    return frozenset(f.name for schema in schemas for f in schema if _may_hold_nan(pa, f.type))


def _strings(pa: Any, texts: list[str | None]) -> Any:
    """A string array of ``texts`` (a builder: ``pa.array`` would import pandas)."""
    builder_type = getattr(pa.lib, "StringBuilder", None)
    if builder_type is None:  # pragma: no cover - other pyarrow builds
        return pa.array(texts, pa.string())
    builder = builder_type()
    builder.append_values(texts)
    return builder.finish()


def _parents(offsets: Any, bad: list[int], n: int) -> list[int]:
    """The list entries (of ``n``) that hold the child values at positions ``bad``."""
    if not bad:
        return bad
    starts = offsets.to_pylist()
    found = {bisect.bisect_right(starts, i) - 1 for i in bad}
    return sorted(i for i in found if 0 <= i < n)


def _own(pa: Any, offsets: Any, *children: Any) -> tuple[Any, list[Any]]:
    """The offsets of a (sliced) list or map array from 0, and the part of ``children`` it uses.

    ``.values``, ``.keys`` and ``.items`` ignore a slice (``to_batches`` slices
    every chunk over ``BATCH_ROWS``), and ``from_arrays`` refuses a mask with
    offsets that are a slice (even one starting at 0); so new offsets, always,
    and each batch converts only its own values.
    """
    import pyarrow.compute as pc

    start, end = offsets[0].as_py(), offsets[-1].as_py()
    offsets = pc.subtract(offsets, pa.scalar(start, offsets.type))
    return offsets, [child.slice(start, end - start) for child in children]


def _nested(pa: Any, array: Any, mask: Any) -> tuple[Any, list[int]]:
    """A list, struct or map array with its values converted, and its entries holding bad ones."""
    t = array.type
    types = pa.types
    masked = {} if mask is None else {"mask": mask}  # a map's mask: pyarrow 17
    if types.is_struct(t):
        children, found = [], set()
        for i in range(t.num_fields):
            child, child_bad = _convert(pa, array.field(i))
            children.append(child)
            found.update(child_bad)
        fields = [pa.field(t.field(i).name, c.type) for i, c in enumerate(children)]
        return pa.StructArray.from_arrays(children, fields=fields, **masked), sorted(found)
    if types.is_map(t):
        offsets, (keys, items) = _own(pa, array.offsets, array.keys, array.items)
        keys, keys_bad = _convert(pa, keys)
        items, items_bad = _convert(pa, items)
        entries = _parents(offsets, sorted({*keys_bad, *items_bad}), len(array))
        return pa.MapArray.from_arrays(offsets, keys, items, **masked), entries
    if types.is_fixed_size_list(t):
        size = t.list_size  # not flatten(): it leaves out the values of null entries
        own = array.values.slice(array.offset * size, len(array) * size)
        values, values_bad = _convert(pa, own)
        converted = pa.FixedSizeListArray.from_arrays(values, size, **masked)
        return converted, sorted({i // size for i in values_bad})
    offsets, (own,) = _own(pa, array.offsets, array.values)
    values, values_bad = _convert(pa, own)
    entries = _parents(offsets, values_bad, len(array))
    return type(array).from_arrays(offsets, values, **masked), entries


def _decimal_text(pa: Any, array: Any) -> Any:
    """A decimal array as its exact text in plain notation, at the column's scale.

    Arrow writes a value under 1e-6 or of a negative scale in scientific notation
    (``1.0E-7`` for 0.00000010 at scale 8, ``1.23E+4``), which a server reading
    a coordinate or an amount may not take; only those few are redone in Python.
    """
    import pyarrow.compute as pc

    texts = array.cast(pa.string())
    if not pc.any(pc.match_substring(texts, "E")).as_py():
        return texts
    plain = [None if v is None else format(v, "f") for v in array.to_pylist()]
    return pa.array(plain, pa.string())


#: Per unit, the rewrites of Arrow's text of a timestamp or time (the unit's digits
#: of a second) into isoformat's: no zero fraction; milliseconds as six digits;
#: nanoseconds as six digits when the last three are zeros. ``$`` or a UTC offset
#: ends the fraction.
_ISO_FRACTION = {
    "s": (),
    "ms": ((r"\.000($|[+-])", r"\1"), (r"(\.\d{3})($|[+-])", r"\1000\2")),
    "us": ((r"\.000000($|[+-])", r"\1"),),
    "ns": ((r"\.000000000($|[+-])", r"\1"), (r"(\.\d{6})000($|[+-])", r"\1\2")),
}


def _iso_fraction(texts: Any, unit: str) -> Any:
    """Arrow's ``texts`` of timestamps or times of ``unit`` with isoformat's fraction."""
    import pyarrow.compute as pc

    for pattern, rewrite in _ISO_FRACTION[unit]:
        texts = pc.replace_substring_regex(texts, pattern, rewrite)
    return texts


def _convert(pa: Any, array: Any) -> tuple[Any, list[int]]:
    """``array`` converted (see the module docstring), and the positions of its non-UTF-8 values."""
    import pyarrow.compute as pc

    t = array.type
    types = pa.types
    if not _needs(pa, t):
        return array, []
    if types.is_dictionary(t):
        return _convert(pa, array.dictionary_decode())
    if types.is_nested(t):
        mask = array.is_null() if array.null_count else None
        try:
            return _nested(pa, array, mask)
        except TypeError:  # no mask= in this pyarrow: its values as to_pylist gives them
            return array, []
    if types.is_float32(t):
        return array.cast(pa.string()).cast(pa.float64()), []
    if types.is_timestamp(t):
        iso = pc.strftime(array, "%Y-%m-%dT%H:%M:%S" + ("%Ez" if t.tz else ""))
        return _iso_fraction(iso, t.unit), []
    if types.is_time(t):
        return _iso_fraction(array.cast(pa.string()), t.unit), []
    if types.is_duration(t):
        digits = _DIGITS[t.unit]
        counts = array.cast(pa.int64()).to_pylist()
        return _strings(pa, [None if c is None else duration_text(c, digits) for c in counts]), []
    if types.is_interval(t):  # MonthDayNano(months, days, nanoseconds) tuples
        spans = array.to_pylist()
        return _strings(pa, [None if v is None else interval_text(*v) for v in spans]), []
    if types.is_decimal(t):
        return _decimal_text(pa, array), []
    try:  # date, time; binary, when it is UTF-8
        return array.cast(pa.string()), []
    except pa.ArrowInvalid:
        if types.is_decimal(t) or types.is_temporal(t):
            raise
    texts: list[str | None] = []
    bad: list[int] = []
    for i, value in enumerate(array.to_pylist()):
        try:
            texts.append(None if value is None else value.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(None)
            bad.append(i)
    return _strings(pa, texts), bad


class BatchRows:
    """Rows of record batches, numbered on from one batch to the next (see the module docstring)."""

    def __init__(self, pa: Any) -> None:
        self._pa = pa
        self._schema: Any = None
        self._needs: list[bool] = []
        self.count = 0  # rows given so far

    def rows(self, batch: Any) -> Iterator[Item]:
        """The rows of ``batch`` as items: ``(row number, row or InputProblem)``."""
        pa = self._pa
        if batch.schema is not self._schema and batch.schema != self._schema:
            self._schema = batch.schema
            self._needs = [_needs(pa, f.type) for f in batch.schema]
        problems: dict[int, str] = {}
        if any(self._needs):
            columns = list(batch.columns)
            for i, need in enumerate(self._needs):
                if need:
                    columns[i], bad = _convert(pa, columns[i])
                    for j in bad:
                        name = batch.schema.field(i).name
                        problems.setdefault(j, f"column {name!r} is binary, not UTF-8 text")
            batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        n = self.count
        rows: list[Any] = batch.to_pylist()
        for j, why in problems.items():  # rare: binary that is not UTF-8
            rows[j] = InputProblem(n + j + 1, why)
        for row in rows:
            n += 1
            self.count = n
            yield n, row

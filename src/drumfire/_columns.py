"""Column typing shared by the typed outputs (Parquet, SQLite).

The base columns have fixed types, and so have the columns ``--save-body``
adds (:data:`SAVED`: drumfire fills them, so a first flush of 404s, whose
``saved_bytes`` are all null, does not make it a string column). Any other
extracted field or kept column gets its type from the first rows written
(those of the first flush, about the first second of the run), from the
kinds of its non-null values:

==========================  ==========
values seen                 column
==========================  ==========
only booleans               bool
only integers               int64
integers and floats         float64 (string if an integer
                            is not exact as a float64)
only strings                string
objects, arrays, a mix,     string (JSON text for anything but a string)
or no value yet
==========================  ==========

So the first flush waits, up to :data:`WAIT_FOR_VALUES` flushes (or a full buffer),
while a column has had no value at all: OSRM's first second of answers all
``NoRoute`` would otherwise make ``routes[0].duration`` a string column for the
whole run. The rows held are written at the end of the run or of that wait.

An integer beyond int64 counts as an object: a column of such is a string
column (their exact digits). In a string column, a value whose JSON is a string
(a date, a decimal: see :mod:`drumfire._values`) is that string, without quotes.

A later value is converted when that loses nothing (an integer a float64 holds
exactly into a float column, ``3.0`` into an integer column, anything into a
string column as JSON text; a NaN stays a NaN in a float column); a value that
does not fit (a string in a number column, 2.5 or a NaN in an integer column,
an integer beyond int64 there, an integer beyond 2**53 that a float64 would
round in a float column, a boolean in a number column or a number in a boolean
one) is written as null there and kept whole in a side file (see :mod:`drumfire._parquet`), or a
side table (:mod:`drumfire._sqlite`), so no row and no value is lost.

The side store describes the rows the output holds, nothing else. A row sent
again (``--retry-failed``, and the ``cancelled`` rows of any resume) is
removed before its new result is written, and its values set aside go with it:
whenever a sink opens an output to add to it, it first drops the entries that
no row holds any more, those for which no row of their id has a null in their
column (an entry always stands for such a cell). That is also what mends a
crash between writing entries and writing their rows. Entries name a row by its
id alone: when an id appears more than once in the input and only some of its
rows are sent again, an entry stays while one of the rows kept has a null in
its column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ._result import Result
from ._values import cell_text, dumps, float_text

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "SAVED",
    "STRING",
    "UNFIT",
    "WAIT_FOR_VALUES",
    "column_kind",
    "convert",
    "json_text",
    "lacks_values",
    "learn_names",
    "unfit_line",
    "unfit_warning",
]

BOOL, INT, FLOAT, STRING = "bool", "int64", "float64", "string"
UNFIT = object()  # what convert() returns for a value its column cannot hold
#: The kinds of the columns a saved body adds (see ``Job.field_kinds``).
SAVED = {"saved_path": STRING, "saved_bytes": INT, "saved_sha256": STRING}
_INT64 = 1 << 63


def _kind(value: Any) -> str:
    t = type(value)
    if t is bool:
        return BOOL
    if t is int:
        return INT if -_INT64 <= value < _INT64 else "json"
    if t is float:
        return FLOAT
    if t is str:
        return STRING
    return "json"


#: How many flushes (about a second each) the first one may be put off while a column
#: has had no value yet: a column typed from nothing is a string column for the run.
WAIT_FOR_VALUES = 10


def lacks_values(
    rows: Sequence[Result], fields: Iterable[str], keep: Iterable[str], declared: Iterable[str]
) -> bool:
    """Whether a column still to be typed (not ``declared``) has no value in ``rows``."""
    fixed = set(declared)
    for name in fields:
        if name not in fixed and all((r.fields or {}).get(name) is None for r in rows):
            return True
    return any(all((r.kept or {}).get(name) is None for r in rows) for name in keep)


def column_kind(values: Iterable[Any]) -> str:
    """The column type for these (first) values; see the module docstring."""
    seen = [v for v in values if v is not None]
    kinds = {_kind(v) for v in seen}
    if kinds == {BOOL}:
        return BOOL
    if kinds == {INT}:
        return INT
    if kinds == {INT, FLOAT} and all(type(v) is float or _exact(v) for v in seen):
        return FLOAT
    if kinds == {FLOAT}:
        return FLOAT
    return STRING


def _exact(value: int) -> bool:
    """Whether float64 holds this integer exactly (all up to 2**53, some beyond)."""
    try:
        return float(value) == value  # an exact comparison of an int and a float
    except OverflowError:  # beyond float64's range
        return False


def unfit_warning(count: int, first: str, where: str) -> str:
    """The end-of-run line about values kept aside (``where``: a side file or table)."""
    return (
        f"drumfire: warning: {count} value(s) did not fit the type of their column "
        f"(first in {first!r}); they are null there and kept whole in {where}"
    )


def json_text(value: Any) -> str:
    """``value`` as JSON text (a string in quotes), whatever it is (see :mod:`drumfire._values`).

    A NaN or an infinity is ``NaN``, ``Infinity`` or ``-Infinity``, not JSON's
    ``null``, which would lose it (:func:`drumfire._values.float_text`).
    """
    text = float_text(value)
    return dumps(value).decode() if text is None else text


def unfit_line(id_: str, column: str, value: Any) -> bytes:
    """A line of ``_unfit.jsonl``: ``{"id", "column", "value"}``, the value as :func:`json_text`."""
    entry = {"id": id_, "column": column, "value": orjson.Fragment(json_text(value))}
    return dumps(entry, orjson.OPT_APPEND_NEWLINE)


def convert(value: Any, kind: str) -> Any:
    """``value`` as a cell of a ``kind`` column, or :data:`UNFIT`."""
    if value is None:
        return None
    t = type(value)
    if kind == STRING:
        return value if t is str else cell_text(value)
    if kind == FLOAT:
        if t is float:
            return value
        if t is int and _exact(value):  # not one float64 would round
            return float(value)
    elif kind == INT:
        if t is int and -_INT64 <= value < _INT64:
            return value
        if t is float and value.is_integer() and -_INT64 <= value < _INT64:
            return int(value)
    elif kind == BOOL and t is bool:
        return value
    return UNFIT


def learn_names(results: Sequence[Result]) -> list[str]:
    """Field names from a ``--parse`` function's rows, in order of first appearance.

    The typed outputs hold their first rows back until one has fields (or
    100,000 rows wait, or the run ends), as the CSV header waits for them.
    """
    names: dict[str, None] = {}
    for r in results:
        if r.fields:
            for name in r.fields:
                names.setdefault(str(name), None)
    return list(names)

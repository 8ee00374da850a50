"""Values that JSON has no type for, as text: the one converter every output uses.

Rows and results hold what their source gave: JSON values from JSON Lines,
strings from CSV, and from the Python API anything (a ``Decimal``, a
``datetime``, a pandas ``Timestamp``, ``bytes``, numpy numbers). Every output
writes such a value the same way, through :func:`dumps` (JSON Lines, the worker
processes' pipes, ``_unfit.jsonl``) or :func:`cell_text` (a CSV cell, a
Parquet or SQLite text cell), never raising:

* ``Decimal``: its exact text (``str``: ``"1.10"`` stays ``"1.10"``);
* ``datetime`` (pandas ``Timestamp`` too), ``date``, ``time``: ISO 8601 with
  ``T`` (``isoformat``, as orjson writes a ``datetime``: ``2024-01-02T03:04:05.123456+01:00``);
* ``timedelta`` (pandas ``Timedelta`` too): an ISO 8601 duration in seconds,
  exact: ``PT90.5S``, ``-PT86400S``, ``PT0.000000001S`` (see :func:`duration_text`);
* ``bytes``: their text if they are UTF-8, else their base64 (standard alphabet);
* numpy numbers: the Python number (orjson's ``OPT_SERIALIZE_NUMPY``);
* sets and tuples of any kind (a named tuple): a JSON array;
* an integer beyond JSON's 64 bits: the JSON number all the same, exactly;
* a NaN or an infinity, which JSON has no number for: ``NaN``, ``Infinity``,
  ``-Infinity`` in a text cell of Parquet or SQLite and in the values they keep
  aside (:func:`float_text`), where orjson's ``null`` would lose it (a CSV cell
  holds Python's ``nan``, ``inf``); JSON Lines, and a value inside an object or
  an array, keep JSON's ``null``;
* pandas' missing values ``NA`` and ``NaT`` (a nullable ``Int64``, ``string``
  or ``boolean`` column, a datetime column): ``null``, as ``None`` and as
  pandas' ``to_json`` writes them, never their text ``<NA>``, ``NaT``
  (:func:`is_missing`);
* anything else: ``str(value)``.

In JSON these are strings (``"1.10"``); in a CSV cell or a text column their
text without quotes (:func:`cell_text`: a value whose JSON is a string is
written as that string; objects, arrays and numbers as JSON text).

Parquet input and Arrow tables are converted as they are read, so their rows
hold such values as text already (see :mod:`drumfire._arrow_rows`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any

import orjson

__all__ = [
    "cell_text",
    "dumps",
    "duration_text",
    "float_text",
    "interval_text",
    "is_missing",
    "json_default",
    "loads_exact",
    "mark_floats",
    "pipe_dumps",
    "pipe_loads",
]

#: Text that may hold an integer orjson cannot read exactly: it reads -2**63 to
#: 2**64 - 1 and makes a float of anything past that (a 23-digit id: 1e+23).
_LONG_INT = re.compile(rb"\d{20}|-\d{19}").search


def loads_exact(data: bytes) -> Any:
    """``orjson.loads``, with every integer exact: text that may hold one past 64 bits
    is read by the ``json`` module instead (JSON Lines input, the worker pipes)."""
    value = orjson.loads(data)
    if _LONG_INT(data) is not None:
        return json.loads(data)
    return value

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
#: The integers orjson writes: int64's least to uint64's greatest.
_LEAST, _MOST = -(1 << 63), (1 << 64) - 1
_KEYS = (str, int, float, bool, type(None))  # dict keys kept as they are (else their text)


def _seconds(count: int, digits: int) -> str:
    """``count`` units of ``10**-digits`` seconds as exact decimal seconds: ``90.5``, ``-1``."""
    sign = "-" if count < 0 else ""
    whole, part = divmod(abs(count), 10**digits)
    fraction = f"{part:0{digits}d}".rstrip("0") if digits else ""
    return f"{sign}{whole}{'.' + fraction if fraction else ''}"


def duration_text(count: int, digits: int) -> str:
    """``count`` units of ``10**-digits`` seconds as an ISO 8601 duration: ``PT90.5S``.

    Seconds only, exact, no trailing zeros; a negative one has a leading
    minus (as XML Schema's ``xs:duration``): ``-PT86400S``.
    """
    sign = "-" if count < 0 else ""
    return f"{sign}PT{_seconds(abs(count), digits)}S"


def interval_text(months: int, days: int, nanoseconds: int) -> str:
    """An Arrow ``month_day_nano_interval`` as an ISO 8601 duration: ``P1M2DT3.5S``.

    Months, days and seconds stay apart, as the interval keeps them (a month has
    no fixed number of days, nor a day of seconds across a DST change); seconds
    exact, as :func:`duration_text` writes them, which it equals when only
    nanoseconds are set. A negative interval has a leading minus (``-P1M``);
    parts of mixed signs, which ISO 8601 cannot write, carry their own
    (``P1M-2D``), as PostgreSQL's ``iso_8601`` interval style writes them.
    """
    if months <= 0 and days <= 0 and nanoseconds <= 0 and (months or days or nanoseconds):
        return "-" + interval_text(-months, -days, -nanoseconds)
    date = (f"{months}M" if months else "") + (f"{days}D" if days else "")
    if nanoseconds or not date:
        return f"P{date}T{_seconds(nanoseconds, 9)}S"
    return f"P{date}"


#: The types of pandas' missing values, by name: drumfire never imports pandas for them.
_MISSING = frozenset({"NAType", "NaTType"})


def is_missing(value: Any) -> bool:
    """Whether ``value`` is pandas' ``NA`` or ``NaT``: a missing value, as ``None`` is.

    Their text (``<NA>``, ``NaT``) is no value a row means, so a template
    inserts nothing for them, a JSON body ``null``, and an id falls back to
    the row number. (A float NaN stays a number in a template, ``nan``: see
    "NaN is not a missing value" in the README; as an id it names no row.)
    """
    kind = type(value)
    return kind.__name__ in _MISSING and kind.__module__.startswith("pandas")


def json_default(value: Any) -> Any:
    """orjson's ``default=``: a value JSON has no type for as one it has (module docstring)."""
    if is_missing(value):  # before the datetime test: pandas' NaT is a datetime
        return None
    decimal = sys.modules.get("decimal")  # not imported: no value is a Decimal
    if decimal is not None and isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        nanoseconds = getattr(value, "value", None)  # pandas Timedelta: nanoseconds
        if type(nanoseconds) is int:
            return duration_text(nanoseconds, 9)
        micro = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return duration_text(micro, 6)
    if isinstance(value, dt.date | dt.time):  # a datetime subclass (pandas Timestamp)
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(data).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):  # a named tuple, a set: an array
        return list(value)
    return str(value)


def _key(key: Any) -> Any:
    """A dict key orjson writes (``OPT_NON_STR_KEYS``), or else its text."""
    if type(key) in _KEYS and not (type(key) is int and not _LEAST <= key <= _MOST):
        return _jsonable(key) if type(key) is str else key
    return str(key)


def _jsonable(value: Any) -> Any:
    """``value`` with what orjson refuses even with a default replaced (see :func:`dumps`)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _LEAST <= value <= _MOST else orjson.Fragment(str(int(value)))
    if isinstance(value, str):  # a lone surrogate: escaped (orjson writes UTF-8 only)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def dumps(value: Any, option: int = 0) -> bytes:
    """``value`` as JSON, whatever it holds (see the module docstring); never raises.

    orjson refuses integers beyond 64 bits, some dict keys (tuples) and strings
    that are not UTF-8 (a lone surrogate) before asking ``default``: only then
    is the value walked, and those replaced (an integer by its exact JSON
    number, a key by its text, a lone surrogate by its ``\\udXXX`` escape).
    """
    try:
        return orjson.dumps(value, default=json_default, option=option | _OPTIONS)
    except TypeError:
        pass
    try:
        return orjson.dumps(_jsonable(value), default=json_default, option=option | _OPTIONS)
    except TypeError:  # a dict key orjson cannot write even as text: the value's text
        return orjson.dumps(_jsonable(str(value)), option=option)


#: How the worker pipes carry a NaN or an infinity, which JSON has no number for
#: (orjson writes ``null``): ``{"\u0000float": "NaN"}``, a key no row has.
_FLOAT_KEY = "\x00float"
_FLOAT_MARK = b'"\\u0000float"'


def pipe_dumps(
    value: Any, floats: bool = True, mark: Callable[[Any], Any] | None = None
) -> bytes:
    """:func:`dumps` for the worker processes' pipes: a NaN or an infinity survives.

    ``floats``: whether ``value`` may hold one (False for rows read from CSV,
    text or JSON Lines, which hold none: then nothing more is done). Else only
    a message in whose JSON ``null`` appears is walked (orjson writes a NaN or
    an infinity as ``null``), by ``mark`` (default :func:`mark_floats`, every
    value; a caller that knows where one may be walks only there).
    """
    data = dumps(value)
    if floats and b"null" in data:
        marked = (mark or mark_floats)(value)
        if marked is not value:
            data = dumps(marked)
    return data


def pipe_loads(data: bytes) -> Any:
    """What :func:`pipe_dumps` wrote, integers past 64 bits and non-finite floats as they were."""
    value = loads_exact(data)
    return _unmark_floats(value) if _FLOAT_MARK in data else value


#: Types that hold no NaN or infinity, passed over without a call.
_PLAIN = frozenset({str, int, bool, type(None)})


def mark_floats(value: Any) -> Any:
    """``value`` with each NaN or infinity as ``{_FLOAT_KEY: text}`` (what
    :func:`pipe_loads` restores); itself if it has none.

    A worker marks every result's fields with it, so an object or an array with
    nothing to mark is only looked at, not copied (about 0.3 µs a result row).
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {_FLOAT_KEY: float_text(value)}
    if isinstance(value, dict):
        for v in value.values():
            if type(v) not in _PLAIN and mark_floats(v) is not v:
                return {k: mark_floats(v) for k, v in value.items()}
        return value
    if isinstance(value, list | tuple):
        for v in value:
            if type(v) not in _PLAIN and mark_floats(v) is not v:
                return [mark_floats(v) for v in value]
        return value
    text = float_text(value)  # numpy's float64 too
    return value if text is None else {_FLOAT_KEY: text}


def _unmark_floats(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_KEY in value:
            return float(value[_FLOAT_KEY])  # float() reads NaN, Infinity, -Infinity
        return {k: _unmark_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmark_floats(v) for v in value]
    return value


def float_text(value: Any) -> str | None:
    """``NaN``, ``Infinity`` or ``-Infinity`` for such a float (numpy's too), else None.

    JSON has no number for them (orjson writes ``null``, a missing value);
    these are the tokens Python's ``json`` module writes and reads back, as
    pandas and pyarrow read them (strict JSON readers refuse them).
    """
    if not isinstance(value, float) or math.isfinite(value):
        return None
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def cell_text(value: Any) -> str:
    """``value`` as the text of a cell: a string as it is, a value whose JSON is a
    string (a ``Decimal``, a ``datetime``) as that string, a NaN or an infinity as
    :func:`float_text` writes it, others as JSON text."""
    if type(value) is str:
        return value
    text = dumps(value)
    first = text[:1]
    if first == b'"':
        found = orjson.loads(text)
        if type(found) is str:
            return found
    elif first == b"n":  # null: orjson's for a NaN or an infinity too
        return float_text(value) or "null"
    return text.decode()

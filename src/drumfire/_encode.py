"""Encoders: one per placeholder, chosen once by where it lands.

The rules are in the docstring of :mod:`drumfire._template`. :class:`Fill` is a
template compiled for one place (a URL, a body) with its encoders.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

from ._template import as_text, format_string
from ._values import dumps

__all__ = [
    "Encoder",
    "Fill",
    "for_any",
    "form_value",
    "host_value",
    "json_cell",
    "json_chars",
    "json_value",
    "not_unreserved",
    "path_value",
    "query_value",
    "reserved_value",
    "verbatim",
]

Encoder = Callable[[Any], str]

# Each encoder takes the value as text and returns what goes on the wire. Most
# values (numbers, ids, words) need nothing: one regex search says so and quote()
# is never called.

not_unreserved = re.compile(r"[^A-Za-z0-9._~-]").search  # RFC 3986 §2.3
_QUERY_SAFE = "!$'()*,/:?@"  # sub-delims and pchar that never split a query component
_RESERVED = ":/?#[]@!$&'()*+,;="  # RFC 3986 §2.2
_not_reserved_form = re.compile(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]|%(?![0-9A-Fa-f]{2})").search
_lone_percent = re.compile(r"%(?![0-9A-Fa-f]{2})")


def path_value(value: str) -> str:
    return value if not_unreserved(value) is None else quote(value, safe="")


def query_value(value: str) -> str:
    return value if not_unreserved(value) is None else quote(value, safe=_QUERY_SAFE)


def reserved_value(value: str) -> str:
    if _not_reserved_form(value) is None:
        return value
    return _lone_percent.sub("%25", quote(value, safe=_RESERVED + "%"))


def form_value(value: str) -> str:
    """``application/x-www-form-urlencoded`` (WHATWG URL §5.2): space as ``+``."""
    return value if not_unreserved(value) is None else quote_plus(value, safe="")


def verbatim(value: str) -> str:
    return value


# A host or port value may not bring URL syntax with it.
_bad_host_value = re.compile(r"[\x00-\x20\x7f/?#@\\\"<>^`{|}]").search


def host_value(column: str) -> Callable[[str], str]:
    def host(value: str) -> str:
        if _bad_host_value(value) is not None:
            raise ValueError(
                f"column {column!r} goes into the URL's host or port, and its value holds "
                "'/', '?', '#', '@', a space or another character a host cannot have"
            )
        return value

    return host


_json_needs_escape = re.compile(r'["\\\x00-\x1f]').search


def json_chars(value: str) -> str:
    """The value as the inside of a JSON string (RFC 8259 §7)."""
    if _json_needs_escape(value) is None:
        return value
    return orjson.dumps(value).decode()[1:-1]


_json_scalar = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null"
).fullmatch


def json_cell(column: str) -> Callable[[str], str]:
    """A text cell (CSV, TSV) where a JSON value goes.

    Empty: ``null``. A JSON number, ``true``, ``false`` or ``null``: as it is.
    A cell that starts with ``{`` or ``[``: must be valid JSON, inserted as it
    is. Anything else: a JSON string.
    """

    def cell(value: str) -> str:
        if _json_scalar(value) is not None:
            return value
        if not value:
            return "null"
        if value[0] in "{[":
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError(
                    f"column {column!r} starts like a JSON object or array but is not valid "
                    "JSON (put the placeholder in quotes to send it as a string)"
                ) from None
            return value
        return '"' + json_chars(value) + '"'

    return cell


def json_value(value: Any) -> str:
    """Any row value (JSON Lines, Python objects) where a JSON value goes: its own JSON."""
    if type(value) is str:
        return '"' + json_chars(value) + '"'
    if type(value) is int:  # orjson refuses integers beyond 64 bits
        return str(value)
    # A value JSON has no type for as the outputs write it (json_default: pandas'
    # NA and NaT null, bytes their text, a timedelta PT90.5S, a tuple an array); an
    # integer beyond 64 bits inside an array or object exact, as at the top (dumps).
    return dumps(value).decode()


def for_any(encode: Callable[[str], str]) -> Encoder:
    """An encoder of text made to take any row value (converted by :func:`as_text` first)."""

    def any_value(value: Any) -> str:
        return encode(value if type(value) is str else as_text(value))

    return any_value


class Fill:
    """A template compiled for one place: wire-ready literals and an encoder per placeholder.

    ``text`` encoders take ``str`` values (CSV, TSV, text input); ``any``
    encoders take whatever a row holds.
    """

    __slots__ = ("columns", "enc_any", "enc_text", "fmt", "get", "quick")

    def __init__(
        self,
        literals: Sequence[str],
        columns: Sequence[str],
        enc_text: Sequence[Callable[[str], str]],
        enc_any: Sequence[Encoder] | None = None,
        *,
        quick: bool = False,
    ) -> None:
        self.fmt = format_string(literals)
        self.columns = tuple(columns)
        self.enc_text = tuple(enc_text)
        self.enc_any = tuple(enc_any) if enc_any is not None else tuple(map(for_any, enc_text))
        self.get = operator.itemgetter(*columns) if len(columns) > 1 else None
        # quick: every encoder leaves a value of unreserved characters alone, so
        # one search over all the values can skip the encoders (see preparer()).
        self.quick = quick

    def render(self, row: Mapping[str, Any], text: bool = False) -> str:
        encoders = self.enc_text if text else self.enc_any
        return self.fmt.format(*[e(row[c]) for c, e in zip(self.columns, encoders, strict=True)])

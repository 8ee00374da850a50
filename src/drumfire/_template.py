"""Templates over input rows: their syntax, and how a value is encoded where it lands.

A placeholder ``{column}`` is replaced by the row's value, encoded for the
place where it lands, so that a value can never change the shape of the
request (RFC 3986, and the expansion rules of URI Templates, RFC 6570 §3.2):

* URL path: every character but the unreserved ones (``A-Z a-z 0-9 - . _ ~``)
  is percent-encoded as UTF-8, ``/ ? # %`` included (RFC 6570 simple expansion).
* URL query: encoded as a query component; ``& = + ; # %`` and space are
  encoded, the harmless ``! $ ' ( ) * , / : ? @`` stay as they are.
* ``{+column}``: reserved expansion (RFC 6570 §3.2.3): reserved characters and
  existing ``%XX`` escapes are kept, everything else is encoded.
* A placeholder at the start of the URL (``{url}``, ``{base}/x``) is a URL or
  the start of one: only what may not appear in a request is encoded.
* Host and port (``http://{host}:{port}/``): inserted as they are, but a value
  with a delimiter (``/ ? # @``), a space or a control character is refused.
  User info (``http://{user}:{pw}@h/``) is encoded like a path segment.
* JSON bodies: inside a JSON string a value is JSON-escaped; outside one it
  is inserted as a JSON value (see :func:`json_cell`). Form bodies: form
  encoding (space as ``+``). Other bodies, headers and the method: as they are
  (a header that would break the request is refused).

The syntax has no attribute access, indexing, format spec or code: a compiled
template is a format string with positional fields (``{0}``, ``{1}``) and the
literal text escaped by us, so a value can never be interpreted. In URLs,
headers, methods and non-JSON bodies ``{{`` and ``}}`` are literal braces and
any other brace is an error. JSON bodies are written as JSON: a brace that
does not open a placeholder is literal (see :func:`_parse_json`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ._errors import TemplateError

__all__ = ["JSON_PLACEHOLDER", "Template", "as_text", "format_string"]


def as_text(value: Any) -> str:
    """A row value as the text to insert: strings as they are, others as JSON."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        try:
            return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # keys orjson cannot write (tuples): Python's own text
            return str(value)
    return str(value)


# -- parsing ------------------------------------------------------------------------


def _parse(source: str) -> tuple[list[str], list[str], list[bool]]:
    """Strict syntax: literal texts, column names, and which placeholders are ``{+name}``.

    ``{{`` and ``}}`` are literal braces; every other brace must open or close
    a ``{name}`` placeholder. There is one more literal than placeholders.
    """
    literals: list[str] = []
    columns: list[str] = []
    raw: list[bool] = []
    buf: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "{":
            if source.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
            end = source.find("}", i + 1)
            name = source[i + 1 : end] if end != -1 else ""
            plus = name.startswith("+")
            if plus:
                name = name[1:]
            if end == -1 or "{" in name or not name:
                raise TemplateError(
                    f"'{{' at position {i} does not open "
                    "a {column} placeholder (write '{{' for a literal brace)"
                )
            literals.append("".join(buf))
            buf.clear()
            columns.append(name)
            raw.append(plus)
            i = end + 1
        elif ch == "}":
            if not source.startswith("}}", i):
                raise TemplateError(f"lone '}}' at position {i} (write '}}}}' for a literal brace)")
            buf.append("}")
            i += 2
        else:
            j = i
            while j < n and source[j] not in "{}":
                j += 1
            buf.append(source[i:j])
            i = j
    literals.append("".join(buf))
    return literals, columns, raw


# In a JSON body a placeholder is a brace, an optional '+', then a name that has no
# brace, quote or backslash and neither starts nor ends with white space.
JSON_PLACEHOLDER = re.compile(r'\{(\+?)([^{}"\\\s](?:[^{}"\\]*[^{}"\\\s])?)\}')


def _doubled_brace_outside_strings(source: str) -> bool:
    """True when ``{{`` occurs outside JSON strings: the body was written with escaped braces."""
    in_string = False
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{" and source.startswith("{{", i):
            return True
        i += 1
    return False


def _string_state(text: str, in_string: bool) -> bool:
    """Whether a JSON text that starts inside a string (or not) ends inside one."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_string and ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        i += 1
    return in_string


def _parse_json(source: str) -> tuple[list[str], list[str], list[str]]:
    """JSON syntax: literal texts, column names, and each placeholder's place.

    A place is ``string`` (inside a JSON string), ``value`` (where a JSON value
    goes) or ``raw`` (``{+name}``: inserted as it is).

    The body is taken as written: ``{name}`` is a placeholder (see
    ``JSON_PLACEHOLDER``), any other brace is literal, so ``{"n": {n}}`` needs
    no escaping. Inside a string ``{{`` and ``}}`` are literal braces, so
    ``"{{n}}"`` sends ``{n}``. A body that still doubles its braces outside
    strings (``{{"n": {n}}}``, the old syntax; never valid JSON as written) is
    read with the strict rules of :func:`_parse`.
    """
    if _doubled_brace_outside_strings(source):
        literals, columns, raw = _parse(source)
        places: list[str] = []
        in_string = False
        for lit, plus in zip(literals, raw, strict=False):
            in_string = _string_state(lit, in_string)
            places.append("raw" if plus else "string" if in_string else "value")
        return literals, columns, places
    literals, columns, places = [], [], []
    buf: list[str] = []
    in_string = False
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "{":
            m = JSON_PLACEHOLDER.match(source, i)
            if m is not None:
                literals.append("".join(buf))
                buf.clear()
                columns.append(m.group(2))
                places.append("raw" if m.group(1) else "string" if in_string else "value")
                i = m.end()
                continue
            if in_string and source.startswith("{{", i):
                buf.append("{")
                i += 2
                continue
        elif ch == "}" and in_string and source.startswith("}}", i):
            buf.append("}")
            i += 2
            continue
        elif ch == '"':
            in_string = not in_string
        elif ch == "\\" and in_string:
            buf.append(source[i : i + 2])
            i += 2
            continue
        buf.append(ch)
        i += 1
    literals.append("".join(buf))
    return literals, columns, places


_NAME_LIKE = re.compile(r"[\w .-]{1,64}").fullmatch


def format_string(literals: Sequence[str]) -> str:
    """Literal texts joined by positional fields, their braces escaped for str.format."""
    parts = [literals[0].replace("{", "{{").replace("}", "}}")]
    for k, lit in enumerate(literals[1:]):
        parts.append(f"{{{k}}}")
        parts.append(lit.replace("{", "{{").replace("}", "}}"))
    return "".join(parts)


class Template:
    """A text with ``{column}`` placeholders, compiled once and rendered per row.

    :meth:`render` inserts values as they are (for methods, headers and plain
    bodies); the request plan compiles the same pieces with an encoder per
    placeholder for URLs, JSON and form bodies. ``json=True`` reads the JSON
    syntax of :func:`_parse_json`.
    """

    __slots__ = ("_fmt", "_get", "columns", "literals", "places", "raw", "source")

    def __init__(self, source: str, *, json: bool = False, label: str | None = None) -> None:
        self.source = source
        self.places: tuple[str, ...] | None
        if json:
            literals, columns, places = _parse_json(source)
            self.places = tuple(places)
            raw = [p == "raw" for p in places]
        else:
            try:
                literals, columns, raw = _parse(source)
            except TemplateError as exc:
                # label: a header value, which may hold a credential and is never printed
                raise TemplateError(f"malformed template {label or repr(source)}: {exc}") from None
            self.places = None
        self.literals = tuple(literals)
        self.columns = tuple(columns)
        self.raw = tuple(raw)
        self._fmt = format_string(literals)
        # Several columns: one C call fetches them all (see render_text).
        self._get = operator.itemgetter(*columns) if len(columns) > 1 else None

    @property
    def is_static(self) -> bool:
        return not self.columns

    def render(self, row: Mapping[str, Any]) -> str:
        """Insert the row's values as they are. Raises KeyError naming a missing column."""
        values = [row[c] for c in self.columns]
        return self._fmt.format(*[v if type(v) is str else as_text(v) for v in values])

    def render_text(self, row: Mapping[str, Any]) -> str:
        """:meth:`render` for rows whose values are all ``str`` (CSV, TSV, text input).

        The same text in fewer steps: no value needs converting.
        """
        get = self._get
        if get is None:
            return self.render(row)
        return self._fmt.format(*get(row))

    def check(self, available: set[str] | frozenset[str], label: str | None = None) -> None:
        """Raise :class:`TemplateError` if a placeholder names a column not in ``available``.

        ``label`` replaces the template's text in the message (header values may
        hold credentials and are never printed).
        """
        for column in self.columns:
            if column not in available:
                known = ", ".join(sorted(available)) or "none"
                what = label or f"template {self.source!r}"
                # With a label, the name is shown only if it looks like one: text
                # between braces in a header value may be a secret, not a column.
                name = repr(column) if label is None or _NAME_LIKE(column) else "a column"
                if name != "a column":
                    name = f"column {name}"
                raise TemplateError(
                    f"{what} uses {name}, which the input does not have (columns: {known})"
                )

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

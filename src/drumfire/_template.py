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
  (a header that would break the request, or whose value would lose the spaces
  around it, is refused).

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

from ._errors import TemplateError
from ._values import cell_text, dumps, is_missing

__all__ = ["JSON_PLACEHOLDER", "Template", "as_text", "format_string"]


#: numpy's boolean scalar type, by name (``bool`` from numpy 2, ``bool_`` before).
_NUMPY_BOOLS = frozenset({"bool", "bool_"})


def as_text(value: Any) -> str:
    """A row value as the text to insert: strings as they are, numbers as Python
    writes them (a NaN ``nan``), nothing for ``None`` and pandas' missing values
    (``NA``, ``NaT``), others as every output writes them (:func:`cell_text`): a
    ``datetime`` in ISO 8601 with ``T``, ``bytes`` as their text, a tuple as a
    JSON array, a dict or a list as JSON."""
    if type(value) is str:
        return value
    if value is None or is_missing(value):
        return ""
    if type(value).__name__ in _NUMPY_BOOLS and type(value).__module__ == "numpy":
        value = bool(value)  # a pandas boolean column's: 'true' as a bool, not 'True'
    if isinstance(value, bool | dict | list):
        # JSON, whatever it holds (dumps: an integer beyond 64 bits exact, a tuple key
        # as its text), never Python's text (single quotes).
        return dumps(value).decode()
    if isinstance(value, int | float) or getattr(getattr(value, "dtype", None), "kind", "") in (
        "i", "u", "f", "c"
    ):  # fmt: skip
        return str(value)  # numpy's numbers too
    # What the outputs write (Python's str gave b'abc', (1, 'a'), 0:01:30.500000, and
    # a datetime with a space where the JSON body had a 'T').
    return cell_text(value)


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

# Template syntax drumfire does not take, when a placeholder that names no column
# holds it: RFC 6570's operators other than '+' ({?q} {/q} {#q} {.q} {;q} {&q}), its
# value modifiers ({q:3} a prefix, {q*} explode) and lists ({a,b}), and Python's
# format syntax ({q:>8} {q!r} {q[0]}). Names may hold any of these (a JSON Lines key
# "geo:lat"), so a placeholder is only read as syntax when no column has its name.
_OPERATORS = "#./;?&=,!@|"
_MODIFIERS = re.compile(r"[:!*\[\],.]")


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

    def check(
        self,
        available: set[str] | frozenset[str],
        label: str | None = None,
        *,
        secret: bool | None = None,
    ) -> None:
        """Raise :class:`TemplateError` if a placeholder names a column not in ``available``.

        ``label`` replaces the template's text in the message (header values may
        hold credentials and are never printed). ``secret`` (default: when there
        is a label) shows a placeholder's text only if it looks like a name.
        """
        for column, plus in zip(self.columns, self.raw, strict=True):
            if column not in available:
                what = label or f"template {self.source!r}"
                # A secret template's placeholder is shown only if it looks like a
                # name: text between braces in a header value may be a secret.
                hidden = (label is not None if secret is None else secret) and not _NAME_LIKE(
                    column
                )
                unsupported = None if hidden else _unsupported(column, plus, available)
                if unsupported is not None:
                    raise TemplateError(f"{what}: {unsupported}")
                known = ", ".join(sorted(available)) or "none"
                name = "a column" if hidden else f"column {column!r}"
                raise TemplateError(
                    f"{what} uses {name}, which the input does not have (columns: {known})"
                    + _separator_hint(available)
                )

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _separator_hint(available: set[str] | frozenset[str]) -> str:
    """A header read as one column that holds another separator: the likely cause."""
    if len(available) == 1:
        (only,) = available
        for sep in (";", "|", "\t"):
            if sep in only:
                shown = "'\\t'" if sep == "\t" else repr(sep)
                return f"; fields separated by {shown}? say --delimiter {shown}"
    return ""


def _unsupported(name: str, plus: bool, available: set[str] | frozenset[str]) -> str | None:
    """Why ``{name}`` (``{+name}``), which names no column, is syntax drumfire does not take.

    None when it does not look like such syntax: then it is a missing column. A
    ``.`` alone counts only when the text before it is a column (``{q.x}``), as
    dotted names are common (``a.b`` from ``pandas.json_normalize``).
    """
    op = name[:1] if name[:1] and name[0] in _OPERATORS else ""
    stem = name[len(op) :]
    base = _MODIFIERS.split(stem, 1)[0]
    syntax = bool(op) or _MODIFIERS.search(stem.replace(".", "")) is not None
    if base == name or not (syntax or base in available):
        return None
    shown = f"{{{'+' if plus else ''}{name}}}"
    # What RFC 6570's expansion would have written around the value, if anything.
    around = {"?": f"?{base}=", "&": f"&{base}=", ";": f";{base}=", "/": "/", ".": "."}
    supported = (
        "templates take {column} and {+column} only (RFC 6570 levels 1 and 2: no format "
        "spec, ':N' prefix, '*' explode, list or operator such as {?q} or {/q})"
    )
    if base not in available:
        return f"placeholder {shown} names no column and is not supported syntax; {supported}"
    write = around.get(op, "") + f"{{{'+' if plus else ''}{base}}}"
    return f"placeholder {shown} is not supported: for column {base!r} write {write}; {supported}"

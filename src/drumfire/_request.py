"""Templates over input rows, and the plan that turns a row into request bytes.

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
  is inserted as a JSON value (see :func:`_json_cell`). Form bodies: form
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

import binascii
import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote, quote_plus, unquote, urljoin, urlsplit

import orjson

from ._errors import TemplateError
from ._settings import IDEMPOTENT_METHODS, METHODS

__all__ = ["Origin", "Prepared", "RequestPlan", "Template", "json_body", "json_template"]

USER_AGENT = "drumfire/0.1"

Origin = tuple[str, str, int]  # scheme, host, port
Encoder = Callable[[Any], str]


def _text(value: Any) -> str:
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
_JSON_PLACEHOLDER = re.compile(r'\{(\+?)([^{}"\\\s](?:[^{}"\\]*[^{}"\\\s])?)\}')


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
    ``_JSON_PLACEHOLDER``), any other brace is literal, so ``{"n": {n}}`` needs
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
            m = _JSON_PLACEHOLDER.match(source, i)
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


def _format_string(literals: Sequence[str]) -> str:
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
        self._fmt = _format_string(literals)
        # Several columns: one C call fetches them all (see render_text).
        self._get = operator.itemgetter(*columns) if len(columns) > 1 else None

    @property
    def is_static(self) -> bool:
        return not self.columns

    def render(self, row: Mapping[str, Any]) -> str:
        """Insert the row's values as they are. Raises KeyError naming a missing column."""
        values = [row[c] for c in self.columns]
        return self._fmt.format(*[v if type(v) is str else _text(v) for v in values])

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


# -- encoders: one per placeholder, chosen once by where it lands -----------------------
#
# Each takes the value as text and returns what goes on the wire. Most values
# (numbers, ids, words) need nothing: one regex search says so and quote() is
# never called.

_not_unreserved = re.compile(r"[^A-Za-z0-9._~-]").search  # RFC 3986 §2.3
_QUERY_SAFE = "!$'()*,/:?@"  # sub-delims and pchar that never split a query component
_RESERVED = ":/?#[]@!$&'()*+,;="  # RFC 3986 §2.2
_not_reserved_form = re.compile(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]|%(?![0-9A-Fa-f]{2})").search
_lone_percent = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _path_value(value: str) -> str:
    return value if _not_unreserved(value) is None else quote(value, safe="")


def _query_value(value: str) -> str:
    return value if _not_unreserved(value) is None else quote(value, safe=_QUERY_SAFE)


def _reserved_value(value: str) -> str:
    if _not_reserved_form(value) is None:
        return value
    return _lone_percent.sub("%25", quote(value, safe=_RESERVED + "%"))


def _form_value(value: str) -> str:
    """``application/x-www-form-urlencoded`` (WHATWG URL §5.2): space as ``+``."""
    return value if _not_unreserved(value) is None else quote_plus(value, safe="")


def _verbatim(value: str) -> str:
    return value


# A host or port value may not bring URL syntax with it.
_bad_host_value = re.compile(r"[\x00-\x20\x7f/?#@\\\"<>^`{|}]").search


def _host_value(column: str) -> Callable[[str], str]:
    def host(value: str) -> str:
        if _bad_host_value(value) is not None:
            raise ValueError(
                f"column {column!r} goes into the URL's host or port, and its value holds "
                "'/', '?', '#', '@', a space or another character a host cannot have"
            )
        return value

    return host


_json_needs_escape = re.compile(r'["\\\x00-\x1f]').search


def _json_chars(value: str) -> str:
    """The value as the inside of a JSON string (RFC 8259 §7)."""
    if _json_needs_escape(value) is None:
        return value
    return orjson.dumps(value).decode()[1:-1]


_json_scalar = re.compile(
    r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null"
).fullmatch


def _json_cell(column: str) -> Callable[[str], str]:
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
        return '"' + _json_chars(value) + '"'

    return cell


def _json_value(value: Any) -> str:
    """Any row value (JSON Lines, Python objects) where a JSON value goes: its own JSON."""
    if type(value) is str:
        return '"' + _json_chars(value) + '"'
    if type(value) is int:  # orjson refuses integers beyond 64 bits
        return str(value)
    return orjson.dumps(
        value, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ).decode()


def _any(encode: Callable[[str], str]) -> Encoder:
    """An encoder of text made to take any row value (converted by :func:`_text` first)."""

    def any_value(value: Any) -> str:
        return encode(value if type(value) is str else _text(value))

    return any_value


class _Fill:
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
        self.fmt = _format_string(literals)
        self.columns = tuple(columns)
        self.enc_text = tuple(enc_text)
        self.enc_any = tuple(enc_any) if enc_any is not None else tuple(map(_any, enc_text))
        self.get = operator.itemgetter(*columns) if len(columns) > 1 else None
        # quick: every encoder leaves a value of unreserved characters alone, so
        # one search over all the values can skip the encoders (see preparer()).
        self.quick = quick

    def render(self, row: Mapping[str, Any], text: bool = False) -> str:
        encoders = self.enc_text if text else self.enc_any
        return self.fmt.format(*[e(row[c]) for c, e in zip(self.columns, encoders, strict=True)])


# -- URLs ---------------------------------------------------------------------------------

# Characters that may not appear raw in a request-target (RFC 3986 §2, RFC 9112 §3.2):
# controls, space, non-ASCII and a few delimiters. '%' is left alone so existing
# escapes survive. One negated class (printable ASCII less those delimiters): 4x
# faster than an alternation.
_UNSAFE_TARGET = re.compile(r"[^\x21\x23-\x3b\x3d\x3f-\x5b\x5d\x5f\x61-\x7a\x7e]")
_SAFE_CHARS = "!#$%&'()*+,-./:;=?@[]~_"
_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%:-]+")


def _clean_target(target: str) -> str:
    if _UNSAFE_TARGET.search(target) is None:
        return target
    return quote(target, safe=_SAFE_CHARS)


def _shown(url: str) -> str:
    """The URL for an error message: user info (a password) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if sep and "@" in authority:
        return f"{scheme}://***@{rest[authority.rfind('@') + 1 :]}"
    return url


def _basic_auth(username: str | None, password: str | None) -> str | None:
    """``Authorization`` from URL user info, percent-decoded as curl and requests do."""
    if not username and not password:
        return None
    pair = f"{unquote(username or '')}:{unquote(password or '')}"
    return "Basic " + binascii.b2a_base64(pair.encode("utf-8"), newline=False).decode("ascii")


def _split(url: str) -> tuple[Origin, str, str | None]:
    """``http://u:p@host:port/path?q`` → ((scheme, host, port), '/path?q', Basic auth)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"unsupported URL {_shown(url)!r}: only http:// and https:// are supported"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {_shown(url)!r} has no host")
    if _HOST.fullmatch(host) is None:
        try:  # an internationalized name: its ASCII form (IDNA), as browsers send it
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"URL {_shown(url)!r} has a bad host") from None
        if _HOST.fullmatch(host) is None:
            raise ValueError(f"URL {_shown(url)!r} has a bad host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"URL {_shown(url)!r} has a bad port") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    auth = _basic_auth(parts.username, parts.password) if "@" in parts.netloc else None
    return (scheme, host, port), _clean_target(target), auth


def split_url(url: str) -> tuple[Origin, str]:
    """``http://host:port/path?q`` → ((scheme, host, port), '/path?q')."""
    origin, target, _ = _split(url)
    return origin, target


def host_header(origin: Origin) -> str:
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"


_AFTER_AUTHORITY = re.compile(r"[/?#]")
_AFTER_PATH = re.compile(r"[?#]")
_STATE_AT = {"/": "path", "?": "query", "#": "fragment"}


def _url_places(literals: Sequence[str]) -> tuple[list[str], tuple[int, int] | None]:
    """Where each placeholder of a URL template lands, read from the literal text around it.

    Places: ``url`` (before the authority: a URL or its start), ``host``,
    ``userinfo``, ``path``, ``query``. Also where the fragment starts, as
    (literal index, position), or None: a fragment is never sent, so the
    template is cut there.
    """
    places: list[str] = []
    state = "scheme"
    cut: tuple[int, int] | None = None
    last = len(literals) - 1
    for k, lit in enumerate(literals):
        i = 0
        while True:
            if state in ("scheme", "prefix"):
                j = lit.find("://", i)
                if j != -1 and (state == "scheme" or _AFTER_AUTHORITY.search(lit, i, j) is None):
                    state, i = "authority", j + 3
                    continue
                if state == "scheme":
                    break
                state = "path"  # the URL before ended somewhere in its path (or query)
                continue
            pattern = _AFTER_AUTHORITY if state == "authority" else _AFTER_PATH
            m = pattern.search(lit, i)
            if m is None:
                break
            state, i = _STATE_AT[m.group()], m.end()
            if state == "fragment":
                cut = (k, m.start())
                break
        if cut is not None:
            break
        if k < last:
            if state in ("scheme", "prefix"):
                places.append("url")
                state = "prefix"
            else:
                places.append(state)
    # Host or user info: user info is followed by '@' before the authority ends.
    for f, place in enumerate(places):
        if place != "authority":
            continue
        places[f] = "host"
        for lit in literals[f + 1 :]:
            m = re.search(r"[/?#@]", lit)
            if m is not None:
                if m.group() == "@":
                    places[f] = "userinfo"
                break
    return places, cut


def _url_encoder(place: str, raw: bool, column: str) -> Callable[[str], str]:
    """The encoder for a placeholder at ``place`` (see :func:`_url_places`)."""
    if place == "url":
        return _verbatim  # a URL or its start: cleaned with the whole URL by _split
    if raw:
        return _verbatim if place in ("host", "userinfo") else _reserved_value
    if place == "host":
        return _host_value(column)
    return _query_value if place == "query" else _path_value  # userinfo: as a path segment


class Prepared(NamedTuple):
    """A request ready for the wire (a tuple: made once per row, so kept cheap)."""

    origin: Origin
    data: bytes
    method: str
    idempotent: bool


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_new_prepared = tuple.__new__  # Prepared(...) without NamedTuple's Python-level __new__

# RFC 9110 §5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 §5.5: CR, LF and NUL in a field value are invalid and dangerous.
_bad_header_value = re.compile(r"[\r\n\x00]").search


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def _is_json_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def json_template(obj: Any) -> str:
    """The JSON body template for a ``json=`` object (a dict or list holding placeholders).

    A string that is exactly one placeholder (``"{n}"``) stands for the row's
    value as a JSON value; any other string is a JSON string, with
    placeholders inside it filled and escaped. Everything else is itself.
    """
    if isinstance(obj, str):
        m = _JSON_PLACEHOLDER.fullmatch(obj)
        return obj if m is not None else orjson.dumps(obj).decode()
    if isinstance(obj, Mapping):
        items = (f"{orjson.dumps(str(k)).decode()}:{json_template(v)}" for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(json_template(v) for v in obj) + "]"
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        raise TemplateError(f"json: {exc}") from None


class RequestPlan:
    """Turns a row into :class:`Prepared` request bytes.

    Everything that is the same for every row (origin, header block, where
    each placeholder lands) is computed once; per row only the templated parts
    are rendered.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str | None = None,
        headers: list[str] | list[tuple[str, str]] | Mapping[str, str] | None = None,
        data: str | bytes | None = None,
    ) -> None:
        if data is not None and not isinstance(data, str | bytes):
            raise TemplateError(
                f"the body must be text or bytes, not {type(data).__name__} "
                "(for a JSON object, use json= or --json)"
            )
        self._url_shown = repr(_shown(url))  # its user info hidden, for messages
        self.url = Template(url, label=self._url_shown)
        self.method = Template(
            method.upper()
            if method and "{" not in method
            else (method or ("POST" if data is not None else "GET"))
        )
        if self.method.is_static and self.method.source not in METHODS:
            raise TemplateError(
                f"unsupported method {self.method.source!r} "
                f"(supported: {', '.join(sorted(METHODS))})"
            )
        pairs = _header_pairs(headers)
        self.headers = [
            (Template(n), Template(v, label=f"in the value of header {n!r}")) for n, v in pairs
        ]
        self._check_static_headers()
        lower = {n.lower() for n, _ in pairs}
        self._explicit_auth = "authorization" in lower
        extra: list[tuple[str, str]] = []
        if "user-agent" not in lower:
            extra.append(("User-Agent", USER_AGENT))
        if "accept" not in lower:
            extra.append(("Accept", "*/*"))
        media_type: str | None = None  # None: set by a templated header, unknown
        for name, value in self.headers:
            if name.source.lower() == "content-type":
                media_type = _media_type(value.source) if value.is_static else None
                break
        else:
            if data is not None:
                sample = data if isinstance(data, str) else data.decode("latin-1")
                looks_json = sample.lstrip()[:1] in ("{", "[")
                ctype = "application/json" if looks_json else "application/x-www-form-urlencoded"
                extra.append(("Content-Type", ctype))
                media_type = ctype
        self._body_template: Template | None = None
        self._body_bytes: bytes | None = None
        self._body: _Fill | None = None
        self._body_check = False  # validate the JSON of every rendered body
        if isinstance(data, bytes):
            self._body_bytes = data  # sent as it is (--data @file)
        elif data is not None:
            self._compile_body(data, media_type)
        self._extra = extra
        self._static_headers = all(n.is_static and v.is_static for n, v in self.headers)
        self._header_cache: dict[Origin, bytes] = {}
        self._static_origin: Origin | None = None
        self._target: _Fill | None = None  # the request-target, when the origin is static
        self._whole: _Fill | None = None  # the whole URL, when it is not
        self._url_column: str | None = None  # the template is only {column}: a URL
        self._cut_hash = False  # a {+x} value may bring a fragment: cut it off
        self._compile_url()
        # The usual plan (one origin, a fixed method and headers, no body) has
        # a shorter way through prepare(): see preparer().
        self._fast: tuple[str, bytes, Origin, str, bool] | None = None
        if (
            self._static_origin is not None
            and self.method.is_static
            and self._static_headers
            and data is None
            and self.method.source not in _BODY_METHODS
        ):
            method = self.method.source
            block = self._header_block(self._static_origin, None)
            self._fast = (
                method + " ",
                b" HTTP/1.1\r\n" + block + b"\r\n",
                self._static_origin,
                method,
                method in IDEMPOTENT_METHODS,
            )

    # -- compiling ---------------------------------------------------------------

    def _check_static_headers(self) -> None:
        """A fixed header that would break the request stops the run before it starts."""
        for number, (name, value) in enumerate(self.headers, 1):
            if name.is_static and _TOKEN.fullmatch(name.render({})) is None:
                # The name is not printed: a mistyped header may hold a credential.
                raise TemplateError(
                    f"header {number}: its name is not a token (RFC 9110: letters, digits "
                    "and !#$%&'*+-.^_`|~ only)"
                )
            if value.is_static and _bad_header_value(value.render({})) is not None:
                raise TemplateError(f"header {name.source!r}: its value holds a line break or NUL")

    def _compile_body(self, data: str, media_type: str | None) -> None:
        if media_type is not None and _is_json_type(media_type):
            t = Template(data, json=True)
            assert t.places is not None
            self._body_template = t
            encoders: list[Callable[[str], str]] = []
            any_encoders: list[Encoder] = []
            for column, place in zip(t.columns, t.places, strict=True):
                if place == "string":
                    encoders.append(_json_chars)
                    any_encoders.append(_any(_json_chars))
                elif place == "value":
                    encoders.append(_json_cell(column))
                    any_encoders.append(_json_value)
                else:
                    encoders.append(_verbatim)
                    any_encoders.append(_text)
            self._body = _Fill(t.literals, t.columns, encoders, any_encoders)
            if "raw" in t.places:
                self._body_check = True  # {+x} may bring anything
            else:
                # Filled with null and "", the body must be JSON; then it is JSON
                # whatever the values, as each one is a JSON value or string content.
                fills = ["null" if p == "value" else "" for p in t.places]
                dummy = "".join(
                    lit + fill for lit, fill in zip(t.literals, [*fills, ""], strict=True)
                )
                try:
                    orjson.loads(dummy)
                except orjson.JSONDecodeError as exc:
                    what = (
                        "the body"
                        if t.is_static
                        else "the body template (read with null for each value placeholder)"
                    )
                    raise TemplateError(
                        f"{what} is sent as JSON (Content-Type {media_type}) but cannot be "
                        f"valid JSON: {exc}"
                    ) from None
            return
        t = Template(data)
        self._body_template = t
        form = media_type == "application/x-www-form-urlencoded"
        self._body = _Fill(
            t.literals,
            t.columns,
            [_verbatim if raw or not form else _form_value for raw in t.raw],
        )

    def _compile_url(self) -> None:
        """Find the origin if the template fixes it, and where each placeholder lands.

        A bad fixed origin would fail every row: it is a usage error now.
        """
        try:
            self._compile_url_parts()
        except ValueError as exc:
            raise TemplateError(str(exc)) from None

    def _compile_url_parts(self) -> None:
        t = self.url
        if t.is_static:
            origin, target, auth = _split(t.render({}))
            self._set_static_origin(origin, auth)
            self._target = _Fill([target], [], [])
            return
        places, cut = _url_places(t.literals)
        literals = list(t.literals)
        columns = list(t.columns)
        raw = list(t.raw)
        if cut is not None:  # a fragment is never sent: drop it and its placeholders
            k, pos = cut
            literals = [*literals[:k], literals[k][:pos]]
            columns, raw, places = columns[:k], raw[:k], places[:k]
        encoders = [_url_encoder(p, r, c) for p, r, c in zip(places, raw, columns, strict=True)]
        # If the text before the first placeholder holds the whole authority
        # ("http://host:port/"), the origin is the same for every row.
        prefix = literals[0]
        scheme_end = prefix.find("://")
        end = _AFTER_AUTHORITY.search(prefix, scheme_end + 3) if scheme_end != -1 else None
        if end is None:
            self._whole = _Fill(literals, columns, encoders)
            if literals == ["", ""]:  # only a whole URL ({url}, the URL-list input)
                self._url_column = columns[0]
            return
        origin, _, auth = _split(prefix[: end.start()] + "/")
        self._set_static_origin(origin, auth)
        head = prefix[end.start() :]
        literals[0] = head if head.startswith("/") else "/" + head
        self._target = _Fill(
            [_clean_target(lit) for lit in literals],
            columns,
            encoders,
            quick=True,
        )
        self._cut_hash = any(raw)

    def _set_static_origin(self, origin: Origin, auth: str | None) -> None:
        self._static_origin = origin
        if auth is not None and not self._explicit_auth:
            self._extra.append(("Authorization", auth))

    # -- rendering ---------------------------------------------------------------

    @property
    def columns(self) -> set[str]:
        """Every column any template names."""
        cols = set(self.url.columns) | set(self.method.columns)
        for n, v in self.headers:
            cols.update(n.columns)
            cols.update(v.columns)
        if self._body_template is not None:
            cols.update(self._body_template.columns)
        return cols

    def check(self, available: set[str] | frozenset[str]) -> None:
        """Raise :class:`TemplateError` when a template names a column not in ``available``."""
        self.url.check(available, label=f"template {self._url_shown}")
        self.method.check(available)
        for name, value in self.headers:
            name.check(available)
            # The value may hold credentials: name the header, never print the value.
            value.check(available, label=f"the value of header {name.source!r}")
        if self._body_template is not None:
            self._body_template.check(available)

    def _header_block(
        self, origin: Origin, row: Mapping[str, Any] | None, auth: str | None = None
    ) -> bytes:
        lines = [f"Host: {host_header(origin)}"]
        values = row if row is not None else {}
        for name_t, value_t in self.headers:
            name = name_t.render(values)
            value = value_t.render(values)
            if not name_t.is_static and _TOKEN.fullmatch(name) is None:
                raise ValueError(f"header name {name_t.source!r} is not a token after substitution")
            if not value_t.is_static and _bad_header_value(value) is not None:
                raise ValueError(
                    f"the value of header {name!r} has a line break or NUL after substitution"
                )
            lines.append(f"{name}: {value}")
        lines.extend(f"{n}: {v}" for n, v in self._extra)
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def prepare(self, row: Mapping[str, Any], text_rows: bool = False) -> Prepared:
        """Render ``row`` into request bytes.

        ``text_rows``: the row comes from text input (CSV, TSV), so a cell
        where a JSON value goes is read as described in :func:`_json_cell`.

        Raises KeyError (missing column) or ValueError (bad URL, method, header
        or body after substitution); the engine turns both into error rows.
        """
        if self.method.is_static:
            method = self.method.source
        else:
            method = self.method.render(row).upper()
            if method not in METHODS:
                raise ValueError(f"unsupported method {method!r}")
        origin = self._static_origin
        auth = None
        if origin is not None:
            assert self._target is not None
            target = self._target.render(row, text_rows)
            if self._cut_hash:
                target = target.partition("#")[0]
        else:
            column = self._url_column
            if column is not None:
                url = row[column]
                if type(url) is not str:
                    url = _text(url)
            else:
                assert self._whole is not None
                url = self._whole.render(row, text_rows)
            origin, target, auth = _split(url)
            if self._explicit_auth:
                auth = None
        if self._static_headers and auth is None:
            block = self._header_cache.get(origin)
            if block is None:
                block = self._header_cache[origin] = self._header_block(origin, None)
        else:
            block = self._header_block(origin, row, auth)
        if self._body is not None:
            body: bytes | None = self._render_body(row, text_rows)
        else:
            body = self._body_bytes
        head = f"{method} {target} HTTP/1.1\r\n".encode() + block
        if body is not None:
            data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        elif method in _BODY_METHODS:
            data = head + b"Content-Length: 0\r\n\r\n"
        else:
            data = head + b"\r\n"
        return Prepared(origin, data, method, method in IDEMPOTENT_METHODS)

    def _render_body(self, row: Mapping[str, Any], text_rows: bool) -> bytes:
        assert self._body is not None
        try:
            text = self._body.render(row, text_rows)
        except TypeError as exc:  # orjson: a lone surrogate, a value it cannot write
            raise ValueError(f"the body: {exc}") from None
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the body holds a lone surrogate, which UTF-8 cannot encode") from None
        if self._body_check:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"the body is not valid JSON after substitution: {exc}") from None
        return body

    def preparer(self, text_rows: bool = False) -> Callable[[Mapping[str, Any]], Prepared]:
        """:meth:`prepare`, or a shorter twin when this plan allows it (same bytes).

        ``text_rows``: every row value is a ``str`` (CSV, TSV, text input).
        """
        if self._fast is None:
            # Text rows read differently only where a JSON value goes (see _json_cell).
            places = self._body_template.places if self._body_template is not None else None
            if text_rows and places and "value" in places:
                return functools.partial(self.prepare, text_rows=True)
            return self.prepare
        fill = self._target
        assert fill is not None
        start, tail, origin, method, idempotent = self._fast
        fmt = fill.fmt.format
        cut = self._cut_hash
        quick = _not_unreserved
        if not text_rows and fill.quick and fill.get is not None:
            get_any = fill.get
            encoders_any = fill.enc_text
            join_any = "".join

            def prepare_any(row: Mapping[str, Any]) -> Prepared:
                """prepare_fast for columns of any values: see prepare_text."""
                values = [v if type(v) is str else _text(v) for v in get_any(row)]
                if quick(join_any(values)) is None:
                    target = fmt(*values)
                else:
                    target = fmt(*[e(v) for e, v in zip(encoders_any, values, strict=True)])
                    if cut:
                        target = target.partition("#")[0]
                return _new_prepared(
                    Prepared, (origin, (start + target).encode() + tail, method, idempotent)
                )

            return prepare_any
        if not text_rows or not fill.quick or not fill.columns:
            render = fill.render

            def prepare_fast(row: Mapping[str, Any]) -> Prepared:
                """prepare() when only the request target varies: the same bytes, fewer steps."""
                target = render(row)
                if cut:
                    target = target.partition("#")[0]
                return _new_prepared(
                    Prepared, (origin, (start + target).encode() + tail, method, idempotent)
                )

            return prepare_fast

        encoders = fill.enc_text
        if fill.get is None:
            column, encode = fill.columns[0], encoders[0]

            def prepare_one(row: Mapping[str, Any]) -> Prepared:
                """prepare_fast for one column of text."""
                value = row[column]
                if quick(value) is None:
                    target = fmt(value)
                else:
                    target = fmt(encode(value))
                    if cut:
                        target = target.partition("#")[0]
                return _new_prepared(
                    Prepared, (origin, (start + target).encode() + tail, method, idempotent)
                )

            return prepare_one

        get = fill.get
        join = "".join

        def prepare_text(row: Mapping[str, Any]) -> Prepared:
            """prepare_fast for columns of text: when no value holds anything but unreserved
            characters (numbers, ids), one search over them all replaces every encoder."""
            values = get(row)
            if quick(join(values)) is None:
                target = fmt(*values)
            else:
                target = fmt(*[e(v) for e, v in zip(encoders, values, strict=True)])
                if cut:
                    target = target.partition("#")[0]
            return _new_prepared(
                Prepared, (origin, (start + target).encode() + tail, method, idempotent)
            )

        return prepare_text


def _header_pairs(
    headers: list[str] | list[tuple[str, str]] | Mapping[str, str] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    pairs: list[tuple[str, str]] = []
    items: list[str | tuple[str, str]] = list(headers)
    for number, item in enumerate(items, 1):
        if isinstance(item, tuple):
            pairs.append((item[0], item[1]))
            continue
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            # Never the text itself: it may be a credential missing its name.
            raise TemplateError(f"header {number} is not in the form 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    return pairs


#: Headers that carry credentials: dropped when a redirect leaves the origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def redirect(prepared: Prepared, status: int, location: str) -> Prepared | None:
    """The request to send after a ``status`` redirect to ``location``, or None.

    Follows what browsers and requests do (RFC 9110 §15.4): 303 turns any
    method but HEAD into GET, 301/302 turn POST into GET, both without the
    body; 307/308 repeat the method and body. ``Authorization``, ``Cookie`` and
    ``Proxy-Authorization`` are dropped when the new URL has another origin.
    """
    if status not in _REDIRECTS or not location:
        return None
    head, _, body = prepared.data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    base = f"{prepared.origin[0]}://{host_header(prepared.origin)}{target}"
    try:
        origin, new_target = split_url(urljoin(base, location.strip()))
    except ValueError:
        return None
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", b""
        drop_body = True
    else:
        drop_body = False
    cross = origin != prepared.origin
    kept: list[str] = []
    for line in lines[1:]:
        name = line.partition(":")[0].strip().lower()
        if name in ("host", "content-length"):
            continue
        if cross and name in CREDENTIAL_HEADERS:
            continue
        if drop_body and name == "content-type":
            continue
        kept.append(line)
    block = "\r\n".join([f"{method} {new_target} HTTP/1.1", f"Host: {host_header(origin)}", *kept])
    data = block.encode("utf-8", "surrogateescape") + b"\r\n"
    if body or (method in _BODY_METHODS and not drop_body):
        data += b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        data += b"\r\n"
    return Prepared(origin, data, method, method in IDEMPOTENT_METHODS)


def json_body(obj: Any, header_names: Sequence[str]) -> tuple[str | bytes, list[tuple[str, str]]]:
    """``--json`` / ``json=``: the body and the headers it adds, as curl 7.82's ``--json``.

    A str is a JSON body template, bytes are sent as they are, anything else
    (a dict or list holding placeholders) goes through :func:`json_template`.
    ``Content-Type`` and ``Accept`` become ``application/json`` unless
    ``header_names`` already has them.
    """
    body = obj if isinstance(obj, str | bytes) else json_template(obj)
    names = {n.strip().lower() for n in header_names}
    added = [(n, "application/json") for n in ("Content-Type", "Accept") if n.lower() not in names]
    return body, added

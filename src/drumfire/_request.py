"""Templates over input rows, and the plan that turns a row into request bytes.

Substitution is plain text insertion: ``{column}`` is replaced by the row's
value, ``{{`` and ``}}`` stand for literal braces. There is no attribute
access, indexing, format spec or code: the compiled form is a format string
whose fields are positional (``{0}``, ``{1}``) and whose literal braces are
escaped by us, so a value can never be interpreted.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urljoin, urlsplit

import orjson

from ._errors import TemplateError
from ._settings import IDEMPOTENT_METHODS, METHODS

__all__ = ["Origin", "Prepared", "RequestPlan", "Template"]

USER_AGENT = "drumfire/0.1"

Origin = tuple[str, str, int]  # scheme, host, port


def _text(value: Any) -> str:
    """A row value as the text to insert: strings as they are, others as JSON."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return orjson.dumps(value).decode()
    return str(value)


class Template:
    """A text with ``{column}`` placeholders, compiled once and rendered per row."""

    __slots__ = ("_fmt", "_get", "columns", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        fmt: list[str] = []
        columns: list[str] = []
        i, n = 0, len(source)
        while i < n:
            ch = source[i]
            if ch == "{":
                if source.startswith("{{", i):
                    fmt.append("{{")
                    i += 2
                    continue
                end = source.find("}", i + 1)
                name = source[i + 1 : end] if end != -1 else ""
                if end == -1 or "{" in name or not name:
                    raise TemplateError(
                        f"malformed template {source!r}: '{{' at position {i} does not open "
                        "a {column} placeholder (write '{{' for a literal brace)"
                    )
                fmt.append(f"{{{len(columns)}}}")
                columns.append(name)
                i = end + 1
            elif ch == "}":
                if not source.startswith("}}", i):
                    raise TemplateError(
                        f"malformed template {source!r}: lone '}}' at position {i} "
                        "(write '}}}}' for a literal brace)"
                    )
                fmt.append("}}")
                i += 2
            else:
                j = i
                while j < n and source[j] not in "{}":
                    j += 1
                fmt.append(source[i:j])
                i = j
        self._fmt = "".join(fmt)
        self.columns = tuple(columns)
        # Several columns: one C call fetches them all (see render_text).
        self._get = operator.itemgetter(*columns) if len(columns) > 1 else None

    @property
    def is_static(self) -> bool:
        return not self.columns

    def render(self, row: Mapping[str, Any]) -> str:
        """Insert the row's values. Raises KeyError naming a missing column."""
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
                raise TemplateError(
                    f"{what} uses column {column!r}, which the input "
                    f"does not have (columns: {known})"
                )

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


# Characters that may not appear raw in a request-target (RFC 3986 §2, RFC 9112 §3.2):
# controls, space, non-ASCII and a few delimiters. '%' is left alone so existing
# escapes survive; everything else is inserted exactly as the row gives it.
# One negated class (printable ASCII less those delimiters): 4x faster than an alternation.
_UNSAFE_TARGET = re.compile(r"[^\x21\x23-\x3b\x3d\x3f-\x5b\x5d\x5f\x61-\x7a\x7e]")
_SAFE_CHARS = "!#$%&'()*+,-./:;=?@[]~_"


def _clean_target(target: str) -> str:
    if _UNSAFE_TARGET.search(target) is None:
        return target
    return quote(target, safe=_SAFE_CHARS)


def split_url(url: str) -> tuple[Origin, str]:
    """``http://host:port/path?q`` → ((scheme, host, port), '/path?q')."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL {url!r}: only http:// and https:// are supported")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {url!r} has no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"URL {url!r} has a bad port") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return (scheme, host, port), _clean_target(target)


def host_header(origin: Origin) -> str:
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"


class Prepared(NamedTuple):
    """A request ready for the wire (a tuple: made once per row, so kept cheap)."""

    origin: Origin
    data: bytes
    method: str
    idempotent: bool


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_new_prepared = tuple.__new__  # Prepared(...) without NamedTuple's Python-level __new__


class RequestPlan:
    """Turns a row into :class:`Prepared` request bytes.

    Everything that is the same for every row (origin, header block) is
    computed once; per row only the templated parts are rendered.
    """

    def __init__(
        self,
        url: str,
        *,
        method: str | None = None,
        headers: list[str] | list[tuple[str, str]] | Mapping[str, str] | None = None,
        data: str | bytes | None = None,
    ) -> None:
        self.url = Template(url)
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
        self.headers = [(Template(n), Template(v)) for n, v in pairs]
        lower = {n.lower() for n, _ in pairs}
        self._body_template: Template | None = None
        self._body_bytes: bytes | None = None
        if isinstance(data, bytes):
            self._body_bytes = data
        elif data is not None:
            self._body_template = Template(data)
        extra: list[tuple[str, str]] = []
        if "user-agent" not in lower:
            extra.append(("User-Agent", USER_AGENT))
        if "accept" not in lower:
            extra.append(("Accept", "*/*"))
        if data is not None and "content-type" not in lower:
            sample = data if isinstance(data, str) else data.decode("latin-1")
            looks_json = sample.lstrip()[:1] in ("{", "[")
            extra.append(
                (
                    "Content-Type",
                    "application/json" if looks_json else "application/x-www-form-urlencoded",
                )
            )
        self._extra = extra
        self._static_headers = all(n.is_static and v.is_static for n, v in self.headers)
        self._header_cache: dict[Origin, bytes] = {}
        self._static_origin: Origin | None = None
        self._target_template: Template | None = None
        self._find_static_origin()
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
        self.url.check(available)
        self.method.check(available)
        for name, value in self.headers:
            name.check(available)
            # The value may hold credentials: name the header, never print the value.
            value.check(available, label=f"the value of header {name.source!r}")
        if self._body_template is not None:
            self._body_template.check(available)

    def _find_static_origin(self) -> None:
        """Note the origin when the template fixes it; a bad one is a usage error now."""
        try:
            self._split_static_origin()
        except ValueError as exc:  # every row would fail the same way
            raise TemplateError(str(exc)) from None

    def _split_static_origin(self) -> None:
        src = self.url.source
        if self.url.is_static:
            self._static_origin, target = split_url(self.url.render({}))
            self._target_template = Template(target.replace("{", "{{").replace("}", "}}"))
            return
        # If the part before the first placeholder already holds the whole
        # authority ("http://host:port/"), the origin is the same for every row.
        first = src.find("{")
        prefix = src[:first]
        scheme_end = prefix.find("://")
        if scheme_end == -1:
            return
        slash = prefix.find("/", scheme_end + 3)
        if slash == -1:
            return
        self._static_origin, _ = split_url(prefix[:slash] + "/")
        self._target_template = Template(src[slash:])

    def _header_block(self, origin: Origin, row: Mapping[str, Any] | None) -> bytes:
        lines = [f"Host: {host_header(origin)}"]
        for name_t, value_t in self.headers:
            name = name_t.render(row if row is not None else {})
            value = value_t.render(row if row is not None else {})
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} has a line break or bad name after substitution")
            lines.append(f"{name}: {value}")
        lines.extend(f"{n}: {v}" for n, v in self._extra)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def prepare(self, row: Mapping[str, Any]) -> Prepared:
        """Render ``row`` into request bytes.

        Raises KeyError (missing column) or ValueError (bad URL, method or
        header after substitution); the engine turns both into error rows.
        """
        if self.method.is_static:
            method = self.method.source
        else:
            method = self.method.render(row).upper()
            if method not in METHODS:
                raise ValueError(f"unsupported method {method!r}")
        origin = self._static_origin
        if origin is not None:
            assert self._target_template is not None
            target = _clean_target(self._target_template.render(row))
        else:
            origin, target = split_url(self.url.render(row))
        if self._static_headers:
            block = self._header_cache.get(origin)
            if block is None:
                block = self._header_cache[origin] = self._header_block(origin, None)
        else:
            block = self._header_block(origin, row)
        if self._body_template is not None:
            body: bytes | None = self._body_template.render(row).encode("utf-8")
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

    def preparer(self, text_rows: bool = False) -> Callable[[Mapping[str, Any]], Prepared]:
        """:meth:`prepare`, or a shorter twin when this plan allows it (same bytes).

        ``text_rows``: every row value is a ``str`` (CSV, TSV, text input).
        """
        if self._fast is None:
            return self.prepare
        assert self._target_template is not None
        start, tail, origin, method, idempotent = self._fast
        template = self._target_template
        render = template.render_text if text_rows else template.render
        unsafe = _UNSAFE_TARGET.search

        def prepare_fast(row: Mapping[str, Any]) -> Prepared:
            """prepare() when only the request target varies: the same bytes, fewer steps."""
            target = render(row)
            if unsafe(target) is not None:
                target = quote(target, safe=_SAFE_CHARS)
            return _new_prepared(
                Prepared, (origin, (start + target).encode() + tail, method, idempotent)
            )

        return prepare_fast


def _header_pairs(
    headers: list[str] | list[tuple[str, str]] | Mapping[str, str] | None,
) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    pairs: list[tuple[str, str]] = []
    for item in headers:
        if isinstance(item, tuple):
            pairs.append((item[0], item[1]))
            continue
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise TemplateError(f"header {item!r} is not in the form 'Name: value'")
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

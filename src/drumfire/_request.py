"""The request plan: turns a row into request bytes, and follows redirects.

Templates and their encoding rules are in :mod:`drumfire._template` and
:mod:`drumfire._encode`, URLs in :mod:`drumfire._url`, bodies in :mod:`drumfire._body`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urljoin

from ._body import Body, default_content_type, media_type_of
from ._encode import Fill, not_unreserved
from ._errors import TemplateError
from ._settings import IDEMPOTENT_METHODS, METHODS
from ._template import Template, as_text
from ._url import (
    AFTER_AUTHORITY,
    DotSegments,
    Origin,
    clean_target,
    dot_segment_check,
    host_header,
    shown_url,
    split_url,
    split_with_auth,
    url_encoder,
    url_places,
)

__all__ = [
    "CREDENTIAL_HEADERS",
    "USER_AGENT",
    "Origin",
    "Prepared",
    "RequestPlan",
    "asks_close",
    "redirect",
]

USER_AGENT = "drumfire/0.1"


class Prepared(NamedTuple):
    """A request ready for the wire (a tuple: made once per row, so kept cheap)."""

    origin: Origin
    data: bytes
    method: str
    idempotent: bool


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_new_prepared = tuple.__new__  # Prepared(...) without NamedTuple's Python-level __new__
#: Values whose text has no dot-only form: not checked for '.' or '..' segments.
_NEVER_DOTS = frozenset({int, float, bool})

# RFC 9110 §5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 §5.5: a field value is visible characters, spaces and tabs; servers answer 400
# to any other control character, so it is refused here instead (the tab stays).
_bad_header_value = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search
# The message framing (RFC 9112 §6) is drumfire's: a second Content-Length or a
# Transfer-Encoding beside its own makes the request ambiguous (request smuggling,
# RFC 9112 §6.3, §11.2), so a header that would set it is refused.
_FRAMING = {
    "content-length": "drumfire sets it from the body",
    "transfer-encoding": "drumfire sends a body with Content-Length, never chunked",
}


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
        json: bool = False,
    ) -> None:
        """``json``: ``data`` is a JSON body (``--json``, ``json=``), encoded as JSON
        whatever the ``Content-Type`` (see :class:`~drumfire._body.Body`)."""
        if data is not None and not isinstance(data, str | bytes):
            raise TemplateError(
                f"the body must be text or bytes, not {type(data).__name__} "
                "(for a JSON object, use json= or --json)"
            )
        self._url_shown = repr(shown_url(url))  # its user info hidden, for messages
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
        # A Connection header of the user's is sent as given. One with the "close"
        # option is honoured (RFC 9112 §9.6): when a request may carry it, nothing is
        # pipelined, and the engine closes the connection once it is answered.
        self.may_close = any(
            not n.is_static
            or (n.source.lower() == "connection" and (not v.is_static or _closes(v.source)))
            for n, v in self.headers
        )
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
                media_type = media_type_of(value.source) if value.is_static else None
                break
        else:
            if data is not None:
                media_type = "application/json" if json else default_content_type(data)
                extra.append(("Content-Type", media_type))
        self._body = Body(data, media_type, json=json) if data is not None else None
        self._body_template = self._body.template if self._body is not None else None
        self._extra = extra
        self._static_headers = all(n.is_static and v.is_static for n, v in self.headers)
        self._header_cache: dict[Origin, bytes] = {}
        self._static_origin: Origin | None = None
        self._target: Fill | None = None  # the request-target, when the origin is static
        self._whole: Fill | None = None  # the whole URL, when it is not
        self._url_column: str | None = None  # the template is only {column}: a URL
        self._cut_hash = False  # a {+x} value may bring a fragment: cut it off
        # Refuses a row whose value would be a '.' or '..' path segment (None: none can).
        self._dots: DotSegments | None = None
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
        hosts = 0
        for number, (name, value) in enumerate(self.headers, 1):
            if name.is_static and _TOKEN.fullmatch(name.render({})) is None:
                # The name is not printed: a mistyped header may hold a credential.
                raise TemplateError(
                    f"header {number}: its name is not a token (RFC 9110: letters, digits "
                    "and !#$%&'*+-.^_`|~ only)"
                )
            lower = name.source.lower() if name.is_static else ""
            if lower in _FRAMING:
                raise TemplateError(f"header {name.source!r} (-H): {_FRAMING[lower]}; remove it")
            hosts += lower == "host"
            if hosts > 1:
                raise TemplateError("header 'Host' (-H) is given twice: a request has one Host")
            if lower == "host" and value.is_static and not value.source.strip():
                # RFC 9112 §3.2: a request to a URL with a host sends it (curl's -H 'Host:'
                # removes the header; here the URL's host is sent when -H Host is left out).
                raise TemplateError("header 'Host' (-H) is empty; leave it out to send the URL's")
            if value.is_static and _bad_header_value(value.render({})) is not None:
                raise TemplateError(
                    f"header {name.source!r}: its value holds a line break, NUL or other "
                    "control character"
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
            origin, target, auth = split_with_auth(t.render({}))
            self._set_static_origin(origin, auth)
            self._target = Fill([target], [], [])
            return
        places, cut = url_places(t.literals)
        literals = list(t.literals)
        columns = list(t.columns)
        raw = list(t.raw)
        if cut is not None:  # a fragment is never sent: drop it and its placeholders
            k, pos = cut
            literals = [*literals[:k], literals[k][:pos]]
            columns, raw, places = columns[:k], raw[:k], places[:k]
        encoders = [url_encoder(p, r, c) for p, r, c in zip(places, raw, columns, strict=True)]
        # If the text before the first placeholder holds the whole authority
        # ("http://host:port/"), the origin is the same for every row.
        prefix = literals[0]
        scheme_end = prefix.find("://")
        end = AFTER_AUTHORITY.search(prefix, scheme_end + 3) if scheme_end != -1 else None
        if end is None:
            self._whole = Fill(literals, columns, encoders)
            self._dots = dot_segment_check(literals, columns, places, raw)
            if literals == ["", ""]:  # only a whole URL ({url}, the URL-list input)
                self._url_column = columns[0]
            return
        origin, _, auth = split_with_auth(prefix[: end.start()] + "/")
        self._set_static_origin(origin, auth)
        head = prefix[end.start() :]
        literals[0] = head if head.startswith("/") else "/" + head
        cleaned = [clean_target(lit) for lit in literals]
        self._target = Fill(cleaned, columns, encoders, quick=True)
        self._dots = dot_segment_check(cleaned, columns, places, raw)
        self._cut_hash = any(raw)

    def _set_static_origin(self, origin: Origin, auth: str | None) -> None:
        self._static_origin = origin
        if auth is not None and not self._explicit_auth:
            self._extra.append(("Authorization", auth))

    # -- rendering ---------------------------------------------------------------

    @property
    def static_origin(self) -> Origin | None:
        """The origin of every row when the URL template fixes it (None: the rows say)."""
        return self._static_origin

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
        # The URL's placeholders are shown: a brace in its literal text (a password
        # included) must be doubled, so single braces hold what the user meant as one.
        self.url.check(available, label=f"--url {self._url_shown}", secret=False)
        self.method.check(available)
        for name, value in self.headers:
            name.check(available)
            # The value may hold credentials: name the header, never print the value.
            value.check(available, label=f"the value of header {name.source!r}")
        if self._body_template is not None:
            body = self._body_template
            body.check(available, label=f"the body {body.source!r}", secret=False)

    def _header_block(
        self, origin: Origin, row: Mapping[str, Any] | None, auth: str | None = None
    ) -> bytes:
        # Host comes first (RFC 9112 §3.2); a Host header of the user's takes its
        # place, so the request has exactly one (as curl: for virtual hosts).
        lines = [""]
        host: str | None = None
        given: set[str] = set()  # the names templated names came out as (lower case)
        values = row if row is not None else {}
        for name_t, value_t in self.headers:
            name = name_t.render(values)
            value = value_t.render(values)
            lower = name.lower()
            if not name_t.is_static:
                if _TOKEN.fullmatch(name) is None:
                    raise ValueError(
                        f"header name {name_t.source!r} is not a token after substitution"
                    )
                if lower in _FRAMING:
                    raise ValueError(
                        f"header name {name_t.source!r} is {name!r} after substitution: "
                        f"{_FRAMING[lower]}"
                    )
                given.add(lower)
            if not value_t.is_static and value:
                if _bad_header_value(value) is not None:
                    raise ValueError(
                        f"the value of header {name!r} has a line break, NUL or other control "
                        "character after substitution"
                    )
                if value[0] in " \t" or value[-1] in " \t":
                    # Not part of the value (RFC 9110 §5.5): the server would read another
                    # value than the row's. Refused, as httpx (h11) does.
                    raise ValueError(
                        f"the value of header {name!r} starts or ends with a space or tab "
                        "after substitution, which a server would drop (RFC 9110 §5.5)"
                    )
            if lower == "host":
                if host is not None:
                    raise ValueError("two Host headers after substitution: a request has one")
                if not value.strip():
                    raise ValueError("the Host header is empty after substitution")
                host = f"{name}: {value}"
                continue
            lines.append(f"{name}: {value}")
        lines[0] = host if host is not None else f"Host: {host_header(origin)}"
        # drumfire's defaults (User-Agent, Accept, Content-Type, the URL's credentials),
        # unless the user's header gives one: a fixed name left them out already, a
        # templated name that comes out as one replaces it in this request (as curl's -H).
        if given:
            lines.extend(f"{n}: {v}" for n, v in self._extra if n.lower() not in given)
            if "authorization" in given:
                auth = None
        else:
            lines.extend(f"{n}: {v}" for n, v in self._extra)
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def prepare(self, row: Mapping[str, Any], text_rows: bool = False) -> Prepared:
        """Render ``row`` into request bytes.

        ``text_rows``: the row comes from text input (CSV, TSV), so a cell
        where a JSON value goes is read as described in :func:`json_cell`.

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
            if self._dots is not None:
                self._dots(row)
        else:
            column = self._url_column
            if column is not None:
                url = row[column]
                if type(url) is not str:
                    url = as_text(url)
            else:
                assert self._whole is not None
                url = self._whole.render(row, text_rows)
                if self._dots is not None:
                    self._dots(row)
            origin, target, auth = split_with_auth(url)
            if self._explicit_auth:
                auth = None
        if self._static_headers and auth is None:
            block = self._header_cache.get(origin)
            if block is None:
                block = self._header_cache[origin] = self._header_block(origin, None)
        else:
            block = self._header_block(origin, row, auth)
        body = self._body.render(row, text_rows) if self._body is not None else None
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
            # Text rows read differently only where a JSON value goes (see json_cell).
            places = self._body_template.places if self._body_template is not None else None
            if text_rows and places and "value" in places:
                return functools.partial(self.prepare, text_rows=True)
            return self.prepare
        fill = self._target
        assert fill is not None
        start, tail, origin, method, idempotent = self._fast
        fmt = fill.fmt.format
        cut = self._cut_hash
        dots = self._dots
        # The dot-segment check, cheaply: a value looked up in the few that would
        # make its segment '.' or '..' (the call only to raise), or, when a
        # segment holds several values, the call on every row.
        single = dots.single if dots is not None and not dots.several else ()
        named = dots.named if dots is not None and not dots.several else ()
        every = dots if dots is not None and dots.several else None
        refuse: Callable[[Mapping[str, Any]], None] = dots if dots is not None else _no_check

        def check_values(values: list[str], row: Mapping[str, Any]) -> None:
            """Refuse ``row`` if one of its values makes its segment '.' or '..'."""
            for i, bad in single:
                if values[i] in bad:
                    refuse(row)

        # Without a dot in any value, none is '.' or '..' (the usual row: one search).
        dotless = "" if dots is not None and dots.empty else "."
        quick = not_unreserved
        if not text_rows and fill.quick and fill.get is not None:
            get_any = fill.get
            encoders_any = fill.enc_text
            join_any = "".join

            def prepare_any(row: Mapping[str, Any]) -> Prepared:
                """prepare_fast for columns of any values: see prepare_text."""
                values = [v if type(v) is str else as_text(v) for v in get_any(row)]
                joined = join_any(values)
                if quick(joined) is None:
                    target = fmt(*values)
                else:
                    target = fmt(*[e(v) for e, v in zip(encoders_any, values, strict=True)])
                    if cut:
                        target = target.partition("#")[0]
                if single and dotless in joined:
                    check_values(values, row)
                elif every is not None:
                    every(row)
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
                for name, bad in named:
                    value = row[name]
                    if type(value) is str:
                        if value in bad:
                            refuse(row)
                    elif type(value) not in _NEVER_DOTS and as_text(value) in bad:
                        refuse(row)  # a number's text is never '.' or '..': not looked at
                if every is not None:
                    every(row)
                return _new_prepared(
                    Prepared, (origin, (start + target).encode() + tail, method, idempotent)
                )

            return prepare_fast

        encoders = fill.enc_text
        if fill.get is None:
            column, encode = fill.columns[0], encoders[0]
            bad_one = single[0][1] if single else None

            def prepare_one(row: Mapping[str, Any]) -> Prepared:
                """prepare_fast for one column of text."""
                value = row[column]
                if quick(value) is None:
                    target = fmt(value)
                else:
                    target = fmt(encode(value))
                    if cut:
                        target = target.partition("#")[0]
                if bad_one is not None and value in bad_one:
                    refuse(row)
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
            joined = join(values)
            if quick(joined) is None:
                target = fmt(*values)
            else:
                target = fmt(*[e(v) for e, v in zip(encoders, values, strict=True)])
                if cut:
                    target = target.partition("#")[0]
            if single and dotless in joined:
                check_values(values, row)
            elif every is not None:
                every(row)
            return _new_prepared(
                Prepared, (origin, (start + target).encode() + tail, method, idempotent)
            )

        return prepare_text


def _no_check(row: Mapping[str, Any]) -> None:
    pass


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


def _closes(value: str) -> bool:
    """Whether a ``Connection`` value holds the "close" option (a comma-separated list)."""
    return any(option.strip().lower() == "close" for option in value.split(","))


def asks_close(data: bytes) -> bool:
    """Whether a request's head has ``Connection: close`` (RFC 9112 §9.6): the client
    must then close the connection once the answer is read."""
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "connection" and _closes(value):
            return True
    return False


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
    # The Host the request had (a -H Host too) stays for the same origin; another
    # origin gets its own (as curl keeps a custom Host only for the first host).
    host = f"Host: {host_header(origin)}"
    for line in lines[1:]:
        name = line.partition(":")[0].strip().lower()
        if name == "host" and not cross:
            host = line
        if name in ("host", "content-length"):
            continue
        if cross and name in CREDENTIAL_HEADERS:
            continue
        if drop_body and name == "content-type":
            continue
        kept.append(line)
    block = "\r\n".join([f"{method} {new_target} HTTP/1.1", host, *kept])
    data = block.encode("utf-8", "surrogateescape") + b"\r\n"
    if body or (method in _BODY_METHODS and not drop_body):
        data += b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        data += b"\r\n"
    return Prepared(origin, data, method, method in IDEMPOTENT_METHODS)

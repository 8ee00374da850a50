"""URLs: splitting one into origin and request-target, and where a URL template's
placeholders land (host, user info, path, query)."""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ._encode import host_value, path_value, query_value, reserved_value, verbatim
from ._template import as_text

__all__ = [
    "AFTER_AUTHORITY",
    "DotSegments",
    "Origin",
    "clean_target",
    "dot_segment_check",
    "host_header",
    "shown_url",
    "split_url",
    "split_with_auth",
    "url_encoder",
    "url_places",
]

Origin = tuple[str, str, int]  # scheme, host, port

# Characters that may not appear raw in a request-target (RFC 3986 §2, RFC 9112 §3.2):
# controls, space, non-ASCII and a few delimiters. One negated class (printable ASCII
# less those delimiters): 4x faster than an alternation. '%' is looked at apart
# (_TARGET_WITH_PERCENT), so that existing escapes survive.
_UNSAFE_TARGET = re.compile(r"[^\x21\x23-\x3b\x3d\x3f-\x5b\x5d\x5f\x61-\x7a\x7e]")
_TARGET_WITH_PERCENT = re.compile(r"[^\x21\x23\x24\x26-\x3b\x3d\x3f-\x5b\x5d\x5f\x61-\x7a\x7e]")
_SAFE_CHARS = "!#$%&'()*+,-./:;=?@[]~_"
_HOST = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%:-]+")
# RFC 3986 §2.1: '%' starts an escape of two hex digits; any other '%' is a '%' (%25).
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What urlsplit removes from a URL anywhere in it (WHATWG URL: tab, CR, LF).
_STRIPPED = re.compile(r"[\t\r\n]")
_STRIPPED_ESCAPES = {"\t": "%09", "\r": "%0D", "\n": "%0A"}
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_ESCAPED_DOT = re.compile(r"%2[eE]")
# An escaped control character in a host: no host name has one.
_ESCAPED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")


def clean_target(target: str) -> str:
    """``target`` as a valid request-target: what may not appear raw is percent-encoded,
    and a '%' that does not start an escape becomes ``%25``; existing escapes stay."""
    if _TARGET_WITH_PERCENT.search(target) is None:  # the usual target: one search
        return target
    if _UNSAFE_TARGET.search(target) is not None:
        target = quote(target, safe=_SAFE_CHARS)
    elif _LONE_PERCENT.search(target) is None:  # only valid escapes: as it is
        return target
    return _LONE_PERCENT.sub("%25", target)


def shown_url(url: str) -> str:
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


def split_with_auth(url: str) -> tuple[Origin, str, str | None]:
    """``http://u:p@host:port/path?q`` → ((scheme, host, port), '/path?q', Basic auth).

    Control characters and spaces around the URL are trimmed (as WHATWG URL parsers
    do: a line read from a file keeps its line break). Inside it, tab, CR and LF are
    percent-encoded like every other control character: urlsplit would drop them,
    and the request would not be what the URL says.
    """
    url = url.strip(_C0_OR_SPACE)
    if _STRIPPED.search(url) is not None:
        url = _STRIPPED.sub(lambda m: _STRIPPED_ESCAPES[m.group()], url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"unsupported URL {shown_url(url)!r}: only http:// and https:// are supported"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"URL {shown_url(url)!r} has no host")
    if _ESCAPED_CONTROL.search(host) is not None:
        raise ValueError(f"URL {shown_url(url)!r} has a bad host")
    if _HOST.fullmatch(host) is None:
        try:  # an internationalized name: its ASCII form (IDNA), as browsers send it
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"URL {shown_url(url)!r} has a bad host") from None
        if _HOST.fullmatch(host) is None:
            raise ValueError(f"URL {shown_url(url)!r} has a bad host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"URL {shown_url(url)!r} has a bad port") from None
    target = parts.path or "/"
    # An empty query is kept: '/x?' is not '/x' (RFC 3986 §6.2.3), and curl and wrk
    # send it. urlsplit says '' for both; a '?' before any '#' starts the query.
    if parts.query or "?" in url.partition("#")[0]:
        target += "?" + parts.query
    auth = _basic_auth(parts.username, parts.password) if "@" in parts.netloc else None
    return (scheme, host, port), clean_target(target), auth


def split_url(url: str) -> tuple[Origin, str]:
    """``http://host:port/path?q`` → ((scheme, host, port), '/path?q')."""
    origin, target, _ = split_with_auth(url)
    return origin, target


def host_header(origin: Origin) -> str:
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return host if port == default else f"{host}:{port}"


AFTER_AUTHORITY = re.compile(r"[/?#]")
_AFTER_PATH = re.compile(r"[?#]")
_STATE_AT = {"/": "path", "?": "query", "#": "fragment"}


def url_places(literals: Sequence[str]) -> tuple[list[str], tuple[int, int] | None]:
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
                if j != -1 and (state == "scheme" or AFTER_AUTHORITY.search(lit, i, j) is None):
                    state, i = "authority", j + 3
                    continue
                if state == "scheme":
                    break
                state = "path"  # the URL before ended somewhere in its path (or query)
                continue
            pattern = AFTER_AUTHORITY if state == "authority" else _AFTER_PATH
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


def url_encoder(place: str, raw: bool, column: str) -> Callable[[str], str]:
    """The encoder for a placeholder at ``place`` (see :func:`url_places`)."""
    if place == "url":
        return verbatim  # a URL or its start: cleaned with the whole URL by split_with_auth
    if raw:
        return verbatim if place in ("host", "userinfo") else reserved_value
    if place == "host":
        return host_value(column)
    return query_value if place == "query" else path_value  # userinfo: as a path segment


_DOTS = (".", "..")


class DotSegments:
    """The check that no row's values make a whole path segment ``.`` or ``..``.

    Servers remove such segments (RFC 3986 §5.2.4), and ``%2E`` is a dot to them
    (§6.2.2.2), so no encoding can send one as a value: ``/p/{v}/end`` with ``..``
    would reach ``/end``. Calling the check with a row raises ValueError for such
    a row. Made by :func:`dot_segment_check` for the segments it could happen
    to: those with a ``{column}`` in the path and no literal text but dots.

    ``single``: per segment of one placeholder, (its index among the template's
    columns, the values that would make it a dot segment), for the short
    preparers to look up without a call (``named``: the same by column name;
    ``empty``: whether an empty value is one of them); ``several``: a segment
    holds more than one placeholder (then only a call tells).
    """

    __slots__ = ("_names", "_segments", "empty", "named", "several", "single")

    def __init__(self, segments: list[tuple[str | int, ...]], columns: Sequence[str]) -> None:
        self._segments = segments
        self._names = tuple(columns)
        single: list[tuple[int, frozenset[str]]] = []
        for segment in segments:
            found = [p for p in segment if isinstance(p, int)]
            if len(found) == 1:
                k = segment.index(found[0])
                before = "".join(p for p in segment[:k] if isinstance(p, str))
                after = "".join(p for p in segment[k + 1 :] if isinstance(p, str))
                bad = frozenset(v for v in ("", ".", "..") if before + v + after in _DOTS)
                single.append((found[0], bad))
        self.single = tuple(single)
        self.named = tuple((self._names[i], bad) for i, bad in single)
        self.empty = any("" in bad for _, bad in single)  # an empty value can make one
        self.several = len(single) < len(segments)

    def __call__(self, row: Mapping[str, Any]) -> None:
        for name, bad in self.named:
            value = row[name]
            if (value if type(value) is str else as_text(value)) in bad:
                self._check_segments(row)
        if self.several:
            self._check_segments(row)

    def _check_segments(self, row: Mapping[str, Any]) -> None:
        """Raise the error for the first segment of ``row`` that is '.' or '..', if any."""
        names = self._names
        for segment in self._segments:
            values = {
                p: (v if type(v := row[names[p]]) is str else as_text(v))
                for p in segment
                if isinstance(p, int)
            }
            made = "".join(p if isinstance(p, str) else values[p] for p in segment)
            if made in _DOTS:
                shown = ", ".join(repr(v) for v in values.values())
                cols = ", ".join(repr(names[i]) for i in values)
                many = len(values) > 1
                raise ValueError(
                    f"the value{'s' * many} {shown} (column{'s' * many} {cols}) would be a "
                    f"{made!r} path segment, which moves the path"
                )


def dot_segment_check(
    literals: Sequence[str], columns: Sequence[str], places: Sequence[str], raw: Sequence[bool]
) -> DotSegments | None:
    """The :class:`DotSegments` check of a URL template, or None when no value can
    make a dot segment. A ``{+column}`` may carry URL syntax, dot segments
    included: its segment is not checked."""
    segments: list[list[str | int]] = []
    current: list[str | int] = []
    for k, lit in enumerate(literals):
        end = _AFTER_PATH.search(lit)  # the query (or fragment) starts: no more path
        # '%2E' is a '.' (RFC 3986 §6.2.2.2): a literal one counts as one here.
        path = _ESCAPED_DOT.sub(".", lit if end is None else lit[: end.start()])
        head, *rest = path.split("/")
        current.append(head)
        for part in rest:
            segments.append(current)
            current = [part]
        if end is not None:
            break
        if k < len(columns):
            current.append(k)
    segments.append(current)
    checked: list[tuple[str | int, ...]] = []
    for segment in segments:
        found = [p for p in segment if isinstance(p, int)]
        text = "".join(p for p in segment if isinstance(p, str))
        if (
            found
            and len(text) <= 2
            and not text.strip(".")
            and all(places[i] == "path" and not raw[i] for i in found)
        ):
            checked.append(tuple(p for p in segment if p != ""))
    return DotSegments(checked, columns) if checked else None

"""Request routing of the demo server: one handler per endpoint, a request in, a reply out
(no I/O), and the server's shared state (counters, capacity, latency).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any, Final, NamedTuple, Protocol
from urllib.parse import parse_qsl, unquote_to_bytes

import httptools
import orjson

from ._answers import JSON_DOCUMENT, QUOTE_PARTS, SLOW_QUOTE_DELAY, quote_answer, route_answer

__all__ = ["Connection", "Reply", "State", "dispatch", "error"]


class Connection(Protocol):
    """An open connection of the server, as the state sees it (the server's protocol)."""

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Request routing
# --------------------------------------------------------------------------------------------


class Reply(NamedTuple):
    status: int
    body: bytes
    delay: float = 0.0  # extra seconds on top of the server latency (``slow=true``)
    headers: bytes = b""  # extra raw header lines, each ending in CRLF


class _Request(NamedTuple):
    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _json(status: int, obj: Any) -> Reply:
    return Reply(status, orjson.dumps(obj))


def error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"code": code, "message": message})


class State:
    """Per-server settings and counters, shared by all of its connections."""

    def __init__(self, latency: float, jitter: float, seed: int) -> None:
        if not (latency >= 0.0 and math.isfinite(latency)):
            raise ValueError("latency must be a finite number >= 0")
        if not (jitter >= 0.0 and math.isfinite(jitter)):
            raise ValueError("jitter must be a finite number >= 0")
        self.latency = latency
        self.jitter = jitter
        self.rng = random.Random(seed)
        self.served = 0
        self.quote_counter = 0
        # capacity: answers in preparation at once; beyond it, 503 at once (a
        # server that admits N requests at a time, for the adaptive limiter).
        self.capacity: int | None = None
        self.busy = 0
        self.peak_busy = 0  # most answers in preparation at once (with capacity set)
        self.rejected = 0
        self.connections: set[Connection] = set()

    def delay(self, extra: float) -> float:
        """Latency plus a uniform draw in ``[0, jitter]``: never below ``latency``."""
        delay = self.latency + extra
        if self.jitter:
            delay += self.rng.uniform(0.0, self.jitter)
        return delay

    def close_connections(self) -> None:
        for proto in list(self.connections):
            proto.close()


def _handle_json(state: State, req: _Request) -> Reply:
    return Reply(200, JSON_DOCUMENT)


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORDS_RE: Final = re.compile(rf"({_NUM}),({_NUM});({_NUM}),({_NUM})")


def _handle_route(state: State, req: _Request) -> Reply:
    text = req.path[len(_ROUTE_PREFIX) :]
    match = _COORDS_RE.fullmatch(text)
    if match is None:
        return error(400, "InvalidUrl", f"Expected lon1,lat1;lon2,lat2 coordinates, got {text!r}")
    lon1, lat1, lon2, lat2 = (float(g) for g in match.groups())
    status, body = route_answer(lon1, lat1, lon2, lat2)
    return _json(status, body)


_TRUE: Final = frozenset({"1", "true", "yes", "on"})


def _handle_quote(state: State, req: _Request) -> Reply:
    params = dict(parse_qsl(req.query, keep_blank_values=True))
    part: int | None = None
    if params.get("part"):
        try:
            part = int(params["part"])
        except ValueError:
            part = 0
        if part not in QUOTE_PARTS:
            return error(400, "InvalidPart", f"part must be 1, 2 or 3, got {params['part']!r}")
    if params.get("seed"):
        try:
            index = int(params["seed"])
        except ValueError:
            return error(400, "InvalidSeed", f"seed must be an integer, got {params['seed']!r}")
    else:
        index = state.quote_counter
        state.quote_counter += 1
    slow = params.get("slow", "").lower() in _TRUE
    body = orjson.dumps(quote_answer(index, part))
    return Reply(200, body, SLOW_QUOTE_DELAY if slow else 0.0)


def _decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _handle_echo(state: State, req: _Request) -> Reply:
    headers: dict[str, str] = {}
    for raw_name, raw_value in req.headers:
        name, value = raw_name.decode("latin-1").lower(), _decode_header(raw_value)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return _json(
        200,
        {
            "method": req.method,
            "path": req.path,
            "query": dict(parse_qsl(req.query, keep_blank_values=True)),
            "raw_query": req.query,
            "headers": headers,
            "body": req.body.decode("utf-8", "replace"),
            "body_length": len(req.body),
        },
    )


def _handle_status(state: State, req: _Request) -> Reply:
    text = req.path[len(_STATUS_PREFIX) :]
    if not (text.isascii() and text.isdigit() and 200 <= int(text) <= 599):
        return error(400, "InvalidStatus", f"status must be an integer in 200..599, got {text!r}")
    code = int(text)
    return _json(code, {"status": code})


_Handler = Callable[[State, _Request], Reply]
_GET: Final = frozenset({"GET"})
_ROUTE_PREFIX: Final = "/route/v1/driving/"
_STATUS_PREFIX: Final = "/status/"

_EXACT: Final[dict[str, tuple[frozenset[str], _Handler]]] = {
    "/json": (_GET, _handle_json),
    "/quote": (_GET, _handle_quote),
    "/quote/uniform": (_GET, _handle_quote),
    "/echo": (frozenset({"GET", "POST"}), _handle_echo),
}
_PREFIXES: Final[tuple[tuple[str, tuple[frozenset[str], _Handler]], ...]] = (
    (_ROUTE_PREFIX, (_GET, _handle_route)),
    (_STATUS_PREFIX, (_GET, _handle_status)),
)


def dispatch(
    state: State, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> Reply:
    """Map one parsed request to its reply; never raises (a bug answers 500)."""
    try:
        if target[:4].lower() == b"http":  # absolute-form target, e.g. from a proxy-style client
            try:
                parsed = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                return error(400, "BadRequest", "Malformed request target")
            target = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        raw_path, _, raw_query = target.partition(b"?")
        raw_path = raw_path.partition(b"#")[0]
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        path = raw_path.decode("utf-8", "replace")
        query = raw_query.partition(b"#")[0].decode("utf-8", "replace")
        entry = _EXACT.get(path)
        if entry is None:
            entry = next((e for p, e in _PREFIXES if path.startswith(p)), None)
            if entry is None:
                return error(404, "NotFound", f"No such path: {path}")
        allowed, handler = entry
        if method not in allowed:
            reply = error(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return reply._replace(headers=b"Allow: %s\r\n" % ", ".join(sorted(allowed)).encode())
        return handler(state, _Request(method, path, query, headers, body))
    except Exception as exc:  # pragma: no cover - a bug; answer instead of dropping the client
        return error(500, "InternalError", f"{type(exc).__name__}: {exc}")

"""A small, fast HTTP/1.1 demo server for ``drumfire serve``, ``drumfire demo`` and the tests.

It is written directly on ``asyncio.Protocol`` + ``httptools`` + ``orjson`` (and uvloop when
available) rather than on a framework, because it has to out-run a high-throughput client on
a 2-core machine: any per-request overhead on the server side would show up as client slowness.

Endpoints (all answers are JSON with a ``Content-Length``):

* ``GET /route/v1/driving/{lon1},{lat1};{lon2},{lat2}`` -- an OSRM-shaped route, see
  :func:`route_answer` (deterministic, ~30 % of pairs answer 400 ``NoRoute``).
* ``GET /quote`` and ``GET /quote/uniform?part=P&seed=N&slow=true`` -- the "Random Quoter",
  see :func:`quote_answer`; ``slow=true`` answers 500 ms later.
* ``GET|POST /echo`` -- the request as the server saw it.
* ``GET /status/{code}`` -- answers that status with ``{"status": code}``.
* ``GET /json`` -- a fixed ~560-byte OSRM-shaped document, for throughput tests.

Unknown paths answer 404 and wrong methods 405, both as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import http
import math
import os
import random
import re
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, cast
from urllib.parse import parse_qsl, unquote_to_bytes

import httptools
import orjson

__all__ = [
    "JSON_DOCUMENT",
    "QUOTES",
    "DemoServer",
    "main",
    "quote_answer",
    "route_answer",
    "run_server",
    "serve",
    "write_sample_routes",
]

# --------------------------------------------------------------------------------------------
# Pure answer functions (shared with the tests, which compute expected answers with them)
# --------------------------------------------------------------------------------------------

EARTH_RADIUS_M: Final = 6_371_008.8
"""Mean earth radius (IUGG); any fixed value would do, it only has to be stable."""

ROUTE_DETOUR: Final = 1.3
"""Roads are longer than the great circle; a constant factor keeps answers plausible."""

ROUTE_SPEED_MPS: Final = 11.0
"""About 40 km/h: a city average, so durations look like OSRM's for Helsinki."""

NO_ROUTE_PERCENT: Final = 30
"""Share of coordinate pairs answering ``NoRoute``, so clients meet realistic 400s."""

_STREETS: Final = (
    "Mannerheimintie",
    "Aleksanterinkatu",
    "Pohjoisesplanadi",
    "Hämeentie",
    "Runeberginkatu",
    "Fredrikinkatu",
    "Bulevardi",
    "Unioninkatu",
    "Mechelininkatu",
    "Sörnäisten rantatie",
    "Itämerenkatu",
    "Tehtaankatu",
)


def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _invalid_url(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"code": "InvalidUrl", "message": message}


def _waypoint(text: bytes, lon: float, lat: float) -> dict[str, Any]:
    name = _STREETS[zlib.crc32(text) % len(_STREETS)]
    return {"hint": "", "distance": 0.0, "name": name, "location": [round(lon, 6), round(lat, 6)]}


def route_answer(lon1: float, lat1: float, lon2: float, lat2: float) -> tuple[int, dict[str, Any]]:
    """Return ``(status, body)`` the server gives for a route, so tests can predict it exactly.

    The distance is the haversine distance times :data:`ROUTE_DETOUR` (rounded to 0.1 m) and
    the duration is distance / :data:`ROUTE_SPEED_MPS` (rounded to 0.1 s). Whether a pair has
    no route is decided by the CRC-32 of the coordinates printed with 6 decimals, so it is
    stable across runs, processes and Python versions.
    """
    if not math.isfinite(lon1 + lat1 + lon2 + lat2):
        return _invalid_url("Coordinates must be finite numbers")
    if not (-180.0 <= lon1 <= 180.0 and -180.0 <= lon2 <= 180.0):
        return _invalid_url("Longitude must be within [-180, 180]")
    if not (-90.0 <= lat1 <= 90.0 and -90.0 <= lat2 <= 90.0):
        return _invalid_url("Latitude must be within [-90, 90]")
    first, second = f"{lon1:.6f},{lat1:.6f}".encode(), f"{lon2:.6f},{lat2:.6f}".encode()
    if zlib.crc32(b"%s;%s" % (first, second)) % 100 < NO_ROUTE_PERCENT:
        return 400, {"code": "NoRoute", "message": "Impossible route between points"}
    distance = round(_haversine_m(lon1, lat1, lon2, lat2) * ROUTE_DETOUR, 1)
    duration = round(distance / ROUTE_SPEED_MPS, 1)
    leg = {
        "steps": [],
        "summary": "",
        "weight": duration,
        "duration": duration,
        "distance": distance,
    }
    route = {
        "duration": duration,
        "distance": distance,
        "weight": duration,
        "weight_name": "routability",
        "legs": [leg],
    }
    return 200, {
        "code": "Ok",
        "routes": [route],
        "waypoints": [_waypoint(first, lon1, lat1), _waypoint(second, lon2, lat2)],
    }


QUOTES: Final[tuple[tuple[str, int, int], ...]] = (
    # (quote, chapter, part): short sentences written for this project.
    ("A request that is never sent never fails, and never succeeds either.", 1, 1),
    ("Measure first; the slow part is rarely where you guessed.", 1, 1),
    ("Every queue is short until the morning traffic arrives.", 2, 1),
    ("A timeout is a promise you make to the person waiting.", 2, 1),
    ("The fastest byte is the one you did not have to send.", 3, 1),
    ("Keep the connection warm and the handshake rare.", 3, 1),
    ("A retry without a limit is just a louder failure.", 4, 1),
    ("Order is cheap to keep and expensive to restore.", 5, 2),
    ("The map is not the road, but it is cheaper to walk.", 5, 2),
    ("Every average hides a tail that someone had to wait through.", 6, 2),
    ("Write it down before the log rotates it away.", 6, 2),
    ("Two cores are a crowd when both want the same lock.", 7, 2),
    ("A cache remembers what the database would rather forget.", 7, 2),
    ("Slow answers are still answers; lost ones are not.", 8, 2),
    ("Patience is a latency budget you have not spent yet.", 9, 3),
    ("The last request in the batch is the one everyone remembers.", 9, 3),
    ("Good defaults are the documentation nobody reads.", 10, 3),
    ("A route with no way through is still a useful answer.", 10, 3),
    ("Backpressure is the polite way of saying not yet.", 11, 3),
    ("Count what you sent, count what came back, and compare.", 11, 3),
    ("When the benchmark looks too good, check what it skipped.", 12, 3),
)
"""The Random Quoter's collection as ``(quote, chapter, part)``; parts are 1..3."""

QUOTE_PARTS: Final = (1, 2, 3)
SLOW_QUOTE_DELAY: Final = 0.5
"""What ``slow=true`` adds: long enough to show concurrency helping, short enough for tests."""


def quote_answer(index: int, part: int | None = None) -> dict[str, Any]:
    """Return the quote for a ``seed`` (or request counter) ``index``, optionally within a part.

    Picks ``pool[index % len(pool)]`` -- trivially predictable, which is what tests need.
    """
    if part is not None and part not in QUOTE_PARTS:
        raise ValueError(f"part must be one of {QUOTE_PARTS}, not {part}")
    pool = QUOTES if part is None else tuple(q for q in QUOTES if q[2] == part)
    text, chapter, got_part = pool[index % len(pool)]
    return {"quote": text, "source": {"chapter": chapter, "part": got_part}}


JSON_DOCUMENT: Final[bytes] = orjson.dumps(
    {
        "code": "Ok",
        "routes": [
            {
                "geometry": "o}`pJmhtwC{@iBsAsCwBcEkB_DgA}AmAeBuCmDcDeD",
                "legs": [
                    {
                        "steps": [],
                        "summary": "Mannerheimintie",
                        "weight": 412.3,
                        "duration": 412.3,
                        "distance": 4535.6,
                    }
                ],
                "weight_name": "routability",
                "weight": 412.3,
                "duration": 412.3,
                "distance": 4535.6,
            }
        ],
        "waypoints": [
            {
                "hint": "nB8ngP___38RAAAAAAAAAAAAAAAAAAAAANx2WkEAAAAAAAAAAAAAAAAR",
                "distance": 4.231,
                "name": "Mannerheimintie",
                "location": [24.938379, 60.169856],
            },
            {
                "hint": "pL8ngP___38JAAAAFAAAAAAAAAAAAAAAAF3pr0BgIJFAAAAAAAAAAAAJ",
                "distance": 2.818,
                "name": "Runeberginkatu",
                "location": [24.922516, 60.176322],
            },
        ],
    }
)
"""The fixed ``GET /json`` body: realistic size and shape, zero per-request work."""


def write_sample_routes(path: str | os.PathLike[str], n: int, seed: int = 0) -> Path:
    """Write ``n`` deterministic Helsinki coordinate pairs as CSV, a ready-made demo batch.

    Columns are ``id,lon1,lat1,lon2,lat2``; ids run 1..n; longitudes lie in 24.90–24.99 and
    latitudes in 60.15–60.20, printed with 6 decimals. The same ``seed`` gives the same file.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "lon1", "lat1", "lon2", "lat2"))
        for i in range(1, n + 1):
            lon1, lon2 = rng.uniform(24.90, 24.99), rng.uniform(24.90, 24.99)
            lat1, lat2 = rng.uniform(60.15, 60.20), rng.uniform(60.15, 60.20)
            writer.writerow((i, f"{lon1:.6f}", f"{lat1:.6f}", f"{lon2:.6f}", f"{lat2:.6f}"))
    return out


# --------------------------------------------------------------------------------------------
# Request routing
# --------------------------------------------------------------------------------------------


class _Reply(NamedTuple):
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


def _json(status: int, obj: Any) -> _Reply:
    return _Reply(status, orjson.dumps(obj))


def _error(status: int, code: str, message: str) -> _Reply:
    return _json(status, {"code": code, "message": message})


class _State:
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
        self.connections: set[_HttpProtocol] = set()

    def delay(self, extra: float) -> float:
        """Latency plus a uniform draw in ``[0, jitter]``: never below ``latency``."""
        delay = self.latency + extra
        if self.jitter:
            delay += self.rng.uniform(0.0, self.jitter)
        return delay

    def close_connections(self) -> None:
        for proto in list(self.connections):
            proto.close()


def _handle_json(state: _State, req: _Request) -> _Reply:
    return _Reply(200, JSON_DOCUMENT)


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORDS_RE: Final = re.compile(rf"({_NUM}),({_NUM});({_NUM}),({_NUM})")


def _handle_route(state: _State, req: _Request) -> _Reply:
    text = req.path[len(_ROUTE_PREFIX) :]
    match = _COORDS_RE.fullmatch(text)
    if match is None:
        return _error(400, "InvalidUrl", f"Expected lon1,lat1;lon2,lat2 coordinates, got {text!r}")
    lon1, lat1, lon2, lat2 = (float(g) for g in match.groups())
    status, body = route_answer(lon1, lat1, lon2, lat2)
    return _json(status, body)


_TRUE: Final = frozenset({"1", "true", "yes", "on"})


def _handle_quote(state: _State, req: _Request) -> _Reply:
    params = dict(parse_qsl(req.query, keep_blank_values=True))
    part: int | None = None
    if params.get("part"):
        try:
            part = int(params["part"])
        except ValueError:
            part = 0
        if part not in QUOTE_PARTS:
            return _error(400, "InvalidPart", f"part must be 1, 2 or 3, got {params['part']!r}")
    if params.get("seed"):
        try:
            index = int(params["seed"])
        except ValueError:
            return _error(400, "InvalidSeed", f"seed must be an integer, got {params['seed']!r}")
    else:
        index = state.quote_counter
        state.quote_counter += 1
    slow = params.get("slow", "").lower() in _TRUE
    body = orjson.dumps(quote_answer(index, part))
    return _Reply(200, body, SLOW_QUOTE_DELAY if slow else 0.0)


def _decode_header(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _handle_echo(state: _State, req: _Request) -> _Reply:
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


def _handle_status(state: _State, req: _Request) -> _Reply:
    text = req.path[len(_STATUS_PREFIX) :]
    if not (text.isascii() and text.isdigit() and 200 <= int(text) <= 599):
        return _error(400, "InvalidStatus", f"status must be an integer in 200..599, got {text!r}")
    code = int(text)
    return _json(code, {"status": code})


_Handler = Callable[[_State, _Request], _Reply]
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


def _dispatch(
    state: _State, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> _Reply:
    """Map one parsed request to its reply; never raises (a bug answers 500)."""
    try:
        if target[:4].lower() == b"http":  # absolute-form target, e.g. from a proxy-style client
            try:
                parsed = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                return _error(400, "BadRequest", "Malformed request target")
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
                return _error(404, "NotFound", f"No such path: {path}")
        allowed, handler = entry
        if method not in allowed:
            reply = _error(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return reply._replace(headers=b"Allow: %s\r\n" % ", ".join(sorted(allowed)).encode())
        return handler(state, _Request(method, path, query, headers, body))
    except Exception as exc:  # pragma: no cover - a bug; answer instead of dropping the client
        return _error(500, "InternalError", f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# HTTP/1.1 protocol
# --------------------------------------------------------------------------------------------


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP/1.1 {code} {phrase}\r\n".encode("latin-1")


_STATUS_LINES: Final = {code: _status_line(code) for code in range(100, 600)}
_KEEP_ALIVE: Final = b"Connection: keep-alive\r\n"
_CLOSE: Final = b"Connection: close\r\n"
_NO_BODY: Final = frozenset({204, 304})


def _encode(reply: _Reply, keep_alive: bool, head_request: bool = False) -> bytes:
    head = _STATUS_LINES[reply.status]
    conn = _KEEP_ALIVE if keep_alive else _CLOSE
    if reply.status in _NO_BODY:
        return b"%s%s%s\r\n" % (head, conn, reply.headers)
    return b"%sContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        head,
        len(reply.body),
        conn,
        reply.headers,
        # A HEAD answer has the GET answer's headers and no content (RFC 9110 §9.3.2).
        b"" if head_request else reply.body,
    )


_JSON_KEEP_ALIVE: Final = _encode(_Reply(200, JSON_DOCUMENT), True)
"""``GET /json`` is the throughput benchmark: its whole response is built once."""


class _Slot:
    """One response position on a connection, so pipelined answers leave in request order."""

    __slots__ = ("close", "counted", "data", "handle")

    def __init__(self, close: bool) -> None:
        self.close = close
        self.data: bytes | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.counted = False  # holds one of the server's capacity places


class _HttpProtocol(asyncio.Protocol):
    """One client connection: parse with httptools, answer in order, honour keep-alive."""

    def __init__(self, state: _State, loop: asyncio.AbstractEventLoop) -> None:
        self._state = state
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._pending: deque[_Slot] = deque()
        self._closing = False  # no more requests are read once a closing answer is queued

    # -- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack the same.
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.connections.discard(self)
        for slot in self._pending:
            if slot.handle is not None:
                slot.handle.cancel()
                if slot.counted:
                    self._state.busy -= 1
        self._pending.clear()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            self._fail(f"Malformed HTTP request: {exc}")

    def eof_received(self) -> bool:
        if not self._pending:
            return False  # let the transport close itself
        # Half-closed by the client with answers still due: send them, then close.
        self._closing = True
        self._pending[-1].close = True
        return True

    def pause_writing(self) -> None:
        # Stop reading requests while the client is not reading answers.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        """Close the connection (server shutdown); pending delayed answers are dropped."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Only answer "100 Continue" when it cannot overtake an earlier pipelined answer.
        if self._pending or self._closing or self._transport is None:
            return
        for name, value in self._headers:
            if name.lower() == b"expect" and value.lower() == b"100-continue":
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closing:
            return  # pipelined after "Connection: close": ignored, as the client asked
        parser = self._parser
        keep_alive: bool = parser.should_keep_alive()
        method: bytes = parser.get_method()
        if not keep_alive:
            self._closing = True
        state = self._state
        if method == b"GET" and self._url == b"/json" and keep_alive:
            payload = _JSON_KEEP_ALIVE
            delay = state.delay(0.0) if state.latency or state.jitter else 0.0
        elif state.capacity is not None and state.busy >= state.capacity:
            state.rejected += 1
            reply = _error(503, "Overloaded", f"at most {state.capacity} requests at a time")
            payload = _encode(reply, keep_alive)
            delay = 0.0
        else:
            body = b"".join(self._body)
            reply = _dispatch(state, method.decode("latin-1"), self._url, self._headers, body)
            payload = _encode(reply, keep_alive, head_request=method == b"HEAD")
            delay = state.delay(reply.delay)
            if delay > 0.0 and state.capacity is not None:
                state.busy += 1
                if state.busy > state.peak_busy:
                    state.peak_busy = state.busy
                slot = _Slot(not keep_alive)
                slot.counted = True
                self._pending.append(slot)
                slot.handle = self._loop.call_later(delay, self._release, slot, payload)
                return
        if delay <= 0.0 and not self._pending:
            self._write(payload, not keep_alive)
            return
        slot = _Slot(not keep_alive)
        self._pending.append(slot)
        if delay <= 0.0:
            slot.data = payload  # waits behind an earlier, delayed answer
        else:
            slot.handle = self._loop.call_later(delay, self._deliver, slot, payload)

    # -- helpers -----------------------------------------------------------------------------

    def _release(self, slot: _Slot, payload: bytes) -> None:
        self._state.busy -= 1
        slot.counted = False
        self._deliver(slot, payload)

    def _deliver(self, slot: _Slot, payload: bytes) -> None:
        slot.handle = None
        slot.data = payload
        pending = self._pending
        while pending and pending[0].data is not None:
            head = pending.popleft()
            assert head.data is not None
            self._write(head.data, head.close)

    def _write(self, payload: bytes, close: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(payload)
        self._state.served += 1
        if close:
            transport.close()

    def _fail(self, message: str) -> None:
        """Answer a request we cannot parse with 400 and close: the stream is out of sync."""
        self._closing = True
        payload = _encode(_error(400, "BadRequest", message), keep_alive=False)
        if not self._pending:
            self._write(payload, True)
            return
        slot = _Slot(True)
        self._pending.append(slot)
        self._deliver(slot, payload)


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def _new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A uvloop loop when installed (roughly twice the throughput), else asyncio's."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


async def _start(state: _State, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _HttpProtocol(state, loop), host, port, backlog=2048, reuse_address=True
    )


def _bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _shutdown(server: asyncio.Server, state: _State) -> None:
    """Stop listening and close every connection, so nothing leaks a ResourceWarning."""
    server.close()
    state.close_connections()
    await server.wait_closed()
    for _ in range(200):  # transports report connection_lost on a later loop iteration
        if not state.connections:
            break
        await asyncio.sleep(0.005)


async def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    latency: float = 0.0,
    jitter: float = 0.0,
    ready: Callable[[int], None] | None = None,
    seed: int = 0,
) -> None:
    """Serve on the current loop until cancelled; ``ready(port)`` is called once listening.

    Every answer is delayed by ``latency`` plus a uniform draw in ``[0, jitter]`` seconds,
    using timers rather than sleeping, so slowness never blocks other connections.
    """
    state = _State(latency, jitter, seed)
    server = await _start(state, host, port)
    try:
        if ready is not None:
            ready(_bound_port(server))
        await server.serve_forever()
    finally:
        await _shutdown(server, state)


def run_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    latency: float = 0.0,
    jitter: float = 0.0,
    *,
    ready: Callable[[int], None] | None = None,
    seed: int = 0,
    use_uvloop: bool = True,
) -> None:
    """Block serving until Ctrl-C, which ends it quietly (it is the normal way to stop)."""
    coro = serve(host, port, latency=latency, jitter=jitter, ready=ready, seed=seed)
    try:
        with asyncio.Runner(loop_factory=lambda: _new_event_loop(use_uvloop)) as runner:
            runner.run(coro)
    except KeyboardInterrupt:
        pass


class DemoServer:
    """The demo server on a background thread with its own loop, for sync tests and the CLI.

    Use as ``with DemoServer(latency=0.01) as srv: ... srv.base_url ...``; ``port=0`` (the
    default) picks a free port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        use_uvloop: bool = True,
        capacity: int | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._state = _State(latency, jitter, seed)
        self._state.capacity = capacity
        self._use_uvloop = use_uvloop
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def peak_busy(self) -> int:
        """The most requests in preparation at once (counted when ``capacity`` is set)."""
        return self._state.peak_busy

    @property
    def rejected(self) -> int:
        """Requests answered 503 because ``capacity`` requests were in preparation."""
        return self._state.rejected

    @property
    def latency(self) -> float:
        return self._state.latency

    @property
    def jitter(self) -> float:
        return self._state.jitter

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DemoServer is not running; call start() or use it in a with")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """``base_url`` joined with ``path``, for brevity in tests."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def requests_served(self) -> int:
        """Answers written so far (read from another thread: approximate while busy)."""
        return self._state.served

    def start(self) -> Self:
        """Start listening; returns once the port is bound (or raises why it could not)."""
        if self._thread is not None:
            raise RuntimeError("DemoServer already started")
        self._thread = threading.Thread(target=self._run, name="drumfire-demo", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def close(self) -> None:
        """Stop the server and its thread; safe to call more than once."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # loop already closed: the thread is ending
            loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        loop = _new_event_loop(self._use_uvloop)
        try:
            try:
                server = loop.run_until_complete(
                    _start(self._state, self.host, self._requested_port)
                )
            except BaseException as exc:
                self._error = exc
                return
            self._port = _bound_port(server)
            self._loop = loop
            self._started.set()
            loop.run_forever()
            loop.run_until_complete(_shutdown(server, self._state))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._started.set()


def main(argv: Iterable[str] | None = None) -> None:
    """``python -m drumfire.demo.server``: run the demo server in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m drumfire.demo.server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    parser.add_argument("--jitter", type=float, default=0.0, help="extra uniform [0, J] seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed for the jitter")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    args = parser.parse_args(None if argv is None else list(argv))

    def ready(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"drumfire demo server on http://{host}:{port}", file=sys.stderr, flush=True)

    run_server(
        args.host,
        args.port,
        args.latency,
        args.jitter,
        ready=ready,
        seed=args.seed,
        use_uvloop=not args.no_uvloop,
    )


if __name__ == "__main__":
    main()

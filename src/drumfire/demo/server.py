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

This module is the wire (the HTTP/1.1 protocol) and the running server; the answers are
computed in :mod:`._answers` (pure functions the tests share) and routed in
:mod:`._endpoints` (a request in, a reply out, no I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final, Self, cast

import httptools

from ._answers import JSON_DOCUMENT, QUOTES, quote_answer, route_answer, write_sample_routes
from ._endpoints import Reply, State, dispatch, error

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


def _encode(reply: Reply, keep_alive: bool, head_request: bool = False) -> bytes:
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


_JSON_KEEP_ALIVE: Final = _encode(Reply(200, JSON_DOCUMENT), True)
"""``GET /json`` is the throughput benchmark: its whole response is built once."""


class _Slot:
    """One response position on a connection, so pipelined answers leave in request order."""

    __slots__ = ("close", "counted", "data", "handle")

    def __init__(self, close: bool) -> None:
        self.close = close
        self.data: bytes | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.counted = False  # holds one of the server's capacity places


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse with httptools, answer in order, honour keep-alive."""

    def __init__(self, state: State, loop: asyncio.AbstractEventLoop) -> None:
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
            reply = error(503, "Overloaded", f"at most {state.capacity} requests at a time")
            payload = _encode(reply, keep_alive)
            delay = 0.0
        else:
            body = b"".join(self._body)
            reply = dispatch(state, method.decode("latin-1"), self._url, self._headers, body)
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
        payload = _encode(error(400, "BadRequest", message), keep_alive=False)
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


async def _start(state: State, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpProtocol(state, loop), host, port, backlog=2048, reuse_address=True
    )


def _bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _shutdown(server: asyncio.Server, state: State) -> None:
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
    state = State(latency, jitter, seed)
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
        self._state = State(latency, jitter, seed)
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

"""Scriptable raw-socket HTTP/1.1 servers for integration tests.

In the manner of urllib3's ``test_socketlevel.py``: a thread accepts
connections on 127.0.0.1 (port 0), reads each request head (and its
``Content-Length`` body), and asks a handler what to do::

    handler(index, method, target, headers, body) -> Action

``index`` counts requests across the whole server from 0; ``headers`` has
lower-case names. The :class:`Action` says which bytes to send and what to do
afterwards: keep the connection, close it (FIN), reset it (RST, via
``SO_LINGER`` 0), or stall (wait, bounded, then close). The helpers below build
the usual actions: :func:`respond`, :func:`close`, :func:`reset`,
:func:`partial`, :func:`stall`, :func:`chunked`, :func:`gzipped`, :func:`raw`.

``ScriptedServer(max_requests=N)`` closes every connection silently after its
N-th response, like osrm-routed after 512; ``keep_alive_header=True`` also adds
``Keep-Alive: timeout=5, max=K`` (K counting down to 1 on the last answer, and
still no ``Connection: close``), exactly as osrm-routed does; ``close_header=True``
instead says ``Connection: close`` on the N-th answer and then closes as nginx does
after its ``keepalive_requests``: it shuts its side and reads what the client still
sends (bounded) before closing, so that its answers are not lost to a reset.
``batch=True`` sends the answers to the requests that came in one read in one send
(when the next request is already read, an answer that keeps the connection waits for
it), so pipelined answers reach the client together, in one read: an answer that
closes, or a malformed one, then comes with others.

Every loop is bounded (socket timeouts of 50 ms, a stop event), every socket is
closed and every thread joined when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import gzip
import http
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

__all__ = [
    "Action",
    "Handler",
    "Request",
    "ScriptedServer",
    "chunked",
    "close",
    "echo",
    "gzipped",
    "partial",
    "raw",
    "refused_port",
    "reset",
    "respond",
    "response_head",
    "stall",
]

POLL = 0.05  # seconds: how often blocked threads look at the stop event
MAX_HEAD = 64 * 1024
MAX_STALL = 8.0  # no stall outlives this, whatever a test asks


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What the server does with one request.

    ``data`` is sent first (may be empty). Then, after ``pause`` seconds,
    ``then`` happens: ``keep`` (read the next request), ``close`` (FIN),
    ``reset`` (RST) or ``stall`` (wait ``seconds``, or until the server stops,
    then close).
    """

    data: bytes = b""
    then: str = "keep"
    seconds: float = 0.0
    pause: float = 0.0

    def __post_init__(self) -> None:
        if self.then not in ("keep", "close", "reset", "stall"):
            raise ValueError(f"unknown action {self.then!r}")


Handler = Callable[[int, str, str, dict[str, str], bytes], Action]


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Status line and header block, including the blank line."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _body_bytes(body: bytes | str | dict[str, Any] | list[Any]) -> tuple[bytes, str | None]:
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


def _with_type(
    headers: Iterable[tuple[str, str]], content_type: str | None
) -> list[tuple[str, str]]:
    out = list(headers)
    if content_type and not any(n.lower() == "content-type" for n, _ in out):
        out.insert(0, ("Content-Type", content_type))
    return out


def respond(
    status: int = 200,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    then: str = "keep",
    length: bool = True,
) -> Action:
    """A complete response with ``Content-Length`` (or close-delimited, ``length=False``).

    ``then="close"`` closes after it *without* saying ``Connection: close``; pass
    ``headers=[("Connection", "close")]`` for the announced kind.
    """
    data, ctype = _body_bytes(body)
    hdrs = _with_type(headers, ctype)
    if length:
        hdrs.append(("Content-Length", str(len(data))))
    return Action(response_head(status, hdrs) + data, then)


def raw(data: bytes, then: str = "keep", pause: float = 0.0) -> Action:
    """Send exactly ``data``."""
    return Action(data, then, pause=pause)


def close() -> Action:
    """Close (FIN) before sending any byte."""
    return Action(b"", "close")


def reset() -> Action:
    """Reset (RST) before sending any byte."""
    return Action(b"", "reset")


def partial(
    status: int = 200,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    sent: int = 1,
    *,
    then: str = "close",
    pause: float = 0.0,
) -> Action:
    """Announce the whole body's ``Content-Length``, send only ``sent`` bytes of it, then
    ``close`` or ``reset`` (after ``pause`` seconds)."""
    data, ctype = _body_bytes(body)
    head = response_head(status, _with_type([("Content-Length", str(len(data)))], ctype))
    return Action(head + data[:sent], then, pause=pause)


def stall(seconds: float, data: bytes = b"") -> Action:
    """Send ``data`` (maybe nothing), then say nothing for ``seconds``, then close."""
    return Action(data, "stall", seconds=min(seconds, MAX_STALL))


def chunked(
    status: int = 200,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    size: int = 7,
    then: str = "keep",
) -> Action:
    """The body in ``Transfer-Encoding: chunked`` pieces of ``size`` bytes."""
    data, ctype = _body_bytes(body)
    hdrs = [*_with_type(headers, ctype), ("Transfer-Encoding", "chunked")]
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return Action(response_head(status, hdrs) + framed, then)


def gzipped(
    status: int = 200,
    body: bytes | str | dict[str, Any] | list[Any] = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    chunk: int | None = None,
    then: str = "keep",
) -> Action:
    """The body gzip-compressed with ``Content-Encoding: gzip`` (chunked if ``chunk``)."""
    data, ctype = _body_bytes(body)
    packed = gzip.compress(data)
    hdrs = [*_with_type(headers, ctype), ("Content-Encoding", "gzip")]
    if chunk:
        return chunked(status, packed, hdrs, size=chunk, then=then)
    return respond(status, packed, hdrs, then=then)


def echo(index: int, method: str, target: str, headers: dict[str, str], body: bytes) -> Action:
    """A handler answering any method with the request as JSON (HEAD: the head only)."""
    doc = {
        "index": index,
        "method": method,
        "target": target,
        "headers": headers,
        "body": body.decode("utf-8", "replace"),
    }
    action = respond(200, doc)
    if method == "HEAD":
        head, _, _ = action.data.partition(b"\r\n\r\n")
        return Action(head + b"\r\n\r\n")
    return action


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    index: int  # across the server, from 0
    connection: int  # which accepted connection, from 0
    position: int  # requests before this one on the same connection
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    head: bytes = b""  # the request line and header lines, exactly as they came


class _PeerGone(Exception):
    pass


class ScriptedServer:
    """A threaded raw-socket HTTP/1.1 server driven by a handler; use it in a ``with``."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_requests: int | None = None,
        keep_alive_header: bool = False,
        close_header: bool = False,
        batch: bool = False,
    ) -> None:
        self.handler = handler
        self.max_requests = max_requests
        self.keep_alive_header = keep_alive_header
        self.close_header = close_header
        self.batch = batch
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            sock.settimeout(POLL)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._port = sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="scripted-accept")
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            assert not self._acceptor.is_alive(), "acceptor thread did not stop"
            self._acceptor = None
        for thread in self._threads:
            thread.join(timeout=5)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError(f"the scripted server failed: {self.errors[0]!r}") from (
                self.errors[0]
            )

    # -- threads -------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    number = self.connections
                    self.connections += 1
                thread = threading.Thread(
                    target=self._serve, args=(conn, number), name=f"scripted-conn-{number}"
                )
                self._threads.append(thread)
                thread.start()
        except BaseException as exc:  # pragma: no cover - a bug in this helper
            self.errors.append(exc)

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(POLL)
        buf = bytearray()
        position = 0
        linger = False
        held = b""  # batch: answers waiting for the rest of their read's
        try:
            while not self._stop.is_set():
                parsed = self._read_request(conn, buf)
                if parsed is None:
                    return
                method, target, headers, body, head = parsed
                with self._lock:
                    index = len(self.requests)
                    self.requests.append(
                        Request(index, number, position, method, target, headers, body, head)
                    )
                position += 1
                action = self.handler(index, method, target, headers, body)
                then = action.then
                data = action.data
                if self.max_requests is not None:
                    if self.keep_alive_header and data:
                        left = self.max_requests - position + 1
                        data = data.replace(
                            b"\r\n", b"\r\nKeep-Alive: timeout=5, max=%d\r\n" % left, 1
                        )
                    if position >= self.max_requests and then == "keep":
                        then = "close"
                        if self.close_header and data:
                            data = data.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
                            conn.sendall(held + data)
                            self._linger(conn)
                            return
                if self.batch:
                    if then == "keep" and not action.pause and b"\r\n\r\n" in buf:
                        held += data  # the next request is read: answer it in the same send
                        continue
                    data, held = held + data, b""
                if data:
                    conn.sendall(data)
                if action.pause:
                    self._stop.wait(action.pause)
                if then == "keep":
                    continue
                if then == "stall":
                    self._stop.wait(action.seconds)
                elif then == "reset":
                    linger = True
                return
        except (_PeerGone, ConnectionError):
            return
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            if linger:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def _linger(self, conn: socket.socket) -> None:
        """Close as nginx does: no more answers, but read (for at most 2 s) what the
        client still sends until it closes, so the answers sent are not reset away."""
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:  # the client already reset it
            return
        for _ in range(40):
            if self._stop.is_set() or self._recv(conn) == b"":
                return

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Some bytes, b"" when the peer closed, None on a poll timeout."""
        try:
            return conn.recv(65536)
        except TimeoutError:
            return None

    def _read_request(
        self, conn: socket.socket, buf: bytearray
    ) -> tuple[str, str, dict[str, str], bytes, bytes] | None:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end != -1:
                break
            if len(buf) > MAX_HEAD:
                raise AssertionError("request head too large")
            chunk = self._recv(conn)
            if chunk == b"":
                return None  # the client closed between requests
            if chunk is None:
                if self._stop.is_set():
                    return None
                continue
            buf += chunk
        raw_head = bytes(buf[:end])
        head = raw_head.decode("latin-1")
        del buf[: end + 4]
        request_line, *lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            chunk = self._recv(conn)
            if chunk == b"":
                raise _PeerGone
            if chunk is None:
                if self._stop.is_set():
                    return None
                continue
            buf += chunk
        body = bytes(buf[:length])
        del buf[:length]
        return method, target, headers, body, raw_head


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not
    listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()

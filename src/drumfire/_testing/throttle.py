"""A server that throttles, fails now and then, or sits far away: for tests and benchmarks.

Every answer is decided by the request's id (the last path segment of
``/item/{id}``) and its attempt number, never by chance, so a run is
reproducible: ``share(id)`` is a fixed number in [0, 1) from a CRC of the id.
The behaviours of issue 15's table, each an option of :class:`Behaviour`:

- ``throttle_share``: the ids whose share is below it answer ``throttle_status``
  with ``retry_after`` on their first ``throttle_times`` attempts; the value is
  sent as is (``"1"``), or as an HTTP-date that many seconds ahead when it is
  ``"date:2"``, or not at all when None;
- ``noise_share``: that share of all requests, retries too (by id and attempt
  number), answer ``throttle_status`` with ``retry_after``: a server that
  throttles at random whatever the rate;
- ``bucket_rate`` / ``bucket_burst``: a token bucket over every request; above
  it 429 with ``Retry-After: 1``;
- ``quota`` / ``quota_window``: a fixed-window quota (``quota`` requests per
  ``quota_window`` seconds from the first request), announced on every answer
  by ``X-RateLimit-Limit / Remaining / Reset`` (``quota_style="x"``) or the
  IETF draft's ``RateLimit`` / ``RateLimit-Policy`` (``"ietf"``; ``"ietf-multi"``
  and ``"ietf-split"`` list a looser quota first, in the same line or a line of
  its own; ``"draft7"``: draft-07's ``limit=, remaining=, reset=``); over it, 429
  with ``Retry-After`` the seconds to the window's end. ``quota_reset``: how
  ``X-RateLimit-Reset`` states the end, ``"delta"`` (seconds to it), ``"unix"``
  or ``"unix-ms"`` (a Unix time in seconds or milliseconds). ``quota_on``:
  ``"all"`` answers carry these fields, or only the ``"429"`` ones (as many
  servers do);
- ``stuck``: ids that always answer 503 with ``Retry-After: stuck_after``;
- ``outage``: for that many seconds from the first request, every answer is
  503 with ``Retry-After: outage_retry_after``;
- ``latency`` + ``spread`` × share: the answer's delay, per id.

The server is an asyncio Protocol on its own thread and event loop; answers on
one connection keep their order (pipelining included). It counts requests,
statuses, attempts per id, and keeps the order in which ids were first answered
and retried, so tests assert on events, not on time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import email.utils
import json
import math
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["Behaviour", "ThrottleServer", "share"]


def share(id_: str) -> float:
    """A fixed number in [0, 1) for ``id_``: the same for every run and machine."""
    return (zlib.crc32(id_.encode()) % 100_000) / 100_000


@dataclass(frozen=True)
class Behaviour:
    latency: float = 0.0
    spread: float = 0.0
    throttle_share: float = 0.0
    throttle_status: int = 503
    throttle_times: int = 1
    noise_share: float = 0.0
    retry_after: str | None = "1"
    bucket_rate: float | None = None
    bucket_burst: float = 10.0
    quota: int | None = None
    quota_window: float = 5.0
    quota_style: str = "x"
    quota_reset: str = "delta"
    quota_on: str = "all"
    stuck: frozenset[str] = field(default_factory=frozenset)
    stuck_after: str = "3600"
    outage: float = 0.0
    outage_retry_after: str = "2"


_REASONS = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable", 404: "Not Found"}


class _State:
    def __init__(self, behaviour: Behaviour) -> None:
        self.b = behaviour
        self.lock = threading.Lock()
        #: Open connections (their protocols), closed at shutdown; the server's loop only.
        self.connections: set[_Protocol] = set()
        self.reset()

    def reset(self) -> None:
        behaviour = self.b
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.attempts: Counter[str] = Counter()
        self.events: list[tuple[str, int, int]] = []  # (id, attempt, status) in arrival order
        self.first: float | None = None
        self.tokens = behaviour.bucket_burst
        self.window = -1
        self.used = 0
        self.refilled = 0.0
        self.inflight = 0
        self.peak = 0

    def summary(self) -> bytes:
        with self.lock:
            counts = {"requests": self.requests, "statuses": dict(self.statuses), "peak": self.peak}
        return json.dumps(counts).encode()

    def decide(self, id_: str, now: float) -> tuple[int, list[tuple[str, str]], float]:
        """Status, extra headers and delay for one request of ``id_`` arriving at ``now``."""
        b = self.b
        with self.lock:
            self.requests += 1
            self.attempts[id_] += 1
            attempt = self.attempts[id_]
            if self.first is None:
                self.first = now
            status, headers = 200, []
            if b.outage and now - self.first < b.outage:
                status, headers = 503, [("Retry-After", b.outage_retry_after)]
            elif id_ in b.stuck:
                status, headers = 503, [("Retry-After", b.stuck_after)]
            elif (share(id_) < b.throttle_share and attempt <= b.throttle_times) or (
                b.noise_share and share(f"{id_}#{attempt}") < b.noise_share
            ):
                status = b.throttle_status
                if b.retry_after is not None:
                    headers = [("Retry-After", _retry_after_value(b.retry_after))]
            if status == 200 and b.bucket_rate is not None:
                rate = b.bucket_rate
                self.tokens = min(b.bucket_burst, self.tokens + (now - self.refilled) * rate)
                self.refilled = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                else:
                    status, headers = 429, [("Retry-After", "1")]
            if status == 200 and b.quota is not None:
                since = now - self.first
                window = int(since // b.quota_window)
                if window != self.window:
                    self.window, self.used = window, 0
                reset = max(1, math.ceil((window + 1) * b.quota_window - since))
                if self.used >= b.quota:
                    status, headers = 429, [("Retry-After", str(reset))]
                else:
                    self.used += 1
                left = b.quota - self.used
                if b.quota_on == "429" and status != 429:
                    pass  # the quota is stated on 429s alone
                elif b.quota_style == "x":
                    # The window's end as a Unix time (``now`` is monotonic).
                    ends = time.time() + self.first + (window + 1) * b.quota_window - now
                    stated = {
                        "delta": str(reset),
                        "unix": str(math.ceil(ends)),
                        "unix-ms": str(math.ceil(ends * 1000)),
                    }[b.quota_reset]
                    headers += [
                        ("X-RateLimit-Limit", str(b.quota)),
                        ("X-RateLimit-Remaining", str(left)),
                        ("X-RateLimit-Reset", stated),
                    ]
                elif b.quota_style == "draft7":
                    w = round(b.quota_window)
                    headers += [
                        ("RateLimit-Policy", f"{b.quota};w={w}"),
                        ("RateLimit", f"limit={b.quota}, remaining={left}, reset={reset}"),
                    ]
                else:
                    w = round(b.quota_window)
                    item = f'"default";r={left};t={reset}'
                    headers.append(("RateLimit-Policy", f'"default";q={b.quota};w={w}'))
                    # A looser quota listed first (900,000 left for 10 minutes): the
                    # window's is the one that holds, in the same line or the next.
                    loose = '"hour";r=900000;t=600'
                    if b.quota_style == "ietf-multi":
                        headers.append(("RateLimit", f"{loose}, {item}"))
                    elif b.quota_style == "ietf-split":
                        headers += [("RateLimit", loose), ("RateLimit", item)]
                    else:
                        headers.append(("RateLimit", item))
            self.statuses[status] += 1
            self.events.append((id_, attempt, status))
        delay = b.latency + b.spread * share(id_ + "/latency")
        return status, headers, delay


def _retry_after_value(spec: str) -> str:
    if spec.startswith("date:"):
        return email.utils.formatdate(time.time() + float(spec[5:]), usegmt=True)
    return spec


class _Protocol(asyncio.Protocol):
    def __init__(self, state: _State, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.last_due = 0.0  # answers on one connection go out in order

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536 and self.transport is not None:
                    self.transport.close()
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            target = parts[1] if len(parts) == 3 else "/"
            path = target.split("?", 1)[0]
            if path == "/_stats":
                self._control(self.state.summary())
            elif path == "/_reset":
                with self.state.lock:
                    self.state.reset()
                self._control(b"{}")
            else:
                self._answer(path.rstrip("/").rsplit("/", 1)[-1])

    def _control(self, body: bytes) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        if self.transport is not None:
            self.transport.write(head + body)

    def _answer(self, id_: str) -> None:
        now = self.loop.time()
        status, headers, delay = self.state.decide(id_, time.monotonic())
        body = b'{"id":"%s","ok":%s}' % (id_.encode(), b"true" if status == 200 else b"false")
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"Content-Length: {len(body)}", "Content-Type: application/json", "", ""]
        data = "\r\n".join(lines).encode("latin-1") + body
        due = max(now + delay, self.last_due)
        self.last_due = due
        with self.state.lock:
            self.state.inflight += 1
            self.state.peak = max(self.state.peak, self.state.inflight)
        self.loop.call_at(due, self._send, data)

    def _send(self, data: bytes) -> None:
        with self.state.lock:
            self.state.inflight -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.state.connections.discard(self)


class ThrottleServer:
    """``with ThrottleServer(Behaviour(...)) as srv: ... srv.url ...`` (127.0.0.1, port 0)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self._state = _State(self.behaviour)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The URL template for rows with an ``id`` column."""
        return f"http://127.0.0.1:{self.port}/item/{{id}}"

    @property
    def requests(self) -> int:
        return self._state.requests

    @property
    def statuses(self) -> Counter[int]:
        with self._state.lock:
            return Counter(self._state.statuses)

    @property
    def throttled(self) -> int:
        with self._state.lock:
            return self._state.statuses[429] + self._state.statuses[503]

    @property
    def events(self) -> list[tuple[str, int, int]]:
        """(id, attempt, status) of every request, in the order they arrived."""
        with self._state.lock:
            return list(self._state.events)

    @property
    def peak(self) -> int:
        """The most answers waiting to be sent at once."""
        return self._state.peak

    def attempts(self, id_: str) -> int:
        with self._state.lock:
            return self._state.attempts[id_]

    def start(self) -> Self:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)

            async def begin() -> None:
                self._server = await loop.create_server(
                    lambda: _Protocol(self._state, loop), "127.0.0.1", 0, backlog=4096
                )
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(begin())
            loop.run_forever()
            if self._server is not None:
                loop.run_until_complete(self._shutdown(self._server))
            loop.close()

        self._thread = threading.Thread(target=serve, name="throttle-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the throttle server did not start")
        return self

    async def _shutdown(self, server: asyncio.Server) -> None:
        """Stop listening and close every accepted connection: a connection the client
        had not closed yet would otherwise be garbage-collected later, open, and warn
        (a ResourceWarning) in whichever test runs then."""
        server.close()
        for protocol in list(self._state.connections):
            if protocol.transport is not None:
                protocol.transport.abort()
        await server.wait_closed()
        for _ in range(100):  # connection_lost comes on a later loop iteration
            if not self._state.connections:
                break
            await asyncio.sleep(0)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m drumfire._testing.throttle '{"throttle_share": 0.1}'``: serve until killed.

    Prints the port on its first line. ``GET /_stats`` answers the counts as
    JSON; ``GET /_reset`` starts them (and the bucket, the outage clock) again.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("behaviour", nargs="?", default="{}", help="Behaviour fields as JSON")
    args = parser.parse_args(argv)
    fields = json.loads(args.behaviour)
    if "stuck" in fields:
        fields["stuck"] = frozenset(fields["stuck"])
    behaviour = dataclasses.replace(Behaviour(), **fields)
    server = ThrottleServer(behaviour).start()
    print(server.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""A :class:`~drumfire._connection.Connection` with a fast path for the usual answer.

A benchmark needs the status and the end of each response, not its headers
or its body. Most answers arrive as one chunk: ``HTTP/1.1``, a
``Content-Length``, no ``Transfer-Encoding``, no ``Connection: close``, and
exactly that many body bytes. For those, a few byte searches replace
httptools' per-header callbacks and the ``Response`` object; the owner gets
``on_status(conn, flight, status)`` (the flight: its send time). Every other
case (a response split over several chunks, chunked or close-delimited
bodies, HEAD, 1xx/204/304, ``Connection: close``, ``Keep-Alive: max=N``,
anything malformed) goes to the inherited, complete path through
:class:`~drumfire._http.ResponseReader` unchanged, so the fast path can only decline, never misread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._connection import Connection, Owner
from .._heads import inspect_head as _inspect_head

if TYPE_CHECKING:
    from .._request import Origin
    from ._recorder import Recorder

__all__ = ["BenchConnection", "BenchOwner", "Loop", "inspect_head"]


class BenchOwner(Owner, Protocol):
    heads: dict[bytes, tuple[int, int]]  # inspect_head() of header blocks seen, shared
    loop: Loop | None

    def on_status(self, conn: Connection, flight: Any, status: int) -> None: ...


_HEADS_KEPT = 256  # distinct header blocks remembered (answers differ mostly by Date)


def inspect_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of a header block the fast path may take, else (0, -1).

    ``head`` ends before the blank line. The judgement is the run engine's
    (:func:`drumfire._heads.inspect_head`: plain HTTP/1.1 answers with one
    Content-Length), and stricter in one point: any ``Keep-Alive`` header is
    declined, since the closed-model short cut does not count a server's
    ``max``.
    """
    info = _inspect_head(head + b"\r\n\r\n")
    if info is None or info[4] is not None:
        return 0, -1
    return info[0], info[2]


class Loop:
    """The closed model's short cut, shared by the runner and its connections.

    While ``clock() < until`` and ``sent < limit``, a connection whose answer
    took the fast path writes ``data`` again at once and counts it here, without
    a round through the runner: the hot loop of a closed-model run against one
    URL. The runner sets ``until`` to the end of the run once the warm-up is
    over (to -inf to turn the short cut off) and reads ``sent``.
    """

    __slots__ = ("clock", "data", "limit", "recorder", "sent", "timeout", "until")

    def __init__(
        self,
        clock: Callable[[], float],
        data: bytes,
        limit: int,
        timeout: float,
        recorder: Recorder,
    ) -> None:
        self.clock = clock
        self.data = data
        self.limit = limit
        self.timeout = timeout
        self.recorder = recorder
        self.sent = 0
        self.until = -math.inf


class BenchConnection(Connection):
    """One HTTP/1.1 connection; complete single-chunk answers skip the full parser."""

    def __init__(self, owner: BenchOwner, origin: Origin, max_body: int) -> None:
        super().__init__(owner, origin, max_body)
        self.on_status = owner.on_status
        self.heads: dict[bytes, tuple[int, int]] = owner.heads
        self.loop: Loop | None = owner.loop
        self.head = False
        self.request = b""  # the request in flight, for the runner's Connection: close rule
        self.fast = False  # a response is awaited that the fast path may take
        self.max_body = max_body
        # Whether the ResponseReader was reset for the response in flight. It is only
        # reset (and fed) when the fast path declines, which keeps send() cheap.
        self.fresh = True

    def send(
        self, flight: Any, data: bytes, head: bool, deadline: float, later: bool = False
    ) -> None:
        # ``later`` (the run engine's pipelining) never comes from the bench runner.
        transport = self.transport
        assert transport is not None
        self.begin(flight, deadline)
        self.head = head
        self.request = data
        self.fresh = False
        self.fast = not head
        transport.write(data)

    def _reader_ready(self) -> None:
        if not self.fresh:
            self.reader.expect(self.head)
            self.fresh = True

    def data_received(self, data: bytes) -> None:
        if self.fast:
            self.fast = False
            end = data.find(b"\r\n\r\n")
            if end > 0:
                head = data[:end]
                heads = self.heads
                known = heads.get(head)
                if known is None:
                    if len(heads) >= _HEADS_KEPT:
                        heads.clear()
                    known = heads[head] = inspect_head(head)
                status, length = known  # length -1 (declined) never matches below
                if len(data) == end + 4 + length and length <= self.max_body:
                    loop = self.loop
                    if loop is not None:
                        now = loop.clock()
                        if now < loop.until and loop.sent < loop.limit:
                            # Closed model, one URL: send again now, record after.
                            loop.sent += 1
                            self.fast = True
                            self.transport.write(loop.data)  # type: ignore[union-attr]
                            stamp = self.again(now, now + loop.timeout)
                            if stamp >= 0.0:
                                loop.recorder.response(now, stamp, status)
                            return
                    self.on_status(self, self.answered_quickly(), status)
                    return
        self._reader_ready()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._reader_ready()
        super().connection_lost(exc)

    @property
    def received_any(self) -> bool:
        return self.fresh and bool(self.reader.started)

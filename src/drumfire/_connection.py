"""One HTTP/1.1 connection: the only place that owns connection state.

Every write of ``state``, ``flight`` and ``deadline`` is in this file (as h11
keeps every transition in ``_state.py``); owners and pools ask predicates
(:meth:`Connection.is_idle`, :meth:`~Connection.is_busy`, ...) and call the
transitions below. States (:class:`ConnState`) and what moves a connection
between them::

    CONNECTING --connection_made--> IDLE --send()--> BUSY --response--> IDLE
         |                           |                 |   (keep-alive)
         |                           |                 +--response, no keep-alive--> CLOSED
         +--connect error----------->+--peer closes / abort() / close()------------> CLOSED

The connection moves bytes between its transport and a sans-I/O
:class:`~drumfire._http.ResponseReader`, and reports to its owner (the engine)
through ``on_connected``, ``on_responses`` and ``on_failure``; an exception
one of those raises comes back to the owner through ``on_error``, which ends
its run (never a row left without a result).
It creates no task and no timer; deadlines are checked by the owner's
periodic sweep (one timer for all connections instead of one per request).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import functools
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import _bodies
from ._errors import ProtocolError, Reason, RequestError, reason_for
from ._http import MAX_HEADER, ResponseReader
from ._response import Response

if TYPE_CHECKING:
    from ._request import Origin

__all__ = [
    "BUSY",
    "CLOSED",
    "CONNECTING",
    "IDLE",
    "TLS",
    "ConnState",
    "Connection",
    "Owner",
    "describe_error",
    "pipeline_room",
]


class ConnState(enum.Enum):
    """Where a :class:`Connection` is in its life (see the module's diagram)."""

    CONNECTING = "connecting"
    IDLE = "idle"  # open, nothing in flight: may take a request
    BUSY = "busy"  # a request in flight (and perhaps more pipelined behind it)
    CLOSED = "closed"


CONNECTING, IDLE, BUSY, CLOSED = ConnState
_LINGER_RESET = struct.pack("ii", 1, 0)


class Owner(Protocol):
    """What a connection reports to (the engine, the bench runner)."""

    def on_connected(self, conn: Connection) -> None: ...
    def on_responses(self, conn: Connection, answered: list[tuple[Any, Response]]) -> None: ...
    def on_failure(self, conn: Connection, flight: Any, reason: str, detail: str) -> None: ...
    def on_closed(self, conn: Connection) -> None: ...
    def on_unanswered(self, conn: Connection, flight: Any, written: bool) -> None: ...
    def flush_later(self, conn: Connection) -> None: ...
    def on_error(self, conn: Connection, exc: Exception) -> None:
        """One of the callbacks above raised, called from the event loop: end the run
        with ``exc`` (rows it was settling would otherwise never get a result)."""


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection: one request at a time, or several pipelined.

    ``flight`` is what the owner sent (opaque here: the engine's
    :class:`~drumfire._rows.Flight`, the bench's send time), the oldest in
    flight; :meth:`pipeline` queues more behind it (``behind``). When the
    connection ends before they are answered, those behind the oldest are
    handed back through ``on_unanswered``: the server never answered them, so
    the owner sends them again elsewhere.

    Read ``state``, ``flight`` and ``deadline``; change them only through the
    methods. A subclass may take a fast path in ``send``/``data_received``
    (see :mod:`drumfire.bench._fastconn`) with :meth:`begin`,
    :meth:`answered_quickly` and :meth:`again`.
    """

    def __init__(
        self, owner: Owner, origin: Origin, max_body: int, max_header: int = MAX_HEADER
    ) -> None:
        self.owner = owner
        self.origin = origin
        self.state = CONNECTING
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader(max_body, max_header)
        self.flight: Any = None  # the request in flight, or the one waiting for the connect
        self.deadline = 0.0  # clock time by which the current phase must end
        self.served = 0  # responses received: >0 means a reused connection
        self.connecting: asyncio.Future[Any] | None = None
        self.behind: collections.deque[tuple[Any, float]] = collections.deque()
        self.unsent: list[bytes] = []  # pipelined requests waiting for flush()
        # Requests the server will still answer here (its last "Keep-Alive: max"),
        # counting those in flight; None: it did not say.
        self.left: int | None = None
        # The most answers the server gives a connection, when it did not say but
        # was seen (Pool.cut); and whether the server ended this one, after ``served``
        # answers, with a ``Connection: close`` in front of requests pipelined behind
        # (``cut``: an exact count, what Pool.cut learns from).
        self.limit: int | None = None
        self.cut = False
        # A request body streamed from files (drumfire._bodies), and whether the
        # transport asked to stop writing (its buffer is full) until it drains.
        self.pump: Any = None
        self.write_paused = False

    # -- owner side ----------------------------------------------------------

    # -- predicates (what pools and owners ask) ---------------------------------

    def is_idle(self) -> bool:
        """Open with nothing in flight: it may take a request now."""
        return self.state is IDLE

    def is_busy(self) -> bool:
        """A request is in flight."""
        return self.state is BUSY

    def is_connecting(self) -> bool:
        return self.state is CONNECTING

    def is_closed(self) -> bool:
        return self.state is CLOSED

    def is_overdue(self, now: float) -> bool:
        """Connecting or busy past its deadline (the owner's sweep aborts it)."""
        return self.deadline < now and self.state is not IDLE

    # -- transitions -------------------------------------------------------------

    def open(
        self,
        loop: asyncio.AbstractEventLoop,
        verify: bool | TLS = True,
        flight: Any = None,
        deadline: float = 0.0,
    ) -> None:
        """Start connecting to ``origin`` (TLS for https); the owner hears of the outcome.

        ``verify``: whether to verify certificates, or the whole :class:`TLS` setting.
        ``flight``: what to send once connected (the owner's ``on_connected``
        sends it), reported failed if the connect fails; ``deadline``: the clock
        time by which the connection must be made.
        """
        self.flight = flight
        self.deadline = deadline
        scheme, host, port = self.origin
        if scheme != "https":
            ctx = None
        elif isinstance(verify, bool):
            ctx = client_ssl_context(verify)
        else:
            ctx = verify.context()
        fut = asyncio.ensure_future(
            loop.create_connection(
                lambda: self, host, port, ssl=ctx, server_hostname=host if ctx else None
            )
        )
        self.connecting = fut
        fut.add_done_callback(self.connect_done)

    def send(
        self, flight: Any, data: bytes, head: bool, deadline: float, later: bool = False
    ) -> None:
        """Write one request on an IDLE connection; the response comes back via the owner.

        ``later``: write it with the owner's next flush (see :meth:`pipeline`).
        """
        assert self.transport is not None
        self.flight = flight
        self.deadline = deadline
        self.state = BUSY
        self.reader.expect(head)
        if later:
            self._write_later(data)
        else:
            self.transport.write(data)
        if type(data) is not bytes:  # a body from files, a body to save: see _bodies
            _bodies.start(self, data)

    def begin(self, flight: Any, deadline: float) -> None:
        """IDLE -> BUSY with ``flight``, for a subclass that writes the request itself."""
        self.flight = flight
        self.deadline = deadline
        self.state = BUSY

    def answered_quickly(self) -> Any:
        """BUSY -> IDLE: a subclass's fast path read the whole answer; returns its flight."""
        flight, self.flight = self.flight, None
        self.served += 1
        self.state = IDLE
        return flight

    def again(self, flight: Any, deadline: float) -> Any:
        """The answer was read and the next request is already written: stays BUSY.

        Returns the answered flight (a subclass's fast path, as :meth:`answered_quickly`).
        """
        answered, self.flight = self.flight, flight
        self.served += 1
        self.deadline = deadline
        return answered

    def drop(self) -> None:
        """The owner is done (end of run): abort, reporting nothing and handing nothing back."""
        self.flight = None
        self.behind.clear()
        self.abort("cancelled")

    def pipeline(self, queued: list[tuple[Any, float]], data: list[bytes]) -> None:
        """Write more requests on a BUSY connection, behind those in flight.

        ``queued`` holds (flight, deadline) pairs and ``data`` their requests. Only for
        requests that are safe to send twice and have no body; the owner decides
        when (after the connection has answered once). They go out with the
        owner's next flush.
        """
        assert self.transport is not None
        assert self.state is BUSY
        self.behind.extend(queued)
        self.reader.expect(False, len(queued))
        if not self.unsent:
            self.owner.flush_later(self)
        self.unsent.extend(data)

    def _write_later(self, data: bytes) -> None:
        if not self.unsent:
            self.owner.flush_later(self)
        self.unsent.append(data)

    def flush(self) -> None:
        """Write the pipelined requests gathered since the last flush, in one call."""
        unsent = self.unsent
        if unsent and self.transport is not None and self.state is BUSY:
            self.transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))
        unsent.clear()

    def room(self, depth: int) -> int:
        """How many more requests may queue here, for at most ``depth`` in flight.

        A server that announced it closes after K more answers gets at most K
        requests: more would be read by nobody, and a close with unread data
        is a reset, which may cost the last answer too. One seen to close after
        N answers without saying so (``limit``) is taken at its word the same way.
        """
        left = self.remaining()
        most = depth if left is None or left > depth else left
        return most - 1 - len(self.behind)

    def spent(self) -> bool:
        """Whether the server will answer no more requests here: it said so
        (``Keep-Alive: max`` counted down to 0) or its learned ``limit`` is reached."""
        left = self.remaining()
        return left is not None and left <= 0

    def remaining(self) -> int | None:
        """Requests the server will still answer here, counting those in flight: what it
        said (``left``), else what its learned ``limit`` leaves; None: no limit known."""
        left = self.left
        if left is None and self.limit is not None:
            return self.limit - self.served
        return left

    def abort(self, reason: str, detail: str = "") -> None:
        """Give up on the connection (timeout, cancel); the flight in it is reported failed."""
        flight, self.flight = self.flight, None
        if reason == "timeout" and self.transport is None and self.state is not CLOSED:
            _scheme, host, port = self.origin
            detail = f"no connection to {host}:{port} within the connect timeout"
        connecting = self.connecting
        if connecting is not None:
            if not connecting.done():
                connecting.cancel()
            elif not connecting.cancelled():
                # Failed, its callback not run yet: the loop may close first, and an
                # exception nobody retrieved is logged ("Task exception was never retrieved").
                connecting.exception()
        if self.transport is not None:
            _reset_on_close(self.transport)  # abort() alone still ends with a FIN
            self.transport.abort()
        self._closed()
        if flight is not None:
            self.owner.on_failure(self, flight, reason, detail)
        self._hand_back()

    def _hand_back(self) -> None:
        """The connection is gone: requests queued behind the oldest were never answered.

        The last of them may not even have been written (still in ``unsent``, for the
        owner's next flush): ``written`` says which were.
        """
        behind = self.behind
        written = len(behind) - len(self.unsent)
        self.unsent.clear()
        while behind:
            self.owner.on_unanswered(self, behind.popleft()[0], written > 0)
            written -= 1

    def close(self) -> None:
        """Close the connection now, with a reset rather than a FIN.

        The side that closes first keeps the port in TIME_WAIT for a minute;
        a run that closes thousands of connections (a server that answers
        "Connection: close") would exhaust the ephemeral ports. SO_LINGER 0
        makes close() send RST: no TIME_WAIT, and nothing is lost because the
        connection is closed only when no request is in flight.
        """
        transport = self.transport
        if transport is not None:
            _reset_on_close(transport)
            transport.close()
        self._closed()
        self._hand_back()

    def _closed(self) -> None:
        if self.pump is not None or self.reader.sink is not None:
            _bodies.closed(self)
        if self.state is not CLOSED:
            self.state = CLOSED
            self.owner.on_closed(self)

    def connect_done(self, fut: asyncio.Future[Any]) -> None:
        """Done-callback of the connect attempt: report a failure if there was one."""
        self.connecting = None
        if fut.cancelled():
            return
        exc = fut.exception()  # retrieved even when given up on: no "never retrieved" log
        if exc is None or self.state is CLOSED:
            return
        flight, self.flight = self.flight, None
        try:
            self._closed()
            if flight is not None:
                reason = reason_for(exc, connecting=True)
                detail = describe_error(exc)
                if reason == "connect":  # name the place: a run may have many origins
                    _scheme, host, port = self.origin
                    detail = f"{detail} to {host}:{port}"
                self.owner.on_failure(self, flight, reason, detail)
        except Exception as error:  # the owner's: see _owner_failed
            self._owner_failed(error)

    def _owner_failed(self, exc: Exception) -> None:
        """One of the owner's callbacks raised (a bug, or a broken sink it let through).

        Left to asyncio, it would be logged, the transport closed, and the rows the
        owner had not settled yet (the rest of a read's answers, those handed back)
        would have no result: the run would wait for them for ever. The owner ends
        its run with the error instead (``on_error``), as it does with a failure of
        its own.
        """
        self.owner.on_error(self, exc)

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        if self.state is CLOSED:  # given up on while connecting
            self.transport.abort()
            return
        self.state = IDLE
        try:
            self.owner.on_connected(self)
        except Exception as exc:  # the owner's: see _owner_failed
            self._owner_failed(exc)

    def data_received(self, data: bytes) -> None:
        if self.state is not BUSY:
            # Bytes nobody asked for: the connection can no longer be trusted.
            if self.state is IDLE:
                try:
                    self.close()
                except Exception as exc:  # the owner's: see _owner_failed
                    self._owner_failed(exc)
            return
        try:
            responses = self.reader.feed_all(data)
        except RequestError as exc:
            # The answers read before the bad one are theirs; the error is the next one's.
            try:
                self._end(self.reader.completed, exc)
            except Exception as error:  # the owner's: see _owner_failed
                self._owner_failed(error)
            return
        # (An exception of the reader's own is left to asyncio: see connection_lost.)
        try:
            if self.pump is not None:
                _bodies.answered_early(self, responses)
            if len(responses) == 1:
                self._complete(responses[0])
            elif not responses:
                return  # an answer is still on its way
            elif responses[-1].keep_alive:
                # The usual case (only the last can close the connection: the reader
                # reads nothing after such an answer): hand them over together, the
                # connection's state already moved on.
                self._answered(responses)
            else:  # the last one closes the connection
                self._end(responses)
        except Exception as exc:  # the owner's: see _owner_failed
            self._owner_failed(exc)

    def _answered(self, responses: list[Response]) -> None:
        """Responses on a connection that stays open: one call to the owner for all."""
        behind = self.behind
        count = len(responses)  # (never more than the requests sent: the reader's count)
        flights = [self.flight]
        popleft = behind.popleft
        for _ in range(count - 1):
            flights.append(popleft()[0])
        if behind:
            self.flight, self.deadline = popleft()
        else:
            self.flight = None
            self.state = IDLE
        for response in responses:  # the server's count of answers left, if it says
            if response.left is not None:
                self.left = response.left
        self.served += count
        self.owner.on_responses(self, list(zip(flights, responses, strict=True)))

    def _complete(self, response: Response) -> None:
        if response.keep_alive:
            self._answered([response])
        else:
            self._end([response])

    def _end(
        self, responses: list[Response], failure: RequestError | None = None, framed: bool = True
    ) -> None:
        """The connection ends with what was just read.

        ``responses`` answer the oldest requests in flight, and the last of them closes
        the connection; or, with ``failure``, the answer after them failed: its request
        gets the error (not retried if the error is not transient), and the connection
        is aborted. Either way the requests queued behind are handed back (the server
        never answered them) and then the owner gets the answers, the connection closed.
        ``framed``: the last answer was framed by its length or chunks, not by the close.
        """
        behind = self.behind
        answered: list[tuple[Any, Response]] = []
        if responses:
            count = len(responses)  # (never more than the requests sent: the reader's count)
            flights = [self.flight]
            for _ in range(count - 1):
                flights.append(behind.popleft()[0])
            answered = list(zip(flights, responses, strict=True))
            self.flight = None
            self.served += count
            for response in responses:  # the server's count of answers left, if it says
                if response.left is not None:
                    self.left = response.left
            if failure is not None and behind:
                self.flight, self.deadline = behind.popleft()  # the one whose answer failed
        if failure is not None:
            self.abort(failure.reason, str(failure))  # reports self.flight, hands back the rest
        else:
            last = responses[-1]
            # An answer framed by its length or chunks, in front of requests queued behind:
            # the server's count (an error page that closes is no limit; a reset, which
            # may have lost answers, neither; nor an answer this side stopped reading,
            # over --max-body or unsaved, which has an error).
            self.cut = framed and last.status < 400 and not last.error and bool(behind)
            self.close()  # hands back whatever was queued behind
        if answered:
            self.owner.on_responses(self, answered)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.pump is not None:
            self.pump.run()

    def eof_received(self) -> bool | None:
        # Let the transport close; connection_lost does the bookkeeping.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._lost(exc)
        except Exception as error:  # the owner's: see _owner_failed
            self._owner_failed(error)

    def _lost(self, exc: Exception | None) -> None:
        if self.state is not BUSY or self.flight is None:
            self._closed()
            self._hand_back()
            return
        try:
            # A body delimited by the close is whole only if the connection closed
            # without error (RFC 9112 §8): cut by a reset, it is cut short.
            response = self.reader.eof(clean=exc is None)
        except ProtocolError as perr:
            flight, self.flight = self.flight, None
            self._closed()
            self.owner.on_failure(self, flight, "protocol", str(perr))
            self._hand_back()
            return
        if response is not None:
            self._end([response], framed=False)  # not keep-alive: closes and hands back
            return
        flight, self.flight = self.flight, None
        self._closed()
        if exc is None or isinstance(exc, OSError):  # the peer, the network or TLS
            reason, detail = reason_for(exc), describe_error(exc) or "connection closed"
        else:
            # An exception in this protocol's own callbacks, which asyncio logs and
            # closes the transport with: a bug, never a reset to retry.
            reason = Reason.PROTOCOL.value
            detail = f"internal error: {type(exc).__name__}: {describe_error(exc)}"
        self.owner.on_failure(self, flight, reason, detail)
        self._hand_back()

    @property
    def received_any(self) -> bool:
        """Whether any byte of the current response has arrived."""
        return bool(self.reader.started)


def pipeline_room(conn: Connection, depth: int, refill: int) -> int:
    """How many more GET requests ``conn`` may queue, at most ``depth`` in flight (≤ 0: none).

    Only a busy connection that has answered before (so the server keeps
    connections alive) and carries a GET (never behind a HEAD) takes more, and
    only once ``refill`` of them fit (see :class:`drumfire._pipelining.Setting`).
    """
    head = conn.flight
    if conn.state != BUSY or not conn.served or head is None or head.prepared.method != "GET":
        return 0
    room = conn.room(depth)
    if room < refill:
        # Wait until the queue has room for a batch (one write for many), or is
        # empty when the connection will never have that much room again (the
        # server's Keep-Alive: max is near).
        return room if room + len(conn.behind) < refill and not conn.behind else 0
    return room


@dataclass(frozen=True, slots=True)
class TLS:
    """The client's TLS setting: immutable, picklable (it crosses to worker processes).

    ``cacert``: a PEM file of the certificate authorities to trust, in place of
    the system's (as curl ``--cacert`` and requests' ``verify=PATH``).
    ``cert`` and ``key``: a client certificate and its private key (PEM; the
    key may be in ``cert``), as curl ``--cert``/``--key``.
    """

    verify: bool = True
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        """The shared client context for this setting (built once, then cached)."""
        return client_ssl_context(self.verify, self.cacert, self.cert, self.key)


@functools.cache
def client_ssl_context(
    verify: bool = True,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> ssl.SSLContext:
    """One client TLS context per setting, shared (contexts are thread-safe to use)."""
    ctx = ssl.create_default_context(cafile=cacert)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _reset_on_close(transport: asyncio.BaseTransport) -> None:
    """Make the coming close send RST (SO_LINGER 0): no TIME_WAIT on this side."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass


def describe_error(exc: BaseException | None) -> str:
    """A short, readable message for the summary's example of a failure."""
    if exc is None:
        return ""
    if isinstance(exc, ssl.SSLCertVerificationError):
        # "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed
        # certificate (_ssl.c:1006)" says it twice, and where in C.
        text = f"certificate verify failed: {exc.verify_message}"
    elif isinstance(exc, ssl.SSLError) and exc.reason:
        text = exc.reason.lower().replace("_", " ")  # "tlsv13 alert certificate required"
        text = text.replace("tlsv13 alert ", "").replace("sslv3 alert ", "")
    elif isinstance(exc, OSError) and not isinstance(exc, socket.gaierror) and exc.errno:
        # The same words whatever the loop: asyncio says "Connect call failed
        # ('127.0.0.1', 9)" where uvloop says "Connection refused".
        text = f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
    else:
        text = str(exc) or type(exc).__name__
    return text[:200]

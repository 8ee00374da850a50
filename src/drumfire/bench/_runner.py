"""The load generator: drumfire's connections driven by a closed or an open model.

Why this module is long: both models drive the same connections through one owner
(the callbacks below) and share its accounting (sent, in flight, re-sent, cancelled,
the stop); split in two, that state would live in two places.

Like the batch engine it is callback-driven: no asyncio Task per request and
no timer per request. Connections report to the runner (``on_response``,
``on_failure``, ...), each report records the outcome and calls ``pump``,
which starts as many requests as the model allows; one periodic ``_tick``
closes the seconds of the timeline and feeds the live view (every 0.1 s), and
one ``_sweep`` enforces deadlines: a tenth of the shorter timeout apart (see
:func:`~drumfire._settings.sweep_interval`), so a 20 ms ``--timeout`` fires at
20-22 ms, not whenever the next tick came (up to 100 ms late, as it used to).

Closed model (``rate is None``): ``concurrency`` connections, each sending its
next request as soon as the last answer came. Latency = answer - send.

Open model (``rate``): request *i* is due at ``start + schedule.due(i)``
whatever the server does. Due requests wait in an implicit FIFO (the indices
between the next one to send and the last one due) for a free connection, at
most ``concurrency`` in flight. Latency = answer - due time (or - send time
for a request sent a little early), so time spent queued behind a stalled
server counts: no coordinated omission. One wake-up timer is armed for the
next due request only while a connection is free.
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import cast

from hdrh.histogram import HdrHistogram

from .._connection import TLS, Connection
from .._errors import DrumfireError, Reason
from .._pool import Pool
from .._request import Origin, asks_close
from .._response import Response
from .._settings import IDEMPOTENT_METHODS, MAX_BODY, sweep_interval
from ._fastconn import BenchConnection, Loop
from ._recorder import HIGHEST_US, Recorder, RunData, new_histogram
from ._schedule import Schedule

__all__ = ["BenchError", "RunData", "Runner", "Target"]

#: What is sent: (origin, request bytes, is it a HEAD request).
Target = tuple[Origin, bytes, bool]

#: A request due within this many seconds is sent now rather than after another wake-up
#: (it is then timed from its send, not from its due time).
SEND_AHEAD = 0.001
#: The wake-up timer is armed this long before the next request is due: uvloop's timers
#: have a millisecond's resolution, and one that fires late would delay the send.
WAKE_AHEAD = 0.001
#: A send later than this through the client's own fault is counted as late.
LATE = 0.001
#: A failed connect holds its slot this long before the next attempt (a dead server
#: must not turn the run into a connect loop).
CONNECT_COOLDOWN = 0.01
#: An answer over max_body: the reader keeps its status; bench counts the error.
_OVER = Reason.BODY_TOO_LARGE.value


class BenchError(DrumfireError):
    """The run could not start (no connection could be opened)."""


class Runner:
    """One benchmark run on the running event loop (see :func:`drumfire.bench.abench`)."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        concurrency: int,
        schedule: Schedule | None = None,
        requests: int | None = None,
        duration: float | None = None,
        warmup: float = 0.0,
        timeout: float = 10.0,
        connect_timeout: float = 10.0,
        max_body: int = MAX_BODY,
        verify: bool | TLS = True,  # or the whole TLS setting (--cacert, --cert)
        shuffle: bool = False,
        seed: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        on_tick: Callable[[Runner], None] | None = None,
        tick_interval: float = 0.1,
    ) -> None:
        if not targets:
            raise ValueError("no target to send")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if (
            requests is None
            and duration is None
            and (schedule is None or math.isinf(schedule.length))
        ):
            raise ValueError("give a request count, a duration, or a finite rate profile")
        self.targets = list(targets)
        self.concurrency = concurrency
        self.schedule = schedule
        self.limit = requests
        self.duration = duration
        self.warmup = warmup
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_body = max_body
        self.verify = verify
        self.shuffle = shuffle
        self.rng = random.Random(seed)
        self.clock = clock
        self.on_tick = on_tick
        self.tick_interval = tick_interval
        self.sweep_interval = sweep_interval(tick_interval, timeout, connect_timeout)
        if shuffle:
            self.rng.shuffle(self.targets)
        # Closed model with every target on one origin: on_status may re-send directly.
        self._one_origin = schedule is None and len({t[0] for t in self.targets}) == 1
        self._k = 0
        self.pool = Pool(concurrency)  # idle connections per origin, the count of open ones
        self._conns: set[Connection] = set()
        self._pending: dict[Connection, Target] = {}
        self.heads: dict[bytes, tuple[int, int]] = {}  # see _fastconn.inspect_head
        self.recorder = Recorder(0.0)
        # Measured sends are counted in ``counter``; with one target in the closed
        # model it is also the connections' short cut (``loop``, see _fastconn.Loop).
        self.counter = Loop(
            clock, self.targets[0][1], requests or sys.maxsize, timeout, self.recorder
        )
        single = schedule is None and len(set(self.targets)) == 1 and not self.targets[0][2]
        self.loop: Loop | None = self.counter if single else None
        # Requests that say "Connection: close" (RFC 9112 §9.6): the connection is closed
        # once their answer is read, even when the server keeps it open, as drumfire run
        # does; the closed model's short cuts, which send again on it, are off then.
        self.closing = frozenset(t[1] for t in self.targets if asks_close(t[1]))
        if self.closing:
            self.loop = None
            self._one_origin = False
        # A request that may have been acted on (not idempotent, RFC 9110 §9.2.2) is never
        # re-sent, as by `drumfire run` without --retry-unsafe.
        methods = {t[1]: t[1].partition(b" ")[0].decode() for t in self.targets}
        self.unsafe = frozenset(r for r, m in methods.items() if m not in IDEMPOTENT_METHODS)
        self.resent = 0
        self.cancelled = 0
        self.cancelled_max = 0.0
        self.unsent = 0  # open model: timed out waiting for a connection, never written
        self.closed_unsafe = 0  # non-idempotent requests found closed (a reset, not re-sent)
        self.opened = 0
        self.inflight = 0
        self.first_send = 0.0
        self.last_send = 0.0
        self.exhausted = False
        self.stopped = False
        self.begin = 0.0
        self.measure_start = math.inf
        self.end = math.inf
        # open model
        self._next = 0
        self.next_due = math.inf
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self._freed_at = 0.0
        self.queue: HdrHistogram | None = None
        self.lag_max = 0.0
        self.lag_sum = 0.0
        self.late = 0
        self._stopped_at = 0.0
        self.backlog = 0
        self.backlog_max = 0
        self.loop_lag_max = 0.0
        self._tick_due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._end_handle: asyncio.TimerHandle | None = None
        self._grace_handle: asyncio.TimerHandle | None = None
        self._warm_handle: asyncio.TimerHandle | None = None
        self._failure: BaseException | None = None
        self._began = False  # start() ran: the clocks are set
        self._stop_first: float | None = None  # a stop asked before that (see stop)
        # Done when a stop is asked while the first connections open (see _preconnect).
        self._connecting: asyncio.Future[None] | None = None
        #: Start what the model allows at clock time ``now`` (every report calls it;
        #: a simulation drives it too, with ``send`` and ``arm`` replaced).
        self.pump: Callable[[float], None] = (
            self._pump_closed if schedule is None else self._pump_open
        )

    @property
    def open_model(self) -> bool:
        return self.schedule is not None

    # -- running -----------------------------------------------------------------

    async def run(self) -> RunData:
        """Connect, run the load, wait for the last answer; return what was measured."""
        loop = self._loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        try:
            await self._preconnect()
            now = self.clock()
            self.start(now)
            if self._stop_first is not None:
                self.stop(self._stop_first)
            self._tick_handle = loop.call_later(self.tick_interval, self._tick)
            if self.sweep_interval < self.tick_interval:  # else the tick sweeps
                self._sweep_handle = loop.call_later(self.sweep_interval, self._sweep)
            if self.schedule is None and not math.isinf(self.end):
                # Closed model: stop sending at the end. (The open model stops once the
                # next request is due after the end, and still sends the backlog.)
                self._end_handle = loop.call_later(max(self.end - now, 0.0), self._at_end)
            if self.loop is not None and self.warmup > 0:
                self._warm_handle = loop.call_later(self.warmup, self._warmed)
            self.pump(now)
            await self._done
        finally:
            handles = (self._tick_handle, self._end_handle, self._grace_handle, self._wake)
            for handle in (*handles, self._warm_handle, self._sweep_handle):
                if handle is not None:
                    handle.cancel()
            self._close_all()
        if self._failure is not None:
            raise self._failure
        return self.result()

    def result(self) -> RunData:
        """Close the measurement and return what it measured."""
        rec = self.recorder
        now = self.clock()
        # The measured window: up to the last answer, and at least to the end of the
        # time the run was asked to cover (the duration; under the open model the due
        # time of the first request it did not send; the moment it was stopped).
        if self.stopped:
            window = self._stopped_at
        elif self.schedule is not None:
            window = min(self.end, self.next_due)
        else:
            window = self.end if now >= self.end else self.measure_start
        finish = max(rec.last, window, self.measure_start)
        rec.finish(finish)
        return RunData(
            recorder=rec,
            begin=self.begin,
            measure_start=self.measure_start,
            finish=finish,
            sent=self.sent,
            first_send=self.first_send,
            last_send=self.last_send,
            queue=self.queue,
            lag_max=self.lag_max,
            lag_sum=self.lag_sum,
            late=self.late,
            backlog_max=self.backlog_max,
            loop_lag_max=self.loop_lag_max,
            connections=self.opened,
            stopped=self.stopped,
            resent=self.resent,
            cancelled=self.cancelled,
            cancelled_max=self.cancelled_max,
            unsent=self.unsent,
            closed_unsafe=self.closed_unsafe,
        )

    def start(self, now: float) -> None:
        """Set the clocks of the run beginning ``now`` (``run`` calls it once connected)."""
        self.begin = now
        self._began = True
        self.measure_start = now + self.warmup
        self.end = self.measure_start + self.duration if self.duration is not None else math.inf
        if self.schedule is not None:
            self.end = min(self.end, now + self.schedule.length)
            self.queue = new_histogram()
            self.next_due = now + self.schedule.due(0)
        self.recorder = self.counter.recorder = Recorder(self.measure_start)
        self._tick_due = now + self.tick_interval
        if self.loop is not None and self.warmup <= 0:
            self.loop.until = self.end

    def stop(self, grace: float = 2.0) -> None:
        """Send nothing more; give the requests in flight ``grace`` seconds, then cancel them.

        Asked before the run started (while it connects, or from another thread before
        it runs), the run stops as it starts: start() would set its end again."""
        if not self._began or self._loop is None:
            self._stop_first = grace
            if self._connecting is not None and not self._connecting.done():
                self._connecting.set_result(None)  # Ctrl-C while connecting: stop waiting
            return
        if self.stopped:
            if grace <= 0:
                self._cancel_all()
            return
        self.stopped = True
        self._stopped_at = now = self.clock()
        if self.schedule is not None:  # the requests due and waiting for a connection
            since, until = self.measure_start - self.begin, min(now, self.end) - self.begin
            waiting, due = self.schedule.due_unsent(self._next, since, until)
            if waiting:  # cancelled too; the schedule ran up to now
                self.cancelled += waiting
                self.cancelled_max = max(self.cancelled_max, until - due)
                self.last_send = now
        self.end = min(self.end, self._stopped_at)  # also ends on_status's short cut
        self.counter.until = -math.inf
        self.exhausted = True
        self._grace_handle = self._loop.call_later(grace, self._cancel_all)
        self._check_done()

    def _cancel_all(self) -> None:
        for conn in list(self._conns):
            if conn.is_busy() or conn.is_connecting():
                conn.abort("cancelled", "stopped before the answer came")
        self._check_done()

    def _close_all(self) -> None:
        for conn in list(self._conns):
            if conn.is_idle():
                conn.close()
            else:
                conn.drop()  # the run is over: nobody to report to
        self.pool.idle.clear()
        self._pending.clear()

    def _check_done(self) -> None:
        done = self._done
        if self.exhausted and self.inflight == 0 and done is not None and not done.done():
            done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _warmed(self) -> None:
        """The warm-up is over: the closed model's short cut may start measuring."""
        if self.loop is not None and not self.stopped and not self.exhausted:
            self.loop.until = self.end

    @property
    def sent(self) -> int:
        """Measured requests sent (or, under the open model, given up on unsent)."""
        return self.counter.sent

    @sent.setter
    def sent(self, value: int) -> None:
        self.counter.sent = value

    def _at_end(self) -> None:
        self.counter.until = -math.inf
        if not self.exhausted:
            self.exhausted = True
            self._check_done()

    # -- connections ---------------------------------------------------------------

    async def _preconnect(self) -> None:
        """Open the connections before the clock starts, as wrk does."""
        origin = self.targets[0][0]
        n = self.concurrency
        if self.limit is not None and self.warmup <= 0 and self.schedule is None:
            n = min(n, max(self.limit, 1))
        conns = [self._connect(origin, None) for _ in range(n)]
        futures = [c.connecting for c in conns if c.connecting is not None]
        if futures and self._stop_first is None:
            assert self._loop is not None
            stop = self._connecting = self._loop.create_future()
            opened = asyncio.ensure_future(asyncio.wait(futures, timeout=self.connect_timeout))
            try:
                # A stop (Ctrl-C, SIGTERM) ends the wait: it used to go on to the connect
                # timeout (10 s against a server that does not accept), then "cannot connect".
                await asyncio.wait([opened, stop], return_when=asyncio.FIRST_COMPLETED)
            finally:
                opened.cancel()
                self._connecting = None
        if self._stop_first is not None:
            for conn in conns:
                if conn.is_connecting():
                    conn.abort("cancelled", "stopped before the connection opened")
            return  # run() stops as it starts: no request, the report says stopped
        problem: BaseException | None = None
        for conn, fut in zip(conns, futures, strict=False):
            if conn.is_connecting():
                conn.abort("timeout")
                problem = problem or TimeoutError("no connection within the connect timeout")
            elif fut.done() and not fut.cancelled() and fut.exception() is not None:
                problem = problem or fut.exception()
        if not any(c.is_idle() for c in conns):
            _, host, port = origin
            detail = str(problem) if problem is not None else "connection closed"
            raise BenchError(f"cannot connect to {host}:{port}: {detail}")

    def _connect(
        self,
        origin: Origin,
        target: Target | None,
        stamp: float = -1.0,
        deadline: float | None = None,
    ) -> Connection:
        """Open a connection; it sends ``target`` once connected (by ``deadline``)."""
        if deadline is None:
            deadline = self.clock() + self.connect_timeout
        assert self._loop is not None
        conn = BenchConnection(self, origin, self.max_body)
        self.pool.opened(conn)
        self.opened += 1
        self._conns.add(conn)
        if target is not None:
            self._pending[conn] = target
        conn.open(self._loop, self.verify, stamp if target is not None else None, deadline)
        return conn

    def send(self, stamp: float, deadline: float) -> None:
        """Send the next target on an idle connection to its origin, or open one.

        ``stamp``: the time the request counts from (-1: warm-up, not recorded).
        """
        k = self._k
        target = self.targets[k]
        k += 1
        if k == len(self.targets):
            k = 0
            if self.shuffle:
                self.rng.shuffle(self.targets)
        self._k = k
        self.inflight += 1
        origin = target[0]
        conn = self.pool.take(origin)
        if conn is not None:
            conn.send(stamp, target[1], target[2], deadline)
            return
        self.pool.make_room()
        self._connect(origin, target, stamp, deadline)

    # -- Owner protocol (called by the connections) ------------------------------------

    def on_connected(self, conn: Connection) -> None:
        target = self._pending.pop(conn, None)
        if target is None or conn.flight is None:
            self.pool.give(conn)
            return
        conn.send(conn.flight, target[1], target[2], conn.deadline)

    def on_closed(self, conn: Connection) -> None:
        self.pool.closed(conn)
        self._conns.discard(conn)
        self._pending.pop(conn, None)

    def on_responses(self, conn: Connection, answered: list[tuple[float, Response]]) -> None:
        for stamp, response in answered:  # one: bench never pipelines
            if response.error.startswith(_OVER):
                # Over max_body (answered, its body not read, the connection not
                # reused): counted as that error, as before, not as the status.
                self.on_failure(conn, stamp, _OVER, response.error)
                continue
            self.on_status(conn, stamp, response.status)

    def on_unanswered(self, conn: Connection, stamp: float, written: bool) -> None:
        raise AssertionError("bench never pipelines")  # pragma: no cover

    def flush_later(self, conn: Connection) -> None:
        raise AssertionError("bench never pipelines")  # pragma: no cover

    def on_error(self, conn: Connection, exc: Exception) -> None:
        """A callback of this protocol raised (a bug): the run ends with the error."""
        self._fail(exc)

    def on_status(self, conn: Connection, stamp: float, status: int) -> None:
        now = self.clock()
        if (
            self._one_origin
            and conn.is_idle()
            and self.measure_start <= now < self.end
            and self.sent != self.limit
        ):
            # The closed model's usual step, short-cut: the connection that just
            # answered sends the next request at once, and only then is the answer
            # recorded, while the server works on the next one.
            self.sent += 1
            self.last_send = now
            k = self._k
            targets = self.targets
            target = targets[k]
            k += 1
            if k == len(targets):
                k = 0
                if self.shuffle:
                    self.rng.shuffle(targets)
            self._k = k
            conn.send(now, target[1], target[2], now + self.timeout)
            if stamp >= 0.0:
                self.recorder.response(now, stamp, status)
            return
        if stamp >= 0.0:
            self.recorder.response(now, stamp, status)
        if self.inflight == self.concurrency:
            self._freed_at = now
        self.inflight -= 1
        if conn.is_idle():
            if self.closing and cast(BenchConnection, conn).request in self.closing:
                conn.close()
            else:
                self.pool.give(conn)
        self.pump(now)

    def on_failure(self, conn: Connection, stamp: float, reason: str, detail: str) -> None:
        now = self.clock()
        if self.inflight == self.concurrency:
            self._freed_at = now
        self.inflight -= 1
        request = cast(BenchConnection, conn).request
        found_closed = reason == "reset" and conn.served and not conn.received_any
        if found_closed and not self.stopped and request not in self.unsafe:
            # A kept-alive connection the server had closed, or closed on this request: sent
            # again once, on a new connection, as HTTP clients do; its time keeps running,
            # and it is counted (``resent``): a server dropping requests must show it.
            if stamp >= 0.0:
                self.resent += 1
            self._resend(conn.origin, request, cast(BenchConnection, conn).head, stamp, now)
            return
        if found_closed and not self.stopped and stamp >= 0.0:
            self.closed_unsafe += 1  # a reset below; the report says why (a warning)
        if reason == "cancelled":
            # Unanswered when the stop's grace was over: counted apart, not as the
            # server's failure (a stop without grace cancels healthy requests too).
            if stamp >= 0.0:
                self.cancelled += 1
                self.cancelled_max = max(self.cancelled_max, now - stamp)
        elif stamp >= 0.0:
            self.recorder.failure(now, reason, stamp)
        if reason == "connect" and not self.exhausted:
            assert self._loop is not None
            self._loop.call_later(CONNECT_COOLDOWN, self._pump_later)
            return
        self.pump(now)

    def _resend(self, origin: Origin, request: bytes, head: bool, stamp: float, now: float) -> None:
        start = stamp if stamp >= 0.0 else now
        try:  # on a new connection: the idle ones may be just as stale
            self.inflight += 1
            self.pool.make_room()
            deadline = max(start + self.timeout, now + 0.001)
            self._connect(origin, (origin, request, head), stamp, deadline)
        except Exception as exc:  # pragma: no cover - an unexpected bug must end the run
            self._fail(exc)

    def _pump_later(self) -> None:
        self.pump(self.clock())

    # -- the two models ------------------------------------------------------------------

    def _pump_closed(self, now: float) -> None:
        """Closed model: fill every free slot at once."""
        if not self.exhausted and now >= self.end:
            self.exhausted = True
        if self.exhausted:
            self._check_done()
            return
        try:
            while self.inflight < self.concurrency:
                if now >= self.measure_start:
                    if self.sent == self.limit:
                        self.exhausted = True
                        break
                    if not self.sent:
                        self.first_send = now
                    self.sent += 1
                    self.last_send = now
                    self.send(now, now + self.timeout)
                else:
                    self.send(-1.0, now + self.timeout)
        except Exception as exc:  # pragma: no cover - an unexpected bug must end the run
            self._fail(exc)
            return
        self._check_done()

    def _pump_open(self, now: float, from_timer: bool = False) -> None:
        """Open model: send every request that is due, while a connection is free."""
        schedule = self.schedule
        assert schedule is not None
        begin = self.begin
        try:
            while not self.exhausted and self.inflight < self.concurrency:
                due = self.next_due
                if due > now + SEND_AHEAD:
                    self.arm(due)
                    break
                if due >= self.end:
                    self.exhausted = True
                    break
                counted = due >= self.measure_start
                if counted and self.sent == self.limit:
                    self.exhausted = True
                    break
                self._next += 1
                self.next_due = begin + schedule.due(self._next)
                if not counted:  # warm-up
                    if due + self.timeout > now:
                        self.send(-1.0, min(due, now) + self.timeout)
                    continue
                if not self.sent:
                    self.first_send = now
                self.sent += 1
                self.last_send = now
                if due + self.timeout <= now:
                    # It waited its whole timeout for a connection: given up unsent.
                    self.unsent += 1
                    self.recorder.failure(now, "timeout", due)
                    continue
                wait = now - due
                assert self.queue is not None
                if wait > 0:
                    self.queue.record_value(min(max(int(wait * 1e6), 1), HIGHEST_US))
                    # Lateness the client alone caused: since it was due, or since a
                    # connection came free, whichever is later.
                    late = now - max(due, self._freed_at)
                    if late > 0.0:
                        self.lag_sum += late
                        if late > self.lag_max:
                            self.lag_max = late
                        if late > LATE:
                            self.late += 1
                    self.send(due, due + self.timeout)
                else:
                    self.queue.record_value(1)
                    self.send(now, now + self.timeout)
        except Exception as exc:  # pragma: no cover - an unexpected bug must end the run
            self._fail(exc)
            return
        if self.next_due >= self.end:
            self.exhausted = True
        self._check_done()

    def arm(self, due: float) -> None:
        """Wake up shortly before ``due`` (one timer for the whole run)."""
        if self._wake is not None:
            if self._wake_at <= due:
                return
            self._wake.cancel()
        assert self._loop is not None
        self._wake_at = due
        delay = max(due - WAKE_AHEAD - self.clock(), 0.0)
        self._wake = self._loop.call_later(delay, self._on_wake)

    def _on_wake(self) -> None:
        self._wake = None
        self._wake_at = math.inf
        self._pump_open(self.clock(), True)

    # -- the periodic tick and the deadline sweep ------------------------------------

    def _abort_overdue(self, now: float) -> None:
        for conn in [c for c in self._conns if c.is_overdue(now)]:
            conn.abort("timeout", "no complete answer in time")

    def _sweep(self) -> None:
        """Deadlines between two ticks: a short timeout fires on time (see the docstring)."""
        self._abort_overdue(self.clock())
        assert self._loop is not None
        self._sweep_handle = self._loop.call_later(self.sweep_interval, self._sweep)

    def _tick(self) -> None:
        now = self.clock()
        late = now - self._tick_due
        if late > self.loop_lag_max and now >= self.measure_start:
            self.loop_lag_max = late
        self._abort_overdue(now)
        self.recorder.roll(now)
        if self.schedule is not None and not self.exhausted:
            due = self.schedule.count_before(min(now, self.end) - self.begin + 1e-9)
            self.backlog = max(due - self._next, 0)
            if self.backlog > self.backlog_max and now >= self.measure_start:
                self.backlog_max = self.backlog
        else:
            self.backlog = 0
        if self.schedule is None and not self.exhausted and now >= self.end:
            self.exhausted = True
        self.pump(now)
        if self.on_tick is not None:
            try:
                self.on_tick(self)
            except Exception as exc:  # a broken display must not hang the run
                self._fail(exc)
                return
        assert self._loop is not None
        self._tick_due = now + self.tick_interval
        self._tick_handle = self._loop.call_later(self.tick_interval, self._tick)

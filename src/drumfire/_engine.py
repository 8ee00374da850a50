"""The engine: rows in, one result per row out, as fast as the server answers.

Everything is driven by callbacks from connections; there is no asyncio Task
per request. ``_pump`` starts requests while the concurrency limit allows,
each completion calls ``_pump`` again, and one periodic timer (``_tick``)
enforces deadlines and reports progress.

A row's life::

    input item --prepare--> Flight --dispatch--> Connection --response/failure-->
        retry?  --yes--> wait (backoff / Retry-After) --> dispatch again
                --no---> Result --> (reorder buffer if ordered) --> on_result
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import orjson

from ._connection import BUSY, IDLE, TLS, Connection
from ._errors import explain
from ._extract import Extractor
from ._http import MAX_HEADER, Response
from ._limits import (
    AdaptiveLimit,
    FixedLimit,
    OriginLimit,
    RateMeter,
    RetryBudget,
    parse_quota,
)
from ._pipelining import CpuTotals, Pipelining, Setting, is_local_host, machine_cpu
from ._pool import Pool
from ._request import Origin, Prepared, RequestPlan, redirect
from ._result import Result, Stats
from ._resume import DuplicateCounter
from ._rows import SKIPPED, WAIT, Flight, Item, Rows
from ._settings import MAX_BODY, MAX_CONCURRENCY, PIPELINE, UNPROCESSED_STATUSES, Retry, Timeouts

__all__ = ["Engine"]

_new_result = tuple.__new__  # Result(...) without NamedTuple's Python-level __new__


def _pipelinable(prepared: Prepared) -> bool:
    """A GET without a body: safe to queue behind other requests and to send again."""
    return prepared.method == "GET" and prepared.data.endswith(b"\r\n\r\n")


class Engine:
    """Runs a batch on the current event loop. See :func:`drumfire.arun` for the public face."""

    def __init__(
        self,
        plan: RequestPlan,
        on_result: Callable[[Result], None],
        *,
        extractor: Extractor | None = None,
        parse: Callable[[Response], Mapping[str, Any]] | None = None,
        keep: Sequence[str] = (),
        id_column: str | None = None,
        concurrency: int | None = 8,
        max_concurrency: int = MAX_CONCURRENCY,
        rate: float | None = None,
        retry: Retry | None = None,
        timeouts: Timeouts | None = None,
        max_body: int = MAX_BODY,
        max_header: int = MAX_HEADER,
        verify: bool | TLS = True,
        ordered: bool = False,
        order_window: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        rng: random.Random | None = None,
        on_tick: Callable[[Stats], None] | None = None,
        tick_interval: float = 0.05,
        skip: Callable[[str], bool] | None = None,
        skip_problem: Callable[[int], bool] | None = None,
        duplicates: DuplicateCounter | None = None,
        follow_redirects: int = 0,
        pipeline: int = PIPELINE,
        cpu_clock: Callable[[], float] = time.thread_time,
        machine_cpu: CpuTotals | None = machine_cpu,
        on_cpu_bound: Callable[[Engine], None] | None = None,
        text_rows: bool = False,
        unreachable_after: int = 0,
        per_host_concurrency: int | None = None,
        per_host_rate: float | None = None,
        on_numbered: Callable[[Result, int], None] | None = None,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if per_host_concurrency is not None and per_host_concurrency < 1:
            raise ValueError("per-host concurrency must be at least 1")
        if on_numbered is not None and ordered:
            raise ValueError("on_numbered is for drivers that put results in order themselves")
        # Each origin has its own limits (see _host_of): None: adaptive (the
        # default of the CLI), up to max_concurrency; a number: fixed. The run as
        # a whole never has more than ``concurrency`` (or max_concurrency) in flight.
        self._adaptive = concurrency is None
        self._fixed = concurrency
        self._per_host = per_host_concurrency
        self._per_host_rate = per_host_rate
        self._max_concurrency = max_concurrency
        self._hosts: dict[Origin, OriginLimit] = {}
        self._solo: OriginLimit | None = None  # the only origin so far (the usual run)
        self._last_host: OriginLimit | None = None
        self._parked = 0  # rows waiting in their origin's queue
        self.limiter: FixedLimit | AdaptiveLimit = self._new_limit()  # the first origin's
        self.rate = RateMeter(rate) if rate else None
        self._pump_timer: asyncio.TimerHandle | None = None
        most = concurrency if concurrency is not None else max_concurrency
        self.plan = plan
        self.on_result = on_result
        # Drivers that put results in order elsewhere (worker processes) get each
        # with its row's sequence number, in place of ``on_result``.
        self.on_numbered = on_numbered
        self.extractor = extractor if extractor else None
        self.parse = parse
        self.keep = tuple(keep)
        #: Source items -> flights, error rows or skips (ids, duplicates, --resume).
        self.rows = Rows(
            plan.preparer(text_rows),
            id_column=id_column,
            keep=self.keep,
            skip=skip,  # --resume: rows whose result the output already holds
            skip_problem=skip_problem,  # --resume: input lines whose error row it holds
            duplicates=duplicates,
        )
        self.concurrency = most
        self._total = most  # most requests in flight in the whole run (× depth when pipelining)
        #: Most rows read ahead into the origins' queues while their origin is full:
        #: bounded, so one slow origin cannot make the run read its whole input.
        self.park_limit = max(1024, 4 * most)
        self.retry = retry or Retry()
        self.timeouts = timeouts or Timeouts()
        self.max_body = max_body
        self.max_header = max_header
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_tick = on_tick
        self.tick_interval = tick_interval
        self.ordered = ordered
        self.follow_redirects = follow_redirects  # most redirects to follow per row; 0: none
        self.order_window = order_window or max(1024, 64 * most)
        self._verify = verify
        # Stop the run when this many connection attempts failed to connect
        # and none ever connected (0: never; the CLI's default is 50).
        self.unreachable_after = unreachable_after
        self._unreached = 0  # connection attempts that failed to connect so far
        self._reached = False  # a connection was made (or a server answered, even TLS)
        self.pool = Pool(most)
        # Pipelining (see _tick and _pipeline_onto): when the CPU of the thread
        # running this engine (its event loop; not a server in the same process) is
        # the bottleneck, stop opening connections and queue up to ``pipeline``
        # GET requests on each open one, which saves system calls and wake-ups.
        self.pipeline = max(1, pipeline)
        self.cpu_clock = cpu_clock
        # Decides when (see drumfire._pipelining); _watch_cpu applies what it says.
        # A plan whose method is fixed and not GET gives no request that may be
        # pipelined: never turn it on (it would only cut the connections).
        no_gets = plan.method.is_static and plan.method.source != "GET"
        self.pipelining_policy = Pipelining(
            1 if no_gets else self.pipeline, thread_cpu=cpu_clock, machine=machine_cpu
        )
        self._local_of: tuple[Origin | None, int | None] = (None, None)
        # Called once, when the engine's own CPU first limits the run (see _watch_cpu).
        self.on_cpu_bound = on_cpu_bound
        self.pipelining = False
        self._conn_cap = most
        self._capacity = float("inf")  # most requests in flight the connections can take
        self._depth = 1  # requests per unit of the adaptive limit (pipeline when pipelining)
        self._refill = 1  # a busy connection takes more once this many fit (see _room)
        self._unflushed: list[Connection] = []
        self._answered: Connection | None = None  # the connection that answered last
        # Statuses that may need more than writing the row (see _settle).
        self._special = frozenset(self.retry.statuses) | UNPROCESSED_STATUSES
        self.stats = Stats(clock)
        self._items: Iterator[Item] = iter(())
        self._exhausted = False
        self._seq = 0
        self._inflight = 0
        self._waiting = 0  # jobs sleeping before a retry
        self._ready: deque[Flight] = deque()  # retries whose wait is over
        self._sleeping: dict[Flight, asyncio.TimerHandle] = {}  # retries still waiting
        self._busy: set[Connection] = set()
        self._held: dict[int, Result | None] = {}
        self._next_emit = 0
        self._stopping = False
        self._paused = False
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failure: BaseException | None = None

    # -- running -------------------------------------------------------------

    async def run(self, items: Iterator[Item], total: int | None = None) -> Stats:
        """Process every item; return when each has produced its result."""
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._items = items
        self.stats = Stats(self.clock, total)
        self._timer = self._loop.call_later(self._sweep_interval(), self._tick)
        self.pipelining_policy.start(self.clock())
        try:
            self._pump()
            await self._done
        finally:
            # Whatever ended the run (the last row, a failure), the aborts below
            # must not start rows on new connections.
            self._exhausted = self._stopping = True
            if self._timer is not None:
                self._timer.cancel()
            if self._pump_timer is not None:
                self._pump_timer.cancel()
            for host in self._hosts.values():
                if host.timer is not None:
                    host.timer.cancel()
            self.pool.close_all()
            for conn in list(self._busy):
                conn.abort("cancelled")
            self.stats.finished = self.clock()
            # One turn of the loop, so the transports' close callbacks run
            # before a caller closes the loop.
            await asyncio.sleep(0)
        if self._failure is not None:
            raise self._failure
        return self.stats

    def stop(self, grace: float = 2.0) -> None:
        """Start no new row; give in-flight ones ``grace`` seconds, then cancel them."""
        if self._stopping or self._loop is None:
            return
        self._stopping = True
        self.stats.stopped = True
        self._exhausted = True
        # Rows sleeping before a retry (perhaps for a long Retry-After) end now.
        for flight, handle in list(self._sleeping.items()):
            handle.cancel()
            self._waiting -= 1
            self._give_up(flight, None, "cancelled")
        self._sleeping.clear()
        self._loop.call_later(grace, self.cancel_all)
        self._check_done()

    def hand_over_items(self, take: Callable[[Iterator[Item]], Iterator[Any]]) -> None:
        """Let ``take`` read the rest of the items; the engine reads what it returns.

        ``take`` may return prepared entries as well as items (see
        :mod:`drumfire._readahead` and :meth:`_next_flight`).
        """
        if not self._exhausted:
            self._items = take(self._items)

    def wake(self) -> None:
        """More input is available after a ``WAIT`` item."""
        if self._done is not None:  # before run() there is nothing to pump yet
            self._pump()

    def pause(self, paused: bool) -> None:
        """Hold off starting new rows (a consumer is behind); resume with False."""
        self._paused = paused
        if not paused and self._loop is not None:
            self._loop.call_soon(self._pump)

    def watch_cpu(self, now: float) -> None:
        """Take one sample of the engine's CPU share, as each sweep does (a seam for tests).

        Turns pipelining on or off when the share says so (see ``_watch_cpu``).
        """
        self._watch_cpu(now)

    @property
    def connection_cap(self) -> int:
        """Most connections kept open now (fewer while pipelining)."""
        return self._conn_cap

    def cancel_all(self) -> None:
        """Cancel every row now: those in flight, waiting to start or parked (a second Ctrl-C)."""
        for conn in list(self._busy):
            conn.abort("cancelled", "stopped before the response came")
        while self._ready:
            self._give_up(self._ready.popleft(), None, "cancelled")
        for host in self._hosts.values():
            while host.queue:
                self._parked -= 1
                self._give_up(host.queue.popleft(), None, "cancelled")
        self._check_done()

    def _sweep_interval(self) -> float:
        return max(
            0.005, min(self.tick_interval, self.timeouts.total / 10, self.timeouts.connect / 10)
        )

    def _tick(self) -> None:
        now = self.clock()
        for conn in [c for c in self._busy if c.deadline < now]:
            conn.abort("timeout", "no complete answer in time")
        if self.pipeline > 1:
            self._watch_cpu(now)
        if self.on_tick is not None:
            self.stats.concurrency = self._inflight
            self.stats.limit = (
                self._solo.limit.limit
                if self._solo is not None
                else min(self.concurrency, sum(h.limit.limit for h in self._hosts.values()))
            )
            try:
                self.on_tick(self.stats)
            except Exception as exc:  # a broken display must not hang the run
                self._fail(exc)
                return
        assert self._loop is not None
        self._timer = self._loop.call_later(self._sweep_interval(), self._tick)

    # The policy's thresholds, settable on the engine (tests and tools tune them
    # there: ``Engine.CPU_TICKS = 1``); _watch_cpu hands them over.
    CPU_BOUND, CPU_FREE, CPU_TICKS, CPU_SURE = (
        Pipelining.CPU_BOUND,
        Pipelining.CPU_FREE,
        Pipelining.CPU_TICKS,
        Pipelining.CPU_SURE,
    )
    CPU_SPAN = Pipelining.CPU_SPAN
    PIPELINE_CONNECTIONS = Pipelining.CONNECTIONS

    def _watch_cpu(self, now: float) -> None:
        """Pipeline, or stop, as the policy says from this sweep's CPU readings.

        On a fast local server the client spends a core on system calls and
        bookkeeping; on a local server that saturates the machine each of those
        microseconds is taken from the server. In both, several requests per
        write and several answers per read help; elsewhere nothing changes.
        """
        policy = self.pipelining_policy
        policy.CPU_BOUND, policy.CPU_FREE = self.CPU_BOUND, self.CPU_FREE
        policy.CPU_TICKS, policy.CPU_SURE = self.CPU_TICKS, self.CPU_SURE
        policy.CPU_SPAN, policy.CONNECTIONS = self.CPU_SPAN, self.PIPELINE_CONNECTIONS
        solo = self._solo
        origin = solo.origin if solo is not None else None
        if origin is not self._local_of[0]:  # the run's only origin: is it on this machine?
            port = origin[2] if origin is not None and is_local_host(origin[1]) else None
            self._local_of = (origin, port)
        policy.local_port = self._local_of[1]
        setting = policy.sample(now, self.stats.done, self.pool.open)
        if setting is not None:
            self._pipeline_as(setting)

    def _pipeline_as(self, setting: Setting) -> None:
        """Apply a pipelining decision: depth, connections kept, requests in flight."""
        self.pipelining = setting.on
        if setting.on:
            if setting.why == "client" and self.on_cpu_bound is not None:
                # The engine's own thread is the limit: read the input elsewhere. (Not
                # for a saturated machine: a child process would take the server's CPU.)
                hook, self.on_cpu_bound = self.on_cpu_bound, None  # the first time only
                try:
                    hook(self)
                except Exception as exc:  # not from the timer: it would stop the sweeps
                    self._fail(exc)
                    return
            self._conn_cap = setting.connections or self.pool.limit
            self._capacity = self._conn_cap * setting.depth
            # The adaptive limit now counts connections' worth of requests: each
            # carries up to ``depth``. A fixed -c stays requests in flight.
            self._depth = setting.depth if self._adaptive else 1
            self._refill = setting.refill
        else:
            self._refill = 1
            self._conn_cap = self.pool.limit
            self._capacity = float("inf")
            self._depth = 1
        self._total = self.concurrency * self._depth
        self._pump()

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:  # the first error is the one to report
            self._failure = exc
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # -- starting requests ---------------------------------------------------

    def _next_flight(self) -> Flight | None:
        if self._ready:
            return self._ready.popleft()
        if self._exhausted or self._parked >= self.park_limit:
            return None
        if self.ordered and self._seq >= self._next_emit + self.order_window:
            return None  # the oldest row holds the window; wait for it
        make = self.rows.make
        while True:
            try:
                item = next(self._items)
            except StopIteration:
                self._exhausted = True
                return None
            if item is WAIT:
                return None
            # A source item, or what Rows.make made of one in a read-ahead process.
            made = make(item, self.stats) if type(item) is tuple else item
            if type(made) is int:  # duplicate ids the read-ahead process saw
                self.stats.duplicates += made
                continue
            seq = self._seq
            self._seq += 1
            if type(made) is Flight:
                made.seq = seq
                return made
            if made is SKIPPED:
                self.stats.skipped += 1
                self._skip_seq(seq)
                continue
            self._emit(cast(Result, made), seq)  # an input or template error

    def _pump(self) -> None:
        rate = self.rate
        try:
            while (
                self._inflight < self._total
                and self._inflight < self._capacity
                and not self._paused
            ):
                solo = self._solo
                if solo is not None:
                    # The usual run, one origin: its limit is the loop's bound.
                    room = solo.limit.limit * self._depth - solo.inflight
                    if room <= 0:
                        break
                if rate is not None:
                    wait = rate.wait(self.clock())
                    if wait > 0:
                        if not self._ready and self._exhausted:
                            break
                        self._pump_later(wait)
                        break
                elif self.pipelining and solo is not None and not solo.gated:
                    # The usual case while pipelining: fill the connection that
                    # just answered (else the one with most room), many requests
                    # in one step.
                    room = int(min(room, self._capacity - self._inflight))
                    conn = self._answered
                    if conn is not None and self._fill(conn, room):
                        continue
                    conn = self._answered = self._roomiest()
                    if conn is not None and self._fill(conn, room):
                        continue
                flight = self._next_flight()
                if flight is None:
                    break
                host = flight.host
                if host is None:
                    host = self._last_host
                    # The usual row: the plan's one origin, the very same tuple.
                    if host is not None and host.origin is flight.prepared.origin:
                        flight.host = host
                    else:
                        host = self._host_of(flight)
                if (host.gated or host is not solo) and not self._admit(flight, host):
                    if self._solo is not None:
                        break  # the only origin must wait: reading on would only park rows
                    continue  # parked with its origin; the next row may go elsewhere
                if not self._dispatch(flight):
                    break  # an answer will pump again
                if rate is not None:
                    rate.take(self.clock())
        except Exception as exc:  # a broken source or sink ends the run with its error
            self._fail(exc)
            return
        self._check_done()

    # -- origins ---------------------------------------------------------------

    def _new_limit(self) -> FixedLimit | AdaptiveLimit:
        """A new origin's concurrency limit."""
        per_host = self._per_host
        if not self._adaptive:
            assert self._fixed is not None
            return FixedLimit(self._fixed if per_host is None else min(per_host, self._fixed))
        most = self._max_concurrency if per_host is None else min(per_host, self._max_concurrency)
        return AdaptiveLimit(initial=min(8, most), maximum=most)

    def _host_of(self, flight: Flight) -> OriginLimit:
        """The limits of ``flight``'s origin (made on first sight), cached on the flight."""
        origin = flight.prepared.origin
        host = self._last_host
        if host is None or host.origin != origin:
            host = self._hosts.get(origin)
            if host is None:
                limit = self.limiter if not self._hosts else self._new_limit()
                retry = self.retry
                budget = RetryBudget(retry.budget, retry.budget_floor)
                host = OriginLimit(
                    origin, limit, self._per_host_rate, self._adaptive, budget, self.clock()
                )
                self._hosts[origin] = host
                self._solo = host if len(self._hosts) == 1 else None
            self._last_host = host
        flight.host = host
        return host

    def _admit(self, flight: Flight, host: OriginLimit) -> bool:
        """Whether ``flight`` may start now at its origin; else it waits in the origin's queue."""
        if host.inflight >= host.limit.limit * self._depth:
            self._park(flight, host)
            return False
        if host.gated:
            now = self.clock()
            wait = host.wait(now)
            if wait > 0.0:
                self._park(flight, host)
                if host.timer is None:
                    assert self._loop is not None
                    host.timer = self._loop.call_later(wait, self._host_ready, host)
                return False
            host.take(now)
        return True

    def _park(self, flight: Flight, host: OriginLimit) -> None:
        host.queue.append(flight)
        self._parked += 1

    def _unpark(self, host: OriginLimit) -> None:
        """Hand the rows waiting for ``host`` back to the pump, as many as it has room for."""
        queue = host.queue
        room = min(len(queue), host.limit.limit * self._depth - host.inflight)
        if host.gated and room > 1:
            room = 1 if host.wait(self.clock()) > 0.0 else room
        for _ in range(room):
            self._ready.append(queue.popleft())
        if room > 0:
            self._parked -= room

    def _host_ready(self, host: OriginLimit) -> None:
        """The origin's rate or pause allows a start again."""
        host.timer = None
        if host.queue:
            self._unpark(host)
        self._pump()

    def _answered_host(self, host: OriginLimit | None, count: int) -> None:
        """``count`` requests to ``host`` ended (answered, failed or handed back)."""
        if host is not None:
            host.inflight -= count
            if host.queue:
                self._unpark(host)

    def _pump_later(self, delay: float) -> None:
        if self._pump_timer is not None or self._loop is None:
            return

        def fire() -> None:
            self._pump_timer = None
            self._pump()

        self._pump_timer = self._loop.call_later(delay, fire)

    def _dispatch(self, flight: Flight) -> bool:
        """Start ``flight`` on a connection; False if it must wait for one (back in _ready)."""
        origin = flight.prepared.origin
        # The free re-send after a stale connection goes on a new one: the
        # other idle connections may be just as stale.
        conn = self.pool.take(origin) if flight.free_retry else None
        while conn is not None and self.pool.open > self._conn_cap:
            conn.close()  # pipelining: fewer connections, deeper queues
            conn = self.pool.take(origin)
        flight.start = now = self.clock()
        host = flight.host
        assert host is not None
        if conn is not None:
            self._inflight += 1
            host.inflight += 1
            host.sent += 1
            flight.attempts += 1
            self._busy.add(conn)
            if self.pipelining:
                self._answered = conn  # the next rows may queue behind this one
            conn.send(
                flight,
                flight.prepared.data,
                flight.prepared.method == "HEAD",
                now + self.timeouts.total,
                self.pipelining,  # then all writes of a loop turn go out together
            )
            return True
        if self.pool.open >= self._conn_cap and flight.free_retry:
            busy = self._pipeline_onto(flight)
            if busy is not None:
                self._inflight += 1
                host.inflight += 1
                host.sent += 1
                flight.attempts += 1
                self.stats.pipelined += 1
                busy.pipeline([(flight, now + self.timeouts.total)], [flight.prepared.data])
                return True
            if self.pipelining and self._inflight:
                # No connection may take it yet (those open are still connecting,
                # or carry a non-GET): wait for an answer rather than open one past
                # the cap, which would only be closed again when it falls idle.
                self._ready.appendleft(flight)
                return False
        self._inflight += 1
        host.inflight += 1
        host.sent += 1
        flight.attempts += 1
        self.pool.make_room()
        conn = Connection(self, origin, self.max_body, self.max_header)
        self.pool.opened(conn)
        self._busy.add(conn)
        assert self._loop is not None
        conn.open(self._loop, self._verify, flight, now + self.timeouts.connect)
        return True

    def _fill(self, conn: Connection, most: int) -> int:
        """Queue up to ``most`` new GET requests on ``conn``; return how many rows started.

        A row that cannot go there (not a plain GET, another origin, a re-send
        that wants a new connection) is dispatched the usual way and ends the fill.
        """
        room = min(self._room(conn), most)
        if room <= 0:
            return 0
        origin = conn.origin
        host = self._solo
        assert host is not None
        now = self.clock()
        deadline = now + self.timeouts.total
        queued: list[tuple[Flight, float]] = []
        data: list[bytes] = []
        while len(queued) < room:
            flight = self._next_flight()
            if flight is None:
                break
            prepared = flight.prepared
            if prepared.origin != origin or not flight.free_retry or not _pipelinable(prepared):
                self._ready.appendleft(flight)  # the pump starts it the usual way
                break
            flight.host = host
            flight.attempts += 1
            flight.start = now
            queued.append((flight, deadline))
            data.append(prepared.data)
        if queued:
            self._inflight += len(queued)
            host.inflight += len(queued)
            host.sent += len(queued)
            self.stats.pipelined += len(queued)
            conn.pipeline(queued, data)
        return len(queued)

    def _roomiest(self) -> Connection | None:
        """The busy connection that may take the most requests, if any may."""
        best: Connection | None = None
        most = 0
        for conn in self._busy:
            room = self._room(conn)
            if room > most:
                best, most = conn, room
        return best

    def _pipeline_onto(self, flight: Flight) -> Connection | None:
        """The busy connection with the fewest requests queued that may take ``flight``.

        Pipelined: GET requests without a body, on connections that have
        answered before (so the server keeps connections alive), behind
        anything but a HEAD request.
        """
        prepared = flight.prepared
        if not _pipelinable(prepared):
            return None
        origin = prepared.origin
        hint = self._answered
        if hint is not None and self._may_queue(hint, origin):
            return hint  # the connection that just answered has room: the usual case
        best: Connection | None = None
        for conn in self._busy:
            if self._may_queue(conn, origin) and (
                best is None or len(conn.behind) < len(best.behind)
            ):
                best = conn
                if not conn.behind:
                    break
        return best

    def _may_queue(self, conn: Connection, origin: Origin) -> bool:
        """Whether ``conn`` may take one more GET to ``origin`` behind those it carries."""
        return conn.origin == origin and self._room(conn) > 0

    def _room(self, conn: Connection) -> int:
        """How many more GET requests ``conn`` may queue (≤ 0: none).

        Only a busy connection that has answered before (so the server keeps
        connections alive) and carries a GET (never behind a HEAD) takes more.
        """
        head = conn.flight
        if conn.state != BUSY or not conn.served or head is None or head.prepared.method != "GET":
            return 0
        room = conn.room(self.pipeline)
        if room < self._refill:
            # Wait until the queue has room for a batch (one write for many), or is
            # empty when the connection will never have that much room again (the
            # server's Keep-Alive: max is near).
            return room if room + len(conn.behind) < self._refill and not conn.behind else 0
        return room

    # -- connection callbacks (Owner protocol) --------------------------------

    def on_unanswered(self, conn: Connection, flight: Flight) -> None:
        """A pipelined request the connection lost before its answer: send it again.

        The server did not answer it (it closed the connection, or the request
        ahead of it failed), so this does not count as an attempt.
        """
        self._inflight -= 1
        self._answered_host(flight.host, 1)
        flight.attempts -= 1
        if self._stopping:
            self._give_up(flight, None, "cancelled")
            self._check_done()
            return
        self._ready.appendleft(flight)
        self._pump_later(0.0)

    def flush_later(self, conn: Connection) -> None:
        """Pipelined requests are written once per loop turn, together (Owner protocol)."""
        if not self._unflushed:
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        self._unflushed.append(conn)

    def _flush(self) -> None:
        unflushed, self._unflushed = self._unflushed, []
        for conn in unflushed:
            conn.flush()

    def on_connected(self, conn: Connection) -> None:
        self._reached = True
        flight = conn.flight
        if flight is None:
            self.pool.give(conn)
            return
        conn.send(
            flight,
            flight.prepared.data,
            flight.prepared.method == "HEAD",
            self.clock() + self.timeouts.total,
        )

    def on_closed(self, conn: Connection) -> None:
        self.pool.closed(conn)
        self._busy.discard(conn)

    def on_responses(self, conn: Connection, answered: list[tuple[Flight, Response]]) -> None:
        """Answers read in one go from ``conn``, oldest first (Owner protocol)."""
        self._inflight -= len(answered)
        host = answered[0][0].host  # one connection, one origin
        assert host is not None
        host.inflight -= len(answered)
        state = conn.state
        if state == IDLE:
            self._busy.discard(conn)
            if self.pool.open > self._conn_cap:
                conn.close()  # pipelining: fewer connections, deeper queues
            else:
                self.pool.give(conn)
        elif state == BUSY:
            self._answered = conn
        now = self.clock()
        special = self._special
        follow = self.follow_redirects
        usual: list[tuple[Flight, Response]] = []
        waited = 0.0  # the latencies of the answers that were not overload signals
        calm = 0
        for flight, response in answered:
            status = response.status
            overload = status == 429 or status == 503
            if overload:
                host.throttled(
                    now, now - flight.start, self._retry_after(response), flight.attempts > 1
                )
            else:
                waited += now - flight.start
                calm += 1
            if follow or status in special:
                self._settle(flight, response, overload, now)
            else:
                usual.append((flight, response))  # nothing to retry, wait for or follow
        if calm:
            host.answered(now, waited, calm)
        if host.watch:
            self._read_quota(host, answered, now)
        if host.queue:
            self._unpark(host)
        # Put the next requests on the wire first (the first takes this connection,
        # the most recently idle), then extract and write these rows: the server
        # works on the next answers while the client does its share.
        self._pump()
        if usual:
            self._finish_all(usual, now)

    def _retry_after(self, response: Response) -> float | None:
        """A throttled answer's Retry-After, when it is one the run would wait for."""
        retry = self.retry
        wait = retry.parse_retry_after(response.header("retry-after"))
        return None if retry.over_wait(wait) else wait

    def _read_quota(
        self, host: OriginLimit, answered: list[tuple[Flight, Response]], now: float
    ) -> None:
        """Quota headers (RateLimit, X-RateLimit-*): pace the origin, or hold it at zero.

        Looked for in an origin's first answers only, unless it sends them.
        """
        wall = time.time()
        for _job, response in answered:
            quota = parse_quota(response.header, wall)
            if quota is not None:
                host.quota(now, *quota)
            elif host.watch:
                host.watch -= 1

    def _settle(self, flight: Flight, response: Response, overload: bool, now: float) -> None:
        """An answer that may mean a retry, a wait or a redirect."""
        status = response.status
        retry = self.retry
        if 300 <= status < 400 and self.follow_redirects:
            location = response.header("location")
            if location is not None:
                if flight.hops >= self.follow_redirects:
                    self._pump()
                    self._give_up(flight, status, "too_many_redirects")
                    return
                nxt = redirect(flight.prepared, status, location)
                if nxt is not None:
                    flight.prepared = nxt
                    flight.host = None  # perhaps another origin
                    flight.hops += 1
                    self._ready.append(flight)
                    self._pump()
                    return
        if (
            self._budget_left(flight)
            and retry.is_retry(status, flight.prepared.idempotent)
            and self._may_retry(flight, now)
        ):
            # Retry-After delays this row only (as urllib3, Envoy and gRPC do).
            retry_after = retry.parse_retry_after(response.header("retry-after"))
            if retry.over_wait(retry_after):
                # Longer than the user will wait: end the row now with its status,
                # so a later run (--retry-failed, --resume) can take it.
                assert retry_after is not None
                self._pump()
                self._give_up(flight, status, retry.over_wait_error(retry_after))
                return
            self._retry_later(flight, retry_after)
            self._pump()
        else:
            # Put the next request on the wire first (it takes this connection, the
            # most recently idle), then extract and write this row: the server
            # works on the next answer while the client does its share.
            self._pump()
            self._finish_all([(flight, response)], now)

    def on_failure(self, conn: Connection, flight: Flight, reason: str, detail: str) -> None:
        self._inflight -= 1
        host = flight.host
        examples = self.stats.examples
        if detail and reason not in examples and reason != "cancelled":
            examples[reason] = explain(reason, detail)
        if (
            self.unreachable_after
            and not self._reached
            and (self.stats.unreachable is not None or self._unreachable(conn, reason, detail))
        ):
            # The run stops: the target is unreachable. Rows still failing to
            # connect are cancelled, as those never sent are: --resume sends them.
            self._answered_host(host, 1)
            self._give_up(flight, None, "cancelled")
            self._pump()
            return
        if reason == "timeout" and host is not None:
            now = self.clock()
            host.limit.sample(now, now - flight.start, True)
        self._answered_host(host, 1)
        if reason == "cancelled":
            self._give_up(flight, None, "cancelled")
        elif (
            reason == "reset"
            and conn.served
            and flight.free_retry
            and not conn.received_any
            and self._may_resend(flight)
            and not self._stopping
        ):
            # A kept-alive connection the server had already closed: re-send at
            # once, without using the retry budget (urllib3 and aiohttp do the same).
            # The attempt still counts in ``attempts``.
            flight.free_retry = False
            self._ready.append(flight)
        elif (
            self._budget_left(flight)
            and not self._stopping
            and self.retry.is_retry_failure(reason, detail, flight.prepared.idempotent)
            # A refused connection cost the server nothing: outside the budget.
            and (reason == "connect" or self._may_retry(flight, self.clock()))
        ):
            self._retry_later(flight, None)
        else:
            self._give_up(flight, None, reason)
        self._pump()

    def _unreachable(self, conn: Connection, reason: str, detail: str) -> bool:
        """Count a failed connect; stop the run when the first ``unreachable_after`` all failed.

        A connection that never got made (refused, no such host, no route,
        connect timeout) counts; anything else (a TLS failure, a reset, an
        answer) means the server is there, and counting stops for the run.
        """
        if conn.transport is not None or reason not in ("connect", "timeout"):
            if reason != "cancelled":
                self._reached = True
            return False
        self._unreached += 1
        if self._unreached < self.unreachable_after or self._stopping:
            return False
        _scheme, host, port = conn.origin
        self.stats.unreachable = (
            f"{host}:{port}: the first {self._unreached} connection attempts all failed "
            f"(the last: {reason}: {detail or 'no connection'})"
        )
        self.stop(grace=0)
        return True

    def _budget_left(self, flight: Flight) -> bool:
        used = flight.attempts - (0 if flight.free_retry else 1) - flight.hops
        return used <= self.retry.retries

    def _may_retry(self, flight: Flight, now: float) -> bool:
        """The origin's retry budget (a share of its recent requests) has room for one."""
        host = flight.host
        return host is None or host.may_retry(now)

    def _may_resend(self, flight: Flight) -> bool:
        return flight.prepared.idempotent or self.retry.unsafe

    def _retry_later(self, flight: Flight, retry_after: float | None) -> None:
        if self._stopping:
            self._give_up(flight, None, "cancelled")
            return
        delay = self.retry.delay(flight.attempts, retry_after, self.rng)
        if delay <= 0:
            self._ready.append(flight)
            return
        self._waiting += 1
        assert self._loop is not None
        self._sleeping[flight] = self._loop.call_later(delay, self._wake, flight)

    def _wake(self, flight: Flight) -> None:
        self._sleeping.pop(flight, None)
        self._waiting -= 1
        if self._stopping:
            self._give_up(flight, None, "cancelled")
            self._check_done()
            return
        self._ready.append(flight)
        self._pump()

    # -- finishing rows ------------------------------------------------------

    def _give_up(self, flight: Flight, status: int | None, reason: str) -> None:
        elapsed = (self.clock() - flight.start) * 1000.0 if flight.start else 0.0
        kept = self.rows.kept(flight.row)
        self._emit(
            Result(flight.id, status, elapsed, flight.attempts, reason, None, kept), flight.seq
        )

    def _finish_all(self, answered: list[tuple[Flight, Response]], now: float) -> None:
        """Rows answered at ``now``: decode, extract, count and hand each on."""
        extractor = self.extractor
        apply = extractor.apply if extractor is not None else None
        names = extractor.names if extractor is not None else ()
        parse = self.parse
        keep = self.keep
        ordered = self.ordered
        loads = orjson.loads
        done: list[Result] = []
        for flight, response in answered:
            status = response.status
            error = ""
            fields: dict[str, Any] | None = None
            if apply is not None:
                body = response.body
                try:
                    document = loads(body) if body else None
                except orjson.JSONDecodeError:
                    document = None
                    if 200 <= status < 300:
                        error = "json"
                else:
                    if (
                        document is None
                        and 200 <= status < 300
                        and status != 204
                        and flight.prepared.method != "HEAD"
                    ):
                        error = "json"
                fields = apply(document) if document is not None else dict.fromkeys(names)
            if parse is not None:
                try:
                    parsed = parse(response)
                except Exception as exc:
                    error = error or f"parse: {type(exc).__name__}: {exc}"[:300]
                else:
                    fields = {**fields, **parsed} if fields else dict(parsed)
            if response.error:  # a body that could not be decoded (encoding: ...)
                error = response.error
            result = _new_result(
                Result,
                (
                    flight.id,
                    status,
                    (now - flight.start) * 1000.0,
                    flight.attempts,
                    error,
                    fields,
                    self.rows.kept(flight.row) if keep else None,
                ),
            )
            if ordered:
                self._emit(result, flight.seq)
            else:
                done.append(result)
        if done:  # _emit, inlined for the usual case: hand each on, then count them
            on_result = self.on_result
            numbered = self.on_numbered
            handed = 0
            try:
                if numbered is None:
                    for result in done:
                        on_result(result)
                        handed += 1
                else:
                    for (flight, _response), result in zip(answered, done, strict=True):
                        numbered(result, flight.seq)
                        handed += 1
            except Exception as exc:  # a broken sink or consumer ends the run with its error
                self._fail(exc)
            finally:
                self.stats.add_all(done if handed == len(done) else done[:handed])

    def _skip_seq(self, seq: int) -> None:
        """A row with no result to write (resumed): keep the reorder buffer moving."""
        if not self.ordered:
            return
        if seq == self._next_emit:
            self._next_emit += 1
            self._release_held()
        else:
            self._held[seq] = None

    def _release_held(self) -> None:
        held = self._held
        while held:
            if self._next_emit not in held:
                break
            nxt = held.pop(self._next_emit)
            if nxt is not None:
                self.on_result(nxt)
            self._next_emit += 1

    def _emit(self, result: Result, seq: int) -> None:
        self.stats.add(result)
        try:
            if not self.ordered:
                if self.on_numbered is not None:
                    self.on_numbered(result, seq)
                else:
                    self.on_result(result)
                return
            if seq != self._next_emit:
                self._held[seq] = result
                return
            self.on_result(result)
            self._next_emit += 1
            self._release_held()
        except Exception as exc:  # a broken sink or consumer ends the run with its error
            # (from a connection's or a timer's callback it would only be logged)
            self._fail(exc)

    def _check_done(self) -> None:
        if (
            self._inflight == 0
            and self._exhausted
            and self._waiting == 0
            and not self._ready
            and not self._parked
            and self._done is not None
            and not self._done.done()
        ):
            self._done.set_result(None)

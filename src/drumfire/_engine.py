"""The engine: rows in, one result per row out, as fast as the server answers.

Everything is driven by callbacks from connections; there is no asyncio Task
per request. ``_pump`` starts requests while the concurrency limit allows,
each completion calls ``_pump`` again, and one periodic timer (``_tick``)
enforces deadlines and reports progress.

A row's life::

    input item --prepare--> Flight --dispatch--> Connection --response/failure-->
        retry?  --yes--> wait (backoff / Retry-After) --> dispatch again
                --no---> Result --> (reorder buffer if ordered) --> on_result

Where each concern lives (the engine is one object made of parts, see
:mod:`drumfire._core`): this module starts rows (``_pump``, ``_dispatch``, the
per-origin admission) and takes the connections' callbacks;
:mod:`drumfire._intake` reads them (``_next_flight``, a read-ahead child's runs);
:mod:`drumfire._lifecycle` starts, stops and sweeps;
:mod:`drumfire._settle` decides what answers and failures mean for their rows;
:mod:`drumfire._pipelined` applies the pipelining policy and queues requests
on busy connections, while *when* to pipeline is decided by the policy object
in :mod:`drumfire._pipelining`. Beside it: :mod:`drumfire._rows` (items to
flights), :mod:`drumfire._origins` (per-origin limits), :mod:`drumfire._pool`,
:mod:`drumfire._finish` (answers to result rows), :mod:`drumfire._ordering`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._connection import BUSY, IDLE, TLS, Connection
from ._extract import Extractor
from ._finish import Finisher
from ._http import MAX_HEADER
from ._intake import PASS_AT_ONCE, Intake
from ._lifecycle import Lifecycle
from ._limits import AdaptiveLimit, FixedLimit, OriginLimit, RateMeter
from ._ordering import Reorder
from ._origins import Origins
from ._pipelined import PipelinedDispatch
from ._pipelining import OFF, CpuTotals, Pipelining, machine_cpu
from ._pool import Pool
from ._request import Origin, RequestPlan, asks_close
from ._response import Response
from ._result import Result, Stats
from ._resume import DuplicateCounter
from ._rows import Flight, Item, Rows, UsualRuns
from ._settings import MAX_BODY, MAX_CONCURRENCY, PIPELINE, UNPROCESSED_STATUSES, Retry, Timeouts
from ._settle import Settling

__all__ = ["PASS_AT_ONCE", "Engine", "EngineSettings"]



@dataclass(frozen=True, slots=True)
class EngineSettings:
    """One run's policy values: immutable, comparable, printable and picklable.

    The engine reads them once, when it is made. What it is given besides (the
    clocks, the random source, the hooks that report progress, skip rows or
    count duplicates) is injected apart: that is how a run is driven or tested,
    not what it does. :meth:`drumfire._job.Job.engine` builds these from a Job.

    - ``keep``: input columns copied into each result row.
    - ``id_column``: the input column that names each row (None: none).
    - ``concurrency``: requests in flight, fixed (None: adaptive, per origin,
      up to ``max_concurrency``). The run as a whole never has more than
      ``concurrency`` (or ``max_concurrency``) in flight.
    - ``rate``: requests per second, at most (None: no cap).
    - ``retry``, ``timeouts``: see :class:`~drumfire._settings.Retry` and
      :class:`~drumfire._settings.Timeouts`.
    - ``max_body``: the largest response body accepted, after decompression;
      ``max_header``: the most bytes in a response's header block.
    - ``verify``: verify certificates: a bool, or a
      :class:`~drumfire._connection.TLS` (CA file, client certificate).
    - ``ordered``: results in input order; ``order_window``: most rows started
      past the oldest unfinished one (None: ``max(1024, 64 × concurrency)``).
    - ``follow_redirects``: most redirects followed per row (0: none).
    - ``pipeline``: most GET requests queued on one connection once the
      client's CPU limits the run (1: never pipeline).
    - ``text_rows``: every row value is a ``str`` (CSV, TSV, text input).
    - ``unreachable_after``: stop the run when this many connection attempts
      failed to connect and none ever connected (0: never; ``drumfire run``
      sets 50 unless --keep-going).
    - ``per_host_concurrency``, ``per_host_rate``: most in flight to, and
      most starts per second to, one origin (None: no cap).
    - ``tick_interval``: seconds between the engine's periodic ticks
      (deadlines, the CPU watch, progress).
    - ``stagger``: the share of one interval of ``rate`` (and of ``per_host_rate``)
      by which this engine's first start is late, from its making (an origin's:
      from its first row). ``-p N``: worker k waits (k - 1) / N of its interval,
      k - 1 intervals of the whole run's rate, so that the workers' starts
      interleave rather than go N at once.
    """

    keep: tuple[str, ...] = ()
    id_column: str | None = None
    concurrency: int | None = None
    max_concurrency: int = MAX_CONCURRENCY
    rate: float | None = None
    retry: Retry = field(default_factory=Retry)
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_body: int = MAX_BODY
    max_header: int = MAX_HEADER
    verify: bool | TLS = True
    ordered: bool = False
    order_window: int | None = None
    follow_redirects: int = 0
    pipeline: int = PIPELINE
    text_rows: bool = False
    unreachable_after: int = 0
    per_host_concurrency: int | None = None
    per_host_rate: float | None = None
    tick_interval: float = 0.05
    stagger: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.per_host_concurrency is not None and self.per_host_concurrency < 1:
            raise ValueError("per-host concurrency must be at least 1")


class Engine(Settling, Lifecycle, PipelinedDispatch, Intake):
    """Runs a batch on the current event loop. See :func:`drumfire.arun` for the public face.

    ``settings``: the run's policy (:class:`EngineSettings`); the keywords are
    what drives it: the answers' extraction and parsing, the clocks, the random
    source for backoff, the pipelining machine case's ``sleep`` (None: no pauses),
    and the hooks (progress, CPU-bound, numbered results, --resume's skips,
    duplicate ids, the input line of a row number).
    """

    def __init__(
        self,
        plan: RequestPlan,
        on_result: Callable[[Result], None],
        settings: EngineSettings = EngineSettings(),
        *,
        extractor: Extractor | None = None,
        parse: Callable[[Response], Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        rng: random.Random | None = None,
        cpu_clock: Callable[[], float] = time.thread_time,
        sleep: Callable[[float], None] | None = time.sleep,
        machine_cpu: CpuTotals | None = machine_cpu,
        on_tick: Callable[[Stats], None] | None = None,
        on_cpu_bound: Callable[[Engine], None] | None = None,
        on_numbered: Callable[[Result, int], None] | None = None,
        on_results: Callable[[list[Result]], None] | None = None,
        skip: Callable[[str], bool] | None = None,
        skip_problem: Callable[[int], bool] | None = None,
        saved: Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
        duplicates: DuplicateCounter | None = None,
        line_of: Callable[[int], int | None] | None = None,
    ) -> None:
        ordered = settings.ordered
        if on_numbered is not None and ordered:
            raise ValueError("on_numbered is for drivers that put results in order themselves")
        self.settings = settings
        concurrency = settings.concurrency
        max_concurrency = settings.max_concurrency
        # Each origin has its own limits (see _origins): None: adaptive (the
        # default of the CLI), up to max_concurrency; a number: fixed. The run as
        # a whole never has more than ``concurrency`` (or max_concurrency) in flight.
        self._adaptive = concurrency is None
        self.retry = settings.retry
        self.origins = Origins(
            concurrency,
            max_concurrency,
            settings.per_host_concurrency,
            settings.per_host_rate,
            self.retry,
            clock,
            settings.stagger,
        )
        self.limiter: FixedLimit | AdaptiveLimit = self.origins.first  # the first origin's
        rate, stagger = settings.rate, settings.stagger
        first = clock() + stagger / rate if rate and stagger else -math.inf
        self.rate = RateMeter(rate, first=first) if rate else None
        self._pump_timer: asyncio.TimerHandle | None = None
        most = concurrency if concurrency is not None else max_concurrency
        self.plan = plan
        inner = getattr(plan, "inner", plan)  # FilePlan wraps one
        # The URL template fixes the origin: no row can go elsewhere (redirects aside).
        self._one_origin = inner.static_origin is not None
        self.on_result = on_result
        # Drivers that put results in order elsewhere (worker processes) get each
        # with its row's sequence number, in place of ``on_result``.
        self.on_numbered = on_numbered
        # Rows answered together, in one call (a file's sink: one write for them);
        # ``on_result`` still takes the others (errors, retries given up, skips).
        self.on_results = on_results if on_numbered is None and not ordered else None
        self.extractor = extractor if extractor else None
        self.parse = parse
        self.keep = settings.keep
        #: Source items -> flights, error rows or skips (ids, duplicates, --resume).
        self.rows = Rows(
            plan.preparer(settings.text_rows),
            id_column=settings.id_column,
            keep=self.keep,
            skip=skip,  # --resume: rows whose result the output already holds
            skip_problem=skip_problem,  # --resume: input lines whose error row it holds
            saved=saved,  # --resume: rows whose saved file is complete (see _bodies)
            duplicates=duplicates,
            line_of=line_of,  # the input line a template error names
        )
        #: Answers -> result rows (extraction, --parse, kept columns).
        self.finisher = Finisher(
            self.extractor,
            parse,
            self.rows.kept if self.keep else None,
            # File options (drumfire._bodies.FilePlan): a saved body's path, size, hash.
            files=getattr(plan, "files", None),
            keep=self.keep,
        )
        self.concurrency = most
        self._total = most  # most requests in flight in the whole run (× depth when pipelining)
        #: Most rows read ahead into the origins' queues while their origin is full:
        #: bounded, so one slow origin cannot make the run read its whole input.
        self.park_limit = max(1024, 4 * most)
        if not ordered and getattr(plan, "files", None) is None:
            # Past half of it, the rows of an origin held by its server (Retry-After,
            # a spent quota) go to a file until the hold ends (see _spill), so they
            # do not stop the reading of other origins' rows. Not with --ordered (the
            # order window holds the reader anyway) nor files in requests (their
            # bodies and save targets are objects with state).
            self.origins.spill_at = self.park_limit // 2
        self.timeouts = settings.timeouts
        self.max_body = settings.max_body
        self.max_header = settings.max_header
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_tick = on_tick
        self.tick_interval = settings.tick_interval
        self.ordered = ordered
        self.follow_redirects = settings.follow_redirects  # most redirects per row; 0: none
        self.order_window = settings.order_window or max(1024, 64 * most)
        self._verify = settings.verify
        # Stop the run when this many connection attempts failed to connect
        # and none ever connected (0: never; the CLI's default is 50).
        self.unreachable_after = settings.unreachable_after
        self._unreached = 0  # connection attempts that failed to connect so far
        self._reached = False  # a connection was made (or a server answered, even TLS)
        self.pool = Pool(most)
        # Pipelining (see _tick and _pipeline_onto): when the CPU of the thread
        # running this engine (its event loop; not a server in the same process) is
        # the bottleneck, stop opening connections and queue up to ``pipeline``
        # GET requests on each open one, which saves system calls and wake-ups.
        self.pipeline = max(1, settings.pipeline)
        self.cpu_clock = cpu_clock
        # The machine case's pauses (PipelinedDispatch._take_nap); None: none, for an
        # engine on a loop it does not own (arun: the caller's loop has other work).
        self.sleep = sleep
        # Decides when (see drumfire._pipelining); _watch_cpu applies what it says.
        # A plan whose method is fixed and not GET gives no request that may be
        # pipelined: never turn it on (it would only cut the connections).
        method = getattr(inner, "method", None)
        no_gets = method is not None and method.is_static and method.source != "GET"
        # A request with a -H 'Connection: close' is its connection's last (RFC 9112
        # §9.6): nothing is queued behind it, and the connection closes once it is answered.
        self._may_close = bool(getattr(inner, "may_close", False))
        self.pipelining_policy = Pipelining(
            1 if no_gets or self._may_close else self.pipeline,
            thread_cpu=cpu_clock,
            machine=machine_cpu,
        )
        self._local_of: tuple[Origin | None, int | None] = (None, None)
        self._kept: AdaptiveLimit | None = None
        # Called once, when the engine's own CPU first limits the run (see _watch_cpu).
        self.on_cpu_bound = on_cpu_bound
        self.pipelining = False
        self._conn_cap = most
        self._capacity = float("inf")  # most requests in flight the connections can take
        self._depth = 1  # requests per unit of the adaptive limit (pipeline when pipelining)
        self._refill = 1  # a busy connection takes more once this many fit (see _room)
        self._nap = OFF.nap  # the longest pause after a turn with answers (see _take_nap)
        self._napping = False
        self._unflushed: list[Connection] = []
        self._answered: Connection | None = None  # the connection that answered last
        # Statuses that may need more than writing the row (see _settle).
        self._special = frozenset(self.retry.statuses) | UNPROCESSED_STATUSES
        self.stats = Stats(clock)
        self._items: Iterator[Item] = iter(())
        self._exhausted = False
        self._seq = 0
        self._runs: UsualRuns | None = None  # a read-ahead child's usual chunks
        self._usual = None  # the usual row's short way (Rows.usual_maker), set by run
        self._inflight = 0
        self._waiting = 0  # jobs sleeping before a retry
        self._ready: deque[Flight] = deque()  # retries whose wait is over
        self._sleeping: dict[Flight, asyncio.TimerHandle] = {}  # retries still waiting
        self._busy: set[Connection] = set()
        # --ordered: results wait here for the rows before them.
        self._order: Reorder[Result] | None = Reorder(on_result) if ordered else None
        self._stopping = False
        self._paused = False
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failure: BaseException | None = None

    # -- starting requests ---------------------------------------------------

    def _pump(self) -> None:
        rate = self.rate
        origins = self.origins
        try:
            while (
                self._inflight < self._total
                and self._inflight < self._capacity
                and not self._paused
            ):
                solo = origins.solo
                full = False
                if solo is not None:
                    # The usual run, one origin: its limit is the loop's bound.
                    room = solo.limit.limit * self._depth - solo.inflight
                    if room <= 0:
                        if self._one_origin:
                            break
                        # The rows say their origin: the next may be another's (a slow
                        # host first in the input held every other host's rows back).
                        full = True
                if rate is not None:
                    wait = rate.wait(self.clock())
                    if wait > 0:
                        if not self._ready and not self._exhausted:
                            # Read the next row now: at the input's end the run ends
                            # here, not one interval later (an hour at --rate 1/h).
                            ahead = self._next_flight()
                            if ahead is not None:
                                self._ready.appendleft(ahead)
                        if not self._ready and self._exhausted:
                            break
                        self._pump_later(wait)
                        break
                elif self.pipelining and solo is not None and not solo.gated and not full:
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
                    if (
                        conn is None
                        and self._inflight
                        and not self._ready
                        and self.pool.open >= self._conn_cap
                        and not self.pool.may_take(solo.origin)
                    ):
                        # No connection may take a row now (none has room for a
                        # refill, none is idle, no other may open): _dispatch would
                        # only put the next row back. An answer pumps again.
                        break
                flight = self._next_flight()
                if flight is None:
                    break
                host = flight.host
                if host is None:
                    host = origins.last
                    # The usual row: the plan's one origin, the very same tuple.
                    if host is not None and host.origin is flight.prepared.origin:
                        flight.host = host
                    else:
                        host = origins.of(flight)
                if (full or host.gated or host is not solo) and not self._admit(flight, host):
                    if origins.solo is not None and host.queue and self._one_origin:
                        break  # the only origin must wait: reading on would only park rows
                    # Parked with its origin, the next row may go elsewhere; or
                    # ended (its origin's quota is spent), the next row too.
                    continue
                if not self._dispatch(flight):
                    break  # an answer will pump again
                if rate is not None:
                    rate.take(self.clock())
        except Exception as exc:  # a broken source or sink ends the run with its error
            self._fail(exc)
            return
        self._check_done()

    # -- origins ---------------------------------------------------------------

    def _admit(self, flight: Flight, host: OriginLimit) -> bool:
        """Whether ``flight`` may start now at its origin; else it waits in the origin's queue.

        Or it ends now: the origin's quota is spent for longer than ``--max-retry-wait``.
        """
        if host.inflight >= host.limit.limit * self._depth:
            self.origins.park(flight, host)
            return False
        if host.gated:
            now = self.clock()
            if host.spent_until:
                spent = host.spent(now)
                if spent:  # longer than --max-retry-wait: not waited for
                    # Unsent, or waiting after an answer: its last attempt's time.
                    self._cancel(flight, self.retry.quota_wait_error(spent))
                    return False
            wait = host.wait(now)
            if wait > 0.0:
                self.origins.park(flight, host)
                if host.hold_until > now:
                    self.origins.held.add(host)  # the progress line says what it waits for
                if host.timer is None:
                    assert self._loop is not None
                    host.timer = self._loop.call_later(wait, self._host_ready, host)
                return False
            host.take(now)
        return True

    def _unpark(self, host: OriginLimit) -> None:
        """Hand the rows waiting for ``host`` back to the pump, as many as it has room for."""
        self.origins.unpark(host, self._depth, self._ready)

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
        conn.limit = self.pool.answers.get(origin)  # seen to close after so many
        self.pool.opened(conn)
        self._busy.add(conn)
        assert self._loop is not None
        conn.open(self._loop, self._verify, flight, now + self.timeouts.connect)
        return True

    # -- connection callbacks (Owner protocol) --------------------------------

    def on_unanswered(self, conn: Connection, flight: Flight, written: bool) -> None:
        """A pipelined request the connection lost before its answer: send it again.

        The server did not answer it (it closed the connection, or the request
        ahead of it failed), so this does not count as an attempt; the re-send of
        one that was ``written`` is counted in ``resent``, as a request found on a
        closed connection is.
        """
        self._inflight -= 1
        self._answered_host(flight.host, 1)
        flight.attempts -= 1
        if self._stopping:
            self._cancel(flight)  # its last answered attempt's figures
            self._check_done()
            return
        if written:
            self.stats.resent += 1
        self._ready.appendleft(flight)
        self._pump_later(0.0)

    def on_error(self, conn: Connection, exc: Exception) -> None:
        """A callback of this protocol raised (a bug): the run ends with the error, as
        with a broken source or sink, rather than wait for rows it left unsettled."""
        self._fail(exc)

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
        if conn.cut:  # the server ended it with requests unanswered: learn its limit
            origin = conn.origin
            self.pool.cut(origin, conn.served)
            limit = self.pool.answers.get(origin)
            for other in self._busy:  # the connections open now: learned, or forgotten
                if other.origin == origin:
                    other.limit = limit
            for other in list(self.pool.idle.get(origin, ())):
                other.limit = limit
                if other.spent():
                    other.close()  # reused, it would only be found closed
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
            elif self._may_close and asks_close(answered[-1][0].prepared.data):
                conn.close()  # the request said Connection: close
            elif conn.spent():
                conn.close()  # the server will close it: no request to lose there
            else:
                self.pool.give(conn)
        elif state == BUSY:
            self._answered = conn
        now = self.clock()
        watched = host.watch
        if watched:  # first: a quota spent past --max-retry-wait stops their retries
            self._read_quota(host, answered, now)
        # Usually each answer is a row; else (redirect, 429, 503, retry) _sort_answers.
        special = self._special
        usual = answered
        started = 0.0  # the sum of their start times, while all are usual
        if self.follow_redirects:
            usual = self._sort_answers(host, answered, now)
        else:
            for flight, response in answered:
                if response.status in special:
                    usual = self._sort_answers(host, answered, now)
                    break
                started += flight.start
            else:
                host.answered(now, len(answered) * now - started, len(answered))
        if host.queue:
            self._unpark(host)
        # Put the next requests on the wire first (the first takes this connection,
        # the most recently idle), then extract and write these rows: the server
        # works on the next answers while the client does its share.
        self._pump()
        if usual:
            self._finish_all(usual, now)
        if self._nap and not self._napping:  # once the turn's other answers are read
            self._napping = True
            assert self._loop is not None
            self._loop.call_soon(self._take_nap)

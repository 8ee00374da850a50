"""How the engine pipelines: it applies the policy's settings and queues GETs on busy connections.

*When* to pipeline is :mod:`drumfire._pipelining`'s decision (a policy object
that reads the CPU and returns a :class:`~drumfire._pipelining.Setting`).
This module is the engine's side of it: each sweep hands the policy its
readings (``_watch_cpu``) and applies what comes back (``_pipeline_as``: the
depth, the connections kept, the requests in flight); while pipelining, the
pump fills the connection that just answered with many GET requests in one
write (``_fill``), and a row finds a busy connection with room
(``_pipeline_onto``, ``_room``). :class:`PipelinedDispatch` is a part of
:class:`drumfire._engine.Engine` (see :mod:`drumfire._core`).
"""

from __future__ import annotations

from itertools import repeat

from ._connection import Connection, pipeline_room
from ._core import EngineCore
from ._limits import AdaptiveLimit
from ._pipelining import OFF, Pipelining, Setting, is_local_host
from ._request import Origin, Prepared
from ._rows import Flight

__all__ = ["PipelinedDispatch"]


def _pipelinable(prepared: Prepared) -> bool:
    """A GET without a body: safe to queue behind other requests and to send again."""
    return prepared.method == "GET" and prepared.data.endswith(b"\r\n\r\n")


class PipelinedDispatch(EngineCore):
    """Applying the pipelining policy, and queueing requests (see the module docstring)."""

    def watch_cpu(self, now: float) -> None:
        """Take one sample of the engine's CPU share, as each sweep does (a seam for tests).

        Turns pipelining on or off when the share says so (see ``_watch_cpu``).
        """
        self._watch_cpu(now)

    @property
    def connection_cap(self) -> int:
        """Most connections kept open now (fewer while pipelining)."""
        return self._conn_cap

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
        solo = self.origins.solo
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
            # carries up to ``depth``. A fixed -c stays requests in flight, and so
            # does a --per-host-concurrency cap (it allowed 64 times its N).
            self._depth = setting.depth if self._adaptive and self.origins.per_host is None else 1
            self._refill = setting.refill
            self._nap = setting.nap if self.sleep is not None else OFF.nap
            self._keep((setting.connections or 1) if self._depth > 1 else 1)
        else:
            self._keep(1)
            self._refill = 1
            self._nap = OFF.nap
            self._conn_cap = self.pool.limit
            self._capacity = float("inf")
            self._depth = 1
        self._total = self.concurrency * self._depth
        self._pump()

    def _keep(self, units: int) -> None:
        """While pipelining, latency alone does not take the run's only origin below
        ``units`` connections' worth (:class:`~drumfire._limits.AdaptiveLimit`'s
        ``keep``): the policy keeps that many connections busy; 1 when it stops."""
        if self._kept is not None:
            self._kept.keep = 1
        solo = self.origins.solo
        limit = solo.limit if solo is not None and units > 1 else None
        self._kept = limit if isinstance(limit, AdaptiveLimit) else None  # -c N: no floor
        if self._kept is not None:
            self._kept.keep = units

    def _fill(self, conn: Connection, most: int) -> int:
        """Queue up to ``most`` new GET requests on ``conn``; return how many rows started.

        A row that cannot go there (not a plain GET, another origin, a re-send
        that wants a new connection) is dispatched the usual way and ends the fill.
        """
        room = min(self._room(conn), most)
        if room <= 0:
            return 0
        origin = conn.origin
        host = self.origins.solo
        assert host is not None
        now = self.clock()
        deadline = now + self.timeouts.total
        run = self._take_run(room) if self._runs is not None else None
        if run is not None:  # a read-ahead child's usual rows: sent as they are made
            if run.pipelinable and run.origin == origin:
                sent = run.flights(now, host)
                count = len(sent)
                self._inflight += count
                host.inflight += count
                host.sent += count
                self.stats.pipelined += count
                conn.pipeline(list(zip(sent, repeat(deadline, count), strict=True)), run.data)
                return count
            self._ready.extend(run.flights())  # not for this connection: the pump starts them
            return 0
        queued: list[tuple[Flight, float]] = []
        data: list[bytes] = []
        flights = self._next_flights(room)
        for i, flight in enumerate(flights):
            prepared = flight.prepared
            if (
                prepared.origin != origin
                or not flight.free_retry
                or prepared.method != "GET"
                or not prepared.data.endswith(b"\r\n\r\n")  # _pipelinable, inlined
            ):
                self._ready.extendleft(reversed(flights[i:]))  # the pump starts them
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

    def _take_nap(self) -> None:
        """Pause the engine's thread after a loop turn with answers (``Setting.nap``).

        The turn's requests are written first. How long: the policy's
        :meth:`~drumfire._pipelining.Pipelining.pause` for the requests outstanding
        on the busy connections. It ends before the engine's sweep (deadlines:
        a timeout still fires on time) and its paced pump (``--rate``, re-sends)
        are due. A blocking sleep, one system call: the loop has nothing to do
        meanwhile but wait for the same answers (an engine on a loop it does not
        own, ``arun``'s, has no ``sleep`` and never pauses); signals wait at most
        the nap.
        """
        self._napping = False
        if self._unflushed:
            self._flush()
        busy = self._busy
        sleep = self.sleep
        if not busy or not self._nap or sleep is None:
            return
        outstanding = sum([len(conn.behind) for conn in busy]) + len(busy)
        pause = self.pipelining_policy.pause(outstanding, len(busy))
        loop = self._loop
        if loop is not None:
            now = loop.time()
            for timer in (self._timer, self._pump_timer):
                if timer is not None:
                    pause = min(pause, timer.when() - now)
        if pause > 0.0:
            sleep(pause)

    def _roomiest(self) -> Connection | None:
        """The busy connection that may take the most requests, if any may."""
        best: Connection | None = None
        most = 0
        # A connection with more than this queued has no room for a refill: not
        # asked (machine case: most connections, most of the time).
        full = self.pipeline - 1 - self._refill
        for conn in self._busy:
            if len(conn.behind) > full:
                continue
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
        """How many more GET requests ``conn`` may queue (≤ 0: none): :func:`pipeline_room`."""
        return pipeline_room(conn, self.pipeline, self._refill)

"""The origins of a run: each one's limits, made on first sight, and the rows parked for it.

A run sends to one origin (the usual case: ``solo``) or to many (a column of
URLs). Each origin has an :class:`~drumfire._limits.OriginLimit`: its
concurrency limit (fixed, or adaptive up to ``max_concurrency``), its rate and
pause, its retry budget. A row whose origin is full waits in that origin's
queue ("parked"), so a slow origin does not hold the rows to the others. The
engine decides when to park and to unpark; this module keeps the books.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._limits import AdaptiveLimit, FixedLimit, OriginLimit, RetryBudget
from ._settings import Retry
from ._spill import Spill, SpillRefused

if TYPE_CHECKING:
    from ._request import Origin
    from ._rows import Flight

__all__ = ["Origins"]


class Origins:
    """Every origin's limits, and how many rows wait in their queues (``parked``).

    ``concurrency``: a fixed limit per origin, or None for adaptive ones up to
    ``max_concurrency``; ``per_host``/``per_host_rate``: the per-origin caps.
    """

    __slots__ = (
        "adaptive",
        "clock",
        "first",
        "fixed",
        "held",
        "hosts",
        "last",
        "max_concurrency",
        "parked",
        "per_host",
        "per_host_rate",
        "retry",
        "solo",
        "spill_at",
        "spilled",
        "spills",
        "stagger",
    )

    def __init__(
        self,
        concurrency: int | None,
        max_concurrency: int,
        per_host: int | None,
        per_host_rate: float | None,
        retry: Retry,
        clock: Callable[[], float],
        stagger: float = 0.0,
    ) -> None:
        self.adaptive = concurrency is None
        self.fixed = concurrency
        self.per_host = per_host
        self.per_host_rate = per_host_rate
        self.stagger = stagger  # see EngineSettings.stagger
        self.max_concurrency = max_concurrency
        self.retry = retry
        self.clock = clock
        self.hosts: dict[Origin, OriginLimit] = {}
        self.solo: OriginLimit | None = None  # the only origin so far (the usual run)
        self.last: OriginLimit | None = None  # the origin of the last row looked up
        self.parked = 0  # rows waiting in their origin's queue
        # Origins that rows waited for while held (a Retry-After pause, a spent quota):
        # the progress line says so. Pruned once their hold is over (see holds).
        self.held: set[OriginLimit] = set()
        # Rows of a held origin past ``spill_at`` rows parked in memory go to a file
        # (see _spill), so that the reader goes on to the other origins' rows; None:
        # never (the engine's choice: --ordered, files in requests).
        self.spill_at: int | None = None
        self.spills: dict[OriginLimit, Spill] = {}
        self.spilled = 0  # rows on disk, in all
        self.first: FixedLimit | AdaptiveLimit = self.new_limit()  # the first origin's limit

    def new_limit(self) -> FixedLimit | AdaptiveLimit:
        """A new origin's concurrency limit."""
        per_host = self.per_host
        if not self.adaptive:
            assert self.fixed is not None
            return FixedLimit(self.fixed if per_host is None else min(per_host, self.fixed))
        most = self.max_concurrency if per_host is None else min(per_host, self.max_concurrency)
        return AdaptiveLimit(initial=min(8, most), maximum=most)

    def of(self, flight: Flight) -> OriginLimit:
        """The limits of ``flight``'s origin (made on first sight), cached on the flight."""
        origin = flight.prepared.origin
        host = self.last
        if host is None or host.origin != origin:
            host = self.hosts.get(origin)
            if host is None:
                limit = self.first if not self.hosts else self.new_limit()
                retry = self.retry
                budget = RetryBudget(retry.budget, retry.budget_floor)
                host = OriginLimit(
                    origin, limit, self.per_host_rate, self.adaptive, budget, self.clock(),
                    self.stagger,
                )
                self.hosts[origin] = host
                self.solo = host if len(self.hosts) == 1 else None
            self.last = host
        flight.host = host
        return host

    def park(self, flight: Flight, host: OriginLimit) -> None:
        """``flight`` waits in its origin's queue, or on disk behind it (see below).

        Once ``spill_at`` rows are parked in memory, a row for an origin that is
        held (a ``Retry-After`` hold, a spent quota) and already has rows parked
        is written to that origin's :class:`~drumfire._spill.Spill` instead: the
        reader can go on to other origins' rows without holding these in memory.
        So is a row for an origin that has rows on disk still (after its hold:
        they came first, and the rows coming back to wait for its rate must not
        pile up in memory). The queue in memory is never empty while the file
        has rows (the engine looks at the queue to know an origin has rows
        waiting).
        """
        spill_at = self.spill_at
        if spill_at is not None and host.queue and self.parked >= spill_at:
            spill = self.spills.get(host)
            if spill is None and host.hold_until > self.clock():
                spill = self.spills[host] = Spill()
            if spill is not None:
                try:
                    spill.put(flight)
                except SpillRefused:
                    # A value pickle cannot take (a Python object as a row), a full
                    # disk: in memory, as before (the reader stops at memory's bound).
                    self.spill_at = None
                else:
                    self.spilled += 1
                    return
        host.queue.append(flight)
        self.parked += 1

    def unpark(self, host: OriginLimit, depth: int, ready: deque[Flight]) -> None:
        """Move the rows waiting for ``host`` to ``ready``, as many as it has room for.

        ``depth``: requests per unit of the origin's limit (pipelining). Rows on
        disk go first: they came after the queue's first rows, but the queue may
        have grown since the hold ended, and they must not wait for all of it.
        """
        queue = host.queue
        spill = self.spills.get(host) if self.spilled else None
        waiting = len(queue) + (spill.count if spill is not None else 0)
        room = min(waiting, host.limit.limit * depth - host.inflight)
        if room <= 0:
            return
        waits = False
        if host.gated and room > 1:
            waits = host.wait(self.clock()) > 0.0
            room = 1 if waits else room
        if spill is not None:
            # From disk, one at a time while a rate or pause gates the origin (the
            # others would only be written back), and none while it waits.
            back = [] if waits else spill.take(1 if host.gated else room, host)
            self.spilled -= len(back)
            ready.extend(back)
            room = min(room - len(back), len(queue))
        for _ in range(room):
            ready.append(queue.popleft())
        if room > 0:
            self.parked -= room
        if spill is not None and spill.count and not queue:
            queue.extend(spill.take(1, host))  # (see park: never an empty queue before it)
            self.spilled -= 1
            self.parked += 1
        if spill is not None and not spill.count:
            spill.close()
            del self.spills[host]

    def relieve(self, bound: int) -> bool:
        """The reader stops at ``bound`` rows parked in memory: move held origins' rows to disk.

        Rows parked for an origin while it was not held (it had no room, or
        waited for its rate) stay in memory when a hold starts; if they fill the
        bound, no other origin's row is read until the hold ends, and a hold that
        lasts until those rows are answered never would. Every held origin keeps
        its oldest row in memory and the rest go to its file. Returns whether
        fewer than ``bound`` are parked now.
        """
        if self.spill_at is None or not self.held:
            return False
        now = self.clock()
        self.held.difference_update([h for h in self.held if h.hold_until <= now])
        for host in self.held:
            queue = host.queue
            if len(queue) < 2:
                continue
            spill = self.spills.get(host)
            if spill is None:
                spill = self.spills[host] = Spill()
            first = queue.popleft()
            moved = 0
            try:
                while queue:
                    spill.put(queue[0])
                    queue.popleft()
                    moved += 1
            except SpillRefused:
                self.spill_at = None
            queue.appendleft(first)
            self.parked -= moved
            self.spilled += moved
            if self.spill_at is None:
                break
        return self.parked < bound

    def _spilled(self, host: OriginLimit) -> list[Flight]:
        """Every row on disk for ``host``, taken back (the file removed)."""
        spill = self.spills.pop(host, None)
        if spill is None:
            return []
        back = spill.take(spill.count, host)
        self.spilled -= len(back)
        spill.close()
        return back

    def drain(self) -> Iterator[Flight]:
        """Take every parked row out of the queues (the run is being cancelled)."""
        for host in self.hosts.values():
            yield from self.take_parked(host)

    def take_parked(self, host: OriginLimit) -> Iterator[Flight]:
        """Take the rows parked for ``host`` out of its queue (they end: its quota is spent)."""
        queue = host.queue
        while queue:
            self.parked -= 1
            yield queue.popleft()
        yield from self._spilled(host)

    def close(self) -> None:
        """The run ended: remove any file of parked rows left (a failed run's)."""
        for spill in self.spills.values():
            spill.close()
        self.spills.clear()
        self.spilled = 0

    def held_rows(self) -> int:
        """The rows parked for the origins held at the last :meth:`holds`, in memory and on disk.

        A ``-p N`` worker tells its parent, which deals it rows past them (see
        :mod:`drumfire._parallel`): they wait for the server, not for this worker.
        """
        spills = self.spills
        return sum(
            len(host.queue) + (spills[host].count if host in spills else 0) for host in self.held
        )

    def holds(self, now: float) -> list[tuple[str, float, str]]:
        """The origins held at ``now`` that rows wait for, longest wait first.

        Each as (host, or host:port off the scheme's default; seconds left; what
        for: ``Retry-After`` or ``quota``).
        """
        held = self.held
        if not held:
            return []
        over = [host for host in held if host.hold_until <= now]
        held.difference_update(over)
        found = [(_label(host.origin), host.hold_until - now, host.hold_why) for host in held]
        found.sort(key=lambda h: -h[1])
        return found

    def cancel_timers(self) -> None:
        """A stop or the end of the run: the origins' wake-up timers (rate, pause) fire no more."""
        for host in self.hosts.values():
            if host.timer is not None:
                host.timer.cancel()
                host.timer = None

    def limit(self, cap: int) -> int:
        """The run's concurrency limit now: the sum of the origins', at most ``cap``."""
        if self.solo is not None:
            return self.solo.limit.limit
        return min(cap, sum(h.limit.limit for h in self.hosts.values()))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _label(origin: Origin) -> str:
    """An origin as the progress line names it: its host, and its port if not the default."""
    scheme, host, port = origin
    return host if _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"

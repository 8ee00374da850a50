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
    )

    def __init__(
        self,
        concurrency: int | None,
        max_concurrency: int,
        per_host: int | None,
        per_host_rate: float | None,
        retry: Retry,
        clock: Callable[[], float],
    ) -> None:
        self.adaptive = concurrency is None
        self.fixed = concurrency
        self.per_host = per_host
        self.per_host_rate = per_host_rate
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
                    origin, limit, self.per_host_rate, self.adaptive, budget, self.clock()
                )
                self.hosts[origin] = host
                self.solo = host if len(self.hosts) == 1 else None
            self.last = host
        flight.host = host
        return host

    def park(self, flight: Flight, host: OriginLimit) -> None:
        """``flight`` waits in its origin's queue."""
        host.queue.append(flight)
        self.parked += 1

    def unpark(self, host: OriginLimit, depth: int, ready: deque[Flight]) -> None:
        """Move the rows waiting for ``host`` to ``ready``, as many as it has room for.

        ``depth``: requests per unit of the origin's limit (pipelining).
        """
        queue = host.queue
        room = min(len(queue), host.limit.limit * depth - host.inflight)
        if host.gated and room > 1:
            room = 1 if host.wait(self.clock()) > 0.0 else room
        for _ in range(room):
            ready.append(queue.popleft())
        if room > 0:
            self.parked -= room

    def drain(self) -> Iterator[Flight]:
        """Take every parked row out of the queues (the run is being cancelled)."""
        for host in self.hosts.values():
            while host.queue:
                self.parked -= 1
                yield host.queue.popleft()

    def take_parked(self, host: OriginLimit) -> Iterator[Flight]:
        """Take the rows parked for ``host`` out of its queue (they end: its quota is spent)."""
        queue = host.queue
        while queue:
            self.parked -= 1
            yield queue.popleft()

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

"""Limits as small strategies: how many requests may be in flight, and when the next may start.

Each strategy answers one question, in the manner of aiometer's meters:

- a concurrency limit (:class:`FixedLimit`, :class:`AdaptiveLimit`) says how many
  requests may be in flight, and learns from each completed one;
- a rate meter (:class:`RateMeter`, GCRA) says when the next request may start.

The engine composes them: it starts a request while ``inflight < limit.limit``
and ``rate.wait(now) == 0``. All take an injected clock value, so they are
tested without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AdaptiveLimit", "FixedLimit", "RateMeter", "parse_rate"]


class FixedLimit:
    """``-c N``: always N."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def sample(self, now: float, latency: float, overload: bool) -> None:
        """Nothing to learn."""

    def sample_all(self, now: float, latency_sum: float, count: int) -> None:
        """Nothing to learn."""

    def __repr__(self) -> str:
        return f"FixedLimit({self.limit})"


@dataclass
class AdaptiveLimit:
    """Concurrency that follows the server: a gradient limiter with AIMD on overload.

    In the spirit of Netflix's concurrency-limits (Gradient2) and TCP:

    * **slow start**: while throughput rises and latency stays near the best
      seen, double the limit each window (a window is ``limit`` completions,
      at least 32, about one round trip of every connection);
    * **congestion avoidance**: after the first sign of congestion, grow by
      one per window while latency holds or throughput still rises;
    * **back off** multiplicatively (x0.75) at once on a timeout, 429 or 503,
      at most once per round trip; and gently (x0.9) when the window's mean
      latency exceeds ``tolerance`` x the best while throughput no longer
      rises (requests queue on the server and buy nothing);
    * the best latency slowly forgets (``decay`` per second) so a server that
      got slower for good does not pin the limit at its floor.
    """

    initial: int = 8
    minimum: int = 1
    maximum: int = 512
    tolerance: float = 2.0
    backoff: float = 0.75
    decay: float = 0.05  # per second

    def __post_init__(self) -> None:
        self.limit = max(self.minimum, min(self.initial, self.maximum))
        self._slow_start = True
        self._best = math.inf
        self._sum = 0.0
        self._n = 0
        self._count = 0
        self._last_cut = -math.inf
        self._last_rate = 0.0
        self._window_start: float | None = None

    def sample(self, now: float, latency: float, overload: bool) -> None:
        """Learn from one completed request (``latency`` in seconds)."""
        if self._window_start is None:
            self._window_start = now
        if overload:
            # Cut at once, as TCP does on a loss, but at most once per round trip:
            # the requests already in flight were sent before the cut and their
            # 503s say nothing new. Waiting for the window's end lets instant 503s
            # (and their retries) pile up while the server is full.
            rtt = self._best if self._best < math.inf else latency
            if now - self._last_cut >= rtt:
                self._last_cut = now
                self._slow_start = False
                self.limit = max(self.minimum, int(self.limit * self.backoff))
                self._restart(now)
            return
        self._count += 1
        self._sum += latency
        self._n += 1
        if self._count >= max(self.limit, 32):  # enough completions for a steady rate
            self._end_window(now)

    def sample_all(self, now: float, latency_sum: float, count: int) -> None:
        """:meth:`sample` for ``count`` requests answered together, none overloaded.

        ``latency_sum``: their latencies added up. The window may end only after
        all of them (they completed at the same ``now``). The engine feeds the
        overloaded answers of the same read first, one by one: after a cut,
        these count towards the new window.
        """
        if self._window_start is None:
            self._window_start = now
        self._count += count
        self._sum += latency_sum
        self._n += count
        if self._count >= max(self.limit, 32):
            self._end_window(now)

    def _end_window(self, now: float) -> None:
        mean = self._sum / self._n if self._n else math.inf
        elapsed = max(now - (self._window_start or now), 1e-9)
        rate = self._n / elapsed
        if self._n:
            # Forget the best latency slowly, then learn from this window.
            # (per second, not per window: windows last milliseconds on a fast server)
            self._best = (
                min(self._best * (1 + self.decay * elapsed), mean)
                if self._best < math.inf
                else mean
            )
        queueing = mean > self._best * self.tolerance
        gaining = rate > self._last_rate * 1.05  # beyond window-to-window noise
        if self._slow_start:
            if queueing or not gaining:
                # Doubling stopped paying (requests queue, or throughput did not
                # rise): go back to the last limit (TCP's ssthresh) and creep up.
                self._slow_start = False
                self.limit = max(self.minimum, self.limit // 2)
            elif self.limit * 2 >= self.maximum:
                self.limit = self.maximum  # the cap: nothing left to discover
                self._slow_start = False
            else:
                self.limit *= 2
        elif queueing and not gaining:
            # Past the knee: requests wait on the server and buy no throughput.
            # A batch wants throughput, so latency alone is no reason to cut.
            self.limit = max(self.minimum, int(self.limit * 0.9))
        elif gaining or mean <= self._best * 1.25:
            # More connections still bring more throughput, or latency holds.
            self.limit = min(self.maximum, self.limit + 1)
        self._last_rate = rate
        self._restart(now)

    def _restart(self, now: float) -> None:
        self._sum = 0.0
        self._n = 0
        self._count = 0
        self._window_start = now


class RateMeter:
    """A smooth start-rate cap (GCRA): at most one start every ``1/rate`` seconds.

    No bursts: a pause does not bank credit beyond ``burst`` starts.
    """

    __slots__ = ("_tat", "burst", "interval")

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.burst = max(1, burst)
        self._tat = -math.inf  # theoretical arrival time of the next start

    def wait(self, now: float) -> float:
        """Seconds until the next start is allowed (0: now)."""
        tat = max(self._tat, now)
        allowed_at = tat - (self.burst - 1) * self.interval
        return max(0.0, allowed_at - now)

    def take(self, now: float) -> None:
        """Record a start made at ``now``.

        One interval of slack: a start made late (timers fire a little after
        their time) does not push the whole schedule back, so the rate over a
        run stays exact; the cost is that after a pause two starts may go at once.
        """
        self._tat = max(self._tat, now - self.burst * self.interval) + self.interval


_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


def parse_rate(text: str) -> float:
    """``500``, ``500/s``, ``100/min``, ``3000/h`` → requests per second."""
    value, _, unit = text.strip().partition("/")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate like 500, 500/s or 100/min") from None
    unit = unit.strip().lower() or "s"
    if unit not in _UNITS or number <= 0:
        raise ValueError(f"{text!r} is not a rate like 500, 500/s or 100/min")
    return number / _UNITS[unit]

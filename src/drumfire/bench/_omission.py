"""The closed model's latencies corrected for coordinated omission, as wrk corrects them.

In the closed model a connection sends its next request only once the last
answer came, so a slow answer also holds back the requests the connection
would have sent meanwhile: they are never measured, and the percentiles look
better than what clients arriving at that time would have seen. wrk (not
wrk2) corrects this after the run (``stats_correct`` in its ``src/stats.c``):
with ``expected`` the mean time between two requests of one connection (the
run's time / (answers / connections)), every latency ``v`` of at least twice
``expected`` also counts the values ``v - expected``, ``v - 2·expected``, …
down to (not including) ``expected``, the waits the held-back requests would
have had.

The added values are arithmetic sequences, so they are never materialised:
the number of corrected values at or under ``x`` has a closed form per
recorded value, and a percentile is found by bisection over ``x`` (a few
thousand operations per percentile, whatever the latencies, where recording
them one by one could take millions for a 30 s answer).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence

__all__ = ["corrected_percentiles", "expected_interval_us"]


def expected_interval_us(duration_s: float, answered: int, connections: int) -> float:
    """wrk's ``expected``: the mean time between two requests of one connection, µs
    (0 when the run is too short to tell: no correction)."""
    per_connection = answered // connections if connections > 0 else 0
    if per_connection <= 0 or duration_s <= 0:
        return 0.0
    return duration_s * 1e6 / per_connection


def _added_at_or_under(value: int, expected: float, x: int) -> int:
    """How many of the values ``value - k·expected`` (k ≥ 1, each > ``expected``) are ≤ x."""
    # k runs from 1 to the largest k with value - k·expected > expected.
    top = math.ceil((value - expected) / expected) - 1
    if top < 1:
        return 0
    # value - k·expected <= x  <=>  k >= (value - x) / expected
    low = max(1, math.ceil((value - x) / expected))
    return max(0, top - low + 1)


def corrected_percentiles(
    recorded: Iterable[tuple[int, int]], expected: float, percentiles: Sequence[float]
) -> list[int]:
    """The ``percentiles`` (0-100) of the ``recorded`` (value µs, count) pairs once
    corrected with ``expected`` (µs), in µs; without a correction (``expected`` ≤ 0),
    those of the values themselves. Empty input: zeros."""
    pairs = sorted((v, c) for v, c in recorded if c > 0)
    if not pairs:
        return [0 for _ in percentiles]
    correcting = [(v, c) for v, c in pairs if expected > 0 and v >= 2 * expected]
    values = [v for v, _ in pairs]
    below = list(itertools.accumulate(c for _, c in pairs))

    def at_or_under(x: int) -> int:
        i = bisect.bisect_right(values, x)
        n = below[i - 1] if i else 0
        for v, c in correcting:
            n += c * _added_at_or_under(v, expected, x)
        return n

    total = at_or_under(pairs[-1][0])
    out: list[int] = []
    for pct in percentiles:
        rank = max(1, math.ceil(pct / 100.0 * total))
        lo, hi = 0, pairs[-1][0]  # at_or_under(hi) == total >= rank
        while lo < hi:
            mid = (lo + hi) // 2
            if at_or_under(mid) >= rank:
                hi = mid
            else:
                lo = mid + 1
        out.append(lo)
    return out

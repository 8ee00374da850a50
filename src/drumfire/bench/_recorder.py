"""Recording outcomes: cheap per request, summarised once per second.

Per answered request the hot path does one list append (the latency in
microseconds) and one dict increment (the status). Once per second of the run
the second's latencies are counted (``collections.Counter``, in C), the
distinct values sorted for the second's timeline entry (p50/p90/p99/max), and
folded into one HdrHistogram (1 µs .. 1 h, 3 significant digits) as (value,
count) pairs: the histogram's pure-Python cost is paid per distinct value per
second rather than per request (about 4 ms a second at 150,000 answers/s),
and memory stays bounded: one second of raw latencies, the histogram, and a
few numbers per second of the run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

__all__ = ["HIGHEST_US", "LOWEST_US", "Recorder", "RunData", "Second", "new_histogram"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, 3)


@dataclass(frozen=True, slots=True)
class Second:
    """One second of the measured run (by completion time)."""

    t: int  # seconds since the measurement began
    span: float  # seconds of this bucket the run covered (1.0 except at the end)
    requests: int  # answered + failed
    failed: int  # transport errors and HTTP status >= 400
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.span if self.span > 0 else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "t": self.t,
            "span_s": round(self.span, 4),
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "failed": self.failed,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


class Recorder:
    """Counts, latencies and the per-second timeline of the measured requests.

    ``start`` is the clock time the measurement began (after any warm-up);
    completion times passed in are on the same clock.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self.histogram = new_histogram()
        self.status: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.timeline: list[Second] = []
        self.answered = 0  # responses, any status
        self.sum_us = 0
        self.max_us = 0
        self.min_us = 0
        self.last = start  # completion time of the last recorded request
        # the current second
        self.sec = 0
        self.sec_end = start + 1.0
        self.lat: list[int] = []
        self.sec_failed = 0
        self.sec_errors = 0
        # Requests that got no answer, at the time they took (a timeout at its
        # timeout): merged with ``histogram`` for the percentiles "with failures".
        self.failed_histogram = new_histogram()

    # -- hot path --------------------------------------------------------------

    def response(self, now: float, begin: float, status: int) -> None:
        """An answer arrived at ``now`` for a request that began (or was due) at ``begin``."""
        if now >= self.sec_end:
            self.roll(now)
        self.lat.append(int((now - begin) * 1e6))
        st = self.status
        st[status] = st.get(status, 0) + 1
        if status >= 400:
            self.sec_failed += 1
        self.last = now

    def failure(self, now: float, reason: str, begin: float | None = None) -> None:
        """A request ended without an answer (timeout, reset, connect, ...).

        ``begin``: when it began (or was due); its time then counts in the
        percentiles with failures.
        """
        if now >= self.sec_end:
            self.roll(now)
        if begin is not None:
            us = int((now - begin) * 1e6)
            self.failed_histogram.record_value(min(max(us, LOWEST_US), HIGHEST_US))
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.sec_failed += 1
        self.sec_errors += 1
        self.last = now

    # -- once per second ---------------------------------------------------------

    def roll(self, now: float) -> None:
        """Close every second that ended by ``now``."""
        while now >= self.sec_end:
            self._close(1.0)
            self.sec += 1
            self.sec_end = self.start + self.sec + 1.0

    def finish(self, end: float) -> None:
        """Close the seconds up to ``end`` and the partial last one."""
        self.roll(end)
        span = end - (self.start + self.sec)
        if self.lat or self.sec_errors or span >= 0.25:
            self._close(max(min(span, 1.0), 1e-9))
            self.sec += 1
            self.sec_end = self.start + self.sec + 1.0

    def _close(self, span: float) -> None:
        lat = self.lat
        n = len(lat)
        p50 = p90 = p99 = top = 0
        if n:
            # Counting (in C) and sorting the distinct values only: a few milliseconds
            # for 150,000 answers, where sorting them all took 15.
            counts = Counter(lat)
            values = sorted(counts)
            ranks = [max(1, math.ceil(q * n)) for q in (0.5, 0.9, 0.99)]
            found: list[int] = []
            record = self.histogram.record_value
            cum = total = 0
            for value in values:
                c = counts[value]
                cum += c
                total += value * c
                while len(found) < 3 and cum >= ranks[len(found)]:
                    found.append(value)
                record(min(max(value, LOWEST_US), HIGHEST_US), c)
            p50, p90, p99 = found
            top = values[-1]
            self.answered += n
            self.sum_us += total
            if top > self.max_us:
                self.max_us = top
            if self.min_us == 0 or values[0] < self.min_us:
                self.min_us = max(values[0], 0)
        self.timeline.append(
            Second(
                self.sec,
                span,
                n + self.sec_errors,
                self.sec_failed,
                p50 / 1000.0,
                p90 / 1000.0,
                p99 / 1000.0,
                top / 1000.0,
            )
        )
        self.lat = []
        self.sec_failed = 0
        self.sec_errors = 0

    # -- reading ------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Measured requests so far: answered or failed (the current second included)."""
        return self.answered + len(self.lat) + sum(self.errors.values())

    def with_failures(self) -> HdrHistogram:
        """The answered requests' latencies and the failed ones' times, together."""
        merged = new_histogram()
        merged.add(self.histogram)
        merged.add(self.failed_histogram)
        return merged

    def percentile_ms(self, pct: float) -> float:
        """Percentile of the folded latencies, never above the exact maximum."""
        if self.histogram.get_total_count() == 0:
            return 0.0
        value = min(self.histogram.get_value_at_percentile(pct), self.max_us)
        return float(value) / 1000.0


@dataclass
class RunData:
    """What a run measured, before it is turned into a report."""

    recorder: Recorder
    begin: float  # clock time the run began (after connecting)
    measure_start: float  # ... and the measurement (after warm-up)
    finish: float  # clock time the measurement ended
    sent: int  # measured requests sent (or given up on before sending)
    first_send: float
    last_send: float
    queue: HdrHistogram | None  # open model: due -> sent of every measured send, µs
    lag_max: float  # open model: the longest a send was late through the client's fault, s
    lag_sum: float  # ... and the sum of that lateness over all sends
    late: int  # sends late by more than _runner.LATE through the client's fault
    backlog_max: int
    loop_lag_max: float  # seconds the periodic tick fired late, at most
    connections: int  # connections opened during the run, preconnected ones included
    stopped: bool
    resent: int = 0  # measured requests re-sent: the server closed their kept-alive connection
    cancelled: int = 0  # measured requests still unanswered when the stop's grace was over
    cancelled_max: float = 0.0  # seconds the oldest of them had waited
    unsent: int = 0  # open model: measured requests given up unsent (their timeout passed)
    closed_unsafe: int = 0  # measured non-idempotent requests found closed: errors, not re-sent

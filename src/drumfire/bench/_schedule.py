"""Durations, rate specifications and the open-model arrival schedule.

The schedule answers one question: at what time (seconds after the run began)
is request number *i* due? For a fixed rate *r* that is ``i / r``; for a ramp
from *a* to *b* requests/s over *D* seconds the number of requests due by time
*t* is the integral of the rate, ``N(t) = a t + (b - a) t² / 2D``, and request
*i* is due when ``N(t) = i``. A rate profile is a list of such linear
segments (a fixed rate is a segment whose two ends are equal), so stages and
ramps combine. Due times are absolute offsets from the start, computed from
the index alone: the schedule never drifts, whatever the send loop does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .._errors import UsageError
from .._limits import parse_rate

__all__ = ["RateProfile", "Schedule", "Segment", "parse_duration", "parse_rate_profile"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?")


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """``10s``, ``2m``, ``1m30s``, ``500ms``, ``1h`` or a number of seconds → seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        raw = str(text).strip().lower().replace(" ", "")
        if not raw:
            raise UsageError(f"empty {what}")
        pos, value = 0, 0.0
        while pos < len(raw):
            m = _PART.match(raw, pos)
            if m is None:
                raise UsageError(f"{what} {text!r} is not a duration like 30s, 2m, 1m30s or 500ms")
            value += float(m.group(1)) * _UNITS[m.group(2) or ""]
            pos = m.end()
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what} {text!r} must be a finite, non-negative duration")
    return value


@dataclass(frozen=True, slots=True)
class Segment:
    """``duration`` seconds during which the rate goes linearly from ``start`` to ``end``/s."""

    start: float
    end: float
    duration: float  # math.inf for "until the run stops"

    @property
    def count(self) -> float:
        """Requests due in the whole segment (may be infinite)."""
        if math.isinf(self.duration):
            return math.inf
        return (self.start + self.end) / 2.0 * self.duration

    def time_of(self, k: float) -> float:
        """Seconds into the segment at which the ``k``-th request (0-based, fractional) is due."""
        a, b = self.start, self.end
        if a == b or math.isinf(self.duration):
            return k / a
        if k <= 0:
            return 0.0
        half_slope = (b - a) / (2.0 * self.duration)
        # Solve a t + half_slope t² = k; this form is stable for small or negative slopes.
        return 2.0 * k / (a + math.sqrt(max(a * a + 4.0 * half_slope * k, 0.0)))

    def rate_at(self, t: float) -> float:
        if math.isinf(self.duration) or self.duration == 0:
            return self.start
        return self.start + (self.end - self.start) * min(max(t / self.duration, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class RateProfile:
    """What ``--rate`` asked for: one fixed rate, a ramp over the run, or stages.

    ``ramp_over_run``: the single segment is stretched over the run's duration
    (``--rate 100:1000``), which is only known once ``-z`` is.
    """

    segments: tuple[Segment, ...]
    text: str
    ramp_over_run: bool = False

    @property
    def fixed(self) -> float | None:
        """The rate if it is one constant rate for ever, else None."""
        if len(self.segments) == 1 and self.segments[0].start == self.segments[0].end:
            return self.segments[0].start
        return None

    @property
    def length(self) -> float:
        """Seconds the stages last (infinite for a fixed rate or a ramp over the run)."""
        if self.ramp_over_run:
            return math.inf
        return sum(s.duration for s in self.segments)

    @property
    def first_rate(self) -> float:
        return self.segments[0].start

    @property
    def peak(self) -> float:
        return max(max(s.start, s.end) for s in self.segments)


def _rate_number(text: str, spec: str) -> float:
    """One rate of a profile, in the grammar of ``drumfire run --rate`` (200, 200/s,
    6000/min); 0 too, where a ramp or a stage starts or pauses."""
    number, slash, unit = text.partition("/")
    try:
        if float(number) == 0:  # 0, 0/s, 0/min: checked like any rate but for its zero
            if slash:
                parse_rate("1/" + unit)
            return 0.0
    except ValueError:
        pass  # not a number, or not a unit: parse_rate says which below
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise UsageError(f"--rate {spec!r}: {exc}") from None


def _not_above_zero(spec: str | float) -> UsageError:
    """A profile that never sends: worded as ``drumfire run --rate 0`` is."""
    return UsageError(f"--rate {spec!r}: a rate must be above zero (500, 500/s or 100/min)")


def parse_rate_profile(spec: str | float | int) -> RateProfile:
    """Parse ``--rate``.

    Each rate is written as ``drumfire run --rate`` reads one
    (:func:`drumfire._limits.parse_rate`: ``200``, ``200/s``, ``6000/min``); a
    profile adds ramps and stages:

    * ``200``: 200 requests/s for the whole run;
    * ``100:1000``: a linear ramp from 100 to 1000/s over the run's duration;
    * ``100@10s,500@20s,500:2000@30s``: stages, each a rate (or a ramp) and a duration.
    """
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        value = _rate_number(str(spec), str(spec))
        if value <= 0:
            raise _not_above_zero(spec)
        return RateProfile((Segment(value, value, math.inf),), f"{value:g}/s")
    text = str(spec).strip().replace(" ", "")
    if not text:
        raise UsageError(f"--rate {spec!r}: give a rate like 500, 500/s or 100/min")
    if "@" not in text:
        if "," in text:
            raise UsageError(f"--rate {spec!r}: give each stage a duration, like 100@10s,200@10s")
        lo, sep, hi = text.partition(":")
        start = _rate_number(lo, text)
        end = _rate_number(hi, text) if sep else start
        if start <= 0 and end <= 0:
            raise _not_above_zero(spec)
        if not sep:
            return RateProfile((Segment(start, start, math.inf),), f"{start:g}/s")
        # in requests/s, whatever unit each end was written in (5/min:10/s)
        text = f"{start:g}:{end:g}/s"
        return RateProfile((Segment(start, end, math.inf),), text, ramp_over_run=True)
    segments: list[Segment] = []
    for part in text.split(","):
        rate, at, length = part.partition("@")
        if not at or not rate or not length:
            raise UsageError(f"--rate {spec!r}: stage {part!r} is not RATE@DURATION")
        lo, sep, hi = rate.partition(":")
        a = _rate_number(lo, text)
        b = _rate_number(hi, text) if sep else a
        d = parse_duration(length, f"--rate stage {part!r}")
        if d > 0:
            segments.append(Segment(a, b, d))
    if not segments or all(s.count == 0 for s in segments):
        raise UsageError(f"--rate {spec!r}: the stages send no request")
    return RateProfile(tuple(segments), text)


class Schedule:
    """Due time (seconds from the start) of each request of an open-model run.

    Built from a :class:`RateProfile`, the warm-up (sent at the first rate,
    before the profile starts) and the measured duration. ``due(i)`` is
    monotonic in ``i`` and returns ``math.inf`` past the last segment.
    Lookups are expected in increasing order (one cursor, O(1) each) but any
    order works.
    """

    def __init__(self, profile: RateProfile, warmup: float = 0.0, duration: float | None = None):
        segs = list(profile.segments)
        if profile.ramp_over_run:
            if duration is None or math.isinf(duration):
                raise UsageError(
                    f"--rate {profile.text!r}: a ramp over the run needs a duration (-z), "
                    "or give stages like 100:1000@30s"
                )
            segs = [Segment(segs[0].start, segs[0].end, duration)]
        if warmup > 0:
            first = segs[0].start
            segs.insert(0, Segment(first, first, warmup))
        self.warmup = warmup
        self.segments = tuple(s for s in segs if s.duration > 0)
        starts: list[float] = []  # start time of each segment
        firsts: list[float] = []  # cumulative (fractional) count at the segment's start
        t = n = 0.0
        for s in self.segments:
            starts.append(t)
            firsts.append(n)
            t += s.duration
            n += s.count
        self._starts = starts
        self._firsts = firsts
        self.length = t  # seconds the segments cover (inf for an open-ended last one)
        self._cursor = 0

    def due(self, i: int) -> float:
        """Seconds after the start at which request ``i`` (0-based) is due."""
        firsts = self._firsts
        k = self._cursor
        if i < firsts[k]:
            k = 0
        last = len(firsts) - 1
        while k < last and i >= firsts[k + 1]:
            k += 1
        self._cursor = k
        seg = self.segments[k]
        offset = i - firsts[k]
        if offset >= seg.count:  # past the end of the last finite segment
            return math.inf
        return self._starts[k] + seg.time_of(offset)

    def count_before(self, t: float) -> int:
        """How many requests are due strictly before ``t`` seconds."""
        if t <= 0:
            return 0
        n = 0.0
        for start, first, seg in zip(self._starts, self._firsts, self.segments, strict=True):
            if t <= start:
                break
            dt = min(t - start, seg.duration)
            n = first + seg.start * dt
            if seg.end != seg.start:
                n += (seg.end - seg.start) * dt * dt / (2.0 * seg.duration)
        count = math.ceil(n - 1e-9)
        while count > 0 and self.due(count - 1) >= t:  # guard against rounding
            count -= 1
        while self.due(count) < t:
            count += 1
        return count

    def due_unsent(self, sent: int, since: float, until: float) -> tuple[int, float]:
        """The requests from index ``sent`` on that are due in [``since``, ``until``)
        seconds after the start: how many, and when the first of them was due."""
        first = max(sent, self.count_before(since))
        n = self.count_before(until) - first
        return (n, self.due(first)) if n > 0 else (0, 0.0)

    def rate_at(self, t: float) -> float:
        """The asked rate (requests/s) at ``t`` seconds after the start."""
        for start, seg in zip(reversed(self._starts), reversed(self.segments), strict=True):
            if t >= start:
                if not math.isinf(seg.duration) and t > start + seg.duration:
                    return 0.0
                return seg.rate_at(t - start)
        return self.segments[0].start if self.segments else 0.0

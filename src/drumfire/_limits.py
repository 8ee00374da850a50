"""Limits as small strategies: how many requests may be in flight, and when the next may start.

Each strategy answers one question, in the manner of aiometer's meters:

- a concurrency limit (:class:`FixedLimit`, :class:`AdaptiveLimit`) says how many
  requests may be in flight, and learns from each completed one;
- a rate meter (:class:`RateMeter`, GCRA) says when the next request may start.

The engine composes them: it starts a request while ``inflight < limit.limit``
and ``rate.wait(now) == 0``. All take an injected clock value, so they are
tested without sleeping.

Why this module is long (about 1,000 lines, over issue 18's ~600): it is one
controller. :class:`OriginLimit` composes :class:`AdaptiveLimit`,
:class:`CubicRate`, :class:`RateMeter` and :class:`RetryBudget` and reads their
state on every throttled answer; their thresholds are tuned together (the 15 %
share that cuts the concurrency, the 3 % that sets a found rate back, the 30 %
"dense", the half-second bucket, the halving a cut must buy, the noise that
undoes cuts of both) and the benchmark figures (docs/benchmarks.md) hold for
them as a set, so a reader changing one needs the others in view. More than
half of the lines are the reasons for those numbers. The rate parser at the
end is the only separable part (the quota headers' is in ``_quota.py``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AdaptiveLimit",
    "CubicRate",
    "FixedLimit",
    "OriginLimit",
    "RateMeter",
    "RetryBudget",
    "parse_rate",
]


class FixedLimit:
    """``-c N``: always N."""

    __slots__ = ("limit",)
    share = 0.0  # the interface of AdaptiveLimit: nothing is learnt
    cuts = 0

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
      seen, multiply the limit by ``growth`` (4) each round trip (a window of
      ``limit`` completions; at least 32 when they come faster than 50 ms, so
      that a fast server's rate is measured over enough answers). Four, not
      TCP's two: on a far or slow server a round trip costs seconds, and
      doubling from 8 to 512 takes six of them (2 s each against a 2 s server);
      the step back on the first sign of congestion is to the limit before
      the last step (TCP's ssthresh), so the overshoot costs one round trip;
    * **congestion avoidance**: after the first sign of congestion, grow by
      one per window (about one round trip) while latency holds or
      throughput still rises (additive increase, as Netflix's AIMD limit and
      TCP Reno: see :class:`CubicRate` for why the rate regrows differently);
    * **back off** multiplicatively (x0.75) on throttling (429, 503) or a
      timeout, at most once per round trip, and only when they are a real
      share of the answers: ``share`` is a moving average of throttled answers
      (each answer weighs ``weight``, 1/32) and must reach ``threshold`` (15 %).
      A few one-off 503s among healthy answers are the server's noise, not
      congestion: cutting on each drove the limit to 1 (issue 15). A server
      that is full answers most requests 503, which reaches the threshold
      within a few answers. A server that throttles a share whatever the load
      (its ``noise``, which :class:`OriginLimit` finds) cuts only above it, and
      the cuts its bursts made before it was known are undone (:meth:`forgive`);
    * gently (x0.9) when the window's mean latency exceeds ``tolerance`` x the
      best while throughput no longer rises (requests queue on the server and
      buy nothing);
    * the best latency slowly forgets (``decay`` per second) so a server that
      got slower for good does not pin the limit at its floor;
    * latency alone never takes the limit below ``keep`` (the owner sets it: while
      pipelining, the connections the policy keeps busy, each a unit of the limit).
      Their requests queue behind each other on purpose, and a limit below them
      leaves a server thread without work (issue 19: OSRM's second thread idle
      about a tenth of the run). Throttling and timeouts still cut below it.

    ``cuts`` counts the multiplicative cuts (an owner watches it to lower a send rate).
    """

    initial: int = 8
    minimum: int = 1
    maximum: int = 512
    tolerance: float = 2.0
    backoff: float = 0.75
    decay: float = 0.05  # per second
    growth: int = 4
    threshold: float = 0.15
    weight: float = 1 / 32

    #: Cuts remembered for :meth:`forgive` (the older are never undone).
    UNDO = 8
    #: Once a noise is known, a cut also needs the throttled share over about the
    #: last 256 answers (``steady``, each weighing this) at ``threshold`` / 2 above
    #: it, or ``RUN`` throttled answers in a row: see :meth:`sample`.
    STEADY_WEIGHT = 1 / 256
    RUN = 10
    #: ... or more, for a larger noise: a run of ``noise`` chances that comes once
    #: in 10⁸ answers (``log(1e-8) / log(noise)``: 20 at 40 %, where 10 in a row
    #: came about once a second at 8,000 answers a second, and each cut the limit).
    CHANCE = math.log(1e-8)
    #: Seconds: a window of ``limit`` completions (under 32) that lasted this long,
    #: or whose answers took this long, is a round trip of a slow server: enough.
    SLOW_WINDOW = 0.05

    def __post_init__(self) -> None:
        self.limit = max(self.minimum, min(self.initial, self.maximum))
        self.keep = self.minimum  # the latency rule's floor (see the class doc)
        self.share = 0.0  # moving average of throttled answers (0..1)
        self.cuts = 0
        # The share the server throttles whatever the load, as its owner found it
        # (OriginLimit.KEEP): the threshold counts above it.
        self.noise = 0.0
        # The throttled share over about 256 answers, kept only while a noise is known.
        self.steady = 0.0
        self._run = 0  # throttled answers in a row
        self._base = self.limit  # the limit before the last slow-start step
        self._slow_start = True
        self._best = math.inf
        self._sum = 0.0
        self._n = 0
        self._count = 0
        self._last_cut = -math.inf
        self._last_rate = 0.0
        self._window_start: float | None = None
        # The overload cuts that a noise found later may undo, newest last: the
        # limit, slow start (1.0 or 0.0) and base before each; the throttled and
        # other answers in the window after it, that window still open (1.0 or
        # 0.0); its number (cuts); the noise known when it was made. See forgive.
        self._undo: list[list[float]] = []

    def sample(self, now: float, latency: float, overload: bool) -> None:
        """Learn from one completed request (``latency`` in seconds)."""
        if self._window_start is None:
            self._window_start = now
        if overload:
            self.share += self.weight * (1.0 - self.share)
            undo = self._undo
            if undo and undo[-1][5]:
                undo[-1][3] += 1.0  # in the window after the last cut
            noise = self.noise
            if noise:
                self.steady += self.STEADY_WEIGHT * (1.0 - self.steady)
                self._run += 1
            if self.share < self.threshold + noise:
                return  # sparse: a one-off error among healthy answers
            if (
                noise
                and self.steady < noise + self.threshold / 2
                and self._run < max(self.RUN, self.CHANCE / math.log(noise))
            ):
                # The noise is known, the share over the last ~256 answers is still
                # near it, and the throttled answers are not a run: a burst of that
                # noise (the 32-answer average meets threshold + noise now and then by
                # chance, 5 % of random 503s cut a limit of 512 to 300 in 20 s), not a
                # change. A server that throttles a larger share for good lifts the
                # long share too; one that is now full answers ``RUN`` in a row (even
                # at 15 % of noise, 10 in a row come by chance once in 10⁸ answers).
                return
            # Cut at once, as TCP does on a loss, but at most once per round trip:
            # the requests already in flight were sent before the cut and their
            # 503s say nothing new. Waiting for the window's end lets instant 503s
            # (and their retries) pile up while the server is full.
            rtt = self._best if self._best < math.inf else latency
            if now - self._last_cut >= rtt:
                self._last_cut = now
                self.cuts += 1
                if undo:
                    self._close_undo()
                slow = float(self._slow_start)
                undo.append([self.limit, slow, self._base, 0, 0, 1, self.cuts, self.noise])
                if len(undo) > self.UNDO:
                    del undo[0]
                if self._slow_start:
                    # The last step overshot: back to the limit before it.
                    self._slow_start = False
                    self.limit = max(self.minimum, min(self._base, self.limit))
                else:
                    self.limit = max(self.minimum, int(self.limit * self.backoff))
                self._restart(now)
            return
        if self.share:
            self.share *= 1.0 - self.weight
            if self.noise:
                self.steady *= 1.0 - self.STEADY_WEIGHT
                self._run = 0
        self._count += 1
        self._sum += latency
        self._n += 1
        if self._count >= self.limit and self._measured(now):
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
        if self.share:
            self.share *= (1.0 - self.weight) ** count
            if self.noise:
                self.steady *= (1.0 - self.STEADY_WEIGHT) ** count
                self._run = 0
        self._count += count
        self._sum += latency_sum
        self._n += count
        if self._count >= self.limit and self._measured(now):
            self._end_window(now)

    def _measured(self, now: float) -> bool:
        """Whether the window (``limit`` answers at least) says enough to act on.

        32 answers on a fast server; on a slow one (answers that took 50 ms or
        more, or a window that lasted that long) one round trip is enough.
        """
        return (
            self._count >= 32
            or self._sum >= self.SLOW_WINDOW * self._n
            or now - (self._window_start or now) >= self.SLOW_WINDOW
        )

    def _end_window(self, now: float) -> None:
        if self._undo:
            self._close_undo()
        mean = self._sum / self._n if self._n else math.inf
        elapsed = max(now - (self._window_start or now), 1e-9)
        # A window shorter than a round trip (the first one, or answers that came
        # together from a slow server) measures no rate: count it as one round trip.
        rate = self._n / max(elapsed, mean)
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
                # The last step stopped paying (requests queue, or throughput did
                # not rise): go back to the limit before it (TCP's ssthresh) and creep up.
                self._slow_start = False
                floor = max(self.minimum, min(self.keep, self.limit))
                self.limit = max(floor, min(self._base, self.limit))
            elif self.limit * self.growth >= self.maximum:
                self.limit = self.maximum  # the cap: nothing left to discover
                self._slow_start = False
            else:
                self._base = self.limit
                self.limit *= self.growth
        elif queueing and not gaining:
            # Past the knee: requests wait on the server and buy no throughput.
            # A batch wants throughput, so latency alone is no reason to cut.
            self.limit = max(self.minimum, min(self.keep, self.limit), int(self.limit * 0.9))
            self._undo.clear()  # a limit found by latency: no cut before it is undone
        elif gaining or mean <= self._best * 1.25:
            # More connections still bring more throughput, or latency holds.
            self.limit = min(self.maximum, self.limit + 1)
        self._last_rate = rate
        self._restart(now)

    def forgive(self, now: float, noise: float) -> bool:
        """The server throttles ``noise`` of its answers whatever the load: undo its bursts' cuts.

        The send rate's rule (:attr:`OriginLimit.KEEP`: a cut must pay) carried
        over: a cut after which the answers of the next window (about a round
        trip: those already in flight, which the cut could not spare, and the
        first sent under it) were throttled at under ``threshold`` above this
        noise bought nothing the noise does not explain. Walking back from the
        last cut, such cuts are undone: the limit goes back to what it was
        before the earliest of them (in slow start if it was then), unless it
        has regrown past that. A cut after which more were throttled (a server
        that was full answers most requests 503 for a round trip) stops the
        walk, and so does a cut for latency (it clears what is remembered), and
        one made once a noise was known: the share was then ``threshold`` above
        that noise, a burst the noise does not explain, whatever its window
        showed (a later verdict on the same noise used to undo it). Only the
        cuts made before the noise was known are its bursts'. Without undoing
        them, bursts of 503s in the first second left the limit well below
        where slow start was heading (5 % of 503s at 50 ms: between 8 and 384,
        where an unthrottled run reaches 512), to regrow by one per round trip.
        Returns whether the limit is back to before its first cut (the owner
        then drops the send rate that cut set).
        """
        self.noise = self.steady = noise  # the long share starts at the noise found
        undo = self._undo
        if undo and undo[-1][5]:
            self._close_undo()
        before = None
        while undo:
            throttled, calm = undo[-1][3], undo[-1][4]
            if undo[-1][7]:
                break  # made with a noise known, above it: not the noise's
            if throttled and throttled >= (self.threshold + noise) * (throttled + calm):
                break
            before = undo.pop()
        if before is None:
            return False
        if before[0] > self.limit:
            self.limit = int(before[0])
            self._slow_start = bool(before[1])
            self._base = int(before[2])
            self._restart(now)
        elif before[1] and not self._slow_start:
            # Regrown past it by one per round trip meanwhile (a verdict takes 128
            # answers): the cut ended a slow start, which goes on from here.
            self._slow_start = True
            self._base = self.limit
            self._restart(now)
        return before[6] == 1

    def _close_undo(self) -> None:
        """The window after the last cut ends: its other answers are counted."""
        last = self._undo[-1]
        if last[5]:
            last[4] = self._n
            last[5] = 0

    def _restart(self, now: float) -> None:
        self._sum = 0.0
        self._n = 0
        self._count = 0
        self._window_start = now


class CubicRate:
    """A send rate found by throttling: cut on a 429/503 burst, regrown on a CUBIC curve.

    As the AWS SDKs' ``adaptive`` retry mode does: once a server has throttled,
    the client sends at most ``rate`` requests per second; a cut sets it to
    ``beta`` (0.7) x the rate in force, then it regrows along
    ``C W_max (t - K)^3 + W_max``, where ``W_max`` is the rate at the cut and
    ``K`` the time to get back to it (2 s after a full cut): fast at first,
    flat near the rate that was throttled, then probing beyond it. AWS's ``C``
    is absolute (0.4 per s³), which suits a few requests per second; here it
    is relative to ``W_max`` (``scale``), so 200 and 20,000 requests per second
    regrow in the same time. CUBIC rather than additive increase for
    a *rate*: its growth depends on time, not on round trips, so a server that
    answers 429 in 0.1 ms and one that answers in 1 s regrow alike, and it
    spends most of its time near the rate the server last accepted. (The
    concurrency limit stays additive: a window there is a round trip.)

    A cut never goes below ``floor`` x the rate the server accepted lately (as
    Google SRE's client-side throttling compares requests with accepts). A
    server that throttles a fixed share of requests whatever the load (10 % of
    first attempts, say) would otherwise drive the rate down fast: each cut
    lowers what it accepts, and so the next cut. With the floor, and cuts only
    when 15 % of answers are throttled (:class:`AdaptiveLimit`), such a server
    leaves the rate near what it accepts, while a token bucket is met at its rate.
    """

    __slots__ = ("_k", "_since", "_w_max", "beta", "floor", "minimum", "rate", "scale")

    def __init__(
        self, beta: float = 0.7, scale: float = 0.3, floor: float = 1.0, minimum: float = 0.5
    ) -> None:
        self.beta = beta
        self.scale = scale
        self.floor = floor
        self.minimum = minimum
        self.rate: float | None = None  # None: never throttled, no rate cap
        self._w_max = 0.0
        self._k = 0.0
        self._since = 0.0

    def throttle(self, now: float, accepted: float, to: float | None = None) -> None:
        """A cut at ``now``; ``accepted``: the rate (per second) the server answered lately.

        ``to``: cut to this rate exactly (still regrowing to the rate in force).
        """
        current = self.at(now)
        least = max(self.minimum, self.floor * accepted)
        new = least if current is None else max(self.beta * current, least)
        if to is not None:
            new = max(self.minimum, to)
        # The first cut: as if from the rate that would have been cut to this one.
        w_max = new / self.beta if current is None else max(current, new)
        self._w_max = w_max
        self._k = ((w_max - new) / (self.scale * w_max)) ** (1.0 / 3.0)
        self._since = now
        self.rate = new

    def settle(self, now: float, rate: float) -> None:
        """The server accepts ``rate`` and no more: send at it, then probe beyond.

        A cut whose plateau is the accepted rate itself (``K`` = 0), not the
        rate in force: the curve starts flat there, where a token bucket is
        met, and leaves it slowly (+4 % after half a second, +30 % after one).
        """
        rate = max(self.minimum, rate)
        self._w_max = rate
        self._k = 0.0
        self._since = now
        self.rate = rate

    def at(self, now: float) -> float | None:
        """The send rate allowed at ``now`` (None: no cap)."""
        if self.rate is None:
            return None
        t = now - self._since - self._k
        w_max = self._w_max
        self.rate = max(self.minimum, self.scale * w_max * t * t * t + w_max)
        return self.rate

    def __repr__(self) -> str:
        return f"CubicRate(rate={self.rate})"


class RateMeter:
    """A smooth start-rate cap (GCRA): at most one start every ``1/rate`` seconds.

    No bursts: a pause does not bank credit beyond ``burst`` starts.
    """

    __slots__ = ("_tat", "burst", "interval")

    #: Seconds: the most a start made late is made up for by the next (see :meth:`take`).
    SLACK = 0.02

    def __init__(self, rate: float, burst: int = 1, first: float = -math.inf) -> None:
        """``first``: no start before then (clock time; a phase among meters sharing a rate)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.burst = max(1, burst)
        self._tat = first  # theoretical arrival time of the next start

    def wait(self, now: float) -> float:
        """Seconds until the next start is allowed (0: now)."""
        tat = max(self._tat, now)
        allowed_at = tat - (self.burst - 1) * self.interval
        return max(0.0, allowed_at - now)

    def take(self, now: float) -> None:
        """Record a start made at ``now``.

        Some slack: a start made late (timers fire a little after their time)
        does not push the whole schedule back, so the rate over a run stays
        exact. At most ``SLACK`` (and one interval): the slack was a whole
        interval, so the first start, and the first after any pause, let a
        second go at once (``--rate 1/h`` sent two requests in its first
        second). Timers are late by milliseconds; an interval longer than
        that is kept to within ``SLACK``.
        """
        interval = self.interval
        slack = interval if interval < self.SLACK else self.SLACK
        self._tat = max(self._tat, now - (self.burst - 1) * interval - slack) + interval


class RetryBudget:
    """Retries may add at most ``share`` of the recent requests, plus ``floor`` per second.

    Finagle's ``RetryBudget`` (and in spirit gRPC's retry throttling): every
    request sent deposits ``share`` of a token, every second deposits
    ``floor``; a retry takes a whole token, and none is left means no retry. The
    balance is capped at ``floor * ttl`` plus ``share`` of that many requests, so
    a long healthy run does not bank an unbounded storm. Requests are counted by
    the caller (``sent``, a running total) so the hot path only adds one.
    """

    __slots__ = ("_balance", "_last", "_sent", "cap", "floor", "share")

    def __init__(self, share: float = 0.2, floor: float = 10.0, ttl: float = 10.0) -> None:
        self.share = share
        self.floor = floor
        self.cap = max(1.0, floor * ttl + share * 100 * ttl)
        self._balance = max(1.0, floor * ttl)
        self._last: float | None = None
        self._sent = 0

    def withdraw(self, now: float, sent: int) -> bool:
        """Take one retry if the budget allows; ``sent``: requests sent so far (a total)."""
        last = self._last if self._last is not None else now
        self._balance = min(
            self.cap,
            self._balance + (sent - self._sent) * self.share + (now - last) * self.floor,
        )
        self._sent, self._last = sent, now
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        return False


@dataclass(slots=True)
class _Probe:
    """A cut being judged (:attr:`OriginLimit.KEEP`): the answers after it, against before."""

    since: float
    share: float  # the share throttled before the cut
    rate: float  # the send rate before it (given back if the cut bought nothing)
    at_accepted: bool  # the rate was set to the accepted one (a token bucket then calms)
    # The rate a lowering set, kept while it is judged (0.0: the cut lowered no rate,
    # it cut the concurrency alone).
    held: float = 0.0
    accepted: float = 0.0  # answers accepted since
    throttled: float = 0.0  # answers throttled since
    highest: float = 0.0  # the highest moving share since


class OriginLimit:
    """One origin's limits (scheme, host, port): concurrency, send rate, and its waiting rows.

    The engine keeps one per origin and composes it with the run-wide limits:
    a row starts when the run and its origin both have room. ``limit`` is the
    origin's concurrency strategy (:class:`FixedLimit` or :class:`AdaptiveLimit`);
    ``meter`` its start rate (``--per-host-rate``, and once the server has
    throttled, the :class:`CubicRate` found by it, whichever is lower). ``gated``
    says whether anything but concurrency can hold a start (so the usual
    origin, with neither, costs one attribute test per row). ``queue`` holds
    rows read for this origin while it had no room (the engine bounds the
    total); ``hold_until`` a pause the server asked for.
    """

    __slots__ = (
        "_acc_n",
        "_acc_start",
        "_again_at",
        "_born",
        "_cuts",
        "_last_bucket",
        "_last_ok",
        "_longest",
        "_probe",
        "_quota_calm",
        "_rate_cut",
        "_thr_n",
        "accepted",
        "budget",
        "cubic",
        "fixed_rate",
        "gated",
        "hold_until",
        "hold_why",
        "inflight",
        "limit",
        "meter",
        "noise",
        "origin",
        "queue",
        "quota_rate",
        "sent",
        "share",
        "spent_until",
        "timer",
        "watch",
    )

    #: Seconds over which the accepted rate is measured (AWS SDKs: 0.5 s buckets).
    BUCKET = 0.5
    #: Share of recent answers throttled above which a Retry-After holds the whole
    #: origin: the server says "not now" to (nearly) everyone, not to one row.
    HOLD_SHARE = 0.5
    #: Weight of one answer in ``share`` (a moving average over about 32 answers).
    WEIGHT = 1 / 32
    #: Share of recent answers throttled above which a found send rate is checked
    #: against the accepted one (and set back to it when ``OVER`` times above it).
    RATE_SHARE = 0.03
    OVER = 1.03
    #: Seconds after a retried request was throttled again during which the found
    #: rate is cut back to the accepted one (a rate limit throttles retries too).
    AGAIN = 30.0
    #: Share of recent answers throttled above which every cut of the concurrency
    #: also lowers a found rate (a rate limit met well above its rate).
    DENSE = 0.3
    #: A cut must pay: once the found rate is set back to the accepted one, the share
    #: of answers throttled over the next ``BUCKET`` (and ``VERDICT`` answers at least) must
    #: fall below ``KEEP`` x the share before. A token bucket's does (it throttles
    #: only above its rate); a server that throttles a share whatever the rate (its
    #: noise: random 503s) keeps it, and then the cut is undone, that share becomes
    #: ``noise``, and the rate is set back again only when the share throttled
    #: exceeds the noise by ``RATE_SHARE``. Without this rule each such cut lowered
    #: the rate by the share (what is accepted is what is sent, less it), every
    #: half second, with no floor: 5 % of 503s took a run from 4,600 to 530 rows/s.
    KEEP = 0.5
    #: The most that counts as noise (the share :class:`AdaptiveLimit` leaves alone)
    #: when a cut is judged that may not have reached a token bucket's rate (a cut of
    #: the concurrency, or of the rate to ``beta`` x itself). A cut to the accepted
    #: rate itself calms a token bucket (it accepts all that its rate is), so a share
    #: that did not fall then is noise up to ``HOLD_SHARE``: with 15 % the most, 20 %
    #: of random 503s had every cut stand, and each lowered the rate to what was
    #: accepted (20 % less): 1,000 rows/s to 5 in 20 s.
    NOISE = 0.15
    #: Answers after a cut before it is judged (and ``BUCKET`` seconds): the share
    #: of 32 strays by 4 % at 5 % (a verdict on 31 answers took 5 % for 12 %).
    VERDICT = 128
    #: ... or after this many seconds and 32 answers, whichever comes first: a slow
    #: origin (a token bucket of 5 a second) is not held at a cut rate for 25 s.
    LONGEST = 5.0
    #: Answers looked at for quota headers before deciding the server sends none
    #: (throttled ones are always looked at: many servers send them there alone).
    WATCH = 16

    def __init__(
        self,
        origin: Any,
        limit: FixedLimit | AdaptiveLimit,
        rate: float | None = None,
        adaptive_rate: bool = False,
        budget: RetryBudget | None = None,
        born: float | None = None,
        stagger: float = 0.0,
    ) -> None:
        self.origin = origin
        self.budget = budget
        self.sent = 0  # requests sent (the engine counts them), for the retry budget
        self.limit = limit
        self.inflight = 0
        self.queue: deque[Any] = deque()
        self.fixed_rate = rate
        # -p N: worker k's first start here is (k - 1) / N of an interval late (stagger).
        first = (born or 0.0) + stagger / rate if rate and stagger else -math.inf
        self.meter = RateMeter(rate, first=first) if rate else None
        self.cubic = CubicRate() if adaptive_rate else None
        self.gated = self.meter is not None
        self.hold_until = 0.0
        self.hold_why = ""  # what the hold is for: "Retry-After" or "quota" (the progress line)
        self.timer: Any = None
        self._cuts = 0
        self.accepted = 0.0  # answers the server accepted per second, smoothed
        self._acc_n = 0
        self._thr_n = 0  # throttled answers in the same bucket
        self._last_bucket = (0, 0)  # (accepted, throttled) in the last full bucket
        self._acc_start: float | None = None
        self._born = born  # when the origin was first seen (its first request)
        self._last_ok = -math.inf  # when an answer was last accepted (not throttled)
        self._rate_cut = -math.inf  # when the send rate was last set back to the accepted one
        self._again_at = -math.inf  # when a retried request was last throttled again
        self.share = 0.0  # moving average of throttled answers (429, 503)
        self.noise = 0.0  # the share throttled whatever the rate (see KEEP)
        self._probe: _Probe | None = None  # while a cut is judged (KEEP)
        self.quota_rate: float | None = None  # the pace the quota headers state
        # A quota spent until then, longer than the run waits: rows end, not wait.
        self.spent_until = 0.0
        self._longest = math.inf  # the longest wait the run makes (--max-retry-wait)
        # Answers still to look at for quota headers (0: none; they never came).
        self.watch = self.WATCH
        self._quota_calm = False  # an answer other than a 429 or 503 carried them

    def room(self, depth: int = 1) -> int:
        """How many more requests may start here now, rate and pauses aside."""
        return self.limit.limit * depth - self.inflight

    def wait(self, now: float) -> float:
        """Seconds until the next start is allowed by the rate and any pause (0: now)."""
        wait = self.hold_until - now
        meter = self.meter
        if meter is not None:
            self._pace(meter, now)
            meter_wait = meter.wait(now)
            if meter_wait > wait:
                wait = meter_wait
        elif wait <= 0.0 and self.spent_until == 0.0:
            # A pause is over and no rate is kept: the starts leave the gated path (one
            # Retry-After used to keep every later start on it, off the pipelined one).
            self.gated = False
        return wait if wait > 0.0 else 0.0

    def may_retry(self, now: float) -> bool:
        """Whether the retry budget lets one more retry go to this origin now."""
        return self.budget is None or self.budget.withdraw(now, self.sent)

    def _pace(self, meter: RateMeter, now: float) -> None:
        """Set the meter to the lowest rate in force: the cap, the found one, the quota's."""
        cubic = self.cubic
        rate = self.fixed_rate
        found = cubic.at(now) if cubic is not None else None
        probe = self._probe
        if probe is not None and found is not None and probe.held and found > probe.held:
            # While a lowering is judged, the rate stays where it was cut to (the
            # curve would regrow past it within the verdict's wait: a token bucket
            # of 20 a second was then sent 110).
            found = probe.held
        if found is not None and (rate is None or found < rate):
            rate = found
        quota = self.quota_rate
        if quota is not None and (rate is None or quota < rate):
            rate = quota
        # None: nothing caps the rate (a found one was undone; _metered then
        # drops the meter, so this is only a guard).
        meter.interval = 1.0 / rate if rate is not None else 0.0

    def take(self, now: float) -> None:
        """A start at ``now``."""
        if self.meter is not None:
            self.meter.take(now)

    @property
    def rate(self) -> float | None:
        """The start rate in force (requests per second), or None."""
        meter = self.meter
        return 1.0 / meter.interval if meter is not None and meter.interval else None

    def answered(self, now: float, latency_sum: float, count: int) -> None:
        """``count`` answers that were not throttling, read at ``now``."""
        self.limit.sample_all(now, latency_sum, count)
        self._last_ok = now
        if self.share:
            self.share *= (1.0 - self.WEIGHT) ** count
            # Count accepted answers only once the server has throttled: before,
            # no rate is needed, and this is the path of every answer.
            if self.cubic is not None:
                self._count_accepted(now, count, latency_sum / count)
                if self._probe is not None:
                    self._measure_noise(now, count, 0)

    def throttled(
        self, now: float, latency: float, retry_after: float | None = None, again: bool = False
    ) -> None:
        """A 429 or 503: maybe a cut of the concurrency, and then of the rate.

        ``retry_after``: the wait the answer asked for (seconds), already capped.
        When most recent answers are throttled and none was accepted for
        ``BUCKET`` seconds, it holds the whole origin: the server is saying it
        to everyone (a full outage), and each row's own wait would only send a
        probe per row. A server that still accepts some (a token bucket met
        too fast) is not held: its rate is found instead, and only the
        throttled rows wait (holding it wasted a second of its rate at first
        contact, when its bucket only refilled to its burst). ``again``: the
        request was a retry.
        """
        self.share += self.WEIGHT * (1.0 - self.share)
        if again:
            self._again_at = now
        if self.cubic is not None:
            self._thr_n += 1
            if self._probe is not None:
                self._measure_noise(now, 0, 1)
        if retry_after and self.share >= self.HOLD_SHARE and now - self._last_ok >= self.BUCKET:
            self.hold(now + retry_after, "Retry-After")
            # Nothing is answered during the hold: start the count half-way, so
            # that another hold takes a run of throttled answers after it, not one.
            self.share = self.HOLD_SHARE / 2
            cubic = self.cubic
            accepted = self.accepted_rate(now)
            if cubic is not None and cubic.rate is not None and 0.0 < accepted < cubic.rate:
                # After the pause, start at what the server did accept, not at a
                # rate it has just refused (the retried rows would meet it again).
                cubic.throttle(now, accepted, to=accepted)
        limit = self.limit
        limit.sample(now, latency, True)
        cubic = self.cubic
        if cubic is not None and limit.cuts != self._cuts:
            self._cuts = limit.cuts
            accepted = self.accepted_rate(now)
            born = self._born
            if cubic.rate is None and born is not None and now > born:
                # The first cut: answers are counted only from the first throttled
                # one, too short a time; what was sent, less the share throttled,
                # says as much. Later cuts (if the throttling goes on) go lower.
                accepted = max(accepted, self.sent / (now - born) * (1.0 - self.share))
            # Later cuts lower the rate only when throttling is dense, or retried
            # rows are throttled too and the server is not known to throttle a
            # share whatever the rate (``noise``, KEEP): a server that throttles a
            # share of rows' first attempts (10 %, say), or of all requests at
            # random, has the concurrency cut now and then by bursts of them, and
            # each lowering the rate to what was accepted ratcheted it down.
            # While an earlier lowering is judged (KEEP), no further one: each cut
            # lowered the rate to what was accepted, and a server that throttles a
            # share whatever the rate accepts that much less each time (20 % of
            # random 503s: 1,000 rows/s to 5 in 20 s, before a verdict could come).
            probe = self._probe
            lowers = cubic.rate is None or (
                (probe is None or not probe.held)
                and (
                    self.share >= self.DENSE
                    or (not self.noise and now - self._again_at <= self.AGAIN)
                )
            )
            if accepted > 0.0 and lowers:  # nothing accepted (an outage): no rate from it
                before = cubic.at(now)
                cubic.throttle(now, accepted)
                self._metered(now)
                if before is not None and now - self._again_at <= self.AGAIN:
                    # Judged as a set-back is (KEEP): did the share fall?
                    held = cubic.rate
                    assert held is not None  # (just set by the cut)
                    at_accepted = held <= accepted * self.OVER
                    self._probe = _Probe(now, self.recent_share(), before, at_accepted, held)
            if self._probe is None and now - self._again_at > self.AGAIN:
                # No retried row was throttled lately: nothing says this throttling
                # follows the load (a rate limit throttles retries like any request),
                # and the rate is never set back (which is what starts a judgement
                # below), so a server that throttles some rows' first attempts never
                # had its noise found, and its bursts' cuts stood (4 % of first
                # attempts: 16 cuts in 10 s, the limit between 100 and 350 for 512).
                # This cut is judged as a rate cut is (KEEP): did the share fall?
                rate = cubic.at(now)
                self._probe = _Probe(now, self.recent_share(), rate or 0.0, False)
        elif (
            cubic is not None
            and cubic.rate is not None
            and self.share >= self.RATE_SHARE
            and (not self.noise or self.recent_share() >= self.noise + self.RATE_SHARE)
            and now - self._rate_cut >= self.BUCKET
            and now - self._again_at <= self.AGAIN
            and (self._probe is None or not self._probe.held)
        ):
            # The rate is known and the curve probes above it: the server accepts
            # no more than before while more are throttled (a token bucket). Back
            # to what it accepts, long before the share would cut the concurrency.
            # Only while retried rows are throttled too: a server that throttles
            # some rows' first attempts whatever the rate also accepts less than is
            # sent (until the retries come back), and cutting it to that every half
            # second would ratchet its rate down, 0.9x each time. A server known to
            # throttle a share whatever the rate (``noise``) throttles retries too:
            # for it, only a share above that noise is a limit (KEEP).
            accepted = self.accepted_rate(now)
            rate = cubic.at(now)
            if rate is not None and 0.0 < accepted * self.OVER < rate:
                self._rate_cut = now
                cubic.settle(now, accepted)
                self._metered(now)
                self._probe = _Probe(now, self.recent_share(), rate, True, accepted)

    def _measure_noise(self, now: float, accepted: int, throttled: int) -> None:
        """Count answers after the rate was set back to an accepted one, then judge the cut.

        After ``BUCKET`` seconds and ``VERDICT`` answers: if the share
        throttled did not fall below ``KEEP`` x the share before, the cut bought
        nothing: that share is noise, and the rate goes back to where it was.

        Unless the share rose meanwhile to ``NOISE`` above the one found (where
        the concurrency is cut even with that noise known): a burst the noise
        does not explain, and the cut of the concurrency (and of the rate) it
        made, came in between. The share counted its answers, so it is not the
        noise, and going back would undo that cut's rate: the probe says
        nothing, and a later one judges again. (A dense burst of 20 answers in
        a probe of 500 took an 8 % noise for 12 %, and gave the rate back.)
        """
        probe = self._probe
        assert probe is not None
        probe.accepted += accepted
        if throttled:
            probe.throttled += throttled
            if self.share > probe.highest:
                probe.highest = self.share
        answers = probe.accepted + probe.throttled
        elapsed = now - probe.since
        if elapsed >= self.BUCKET and (
            answers >= self.VERDICT or (elapsed >= self.LONGEST and answers * self.WEIGHT >= 1.0)
        ):
            self._probe = None
            share = probe.throttled / answers
            noise = share >= probe.share * self.KEEP and (
                share < self.NOISE
                or (probe.at_accepted and share < self.HOLD_SHARE)
                # the known noise, still (a cut its burst made, to a rate above
                # what was sent, ended it, and the rate went 0.7x per verdict)
                or (self.noise > 0.0 and share < self.noise + self.RATE_SHARE)
            )
            # The burst test: NOISE above the share, or (for a larger share, whose
            # 32-answer average strays further) five of its standard deviations (at
            # 30 %, 0.15 above it is met by chance in most probes).
            spread = 5.0 * math.sqrt(share * (1.0 - share) * self.WEIGHT / (2.0 - self.WEIGHT))
            if noise and probe.highest >= share + max(self.NOISE, spread):
                self._release(probe, now)  # a burst the noise does not explain: no verdict
                return
            if noise:
                self.noise = share
                cubic = self.cubic
                assert cubic is not None
                limit = self.limit
                if isinstance(limit, AdaptiveLimit) and limit.forgive(now, share):
                    # Every cut of the concurrency was the noise's, the first too,
                    # and that one set the send rate up: it goes with it.
                    cubic.rate = None
                    self._metered(now)
                    return
                current = cubic.at(now)
                if current is not None and current < probe.rate:
                    cubic.settle(now, probe.rate)
                    self._metered(now)
            else:
                self.noise = 0.0
                if isinstance(self.limit, AdaptiveLimit):
                    self.limit.noise = 0.0
                self._release(probe, now)

    def _release(self, probe: _Probe, now: float) -> None:
        """A lowering judged not to be the noise's: the curve starts again where it was held."""
        cubic = self.cubic
        if probe.held and cubic is not None:
            current = cubic.at(now)
            if current is not None and current > probe.held:
                cubic.settle(now, probe.held)
                self._metered(now)

    def hold(self, until: float, why: str = "Retry-After") -> None:
        """Start nothing here before ``until``; ``why``: what for (``Retry-After``, ``quota``)."""
        if until > self.hold_until:
            self.hold_until = until
            self.hold_why = why
        self.gated = True

    def quota(
        self,
        now: float,
        remaining: float,
        reset: float,
        longest: float = math.inf,
        throttled: bool = False,
    ) -> None:
        """The server's quota headers: ``remaining`` requests until ``reset`` seconds from now.

        Nothing left: hold the origin until the reset, if that is no longer than
        ``longest`` (``--max-retry-wait``); a longer wait is not made, as a
        ``Retry-After`` over it is not: ``spent_until`` says until when rows
        that would start here end at once instead (the engine asks
        :meth:`spent`). The latest answer's reset is the one followed: a quota
        said to be spent for an hour, then for 20 s, holds the origin for the
        20 s (the hour used to stand: rows went on ending, unsent, until it
        came within the cap). Else pace the starts to the quota
        (``remaining / reset`` per second), as reqstorm does, and forget a
        spent quota: the server says some is left.

        ``throttled``: they came with a 429 or 503. Those are read whatever
        ``watch`` says, so they start the search of the other answers again
        (``watch``) only once one of the others has carried them: a server
        that sends them with its 429s alone, and 429s often, had most of its
        200s searched.
        """
        if not throttled:
            self._quota_calm = True
        if self._quota_calm:
            self.watch = self.WATCH  # a server that sends them keeps being read
        self._longest = longest
        if remaining <= 0:
            if reset > longest:
                self.spent_until = now + reset
                self.gated = True
            else:
                self.spent_until = 0.0
                until = now + max(reset, 0.0)
                if self.hold_why == "quota" and self.hold_until > until:
                    # The latest reset holds, a shorter one too (an earlier answer's
                    # 50 s stood over a later one's 20 s); not a Retry-After's hold.
                    self.hold_until = until
                self.hold(until, "quota")
            return
        self.spent_until = 0.0
        if reset > 0.0:
            self.quota_rate = remaining / reset
            self._metered(now)

    def spent(self, now: float) -> float:
        """Seconds until a quota spent for longer than the run waits resets (0: none is).

        Once the rest is short enough to wait for, it becomes a :meth:`hold`.
        """
        wait = self.spent_until - now
        if wait > self._longest:
            return wait
        if wait > 0.0:
            self.hold(self.spent_until, "quota")
        self.spent_until = 0.0
        return 0.0

    def _metered(self, now: float) -> None:
        """A rate changed: pace the starts to the lowest in force, or to none."""
        cubic = self.cubic
        if (
            self.fixed_rate is None
            and self.quota_rate is None
            and (cubic is None or cubic.rate is None)
        ):
            # Nothing caps the rate any more (a found one was undone): no meter,
            # and only a pause or a spent quota gates the origin, as if it had
            # never throttled (the pipelined fast path takes it again). A meter
            # left at no interval kept every start on the gated path.
            self.meter = None
            self.gated = self.hold_until > now or self.spent_until > 0.0
            return
        if self.meter is None:
            self.meter = RateMeter(1e9)
        self._pace(self.meter, now)
        self.gated = True

    def _count_accepted(self, now: float, count: int, latency: float) -> None:
        start = self._acc_start
        if start is None:
            start = self._acc_start = now - latency
        self._acc_n += count
        elapsed = now - start
        if elapsed >= self.BUCKET:
            measured = self._acc_n / elapsed
            self.accepted = measured if not self.accepted else 0.8 * measured + 0.2 * self.accepted
            self._last_bucket = (self._acc_n, self._thr_n)
            self._acc_n = self._thr_n = 0
            self._acc_start = now

    def recent_share(self) -> float:
        """The share of answers throttled in the last full bucket and the current one."""
        accepted, throttled = self._last_bucket
        accepted += self._acc_n
        throttled += self._thr_n
        return throttled / (accepted + throttled) if throttled else 0.0

    def accepted_rate(self, now: float) -> float:
        """Answers accepted per second lately (the current bucket, blended once one is full)."""
        start = self._acc_start
        if start is None:
            return self.accepted
        elapsed = now - start
        if not self.accepted:
            # Before a full bucket: over at least a tenth of a second, so that the
            # first answers of a run (a burst) do not pass for a rate.
            return self._acc_n / max(elapsed, 0.1)
        current = self._acc_n / elapsed if elapsed > 0.0 else 0.0
        weight = min(1.0, elapsed / self.BUCKET)
        return weight * current + (1.0 - weight) * self.accepted

    def __repr__(self) -> str:
        return f"OriginLimit({self.origin!r}, {self.limit!r}, inflight={self.inflight})"


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
    if unit not in _UNITS or not -math.inf < number < math.inf:  # nan, inf: not a rate
        raise ValueError(f"{text!r} is not a rate like 500, 500/s or 100/min")
    if number <= 0:
        raise ValueError(f"{text!r}: a rate must be above zero (500, 500/s or 100/min)")
    return number / _UNITS[unit]

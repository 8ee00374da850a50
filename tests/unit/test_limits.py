"""Limits as strategies, driven by a fake clock: no sleeping."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable

import pytest

from drumfire._limits import (
    AdaptiveLimit,
    CubicRate,
    FixedLimit,
    OriginLimit,
    RateMeter,
    RetryBudget,
    parse_rate,
)


def test_fixed_limit_never_moves() -> None:
    limit = FixedLimit(8)
    for i in range(100):
        limit.sample(i * 0.01, 0.001, overload=i % 2 == 0)
    assert limit.limit == 8


def drive(limit: AdaptiveLimit, latency_at: object, overload_at: object, rounds: int) -> list[int]:
    """Feed ``rounds`` windows of samples; latency and overload are functions of the limit."""
    now = 0.0
    seen = []
    for _ in range(rounds):
        for _ in range(max(limit.limit, 32)):  # one window of the controller
            lat = latency_at(limit.limit)  # type: ignore[operator]
            now += lat / max(limit.limit, 1)
            limit.sample(now, lat, overload_at(limit.limit))  # type: ignore[operator]
        seen.append(limit.limit)
    return seen


def test_slow_start_grows_fast_while_latency_holds() -> None:
    # A server that answers in 50 ms whatever the load: the limit climbs to the cap.
    limit = AdaptiveLimit(initial=8, maximum=256)
    seen = drive(limit, lambda c: 0.05, lambda c: False, rounds=12)
    assert seen[-1] == 256
    assert seen.index(256) <= 6  # doubling, not +1 per window


def test_backs_off_on_overload_and_settles_near_capacity() -> None:
    # A server that admits 12 at a time and answers 503 beyond.
    limit = AdaptiveLimit(initial=8, maximum=512)
    seen = drive(limit, lambda c: 0.01, lambda c: c > 12, rounds=200)
    tail = seen[-100:]
    assert max(tail) <= 16
    assert min(tail) >= 6


def test_backs_off_when_latency_queues() -> None:
    # Latency proportional to the limit beyond 10 (a saturated server queues).
    limit = AdaptiveLimit(initial=8, maximum=512)
    seen = drive(limit, lambda c: 0.01 * max(1.0, c / 10), lambda c: False, rounds=200)
    assert max(seen[-100:]) <= 40


def test_latency_alone_does_not_cut_below_keep_but_overload_does() -> None:
    # While pipelining, each unit of the limit is a connection the policy keeps busy,
    # and the owner sets ``keep`` to their number. Pipelined requests wait behind
    # each other: latency jumps (3 ms to 60 ms here) at the same throughput, which
    # cut the limit to 1 (a server thread left idle, issue 19); it stops at keep.
    # 503s still cut below keep.
    for keep, floor in ((1, 1), (5, 5)):
        limit = AdaptiveLimit(initial=8, maximum=20)
        assert drive(limit, lambda c: 0.003, lambda c: False, rounds=20)[-1] == 20
        limit.keep = keep
        assert min(drive(limit, lambda c: 0.06, lambda c: False, rounds=20)) == floor
    limit = AdaptiveLimit(initial=64, maximum=512)
    limit.keep = 30
    seen = drive(limit, lambda c: 0.01, lambda c: c > 12, rounds=200)
    assert max(seen[-100:]) <= 16  # a server that admits 12 at a time


def test_sample_all_learns_as_many_samples_at_once() -> None:
    # Answers read together complete at the same time: one call for all of them
    # moves the limit as the same samples one by one do.
    one, many = AdaptiveLimit(initial=8, maximum=256), AdaptiveLimit(initial=8, maximum=256)
    now = 0.0
    for _ in range(40):
        batch = [0.01 + 0.001 * k for k in range(max(one.limit, 32))]
        now += 0.02
        for latency in batch:
            one.sample(now, latency, False)
        many.sample_all(now, sum(batch), len(batch))
        assert many.limit == one.limit
    assert one.limit > 32  # it did learn: slow start doubled the limit
    fixed = FixedLimit(8)
    fixed.sample_all(1.0, 0.5, 50)
    assert fixed.limit == 8


def test_rate_meter_spaces_starts_evenly() -> None:
    meter = RateMeter(100.0)
    now = 0.0
    starts = []
    while len(starts) < 50:
        wait = meter.wait(now)
        if wait > 0:
            now += wait
            continue
        meter.take(now)
        starts.append(now)
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]  # after the slack
    assert all(gap == pytest.approx(0.01) for gap in gaps)


def test_rate_meter_does_not_bank_a_burst_after_a_pause() -> None:
    meter = RateMeter(10.0)
    meter.take(0.0)
    # After a 5 s pause one start goes at once, not 50; the next waits its interval
    # (less the slack that makes up for late timers).
    assert meter.wait(5.0) == 0
    meter.take(5.0)
    assert meter.wait(5.0) == pytest.approx(0.1 - RateMeter.SLACK)
    assert meter.wait(5.1) == 0


@pytest.mark.parametrize("rate", [1 / 3600, 1 / 60, 1.0, 10.0])
def test_a_low_rate_never_lets_two_starts_go_at_once(rate: float) -> None:
    # The slack used to be a whole interval: the first start, and the first after a
    # pause, let a second go at once (--rate 1/h sent two requests in its first second).
    meter = RateMeter(rate)
    interval = 1 / rate
    for start in (0.0, 10 * interval):  # the first start, and one after a pause
        assert meter.wait(start) == 0
        meter.take(start)
        assert meter.wait(start) >= interval - RateMeter.SLACK


def test_rate_meter_late_starts_do_not_drift() -> None:
    meter = RateMeter(100.0)
    now = 0.0
    for _ in range(1000):
        now += meter.wait(now) + 0.0005  # every timer fires half a millisecond late
        meter.take(now)
    assert now == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("500", 500.0), ("500/s", 500.0), ("120/min", 2.0), ("3600/h", 1.0), (" 7.5 /sec", 7.5)],
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "fast", "10/week", "nan", "inf", "0/fortnight"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a rate like 500, 500/s or 100/min$"):
        parse_rate(text)


@pytest.mark.parametrize("text", ["0", "-3/s", "0/min", "-0.5"])
def test_parse_rate_says_a_rate_is_above_zero(text: str) -> None:
    """A zero or negative rate is a number in the grammar, just not one that sends."""
    with pytest.raises(ValueError, match="above zero") as caught:
        parse_rate(text)
    assert str(caught.value) == f"{text!r}: a rate must be above zero (500, 500/s or 100/min)"


# -- issue 15: sparse errors, slow start per round trip, per-origin limits, the send rate ------


def test_sparse_one_off_503s_do_not_collapse_the_limit() -> None:
    # 4 % of answers are one-off 503s, spread evenly; latency holds at 10 ms.
    limit = AdaptiveLimit(initial=8, maximum=512)
    now = 0.0
    for i in range(20_000):
        now += 0.01 / max(limit.limit, 1)
        limit.sample(now, 0.01, i % 25 == 0)
    assert limit.cuts == 0
    assert limit.limit >= 64


def test_dense_503s_cut_once_per_round_trip() -> None:
    limit = AdaptiveLimit(initial=8, maximum=512)
    for i in range(64):  # a first window, 10 ms round trips
        limit.sample(0.01 + i * 1e-4, 0.01, False)
    before = limit.limit
    for i in range(40):  # 40 instant 503s within 4 ms: one round trip
        limit.sample(0.02 + i * 1e-4, 0.0001, True)
    assert limit.cuts == 1
    assert limit.limit < before


def test_slow_start_multiplies_per_round_trip_on_a_slow_server() -> None:
    # A server answering in 2 s whatever the load: each round trip returns `limit`
    # answers at once; the limit goes 8 -> 32 -> 128 -> 512 in three round trips.
    limit = AdaptiveLimit(initial=8, maximum=512)
    now = 0.0
    seen = []
    for _ in range(4):
        now += 2.0
        limit.sample_all(now, 2.0 * limit.limit, limit.limit)
        seen.append(limit.limit)
    assert seen[:3] == [32, 128, 512]


def test_an_overload_in_slow_start_steps_back_to_the_last_good_limit() -> None:
    limit = AdaptiveLimit(initial=8, maximum=512)
    limit.sample_all(0.05, 8 * 0.05, 8)  # one slow-ish round trip: 8 -> 32
    assert limit.limit == 32
    for i in range(10):
        limit.sample(0.06 + i * 1e-4, 0.0001, True)
    assert limit.limit == 8


def test_fixed_limit_has_the_interface() -> None:
    limit = FixedLimit(4)
    assert (limit.cuts, limit.share) == (0, 0.0)


def test_cubic_rate_cuts_and_regrows() -> None:
    rate = CubicRate()
    assert rate.at(0.0) is None
    rate.throttle(10.0, accepted=200.0)
    assert rate.rate == pytest.approx(200.0)
    rate.throttle(10.0, accepted=100.0)  # the rate in force was 200: x0.7, not below accepted
    assert rate.rate == pytest.approx(140.0)
    assert 140.0 < (rate.at(10.5) or 0) < 200.0  # regrowing, concave
    assert rate.at(11.0) == pytest.approx(200.0)  # back at W_max a second after a full cut
    assert (rate.at(12.5) or 0) > 200.0  # then probing beyond


def test_cubic_rate_is_never_cut_below_what_the_server_accepts() -> None:
    # A server that throttles 10 % whatever the load accepts 0.9 x what is sent:
    # a cut lands there, not at 0.7 x, and the curve climbs back to the old rate.
    rate = CubicRate()
    rate.throttle(0.0, accepted=1000.0)
    rate.throttle(0.0, accepted=900.0)
    assert rate.rate == pytest.approx(900.0)
    assert rate.at(5.0) == pytest.approx(1000.0, rel=0.05) or (rate.at(5.0) or 0) > 1000.0
    rate.throttle(10.0, accepted=0.0)
    assert (rate.rate or 0) >= 0.5  # the floor of every rate


def test_origin_limit_is_gated_only_after_a_cut() -> None:
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(initial=8), adaptive_rate=True, born=0.0)
    assert not host.gated
    assert host.wait(0.0) == 0.0
    for i in range(20):
        host.answered(0.01 * (i + 1), 0.01 * 8, 8)  # ~800 answers/s accepted
    host.sent = 240
    for i in range(10):
        host.throttled(0.3 + i * 1e-4, 0.0001)
    assert host.gated
    assert host.rate is not None
    assert 100.0 < host.rate < 2000.0
    host.take(1.0)
    host.take(1.0)  # an interval under RateMeter.SLACK: one of slack, then the rate holds
    assert host.wait(1.0) > 0.0


def test_origin_limit_per_host_rate() -> None:
    host = OriginLimit(("http", "a", 80), FixedLimit(4), rate=10.0)
    assert host.gated
    assert host.room() == 4
    host.take(0.0)
    assert host.wait(0.0) == pytest.approx(0.1 - RateMeter.SLACK)  # 10 per second


def test_origin_held_when_most_answers_are_throttled_with_retry_after() -> None:
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True)
    host.throttled(0.0, 0.001, retry_after=2.0)  # one throttled answer: only its row waits
    assert host.wait(0.0) == 0.0
    for i in range(30):
        host.throttled(0.001 * i, 0.001, retry_after=2.0)
    assert host.wait(0.1) == pytest.approx(2.0 - 0.1 + 0.029, abs=0.01)
    assert host.rate is None or host.rate > 0  # nothing accepted: no rate from it


def test_origin_quota_paces_and_holds() -> None:
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    host.quota(0.0, remaining=100.0, reset=10.0)
    assert host.gated
    host.take(0.0)
    assert host.wait(0.0) == pytest.approx(0.1 - RateMeter.SLACK)  # 10 per second
    host.quota(1.0, remaining=0.0, reset=4.0)
    assert host.wait(1.0) == pytest.approx(4.0)


def test_a_pause_over_with_no_rate_kept_leaves_the_gated_path() -> None:
    # One Retry-After hold used to leave the origin gated for the rest of the run:
    # every start through the engine's admission, and the pipelined fast path off.
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    assert not host.gated
    host.hold(5.0)
    assert host.gated
    assert host.wait(1.0) == pytest.approx(4.0)
    assert host.gated  # still held
    assert host.wait(5.0) == 0.0
    assert not host.gated
    paced = OriginLimit(("http", "b", 80), FixedLimit(8), rate=10.0)  # a rate is kept
    paced.hold(1.0)
    assert paced.wait(2.0) == 0.0
    assert paced.gated
    spent = OriginLimit(("http", "c", 80), FixedLimit(8))
    spent.quota(0.0, remaining=0.0, reset=40.0, longest=2.0)  # spent past the cap
    assert spent.wait(0.0) == 0.0
    assert spent.gated  # rows still asked spent() before they start


def test_quota_headers_on_429s_alone_do_not_keep_the_200s_searched() -> None:
    # A server that sends quota headers with its 429s alone: reading them does not
    # re-arm the search of the other answers (``watch``), or on a server that
    # throttles often most 200s had a header search made. Once a 200 carries them,
    # every answer that does keeps the search going, 429s too.
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    assert host.watch == OriginLimit.WATCH
    host.watch = 5  # 11 answers looked at, none carried them
    host.quota(0.0, remaining=100.0, reset=10.0, throttled=True)
    assert host.watch == 5
    assert host.quota_rate == pytest.approx(10.0)  # still read, and followed
    host.watch = 0  # the first 16 answers carried none: 200s are no longer searched
    host.quota(1.0, remaining=0.0, reset=2.0, throttled=True)
    assert host.watch == 0
    assert host.wait(1.0) == pytest.approx(2.0)
    host.quota(3.0, remaining=50.0, reset=10.0)  # a 200 carried them
    assert host.watch == OriginLimit.WATCH
    host.watch = 3
    host.quota(4.0, remaining=40.0, reset=9.0, throttled=True)
    assert host.watch == OriginLimit.WATCH


def test_a_quota_spent_longer_than_the_run_waits_holds_nothing() -> None:
    # --max-retry-wait 2: a quota spent for 40 s is not waited for; rows end instead.
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    host.quota(0.0, remaining=0.0, reset=40.0, longest=2.0)
    assert host.gated
    assert host.wait(0.0) == 0.0  # no hold
    assert host.spent(1.0) == pytest.approx(39.0)
    assert host.spent(37.0) == pytest.approx(3.0)
    # The last 2 s are short enough to wait for: a hold, as any spent quota.
    assert host.spent(38.5) == 0.0
    assert host.wait(38.5) == pytest.approx(1.5)
    assert host.spent(39.0) == 0.0
    # Spent again, then an answer says some is left: no longer spent.
    host.quota(50.0, remaining=0.0, reset=40.0, longest=2.0)
    assert host.spent(50.0) == pytest.approx(40.0)
    host.quota(51.0, remaining=5.0, reset=39.0, longest=2.0)
    assert host.spent(51.0) == 0.0
    # Within the cap: held, as before.
    host.quota(60.0, remaining=0.0, reset=2.0, longest=2.0)
    assert host.spent(60.0) == 0.0
    assert host.wait(60.0) == pytest.approx(2.0)


def test_a_quota_spent_for_long_then_stated_within_the_cap_is_held_for() -> None:
    # --max-retry-wait 60: an answer says the quota resets in an hour (rows end), then
    # one still in flight says 20 s. The latest word holds: the origin is held 20 s,
    # and rows wait for it rather than end (the hour stood, and rows went on ending).
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    host.quota(0.0, remaining=0.0, reset=3600.0, longest=60.0)
    assert host.spent(0.0) == pytest.approx(3600.0)
    host.quota(0.5, remaining=0.0, reset=20.0, longest=60.0)
    assert host.spent(0.5) == 0.0
    assert host.wait(0.5) == pytest.approx(20.0)
    assert host.spent(10.0) == 0.0
    assert host.wait(10.0) == pytest.approx(10.5)
    assert host.wait(20.5) == 0.0
    # And the other way: held for 20 s, then said to be spent for an hour.
    host.quota(30.0, remaining=0.0, reset=20.0, longest=60.0)
    host.quota(30.5, remaining=0.0, reset=3600.0, longest=60.0)
    assert host.spent(31.0) == pytest.approx(3599.5)


def test_retry_budget_allows_a_share_of_requests_plus_a_floor() -> None:
    budget = RetryBudget(share=0.2, floor=10.0, ttl=10.0)
    sent, allowed = 0, 0
    for _ in range(200):  # the banked reserve first: floor x ttl
        allowed += budget.withdraw(0.0, sent)
    assert allowed == 100
    # 1,000 requests at the same instant: 200 more retries, not more.
    sent += 1000
    allowed = sum(budget.withdraw(0.0, sent) for _ in range(500))
    assert allowed == 200
    # A second later, the floor: 10 more.
    allowed = sum(budget.withdraw(1.0, sent) for _ in range(50))
    assert allowed == 10


def test_retry_budget_does_not_bank_forever() -> None:
    budget = RetryBudget(share=0.2, floor=10.0, ttl=10.0)
    budget.withdraw(0.0, 0)
    allowed = sum(budget.withdraw(3600.0, 10**6) for _ in range(10_000))
    assert allowed == budget.cap == 300


# -- issue 15: a token bucket met at its rate ------------------------------------------------


def simulate(
    accepts: Callable[[float], bool],
    seconds: float,
    retry_wait: float = 1.0,
    found: float | None = None,
) -> tuple[int, int, list[int]]:
    """(accepted, throttled, accepted in each second): a client that sends as fast as
    its origin limit lets it (10,000 per second at most), answered at once by a
    server that accepts a request at ``now`` when ``accepts(now)`` (else 429/503; the
    row is sent again ``retry_wait`` seconds later), on an injected clock.
    ``found``: a send rate already found (as after a first cut)."""
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    if found is not None:
        assert host.cubic is not None
        host.cubic.throttle(0.0, accepted=found)
    now = 0.0
    ok = throttled = 0
    per_second = [0] * math.ceil(seconds)
    retries: deque[float] = deque()  # when each throttled row may go again
    while now < seconds:
        wait = host.wait(now)
        if wait > 0.0:
            now += wait
            continue
        again = bool(retries) and retries[0] <= now
        if again:
            retries.popleft()
        host.take(now)
        host.sent += 1
        accepted = accepts(now)
        now += 1e-4  # the client's cost per request, and the answer's round trip
        if accepted:
            ok += 1
            if now < seconds:
                per_second[int(now)] += 1
            host.answered(now, 1e-4, 1)
        else:
            throttled += 1
            host.throttled(now, 1e-4, retry_wait, again)
            retries.append(now + retry_wait)
    return ok, throttled, per_second


def token_bucket(rate: float = 200.0, burst: float = 10.0) -> Callable[[float], bool]:
    """A token bucket: accepts ``rate`` requests per second (``burst`` at once), no more."""
    tokens, refilled = burst, 0.0

    def accepts(now: float) -> bool:
        nonlocal tokens, refilled
        tokens = min(burst, tokens + (now - refilled) * rate)
        refilled = now
        if tokens >= 1.0:
            tokens -= 1.0
            return True
        return False

    return accepts


def noise(share: float, seed: int = 1) -> Callable[[float], bool]:
    """A server that throttles ``share`` of all requests (retries too), whatever the rate."""
    draw = random.Random(seed).random
    return lambda now: draw() >= share


def simulate_bucket(seconds: float, rate: float = 200.0, burst: float = 10.0) -> tuple[int, int]:
    """(accepted, throttled) against a token bucket (429 + Retry-After: 1 above it)."""
    ok, throttled, _ = simulate(token_bucket(rate, burst), seconds)
    return ok, throttled


def test_a_token_bucket_is_not_held_at_first_contact() -> None:
    # The first burst meets an empty bucket: most answers are 429 + Retry-After: 1.
    # The server still accepts some, so it is a rate to find, not a pause for
    # everyone: the origin is not held for the Retry-After (the throttled rows wait).
    ok, _ = simulate_bucket(1.0)
    assert ok >= 0.85 * 200


def test_a_token_bucket_is_met_at_its_rate_with_few_429s() -> None:
    ok, throttled = simulate_bucket(20.0)
    assert ok >= 0.9 * 200 * 20
    # The found rate is set back to what the server accepts as soon as it probes
    # 3 % above it (not once 15 % of answers are throttled), and the curve starts
    # flat there (not at the rate it was cut from).
    assert throttled < 0.07 * (ok + throttled)


def test_an_origin_that_accepts_nothing_is_held_for_its_retry_after() -> None:
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    host.answered(0.0, 0.001, 1)
    for i in range(40):  # throttled for a second: nothing accepted lately
        host.throttled(0.5 + i * 0.02, 0.001, retry_after=2.0)
    assert host.wait(1.3) > 1.5


@pytest.mark.parametrize("retries_throttled", [False, True])
def test_a_found_rate_is_cut_back_to_the_accepted_one_only_for_a_rate_limit(
    retries_throttled: bool,
) -> None:
    # A rate was found (1,000/s). Then the server accepts 500/s while one answer in
    # ten is throttled. A rate limit (a token bucket) throttles retried rows too:
    # the rate goes back to what is accepted. A server that throttles some rows'
    # first attempts whatever the rate never throttles their retries: the rate
    # stays (cutting it every half second would ratchet it down).
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    assert host.cubic is not None
    host.cubic.throttle(0.0, accepted=1000.0)
    now, lowest = 0.0, 1000.0
    for i in range(2000):  # 4 s
        now += 0.002
        if i % 10 == 5:
            host.throttled(now, 0.001, 1.0, again=retries_throttled)
        else:
            host.answered(now, 0.001, 1)
        lowest = min(lowest, host.cubic.at(now) or 0.0)
    if retries_throttled:
        assert lowest < 600.0
    else:
        assert lowest == 1000.0


def test_bursts_of_throttled_first_attempts_do_not_ratchet_a_found_rate() -> None:
    # A rate was found (1,000/s). The server then throttles a tenth of rows' first
    # attempts, in bursts (5 in a row out of 50), and accepts 450/s: the bursts cut
    # the concurrency, but they are not a rate limit (no retried row is throttled,
    # and most answers are accepted): the rate is not lowered to what was accepted.
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    assert host.cubic is not None
    host.cubic.throttle(0.0, accepted=1000.0)
    now, lowest = 0.0, 1000.0
    for i in range(2000):  # 4 s
        now += 0.002
        if i % 50 < 5:
            host.throttled(now, 0.001, 1.0)
        else:
            host.answered(now, 0.001, 1)
        lowest = min(lowest, host.cubic.at(now) or 0.0)
    assert host.limit.cuts > 0  # the concurrency was cut
    assert lowest == 1000.0


# -- a fixed share of throttled answers is noise, not a rate limit ---------------------------


@pytest.mark.parametrize("share", [0.02, 0.05, 0.1, 0.2, 0.3, 0.4])
def test_a_random_share_of_throttled_answers_does_not_ratchet_the_rate(share: float) -> None:
    # A rate was found (1,000/s); the server then throttles a share of every request,
    # retries too, whatever the rate (503s at random): it accepts what is sent, less
    # that share. Setting the rate back to what it accepted, every half second,
    # lowered it by that share each time with no floor (5 %: 8,800 -> 2,800/s in
    # 20 s; 10 %: 6,700 -> 100/s). Such a cut does not lower the throttled share: it
    # is undone, and the rate goes on to what the client can send (10,000/s).
    ok, _, per_second = simulate(noise(share), 20.0, retry_wait=0.1, found=1000.0)
    assert min(per_second[-5:]) >= 0.95 * 10_000 * (1.0 - share)
    assert ok >= 0.8 * 10_000 * 20 * (1.0 - share)


@pytest.mark.parametrize("share", [0.2, 0.3, 0.4])
def test_a_large_random_share_from_first_contact_does_not_collapse_the_rate(share: float) -> None:
    # No rate known yet; the server throttles a fifth (or more) of every request,
    # retries too, whatever the rate. Such a share is over the 15 % that cuts the
    # concurrency, and each cut lowered the rate to what was accepted (a fifth less):
    # 20 %: 2,600 rows/s in the first second, 7 in the last; 40 %: 200, then 3. A cut
    # to the accepted rate that leaves the share where it was is noise, up to a half.
    ok, _, per_second = simulate(noise(share), 20.0, retry_wait=0.1)
    assert min(per_second[-5:]) >= 0.95 * 10_000 * (1.0 - share)
    assert ok >= 0.7 * 10_000 * 20 * (1.0 - share)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_a_fifth_of_random_503s_leaves_the_concurrency_growing(seed: int) -> None:
    # 20 % of all requests (retries too) answered 503 at random, 50 ms, 12 s: the
    # limit used to end between 1 and 18 and the rate at 4 to 21 requests a second.
    # The share is found as noise: the rate no longer binds and the limit regrows.
    draw = random.Random(seed).random
    host, limits, _ = round_trips(lambda inflight: draw() < 0.2, 12.0, seed=seed)
    assert 0.15 < host.noise < 0.3
    assert host.rate is None or host.rate > 10_000
    assert limits[-1] >= 100
    assert limits[-1] > limits[-60]


@pytest.mark.parametrize("rate", [200.0, 2000.0])
def test_a_token_bucket_behind_a_fifth_of_random_503s_keeps_most_of_its_rate(rate: float) -> None:
    # A token bucket, and 20 % of requests throttled at random before it: the rate
    # went to nothing (200/s: 0 to 2 accepted a second by the end). Now the bucket
    # is met at most of its rate (the noise drops a fifth of what is sent).
    server, drop = token_bucket(rate), noise(0.2)
    ok, throttled, per_second = simulate(lambda now: drop(now) and server(now), 20.0)
    assert min(per_second[-5:]) >= 0.6 * rate
    assert throttled < (0.2 + 0.07) * (ok + throttled)  # not sent far above the bucket


@pytest.mark.parametrize(("rate", "most"), [(20.0, 0.6), (50.0, 0.25), (100.0, 0.1)])
def test_a_slow_token_bucket_is_not_sent_far_above_its_rate(rate: float, most: float) -> None:
    # While a lowering of the rate is judged (128 answers: seconds, at 20 a second),
    # the rate is held where it was cut to: the curve, regrowing meanwhile, sent a
    # bucket of 20 a second 110 (82 % throttled), of 100 a second 132 (24 %).
    # (Most of what is throttled here is the first second's burst at first contact.)
    ok, throttled, per_second = simulate(token_bucket(rate), 20.0)
    assert min(per_second[-5:]) >= 0.9 * rate
    assert throttled < most * (ok + throttled)


@pytest.mark.parametrize(("rate", "share"), [(200.0, 0.0), (2000.0, 0.0), (2000.0, 0.05)])
def test_a_token_bucket_is_still_found_and_kept(rate: float, share: float) -> None:
    # A real rate limit is still met at its rate, with or without the noise beside it:
    # cutting to what it accepts lowers the throttled share there (to the noise).
    server, drop = token_bucket(rate), noise(share)
    ok, throttled, per_second = simulate(lambda now: drop(now) and server(now), 20.0)
    assert ok >= 0.9 * rate * 20
    assert max(per_second[2:]) <= 1.1 * rate
    assert throttled < (share + 0.07) * (ok + throttled)


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_the_concurrency_is_cut_only_above_a_known_noise(noise: float) -> None:
    # One answer in five throttled (20 %): above the 15 % threshold, but within it
    # once the server is known to throttle a tenth of everything.
    limit = AdaptiveLimit(initial=100)
    limit.noise = noise
    for i in range(400):
        limit.sample(i * 0.01, 0.001, i % 5 == 0)
    assert (limit.cuts > 0) is (noise == 0.0)


def test_noise_found_by_the_origin_reaches_its_concurrency_limit() -> None:
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    assert host.cubic is not None
    host.cubic.throttle(0.0, accepted=1000.0)
    draw = random.Random(1).random
    now = 0.0
    for _ in range(20_000):  # 5 % throttled whatever the rate, retries too
        now += 1e-4 + host.wait(now)
        host.take(now)
        if draw() < 0.05:
            host.throttled(now, 1e-4, None, again=True)
        else:
            host.answered(now, 1e-4, 1)
    assert 0.03 < host.noise < 0.07
    assert isinstance(host.limit, AdaptiveLimit)
    assert host.limit.noise == host.noise


# -- the concurrency cuts that a noise's bursts made are undone once it is known -------------


def round_trips(
    throttles: Callable[[int], bool],
    seconds: float,
    latency: float = 0.05,
    seed: int = 1,
    first_only: bool = False,
) -> tuple[OriginLimit, list[int], tuple[int, int]]:
    """(the origin, its concurrency limit every 0.1 s, when its first cut was (an
    index in that list) and the limit it left): a client that keeps as many requests
    in flight as the origin lets it, to a server that answers each after ``latency``
    (±10 %, seeded), throttling those for which ``throttles(inflight)`` (a throttled
    row is sent again after a full-jitter backoff, as the engine does), on a virtual
    clock. ``first_only``: retries are never throttled (a server that throttles some
    rows' first attempts)."""
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(), adaptive_rate=True, born=0.0)
    jitter = random.Random(seed).random
    answers: list[tuple[float, int, float, int, bool]] = []  # (due, seq, sent, attempt, 503)
    retries: list[tuple[float, int]] = []  # (due, attempt)
    now, seq, limits, first_cut = 0.0, 0, [], (0, 0)
    while now < seconds:
        while host.inflight < host.limit.limit and host.wait(now) == 0.0:
            attempt = heapq.heappop(retries)[1] if retries and retries[0][0] <= now else 1
            host.take(now)
            host.sent += 1
            host.inflight += 1
            seq += 1
            due = now + latency * (0.9 + 0.2 * jitter())
            throttled = throttles(host.inflight) and (attempt == 1 or not first_only)
            heapq.heappush(answers, (due, seq, now, attempt, throttled))
        wake = answers[0][0] if answers else math.inf  # none: paced by the rate
        if host.inflight < host.limit.limit:
            wake = min(wake, now + host.wait(now))
        while len(limits) < wake * 10 and len(limits) < seconds * 10:
            limits.append(host.limit.limit)
        now = wake
        while answers and answers[0][0] <= now:
            due, _, sent, attempt, throttled = heapq.heappop(answers)
            host.inflight -= 1
            if throttled:
                host.throttled(due, due - sent, None, again=attempt > 1)
                if host.limit.cuts and not first_cut[1]:
                    first_cut = (len(limits), host.limit.limit)
                backoff = 0.1 * 2 ** (attempt - 1) * jitter()
                heapq.heappush(retries, (due + backoff, attempt + 1))
            else:
                host.answered(due, due - sent, 1)
    return host, limits, first_cut


@pytest.mark.parametrize("seed", range(1, 9))
def test_the_concurrency_is_given_back_once_random_503s_are_known_as_noise(seed: int) -> None:
    # 5 % of all requests (retries too) answered 503 at random, 50 ms. Bursts of them
    # in the first second cut the concurrency before the noise was known (to 8-384,
    # where an unthrottled run goes to 512), and it regrew by one per round trip: it
    # never got back to 512 (seed 1 ended at 42, seed 4 at 84, seed 5 at 252). Once a
    # cut of the rate is found not to pay, the share is noise, and the concurrency
    # cuts its bursts made are undone: the limit is back where an unthrottled run's
    # is. (A burst 15 % above the known noise still cuts it, and that cut stands; it
    # used to be undone by a later verdict on the same noise: see the test below.)
    # (4 s: a verdict takes 128 answers and half a second, and the rate is held at
    # the cut meanwhile; seed 1 was back at 512 after 2.2 s, 3 s were too short.)
    _, clean, _ = round_trips(lambda inflight: False, 4.0)
    assert clean[-1] == 512
    draw = random.Random(seed).random
    host, limits, (cut_at, cut_to) = round_trips(lambda inflight: draw() < 0.05, 4.0, seed=seed)
    assert 0.04 < host.noise < 0.06
    assert isinstance(host.limit, AdaptiveLimit)
    assert host.limit.noise == host.noise
    assert cut_to <= 0.75 * 512
    assert max(limits[cut_at + 1 :]) == clean[-1]
    if host.limit.cuts == 1:  # only the first, undone: the send rate it set up is gone too
        assert host.rate is None
    assert sum(limits[-10:]) >= 0.75 * sum(clean[-10:])


def test_an_origin_whose_every_cut_is_undone_is_no_longer_gated() -> None:
    # The same 5 % of random 503s: once the noise is known and the one cut it made is
    # undone, so is the send rate that cut set up, and the origin runs as if never
    # throttled. The meter used to stay, at no interval, and the origin gated: every
    # start still took the engine's gated path, and the pipelined fast path stayed off.
    draw = random.Random(1).random
    host, _, _ = round_trips(lambda inflight: draw() < 0.05, 3.0)
    assert host.limit.cuts == 1
    assert host.noise > 0.0
    assert host.cubic is not None
    assert host.cubic.rate is None
    assert (host.meter, host.rate, host.gated) == (None, None, False)
    assert host.wait(3.0) == 0.0
    host.take(3.0)  # no meter: nothing to take
    # A later cut sets a rate, and gates the origin, again.
    host.sent = 10_000
    for i in range(40):
        host.throttled(4.0 + i * 1e-4, 0.05, None, again=True)
    assert host.gated
    assert host.rate is not None


def test_cuts_for_a_server_that_is_full_are_not_given_back() -> None:
    # The same noise, and a server that answers 503 to every request over 200 in
    # flight. The noise is found, and the cuts made when the server was full (most
    # answers 503) stay: few requests meet it full (an unthrottled run's 512 in
    # flight would be 60 % of them).
    draw = random.Random(1).random
    sent = full = 0

    def throttles(inflight: int) -> bool:
        nonlocal sent, full
        sent += 1
        full += inflight > 200
        return inflight > 200 or draw() < 0.05

    host, _, _ = round_trips(throttles, 6.0)
    assert 0.03 < host.noise < 0.08
    assert full < 0.12 * sent


def test_forgive_undoes_only_the_cuts_the_noise_explains() -> None:
    def limit_at_100() -> AdaptiveLimit:
        """Out of slow start at 100 (its second window gained nothing on the first)."""
        limit = AdaptiveLimit(initial=100, maximum=512)
        limit.sample_all(0.05, 100 * 0.05, 100)  # 2,000/s: 100 -> 400
        limit.sample_all(0.85, 400 * 0.05, 400)  # 500/s: back to 100, and creep up
        assert limit.limit == 100
        return limit

    def cut(limit: AdaptiveLimit, now: float, burst: int, after: int) -> None:
        """``burst`` 503s in a row (a cut, once the share reaches 15 %), then 60 answers
        of which the first ``after`` are 503s (the window after the cut), 10 ms."""
        for i in range(burst):
            limit.sample(now + i * 1e-4, 0.01, True)
        for i in range(60):
            limit.sample(now + 0.01 + i * 1e-4, 0.01, i < after)

    # A burst, then 3 of 60 throttled: a noise of 5 % explains it (its window was
    # throttled at under 20 %); the limit goes back to 100.
    limit = limit_at_100()
    cut(limit, 1.0, 6, 3)
    assert (limit.cuts, limit.limit) == (1, 75)
    assert limit.forgive(1.5, 0.05)  # back to before the first cut
    assert (limit.limit, limit.noise) == (100, 0.05)
    # A server that was full: 30 of the 60 after the cut throttled. The cut stands.
    limit = limit_at_100()
    cut(limit, 1.0, 6, 30)
    assert limit.limit == 75
    assert not limit.forgive(1.5, 0.05)
    assert limit.limit == 75
    # A noise burst, and then a cut for latency: the limit latency found stands too.
    limit = limit_at_100()
    cut(limit, 1.0, 6, 3)
    for i in range(18):  # answers now take 500 ms: the window queues, and gains nothing
        limit.sample(1.2 + i * 0.001, 0.5, False)
    assert limit.limit == 67
    assert not limit.forgive(1.5, 0.05)
    assert limit.limit == 67
    # Two noise cuts after one the noise does not explain: back to before the two.
    limit = limit_at_100()
    cut(limit, 1.0, 6, 30)
    full = limit.limit  # 75, or 76 if the window after the cut closed
    cut(limit, 2.0, 6, 3)
    cut(limit, 3.0, 6, 3)
    assert limit.cuts == 3
    assert limit.limit < 0.6 * full
    assert not limit.forgive(3.5, 0.05)
    assert limit.limit == full


def test_forgive_leaves_the_cuts_made_once_the_noise_was_known() -> None:
    # The noise (5 %) is known; a burst of 12 503s in a row (over 20 %) cuts the
    # limit from 200 to 150, and 200 calm answers follow. The cut was made above the
    # noise: a later verdict on the same noise must not undo it (it did: back to 200,
    # and the owner dropped the send rate that the first cut had set up).
    limit = AdaptiveLimit(initial=200, maximum=200)
    limit.sample_all(0.05, 200 * 0.05, 200)  # one window: at the cap, out of slow start
    assert limit.limit == 200
    assert not limit.forgive(0.1, 0.05)  # nothing to undo; the noise is known
    for i in range(12):
        limit.sample(1.0 + i * 1e-4, 0.01, True)
    assert (limit.cuts, limit.limit) == (1, 150)
    for i in range(200):
        limit.sample(1.01 + i * 1e-4, 0.01, False)
    cut_to = limit.limit
    assert cut_to < 200
    assert not limit.forgive(1.5, 0.05)
    assert limit.limit == cut_to
    # A cut made before the noise was known is still undone, up to the first one
    # made with it known: here the one before the noise, not the one after.
    limit = AdaptiveLimit(initial=200, maximum=200)
    limit.sample_all(0.05, 200 * 0.05, 200)
    for i in range(8):  # 15 %: a cut, the noise unknown
        limit.sample(1.0 + i * 1e-4, 0.01, True)
    for i in range(200):
        limit.sample(1.01 + i * 1e-4, 0.01, False)
    assert limit.forgive(1.5, 0.05)  # its only cut, undone: back to 200
    assert (limit.limit, limit.cuts) == (200, 1)
    for i in range(12):
        limit.sample(2.0 + i * 1e-4, 0.01, True)
    for i in range(200):
        limit.sample(2.01 + i * 1e-4, 0.01, False)
    assert limit.limit < 200
    assert not limit.forgive(2.5, 0.05)
    assert limit.limit < 200


def test_a_burst_during_the_noise_probe_is_not_taken_for_noise() -> None:
    # A found rate is set back to the accepted one while 1 answer in 12 is throttled
    # (8 %, retries too); during the half second that judges that cut, a burst of 20
    # 503s in a row cuts the concurrency (and the rate). Counted in, the burst made
    # the noise 12 % and gave the rate back, undoing the burst's cut; the probe now
    # says nothing, and the next one finds the 8 %.
    host = OriginLimit(("http", "a", 80), AdaptiveLimit(initial=100), adaptive_rate=True)
    assert host.cubic is not None
    host.cubic.throttle(0.0, accepted=1000.0)
    host.throttled(0.0, 0.01, None, again=True)
    now = 0.0
    while now < 2.0:  # every answer accepted, 1,000 a second: the rate climbs
        now += 0.001
        host.answered(now, 0.01, 1)
    climbed = host.cubic.at(now)
    assert climbed is not None
    i, burst_at = 0, now + 0.1
    while (host.cubic.at(now) or 0.0) > 0.6 * climbed:  # until it is set back
        now += 0.001
        i += 1
        if i % 12 == 0:
            host.throttled(now, 0.01, None, again=True)
        else:
            host.answered(now, 0.01, 1)
    burst_at = now + 0.06
    cuts = host.limit.cuts
    set_back = host.cubic.at(now)
    assert set_back is not None
    while now < burst_at + 0.45:  # the burst, then the same 8 % for the rest
        now += 0.001
        i += 1
        if i % 12 == 0 or burst_at <= now < burst_at + 0.02:
            host.throttled(now, 0.01, None, again=True)
        else:
            host.answered(now, 0.01, 1)
    assert host.limit.cuts > cuts
    assert host.noise == 0.0  # no verdict yet (12 % before)
    assert (host.cubic.at(now) or 0.0) < climbed
    while now < burst_at + 3.0:
        now += 0.001
        i += 1
        if i % 12 == 0:
            host.throttled(now, 0.01, None, again=True)
        else:
            host.answered(now, 0.01, 1)
    assert 0.07 < host.noise < 0.095


# -- once the noise is known, its later bursts no longer cut the concurrency -----------------


def test_a_burst_of_a_known_noise_does_not_cut_but_a_change_of_rate_does() -> None:
    limit = AdaptiveLimit(initial=512, maximum=512)
    limit.forgive(0.0, 0.05)  # the verdict: 5 % of answers are throttled whatever the load
    now = 0.0
    for i in range(2000):  # 5 % throttled, evenly
        now += 1e-4
        limit.sample(now, 0.05, i % 20 == 0)
    # A burst: 7 of the next 9 answers throttled. The 32-answer average reaches
    # 15 % above the noise, and this used to cut 512 to 384; over the last ~256
    # answers the share is still near the noise.
    for i in range(9):
        now += 0.06  # a round trip apart: a cut is allowed at each
        limit.sample(now, 0.05, i not in (3, 6))
    assert limit.share >= limit.threshold + limit.noise
    assert (limit.cuts, limit.limit) == (0, 512)
    # A real change: a third of all answers throttled from now on.
    for i in range(300):
        now += 0.06
        limit.sample(now, 0.05, i % 3 == 0)
    assert limit.cuts > 0
    assert limit.limit < 512


@pytest.mark.parametrize("seed", [2, 3, 4, 7])
def test_a_known_noise_leaves_the_concurrency_at_its_cap(seed: int) -> None:
    # 5 % of random 503s at 50 ms, 12 s: once the noise is known, bursts of it used to
    # cut the concurrency again and again (seed 4: 512 down to 295 in the last 10 s;
    # these seeds all ended between 300 and 458). Now it stays at the cap.
    draw = random.Random(seed).random
    host, limits, _ = round_trips(lambda inflight: draw() < 0.05, 12.0, seed=seed)
    assert 0.04 < host.noise < 0.06
    assert limits[-60:] == [512] * 60


def test_a_server_that_throttles_more_for_good_after_a_known_noise_is_still_cut() -> None:
    # 5 % of random 503s, then a third of all requests from the 40,000th on: the
    # concurrency is cut, as before the noise was known.
    draw = random.Random(1).random
    calls = 0

    def throttles(inflight: int) -> bool:
        nonlocal calls
        calls += 1
        return draw() < (0.05 if calls < 40_000 else 1 / 3)

    host, limits, _ = round_trips(throttles, 8.0)
    assert limits[35] == 512  # about 3.5 s: the noise known, the limit at its cap
    assert calls > 40_000
    assert host.limit.limit < 100


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_server_that_throttles_first_attempts_only_gets_its_noise_found(seed: int) -> None:
    # 4 % of rows' first attempts answered 503, their retries never (bench_throttle's
    # "sparse"). The rate is set back only while retried rows are throttled too, and
    # that is what started the judgement of a cut, so no noise was ever found: the
    # cuts of its bursts stood and more came (16 in 10 s, the limit between 100 and
    # 350). Now, with no retried row throttled, a cut of the concurrency is judged as
    # a rate cut is: the share did not fall, it is noise, and the cuts are undone.
    draw = random.Random(seed + 100).random
    host, limits, _ = round_trips(
        lambda inflight: draw() < 0.04, 6.0, latency=0.01, seed=seed, first_only=True
    )
    assert 0.03 < host.noise < 0.05
    assert isinstance(host.limit, AdaptiveLimit)
    assert host.limit.noise == host.noise
    assert host.rate is None  # every cut undone: the send rate the first set up too
    assert limits[-30:] == [512] * 30


def test_a_quota_hold_follows_the_latest_reset_a_shorter_one_too() -> None:
    # Spent for 50 s, then (an answer still in flight) for 20 s: held 20 s, as the
    # latest word says; the 50 s stood, and the origin waited 30 s for nothing. A
    # Retry-After hold is not shortened by a quota's reset.
    host = OriginLimit(("http", "a", 80), FixedLimit(8))
    host.quota(0.0, remaining=0.0, reset=50.0, longest=60.0)
    host.quota(0.5, remaining=0.0, reset=20.0, longest=60.0)
    assert host.wait(0.5) == pytest.approx(20.0)
    host.quota(1.0, remaining=0.0, reset=30.0, longest=60.0)  # and a longer one
    assert host.wait(1.0) == pytest.approx(30.0)
    held = OriginLimit(("http", "b", 80), FixedLimit(8))
    held.hold(40.0, "Retry-After")
    held.quota(0.0, remaining=0.0, reset=20.0, longest=60.0)
    assert held.wait(0.0) == pytest.approx(40.0)

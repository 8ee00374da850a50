"""Limits as strategies, driven by a fake clock: no sleeping."""

from __future__ import annotations

import itertools

import pytest

from drumfire._limits import AdaptiveLimit, FixedLimit, RateMeter, parse_rate


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
    # After a 5 s pause at most two starts go at once (one interval of slack), not 50.
    assert meter.wait(5.0) == 0
    meter.take(5.0)
    assert meter.wait(5.0) == 0
    meter.take(5.0)
    assert meter.wait(5.0) == pytest.approx(0.1)


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


@pytest.mark.parametrize("text", ["", "fast", "0", "-3/s", "10/week"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)

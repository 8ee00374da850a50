"""Durations, rate specifications and the open-model schedule (pure functions)."""

from __future__ import annotations

import math

import pytest

from drumfire import UsageError
from drumfire.bench import parse_duration, parse_rate_profile
from drumfire.bench._schedule import Schedule


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("3", 3.0),
        (" 2 m ", 120.0),
        (4, 4.0),
        (0.25, 0.25),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10x", "s", "-3s", "1m-2s", float("inf")])
def test_parse_duration_rejects(text: str | float) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_fixed_rate() -> None:
    profile = parse_rate_profile("200")
    assert profile.fixed == 200.0
    assert not profile.ramp_over_run
    schedule = Schedule(profile)
    assert [schedule.due(i) for i in range(4)] == pytest.approx([0.0, 0.005, 0.010, 0.015])
    assert schedule.due(2000) == pytest.approx(10.0)
    assert math.isinf(schedule.length)
    assert parse_rate_profile(50).fixed == 50.0


def test_due_times_do_not_drift() -> None:
    schedule = Schedule(parse_rate_profile("300"))
    assert schedule.due(300 * 3600) == pytest.approx(3600.0, abs=1e-9)


def test_ramp_over_the_run() -> None:
    profile = parse_rate_profile("100:1000")
    assert profile.ramp_over_run
    with pytest.raises(UsageError, match="needs a duration"):
        Schedule(profile)
    schedule = Schedule(profile, duration=10.0)
    # The integral of the rate: (100 + 1000) / 2 * 10 = 5500 requests in 10 s.
    assert schedule.count_before(10.0) == 5500
    assert math.isinf(schedule.due(5500))
    dues = [schedule.due(i) for i in range(5500)]
    assert dues == sorted(dues)
    assert dues[-1] < 10.0
    # The gaps shrink from 1/100 s to 1/1000 s.
    assert dues[1] - dues[0] == pytest.approx(0.01, rel=0.01)
    assert dues[-1] - dues[-2] == pytest.approx(0.001, rel=0.01)
    assert schedule.rate_at(5.0) == pytest.approx(550.0)


def test_ramp_down_and_from_zero() -> None:
    down = Schedule(parse_rate_profile("1000:100"), duration=2.0)
    assert down.count_before(2.0) == 1100
    up = Schedule(parse_rate_profile("0:200"), duration=2.0)
    assert up.count_before(2.0) == 200
    assert up.due(0) == pytest.approx(0.0, abs=1e-6)


def test_stages() -> None:
    profile = parse_rate_profile("100@2s, 0@1s, 50:150@2s")
    assert profile.length == pytest.approx(5.0)
    schedule = Schedule(profile)
    assert schedule.count_before(2.0) == 200
    assert schedule.count_before(3.0) == 200  # the pause sends nothing
    assert schedule.due(200) == pytest.approx(3.0)
    assert schedule.count_before(5.0) == 400
    assert math.isinf(schedule.due(400))
    assert schedule.rate_at(2.5) == 0.0
    assert schedule.rate_at(4.0) == pytest.approx(100.0)


def test_warmup_is_sent_at_the_first_rate() -> None:
    schedule = Schedule(parse_rate_profile("100:300"), warmup=1.0, duration=2.0)
    assert schedule.count_before(1.0) == 100  # warm-up at 100/s
    assert schedule.due(100) == pytest.approx(1.0)
    assert schedule.count_before(3.0) == 100 + 400


@pytest.mark.parametrize("spec", ["", "0", "-5", "fast", "100,200", "100@", "@10s", "0@5s", "nan"])
def test_parse_rate_rejects(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_rate_profile(spec)


def test_count_before_agrees_with_due() -> None:
    schedule = Schedule(parse_rate_profile("37@1.3s,120:7@2.1s"))
    for t in (0.0, 0.01, 0.5, 1.3, 1.31, 2.0, 3.4, 10.0):
        n = schedule.count_before(t)
        assert n == sum(1 for i in range(400) if schedule.due(i) < t)


def test_rates_with_units_in_ramps_and_stages() -> None:
    """A rate is written as ``drumfire run --rate`` takes one, zero included, and the profile
    is shown in requests/s (it showed '5/min:10/s/s')."""
    ramp = parse_rate_profile("6000/min:10/s")
    assert (ramp.segments[0].start, ramp.segments[0].end) == (100.0, 10.0)
    assert ramp.text == "100:10/s"
    assert parse_rate_profile("0/s:100").segments[0].start == 0.0
    stages = parse_rate_profile("0/min@1s,120/min@1s")
    assert [(s.start, s.duration) for s in stages.segments] == [(0.0, 1.0), (2.0, 1.0)]
    with pytest.raises(UsageError, match="'0/fortnight' is not a rate"):
        parse_rate_profile("0/fortnight:100")

"""The closed model's coordinated-omission correction is wrk's (``stats_correct``)."""

from __future__ import annotations

import math
import random

import pytest

from drumfire.bench._omission import corrected_percentiles, expected_interval_us


def _wrk(values: dict[int, int], expected: int) -> list[int]:
    """wrk's src/stats.c stats_correct, on a dense array of µs, then sorted out."""
    top = max(values)
    data = [0] * (top + 1)
    for v, c in values.items():
        data[v] += c
    for n in range(expected * 2, top + 1):
        count = data[n]
        m = n - expected
        while count and m > expected:
            data[m] += count
            m -= expected
    out: list[int] = []
    for v, c in enumerate(data):
        out += [v] * c
    return out


def _pct(sorted_values: list[int], pct: float) -> int:
    return sorted_values[max(1, math.ceil(pct / 100 * len(sorted_values))) - 1]


PCTS = (50.0, 90.0, 99.0, 99.9, 100.0)


def test_one_slow_answer_counts_the_requests_it_held_back() -> None:
    # 9 answers of 1 ms and one of 10 ms, one every 1 ms: the slow one held back 8.
    got = corrected_percentiles([(1000, 9), (10_000, 1)], 1000.0, [50, 90, 100])
    assert got == [1000, 9000, 10_000]  # 18 values: 1000 x9, 2000 .. 9000, 10000


def test_fast_answers_are_left_as_they_are() -> None:
    pairs = [(800, 50), (1200, 40), (1900, 10)]  # none reaches twice the interval
    assert corrected_percentiles(pairs, 1000.0, PCTS) == corrected_percentiles(pairs, 0.0, PCTS)
    assert corrected_percentiles(pairs, 1000.0, [50, 100]) == [800, 1900]


@pytest.mark.parametrize("seed", range(20))
def test_the_same_as_wrk(seed: int) -> None:
    rng = random.Random(seed)
    expected = rng.randint(3, 40)
    values: dict[int, int] = {}
    for _ in range(rng.randint(1, 60)):
        v = rng.choice([rng.randint(1, 3 * expected), rng.randint(1, 40 * expected)])
        values[v] = values.get(v, 0) + rng.randint(1, 5)
    reference = _wrk(values, expected)
    got = corrected_percentiles(values.items(), float(expected), PCTS)
    assert got == [_pct(reference, p) for p in PCTS]


def test_the_interval_is_wrks() -> None:
    # wrk: runtime_us / (complete / connections), with whole requests per connection
    assert expected_interval_us(2.0, 4001, 4) == pytest.approx(2e6 / 1000)
    assert expected_interval_us(2.0, 3, 4) == 0.0  # too few answers: no correction
    assert corrected_percentiles([], 10.0, [50]) == [0]

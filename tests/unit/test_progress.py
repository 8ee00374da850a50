"""The progress display of ``drumfire run``: the rate and ETA estimator, and the bar.

Everything here runs on an injected clock: the display is drawn ten times a
second of simulated time, never by sleeping.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
from rich.console import Console

from drumfire._progress import Progress, RateEstimator
from drumfire._result import Result, Stats

TICK = 0.1  # the display draws at most ten times a second


def slow_start(rows: int, rtt: float, first: int, top: int) -> Callable[[float], int]:
    """Rows done by time t against a server answering in ``rtt`` seconds.

    The concurrency doubles every round trip from ``first`` to ``top`` (slow
    start), and every answer of a round trip comes at once: the burstiest case.
    """

    def done(t: float) -> int:
        n, conc, k = 0, first, 1
        while k * rtt <= t + 1e-9 and n < rows:
            n = min(rows, n + conc)
            conc = min(conc * 2, top)
            k += 1
        return n

    return done


def finish_time(done: Callable[[float], int], rows: int) -> float:
    t = 0.0
    while done(t) < rows:
        t += TICK
    return t


def test_the_eta_says_estimating_during_the_ramp_and_is_right_once_shown() -> None:
    # Issue 15's slow server: 5,000 rows, 2 s per answer, concurrency doubling from 4
    # to 256 (128 rows/s). The mean since the start would promise about 40 minutes
    # after the first answers (4 rows in 2 s); the recent window during the ramp,
    # a few minutes. Neither is shown: "estimating" until the pace holds.
    rows, rtt, top = 5000, 2.0, 256
    done = slow_start(rows, rtt, 4, top)
    end = finish_time(done, rows)
    est = RateEstimator()
    shown: list[tuple[float, float]] = []
    for step in range(int(end / TICK)):
        t = step * TICK
        n = done(t)
        inflight = min(rows - n, top if t >= 7 * rtt else 4 * 2 ** int(t / rtt))
        est.observe(t, n, inflight)
        eta = est.eta(rows - n)
        if eta is not None:
            shown.append((t, eta))
    assert shown, "the ETA never became known"
    first_shown = shown[0][0]
    ramp_over = 7 * rtt  # 4, 8, ..., 256: the seventh round trip reaches the top
    assert first_shown > ramp_over
    for t, eta in shown:
        truth = end - t
        # Against answers that come in bursts a round trip apart, within a round trip
        # and a fifth: never the absurd early figure.
        assert abs(eta - truth) <= 0.2 * truth + rtt, (t, eta, truth)


def test_a_steady_fast_run_gets_its_eta_within_a_second_or_so() -> None:
    est = RateEstimator()
    rate = 20_000
    known_at = None
    for step in range(60):
        t = step * TICK
        est.observe(t, int(rate * t), 64)
        if est.eta(100_000) is not None and known_at is None:
            known_at = t
    assert known_at is not None
    assert known_at <= 1.5
    assert est.rate == pytest.approx(rate, rel=0.01)
    assert est.eta(100_000) == pytest.approx(5.0, rel=0.01)


def test_connecting_time_before_the_first_answer_does_not_count() -> None:
    # Nothing for 3 s (connecting, first round trip), then 100 rows/s.
    est = RateEstimator()
    for step in range(50):
        t = step * TICK
        est.observe(t, 0 if t < 3.0 else int(100 * (t - 3.0)), 10)
    assert est.rate == pytest.approx(100, rel=0.05)


def test_the_rate_is_over_a_recent_window_not_since_the_start() -> None:
    est = RateEstimator(window=5.0)
    t = 0.0
    for _ in range(100):  # 10 s at 10 rows/s
        t += TICK
        est.observe(t, round(10 * t), 1)
    base = round(10 * t)
    start = t
    for _ in range(100):  # then 10 s at 1,000 rows/s
        t += TICK
        est.observe(t, base + round(1000 * (t - start)), 1)
    assert est.rate == pytest.approx(1000, rel=0.01)  # the mean since start: about 505


def test_a_slow_server_gets_a_longer_window() -> None:
    # Little's law: 64 in flight at 32 rows/s is 2 s a row; four of them: 8 s.
    est = RateEstimator(window=5.0)
    for step in range(200):
        t = step * TICK
        est.observe(t, int(32 * t), 64)
    assert est.span() == pytest.approx(8.0, rel=0.05)
    assert RateEstimator(window=5.0).span() == 5.0
    est = RateEstimator(window=5.0, max_window=60.0)
    for step in range(2000):
        t = step * TICK
        est.observe(t, int(t), 500)  # 500 s a row: capped
    assert est.span() == 60.0


def test_once_known_a_stall_shows_no_eta_and_it_comes_back() -> None:
    est = RateEstimator()
    t = 0.0
    for _ in range(30):
        t += TICK
        est.observe(t, int(100 * t), 4)
    assert est.eta(1000) is not None
    done = int(100 * t)
    for _ in range(80):  # 8 s without a row done (a long Retry-After, say)
        t += TICK
        est.observe(t, done, 4)
    assert est.known
    assert est.rate == 0.0
    assert est.eta(1000) is None
    for _ in range(5):
        t += TICK
        done += 10
        est.observe(t, done, 4)
    assert est.eta(1000) is not None  # known stays known: no "estimating" again


def test_a_rate_that_never_settles_is_taken_after_three_windows() -> None:
    # A pace that doubles every second: the newer half of the window is always much
    # faster than the whole. After three windows (15 s) the ETA is shown anyway.
    est = RateEstimator(window=5.0)
    known_at = None
    for step in range(300):
        t = step * TICK
        est.observe(t, int(10 * 2**t), 0)
        if known_at is None and est.known:
            known_at = t
    assert known_at == pytest.approx(15.0, abs=0.2)


def test_few_rows_are_not_a_rate() -> None:
    est = RateEstimator(min_rows=20)
    for step in range(25):  # 2.5 s, 5 rows
        est.observe(step * TICK, step // 5, 1)
    assert not est.known


# -- the line and the bar -----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def add(stats: Stats, n: int, status: int = 200, error: str = "") -> None:
    for _ in range(n):
        stats.add(Result("x", status, 1.0, 1, error))


def draw(progress: Progress, stats: Stats, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True, record=True)
    console.print(progress.renderable(stats, progress.clock()))
    return console.export_text()


def test_the_bar_shows_every_figure_on_one_line() -> None:
    clock = Clock()
    stats = Stats(clock, total=10_000)
    stats.concurrency, stats.limit = 48, 64
    progress = Progress(Console(file=io.StringIO(), width=140), clock)
    for tick in range(1, 31):  # 3 s at 1,000 rows/s, a few failing
        clock.now = tick * TICK
        add(stats, 97)
        add(stats, 2, 503)
        add(stats, 1, None, "timeout")
        progress.render(stats, clock.now)  # as the live display does, every tick
    text = draw(progress, stats, 140)
    assert len(text.splitlines()) == 1, text
    assert "━" in text  # the bar
    assert "3,000/10,000 (30.0%)" in text
    assert "1,000 rows/s" in text
    assert "ETA 7s" in text
    assert "in flight 48/64" in text
    assert "failed 90: http 503 60, timeout 30" in text


def test_the_eta_is_estimating_at_the_start() -> None:
    clock = Clock()
    stats = Stats(clock, total=5000)
    progress = Progress(Console(file=io.StringIO(), width=140), clock)
    clock.now = 2.0
    add(stats, 4)  # the first round trip of a 2 s server
    line = progress.render(stats, clock.now).plain
    assert "ETA estimating" in line


def test_totals_count_the_rows_done_before_a_resume() -> None:
    clock = Clock()
    stats = Stats(clock, total=1000)
    progress = Progress(Console(file=io.StringIO(), width=140), clock)
    progress.resumed = 600
    line = progress.render(stats, 0.0).plain
    assert line.startswith("600/1,000 (60.0%)")
    for tick in range(1, 31):  # this run: 100 rows/s
        clock.now = tick * TICK
        add(stats, 10)
        line = progress.render(stats, clock.now).plain
    assert line.startswith("900/1,000 (90.0%)  100 rows/s  ETA 1s")
    text = draw(progress, stats, 140)
    filled = text.count("━")
    assert filled >= 0.85 * Progress.BAR_WIDTH  # 90 % of the bar, in cells and half cells


def test_a_narrow_terminal_gets_the_bar_above_the_line() -> None:
    clock = Clock()
    stats = Stats(clock, total=100)
    add(stats, 5, None, "connect")
    progress = Progress(Console(file=io.StringIO(), width=60), clock)
    text = draw(progress, stats, 60)
    lines = text.splitlines()
    assert "━" in lines[0]
    assert lines[1].startswith("5/100 (5.0%)")
    assert all(len(line) <= 60 for line in lines)


def test_without_a_total_the_bar_pulses() -> None:
    clock = Clock()
    stats = Stats(clock)
    add(stats, 7)
    progress = Progress(Console(file=io.StringIO(), width=120), clock)
    text = draw(progress, stats, 120)
    assert "7 rows" in text
    assert "ETA" not in text
    assert "━" in text


def test_the_estimator_costs_constant_memory() -> None:
    est = RateEstimator()
    for step in range(100_000):  # close to three hours of draws
        est.observe(step * TICK, step * 10, 8)
    assert est.kept <= math.ceil(est.span() / TICK) + 2


def test_rows_waiting_to_retry_are_said() -> None:
    # Every row left sleeping for its Retry-After: rows/s fell to 0 and the ETA said
    # stalled, with nothing on the line to say why.
    clock = Clock()
    stats = Stats(clock, total=100)
    progress = Progress(Console(file=io.StringIO(), width=200), clock)
    for tick in range(1, 31):
        clock.now = tick * TICK
        add(stats, 3)
        progress.render(stats, clock.now)
    for tick in range(31, 200):  # then 17 s of nothing: 10 rows sleep before a retry
        clock.now = tick * TICK
        stats.note_tick(clock.now, [], inflight=0, retrying=10)
        line = progress.render(stats, clock.now).plain
    assert "ETA stalled" in line
    assert "  10 rows wait to retry" in line
    stats.note_tick(clock.now, [], inflight=1, retrying=1)
    assert "  1 row waits to retry" in progress.render(stats, clock.now).plain

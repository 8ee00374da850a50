"""progress= of drumfire.bench.bench(): the choice of display, its throttling (injected
clock), and what it shows."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from bench_samples import sample_report
from rich.console import Console

from drumfire import UsageError
from drumfire.bench._display import (
    Lines,
    Terminal,
    Widget,
    close_bench_display,
    figures,
    fraction,
    guarded,
    open_bench_display,
    progress_choice,
)
from drumfire.bench._recorder import Recorder
from drumfire.bench._runner import Runner

SETTINGS: dict[str, Any] = {"url": "http://127.0.0.1:9/x", "concurrency": 4}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def runner(clock: Clock, *, requests: int | None = None, duration: float | None = 10.0) -> Runner:
    r = Runner(
        [(("http", "127.0.0.1", 9), b"GET / HTTP/1.1\r\n\r\n", False)],
        clock=clock,
        requests=requests,
        duration=duration,
        concurrency=4,
    )
    r.measure_start = 0.0
    r.end = duration if duration is not None else math.inf
    r.recorder = Recorder(0.0)
    return r


def test_progress_takes_true_false_or_none_and_quiet_is_the_older_false() -> None:
    for value in (True, False, None):
        assert progress_choice(value, None) is value
    assert progress_choice(None, True) is False
    assert progress_choice(False, True) is False
    assert progress_choice(None, False) is None  # the old quiet=False: shown where it can be
    assert progress_choice(True, False) is True
    with pytest.raises(UsageError, match="progress="):
        progress_choice("yes", None)
    with pytest.raises(UsageError, match="disagree"):
        progress_choice(True, True)


def test_outside_a_kernel_and_a_terminal() -> None:
    # pytest captures stderr: not a terminal; no IPython kernel runs here.
    assert open_bench_display(None, Clock(), SETTINGS) is None
    assert open_bench_display(False, Clock(), SETTINGS) is None
    assert isinstance(open_bench_display(True, Clock(), SETTINGS), Lines)


def test_the_fraction_follows_the_count_or_the_duration() -> None:
    clock = Clock()
    timed = runner(clock, duration=10.0)
    assert fraction(timed, 2.5) == pytest.approx(0.25)
    assert fraction(timed, 50.0) == 1.0
    counted = runner(clock, requests=200, duration=None)
    for _ in range(50):
        counted.recorder.response(0.01, 0.0, 200)
    assert fraction(counted, 1.0) == pytest.approx(0.25)
    timed.measure_start = 3.0  # warming up until then
    assert fraction(timed, 1.0) == 0.0


def test_the_widget_redraws_at_most_ten_times_a_second() -> None:
    pytest.importorskip("ipywidgets")
    clock = Clock()
    shown: list[Any] = []
    widget = Widget(clock, SETTINGS, shown.append)
    assert shown == [widget.box]
    draws: list[str] = []
    widget.label.observe(lambda change: draws.append(change["new"]), names="value")
    r = runner(clock, duration=2.0)
    for tick in range(400):  # two seconds of ticks, every 5 ms
        clock.now = tick * 0.005
        r.recorder.response(clock.now, clock.now - 0.001, 200)
        widget.update(r)
    assert 1 <= len(draws) <= 20
    assert 900 <= widget.bar.value <= 1000  # 2 s of 2 s, as of the last draw
    assert "drumfire bench" in draws[-1]
    assert "req/s" in draws[-1] or "requests" in draws[-1]


def test_the_terminal_view_redraws_at_most_ten_times_a_second_then_shows_the_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    terminal = Terminal(clock, SETTINGS, console)
    drawn: list[float] = []
    render = terminal.view.render
    monkeypatch.setattr(
        terminal.view, "render", lambda r, now: (drawn.append(now), render(r, now))[1]
    )
    r = runner(clock, duration=1.0)
    for tick in range(200):  # one second of ticks
        clock.now = tick * 0.005
        terminal.update(r)
    assert 1 <= len(drawn) <= 10
    report = sample_report()
    close_bench_display(terminal, report)
    assert "drumfire bench: 2,004 requests in 3.00 s" in out.getvalue()


def test_the_command_line_prints_its_own_summary_after_the_view() -> None:
    out = io.StringIO()
    terminal = Terminal(Clock(), SETTINGS, Console(file=out, force_terminal=True), final=False)
    terminal.close(sample_report())
    assert "2,004 requests" not in out.getvalue()


def test_a_display_that_fails_is_dropped_not_the_benchmark() -> None:
    calls: list[str] = []

    class Broken:
        def update(self, runner: Runner) -> None:
            calls.append("update")
            raise RuntimeError("the front end went away")

        def close(self, report: object) -> None:
            raise RuntimeError("still gone")

    tick = guarded(Broken())
    r = runner(Clock())
    for _ in range(3):
        tick(r)
    assert calls == ["update"]
    close_bench_display(Broken(), None)  # no exception


def test_the_figures_line() -> None:
    line = figures(sample_report())
    assert line.startswith("drumfire bench: 2,004 requests in 3.00 s — 668.0 requests/s")
    assert "p50 " in line
    assert "p99 " in line
    assert line.endswith("failed 4")

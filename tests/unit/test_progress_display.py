"""progress= of the Python API: the choice of display and its throttling (injected clock)."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
from rich.console import Console

from drumfire import UsageError
from drumfire._notebook import (
    INTERVAL,
    Terminal,
    Throttle,
    Widget,
    chain,
    in_kernel,
    open_display,
    progress_option,
)
from drumfire._result import Result, Stats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_one_call_through_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(clock, 0.1)
    passed = []
    for step in range(1000):  # one second of ticks, a millisecond apart
        clock.now = step / 1000
        if throttle.ready():
            passed.append(clock.now)
    assert passed[0] == 0.0
    assert len(passed) == 10
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(passed))


def test_the_interval_is_a_tenth_of_a_second() -> None:
    assert INTERVAL == 0.1


def stats_with(clock: Clock, done: int, total: int | None) -> Stats:
    stats = Stats(clock, total)
    for i in range(done):
        stats.add(Result(str(i), 200, 1.0, 1, None, {}, {}))
    return stats


def test_the_widget_redraws_at_most_ten_times_a_second() -> None:
    pytest.importorskip("ipywidgets")
    clock = Clock()
    shown: list[Any] = []
    widget = Widget(clock, shown.append)
    assert shown == [widget.box]
    draws: list[str] = []
    widget.label.observe(lambda change: draws.append(change["new"]), names="value")
    stats = stats_with(clock, 0, 2000)
    for tick in range(400):  # two seconds of engine ticks, every 5 ms
        clock.now = tick * 0.005
        stats.add(Result(str(tick), 200, 1.0, 1, None, {}, {}))
        widget.update(stats)
    assert 1 <= len(draws) <= 20
    assert widget.bar.max == 2000
    assert 0 < widget.bar.value <= stats.done  # as of the last draw
    widget.close(stats)
    assert widget.bar.value == 400
    assert widget.bar.bar_style == "success"
    assert "400 rows in" in widget.label.value
    assert "rows/s" in widget.label.value


def test_the_widget_fills_its_bar_when_the_total_is_unknown() -> None:
    pytest.importorskip("ipywidgets")
    clock = Clock()
    widget = Widget(clock, lambda _: None)
    stats = stats_with(clock, 5, None)
    widget.update(stats)
    assert widget.bar.value == widget.bar.max == 1
    assert "5 rows" in widget.label.value
    stats.stopped = True
    widget.close(stats)
    assert widget.bar.bar_style == "danger"


def test_the_terminal_line_redraws_at_most_ten_times_a_second() -> None:
    clock = Clock()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    terminal = Terminal(clock, console)
    drawn: list[float] = []
    render = terminal.progress.render
    terminal.progress.render = lambda stats, now: (drawn.append(now), render(stats, now))[1]  # type: ignore[method-assign]
    stats = stats_with(clock, 0, 100)
    for tick in range(200):  # one second of ticks
        clock.now = tick * 0.005
        terminal.update(stats)
    assert 1 <= len(drawn) <= 10
    stats.add(Result("x", 200, 1.0, 1, None, {}, {}))
    terminal.close(stats)
    assert "1 row in" in out.getvalue()


def test_progress_takes_true_false_or_none() -> None:
    for value in (True, False, None):
        kwargs: dict[str, Any] = {"progress": value}
        assert progress_option(kwargs) is value
        assert kwargs == {}
    assert progress_option({}) is None
    with pytest.raises(UsageError, match="progress="):
        progress_option({"progress": "yes"})


def test_outside_a_kernel_and_a_terminal_the_default_shows_nothing() -> None:
    # pytest captures stderr: not a terminal; no IPython kernel runs here.
    assert not in_kernel()
    assert open_display(None, Clock()) is None
    assert open_display(False, Clock()) is None
    display = open_display(True, Clock())
    assert isinstance(display, Terminal)
    display.close(stats_with(Clock(), 0, 0))


def test_a_display_that_fails_is_dropped_not_the_run() -> None:
    calls: list[str] = []

    class Broken:
        def update(self, stats: Stats) -> None:
            calls.append("display")
            raise RuntimeError("the front end went away")

        def close(self, stats: Stats) -> None:
            pass

    tick = chain(lambda stats: calls.append("output"), Broken())
    stats = stats_with(Clock(), 0, None)
    for _ in range(3):
        tick(stats)
    assert calls == ["output", "display", "output", "output"]


def test_the_widget_line_keeps_the_gaps_between_figures() -> None:
    pytest.importorskip("ipywidgets")
    clock = Clock()
    widget = Widget(clock, lambda _: None)
    stats = stats_with(clock, 5, 10)
    stats.limit, stats.concurrency = 8, 5
    widget.update(stats)
    # HTML folds runs of spaces: the double spaces of the terminal line are kept as such
    assert "5/10 (50.0%) &nbsp;0 rows/s &nbsp;ETA estimating &nbsp;in flight 5/8" in (
        widget.label.value
    )


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_is_drawn_on_a_terminal_that_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from drumfire._progress import draws_live

    for name in ("TTY_INTERACTIVE", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert draws_live(Console(file=_Tty()))
    assert not draws_live(Console(file=io.StringIO()))
    # A log file rich is told to colour (FORCE_COLOR, force_terminal): no redraws in it.
    assert not draws_live(Console(file=io.StringIO(), force_terminal=True))
    monkeypatch.setenv("TTY_INTERACTIVE", "0")  # rich's switch for animations: off...
    assert not draws_live(Console(file=_Tty()))
    monkeypatch.setenv("TTY_INTERACTIVE", "1")  # ...and on, wherever the output goes
    assert draws_live(Console(file=io.StringIO()))

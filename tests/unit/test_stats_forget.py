"""Stats.forget: the rows a Python caller was never given are taken back out of the figures."""

from __future__ import annotations

import time

from drumfire._result import Result, Stats


def test_forget_leaves_the_figures_of_the_rows_given() -> None:
    given = [Result("1", 200, 2.5, 1, ""), Result("2", 503, 1.0, 2, "")]
    left = [
        Result("3", 200, 90.0, 1, ""),
        Result("4", None, 30.0, 1, "cancelled"),
        Result("5", 404, 3.0, 1, ""),
    ]
    stats = Stats(time.monotonic, total=10)
    stats.add_all(given + left)
    stats.forget(left, 2.5)
    summary = stats.summary()
    assert summary["rows"] == 2
    assert summary["ok"] == 1
    assert summary["status"] == {"200": 1, "503": 1}
    assert summary["failures"] == {"http 503": 1}
    assert summary["requests"] == 6  # sent all the same
    assert summary["latency_ms"]["max"] == 2.5
    assert stats.latency.get_total_count() == 2
    assert summary["stopped"] is True
    assert summary["not_done"] == 8


def test_forgetting_nothing_changes_nothing() -> None:
    stats = Stats(time.monotonic, total=1)
    stats.add(Result("1", 200, 1.0, 1, ""))
    stats.forget([], 1.0)
    assert not stats.stopped
    assert stats.not_done == 0

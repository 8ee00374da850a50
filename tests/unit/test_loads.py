"""The -p N parent's view of its workers' engines, from their Load messages (no processes)."""

from __future__ import annotations

import pytest

from drumfire._loads import Told, is_news, load_now, note_loads
from drumfire._messages import Load
from drumfire._result import Stats

HELD = (("a.example", 30.0, "Retry-After"),)


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_worker_tells_what_changed_at_most_every_tenth_of_a_second() -> None:
    told = Load(2, 8, 0, 0, HELD)
    assert not is_news(Load(3, 8, 0, 0, HELD), told, 0.05)  # too soon
    assert is_news(Load(3, 8, 0, 0, HELD), told, 0.1)
    assert is_news(Load(2, 8, 700, 0, HELD), told, 0.1)  # rows parked for the held origin
    # The seconds left alone: not news, but sent again each second while held.
    assert not is_news(Load(2, 8, 0, 0, (("a.example", 29.5, "Retry-After"),)), told, 0.5)
    assert is_news(Load(2, 8, 0, 0, (("a.example", 29.0, "Retry-After"),)), told, 1.0)
    assert not is_news(Load(2, 8), Load(2, 8), 5.0)
    assert is_news(Load(2, 8), told, 0.1)  # the hold is over
    # Waiting (nothing in flight, rows waiting for the server) starts or ends: at once.
    assert is_news(Load(0, 8, 0, 0, HELD), told, 0.01)
    assert is_news(Load(0, 8, 0, 1), Load(1, 8), 0.01)
    assert is_news(Load(1, 8, 0, 1), Load(0, 8, 0, 1), 0.01)
    assert not is_news(Load(0, 8, 0, 2), Load(0, 8, 0, 1), 0.01)


def test_a_worker_s_load_is_its_engine_s_tick() -> None:
    stats = Stats(FakeClock())
    stats.note_tick(0.0, list(HELD), inflight=0, retrying=3)
    stats.concurrency, stats.limit = 0, 8
    assert load_now(stats, 512) == Load(0, 8, 512, 3, HELD)


def test_the_parent_adds_its_workers_loads_up_as_one_engine_s_tick() -> None:
    stats = Stats(FakeClock())
    stats.waited_s = 0.0
    # Worker 1 holds a.example for 30 s more, worker 2 for 20 s (told a second later)
    # and b.example's quota for 5 s.
    one = Told(Load(0, 4, 600, 0, HELD), 0.0)
    holds = (("a.example", 20.0, "Retry-After"), ("b.example", 5.0, "quota"))
    two = Told(Load(3, 4, 10, 2, holds), 1.0)
    note_loads(stats, [(one, 0), (two, 0)], 2.0)
    assert stats.held == [("a.example", 28.0, "Retry-After"), ("b.example", 4.0, "quota")]
    assert (stats.concurrency, stats.limit, stats.retrying) == (3, 8, 2)
    assert stats.waited_s == 0.0  # worker 2 has requests in flight
    idle = Told(Load(0, 4, 10, 0, (("b.example", 5.0, "quota"),)), 2.0)
    note_loads(stats, [(one, 0), (idle, 0)], 2.5)  # nothing in flight: the run waits
    note_loads(stats, [(one, 0), (idle, 0)], 7.5)  # b.example's quota reset meanwhile
    assert stats.held == [("a.example", 22.5, "Retry-After")]
    assert stats.waited_s == pytest.approx(5.5)
    assert stats.waited_for == {"Retry-After", "quota"}
    # A worker that told nothing yet: its rows dealt count as in flight (no wait counted).
    note_loads(stats, [(one, 0), (None, 5)], 8.0)
    assert stats.waited_s == pytest.approx(5.5)
    assert stats.concurrency == 5

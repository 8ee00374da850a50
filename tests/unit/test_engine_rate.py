"""The run's ``--rate`` and ``--per-host-rate`` on the virtual network of test_engine:
starts are spaced by the rate from the first one, and a stop ends the wait."""

from __future__ import annotations

import itertools

import pytest
from test_engine import ORIGIN, Clock, Server, new_loop, ok, run

from drumfire import Result
from drumfire._job import make_job
from drumfire._limits import RateMeter
from drumfire._sources import rows_source


@pytest.mark.parametrize("option", ["rate", "per_host_rate"])
def test_a_rate_of_one_a_minute_sends_one_request_a_minute(option: str) -> None:
    # The meter's slack was a whole interval: the first two rows went at once,
    # two requests in the first second of a run capped at one a minute (or an hour).
    results, _stats, server, _clock, _ = run(ok, 3, concurrency=4, **{option: "1/min"})
    assert [r.status for r in results] == [200, 200, 200]
    sent = sorted(server.written.values())  # each answered 1 ms after it was sent
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(60.0 - RateMeter.SLACK <= gap <= 60.0 for gap in gaps)


def test_a_stop_ends_the_wait_for_a_low_rate() -> None:
    # Ctrl-C ten seconds into a run at one request an hour: one row was sent and
    # answered; the run ends at once, no second request.
    results, stats, server, clock, _ = run(ok, 3, concurrency=4, rate="1/h", stop_at=10.0)
    assert server.requests == ["/0"]
    assert stats.stopped
    assert [(r.id, r.status, r.attempts) for r in results if r.status] == [("0", 200, 1)]
    assert all(r.error == "cancelled" for r in results if not r.status)
    assert clock.now < 20.0


def test_a_run_at_a_low_rate_ends_with_its_last_row() -> None:
    # The pump waited for the rate before it read the next row: after the last one
    # it waited one more interval to find the input's end (an hour at --rate 1/h).
    results, _stats, server, clock, _ = run(ok, 3, concurrency=4, rate="1/min")
    assert len(results) == 3
    assert max(server.written.values()) < 121.0
    assert clock.now < 125.0  # it used to end at 180 s


@pytest.mark.parametrize("option", ["rate", "per_host_rate"])
def test_a_stagger_delays_the_first_start_and_keeps_the_interval(option: str) -> None:
    # -p N: worker k starts k - 1 intervals of the whole rate late, so that the
    # workers' starts interleave (each worker's went at the same moment as the others';
    # under --per-host-rate they still did).
    clock = Clock()
    loop = new_loop(clock, Server(ok))
    job = make_job(ORIGIN + "/{n}", id="n", concurrency=4, **{option: 1.0})
    source = rows_source([{"n": str(i)} for i in range(3)])
    written: list[float] = []  # each row answered 1 ms after it was sent

    def write(result: Result) -> None:
        assert result.status == 200
        written.append(clock.now)

    engine = job.engine(source, write, clock=clock, cpu_clock=lambda: 0.0, stagger=0.25)
    try:
        loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert written[0] == pytest.approx(0.251)
    gaps = [b - a for a, b in itertools.pairwise(written)]
    assert len(gaps) == 2
    assert all(1.0 - RateMeter.SLACK <= gap <= 1.0 for gap in gaps)

"""A run the caller leaves early: its figures are the rows the caller was given.

The engine runs ahead of the caller (``run``'s queue holds up to 10,000 results, ``arun``'s
backlog as many), and the rows in flight when the caller leaves still end (``cancelled``).
Those rows never reached the caller, yet ``stats`` counted them as done: a caller that took
one row and broke out read ``rows: 40`` and ``not_done: 0``. As tqdm counts the iterations
consumed, the figures now count the rows handed over, and say the run was stopped.
"""

from __future__ import annotations

import asyncio
import time

import drumfire
from drumfire.demo import DemoServer

ECHO = "/echo?n={n}"
ROWS = [{"n": i} for i in range(40)]


def _until(ready: object) -> None:
    """Wait (bounded) for ``ready()`` to hold: the engine has run ahead of the caller."""
    for _ in range(2000):
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.005)
    raise AssertionError("the engine never ran ahead of the caller")


def _left_after_one(stats: drumfire.Stats) -> None:
    summary = stats.summary()
    assert summary["rows"] == 1
    assert summary["ok"] + summary["failed"] == 1
    assert sum(summary["status"].values()) + sum(
        n for reason, n in summary["failures"].items() if not reason.startswith("http ")
    ) == 1
    assert summary["stopped"] is True
    assert summary["not_done"] == len(ROWS) - 1
    assert summary["latency_ms"]["max"] > 0


def test_run_left_after_one_row_counts_one_row(demo_server: DemoServer) -> None:
    it = drumfire.run(ROWS, demo_server.base_url + ECHO, concurrency=4, progress=False)
    first = next(it)
    assert first.status == 200
    _until(lambda: it.stats.done == len(ROWS))  # every row answered, 39 waiting in the queue
    it.close()
    _left_after_one(it.stats)
    assert it.stats.max_ms() == round(first.elapsed_ms, 3)  # the row given, not another's


def test_run_left_by_break_in_a_with_block_counts_the_rows_taken(
    demo_server: DemoServer,
) -> None:
    # (A bare break leaves a Run held by a variable going: the caller may take the
    # rest later; the with block, or close(), is what leaves it.)
    with drumfire.run(ROWS, demo_server.base_url + ECHO, concurrency=4, progress=False) as it:
        for _ in it:
            _until(lambda: it.stats.done == len(ROWS))
            break
    _left_after_one(it.stats)


def test_run_closed_before_any_row_was_taken_counts_none() -> None:
    with DemoServer(latency=0.0) as server:
        it = drumfire.run(ROWS, server.base_url + ECHO, concurrency=4, progress=False)
        _until(lambda: it.stats.done == len(ROWS))
        it.close()
        assert it.stats.done == 0
        assert it.stats.summary()["status"] == {}
        assert it.stats.stopped
        assert it.stats.not_done == len(ROWS)


def test_arun_left_after_one_row_counts_one_row(demo_server: DemoServer) -> None:
    async def main() -> drumfire.ARun:
        run = drumfire.arun(ROWS, demo_server.base_url + ECHO, concurrency=4)
        async for _ in run:
            for _ in range(2000):  # bounded: the engine answers the rest meanwhile
                assert run.stats is not None
                if run.stats.done == len(ROWS):
                    break
                await asyncio.sleep(0.005)
            break
        await run.aclose()
        return run

    run = asyncio.run(main())
    assert run.stats is not None
    _left_after_one(run.stats)


def test_a_run_taken_to_its_end_is_not_stopped(demo_server: DemoServer) -> None:
    it = drumfire.run(ROWS, demo_server.base_url + ECHO, progress=False)
    assert len(list(it)) == len(ROWS)
    it.close()
    assert it.stats.done == len(ROWS)
    assert not it.stats.stopped
    assert it.stats.not_done == 0

"""The Python API returns the run's figures and takes progress= (issue 16), outside Jupyter."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

import drumfire
from drumfire.demo import DemoServer

ECHO = "/echo?n={n}"
ROWS = [{"n": i} for i in range(50)]


def test_run_returns_an_iterator_with_the_figures(demo_server: DemoServer) -> None:
    it = drumfire.run(ROWS, demo_server.base_url + ECHO)
    assert isinstance(it, drumfire.Run)
    assert iter(it) is it
    results = list(it)
    assert len(results) == 50
    summary = it.stats.summary()
    assert summary["rows"] == 50
    assert summary["ok"] == 50
    assert summary["status"] == {"200": 50}
    assert summary["rows_per_s"] > 0
    assert set(summary["latency_ms"]) == {"p50", "p90", "p99", "max"}


def test_run_all_returns_the_figures_when_asked(demo_server: DemoServer) -> None:
    rows = [{"code": 200 if i % 5 else 404} for i in range(50)]
    url = demo_server.base_url + "/status/{code}"
    records, stats = drumfire.run_all(rows, url, return_stats=True, retries=0)
    assert len(records) == 50
    assert isinstance(stats, drumfire.Stats)
    assert stats.done == 50
    assert stats.summary()["failures"] == {"http 404": 10}
    assert stats.summary()["status"] == {"200": 40, "404": 10}
    plain = drumfire.run_all(ROWS, demo_server.base_url + ECHO)
    assert isinstance(plain, list)


def test_a_pandas_frame_carries_the_figures_in_attrs(demo_server: DemoServer) -> None:
    pd = pytest.importorskip("pandas")
    frame = drumfire.run_all(pd.DataFrame(ROWS), demo_server.base_url + ECHO)
    assert frame.attrs["drumfire"]["rows"] == 50
    assert frame.attrs["drumfire"]["ok"] == 50


def test_a_polars_frame_comes_back_with_its_figures(demo_server: DemoServer) -> None:
    pl = pytest.importorskip("polars")
    frame, stats = drumfire.run_all(
        pl.DataFrame(ROWS), demo_server.base_url + ECHO, return_stats=True
    )
    assert isinstance(frame, pl.DataFrame)
    assert frame.height == 50
    assert stats.ok == 50


def test_arun_returns_an_async_iterator_with_the_figures(demo_server: DemoServer) -> None:
    async def main() -> tuple[int, drumfire.ARun]:
        run = drumfire.arun(ROWS, demo_server.base_url + ECHO)
        got = [r async for r in run]
        return len(got), run

    count, run = asyncio.run(main())
    assert count == 50
    assert run.stats is not None
    assert run.stats.done == 50


def test_arun_stopped_early_keeps_the_figures_so_far(demo_server: DemoServer) -> None:
    async def main() -> drumfire.ARun:
        run = drumfire.arun(ROWS, demo_server.base_url + ECHO, concurrency=1)
        async for _ in run:
            break
        await run.aclose()
        return run

    run = asyncio.run(main())
    assert run.stats is not None
    assert 1 <= run.stats.done <= 50


def test_arun_in_async_with_stops_when_the_block_is_left(demo_server: DemoServer) -> None:
    class Done(Exception):
        pass

    async def main() -> drumfire.ARun:
        run = drumfire.arun(ROWS * 20, demo_server.base_url + ECHO, concurrency=1)
        with contextlib.suppress(Done):
            async with run:
                async for _ in run:
                    raise Done
        assert [r async for r in run] == []  # closed: nothing more comes
        return run

    run = asyncio.run(main())
    assert run.stats is not None
    assert 1 <= run.stats.done < 1000


def test_progress_true_outside_a_terminal_prints_the_figures_at_the_end(
    demo_server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    results = drumfire.run_all(ROWS, demo_server.base_url + ECHO, progress=True)
    assert len(results) == 50
    err = capsys.readouterr().err
    assert "50 rows in" in err
    assert "rows/s" in err
    assert "ok 50" in err


@pytest.mark.parametrize("progress", [None, False])
def test_no_progress_when_not_interactive_or_turned_off(
    demo_server: DemoServer, capsys: pytest.CaptureFixture[str], progress: bool | None
) -> None:
    results = list(drumfire.run(ROWS, demo_server.base_url + ECHO, progress=progress))
    assert len(results) == 50
    assert capsys.readouterr().err == ""


def test_progress_true_on_arun(demo_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> int:
        return len(
            [r async for r in drumfire.arun(ROWS, demo_server.base_url + ECHO, progress=True)]
        )

    assert asyncio.run(main()) == 50
    assert "50 rows in" in capsys.readouterr().err


def test_a_bad_progress_value_is_a_usage_error(demo_server: DemoServer) -> None:
    with pytest.raises(drumfire.UsageError, match="progress="):
        drumfire.run(ROWS, demo_server.base_url + ECHO, progress="yes")


def test_progress_and_output_share_the_engine_tick(
    demo_server: DemoServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    it = drumfire.run(ROWS, demo_server.base_url + ECHO, output=out, progress=True)
    assert len(list(it)) == 50
    assert len(out.read_text().splitlines()) == 50
    assert it.stats.done == 50
    assert "50 rows in" in capsys.readouterr().err


def test_close_before_iterating_stops_the_run() -> None:
    """``close()`` on a ``Run`` not iterated yet closed a generator that had not started,
    which runs no cleanup: the engine went on sending every row."""
    import threading

    with DemoServer(latency=0.05) as server:
        it = drumfire.run(ROWS * 20, server.base_url + ECHO, concurrency=2, progress=False)
        it.close()
        assert not [t for t in threading.enumerate() if t.name == "drumfire-engine"]
        assert it.stats.stopped
        assert list(it) == []


def test_a_run_that_ends_paused_hands_over_every_result(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine pauses while results wait for a slow consumer; a run that ended so (its
    last rows in flight at the pause) closed its loop, and asking it to resume raised
    ``RuntimeError: Event loop is closed`` out of the iteration, the rest of the results lost."""
    import threading

    from drumfire import _api

    monkeypatch.setattr(_api, "_BACKLOG_HIGH", len(ROWS))  # paused by the last result
    monkeypatch.setattr(_api, "_BACKLOG_LOW", 10)
    it = drumfire.run(ROWS, demo_server.base_url + ECHO, progress=False)
    for thread in threading.enumerate():
        if thread.name == "drumfire-engine":
            thread.join()  # the run is over before the consumer takes a result
    assert len(list(it)) == len(ROWS)
    assert it.stats.done == len(ROWS)


def test_a_with_block_stops_the_run_whatever_leaves_it() -> None:
    """An exception in the loop body left a ``Run`` held by a variable going in the
    background (an unclosed generator); ``with`` closes it, as ``with open()`` does."""
    import threading

    class Done(Exception):
        pass

    with DemoServer(latency=0.05) as server:
        it = drumfire.run(ROWS * 20, server.base_url + ECHO, concurrency=2, progress=False)
        with pytest.raises(Done), it:  # noqa: PT012 - the with block is what is tested
            for _ in it:
                raise Done
        assert not [t for t in threading.enumerate() if t.name == "drumfire-engine"]
        assert it.stats.stopped
        assert list(it) == []


def test_the_annotations_name_what_run_and_arun_return() -> None:
    """A type checker sees ``stats`` and ``close()`` on what ``run`` returns: its
    annotation said ``Iterator[Result]``, so ``it.stats`` failed mypy on user code."""
    import typing

    assert typing.get_type_hints(drumfire.run)["return"] is drumfire.Run
    assert typing.get_type_hints(drumfire.arun)["return"] is drumfire.ARun


@pytest.mark.parametrize("count", [1, 2, 40])
def test_the_latency_max_is_the_longest_row_given(demo_server: DemoServer, count: int) -> None:
    # The max (and the percentiles under it) against the rows' own elapsed_ms: it was
    # the top of the histogram's bucket, up to 0.1 % more than any row took.
    results, stats = drumfire.run_all(ROWS[:count], demo_server.base_url + ECHO, return_stats=True)
    took = [r["elapsed_ms"] for r in results]
    lat = stats.summary()["latency_ms"]
    assert lat["max"] == round(max(took), 3)  # to the µs, as the output writes elapsed_ms
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    if count == 1:
        assert lat["p50"] == lat["max"]


def test_arun_stats_are_live_while_it_runs(demo_server: DemoServer) -> None:
    # ARun.stats said 0 rows done after 30 rows were yielded (the engine's placeholder,
    # replaced when its run started), and the total unknown, until the iteration ended.
    async def main() -> list[tuple[int, int, int | None]]:
        run = drumfire.arun(ROWS, demo_server.base_url + ECHO, concurrency=4)
        seen = []
        async for _ in run:
            assert run.stats is not None
            seen.append((len(seen) + 1, run.stats.done, run.stats.total))
        return seen

    seen = asyncio.run(main())
    assert len(seen) == len(ROWS)
    assert all(done >= yielded for yielded, done, _ in seen)  # done before it is yielded
    assert {total for _, _, total in seen} == {len(ROWS)}

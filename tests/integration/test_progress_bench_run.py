"""progress= of drumfire.bench.bench() against the demo server, off a terminal and outside
a kernel (the kernel: test_jupyter_kernel.py; the displays themselves:
tests/unit/test_progress_bench.py)."""

from __future__ import annotations

import asyncio

import pytest

from drumfire import UsageError
from drumfire.bench import abench, bench
from drumfire.demo import DemoServer


def test_progress_true_prints_the_figures_and_the_default_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with DemoServer() as server:
        url = server.url("/json")
        report = bench(url, requests=50, concurrency=2)  # not interactive: nothing
        assert report.requests == 50
        out, err = capfd.readouterr()
        assert (out, err) == ("", "")
        bench(url, requests=50, concurrency=2, progress=True)
        out, err = capfd.readouterr()
        assert out == ""
        assert err.startswith("drumfire bench: 50 requests in ")
        assert "requests/s" in err
        assert len(err.splitlines()) == 1
        asyncio.run(abench(url, requests=50, concurrency=2, progress=True))
        assert "drumfire bench: 50 requests in " in capfd.readouterr().err
        bench(url, requests=50, concurrency=2, quiet=True)
        assert capfd.readouterr() == ("", "")


def test_progress_takes_a_bool_and_does_not_contradict_quiet() -> None:
    with pytest.raises(UsageError, match="progress="):
        bench("http://127.0.0.1:9/", requests=1, progress="yes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="disagree"):
        bench("http://127.0.0.1:9/", requests=1, progress=True, quiet=True)

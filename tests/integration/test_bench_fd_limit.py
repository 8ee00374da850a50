"""bench raises the soft open-files limit to fit ``-c`` as ``drumfire run`` does, and says
so in the report when the hard limit does not allow it. It did neither: past the soft limit
(1024 on many systems) each connection failed with EMFILE, counted as the server's
``connect`` errors."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from drumfire.demo import DemoServer


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def _limit(soft: int, hard: int | None = None) -> Callable[[], None]:
    def apply() -> None:
        _, now = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, now if hard is None else hard))

    return apply


def _bench(demo: DemoServer, limit: Callable[[], None], out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire", "bench", demo.url("/json"), "-c", "200", "-n",
         "400", "--quiet", "--json", str(out)],
        capture_output=True, timeout=120, check=False, preexec_fn=limit,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    return report


def test_the_soft_limit_is_raised(demo: DemoServer, tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 300:
        pytest.skip("the hard open-files limit is below 300")
    report = _bench(demo, _limit(64), tmp_path / "r.json")
    assert report["errors"] == {}
    assert not any("open files" in w for w in report["warnings"])


def test_a_hard_limit_too_low_is_said(demo: DemoServer, tmp_path: Path) -> None:
    report = _bench(demo, _limit(64, 64), tmp_path / "r.json")
    warnings = report["warnings"]
    assert any("-c 200 needs about 264 open files but the limit is 64" in w for w in warnings)

"""A closed standard descriptor (``<&-``, ``>&-``, ``2>&-``: cron jobs, daemons, scripts).

Its number went to the next socket, and uvloop aborts the process when it closes a
descriptor under 3 (``uv__close: Assertion `fd > STDERR_FILENO' failed``, a core dump,
exit 134): ``drumfire bench URL <&-`` did. ``run -`` with standard input closed was a
traceback (``sys.stdin`` is None). The console script now holds the closed numbers with
``/dev/null``, and ``-`` as INPUT says in one line that standard input is closed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drumfire.demo import DemoServer


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def _drumfire(args: list[str], redirect: str) -> subprocess.CompletedProcess[str]:
    """``python -m drumfire ARGS`` from a shell that applies ``redirect`` (``<&-``)."""
    script = f'"$0" -m drumfire "$@" {redirect}'
    return subprocess.run(
        ["sh", "-c", script, sys.executable, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("redirect", ["<&-", ">&-", "<&- >&-"])
def test_bench_with_a_standard_descriptor_closed_does_not_abort(
    redirect: str, demo: DemoServer
) -> None:
    proc = _drumfire(["bench", f"{demo.base_url}/json", "-n", "20", "-c", "4", "--quiet"], redirect)
    assert proc.returncode == 0, proc.stderr
    assert "Assertion" not in proc.stderr
    if ">&-" not in redirect:
        assert "requests   20" in proc.stdout


def test_run_with_stdin_closed_reads_its_file(demo: DemoServer, tmp_path: Path) -> None:
    rows = tmp_path / "in.txt"
    rows.write_text("".join(f"{demo.base_url}/json\n" for _ in range(20)))
    proc = _drumfire(["run", str(rows), "-q", "-c", "4"], "<&-")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 21


@pytest.mark.parametrize("command", ["run", "bench"])
def test_input_dash_with_stdin_closed_is_one_line(command: str) -> None:
    args = ["run", "-", "-q"] if command == "run" else ["bench", "-i", "-", "-n", "1", "--quiet"]
    proc = _drumfire(args, "<&-")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith("error: INPUT '-' is standard input, which is closed: give a file")

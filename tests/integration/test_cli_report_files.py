"""``bench`` and ``compare`` report files (``--json``, ``--html``): a path that cannot be
written is one line, before the run when it can be known then (a directory, a missing
directory), and one line with exit status 1 when the write fails after the run (a full
disk: ``/dev/full``), never a traceback that loses the figures. The summary itself, on
standard output, the same: a closed pipe or a full disk is one line, exit 1, and the
report files are still written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drumfire.bench.cli import bench_command
from drumfire.compare.cli import compare_command
from drumfire.demo import DemoServer


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _input(tmp_path: Path, demo: DemoServer) -> Path:
    rows = tmp_path / "in.csv"
    rows.write_text(f"id,url\n1,{demo.base_url}/json\n2,{demo.base_url}/json\n")
    return rows


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_bench_report_path_that_is_a_directory_is_refused_before_the_run(
    option: str, demo: DemoServer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        bench_command, [f"{demo.base_url}/json", "-n", "3", "--quiet", option, str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    says = f"drumfire bench: error: {option} {str(tmp_path)!r} is a directory"
    assert _lines(result.output) == [says]
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_compare_report_path_is_checked_before_the_run(
    option: str, demo: DemoServer, tmp_path: Path
) -> None:
    rows = _input(tmp_path, demo)
    missing = tmp_path / "nope" / "report.out"
    for path, says in ((tmp_path, "is a directory"), (missing, "No such file or directory")):
        result = CliRunner().invoke(
            compare_command, [str(rows), "-s", "drumfire", "-q", option, str(path)]
        )
        assert result.exit_code == 2, result.output
        lines = _lines(result.output)
        assert len(lines) == 1, result.output
        assert lines[0].startswith("drumfire: error: ")
        assert option in lines[0]
        assert says in lines[0]
    assert not missing.parent.exists()


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@needs_dev_full
def test_bench_report_that_cannot_be_written_after_the_run_is_one_line_exit_1(
    demo: DemoServer, tmp_path: Path
) -> None:
    html = tmp_path / "r.html"
    result = CliRunner().invoke(
        bench_command,
        [f"{demo.base_url}/json", "-n", "3", "--quiet", "--json", "/dev/full", "--html", str(html)],
    )
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, OSError)
    assert "requests   3" in result.output  # the figures were printed
    errors = [line for line in _lines(result.output) if "error" in line]
    full = "cannot write --json '/dev/full': No space left on device"
    assert errors == [f"drumfire bench: error: {full}"]
    assert html.read_text(encoding="utf-8").startswith("<!")  # the other report is written


@needs_dev_full
def test_compare_report_that_cannot_be_written_after_the_run_is_one_line_exit_1(
    demo: DemoServer, tmp_path: Path
) -> None:
    rows = _input(tmp_path, demo)
    result = CliRunner().invoke(
        compare_command, [str(rows), "-s", "drumfire", "-q", "--html", "/dev/full"]
    )
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, OSError)
    errors = [line for line in _lines(result.output) if "error:" in line]
    assert errors == ["drumfire: error: cannot write --html '/dev/full': No space left on device"]


# -- the summary on standard output: a closed pipe, a full disk -----------------------


def _closed_pipe(args: list[str]) -> tuple[int, str]:
    """Run ``drumfire ARGS`` with standard output a pipe whose reader has gone."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "drumfire", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # before anything is written: the write meets EPIPE
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("command", ["bench", "compare"])
def test_the_summary_to_a_closed_pipe_is_one_line_and_the_report_is_written(
    command: str, demo: DemoServer, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    if command == "bench":
        args = ["bench", f"{demo.base_url}/json", "-n", "3", "--quiet", "--json", str(report)]
    else:
        rows = _input(tmp_path, demo)
        args = ["compare", str(rows), "-s", "drumfire", "-q", "--json", str(report)]
    code, err = _closed_pipe(args)
    assert code == 1, err
    prefix = "drumfire bench" if command == "bench" else "drumfire"
    assert err.splitlines() == [f"{prefix}: error: cannot write to standard output: Broken pipe"]
    assert report.read_bytes().startswith(b"{")


@needs_dev_full
@pytest.mark.parametrize("command", ["bench", "compare"])
def test_the_summary_to_a_full_disk_is_one_line(
    command: str, demo: DemoServer, tmp_path: Path
) -> None:
    if command == "bench":
        args = ["bench", f"{demo.base_url}/json", "-n", "3", "--quiet"]
    else:
        args = ["compare", str(_input(tmp_path, demo)), "-s", "drumfire", "-q"]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire", *args],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith("error: cannot write to standard output: No space left on device")

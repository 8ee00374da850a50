"""``bench`` and ``compare`` report files (``--json``, ``--html``): a path that cannot be
written is one line, before the run when it can be known then (a directory, a missing
directory), and one line with exit status 1 when the write fails after the run (a full
disk: ``/dev/full``), never a traceback that loses the figures."""

from __future__ import annotations

import os
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

"""Failures that speak, and a dead target that stops the run early (issue 14)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from servers import refused_port


def write_rows(path: Path, n: int) -> Path:
    path.write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(n)))
    return path


def drumfire_run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_dead_target_stops_the_run_early(tmp_path: Path, processes: str) -> None:
    rows = write_rows(tmp_path / "in.csv", 5000)
    out, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    with refused_port() as port:
        done = drumfire_run(rows, "--url", f"http://127.0.0.1:{port}/{{x}}", "-o", out,
                            "-q", "-p", processes, "--summary-json", summary)  # fmt: skip
    assert done.returncode == 1, done.stderr
    # One line, naming the target and the reason, and how to go on.
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "target unreachable" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Connection refused" in lines[0]
    assert "--keep-going" in lines[0]
    # Not 5,000 rows × 4 attempts: the rows written were stopped, not failed,
    # so that --resume sends them once the target is up; the others are not there.
    figures = json.loads(summary.read_text())
    assert figures["requests"] < 500
    assert f"127.0.0.1:{port}" in figures["unreachable"]
    written = read_rows(out)
    assert len(written) < 500
    assert {r["error"] for r in written} <= {"cancelled"}


def test_keep_going_sends_every_row(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "in.csv", 120)
    out = tmp_path / "out.csv"
    with refused_port() as port:
        done = drumfire_run(rows, "--url", f"http://127.0.0.1:{port}/{{x}}", "-o", out,
                            "--retries", "0", "--keep-going")  # fmt: skip
    assert "unreachable" not in done.stderr
    written = read_rows(out)
    assert len(written) == 120
    assert {(r["error"], r["attempts"]) for r in written} == {("connect", "1")}


@pytest.mark.parametrize("processes", ["1", "2"])
def test_the_summary_names_each_reason_with_an_example(tmp_path: Path, processes: str) -> None:
    rows = write_rows(tmp_path / "in.csv", 3)
    out, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    with refused_port() as port:
        done = drumfire_run(rows, "--url", f"http://127.0.0.1:{port}/{{x}}", "-o", out, "-p",
                            processes, "--retries", "0", "--summary-json", summary)  # fmt: skip
    # The row keeps its short, stable reason ...
    assert {r["error"] for r in read_rows(out)} == {"connect"}
    # ... and the summary says what it was, where, and what to check.
    example = (
        f"connect ×3: [Errno 111] Connection refused to 127.0.0.1:{port} "
        "(is the server running and listening on that port?)"
    )
    assert example in done.stderr
    figures = json.loads(summary.read_text())
    assert figures["failure_examples"] == {"connect": example.split(": ", 1)[1]}

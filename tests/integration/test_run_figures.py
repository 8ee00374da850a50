"""What ``drumfire run``'s summary says about the run, against scripted servers on 127.0.0.1:
each figure checked against what happened (the rows written, the server's pauses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, reset, respond


@pytest.mark.parametrize("processes", [[], ["-p", "2"]])
def test_the_summary_says_the_time_waited_for_a_retry_after(
    tmp_path: Path, processes: list[str]
) -> None:
    # One row, answered 503 + Retry-After: 1 first, then 200 at once: the run takes a
    # second and its rows/s is the server's pause, not its speed. The summary said
    # "1 row in 1.00 s - 1 rows/s" and a latency under a millisecond, nothing else.
    # With -p 2 the parent adds up its workers' ticks (waited_s was null).
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if index == 0:
            return respond(503, {"error": "busy"}, headers=[("Retry-After", "1")])
        return respond(200, {"ok": True})

    src = tmp_path / "in.csv"
    src.write_text("id\n1\n")
    summary = tmp_path / "summary.json"
    with ScriptedServer(handler) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url",
             server.url("/x/{id}"), "-o", str(tmp_path / "out.csv"),
             "--summary-json", str(summary), *processes],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert len(server.requests) == 2
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(summary.read_text())
    assert (figures["rows"], figures["requests"]) == (1, 2)
    # The retry waited a second at least (Retry-After: 1), nothing in flight meanwhile:
    # counted tick by tick, so within a tick of it.
    assert figures["waited_s"] >= 0.8
    assert figures["waited_s"] <= figures["wall_s"] + 0.05  # waited_s is to a tenth
    assert (
        "waited {:,.1f} s with no request in flight, for retries' Retry-After or back-off: "
        "in the time and rows/s above".format(figures["waited_s"])
    ) in proc.stderr


def test_a_run_with_no_answer_says_no_latency(tmp_path: Path) -> None:
    # Every connection reset: the summary said "latency p50 4.9 ms", the failures'
    # times, which read as a fast server. It says no request was answered, as bench does.
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return reset()

    src = tmp_path / "in.csv"
    src.write_text("id\n" + "".join(f"{i}\n" for i in range(20)))
    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url",
             server.url("/x/{id}"), "-o", str(out), "--retries", "0"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = out.read_text().splitlines()[1:]
    assert len(rows) == 20
    assert all(",reset" in row for row in rows)
    [line] = [line for line in proc.stderr.splitlines() if "latency" in line]
    assert line.startswith("  latency none: no request was answered (the failures took p50 ")
    assert " p90 " not in line

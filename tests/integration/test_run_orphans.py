"""No orphans: the processes of a run end with their parent, whatever kills it (issue 14)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from procs import children_of

from drumfire.demo.server import DemoServer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting to be reaped, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def left_after(pids: list[int], seconds: float) -> list[int]:
    """Those of ``pids`` still running once ``seconds`` have passed (polled, bounded)."""
    deadline = time.monotonic() + seconds
    running = [p for p in pids if alive(p)]
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = [p for p in running if alive(p)]
    return running


def test_kill_9_of_the_parent_ends_every_worker(tmp_path: Path, timing_claims: bool) -> None:
    # -p 2 against a slow server, so the workers are mid-run with rows queued
    # when the parent is killed: they must not go on sending, nor wait forever.
    routes = write_sample_routes(tmp_path / "routes.csv", 20_000)
    out = tmp_path / "out.csv"
    workers: list[int] = []
    with DemoServer(latency=0.02) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", "run", str(routes), "--url",
             slow.base_url + ROUTE, "-p", "2", "-c", "8", "-o", str(out), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            # Both workers are up, and rows have come back from them (the
            # output is flushed every second).
            while time.monotonic() < deadline and proc.poll() is None:
                workers = children_of(proc.pid)
                if len(workers) == 2 and out.exists() and out.stat().st_size > 100:
                    break
                time.sleep(0.05)
            assert len(workers) == 2, "the two workers never appeared"
            assert out.stat().st_size > 100, "no row came back before the kill"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            # The 5 s of the promise is a timing claim (--timing); by default a
            # bounded wait for the event, as a loaded machine can be slow to show it.
            assert left_after(workers, 5.0 if timing_claims else 60.0) == [], (
                "workers outlived their parent"
            )
        finally:
            for pid in [*workers, proc.pid]:  # the failing case leaves none behind either
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=10)

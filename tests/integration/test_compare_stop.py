"""``drumfire compare`` stopped by Ctrl-C or SIGTERM: the strategy that was running is
stopped with its worker (no load left on the server, no temporary files), and the
strategies that ran to the end are still reported, exit 130 or 143, as `run` and `bench`
do. It used to print click's "Aborted!" (exit 1) and lose the table; SIGTERM left the
worker, in its own session, loading the server to the end of its strategy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drumfire.demo import DemoServer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false"


def _workers_under(folder: Path) -> list[int]:
    """Processes running a compare worker whose task is under ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "drumfire.compare.worker" in cmdline and str(folder) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_compare_reports_what_ran_and_leaves_no_worker(
    tmp_path: Path, signum: int, code: int
) -> None:
    rows = write_sample_routes(tmp_path / "routes.csv", 400)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    with DemoServer(latency=0.01) as server:
        args = [str(rows), "--url", server.base_url + ROUTE, "-s", "drumfire,serial"]
        args += ["--json", str(tmp_path / "r.json")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire", "compare", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            # A Ctrl-C reaches the command even when this test runs in a background job.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            # drumfire's 400 rows are done once serial (the second strategy) is sending:
            # its first requests take the server past 400 + 20 served.
            deadline = time.monotonic() + 60
            while server.requests_served < 420:
                assert time.monotonic() < deadline, "serial did not start"
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(signum)
            output, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == code, output
    assert "Aborted!" not in output
    assert "Traceback" not in output
    assert "drumfire " in output  # the table, with drumfire's row
    assert "serial: failed: stopped while it ran" in output
    assert _workers_under(scratch) == []
    assert list(scratch.iterdir()) == []  # the temporary folder is gone
    assert '"stopped": true' in (tmp_path / "r.json").read_text(encoding="utf-8")

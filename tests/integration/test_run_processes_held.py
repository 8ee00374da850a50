"""-p N with an origin the server holds: the other origins' rows go on.

Real ``drumfire run -p 2`` processes against two scripted servers on 127.0.0.1, rows
alternating between them: one answers every request ``503`` with a ``Retry-After``
longer than the test (the origin is held), the other ``200`` at once. The test waits
for the healthy server to have answered all its rows (an event, bounded), then stops
the run with Ctrl-C; it never waits for the hold.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from procs import finish, wait_until
from servers import Action, ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]
Headers = dict[str, str]


def test_a_held_origin_does_not_stop_the_other_origins_rows(tmp_path: Path) -> None:
    # Each worker is dealt rows while it holds fewer than 512 unfinished, past the rows
    # it has parked for a held origin. Those used to count among the 512: the healthy
    # host got 1,024 requests (two workers' 512, half of them held), then none until
    # the hold ended (-p 1 sent it all its rows at once).
    n = 1500  # rows per host
    lock = threading.Lock()
    served = [0]
    done = threading.Event()

    def healthy(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        with lock:
            served[0] += 1
            if served[0] == n:
                done.set()
        return respond(200, {"ok": True})

    def outage(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        return respond(503, {"busy": True}, [("Retry-After", "600")])

    source, out, summary = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "s.json"
    with ScriptedServer(outage) as held, ScriptedServer(healthy) as fine:
        with source.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "url"])
            for i in range(n):
                w.writerow([f"h{i}", held.url(f"/h{i}")])
                w.writerow([f"f{i}", fine.url(f"/f{i}")])
        proc = subprocess.Popen(
            [*CLI, "run", str(source), "--url", "{url}", "-p", "2", "-c", "4",
             "--max-retry-wait", "900", "-o", str(out), "--summary-json", str(summary)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until(done.is_set, proc)  # every healthy row sent while the other is held
        finally:
            proc.send_signal(signal.SIGINT)  # also when the wait failed: the run ends
            stderr = finish(proc)  # if it hung: no process is left behind
        held_requests = len(held.requests)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    with out.open(newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    ids = [r["id"] for r in written]
    assert len(ids) == len(set(ids))  # each row at most once
    assert json.loads(summary.read_text())["rows"] == len(written)
    # The healthy host's rows are all answered; the held host's were not retried
    # before the hold ends (a few probes: the requests in flight when it began).
    assert Counter((r["id"][0], r["status"]) for r in written if r["id"][0] == "f") == {
        ("f", "200"): n
    }
    assert all(r["status"] != "200" for r in written if r["id"][0] == "h")
    assert held_requests < 50

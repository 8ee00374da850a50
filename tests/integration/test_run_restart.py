"""A server restarted in the middle of a run: every row still gets its answer."""

from __future__ import annotations

import socket
import threading
import time

from drumfire import Retry, run
from drumfire.demo.server import DemoServer

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_restart_mid_run_loses_no_row() -> None:
    port = free_port()
    rows = [
        {"id": str(i), "lon1": "24.94", "lat1": "60.17", "lon2": "24.95", "lat2": f"60.1{i % 9}"}
        for i in range(3000)
    ]
    first = DemoServer(port=port, latency=0.002).start()
    restarted: list[DemoServer] = []
    done = threading.Event()

    def restart() -> None:
        # Mid-run (an event, not a timer): a tenth of the rows answered.
        deadline = time.monotonic() + 60
        while first.requests_served < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.close()  # in-flight requests are cut, new connects are refused
        time.sleep(0.3)  # the outage; the rows' 100 retries outlast it by seconds
        if not done.is_set():
            restarted.append(DemoServer(port=port, latency=0.002).start())

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        results = list(run(rows, f"http://127.0.0.1:{port}{ROUTE}", concurrency=8,
                           retry=Retry(retries=100, backoff=0.02, max_backoff=0.1)))
    finally:
        done.set()
        thread.join()
        first.close()
        for server in restarted:
            server.close()
    assert sorted(int(r.id) for r in results) == list(range(3000))
    assert all(r.error == "" and r.status in (200, 400) for r in results)
    assert restarted, "the run ended before the server came back: make it longer"
    assert sum(r.attempts > 1 for r in results) > 0  # some rows did meet the outage

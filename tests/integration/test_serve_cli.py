"""``drumfire serve``: it says where it listens, and a busy port is one line, exit 2."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request


def test_serve_prints_the_address_it_listens_on() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "drumfire.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        # The line comes once the server listens (bounded: a silent server fails).
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, line
        assert int(found.group(1)) > 0
        with urllib.request.urlopen(found.group(0) + "/status/200", timeout=60) as answer:
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err


def test_a_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0]

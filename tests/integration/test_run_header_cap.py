"""The response header block is capped (issue 14): an endless one cannot fill memory."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import threading
from pathlib import Path

from servers import ScriptedServer, respond

HUGE = 100 * 1024 * 1024


class EndlessHeaderServer:
    """Answers each connection with a header line that goes on for 100 MB, in 64 KiB sends.

    ``sent`` counts what the client took before it hung up (a send fails).
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.sent: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EndlessHeaderServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.listener.close()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            with conn:
                self.sent.append(self._serve(conn))

    def _serve(self, conn: socket.socket) -> int:
        conn.settimeout(60)  # bounded: a client that stops reading ends the test
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(65536)
            if not data:
                return 0
            head += data
        sent = 0
        chunk = b"a" * 65536
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
            while sent < HUGE and not self.stop.is_set():
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the client closed (reset) the connection
            pass
        return sent


# The peak memory of this process (VmHWM, kB), not ru_maxrss: that one keeps the
# peak of the process that forked it (pytest's, late in a long suite) across exec.
CLIENT = """
import re, sys
import drumfire
rows = [{"id": "1"}]
results = list(drumfire.run(rows, sys.argv[1], retries=0, timeout=60))
status = open("/proc/self/status").read()
print(results[0].error, re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1))
"""


def test_a_100_mb_header_ends_the_row_and_memory_stays_bounded() -> None:
    with EndlessHeaderServer() as server:
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, f"http://127.0.0.1:{server.port}/x/{{id}}"],
            capture_output=True, text=True, timeout=100, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    error, peak_kib = done.stdout.split()
    # The client hung up soon after the 64 KiB cap: the server could send
    # little more than what the two sockets' buffers hold, not 100 MB ...
    assert len(server.sent) == 1
    assert server.sent[0] < 32 * 1024 * 1024, server.sent
    # ... and the client never held the header: an interpreter with drumfire
    # loaded is about 40-60 MB, the header alone would be 100 MB more.
    assert int(peak_kib) < 100 * 1024, peak_kib
    assert error == "header_too_large"


def test_max_header_size_option(tmp_path: Path) -> None:
    # A 3 KB header block: over --max-header-size 2K, under the default 64K.
    big = [("X-Filler", "v" * 3000)]
    source = tmp_path / "in.txt"
    with ScriptedServer(lambda *_: respond(200, {"ok": True}, big)) as srv:
        source.write_text(srv.url("/a") + "\n")
        rows = {}
        for size in ("2K", "64K"):
            out = tmp_path / f"out-{size}.csv"
            done = subprocess.run(
                [sys.executable, "-m", "drumfire.cli", "run", str(source), "-o", str(out),
                 "-q", "--retries", "0", "--max-header-size", size],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            with out.open(newline="") as f:
                (row,) = csv.DictReader(f)
            rows[size] = (row["status"], row["error"])
    assert rows == {"2K": ("", "header_too_large"), "64K": ("200", "")}


def test_max_header_size_refuses_a_bad_value(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("http://127.0.0.1:9/\n")
    done = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(source), "--max-header-size", "lots"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--max-header-size" in done.stderr


def test_a_bad_size_is_one_line_naming_its_option(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("http://127.0.0.1:9/\n")
    for option, value, line in [
        ("--max-body", "lots", "drumfire: error: --max-body: 'lots' is not a size like 64M"),
        ("--max-header-size", "lots", "drumfire: error: --max-header-size: 'lots' is not a size"),
        ("--max-header-size", "10", "drumfire: error: --max-header-size '10': at least 1K"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(source), option, value],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1
        assert done.stderr.startswith(line), done.stderr

"""Ctrl-C or SIGTERM while bench opens its first connections stops it at once, exit
130/143 with a report of no request (stopped early). It went on waiting for the connect
timeout (10 s by default, here 120 s), then exited 1 with "cannot connect"."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a connect to it waits (SYN_SENT)."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()


def _connecting(pid: int, port: int) -> bool:
    """Whether process ``pid`` has a socket in SYN_SENT to 127.0.0.1:``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    remote = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[2] == remote and fields[3] == "02" and fields[9] in inodes:
                return True
    return False


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_connecting_is_at_once(signum: int, status: int, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with unanswered_port() as port:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire", "bench", f"http://127.0.0.1:{port}/", "-n", "5",
             "-c", "2", "--connect-timeout", "120", "--quiet", "--json", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            for _ in range(6000):  # until it connects (bounded: a dead child fails)
                assert proc.poll() is None, proc.communicate()
                if _connecting(proc.pid, port):
                    break
                time.sleep(0.01)
            else:
                pytest.fail("bench never started to connect")
            proc.send_signal(signum)
            output, _ = proc.communicate(timeout=60)  # not the 120 s connect timeout
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == status, output
    assert "requests   0 in" in output
    assert "(stopped early)" in output
    assert "cannot connect" not in output
    report = orjson.loads(out.read_bytes())
    assert report["stopped"] is True
    assert report["requests"] == 0

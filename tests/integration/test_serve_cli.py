"""``drumfire serve``: it says where it listens, and a busy port is one line, exit 2."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request

from drumfire.demo import DemoServer


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


def _drumfire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_port_out_of_range_is_refused_not_wrapped_around() -> None:
    """--port 99999 used to listen on 34463 (99999 - 65536), saying nothing."""
    done = _drumfire("serve", "--port", "99999")
    assert done.returncode == 2, done.stderr
    assert "99999 is not in the range 0<=x<=65535" in done.stderr
    assert "listening" not in done.stdout


def test_a_negative_or_endless_delay_is_one_line_not_a_traceback() -> None:
    for command, option, value in [
        ("serve", "--latency", "-1"),
        ("serve", "--jitter", "nan"),
        ("serve", "--latency", "inf"),
        ("demo", "--latency", "-0.5"),
    ]:
        done = _drumfire(command, "--port" if command == "serve" else "-n", "1", option, value)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines == [f"drumfire: error: {option}: give a number of seconds, 0 or more "
                         f"(not {float(value):g})"]  # fmt: skip


def test_demo_in_a_directory_it_cannot_make_is_one_line() -> None:
    done = _drumfire("demo", "-n", "1", "--dir", "/proc/drumfire-demo-cannot-be-here")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "drumfire: error: cannot write the sample input in "
        "'/proc/drumfire-demo-cannot-be-here': No such file or directory"
    ]


def test_help_names_every_endpoint_and_each_one_answers() -> None:
    """The help once left out /json, which the README lists."""
    shown = " ".join(_drumfire("serve", "--help").stdout.split())  # as wrapped, one line
    endpoints = {
        "/route/v1/driving/...": "/route/v1/driving/24.9,60.1;24.95,60.2",
        "/quote": "/quote",
        "/echo": "/echo?a=1",
        "/status/N": "/status/204",
        "/json": "/json",
    }
    with DemoServer() as server:
        for named, path in endpoints.items():
            assert named in shown, named
            with urllib.request.urlopen(server.base_url + path, timeout=60) as answer:
                assert answer.status in (200, 204), path

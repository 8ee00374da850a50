"""A private nginx on 127.0.0.1 serving a directory of files (issue 20's downloads)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def nginx_path() -> str | None:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    return found if Path(found).exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(work: Path, root: Path, port: int) -> str:
    # As root, the worker stays root: the files are in pytest's private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    temps = "\n".join(
        f"    {name}_temp_path {work / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
{temps}
    default_type application/octet-stream;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /__ready {{ return 200 'ready'; }}
    }}
}}
"""


@contextlib.contextmanager
def static_nginx(root: Path) -> Iterator[str]:
    """Serve ``root``; yield the base URL. Skips the test when nginx is not installed."""
    nginx = nginx_path()
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; scripts/test does)")
    with tempfile.TemporaryDirectory(prefix="drumfire-static-nginx-") as tmp:
        work = Path(tmp)
        for _attempt in range(5):  # the port may be taken between probe and bind
            port = _free_port()
            conf = work / "nginx.conf"
            conf.write_text(_config(work, root, port))
            proc = subprocess.Popen(
                [nginx, "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                for _ in range(400):  # up to about 20 s for a loaded machine
                    if proc.poll() is not None:
                        break
                    try:
                        with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/__ready", timeout=2
                        ) as answer:
                            if answer.read() == b"ready":
                                break
                    except OSError:
                        time.sleep(0.05)
                if proc.poll() is not None:
                    continue
                yield f"http://127.0.0.1:{port}"
                return
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
        log = work / "error.log"
        raise RuntimeError(f"nginx failed to start: {log.read_text() if log.exists() else ''}")

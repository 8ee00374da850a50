"""A private nginx on a free loopback port (own config, pid, logs, temp dirs in a
temporary directory, ``daemon off``, one worker) answering every path with one
fixed document.
"""

from __future__ import annotations

import contextlib
import dataclasses
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

from _inputs import LOOPBACK, OSRM_LIKE_BODY
from _measure import process_tree

__all__ = ["NginxServer", "free_port", "nginx_config", "nginx_server"]

# --------------------------------------------------------------------------- nginx


@dataclasses.dataclass
class NginxServer:
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def server_pids(self) -> list[int]:
        """Master and worker pids (for server CPU sampling)."""
        return process_tree(self.process.pid)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _nginx_user_line() -> str:
    if os.geteuid() != 0:
        return ""  # an unprivileged master cannot (and need not) switch user
    import grp
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
        return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"
    except KeyError:
        return "user root;"


def nginx_config(workdir: Path, port: int, body: bytes) -> str:
    text = body.decode()
    if any(c in text for c in "'\\$\n"):
        raise ValueError("the body must not contain quotes, backslashes, $ or newlines")
    temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""\
daemon off;
master_process on;
worker_processes 1;
{_nginx_user_line()}
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    types {{ }}
    default_type application/json;
    keepalive_requests 100000;
    keepalive_timeout 75s;

    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location / {{
            return 200 '{text}';
        }}
    }}
}}
"""


def _http_get(url: str, timeout_s: float = 2.0) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # loopback only
        return resp.status, resp.read(), resp.headers.get("Content-Type", "")


@contextlib.contextmanager
def nginx_server(
    body: bytes = OSRM_LIKE_BODY, *, startup_timeout_s: float = 10.0
) -> Iterator[NginxServer]:
    """A private nginx on a free 127.0.0.1 port answering every path with ``body``."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx not found: apt-get install -y nginx-light")
    with tempfile.TemporaryDirectory(prefix="drumfire-bench-nginx-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        last_error = ""
        for _attempt in range(5):  # the free port can be taken between probe and bind
            port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(nginx_config(workdir, port, body))
            log = (workdir / "stderr.log").open("wb")
            proc = subprocess.Popen(
                [nginx, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            server = NginxServer(port=port, workdir=workdir, process=proc)
            try:
                deadline = time.monotonic() + startup_timeout_s
                while True:
                    if proc.poll() is not None:
                        errlog = workdir / "error.log"
                        last_error = (workdir / "stderr.log").read_text() + (
                            errlog.read_text() if errlog.exists() else ""
                        )
                        break
                    try:
                        status, got, ctype = _http_get(
                            f"{server.base_url}/route/v1/driving/0,0;1,1"
                        )
                    except OSError:
                        if time.monotonic() > deadline:
                            raise RuntimeError("nginx did not start in time") from None
                        time.sleep(0.05)
                        continue
                    if status != 200 or got != body or "application/json" not in ctype:
                        raise RuntimeError(f"nginx answers {status} {ctype!r} {got[:80]!r}")
                    break
                if proc.poll() is not None:
                    continue
                yield server
                return
            finally:
                _stop_process(proc)
                log.close()
        raise RuntimeError(f"nginx failed to start:\n{last_error}")


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)  # nginx: fast shutdown
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)

"""Helpers shared by the drumfire benchmark scripts.

Everything here talks to 127.0.0.1 only, and every child process runs under a
time limit: a benchmark can never send unbounded traffic nor hang forever.

Contents:

* :func:`nginx_server` -- a private nginx (own config, pid, logs and temp dirs
  in a temporary directory, ``daemon off``, one worker) on a free loopback port
  that answers every path with one fixed OSRM-shaped JSON document.
* :func:`run_wrk` -- wrk ``-t1 -c8`` with a Lua script that rotates over a file
  of URL paths; its report is parsed into a :class:`WrkResult`.
* :func:`run_measured` -- run a command and measure the wall time, user+sys CPU
  and max RSS of that child process alone (``os.wait4`` rusage).
* CSV / path-list writers, the drumfire and aiohttp command lines, the round
  runner and the report table shared by ``bench_nginx.py`` and ``bench_osrm.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import importlib.metadata
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
SRC_DIR = REPO_ROOT / "src"

LOOPBACK = "127.0.0.1"
PAIR_COLUMNS = ("id", "lon1", "lat1", "lon2", "lat2")
OSRM_PATH_TEMPLATE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
ALL_TOOLS = ("wrk", "drumfire", "aiohttp")

# Hard ceiling for any single child process (a client run or wrk).
DEFAULT_RUN_TIMEOUT_S = 900.0

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the JSON document


def _osrm_like_document() -> bytes:
    """One fixed OSRM ``/route`` answer (``overview=false`` shape), about 560 bytes."""
    hint = "4tQ_gP___38AAAAAKwAAAA0AAAAAAAAAKwAAAA0AAAAAAAAAAQAAAEnLzABPIx4D"
    doc = {
        "code": "Ok",
        "routes": [
            {
                "legs": [
                    {
                        "steps": [],
                        "summary": "",
                        "weight": 1021.4,
                        "duration": 1021.4,
                        "distance": 13407.3,
                    }
                ],
                "weight_name": "routability",
                "weight": 1021.4,
                "duration": 1021.4,
                "distance": 13407.3,
            }
        ],
        "waypoints": [
            {
                "hint": hint + "3BIAAKQLAAA=",
                "distance": 4.132218,
                "name": "Karl-Liebknecht-Strasse",
                "location": [13.409431, 52.520008],
            },
            {
                "hint": hint + "AGBAAKQLAAA=",
                "distance": 11.504521,
                "name": "Unter den Linden",
                "location": [13.388798, 52.517033],
            },
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


OSRM_LIKE_BODY = _osrm_like_document()


# --------------------------------------------------------------------------- input files


def random_coordinate_rows(n: int, seed: int = 1) -> list[dict[str, str]]:
    """``n`` rows ``id,lon1,lat1,lon2,lat2`` with distinct random coordinates (Berlin box)."""
    rng = random.Random(seed)
    seen: set[tuple[str, str, str, str]] = set()
    rows: list[dict[str, str]] = []
    while len(rows) < n:
        key = (
            f"{rng.uniform(13.10, 13.70):.6f}",
            f"{rng.uniform(52.35, 52.65):.6f}",
            f"{rng.uniform(13.10, 13.70):.6f}",
            f"{rng.uniform(52.35, 52.65):.6f}",
        )
        if key in seen:
            continue
        seen.add(key)
        rows.append(dict(zip(PAIR_COLUMNS, (str(len(rows)), *key), strict=True)))
    return rows


def write_rows_csv(
    path: Path, rows: Iterable[Mapping[str, str]], columns: Sequence[str] = PAIR_COLUMNS
) -> int:
    """Write the input CSV (header + rows, only ``columns``); returns the row count."""
    count = 0
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
            count += 1
    return count


def rows_to_paths(
    rows: Iterable[Mapping[str, str]], template: str = OSRM_PATH_TEMPLATE, query: str = ""
) -> list[str]:
    """The URL paths (plus optional ``?query``) the rows expand to."""
    suffix = f"?{query}" if query else ""
    return [template.format_map(row) + suffix for row in rows]


def write_paths_file(path: Path, paths: Iterable[str]) -> int:
    """One URL path per line, as read by the wrk Lua script."""
    count = 0
    with path.open("w") as fh:
        for p in paths:
            if "\n" in p or not p.startswith("/"):
                raise ValueError(f"bad URL path: {p!r}")
            fh.write(p + "\n")
            count += 1
    return count


def read_output_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a client's output CSV."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


# --------------------------------------------------------------------------- process measurement


@dataclasses.dataclass
class RunResult:
    """Outcome and resource use of one child process."""

    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self) -> RunResult:
        if self.returncode != 0 or self.timed_out:
            what = "timed out" if self.timed_out else f"exited {self.returncode}"
            tail = (self.stderr or self.stdout)[-2000:]
            raise RuntimeError(f"{shlex.join(self.argv)} {what}:\n{tail}")
        return self


_GNU_TIME = "/usr/bin/time"


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
) -> RunResult:
    """Run ``argv`` to completion; wall time includes process start-up.

    CPU comes from ``os.wait4`` and so covers that child (and any grand-children
    it waited for), nothing else running on the machine.  Max RSS comes from GNU
    ``/usr/bin/time -f %M`` wrapped around the command: on Linux a child's
    ``ru_maxrss`` starts at its *parent's* RSS at fork time and survives
    ``execve``, so ``wait4`` would report this (large) harness process instead.
    The wrapper's own CPU (about a millisecond) is included in the CPU figure.
    The whole process group is killed after ``timeout_s``.
    """
    argv = [str(a) for a in argv]
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="drumfire-bench-rss-") as rss_file,
    ):
        wrapped = argv
        if os.access(_GNU_TIME, os.X_OK):
            wrapped = [_GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, _kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C, SIGTERM: never leave the child running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss
        if wrapped is not argv:
            lines = Path(rss_file.name).read_text().split()
            maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
        out.seek(0)
        err.seek(0)
        return RunResult(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_kib=maxrss,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out.is_set(),
        )


def proc_cpu_seconds(pids: Iterable[int]) -> float:
    """user+sys CPU seconds consumed so far by the given live processes (from /proc)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (``/proc/stat``; steal included)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    result, todo = [], [pid]
    while todo:
        p = todo.pop()
        result.append(p)
        todo.extend(children.get(p, []))
    return result


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


# --------------------------------------------------------------------------- wrk

WRK_LUA = """\
-- Rotate over the URL paths listed (one per line) in the file given after `--`.
local paths = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then error("no paths in " .. tostring(args[1])) end
end

request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
"""

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_METRIC_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unparsable wrk time {text!r}")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


@dataclasses.dataclass
class WrkResult:
    requests: int
    duration_s: float
    requests_per_s: float
    latency_avg_ms: float
    latency_stdev_ms: float
    latency_max_ms: float
    latency_percentiles_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    run: RunResult

    @property
    def cpu_us_per_request(self) -> float:
        return self.run.cpu_s / max(self.requests, 1) * 1e6


def parse_wrk_output(text: str, run: RunResult) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text, re.M)
    lat = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if not (rps and total and lat):
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    pct = {
        m.group(1): _ms(m.group(2))
        for m in re.finditer(r"^\s*(\d+(?:\.\d+)?)%\s+(\S+)\s*$", text, re.M)
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        requests=int(total.group(1)),
        duration_s=_ms(total.group(2) + total.group(3)) / 1e3,
        requests_per_s=float(rps.group(1)),
        latency_avg_ms=_ms(lat.group(1)),
        latency_stdev_ms=_ms(lat.group(2)),
        latency_max_ms=_ms(lat.group(3)),
        latency_percentiles_ms=pct,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=socket_errors,
        run=run,
    )


def run_wrk(
    base_url: str,
    paths_file: Path,
    *,
    duration_s: float = 10.0,
    threads: int = 1,
    connections: int = 8,
    workdir: Path,
) -> WrkResult:
    """``wrk -tT -cC -dNs --latency -s rotate.lua URL -- PATHS``, parsed."""
    if not base_url.startswith(f"http://{LOOPBACK}:"):
        raise ValueError("benchmarks only target 127.0.0.1")
    wrk = shutil.which("wrk")
    if not wrk:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    script = workdir / "rotate_paths.lua"
    if not script.exists():
        script.write_text(WRK_LUA)
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        base_url,
        "--",
        str(paths_file),
    ]
    run = run_measured(argv, timeout_s=duration_s + 60).check()
    return parse_wrk_output(run.stdout, run)


# --------------------------------------------------------------------------- client commands


def python_env(extra_pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(p) for p in extra_pythonpath]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def drumfire_command(override: str | None = None) -> list[str]:
    """How to start the drumfire CLI.

    Default: this checkout's ``src`` through the same entry point as the
    ``drumfire`` console script (``drumfire.cli:entry``), so the benchmark always
    measures the working tree, not some older installed copy.
    """
    if override:
        return shlex.split(override)
    return [sys.executable, "-c", "from drumfire.cli import entry; entry()"]


def drumfire_available(cmd: Sequence[str]) -> tuple[bool, str]:
    try:
        run = run_measured([*cmd, "run", "--help"], env=python_env([SRC_DIR]), timeout_s=60)
    except OSError as exc:
        return False, str(exc)
    return run.returncode == 0, (run.stderr or run.stdout).strip()[-500:]


def drumfire_argv(
    cmd: Sequence[str],
    input_csv: Path,
    url_template: str,
    extracts: Sequence[str],
    output_csv: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [*cmd, "run", str(input_csv), "--url", url_template]
    for e in extracts:
        argv += ["-e", e]
    return [*argv, "-o", str(output_csv), "--quiet", *extra]


def aiohttp_argv(
    input_csv: Path, url_template: str, field: str, output_csv: Path, concurrency: int = 8
) -> list[str]:
    return [
        sys.executable,
        str(BENCH_DIR / "aiohttp_client.py"),
        str(input_csv),
        "--url",
        url_template,
        "-c",
        str(concurrency),
        "--field",
        field,
        "-o",
        str(output_csv),
    ]


# --------------------------------------------------------------------------- machine facts


def _first_line(argv: Sequence[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return ((cp.stdout or "") + (cp.stderr or "")).strip().splitlines()[0]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
    }


# --------------------------------------------------------------------------- rounds and report


@dataclasses.dataclass
class Measurement:
    """One tool, one round."""

    tool: str
    requests: int
    wall_s: float
    requests_per_s: float
    client_cpu_s: float
    client_maxrss_kib: int
    server_cpu_s: float
    ok: bool
    detail: str = ""
    machine_busy_s: float = 0.0
    latency_ms: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def client_cpu_us_per_request(self) -> float:
        return self.client_cpu_s / max(self.requests, 1) * 1e6

    @property
    def server_cpu_pct(self) -> float:
        return 100.0 * self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def other_cpu_pct(self) -> float:
        """CPU used by anything but client and server during the run (100 % = one core)."""
        other = self.machine_busy_s - self.client_cpu_s - self.server_cpu_s
        return max(0.0, 100.0 * other / self.wall_s) if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["client_cpu_us_per_request"] = round(self.client_cpu_us_per_request, 2)
        d["server_cpu_pct"] = round(self.server_cpu_pct, 1)
        d["other_cpu_pct"] = round(self.other_cpu_pct, 1)
        return d


def measure_wrk(
    base_url: str,
    paths_file: Path,
    duration_s: float,
    workdir: Path,
    server_pids: Sequence[int],
    *,
    allow_errors: bool = False,
) -> Measurement:
    """One wrk run.  ``allow_errors``: non-2xx answers and socket errors (a server
    that closes keep-alive connections) are only reported, not a failure."""
    before, busy = proc_cpu_seconds(server_pids), system_busy_seconds()
    res = run_wrk(base_url, paths_file, duration_s=duration_s, workdir=workdir)
    server_cpu = proc_cpu_seconds(server_pids) - before
    busy = system_busy_seconds() - busy
    errors = res.non_2xx + sum(res.socket_errors.values())
    detail = ""
    if errors:
        detail = f"non-2xx {res.non_2xx} of {res.requests}"
        if any(res.socket_errors.values()):
            detail += f", socket errors {res.socket_errors}"
    return Measurement(
        tool="wrk",
        requests=res.requests,
        wall_s=res.duration_s,
        requests_per_s=res.requests_per_s,
        client_cpu_s=res.run.cpu_s,
        client_maxrss_kib=res.run.maxrss_kib,
        server_cpu_s=server_cpu,
        ok=errors == 0 or allow_errors,
        detail=detail,
        machine_busy_s=busy * res.duration_s / res.run.wall_s,  # wrk's start-up excluded
        latency_ms={"avg": res.latency_avg_ms, **res.latency_percentiles_ms},
    )


def measure_client(
    tool: str,
    argv: Sequence[str],
    output_csv: Path,
    expected_rows: int,
    server_pids: Sequence[int],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    allow_failed_rows: bool = False,
) -> Measurement:
    """Run one batch client; requests/s = rows / wall time of the whole process.

    The run is valid when the output has exactly ``expected_rows`` rows, each
    with status 200 and an empty ``error`` column (when there is one).  With
    ``allow_failed_rows`` (a real server may answer 400 NoRoute) other statuses
    are only counted in ``detail``, and the client's non-zero exit is tolerated.
    """
    output_csv.unlink(missing_ok=True)
    before, busy = proc_cpu_seconds(server_pids), system_busy_seconds()
    run = run_measured(argv, env=env, timeout_s=timeout_s)
    server_cpu = proc_cpu_seconds(server_pids) - before
    busy = system_busy_seconds() - busy
    exit_info = f"exit {run.returncode}: " + (run.stderr or run.stdout).strip()[-300:]
    ok, detail = True, ""
    if run.timed_out:
        ok, detail = False, f"timed out after {timeout_s:g}s"
    elif not output_csv.exists():
        ok, detail = False, f"no output file; {exit_info}"
    else:
        header, rows = read_output_csv(output_csv)
        status_col = next((c for c in ("status", "http_status", "status_code") if c in header), "")
        bad = sum(1 for r in rows if (status_col and r[status_col] != "200") or r.get("error"))
        if len(rows) != expected_rows:
            ok, detail = False, f"{len(rows)} output rows, expected {expected_rows}; {exit_info}"
        elif bad:
            ok = allow_failed_rows
            detail = f"{bad} of {len(rows)} rows not 200 / with an error"
        elif run.returncode != 0:
            ok, detail = False, exit_info
        elif not status_col:
            detail = f"no status column in {header}"
    return Measurement(
        tool=tool,
        requests=expected_rows,
        wall_s=run.wall_s,
        requests_per_s=expected_rows / run.wall_s,
        client_cpu_s=run.cpu_s,
        client_maxrss_kib=run.maxrss_kib,
        server_cpu_s=server_cpu,
        ok=ok,
        detail=detail,
        machine_busy_s=busy,
    )


def exit_on_signals() -> None:
    """Turn SIGTERM / SIGHUP into SystemExit, so that ``with`` blocks stop the
    servers and :func:`run_measured` kills its child on the way out."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def parse_tools(text: str) -> list[str]:
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(ALL_TOOLS))
    if unknown or not tools:
        raise SystemExit(f"--tools: unknown {unknown}; choose from {','.join(ALL_TOOLS)}")
    return list(dict.fromkeys(tools))


def preflight(
    tools: Sequence[str],
    client: Callable[[str, Path, int, float], Measurement],
    input_csv: Path,
    workdir: Path,
    rows: int = 200,
    timeout_s: float = 60.0,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Run each batch client once on the first ``rows`` rows; drop the ones that fail.

    It catches a broken client in seconds instead of after a full run, and
    warms the page cache for the interpreter and its imports.
    """
    small = workdir / "preflight.csv"
    with input_csv.open() as src, small.open("w") as dst:
        n = -1  # the header is not a row
        for line in src:
            if n >= rows:
                break
            dst.write(line)
            n += 1
    kept = []
    for tool in tools:
        if tool == "wrk":
            kept.append(tool)
            continue
        m = client(tool, small, n, timeout_s)
        if m.ok:
            kept.append(tool)
            log(f"preflight {tool}: ok ({n} rows in {m.wall_s:.2f}s)")
        else:
            log(f"preflight {tool}: FAILED, left out of the rounds: {m.detail}")
    return kept


def run_rounds(
    tools: Sequence[str],
    rounds: int,
    runners: Mapping[str, Callable[[], Measurement]],
    *,
    max_other_cpu_pct: float | None = None,
    retries: int = 2,
    pause_s: float = 1.0,
    log: Callable[[str], None] = print,
) -> dict[str, list[Measurement]]:
    """Run every tool once per round; the order rotates each round to spread drift.

    On a shared machine, a measurement during which other processes used more
    than ``max_other_cpu_pct`` of a core is disturbed: it is run again (up to
    ``retries`` times, after a pause); the last try is kept either way.
    """
    results: dict[str, list[Measurement]] = {t: [] for t in tools}
    for r in range(rounds):
        order = list(tools[r % len(tools) :]) + list(tools[: r % len(tools)])
        for tool in order:
            for attempt in range(retries + 1):
                m = runners[tool]()
                disturbed = max_other_cpu_pct is not None and m.other_cpu_pct > max_other_cpu_pct
                if not m.ok:
                    flag = f"  FAILED: {m.detail}"
                else:
                    flag = f"  note: {m.detail}" * bool(m.detail)
                if disturbed:
                    again = attempt < retries
                    flag += "  (disturbed: run again)" if again else "  (disturbed: kept)"
                log(
                    f"round {r + 1}/{rounds} {tool:<9} {m.requests_per_s:>10,.0f} req/s"
                    f"  wall {m.wall_s:6.2f}s"
                    f"  client CPU {m.client_cpu_us_per_request:6.1f} µs/req"
                    f"  server CPU {m.server_cpu_pct:5.1f}%"
                    f"  other CPU {m.other_cpu_pct:5.1f}%{flag}"
                )
                time.sleep(pause_s * (1 + 4 * disturbed))
                if not disturbed:
                    break
            results[tool].append(m)
    return results


def summarize(results: Mapping[str, list[Measurement]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for tool, ms in results.items():
        good = [m for m in ms if m.ok] or ms
        summary[tool] = {
            "rounds_req_per_s": [round(m.requests_per_s, 1) for m in ms],
            "median_req_per_s": round(statistics.median(m.requests_per_s for m in good), 1),
            "median_client_cpu_us_per_request": round(
                statistics.median(m.client_cpu_us_per_request for m in good), 2
            ),
            "max_client_rss_mib": round(max(m.client_maxrss_kib for m in ms) / 1024, 1),
            "median_server_cpu_pct": round(statistics.median(m.server_cpu_pct for m in good), 1),
            "max_other_cpu_pct": round(max(m.other_cpu_pct for m in ms), 1),
            "all_ok": all(m.ok for m in ms),
            "errors": [m.detail for m in ms if not m.ok],
            "notes": sorted({m.detail for m in ms if m.ok and m.detail}),
        }
    ref = summary.get("wrk", {}).get("median_req_per_s")
    for s in summary.values():
        s["ratio_to_wrk"] = round(s["median_req_per_s"] / ref, 3) if ref else None
    if "drumfire" in summary and "aiohttp" in summary:
        summary["drumfire"]["ratio_to_aiohttp"] = round(
            summary["drumfire"]["median_req_per_s"] / summary["aiohttp"]["median_req_per_s"], 3
        )
    return summary


def format_table(summary: Mapping[str, Mapping[str, Any]], rounds: int) -> str:
    headers = [
        "tool",
        *(f"round {i + 1}" for i in range(rounds)),
        "median req/s",
        "vs wrk",
        "client CPU µs/req",
        "client max RSS MiB",
        "server CPU %",
        "other CPU % (max)",
    ]
    lines = []
    for tool, s in summary.items():
        per_round = [f"{v:,.0f}" for v in s["rounds_req_per_s"]]
        per_round += [""] * (rounds - len(per_round))
        ratio = s["ratio_to_wrk"]
        lines.append(
            [
                tool + ("" if s["all_ok"] else " (!)"),
                *per_round,
                f"{s['median_req_per_s']:,.0f}",
                f"{ratio:.2f}x" if ratio is not None else "-",
                f"{s['median_client_cpu_us_per_request']:.1f}",
                f"{s['max_client_rss_mib']:.0f}",
                f"{s['median_server_cpu_pct']:.0f}",
                f"{s['max_other_cpu_pct']:.0f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(headers)]
    out = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
    ]
    out.append("  ".join("-" * w for w in widths))
    for row in lines:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if "drumfire" in summary and "ratio_to_aiohttp" in summary["drumfire"]:
        out.append(f"drumfire / aiohttp: {summary['drumfire']['ratio_to_aiohttp']:.2f}x")
    return "\n".join(out)


def client_runner(
    work: Path,
    drumfire_cmd: Sequence[str],
    template: str,
    extracts: Sequence[str],
    field: str,
    args: argparse.Namespace,
    pids: Sequence[int],
    *,
    allow_failed_rows: bool = False,
) -> Callable[[str, Path, int, float], Measurement]:
    """``client(tool, csv_in, n, timeout_s)``: one measured run of drumfire or aiohttp.

    drumfire runs with ``--drumfire-args``, extracting ``extracts``; the aiohttp
    client extracts ``field``. Both write ``work/out_TOOL.csv``.
    """
    py_env = python_env([SRC_DIR])

    def client(tool: str, csv_in: Path, n: int, timeout_s: float) -> Measurement:
        out = work / f"out_{tool}.csv"
        if tool == "drumfire":
            argv = drumfire_argv(
                drumfire_cmd, csv_in, template, extracts, out, shlex.split(args.drumfire_args)
            )
        else:
            argv = aiohttp_argv(csv_in, template, field, out, args.aiohttp_concurrency)
        return measure_client(
            tool,
            argv,
            out,
            n,
            pids,
            env=py_env,
            timeout_s=timeout_s,
            allow_failed_rows=allow_failed_rows,
        )

    return client


def report(
    benchmark: str,
    size: tuple[str, int],
    args: argparse.Namespace,
    results: Mapping[str, list[Measurement]],
    *,
    machine: Mapping[str, Any],
    tools: Sequence[str],
    requested: Sequence[str],
    config: Mapping[str, Any],
) -> int:
    """Print the table (and write ``--json``) for one benchmark; return its exit status.

    ``size`` is the run's size, e.g. ``("requests", 200000)``; ``config`` adds the
    benchmark's own settings to those every benchmark has. The status is 0 when
    every requested tool ran and every run was clean, else 1.
    """
    summary = summarize(results)
    print()
    print(
        f"{benchmark}, {size[1]} requests per client run, {args.rounds} rounds, "
        f"wrk -t1 -c8 -d{args.wrk_duration:g}s, aiohttp -c {args.aiohttp_concurrency}, "
        f"drumfire {args.drumfire_args or 'defaults'}"
    )
    print(format_table(summary, args.rounds))
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": benchmark.lower(),
                "machine": dict(machine),
                "config": {
                    size[0]: size[1],
                    "rounds": args.rounds,
                    "tools": list(tools),
                    "max_other_cpu_pct": args.max_other_cpu,
                    "wrk": f"-t1 -c8 -d{args.wrk_duration:g}s",
                    "aiohttp_concurrency": args.aiohttp_concurrency,
                    **config,
                    "drumfire_args": args.drumfire_args,
                },
                "summary": summary,
                "rounds": {t: [m.as_dict() for m in ms] for t, ms in results.items()},
            },
        )
        print(f"figures written to {args.json}")
    complete = set(summary) == set(requested)
    return 0 if complete and all(s["all_ok"] for s in summary.values()) else 1


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options bench_nginx.py and bench_osrm.py share."""
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tools", default=",".join(ALL_TOOLS), help="subset of wrk,drumfire,aiohttp")
    p.add_argument("--wrk-duration", type=float, default=10.0, help="seconds per wrk run (10)")
    p.add_argument("--aiohttp-concurrency", type=int, default=8)
    p.add_argument(
        "--drumfire-cmd",
        default=None,
        help="command that starts the drumfire CLI (default: this checkout's src)",
    )
    p.add_argument(
        "--drumfire-args",
        default="",
        help="extra drumfire run options, e.g. '-c 8' (default: none, drumfire's defaults)",
    )
    p.add_argument(
        "--run-timeout", type=float, default=600.0, help="kill a client run after this (600 s)"
    )
    p.add_argument(
        "--max-other-cpu",
        type=float,
        default=30.0,
        help="re-run (twice at most) a measurement during which other processes used more "
        "than this %% of a core (30; -1 to never re-run)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    p.add_argument("--keep", type=Path, default=None, help="keep inputs/outputs in this dir")


def start(args: argparse.Namespace) -> list[str]:
    """After parsing: normalise the shared options, install signal handling; the tools."""
    if args.max_other_cpu < 0:
        args.max_other_cpu = None
    exit_on_signals()
    return parse_tools(args.tools)


def drumfire_usable(cmd: Sequence[str]) -> bool:
    """Whether the drumfire CLI starts; says why not on stderr.

    This checkout's ``src`` is byte-compiled first. An installed drumfire has
    its ``.pyc`` files (pip writes them; a first run of an editable install
    does), but with ``PYTHONDONTWRITEBYTECODE`` set, as on the machine of
    docs/benchmarks.md, every run would compile the changed modules again:
    about 40 ms of start-up that no user pays.
    """
    import compileall

    compileall.compile_dir(str(SRC_DIR / "drumfire"), quiet=1)
    ok, why = drumfire_available(cmd)
    if not ok:
        last = why.splitlines()[-1] if why else ""
        print(f"drumfire CLI not usable ({last}); see --tools", file=sys.stderr)
    return ok

"""``drumfire bench`` next to wrk, closed loop, on a private nginx, in the same minute.

Usage::

    python -m drumfire.bench.vs_wrk [--duration 10] [--rounds 3] [--connections 8]

It starts nginx (one worker, access log off, every path answered with one
fixed ~550-byte JSON document) on a free 127.0.0.1 port, then alternates
``wrk -t1 -cN -dDs --latency URL`` and ``drumfire.bench.bench(URL,
concurrency=N, duration=D)`` for ``--rounds`` rounds, and prints requests/s
and latency percentiles of each run, the medians and the ratio of the medians
(bench / wrk). Only loopback traffic, every child process under a time limit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from . import bench

__all__ = ["main", "nginx", "run_wrk"]

BODY = (
    b'{"code":"Ok","routes":[{"legs":[{"steps":[],"summary":"","weight":1021.4,'
    b'"duration":1021.4,"distance":13407.3}],"weight_name":"routability","weight":1021.4,'
    b'"duration":1021.4,"distance":13407.3}],"waypoints":[{"hint":"4tQ_gP___38AAAAAKwAAAA0'
    b'AAAAAAAAAKwAAAA0AAAAAAAAAAQAAAEnLzABPIx4D3BIAAKQLAAA=","distance":4.132218,'
    b'"name":"Karl-Liebknecht-Strasse","location":[13.409431,52.520008]},{"hint":"4tQ_gP_'
    b'__38AAAAAKwAAAA0AAAAAAAAAKwAAAA0AAAAAAAAAAQAAAEnLzABPIx4DAGBAAKQLAAA=","distance":'
    b'11.504521,"name":"Unter den Linden","location":[13.388798,52.517033]}]}'
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(workdir: Path, port: int) -> str:
    user = ""
    if os.geteuid() == 0:
        import grp
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")
            user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"
        except KeyError:
            user = "user root;"
    temps = "\n".join(
        f"    {name}_temp_path {workdir / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process on;
worker_processes 1;
{user}
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
{temps}
    types {{ }}
    default_type application/json;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{ return 200 '{BODY.decode()}'; }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(binary: str | None = None) -> Iterator[str]:
    """A private nginx on a free loopback port; yields its base URL."""
    exe = binary or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(exe).exists():
        raise SystemExit("nginx not found (apt-get install nginx-light)")
    with tempfile.TemporaryDirectory(prefix="drumfire-vs-wrk-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        port = _free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(_config(workdir, port))
        proc = subprocess.Popen(
            [exe, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"nginx exited: {(workdir / 'error.log').read_text()}")
                try:
                    with urllib.request.urlopen(url + "/", timeout=2) as resp:
                        resp.read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("nginx did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unparsable wrk time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, connections: int, duration: int) -> dict[str, Any]:
    """wrk's requests/s and latency percentiles (ms) for one run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found (apt-get install wrk)")
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    avg = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", out, re.M)
    if rps is None or avg is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    pct = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)", out, re.M)}
    return {
        "rps": float(rps.group(1)),
        "mean": _ms(avg.group(1)),
        "p50": pct.get("50", 0.0),
        "p90": pct.get("90", 0.0),
        "p99": pct.get("99", 0.0),
        "max": _ms(avg.group(2)),
    }


def run_bench(url: str, connections: int, duration: int) -> dict[str, Any]:
    report = bench(url, concurrency=connections, duration=duration)
    lat = report.latency_ms
    return {
        "rps": report.rps,
        "mean": lat["mean"],
        "p50": lat["p50"],
        "p90": lat["p90"],
        "p99": lat["p99"],
        "max": lat["max"],
        "errors": report.failed,
    }


def _machine() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpu = model or platform.processor()
    return f"{os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    p.add_argument("--connections", type=int, default=8, help="connections (8)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.rounds <= 20:
        p.error("--duration must be 1..300 and --rounds 1..20")
    runs: dict[str, list[dict[str, Any]]] = {"wrk": [], "bench": []}
    print(f"machine: {_machine()}")
    with nginx() as base:
        url = base + "/route/v1/driving/13.388860,52.517037;13.397634,52.529407"
        bench(url, concurrency=args.connections, duration=1)  # warm caches, JIT-free anyway
        for i in range(args.rounds):
            order = ("wrk", "bench") if i % 2 == 0 else ("bench", "wrk")
            for tool in order:
                fn = run_wrk if tool == "wrk" else run_bench
                result = fn(url, args.connections, args.duration)
                runs[tool].append(result)
                print(
                    f"round {i + 1} {tool:5s} {result['rps']:>10,.0f} req/s   "
                    f"p50 {result['p50']:.3f}  p90 {result['p90']:.3f}  "
                    f"p99 {result['p99']:.3f}  max {result['max']:.3f} ms",
                    flush=True,
                )
    med = {
        tool: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p90", "p99", "max")}
        for tool, rs in runs.items()
    }
    ratio = med["bench"]["rps"] / med["wrk"]["rps"] if med["wrk"]["rps"] else 0.0
    print(
        f"\nmedian wrk   {med['wrk']['rps']:>10,.0f} req/s   p50 {med['wrk']['p50']:.3f}  "
        f"p90 {med['wrk']['p90']:.3f}  p99 {med['wrk']['p99']:.3f} ms"
    )
    print(
        f"median bench {med['bench']['rps']:>10,.0f} req/s   p50 {med['bench']['p50']:.3f}  "
        f"p90 {med['bench']['p90']:.3f}  p99 {med['bench']['p99']:.3f} ms"
    )
    print(f"ratio bench / wrk (requests/s): {ratio:.2f}")
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {"machine": _machine(), "runs": runs, "median": med, "ratio": ratio},
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

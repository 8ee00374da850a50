"""``drumfire bench`` next to wrk, closed loop, on a private nginx, in the same minute.

Usage (from a checkout; needs nginx and wrk)::

    python benchmarks/bench_vs_wrk.py [--duration 10] [--rounds 3] [--connections 8]

It starts nginx (one worker, access log off, every path answered with one fixed
OSRM-shaped JSON document) on a free 127.0.0.1 port, then alternates
``wrk -t1 -cN -dDs --latency`` and ``drumfire.bench(URL, concurrency=N,
duration=D)`` for ``--rounds`` rounds, and prints requests/s and latency
percentiles of each run, the medians and the ratio of the medians (bench / wrk).
Only loopback traffic, every child process under a time limit.

It used to live in the installed package (``python -m drumfire.bench.vs_wrk``)
with its own copy of the nginx and wrk helpers; it is benchmark-only (nginx and
wrk are no dependency of drumfire), so it lives here and uses :mod:`_nginx`,
:mod:`_wrk` and :mod:`_rounds` like the other benchmarks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson
from _nginx import nginx_server
from _rounds import machine_info
from _wrk import run_wrk

from drumfire.bench import bench

PATH = "/route/v1/driving/13.388860,52.517037;13.397634,52.529407"
KEYS = ("rps", "p50", "p90", "p99", "max")


def wrk_figures(base_url: str, connections: int, duration: int, workdir: Path) -> dict[str, Any]:
    paths = workdir / "paths.txt"
    paths.write_text(PATH + "\n")
    result = run_wrk(base_url, paths, duration_s=duration, connections=connections, workdir=workdir)
    pct = result.latency_percentiles_ms
    return {
        "rps": result.requests_per_s,
        "mean": result.latency_avg_ms,
        "p50": pct.get("50", 0.0),
        "p90": pct.get("90", 0.0),
        "p99": pct.get("99", 0.0),
        "max": result.latency_max_ms,
    }


def bench_figures(url: str, connections: int, duration: int) -> dict[str, Any]:
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    p.add_argument("--connections", type=int, default=8, help="connections (8)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.rounds <= 20:
        p.error("--duration must be 1..300 and --rounds 1..20")
    runs: dict[str, list[dict[str, Any]]] = {"wrk": [], "bench": []}
    machine = machine_info()
    print(f"machine: {machine['nproc']} CPUs, {machine['cpu_model']}, Python {machine['python']}")
    with nginx_server() as server, tempfile.TemporaryDirectory() as tmp:
        url = server.base_url + PATH
        bench(url, concurrency=args.connections, duration=1)  # warm up nginx and the caches
        for i in range(args.rounds):
            order = ("wrk", "bench") if i % 2 == 0 else ("bench", "wrk")
            for tool in order:
                if tool == "wrk":
                    result = wrk_figures(
                        server.base_url, args.connections, args.duration, Path(tmp)
                    )
                else:
                    result = bench_figures(url, args.connections, args.duration)
                runs[tool].append(result)
                print(
                    f"round {i + 1} {tool:5s} {result['rps']:>10,.0f} req/s   "
                    f"p50 {result['p50']:.3f}  p90 {result['p90']:.3f}  "
                    f"p99 {result['p99']:.3f}  max {result['max']:.3f} ms",
                    flush=True,
                )
    med = {
        tool: {k: statistics.median(r[k] for r in rs) for k in KEYS} for tool, rs in runs.items()
    }
    ratio = med["bench"]["rps"] / med["wrk"]["rps"] if med["wrk"]["rps"] else 0.0
    for tool in ("wrk", "bench"):
        m = med[tool]
        print(
            f"median {tool:5s} {m['rps']:>10,.0f} req/s   p50 {m['p50']:.3f}  "
            f"p90 {m['p90']:.3f}  p99 {m['p99']:.3f} ms"
        )
    print(f"ratio bench / wrk (requests/s): {ratio:.2f}")
    if args.json:
        payload = {"machine": machine, "runs": runs, "median": med, "ratio": ratio}
        args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue-4 and issue-3 figures in one place, each measured side by side in one run.

    python benchmarks/bench_limits.py processes   # nginx, parse burning ~1 ms: -p 1 vs -p 2
    python benchmarks/bench_limits.py adaptive    # real OSRM: default (adaptive) vs -c 4..64
    python benchmarks/bench_limits.py close       # 200,000 requests, every answer Connection: close

Each prints a table; ``--json PATH`` keeps the figures. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine_info, nginx_server

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"

BURN = '''
import time

def parse(response):
    """About 1 ms of CPU per response, as a heavy parse would take."""
    end = time.process_time() + 0.001
    n = 0
    while time.process_time() < end:
        n += 1
    return {"duration": response.json()["routes"][0]["duration"]}
'''


def drumfire(*args: object) -> tuple[float, Path | None, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "drumfire.cli", *map(str, args)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"drumfire failed: {proc.stderr}")
    return wall, None, proc.stderr


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def processes(tmp: Path, n: int, rounds: int) -> dict[str, object]:
    from drumfire.demo.server import write_sample_routes

    routes = write_sample_routes(tmp / "routes.csv", n)
    parse = tmp / "burn.py"
    parse.write_text(BURN)
    figures: dict[str, list[float]] = {"1": [], "2": []}
    with nginx_server() as ng:
        for _ in range(rounds):
            for p in ("1", "2"):
                out = tmp / f"out{p}.csv"
                wall, _, _ = drumfire("run", routes, "--url", ng.base_url + ROUTE, "--parse",
                                      f"{parse}:parse", "-p", p, "-o", out, "--overwrite", "-q")
                assert len(rows_of(out)) == n
                figures[p].append(n / wall)
    med = {p: sorted(v)[len(v) // 2] for p, v in figures.items()}
    print(f"nginx, {n} rows, parse burning ~1 ms CPU per response, {rounds} rounds")
    for p, values in figures.items():
        listed = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  -p {p}: {listed} rows/s; median {med[p]:,.0f}")
    print(f"  speed-up -p 2 / -p 1: {med['2'] / med['1']:.2f}x")
    return {"rows": n, "rows_per_s": figures, "speedup": med["2"] / med["1"]}


def adaptive(tmp: Path, n: int, rounds: int) -> dict[str, object]:
    from drumfire._testing.osrm import OsrmServer, random_pairs

    routes = tmp / "pairs.csv"
    pairs = random_pairs(n, seed=11)
    with routes.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(pairs[0]))
        writer.writeheader()
        writer.writerows(pairs)
    settings = ["default", "4", "8", "16", "32", "64"]
    figures: dict[str, list[float]] = {s: [] for s in settings}
    with OsrmServer() as osrm:
        url = osrm.base_url + ROUTE + "?overview=false"
        for _ in range(rounds):
            for s in settings:
                extra = [] if s == "default" else ["-c", s]
                wall, _, _ = drumfire("run", routes, "--url", url, "-e", "code=code", "-o",
                                      tmp / "o.csv", "--overwrite", "-q", *extra)
                figures[s].append(n / wall)
    med = {s: sorted(v)[len(v) // 2] for s, v in figures.items()}
    best = max((s for s in settings if s != "default"), key=lambda s: med[s])
    print(f"OSRM, {n} pairs, {rounds} rounds (rows/s, median)")
    for s in settings:
        print(f"  {'-c ' + s if s != 'default' else 'default (adaptive)':>20}: {med[s]:,.0f}")
    print(f"  default / best fixed (-c {best}): {med['default'] / med[best]:.2f}x")
    return {"pairs": n, "rows_per_s": figures, "best_fixed": best,
            "ratio_default_to_best": med["default"] / med[best]}


def close(tmp: Path, n: int, rounds: int) -> dict[str, object]:
    from drumfire.demo.server import DemoServer, write_sample_routes

    routes = write_sample_routes(tmp / "routes.csv", n)
    out = tmp / "close.csv"
    with DemoServer() as server:
        # "Connection: close" on the request makes the demo server answer with it and
        # close after every response: one new connection per row.
        wall, _, _ = drumfire("run", routes, "--url", server.base_url + ROUTE, "-H",
                              "Connection: close", "-c", "8", "-o", out, "-q")
    results = rows_of(out)
    errors = Counter(r["error"] for r in results)
    attempts = sum(int(r["attempts"]) for r in results)
    tw = subprocess.run(["ss", "-tan", "state", "time-wait"], capture_output=True, text=True,
                        check=False).stdout.count("\n")
    print(f"{n} requests, each on a new connection (Connection: close): {n / wall:,.0f} rows/s")
    print(f"  rows {len(results):,}; errors {dict(errors)}; attempts {attempts:,}; "
          f"sockets in TIME_WAIT afterwards: {max(0, tw - 1)}")
    return {"requests": n, "rows": len(results), "errors": dict(errors), "attempts": attempts,
            "rows_per_s": n / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["processes", "adaptive", "close"])
    parser.add_argument("-n", "--rows", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    default_rows = {"processes": 5000, "adaptive": 10000, "close": 200_000}
    n = args.rows or default_rows[args.what]
    with tempfile.TemporaryDirectory() as tmp:
        func = {"processes": processes, "adaptive": adaptive, "close": close}[args.what]
        figures = func(Path(tmp), n, args.rounds)
    figures["machine"] = machine_info()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

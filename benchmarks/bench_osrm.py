"""drumfire vs wrk vs aiohttp against a real local OSRM server.

Same method as ``bench_nginx.py``, but the server does real routing work, so
on a 2-core machine client and server compete for the CPU: the ratios say how
much of the machine each client leaves to the server.

* input: ``random_pairs(N, seed)`` from ``drumfire._testing.osrm`` (default
  20000 pairs), one ``/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false``
  URL per pair;
* wrk: ``-t1 -c8`` for ``--wrk-duration`` seconds rotating over the same paths;
* drumfire: ``drumfire run`` with its defaults, extracting ``code``,
  ``routes[0].duration`` and ``routes[0].distance``; requests/s = rows / wall
  time of the whole process;
* aiohttp: ``benchmarks/aiohttp_client.py -c 8`` extracting ``routes.0.duration``.

Usage::

    python benchmarks/bench_osrm.py [--pairs 20000] [--rounds 3]
        [--tools wrk,drumfire,aiohttp] [--json results.json]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path
from typing import Any

import _common as c

sys.path.insert(0, str(c.SRC_DIR))

URL_PATH = c.OSRM_PATH_TEMPLATE
QUERY = "overview=false"
EXTRACTS = ["code=code", "duration=routes[0].duration", "distance=routes[0].distance"]
FIELD = "routes.0.duration"


def _server_pids(server: Any) -> list[int]:
    """Pids of the osrm-routed process tree, for server CPU sampling."""
    pid = getattr(server, "pid", None)
    return c.process_tree(pid) if isinstance(pid, int) else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=20_000, help="rows / URLs (20000)")
    c.add_common_arguments(p)
    p.add_argument("--osrm-threads", type=int, default=2, help="osrm-routed -t (2)")
    args = p.parse_args(argv)
    tools = requested = c.start(args)
    if not 1 <= args.pairs <= 1_000_000 or not 1 <= args.rounds <= 20:
        p.error("--pairs must be in 1..1000000 and --rounds in 1..20")

    from drumfire._testing.osrm import OsrmServer, ensure_osrm, random_pairs

    drumfire_cmd = c.drumfire_command(args.drumfire_cmd)
    if "drumfire" in tools and not c.drumfire_usable(drumfire_cmd):
        return 2

    machine = c.machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print("preparing OSRM (ensure_osrm) ...", flush=True)
    install = ensure_osrm()

    with tempfile.TemporaryDirectory(prefix="drumfire-bench-osrm-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [dict(r) for r in random_pairs(args.pairs, args.seed)]
        input_csv = work / "pairs.csv"
        paths_file = work / "paths.txt"
        c.write_rows_csv(input_csv, rows)
        c.write_paths_file(paths_file, c.rows_to_paths(rows, URL_PATH, QUERY))
        print(f"input: {len(rows)} pairs, {input_csv}")

        with OsrmServer(install, threads=args.osrm_threads) as server:
            base_url = f"http://{c.LOOPBACK}:{server.port}"
            template = f"{base_url}{URL_PATH}?{QUERY}"
            pids = _server_pids(server)
            print(f"OSRM on {base_url} (pids {pids or 'unknown'})")

            if "wrk" in tools:  # warm-up: page cache, OSRM data, CPU frequency
                c.run_wrk(base_url, paths_file, duration_s=2, workdir=work)

            client = c.client_runner(
                work,
                drumfire_cmd,
                template,
                EXTRACTS,
                FIELD,
                args,
                pids,
                allow_failed_rows=True,  # about half the pairs answer 400 NoRoute
            )

            tools = c.preflight(tools, client, input_csv, work)
            if not tools:
                print("no tool left to measure", file=sys.stderr)
                return 1
            runners = {
                "wrk": lambda: c.measure_wrk(
                    base_url, paths_file, args.wrk_duration, work, pids, allow_errors=True
                ),
                **{
                    tool: functools.partial(client, tool, input_csv, len(rows), args.run_timeout)
                    for tool in ("drumfire", "aiohttp", "pipelined", "base")
                },
            }
            results = c.run_rounds(
                tools, args.rounds, runners, max_other_cpu_pct=args.max_other_cpu
            )

    return c.report(
        "OSRM",
        ("pairs", args.pairs),
        args,
        results,
        machine=machine,
        tools=tools,
        requested=requested,
        config={"drumfire_cmd": drumfire_cmd, "drumfire_extracts": EXTRACTS},
    )


if __name__ == "__main__":
    sys.exit(main())

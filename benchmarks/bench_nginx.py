"""drumfire vs wrk vs aiohttp against a local nginx answering a fixed OSRM-shaped JSON.

nginx (one worker) stands in for an infinitely fast routing server, so this
measures the clients.  All tools run in the same minute, on the same URL list,
alternately, ``--rounds`` times; the report gives requests/s per round, the
median, the ratio to wrk's median, the client's CPU per request (user+sys of the
client process / requests) and the server's CPU use.

* wrk: ``-t1 -c8`` for a fixed ``--wrk-duration`` (default 10 s), rotating over
  the same paths; requests/s as wrk reports it (no process start, no CSV).
* drumfire: ``drumfire run`` with its defaults as a child process; requests/s =
  rows / wall time of the whole process (start-up, CSV in and out included).
* aiohttp: ``benchmarks/aiohttp_client.py -c 8``, measured the same way.

Usage::

    python benchmarks/bench_nginx.py [--requests 200000] [--rounds 3]
        [--tools wrk,drumfire,aiohttp] [--json results.json]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from pathlib import Path

import _common as c

URL_PATH = c.OSRM_PATH_TEMPLATE
EXTRACTS = ["duration=routes[0].duration"]
FIELD = "routes.0.duration"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200_000, help="rows / distinct URLs (200000)")
    c.add_common_arguments(p)
    args = p.parse_args(argv)
    tools = requested = c.start(args)
    if not 1 <= args.requests <= 5_000_000 or not 1 <= args.rounds <= 20:
        p.error("--requests must be in 1..5000000 and --rounds in 1..20")

    drumfire_cmd = c.drumfire_command(args.drumfire_cmd)
    if "drumfire" in tools and not c.drumfire_usable(drumfire_cmd):
        return 2

    machine = c.machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))

    with tempfile.TemporaryDirectory(prefix="drumfire-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = c.random_coordinate_rows(args.requests, args.seed)
        input_csv = work / "input.csv"
        paths_file = work / "paths.txt"
        c.write_rows_csv(input_csv, rows)
        c.write_paths_file(paths_file, c.rows_to_paths(rows, URL_PATH))
        del rows
        print(f"input: {args.requests} rows, distinct paths, {input_csv}")

        with c.nginx_server() as server:
            template = server.base_url + URL_PATH
            pids = server.server_pids()
            print(f"nginx on {server.base_url} (pids {pids}), {len(c.OSRM_LIKE_BODY)} B body")

            if "wrk" in tools:  # warm-up: page cache, nginx worker, CPU frequency
                c.run_wrk(server.base_url, paths_file, duration_s=2, workdir=work)

            client = c.client_runner(work, drumfire_cmd, template, EXTRACTS, FIELD, args, pids)

            tools = c.preflight(tools, client, input_csv, work)
            if not tools:
                print("no tool left to measure", file=sys.stderr)
                return 1
            runners = {
                "wrk": lambda: c.measure_wrk(
                    server.base_url, paths_file, args.wrk_duration, work, pids
                ),
                **{
                    tool: functools.partial(
                        client, tool, input_csv, args.requests, args.run_timeout
                    )
                    for tool in ("drumfire", "aiohttp", "pipelined", "base")
                },
            }
            results = c.run_rounds(
                tools, args.rounds, runners, max_other_cpu_pct=args.max_other_cpu
            )

    return c.report(
        "nginx",
        ("requests", args.requests),
        args,
        results,
        machine=machine,
        tools=tools,
        requested=requested,
        config={"drumfire_cmd": drumfire_cmd, "body_bytes": len(c.OSRM_LIKE_BODY)},
    )


if __name__ == "__main__":
    sys.exit(main())

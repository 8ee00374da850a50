"""drumfire on a Dask LocalCluster of 1 and 2 workers next to ``drumfire run -p 1/2``, in one run.

    python benchmarks/bench_cluster.py                      # 100,000 rows, 2 rounds
    python benchmarks/bench_cluster.py --rows 200000 --rounds 3 --json out.json

The server is nginx (one worker, a fixed OSRM-shaped JSON answer): it needs
little CPU, so the clients are what is measured. Every run is ``drumfire run``
as a child process on the same CSV of distinct URLs, writing Parquet (a dataset
directory), with the defaults but for:

* ``-p 1`` / ``-p 2``: one machine, one or two engine processes;
* ``--cluster ADDRESS`` with a LocalCluster of 1 or 2 worker processes (one
  thread each) started by this script beforehand, so its start-up is not in the
  figures (it is printed apart), and ``--partition-size`` cutting the input into
  ``--partitions`` (8) partitions.

Rows/s = rows / wall time of the whole ``drumfire run`` process (start, planning,
the client's connection to the scheduler, writing included); the configurations
alternate within each round, and the table gives each one's median.

The scheduler overhead per partition: the same ``--tiny`` (400) rows run as one
partition and as one partition per row (``--partition-size 1``) on the 2-worker
cluster; (wall with one per row - wall with one) / partitions is the cost of a
partition beyond its rows (task submission, scheduling, the result's return,
the task's engine and event loop start-up, its part file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c


def drumfire(*args: object) -> float:
    """Wall seconds of one ``drumfire run`` (it must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", *map(str, args)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"drumfire {' '.join(map(str, args))} failed: {proc.stderr}")
    return wall


def rows_in(path: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(path.glob("part-*.parquet")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--partitions", type=int, default=8, help="partitions of the cluster runs")
    p.add_argument("--tiny", type=int, default=400, help="rows for the per-partition overhead")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()

    from distributed import LocalCluster

    machine = c.machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items() if k != "wrk"))
    print(f"load average before: {os.getloadavg()}")
    figures: dict[str, Any] = {"machine": machine, "rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="drumfire-bench-cluster-") as tmp:
        work = Path(tmp)
        src = work / "in.csv"
        c.write_rows_csv(src, c.random_coordinate_rows(args.rows))
        size = max(1, src.stat().st_size // args.partitions + 1)
        tiny = work / "tiny.csv"
        c.write_rows_csv(tiny, c.random_coordinate_rows(args.tiny, seed=2))
        clusters = {}
        for n in (1, 2):
            start = time.perf_counter()
            clusters[n] = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
            )
            print(f"LocalCluster of {n} worker(s) started in {time.perf_counter() - start:.2f} s")
        try:
            with c.nginx_server() as server:
                url = server.base_url + c.OSRM_PATH_TEMPLATE
                common = ("--url", url, "-e", "duration=routes[0].duration", "-q")
                configs: dict[str, list[object]] = {
                    "-p 1": ["-p", "1"],
                    "-p 2": ["-p", "2"],
                    "cluster, 1 worker": ["--cluster", clusters[1].scheduler_address,
                                          "--partition-size", size],
                    "cluster, 2 workers": ["--cluster", clusters[2].scheduler_address,
                                           "--partition-size", size],
                }  # fmt: skip
                walls: dict[str, list[float]] = {name: [] for name in configs}
                for r in range(args.rounds):
                    for k, (name, extra) in enumerate(configs.items()):
                        out = work / f"out-{r}-{k}.parquet"
                        walls[name].append(drumfire(src, *common, "-o", out, *extra))
                        got = rows_in(out)
                        if got != args.rows:
                            raise SystemExit(f"{name}: {got} rows written, not {args.rows}")
                        wall = walls[name][-1]
                        print(f"  round {r + 1}: {name:<20} {wall:7.2f} s "
                              f"{args.rows / wall:9,.0f} rows/s", flush=True)  # fmt: skip
                # The scheduler's cost per partition: one partition per row against one.
                address = clusters[2].scheduler_address
                one, per_row = [], []
                for r in range(args.rounds):
                    single = ["-o", work / f"t1-{r}.parquet", "--cluster", address]
                    one.append(drumfire(tiny, *common, *single))
                    each = ["-o", work / f"tn-{r}.parquet", "--cluster", address]
                    per_row.append(drumfire(tiny, *common, *each, "--partition-size", 1))
                    if rows_in(work / f"tn-{r}.parquet") != args.tiny:
                        raise SystemExit("tiny partitions: rows missing")
        finally:
            for cluster in clusters.values():
                cluster.close()
    print(f"load average after: {os.getloadavg()}")
    print()
    print(f"{'configuration':<22} {'median s':>9} {'rows/s':>9}   runs (s)")
    table = {}
    for name, runs in walls.items():
        median = statistics.median(runs)
        table[name] = {"wall_s": runs, "median_s": median, "rows_per_s": args.rows / median}
        print(f"{name:<22} {median:9.2f} {args.rows / median:9,.0f}   "
              + ", ".join(f"{w:.2f}" for w in runs))  # fmt: skip
    cost = (statistics.median(per_row) - statistics.median(one)) / max(1, args.tiny - 1)
    print(f"\n{args.tiny} rows as 1 partition: {', '.join(f'{w:.2f}' for w in one)} s; "
          f"as {args.tiny} partitions: {', '.join(f'{w:.2f}' for w in per_row)} s")  # fmt: skip
    print(f"scheduler overhead per partition (2 workers): {cost * 1000:.1f} ms")
    figures.update(
        runs=table,
        overhead={"one_partition_s": one, "per_row_s": per_row, "per_partition_s": cost},
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

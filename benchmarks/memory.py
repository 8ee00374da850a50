"""Peak resident memory of `drumfire run` against the demo server, by input size.

    python benchmarks/memory.py --rows 1000000 [--rows 10000000] [--processes 1]
                                [--output-format csv|parquet|sqlite]

Writes the input (id,lon1,lat1,lon2,lat2), runs drumfire as a child process
with its defaults, and prints the child's peak RSS (ru_maxrss of the
children, i.e. the largest process) next to the row count and wall time.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drumfire.demo.server import DemoServer, write_sample_routes


def count_written(out: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.dataset as ds

        return int(ds.dataset(str(out)).count_rows())
    if fmt == "sqlite":
        import sqlite3

        conn = sqlite3.connect(out)
        try:
            return int(conn.execute("SELECT count(*) FROM results").fetchone()[0])
        finally:
            conn.close()
    with out.open("rb") as f:
        return sum(1 for _ in f) - 1


def measure(rows: int, processes: int, workdir: Path, fmt: str = "csv") -> dict[str, float]:
    source = workdir / f"routes-{rows}.csv"
    if not source.exists():
        write_sample_routes(source, rows)
    out = workdir / f"out.{fmt}"
    with DemoServer() as server:
        url = server.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(source), "--url", url,
             "-e", "duration=routes[0].duration", "-o", str(out), "--quiet",
             "-p", str(processes)],
            check=False,
        )
        wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    written = count_written(out, fmt)
    return {"rows": rows, "written": written, "exit": proc.returncode, "wall_s": round(wall, 1),
            "peak_rss_mb": round(peak_kib / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append", default=None)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--output-format", choices=["csv", "parquet", "sqlite"], default="csv")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows or [1_000_000]:
            print(measure(rows, args.processes, Path(tmp), args.output_format), flush=True)


if __name__ == "__main__":
    main()

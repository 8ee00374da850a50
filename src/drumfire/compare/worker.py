"""Run one strategy in a fresh process and measure it: ``python -m drumfire.compare.worker TASK``.

TASK is a JSON file naming the strategy, the rows file, the URL template, the extraction and
the concurrency, and where to write the outcome. Timing starts after the rows are loaded and
the strategy's module imported, and ends after every process it started has been reaped, so:

* ``wall_s`` is the strategy's own time, pool start-up included, interpreter start-up not;
* ``cpu_user_s``/``cpu_sys_s`` are this process's CPU plus that of its reaped children
  (``RUSAGE_SELF`` + ``RUSAGE_CHILDREN`` deltas), so process pools are charged in full;
* ``peak_rss_kb`` is this process's peak RSS plus each child process's peak.

The outcome is JSON: ``{"outcomes": [[id, status, fields, error], ...], ...}``, or
``{"skipped": reason}`` when the strategy's dependencies are not installed.
"""

from __future__ import annotations

import base64
import gc
import resource
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .strategies import EXTRA_HINT, get
from .strategies._common import RowRequest, child_peaks, maxrss_kb

__all__ = ["main", "run_task"]


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run the task in this process; return the outcome document."""
    strategy = get(task["strategy"])
    try:
        func = strategy.load()
    except ImportError as exc:
        return {"skipped": f"{exc.name or exc} is not installed: {EXTRA_HINT}"}
    rows = orjson.loads(Path(task["rows"]).read_bytes())
    extract = [tuple(pair) for pair in task["extract"]]
    gc.collect()
    user0, sys0 = _cpu()
    start = time.perf_counter()
    data = task.get("data")
    if task.get("data_b64") is not None:
        data = base64.b64decode(task["data_b64"])
    request = RowRequest(
        task["url"],
        task.get("method"),
        [tuple(h) for h in task.get("headers", ())],
        data,
        bool(task.get("text_rows")),
    )
    outcomes = func(rows, request, extract, int(task["concurrency"]))
    wall = time.perf_counter() - start
    user1, sys1 = _cpu()
    return {
        "outcomes": outcomes,
        "wall_s": wall,
        "cpu_user_s": user1 - user0,
        "cpu_sys_s": sys1 - sys0,
        "peak_rss_kb": maxrss_kb() + sum(child_peaks.values()),
        "processes": 1 + len(child_peaks),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m drumfire.compare.worker TASK.json", file=sys.stderr)
        return 2
    task = orjson.loads(Path(args[0]).read_bytes())
    result = run_task(task)
    Path(task["out"]).write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 15's table, measured side by side in one run: drumfire against a per-row-retry client.

    python benchmarks/bench_throttle.py                 # every server, once
    python benchmarks/bench_throttle.py --only bucket   # one server
    python benchmarks/bench_throttle.py --json out.json

Each server is ``python -m drumfire._testing.throttle`` in its own process (answers
decided by the row id and attempt, so every run is the same), on 127.0.0.1. For
each, the script runs ``drumfire run`` (defaults, process start included) and a
minimal reference client: asyncio, ``-c`` keep-alive connections, and the rule
"a 429/503 delays only its own row, by its Retry-After (seconds or HTTP-date),
else 0.1 s; at most 10 retries". It prints wall time, rows right, and the
throttled answers (429 + 503) the server sent to each.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email.utils
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: name: (what, behaviour, rows, extra drumfire options, reference concurrency)
SERVERS: dict[str, tuple[str, dict[str, Any], int, list[str], int]] = {
    "503-retry-after": (
        "10 % of first attempts: 503 + Retry-After: 1",
        {"throttle_share": 0.1, "throttle_status": 503, "retry_after": "1"},
        2000, [], 64,
    ),
    "429-date": (
        "10 % of first attempts: 429 + Retry-After: <HTTP-date 2 s ahead>",
        {"throttle_share": 0.1, "throttle_status": 429, "retry_after": "date:2"},
        2000, [], 64,
    ),
    "bucket": (
        "token bucket 200 req/s (burst 10), 429 + Retry-After: 1 above it",
        {"bucket_rate": 200.0, "bucket_burst": 10.0},
        2000, [], 64,
    ),
    "stuck": (
        "one row of 500 answers 503 + Retry-After: 3600",
        {"stuck": ["r7"]},
        500, [], 64,
    ),
    "sparse": (
        "4 % of ids answer 503 once (no Retry-After), 1-20 ms latency",
        {"throttle_share": 0.04, "retry_after": None, "latency": 0.001, "spread": 0.019},
        2000, [], 64,
    ),
    "sparse-c64": (
        "the same, drumfire -c 64",
        {"throttle_share": 0.04, "retry_after": None, "latency": 0.001, "spread": 0.019},
        2000, ["-c", "64"], 64,
    ),
    "noise": (
        "5 % of all requests (retries too): 503, no Retry-After, 50 ms latency, 20,000 rows",
        {"noise_share": 0.05, "retry_after": None, "latency": 0.05},
        20000, [], 256,
    ),
    "noise-20": (
        "20 % of all requests (retries too): 503, no Retry-After, 5,000 rows",
        {"noise_share": 0.2, "retry_after": None},
        5000, [], 64,
    ),
    "first-20": (
        "20 % of ids answer 503 twice (no Retry-After)",
        {"throttle_share": 0.2, "throttle_times": 2, "retry_after": None},
        2000, [], 64,
    ),
    "slow": (
        "2 s latency, no limit, 5,000 rows",
        {"latency": 2.0},
        5000, [], 512,
    ),
    "slow-c512": (
        "the same, drumfire -c 512",
        {"latency": 2.0},
        5000, ["-c", "512"], 512,
    ),
    "outage": (
        "full outage: every answer 503 + Retry-After: 2 for the first 2 s",
        {"outage": 2.0, "outage_retry_after": "2"},
        2000, [], 64,
    ),
    "quota": (
        "quota of 1,000 per 5 s window, stated by X-RateLimit-Remaining/Reset",
        {"quota": 1000, "quota_window": 5.0},
        2000, [], 64,
    ),
    "quota-ietf": (
        "the same, stated by the IETF draft's RateLimit / RateLimit-Policy",
        {"quota": 1000, "quota_window": 5.0, "quota_style": "ietf"},
        2000, [], 64,
    ),
}  # fmt: skip


@contextmanager
def throttle_server(behaviour: dict[str, Any]) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "drumfire._testing.throttle", json.dumps(behaviour)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def control(port: int, what: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_{what}", timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def throttled(stats: dict[str, Any]) -> int:
    statuses = stats["statuses"]
    return int(statuses.get("429", 0)) + int(statuses.get("503", 0))


def run_drumfire(port: int, rows: int, options: list[str], tmp: Path) -> tuple[float, int]:
    src = tmp / "in.csv"
    src.write_text("id\n" + "".join(f"r{i}\n" for i in range(rows)))
    out = tmp / "out.csv"
    out.unlink(missing_ok=True)
    url = f"http://127.0.0.1:{port}/item/{{id}}"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url", url, "-o", str(out),
         "-q", *options],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"drumfire failed: {proc.stderr}")
    with out.open(newline="") as f:
        ok = sum(1 for r in csv.DictReader(f) if r["status"] == "200" and not r["error"])
    return wall, ok


# -- the reference client ---------------------------------------------------------------------


def retry_after(value: str | None) -> float:
    if value is None:
        return 0.1
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time())


async def reference(port: int, rows: int, concurrency: int, cap: float = 60.0) -> int:
    """Rows answered 200; a throttled row waits its own Retry-After (over ``cap``: given up)."""
    queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue()
    for i in range(rows):
        queue.put_nowait((f"r{i}", 0))
    pending = rows
    ok = 0
    done = asyncio.Event()
    timers: set[asyncio.Future[None]] = set()

    def finish() -> None:
        nonlocal pending
        pending -= 1
        if pending == 0:
            done.set()
            for _ in range(concurrency):
                queue.put_nowait(None)

    async def later(item: tuple[str, int], delay: float) -> None:
        await asyncio.sleep(delay)
        queue.put_nowait(item)

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await queue.get()) is not None:
                id_, tries = item
                writer.write(f"GET /item/{id_} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                status = int(head[0].split(" ")[1])
                headers = dict(h.lower().split(": ", 1) for h in head[1:] if ": " in h)
                await reader.readexactly(int(headers["content-length"]))
                if status == 200:
                    ok += 1
                    finish()
                elif status in (429, 503) and tries < 10:
                    wait = retry_after(headers.get("retry-after"))
                    if wait > cap:
                        finish()
                    else:
                        timers.add(asyncio.ensure_future(later((id_, tries + 1), wait)))
                else:
                    finish()
        finally:
            writer.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await done.wait()
    await asyncio.gather(*workers)
    return ok


def measure(name: str, tmp: Path) -> dict[str, Any]:
    what, behaviour, rows, options, concurrency = SERVERS[name]
    with throttle_server(behaviour) as port:
        wall, ok = run_drumfire(port, rows, options, tmp)
        ours = control(port, "stats")
        control(port, "reset")
        start = time.perf_counter()
        ref_ok = asyncio.run(reference(port, rows, concurrency))
        ref_wall = time.perf_counter() - start
        theirs = control(port, "stats")
    return {
        "server": name, "what": what, "rows": rows, "drumfire_options": options,
        "drumfire": {"wall_s": wall, "rows_ok": ok, "requests": ours["requests"],
                     "throttled": throttled(ours)},
        "reference": {"wall_s": ref_wall, "rows_ok": ref_ok, "requests": theirs["requests"],
                      "throttled": throttled(theirs), "concurrency": concurrency},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(SERVERS), help="repeatable")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    names = args.only or list(SERVERS)
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    head = (f"{'server':<16} {'rows':>5} | {'drumfire s':>10} {'ok':>5} {'req':>6} {'thr':>5} | "
            f"{'ref s':>7} {'ok':>5} {'req':>6} {'thr':>5} | ratio")  # fmt: skip
    print(head)
    print("-" * len(head))
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            f = measure(name, Path(folder))
            d, r = f["drumfire"], f["reference"]
            print(f"{name:<16} {f['rows']:>5} | {d['wall_s']:>10.2f} {d['rows_ok']:>5} "
                  f"{d['requests']:>6} {d['throttled']:>5} | {r['wall_s']:>7.2f} "
                  f"{r['rows_ok']:>5} {r['requests']:>6} {r['throttled']:>5} | "
                  f"{d['wall_s'] / r['wall_s']:.2f}x", flush=True)  # fmt: skip
            figures.append(f)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

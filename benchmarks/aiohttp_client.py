"""Reference batch client on aiohttp, written the way an expert would.

Reads a CSV, requests one templated URL per row with a fixed number of
connections, parses each JSON answer with orjson, extracts one field and
writes ``id,status,value`` rows.

* uvloop event loop, one ``ClientSession`` with ``TCPConnector(limit=C)``;
* a fixed pool of C worker coroutines pulling rows from one shared iterator
  (no Task, no Future per row, the input is never fully loaded in memory);
* the URL is ``TEMPLATE.format_map(row)``: ``{column}`` placeholders.

Usage::

    python benchmarks/aiohttp_client.py INPUT.csv \\
        --url 'http://127.0.0.1:5000/route/v1/driving/{lon1},{lat1};{lon2},{lat2}' \\
        -c 8 --field routes.0.duration -o OUT.csv
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol

import aiohttp
import orjson
from _inputs import field_path

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is there wherever the benchmark runs
    uvloop = None


class _RowWriter(Protocol):
    def writerow(self, row: Any, /) -> Any: ...


def _extract(doc: Any, path: list[str | int]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


async def run(
    rows: Iterator[dict[str, str]],
    template: str,
    concurrency: int,
    field: list[str | int],
    writer: _RowWriter,
    id_column: str,
    timeout_s: float,
) -> tuple[int, int]:
    """Send every row; returns (rows done, rows with status 200)."""
    done = ok = 0
    connector = aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal done, ok
            get = session.get
            writerow = writer.writerow
            loads = orjson.loads
            for row in rows:  # one shared iterator: each row is taken exactly once
                value: Any = ""
                try:
                    async with get(template.format_map(row)) as resp:
                        status = resp.status
                        body = await resp.read()
                    if status == 200:
                        try:
                            value = _extract(loads(body), field)
                        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                            value = ""
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = 0
                    value = type(exc).__name__
                writerow((row[id_column], status, value))
                done += 1
                ok += status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="input CSV with a header row")
    parser.add_argument("--url", required=True, help="URL template with {column} placeholders")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("-o", "--output", required=True, help="output CSV: id,status,value")
    parser.add_argument(
        "--field", default="routes.0.duration", help="dotted path of the JSON field to keep"
    )
    parser.add_argument("--id-column", default="id")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    with (
        open(args.input, newline="") as fin,
        open(args.output, "w", newline="", buffering=1 << 20) as fout,
    ):
        writer = csv.writer(fout)
        writer.writerow((args.id_column, "status", "value"))
        coro = run(
            iter(csv.DictReader(fin)),
            args.url,
            args.concurrency,
            field_path(args.field),
            writer,
            args.id_column,
            args.timeout,
        )
        done, ok = uvloop.run(coro) if uvloop is not None else asyncio.run(coro)
    elapsed = time.perf_counter() - t0
    print(
        f"aiohttp_client: {done} rows, {ok} ok, {elapsed:.2f}s, {done / elapsed:,.0f} rows/s",
        file=sys.stderr,
    )
    return 0 if done == ok else 1


if __name__ == "__main__":
    sys.exit(main())

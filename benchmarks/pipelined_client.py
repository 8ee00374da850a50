"""The floor: the least Python a pipelined batch client can run per row.

Not a general client, a yardstick. It does what ``drumfire run`` does on the
benchmarks' happy path and nothing else, in one process and one loop:

* reads the CSV with ``csv.reader``, fills a ``{column}`` URL path template with
  ``str.format`` (no percent-encoding: the benchmark's values are numbers);
* keeps ``-c`` connections with up to ``--depth`` GET requests written ahead on
  each (HTTP/1.1 pipelining), one ``write`` per refill;
* cuts the answers out of each read with byte searches (Content-Length framing
  only), decodes the body with orjson, extracts one dotted field and writes
  ``id,status,elapsed_ms,value`` rows with one ``writerows`` per read;
* when the server closes a connection (osrm-routed after 512 answers), sends its
  unanswered requests again on a new one.

No retries, timeouts, limits, statistics, duplicate ids, encoding, resume or
error rows: what drumfire spends beyond this script per row is the price of
those. ``benchmarks/bench_nginx.py`` and ``bench_osrm.py`` run it as the tool
``pipelined``.

Usage::

    python benchmarks/pipelined_client.py INPUT.csv \\
        --url 'http://127.0.0.1:5000/route/v1/driving/{lon1},{lat1};{lon2},{lat2}' \\
        --field routes.0.duration -o OUT.csv [-c 4] [--depth 64]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop
from _inputs import field_path

_LENGTH = b"\r\ncontent-length:"


class Batch:
    """What the connections share: the rows not yet read, the requests to send again,
    the output, and why the run stopped early."""

    def __init__(
        self, rows: Iterator[list[str]], render: Any, field: list[str | int], writer: Any
    ) -> None:
        self.rows = rows
        self.retry: deque[tuple[str, bytes]] = deque()  # unanswered on a closed connection
        self.render = render
        self.field = field
        self.writer = writer
        self.done = 0
        self.failure = ""  # why the run stopped early ("": it did not)

    def take(self, n: int) -> list[tuple[str, bytes]]:
        """Up to ``n`` (id, request bytes): requests to send again first, then new rows."""
        out: list[tuple[str, bytes]] = []
        retry = self.retry
        while retry and len(out) < n:
            out.append(retry.popleft())
        if len(out) < n:
            render = self.render
            for row in self.rows:
                out.append((row[0], render(row)))
                if len(out) == n:
                    break
        return out


class Pipelined(asyncio.Protocol):
    def __init__(self, batch: Batch, depth: int, closed: asyncio.Future[None]) -> None:
        self.batch = batch
        self.depth = depth
        self.closed = closed
        self.sent: deque[tuple[str, bytes, float]] = deque()
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.fill()

    def fill(self) -> None:
        assert self.transport is not None
        room = self.depth - len(self.sent)
        if room <= 0:
            return
        taken = self.batch.take(room)
        if not taken:
            if not self.sent:
                self.transport.close()
            return
        now = time.perf_counter()
        self.sent.extend((id_, request, now) for id_, request in taken)
        self.transport.write(b"".join(request for _, request in taken))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        size = len(buffer)
        pos = 0
        now = time.perf_counter()
        loads = orjson.loads
        field = self.batch.field
        sent = self.sent
        rows: list[tuple[str, int, str, Any]] = []
        while sent:
            head_end = buffer.find(b"\r\n\r\n", pos)
            if head_end < 0:
                break
            head = buffer[pos:head_end].lower()
            at = head.find(_LENGTH)
            if at < 0:  # chunked or close-delimited: not this yardstick's business
                self.batch.failure = "an answer without Content-Length"
                assert self.transport is not None
                self.transport.abort()
                return
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + len(_LENGTH) : line_end if line_end >= 0 else len(head)])
            end = head_end + 4 + length
            if end > size:
                break
            id_, _request, start = sent.popleft()
            status = int(buffer[pos + 9 : pos + 12])
            value: Any = ""
            try:
                value = loads(buffer[head_end + 4 : end])
                for key in field:
                    value = value[key]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                value = ""
            rows.append((id_, status, f"{(now - start) * 1000.0:.3f}", value))
            pos = end
        self.buffer = buffer[pos:]
        if rows:
            self.batch.writer.writerows(rows)
            self.batch.done += len(rows)
        self.fill()

    def connection_lost(self, exc: Exception | None) -> None:
        # The server closed (or the batch is done): what it did not answer goes again.
        self.batch.retry.extend((id_, request) for id_, request, _start in self.sent)
        self.sent.clear()
        self.closed.set_result(None)


async def run(batch: Batch, host: str, port: int, connections: int, depth: int) -> None:
    loop = asyncio.get_running_loop()

    async def connection() -> None:
        while True:
            closed: asyncio.Future[None] = loop.create_future()
            await loop.create_connection(
                functools.partial(Pipelined, batch, depth, closed), host, port
            )
            await closed
            if batch.failure:
                return
            if not batch.retry:  # nothing unanswered: a new connection only for rows left
                peek = next(batch.rows, None)
                if peek is None:
                    return
                batch.retry.append((peek[0], batch.render(peek)))

    await asyncio.gather(*(connection() for _ in range(connections)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="input CSV with a header row; the first column is the id")
    parser.add_argument("--url", required=True, help="URL template with {column} placeholders")
    parser.add_argument("-c", "--connections", type=int, default=4)
    parser.add_argument("--depth", type=int, default=64, help="requests written ahead (64)")
    parser.add_argument("-o", "--output", required=True, help="output CSV")
    parser.add_argument("--field", default="routes.0.duration", help="dotted JSON path to keep")
    args = parser.parse_args(argv)

    parts = urlsplit(args.url)
    if parts.scheme != "http" or not parts.hostname:
        parser.error("--url: an http:// URL")
    host, port = parts.hostname, parts.port or 80
    path = args.url[args.url.index("/", len("http://")) :]
    field = field_path(args.field)

    with (
        open(args.input, newline="") as fin,
        open(args.output, "w", newline="", buffering=1 << 20) as fout,
    ):
        reader = csv.reader(fin)
        columns = next(reader)
        # {name} -> {index}: one str.format per row, no dict.
        positional = re.sub(
            r"\{(\w+)\}", lambda m: "{" + str(columns.index(m.group(1))) + "}", path
        )
        request = f"GET {positional} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        fmt = request.format

        def render(row: list[str]) -> bytes:
            return fmt(*row).encode()

        writer = csv.writer(fout, lineterminator="\n")
        writer.writerow((columns[0], "status", "elapsed_ms", "value"))
        batch = Batch(iter(reader), render, field, writer)
        uvloop.run(run(batch, host, port, args.connections, args.depth))
    if batch.failure:
        print(f"pipelined_client: {batch.failure}", file=sys.stderr)
        return 1
    print(f"{batch.done} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""asyncio strategies: aiohttp on uvloop, in one process or in one per CPU.

Concurrency is bounded the cheap way: ``concurrency`` worker coroutines take rows from one
shared iterator, so there are never more requests in flight (or tasks alive) than that, however
large the batch; the connector's limit is the same number, so every worker keeps its
connection alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from ..._extract import Extractor
from ..._loop import new_event_loop
from ._common import (
    CONNECT_TIMEOUT,
    HEADERS,
    ID_KEY,
    RETRIES,
    TIMEOUT,
    Outcome,
    Row,
    RowRequest,
    failed,
    finish,
)

__all__ = ["aiohttp_strategy", "run_aiohttp"]


async def _fetch(
    session: aiohttp.ClientSession, request: RowRequest, extractor: Extractor, row: Row
) -> Outcome:
    id_ = row[ID_KEY]
    try:
        method, target, headers, body = request.render(row)
    except Exception as exc:
        return failed(id_, exc)
    attempt = 0
    while True:
        attempt += 1
        try:
            async with session.request(
                method, target, headers=headers, data=body, allow_redirects=False
            ) as resp:
                body = await resp.read()
                return finish(extractor, id_, resp.status, body)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if attempt > RETRIES:
                return failed(id_, exc)
            await asyncio.sleep(0.05 * (attempt - 1))
        except Exception as exc:
            return failed(id_, exc)


async def run_aiohttp(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """Fetch every row with one ``ClientSession``; outcomes in input order."""
    extractor = Extractor(extract)
    results: list[Outcome | None] = [None] * len(rows)
    work = iter(enumerate(rows))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT, connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=HEADERS
    ) as session:

        async def worker() -> None:
            for i, row in work:
                results[i] = await _fetch(session, request, extractor, row)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(rows))))))
    return [r for r in results if r is not None]


def aiohttp_strategy(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """aiohttp on a uvloop event loop, ``concurrency`` requests in flight."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(run_aiohttp(rows, request, extract, concurrency))

"""The urllib3 strategies: one kept-alive connection in a loop, or a thread pool sharing a pool.

The pools are configured like drumfire: retries on connection failures, no redirects,
drumfire's timeouts. urllib3 asks for no compression by default, like drumfire. This module
imports urllib3 only, so the process pools that fork after importing it (see
:mod:`.processes`) do not import anything more in each child.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import urllib3

from ..._extract import Extractor
from ._common import (
    CONNECT_TIMEOUT,
    ID_KEY,
    RETRIES,
    TIMEOUT,
    Outcome,
    Row,
    RowRequest,
    failed,
    finish,
)

__all__ = ["fetch_row", "pool_manager", "retry", "threads", "timeout", "urllib3_pool"]


def retry() -> urllib3.Retry:
    return urllib3.Retry(total=RETRIES, redirect=False, backoff_factor=0.05)


def timeout() -> urllib3.Timeout:
    return urllib3.Timeout(connect=CONNECT_TIMEOUT, read=TIMEOUT)


def pool_manager(maxsize: int) -> urllib3.PoolManager:
    """A pool of up to ``maxsize`` kept-alive connections per host, blocking when all are busy."""
    return urllib3.PoolManager(maxsize=maxsize, block=True, retries=retry(), timeout=timeout())


def fetch_row(pool: urllib3.PoolManager, request: RowRequest, row: Row) -> urllib3.BaseHTTPResponse:
    """One row's request through ``pool``."""
    method, target, headers, body = request.render(row)
    return pool.request(method, target, headers=headers or None, body=body)


def urllib3_pool(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """urllib3 in a loop over a pool of one kept-alive connection."""
    extractor = Extractor(extract)
    out: list[Outcome] = []
    with pool_manager(1) as pool:
        for row in rows:
            id_ = row[ID_KEY]
            try:
                r = fetch_row(pool, request, row)
            except Exception as exc:
                out.append(failed(id_, exc))
                continue
            out.append(finish(extractor, id_, r.status, r.data))
    return out


def threads(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``ThreadPoolExecutor`` of ``concurrency`` threads sharing a urllib3 pool of that size."""
    extractor = Extractor(extract)
    pool = pool_manager(concurrency)

    def fetch(row: Row) -> Outcome:
        id_ = row[ID_KEY]
        try:
            r = fetch_row(pool, request, row)
        except Exception as exc:
            return failed(id_, exc)
        return finish(extractor, id_, r.status, r.data)

    with pool, ThreadPoolExecutor(max_workers=concurrency) as executor:
        return list(executor.map(fetch, rows))

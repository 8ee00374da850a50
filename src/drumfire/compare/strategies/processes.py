"""Process strategies: the fastest of the usual ways (worker processes), done properly.

``multiprocessing``: a ``multiprocessing.Pool`` of ``concurrency`` processes whose
``initializer`` makes one urllib3 pool per process (so every process keeps its connection
alive), fed chunks of rows to amortise the pickling. ``multiprocessing+asyncio``: one process
per CPU, each running an aiohttp event loop with its share of the concurrency.

Everything the children need is imported before the pool starts, so forked children inherit
it instead of each importing it again. Each task also returns its process's pid and peak RSS,
so the report can add up the memory of all the processes a strategy used.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from typing import Any

from ..._extract import Extractor
from ._common import (
    ID_KEY,
    Outcome,
    Row,
    RowRequest,
    cpu_count,
    failed,
    finish,
    maxrss_kb,
    note_child,
    split,
)
from .pools import fetch_row, pool_manager

__all__ = ["multiprocessing_asyncio", "multiprocessing_pool"]

#: Set in each pool process by :func:`_init`.
_state: dict[str, Any] = {}


def _init(request: RowRequest, extract: Sequence[tuple[str, str]]) -> None:
    _state["request"] = request
    _state["extractor"] = Extractor(extract)
    _state["pool"] = pool_manager(1)


def _chunk(rows: Sequence[Row]) -> tuple[int, int, list[Outcome]]:
    request: RowRequest = _state["request"]
    extractor: Extractor = _state["extractor"]
    pool = _state["pool"]
    out: list[Outcome] = []
    for row in rows:
        id_ = row[ID_KEY]
        try:
            r = fetch_row(pool, request, row)
        except Exception as exc:
            out.append(failed(id_, exc))
            continue
        out.append(finish(extractor, id_, r.status, r.data))
    return os.getpid(), maxrss_kb(), out


def _chunks(rows: Sequence[Row], processes: int) -> list[Sequence[Row]]:
    # About 8 chunks per process: big enough that pickling is cheap per row, small enough
    # that no process is left idle for long at the end.
    size = max(1, min(256, math.ceil(len(rows) / (processes * 8))))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def multiprocessing_pool(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``Pool(concurrency, initializer=...)``, each process with its own urllib3 pool."""
    processes = max(1, min(concurrency, len(rows)))
    pool = mp.Pool(processes, initializer=_init, initargs=(request, list(extract)))
    return _gather(pool, pool.imap(_chunk, _chunks(rows, processes)))


def _gather(pool: Any, results: Iterable[Any]) -> list[Outcome]:
    """Collect each child's (pid, peak RSS, outcomes), then close the pool whatever happens."""
    out: list[Outcome] = []
    try:
        for pid, peak, outcomes in results:
            note_child(pid, peak)
            out.extend(outcomes)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return out


def _async_share(args: tuple[Sequence[Row], RowRequest, Sequence[tuple[str, str]], int]) -> Any:
    from .aio import aiohttp_strategy  # already imported by the parent before the fork

    rows, request, extract, concurrency = args
    outcomes = aiohttp_strategy(rows, request, extract, concurrency)
    return os.getpid(), maxrss_kb(), outcomes


def multiprocessing_asyncio(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """One process per CPU, each an aiohttp event loop; ``concurrency`` in flight in all."""
    from . import aio  # noqa: F401  (imported once here, inherited by the forked children)

    processes = max(1, min(cpu_count(), concurrency, len(rows)))
    shares = split(rows, processes)
    base, extra = divmod(concurrency, len(shares))
    tasks = [
        (share, request, list(extract), max(1, base + (1 if i < extra else 0)))
        for i, share in enumerate(shares)
    ]
    pool = mp.Pool(len(tasks))
    return _gather(pool, pool.imap(_async_share, tasks, chunksize=1))

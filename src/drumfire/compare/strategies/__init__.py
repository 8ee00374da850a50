"""The registry of strategies: names, where their code lives, and what they need installed.

Nothing here imports an optional dependency; a strategy's module is imported only in the
worker process that runs it (see :mod:`drumfire.compare.worker`).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ._common import StrategyFunc

__all__ = ["EXTRA_HINT", "STRATEGIES", "Strategy", "get", "missing_modules"]

#: What to install for the strategies that need the optional extra.
EXTRA_HINT = "pip install 'drumfire[compare]'"


@dataclass(frozen=True)
class Strategy:
    """One way of sending the batch."""

    name: str
    module: str  # relative to this package
    function: str
    requires: tuple[str, ...]  # importable module names
    concurrent: bool  # whether ``concurrency`` applies (else one request at a time)
    description: str

    def load(self) -> StrategyFunc:
        """Import the strategy's module (and so its dependencies) and return its function."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        func: StrategyFunc = getattr(module, self.function)
        return func


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "serial",
        "blocking",
        "serial",
        ("requests",),
        False,
        "requests.get in a loop: a new connection per request",
    ),
    Strategy(
        "session",
        "blocking",
        "session",
        ("requests",),
        False,
        "requests.Session in a loop: one kept-alive connection",
    ),
    Strategy(
        "urllib3-pool",
        "pools",
        "urllib3_pool",
        ("urllib3",),
        False,
        "urllib3 pool in a loop: one kept-alive connection",
    ),
    Strategy(
        "threads",
        "pools",
        "threads",
        ("urllib3",),
        True,
        "ThreadPoolExecutor(c) sharing a urllib3 pool of c connections",
    ),
    Strategy(
        "requests-futures",
        "blocking",
        "requests_futures",
        ("requests", "requests_futures"),
        True,
        "FuturesSession(max_workers=c), adapter pool of c connections",
    ),
    Strategy(
        "aiohttp",
        "aio",
        "aiohttp_strategy",
        ("aiohttp",),
        True,
        "aiohttp on uvloop, c worker coroutines, connector limit c",
    ),
    Strategy(
        "multiprocessing",
        "processes",
        "multiprocessing_pool",
        ("urllib3",),
        True,
        "multiprocessing.Pool(c) + initializer: a urllib3 pool per process",
    ),
    Strategy(
        "multiprocessing+asyncio",
        "processes",
        "multiprocessing_asyncio",
        ("aiohttp",),
        True,
        "one process per CPU, each an aiohttp event loop, c in flight in all",
    ),
    Strategy(
        "drumfire",
        "native",
        "drumfire_strategy",
        (),
        True,
        "drumfire.run(..., concurrency=c), defaults otherwise",
    ),
)

_BY_NAME = {s.name: s for s in STRATEGIES}


def get(name: str) -> Strategy:
    """The strategy called ``name``; KeyError if there is none."""
    return _BY_NAME[name]


def missing_modules(strategy: Strategy) -> list[str]:
    """The modules ``strategy`` needs that cannot be imported here."""
    return [m for m in strategy.requires if importlib.util.find_spec(m) is None]

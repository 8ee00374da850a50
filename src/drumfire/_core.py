"""The state the parts of the engine share, declared once for the type checker.

:class:`~drumfire._engine.Engine` is one object whose concerns live in
several modules: :mod:`drumfire._lifecycle` (start, stop, the periodic
sweep), :mod:`drumfire._settle` (answers, failures, retries, results),
:mod:`drumfire._pipelined` (applying the pipelining policy, queueing requests
on busy connections) and :mod:`drumfire._engine` itself (reading rows,
dispatch, the connection callbacks). Each part derives from :class:`EngineCore`, which
declares the attributes the engine sets in ``__init__`` and the methods one
part calls on another; ``Engine`` derives from every part, so each call
finds the real method before the declaration here
(``tests/unit/test_engine.py`` checks that none is left undefined).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ._connection import Connection
from ._finish import Finisher
from ._limits import AdaptiveLimit, OriginLimit
from ._ordering import Reorder
from ._origins import Origins
from ._pipelining import Pipelining
from ._pool import Pool
from ._request import Origin, Prepared
from ._result import Result, Stats
from ._rows import Flight, Item, Rows, UsualRun, UsualRuns
from ._settings import Retry, Timeouts

__all__ = ["EngineCore"]


class EngineCore:
    """Declarations only: what every part of the engine may read, change and call."""

    # read once from EngineSettings, and the injected clocks and hooks
    retry: Retry
    timeouts: Timeouts
    clock: Callable[[], float]
    cpu_clock: Callable[[], float]
    sleep: Callable[[float], None] | None
    rng: random.Random
    concurrency: int
    pipeline: int
    tick_interval: float
    follow_redirects: int
    unreachable_after: int
    on_result: Callable[[Result], None]
    on_numbered: Callable[[Result, int], None] | None
    on_results: Callable[[list[Result]], None] | None
    on_tick: Callable[[Stats], None] | None
    # the parts it is made of
    rows: Rows
    finisher: Finisher
    origins: Origins
    pool: Pool
    stats: Stats
    # the run's state
    _loop: asyncio.AbstractEventLoop | None
    _done: asyncio.Future[None] | None
    _failure: BaseException | None
    _items: Iterator[Item]
    _runs: UsualRuns | None  # a read-ahead child's usual chunks (see drumfire._intake)
    _usual: Callable[[Item], tuple[str, Prepared] | None] | None  # Rows.usual_maker's
    _seq: int  # the next row's place in the input
    park_limit: int
    order_window: int
    _exhausted: bool
    _stopping: bool
    _paused: bool
    _inflight: int  # requests on the wire
    _waiting: int  # rows sleeping before a retry
    _ready: deque[Flight]  # rows to start before reading more input
    _sleeping: dict[Flight, asyncio.TimerHandle]
    _busy: set[Connection]
    _special: frozenset[int]  # statuses that may need more than writing the row
    _order: Reorder[Result] | None
    _timer: asyncio.TimerHandle | None
    _pump_timer: asyncio.TimerHandle | None
    pipelining_policy: Pipelining  # when to pipeline (see drumfire._pipelining)
    # how the engine pipelines (see drumfire._pipelined)
    pipelining: bool
    on_cpu_bound: Callable[[Any], None] | None
    _adaptive: bool  # no fixed -c: the adaptive limit counts connections' worth
    _total: int  # most requests in flight in the whole run
    _conn_cap: int  # most connections kept open
    _capacity: float  # most requests in flight the connections can take
    _depth: int  # requests per unit of the adaptive limit
    _refill: int  # a busy connection takes more once this many fit
    _nap: float  # the longest pause after a turn with answers (0: none)
    _napping: bool  # a pause is due once this loop turn's callbacks ran
    _answered: Connection | None  # the connection that answered last
    _unflushed: list[Connection]  # connections whose queued requests are not written yet
    _local_of: tuple[Origin | None, int | None]  # the only origin, its port if local
    _kept: AdaptiveLimit | None  # the limit whose keep pipelining set
    _reached: bool
    _unreached: int

    # -- defined by the parts (see the module docstring) -----------------------

    def _pump(self) -> None:
        raise NotImplementedError

    def _next_flight(self) -> Flight | None:
        raise NotImplementedError

    def _next_flights(self, most: int) -> list[Flight]:
        raise NotImplementedError

    def _take_run(self, most: int) -> UsualRun | None:
        raise NotImplementedError

    def _pump_later(self, delay: float) -> None:
        raise NotImplementedError

    def _skip_seq(self, seq: int) -> None:
        raise NotImplementedError

    def _emit(self, result: Result, seq: int) -> None:
        raise NotImplementedError

    def _watch_cpu(self, now: float) -> None:
        raise NotImplementedError

    def _answered_host(self, host: OriginLimit | None, count: int) -> None:
        raise NotImplementedError

    def _give_up(
        self, flight: Flight, status: int | None, reason: str, now: float | None = None
    ) -> None:
        raise NotImplementedError

    def _cancel(self, flight: Flight, reason: str = "cancelled") -> None:
        raise NotImplementedError

    def _check_done(self) -> None:
        raise NotImplementedError

    def _fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def stop(self, grace: float = 2.0) -> None:
        raise NotImplementedError

    def cancel_all(self) -> None:
        raise NotImplementedError

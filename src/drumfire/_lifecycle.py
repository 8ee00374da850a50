"""The engine's life: start a run, stop it (gracefully or at once), the periodic sweep.

One timer for the whole run (``_tick``) aborts connections past their
deadline, lets the pipelining policy sample the CPU, and feeds the progress
display; there is no timer per request. :class:`Lifecycle` is a part of
:class:`drumfire._engine.Engine` (see :mod:`drumfire._core`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ._core import EngineCore
from ._instream import Background
from ._result import Stats
from ._rows import Item, UsualRuns
from ._settings import sweep_interval

__all__ = ["Lifecycle"]


class Lifecycle(EngineCore):
    """Running, stopping and sweeping (see the module docstring)."""

    async def run(self, items: Iterator[Item], total: int | None = None) -> Stats:
        """Process every item; return when each has produced its result."""
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._items = items
        if isinstance(items, Background):  # an input that may block: read by a thread
            loop, wake = self._loop, self.wake

            def woken() -> None:
                loop.call_soon_threadsafe(wake)

            items.attach(woken)
        self.stats = Stats(self.clock, total)
        self.stats.waited_s = 0.0  # measured, by the tick
        self._usual = self.rows.usual_maker(self.stats)
        self._timer = self._loop.call_later(self._sweep_interval(), self._tick)
        self.pipelining_policy.start(self.clock())
        try:
            self._pump()
            await self._done
        finally:
            # Whatever ended the run (the last row, a failure), the aborts below
            # must not start rows on new connections.
            self._exhausted = self._stopping = True
            if self._timer is not None:
                self._timer.cancel()
            if self._pump_timer is not None:
                self._pump_timer.cancel()
            self.origins.cancel_timers()
            self.origins.close()  # a failed run's parked rows on disk: the files go
            self.pool.close_all()
            for conn in list(self._busy):
                conn.abort("cancelled")
            self.stats.finished = self.clock()
            # One turn of the loop, so the transports' close callbacks run
            # before a caller closes the loop.
            await asyncio.sleep(0)
        if self._failure is not None:
            raise self._failure
        return self.stats

    def stop(self, grace: float = 2.0) -> None:
        """Start no new row; give in-flight ones ``grace`` seconds, then cancel them."""
        if self._stopping or self._loop is None:
            return
        self._stopping = True
        self.stats.stopped = True
        self._exhausted = True
        # No attempt starts from here, first or retry: the rows not on the wire
        # (sleeping before a retry, perhaps for a long Retry-After, ready to start,
        # parked with their origin) end now as ``cancelled``, which --resume sends
        # again, and the timers that would start them (an origin's rate or pause,
        # the run's --rate) fire no more.
        for flight, handle in list(self._sleeping.items()):
            handle.cancel()
            self._waiting -= 1
            self._cancel(flight)
        self._sleeping.clear()
        if self._pump_timer is not None:
            self._pump_timer.cancel()
            self._pump_timer = None
        self.origins.cancel_timers()
        self._cancel_unsent()
        self._loop.call_later(grace, self.cancel_all)
        self._check_done()

    def hand_over_items(self, take: Callable[[Iterator[Item]], Iterator[Any]]) -> None:
        """Let ``take`` read the rest of the items; the engine reads what it returns.

        ``take`` may return prepared entries as well as items (see
        :mod:`drumfire._readahead` and :meth:`_next_flight`).
        """
        if self._exhausted:
            return
        items = self._items
        if isinstance(items, Background):
            # A thread reads them, which a fork would not have: taken from it after the
            # row it reads (unless a pipe slow to give holds it there: left to it).
            rest = items.detach()
            if rest is None:
                return
            self._items = take(rest)
            if self._items is rest and rest.wake is not None:  # no child: a thread reads on
                rest.attach(rest.wake)
            return
        self._items = take(items)

    def take_runs(self, runs: UsualRuns) -> None:
        """Take the usual chunks of ``runs`` (where the items were handed over to) in
        pieces when filling a pipelined connection (see :mod:`drumfire._intake`)."""
        if not self._exhausted:
            self._runs = runs

    def wake(self) -> None:
        """More input is available after a ``WAIT`` item."""
        if self._done is not None:  # before run() there is nothing to pump yet
            self._pump()

    def pause(self, paused: bool) -> None:
        """Hold off starting new rows (a consumer is behind); resume with False."""
        self._paused = paused
        if not paused and self._loop is not None:
            self._loop.call_soon(self._pump)

    def cancel_all(self) -> None:
        """Cancel every row now: those in flight, waiting to start or parked (a second Ctrl-C)."""
        for conn in list(self._busy):
            conn.abort("cancelled", "stopped before the response came")
        self._cancel_unsent()
        self._check_done()

    def _cancel_unsent(self) -> None:
        """End as ``cancelled`` the rows waiting to start: ready, or parked with their origin."""
        while self._ready:
            self._cancel(self._ready.popleft())
        for flight in self.origins.drain():
            self._cancel(flight)

    def _sweep_interval(self) -> float:
        return sweep_interval(self.tick_interval, self.timeouts.total, self.timeouts.connect)

    def _tick(self) -> None:
        now = self.clock()
        for conn in [c for c in self._busy if c.is_overdue(now)]:
            conn.abort("timeout", "no complete answer in time")
        if self.pipeline > 1:
            self._watch_cpu(now)
        # Also with no display: the summary says how long the run waited for the server.
        self.stats.note_tick(now, self.origins.holds(now), self._inflight, self._waiting)
        if self.on_tick is not None:
            self.stats.concurrency = self._inflight
            # In requests, as in flight: while pipelining, each unit of the adaptive
            # limit is a connection carrying up to ``_depth`` of them.
            self.stats.limit = self.origins.limit(self.concurrency) * self._depth
            try:
                self.on_tick(self.stats)
            except Exception as exc:  # a broken display must not hang the run
                self._fail(exc)
                return
        assert self._loop is not None
        self._timer = self._loop.call_later(self._sweep_interval(), self._tick)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:  # the first error is the one to report
            self._failure = exc
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _check_done(self) -> None:
        if (
            self._inflight == 0
            and self._exhausted
            and self._waiting == 0
            and not self._ready
            and not self.origins.parked
            and not self.origins.spilled
            and self._done is not None
            and not self._done.done()
        ):
            self._done.set_result(None)

"""How the engine takes its rows: from the source, or from a read-ahead child's runs.

:class:`Intake` is a part of :class:`drumfire._engine.Engine` (see
:mod:`drumfire._core`). Rows come one at a time (``_next_flight``), a batch of
them for a pipelined fill (``_next_flights``), or, while a read-ahead child
sends the usual chunk (every row a request to one origin, no kept columns), as
a slice of that chunk's ids and request bytes (``_take_run``): the fill then
makes each row's :class:`~drumfire._rows.Flight` already sent, in one pass,
with none of the per-row checks a row of unknown kind needs.
"""

from __future__ import annotations

from typing import Any, cast

from ._core import EngineCore
from ._result import Result
from ._rows import SKIPPED, WAIT, Flight, UsualRun, raising

__all__ = ["PASS_AT_ONCE", "Intake"]

#: The most rows that start no request (kept by ``--resume``, input and template
#: errors) read in one go before the loop may read answers: a few ms of work.
PASS_AT_ONCE = 256


class Intake(EngineCore):
    """Taking rows to start (see the module docstring)."""

    def _may_read(self) -> bool:
        """More input may be read: not at its end, parked rows under the bound (or moved
        to disk where they may: Origins.relieve)."""
        limit = self.park_limit
        return not self._exhausted and (self.origins.parked < limit or self.origins.relieve(limit))

    def _next_flight(self) -> Flight | None:
        if self._ready:
            return self._ready.popleft()
        if not self._may_read():
            return None
        order = self._order
        if order is not None and order.ahead(self._seq) >= self.order_window:
            return None  # the oldest row holds the window; wait for it
        make = self.rows.make
        usual = self._usual
        passed = 0  # rows read that start no request (skipped by --resume, error rows)
        while True:
            if passed >= PASS_AT_ONCE:
                # Let the loop read the answers in flight (their elapsed_ms runs until
                # it does: --retry-failed read 100,000 kept rows between two sends).
                self._pump_later(0.0)
                return None
            try:
                item = next(self._items)
            except StopIteration:
                self._exhausted = True
                return None
            if item is WAIT:
                return None
            if usual is not None and type(item) is tuple and (got := usual(item)) is not None:
                seq = self._seq
                self._seq += 1
                row: Any = item[1]  # a dict: usual() took it
                return Flight(seq, got[0], row, got[1])
            # A source item, or what Rows.make made of one in a read-ahead process.
            made = make(item, self.stats) if type(item) is tuple else item
            if type(made) is int:  # duplicate ids the read-ahead process saw
                self.stats.duplicates += made
                continue
            seq = self._seq
            self._seq += 1
            if type(made) is Flight:
                made.seq = seq
                return made
            passed += 1
            if made is SKIPPED:
                self.stats.skipped += 1
                self._skip_seq(seq)
                continue
            self._emit(cast(Result, made), seq)  # an input or template error

    def _next_flights(self, most: int) -> list[Flight]:
        """Up to ``most`` rows to start, as that many :meth:`_next_flight` calls give them."""
        if self._ready or self._order is not None:
            out: list[Flight] = []
            while len(out) < most:
                flight = self._next_flight()
                if flight is None:
                    break
                out.append(flight)
            return out
        if most <= 0 or not self._may_read():
            return []
        out = []
        make = self.rows.make
        usual = self._usual
        stats = self.stats
        seq = self._seq
        passed = 0  # rows read that start no request (as in _next_flight)
        try:
            for item in self._items:
                if item is WAIT:
                    break
                if usual is not None and type(item) is tuple:
                    got = usual(item)  # the usual row: a text id, a request (Rows.usual_maker)
                    if got is not None:
                        row: Any = item[1]  # a dict: usual() took it
                        out.append(Flight(seq, got[0], row, got[1]))
                        seq += 1
                        if len(out) == most:
                            break
                        continue
                made = make(item, stats) if type(item) is tuple else item
                if type(made) is Flight:
                    made.seq = seq
                    seq += 1
                    out.append(made)
                    if len(out) == most:
                        break
                elif type(made) is int:  # duplicate ids the read-ahead process saw
                    stats.duplicates += made
                else:
                    passed += 1
                    if made is SKIPPED:
                        stats.skipped += 1
                        self._skip_seq(seq)
                    else:
                        self._emit(cast(Result, made), seq)  # an input or template error
                    seq += 1
                    if passed >= PASS_AT_ONCE:  # let the loop read the answers in flight
                        if not out:
                            self._pump_later(0.0)
                        break
            else:
                self._exhausted = True
        except Exception as exc:  # an unreadable input: raised after the rows before it,
            if not out:  # as _next_flight has it (they are started first)
                raise
            self._items = raising(exc)
        finally:
            self._seq = seq
        return out

    def _take_run(self, most: int) -> UsualRun | None:
        """Up to ``most`` rows of a read-ahead child's usual chunk, as they are sent:
        None when the next rows are not such a run (the item path takes them)."""
        runs = self._runs
        if runs is None or self._ready or self._order is not None or not self._may_read():
            return None
        run = runs.take(most)
        if run is not None:
            run.seq = self._seq
            self._seq += len(run.ids)
        return run

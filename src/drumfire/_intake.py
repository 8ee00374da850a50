"""How the engine takes its rows: from the source, or from a read-ahead child's runs.

:class:`Intake` is a part of :class:`drumfire._engine.Engine` (see
:mod:`drumfire._core`). Rows come one at a time (``_next_flight``), a batch of
them for a pipelined fill (``_next_flights``), both read by one loop
(``_read``), or, while a read-ahead child sends the usual chunk (every row a
request to one origin, no kept columns), as a slice of that chunk's ids and
request bytes (``_take_run``): the fill then makes each row's
:class:`~drumfire._rows.Flight` already sent, in one pass, with none of the
per-row checks a row of unknown kind needs.
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
        """The next row to start: one waiting (``_ready``), or one read (:meth:`_read`)."""
        if self._ready:
            return self._ready.popleft()
        order = self._order
        if order is not None and order.ahead(self._seq) >= self.order_window:
            return None  # the oldest row holds the window; wait for it
        flights = self._read(1)
        return flights[0] if flights else None

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
        return self._read(most)

    def _read(self, most: int) -> list[Flight]:
        """Up to ``most`` rows read from the input that start a request, each numbered by
        its place; the rows between them that start nothing (kept by --resume: skipped;
        input and template errors: emitted) take their numbers too. Stops early at the
        input's end, at WAIT (a worker's rows not come yet), and after PASS_AT_ONCE rows
        that start nothing (the loop then reads the answers in flight)."""
        if most <= 0 or not self._may_read():
            return []
        out: list[Flight] = []
        make = self.rows.make
        usual = self._usual
        stats = self.stats
        seq = self._seq
        passed = 0  # rows read that start no request
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
                # A source item, or what Rows.make made of one in a read-ahead process.
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
                    if passed >= PASS_AT_ONCE:
                        # Let the loop read the answers in flight (their elapsed_ms runs
                        # until it does: --retry-failed read 100,000 kept rows between two
                        # sends).
                        if not out:
                            self._pump_later(0.0)
                        break
            else:
                self._exhausted = True
        except Exception as exc:  # an unreadable input: raised after the rows before it
            if not out:  # (they are started first)
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

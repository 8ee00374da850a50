"""Rows: what a source yields, and what each input row becomes before it is sent.

Below both the sources and the engine (it imports neither): the sources yield
:data:`Item` values, and every driver (the in-process engine, the read-ahead
child, the worker processes' parent) turns them into requests with one
:class:`Rows` object, so the row -> id / duplicate / ``--resume`` skip /
prepared request logic is written once::

    Item --Rows.screen--> id | SKIPPED | InputProblem | Result (--resume: its file is saved)
         --Rows.make----> Flight | Result (input or template error, saved file) | SKIPPED
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._request import Prepared
from ._result import Result, Stats
from ._savebody import RowOutcome

if TYPE_CHECKING:
    from ._limits import OriginLimit
    from ._resume import DuplicateCounter

__all__ = [
    "INPUT_ERROR_ID",
    "SKIPPED",
    "WAIT",
    "Flight",
    "InputProblem",
    "Item",
    "Rows",
    "row_id",
]


class InputProblem:
    """A source item that could not be read as a row; becomes an ``input`` error row."""

    __slots__ = ("line", "message")

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message

    def __repr__(self) -> str:
        return f"InputProblem(line={self.line}, {self.message!r})"


#: What a source yields: (1-based row number, the row or a problem).
Item = tuple[int, "Mapping[str, Any] | InputProblem"]

#: A source item meaning "no row yet, but more may come" (worker processes fed
#: through a pipe); the engine waits for :meth:`Engine.wake <drumfire._engine.Engine.wake>`.
WAIT: Item = (0, InputProblem(0, "waiting for rows"))

#: What :meth:`Rows.make` returns for a row whose result the output already holds.
SKIPPED = object()

#: The id of an ``input: line N: ...`` row: no real row has it (a row without an
#: id value takes its row number), so ``--resume`` never mistakes one for the
#: other; such a row is known by the line in its error instead.
INPUT_ERROR_ID = ""


def row_id(row: Mapping[str, Any], line: int, column: str | None) -> str:
    """The row's id: its ``column`` value if set and non-empty, else its row number."""
    if column is not None:
        value = row.get(column)
        if value is not None and value != "":
            return value if type(value) is str else str(value)
    return str(line)


class Flight:
    """One row from its preparation to its result: sent, waiting for a retry, or parked.

    Slotted: there are up to ``concurrency`` + retries alive. ``seq`` is the
    row's place in the input, given by the engine that takes it (-1 before).
    """

    __slots__ = ("attempts", "free_retry", "hops", "host", "id", "prepared", "row", "seq", "start")

    def __init__(self, seq: int, id_: str, row: Mapping[str, Any], prepared: Prepared) -> None:
        self.seq = seq
        self.id = id_
        self.row = row
        self.prepared = prepared
        self.attempts = 0
        self.start = 0.0
        # One immediate re-send, on a new connection, after a kept-alive one
        # turned out to be closed; it does not use the retry budget.
        self.free_retry = True
        self.hops = 0  # redirects followed: like the free re-send, not counted as retries
        self.host: OriginLimit | None = None  # its origin's limits, once the engine looked


class Rows:
    """Turns source items into attempts, error rows or skips; no event loop, no network.

    ``prepare``: the plan's row -> request bytes (``None``: :meth:`make` is not
    used, only :meth:`screen`). ``id_column``: where a row's id is (else its row
    number). ``keep``: input columns copied to the output. ``skip`` and
    ``skip_problem`` (``--resume``): ids, and input-error lines, whose rows the
    output already holds. ``saved`` (``--resume`` with ``--save-body``, asked only
    with ``skip``): for a row the output does not hold, ``saved(id, row)`` gives
    the fields of its file when that is already complete, and the row is written
    without a request. ``duplicates``: ids seen so far, to count repeats.
    """

    __slots__ = ("duplicates", "id_column", "keep", "prepare", "saved", "skip", "skip_problem")

    def __init__(
        self,
        prepare: Callable[[Mapping[str, Any]], Prepared] | None,
        *,
        id_column: str | None = None,
        keep: tuple[str, ...] = (),
        skip: Callable[[str], bool] | None = None,
        skip_problem: Callable[[int], bool] | None = None,
        saved: Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
        duplicates: DuplicateCounter | None = None,
    ) -> None:
        self.prepare = prepare
        self.id_column = id_column
        self.keep = keep
        self.skip = skip
        self.skip_problem = skip_problem
        self.saved = saved
        self.duplicates = duplicates

    def kept(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The ``keep`` columns of ``row`` (None when none are kept)."""
        if not self.keep:
            return None
        return {c: row.get(c) for c in self.keep}

    def screen(self, item: Item, counts: Stats) -> str | InputProblem | Result | object:
        """An item's id, its :class:`InputProblem`, or :data:`SKIPPED` (``--resume``),
        or (``--resume``, ``saved``) the row of a file already complete.

        A repeated id is counted in ``counts.duplicates`` (the run's
        :class:`~drumfire._result.Stats`); its row is still sent.
        """
        line, row = item
        if isinstance(row, InputProblem):
            if self.skip_problem is not None and self.skip_problem(row.line):
                return SKIPPED
            return row
        id_ = row_id(row, line, self.id_column)
        if self.duplicates is not None and self.duplicates.add(id_):
            counts.duplicates += 1
        if self.skip is not None:  # --resume: nothing more to ask on other runs
            if self.skip(id_):
                return SKIPPED
            if self.saved is not None:
                fields = self.saved(id_, row)
                if fields is not None:
                    return Result(id_, None, 0.0, 0, "", fields, self.kept(row))
        return id_

    def make(self, item: Item, counts: Stats) -> Flight | Result | object:
        """What a source item becomes: a :class:`Flight`, an error row, or :data:`SKIPPED`.

        Needs no event loop and no network: a read-ahead process runs it too
        (its flights get their ``seq`` from the engine that takes them).
        """
        id_ = self.screen(item, counts)
        if not isinstance(id_, str):
            if id_ is SKIPPED or isinstance(id_, Result):
                return id_
            assert isinstance(id_, InputProblem)
            return Result(INPUT_ERROR_ID, None, 0.0, 0, f"input: line {id_.line}: {id_.message}")
        line, row = item
        assert not isinstance(row, InputProblem)
        assert self.prepare is not None
        try:
            prepared = self.prepare(row)
        except KeyError as exc:
            return Result(
                id_,
                None,
                0.0,
                0,
                f"template: row {line} has no column {exc.args[0]!r}",
                None,
                self.kept(row),
            )
        except RowOutcome as exc:  # file options: a file that cannot be sent or saved
            return Result(id_, None, 0.0, 0, exc.error, None, self.kept(row))
        except ValueError as exc:
            return Result(id_, None, 0.0, 0, f"template: row {line}: {exc}", None, self.kept(row))
        return Flight(-1, id_, row, prepared)

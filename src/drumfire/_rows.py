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

import numbers
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import count
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import InputError
from ._request import Prepared
from ._result import Result, Stats
from ._savebody import RowOutcome
from ._template import as_text
from ._values import is_missing

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
    "LineMap",
    "Rows",
    "UsualRun",
    "UsualRuns",
    "check_unique_columns",
    "item_ids",
    "raising",
    "row_id",
    "row_place",
]


class InputProblem:
    """A source item that could not be read as a row; becomes an ``input`` error row."""

    __slots__ = ("line", "message")

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message

    def __repr__(self) -> str:
        return f"InputProblem(line={self.line}, {self.message!r})"

    def result(self) -> Result:
        """Its row: no id (none could be read), no request, the line and what is wrong."""
        return Result(INPUT_ERROR_ID, None, 0.0, 0, f"input: line {self.line}: {self.message}")


_new_prepared = tuple.__new__  # Prepared(...) without NamedTuple's Python-level __new__
_NO_ROW: Any = None  # the row of a read-ahead flight: its kept columns (none) stay in the child


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
    """The row's id: its ``column`` value if set and non-empty, else its row number.

    A missing value as pandas has it (a NaN, ``pd.NA``, ``NaT``: a DataFrame's
    empty cell of a float, nullable or time column) is empty too, not the text
    ``nan``, which every such row shared. Text is taken as written: a CSV cell
    ``NaN`` or ``NA`` (Namibia's code) is an id.
    """
    if column is not None:
        value = row.get(column)
        if type(value) is str:
            if value:
                return value
        elif type(value) is int:
            return str(value)
        elif value is not None and not _missing(value):
            # A boolean, object or list as its JSON text, as a template inserts it.
            return as_text(value)
    return str(line)


def _missing(value: Any) -> bool:
    """A NaN (Python's, numpy's, a ``Decimal``'s) or pandas' ``NA``/``NaT``."""
    if isinstance(value, float):  # numpy's float64 too
        return value != value
    if isinstance(value, numbers.Number):  # numpy's other floats, Decimal
        try:
            return bool(value != value)
        except (ArithmeticError, TypeError):  # a signalling Decimal NaN
            return True
    return is_missing(value)  # pandas' NA, NaT


def item_ids(items: Iterable[Item], column: str | None) -> Iterator[str]:
    """The id of every row of ``items``, as :meth:`Rows.screen` gives it (input
    problems have none): what ``--resume`` counts before sending (see
    :meth:`Resumed.settle_shared <drumfire._resume.Resumed.settle_shared>`)."""
    for line, row in items:
        if not isinstance(row, InputProblem):
            yield row_id(row, line, column)


class LineMap:
    """On which input line each row of a line-based input (CSV, JSON Lines, text) starts.

    Row ``n`` starts on line ``n + shift``, and the shift changes only where
    the input is irregular (a blank line skipped, a record over several lines,
    a runaway quote): the source :meth:`mark` s the row's first line, and only
    the rows where the shift changes are kept. So a ``template:`` error row
    names its input line, as an ``input:`` one does, at the cost of one
    comparison per row in the source. At most :attr:`LIMIT` changes are kept
    (the latest): a row older than those has no known line (``None``).
    """

    __slots__ = ("_at", "_rows", "_shifts")

    LIMIT = 1 << 20

    def __init__(self) -> None:
        self._rows = array("q")  # rows where a shift starts, ascending
        self._shifts = array("q")
        self._at = (0, 0)  # rows and lines before this input's first ones (see moved)

    def moved(self, rows: int, lines: int) -> None:
        """The input is part of a larger one (a ``--cluster`` part): ``rows`` rows and
        ``lines`` lines come before it. :meth:`line_of` and :meth:`between` then
        take and give the larger input's numbers; :meth:`mark` keeps the part's."""
        self._at = (rows, lines)

    def mark(self, n: int, line: int) -> None:
        """Row ``n`` starts on ``line`` (and so do the rows after it, one line each)."""
        rows, shifts = self._rows, self._shifts
        if rows and (n <= rows[-1] or shifts[-1] == line - n):
            return  # known already (marks come in row order), or no change
        rows.append(n)
        shifts.append(line - n)
        if len(shifts) > self.LIMIT:
            half = self.LIMIT // 2
            del rows[:half]
            del shifts[:half]

    def line_of(self, n: int) -> int | None:
        """The line where row ``n`` starts, if known."""
        rows, lines = self._at
        n -= rows
        i = bisect_right(self._rows, n) - 1
        return n + self._shifts[i] + lines if i >= 0 else None

    def between(self, first: int, last: int) -> list[tuple[int, int]]:
        """What :meth:`line_of` needs for rows ``first`` to ``last``: (row, line) marks."""
        at_rows, at_lines = self._at
        rows, shifts = self._rows, self._shifts
        lo = max(bisect_right(rows, first - at_rows) - 1, 0)
        hi = bisect_right(rows, last - at_rows)
        return [(rows[i] + at_rows, rows[i] + shifts[i] + at_lines) for i in range(lo, hi)]

    def extend(self, marks: Iterable[tuple[int, int]]) -> None:
        """Take marks from :meth:`between` of another map (a worker's from its parent's)."""
        for n, line in marks:
            self.mark(n, line)


def row_place(n: int, line_of: Callable[[int], int | None] | None) -> str:
    """How an error row names row ``n``: ``line L`` when its input line is known, else ``row n``."""
    line = line_of(n) if line_of is not None else None
    return f"line {line}" if line is not None else f"row {n}"


def raising(exc: Exception) -> Iterator[Item]:
    """Items that end at once with ``exc``: what an input raised, for the next pull."""
    raise exc
    yield  # a generator: it raises when pulled


class Flight:
    """One row from its preparation to its result: sent, waiting for a retry, or parked.

    Slotted: there are up to ``concurrency`` + retries alive. ``seq`` is the
    row's place in the input, given by the engine that takes it (-1 before).
    """

    __slots__ = (
        "attempts",
        "free_retry",
        "hops",
        "host",
        "id",
        "prepared",
        "row",
        "seq",
        "start",
        "took",
    )

    def __init__(
        self,
        seq: int,
        id_: str,
        row: Mapping[str, Any],
        prepared: Prepared,
        attempts: int = 0,
        start: float = 0.0,
        host: OriginLimit | None = None,
    ) -> None:
        self.seq = seq
        self.id = id_
        self.row = row
        self.prepared = prepared
        self.attempts = attempts
        self.start = start  # when its attempt was sent
        # How long its last finished attempt took, kept while it waits for the
        # next: a row cancelled then reports that, not the wait (``elapsed_ms``).
        self.took = 0.0
        # One immediate re-send, on a new connection, after a kept-alive one
        # turned out to be closed; it does not use the retry budget.
        self.free_retry = True
        self.hops = 0  # redirects followed: attempts, but not counted as retries
        self.host = host  # its origin's limits, once the engine looked


class UsualRun:
    """Rows of a read-ahead child's usual chunk, taken together: each row a request with
    no kept columns to ``origin`` by ``method``; ``ids`` and ``data`` each row's id and
    request bytes. ``pipelinable``: every request is a GET without a body (it may be
    queued on a busy connection). ``seq``: the first row's place in the input (set by
    the engine that takes them).
    """

    __slots__ = ("data", "idempotent", "ids", "method", "origin", "pipelinable", "seq")

    def __init__(
        self,
        ids: list[str],
        data: list[bytes],
        origin: Any,
        method: str,
        idempotent: bool,
        pipelinable: bool,
    ) -> None:
        self.ids = ids
        self.data = data
        self.origin = origin
        self.method = method
        self.idempotent = idempotent
        self.pipelinable = pipelinable
        self.seq = -1

    def flight(self, i: int) -> Flight:
        """Row ``i``'s flight, not sent yet (for the engine that takes rows one by one)."""
        prepared = (self.origin, self.data[i], self.method, self.idempotent)
        return Flight(-1, self.ids[i], _NO_ROW, _new_prepared(Prepared, prepared))

    def flights(self, now: float = 0.0, host: OriginLimit | None = None) -> list[Flight]:
        """The rows' flights: sent at ``now`` to ``host`` (their first attempt), or
        (without ``host``) not sent yet."""
        at, how, idem = self.origin, self.method, self.idempotent
        new = _new_prepared
        tried = 0 if host is None else 1
        return [
            Flight(seq, id_, _NO_ROW, new(Prepared, (at, data, how, idem)), tried, now, host)
            for seq, id_, data in zip(count(self.seq), self.ids, self.data, strict=False)
        ]


class UsualRuns(Protocol):
    """Where the engine takes :class:`UsualRun` pieces (a read-ahead child's pipe)."""

    def take(self, most: int) -> UsualRun | None:
        """Up to ``most`` rows of the current usual chunk; None when the next rows
        are not such a run, or have not arrived (the item path reads them)."""


class Rows:
    """Turns source items into attempts, error rows or skips; no event loop, no network.

    ``prepare``: the plan's row -> request bytes (``None``: :meth:`make` is not
    used, only :meth:`screen`). ``id_column``: where a row's id is (else its row
    number). ``keep``: input columns copied to the output. ``skip`` and
    ``skip_problem`` (``--resume``): ids, and input-error lines, whose rows the
    output already holds. ``saved`` (``--resume`` with ``--save-body``, asked only
    with ``skip``): for a row the output does not hold, ``saved(id, row)`` gives
    the fields of its file when that is already complete, and the row is written
    without a request. ``duplicates``: ids seen so far, to count repeats; not kept
    without ``id_column``, where every id is its row's number, unique by construction
    (a set of a million such ids holds about 90 MB, and costs a look-up per row).
    ``line_of``: a row number's input line (:meth:`LineMap.line_of`), for the
    ``template:`` error rows; without it they name the row number.
    """

    __slots__ = (
        "duplicates",
        "id_column",
        "keep",
        "line_of",
        "prepare",
        "saved",
        "skip",
        "skip_problem",
    )

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
        line_of: Callable[[int], int | None] | None = None,
    ) -> None:
        self.prepare = prepare
        self.line_of = line_of
        self.id_column = id_column
        self.keep = keep
        self.skip = skip
        self.skip_problem = skip_problem
        self.saved = saved
        self.duplicates = duplicates if id_column is not None else None

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

    def usual_maker(self, counts: Stats) -> Callable[[Item], tuple[str, Prepared] | None] | None:
        """:meth:`make` for the usual row, without a :class:`Flight`: ``(id, request)``.

        The function returns None for any other row (an input problem, an id that is
        not a non-empty text, a row the template refuses), which :meth:`make` then
        takes, from the start. None instead of a function with ``--resume`` or kept
        columns. For the read-ahead child, which sends only ids and request bytes.
        """
        prepare = self.prepare
        if prepare is None or self.skip is not None or self.keep:
            return None
        column = self.id_column
        duplicates = self.duplicates

        def usual(item: Item) -> tuple[str, Prepared] | None:
            line, row = item
            if type(row) is not dict:  # an InputProblem, or a mapping of another kind
                return None
            id_ = str(line) if column is None else row.get(column)
            if type(id_) is not str or not id_:
                return None  # row_id's other cases
            try:
                prepared = prepare(row)
            except Exception:  # make prepares it again, and says why
                return None
            if duplicates is not None and duplicates.add(id_):
                counts.duplicates += 1
            return id_, prepared

        return usual

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
            return id_.result()
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
                f"template: {row_place(line, self.line_of)} has no column {exc.args[0]!r}",
                None,
                self.kept(row),
            )
        except RowOutcome as exc:  # file options: a file that cannot be sent or saved
            return Result(id_, None, 0.0, 0, exc.error, None, self.kept(row))
        except ValueError as exc:
            error = f"template: {row_place(line, self.line_of)}: {exc}"
            return Result(id_, None, 0.0, 0, error, None, self.kept(row))
        return Flight(-1, id_, row, prepared)


def check_unique_columns(names: list[str], what: str) -> None:
    """One line when ``what`` (a DataFrame, an Arrow table, a Parquet input) names a column twice.

    A row is a mapping: of two columns with one name (``a`` twice, or ``1`` and
    ``"1"``, which a template names alike), one would be sent and the other
    never, silently, as a CSV header naming a column twice is refused.
    """
    dupes = sorted(n for n, count in Counter(names).items() if count > 1)
    if dupes:
        raise InputError(
            f"{what} names columns more than once: {', '.join(map(repr, dupes))}; "
            "give each column its own name"
        )

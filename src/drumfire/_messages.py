"""The drivers' message protocol: what crosses a pipe between processes, one type per message.

A driver runs the engine somewhere and moves rows in and results out. The
in-process driver (:mod:`drumfire._batch`) calls the engine's public methods;
the two that cross a process boundary speak these messages, each a
:class:`~typing.NamedTuple` with its encoding next to it:

* worker processes (:mod:`drumfire._parallel`), orjson bytes over a pipe:
  parent -> worker :class:`RowChunk`, :class:`End`, :class:`Stop`;
  worker -> parent :class:`ResultBatch`, :class:`Status`, :class:`Load`, :class:`Done`.
  Results carry their row's sequence number (the parent puts them in order).
* the read-ahead child (:mod:`drumfire._readahead`), pickled over a pipe:
  child -> parent :class:`PreparedChunk`.

The bytes on the wire are what they were before the types (a chunk is a
JSON array, the controls are short words): decoding is a few comparisons
and one ``orjson.loads``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import orjson

from ._result import Result
from ._values import mark_floats, pipe_dumps, pipe_loads

__all__ = [
    "Done",
    "End",
    "Load",
    "PreparedChunk",
    "ResultBatch",
    "RowChunk",
    "Status",
    "Stop",
    "ToParent",
    "ToWorker",
    "from_parent",
    "from_worker",
]


class RowChunk(NamedTuple):
    """Parent -> worker: rows to send, each ``[seq, line, row | None, problem | None]``.

    ``problem``: the message of an input line that could not be read (``row`` is None).
    ``lines``: where these rows start in the input, as ``[row, line]`` marks
    (:meth:`LineMap.between <drumfire._rows.LineMap.between>`; empty when the
    input has rows, not lines).
    """

    rows: list[list[Any]]
    lines: list[tuple[int, int]]

    def encode(self, floats: frozenset[str] | None = None) -> bytes:
        """``floats``: the columns whose values may hold a NaN or an infinity, the only
        ones looked at (an Arrow input's float columns; none for text); None: any
        value may (Python rows), each is looked at (see ``pipe_dumps``)."""
        # A value JSON has no type for goes as its text, a NaN as itself (see _values).
        message = [self.rows, self.lines]
        if floats is None:
            return pipe_dumps(message)
        return pipe_dumps(message, bool(floats), lambda _: [_marked(self.rows, floats), self.lines])


def _marked(rows: list[list[Any]], columns: frozenset[str]) -> list[list[Any]]:
    """``rows`` with the NaN and infinities of ``columns`` marked; ``rows`` if they have none."""
    out: list[list[Any]] | None = None
    for i, entry in enumerate(rows):
        row = entry[2]
        if row is None:  # an input problem
            continue
        changed: dict[str, Any] | None = None
        for column in columns:
            value = row.get(column)
            if value is None:
                continue
            marked = mark_floats(value)
            if marked is not value:
                if changed is None:
                    changed = dict(row)
                changed[column] = marked
        if changed is not None:
            if out is None:
                out = list(rows)
            out[i] = [entry[0], entry[1], changed, entry[3]]
    return rows if out is None else out


class End(NamedTuple):
    """Parent -> worker: no more rows; finish those you have."""

    def encode(self) -> bytes:
        return b"END"


class Stop(NamedTuple):
    """Parent -> worker: stop now (Ctrl-C), or because the target is unreachable;
    ``now``: a second Ctrl-C, the rows in flight end at once (no grace)."""

    unreachable: bool = False
    now: bool = False

    def encode(self) -> bytes:
        if self.unreachable:
            return b"UNREACHABLE"
        return b"STOP NOW" if self.now else b"STOP"


class ResultBatch(NamedTuple):
    """Worker -> parent: results, each ``[seq, *Result]`` (seq: the parent's number)."""

    rows: list[list[Any]]

    def encode(self, floats: bool = True) -> bytes:
        """``floats``: whether a result may hold a NaN or an infinity (see ``pipe_dumps``)."""
        return pipe_dumps(self.rows, floats)

    def results(self) -> Iterator[tuple[int, Result]]:
        for seq, id_, status, elapsed, attempts, error, fields, kept in self.rows:
            yield seq, Result(id_, status, elapsed, attempts, error, fields, kept)


class Status(NamedTuple):
    """Worker -> parent: the summary's failure examples, and whether the target is unreachable."""

    examples: dict[str, str]
    unreachable: str | None

    def encode(self) -> bytes:
        return orjson.dumps({"examples": self.examples, "unreachable": self.unreachable})


class Load(NamedTuple):
    """Worker -> parent: what its engine holds now, for the parent's dealing and progress line.

    Its requests in flight and its concurrency limit; ``parked``: its rows parked
    for origins their server holds (the parent deals it rows past them);
    ``retrying``: its rows sleeping before a retry; ``held``: the origins held, each
    ``(host, seconds left, why)`` as :attr:`Stats.held <drumfire._result.Stats.held>`.
    """

    inflight: int
    limit: int
    parked: int = 0
    retrying: int = 0
    held: tuple[tuple[str, float, str], ...] = ()

    def encode(self) -> bytes:
        return orjson.dumps({"load": [*self[:4], self.held]})


class Done(NamedTuple):
    """Worker -> parent: every row this worker started has its result; after a Stop
    (or the target found unreachable), those it had not started have none."""

    def encode(self) -> bytes:
        return b"DONE"


ToWorker = RowChunk | End | Stop
ToParent = ResultBatch | Status | Load | Done

_END = End()
_STOP = Stop()
_UNREACHABLE = Stop(unreachable=True)
_STOP_NOW = Stop(now=True)
_DONE = Done()


def from_parent(data: bytes) -> ToWorker:
    """Decode a message a worker received."""
    if data == b"END":
        return _END
    if data == b"STOP":
        return _STOP
    if data == b"STOP NOW":
        return _STOP_NOW
    if data == b"UNREACHABLE":
        return _UNREACHABLE
    rows, lines = pipe_loads(data)  # a JSON Lines row's big integer stays exact
    return RowChunk(rows, [(n, line) for n, line in lines])


def from_worker(data: bytes) -> ToParent:
    """Decode a message the parent received."""
    if data == b"DONE":
        return _DONE
    decoded = pipe_loads(data)
    if type(decoded) is dict:
        if "load" in decoded:
            inflight, limit, parked, retrying, held = decoded["load"]
            holds = tuple((host, left, why) for host, left, why in held)
            return Load(inflight, limit, parked, retrying, holds)
        return Status(decoded["examples"], decoded["unreachable"])
    return ResultBatch(decoded)


class PreparedChunk(NamedTuple):
    """Read-ahead child -> parent: prepared rows, in input order (pickled).

    ``entries``: per item, ``(id, prepared request fields, kept columns)``, or
    None (skipped by ``--resume``), or an error :class:`~drumfire._result.Result`
    (or none, and ``common``, ``ids`` and ``data``: see below).
    ``duplicates``: repeated ids seen since the last message. ``end``: None
    while more follow; "" at the end of the input; else why reading failed.
    """

    entries: list[Any]
    duplicates: int
    end: str | None
    #: The usual chunk, in place of ``entries``: every item a row to send, with no
    #: kept columns, to one origin with one method. ``common`` is
    #: ``(origin, method, idempotent)``, ``ids`` and ``data`` each row's id and
    #: request bytes (two lists unpickle faster than a tuple per row).
    common: tuple[Any, str, bool] | None = None
    ids: list[str] | None = None
    data: list[bytes] | None = None

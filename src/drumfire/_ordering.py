"""Results back in input order (``--ordered``): the one reorder buffer of every driver.

The in-process engine and the worker processes' parent both number rows as
they read them and hand each result here with its number; a result that
finishes before an older row is held until that row's result (or its skip)
is in. The reader bounds how far it runs ahead with :meth:`Reorder.ahead`,
so one slow row holds at most a window of results in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Reorder"]

T = TypeVar("T")


class Reorder(Generic[T]):
    """Hands results to ``emit`` in sequence order, holding those that come early.

    ``put(seq, None)`` marks a row without a result to write (``--resume``
    skipped it), so the rows after it are not held for ever.
    """

    __slots__ = ("emit", "held", "next")

    def __init__(self, emit: Callable[[T], object]) -> None:
        self.emit = emit
        self.held: dict[int, T | None] = {}
        self.next = 0  # the sequence number of the oldest row without its result

    def ahead(self, seq: int) -> int:
        """How far row ``seq`` is past the oldest row still waiting for its result."""
        return seq - self.next

    def put(self, seq: int, result: T | None) -> None:
        """Row ``seq`` ended with ``result`` (None: nothing to write); emit what is in order."""
        if seq != self.next:
            self.held[seq] = result
            return
        if result is not None:
            self.emit(result)
        self.next += 1
        held = self.held
        while held:
            nxt = self.next
            if nxt not in held:
                break
            result = held.pop(nxt)
            if result is not None:
                self.emit(result)
            self.next = nxt + 1

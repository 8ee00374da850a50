"""Rows parked for a held origin, past what memory keeps: a first-in first-out file on disk.

A server that pauses an origin (a ``Retry-After`` hold, a spent quota) leaves
its rows parked while the rows of other origins go on. The engine bounds the
rows parked in memory; past half that bound, the rows of a held origin are
written here (``TMPDIR``, an unlinked temporary file) and read back once the
hold is over, so the reader can go on to the other origins' rows and memory
stays bounded: what grows is the file, by about the size of each row's
request and input values.

A row is written as a tuple of its :class:`~drumfire._rows.Flight`'s fields
(pickled: rows may hold any value a source gives), its origin's limits left
out (they are the engine's, given back on reading).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from typing import IO, TYPE_CHECKING

from ._rows import Flight

if TYPE_CHECKING:
    from ._limits import OriginLimit

__all__ = ["Spill", "SpillRefused"]


class SpillRefused(Exception):
    """A row could not be written (a value pickle cannot take, a full disk): keep it in memory."""


class Spill:
    """One held origin's rows on disk, oldest first: :meth:`put` one, :meth:`take` some back."""

    __slots__ = ("_file", "_read", "_write", "count")

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._read = 0  # where the oldest row not taken back starts
        self._write = 0  # where the next row goes
        self.count = 0  # rows in the file, not taken back

    def put(self, flight: Flight) -> None:
        """Write ``flight`` after the others.

        Raises:
            SpillRefused: it cannot be written; nothing was.
        """
        record = (
            flight.seq,
            flight.id,
            flight.row,
            flight.prepared,
            flight.attempts,
            flight.took,
            flight.free_retry,
            flight.hops,
        )
        try:
            data = pickle.dumps(record, pickle.HIGHEST_PROTOCOL)
            if self._file is None:
                # Kept open across calls, closed by close() (the run's end): no `with`.
                self._file = tempfile.TemporaryFile(prefix="drumfire-parked-")  # noqa: SIM115
            file = self._file
            file.seek(self._write)
            file.write(data)
            # On disk before it counts: a full disk found at a later flush (the next
            # put's seek, take's) would lose this row, or stop take with the rows
            # written before it.
            file.flush()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SpillRefused(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            self._drop_unwritten()
            raise SpillRefused(f"{type(exc).__name__}: {exc}") from exc
        self._write += len(data)
        self.count += 1

    def _drop_unwritten(self) -> None:
        """Forget the bytes a failed write left in the file's buffer.

        A buffered file keeps what it could not write and tries again at its next
        seek: take's would fail too on a disk still full. The same file, through
        a new descriptor, with an empty buffer (what was left is past ``_write``,
        where no row is counted).
        """
        file = self._file
        if file is None:
            return
        fd = os.dup(file.fileno())
        with contextlib.suppress(OSError):
            file.close()  # its flush fails again; the descriptor is closed anyway
        self._file = os.fdopen(fd, "r+b")

    def take(self, most: int, host: OriginLimit) -> list[Flight]:
        """The ``most`` oldest rows (fewer if there are not as many), back to ``host``."""
        file = self._file
        n = min(most, self.count)
        if file is None or n <= 0:
            return []
        file.seek(self._read)
        taken: list[Flight] = []
        for _ in range(n):
            seq, id_, row, prepared, attempts, took, free_retry, hops = pickle.load(file)
            flight = Flight(seq, id_, row, prepared)
            flight.attempts = attempts
            flight.took = took
            flight.free_retry = free_retry
            flight.hops = hops
            flight.host = host
            taken.append(flight)
        self._read = file.tell()
        self.count -= n
        if not self.count:  # all taken back: the file's space is used again
            file.seek(0)
            file.truncate()
            self._read = self._write = 0
        return taken

    def close(self) -> None:
        """Remove the file (it has no name: closing it frees its space)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.count = 0
        self._read = self._write = 0

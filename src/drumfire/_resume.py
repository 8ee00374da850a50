"""Resuming a batch from an existing output file, and noticing duplicate ids.

A run killed with SIGKILL can leave a torn last line (half of a CSV row or of
a JSON object). :func:`repair_tail` cuts the file back to its last newline so
that line is neither parsed as data nor left in the way of appended rows; the
row it belonged to is simply sent again.

Ids already done are kept as a sorted ``array('q')`` of 64-bit hashes (8 bytes
an id instead of ~70 for a set of strings), so resuming a 10-million-row
output stays within the memory bound.
"""

from __future__ import annotations

import csv
import hashlib
import os
from array import array
from bisect import bisect_left
from collections.abc import Iterator

import orjson

from ._errors import UsageError

__all__ = ["DoneIds", "DuplicateCounter", "load_done_ids", "repair_tail"]


def _key(value: str) -> int:
    # A stable hash (not Python's salted hash()): identical across processes and runs.
    return int.from_bytes(
        hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
        "little",
        signed=True,
    )


class DoneIds:
    """The ids of an existing output, as a multiset: 9 bytes an id.

    :meth:`take` answers "is there a result for this input row already?" and
    uses that result up, so an id that appears twice in the input and once in
    the output is sent once more on resume, not skipped twice.
    """

    __slots__ = ("_keys", "_used")

    def __init__(self, ids: Iterator[str]) -> None:
        keys = array("q", (_key(i) for i in ids))
        self._keys = array("q", sorted(keys))
        self._used = bytearray(len(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        k = _key(value)
        keys = self._keys
        i = bisect_left(keys, k)
        return i < len(keys) and keys[i] == k

    def take(self, value: str) -> bool:
        """True (and mark it used) if an unused result for ``value`` exists."""
        k = _key(value)
        keys, used = self._keys, self._used
        i = bisect_left(keys, k)
        n = len(keys)
        while i < n and keys[i] == k:
            if not used[i]:
                used[i] = 1
                return True
            i += 1
        return False


def repair_tail(path: str) -> int:
    """Cut a torn last line (no final newline) off ``path``; return the bytes removed."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        pos = size
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl != -1:
                cut = start + nl + 1
                f.truncate(cut)
                return size - cut
            pos = start
        f.truncate(0)
        return size


def _csv_ids(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        if not header or header[0] != "id":
            raise UsageError(
                f"--resume: {path!r} does not look like drumfire output "
                "(its first column is not 'id')"
            )
        for row in reader:
            if row:
                yield row[0]


def _jsonl_ids(path: str) -> Iterator[str]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UsageError(f"--resume: line {n} of {path!r} is not JSON") from None
            if not isinstance(value, dict) or "id" not in value:
                raise UsageError(f"--resume: line {n} of {path!r} has no 'id'")
            yield str(value["id"])


def load_done_ids(path: str, fmt: str) -> tuple[DoneIds, bool]:
    """Repair ``path`` and read its ids; returns (ids, whether a header exists)."""
    if fmt in ("parquet", "sqlite"):  # typed outputs: their own modules read them
        from ._parquet import load_parquet_ids
        from ._sqlite import load_sqlite_ids

        return load_parquet_ids(path) if fmt == "parquet" else load_sqlite_ids(path)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return DoneIds(iter(())), False
    repair_tail(path)
    if os.path.getsize(path) == 0:
        return DoneIds(iter(())), False
    try:
        ids = DoneIds(_csv_ids(path) if fmt == "csv" else _jsonl_ids(path))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"--resume: cannot read {path!r}: {exc}") from None
    return ids, True


class DuplicateCounter:
    """Counts ids seen more than once, exactly, for the first ``limit`` ids.

    Past ``limit`` it stops checking (and says so), so memory stays bounded on
    inputs of any size.
    """

    __slots__ = ("count", "examples", "limit", "seen")

    def __init__(self, limit: int = 1_000_000) -> None:
        self.seen: set[str] | None = set()
        self.limit = limit
        self.count = 0
        self.examples: list[str] = []

    def add(self, id_: str) -> bool:
        seen = self.seen
        if seen is None:
            return False
        if id_ in seen:
            self.count += 1
            if len(self.examples) < 5:
                self.examples.append(id_)
            return True
        seen.add(id_)
        if len(seen) >= self.limit:
            self.seen = None
        return False

    @property
    def complete(self) -> bool:
        return self.seen is not None

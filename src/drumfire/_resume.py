"""Resuming a batch from an existing output file, and noticing duplicate ids.

A run killed with SIGKILL can leave a torn last line (half of a CSV row or of
a JSON object). :func:`repair_tail` cuts the file back to its last newline (CSV:
the last one outside quotes, as a quoted cell may hold line breaks) so that row
is neither parsed as data nor left in the way of appended rows; it is simply
sent again.

Ids already done are kept as a sorted ``array('q')`` of 64-bit hashes (8 bytes
an id instead of ~70 for a set of strings), so resuming a 10-million-row
output stays within the memory bound.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from ._errors import InputError, Reason, UsageError
from ._sinks import TABLE_FORMATS, csv_writers, has_cr

__all__ = [
    "RETRY_FAILED_DEFAULT",
    "TRANSPORT",
    "DoneIds",
    "DuplicateCounter",
    "Record",
    "Resumed",
    "Selection",
    "input_error_line",
    "repair_tail",
    "scan_output",
    "write_kept",
]

#: Every reason --retry-failed and --fail-on-error accept (see drumfire.Reason).
_REASONS = tuple(r.value for r in Reason)


#: A date-time as Python's str() writes it: a space between the date and the time.
_SPACED_DATETIME = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?"
).fullmatch


def _key(value: str) -> int:
    """The id's 64-bit key: a stable hash (not Python's salted hash()), identical
    across processes and runs.

    A date-time written with a space (``2024-01-02 00:00:00``, Python's str(), the
    id a ``datetime`` or ``Timestamp`` got before ids became ISO 8601) has the key
    of its ISO 8601 spelling with ``T``: the output of an earlier run holds the old
    spelling, and resuming it must not send those rows again.
    """
    if len(value) > 18 and value[10] == " " and _SPACED_DATETIME(value) is not None:
        value = value[:10] + "T" + value[11:]
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

    def __init__(self, ids: Iterable[str] = (), keys: array[int] | None = None) -> None:
        if keys is None:
            keys = array("q", (_key(i) for i in ids))
        self._keys = array("q", sorted(keys))
        self._used = bytearray(len(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, str) or not self._keys:  # none: no hash to make
            return False
        k = _key(value)
        keys = self._keys
        i = bisect_left(keys, k)
        return i < len(keys) and keys[i] == k

    def keys(self) -> array[int]:
        """The ids' 64-bit keys, sorted (as a file of them holds them: see ``_outfile``)."""
        return self._keys

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


def _csv_records_end(f: IO[bytes]) -> int:
    """The offset just past the last line break outside quotes: where the last whole
    CSV record ends. A quoted cell may hold line breaks, so the last physical line
    is not enough (a doubled quote toggles twice, leaving the state as it was)."""
    f.seek(0)
    inside, pos, end = False, 0, 0
    while chunk := f.read(1 << 20):
        parts = chunk.split(b'"') if b'"' in chunk else [chunk]
        at = pos
        for i, part in enumerate(parts):
            if not inside:
                nl = part.rfind(b"\n")
                if nl != -1:
                    end = at + nl + 1
            at += len(part) + 1
            if i < len(parts) - 1:
                inside = not inside
        pos += len(chunk)
    return end


def repair_tail(path: str, fmt: str = "") -> int:
    """Cut a torn last line (no final newline) off ``path``; return the bytes removed.

    For CSV (``fmt``), a torn last record: one cut inside a quoted cell that holds a
    line break may end with a newline, or leave lines of that record before the last.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    if size == 0:
        return 0
    if fmt == "csv":
        with open(path, "rb+") as f:
            end = _csv_records_end(f)
            if end < size:
                f.truncate(end)
            return size - end
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


#: What a resumed output row says about itself: (id, status, error).
Record = tuple[str, "int | None", str]

_INPUT_LINE = re.compile(r"input: line (\d+):")


def _status(text: object) -> int | None:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str) and text.isascii() and text.isdigit():
        return int(text)
    return None


def _csv_records(path: str) -> Iterator[tuple[Record, list[str]]]:
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
        yield ("", None, ""), header  # the header: always kept
        status = header.index("status") if "status" in header else None
        error = header.index("error") if "error" in header else None
        for row in reader:
            if row:
                yield (
                    (
                        row[0],
                        _status(row[status]) if status is not None and status < len(row) else None,
                        row[error] if error is not None and error < len(row) else "",
                    ),
                    row,
                )


def _jsonl_records(path: str) -> Iterator[tuple[Record, bytes]]:
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
            error = value.get("error")
            status = _status(value.get("status"))
            yield (str(value["id"]), status, error if type(error) is str else ""), line


def _refuse_foreign(path: str, fmt: str) -> None:
    """Refuse a CSV or JSON Lines file whose first line is not drumfire's, touching nothing.

    Only a whole first line is judged (a run killed before its first newline left a
    torn line, which the repair removes).
    """
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    if not first.endswith(b"\n") or not first.strip():
        return
    if fmt == "csv":
        header = next(csv.reader([first.decode("utf-8", "replace")]), [])
        if header and header[0] == "id":
            return
        why = "its first column is not 'id'"
    else:
        try:
            value = orjson.loads(first)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict) and "id" in value:
            return
        why = "its first line is not a JSON object with an 'id'"
    raise UsageError(f"--resume: {path!r} does not look like drumfire output ({why})")


def is_cancelled(record: Record) -> bool:
    """A row that every resume sends again: one recorded as ``cancelled``."""
    return record[2].partition(":")[0] == "cancelled"


def input_error_line(record: Record) -> int | None:
    """The input line of an ``input: line N: ...`` row (id ""), else None."""
    id_, _, error = record
    if id_ != "":
        return None
    m = _INPUT_LINE.match(error)
    return int(m.group(1)) if m else None


class Resumed:
    """What an existing output holds, for ``--resume``.

    ``done`` holds the ids of the rows kept (their input rows are not sent
    again), ``problems`` the input lines whose ``input: line N`` row is kept.
    ``dropped`` rows are to be sent again (``cancelled``, or chosen with
    ``--retry-failed``): :meth:`OutputLock.rewrite <drumfire._outfile.OutputLock>`
    removes them from the file before the run appends their new rows; ``again``
    holds their ids (a row sent again is sent even if its saved file is there).
    ``pending``: the ids earlier runs dropped so and may have been stopped before
    sending (:meth:`OutputLock.remember_again <drumfire._outfile.OutputLock>`).
    ``shared``: ids whose every input row is sent again and whose every output row
    is dropped, as the input and the output hold different numbers of rows for
    them (:meth:`settle_shared`).
    ``since``: when the output's batch began (ns), to tell its saved files from an
    earlier batch's (:meth:`OutputLock.batch_began <drumfire._outfile.OutputLock>`).
    """

    __slots__ = ("again", "done", "dropped", "kept", "pending", "problems", "shared", "since")

    def __init__(
        self,
        done: DoneIds,
        problems: frozenset[int],
        kept: int,
        dropped: int,
        again: DoneIds | None = None,
    ) -> None:
        self.done = done
        self.problems = problems
        self.kept = kept
        self.dropped = dropped
        self.again = again if again is not None else DoneIds()
        self.pending = DoneIds()
        self.shared = DoneIds()
        self.since: int | None = None  # when the output's batch began (see _outfile)

    def sent_again(self, id_: str) -> bool:
        """Whether the row of ``id_`` is sent whatever file is under its name: this run
        dropped it from the output, or an earlier run that may have stopped before
        sending it did (its file is then an older answer's, not this batch's)."""
        return self.again.take(id_) or id_ in self.shared or id_ in self.pending

    def settle_shared(self, ids: Iterable[str], limited: bool = False) -> int:
        """Count the input's ``ids`` (every row's, in input order) against the rows kept;
        return how many kept rows this drops.

        Rows that share an id cannot be told apart in the output, and they finish
        out of input order: one output row for an id that two input rows have may
        be either's answer. So where the output keeps some rows of an id but not
        as many as the input has rows of it (or more: an older run's doubles),
        every output row of that id is dropped (:meth:`resends` picks them for the
        rewrite) and every input row of it is sent again. An id with as many rows
        on both sides is done; one the input does not have keeps its rows.

        A partial count (``limited``: ``-n``; or the input unreadable from some row on,
        where the run stops too) drops an id only where the output has fewer rows of it
        than were counted: more may be the answers of rows past the count, not doubles.

        Memory: 4 bytes for each row kept, while counting; the ids themselves
        are hashed one at a time.
        """
        keys = self.done.keys()
        n = len(keys)
        if not n:
            return 0
        counts = array("I", bytes(4 * n))  # input rows per key, at the key's first index
        top = 0xFFFFFFFF
        complete = not limited
        try:
            for id_ in ids:
                k = _key(id_)
                i = bisect_left(keys, k)
                if i < n and keys[i] == k and counts[i] < top:
                    counts[i] += 1
        except InputError:  # unreadable from here on: the run stops at the same row
            complete = False
        shared = array("q")
        kept = array("q")
        i = 0
        while i < n:
            k = keys[i]
            j = i + 1
            while j < n and keys[j] == k:
                j += 1
            wanted = counts[i]
            if wanted and (wanted > j - i or (complete and wanted != j - i)):
                shared.append(k)
            else:
                kept.extend(keys[i:j])
            i = j
        if not shared:
            return 0
        dropped = n - len(kept)
        self.done = DoneIds(keys=kept)
        self.shared = DoneIds(keys=shared)
        self.again = DoneIds(keys=array("q", [*self.again.keys(), *shared]))
        self.kept -= dropped
        self.dropped += dropped
        return dropped

    def resends(self, resend: Callable[[Record], bool]) -> Callable[[Record], bool]:
        """``resend`` (rows picked to send again), and the rows of the ids that
        :meth:`settle_shared` found shared: what the rewrite drops."""
        shared = self.shared
        if not len(shared):
            return resend
        return lambda record: resend(record) or (record[0] != "" and record[0] in shared)


def _records(path: str, fmt: str) -> Iterator[tuple[Record, Any]]:
    if fmt == "parquet":  # typed outputs: their own modules read them
        from ._parquet import parquet_records

        if not os.path.isdir(path):
            return iter(())
        return ((record, None) for record in parquet_records(path))
    if fmt == "sqlite":
        from ._sqlite import sqlite_records

        return ((record, None) for record in sqlite_records(path))
    return _csv_records(path) if fmt == "csv" else _jsonl_records(path)


def holds_rows(path: str, fmt: str) -> bool:
    """Whether a Parquet or SQLite output already holds a row."""
    return next(_records(path, fmt), None) is not None


def scan_output(path: str, fmt: str, resend: Callable[[Record], bool]) -> Resumed:
    """Repair ``path`` and read what it holds; ``resend(record)`` picks rows to send again.

    A header (CSV) is never a row. Raises :class:`UsageError` for a file that
    is not drumfire output.
    """
    empty = Resumed(DoneIds(iter(())), frozenset(), 0, 0)
    if fmt not in TABLE_FORMATS:
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            return empty
        _refuse_foreign(path, fmt)  # before the repair cuts the last line of someone's file
        repair_tail(path, fmt)
        if os.path.getsize(path) == 0:
            return empty
    problems: set[int] = set()
    counts = [0, 0]  # kept, dropped
    again = array("q")  # the ids of the rows dropped, as DoneIds keeps them

    def kept_ids() -> Iterator[str]:
        first = fmt == "csv"  # typed outputs have no header row
        for record, _raw in _records(path, fmt):
            if first:  # the CSV header
                first = False
                continue
            if resend(record):
                counts[1] += 1
                if record[0]:  # not an input-error row
                    again.append(_key(record[0]))
                continue
            counts[0] += 1
            line = input_error_line(record)
            if line is not None:
                problems.add(line)
            else:
                yield record[0]

    try:
        done = DoneIds(kept_ids())
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read output {path!r}: {exc}") from None
    return Resumed(done, frozenset(problems), counts[0], counts[1], DoneIds(keys=again))


def write_kept(path: str, fmt: str, resend: Callable[[Record], bool], out: IO[bytes]) -> None:
    """Copy the rows of ``path`` that ``resend`` does not pick (and the header) to ``out``."""
    if fmt == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
        writer, quoted = csv_writers(text)  # a lone CR quoted, as CsvSink writes it
        first = True
        for record, row in _csv_records(path):
            if first or not resend(record):
                (quoted if has_cr(row) else writer).writerow(row)
            first = False
        text.flush()
        text.detach()
        return
    for record, line in _jsonl_records(path):
        if not resend(record):
            out.write(line)


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


#: Reasons a server outage or a network fault leaves behind: retrying may help.
TRANSPORT = ("connect", "reset", "timeout", "tls", "protocol")
#: What ``--retry-failed`` alone re-sends: transport errors and "try again" statuses,
#: and rows that were asked to wait longer than ``--max-retry-wait`` (``retry_after``:
#: those ended by a spent quota were not sent, and have no status).
RETRY_FAILED_DEFAULT = "transport,retry_after,429,502,503,504"
_ITEM = re.compile(r"(?:[1-5]\d\d|[1-5]xx)")


class Selection:
    """A set of row outcomes named on the command line: ``connect,timeout,503,5xx``.

    Items: a reason (``connect``, ``timeout``, ``cancelled``...), ``transport``
    (connect, reset, timeout, tls, protocol), ``errors`` (any row whose
    ``error`` is not empty), a status (``503``) or a class of statuses (``5xx``).
    """

    __slots__ = ("any_error", "classes", "reasons", "statuses")

    def __init__(self, text: str, option: str) -> None:
        self.any_error = False
        reasons: set[str] = set()
        statuses: set[int] = set()
        classes: set[int] = set()
        for raw in text.split(","):
            item = raw.strip().lower()
            if not item:
                continue
            if item == "errors":
                self.any_error = True
            elif item == "transport":
                reasons.update(TRANSPORT)
            elif item in _REASONS:
                reasons.add(item)
            elif _ITEM.fullmatch(item):
                if item.endswith("xx"):
                    classes.add(int(item[0]))
                else:
                    statuses.add(int(item))
            else:
                raise UsageError(
                    f"{option} {raw.strip()!r}: not a reason or a status; give a comma-separated "
                    f"list of transport, errors, {', '.join(_REASONS)}, a status like 503 or a "
                    "class like 5xx"
                )
        if not (self.any_error or reasons or statuses or classes):
            raise UsageError(f"{option}: give at least one reason or status")
        self.reasons = frozenset(reasons)
        self.statuses = frozenset(statuses)
        self.classes = frozenset(classes)

    def matches(self, error: str, status: int | None) -> bool:
        """Whether a row with this ``error`` and ``status`` is one of the selection."""
        if error and (self.any_error or error.partition(":")[0] in self.reasons):
            return True
        if status is None:
            return False
        return status in self.statuses or status // 100 in self.classes

    def count(self, reasons: Mapping[str, int], statuses: Mapping[int, int]) -> int:
        """Rows of a run's figures (``Stats.reasons``, ``Stats.statuses``) in the selection.

        A row counted by its reason and by its status counts twice: this answers
        "any?", not "how many?" exactly.
        """
        n = 0
        for reason, k in reasons.items():
            if reason.startswith("http "):
                continue
            if self.any_error or reason in self.reasons:
                n += k
        for status, k in statuses.items():
            if status in self.statuses or status // 100 in self.classes:
                n += k
        return n

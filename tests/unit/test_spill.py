"""A held origin's rows on disk (drumfire._spill): first in, first out, every field kept."""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from pathlib import Path

import pytest

from drumfire import Retry
from drumfire._limits import FixedLimit, OriginLimit
from drumfire._origins import Origins
from drumfire._request import Prepared
from drumfire._rows import Flight
from drumfire._spill import Spill, SpillRefused

ORIGIN = ("http", "a", 80)


def flight(i: int, row: object = None) -> Flight:
    prepared = Prepared(ORIGIN, b"GET /%d HTTP/1.1\r\n\r\n" % i, "GET", True)
    made = Flight(i, f"r{i}", row if row is not None else {"n": str(i)}, prepared)
    made.attempts, made.took, made.free_retry, made.hops = i % 3, 0.5, i % 2 == 0, 1
    return made


def test_rows_come_back_in_order_with_their_fields_and_origin() -> None:
    host = OriginLimit(ORIGIN, FixedLimit(4))
    spill = Spill()
    for i in range(10):
        spill.put(flight(i))
    assert spill.count == 10
    first = spill.take(3, host)
    spill.put(flight(10))  # written after some were read back
    rest = spill.take(100, host)
    assert [f.seq for f in first + rest] == list(range(11))
    for got in first + rest:
        want = flight(got.seq)
        assert (got.id, got.row, got.prepared) == (want.id, want.row, want.prepared)
        assert (got.attempts, got.took, got.free_retry, got.hops) == (
            want.attempts, want.took, want.free_retry, want.hops,
        )  # fmt: skip
        assert got.host is host
    assert spill.count == 0
    assert spill.take(1, host) == []
    spill.close()


def test_a_row_pickle_cannot_take_is_refused_and_nothing_is_written() -> None:
    spill = Spill()
    spill.put(flight(0))
    with pytest.raises(SpillRefused):
        spill.put(flight(1, row={"lock": threading.Lock()}))
    assert spill.count == 1
    assert [f.seq for f in spill.take(5, OriginLimit(ORIGIN, FixedLimit(1)))] == [0]
    spill.close()


# -- Origins: when rows go to disk and how they come back --------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def books(origins: Origins) -> tuple[int, int]:
    """(rows parked in memory, rows on disk), counted from the queues and files."""
    queued = sum(len(h.queue) for h in origins.hosts.values())
    return queued, sum(s.count for s in origins.spills.values())


@pytest.mark.parametrize("rate", [None, 1000.0])
def test_a_held_origins_rows_go_to_disk_past_the_bound_and_come_back_first(
    rate: float | None,
) -> None:
    clock = Clock()
    origins = Origins(None, 8, None, rate, Retry(), clock)
    origins.spill_at = 4
    flights = [flight(i) for i in range(10)]
    host = origins.of(flights[0])
    host.hold(5.0)
    for f in flights:
        origins.park(f, host)
    assert (origins.parked, origins.spilled) == books(origins) == (4, 6)
    ready: deque[Flight] = deque()
    origins.unpark(host, 1, ready)  # still held: one row, from memory, to meet the wait
    assert [f.seq for f in ready] == [0]
    assert (origins.parked, origins.spilled) == books(origins) == (3, 6)
    clock.now = 6.0  # the hold is over
    ready.clear()
    origins.unpark(host, 1, ready)
    if rate is None:  # room for 8: the 6 on disk, then 2 from memory
        assert [f.seq for f in ready] == [4, 5, 6, 7, 8, 9, 1, 2]
        assert origins.spills == {}
    else:  # paced: one from disk, the rest from memory
        assert [f.seq for f in ready] == [4, 1, 2, 3]
        assert host.queue  # never empty while rows are on disk
    assert (origins.parked, origins.spilled) == books(origins)
    assert origins.parked + origins.spilled + len(ready) == 9
    origins.close()  # the end of a run: any file left is removed
    assert (origins.spills, origins.spilled) == ({}, 0)


def test_relieve_moves_a_held_origins_queue_to_disk() -> None:
    # Rows queued in memory while the origin had no room stay there when a hold
    # starts; once they fill the bound, relieve moves all but the oldest to disk.
    clock = Clock()
    origins = Origins(None, 8, None, None, Retry(), clock)
    origins.spill_at = 50
    host = origins.of(flight(0))
    for i in range(10):
        origins.park(flight(i), host)
    assert not origins.relieve(10)  # not held: nothing moves
    host.hold(5.0)
    origins.held.add(host)
    assert origins.relieve(10)
    assert (origins.parked, origins.spilled) == books(origins) == (1, 9)
    assert [f.seq for f in take_all(origins, host)] == list(range(10))
    assert (origins.parked, origins.spilled) == (0, 0)
    assert origins.spills == {}


def take_all(origins: Origins, host: OriginLimit) -> list[Flight]:
    return list(origins.take_parked(host))


def test_a_full_disk_refuses_the_row_and_keeps_every_row_written_before(
    full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A buffered write that meets a full disk only at a later flush used to count the
    # row as written: take then failed with ENOSPC (the flush its seek made), every
    # row on disk stuck. A row counts once it is on disk; the refused one stays out.
    (full_disk / "fill").unlink()  # room for a few rows, then full again
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    host = OriginLimit(ORIGIN, FixedLimit(1))
    spill = Spill()
    refused = None
    for i in range(100_000):
        try:
            spill.put(flight(i, row={"n": "x" * 500}))
        except SpillRefused:
            refused = i
            break
    assert refused is not None
    assert spill.count == refused > 0
    back = spill.take(spill.count, host)
    assert [f.seq for f in back] == list(range(refused))
    assert back[-1].row == {"n": "x" * 500}
    spill.put(flight(refused))  # room again: the file is used from its start
    assert [f.seq for f in spill.take(1, host)] == [refused]
    spill.close()

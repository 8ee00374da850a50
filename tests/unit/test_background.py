"""Background: the rows of an input that may block, read by a thread (pure: no engine)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest

from drumfire._errors import InputError
from drumfire._instream import Background, may_block
from drumfire._rows import WAIT, Item


def gated(n: int, gate: threading.Event, at: int) -> Iterator[Item]:
    """``n`` rows; before row ``at`` the reader waits for ``gate`` (a writer's pause)."""
    for i in range(1, n + 1):
        if i == at:
            gate.wait(timeout=30)
        yield i, {"id": str(i)}


def take(items: Background, woken: threading.Event) -> Item:
    """The next row, waiting for the wake after a WAIT, as the engine does."""
    for _ in range(100):
        item = next(items)
        if item is not WAIT:
            return item
        assert woken.wait(timeout=30), "no wake after WAIT"
        woken.clear()
    raise AssertionError("no row")


def drain(items: Background, woken: threading.Event) -> list[int]:
    """Every row, waiting for a wake after each WAIT, as the engine does."""
    got: list[int] = []
    for _ in range(10_000):
        try:
            item = next(items)
        except StopIteration:
            return got
        if item is WAIT:
            assert woken.wait(timeout=30), "no wake after WAIT"
            woken.clear()
            continue
        got.append(item[0])
    raise AssertionError("no end")


def test_a_pause_gives_wait_then_a_wake_and_the_rest_in_order() -> None:
    gate, woken = threading.Event(), threading.Event()
    items = Background(gated(10, gate, 4), lambda: None, bound=4)
    items.attach(woken.set)
    assert [take(items, woken)[0] for _ in range(3)] == [1, 2, 3]
    assert next(items) is WAIT  # row 4 not come: the caller is not held
    gate.set()
    assert drain(items, woken) == [4, 5, 6, 7, 8, 9, 10]


def test_a_read_error_comes_after_the_rows_before_it() -> None:
    def failing() -> Iterator[Item]:
        yield 1, {}
        raise InputError("cannot read standard input: cut")

    woken = threading.Event()
    items = Background(failing(), lambda: None)
    items.attach(woken.set)
    assert take(items, woken)[0] == 1
    with pytest.raises(InputError, match="cut"):
        take(items, woken)
    assert next(items, None) is None


def test_unattached_it_reads_in_the_callers_thread_and_limit_stops_the_reading() -> None:
    items = Background(gated(10, threading.Event(), 0), lambda: None)
    items.limit(3)
    assert [i for i, _ in items] == [1, 2, 3]


def test_detach_takes_the_rest_after_the_row_the_thread_reads() -> None:
    gate, woken = threading.Event(), threading.Event()
    items = Background(gated(100, gate, 50), lambda: None, bound=8)
    items.attach(woken.set)
    assert take(items, woken)[0] == 1
    rest = items.detach()  # the thread waits for room: it stops there
    assert rest is not None
    gate.set()
    came = threading.Event()
    rest.attach(came.set)  # as a read-ahead child does, with a thread of its own
    assert drain(rest, came) == list(range(2, 101))


def test_detach_while_a_read_waits_leaves_the_rows_to_the_thread() -> None:
    gate, woken = threading.Event(), threading.Event()
    items = Background(gated(5, gate, 2), lambda: None, bound=64)
    items.attach(woken.set)
    assert take(items, woken)[0] == 1
    assert items.detach() is None  # blocked before row 2, past DETACH_WAIT
    gate.set()
    assert drain(items, woken) == [2, 3, 4, 5]


def test_close_waits_for_the_read_under_way() -> None:
    gate, closed = threading.Event(), threading.Event()
    items = Background(gated(5, gate, 2), closed.set, bound=64)
    items.attach(lambda: None)
    items.close()
    assert not closed.is_set()  # the thread is in its read: it closes when that returns
    gate.set()
    assert closed.wait(timeout=30)


def test_may_block_is_a_pipe_not_a_file(tmp_path: object) -> None:
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        assert may_block(pipe)
    with open(__file__, "rb") as fh:
        assert not may_block(fh)
    assert not may_block(io.BytesIO(b""))

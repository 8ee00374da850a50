"""Rows from a Python iterator that blocks (a database cursor, a paginated API).

``drumfire.run`` read them in its engine's loop: while the iterator waited for its next
row, no answer was read, so every request in flight waited too (its ``elapsed_ms`` the
wait, past ``timeout`` a ``timeout`` row, sent again). A thread reads them now, as a
pipe's rows are read. ``arun`` reads them in the caller's loop, the caller's thread: an
iterator tied to its thread (a sqlite3 cursor) works there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator

import pytest

import drumfire
from drumfire.demo import DemoServer

ECHO = "/echo?n={n}"
#: An upper bound, not a timing: the answers come in milliseconds; on a run that read
#: the rows in its loop they never come while the iterator waits, and it gives up.
_GIVE_UP = 20.0


def test_run_answers_the_rows_sent_while_the_iterator_waits(demo_server: DemoServer) -> None:
    go = threading.Event()
    released: list[bool] = []

    def rows() -> Iterator[dict[str, int]]:
        yield from ({"n": i} for i in range(5))
        released.append(go.wait(_GIVE_UP))  # the next page, once the first 5 are answered
        yield from ({"n": i} for i in range(5, 10))

    got = []
    with drumfire.run(rows(), demo_server.base_url + ECHO, progress=False) as it:
        for result in it:
            got.append(result)
            if len(got) == 5:
                go.set()
    assert released == [True]  # the 5 answers came while the iterator waited
    assert sorted(int(r.id) for r in got) == list(range(1, 11))
    assert {r.status for r in got} == {200}
    assert it.stats.done == 10


def test_an_iterators_error_still_ends_the_run_with_it(demo_server: DemoServer) -> None:
    class Broken(Exception):
        pass

    def rows() -> Iterator[dict[str, int]]:
        yield {"n": 1}
        raise Broken("page 2")

    it = drumfire.run(rows(), demo_server.base_url + ECHO, progress=False)
    with pytest.raises(Broken, match="page 2"):
        list(it)


def test_arun_reads_a_sqlite_cursor_in_the_callers_thread(demo_server: DemoServer) -> None:
    async def main() -> list[drumfire.Result]:
        db = sqlite3.connect(":memory:")  # its objects are for this thread alone
        db.row_factory = sqlite3.Row
        db.execute("create table t (n)")
        db.executemany("insert into t values (?)", [(i,) for i in range(20)])
        rows = (dict(row) for row in db.execute("select n from t"))
        try:
            return [r async for r in drumfire.arun(rows, demo_server.base_url + ECHO)]
        finally:
            db.close()

    results = asyncio.run(main())
    assert len(results) == 20
    assert {r.status for r in results} == {200}

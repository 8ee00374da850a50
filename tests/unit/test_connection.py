"""Connection bookkeeping that needs no socket."""

from __future__ import annotations

from typing import Any, cast

from drumfire._connection import Connection, Owner


def test_room_respects_the_depth_and_the_servers_keep_alive_max() -> None:
    conn = Connection(cast(Owner, object()), ("http", "127.0.0.1", 80), 1000)
    assert conn.room(64) == 63  # behind the oldest request in flight
    assert conn.room(1) == 0  # no pipelining
    queued: list[tuple[Any, float]] = [(None, 0.0)] * 10
    conn.behind.extend(queued)
    assert conn.room(64) == 53
    conn.left = 12  # "Keep-Alive: max" says 12 more answers here, the 11 in flight included
    assert conn.room(64) == 1
    conn.left = 5  # fewer than are already in flight: nothing more
    assert conn.room(64) < 0

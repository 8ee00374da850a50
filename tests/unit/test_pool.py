"""The connection pool asks its connections predicates and keeps the open count."""

from __future__ import annotations

from dataclasses import dataclass

from drumfire._pool import Pool

POOLS: list[Pool] = []  # the pool that a closing connection's owner tells (on_closed)

A = ("http", "a", 80)
B = ("http", "b", 80)


@dataclass(eq=False)
class Conn:
    origin: tuple[str, str, int]
    idle: bool = True
    closed: bool = False
    aborted: str = ""

    def is_idle(self) -> bool:
        return self.idle and not self.closed

    def close(self) -> None:
        self.closed = True
        POOLS[-1].closed(self)  # type: ignore[arg-type]

    def abort(self, reason: str) -> None:
        self.closed = True
        self.aborted = reason


def pool_with(limit: int, *conns: Conn) -> Pool:
    pool = Pool(limit)
    POOLS.append(pool)
    for conn in conns:
        pool.opened(conn)  # type: ignore[arg-type]
        pool.give(conn)  # type: ignore[arg-type]
    return pool


def test_take_returns_the_most_recent_idle_connection_of_the_origin() -> None:
    old, new, other = Conn(A), Conn(A), Conn(B)
    pool = pool_with(8, old, new, other)
    assert pool.take(A) is new
    new.idle = False  # taken and busy
    old.idle = False  # it went busy elsewhere meanwhile: skipped, not returned
    assert pool.take(A) is None
    assert pool.take(B) is other
    assert pool.open == 3


def test_make_room_closes_the_oldest_idle_connections_until_one_more_fits() -> None:
    a1, a2 = Conn(A), Conn(A)
    pool = pool_with(2, a1, a2)
    pool.make_room()
    assert a1.closed  # the oldest idle one, until one more may open
    assert not a2.closed
    assert pool.open == 1
    pool.make_room()  # room already: nothing closes
    assert not a2.closed


def test_close_all_aborts_the_idle_ones() -> None:
    idle, busy = Conn(A), Conn(B, idle=False)
    pool = pool_with(4, idle, busy)
    pool.close_all()
    assert idle.aborted == "cancelled"
    assert not busy.closed  # in flight: its owner aborts it
    assert pool.take(A) is None


def test_the_same_count_of_answers_before_two_cuts_is_learned() -> None:
    # A server that ends every connection after its 40th answer without saying so
    # (nginx's keepalive_requests behind pipelined requests): the second cut at 40
    # makes 40 the origin's most answers per connection, as a Keep-Alive: max would.
    pool = Pool(8)
    pool.cut(A, 40)
    assert pool.answers == {}  # once could be anything: a reset, an idle timeout
    pool.cut(B, 40)
    assert pool.answers == {}  # another origin's count is not this one's
    pool.cut(A, 40)
    assert pool.answers == {A: 40}
    pool.cut(A, 40)
    assert pool.answers == {A: 40}
    pool.cut(A, 17)  # a cut at another count: not a fixed limit after all
    assert pool.answers == {}
    pool.cut(A, 17)
    assert pool.answers == {A: 17}

"""Connection states and their transitions, on canned bytes and a fake transport."""

from __future__ import annotations

from typing import Any

from drumfire._connection import BUSY, CLOSED, CONNECTING, IDLE, Connection, ConnState
from drumfire._response import Response

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_connected(self, conn: Connection) -> None:
        self.events.append(("connected", conn.flight))

    def on_responses(self, conn: Connection, answered: list[tuple[Any, Response]]) -> None:
        self.events += [("answer", (flight, r.status)) for flight, r in answered]

    def on_failure(self, conn: Connection, flight: Any, reason: str, detail: str) -> None:
        self.events.append(("failure", (flight, reason)))

    def on_closed(self, conn: Connection) -> None:
        self.events.append(("closed", None))

    def on_unanswered(self, conn: Connection, flight: Any, written: bool) -> None:
        self.events.append(("unanswered", (flight, written)))

    def flush_later(self, conn: Connection) -> None:
        self.events.append(("flush", None))


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return None


def connected() -> tuple[Connection, Recorder, Transport]:
    owner = Recorder()
    conn = Connection(owner, ("http", "h", 80), 1 << 20)  # type: ignore[arg-type]
    assert conn.state is CONNECTING
    assert conn.is_connecting()
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, owner, transport


def test_states_are_an_enum_with_the_old_names() -> None:
    assert list(ConnState) == [CONNECTING, IDLE, BUSY, CLOSED]
    assert IDLE.value == "idle"


def test_idle_busy_idle_closed() -> None:
    conn, owner, transport = connected()
    assert conn.is_idle()
    assert owner.events == [("connected", None)]
    conn.send("a", GET, False, 5.0)
    assert conn.is_busy()
    assert conn.flight == "a"
    assert transport.written == [GET]
    assert conn.is_overdue(6.0)
    assert not conn.is_overdue(4.0)
    conn.data_received(OK)
    assert conn.is_idle()
    assert conn.flight is None
    assert not conn.is_overdue(6.0)  # an idle connection has no deadline
    assert owner.events[-1] == ("answer", ("a", 200))
    conn.close()
    assert conn.is_closed()
    assert owner.events[-1] == ("closed", None)
    assert transport.closed


def test_a_lost_connection_fails_the_oldest_and_hands_back_the_rest() -> None:
    conn, owner, _ = connected()
    conn.send("a", GET, False, 5.0)
    conn.data_received(OK)  # answered once: it may pipeline
    conn.send("b", GET, False, 5.0)
    conn.pipeline([("c", 5.0), ("d", 5.0)], [GET, GET])
    assert ("flush", None) in owner.events
    conn.flush()
    conn.connection_lost(None)
    assert conn.is_closed()
    assert owner.events[-4:] == [
        ("closed", None),
        ("failure", ("b", "reset")),
        ("unanswered", ("c", True)),
        ("unanswered", ("d", True)),
    ]


def test_requests_handed_back_before_their_flush_were_never_written() -> None:
    # A connection lost in the loop turn that queued them: the last requests are still
    # waiting for the owner's flush. Handed back, they are said unwritten (the engine
    # then does not count their re-send in ``resent``: they go out once).
    conn, owner, transport = connected()
    conn.send("a", GET, False, 5.0)
    conn.data_received(OK)
    conn.send("b", GET, False, 5.0)
    conn.pipeline([("c", 5.0)], [GET])
    conn.flush()
    conn.pipeline([("d", 5.0), ("e", 5.0)], [GET, GET])  # not flushed yet
    conn.connection_lost(None)
    assert owner.events[-3:] == [
        ("unanswered", ("c", True)),
        ("unanswered", ("d", False)),
        ("unanswered", ("e", False)),
    ]
    assert transport.written.count(GET) == 3  # a, b, c: d and e never went out


def test_fast_path_transitions_for_subclasses() -> None:
    conn, _, _ = connected()
    conn.begin(1.0, 9.0)
    assert conn.is_busy()
    assert conn.again(2.0, 10.0) == 1.0  # answered, the next already written
    assert (conn.flight, conn.deadline, conn.served) == (2.0, 10.0, 1)
    assert conn.answered_quickly() == 2.0
    assert conn.is_idle()
    assert conn.served == 2


def test_drop_reports_nothing() -> None:
    conn, owner, transport = connected()
    conn.send("a", GET, False, 5.0)
    conn.drop()
    assert conn.is_closed()
    assert transport.closed
    assert not [e for e in owner.events if e[0] in ("failure", "unanswered")]


def test_abort_reports_the_flight() -> None:
    conn, owner, _ = connected()
    conn.send("a", GET, False, 5.0)
    conn.abort("timeout", "no complete answer in time")
    assert owner.events[-1] == ("failure", ("a", "timeout"))

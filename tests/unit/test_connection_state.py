"""Connection states and their transitions, on canned bytes and a fake transport."""

from __future__ import annotations

from typing import Any

import pytest

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

    def on_error(self, conn: Connection, exc: Exception) -> None:
        self.events.append(("error", exc))


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


# -- a read that ends the connection: answers, an error, what is handed back -------------


def answer(n: int, *headers: bytes) -> bytes:
    body = b"%d" % n
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def pipelined(flights: str) -> tuple[Connection, Recorder, Transport]:
    """A connection that has answered once, then carries ``flights`` (the first sent,
    the others pipelined behind it and written)."""
    conn, owner, transport = connected()
    conn.send("first", GET, False, 5.0)
    conn.data_received(OK)
    conn.send(flights[0], GET, False, 5.0)
    conn.pipeline([(f, 5.0) for f in flights[1:]], [GET] * (len(flights) - 1))
    conn.flush()
    owner.events.clear()
    return conn, owner, transport


@pytest.mark.parametrize(
    "closing",
    [b"Keep-Alive: timeout=5, max=1", b"Connection: close", b"X-Pad: 1\r\nConnection: close"],
)
def test_answers_after_one_that_closes_are_nobodys(closing: bytes) -> None:
    # A gateway passing on its upstream's Keep-Alive: max=1, or a server going on after
    # its own Connection: close, in the same read. The answers up to the closing one are
    # delivered; the requests behind it are handed back (written: re-sent, counted so),
    # whatever came for them. The later answers used to reach the owner with no flight
    # (max=1: an AttributeError in the engine, a run that never ended) or to discard
    # the whole read and fail the oldest request (close: llhttp's "Data after
    # Connection: close").
    conn, owner, _ = pipelined("abcd")
    conn.data_received(answer(1) + answer(2, closing) + answer(3) + answer(4))
    assert conn.is_closed()
    assert owner.events == [
        ("closed", None),
        ("unanswered", ("c", True)),
        ("unanswered", ("d", True)),
        ("answer", ("a", 200)),
        ("answer", ("b", 200)),
    ]
    assert conn.served == 3
    assert conn.cut  # a framed answer closing in front of requests: the server's count


@pytest.mark.parametrize("split", [False, True])
def test_answers_read_with_a_bad_one_are_delivered_and_the_bad_one_is_blamed(
    split: bool,
) -> None:
    # One malformed answer in a pipeline: the whole ones before it are the rows' (they
    # were thrown away), its own request fails (not the oldest's, whose answer was
    # fine), and the requests behind are handed back.
    conn, owner, transport = pipelined("abcd")
    bad = b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 1\r\n\r\n3"
    wire = answer(1) + answer(2) + bad + answer(4)
    if split:  # the first answer alone: the bad one in a later read
        conn.data_received(wire[:10])
        assert owner.events == []
        wire = wire[10:]
    conn.data_received(wire)
    assert conn.is_closed()
    assert transport.closed
    assert owner.events == [
        ("closed", None),
        ("failure", ("c", "protocol")),
        ("unanswered", ("d", True)),
        ("answer", ("a", 200)),
        ("answer", ("b", 200)),
    ]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
            "protocol",
        ),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 2000 + b"\r\n\r\n", "header_too_large"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
            "protocol",
        ),
    ],
    ids=["bad-gzip", "header-over-the-cap", "upgrade"],
)
def test_each_kind_of_bad_answer_is_its_own_requests(bad: bytes, reason: str) -> None:
    owner = Recorder()
    conn = Connection(owner, ("http", "h", 80), 1 << 20, max_header=1000)  # type: ignore[arg-type]
    conn.connection_made(Transport())  # type: ignore[arg-type]
    conn.send("first", GET, False, 5.0)
    conn.data_received(OK)
    conn.send("a", GET, False, 5.0)
    conn.pipeline([("b", 5.0), ("c", 5.0)], [GET, GET])
    conn.flush()
    owner.events.clear()
    conn.data_received(answer(1) + bad + answer(3))
    assert owner.events == [
        ("closed", None),
        ("failure", ("b", reason)),
        ("unanswered", ("c", True)),
        ("answer", ("a", 200)),
    ]


def test_a_body_to_the_close_cut_by_a_reset_is_cut_short() -> None:
    # RFC 9112 §8: a body delimited by the close is whole only if the connection closed
    # without error. A reset half way used to make a complete 200 of half a body.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    for exc, event in [
        (ConnectionResetError(104, "Connection reset by peer"), ("failure", ("a", "protocol"))),
        (None, ("answer", ("a", 200))),
    ]:
        conn, owner, _ = connected()
        conn.send("a", GET, False, 5.0)
        conn.data_received(head + b'{"code": "Ok", "routes": [1, 2')
        conn.connection_lost(exc)
        assert owner.events[-1] == event


class Broken(Recorder):
    """An owner whose on_responses raises once it has seen ``after`` answers."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def on_responses(self, conn: Connection, answered: list[tuple[Any, Response]]) -> None:
        super().on_responses(conn, answered)
        if len([e for e in self.events if e[0] == "answer"]) > self.after:
            raise RuntimeError("a bug in the owner")


def test_an_exception_in_the_owners_callback_goes_back_to_the_owner() -> None:
    # Left to asyncio it was logged, the transport closed, the rows the owner had not
    # settled were left without a result, and the run waited for them for ever.
    owner = Broken(after=0)
    conn = Connection(owner, ("http", "h", 80), 1 << 20)  # type: ignore[arg-type]
    conn.connection_made(Transport())  # type: ignore[arg-type]
    conn.send("a", GET, False, 5.0)
    conn.data_received(OK)  # raises nothing here
    kinds = [kind for kind, _ in owner.events]
    assert kinds == ["connected", "answer", "error"]
    error = owner.events[-1][1]
    assert isinstance(error, RuntimeError)
    assert str(error) == "a bug in the owner"


def test_an_exception_in_the_owners_callback_on_a_lost_connection_goes_back_too() -> None:
    owner = Broken(after=0)
    conn = Connection(owner, ("http", "h", 80), 1 << 20)  # type: ignore[arg-type]
    conn.connection_made(Transport())  # type: ignore[arg-type]
    conn.send("a", GET, False, 5.0)
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\nto the close")
    conn.connection_lost(None)
    assert [kind for kind, _ in owner.events] == ["connected", "closed", "answer", "error"]

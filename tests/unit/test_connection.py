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


# -- failure messages and hints (issue 14) ---------------------------------------------------


def test_failure_messages_are_short_and_the_same_whatever_the_loop() -> None:
    import socket
    import ssl

    from drumfire._connection import describe_error

    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ...")
    verify.verify_message = "self-signed certificate"
    assert describe_error(verify) == "certificate verify failed: self-signed certificate"
    # asyncio's words and uvloop's for a refused connection: one message.
    asyncio_refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    uvloop_refused = ConnectionRefusedError(111, "Connection refused")
    assert describe_error(asyncio_refused) == describe_error(uvloop_refused)
    assert describe_error(uvloop_refused) == "[Errno 111] Connection refused"
    unknown = socket.gaierror(-2, "Name or service not known")
    assert describe_error(unknown) == "[Errno -2] Name or service not known"
    assert describe_error(None) == ""
    assert len(describe_error(RuntimeError("x" * 1000))) == 200


def test_hints_for_the_usual_causes() -> None:
    from drumfire._errors import explain

    assert explain("tls", "certificate verify failed: self-signed certificate") == (
        "certificate verify failed: self-signed certificate "
        "(use --cacert FILE, or -k to skip verification)"
    )
    assert explain("connect", "[Errno 111] Connection refused to 127.0.0.1:9").endswith(
        "(is the server running and listening on that port?)"
    )
    assert "check the host name" in explain("connect", "[Errno -2] Name or service not known")
    assert "--connect-timeout" in explain(
        "timeout", "no connection to h:1 within the connect timeout"
    )
    assert "--timeout" in explain("timeout", "no complete answer in time")
    assert explain("reset", "[Errno 104] Connection reset by peer") == (
        "[Errno 104] Connection reset by peer"
    )


def test_a_connect_timeout_names_the_place() -> None:
    failures: list[tuple[str, str]] = []

    class Recorder:
        def on_closed(self, conn: Connection) -> None:
            pass

        def on_failure(self, conn: Connection, flight: Any, reason: str, detail: str) -> None:
            failures.append((reason, detail))

    conn = Connection(cast(Owner, Recorder()), ("http", "10.9.8.7", 81), 1000)
    conn.begin("a flight", 0.0)  # never connected: its transport is None
    conn.abort("timeout", "no complete answer in time")
    assert failures == [("timeout", "no connection to 10.9.8.7:81 within the connect timeout")]

"""Odd HTTP from the server, end to end through the engine, against raw-socket servers on
127.0.0.1: an upgrade nobody asked for, folded header lines, a transfer coding after
chunked, a close-delimited body cut by a reset."""

from __future__ import annotations

import asyncio
import codecs
import gzip
import threading
import zlib
from typing import Any

import pytest
from servers import Action, ScriptedServer, raw, respond

from drumfire import Result, Retry
from drumfire._job import make_job
from drumfire._result import Stats
from drumfire._sources import rows_source

FAST = Retry(retries=2, backoff=0.01)


def run_engine(rows: list[dict[str, str]], url: str, **kwargs: Any) -> tuple[list[Result], Stats]:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5.0)
    job = make_job(url, **kwargs)
    source = rows_source(rows)
    results: list[Result] = []
    engine = job.engine(source, results.append, cpu_clock=lambda: 0.0)
    stats = asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 60))
    return results, stats


def one_row(url: str, **kwargs: Any) -> tuple[Result, Stats]:
    results, stats = run_engine([{"id": "only"}], url, **kwargs)
    assert len(results) == 1
    return results[0], stats


def test_an_upgrade_nobody_asked_for_is_a_protocol_error() -> None:
    # 101 Switching Protocols read in one chunk (the quick path) used to escape as
    # httptools' own exception: "internal error: HttpParserUpgrade: 77" and a traceback.
    def handler(*_: Any) -> Action:
        return raw(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n",
            then="stall",
        )

    with ScriptedServer(handler) as server:
        result, stats = one_row(server.url("/x"), concurrency=1)
        assert len(server.requests) == 1  # not retried: another try would get the same
    assert (result.status, result.error, result.attempts) == (None, "protocol", 1)
    assert stats.examples["protocol"] == "unexpected protocol upgrade"


def test_a_transfer_coding_after_chunked_is_read_until_the_close() -> None:
    # RFC 9112 §6.3 rule 4: chunked is not the last coding, so the body is what comes
    # until the server closes. It used to be taken for chunked framing: the close was
    # "connection closed mid-response", retried, and the row failed.
    def handler(*_: Any) -> Action:
        return raw(
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n{"n": 7}', then="close"
        )

    with ScriptedServer(handler) as server:
        result, _ = one_row(server.url("/x"), concurrency=1, extract={"n": "n"})
        assert len(server.requests) == 1
    assert (result.status, result.error, result.attempts) == (200, "", 1)
    assert result.fields == {"n": 7}  # the bytes up to the close, as sent


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_transfer_coding_before_chunked_is_decoded(coding: str) -> None:
    # Transfer-Encoding: gzip, chunked: the chunks carry a gzip stream, which curl
    # decodes (Go and h11 refuse the answer). The body used to be kept compressed: a
    # 200 without a word, whose --extract fields were missing.
    def handler(*_: Any) -> Action:
        doc = b'{"n": 7}'
        packed = gzip.compress(doc) if coding == "gzip" else zlib.compress(doc)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (packed[:5], packed[5:]))
        return raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s, chunked\r\n\r\n%s0\r\n\r\n"
            % (coding.encode(), chunks)
        )

    with ScriptedServer(handler) as server:
        result, _ = one_row(server.url("/x"), concurrency=1, extract={"n": "n"})
    assert (result.status, result.error, result.fields) == (200, "", {"n": 7})


def test_a_transfer_coding_drumfire_does_not_know_is_named() -> None:
    # As for a Content-Encoding it cannot decode: the status stays, the body as it came
    # (without its chunks), and the error names the coding.
    def handler(*_: Any) -> Action:
        return raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: compress\r\nTransfer-Encoding: chunked"
            b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )

    with ScriptedServer(handler) as server:
        results, _ = run_engine([{"id": "only"}], server.url("/x"), concurrency=1)
    assert (results[0].status, results[0].error) == (
        200,
        "encoding: unsupported transfer-coding 'compress'",
    )


def test_a_body_to_the_close_cut_by_a_reset_is_cut_short() -> None:
    # No Content-Length, no chunks: the body ends with the connection, whole only if
    # it closed without error (RFC 9112 §8). Half a body and a reset used to be a
    # complete 200.
    def handler(*_: Any) -> Action:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
        # The pause lets the client read the half body before the reset comes.
        return Action(head + b'{"code": "Ok", "routes": [1, 2', "reset", pause=0.2)

    with ScriptedServer(handler) as server:
        result, stats = one_row(server.url("/x"), concurrency=1)
        assert len(server.requests) == 3  # cut short: retried, as a reset is
    assert (result.status, result.error, result.attempts) == (None, "protocol", 3)
    assert stats.examples["protocol"] == "connection closed mid-response"


def test_folded_header_lines_are_accepted() -> None:
    # RFC 9112 §5.2 (obs-fold): a user agent must accept a header line continued on the
    # next; llhttp refused it, and every row failed with "protocol".
    def handler(index: int, method: str, target: str, *_: Any) -> Action:
        doc = b'{"n": %s}' % target.rsplit("/", 1)[1].encode()
        return raw(
            b"HTTP/1.1 200 OK\r\nX-Long: one\r\n two\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(doc), doc)
        )

    with ScriptedServer(handler) as server:
        results, _ = run_engine(
            [{"id": str(i)} for i in range(20)], server.url("/x/{id}"), extract={"n": "n"}
        )
        assert len(server.requests) == 20
    assert sorted((r.status, r.error, r.fields["n"]) for r in results if r.fields) == [
        (200, "", i) for i in range(20)
    ]


def test_transfer_encoding_wins_over_content_length_and_the_connection_is_not_reused() -> None:
    # RFC 9112 §6.3 rule 3: with both, Transfer-Encoding frames the body and the
    # Content-Length is ignored; the answer may be a response-splitting attempt, so the
    # connection is not used again (curl, Go and Python's http.client read such an answer
    # too). llhttp refused it: every row failed with "protocol: malformed response:
    # Content-Length can't be present with Transfer-Encoding".
    def handler(index: int, method: str, target: str, *_: Any) -> Action:
        doc = b'{"n": %s}' % target.rsplit("/", 1)[1].encode()
        # The wrong length first for half the rows, the chunks first for the others;
        # a Content-Length as short as 3 would end the body inside its first chunk.
        lines = [b"Content-Length: 3", b"Transfer-Encoding: chunked"]
        if index % 2:
            lines.reverse()
        chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(doc), doc)
        return raw(b"HTTP/1.1 200 OK\r\n%s\r\n\r\n%s" % (b"\r\n".join(lines), chunks))

    with ScriptedServer(handler) as server:
        results, _ = run_engine(
            [{"id": str(i)} for i in range(6)], server.url("/x/{id}"), extract={"n": "n"},
            concurrency=1,
        )
        assert len(server.requests) == 6
        assert server.connections == 6  # one answer per connection
    assert sorted((r.status, r.error, r.attempts, r.fields["n"]) for r in results if r.fields) == [
        (200, "", 1, i) for i in range(6)
    ]


@pytest.mark.parametrize(
    ("method", "head", "rest"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n", b"{}"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", b'{"n":0}'),
    ],
    ids=["204", "HEAD"],
)
def test_a_body_sent_with_a_bodiless_answer_is_not_the_next_rows_answer(
    method: str, head: bytes, rest: bytes
) -> None:
    # A server that sends a body with a 204 or HEAD answer (which has none, RFC 9110
    # §6.4.1), here only once the next request on the connection has come: those bytes
    # begin no answer. The next row failed with "protocol: malformed response: Expected
    # HTTP/" although the server had answered it; now its request is sent again on a new
    # connection, as one found closed is (not an attempt, counted in resent).
    left = threading.local()  # per connection (one thread each): bytes not sent yet

    def handler(*_: Any) -> Action:
        data = getattr(left, "rest", b"") + head
        left.rest = rest
        return raw(data)

    n = 6
    with ScriptedServer(handler) as server:
        results, stats = run_engine(
            [{"id": str(i)} for i in range(n)], server.url("/x/{id}"), method=method,
            concurrency=1,
        )
        served = len(server.requests)
    assert sorted((r.id, r.status, r.error, r.attempts) for r in results) == [
        (str(i), 204 if method == "GET" else 200, "", 1) for i in range(n)
    ]
    # Each connection's second request met the first's leftover and was sent again.
    assert served == 2 * n - 1
    assert stats.resent == n - 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", codecs.BOM_UTF8 + '{"name": "café"}'.encode()),
        ("application/json", '{"name": "café"}'.encode("utf-16")),  # with its BOM
        ("application/json", '{"name": "café"}'.encode("utf-16-le")),
        ("application/json; charset=utf-32", '{"name": "café"}'.encode("utf-32")),
        ("application/json; charset=ISO-8859-1", '{"name": "café"}'.encode("latin-1")),
        ('application/json;charset="windows-1252"', '{"name": "café"}'.encode("cp1252")),
    ],
    ids=["utf-8-bom", "utf-16-bom", "utf-16-le", "utf-32", "latin-1", "cp1252"],
)
def test_a_json_body_not_in_plain_utf_8_is_read_for_its_fields(
    content_type: str, body: bytes
) -> None:
    # A JSON body with a UTF-8 byte order mark (IIS and .NET send one), in UTF-16 or 32,
    # or in the charset its Content-Type names: read as Python's json.loads and requests
    # read them (RFC 8259 §8.1 lets a parser skip the mark). orjson takes UTF-8 alone,
    # and each such row was a "json" error with no fields.
    def handler(*_: Any) -> Action:
        return respond(200, body, [("Content-Type", content_type)])

    with ScriptedServer(handler) as server:
        result, _ = one_row(server.url("/x"), concurrency=1, extract={"name": "name"})
    assert (result.status, result.error, result.fields) == (200, "", {"name": "café"})

"""The sans-I/O HTTP layer (drumfire._http) on canned bytes."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from typing import Any

import brotli
import orjson
import pytest
import zstandard

from drumfire._errors import HeaderTooLarge, ProtocolError
from drumfire._http import ResponseReader, encode_request_head
from drumfire._response import Response

PAYLOAD = b'{"code":"Ok","routes":[{"duration":12.5}]}' * 40


def response_bytes(
    body: bytes = b"", *headers: bytes, status: bytes = b"200 OK", version: bytes = b"HTTP/1.1"
) -> bytes:
    """A response with a Content-Length for ``body`` and the extra header lines."""
    head = b"".join(h + b"\r\n" for h in headers)
    return (
        version + b" " + status + b"\r\n" + head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


def chunked_bytes(*chunks: bytes, trailer: bytes = b"") -> bytes:
    out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
    out.extend(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    out.append(b"0\r\n" + trailer + b"\r\n")
    return b"".join(out)


def raw_deflate(data: bytes) -> bytes:
    obj = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return obj.compress(data) + obj.flush()


def feed_pieces(reader: ResponseReader, data: bytes, size: int) -> list[Response]:
    """Feed ``data`` in pieces of ``size`` bytes; every response returned, in order."""
    out = []
    for i in range(0, len(data), size):
        got = reader.feed(data[i : i + size])
        if got is not None:
            out.append(got)
    return out


def first_answer(reader: ResponseReader, data: bytes, size: int) -> Response | None:
    """Feed ``data`` in pieces of ``size`` bytes until an answer comes; return it."""
    for i in range(0, len(data), size):
        got = reader.feed(data[i : i + size])
        if got is not None:
            return got
    return None


def over_max_body(got: Response | list[Response] | None, limit: int, status: int = 200) -> None:
    """``got`` is (ends with) an answer over --max-body: its status stands, with the
    error and no body, and its connection is not reused (the rest of the body unread)."""
    if isinstance(got, list):
        got = got[-1] if got else None
    assert got is not None
    assert (got.status, got.error, got.body, got.keep_alive) == (
        status, f"body_too_large: over --max-body ({limit} bytes)", b"", False
    )


def read_one(data: bytes, *, head: bool = False, max_body: int = 1 << 20) -> Response:
    reader = ResponseReader(max_body=max_body)
    reader.expect(head=head)
    got = reader.feed(data)
    assert got is not None
    return got


# -- Content-Length ------------------------------------------------------------------


def test_content_length_body_in_one_feed() -> None:
    r = read_one(response_bytes(b"hello", b"X-Thing: 1"))
    assert r.status == 200
    assert r.body == b"hello"
    assert r.keep_alive is True
    assert r.headers == [(b"X-Thing", b"1"), (b"Content-Length", b"5")]
    assert repr(r) == "<Response 200 5 bytes>"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_content_length_body_in_pieces(size: int) -> None:
    reader = ResponseReader()
    reader.expect()
    data = response_bytes(PAYLOAD)
    got = feed_pieces(reader, data, size)
    assert len(got) == 1
    assert got[0].body == PAYLOAD


def test_nothing_returned_until_the_last_byte() -> None:
    reader = ResponseReader()
    reader.expect()
    data = response_bytes(b"abcdef")
    assert reader.feed(data[:-1]) is None
    assert reader.started
    got = reader.feed(data[-1:])
    assert got is not None
    assert got.body == b"abcdef"


def test_empty_content_length_body() -> None:
    r = read_one(response_bytes(b""))
    assert r.body == b""
    assert r.keep_alive is True


def test_several_responses_on_one_reader() -> None:
    reader = ResponseReader()
    for i in range(5):
        reader.expect()
        body = b"x" * i
        got = reader.feed(response_bytes(body, b"X-N: %d" % i))
        assert got is not None
        assert got.body == body
        assert got.header("x-n") == str(i)
        assert got.keep_alive


# -- chunked -------------------------------------------------------------------------


def test_chunked_body() -> None:
    r = read_one(chunked_bytes(b"hello", b" ", b"world"))
    assert r.body == b"hello world"
    assert r.keep_alive is True


def test_chunked_body_with_trailer() -> None:
    r = read_one(chunked_bytes(b"abc", trailer=b"X-Trailer: yes\r\n"))
    assert r.body == b"abc"


def test_chunk_split_across_feeds() -> None:
    data = chunked_bytes(b"0123456789", b"abcdefghij")
    # split inside the size line, inside the chunk data and inside the CRLFs
    cut1 = data.index(b"0123") + 4
    cut2 = data.index(b"abcdefghij") - 1
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(data[:cut1]) is None
    assert reader.feed(data[cut1:cut2]) is None
    got = reader.feed(data[cut2:])
    assert got is not None
    assert got.body == b"0123456789abcdefghij"


@pytest.mark.parametrize(
    "size_line",
    [b"5;ext=1", b'5;a="b;c";d', b"0005", b"5 ", b"5\t", b"5   ;ext", b"5 ;ext=value"],
)
@pytest.mark.parametrize("size", [1, 10_000])
def test_chunk_size_lines_with_extensions_zeros_and_white_space(
    size_line: bytes, size: int
) -> None:
    # RFC 9112 §7.1.1: white space may come before a chunk extension's ";" (BWS, which a
    # recipient must parse), and servers pad the size with spaces; curl and Go skip it.
    # llhttp refused white space after the size: "Invalid character in chunk size".
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0 \r\n\r\n"
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, wire % size_line, size)
    assert [(r.body, r.keep_alive) for r in got] == [(b"hello", True)]


@pytest.mark.parametrize("size_line", [b"5; ext=1", b"5;ext =1", b"5;ext= 1", b"5;\text"])
def test_white_space_inside_a_chunk_extension_is_still_refused(size_line: bytes) -> None:
    # RFC 9112 §7.1.1 allows BWS after the ";" and around the "=" too, and curl and Go
    # skip the extensions whole; llhttp has no leniency for it, and where the size line
    # lies in a read is not known to mend it (as the README says). When one comes, this
    # test says so.
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nhello\r\n0\r\n\r\n"
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError, match="Invalid character in chunk extensions"):
        reader.feed(wire % size_line)


def test_chunked_byte_by_byte() -> None:
    reader = ResponseReader()
    reader.expect()
    data = chunked_bytes(b"hello", b"x" * 300, b"!")
    got = feed_pieces(reader, data, 1)
    assert [g.body for g in got] == [b"hello" + b"x" * 300 + b"!"]


def test_chunked_gzip() -> None:
    comp = gzip.compress(PAYLOAD)
    data = chunked_bytes(comp[:10], comp[10:50], comp[50:]).replace(
        b"Transfer-Encoding", b"Content-Encoding: gzip\r\nTransfer-Encoding"
    )
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, data, 5)
    assert [g.body for g in got] == [PAYLOAD]


# -- content encodings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        (b"gzip", gzip.compress),
        (b"x-gzip", gzip.compress),
        (b"GZIP", gzip.compress),
        (b"deflate", zlib.compress),
        (b"deflate", raw_deflate),
    ],
    ids=["gzip", "x-gzip", "GZIP", "deflate-zlib", "deflate-raw"],
)
@pytest.mark.parametrize("size", [None, 2, 13])
def test_compressed_bodies(encoding: bytes, compress: object, size: int | None) -> None:
    assert callable(compress)
    data = response_bytes(compress(PAYLOAD), b"Content-Encoding: " + encoding)
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, data, size or len(data))
    assert len(got) == 1
    assert got[0].body == PAYLOAD
    # the raw header is kept as sent
    assert got[0].header("content-encoding") == encoding.decode()


def test_raw_deflate_fed_byte_by_byte() -> None:
    data = response_bytes(raw_deflate(PAYLOAD), b"Content-Encoding: deflate")
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, data, 1)
    assert [g.body for g in got] == [PAYLOAD]


def test_identity_encoding_is_not_decoded() -> None:
    r = read_one(response_bytes(b"plain", b"Content-Encoding: identity"))
    assert r.body == b"plain"


def test_unknown_encoding_keeps_the_status_and_says_encoding() -> None:
    reader = ResponseReader()
    reader.expect()
    data = response_bytes(b"xyz", b"Content-Encoding: compress", status=b"404 Not Found")
    got = reader.feed(data)
    assert got is not None
    assert got.status == 404
    assert got.error == "encoding: unsupported content-encoding 'compress'"
    assert got.body == b"xyz"  # as sent
    assert got.keep_alive is True  # the framing was fine: the connection is reusable


def test_unknown_encoding_body_still_respects_max_body() -> None:
    got = read_one(response_bytes(b"x" * 101, b"Content-Encoding: snappy"), max_body=100)
    over_max_body(got, 100)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        (b"br", brotli.compress),
        (b"BR", brotli.compress),
        (b"zstd", zstandard.compress),
        (b"gzip, br", lambda d: brotli.compress(gzip.compress(d))),
        (b"br, zstd", lambda d: zstandard.compress(brotli.compress(d))),
        (b"zstd, gzip", lambda d: gzip.compress(zstandard.compress(d))),
        (b"identity, gzip", gzip.compress),
    ],
    ids=["br", "BR", "zstd", "gzip-br", "br-zstd", "zstd-gzip", "identity-gzip"],
)
@pytest.mark.parametrize("size", [None, 1, 7])
def test_brotli_zstd_and_several_codings(encoding: bytes, compress: Any, size: int | None) -> None:
    data = response_bytes(compress(PAYLOAD), b"Content-Encoding: " + encoding)
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, data, size or len(data))
    assert [(g.body, g.error) for g in got] == [(PAYLOAD, "")]


def test_codings_in_separate_header_lines() -> None:
    body = brotli.compress(gzip.compress(PAYLOAD))
    data = response_bytes(body, b"Content-Encoding: gzip\r\nContent-Encoding: br")
    assert read_one(data).body == PAYLOAD


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(b"br", brotli.compress), (b"zstd", zstandard.compress)],
    ids=["br", "zstd"],
)
@pytest.mark.parametrize("size", [None, 100])
def test_brotli_and_zstd_bombs_stop_at_max_body(
    encoding: bytes, compress: Any, size: int | None
) -> None:
    bomb = compress(b"\0" * 20_000_000)
    assert len(bomb) < 30_000
    reader = ResponseReader(max_body=10_000)
    reader.expect()
    data = response_bytes(bomb, b"Content-Encoding: " + encoding)
    over_max_body(first_answer(reader, data, size or 1 << 20), 10_000)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(b"br", brotli.compress), (b"zstd", zstandard.compress)],
    ids=["br", "zstd"],
)
def test_brotli_and_zstd_exactly_at_max_body(encoding: bytes, compress: Any) -> None:
    data = response_bytes(compress(PAYLOAD), b"Content-Encoding: " + encoding)
    assert read_one(data, max_body=len(PAYLOAD)).body == PAYLOAD
    over_max_body(read_one(data, max_body=len(PAYLOAD) - 1), len(PAYLOAD) - 1)


@pytest.mark.parametrize("encoding", [b"br", b"zstd"])
def test_corrupt_brotli_or_zstd_is_a_protocol_error(encoding: bytes) -> None:
    with pytest.raises(ProtocolError, match="bad compressed body"):
        read_one(response_bytes(b"this is not compressed", b"Content-Encoding: " + encoding))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [(b"br", brotli.compress), (b"zstd", zstandard.compress)],
    ids=["br", "zstd"],
)
def test_truncated_brotli_or_zstd_is_a_protocol_error(encoding: bytes, compress: Any) -> None:
    comp = compress(PAYLOAD * 50)[:-5]
    with pytest.raises(ProtocolError):
        read_one(response_bytes(comp, b"Content-Encoding: " + encoding))


# -- Response.headers: a case-insensitive mapping ---------------------------------------


def test_response_headers_is_a_case_insensitive_mapping() -> None:
    r = read_one(
        response_bytes(
            b"{}", b"Content-Type: application/json\r\nSet-Cookie: a=1\r\nset-cookie: b=2"
        )
    )
    h = r.headers
    assert isinstance(h, Mapping)
    assert h.get("content-type") == "application/json"
    assert h["Content-Type"] == h["CONTENT-TYPE"] == "application/json"
    assert "content-length" in h
    assert "x-missing" not in h
    assert h.get("x-missing") is None
    assert h.get("x-missing", "d") == "d"
    assert list(h) == ["Content-Type", "Set-Cookie", "Content-Length"]
    assert len(h) == 3
    assert h["set-cookie"] == "a=1, b=2"  # joined, as requests and httpx do
    assert h.get_list("Set-Cookie") == ["a=1", "b=2"]
    assert dict(h)["Content-Length"] == "2"
    assert h == {
        "content-type": "application/json",
        "set-cookie": "a=1, b=2",
        "content-length": "2",
    }
    assert r.headers is h  # built once
    assert "a=1" not in repr(h)  # values are never shown
    with pytest.raises(KeyError):
        h["x-missing"]
    # the raw pairs, as received
    assert r.raw_headers[0] == (b"Content-Type", b"application/json")
    assert h.raw is r.raw_headers


def test_corrupt_gzip_is_a_protocol_error() -> None:
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError, match="bad compressed body"):
        reader.feed(response_bytes(b"this is not gzip", b"Content-Encoding: gzip"))


@pytest.mark.parametrize("framing", ["content-length", "close"])
def test_truncated_gzip_stream_is_a_protocol_error(framing: str) -> None:
    comp = gzip.compress(PAYLOAD)[:-12]
    reader = ResponseReader()
    reader.expect()
    if framing == "content-length":
        with pytest.raises(ProtocolError):
            reader.feed(response_bytes(comp, b"Content-Encoding: gzip"))
    else:
        assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + comp) is None
        with pytest.raises(ProtocolError):
            reader.eof()



@pytest.mark.parametrize("size", [1, 2, 7, 10_000])
@pytest.mark.parametrize("members", [1, 2])
def test_garbage_after_the_last_gzip_member_is_dropped_however_the_body_is_split(
    size: int, members: int
) -> None:
    # Bytes after the last gzip member that are no member are dropped, as urllib3 does.
    # They were only when they came in the read where the member ended: split
    # otherwise (here, fed in small pieces) the same body was "protocol: bad
    # compressed body: incorrect header check".
    half = len(PAYLOAD) // 2
    packed = (
        gzip.compress(PAYLOAD)
        if members == 1
        else gzip.compress(PAYLOAD[:half]) + gzip.compress(PAYLOAD[half:])
    )
    data = response_bytes(packed + b"JUNK after the body", b"Content-Encoding: gzip")
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, data, size)
    assert [(r.status, r.body, r.error) for r in got] == [(200, PAYLOAD, "")]

# -- size limits ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 100, 1])
def test_decompression_bomb_stops_at_max_body(size: int | None) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    assert len(bomb) < 30_000
    data = response_bytes(bomb, b"Content-Encoding: gzip")
    reader = ResponseReader(max_body=10_000)
    reader.expect()
    over_max_body(first_answer(reader, data, size or len(data)), 10_000)


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
def test_decoded_size_exactly_at_max_body_is_accepted(encoding: bytes) -> None:
    comp = gzip.compress(PAYLOAD) if encoding == b"gzip" else zlib.compress(PAYLOAD)
    data = response_bytes(comp, b"Content-Encoding: " + encoding)
    assert read_one(data, max_body=len(PAYLOAD)).body == PAYLOAD
    over_max_body(read_one(data, max_body=len(PAYLOAD) - 1), len(PAYLOAD) - 1)


def test_plain_body_over_max_body() -> None:
    assert read_one(response_bytes(b"x" * 100), max_body=100).body == b"x" * 100
    got = read_one(response_bytes(b"x" * 101, status=b"404 Not Found"), max_body=100)
    over_max_body(got, 100, 404)


def test_chunked_body_over_max_body_in_pieces() -> None:
    reader = ResponseReader(max_body=50)
    reader.expect()
    over_max_body(first_answer(reader, chunked_bytes(*[b"y" * 20] * 5), 7), 50)


def test_close_delimited_body_over_max_body() -> None:
    reader = ResponseReader(max_body=10)
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\n\r\n12345") is None
    over_max_body(reader.feed(b"678901"), 10)


# -- responses without a body --------------------------------------------------------


def test_head_response_has_no_body_despite_content_length() -> None:
    reader = ResponseReader()
    reader.expect(head=True)
    got = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n")
    assert got is not None
    assert got.body == b""
    assert got.header("Content-Length") == "12345"
    assert got.keep_alive is True
    # the next response on the same reader parses normally
    reader.expect()
    nxt = reader.feed(response_bytes(b"second", b"X-N: 2"))
    assert nxt is not None
    assert nxt.body == b"second"
    assert nxt.header("x-n") == "2"
    assert nxt.keep_alive


def test_head_response_byte_by_byte_then_a_chunked_response() -> None:
    reader = ResponseReader()
    reader.expect(head=True)
    got = feed_pieces(reader, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
    assert [(g.status, g.body) for g in got] == [(200, b"")]
    reader.expect()
    got = feed_pieces(reader, chunked_bytes(b"abc"), 1)
    assert [g.body for g in got] == [b"abc"]


def test_head_response_then_eof_is_not_a_second_response() -> None:
    reader = ResponseReader()
    reader.expect(head=True)
    assert reader.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n") is not None
    assert reader.eof() is None


def test_bytes_after_a_head_response_in_a_later_feed() -> None:
    reader = ResponseReader()
    reader.expect(head=True)
    got = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert got is not None
    assert reader.feed(b"hello") is None
    assert got.keep_alive is False


def test_bytes_after_a_head_response_in_the_same_feed() -> None:
    reader = ResponseReader()
    reader.expect(head=True)
    got = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert got is not None
    assert got.body == b""
    assert got.keep_alive is False


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    reader = ResponseReader()
    reader.expect()
    got = reader.feed(b"HTTP/1.1 %d Whatever\r\n\r\n" % status)
    assert got is not None
    assert got.status == status
    assert got.body == b""
    assert got.keep_alive is True


def test_304_with_content_length_has_no_body() -> None:
    got = read_one(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n")
    assert got.body == b""
    assert got.keep_alive


def test_interim_1xx_response_is_skipped() -> None:
    reader = ResponseReader()
    reader.expect()
    got = reader.feed(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + response_bytes(b"final")
    )
    assert got is not None
    assert got.status == 200
    assert got.body == b"final"


FOLDED = (
    b"HTTP/1.1 200 OK\r\nX-A: one\r\n  two\r\n\tthree\r\nX-B:\r\n b\r\n"
    b"Content-Length: 2\r\n\r\nok"
)


@pytest.mark.parametrize("size", [1, 2, 5, 17, 10_000])
def test_folded_header_lines_are_unfolded(size: int) -> None:
    # RFC 9112 §5.2: a user agent must accept obs-fold and replace each line break that
    # a space or tab continues with spaces. llhttp refused it: "Unexpected whitespace
    # after header value". In one chunk the quick path takes it; in pieces, llhttp
    # reads it again unfolded, also when the fold comes in a later piece.
    reader = ResponseReader()
    reader.expect()
    (got,) = feed_pieces(reader, FOLDED, size)
    assert (got.status, got.body, got.keep_alive) == (200, b"ok", True)
    assert got.header("X-A") == "one   two \tthree"
    assert got.header("X-B") == "b"
    if size > len(FOLDED):  # the quick path's: the block's reading is remembered
        assert [info is not None for info in reader.heads.values()] == [True]


@pytest.mark.parametrize(
    "extra",
    [b"", b"Keep-Alive: timeout=5,\r\n max=3\r\n", b"Keep-Alive: timeout=5, max=3\r\n"],
)
def test_folded_answers_in_a_pipeline_read_by_the_quick_path(extra: bytes) -> None:
    # Each answer another length, and a Keep-Alive max counting down, folded or not:
    # what the quick path (shapes, patterns) reads is what the full parser reads.
    wire = [FOLDED.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n", 1)] * 3
    data = b"".join(wire)
    outcomes = []
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        reader = ResponseReader()
        pipelined(reader, 3)
        got = [r for piece in pieces for r in reader.feed_all(piece)]
        outcomes.append([(r.headers, r.body, r.keep_alive, r.left) for r in got])
    assert outcomes[0] == outcomes[1]
    assert len(outcomes[0]) == 3
    if extra:
        assert outcomes[0][0][3] == 2


@pytest.mark.parametrize(
    "before",
    [
        chunked_bytes(b"abc"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + response_bytes(b"ab"),
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",  # then the mended one
        response_bytes(b"a", b"Connection: keep-alive", version=b"HTTP/1.0"),
    ],
    ids=["chunked", "204", "100-then-answer", "103", "http-1.0"],
)
@pytest.mark.parametrize(
    "mended",
    [FOLDED, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"],
    ids=["folded", "content-length-twice"],
)
def test_an_answer_to_mend_behind_one_the_full_parser_read_in_the_same_read(
    before: bytes, mended: bytes
) -> None:
    # Folded lines, or a Content-Length given twice, are mended by reading the answer's
    # header block again. Only the first block of a read was: behind an answer that the
    # full parser read in the same read (chunked, a 204, an interim one, HTTP/1.0) the
    # row was a protocol failure, when byte by byte it was read.
    data = before + mended + response_bytes(b"last")
    final = 1 if before.startswith(b"HTTP/1.1 103") else 2
    outcomes = []
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        reader = ResponseReader()
        pipelined(reader, final + 1)
        got = [r for piece in pieces for r in reader.feed_all(piece)]
        outcomes.append([(r.status, r.body, r.keep_alive) for r in got])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-2:] == [(200, b"ok", True), (200, b"last", True)]
    assert len(outcomes[0]) == final + 1


@pytest.mark.parametrize(
    "between", [b"", response_bytes(b"mid"), b"\r\n"], ids=["next", "after-one", "crlf"]
)
@pytest.mark.parametrize(
    "mended",
    [FOLDED, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"],
    ids=["folded", "content-length-twice"],
)
@pytest.mark.parametrize("cut", [1, 9])
def test_an_answer_to_mend_after_a_body_begun_in_an_earlier_read(
    between: bytes, mended: bytes, cut: int
) -> None:
    # The answer before it has a length and its body began in an earlier read: where the
    # answer to mend begins in this read is where that body ends. The row was a protocol
    # failure (where the answer began was not known).
    first = response_bytes(b"0123456789" * 3, b"Content-Type: text/plain")
    split = first.index(b"\r\n\r\n") + 4 + cut
    reads = [first[:split], first[split:] + between + mended + response_bytes(b"last")]
    count = 4 if between.startswith(b"HTTP") else 3
    reader = ResponseReader()
    pipelined(reader, count)
    got = [r for piece in reads for r in reader.feed_all(piece)]
    assert [(r.status, r.body, r.keep_alive) for r in got[-2:]] == [
        (200, b"ok", True),
        (200, b"last", True),
    ]
    assert got[0].body == b"0123456789" * 3
    assert len(got) == count


@pytest.mark.parametrize("size", [1, 10_000])
def test_a_folded_chunked_answer_is_unfolded(size: int) -> None:
    reader = ResponseReader()
    reader.expect()
    wire = (
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    (got,) = feed_pieces(reader, wire, size)
    assert (got.body, got.header("X-A")) == (b"ok", "a  b")


@pytest.mark.parametrize(
    "bad",
    [
        # whitespace before the first header line (RFC 9112 §2.2: may be refused)
        b"HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 2\r\n\r\nok",
        # a fold fixes nothing else
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nBad Header\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_what_unfolding_does_not_mend_is_still_refused(bad: bytes) -> None:
    for size in (1, len(bad)):
        reader = ResponseReader()
        reader.expect()
        with pytest.raises(ProtocolError, match="malformed response"):
            feed_pieces(reader, bad, size)


@pytest.mark.parametrize("size", [1, 10_000])
def test_101_switching_protocols_is_a_protocol_error_on_both_paths(size: int) -> None:
    # httptools raises HttpParserUpgrade for it, no subclass of HttpParserError: in one
    # chunk (the quick path's inspect_head) it escaped as "internal error:
    # HttpParserUpgrade: 77", with a traceback on stderr.
    upgrade = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError, match=r"^unexpected protocol upgrade$"):
        feed_pieces(reader, upgrade, size)


# -- connection close and eof() ------------------------------------------------------


def test_close_delimited_body_finished_by_eof() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhello ") is None
    assert reader.feed(b"world") is None
    got = reader.eof()
    assert got is not None
    assert got.body == b"hello world"
    assert got.keep_alive is False
    assert got.header("x-a") == "1"


def test_close_delimited_body_cut_by_an_error_is_cut_short() -> None:
    # RFC 9112 §8: whole only if the connection closed without error (eof(clean=False):
    # a reset). Cut short as a body with a length is: retried (see Retry).
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhalf a bo") is None
    with pytest.raises(ProtocolError, match=r"^connection closed mid-response$"):
        reader.eof(clean=False)


def test_close_delimited_empty_body() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(b"HTTP/1.0 200 OK\r\n\r\n") is None
    got = reader.eof()
    assert got is not None
    assert got.body == b""
    assert not got.keep_alive


def test_close_delimited_gzip_body() -> None:
    reader = ResponseReader()
    reader.expect()
    data = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(PAYLOAD)
    assert feed_pieces(reader, data, 11) == []
    got = reader.eof()
    assert got is not None
    assert got.body == PAYLOAD


@pytest.mark.parametrize(
    "codings",
    [
        [b"Transfer-Encoding: chunked, gzip"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"],
        [b"Transfer-Encoding: identity"],
        [b"Transfer-Encoding: Chunked , gzip"],
        [b"Transfer-Encoding: chunked, "],  # as llhttp reads it: an empty coding last
    ],
)
@pytest.mark.parametrize("size", [1, 10_000])
def test_a_body_whose_last_transfer_coding_is_not_chunked_ends_with_the_close(
    codings: list[bytes], size: int
) -> None:
    # RFC 9112 §6.3 rule 4 (llhttp reads it so too). "chunked" anywhere in the value
    # used to count as chunked framing, and the close was "closed mid-response".
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(c + b"\r\n" for c in codings) + b"\r\n"
    reader = ResponseReader()
    reader.expect()
    assert feed_pieces(reader, head + b"5\r\nhello\r\n0\r\n\r\n", size) == []
    got = reader.eof()
    assert got is not None
    # Not dechunked, nor decoded: what a coding after chunked unwraps is still chunks.
    assert (got.status, got.body, got.keep_alive) == (200, b"5\r\nhello\r\n0\r\n\r\n", False)


@pytest.mark.parametrize(
    "coding", [b"chunked", b"Chunked", b"identity, chunked", b"identity ,chunked "]
)
def test_a_body_whose_last_transfer_coding_is_chunked_is_framed_by_its_chunks(
    coding: bytes,
) -> None:
    reader = ResponseReader()
    reader.expect()
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + coding + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    got = reader.feed(wire)
    assert got is not None
    assert (got.body, got.keep_alive) == (b"hello", True)


@pytest.mark.parametrize(
    ("lines", "pack"),
    [
        ([b"Transfer-Encoding: gzip, chunked"], gzip.compress),
        ([b"Transfer-Encoding: deflate", b"Transfer-Encoding: chunked"], zlib.compress),
        ([b"Transfer-Encoding: x-gzip,identity, Chunked"], gzip.compress),
        (
            [b"Content-Encoding: br", b"Transfer-Encoding: gzip, chunked"],
            lambda data: gzip.compress(brotli.compress(data)),
        ),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_a_transfer_coding_before_chunked_is_decoded(
    lines: list[bytes], pack: Any, size: int
) -> None:
    # As curl decodes it (Go and h11 refuse the answer), held to --max-body as a
    # Content-Encoding is; applied after the content codings, it is decoded before
    # them. The body used to be kept as it came, still compressed.
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    packed = pack(PAYLOAD)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (packed[:9], packed[9:]))
    reader = ResponseReader()
    reader.expect(count=2)
    wire = head + chunks + b"0\r\n\r\n" + response_bytes(b"next")
    got = feed_pieces_all(reader, wire, size)
    assert [(r.status, r.body, r.error, r.keep_alive) for r in got] == [
        (200, PAYLOAD, "", True),
        (200, b"next", "", True),
    ]


def test_a_transfer_coding_without_chunked_is_decoded_up_to_the_close() -> None:
    reader = ResponseReader()
    reader.expect()
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + gzip.compress(PAYLOAD)
    assert feed_pieces(reader, data, 11) == []
    got = reader.eof()
    assert got is not None
    assert (got.body, got.error) == (PAYLOAD, "")


def test_a_transfer_coding_bomb_stops_at_max_body() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    wire += b"%x\r\n%s\r\n0\r\n\r\n" % (len(bomb), bomb)
    reader = ResponseReader(max_body=10_000)
    reader.expect()
    over_max_body(first_answer(reader, wire, 1000), 10_000)


@pytest.mark.parametrize("coding", [b"compress", b"gzip, compress"])
def test_a_transfer_coding_drumfire_does_not_know_keeps_the_body_as_it_came(
    coding: bytes,
) -> None:
    # As an unknown Content-Encoding does: the status stays, the error names the coding.
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s, chunked\r\n\r\n" % coding
    got = read_one(wire + b"3\r\nabc\r\n0\r\n\r\n")
    assert (got.status, got.body, got.error) == (
        200,
        b"abc",
        "encoding: unsupported transfer-coding 'compress'",
    )


@pytest.mark.parametrize(
    "lines",
    [
        [b"Content-Length: 3", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked", b"content-length: 300"],
        [b"Transfer-Encoding: identity, chunked", b"Content-Length: 0"],
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_transfer_encoding_overrides_content_length_and_ends_the_connection(
    lines: list[bytes], size: int
) -> None:
    # RFC 9112 §6.3 rule 3: the chunks frame the body, the Content-Length is ignored; the
    # answer may be an attempt at response splitting, so nothing after it is read (the
    # requests pipelined behind are handed back). llhttp refused the pair: "protocol".
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    reader = ResponseReader()
    reader.expect(count=2)
    wire = head + b"5\r\nhello\r\n0\r\n\r\n" + response_bytes(b"next")
    got = feed_pieces_all(reader, wire, size)
    assert [(r.status, r.body, r.keep_alive) for r in got] == [(200, b"hello", False)]
    assert reader.outstanding == 0


@pytest.mark.parametrize("size", [1, 10_000])
def test_transfer_encoding_not_ending_in_chunked_with_a_content_length_ends_with_the_close(
    size: int,
) -> None:
    # Rule 3 then rule 4: the Transfer-Encoding wins, and as chunked is not its last
    # coding the body runs to the close, whatever the Content-Length says.
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nhello"
    reader = ResponseReader()
    reader.expect()
    assert feed_pieces(reader, wire, size) == []
    got = reader.eof()
    assert got is not None
    assert (got.status, got.body, got.keep_alive) == (200, b"hello", False)


def test_eof_mid_body_is_a_protocol_error() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") is None
    with pytest.raises(ProtocolError, match="closed mid-response"):
        reader.eof()


def test_eof_mid_chunked_body_is_a_protocol_error() -> None:
    reader = ResponseReader()
    reader.expect()
    data = chunked_bytes(b"abcdef")
    assert reader.feed(data[:-5]) is None
    with pytest.raises(ProtocolError):
        reader.eof()


def test_eof_mid_head_is_a_protocol_error() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Le") is None
    with pytest.raises(ProtocolError):
        reader.eof()


def test_eof_before_any_byte_is_none() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.started is False
    assert reader.eof() is None


def test_eof_after_a_complete_response_is_none() -> None:
    reader = ResponseReader()
    reader.expect()
    assert reader.feed(response_bytes(b"ok")) is not None
    assert reader.eof() is None
    reader.expect()
    assert reader.eof() is None


# -- malformed input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 99999 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_response_is_a_protocol_error(data: bytes) -> None:
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError):
        reader.feed(data)


def test_protocol_error_reason() -> None:
    assert ProtocolError("x").reason == "protocol"


# -- keep-alive ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "headers", "keep_alive"),
    [
        (b"HTTP/1.1", [], True),
        (b"HTTP/1.1", [b"Connection: close"], False),
        (b"HTTP/1.1", [b"connection: Close"], False),
        (b"HTTP/1.1", [b"Connection: keep-alive"], True),
        (b"HTTP/1.0", [], False),
        (b"HTTP/1.0", [b"Connection: keep-alive"], True),
        (b"HTTP/1.1", [b"Keep-Alive: timeout=5, max=1"], False),
        (b"HTTP/1.1", [b"Keep-Alive: max=1"], False),
        (b"HTTP/1.1", [b"keep-alive: MAX = 1"], False),
        (b"HTTP/1.1", [b"Keep-Alive: timeout=5, max=10"], True),
        (b"HTTP/1.1", [b"Keep-Alive: timeout=5, max=512"], True),
        (b"HTTP/1.1", [b"Keep-Alive: max=100"], True),
        (b"HTTP/1.1", [b"Keep-Alive: timeout=1"], True),
    ],
)
def test_keep_alive(version: bytes, headers: list[bytes], keep_alive: bool) -> None:
    got = read_one(response_bytes(b"body", *headers, version=version))
    assert got.keep_alive is keep_alive


@pytest.mark.parametrize("size", [1, 10, 10_000])
def test_keep_alive_max_0_closes_whichever_path_reads_it(size: int) -> None:
    # "max=0": no answer may follow. The quick path (the answer in one read) closed; the
    # full path (in pieces) counted -1 answers left, which is not 0, and kept it alive.
    reader = ResponseReader()
    reader.expect()
    got = feed_pieces(reader, response_bytes(b"hello", b"Keep-Alive: timeout=5, max=0"), size)
    assert [(r.body, r.keep_alive, r.left) for r in got] == [(b"hello", False, 0)]


def test_max_1_does_not_leak_into_the_next_response() -> None:
    reader = ResponseReader()
    reader.expect()
    first = reader.feed(response_bytes(b"a", b"Keep-Alive: max=1"))
    assert first is not None
    assert not first.keep_alive
    # A new connection would be used in practice, but the reader state must reset.
    reader.expect()
    second = reader.feed(response_bytes(b"b", b"Keep-Alive: max=5"))
    assert second is not None
    assert second.keep_alive


def test_extra_bytes_in_a_later_feed_make_the_connection_unusable() -> None:
    reader = ResponseReader()
    reader.expect()
    got = reader.feed(response_bytes(b"abc"))
    assert got is not None
    assert got.keep_alive
    assert reader.feed(b"unexpected") is None
    assert got.keep_alive is False


def test_garbage_after_a_complete_response_in_the_same_feed() -> None:
    reader = ResponseReader()
    reader.expect()
    got = reader.feed(response_bytes(b"abc") + b"junk")
    assert got is not None
    assert got.body == b"abc"
    assert got.keep_alive is False


def test_second_response_in_the_same_feed() -> None:
    reader = ResponseReader()
    reader.expect()
    got = reader.feed(response_bytes(b"abc") + response_bytes(b"", b"X-Second: 1"))
    assert got is not None
    assert got.body == b"abc"
    assert got.headers == [(b"Content-Length", b"3")]
    assert got.keep_alive is False


# -- Response --------------------------------------------------------------------------


def test_header_lookup_is_case_insensitive_and_returns_the_first() -> None:
    r = Response(
        200,
        [(b"Content-Type", b"application/json"), (b"X-Dup", b"1"), (b"x-dup", b"2")],
        b"{}",
        True,
    )
    assert r.header("content-type") == "application/json"
    assert r.header("CONTENT-TYPE") == "application/json"
    assert r.header("X-DUP") == "1"
    assert r.header("missing") is None


def test_header_values_are_latin1() -> None:
    r = Response(200, [(b"X-Name", "caf\xe9".encode("latin-1"))], b"", True)
    assert r.header("x-name") == "caf\xe9"


def test_json_and_text() -> None:
    r = read_one(response_bytes(b'{"a": [1, 2.5, null], "b": "\xc3\xa9"}'))
    assert r.json() == {"a": [1, 2.5, None], "b": "\xe9"}
    assert r.text == '{"a": [1, 2.5, null], "b": "\xe9"}'
    bad = Response(200, [], b"not json \xff", True)
    with pytest.raises(orjson.JSONDecodeError):
        bad.json()
    assert bad.text == "not json \ufffd"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/json", b"\xef\xbb\xbf" + '{"b": "é"}'.encode()),
        (b"application/json", '{"b": "é"}'.encode("utf-16")),
        (b"application/json", '{"b": "é"}'.encode("utf-32-be")),
        (b"application/json; charset=ISO-8859-1", '{"b": "é"}'.encode("latin-1")),
        (b'text/json;Charset="cp1252" ', '{"b": "é"}'.encode("cp1252")),
    ],
)
def test_json_not_in_utf_8_is_read_as_json_loads_and_requests_read_it(
    content_type: bytes, body: bytes
) -> None:
    # orjson reads UTF-8 alone: a byte order mark, UTF-16 or 32, or the charset the
    # Content-Type names were a JSONDecodeError (and a "json" row with --extract).
    r = Response(200, [(b"Content-Type", content_type)], body, True)
    assert r.json() == {"b": "é"}
    if b"charset" in content_type.lower():
        assert r.text == '{"b": "é"}'


def test_json_not_utf_8_without_a_charset_is_still_refused() -> None:
    latin = '{"b": "é"}'.encode("latin-1")
    r = Response(200, [(b"Content-Type", b"application/json")], latin, True)
    with pytest.raises(orjson.JSONDecodeError):
        r.json()
    assert r.text == '{"b": "\ufffd"}'
    html = Response(200, [(b"Content-Type", b"text/html; charset=UTF8")], b"<p>\xe9", True)
    with pytest.raises(orjson.JSONDecodeError):
        html.json()
    unknown = Response(200, [(b"Content-Type", b"text/plain; charset=nonsense")], b"\xe9", True)
    assert unknown.text == "\ufffd"
    with pytest.raises(orjson.JSONDecodeError):
        unknown.json()


# -- encode_request_head -------------------------------------------------------------


def test_encode_request_head() -> None:
    assert encode_request_head("GET", "/a?b=1", "example.com:8080", []) == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    )
    assert encode_request_head(
        "POST", "/", "h", [("Content-Type", "application/json"), ("X-A", "caf\xe9")]
    ) == (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nX-A: caf\xe9\r\n\r\n")


def test_encode_request_head_matches_request_plan() -> None:
    from drumfire._request import USER_AGENT, RequestPlan

    prepared = RequestPlan("http://example.com:8080/x?y=1").prepare({})
    assert prepared.data == encode_request_head(
        "GET", "/x?y=1", "example.com:8080", [("User-Agent", USER_AGENT), ("Accept", "*/*")]
    )


# -- pipelining and the quick path -------------------------------------------------


def pipelined(reader: ResponseReader, count: int) -> None:
    for _ in range(count):
        reader.expect()


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_pipelined_responses_come_back_in_order_however_split(size: int) -> None:
    # Plain answers (the quick path) and chunked or gzipped ones (httptools) mixed.
    wire = [
        response_bytes(b'{"n":0}', b"Content-Type: application/json"),
        chunked_bytes(b'{"n":', b"1}"),
        response_bytes(b'{"n":2}'),
        response_bytes(gzip.compress(b'{"n":3}'), b"Content-Encoding: gzip"),
        response_bytes(b'{"n":4}', b"Keep-Alive: timeout=5, max=9"),
    ]
    reader = ResponseReader()
    pipelined(reader, len(wire))
    data = b"".join(wire)
    got: list[Response] = []
    for i in range(0, len(data), size):
        got.extend(reader.feed_all(data[i : i + size]))
    assert [orjson.loads(r.body)["n"] for r in got] == [0, 1, 2, 3, 4]
    assert all(r.keep_alive for r in got)
    assert [r.left for r in got] == [None, None, None, None, 8]
    assert reader.outstanding == 0


def test_quick_path_gives_the_same_response_as_the_full_parser() -> None:
    data = response_bytes(PAYLOAD, b"Server: nginx", b"Content-Type: application/json")
    quick = ResponseReader()
    quick.expect()
    full = ResponseReader()
    full.expect()
    a = quick.feed(data)  # one chunk: the quick path
    b = feed_pieces(full, data, 5)[0]  # byte runs: httptools
    assert a is not None
    assert (a.status, a.headers, a.body, a.keep_alive) == (b.status, b.headers, b.body, True)
    assert quick.heads  # the header block was inspected once and remembered


@pytest.mark.parametrize(
    "extra",
    [
        b"Connection: close",
        b"Transfer-Encoding: chunked",
        b"Content-Encoding: gzip",
        b"Keep-Alive: timeout=5, max=1",
    ],
)
def test_quick_path_leaves_unusual_answers_to_the_full_parser(extra: bytes) -> None:
    from drumfire._heads import inspect_head

    data = response_bytes(b"abc", extra)
    info = inspect_head(data[: data.index(b"\r\n\r\n") + 4])
    if extra.startswith(b"Keep-Alive"):
        assert info is not None
        assert (info[3], info[4]) == (False, 0)  # the server closes after this answer
    else:
        assert info is None


def test_bytes_beyond_the_pipelined_responses_spoil_the_connection() -> None:
    reader = ResponseReader()
    pipelined(reader, 2)
    got = reader.feed_all(response_bytes(b"a") + response_bytes(b"b") + response_bytes(b"c"))
    assert [r.body for r in got] == [b"a", b"b"]
    assert not got[-1].keep_alive


def test_a_head_request_is_never_pipelined() -> None:
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ValueError, match="HEAD"):
        reader.expect(head=True)
    reader = ResponseReader()
    reader.expect(head=True)
    with pytest.raises(ValueError, match="HEAD"):
        reader.expect()
    with pytest.raises(ValueError, match="HEAD"):
        ResponseReader().expect(head=True, count=2)


def test_several_requests_announced_at_once() -> None:
    reader = ResponseReader()
    reader.expect()
    reader.expect(count=3)
    assert reader.outstanding == 4
    got = reader.feed_all(b"".join(response_bytes(b"%d" % i) for i in range(4)))
    assert [r.body for r in got] == [b"0", b"1", b"2", b"3"]
    assert reader.outstanding == 0


def test_a_close_mid_pipeline_is_reported_for_the_oldest_only() -> None:
    reader = ResponseReader()
    pipelined(reader, 3)
    got = reader.feed_all(response_bytes(b"a") + b"HTTP/1.1 200 OK\r\nContent-Le")
    assert [r.body for r in got] == [b"a"]
    assert reader.outstanding == 2
    with pytest.raises(ProtocolError, match="mid-response"):
        reader.eof()


@pytest.mark.parametrize(
    "closing",
    [
        b"Keep-Alive: timeout=5, max=1",  # the quick path's
        b"Connection: close",  # the full parser's ("Data after `Connection: close`")
        b"Content-Encoding: gzip\r\nConnection: close",
    ],
)
@pytest.mark.parametrize("size", [1, 7, 100_000])
def test_nothing_after_an_answer_that_closes_is_read(closing: bytes, size: int) -> None:
    # The server said it closes after the second answer; what follows (here whole
    # answers, as from a gateway passing on its upstream's Keep-Alive) is nobody's.
    body = gzip.compress(b"b") if b"gzip" in closing else b"b"
    reader = ResponseReader()
    pipelined(reader, 4)
    wire = (
        response_bytes(b"a") + response_bytes(body, closing) + response_bytes(b"c") * 2
    )
    got = feed_pieces_all(reader, wire, size)
    assert [(r.body, r.keep_alive) for r in got] == [(b"a", True), (b"b", False)]
    assert reader.outstanding == 0  # the requests behind are not waited for here
    assert reader.eof() is None


def feed_pieces_all(reader: ResponseReader, data: bytes, size: int) -> list[Response]:
    return [r for i in range(0, len(data), size) for r in reader.feed_all(data[i : i + size])]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nBad Header\r\nContent-Length: 1\r\n\r\nc", ProtocolError),
        (response_bytes(b"not gzip", b"Content-Encoding: gzip"), ProtocolError),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 200 + b"\r\n\r\n", HeaderTooLarge),
    ],
    ids=["malformed", "bad-gzip", "header-over-the-cap"],
)
def test_answers_completed_before_an_error_are_kept(bad: bytes, error: type) -> None:
    # The error is the third answer's; the two whole ones before it, read in the same
    # chunk (the first two by the quick path), are no longer thrown away with it.
    reader = ResponseReader(max_header=100)
    pipelined(reader, 4)
    with pytest.raises(error):
        reader.feed_all(response_bytes(b"a") + response_bytes(b"b") + bad + response_bytes(b"d"))
    assert [r.body for r in reader.completed] == [b"a", b"b"]


@pytest.mark.parametrize("later", [False, True], ids=["same-read", "next-request"])
def test_bytes_that_begin_no_answer_leave_nothing_of_it_received(later: bool) -> None:
    # A 204 answer with a body (it has none): the bytes after it begin no answer. The
    # reader says nothing of the next answer was received (``started``), so the
    # connection's owner may send its request again, as after a stale connection.
    reader = ResponseReader()
    first = b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n"
    if later:  # the body comes once the next request is sent
        reader.expect()
        assert [r.status for r in reader.feed_all(first)] == [204]
        reader.expect()
        first = b""
    else:  # pipelined, in one read
        pipelined(reader, 2)
    with pytest.raises(ProtocolError, match="Expected HTTP/"):
        reader.feed_all(first + b"{}" + response_bytes(b"b"))
    assert [r.status for r in reader.completed] == ([] if later else [204])
    assert not reader.started
    # Bytes that begin an answer, though a bad one, are that answer's.
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError):
        reader.feed_all(b"HTTP/1.1 2x0 OK\r\n\r\n")
    assert reader.started


def test_quick_path_takes_an_empty_body_too() -> None:
    # llhttp says "not keep-alive" once an empty body has completed the message;
    # the head is judged before that.
    from drumfire._heads import inspect_head

    info = inspect_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert info is not None
    assert (info[0], info[2], info[3]) == (404, 0, True)
    reader = ResponseReader()
    reader.expect()
    response = reader.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert response is not None
    assert (response.status, response.body, response.keep_alive) == (404, b"", True)
    assert reader.heads  # through the quick path


def osrm_like(body: bytes, left: int, status: bytes = b"200 OK", spelling: bytes = b"") -> bytes:
    """osrm-routed's answer: its Keep-Alive ``max`` counts down on each connection."""
    alive = spelling or b"Keep-Alive"
    return response_bytes(
        body,
        b"Access-Control-Allow-Origin: *",
        b"Content-Type: application/json; charset=UTF-8",
        b"Connection: keep-alive",
        alive + b": timeout=5, max=%d" % left,
        status=status,
    )


def test_quick_path_inspects_each_shape_once_whatever_the_length_and_keep_alive_max(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every answer differs in Content-Length and Keep-Alive max: the quick path
    # parses the header block once per shape (here a 200 and a 400) and still
    # gives what the full parser gives, down to the last answer (max=1: close).
    import drumfire._heads as heads

    calls: list[bytes] = []
    inspect = heads.inspect_head

    def counting(head: bytes) -> Any:
        calls.append(head)
        return inspect(head)

    monkeypatch.setattr(heads, "inspect_head", counting)
    wire = [
        osrm_like(b'{"code":"Ok","n":%s}' % (b"7" * (i % 13)), 20 - i)
        if i % 3
        else osrm_like(b'{"code":"NoRoute"}', 20 - i, status=b"400 Bad Request")
        for i in range(20)
    ]
    quick = ResponseReader()
    for data in wire:
        quick.expect()
        full = ResponseReader()
        full.expect()
        a = quick.feed(data)
        b = feed_pieces(full, data, 7)[0]
        assert a is not None
        assert (a.status, a.headers, a.body, a.keep_alive, a.left) == (
            b.status,
            b.headers,
            b.body,
            b.keep_alive,
            b.left,
        )
    assert len(calls) == 2
    assert a.left == 0
    assert not a.keep_alive


H = b"HTTP/1.1 200 OK\r\n"
GOOD = H + b"Keep-Alive: timeout=5, max=9\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # two Content-Length lines: not for the quick path, and the full parser decides
        (
            osrm_like(b"abc", 5).replace(
                b"Content-Length: 3", b"Content-Length: 3\r\nContent-Length: 3"
            ),
        )
        * 2,
        # lower-case spellings, and a Keep-Alive without max
        (
            osrm_like(b"abc", 5, spelling=b"keep-alive").replace(
                b"Content-Length", b"content-length"
            ),
        )
        * 2,
        (osrm_like(b"abc", 5).replace(b", max=5", b""),) * 2,
        # Keep-Alive before Content-Length, and a length with leading zeros
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: max=9\r\nContent-Length: 003\r\n\r\nabc",) * 2,
        # spellings the byte search does not know: the value stays in the key
        (H + b"KEEP-ALIVE: max=1\r\nContent-Length: 2\r\n\r\nok",) * 2,
        (H + b"Keep-Alive:max=1\r\nContent-Length: 2\r\n\r\nok",) * 2,
        # two Keep-Alive headers: which one counts is the full parser's business
        (H + b"Keep-Alive: max=5\r\nkeep-alive: max=1\r\nContent-Length: 2\r\n\r\nok",) * 2,
        (H + b"keep-alive: max=1\r\nKeep-Alive: max=5\r\nContent-Length: 2\r\n\r\nok",) * 2,
        # a Keep-Alive value httptools would reject or trim, after a good block
        (GOOD, H + b"Keep-Alive: max=5\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
        (GOOD, H + b"Keep-Alive: max=5\x00\r\nContent-Length: 2\r\n\r\nok"),
        (GOOD, H + b"Keep-Alive: max=5\rX\r\nContent-Length: 2\r\n\r\nok"),
        (GOOD, H + b"Keep-Alive:    max=5\r\nContent-Length: 2\r\n\r\nok"),
        (GOOD, H + b"Keep-Alive: \r\nContent-Length: 2\r\n\r\nok"),
        (H + b"Keep-Alive: \r\nContent-Length: 2\r\n\r\nok", GOOD.replace(b"max=9", b"max=1")),
    ],
)
def test_quick_path_by_shape_agrees_with_the_full_parser(first: bytes, second: bytes) -> None:
    # The second block is read by its shape (the first one's, values cut out):
    # whatever the quick path makes of it, the full parser (fed 1 byte at a
    # time) makes the same, or both refuse it.
    outcomes = []
    for pieces in (len(first) + len(second), 1):
        reader = ResponseReader()
        reader.expect()
        reader.expect()
        data = first + second
        try:
            got = [
                r
                for i in range(0, len(data), pieces)
                for r in reader.feed_all(data[i : i + pieces])
            ]
            outcomes.append([(r.status, r.headers, r.body, r.keep_alive, r.left) for r in got])
        except ProtocolError as exc:
            outcomes.append([type(exc).__name__])
    assert outcomes[0] == outcomes[1]


def _alive(value: bytes, body: bytes = b"ok", status: bytes = b"200 OK") -> bytes:
    return response_bytes(body, b"Connection: keep-alive", b"Keep-Alive: " + value, status=status)


@pytest.mark.parametrize(
    "wire",
    [
        # osrm-routed: 200 and 400 in turn, every length and max another
        [
            osrm_like(b"x" * (i * 7 % 23), 9 - i, status=b"400 Bad Request" if i % 2 else b"200 OK")
            for i in range(9)
        ],
        # max not last in the value: the value stays whole in the pattern
        [
            _alive(b"max=5, timeout=3"),
            _alive(b"max=5, timeout=3", b"abc"),
            _alive(b"max=4, timeout=3"),
        ],
        # another timeout, or more digits than a max may have: not the pattern's
        [_alive(v) for v in (b"timeout=5, max=9", b"timeout=6, max=8", b"timeout=5, max=7")],
        [_alive(v) for v in (b"timeout=5, max=12", b"timeout=5, max=1234567890", b"max=1")],
        [_alive(v) for v in (b"max=3, max=7", b"max=3, max=6", b"max=2, max=6")],
        [_alive(v) for v in (b"timeout=5, MAX = 9", b"timeout=5, MAX = 10", b"MAX = 1")],
        # lengths with leading zeros, and one of 16 digits
        [
            H + b"Content-Length: 003\r\n\r\nabc",
            H + b"Content-Length: 0002\r\n\r\nab",
            H + b"Content-Length: 0000000000000002\r\n\r\nab",
            H + b"Content-Length: 1\r\n\r\na",
        ],
    ],
)
def test_quick_path_by_pattern_agrees_with_the_full_parser(wire: list[bytes]) -> None:
    # From the second block of a shape on, a block differing only in its length or
    # Keep-Alive max is matched by the shape's pattern (one at a time, or several
    # in one read): it gives what the full parser (1 byte at a time) gives.
    data = b"".join(wire)
    outcomes = []
    for pieces in ([w for w in wire], [data], [data[i : i + 1] for i in range(len(data))]):
        reader = ResponseReader()
        pipelined(reader, len(wire))
        try:
            got = [r for piece in pieces for r in reader.feed_all(piece)]
            outcomes.append([(r.status, r.headers, r.body, r.keep_alive, r.left) for r in got])
        except ProtocolError as exc:
            outcomes.append([type(exc).__name__])
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_quick_path_reads_a_shape_once_then_matches_its_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # osrm-routed's answers, 200 and 400 in turn: the block of each is cut up for its
    # shape the first time only; then the shape's pattern takes it, in C.
    import drumfire._http as http

    calls: list[bytes] = []
    read_shape = http.read_shape

    def counting(head: bytes, shapes: Any) -> Any:
        calls.append(head)
        return read_shape(head, shapes)

    monkeypatch.setattr(http, "read_shape", counting)
    wire = [
        osrm_like(b"y" * i, 300 - i, status=b"400 Bad Request" if i % 3 else b"200 OK")
        for i in range(1, 200)
    ]
    reader = ResponseReader()
    pipelined(reader, len(wire))
    got = [r for w in wire for r in reader.feed_all(w)]
    assert [r.body for r in got] == [b"y" * i for i in range(1, 200)]
    assert [r.left for r in got] == [299 - i for i in range(1, 200)]
    assert len(calls) == 2  # one 200, one 400


def test_a_pattern_matched_length_over_max_body_is_refused() -> None:
    reader = ResponseReader(max_body=10)
    pipelined(reader, 2)
    assert reader.feed_all(osrm_like(b"abc", 9))[0].body == b"abc"
    over_max_body(reader.feed_all(osrm_like(b"z" * 11, 8)), 10)


def test_quick_path_takes_the_block_before_again_only_when_byte_for_byte_the_same() -> None:
    # Answer after answer usually has the very same header block: the quick path
    # compares each answer's start with the block before, in one read and across
    # reads. A block one byte apart (another Date or length, a closing answer, an
    # osrm-routed max counting down) is looked at on its own.
    date = b"Date: Thu, 03 Dec 2026 18:00:00 GMT"
    later = date.replace(b":00 GMT", b":01 GMT")
    wire = [
        response_bytes(b'{"n":0}', date),
        response_bytes(b'{"n":1}', date),
        response_bytes(b'{"n":22}', date),  # a longer body: another Content-Length
        response_bytes(b'{"n":3}', later),
        response_bytes(b'{"n":4}', date),
        osrm_like(b'{"n":5}', 3),
        osrm_like(b'{"n":6}', 2),
        osrm_like(b'{"n":7}', 2),  # (a server's count may stay: the same block again)
        response_bytes(b'{"n":8}', date, b"Connection: close"),
    ]
    data = b"".join(wire)
    cut = len(b"".join(wire[:2])) + 5  # a read ends inside an answer
    outcomes = []
    for pieces in ([data[:cut], data[cut:]], [data], [data[i : i + 1] for i in range(len(data))]):
        reader = ResponseReader()
        pipelined(reader, len(wire))
        got = [r for piece in pieces for r in reader.feed_all(piece)]
        outcomes.append(
            [(r.status, r.body, r.keep_alive, r.left, list(r.raw_headers)) for r in got]
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]  # the last: httptools, byte by byte
    assert [orjson.loads(body)["n"] for _, body, *_ in outcomes[0]] == [0, 1, 22, *range(3, 9)]
    assert [left for *_, left, _ in outcomes[0]][5:8] == [2, 1, 1]  # max - 1: after this one
    assert [alive for _, _, alive, *_ in outcomes[0]] == [True] * 8 + [False]


# -- the header block cap (issue 14) -------------------------------------------------


@pytest.mark.parametrize("piece", [1, 100, 4096, 1 << 20])
def test_a_header_block_over_the_cap_is_refused(piece: int) -> None:
    data = response_bytes(b"ok", *(b"X-Filler-%d: %s" % (i, b"v" * 100) for i in range(100)))
    reader = ResponseReader(max_header=4096)
    reader.expect()
    with pytest.raises(HeaderTooLarge) as info:
        feed_pieces(reader, data, piece)
    assert info.value.reason == "header_too_large"
    assert "4096" in str(info.value)


@pytest.mark.parametrize("piece", [1000, 65536])
def test_an_endless_header_line_stops_at_the_cap(piece: int) -> None:
    # One header whose value never ends: httptools would gather it whole. The
    # reader stops once the block is past the cap, having taken at most the cap
    # and one read more.
    reader = ResponseReader(max_header=16 * 1024)
    reader.expect()
    fed = 0
    data = b"HTTP/1.1 200 OK\r\nX-Big: "
    refused = None
    while fed < 100 * 1024 * 1024 and refused is None:
        try:
            reader.feed_all(data)
        except HeaderTooLarge as exc:
            refused = exc
        fed += len(data)
        data = b"a" * piece
    assert refused is not None
    assert fed <= 16 * 1024 + 2 * piece


def test_a_header_block_under_the_cap_is_read_by_both_paths() -> None:
    extra = tuple(b"X-Filler-%d: %s" % (i, b"v" * 100) for i in range(30))
    data = response_bytes(b"ok", *extra)
    for piece in (len(data), 7):  # the quick path (whole), the full parser (in pieces)
        reader = ResponseReader(max_header=len(data))
        reader.expect()
        got = feed_pieces(reader, data, piece)
        assert [(r.status, r.body, len(r.headers)) for r in got] == [(200, b"ok", 31)]


def test_the_cap_counts_each_response_of_a_pipeline_on_its_own() -> None:
    one = response_bytes(b"ok", b"X-Filler: " + b"v" * 3000)
    reader = ResponseReader(max_header=4000)
    reader.expect(count=3)
    assert [r.body for r in reader.feed_all(one * 3)] == [b"ok"] * 3


def test_a_callback_error_is_known_while_the_caller_handles_an_exception() -> None:
    # httptools passes a callback's error on as its own error's __context__, which
    # Python replaces with the exception the caller is handling: bench ran inside
    # an ``except RuntimeError`` and counted its answers over max_body as "protocol".
    big = ResponseReader(max_body=10)
    big.expect()
    tall = ResponseReader(max_header=100)
    tall.expect()
    try:
        raise RuntimeError("the caller's")
    except RuntimeError:
        over_max_body(big.feed(response_bytes(b"x" * 11)), 10)
        with pytest.raises(HeaderTooLarge):
            tall.feed(b"HTTP/1.1 200 OK\r\nX-Long: " + b"y" * 200 + b"\r\n\r\n")


@pytest.mark.parametrize(
    "lines",
    [
        [b"Content-Length: 5", b"Content-Length: 5"],
        [b"Content-Length: 5", b"X-A: a", b"content-length:5 ", b"CONTENT-LENGTH: 5"],
        [b"Content-Length: 5, 5"],
        [b"Content-Length: 5,5", b"Content-Length: 5"],
        [b"X-A: a\r\n b", b"Content-Length: 5", b"Content-Length: 5"],  # folded too
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_a_content_length_given_twice_with_one_value_is_taken(
    lines: list[bytes], size: int
) -> None:
    # RFC 9110 §8.6: a recipient may take a Content-Length repeated with one value as
    # that value, as curl and Go do; llhttp refused it ("Duplicate Content-Length",
    # "Invalid character in Content-Length") and the row was a protocol failure. The
    # next answer, pipelined behind it, is read as usual.
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    reader = ResponseReader()
    reader.expect(count=2)
    got = feed_pieces_all(reader, head + b"hello" + response_bytes(b"next"), size)
    assert [(r.body, r.keep_alive) for r in got] == [(b"hello", True), (b"next", True)]
    assert [v for n, v in got[0].raw_headers if n.lower() == b"content-length"] == [b"5"]


@pytest.mark.parametrize(
    "lines",
    [
        [b"Content-Length: 5", b"Content-Length: 6"],
        [b"Content-Length: 5, 6"],
        [b"Content-Length: 5, "],
        [b"Content-Length: +5", b"Content-Length: +5"],
    ],
)
@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_content_lengths_that_disagree_are_refused(lines: list[bytes], size: int) -> None:
    # RFC 9112 §6.3 rule 5: an unrecoverable error; the answer is not read.
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    reader = ResponseReader()
    reader.expect()
    with pytest.raises(ProtocolError, match="Content-Length"):
        feed_pieces(reader, head + b"hello!", size)

"""HTTP/1.1 framing without I/O.

This module turns request parts into bytes and bytes from one connection into
:class:`~drumfire._response.Response` records (those records and their
:class:`~drumfire._response.Headers` mapping live in ``_response``). It
imports no asyncio and owns no socket, so every engine (and every unit test,
with canned bytes) uses the same code; the connection module only moves bytes
between a transport and a :class:`ResponseReader`.

Parsing is delegated to httptools (llhttp, the parser Node.js uses); this module
adds what llhttp leaves to its caller: HEAD responses (RFC 9110 §9.3.2: no body
whatever Content-Length says), bodies delimited by connection close
(RFC 9112 §6.3 rule 8), a Transfer-Encoding next to a Content-Length (rule 3:
the first frames the body, and the connection is not reused), content decoding
with a size cap, and the "unexpected bytes after a response" case. Content
codings (gzip, deflate, br, zstd), and transfer codings other than chunked, are
decoded by :mod:`drumfire._decoding`.
"""

from __future__ import annotations

from typing import Any

import httptools

from ._decoding import Decoder, UnknownEncoding
from ._errors import BodyTooLarge, HeaderTooLarge, ProtocolError, RequestError, SinkError
from ._heads import (
    HEADS_KEPT,
    PATTERNS_KEPT,
    HeadInfo,
    Pattern,
    Shape,
    answers_left,
    last_start,
    lenient_parser,
    matched,
    mend,
    read_shape,
)
from ._response import Response
from ._settings import MAX_BODY

__all__ = ["MAX_HEADER", "ResponseReader", "encode_request_head"]

#: The default cap on a response's header block (status line and headers): 64 KiB.
#: h11 stops at 16 KiB, Node.js at 16 KiB, curl at 100 KiB per header, Go at
#: 1 MiB. 64 KiB holds any sane answer, and 512 connections' worth of it is
#: 32 MiB: the cap is what keeps a hostile or broken server from filling memory.
MAX_HEADER = 64 * 1024

def encode_request_head(
    method: str, target: str, host: str, headers: list[tuple[str, str]]
) -> bytes:
    """The request line and header block, up to and including the blank line.

    The plain reference form of a request head. ``_request.RequestPlan`` builds
    the same bytes its own way (the header block once per origin, the request
    line per row); the unit tests hold the two equal.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Surplus(Exception):
    """Bytes beyond the response we asked for: stop parsing, don't reuse the connection."""


class ResponseReader:
    """Bytes from one connection in, complete :class:`Response` objects out, in order.

    Usage: call :meth:`expect` before sending each request, then :meth:`feed_all`
    (or :meth:`feed`) with every chunk received; call :meth:`eof` when the peer
    closes. Several requests may be outstanding (HTTP pipelining, RFC 9112
    §9.3.2) as long as none is a HEAD request; their responses come back in
    order. Bytes beyond the responses expected make the connection
    non-reusable: the last response gets ``keep_alive = False``. So does an
    answer that closes the connection, and nothing after it is read: the
    requests behind it are its owner's to send again.
    """

    __slots__ = (
        "_chunks",
        "_close",
        "_decoder",
        "_done",
        "_encoding",
        "_expected",
        "_failure",
        "_head",
        "_head_fed",
        "_head_size",
        "_headers",
        "_headers_done",
        "_held",
        "_interim",
        "_last",
        "_left",
        "_length",
        "_out",
        "_parser",
        "_patterns",
        "_problem",
        "_raw",
        "_size",
        "_transfer",
        "_until_close",
        "heads",
        "max_body",
        "max_header",
        "saver",
        "shapes",
        "sink",
        "started",
    )

    def __init__(self, max_body: int = MAX_BODY, max_header: int = MAX_HEADER) -> None:
        self.max_body = max_body
        # The header block is bounded too: httptools gathers a header's name and
        # value until the line ends, so a server that never ends one would
        # otherwise grow the buffer without limit.
        self.max_header = max_header
        self.heads: dict[bytes, HeadInfo | None] = {}  # inspect_head() of blocks seen
        self.shapes: dict[bytes, Shape | None] = {}  # the same, by shape (see _shaped)
        # The last header block _quick took, and its inspect_head(): the next answer
        # usually has the very same one (one comparison, no slice, hash or look-up).
        self._last: tuple[bytes, HeadInfo | None] = (b"\x00", None)
        # The patterns of the last shapes _shaped read, the latest first: the next
        # answer with another length or Keep-Alive max usually matches one (see
        # drumfire._heads; osrm-routed answers 200 or 400, two shapes).
        self._patterns: tuple[Pattern, ...] = ()
        self._parser: Any = lenient_parser(self)
        self._expected = 0  # responses still owed: requests sent and not answered
        # The error a callback raised, kept here: httptools hands it on as its own
        # error's __context__, which Python replaces when feed() runs while the caller
        # handles an exception (bench ran inside an ``except RuntimeError``, and its
        # answers over --max-body were counted as "protocol").
        self._failure: BaseException | None = None
        self._out: list[Response] = []
        self._done: Response | None = None  # the last response returned
        # --save-body (see drumfire._savebody): the next response's target, and
        # the sink its body streams to instead of being kept.
        self.saver: Any = None
        self.sink: Any = None
        self._held: list[bytes] | None = None  # see _parse
        self._reset(False)

    def _reset(self, head: bool) -> None:
        """Per-response state, for the next response on the wire."""
        self._head = head
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0  # bytes of the headers parsed so far
        self._head_fed = 0  # bytes fed since the header block began, while it lasts
        self._chunks: list[bytes] = []
        self._size = 0
        # The body's Content-Length when one frames it (-1: none), and the bytes of the
        # body read so far as they came: where the body ends in a read (see _parse).
        self._length = -1
        self._raw = 0
        self._encoding: bytes | None = None
        self._transfer: bytes | None = None  # the Transfer-Encoding lines, joined
        self._decoder: Decoder | None = None
        self._problem = ""
        self._headers_done = False
        self._until_close = False
        self._close = False  # not reused after it, framed as it is (see _has_length)
        self._left: int | None = None
        self._interim = False
        self.started = False

    def expect(self, head: bool = False, count: int = 1) -> None:
        """``count`` more requests sent; ``head`` for a HEAD request (never pipelined)."""
        if self._expected == 0:
            if head and count > 1:
                raise ValueError("a HEAD request cannot be pipelined")
            self._reset(head)
            self._done = None
        elif head or self._head:
            raise ValueError("a HEAD request cannot be pipelined")
        self._expected += count

    @property
    def outstanding(self) -> int:
        """Responses still expected."""
        return self._expected

    # -- httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        if self._expected == 0:
            raise _Surplus
        self.started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        try:
            self._headers.append((name, value))
            size = len(name)
            self._head_size += size + len(value) + 4  # "Name: value\r\n"
            if self._head_size > self.max_header:
                raise HeaderTooLarge(self.max_header)
            if size == 16 and name.lower() == b"content-encoding":
                if value.strip().lower() not in (b"identity", b""):
                    # Several header lines list the codings in the order applied.
                    known = self._encoding
                    self._encoding = value if known is None else known + b"," + value
            elif size == 17 and name.lower() == b"transfer-encoding":
                known = self._transfer
                self._transfer = value if known is None else known + b"," + value
            elif size == 10 and name.lower() == b"keep-alive":
                # "Keep-Alive: max=1" (osrm-routed's 512th answer): the server will close
                # after this response without saying "Connection: close"; don't reuse it.
                self._left = answers_left(value)
        except BaseException as exc:
            self._failure = exc  # see feed: what the parser's error was about
            raise

    def on_headers_complete(self) -> None:
        try:
            self._head_fed = 0
            status = self._parser.get_status_code()
            if 100 <= status < 200:
                # An interim response (100 Continue, 103 Early Hints): clients skip
                # it and wait for the final one (RFC 9110 §15.2). 101 raises Upgrade.
                self._interim = True
                return
            self._headers_done = True
            if self.saver is not None:
                saver, self.saver = self.saver, None
                self.sink = saver.start(status)
            transfer = self._transfer_codings()
            if self._encoding is not None or transfer:
                try:
                    self._decoder = Decoder(self._encoding or b"", self.max_body, transfer)
                except UnknownEncoding as exc:
                    # The body is kept as sent (within --max-body); the row keeps
                    # its status and says why its body was not decoded.
                    self._problem = f"encoding: {exc}"
            if self._head:
                # llhttp would wait for Content-Length bytes that never come.
                self._finish()
                return
            if not self._has_length() and status >= 200 and status not in (204, 304):
                self._until_close = True
            elif status in (204, 304):
                self._length = -1
        except BaseException as exc:
            self._failure = exc  # see feed: what the parser's error was about
            raise

    def _transfer_codings(self) -> bytes:
        """The transfer codings to decode (``gzip`` of ``Transfer-Encoding: gzip,
        chunked``), as curl decodes them (Go and h11 refuse such an answer). Only those
        before a chunked that frames the body (see :meth:`_has_length`), or all when no
        chunked is listed: with a chunked elsewhere (``chunked, gzip``, read until the
        close), what the codings after it unwrap are still chunks, and the body is kept
        as it came."""
        if self._transfer is None:
            return b""
        codings = [c.strip().lower() for c in self._transfer.split(b",")]
        if codings[-1] == b"chunked":
            del codings[-1]
        codings = [c for c in codings if c and c != b"identity"]
        return b"" if b"chunked" in codings else b",".join(codings)

    def _has_length(self) -> bool:
        """Whether the body is framed by a length or by chunks, not by the close.

        Chunks frame it only when chunked is the last transfer coding (RFC 9112 §6.3
        rule 4): ``chunked, gzip`` is read until the server closes. "Last" as llhttp,
        which does the framing, reads it: the last element of the last
        Transfer-Encoding line, so ``chunked,`` (an empty element last) is no chunked
        framing either. A Transfer-Encoding overrides a Content-Length (rule 3): such
        an answer "ought to be handled as an error" (it may be an attempt at response
        splitting), so it is read as the Transfer-Encoding frames it, as curl, Go and
        Python's http.client read it, and the connection is not used again.
        """
        length = False
        chunked: bool | None = None  # None: no Transfer-Encoding
        for name, value in self._headers:
            size = len(name)
            if size == 14 and name.lower() == b"content-length":
                length = True
                # One value, llhttp checked (a list of one value was mended: see mend).
                self._length = int(value) if value.strip().isdigit() else -1
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = value.rpartition(b",")[2].strip().lower() == b"chunked"
        if chunked is None:
            return length
        self._length = -1
        if length:
            self._close = True
        return chunked

    def on_body(self, body: bytes) -> None:
        try:
            if self._expected == 0:  # a body after a HEAD response: not ours
                raise _Surplus
            self._raw += len(body)
            if self._decoder is not None:
                body = self._decoder.decode(body)
            self._size += len(body)
            if self._size > self.max_body:
                raise BodyTooLarge(self.max_body)
            if self.sink is not None:
                self.sink.write(body)
                return
            self._chunks.append(body)
        except BaseException as exc:
            self._failure = exc  # see feed: what the parser's error was about
            raise

    def on_message_complete(self) -> None:
        try:
            if self._interim:
                self._reset(self._head)
                self.started = True
                return
            if self._expected:
                self._finish()
        except BaseException as exc:
            self._failure = exc  # see feed: what the parser's error was about
            raise

    def _finish(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._size += len(rest)
                if self._size > self.max_body:
                    raise BodyTooLarge(self.max_body)
                self._chunks.append(rest)
            if not self._decoder.finished:
                raise ProtocolError("truncated compressed body")
        if self.sink is not None:  # --save-body: the body went to its file
            sink, self.sink = self.sink, None
            sink.write(b"".join(self._chunks))
            sink.finish()
            self._chunks = []
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        keep_alive = not (self._until_close or self._close or self._left == 0) and bool(
            self._parser.should_keep_alive()
        )
        status = self._parser.get_status_code()
        self._answer(Response(status, self._headers, body, keep_alive, self._left, self._problem))
        if not self._head:
            self._reset(False)

    def _answer(self, response: Response) -> None:
        self._out.append(response)
        self._done = response
        # After an answer that closes the connection (Connection: close, Keep-Alive
        # max=1, a body to the close, one left unread) the server answers no more
        # here: what follows it, even whole answers (a gateway passing on its
        # upstream's Keep-Alive), is nobody's, and the requests behind are handed back.
        self._expected = self._expected - 1 if response.keep_alive else 0

    # -- public --------------------------------------------------------------

    @property
    def completed(self) -> list[Response]:
        """The responses the last :meth:`feed_all` completed, oldest first; when it
        raised, those completed before the error (pipelined answers read with a bad
        one), which the error does not concern."""
        return self._out

    def feed(self, data: bytes) -> Response | None:
        """:meth:`feed_all` for one outstanding request: its response, or None."""
        out = self.feed_all(data)
        return out[0] if out else None

    def feed_all(self, data: bytes) -> list[Response]:
        """Parse ``data``; return the responses it completed, oldest first.

        Only the last may have ``keep_alive`` False: nothing after an answer that
        closes the connection is read (see :meth:`_answer`).

        Raises :class:`ProtocolError` on malformed input, :class:`HeaderTooLarge`
        past ``max_header`` and :class:`BodyTooLarge` past ``max_body`` before the
        status is known; once it is, an answer over ``max_body`` (or a body that
        could not be saved) ends with its status, no body and the error. An error
        is the next outstanding answer's: those ``data`` completed before it are
        in :attr:`completed`.
        """
        out: list[Response] = []
        self._out = out
        if self._expected == 0:
            # Bytes with no request outstanding: the connection cannot be
            # trusted for another request.
            if self._done is not None:
                self._done.keep_alive = False
            return out
        if not self.started and not self._head and self.saver is None:
            data = self._quick(data)
            if not data or self._expected == 0:
                if data and self._done is not None:
                    self._done.keep_alive = False  # more than was asked for
                return out
        self._parse(data)
        return out

    def _parse(self, data: bytes) -> None:
        """The full path of :meth:`feed_all`: httptools over ``data``."""
        # The bytes of the header block being read, from its first byte, when known
        # (it starts with this read, or began in one that kept them): a block llhttp
        # refuses for its folded lines or a repeated Content-Length is read again
        # mended (see mend).
        # Kept as the reads came and joined only when needed: a block that stays open
        # over many small reads would be copied again at each one.
        # An answer whose body, with a length, began in an earlier read ends in this
        # one at ``skip``: the bytes from there are known from an answer's first byte.
        skip = 0
        if not self.started:
            known: list[bytes] | None = [data]
        else:
            known = self._held
            if known is not None:
                known.append(data)
            elif self._headers_done and 0 <= self._length - self._raw < len(data):
                skip = self._length - self._raw
                known = [data]
        if not self._headers_done:
            self._head_fed += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ProtocolError("unexpected protocol upgrade") from None
        except httptools.HttpParserError as exc:
            cause, self._failure = self._failure, None  # consumed here, whatever follows
            done = self._done
            if done is not None and self._expected == 0:
                # Every response was complete; what followed is not ours (garbage,
                # an unasked-for response, a body after HEAD, anything after an
                # answer that closes). Keep the responses, drop the connection.
                done.keep_alive = False
                self._parser = lenient_parser(self)
                return
            if isinstance(cause, SinkError) or (
                isinstance(cause, BodyTooLarge) and self._headers_done
            ):
                # Unsaved (--save-body) or over --max-body: the answer stands with its
                # status (as curl's --max-filesize and -w %{http_code}), its rest unread.
                self._end_unread(cause)
                return
            if isinstance(cause, RequestError):  # too large, protocol
                raise cause from None
            if known is not None and not self._headers_done:
                whole = b"".join(known)[skip:]
                block = whole[last_start(whole) :]  # the answer that failed, from its start
                unfolded = mend(block)
                if unfolded is None and self._mend_later(str(exc), block):
                    self._held = [whole] if skip else known
                    return
                if unfolded is not None:
                    # Folded lines, or a Content-Length given twice, in the block that
                    # failed: read it again, mended.
                    self._parser = lenient_parser(self)
                    self._reset(self._head)
                    self._held = None
                    self._head_fed = 0
                    self._parse(unfolded)
                    return
            if str(exc).startswith("Expected HTTP/"):
                # Bytes that begin no answer where one should begin. On a connection
                # that answered before, they are most likely the rest of the answer
                # before (a body sent with a HEAD or 204 answer, or past its length):
                # nothing of this answer was read, and its request may be sent again
                # on another connection (see Retry.is_free_resend).
                self.started = False
            raise ProtocolError(f"malformed response: {exc}") from None
        # A header block still open, its answer begun in known bytes: keep them.
        if self.started and not self._headers_done and known is not None:
            self._held = [data[skip:]] if skip else known
        else:
            self._held = None
        if self._out and self._head:
            # httptools cannot be told a response had no body; start afresh.
            self._parser = lenient_parser(self)
        if self._head_fed > self.max_header and not self._headers_done and self._expected:
            # A header block still open past the cap (one endless header line, say):
            # what httptools holds of it is bounded by the cap and this one read.
            raise HeaderTooLarge(self.max_header)

    def _mend_later(self, error: str, block: bytes) -> bool:
        """Whether a Content-Length that llhttp refused (``error``) before ``block``, the
        answer from its first byte, had its header block whole may be mended once it has
        (see mend: a value given twice); the parser, stopped, refuses each read the same
        way until then, and the reads are kept. Not past the header cap."""
        return (
            "Content-Length" in error
            and block.find(b"\r\n\r\n") < 0
            and len(block) <= self.max_header
        )

    def _quick(self, data: bytes) -> bytes:
        """Take whole plain answers from the front of ``data``; return the rest.

        The usual answer (see :func:`inspect_head`) comes whole in one chunk:
        a byte search and a cached look-up replace httptools' callbacks.
        """
        heads = self.heads
        pos = 0
        size = len(data)
        expected = self._expected
        max_header = self.max_header
        max_body = self.max_body
        out = self._out
        response = None
        find = data.find
        last, last_info = self._last
        patterns = self._patterns
        while expected:
            if data.startswith(last, pos):  # the block of the answer before (the usual case)
                end = pos + len(last)
                info = last_info
            else:
                # The block of a shape seen before, but for its length or Keep-Alive max
                # (osrm-routed): one pattern match each (see drumfire._heads).
                for pattern in patterns:
                    prefix = pattern[0]
                    found = (
                        pattern[1](data, pos + len(prefix))
                        if data.startswith(prefix, pos)
                        else None
                    )
                    if found is not None:
                        end = found.end()
                        info = matched(found, pattern)
                        if info[2] > max_body or end - pos > max_header:
                            info = None  # the full path refuses it
                        break
                else:
                    end = find(b"\r\n\r\n", pos) + 4
                    if end < 4:
                        break
                    head = data[pos:end]
                    try:
                        info = heads[head]  # a block seen before passed the checks below
                    except KeyError:
                        if end - pos > max_header:
                            break  # the full path refuses it
                        if len(heads) >= HEADS_KEPT:
                            heads.clear()
                        info = self._shaped(head)
                        patterns = self._patterns
                        if info is not None and info[2] > max_body:
                            info = None  # the full path refuses it
                        heads[head] = info
                    last, last_info = head, info
            if info is None:
                break
            status, headers, length, keep_alive, left = info
            stop = end + length
            if stop > size:
                break
            # The cached header tuple is shared: a Response's headers are not changed.
            response = Response(status, headers, data[end:stop], keep_alive, left)
            out.append(response)  # as _answer does, the counts set once below
            expected -= 1
            pos = stop
            if not keep_alive:
                expected = 0  # the server closes after this one: no more here (see _answer)
                break
        self._last = last, last_info
        if response is not None:
            self._done = response
            self._expected = expected
        return data[pos:] if pos else data

    def _shaped(self, head: bytes) -> HeadInfo | None:
        """:func:`inspect_head`, by the block's shape (see :func:`drumfire._heads.read_shape`);
        the shape's pattern joins those :meth:`_quick` tries first."""
        info, pattern = read_shape(head, self.shapes)
        if pattern is not None and pattern not in self._patterns:
            self._patterns = (pattern, *self._patterns[: PATTERNS_KEPT - 1])
        return info

    def drop_sink(self) -> None:
        """The response will not complete: remove the body's temporary file (--save-body)."""
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.abort()

    def _end_unread(self, exc: SinkError | BodyTooLarge) -> Response:
        """The body could not be saved (a full disk, a name too long) or kept (over
        --max-body): the answer ends here with its status, no body and ``exc``'s reason,
        the rest of its body unread, so the connection is not reused. A retry would not
        mend it."""
        self.drop_sink()
        status = self._parser.get_status_code()
        error = exc.reason if isinstance(exc, SinkError) else exc.answer_error
        response = Response(status, self._headers, b"", False, self._left, error)
        self._answer(response)
        self._parser = lenient_parser(self)
        self._reset(False)
        return response

    def eof(self, clean: bool = True) -> Response | None:
        """The peer closed: return a close-delimited response, or None.

        ``clean``: the connection closed without error. Only then does a body
        delimited by the close end there (RFC 9112 §8); cut by a reset, it is cut
        short, like a body with a length the close came before.

        Raises :class:`ProtocolError` when a response was cut short.
        """
        if self._expected == 0:
            return None
        if self._until_close and self._headers_done and clean:
            self._out = []
            try:
                self._finish()
            except SinkError as exc:
                return self._end_unread(exc)
            except BodyTooLarge as exc:
                return self._end_unread(exc)
            done = self._out[0]
            done.keep_alive = False
            return done
        if self.started:
            raise ProtocolError("connection closed mid-response")
        return None

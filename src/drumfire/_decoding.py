"""Content decoding of response bodies (RFC 9110 §8.4), incremental and size-capped, no I/O.

Transfer codings other than chunked (RFC 9112 §7) are decoded the same way.

gzip and deflate (zlib), br (brotli) and zstd (zstandard), or several in a row;
the output never grows past the body limit, so a compressed bomb ends as
``body_too_large`` instead of filling memory. Used by :class:`drumfire._http.ResponseReader`.
"""

from __future__ import annotations

import zlib

from ._errors import BodyTooLarge, ProtocolError

__all__ = ["Decoder", "UnknownEncoding"]


class UnknownEncoding(Exception):
    """A Content-Encoding drumfire cannot decode: the row keeps its status."""


class _Zlib:
    """gzip or deflate, incrementally, never growing past ``limit`` bytes."""

    __slots__ = ("_fed", "_gzip", "_later", "_obj", "_pending", "_size", "_swallow", "limit")

    def __init__(self, enc: bytes, limit: int) -> None:
        wbits = 16 + zlib.MAX_WBITS if enc in (b"gzip", b"x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        # "deflate" is zlib-wrapped by the RFC but raw in some servers (RFC 9110 §8.4.1.2):
        # hold the first two bytes until the zlib header check can tell which.
        self._pending: bytes | None = b"" if enc == b"deflate" else None
        self._size = 0
        self._fed = False
        # gzip: after the first member, None while members follow (RFC 1952 §2.2: a
        # gzip file is a series of members, as `cat a.gz b.gz` makes), True once
        # what follows is not one (trailing garbage, dropped as urllib3 does).
        self._gzip = wbits > zlib.MAX_WBITS
        # Past the first member: an error from here on is trailing garbage, whichever
        # read it comes in (it used to count as such only in the read where the
        # member before it ended: split otherwise, the same body was a protocol error).
        self._later = False
        self._swallow = False
        self.limit = limit

    @property
    def finished(self) -> bool:
        """The compressed stream ended properly (or no body was sent at all)."""
        return self._swallow or self._obj.eof or not self._fed

    def decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._fed = True
        if self._pending is not None:
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return b""
            self._pending = None
            b0, b1 = data[0], data[1]
            if not ((b0 & 0x0F) == 8 and (b0 * 256 + b1) % 31 == 0):
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        if self._swallow:
            return b""
        out = self._inflate(data, first=not self._later)
        # A member ended with bytes after it: the next member of a multi-member
        # gzip body (decoded as urllib3 and Python's gzip module do; one member
        # alone used to be kept and the rest dropped without a word).
        while self._gzip and self._obj.eof and self._obj.unused_data:
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._later = True
            out += self._inflate(rest, first=False)
            if self._swallow:
                break
        return out

    def _inflate(self, data: bytes, first: bool) -> bytes:
        try:
            # max_length bounds the output of one call: a decompression bomb
            # stops at the cap instead of filling memory.
            out = self._obj.decompress(data, self.limit - self._size + 1)
        except zlib.error as exc:
            if not first:  # not a gzip member after a complete one: trailing garbage
                self._swallow = True
                return b""
            raise ProtocolError(f"bad compressed body: {exc}") from None
        self._size += len(out)
        if self._size > self.limit or self._obj.unconsumed_tail:
            raise BodyTooLarge(self.limit)
        return out

    def flush(self) -> bytes:
        return b""


class _Brotli:
    """br (RFC 7932), incrementally, never growing past ``limit`` bytes."""

    __slots__ = ("_fed", "_obj", "_size", "limit")

    def __init__(self, limit: int) -> None:
        import brotli

        self._obj = brotli.Decompressor()
        self._size = 0
        self._fed = False
        self.limit = limit

    @property
    def finished(self) -> bool:
        return bool(self._obj.is_finished()) or not self._fed

    def decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._fed = True
        import brotli

        out: list[bytes] = []
        try:
            # output_buffer_limit bounds each call's output, as max_length does for zlib.
            piece = self._obj.process(data, output_buffer_limit=self.limit - self._size + 1)
            while True:
                self._size += len(piece)
                out.append(piece)
                if self._size > self.limit:
                    raise BodyTooLarge(self.limit)
                if self._obj.can_accept_more_data():
                    break
                piece = self._obj.process(b"", output_buffer_limit=self.limit - self._size + 1)
        except brotli.error as exc:
            raise ProtocolError(f"bad compressed body: {exc}") from None
        return b"".join(out)

    def flush(self) -> bytes:
        return b""


class _Zstd:
    """zstd (RFC 8878): the compressed body is kept, then read out up to ``limit`` bytes.

    zstandard's incremental decompressor has no cap on one call's output, so
    a small frame could fill memory; its stream reader has one.
    """

    __slots__ = ("_data", "_done", "limit")

    def __init__(self, limit: int) -> None:
        self._data: list[bytes] = []
        self._done = False
        self.limit = limit

    @property
    def finished(self) -> bool:
        return self._done or not self._data

    def decode(self, data: bytes) -> bytes:
        if data:
            self._data.append(data)
            if sum(map(len, self._data)) > self.limit:
                raise BodyTooLarge(self.limit)
        return b""

    def flush(self) -> bytes:
        if not self._data:
            return b""
        import io

        import zstandard

        try:
            with zstandard.ZstdDecompressor().stream_reader(
                io.BytesIO(b"".join(self._data)), read_across_frames=True
            ) as reader:
                out = reader.read(self.limit + 1)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"bad compressed body: {exc}") from None
        if len(out) > self.limit:
            raise BodyTooLarge(self.limit)
        if not out and self._data:
            raise ProtocolError("bad compressed body: no zstd frame")
        self._done = True
        return bytes(out)


_Stage = _Zlib | _Brotli | _Zstd


def _stage(enc: bytes, limit: int, kind: str) -> _Stage:
    if enc in (b"gzip", b"x-gzip", b"deflate"):
        return _Zlib(enc, limit)
    if enc == b"br":
        return _Brotli(limit)
    if enc == b"zstd":
        return _Zstd(limit)
    raise UnknownEncoding(f"unsupported {kind} {enc.decode('latin-1')!r}")


def _codings(listed: bytes) -> list[bytes]:
    codings = [c.strip().lower() for c in listed.split(b",")]
    return [c for c in codings if c and c != b"identity"]


class Decoder:
    """Content decoding (gzip, deflate, br, zstd, or several in a row) capped at ``limit`` bytes.

    ``Content-Encoding: gzip, br`` means gzip was applied first, so br is
    decoded first (RFC 9110 §8.4). ``transfer`` lists the transfer codings
    other than chunked (``Transfer-Encoding: gzip, chunked``, RFC 9112 §7),
    applied after the content codings, so decoded before them, the same way.
    Raises :class:`UnknownEncoding` for a coding it cannot decode.
    """

    __slots__ = ("_stages", "limit")

    def __init__(self, encoding: bytes, limit: int, transfer: bytes = b"") -> None:
        self._stages = [
            _stage(c, limit, "transfer-coding") for c in reversed(_codings(transfer))
        ] + [_stage(c, limit, "content-encoding") for c in reversed(_codings(encoding))]
        self.limit = limit

    @property
    def finished(self) -> bool:
        """Every compressed stream ended properly (or no body was sent at all)."""
        return all(stage.finished for stage in self._stages)

    def decode(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.decode(data)
            if not data:
                return b""
        return data

    def flush(self) -> bytes:
        """The output held back until the end of the body (zstd)."""
        out = b""
        for stage in self._stages:
            out = stage.decode(out) + stage.flush()
        return out

"""The input's byte stream: read errors named in one line, and standard input's first line.

A truncated ``.gz`` (``EOFError``), a file that is not gzip at all, a corrupt
deflate stream (``zlib.error``) or an I/O error while reading would surface as a
traceback from deep in the reader; :class:`Guarded` turns each into one
:class:`~drumfire._errors.InputError` naming the input, whether it happens
before the first request (exit status 2) or under way (the run stops, exit
status 1). :class:`Prepend` puts back the line read from standard input to
tell its format; :func:`check_stdin_start` refuses, in one line, what standard
input cannot carry (Parquet, gzip).
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Iterator
from typing import IO

from ._errors import InputError

__all__ = [
    "STDIN_PARQUET",
    "Guarded",
    "Prepend",
    "check_stdin_start",
    "check_wide_start",
    "stdin_start",
]

#: What reading a file or a gzip stream may raise.
_READ_ERRORS = (OSError, EOFError, zlib.error)

#: Parquet keeps the place of its row groups in a footer at the end of the file, so
#: it is read from a path (pyarrow and pandas need a seekable file too), never a pipe.
STDIN_PARQUET = (
    "standard input (-) holds Parquet, which drumfire reads only from a path (a Parquet "
    "file is read from its footer, at its end): give the file's path instead of -"
)
#: gzip is decompressed by the name of the file (as pandas infers it), which a pipe lacks.
_STDIN_GZIP = (
    "standard input (-) is gzip-compressed: give the file's path instead of - (a .gz file "
    "is decompressed as it is read), or decompress it into the pipe: gunzip -c FILE.gz | "
    "drumfire ... -"
)


def stdin_start(raw: IO[bytes]) -> bytes:
    """The first bytes waiting on standard input, left in place (``b""`` if it cannot peek)."""
    peek = getattr(raw, "peek", None)
    if peek is None:
        return b""
    try:
        return bytes(peek(4)[:4])
    except (OSError, ValueError):  # closed or unreadable: the reader reports it
        return b""


def check_stdin_start(start: bytes) -> None:
    """Raise one :class:`InputError` when standard input starts like Parquet, gzip,
    or UTF-16 or UTF-32 text."""
    if start.startswith(b"PAR1"):
        raise InputError(STDIN_PARQUET)
    if start.startswith(b"\x1f\x8b"):
        raise InputError(_STDIN_GZIP)
    check_wide_start(start, "standard input (-)")


def check_wide_start(start: bytes, what: str) -> None:
    """Raise one :class:`InputError` when ``start`` is a UTF-16 or UTF-32 byte order mark.

    Excel's "Unicode Text" export is UTF-16: read as UTF-8 its header was "not valid
    text", and ``--encoding utf-16`` is refused (the readers split lines as bytes).
    """
    for bom, wide in (
        (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16's: it starts with the same bytes
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if start.startswith(bom):
            raise InputError(
                f"{what} is {wide} text (it starts with a {wide} byte order mark); only UTF-8 "
                f"and other ASCII-compatible encodings are read: convert it, e.g. "
                f"iconv -f {wide} -t UTF-8 FILE > FILE.utf8"
            )


class Guarded:
    """``raw`` whose read errors are one :class:`InputError` naming ``what`` (the input)."""

    def __init__(self, raw: IO[bytes], what: str) -> None:
        self._raw = raw
        self._what = what
        self.close = raw.close

    def _error(self, exc: BaseException) -> InputError:
        why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
        return InputError(f"cannot read {self._what}: {why}")

    def peek(self, size: int = 0) -> bytes:
        """The next bytes, left in place (see :func:`stdin_start`): a ``.gz`` cut within its
        first block fails here (it was click's ``Aborted!``, exit 1, the input unnamed)."""
        try:
            return bytes(self._raw.peek(size))  # type: ignore[attr-defined]
        except _READ_ERRORS as exc:
            raise self._error(exc) from None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except _READ_ERRORS as exc:
            raise self._error(exc) from None

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._raw, "read1", None) or self._raw.read  # stdin's Prepend: read1
        try:
            return read1(size)
        except _READ_ERRORS as exc:
            raise self._error(exc) from None

    def readline(self) -> bytes:
        try:
            return self._raw.readline()
        except _READ_ERRORS as exc:
            raise self._error(exc) from None

    def __iter__(self) -> Iterator[bytes]:
        lines = iter(self._raw)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except _READ_ERRORS as exc:
                raise self._error(exc) from None
            yield line


class Prepend:
    """A binary stream with one line already read put back in front."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def __iter__(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        self._first = None
        yield from self._rest

    def read1(self, size: int = -1) -> bytes:
        if self._first:
            first, self._first = self._first, None
            return first
        self._first = None
        return self._rest.read1(size)  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        pass  # stdin stays open

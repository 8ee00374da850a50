"""The input's byte stream: read errors named in one line, and standard input's first line.

A truncated ``.gz`` (``EOFError``), a file that is not gzip at all, a corrupt
deflate stream (``zlib.error``) or an I/O error while reading would surface as a
traceback from deep in the reader; :class:`Guarded` turns each into one
:class:`~drumfire._errors.InputError` naming the input, whether it happens
before the first request (exit status 2) or under way (the run stops, exit
status 1). :class:`Prepend` puts back the line read from standard input to
tell its format; :func:`check_stdin_start` refuses, in one line, what standard
input cannot carry (Parquet, gzip). :class:`Background` reads the rows of an
input that may block (a pipe, a terminal) in a thread, so a writer that pauses
never holds the engine's loop.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import os
import socket
import stat
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO

from ._errors import InputError
from ._rows import WAIT, Item

__all__ = [
    "STDIN_PARQUET",
    "Background",
    "Guarded",
    "Prepend",
    "check_file_start",
    "check_stdin_start",
    "check_text_start",
    "check_wide_start",
    "may_block",
    "socket_wake",
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


def check_file_start(raw: IO[bytes], path: str) -> None:
    """:func:`check_text_start` for the file ``path``, opened as ``raw``."""
    check_text_start(stdin_start(raw), path, lambda: _ends_parquet(raw))


def check_text_start(start: bytes, path: str, ends_parquet: Callable[[], bool]) -> None:
    """Raise one :class:`InputError` when the file ``path``, to be read as text, starts
    (``start``, its first 4 bytes) as gzip (not named ``.gz``), Parquet (and
    ``ends_parquet()``), or UTF-16 or UTF-32 text.

    A gzip file named ``.csv`` was a header "not valid text in this encoding; say
    --encoding", and a Parquet one a header of its bytes, whose columns were missing.
    """
    what = f"input {path!r}"
    if start.startswith(b"\x1f\x8b") and not path.endswith(".gz"):
        raise InputError(
            f"{what} is gzip-compressed: name it .gz (a .gz file is decompressed as it is "
            "read), or decompress it first: gunzip -c FILE | drumfire ... -"
        )
    if start.startswith(b"PAR1") and ends_parquet():
        raise InputError(f"{what} is a Parquet file: say --format parquet (or name it .parquet)")
    check_wide_start(start, what)


def _ends_parquet(raw: IO[bytes]) -> bool:
    """Whether ``raw`` ends as a Parquet file does (a pipe: it may, it cannot be told)."""
    try:
        fd = raw.fileno()
        size = os.fstat(fd).st_size
        return not stat.S_ISREG(os.fstat(fd).st_mode) or os.pread(fd, 4, size - 4) == b"PAR1"
    except (AttributeError, OSError, ValueError):
        return True


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

    def fileno(self) -> int:
        return self._raw.fileno()

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


def may_block(raw: IO[bytes]) -> bool:
    """Whether reading ``raw`` may wait on another process: a pipe, a socket, a
    terminal (standard input, ``<(zcat …)``), not a regular file or a block device."""
    try:
        mode = os.fstat(raw.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # no descriptor (gzip, a test's stream)
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISBLK(mode))


class Background:
    """The items of an input that may block, read by a thread once :meth:`attach` ed.

    A row of standard input that came while its writer paused was read in the
    engine's loop, which then read no answer: a row answered at once waited there
    (its ``elapsed_ms`` the pause), and past ``--timeout`` it timed out and was
    sent again (a POST answered in a millisecond ended as a ``timeout``). Attached
    (the engine's run), a thread reads up to ``bound`` items ahead; the caller gets
    :data:`~drumfire._rows.WAIT` when none has come, and ``wake`` (called from the
    thread) when one does. Before that, iterating reads in the caller's thread, as
    the items themselves.

    :meth:`detach` takes the rest from the thread, for a read-ahead child (a fork,
    which has no such thread). :meth:`close` closes the stream, by the thread if it
    is still reading (a read under way cannot be cut short; the thread is a daemon).
    """

    #: How long :meth:`detach` waits for the thread to finish the item it reads: a
    #: pipe that gives as fast as it is read takes microseconds, a paused one longer.
    DETACH_WAIT = 0.05

    def __init__(self, items: Iterator[Item], close: Callable[[], None], bound: int = 4096) -> None:
        self._items = items
        self._close = close
        self._bound = bound
        self._queue: deque[Item] = deque()
        self._room = threading.Event()
        self._full = False  # the thread waits (or is about to) for room
        self._waiting = False  # the caller got WAIT and wants a wake
        self._end = False  # the thread has appended every item it will
        self._failure: BaseException | None = None
        self.wake: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the hand-over, and who closes
        self._handing = False  # detach() asks the thread to stop after its item
        self._handed = threading.Event()  # it stopped for detach(): not a read more
        self._closed = False  # close() was called
        self._done = False  # the thread has ended

    def limit(self, most: int) -> None:
        """Read only the first ``most`` items (``-n``); before :meth:`attach`."""
        self._items = itertools.islice(self._items, most)

    def attach(self, wake: Callable[[], None]) -> None:
        """Start the thread; ``wake`` tells the caller an item came after a WAIT."""
        if self._thread is None:
            self.wake = wake
            self._thread = threading.Thread(target=self._read, name="drumfire-input", daemon=True)
            self._thread.start()

    def detach(self) -> Background | None:
        """The items not taken yet, unattached, for the caller to hand to a read-ahead
        child; the thread reads no more. None (nothing changes) when the thread is in
        a read that has not returned within :data:`DETACH_WAIT`, or has ended."""
        with self._lock:
            if self._thread is None or self._done:
                return None
            self._handing = True
        self._room.set()
        self._handed.wait(self.DETACH_WAIT)
        with self._lock:
            self._handing = False
            if not self._handed.is_set():
                return None
        rest = Background(itertools.chain(list(self._queue), self._items), self._close)
        rest.wake = self.wake
        self._queue.clear()
        self._close = rest.close  # which waits for a thread of its own, if it gets one
        return rest

    def __iter__(self) -> Background:
        return self

    def __next__(self) -> Item:
        if self._thread is None:
            return next(self._items)
        queue = self._queue
        if not queue:
            self._waiting = True  # before looking again: the thread wakes after it appends
            if not queue:
                if not self._end:
                    return WAIT
                self._waiting = False
                if not queue:  # the thread appends every item before it sets _end
                    failure, self._failure = self._failure, None
                    if failure is not None:
                        raise failure
                    raise StopIteration
            self._waiting = False
        item = queue.popleft()
        if self._full and len(queue) <= self._bound >> 1:
            self._full = False
            self._room.set()
        return item

    def _read(self) -> None:
        queue, room, bound = self._queue, self._room, self._bound
        try:
            for item in self._items:
                queue.append(item)
                if self._waiting:
                    self._waiting = False
                    self._call_wake()
                if len(queue) >= bound:
                    self._full = True
                    room.clear()
                    if len(queue) >= bound and not (self._closed or self._handing):
                        room.wait()  # (set by the caller, close or detach)
                if self._handing and self._hand_over():
                    return  # detach() took the items: not a step further
                if self._closed:
                    break
        except BaseException as exc:  # an unreadable input: raised to the caller, after the rows
            self._failure = exc
        self._end = True
        self._call_wake()
        with self._lock:
            self._done = True
            close = self._close if self._closed else None
        if close is not None:
            close()

    def _hand_over(self) -> bool:
        with self._lock:
            if not self._handing:  # detach() gave up waiting
                return False
            self._done = True
            self._handed.set()
            return True

    def _call_wake(self) -> None:
        try:
            assert self.wake is not None
            self.wake()
        except RuntimeError:  # the engine's loop is closed: nobody waits any more
            pass

    def close(self) -> None:
        """Close the stream now, or (a read under way) when the thread's read returns."""
        with self._lock:
            self._closed = True
            self._room.set()
            reading = self._thread is not None and not self._done
        if not reading:
            self._close()


def socket_wake(items: Iterator[Item]) -> list[socket.socket]:
    """Start the thread of ``items`` if they are a :class:`Background`, waking the
    caller on a socket: its two ends (the first to wait on and read), or none."""
    if not isinstance(items, Background):
        return []
    ends = list(socket.socketpair())
    for end in ends:
        end.setblocking(False)

    def wake() -> None:
        with contextlib.suppress(OSError):  # full: a wake is pending; closed: the run ended
            ends[1].send(b"\0")

    items.attach(wake)
    return ends

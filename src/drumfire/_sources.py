"""Input sources: CSV/TSV with a header, JSON Lines, a text file of URLs, stdin.

Every source is streamed (one row at a time from a buffered file) and yields
``(row_number, row)`` where row_number counts data rows from 1 and row is a
mapping, or an :class:`~drumfire._rows.InputProblem` for a row that cannot be
read — so a bad row becomes an error row, not a crash or a silent gap. Each
source of lines also keeps a :class:`~drumfire._rows.LineMap`: the line each
row starts on, for the error rows that name it.

Why this module is long: the CSV reader is most of it, guarded against runaway
quotes (``_guarded``) and naming every problem's first line; the line
bookkeeping it shares with the other formats reads best next to them.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import functools
import io
import itertools
import os
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from ._errors import InputError, UsageError
from ._instream import (
    Background,
    Guarded,
    Prepend,
    check_file_start,
    check_stdin_start,
    may_block,
    stdin_start,
)
from ._rows import InputProblem, Item, LineMap, check_unique_columns
from ._text import with_article
from ._values import is_missing, loads_exact

__all__ = [
    "FORMATS",
    "TEXT_FORMATS",
    "Source",
    "check_delimiter",
    "codec_name",
    "count_rows",
    "open_source",
    "record_closes",
    "rows_source",
]

FORMATS = ("csv", "tsv", "jsonl", "text", "parquet")
TEXT_FORMATS = frozenset({"csv", "tsv", "text"})  # every row value is a str
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".txt": "text",
    ".urls": "text",
    ".list": "text",
    ".parquet": "parquet",
    ".pq": "parquet",
}

csv.field_size_limit(64 * 1024 * 1024)


@dataclass
class Source:
    """An opened input: its columns (when known before reading) and its items."""

    items: Iterator[Item]
    columns: frozenset[str] | None
    fmt: str
    total: int | None = None
    close: Any = None
    #: Where each row starts in a line-based input (``None``: rows, not lines).
    lines: LineMap | None = None
    #: The columns whose values may hold a NaN or an infinity, from an Arrow schema
    #: (``None``: any may, as in Python rows; text inputs hold none, whatever it says).
    nan_columns: frozenset[str] | None = None


def format_for(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise InputError(f"unknown input format {fmt!r} (choose from {', '.join(FORMATS)})")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in (".gz",):
        suffix = Path(path[:-3]).suffix.lower()
    found = _EXTENSIONS.get(suffix)
    if found is None:
        raise InputError(
            f"cannot tell the format of {path!r} from its extension; "
            f"say --format {{{','.join(FORMATS)}}}"
        )
    return found


def _sniff(first: str) -> str:
    text = first.lstrip("\ufeff").lstrip()
    if text.startswith("{") or text.rstrip() == "[" or text.startswith("[{"):
        return "jsonl"  # an array too, which the JSON Lines reader names
    if text.startswith(("http://", "https://")):
        return "text"
    return "tsv" if "\t" in text and "," not in text else "csv"


#: The message of a row whose line (or, in CSV, record) is not valid text in the encoding.
_UNDECODABLE = "undecodable bytes (say --encoding)"

#: How a tab may be written where typing one is awkward (``--delimiter '\t'``).
_TAB_NAMES = ("\\t", "tab", "TAB")


def check_delimiter(value: object, name: str) -> str:
    """``--delimiter`` / ``delimiter=``: the one character between a CSV's fields, as
    the csv module's ``delimiter`` and pandas' ``sep``; ``\\t`` or ``tab`` for a tab.

    ``name``: how the caller gave it (``--delimiter``, ``delimiter``), for the message.
    """
    if isinstance(value, str) and value in _TAB_NAMES:
        return "\t"
    if isinstance(value, str) and len(value) == 1 and value not in '"\r\n\0':
        return value
    if not isinstance(value, str) or len(value) != 1:
        why = "give one character (';', '|', '\\t' for a tab)"
    else:
        why = "the quote, a line break or NUL cannot separate fields; give another character"
    sep = " " if name.startswith("-") else "="
    raise UsageError(f"{name}{sep}{value!r}: {why}")


def codec_name(encoding: str) -> str:
    """The codec of ``--encoding`` / ``encoding=``; an :class:`InputError` for one
    unknown or not ASCII-compatible (the reader splits lines at the byte ``\\n``)."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (--encoding)") from None
    if codec.startswith(("utf-16", "utf-32")):
        raise InputError(
            f"--encoding {encoding}: only ASCII-compatible encodings are "
            "supported (UTF-8, Latin-1, cp1252...); convert the file to UTF-8"
        )
    return codec


def open_source(
    path: str,
    fmt: str | None = None,
    encoding: str = "utf-8",
    *,
    count: bool = True,
    delimiter: str | None = None,
    whole: bool = True,
) -> Source:
    """Open ``path`` (or ``-`` for stdin) as a streamed source.

    The file is read as bytes and decoded line by line, so an undecodable line
    becomes one error row naming its line, and the rows around it go on. A UTF-8
    byte order mark at the start is dropped whatever the encoding (read in Latin-1 it
    would make the first column ``ï»¿id``, which no template names), as JSON Lines
    always dropped it.
    Raises :class:`InputError` for a missing or unreadable file or an unusable
    header: problems found before the first request. ``count``: count the
    rows of a regular file first, for the progress display's total (a read of
    the whole file; the command line skips it when nothing is displayed).
    ``delimiter``: a CSV's (see :func:`check_delimiter`); None: a comma, a tab for TSV.
    ``whole``: False for a ``--cluster`` partition after the first: its first row is
    not the input's, so what stops the run on the input's first line (a JSON array, a
    line ended by CR alone) is that row's error, as it is read in one process.
    """
    codec = codec_name(encoding)
    if fmt == "parquet" or (fmt is None and path != "-" and format_for(path, fmt) == "parquet"):
        _no_delimiter(delimiter, path, "parquet")
        from ._parquet import open_parquet_source

        items, columns, rows, close, floats = open_parquet_source(path)
        return Source(items, columns, "parquet", rows, close, nan_columns=floats)
    total: int | None = None
    raw: IO[bytes]
    if path == "-":
        if sys.stdin is None:  # closed (``<&-``): Python has no stream for it
            raise UsageError("INPUT '-' is standard input, which is closed: give a file")
        raw = sys.stdin.buffer
        if fmt is None:
            first = raw.readline()
            check_stdin_start(first)  # Parquet or gzip: one line saying what works
            # Sniffed without a UTF-8 BOM, which the reader drops in any encoding.
            fmt = _sniff(first.removeprefix(codecs.BOM_UTF8).decode(codec, "replace"))
            raw = Prepend(first, raw)  # type: ignore[assignment]
        else:
            check_stdin_start(stdin_start(raw))
    else:
        fmt = format_for(path, fmt)
        try:
            if path.endswith(".gz"):
                import gzip

                raw = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
            else:
                raw = open(path, "rb", buffering=1 << 20)  # noqa: SIM115
                if count:
                    csv_like = fmt in ("csv", "tsv")
                    total = count_rows(
                        path, header=csv_like, quoted=csv_like, comments=fmt == "text"
                    )
        except FileNotFoundError:
            raise InputError(f"input file {path!r} does not exist") from None
        except IsADirectoryError:
            raise InputError(f"input {path!r} is a directory") from None
        except OSError as exc:
            raise InputError(f"cannot read input {path!r}: {exc.strerror or exc}") from None
    close = raw.close
    # A pipe or a terminal (standard input, <(zcat …)): its rows are read by a thread
    # (see Background), handed over as they come.
    blocks = may_block(sys.stdin.buffer if path == "-" else raw)
    stream = blocks or path == "-"  # lines handed over as they come
    # A read error on the way (a truncated .gz, an I/O error): one line naming the input.
    raw = Guarded(raw, "standard input" if path == "-" else f"input {path!r}")  # type: ignore[assignment]
    if path != "-":
        try:
            check_file_start(raw, path)
        except InputError:
            close()
            raise
    try:
        if fmt in ("csv", "tsv"):
            delimiter = delimiter or ("\t" if fmt == "tsv" else ",")
            state = _Records()
            groups = _guarded(raw, codec, delimiter, state, stream=stream)
            lines = itertools.chain.from_iterable(groups)
            source = _csv_source(lines, delimiter, fmt, total, close, state)
        else:
            _no_delimiter(delimiter, path, fmt)
            starts = LineMap()
            if fmt == "jsonl":
                items = _started(_jsonl_items(raw, codec, starts, whole))
                source = Source(items, None, fmt, total, close, starts)
            else:
                items = _started(_text_items(_decoded(raw, codec), starts, whole))
                source = Source(items, frozenset({"url"}), fmt, total, close, starts)
    except BaseException:
        raw.close()
        raise
    if blocks:
        source.items = background = Background(source.items, close)
        source.close = background.close
    return source


def _started(items: Iterator[Item]) -> Iterator[Item]:
    """``items`` with the first read now: what stops the run on the first line (a
    carriage return that does not end it, a read error) stops it before the first
    request, exit status 2, as a CSV's header line does."""
    first = next(items, None)
    return iter(()) if first is None else itertools.chain((first,), items)


def _no_delimiter(delimiter: str | None, path: str, fmt: str) -> None:
    """A delimiter given for an input that has no fields to separate: refused, not ignored."""
    if delimiter is not None:
        where = "standard input" if path == "-" else repr(path)
        raise InputError(f"a delimiter separates CSV fields; {where} is read as {fmt}")


def _decoded(raw: IO[bytes], codec: str) -> Iterator[str | None]:
    """Decode line by line (dropping a UTF-8 BOM, whatever the encoding: see
    :func:`open_source`); an undecodable line becomes ``None``."""
    first = True
    for line in raw:
        if first:
            first = False
            if line.startswith(codecs.BOM_UTF8):
                line = line[3:]
        try:
            yield line.decode(codec)
        except UnicodeDecodeError:
            yield None


#: A quoted CSV field may run over at most this many physical lines, or this
#: many characters of text, before it counts as an unterminated quote: its record becomes one
#: ``input: line N: unterminated quote`` row and reading goes on at the line
#: after the one where the quote opened. A quote still open at the end of the
#: input is one too. Past the lines, a field whose quote is seen to close
#: cleanly within the characters (see :func:`record_closes`) is read whole: a
#: document of 5,000 lines in one cell is one row, not 5,000 error rows.
QUOTE_MAX_LINES = 1000
QUOTE_MAX_BYTES = 16 * 1024 * 1024

#: Handed to the CSV reader in place of the next line once a quote ran away: it
#: closes the open quote, then puts a character after it that strict CSV refuses,
#: so the reader drops the record with an error and starts afresh.
_RUNAWAY = '"\ufffe\n'


#: A byte that is not valid text in the input's encoding, as ``surrogateescape`` decodes it.
_ESCAPED = re.compile("[\udc80-\udcff]")

#: ``_Records.next_bad`` while no line handed to the reader holds undecodable bytes: an
#: int CPython compares on its fast path (under 2**30; against ``sys.maxsize`` each row's
#: check cost about twice as much). Records past this line take ``_csv_items``' slower
#: branch, and are read the same.
_NO_LINE = (1 << 30) - 1


class _Records:
    """What the CSV reader and the lines handed to it tell each other.

    ``done``: the reader's ``line_num`` when it completed its last record (the
    consumer sets it), so the line feeder knows whether the next line starts a
    record or continues a quoted field. ``shift``: how far ``line_num`` is ahead
    of the physical line number (it also counts the lines read again after an
    unterminated quote, and the stand-in line). ``opened``: the line where a
    runaway quote opened, while the reader is being made to drop its record;
    0 otherwise.

    Undecodable bytes: a block of the input that does not decode is decoded line
    by line with ``surrogateescape`` (``escaped`` is then set), so its quotes and
    delimiters keep their meaning and a bad byte becomes a lone surrogate in its
    field. ``bad``: the reader's line numbers of the lines handed over that hold
    one and that no record read so far has taken; ``next_bad`` the first of them
    (``_NO_LINE``: none), so that a usual record costs the consumer one comparison.
    ``unit``, ``begin``: the lines handed over last, and the reader's line number
    before them, for a look at one line's text (see :meth:`holds_quote`).
    """

    __slots__ = ("bad", "begin", "done", "escaped", "next_bad", "opened", "shift", "unit")

    def __init__(self) -> None:
        self.done = 0
        self.shift = 0
        self.opened = 0
        self.escaped = False
        self.bad: deque[int] = deque()
        self.next_bad = _NO_LINE
        self.unit: Iterable[str] = ()
        self.begin = 0

    def line(self, line_num: int) -> int:
        """The physical line number of the reader's ``line_num``."""
        return line_num - self.shift

    def mark_bad(self, unit: list[str], begin: int) -> None:
        """Note the lines of ``unit``, handed to the reader after its line ``begin``,
        that hold undecodable bytes."""
        if _ESCAPED.search("".join(unit)):
            self.bad.extend(begin + i for i, line in enumerate(unit, 1) if _ESCAPED.search(line))
            self.next_bad = self.bad[0]

    def took_bad(self, line_num: int) -> bool:
        """Whether the record that ended on the reader's ``line_num`` holds undecodable
        bytes; they are then forgotten."""
        bad = self.bad
        if not bad or line_num < bad[0]:
            return False
        while bad and bad[0] <= line_num:
            bad.popleft()
        self.next_bad = bad[0] if bad else _NO_LINE
        return True

    def holds_quote(self, line_num: int) -> bool:
        """Whether the reader's line ``line_num``, among those handed over last, holds a
        quote character. Only lists of lines can: a block handed over whole (a
        ``StringIO``) holds none."""
        unit = self.unit
        i = line_num - self.begin - 1
        return isinstance(unit, list) and 0 <= i < len(unit) and '"' in unit[i]


#: Bytes of input read at a time for the CSV reader (see _guarded).
_BLOCK = 1 << 16


#: Lines of a block holding a quote handed over at a time (see _guarded): the
#: most a quoted field can run past QUOTE_MAX_LINES before it is cut.
_STEP = 32


def _guarded(
    raw: IO[bytes], codec: str, delimiter: str, state: _Records, *, stream: bool = False
) -> Iterator[Iterable[str]]:
    """The decoded lines of ``raw`` for the CSV reader, in groups, guarded against
    runaway quotes. Feed it through ``itertools.chain.from_iterable``.

    Each block of whole lines (64 KiB) is decoded at once. One without a
    quote character is handed over whole: split at ``\\n`` when the reader is
    between records (then every line is a record), else as a ``StringIO``
    split at ``\\n`` only with the line endings kept, so the reader sees
    exactly the lines it would see one by one, at C speed. A block with a
    quote goes :data:`_STEP` lines at a time, one that does not decode line
    by line (see :class:`_Records` on its undecodable bytes). After each
    group, the reader's last completed record (``state.done``) tells whether
    it is inside a quoted field that goes on:
    then its lines so far are kept, and once they pass
    :data:`QUOTE_MAX_LINES` or :data:`QUOTE_MAX_BYTES`, or the input ends,
    the reader is made to drop the record (see ``_RUNAWAY``) and the lines
    after the one where the quote opened are read again. ``stream``
    (standard input): hand lines over as soon as they arrive.
    """
    blocks = _line_blocks(raw, stream)
    first = True
    pulled = 0  # lines handed to the reader: its line_num
    start_at = 0  # the open record's first line, in the reader's count (0: none)
    held: list[str] = []  # that record's lines so far
    size = 0
    long_cell = False  # the open record passed QUOTE_MAX_LINES but is seen to close
    todo: deque[list[str]] = deque()  # groups of lines to hand over next
    while True:
        text: str | None = None
        unit: Iterable[str]
        if todo:
            unit = todo.popleft()
            count = len(unit)
        else:
            data = next(blocks, None)
            if data is None:
                if pulled == state.done:
                    return  # the input ended between records
                unit = ()  # it ended inside a quoted field
                count = 0
            else:
                if first:
                    first = False
                    if data.startswith(codecs.BOM_UTF8):  # whatever the encoding
                        data = data[3:]
                try:
                    text = data.decode(codec)
                except UnicodeDecodeError:
                    state.escaped = True
                    todo.extend([line] for line in _decode_lines(data, codec))
                    continue
                if '"' in text:
                    lines = _split_lines(text)
                    todo.extend(lines[i : i + _STEP] for i in range(0, len(lines), _STEP))
                    continue
                if pulled == state.done:
                    # Between records and no quote: every line is a record, so
                    # the reader needs no line endings (a list is quickest).
                    unit = text.split("\n")
                    if not unit[-1]:
                        unit.pop()  # after the last newline
                    count = len(unit)
                else:
                    unit = io.StringIO(text, newline="\n")
                    count = text.count("\n") + (not text.endswith("\n"))
        if start_at and count:
            # Inside a record that goes on: would these lines take it past the limits?
            lines = unit if isinstance(unit, list) else _split_lines(text)
            more = sum(map(len, lines))
            too_long = len(held) + count > QUOTE_MAX_LINES and not long_cell
            if size + more > QUOTE_MAX_BYTES:
                todo.appendleft(list(lines))  # not handed over
                count = 0
            elif too_long:
                # A document in a cell may run over many lines: read on when its
                # quote closes cleanly within QUOTE_MAX_BYTES, else cut it here.
                long_cell = _closes_ahead(held, lines, todo, blocks, codec, state, delimiter, size)
                if not long_cell:
                    todo.appendleft(list(lines))
                    count = 0
        if count:
            begin = pulled
            pulled += count
            state.unit = unit
            state.begin = begin
            if state.escaped and text is None and isinstance(unit, list):
                state.mark_bad(unit, begin)  # lines from todo: any may hold some
            yield unit
            # The reader wants the line after these: is it inside a record?
            if pulled == state.done:
                if start_at:
                    start_at = 0
                    held = []
                    long_cell = False
                continue
            lines = unit if isinstance(unit, list) else _split_lines(text)
            record = state.done + 1
            if start_at != record:  # it began among these lines
                start_at = record
                held = list(lines[record - begin - 1 :])
                size = sum(map(len, held))
                long_cell = False
            else:
                held.extend(lines)
                size += sum(map(len, lines))
            if (long_cell or len(held) <= QUOTE_MAX_LINES) and size <= QUOTE_MAX_BYTES:
                continue
        # A quote ran away (or the input ended inside it): the reader drops its
        # record on the stand-in line, then reads again the lines after the one
        # where the quote opened.
        opened = _quote_opener(held, delimiter)
        state.opened = start_at - state.shift + opened
        pulled += 1
        state.shift += pulled - start_at - opened
        again = held[opened + 1 :]
        todo.extendleft(reversed([again[i : i + _STEP] for i in range(0, len(again), _STEP)]))
        start_at = 0
        held = []
        long_cell = False
        state.unit = ()
        yield (_RUNAWAY,)


def _closes_ahead(
    held: list[str],
    lines: list[str],
    todo: deque[list[str]],
    blocks: Iterator[bytes],
    codec: str,
    state: _Records,
    delimiter: str,
    size: int,
) -> bool:
    """Whether the record of ``held`` (its lines so far, a quoted field open),
    followed by ``lines``, the groups in ``todo`` and the input still to come,
    ends cleanly (see :func:`record_closes`) before its text passes
    :data:`QUOTE_MAX_BYTES`. Blocks read to tell are added to ``todo``, as lines,
    so nothing is read twice; nothing is handed to the reader (a block that does
    not decode sets ``state.escaped``, as in :func:`_guarded`).
    """
    verdict, quoted = record_closes("".join(held), delimiter, False)
    if verdict is not None or not quoted:  # not what the reader says: cut as before
        return False

    def groups() -> Iterator[list[str]]:
        yield lines
        yield from list(todo)
        while (data := next(blocks, None)) is not None:
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                state.escaped = True
                more = [[line] for line in _decode_lines(data, codec)]
            else:
                found = _split_lines(text)
                more = [found[i : i + _STEP] for i in range(0, len(found), _STEP)]
            todo.extend(more)
            yield from more

    for group in groups():
        text = "".join(group)
        size += len(text)
        if size > QUOTE_MAX_BYTES:
            return False
        verdict, quoted = record_closes(text, delimiter, True)
        if verdict is not None:
            return verdict
    return False


def _split_lines(text: str | None) -> list[str]:
    """``text`` split after each ``\\n`` (only), endings kept."""
    return io.StringIO(text or "", newline="\n").readlines()


def _decode_lines(data: bytes, codec: str) -> list[str]:
    """A block that does not decode, line by line: an undecodable byte becomes a lone
    surrogate (``surrogateescape``), so the quotes and delimiters around it keep their
    meaning and its record, however many lines it takes, is one error row (see
    :meth:`_Records.took_bad`). Line by line, so no codec reads past a line end."""
    return [line.decode(codec, "surrogateescape") for line in io.BytesIO(data)]


def _line_blocks(raw: IO[bytes], stream: bool) -> Iterator[bytes]:
    """``raw`` in blocks of whole lines (the last may lack its newline).

    ``stream``: each block as soon as some whole line has arrived (standard
    input may be a slow producer).
    """
    read = raw.read1 if stream and hasattr(raw, "read1") else raw.read
    # A line's pieces are joined once it ends: adding each block to the text so far
    # copied it again each time, and a 60 MB cell (under csv's field limit) took
    # half a minute of copying, while the answers in flight waited for the loop.
    tail: list[bytes] = []
    while chunk := read(_BLOCK):
        cut = chunk.rfind(b"\n")
        if cut < 0:
            tail.append(chunk)
            continue
        if tail:
            tail.append(chunk[: cut + 1])
            yield b"".join(tail)
            tail.clear()
        else:
            yield chunk[: cut + 1]
        if cut + 1 < len(chunk):
            tail.append(chunk[cut + 1 :])
    if tail:
        yield b"".join(tail)


def _quote_opener(lines: list[str], delimiter: str) -> int:
    """The index of the line where the quote still open at the end of ``lines`` opened.

    ``lines`` are one CSV record's lines so far, its first a record's first
    line; the scan follows the csv module's rules (a quote opens a field only at
    its start, ``""`` inside quotes is a literal quote).
    """
    text = "".join(lines)
    ends = re.compile(f"[{re.escape(delimiter)}\r\n]")
    starts = list(itertools.accumulate((len(line) for line in lines), initial=0))
    end = len(text)
    i = 0
    opened = 0
    while i < end:
        if text[i] == '"':  # a quoted field
            opened = i
            j = i + 1
            while True:
                k = text.find('"', j)
                if k < 0:
                    return bisect.bisect_right(starts, opened) - 1
                if text.startswith('"', k + 1):
                    j = k + 2
                    continue
                i = k + 1
                break
            if i < end and text[i] in (delimiter, "\r", "\n"):
                i += 1
            continue
        # an unquoted field (or an empty one): up to the next delimiter or line end
        found = ends.search(text, i)
        i = found.end() if found else end
    return bisect.bisect_right(starts, opened) - 1


@functools.cache
def _field_ends(delimiter: str) -> re.Pattern[str]:
    """Where an unquoted field ends: its delimiter or a line end."""
    return re.compile(f"[{re.escape(delimiter)}\r\n]")


def record_closes(text: str, delimiter: str, quoted: bool) -> tuple[bool | None, bool]:
    """Whether the CSV record in ``text`` (whole lines) ends, by the strict reader's rules.

    ``quoted`` False: ``text`` starts the record; True: it goes on inside a
    quoted field. Returns ``(True, _)`` when the record ends within ``text``
    (its last quoted field closed by a quote followed by a delimiter or a line
    end), ``(False, _)`` when a closing quote is followed by anything else (the
    strict reader refuses it: a stray quote closed by the opening quote of an
    unrelated field), ``(None, quoted)`` when it goes on past ``text``.
    """
    i, end = 0, len(text)
    while i < end:
        if quoted:
            k = text.find('"', i)
            if k < 0:
                return None, True
            after = text[k + 1 : k + 2]
            if after == '"':  # "" inside a quoted field
                i = k + 2
            elif after == delimiter:
                quoted, i = False, k + 2
            elif after in ("\n", "\r", ""):
                return True, False
            else:
                return False, False
        elif text.startswith('"', i):
            quoted, i = True, i + 1
        else:  # an unquoted field: up to the next delimiter or line end
            found = _field_ends(delimiter).search(text, i)
            if found is not None and found.group() == delimiter:
                i = found.end()
            else:
                return True, False
    return None, quoted


_NOT_QUOTE_OR_NEWLINE = bytes(b for b in range(256) if b not in b'"\n')
#: A block's lines by their shape, for counting those the readers skip: white space
#: (bytes.strip()'s) deleted, a newline kept, ``#`` kept (a text input's comment), any
#: other byte an ``x``. A blank line is then a newline after a newline.
_LINE_SHAPE = bytes(c if c in b"\n#" else ord("x") for c in range(256))
_SPACE = b" \t\r\f\v"
#: Where a line of a block may be skipped (a line of the block's start is checked
#: apart): a line that is empty or starts with white space (or ``#``). One search:
#: faster than the block's newlines counted twice.
_MAYBE_BLANK = re.compile(rb"\n[\n\r \t\f\v]")
_MAYBE_BLANK_OR_COMMENT = re.compile(rb"\n[\n\r \t\f\v#]")
_LINE_START_BLANK = frozenset(b"\n\r \t\f\v")
_LINE_START_BLANK_OR_COMMENT = frozenset(b"\n\r \t\f\v#")


def _skipped(block: bytes, comments: bool) -> int:
    """How many whole lines of ``block`` (which starts a line) are blank, or
    (``comments``) comments: the rows a reader skips. Cheap when there is none (one
    search of the block), a few passes in C otherwise."""
    if comments:
        starts, maybe = _LINE_START_BLANK_OR_COMMENT, _MAYBE_BLANK_OR_COMMENT
    else:
        starts, maybe = _LINE_START_BLANK, _MAYBE_BLANK
    if not block or (block[0] not in starts and maybe.search(block) is None):
        return 0
    shape = block[: block.rfind(b"\n") + 1].translate(_LINE_SHAPE, _SPACE)
    # Each line ends in x or # unless it is blank.
    skipped = shape.count(b"\n") - shape.count(b"x\n") - shape.count(b"#\n")
    if comments:  # a line that starts with # (after its white space)
        skipped += shape.count(b"\n#") + shape.startswith(b"#")
    return skipped


def _from_line_start(block: bytes, start: bool) -> bytes:
    """``block`` from its first line start: all of it when it starts one (``start``),
    else from after its first newline (the line across the blocks: see :func:`_line_kind`)."""
    if start:
        return block
    cut = block.find(b"\n")
    return block[cut + 1 :] if cut >= 0 else b""


def _line_kind(kind: bytes, piece: bytes, comments: bool) -> bytes:
    """What a line is so far, once ``piece`` (none of its newlines) is added: ``b""``
    white space alone, ``b"#"`` a comment (with ``comments``), ``b"x"`` a row. A line
    that a block boundary cuts is seen in two pieces: :func:`_skipped` sees neither."""
    if kind:
        return kind
    rest = piece.lstrip(_SPACE)
    if not rest:
        return b""
    return b"#" if comments and rest.startswith(b"#") else b"x"


def count_rows(path: str, header: bool, quoted: bool = False, comments: bool = False) -> int | None:
    """Count the rows cheaply (newlines in binary), for the progress display's total.

    ``quoted`` (CSV/TSV): a line break inside a quoted field does not end a
    row: newlines are counted only outside quotes, found by splitting each
    block at its quote characters (a block without any is counted whole).
    Lines of white space only are not rows, nor, with ``comments`` (a text input
    of URLs), lines starting with ``#``: the readers skip them (a run of blank
    lines counted as rows left the bar short of its total at the end). An
    estimate when a quote stands inside an unquoted field (``5" screw``); None
    if the file is not a regular file.
    """
    try:
        if not os.path.isfile(path):
            return None
        n = plain = 0  # rows; and lines, in case a quote never closes
        inside = False  # within a quoted field at the end of the last block
        start = True  # the next block starts a line (the last one ended with its newline)
        last = b"\n"
        kind = b""  # the kind of the line the last block ended inside (see _line_kind)
        with open(path, "rb") as f:
            # In blocks as read, not whole lines: a file without a newline (a CSV whose
            # lines end in a lone CR) is counted in a pass, as it was.
            while chunk := f.read(1 << 22):
                if last == b"\n":  # the first block (the readers drop a byte order mark)
                    chunk = chunk.removeprefix(codecs.BOM_UTF8) or b"\n"
                begins, start, last = start, chunk.endswith(b"\n"), chunk
                lines = chunk.count(b"\n") - _skipped(_from_line_start(chunk, begins), comments)
                # The line the boundary cut, where the readers skip it (blank, a comment).
                cut = chunk.find(b"\n")
                if cut < 0:
                    kind = _line_kind(kind, chunk, comments)
                    across = 0
                else:
                    across = not begins and _line_kind(kind, chunk[:cut], comments) != b"x"
                    kind = _line_kind(b"", chunk[chunk.rfind(b"\n") + 1 :], comments)
                lines -= across
                plain += lines
                if not quoted or (not inside and b'"' not in chunk):
                    n += lines
                    continue
                # Only quotes and newlines matter, and a pair of quotes side by
                # side ("" in a quoted cell, or a "" cell) leaves the state as it
                # was: drop them, then split at the quotes left.
                parts = chunk.translate(None, _NOT_QUOTE_OR_NEWLINE).replace(b'""', b"").split(b'"')
                # Even parts lie outside quotes (odd ones, when the block starts inside).
                within = b"".join(parts[0 if inside else 1 :: 2]).count(b"\n")
                if within:  # line breaks in quoted cells: count the lines outside them
                    parts = chunk.split(b'"')
                    # (a quote for each quoted part: a line with one is not blank)
                    outside = b'"' * inside + b'"'.join(parts[1 if inside else 0 :: 2])
                    head = _from_line_start(outside, begins and not inside)
                    lines = outside.count(b"\n") - _skipped(head, False) - (across and not inside)
                if len(parts) % 2 == 0:
                    inside = not inside
                n += lines
        if not last.endswith(b"\n") and kind == b"x":  # a last line without its newline
            n += 1
            plain += 1
        if inside:
            # A quote that never closes: drumfire reads on after it (see _guarded),
            # so the lines are the better estimate.
            n = plain
        return max(0, n - 1) if header else n
    except OSError:
        return None


def _csv_source(
    lines: Iterator[str],
    delimiter: str,
    fmt: str,
    total: int | None,
    close: Any,
    state: _Records,
) -> Source:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        state.done = reader.line_num
        # Leading blank lines, of spaces and tabs too, as blank lines between rows are
        # (one of spaces was the header: "uses column 'v', which the input does not
        # have (columns: none)", and the real header a row).
        while header is not None and (not header or (len(header) == 1 and not header[0].strip())):
            header = next(reader, None)
            state.done = reader.line_num
    except csv.Error as exc:
        if state.opened:
            raise InputError(
                f"the header line (line {state.opened}) has an unterminated quote"
            ) from None
        if _LONE_CR in str(exc):
            raise InputError(f"the header line {_CR_FILE}") from None
        raise InputError(f"cannot read the header line: {exc}") from None
    if header is None:
        raise InputError("the input is empty: expected a header line naming the columns")
    if state.took_bad(reader.line_num):
        raise InputError("the header line is not valid text in this encoding; say --encoding")
    header = [h.strip() for h in header]
    # A column without a name (pandas' index, as to_csv writes it: ",id,lon1") cannot be
    # named by a template or --keep: its fields are counted and read, and nothing uses them.
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise InputError(f"the header line names columns more than once: {', '.join(dupes)}")
    starts = LineMap()
    items = _csv_items(reader, header, state, starts)
    return Source(items, frozenset(h for h in header if h), fmt, total, close, starts)


def _csv_items(reader: Any, header: list[str], state: _Records, lines: LineMap) -> Iterator[Item]:
    width = len(header)
    n = 0
    usual = -1  # begun - n while rows take one line each (-1: no row yet)
    while True:
        try:
            for fields in reader:
                begun = state.done  # the record began on the line after this one
                state.done = end = reader.line_num  # the next line starts a record
                # The usual row first: as many fields as the header, no undecodable
                # bytes, and (for a one-column file) not blank.
                if (
                    len(fields) == width
                    and end < state.next_bad
                    and (width > 1 or fields[0].strip())
                ):
                    n += 1
                    if begun - n != usual:  # lines skipped, or a record over several
                        usual = begun - n
                        lines.mark(n, state.line(begun + 1))
                    yield n, dict(zip(header, fields, strict=True))
                    continue
                first, line = state.line(begun + 1), state.line(end)
                if state.took_bad(end):  # whatever else is wrong with the record
                    n += 1
                    yield n, InputProblem(first, _UNDECODABLE + _span(first, line))
                    continue
                if not fields or (len(fields) == 1 and _blank(fields[0], begun, end, state)):
                    continue
                n += 1
                if len(fields) == width:
                    # A one-column file's quoted blank value (see _blank), or any
                    # record past the line _NO_LINE: a row.
                    if begun - n != usual:
                        usual = begun - n
                        lines.mark(n, first)
                    yield n, dict(zip(header, fields, strict=True))
                    continue
                yield n, InputProblem(
                    first, f"expected {width} fields, found {len(fields)}" + _span(first, line)
                )
            return
        except csv.Error as exc:
            # The reader goes on with the next line after a malformed one, or
            # (an unterminated quote) with the line after the one where it opened.
            n += 1
            first, line = state.line(state.done + 1), state.line(reader.line_num)
            if state.opened:
                # The lines after the opening one, undecodable bytes among them, are read again.
                state.took_bad(reader.line_num)
                yield n, InputProblem(state.opened, "unterminated quote")
                state.opened = 0
            elif state.took_bad(reader.line_num):
                yield n, InputProblem(first, _UNDECODABLE + _span(first, line))
            else:
                what = _CR_WORDS if _LONE_CR in str(exc) else str(exc)
                yield n, InputProblem(first, f"malformed CSV: {what}" + _span(first, line))
            state.done = reader.line_num


def _blank(field: str, begun: int, end: int, state: _Records) -> bool:
    """Whether a record of one field, on the reader's lines after ``begun`` up to
    ``end``, is a blank line (skipped): white space only, on one line, and no quote.
    A quoted empty or blank value (``""``, ``"  "``) is a value, as ``csv.writer``
    writes a one-column row with an empty value so that it is not a blank line."""
    return not field.strip() and end == begun + 1 and not state.holds_quote(end)


#: The CSV reader's words for a carriage return inside an unquoted field, and drumfire's.
_LONE_CR = "new-line character seen in unquoted field"
_CR_WORDS = "a carriage return (CR) inside an unquoted field (quote the field)"
#: A first line holding a carriage return that does not end it: the file's lines end so.
_CR_FILE = (
    "has a carriage return (CR) that does not end a line: lines must end with LF or CRLF "
    "(a file whose lines end with CR alone, as from an old Mac, converts with: tr '\\r' '\\n')"
)
#: A later line holding one (JSON Lines, URLs): its row's error, after what else is wrong.
_CR_INSIDE = "a carriage return (CR) inside the line (lines end with LF or CRLF)"


def _lone_cr(line: bytes) -> bool:
    """Whether ``line`` holds a carriage return that does not end it (a lone CR)."""
    return b"\r" in line.rstrip(b"\r\n")


def _span(first: int, last: int) -> str:
    """For a record over several lines (a quote opened on ``first``): how far it goes.

    Relative, not line numbers: a ``--cluster`` part shifts its problems' line
    numbers to the whole file's, not the text of their messages.
    """
    if last <= first:
        return ""
    more = last - first
    return (
        f" (a quoted field opened on this line makes it one record with the next {more} "
        f"line{'s' if more > 1 else ''})"
    )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_problem(exc: orjson.JSONDecodeError) -> str:
    """What is wrong with one JSON line and where, in that line's terms: orjson's own
    ``line 2 column 1 (char 8)`` counts the line break, and names a line that is not there."""
    if exc.lineno > 1 or exc.pos >= len(exc.doc.rstrip("\r\n")):
        return f"{exc.msg} at the end of the line"
    return f"{exc.msg} at column {exc.colno}"


def _jsonl_items(raw: IO[bytes], codec: str, lines: LineMap, whole: bool) -> Iterator[Item]:
    n = 0
    first = 1 if whole else 0  # the row whose line may stop the run (see open_source)
    usual = -1  # line_no - n while no line is skipped (-1: no row yet)
    for line_no, line in enumerate(raw, 1):
        if line_no == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[3:]
        if not line.strip():
            continue
        n += 1
        try:
            # orjson reads UTF-8 bytes directly; other encodings are decoded first.
            # An integer past 64 bits stays exact (orjson alone makes it a float).
            value = loads_exact(line if codec == "utf-8" else line.decode(codec).encode())
        except orjson.JSONDecodeError as exc:
            if not exc.doc and not _is_utf8(line):  # orjson: "str is not valid UTF-8: ..."
                yield n, InputProblem(line_no, "undecodable bytes (say --encoding)")
            elif _lone_cr(line):
                # JSON takes a CR for white space, so a line holding one may be good;
                # this one is not: its rows were lines ended by CR alone, read as one.
                if n == first:
                    raise InputError(f"line {line_no} {_CR_FILE}") from None
                yield n, InputProblem(line_no, f"not JSON: {_json_problem(exc)}; {_CR_INSIDE}")
            else:
                if n == first:
                    _check_document(line, line_no)
                yield n, InputProblem(line_no, f"not JSON: {_json_problem(exc)}")
            continue
        except UnicodeDecodeError:
            yield n, InputProblem(line_no, "undecodable bytes (say --encoding)")
            continue
        if type(value) is not dict:
            if n == first and type(value) is list:
                _check_document(b"[", line_no)
            yield n, InputProblem(line_no, f"not a JSON object but {type(value).__name__}")
            continue
        if line_no - n != usual:  # blank lines skipped
            usual = line_no - n
            lines.mark(n, line_no)
        yield n, value


def _check_document(line: bytes, line_no: int) -> None:
    """Raise one :class:`InputError` when the first row's ``line`` starts a JSON document
    (an array, or an object over several lines), not JSON Lines.

    A pretty-printed array was read line by line: its lines ``[`` and ``{"v": 1},``
    error rows, a line ``{"v": 2}`` a row sent, and the run ended with exit status 0.
    """
    text = line.strip()
    if text.startswith(b"["):
        what, jq = "a JSON array", "'.[]'"
    elif text == b"{":
        what, jq = "a JSON object over several lines", "."
    else:
        return
    raise InputError(
        f"line {line_no} starts {what}; JSON Lines hold one object a line: convert the "
        f"file with: jq -c {jq} FILE > FILE.jsonl"
    )


def _text_items(texts: Iterator[str | None], lines: LineMap, whole: bool) -> Iterator[Item]:
    n = 0
    first = 1 if whole else 0  # the row whose line may stop the run (see open_source)
    usual = -1  # line_no - n while no line is skipped (-1: no row yet)
    for line_no, line in enumerate(texts, 1):
        if line is None:
            n += 1
            yield n, InputProblem(line_no, "undecodable bytes (say --encoding)")
            continue
        url = line.strip()
        if not url:
            continue
        if "\r" in url:
            # Lines ended by CR alone, read as one: their URLs were sent as one, or
            # skipped as one comment with the first.
            n += 1
            if n == first:
                raise InputError(f"line {line_no} {_CR_FILE}")
            yield n, InputProblem(line_no, _CR_INSIDE)
            continue
        if url.startswith("#"):
            continue
        n += 1
        if line_no - n != usual:  # blank or comment lines skipped
            usual = line_no - n
            lines.mark(n, line_no)
        yield n, {"url": url}


def rows_source(rows: Any) -> Source:
    """A source over Python objects: dicts, strings (URLs), or a pandas DataFrame."""
    total: int | None = None
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        names = [str(c) for c in rows.columns]
        check_unique_columns(names, "the DataFrame")
        total = len(rows)
        return Source(_frame_items(rows), frozenset(names), "frame", total)
    try:
        total = len(rows)
    except TypeError:
        total = None
    if isinstance(rows, Mapping):  # iterated, its keys were URL rows
        raise InputError(
            "rows is one dict: give a list of dicts, one per request ([row]; a dict of "
            "columns as pandas.DataFrame(rows))"
        )
    try:
        if isinstance(rows, bytes | bytearray | memoryview):
            raise TypeError  # iterated, its bytes were rows, each "an int, not a mapping"
        it = iter(rows)
    except TypeError:
        what = "None" if rows is None else with_article(type(rows).__name__)
        raise InputError(
            f"rows is {what}: give dicts (one per request), URL "
            "strings, a DataFrame, an Arrow table or the path of an input file"
        ) from None
    try:
        first = next(it)
    except StopIteration:
        return Source(iter(()), frozenset(), "rows", 0)
    if isinstance(first, str):
        keys = frozenset({"url"})
    elif isinstance(first, Mapping):
        keys = frozenset(str(k) for k in first)
    else:
        raise InputError(f"rows must be mappings or URL strings, not {type(first).__name__}")
    return Source(_object_items(first, it), keys, "rows", total)


def _object_items(first: Any, rest: Iterator[Any]) -> Iterator[Item]:
    for n, row in enumerate(_chain(first, rest), 1):
        if isinstance(row, str):
            yield n, {"url": row}
        elif isinstance(row, Mapping):
            yield n, row
        else:
            yield n, InputProblem(n, f"row is {with_article(type(row).__name__)}, not a mapping")


def _chain(first: Any, rest: Iterable[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _frame_items(frame: Any) -> Iterator[Item]:
    columns = [str(c) for c in frame.columns]
    # pandas' missing values become None, as Arrow's nulls do: NA and NaT (a
    # nullable Int64 or boolean column, a datetime one), and the NaN of a string
    # column (pandas 3's default ``str`` dtype marks a missing string so) or of a
    # categorical one (whose categories cannot hold a NaN), which there means
    # nothing but "missing". A template then inserts nothing, a JSON
    # body null, and the outputs keep no '<NA>', 'NaT' or 'nan' text. Only the
    # columns whose dtype may hold one are looked at: NumPy's numbers, booleans
    # and strings cannot, and a float column's NaN is a number (see the README).
    # Those columns (nullable Int64, Float64, boolean, sparse, object) give NumPy
    # scalars, not the Python numbers a NumPy column gives: they become those, so
    # that a typed output types the column from them (an Int64 column was text).
    dtypes = getattr(frame, "dtypes", None)
    if dtypes is None:  # a frame-like object without: every column
        dtypes = [None] * len(columns)
    holes = [
        (c, type(d).__name__ in _NAN_IS_MISSING)
        for c, d in zip(columns, dtypes, strict=True)
        if _may_hold_na(d)
    ]
    # A float32 column's values come out as the float64 of their bits (1.1 as
    # 1.100000023841858): each becomes its shortest decimal, as pandas' to_csv writes
    # it and as a Parquet float32 column is read (see _arrow_rows).
    singles = [
        c
        for c, d in zip(columns, dtypes, strict=True)
        if type(d).__module__.startswith("numpy") and getattr(d, "name", "") == "float32"
    ]
    for n, values in enumerate(frame.itertuples(index=False, name=None), 1):
        row = dict(zip(columns, values, strict=True))
        for c, text in holes:
            value = row[c]
            if is_missing(value) or (text and type(value) is float and value != value):
                row[c] = None
            elif type(value).__module__ == "numpy":
                row[c] = _python_number(value)
        for c in singles:
            row[c] = _shortest_single(row[c])
        yield n, row


def _shortest_single(value: Any) -> Any:
    """A float32's value as the shortest decimal that reads back as it (``1.1``), a float."""
    import numpy

    return float(str(numpy.float32(value)))


def _python_number(value: Any) -> Any:
    """A NumPy boolean, integer or float64 as the Python one (exact); others as they are
    (a float32's text is its shortest decimal, ``1.1``, where a Python float's is not)."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("b", "i", "u") or (kind == "f" and isinstance(value, float)):
        return value.item()
    return value


#: pandas dtypes whose NaN is a missing value, never a number.
_NAN_IS_MISSING = frozenset({"StringDtype", "CategoricalDtype"})


def _may_hold_na(dtype: Any) -> bool:
    """Whether a pandas column of this dtype may hold ``NA`` or ``NaT``: any but a
    NumPy dtype of numbers, booleans or fixed-width strings."""
    numpy_kind = getattr(dtype, "kind", "O") if type(dtype).__module__.startswith("numpy") else "O"
    return numpy_kind not in "biufcSU"

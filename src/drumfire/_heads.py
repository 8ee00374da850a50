"""What the HTTP quick path knows of a header block, without I/O.

:class:`~drumfire._http.ResponseReader` takes the usual answer (whole in one
read, a plain header block) without httptools' callbacks: this module says what
such a block means (:func:`inspect_head`, parsed once by httptools), reads a
block by its *shape* (the block with its Content-Length and Keep-Alive values cut
out: :func:`read_shape`), and gives each shape a *pattern* (:func:`_pattern_of`)
that the reader matches the next blocks of that shape against, in C
(:func:`matched`). osrm-routed's answers, each with another length and another
Keep-Alive ``max``, are the case this is for.
"""

from __future__ import annotations

import re
from typing import Any

import httptools

__all__ = [
    "HEADS_KEPT",
    "PATTERNS_KEPT",
    "HeadInfo",
    "Pattern",
    "Shape",
    "answers_left",
    "inspect_head",
    "last_start",
    "lenient_parser",
    "matched",
    "mend",
    "read_shape",
    "unfold",
]

_MAX = re.compile(rb"max\s*=\s*(\d{1,9})", re.IGNORECASE)


def answers_left(keep_alive: bytes) -> int | None:
    """From ``Keep-Alive: timeout=5, max=K``: how many answers may follow this one (K-1;
    0 for ``max=0`` too, which the reader's full path took for no limit while the quick
    path closed)."""
    found = _MAX.search(keep_alive)
    return max(int(found.group(1)) - 1, 0) if found else None


#: (status, headers, Content-Length, keep-alive, answers left) of a header block the
#: quick path takes.
HeadInfo = tuple[int, tuple[tuple[bytes, bytes], ...], int, bool, int | None]
HEADS_KEPT = 256  # distinct header blocks remembered (answers differ mostly by Date)
PATTERNS_KEPT = 4  # patterns of shapes tried on a block not seen before (see pattern_of)


def inspect_head(head: bytes) -> HeadInfo | None:
    """What the quick path needs from a header block, or None to leave it to the full path.

    ``head`` runs from the status line to the blank line included. It is parsed
    by httptools as in the full path (so both agree on what is valid); the quick
    path then takes only plain answers: HTTP/1.1, a final status with a body,
    one Content-Length, no Transfer-Encoding or Content-Encoding, no
    ``Connection`` other than keep-alive.
    """
    if not head.startswith(b"HTTP/1.1 "):
        return None
    probe = _HeadProbe()
    parser = probe.parser = httptools.HttpResponseParser(probe)
    try:
        parser.feed_data(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        # A 101 Switching Protocols raises the second, which is no subclass of the
        # first: the full path says "unexpected protocol upgrade".
        mended = mend(head)  # llhttp refuses folded lines, RFC 9112 §5.2 takes them (...)
        return None if mended is None else inspect_head(mended)
    if not probe.complete:
        return None
    status = parser.get_status_code()
    if status < 200 or status in (204, 304) or not probe.keep_alive:
        return None
    length = -1
    left: int | None = None
    for name, value in probe.headers:
        lname = name.lower()
        if lname == b"content-length":
            if length >= 0 or not value.strip().isdigit():
                return None
            length = int(value)
        elif lname in (b"transfer-encoding", b"content-encoding") or (
            lname == b"connection" and value.strip().lower() != b"keep-alive"
        ):
            return None
        elif lname == b"keep-alive":
            left = answers_left(value)
    if length < 0:
        return None
    return status, tuple(probe.headers), length, left is None or left > 0, left


def lenient_parser(callbacks: Any) -> Any:
    """An httptools parser calling ``callbacks``, less strict than llhttp in two places.

    It takes a Content-Length next to a Transfer-Encoding (llhttp refuses the pair):
    RFC 9112 §6.3 rule 3 says the Transfer-Encoding frames the body, and the reader
    closes the connection after it (see ``ResponseReader._has_length``). And it
    takes white space after a chunk's size (``5 ;name=value``, ``5   `` padded),
    which RFC 9112 §7.1.1 allows before an extension (BWS, which "a recipient MUST
    parse") and which curl and Go skip, llhttp refused.
    """
    parser = httptools.HttpResponseParser(callbacks)
    parser.set_dangerous_leniencies(
        lenient_chunked_length=True, lenient_spaces_after_chunk_size=True
    )
    return parser


class _Begins:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def on_message_begin(self) -> None:
        self.count += 1


def _begins(data: bytes) -> int:
    """How many answers llhttp begins in ``data`` (up to where it stops)."""
    probe = _Begins()
    try:
        lenient_parser(probe).feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        pass
    return probe.count


def last_start(data: bytes) -> int:
    """Where the last answer that llhttp begins in ``data`` begins (``data`` begins
    with an answer's first byte): the answer a parse of ``data`` stops in.

    llhttp does not say where an answer begins; the smallest prefix of ``data`` in
    which it begins as many answers as in the whole does (a binary search, some
    twenty parses of a read at most: a cost for the error path only).
    """
    total = _begins(data)
    low, high = 1, len(data)
    if total <= 1:
        low = high = 1
    while low < high:
        middle = (low + high) // 2
        if _begins(data[:middle]) >= total:
            high = middle
        else:
            low = middle + 1
    start = low - 1
    while data[start : start + 1] in (b"\r", b"\n"):  # the empty lines llhttp skips
        start += 1
    return start


_FOLD = re.compile(rb"\r\n(?=[ \t])")


def unfold(data: bytes) -> bytes | None:
    """``data`` (an answer from its status line on) with each obs-fold of its header
    lines replaced by a space; None when they have none.

    RFC 9112 §5.2: a user agent must accept a header line continued on the next
    one, which starts with a space or a tab, and replace the line break with
    spaces; llhttp refuses it (short of a leniency that loosens other checks too).
    Only the header lines are touched: not the status line (a first header line
    that starts with whitespace stays, and is refused, as RFC 9112 §2.2 allows),
    nor what follows the blank line. ``data`` may end inside the header block.
    """
    start = data.find(b"\r\n") + 2
    if start < 2:
        return None
    end = data.find(b"\r\n\r\n", start - 2)
    if end < 0:
        end = len(data)
    lines, count = _FOLD.subn(b" ", data[start:end])
    return data[:start] + lines + data[end:] if count else None


def mend(data: bytes) -> bytes | None:
    """``data`` (an answer from its status line on) with its header lines mended where
    HTTP lets a recipient mend them and llhttp refuses them; None when nothing is.

    Folded lines are unfolded (see :func:`unfold`), and a Content-Length sent more
    than once with one value (on several lines, or as a list: ``5, 5``) is given once,
    as RFC 9110 §8.6 lets a recipient do, and as curl and Go read it; different values
    stay, and are refused (RFC 9112 §6.3 rule 5). Only the first header block is
    touched, and of a block not yet complete only its complete lines.
    """
    unfolded = unfold(data)
    if unfolded is not None:
        data = unfolded
    start = data.find(b"\r\n") + 2
    if start < 2:
        return unfolded
    end = data.find(b"\r\n\r\n", start - 2)
    if end < 0:  # the block goes on: its last line may be cut short
        end = data.rfind(b"\r\n", start - 2)
    lines = data[start:end].split(b"\r\n")
    found = [
        i for i, line in enumerate(lines) if line.partition(b":")[0].lower() == b"content-length"
    ]
    values = {
        value.strip() for i in found for value in lines[i].partition(b":")[2].split(b",")
    }
    value = values.pop() if len(values) == 1 else b""
    if not value.isdigit() or (len(found) < 2 and b"," not in lines[found[0]]):
        return unfolded
    first = found[0]
    lines[first] = lines[first].partition(b":")[0] + b": " + value
    for i in reversed(found[1:]):
        del lines[i]
    return data[:start] + b"\r\n".join(lines) + data[end:]


#: How servers spell the lines whose values vary between answers (a block
#: spelling them otherwise is looked up whole).
_LENGTH_LINES = (b"\r\nContent-Length: ", b"\r\ncontent-length: ")
_FOLDS = (b"\r\n ", b"\r\n\t")  # a value that goes on on the next line (see unfold)
_KEEP_ALIVE_LINES = (b"\r\nKeep-Alive: ", b"\r\nkeep-alive: ")

#: A header block's pattern (see pattern_of): the bytes it starts with and
#: the ``match`` function of the rest, then the status, headers, positions of
#: Content-Length and of a Keep-Alive whose max varies (-1: none, or its value is
#: part of the pattern), keep-alive and answers left.
Pattern = tuple[
    bytes, Any, int, tuple[tuple[bytes, bytes], ...], int, int, bool, "int | None"
]

#: A header block's shape: status, headers, the positions of the Content-Length
#: and Keep-Alive headers in them (-1: none), answers left, keep-alive, and its
#: pattern.
Shape = tuple[
    int, tuple[tuple[bytes, bytes], ...], int, int, "int | None", bool, "Pattern | None"
]

#: A header value the quick path may take without httptools: visible ASCII and
#: inner spaces (no control byte, no bare CR or LF, nothing to trim).
_PLAIN_VALUE = re.compile(rb"(?:[!-~](?:[ -~]*[!-~])?)?")


def _value_at(head: bytes, lines: tuple[bytes, ...]) -> tuple[int, int] | None:
    """Where the value of the one header spelled as in ``lines`` lies in ``head``."""
    for line in lines:
        start = head.find(line)
        if start >= 0:
            start += len(line)
            stop = head.find(b"\r\n", start)
            if head.find(line, stop) >= 0:
                return None  # twice: leave it to the full inspection
            return start, stop
    return None


def _shape_of(info: HeadInfo | None) -> Shape | None:
    """``info`` with the positions of its varying headers; None leaves the block alone.

    A block with several Keep-Alive headers (spelled differently) is left to
    the full parser: which one counts is its business.
    """
    if info is None:
        return None
    status, headers, _length, keep_alive, left = info
    names = [name.lower() for name, _ in headers]
    alives = names.count(b"keep-alive")
    if alives > 1:
        return None
    alive = names.index(b"keep-alive") if alives else -1
    return status, headers, names.index(b"content-length"), alive, left, keep_alive, None


def _pattern_of(
    head: bytes, length_at: tuple[int, int], alive_at: tuple[int, int] | None, shape: Shape
) -> Pattern | None:
    """A regular expression for the blocks of ``head``'s shape, for the quick path.

    ``head`` is a block :func:`inspect_head` took, ``length_at`` and ``alive_at``
    where its Content-Length and Keep-Alive values lie. The pattern is ``head``
    byte for byte but for those values: any 1 to 15 digits for the length (as
    :meth:`ResponseReader._shaped` takes them) and, when the Keep-Alive value ends
    in its ``max=N`` (osrm-routed's ``timeout=5, max=511``), any 1 to 9 digits for
    N, the rest as it is. A block it matches is one ``_shaped`` would read the
    same way, with those values: one match in C instead of cutting the block up
    for its key. A Keep-Alive value of another form stays whole in the pattern
    (that value only); a value ``_shaped`` refuses gives no pattern. The bytes
    before the first varying value are compared as they are (``startswith``, a
    memory comparison); the expression matches the rest.
    """
    status, headers, length_index, alive_index, left, keep_alive, _ = shape
    holes = [(length_at[0], length_at[1], rb"(?P<length>\d{1,15})")]
    varies = -1
    if alive_at is not None:
        start, stop = alive_at
        value = head[start:stop]
        if alive_index < 0 or not _PLAIN_VALUE.fullmatch(value):
            return None
        found = _MAX.search(value)
        # Only the last digits of the value vary, and no "max=" comes before them:
        # then answers_left of any such value reads those digits.
        if found and found.end(1) == len(value) and not _MAX.search(value[: found.start(1)]):
            fixed = re.escape(value[: found.start(1)])
            holes.append((start, stop, rb"(?P<alive>" + fixed + rb"(?P<most>\d{1,9}))"))
            varies = alive_index
    holes.sort()
    prefix = head[: holes[0][0]]
    pattern, at = [], len(prefix)
    for start, stop, hole in holes:
        pattern += [re.escape(head[at:start]), hole]
        at = stop
    pattern.append(re.escape(head[at:]))
    match = re.compile(b"".join(pattern)).match
    return prefix, match, status, headers, length_index, varies, keep_alive, left


def matched(found: Any, pattern: Pattern) -> HeadInfo:
    """The :func:`inspect_head` of a block ``pattern`` matched (``found``)."""
    _, _, status, headers, length_index, alive_index, keep_alive, left = pattern
    digits = found.group("length")
    changed = list(headers)
    changed[length_index] = (headers[length_index][0], digits)
    if alive_index >= 0:
        value, most = found.group("alive", "most")
        changed[alive_index] = (headers[alive_index][0], value)
        left = int(most) - 1
        keep_alive = left > 0
    return status, tuple(changed), int(digits), keep_alive, left


class _HeadProbe:
    __slots__ = ("complete", "headers", "keep_alive", "parser")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.keep_alive = False
        self.parser: Any = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True
        # Asked now: once an empty body completes the message, llhttp says False.
        self.keep_alive = bool(self.parser.should_keep_alive())


def read_shape(
    head: bytes, shapes: dict[bytes, Shape | None]
) -> tuple[HeadInfo | None, Pattern | None]:
    """:func:`inspect_head`, from a block seen before but for its varying values; and
    the pattern of the block's shape (see :func:`_pattern_of`), if it has one.

    Answers differ in their Content-Length (OSRM's routes, any API's) and
    often in ``Keep-Alive: max=N``, which counts down on each connection
    (osrm-routed). The block with those two values cut out is the key of
    ``shapes`` (a reader's cache): httptools parses each shape once instead of
    each answer.
    """
    length_at = _value_at(head, _LENGTH_LINES)
    if length_at is None or head.startswith(_FOLDS, length_at[1]):
        return inspect_head(head), None
    start, stop = length_at
    digits = head[start:stop]
    if not digits.isdigit() or len(digits) > 15:
        return inspect_head(head), None
    alive_at = _value_at(head, _KEEP_ALIVE_LINES)
    if alive_at is not None and head.startswith(_FOLDS, alive_at[1]):
        return inspect_head(head), None  # its value goes on on the next line: read it whole
    if alive_at is None:
        key = head[:start] + head[stop:]
    elif alive_at[0] < start:
        key = head[: alive_at[0]] + head[alive_at[1] : start] + head[stop:]
    else:
        key = head[:start] + head[stop : alive_at[0]] + head[alive_at[1] :]
    try:
        shape = shapes[key]
    except KeyError:
        if len(shapes) >= HEADS_KEPT:
            shapes.clear()
        shape = _shape_of(inspect_head(head))
        if shape is not None:
            shape = (*shape[:6], _pattern_of(head, length_at, alive_at, shape))
        shapes[key] = shape
    if shape is None:
        return None, None
    status, headers, length_index, alive_index, left, keep_alive, pattern = shape
    changed = list(headers)
    changed[length_index] = (headers[length_index][0], digits)
    if alive_at is not None:  # else its value is part of the key: as cached
        value = head[alive_at[0] : alive_at[1]]
        if alive_index < 0 or not _PLAIN_VALUE.fullmatch(value):
            return inspect_head(head), None
        changed[alive_index] = (headers[alive_index][0], value)
        left = answers_left(value)
        keep_alive = left is None or left > 0
    return (status, tuple(changed), int(digits), keep_alive, left), pattern

"""``multipart/form-data`` bodies (RFC 7578), as curl's ``-F`` and requests' ``files=``.

Sans-I/O: a body is a tuple of *segments*, each either bytes or a
:class:`FileSegment` (a file on disk and its size, read only when the body is
written). So a form holding a 1 GB file costs a few hundred bytes here, and
the same segments can be written again for a retry or a redirect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple, overload

__all__ = [
    "FileSegment",
    "Segment",
    "boundary",
    "content_type_for",
    "encode",
    "length",
    "to_bytes",
]


class FileSegment(NamedTuple):
    """A file's bytes in a body: read from ``path`` when written, ``size`` bytes."""

    path: str
    size: int


Segment = bytes | FileSegment


def boundary() -> str:
    """A fresh boundary: 32 random hex digits cannot occur in a file by accident
    (RFC 2046 §5.1.1 asks only that it does not; curl uses 22 random characters)."""
    import secrets  # only for a form with files: not at start-up

    return "drumfire-" + secrets.token_hex(16)


@overload
def content_type_for(path: str) -> str: ...
@overload
def content_type_for(path: str, default: str | None) -> str | None: ...


def content_type_for(path: str, default: str | None = "application/octet-stream") -> str | None:
    """The media type of a file from its name (``mimetypes``), else ``default``.

    A compressed file is labelled as what its bytes are: ``data.csv.gz`` is
    ``application/gzip`` (RFC 6713), not the ``text/csv`` inside, which mimetypes
    gives with the encoding apart (Content-Encoding is no answer: it would ask the
    server to decompress). Other encodings (``.bz2``, ``.xz``, ``.Z``, ``.br``) have
    no registered type: octet-stream, as curl sends for all of them. A compressed
    file whose type names its extension (``.svgz``) is that type.
    """
    name = os.path.basename(path)
    own = _OWN_TYPE.get(os.path.splitext(name)[1].lower())
    if own is not None:
        return own
    import mimetypes  # only for a form with files: not at start-up

    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _COMPRESSED.get(encoding, "application/octet-stream")
    return guessed or default


#: The media type of a file compressed with a mimetypes encoding.
_COMPRESSED = {"gzip": "application/gzip"}
#: Extensions of compressed files that their type's registration names as its own,
#: which mimetypes reads as a type and an encoding (``.svgz`` as ``.svg.gz``): the
#: image/svg+xml registration (SVG 1.1, appendix P) gives ``svgz`` for gzip-compressed
#: SVG, and browsers upload it so. ``.tgz`` stays ``application/gzip``: application/x-tar
#: names ``.tar`` only.
_OWN_TYPE = {".svgz": "image/svg+xml"}


def _quoted(value: str) -> str:
    """A name or filename in a Content-Disposition quoted string.

    RFC 7578 §4.2 leaves the escaping to practice; this is what browsers do
    (the WHATWG HTML form encoding): ``"`` -> %22, CR -> %0D, LF -> %0A.
    """
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class Part(NamedTuple):
    """One part of a form: a text value (``str``) or a file's content."""

    name: str
    value: str | bytes | FileSegment
    filename: str | None = None  # a file part's (its basename unless given); a text part's if any
    content_type: str | None = None  # its Content-Type (a file part's default: from its name)


def _head(bound: str, part: Part) -> bytes:
    disposition = f'form-data; name="{_quoted(part.name)}"'
    lines = [f"--{bound}"]
    if part.filename is not None:
        disposition += f'; filename="{_quoted(part.filename)}"'
    lines.append(f"Content-Disposition: {disposition}")
    if part.content_type is not None:
        lines.append(f"Content-Type: {part.content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def encode(parts: Iterable[Part], bound: str) -> tuple[Segment, ...]:
    """The body's segments: adjacent bytes joined, files left as :class:`FileSegment`.

    RFC 7578 §4: each part starts with ``--boundary``, its headers, an empty
    line, then its content; the body ends with ``--boundary--``. Text values
    are UTF-8, with no Content-Type unless given (text/plain by default, §4.4).
    """
    out: list[Segment] = []
    pending = bytearray()
    for part in parts:
        pending += _head(bound, part)
        value = part.value
        if isinstance(value, FileSegment):
            if pending:
                out.append(bytes(pending))
                pending.clear()
            if value.size:
                out.append(value)
        else:
            pending += value.encode("utf-8") if isinstance(value, str) else value
        pending += b"\r\n"
    pending += f"--{bound}--\r\n".encode("ascii")
    out.append(bytes(pending))
    return tuple(out)


def length(segments: Sequence[Segment]) -> int:
    """Content-Length of a body made of ``segments``."""
    return sum(s.size if isinstance(s, FileSegment) else len(s) for s in segments)


def to_bytes(segments: Sequence[Segment]) -> bytes:
    """The whole body in memory (``drumfire bench``: one form, sent many times)."""
    out = bytearray()
    for segment in segments:
        if isinstance(segment, FileSegment):
            with open(segment.path, "rb") as f:
                out += f.read()
        else:
            out += segment
    return bytes(out)

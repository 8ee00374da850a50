"""A response as the API hands it over: :class:`Response` and its :class:`Headers`.

Records with no parsing of their own: :class:`drumfire._http.ResponseReader`
builds them from a connection's bytes; the engine (settling, extracting the
fields), a ``parse=`` function and the load test read them. ``drumfire.Response``
is this module's :class:`Response`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

__all__ = ["Headers", "Response", "charset_of", "json_not_utf8"]


def charset_of(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> str | None:
    """The ``charset`` parameter of the first Content-Type header (RFC 9110 §8.3.2), or None."""
    for name, value in headers:
        if len(name) == 12 and name.lower() == b"content-type":
            for param in value.split(b";")[1:]:
                key, _, found = param.partition(b"=")
                if key.strip().lower() == b"charset":
                    return found.strip().strip(b'"').decode("latin-1") or None
            return None
    return None


def json_not_utf8(
    body: bytes, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]
) -> Any:
    """The JSON document of a body that orjson, which reads UTF-8 alone, refused.

    Read as Python's ``json.loads`` reads bytes: a UTF-8 byte order mark skipped
    (RFC 8259 §8.1 lets a parser ignore it; IIS and .NET send one), UTF-16 and
    UTF-32 told by their first bytes; else, when the Content-Type names a charset
    (``iso-8859-1``), in that charset, as requests reads it. Only bodies orjson
    refused come here: the usual answer costs nothing more.

    Raises ``ValueError`` (``orjson.JSONDecodeError`` is one) when it is no JSON that
    way either.
    """
    import codecs
    import json

    encoding: str = json.detect_encoding(body)
    try:
        if encoding == "utf-8":
            named = charset_of(headers)
            # UTF-8 is what orjson read it as: no second try (an HTML page, say).
            if named is None or codecs.lookup(named).name == "utf-8":
                raise ValueError("not JSON in UTF-8")
            encoding = named
        text = body.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON in {encoding}") from exc
    return orjson.loads(text)


class Headers(Mapping[str, str]):
    """A response's headers as a read-only, case-insensitive mapping (as in requests and httpx).

    ``headers["content-type"]``, ``headers.get("Content-Type")``, ``"etag" in
    headers``; a header sent several times reads as its values joined with
    ``", "`` (RFC 9110 §5.3), :meth:`get_list` gives them apart. Iteration
    gives each name once, spelled as first sent. ``raw`` holds the pairs as
    received (bytes). Names and values are decoded as Latin-1.
    """

    __slots__ = ("_index", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> None:
        self.raw = raw
        index: dict[str, tuple[str, list[str]]] = {}
        for name, value in raw:
            text = name.decode("latin-1")
            found = index.get(text.lower())
            if found is None:
                index[text.lower()] = (text, [value.decode("latin-1")])
            else:
                found[1].append(value.decode("latin-1"))
        self._index = index

    def __getitem__(self, name: str) -> str:
        return ", ".join(self._index[name.lower()][1])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._index.values())

    def __len__(self) -> int:
        return len(self._index)

    def get_list(self, name: str) -> list[str]:
        """Every value of header ``name``, in order ([] when absent)."""
        found = self._index.get(name.lower())
        return list(found[1]) if found is not None else []

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return list(self.raw) == list(other.raw)
        if isinstance(other, list | tuple):  # the raw pairs
            return list(self.raw) == list(other)
        if isinstance(other, Mapping):
            return {k.lower(): v for k, v in self.items()} == {
                str(k).lower(): v for k, v in other.items()
            }
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        # Names only: header values may be secrets (cookies, tokens).
        return f"<Headers {list(self)}>"


class Response:
    """One HTTP response: status, headers, decoded body bytes.

    ``headers`` is a case-insensitive :class:`Headers` mapping, built on first
    use; ``raw_headers`` the pairs as received (a sequence not to be changed: answers
    with the same header block share one tuple); :meth:`header` a quick
    case-insensitive look-up of one value. ``error`` is "" or, for an answer
    whose body could not be decoded (an unknown content or transfer coding), the
    reason the row gets (``encoding: …``).
    """

    __slots__ = ("_headers", "body", "error", "keep_alive", "left", "raw_headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
        body: bytes,
        keep_alive: bool,
        left: int | None = None,
        error: str = "",
    ) -> None:
        self.status = status
        self.raw_headers = headers
        self._headers: Headers | None = None
        self.body = body
        self.keep_alive = keep_alive
        # Answers the server said (Keep-Alive: max=K) it will still give on this
        # connection after this one; None when it did not say.
        self.left = left
        self.error = error

    @property
    def headers(self) -> Headers:
        """The headers as a case-insensitive mapping (built once, on first use)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self.raw_headers)
        return headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw_headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def json(self) -> Any:
        """The body decoded as JSON (raises ``ValueError``, ``orjson.JSONDecodeError``
        mostly). UTF-8, or else as :func:`json_not_utf8` reads it: a byte order mark
        skipped, UTF-16 or 32, the Content-Type's charset."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            try:
                return json_not_utf8(self.body, self.raw_headers)
            except ValueError:
                raise exc from None

    @property
    def text(self) -> str:
        """The body as text, in the charset the Content-Type names (UTF-8 when it names
        none, or one Python does not know); bytes not valid in it become U+FFFD."""
        charset = charset_of(self.raw_headers)
        if charset is not None:
            try:
                return self.body.decode(charset, "replace")
            except LookupError:
                pass
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"

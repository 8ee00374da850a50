"""Answers into result rows: decode the JSON body, extract the fields, run ``--parse``.

No I/O and no engine state: a pure step from (flight, response, time) to a
:class:`~drumfire._result.Result`, so it can be tested on canned responses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ._errors import Reason
from ._extract import Extractor
from ._response import Response, json_not_utf8
from ._result import Result
from ._rows import Flight

__all__ = ["Finisher"]

_new_result = tuple.__new__  # Result(...) without NamedTuple's Python-level __new__
#: An answer over --max-body: its body was not read, so --parse is not called on it.
_OVER = Reason.BODY_TOO_LARGE.value


class Finisher:
    """Builds the result row of each answered flight.

    ``extractor``: the ``--extract`` fields (from the JSON body); ``parse``: a
    ``--parse`` function of the response; ``kept``: the row's ``--keep``
    columns (None when none are kept).
    """

    __slots__ = ("extractor", "files", "kept", "parse")

    def __init__(
        self,
        extractor: Extractor | None,
        parse: Callable[[Response], Mapping[str, Any]] | None,
        kept: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None,
        files: Any = None,
    ) -> None:
        self.extractor = extractor
        self.parse = parse
        self.kept = kept
        self.files = files  # drumfire._bodies.FilePlan: saved bodies' fields

    def results(self, answered: list[tuple[Flight, Response]], now: float) -> list[Result]:
        """The rows of flights answered at ``now``, in the same order."""
        extractor = self.extractor
        plain = self.parse is None and self.kept is None and self.files is None
        if extractor is None or not plain:
            return self._rows(answered, now)
        return self._extracted(answered, now, extractor.apply)

    def _extracted(
        self,
        answered: list[tuple[Flight, Response]],
        now: float,
        apply: Callable[[Any], dict[str, Any]],
    ) -> list[Result]:
        """:meth:`results` of the usual run (``--extract`` alone) for the usual answer, a
        JSON document; any other answer's row is :meth:`_rows`'."""
        loads = orjson.loads
        done: list[Result] = []
        add = done.append
        for pair in answered:
            flight, response = pair
            body = response.body
            if body and not response.error:
                try:
                    document = loads(body)
                except orjson.JSONDecodeError:
                    pass
                else:
                    if document is not None:
                        took = (now - flight.start) * 1000.0
                        fields = apply(document)
                        row = (flight.id, response.status, took, flight.attempts, "", fields, None)
                        add(_new_result(Result, row))
                        continue
            done += self._rows([pair], now)
        return done

    def _rows(self, answered: list[tuple[Flight, Response]], now: float) -> list[Result]:
        """:meth:`results`, for any answer and any settings."""
        extractor = self.extractor
        apply = extractor.apply if extractor is not None else None
        names = extractor.names if extractor is not None else ()
        parse = self.parse
        kept = self.kept
        loads = orjson.loads
        files = self.files
        done: list[Result] = []
        for flight, response in answered:
            status = response.status
            error = ""
            fields: dict[str, Any] | None = None
            if apply is not None:
                body = response.body
                read = True
                try:
                    document = loads(body) if body else None
                except orjson.JSONDecodeError:
                    try:  # a byte order mark, UTF-16, a charset named (see json_not_utf8)
                        document = json_not_utf8(body, response.raw_headers)
                    except ValueError:
                        document = None
                        read = False
                        if 200 <= status < 300:
                            error = "json"
                if (
                    read
                    and document is None
                    and 200 <= status < 300
                    and status != 204
                    and flight.prepared.method != "HEAD"
                ):
                    error = "json"
                fields = apply(document) if document is not None else dict.fromkeys(names)
            if parse is not None and not response.error.startswith(_OVER):
                try:
                    parsed = parse(response)
                except Exception as exc:
                    error = error or f"parse: {type(exc).__name__}: {exc}"[:300]
                else:
                    fields = {**fields, **parsed} if fields else dict(parsed)
            if response.error:  # a body that could not be decoded (encoding: ...)
                error = response.error
            if files is not None:  # a saved body: its path, size and hash
                fields, error = files.finish(flight.prepared, response, fields, error, flight.id)
            done.append(
                _new_result(
                    Result,
                    (
                        flight.id,
                        status,
                        (now - flight.start) * 1000.0,
                        flight.attempts,
                        error,
                        fields,
                        kept(flight.row) if kept is not None else None,
                    ),
                )
            )
        return done

"""Answers into result rows: decode the JSON body, extract the fields, run ``--parse``.

No I/O and no engine state: a pure step from (flight, response, time) to a
:class:`~drumfire._result.Result`, so it can be tested on canned responses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from ._errors import Reason
from ._extract import Extractor
from ._response import Response, json_not_utf8
from ._result import BASE_COLUMNS, Result
from ._rows import Flight

__all__ = ["Finisher"]

_new_result = tuple.__new__  # Result(...) without NamedTuple's Python-level __new__
#: An answer over --max-body: its body was not read, so --parse is not called on it.
_OVER = Reason.BODY_TOO_LARGE.value
#: The columns drumfire writes itself, which no --parse field may take: the row's truth
#: (its id and status), the CSV's parse_extra, a saved body's path, size and hash.
_OWN = frozenset((*BASE_COLUMNS, "parse_extra", "saved_path", "saved_bytes", "saved_sha256"))


def _quoted(names: Iterable[str]) -> str:
    quoted = [repr(name) for name in names]
    return " and ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + ", " + quoted[-1]


def parse_problem(
    parsed: object, kept: frozenset[str], extracted: frozenset[str] = frozenset()
) -> str:
    """The ``parse:`` error of what a parse function returned, or "" for a dict of new
    fields. A field named as a column drumfire writes (``return response.json()`` of a
    document with an ``id``) would replace the row's own, or name a CSV column twice; one
    named as an extracted field (``-e``, ``extract=``) silently replaced its value."""
    if not isinstance(parsed, Mapping):
        if parsed is None:
            return "parse: returned None, not a dict of fields (return {} for none)"
        return f"parse: returned {type(parsed).__name__}, not a dict of fields"
    if _OWN.isdisjoint(parsed) and kept.isdisjoint(parsed) and extracted.isdisjoint(parsed):
        return ""
    own = [name for name in parsed if name in _OWN]
    if own:
        what = "a column drumfire writes" if len(own) == 1 else "columns drumfire writes"
    else:
        own = [name for name in parsed if name in kept]
        what = "a kept column" if len(own) == 1 else "kept columns"
    if not own:
        own = [name for name in parsed if name in extracted]
        what = "an extracted field's name" if len(own) == 1 else "extracted fields' names"
        return f"parse: returned {_quoted(own)}, also {what} (-e, extract=); rename one of the two"
    return f"parse: returned {_quoted(own)}, {what}; rename {'it' if len(own) == 1 else 'them'}"


class Finisher:
    """Builds the result row of each answered flight.

    ``extractor``: the ``--extract`` fields (from the JSON body); ``parse``: a
    ``--parse`` function of the response; ``kept``: the row's ``--keep``
    columns (None when none are kept), ``keep`` their names.
    """

    __slots__ = ("extracted", "extractor", "files", "keep", "kept", "parse")

    def __init__(
        self,
        extractor: Extractor | None,
        parse: Callable[[Response], Mapping[str, Any]] | None,
        kept: Callable[[Mapping[str, Any]], dict[str, Any] | None] | None,
        files: Any = None,
        keep: Iterable[str] = (),
    ) -> None:
        self.extractor = extractor
        self.parse = parse
        self.kept = kept
        self.files = files  # drumfire._bodies.FilePlan: saved bodies' fields
        self.keep = frozenset(keep)
        self.extracted = frozenset(extractor.names if extractor is not None else ())

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
                    problem = parse_problem(parsed, self.keep, self.extracted)
                    if problem:
                        error = error or problem
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

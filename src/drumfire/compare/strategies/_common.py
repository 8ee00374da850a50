"""What every strategy shares: the row and outcome shapes, and drumfire's own finishing step.

Every strategy renders its requests as ``drumfire run`` does (:class:`RowRequest`: each
value encoded for where it lands, in the URL and in the body) and turns a status and body
into extracted fields with :func:`finish`, which follows the engine's rules exactly: the
body is decoded as JSON whatever the status (so a 400 ``NoRoute`` still yields ``code``), a
body that is not JSON gives ``None`` for every field and, on a 2xx answer, the ``json``
error. JSON is decoded with orjson everywhere, so the table measures the HTTP clients, not
the JSON decoders.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..._body import Body, default_content_type, media_type_of
from ..._encode import Fill
from ..._extract import Extractor
from ..._settings import Retry, Timeouts
from ..._template import Template
from ..._url import url_encoder, url_places

__all__ = [
    "CONNECT_TIMEOUT",
    "HEADERS",
    "ID_KEY",
    "RETRIES",
    "TIMEOUT",
    "Outcome",
    "Row",
    "RowRequest",
    "StrategyFunc",
    "child_peaks",
    "cpu_count",
    "failed",
    "finish",
    "maxrss_kb",
    "note_child",
    "split",
]

#: The key under which the runner stores each row's comparison key (its 1-based position).
ID_KEY = "__drumfire_compare_id__"

#: Per-attempt timeouts, drumfire's defaults (read from its settings, declared once there).
TIMEOUT = Timeouts().total
CONNECT_TIMEOUT = Timeouts().connect
#: Retries after a connection failure, drumfire's default.
RETRIES = Retry().retries
#: Sent by the strategies whose library would otherwise ask for gzip (requests, aiohttp), so
#: that every strategy sends the same request as drumfire and urllib3, which ask for no
#: compression. A server such as OSRM honours ``gzip`` and compresses every answer, which costs
#: CPU on both sides and, on a local server, buys nothing.
HEADERS = {"Accept-Encoding": "identity"}

Row = dict[str, Any]
#: ``(id, status, fields, error)``: status None when no response came; error "" on success.
Outcome = tuple[str, int | None, dict[str, Any] | None, str]


class RowRequest:
    """The request each row gets: method, URL, headers and body (``-X``, ``--url``, ``-H``,
    ``-d``), templates filled as ``drumfire run`` fills them.

    Each value is encoded for where it lands, as ``drumfire run`` does: percent-encoded in
    the URL's path or query, form-encoded in a form body, JSON-escaped in a JSON body (a
    body sent without a ``Content-Type`` gets the one ``drumfire run`` gives it); the method
    and headers take the values as they are. So every strategy sends the same request.
    ``text_rows``: the rows come from text input (CSV, TSV), so a cell outside a JSON
    string in the body becomes a JSON value by the CSV cell rule, as in ``drumfire run``.
    Picklable (process pools get it as an argument).
    """

    __slots__ = ("_url_fill", "args", "body", "headers", "method", "simple", "text_rows", "url")

    def __init__(
        self,
        url: str,
        method: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        data: str | bytes | None = None,
        text_rows: bool = False,
    ) -> None:
        #: As given: (url, method, headers, data, text_rows).
        self.args = (url, method, tuple(headers), data, text_rows)
        self.text_rows = text_rows
        verb = method or ("POST" if data is not None else "GET")
        self.url = Template(url)
        self.method = Template(verb if "{" in verb else verb.upper())
        pairs = list(headers)
        given = [v for n, v in pairs if n.strip().lower() == "content-type"]
        if data is not None and not given:
            pairs.append(("Content-Type", default_content_type(data)))
        self.headers = [(Template(n), Template(v)) for n, v in pairs]
        # The body's encoding follows its media type, as in RequestPlan (a templated
        # Content-Type: unknown, the values go in as they are).
        self.body: Body | None = None
        if data is not None:
            media_type: str | None = default_content_type(data)
            if given:
                fixed = Template(given[0])
                media_type = media_type_of(fixed.render({})) if fixed.is_static else None
            self.body = Body(data, media_type)
        self._url_fill = _url_fill(self.url)
        #: A GET with no header or body of its own: only the URL changes per row.
        self.simple = self.method.source == "GET" and not pairs and data is None

    def __reduce__(self) -> tuple[type[RowRequest], tuple[Any, ...]]:
        return (RowRequest, self.args)

    def render(self, row: Row) -> tuple[str, str, dict[str, str], bytes | None]:
        """``(method, url, headers, body)`` for ``row``; KeyError for a missing column."""
        body = self.body.render(row, self.text_rows) if self.body is not None else None
        headers = {n.render(row): v.render(row) for n, v in self.headers}
        return self.method.render(row).upper(), self._url_fill.render(row), headers, body


def _url_fill(url: Template) -> Fill:
    """The URL template with drumfire's encoder for each placeholder (see ``_url.url_places``);
    a fragment is never sent, so the template stops there."""
    places, cut = url_places(url.literals)
    literals, columns, raw = list(url.literals), list(url.columns), list(url.raw)
    if cut is not None:
        k, pos = cut
        literals = [*literals[:k], literals[k][:pos]]
        columns, raw, places = columns[:k], raw[:k], places[:k]
    encoders = [url_encoder(p, r, c) for p, r, c in zip(places, raw, columns, strict=True)]
    return Fill(literals, columns, encoders)


StrategyFunc = Callable[[Sequence[Row], RowRequest, Sequence[tuple[str, str]], int], list[Outcome]]

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def finish(
    extractor: Extractor, id_: str, status: int, body: bytes
) -> tuple[str, int, dict[str, Any] | None, str]:
    """A response as an outcome row, with the engine's extraction rules."""
    if not extractor:
        return id_, status, None, ""
    error = ""
    try:
        document = _loads(body) if body else None
    except _JSONDecodeError:
        document = None
        if 200 <= status < 300:
            error = "json"
    else:
        if document is None and 200 <= status < 300 and status != 204:
            error = "json"
    fields = extractor.apply(document) if document is not None else dict.fromkeys(extractor.names)
    return id_, status, fields, error


def failed(id_: str, exc: BaseException) -> Outcome:
    """A row that got no response: the exception's type and message as its error."""
    text = str(exc).replace("\n", " ")
    return id_, None, None, f"{type(exc).__name__}: {text}"[:300]


def maxrss_kb() -> int:
    """This process's peak resident set size in KiB (macOS reports bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


#: Peak RSS (KiB) of each child process a strategy used, by pid; read by the worker.
child_peaks: dict[int, int] = {}


def note_child(pid: int, peak_kb: int) -> None:
    """Record a child process's peak RSS as it reports it (peaks only grow)."""
    child_peaks[pid] = max(child_peaks.get(pid, 0), peak_kb)


def split(items: Sequence[Row], parts: int) -> list[Sequence[Row]]:
    """``items`` cut into ``parts`` contiguous slices of near-equal length (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out: list[Sequence[Row]] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1

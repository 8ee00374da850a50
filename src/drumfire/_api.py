"""The Python API: :func:`run`, :func:`arun` and :func:`run_all`.

``arun`` drives the engine on the caller's running loop. ``run`` is for code
without one (scripts, notebooks): it runs the engine on its own uvloop in a
background thread and hands results over through a queue, pausing the engine
when the consumer falls behind so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._engine import Engine
from ._errors import TemplateError, UsageError
from ._extract import Extractor
from ._http import Response
from ._loop import new_event_loop
from ._request import RequestPlan
from ._result import BASE_COLUMNS, Result
from ._settings import Retry, Timeouts
from ._sources import TEXT_FORMATS, Source, rows_source

__all__ = ["Job", "arun", "run", "run_all"]

#: Results handed to a consumer that has not taken them yet, before the engine pauses.
_BACKLOG_HIGH = 10_000
_BACKLOG_LOW = 1_000


@dataclass(frozen=True)
class Job:
    """Everything that describes a batch except its rows. Immutable and picklable."""

    url: str = "{url}"
    method: str | None = None
    headers: tuple[tuple[str, str], ...] | tuple[str, ...] = ()
    data: str | bytes | None = None
    extract: tuple[tuple[str, str], ...] = ()
    keep: tuple[str, ...] = ()
    id: str | None = None
    concurrency: int | None = None  # None: adaptive
    max_concurrency: int = 512
    rate: float | None = None  # requests per second, at most
    retry: Retry = field(default_factory=Retry)
    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: bool = True
    max_body: int = 64 * 1024 * 1024
    ordered: bool = False
    follow_redirects: int = 0  # most redirects followed per row; 0: none
    pipeline: int = 64  # most GET requests per connection when the client is CPU-bound
    per_host_concurrency: int | None = None  # most in flight to one origin
    per_host_rate: float | None = None  # most starts per second to one origin

    def plan(self) -> RequestPlan:
        headers: list[Any] = list(self.headers)
        return RequestPlan(self.url, method=self.method, headers=headers, data=self.data)

    def extractor(self) -> Extractor:
        """The compiled expressions; raises UsageError for a bad one or a name clash."""
        taken = set(BASE_COLUMNS)
        for name in [n for n, _ in self.extract] + list(self.keep):
            if name in taken:
                what = "a column every row has" if name in BASE_COLUMNS else "used twice"
                raise UsageError(
                    f"output column {name!r} is {what}; choose another name "
                    "for -e NAME=... or --keep"
                )
            taken.add(name)
        return Extractor(self.extract)

    def check(self, plan: RequestPlan, source: Source) -> str | None:
        """Validate templates against the source's columns; return the id column to use."""
        if source.columns is not None:
            plan.check(source.columns)
            for column in self.keep:
                if column not in source.columns:
                    raise TemplateError(
                        f"--keep names column {column!r}, which the input does not have"
                    )
            if self.id is not None and self.id not in source.columns:
                raise TemplateError(f"--id names column {self.id!r}, which the input does not have")
        if self.id is not None:
            return self.id
        if source.columns is None or "id" in source.columns:
            return "id"
        return None

    def engine(
        self,
        source: Source,
        on_result: Callable[[Result], None],
        *,
        parse: Callable[[Response], Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Engine:
        plan = self.plan()
        id_column = self.check(plan, source)
        return Engine(
            plan,
            on_result,
            extractor=self.extractor(),
            parse=parse,
            keep=self.keep,
            id_column=id_column,
            concurrency=self.concurrency,
            max_concurrency=self.max_concurrency,
            rate=self.rate,
            retry=self.retry,
            timeouts=self.timeouts,
            max_body=self.max_body,
            verify=self.verify,
            ordered=self.ordered,
            follow_redirects=self.follow_redirects,
            pipeline=self.pipeline,
            text_rows=source.fmt in TEXT_FORMATS,
            per_host_concurrency=self.per_host_concurrency,
            per_host_rate=self.per_host_rate,
            **kwargs,
        )


def make_job(
    url: str = "{url}",
    *,
    method: str | None = None,
    headers: Mapping[str, str] | Sequence[str] | None = None,
    data: str | bytes | None = None,
    extract: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    keep: Sequence[str] = (),
    id: str | None = None,
    concurrency: int | None = None,
    max_concurrency: int = 512,
    rate: float | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    connect_timeout: float = 10.0,
    verify: bool = True,
    max_body: int = 64 * 1024 * 1024,
    ordered: bool = False,
    retry: Retry | None = None,
    follow_redirects: bool | int = False,
    pipeline: int = 64,
    per_host_concurrency: int | None = None,
    per_host_rate: float | None = None,
) -> Job:
    header_items: tuple[Any, ...]
    if headers is None:
        header_items = ()
    elif isinstance(headers, Mapping):
        header_items = tuple((str(k), str(v)) for k, v in headers.items())
    else:
        header_items = tuple(headers)
    return Job(
        url=url,
        method=method,
        headers=header_items,
        data=data,
        extract=tuple(extract.items() if isinstance(extract, Mapping) else (extract or ())),
        keep=tuple(keep),
        id=id,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        rate=rate,
        retry=retry or Retry(retries=retries),
        timeouts=Timeouts(connect=min(connect_timeout, timeout), total=timeout),
        verify=verify,
        max_body=max_body,
        ordered=ordered,
        # True: up to 10 hops, as requests and curl -L (50) do; a number: that many.
        follow_redirects=(10 if follow_redirects is True else int(follow_redirects)),
        pipeline=pipeline,
        per_host_concurrency=per_host_concurrency,
        per_host_rate=per_host_rate,
    )


_DOC_ARGS = """
    Args:
        rows: dicts (one per request), URL strings, or a pandas DataFrame.
        url: URL template; ``{column}`` is replaced by the row's value. Defaults
            to ``{url}`` (rows that are URLs).
        method, headers, data: templates too; the method defaults to GET, or
            POST when ``data`` is given.
        extract: ``{name: JMESPath expression}`` evaluated over every JSON body.
        parse: a function ``(response) -> dict`` whose fields join the row.
        keep: input columns copied to each result.
        id: the column that holds the row id (default ``id`` if present, else
            the 1-based row number).
        concurrency: requests in flight at once; None (the default) adapts it
            to the server, up to ``max_concurrency``.
        rate: at most this many requests started per second.
        per_host_concurrency, per_host_rate: the same limits for each origin
            (scheme, host, port) on its own; each origin also adapts its own
            concurrency, and its send rate once it has throttled.
        retries, timeout, connect_timeout, verify, max_body, ordered: see the CLI.
        follow_redirects: True (up to 10 hops) or the most hops to follow.
        pipeline: the most GET requests queued on one connection once this
            engine's CPU limits the run (1: never pipeline). See the CLI.
"""


def _source_and_job(rows: Any, url: str, kwargs: dict[str, Any]) -> tuple[Source, Job]:
    return rows_source(rows), make_job(url, **kwargs)


async def arun(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Result]:
    """Run a batch on the running event loop; yield each :class:`Result` as it completes."""
    source, job = _source_and_job(rows, url, kwargs)
    backlog: deque[Result] = deque()
    wake = asyncio.Event()
    engine: Engine | None = None

    def on_result(result: Result) -> None:
        backlog.append(result)
        wake.set()
        if len(backlog) >= _BACKLOG_HIGH and engine is not None:
            engine.pause(True)

    engine = job.engine(source, on_result, parse=parse)
    task = asyncio.ensure_future(engine.run(source.items, source.total))
    task.add_done_callback(lambda _: wake.set())
    try:
        while True:
            while backlog:
                yield backlog.popleft()
                if len(backlog) == _BACKLOG_LOW:
                    engine.pause(False)
            if task.done():
                if backlog:
                    continue
                task.result()
                return
            wake.clear()
            await wake.wait()
    finally:
        if not task.done():
            engine.stop(grace=0)
            await asyncio.wait([task])
        if source.close is not None:
            source.close()


arun.__doc__ = (arun.__doc__ or "") + _DOC_ARGS

_END = object()


def run(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> Iterator[Result]:
    """Run a batch; yield each :class:`Result` as it completes (completion order
    unless ``ordered=True``). Works with or without a running event loop.

    Templates are checked against the rows' columns before this returns, so a
    missing column raises :class:`drumfire.TemplateError` at once.
    """
    source, job = _source_and_job(rows, url, kwargs)
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    # paused[0] is set by the engine thread before it pauses, cleared by the
    # consumer before it asks for a resume; both orders end unpaused or with
    # the flag telling the consumer to resume, so neither side can wait forever.
    paused = [False]
    state: dict[str, Any] = {}

    def on_result(result: Result) -> None:
        out.put(result)
        if not paused[0] and out.qsize() >= _BACKLOG_HIGH:
            paused[0] = True
            engine.pause(True)

    engine = job.engine(source, on_result, parse=parse)  # raises TemplateError here
    loop = new_event_loop()

    def work() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(engine.run(source.items, source.total))
        except BaseException as exc:  # handed to the consumer thread
            state["error"] = exc
        finally:
            loop.close()
            if source.close is not None:
                source.close()
            out.put(_END)

    thread = threading.Thread(target=work, name="drumfire-engine", daemon=True)
    thread.start()
    return _drain(out, paused, engine, loop, thread, state)


run.__doc__ = (run.__doc__ or "") + _DOC_ARGS


def _drain(
    out: queue.SimpleQueue[Any],
    paused: list[bool],
    engine: Engine,
    loop: asyncio.AbstractEventLoop,
    thread: threading.Thread,
    state: dict[str, Any],
) -> Iterator[Result]:
    finished = False
    try:
        while True:
            item = out.get()
            if item is _END:
                finished = True
                break
            if paused[0] and out.qsize() <= _BACKLOG_LOW:
                paused[0] = False
                loop.call_soon_threadsafe(engine.pause, False)
            yield item
    finally:
        if not finished:
            # The consumer stopped early: stop the engine and wait for its thread.
            try:
                loop.call_soon_threadsafe(engine.stop, 0)
            except RuntimeError:
                pass  # the loop already closed
            thread.join()
    if "error" in state:
        raise state["error"]


def run_all(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    as_frame: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Run a batch and return every row: a list of flat dicts, or a pandas
    DataFrame when ``as_frame`` is true (the default when ``rows`` is one).

    Results come in input order.
    """
    if as_frame is None:
        as_frame = hasattr(rows, "to_dict") and hasattr(rows, "columns")
    kwargs.setdefault("ordered", True)
    records = [r.as_dict() for r in run(rows, url, **kwargs)]
    if not as_frame:
        return records
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("as_frame=True needs pandas: pip install 'drumfire[pandas]'") from exc
    return pd.DataFrame.from_records(records)

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

from ._connection import TLS
from ._engine import Engine
from ._errors import TemplateError, UsageError
from ._extract import Extractor
from ._http import MAX_HEADER, Response
from ._loop import new_event_loop
from ._request import RequestPlan, json_body
from ._result import BASE_COLUMNS, BlankFields, Result
from ._settings import Retry, Timeouts
from ._sources import TEXT_FORMATS, Source

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
    cacert: str | None = None  # CA certificates to trust (PEM), instead of the system's
    cert: str | None = None  # a client certificate (PEM)
    key: str | None = None  # its private key (PEM), if not in ``cert``
    max_body: int = 64 * 1024 * 1024
    max_header_size: int = MAX_HEADER  # most bytes in a response's header block
    ordered: bool = False
    follow_redirects: int = 0  # most redirects followed per row; 0: none
    pipeline: int = 64  # most GET requests per connection when the client is CPU-bound
    # Stop when the first N connection attempts all fail to connect (0: never);
    # ``drumfire run`` sets 50 unless --keep-going.
    unreachable_after: int = 0
    per_host_concurrency: int | None = None  # most in flight to one origin
    per_host_rate: float | None = None  # most starts per second to one origin

    def tls(self) -> TLS | bool:
        """The TLS setting for the connections (a plain bool when only ``verify`` is set)."""
        if self.cacert is None and self.cert is None and self.key is None:
            return self.verify
        return TLS(self.verify, self.cacert, self.cert, self.key)

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
            max_header=self.max_header_size,
            verify=self.tls(),
            ordered=self.ordered,
            follow_redirects=self.follow_redirects,
            pipeline=self.pipeline,
            text_rows=source.fmt in TEXT_FORMATS,
            unreachable_after=self.unreachable_after,
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
    verify: bool | str = True,
    cert: str | tuple[str, str] | None = None,
    max_body: int = 64 * 1024 * 1024,
    max_header_size: int = MAX_HEADER,
    ordered: bool = False,
    retry: Retry | None = None,
    follow_redirects: bool | int = False,
    pipeline: int = 64,
    json: Any = None,
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
    # As requests: verify=False, True, or the path of the CA certificates to
    # trust; cert= a client certificate file, or a (certificate, key) pair.
    cacert = verify if isinstance(verify, str) else None
    cert_file, key_file = (cert, None) if cert is None or isinstance(cert, str) else cert
    tls = TLS(bool(verify), cacert, cert_file, key_file)
    if cacert is not None or cert_file is not None:
        tls.check()  # an unusable file is a usage error before the first request
    if json is not None:  # curl's --json: the body, Content-Type and Accept
        if data is not None:
            raise UsageError("the body is given twice: use --data (data=) or --json (json=)")
        names = [h[0] if isinstance(h, tuple) else h.partition(":")[0] for h in header_items]
        data, added = json_body(json, names)
        header_items = (*header_items, *added)
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
        verify=bool(verify),
        cacert=cacert,
        cert=cert_file,
        key=key_file,
        max_body=max_body,
        max_header_size=max_header_size,
        ordered=ordered,
        # True: up to 10 hops, as requests and curl -L (50) do; a number: that many.
        follow_redirects=(10 if follow_redirects is True else int(follow_redirects)),
        pipeline=pipeline,
        per_host_concurrency=per_host_concurrency,
        per_host_rate=per_host_rate,
    )


_DOC_ARGS = """
    Args:
        rows: dicts (one per request), URL strings, a pandas DataFrame, a
            pyarrow Table or a polars DataFrame, or the path of an input file
            (a ``pathlib.Path``, or a ``str`` naming an existing file; read as
            ``drumfire run`` reads INPUT, with ``input_format=``, ``encoding=``).
        url: URL template; ``{column}`` is replaced by the row's value. Defaults
            to ``{url}`` (rows that are URLs).
        method, headers, data: templates too; the method defaults to GET, or
            POST when ``data`` is given.
        json: a JSON body, as ``--json``: a dict or list whose strings may hold
            placeholders (a string that is exactly ``"{column}"`` becomes the
            value itself), or a JSON template string. Sets ``Content-Type`` and
            ``Accept`` to ``application/json``; POST unless ``method`` says.
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
        retries, timeout, connect_timeout, max_body, ordered: see the CLI.
        verify: True (the default: verify certificates against the system's
            CAs), False (``--insecure``), or the path of a PEM file of the CA
            certificates to trust instead (``--cacert``), as in requests.
        cert: a client certificate (PEM, key included), or a
            ``(certificate, key)`` pair of paths (``--cert``/``--key``).
        max_header_size: the most bytes a response's header block may have
            (64 KiB); past it the row ends with ``header_too_large``.
        follow_redirects: True (up to 10 hops) or the most hops to follow.
        pipeline: the most GET requests queued on one connection once this
            engine's CPU limits the run (1: never pipeline). See the CLI.
        output: a file (str or Path) that each result is written to as it
            completes, as ``-o`` (``output_format=`` as ``--output-format``).
        resume: keep the rows already in ``output`` and send only the others.
"""


def _source_and_job(
    rows: Any, url: str, kwargs: dict[str, Any], learn: bool = False
) -> tuple[Source, Job, Any]:
    # A file path as rows, Arrow and polars, and output=/resume=: see _files.
    from ._files import prepare

    return prepare(rows, url, kwargs, learn)


async def arun(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Result]:
    """Run a batch on the running event loop; yield each :class:`Result` as it completes."""
    source, job, output = _source_and_job(rows, url, kwargs, parse is not None)
    backlog: deque[Result] = deque()
    wake = asyncio.Event()
    engine: Engine | None = None
    blank = BlankFields(tuple(name for name, _ in job.extract))

    def on_result(result: Result) -> None:
        backlog.append(blank(result))
        wake.set()
        if len(backlog) >= _BACKLOG_HIGH and engine is not None:
            engine.pause(True)

    try:
        engine = job.engine(source, output.wrap(on_result), parse=parse, **output.engine_kwargs())
    except BaseException:
        output.close()
        raise
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
        output.close()
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
    source, job, output = _source_and_job(rows, url, kwargs, parse is not None)
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    # paused[0] is set by the engine thread before it pauses, cleared by the
    # consumer before it asks for a resume; both orders end unpaused or with
    # the flag telling the consumer to resume, so neither side can wait forever.
    paused = [False]
    state: dict[str, Any] = {}
    blank = BlankFields(tuple(name for name, _ in job.extract))

    def on_result(result: Result) -> None:
        out.put(blank(result))
        if not paused[0] and out.qsize() >= _BACKLOG_HIGH:
            paused[0] = True
            engine.pause(True)

    try:  # raises TemplateError here
        engine = job.engine(source, output.wrap(on_result), parse=parse, **output.engine_kwargs())
    except BaseException:
        output.close()
        raise
    loop = new_event_loop()

    def work() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(engine.run(source.items, source.total))
        except BaseException as exc:  # handed to the consumer thread
            state["error"] = exc
        finally:
            loop.close()
            try:
                output.close()
            except BaseException as exc:  # handed to the consumer thread
                state.setdefault("error", exc)
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

    Results come in input order. A DataFrame made from a DataFrame keeps its
    index (row i of the result answers row i of the input), and ``status``
    is a nullable integer column (``Int64``: ``<NA>`` where no response came).
    """
    from ._frames import frame_kind, run_all_frame

    kind = frame_kind(rows)
    if kind is not None:  # a pyarrow Table or a polars DataFrame: the same kind back
        return run_all_frame(rows, kind, url, as_frame, kwargs)
    frame_in = hasattr(rows, "to_dict") and hasattr(rows, "columns")
    if as_frame is None:
        as_frame = frame_in
    kwargs.setdefault("ordered", True)
    records = [r.as_dict() for r in run(rows, url, **kwargs)]
    if not as_frame:
        return records
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("as_frame=True needs pandas: pip install 'drumfire[pandas]'") from exc
    if records:
        frame = pd.DataFrame.from_records(records)
    else:
        frame = pd.DataFrame(columns=list(BASE_COLUMNS))
    frame["status"] = frame["status"].astype("Int64")
    index = getattr(rows, "index", None) if frame_in else None
    if index is not None and kwargs["ordered"] and len(frame) == len(index):
        # In input order, one result per row: the input's labels fit.
        frame.index = index
    return frame

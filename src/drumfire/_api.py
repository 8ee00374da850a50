"""The Python API: :func:`run`, :func:`arun` and :func:`run_all`.

``arun`` drives the engine on the caller's running loop. ``run`` is for code
without one (scripts, notebooks): it runs the engine on its own uvloop in a
background thread and hands results over through a queue, pausing the engine
when the consumer falls behind so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from array import array
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from typing import Any

from ._columns import INT
from ._engine import Engine
from ._errors import UsageError, as_called
from ._instream import Background
from ._job import Job
from ._live import Stopper, live, unwatch_sigint, watch_sigint
from ._loop import new_event_loop
from ._notebook import Display, chain, close_display, open_display, progress_option
from ._response import Response
from ._result import BASE_COLUMNS, BlankFields, Result, Stats
from ._sources import Source

__all__ = ["ARun", "Run", "arun", "run", "run_all"]

#: Results handed to a consumer that has not taken them yet, before the engine pauses.
_BACKLOG_HIGH = 10_000
_BACKLOG_LOW = 1_000


_DOC_ARGS = """
    Args:
        rows: dicts (one per request), URL strings, a pandas DataFrame, a
            pyarrow Table or a polars DataFrame, or the path of an input file
            (a ``pathlib.Path``, or a ``str`` naming an existing file; read as
            ``drumfire run`` reads INPUT, with ``input_format=``, ``encoding=``,
            ``delimiter=``: a CSV's field separator, as ``--delimiter``). An
            iterator (no ``len()``) is read by ``run`` in a thread of its own, so
            one that blocks holds no request; ``arun`` reads it in the caller's
            thread (a sqlite3 cursor works only there: see the README).
        url: URL template; ``{column}`` is replaced by the row's value. Defaults
            to ``{url}`` (rows that are URLs).
        method, headers, data: templates too; the method defaults to GET, or
            POST when ``data`` is given.
        json: a JSON body, as ``--json``: a dict or list whose strings may hold
            placeholders (a string that is exactly ``"{column}"`` becomes the
            value itself), or a JSON template string. Sets ``Content-Type`` and
            ``Accept`` to ``application/json``; POST unless ``method`` says.
        extract: ``{name: JMESPath expression}`` evaluated over every JSON body.
        parse: a function ``(response) -> dict`` whose fields join the row (named
            apart from the ``extract`` fields: a clash is the row's ``parse:`` error).
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
        pipeline: the most GET requests queued on one connection once CPU limits
            the run: this engine's, or the machine's with a local server (1: never
            pipeline). See the CLI and :mod:`drumfire._pipelining`.
        data_file: a path template: each row's body is that file, streamed
            (``--data-file``); ``Content-Type`` from its name unless a header says.
        files: a multipart form's file parts, as requests' ``files=``:
            ``{"field": "{path}"}`` or ``{"field": ("{path}", "image/png")}``
            (path templates), or a list of ``(field, value)`` pairs; ``form``:
            its text parts, ``{"name": "{value}"}`` or a list of pairs.
        save_body: a path template: each response body (of ``save_status``,
            default ``"2xx"``; also ``200`` or a list) is streamed to that file
            under ``save_dir`` (default the current directory);
            the result gets ``saved_path``, ``saved_bytes`` (and
            ``saved_sha256`` with ``save_sha256=True``). See ``--save-body``.
        output: a file (str or Path) that each result is written to as it
            completes, as ``-o`` (``output_format=`` as ``--output-format``).
        resume: keep the rows already in ``output`` and send only the others.
        overwrite: replace an ``output`` that already holds results (as
            ``--overwrite``); without it (or ``resume``) such a file is a
            :class:`~drumfire.UsageError`, never silently lost.
        Every value is checked before the first request: a wrong type or
            range is one :class:`~drumfire.UsageError` line naming it. Numbers
            are numbers; sizes and rates also take the CLI's text (``"64M"``,
            ``"10/s"``); paths are ``str`` or ``os.PathLike``.
        progress: None (the default) shows a progress bar when interactive
            (a widget in Jupyter, a live line when stderr is a terminal);
            True always, False never. At most ten redraws a second.
"""


def _source_and_job(
    rows: Any, url: str, kwargs: dict[str, Any], parse: Any
) -> tuple[Source, Job, Any]:
    # A file path as rows, Arrow and polars, and output=/resume=: see _files.
    from ._files import prepare

    if parse is not None and not callable(parse):  # else every row a 'parse' error
        raise UsageError(f"parse={parse!r:.60}: give a function (response) -> dict, or None")
    try:
        return prepare(rows, url, kwargs, parse is not None)
    except UsageError as exc:
        named = as_called(exc)
        if named is exc:
            raise
        raise named from None


class ARun:
    """What :func:`arun` returns: an async iterator of results, and the run's figures.

    ``stats`` is the run's :class:`~drumfire.Stats` (None until it starts; live
    while it runs, final once the iteration ends): ``stats.summary()`` gives
    rows/s, counts by status and reason, latency percentiles and requests sent.
    Left early, its figures are those of the rows the caller was given.
    """

    def __init__(self, make: Callable[[ARun], AsyncGenerator[Result, None]]) -> None:
        self.stats: Stats | None = None
        self._gen = make(self)

    def __aiter__(self) -> ARun:
        return self

    async def __anext__(self) -> Result:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop the run early (as leaving an ``async for`` does)."""
        await self._gen.aclose()

    async def __aenter__(self) -> ARun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """``async with``: the run stops when the block is left, whatever leaves it."""
        await self.aclose()


def arun(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> ARun:
    """Run a batch on the running event loop; yield each :class:`Result` as it completes.

    Returns an :class:`ARun`: iterate it with ``async for``; its ``stats``
    holds the run's figures once the iteration ends.
    """
    return ARun(lambda handle: _arun(handle, rows, url, parse, kwargs))


async def _arun(
    handle: ARun,
    rows: Iterable[Any] | Any,
    url: str,
    parse: Callable[[Response], Mapping[str, Any]] | None,
    kwargs: dict[str, Any],
) -> AsyncGenerator[Result, None]:
    progress = progress_option(kwargs)
    source, job, output = _source_and_job(rows, url, kwargs, parse)
    backlog: deque[Result] = deque()
    wake = asyncio.Event()
    engine: Engine | None = None
    blank = BlankFields(tuple(job.field_names()))

    def on_result(result: Result) -> None:
        backlog.append(blank(result))
        wake.set()
        if len(backlog) >= _BACKLOG_HIGH and engine is not None:
            engine.pause(True)

    try:
        # The caller's loop has other work: the engine never blocks it (no pauses).
        engine, display = _engine_and_display(
            job, source, output, on_result, parse, progress, sleep=None
        )
    except BaseException:
        output.close()
        raise
    task = asyncio.ensure_future(engine.run(source.items, source.total))
    task.add_done_callback(lambda _: wake.set())
    handle.stats = engine.stats
    given_ms = 0.0  # the longest latency of the rows yielded (see Stats.forget)
    try:
        while True:
            # The engine's Stats of this run, made once the task runs (the one before
            # is a placeholder): run.stats was that placeholder, 0 rows, until the end.
            handle.stats = engine.stats
            while backlog:
                result = backlog.popleft()
                if result.elapsed_ms > given_ms:
                    given_ms = result.elapsed_ms
                yield result
                if len(backlog) == _BACKLOG_LOW:
                    engine.pause(False)
            if task.done():
                if backlog:
                    continue
                handle.stats = task.result()
                return
            wake.clear()
            await wake.wait()
    finally:
        ended = task.done()  # by itself: not stopped below
        if not ended:
            engine.stop(grace=0)
            await asyncio.wait([task])
        handle.stats = engine.stats
        clean = ended and not task.cancelled() and task.exception() is None
        try:
            output.close(engine.stats if clean else None)  # (its file has these rows)
        finally:
            # The caller left: the results it was not given are not its run's rows.
            engine.stats.forget(list(backlog), given_ms)
            backlog.clear()
            close_display(display, engine.stats)
        if source.close is not None:
            source.close()


arun.__doc__ = (arun.__doc__ or "") + _DOC_ARGS

_END = object()


def _nothing() -> None:
    """Closing a Python iterator of rows: the caller's to close, not drumfire's."""


def run(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> Run:
    """Run a batch; yield each :class:`Result` as it completes (completion order
    unless ``ordered=True``). Works with or without a running event loop.

    Templates are checked against the rows' columns before this returns, so a
    missing column raises :class:`drumfire.TemplateError` at once.

    Returns a :class:`Run`: an iterator whose ``stats`` holds the run's
    figures (:class:`~drumfire.Stats`; ``stats.summary()`` for a dict) once
    the iteration ends.
    """
    progress = progress_option(kwargs)
    stats_to: list[Run] | None = kwargs.pop("_stats_to", None)  # run_all's
    source, job, output = _source_and_job(rows, url, kwargs, parse)
    if source.fmt == "rows" and source.total is None:
        # An iterator (no len): it may block (a database cursor, a paginated API), and
        # read in the engine's loop it held every request in flight. A thread reads it,
        # as a pipe's rows (the engine's thread was not the caller's either).
        source.items = background = Background(source.items, _nothing)
        source.close = background.close
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    # paused[0] is set by the engine thread before it pauses, cleared by the
    # consumer before it asks for a resume; both orders end unpaused or with
    # the flag telling the consumer to resume, so neither side can wait forever.
    paused = [False]
    state: dict[str, Any] = {}
    blank = BlankFields(tuple(job.field_names()))

    def on_result(result: Result) -> None:
        out.put(blank(result))
        if not paused[0] and out.qsize() >= _BACKLOG_HIGH:
            paused[0] = True
            engine.pause(True)

    try:  # raises TemplateError here
        engine, display = _engine_and_display(job, source, output, on_result, parse, progress)
    except BaseException:
        output.close()
        raise
    loop = new_event_loop()

    def work() -> None:
        asyncio.set_event_loop(loop)
        finished: Stats | None = None
        try:
            finished = loop.run_until_complete(engine.run(source.items, source.total))
        except BaseException as exc:  # handed to the consumer thread
            state["error"] = exc
        finally:
            loop.close()
            try:
                output.close(finished)
            except BaseException as exc:  # handed to the consumer thread
                state.setdefault("error", exc)
            if source.close is not None:
                source.close()
            live(stop, False)  # before the end is handed over (see _drain)
            out.put(_END)

    # Stops the engine (no new row; those in flight cancelled): at once, or waiting for
    # its thread; also at Ctrl-C in the caller's loop body and at exit (see _live).
    stop = Stopper(engine, loop)
    stop.thread = thread = threading.Thread(target=work, name="drumfire-engine", daemon=True)
    live(stop, True)
    thread.start()
    given = [0.0]  # the longest latency of the rows handed over (see Stats.forget)

    def take_back() -> None:
        """Once the engine's thread is over: the results the caller never took (it
        left early) are not its run's rows (see Stats.forget)."""
        left = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = out.get_nowait()
                if item is not _END:
                    left.append(item)
        engine.stats.forget(left, given[0])

    results = _drain(out, paused, engine, loop, stop, state, display, given, take_back)
    handle = Run(results, engine, job, stop, take_back)
    if stats_to is not None:
        stats_to.append(handle)
    return handle


run.__doc__ = (run.__doc__ or "") + _DOC_ARGS


class Run:
    """What :func:`run` returns: an iterator of results, and the run's figures.

    ``stats`` is the run's :class:`~drumfire.Stats`: live while the run goes
    on, final once the iteration ends (``stats.summary()`` gives rows/s,
    counts by status and reason, latency percentiles, requests sent).
    ``close()`` stops the run early, as leaving a ``for`` loop does (then ``stats``
    counts the rows the caller was given, with ``stopped`` set); a ``with``
    block closes it on the way out, whatever leaves the block (an exception
    in the loop body too: the run would otherwise go on in the background until
    the ``Run`` is collected, as an unclosed generator does).
    """

    def __init__(
        self,
        results: Iterator[Result],
        engine: Engine,
        job: Job,
        stop: Callable[[], None],
        take_back: Callable[[], None],
    ) -> None:
        self._results = results
        self._engine = engine
        self._job = job  # its columns, for run_all (see _collect)
        self._stop = stop
        self._take_back = take_back

    @property
    def stats(self) -> Stats:
        return self._engine.stats

    def __iter__(self) -> Run:
        watch_sigint()  # a for loop in a later notebook cell: Ctrl-C stops the run there too
        return self

    def __next__(self) -> Result:
        return next(self._results)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._results, "close", None)
        if close is not None:
            close()
        self._stop()  # a generator not started yet runs no cleanup on close
        self._take_back()
        unwatch_sigint()


def _engine_and_display(
    job: Job,
    source: Source,
    output: Any,
    on_result: Callable[[Result], None],
    parse: Callable[[Response], Mapping[str, Any]] | None,
    progress: bool | None,
    **engine_kwargs: Any,
) -> tuple[Engine, Display | None]:
    """The engine, and the progress display fed from its tick (shown now, if any)."""
    kwargs = {**output.engine_kwargs(), **engine_kwargs}
    try:  # the templates are checked against the columns here
        engine = job.engine(source, output.wrap(on_result), parse=parse, **kwargs)
    except UsageError as exc:
        named = as_called(exc)
        if named is exc:
            raise
        raise named from None
    display = open_display(progress, engine.clock)
    if display is not None:
        engine.on_tick = chain(engine.on_tick, display)
    return engine, display


def _drain(
    out: queue.SimpleQueue[Any],
    paused: list[bool],
    engine: Engine,
    loop: asyncio.AbstractEventLoop,
    stop: Callable[[], None],
    state: dict[str, Any],
    display: Display | None,
    given: list[float],
    take_back: Callable[[], None],
) -> Iterator[Result]:
    finished = False
    given_ms = 0.0
    try:
        while True:
            item = out.get()
            if item is _END:
                finished = True
                break
            if paused[0] and out.qsize() <= _BACKLOG_LOW:
                paused[0] = False
                try:
                    loop.call_soon_threadsafe(engine.pause, False)
                except RuntimeError:
                    pass  # the loop closed: the run ended paused (its last rows were out)
            if item.elapsed_ms > given_ms:
                given_ms = item.elapsed_ms
            yield item
    finally:
        given[0] = given_ms
        if not finished:  # the consumer stopped early
            stop()
            take_back()
        unwatch_sigint()
        # in the consumer's thread, now that the engine's is over
        close_display(display, engine.stats)
    if "error" in state:
        raise state["error"]


def run_all(
    rows: Iterable[Any] | Any,
    url: str = "{url}",
    *,
    as_frame: bool | None = None,
    return_stats: bool = False,
    **kwargs: Any,
) -> Any:
    """Run a batch and return every row: a list of flat dicts, or a pandas
    DataFrame when ``as_frame`` is true (the default when ``rows`` is one).

    Results come in input order. A DataFrame made from a DataFrame keeps its
    index (row i of the result answers row i of the input; with ``resume=True``,
    the labels of the rows sent again), and ``status``
    is a nullable integer column (``Int64``: ``<NA>`` where no response came);
    a kept column is the input's, its dtype and values.

    The run's figures: with ``return_stats=True`` the call returns a pair
    ``(results, stats)`` (a :class:`~drumfire.Stats`; ``stats.summary()`` for
    a dict); a pandas DataFrame also carries ``stats.summary()`` in
    ``frame.attrs["drumfire"]``.
    """
    from ._frames import frame_kind, run_all_frame

    runs: list[Run] = []
    kwargs["_stats_to"] = runs
    kind = frame_kind(rows)
    if kind is not None:  # a pyarrow Table or a polars DataFrame: the same kind back
        table = run_all_frame(rows, kind, url, as_frame, kwargs, _collect)
        if hasattr(table, "attrs") and runs:
            table.attrs["drumfire"] = runs[0].stats.summary()
        return (table, runs[0].stats) if return_stats else table
    result = _run_all(rows, url, as_frame, kwargs)
    if hasattr(result, "attrs"):
        result.attrs["drumfire"] = runs[0].stats.summary()
    return (result, runs[0].stats) if return_stats else result


def _collect(rows: Any, url: str, **kwargs: Any) -> tuple[list[Result], Job]:
    """Every result of :func:`run`, and its job: the fields it asks for (extracted, then
    saved: ``saved_path``...), known even when no row came, and their fixed types."""
    handle = run(rows, url, **kwargs)
    results = list(handle)
    return results, handle._job


def _run_all(rows: Any, url: str, as_frame: bool | None, kwargs: dict[str, Any]) -> Any:
    frame_in = hasattr(rows, "to_dict") and hasattr(rows, "columns")
    if as_frame is None:
        as_frame = frame_in
    kwargs.setdefault("ordered", True)
    skipped: array[int] = array("q")  # the input rows resume=True did not send again
    if frame_in:
        kwargs["_skipped_to"] = skipped
    results, job = _collect(rows, url, **kwargs)
    records = [r.as_dict() for r in results]
    if not as_frame:
        return records
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("as_frame=True needs pandas: pip install 'drumfire[pandas]'") from exc
    if records:
        frame = pd.DataFrame.from_records(records)
    else:  # the columns rows would have had: a later frame["duration"] finds its column
        frame = pd.DataFrame(columns=[*BASE_COLUMNS, *job.field_names(), *job.keep])
    frame["status"] = frame["status"].astype("Int64")
    # drumfire's own fields (saved_bytes...) have one type whatever the rows hold: an
    # integer column with gaps as status, text as pandas holds the id (str, or object)
    text = pd.Series(["text"]).dtype
    for name, kind in job.field_kinds().items():
        if name in frame.columns:
            frame[name] = frame[name].astype("Int64" if kind == INT else text)
    index = getattr(rows, "index", None) if frame_in else None
    if index is not None and kwargs["ordered"] and len(frame) + len(skipped) == len(index):
        # In input order, one result per row sent: the input's labels fit, less
        # those of the rows a resume skipped (else result.join(df) would pair a
        # result with another row's input).
        _kept_as_given(frame, rows, job.keep, skipped)
        frame.index = index.delete(list(skipped)) if skipped else index
    elif frame_in and records:
        _kept_typed(frame, rows, job.keep, records)
    return frame


def _kept_typed(frame: Any, rows: Any, keep: Iterable[str], records: list[dict[str, Any]]) -> None:
    """The kept columns of ``frame`` in completion order (``ordered=False``), in the input
    DataFrame's dtypes: left to pandas' inference, a nullable ``Int64`` column with a gap
    became ``float64`` (2**60 + 1 came back 1152921504606846976), and a ``category`` or
    ``boolean`` one text. A column whose values no longer fit its dtype is left as made."""
    import pandas as pd

    labels = {str(c): c for c in rows.columns}
    for name in keep:
        if name in frame.columns and name in labels:
            values = [record.get(name) for record in records]
            with contextlib.suppress(TypeError, ValueError):
                frame[name] = pd.array(values, dtype=rows[labels[name]].dtype)


def _kept_as_given(frame: Any, rows: Any, keep: Iterable[str], skipped: array[int]) -> None:
    """The kept columns of ``frame`` (one result per row sent, in input order) as the
    input DataFrame holds them, its dtypes and all: made from the results' values, a
    nullable ``Int64`` column with a gap was ``float64``, its integers past 2**53 rounded."""
    labels = {str(c): c for c in rows.columns}
    if skipped:
        sent = [True] * len(rows)
        for position in skipped:
            sent[position] = False
        rows = rows.iloc[sent]
    for name in keep:
        if name in frame.columns and name in labels:
            frame[name] = rows[labels[name]].set_axis(frame.index)

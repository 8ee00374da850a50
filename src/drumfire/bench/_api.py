"""``drumfire.bench.bench()`` and ``abench()``: options in, a :class:`BenchReport` out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._connection import TLS
from .._errors import TemplateError, UsageError
from .._loop import loop_name, new_event_loop
from .._options import check_seconds, check_size
from .._request import RequestPlan
from .._rows import InputProblem, row_place
from .._settings import MAX_BODY
from .._sources import TEXT_FORMATS, Source, open_source, rows_source
from .._url import shown_url as _shown
from ._display import (
    BenchDisplay,
    close_bench_display,
    guarded,
    open_bench_display,
    progress_choice,
)
from ._report import BenchReport, build_report
from ._runner import Runner, Target
from ._schedule import RateProfile, Schedule, parse_duration, parse_rate_profile

__all__ = ["DEFAULT_DURATION", "abench", "bench"]

DEFAULT_DURATION = 10.0  # seconds, when neither a count nor a duration is given
DEFAULT_CLOSED_CONCURRENCY = 8
DEFAULT_OPEN_CONCURRENCY = 64
#: Seconds a request may take, and to open a connection (a load test waits less than a batch).
DEFAULT_TIMEOUT = 10.0

Headers = list[str] | list[tuple[str, str]] | Mapping[str, str] | None


#: The command line's names in the messages of the options' own checks, and the keyword
#: that bench() and abench() take for each: their caller never typed ``-z``.
_KEYWORDS = (
    ("-z/--duration ", "duration="),
    ("--warmup ", "warmup="),
    ("--rate ", "rate="),
    ("(-z)", "(duration=)"),
)


@contextlib.contextmanager
def _keyword_names(keywords: bool) -> Iterator[None]:
    """Name the settings as bench()'s keywords in the messages raised inside, when asked:
    the parsers of durations and rates are the command line's, and word their messages so
    (as :func:`drumfire._errors.resume_named` renames a resume's at the API's boundary)."""
    try:
        yield
    except UsageError as exc:
        if not keywords:
            raise
        text = str(exc)
        for option, keyword in _KEYWORDS:
            text = text.replace(option, keyword)
        raise type(exc)(text) from None


def _at_least_one(keywords: bool, keyword: str, option: str, value: int | None) -> None:
    if value is not None and value < 1:
        if keywords:
            raise UsageError(f"{keyword}={value!r}: give a whole number, 1 or more")
        raise UsageError(f"the {option} must be at least 1")


@dataclass
class _Plan:
    targets: list[Target]
    settings: dict[str, Any]
    runner_args: dict[str, Any]
    rate_text: str | None


def _literal_url(url: str) -> str:
    return url.replace("{", "%7B").replace("}", "%7D")


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def literal_headers(headers: Headers) -> Headers:
    if headers is None:
        return None
    if isinstance(headers, Mapping):
        return {_escape(str(k)): _escape(str(v)) for k, v in headers.items()}
    out: list[tuple[str, str]] = []
    items: list[str | tuple[str, str]] = list(headers)
    for number, item in enumerate(items, 1):
        if isinstance(item, tuple):
            out.append((_escape(item[0]), _escape(item[1])))
            continue
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            # Never the text itself (it may be a credential missing its name), as `run` says it.
            raise TemplateError(f"header {number} is not in the form 'Name: value'")
        out.append((_escape(name.strip()), _escape(value.strip())))
    return out


def _load_targets(plan: RequestPlan, source: Source) -> tuple[list[Target], int, str]:
    """Every row prepared once: (targets, rows skipped, the first problem)."""
    targets: list[Target] = []
    skipped = 0
    first = ""
    try:
        if source.columns is not None:
            plan.check(source.columns)
        prepare = plan.preparer(source.fmt in TEXT_FORMATS)  # CSV cells are text
        line_of = source.lines.line_of if source.lines is not None else None
        for line, row in source.items:
            if isinstance(row, InputProblem):
                skipped += 1
                first = first or f"line {row.line}: {row.message}"
                continue
            try:
                prepared = prepare(row)
            except KeyError as exc:
                skipped += 1
                first = first or f"{row_place(line, line_of)} has no column {exc.args[0]!r}"
                continue
            except ValueError as exc:
                skipped += 1
                first = first or f"{row_place(line, line_of)}: {exc}"
                continue
            targets.append((prepared.origin, prepared.data, prepared.method == "HEAD"))
    finally:
        if source.close is not None:
            source.close()
    return targets, skipped, first


def make_plan(
    url: str | None,
    *,
    rows: Any,
    input: str | None,
    input_format: str | None,
    method: str | None,
    headers: Headers,
    data: str | bytes | None,
    concurrency: int | None,
    rate: str | float | None,
    requests: int | None,
    duration: str | float | None,
    warmup: str | float,
    timeout: float,
    connect_timeout: float,
    shuffle: bool,
    seed: int | None,
    verify: bool | TLS,
    max_body: int | str,
    keywords: bool = False,
) -> _Plan:
    """The run bench() and ``drumfire bench`` describe; ``keywords``: the messages name
    the settings as bench()'s keywords (``concurrency=0``), else as the options (``-c``)."""
    if rows is not None and input is not None:
        raise UsageError("give rows or an input file, not both")
    if shuffle and rows is None and input is None:  # one URL: nothing to shuffle
        raise UsageError(
            "shuffle=True visits the rows in random order: give rows= or input="
            if keywords
            else "--shuffle visits input rows in random order: give --input FILE"
        )
    if seed is not None and not shuffle:  # silently ignored, it promised a reproducible order
        raise UsageError(
            f"seed={seed!r} is the seed of shuffle=True: give that too"
            if keywords
            else "--seed is the seed of --shuffle: give --shuffle too"
        )
    _at_least_one(keywords, "requests", "request count (-n)", requests)
    _at_least_one(keywords, "concurrency", "concurrency (-c)", concurrency)
    check_seconds("timeout", timeout)  # a NaN passed "<= 0" and never fired
    check_seconds("connect_timeout", connect_timeout)
    max_body = check_size("max_body", max_body)  # "64M" too, as run takes it
    with _keyword_names(keywords):
        warm = parse_duration(warmup, "--warmup")
        length = parse_duration(duration, "-z/--duration") if duration is not None else None
        if length is not None and length <= 0:
            raise UsageError(
                f"duration={duration!r}: give a duration above 0"
                if keywords
                else "the duration (-z) must be more than 0"
            )
        profile: RateProfile | None = parse_rate_profile(rate) if rate is not None else None
        if length is None and requests is None and (profile is None or math.isinf(profile.length)):
            length = DEFAULT_DURATION
        if profile is not None and not math.isinf(profile.length) and length is None:
            length = profile.length if requests is None else None
        schedule = Schedule(profile, warm, length) if profile is not None else None
    conc = concurrency or (
        DEFAULT_OPEN_CONCURRENCY if profile is not None else DEFAULT_CLOSED_CONCURRENCY
    )

    skipped = 0
    if rows is None and input is None:
        if not url:
            raise UsageError("give a URL, or an input file with a URL template")
        body = data.encode("utf-8") if isinstance(data, str) else data
        try:
            plan = RequestPlan(
                _literal_url(url), method=method, headers=literal_headers(headers), data=body
            )
            prepared = plan.prepare({})
        except ValueError as exc:  # a bad URL
            raise UsageError(str(exc)) from None
        targets: list[Target] = [(prepared.origin, prepared.data, prepared.method == "HEAD")]
    else:
        template = url or "{url}"
        try:
            plan = RequestPlan(template, method=method, headers=headers, data=data)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        source = rows_source(rows) if rows is not None else open_source(str(input), input_format)
        targets, skipped, problem = _load_targets(plan, source)
        if not targets:
            what = f"input {input!r}" if input is not None else "the rows"
            raise UsageError(
                f"no usable row in {what}" + (f" (first problem: {problem})" if problem else "")
            )
    settings: dict[str, Any] = {
        # Shown in every report: a password in the URL's user info becomes ***.
        "url": _shown(url) if url is not None and rows is None and input is None else None,
        "url_template": _shown(url or "{url}") if rows is not None or input is not None else None,
        "input": input,
        "targets": len(targets),
        "rows_skipped": skipped,
        "shuffle": shuffle,
        "method": method or ("POST" if data is not None else "GET"),
        "model": "open" if profile is not None else "closed",
        "concurrency": conc,
        "rate": profile.text if profile is not None else None,
        "rate_fixed": profile.fixed if profile is not None else None,
        "requests": requests,
        "duration_s": length,
        "warmup_s": warm,
        "timeout_s": timeout,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    args: dict[str, Any] = {
        "concurrency": conc,
        "schedule": schedule,
        "requests": requests,
        "duration": length,
        "warmup": warm,
        "timeout": timeout,
        "connect_timeout": connect_timeout,
        "max_body": max_body,
        "verify": verify,
        "shuffle": shuffle,
        "seed": seed,
    }
    return _Plan(targets, settings, args, profile.text if profile is not None else None)


async def _run(
    plan: _Plan,
    *,
    display: BenchDisplay | None,
    clock: Callable[[], float],
    on_runner: Callable[[Runner], None] | None = None,
) -> BenchReport:
    from .._batch import ensure_fd_limit  # as drumfire run: a socket per connection

    # Raised now, or said in the report: past the limit a connection fails as a
    # `connect` error that is the client's, not the server's.
    fds = ensure_fd_limit(plan.runner_args["concurrency"])
    runner = Runner(
        plan.targets,
        clock=clock,
        on_tick=guarded(display) if display is not None else None,
        **plan.runner_args,
    )
    if on_runner is not None:
        on_runner(runner)
    settings = dict(plan.settings)
    settings["loop"] = loop_name(asyncio.get_running_loop())
    data = await runner.run()
    report = build_report(data, settings, plan.rate_text)
    if fds is not None:
        report.warnings.append(f"{fds}: connect errors may be the client's open-files limit")
    schedule = plan.runner_args["schedule"]
    if report.rate is not None and schedule is not None:
        report.rate["asked_curve"] = _rate_curve(schedule, plan.settings["warmup_s"], report)
    return report


def _rate_curve(schedule: Schedule, warmup: float, report: BenchReport) -> list[list[float]]:
    """The asked rate every quarter second of the measured run, for the chart."""
    asked = report.settings.get("duration_s")
    end = min(report.duration_s, asked) if asked else report.duration_s
    points: list[list[float]] = []
    steps = min(math.ceil(end * 4), 4 * 3600)
    for i in range(steps + 1):
        t = min(i / 4, end)
        points.append([round(t, 3), round(schedule.rate_at(warmup + t), 3)])
    return points


async def abench(
    url: str | None = None,
    *,
    rows: Any = None,
    input: str | None = None,
    input_format: str | None = None,
    method: str | None = None,
    headers: Headers = None,
    data: str | bytes | None = None,
    concurrency: int | None = None,
    rate: str | float | None = None,
    requests: int | None = None,
    duration: str | float | None = None,
    warmup: str | float = 0,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - a per-request timeout, not the call's
    connect_timeout: float = DEFAULT_TIMEOUT,
    shuffle: bool = False,
    seed: int | None = None,
    verify: bool = True,
    max_body: int | str = MAX_BODY,
    quiet: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: bool | None = None,
) -> BenchReport:
    """:func:`bench` on the running event loop (``await drumfire.bench.abench(...)``)."""
    shown = progress_choice(progress, quiet)
    plan = make_plan(
        url, rows=rows, input=input, input_format=input_format, method=method,
        headers=headers, data=data, concurrency=concurrency, rate=rate, requests=requests,
        duration=duration, warmup=warmup, timeout=timeout, connect_timeout=connect_timeout,
        shuffle=shuffle, seed=seed, verify=verify, max_body=max_body, keywords=True,
    )  # fmt: skip
    display = open_bench_display(shown, clock, plan.settings)
    report: BenchReport | None = None
    try:
        report = await _run(plan, display=display, clock=clock)
    finally:
        close_bench_display(display, report)
    return report


def bench(
    url: str | None = None,
    *,
    rows: Any = None,
    input: str | None = None,
    input_format: str | None = None,
    method: str | None = None,
    headers: Headers = None,
    data: str | bytes | None = None,
    concurrency: int | None = None,
    rate: str | float | None = None,
    requests: int | None = None,
    duration: str | float | None = None,
    warmup: str | float = 0,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_TIMEOUT,
    shuffle: bool = False,
    seed: int | None = None,
    verify: bool = True,
    max_body: int | str = MAX_BODY,
    quiet: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: bool | None = None,
) -> BenchReport:
    """Load ``url`` (or every row of ``rows``/``input`` through the URL template) and measure.

    Closed model by default: ``concurrency`` connections (8), each sending its next
    request as soon as the last answer came. With ``rate`` (requests/s; ``"100:1000"``
    for a ramp over the run, ``"100@10s,500@20s"`` for stages) the open model:
    requests are due on a fixed schedule whatever the server does, queue for at most
    ``concurrency`` connections (64), and their latency counts from when they were
    due. The run stops after ``requests`` measured requests or ``duration``
    (``"30s"``, ``"2m"`` or seconds; 10 s if neither is given); the ``warmup``
    before it is not measured.

    Works with or without a running event loop (in a notebook it runs on a
    background thread). ``progress``: None (the default) shows the progress when
    interactive (a widget in Jupyter, the live view with stderr on a terminal),
    True always (elsewhere: the figures on stderr at the end), False never;
    ``quiet=True`` is the older ``progress=False``. Raises
    :class:`~drumfire.UsageError` for bad options and
    :class:`~drumfire.bench.BenchError` when no connection can be opened.

    >>> report = bench("http://127.0.0.1:8080/", concurrency=16, duration="10s")
    >>> report.latency_ms["p99"], report.rps
    """
    plan = make_plan(
        url, rows=rows, input=input, input_format=input_format, method=method,
        headers=headers, data=data, concurrency=concurrency, rate=rate, requests=requests,
        duration=duration, warmup=warmup, timeout=timeout, connect_timeout=connect_timeout,
        shuffle=shuffle, seed=seed, verify=verify, max_body=max_body, keywords=True,
    )  # fmt: skip
    return run_plan(plan, progress=progress_choice(progress, quiet), clock=clock, final=True)


def run_plan(
    plan: _Plan,
    *,
    quiet: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
    handle_signals: bool = False,
    progress: bool | None = None,
    final: bool = False,
) -> BenchReport:
    """Run on a fresh uvloop: in this thread, or in a helper thread if a loop is running.

    ``quiet``/``progress``: see :func:`progress_choice`. ``final``: the figures
    after the live view (the API; the command line prints its own summary).
    """
    # Opened (and closed) in the caller's thread: in a notebook, where the cell's output goes.
    display = open_bench_display(
        progress_choice(progress, quiet), clock, plan.settings, final=final
    )
    report: BenchReport | None = None
    try:
        report = _run_plan(plan, display, clock, handle_signals)
    finally:
        close_bench_display(display, report)
    return report


def _run_plan(
    plan: _Plan,
    display: BenchDisplay | None,
    clock: Callable[[], float],
    handle_signals: bool,
) -> BenchReport:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        here = True  # no loop running: the run is this thread's (outside the except
        # clause, which every exception of the run would otherwise chain to)
    else:
        here = False
    if here:
        return _run_here(plan, display=display, clock=clock, handle_signals=handle_signals)
    box: list[Any] = []
    stopper = _Stopper()
    finished = threading.Event()

    def work() -> None:
        try:
            box.append(
                _run_here(
                    plan, display=display, clock=clock, handle_signals=False, stopper=stopper
                )
            )
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="drumfire-bench", daemon=True)
    try:
        thread.start()
        finished.wait()
    except BaseException:
        # Ctrl-C in a notebook reaches this thread, not the helper: stop the load
        # (as it stops without a running loop), wait for the helper to be done
        # (its requests in flight cancelled), then let the interrupt through. An
        # Event, not join(): an interrupted join() of Python 3.11 marks the thread
        # stopped while it runs on (bpo-45274's fix), and the next join() returns.
        stopper.stop()
        finished.wait()
        raise
    thread.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, BenchReport)
    return result


class _Stopper:
    """Stops a run on a helper thread's loop from the caller's thread (see _run_plan).

    Either side may come first: the caller sets ``asked`` and then looks for the
    runner; the helper sets the runner and then looks at ``asked``. A runner stopped
    before it started stops as it starts (:meth:`Runner.stop`).
    """

    def __init__(self) -> None:
        self.asked = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: Runner | None = None

    def started(self, loop: asyncio.AbstractEventLoop, runner: Runner) -> None:
        """In the helper's thread, once the run has its runner."""
        self.loop, self.runner = loop, runner
        if self.asked:
            runner.stop(grace=0.0)

    def stop(self) -> None:
        """In the caller's thread: no more requests; those in flight cancelled."""
        self.asked = True
        loop, runner = self.loop, self.runner
        if loop is not None and runner is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the run is over
                loop.call_soon_threadsafe(runner.stop, 0.0)


def _run_here(
    plan: _Plan,
    *,
    display: BenchDisplay | None,
    clock: Callable[[], float],
    handle_signals: bool,
    stopper: _Stopper | None = None,
) -> BenchReport:
    loop = new_event_loop()
    runners: list[Runner] = []
    got: list[int] = []

    def on_runner(runner: Runner) -> None:
        runners.append(runner)
        if stopper is not None:
            stopper.started(loop, runner)

    def on_signal(signum: int) -> None:
        if not runners:
            return
        if got:  # a second signal: stop waiting for the requests in flight
            runners[0].stop(grace=0.0)
            return
        got.append(signum)
        runners[0].stop(grace=2.0)

    try:
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, on_signal, signum)
        report = loop.run_until_complete(
            _run(plan, display=display, clock=clock, on_runner=on_runner)
        )
        if got:
            report.stop_signal = got[0]
        return report
    finally:
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signum)
        try:
            # Let cancelled connects and closing transports finish before the loop goes.
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

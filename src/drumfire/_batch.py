"""Running a batch from the command line: loop, signals, progress, flushing.

The CLI and ``drumfire demo`` share this; the Python API has its own drivers
in ``_api``. Exit statuses: 0 every row got a result, 130 after SIGINT,
143 after SIGTERM (completed rows flushed either way).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _readahead as readahead
from ._job import Job
from ._loop import new_event_loop
from ._progress import Progress, draws_live, format_summary, format_unreachable
from ._response import Response
from ._result import Stats
from ._resume import DuplicateCounter
from ._sinks import Sink
from ._sources import Source

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ensure_fd_limit", "execute"]

FLUSH_EVERY = 1.0  # seconds: the most completed work a crash can lose


def ensure_fd_limit(concurrency: int, spare: int = 64) -> str | None:
    """Raise the soft open-files limit to fit ``concurrency`` sockets plus ``spare``.

    Returns a warning when the hard limit does not allow it (the run goes on;
    connects beyond the limit fail as ``connect`` rows and are retried).
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    need = concurrency + spare
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target >= need:
        return None
    return (
        f"-c {concurrency} needs about {need} open files but the limit is {target} "
        f"(hard limit {hard}); raise it with 'ulimit -n {need}' or lower -c"
    )


def execute(
    job: Job,
    source: Source,
    sink: Sink,
    *,
    quiet: bool = False,
    output_label: str | None = None,
    parse: Callable[[Response], Mapping[str, Any]] | None = None,
    console: Console | None = None,
    skip: Callable[[str], bool] | None = None,
    read_ahead: bool = False,
    skip_problem: Callable[[int], bool] | None = None,
    saved: Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None = None,
    resumed: int = 0,
) -> tuple[Stats, int]:
    """Run the batch to the end (or to a signal); return its stats and exit status.

    ``skip``/``skip_problem`` (``--resume``): ids and input-error lines whose
    rows the output already holds; ``saved``: rows whose saved file is complete
    (:func:`drumfire._bodies.saved_rows`); ``resumed``: how many rows it holds,
    where the progress display starts counting.

    ``read_ahead``: read and prepare the rows in a child process where that
    helps (see :mod:`drumfire._readahead`).
    """
    consoles = [console] if console is not None else []

    def stderr() -> Console:
        """The console, made on first use: a run that shows nothing needs no rich."""
        if not consoles:
            from rich.console import Console

            consoles.append(Console(stderr=True))
        return consoles[0]

    clock = time.perf_counter
    progress = Progress(stderr(), clock) if not quiet and draws_live(stderr()) else None
    if progress is not None:
        progress.resumed = resumed
    last_flush = [clock()]

    def on_tick(stats: Stats) -> None:
        now = clock()
        if now - last_flush[0] >= FLUSH_EVERY:
            sink.flush()
            last_flush[0] = now
        if progress is not None:
            progress.update(stats)

    # Once the engine's own CPU limits the run, the rest of the input is read
    # and prepared in a child process.
    reader = readahead.Starter() if read_ahead and readahead.available() else None
    fds = ensure_fd_limit(job.concurrency or job.max_concurrency)
    if fds is not None:
        stderr().print(f"drumfire: warning: {fds}", highlight=False)
    engine = job.engine(
        source,
        sink.write,
        on_results=getattr(sink, "write_all", None),  # rows answered together, one call
        parse=parse,
        on_tick=on_tick,
        clock=clock,
        skip=skip,
        skip_problem=skip_problem,
        saved=saved,
        duplicates=DuplicateCounter(),
        on_cpu_bound=reader,
    )
    loop = new_event_loop()
    got: list[int] = []

    def on_signal(signum: int) -> None:
        if got:  # a second signal: stop waiting for in-flight requests
            engine.stop(grace=0)
            engine.cancel_all()
            return
        got.append(signum)
        engine.stop(grace=2.0)

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or not supported here
        if progress is not None:
            with progress:
                stats = loop.run_until_complete(engine.run(source.items, source.total))
        else:
            stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        if reader is not None:
            reader.close()
        sink.close()
        if source.close is not None:
            source.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        loop.close()
    if not quiet:
        stderr().print(format_summary(stats, output_label), highlight=False, soft_wrap=True)
    if got:
        return stats, 128 + got[0]
    unreachable = format_unreachable(stats)
    if unreachable is not None:  # shown even with --quiet: it is the run's outcome
        stderr().print(unreachable, highlight=False, soft_wrap=True, markup=False)
        return stats, 1
    return stats, 0

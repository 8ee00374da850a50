"""``progress=`` of :func:`drumfire.bench.bench`: a widget in Jupyter, the live view on a terminal.

As for ``run``/``run_all``/``arun`` (:mod:`drumfire._notebook`): ``None`` (the
default) shows the progress when the code runs interactively (in a Jupyter
kernel: an ipywidgets bar, or an HTML line updated in place without
ipywidgets; with stderr on a terminal: the live view of ``drumfire bench``);
``True`` always shows it (elsewhere: one line of figures on stderr at the
end); ``False`` never does. The display reads the runner's counters from its
periodic tick (every 0.1 s), never per request, and redraws at most ten times
a second; a display that fails is dropped, the benchmark goes on.
"""

from __future__ import annotations

import html
import importlib
import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console

from .._errors import UsageError
from .._notebook import INTERVAL, Throttle, in_kernel, stderr_is_terminal
from ._live import LiveView
from ._report import NO_ANSWER
from ._runner import Runner

if TYPE_CHECKING:
    from ._report import BenchReport

__all__ = [
    "BenchDisplay",
    "close_bench_display",
    "guarded",
    "open_bench_display",
    "progress_choice",
]


class BenchDisplay(Protocol):
    def update(self, runner: Runner) -> None: ...

    def close(self, report: BenchReport | None) -> None: ...


def progress_choice(progress: object, quiet: bool | None) -> bool | None:
    """``progress=`` checked, with the older ``quiet=`` folded in (True: no display)."""
    if progress is not None and not isinstance(progress, bool):
        raise UsageError(f"progress= takes True, False or None (automatic), not {progress!r}")
    if quiet is None:
        return progress
    if quiet and progress:
        raise UsageError("quiet=True and progress=True disagree: give progress= alone")
    if quiet:
        return False
    return progress


def fraction(runner: Runner, now: float) -> float:
    """How much of the benchmark is done (0 during the warm-up), as the live view's bar."""
    if now < runner.measure_start:
        return 0.0
    if runner.limit is not None:
        done = runner.recorder.requests / runner.limit
    else:
        total = runner.end - runner.measure_start
        done = (now - runner.measure_start) / total if total > 0 else 0.0
    return min(max(done, 0.0), 1.0)


def figures(report: BenchReport) -> str:
    """The benchmark's figures in one line."""
    lat = report.latency_ms
    latency = (
        f"latency p50 {lat['p50']:.2f} ms · p99 {lat['p99']:.2f} ms · max {lat['max']:.2f} ms"
        if report.status
        else f"latency {NO_ANSWER}"
    )
    line = (
        f"drumfire bench: {report.requests:,} requests in {report.duration_s:.2f} s — "
        f"{report.rps:,.1f} requests/s · {latency}"
    )
    if report.failed:
        line += f" · failed {report.failed:,}"
    if report.stopped:
        line += " (stopped early)"
    return line


class Terminal:
    """The live view of ``drumfire bench`` on stderr; the figures after it (``figures``)."""

    def __init__(
        self,
        clock: Callable[[], float],
        settings: dict[str, Any],
        console: Console | None = None,
        *,
        final: bool = True,
    ) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.final = final
        self.view = LiveView(clock, settings, self.console, interval=INTERVAL)
        self.view.__enter__()

    def update(self, runner: Runner) -> None:
        self.view.update(runner)  # throttled there

    def close(self, report: BenchReport | None) -> None:
        self.view.__exit__(None, None, None)
        if self.final and report is not None:
            self.console.print(figures(report), markup=False, highlight=False)


class Lines:
    """Off a terminal, with ``progress=True``: the figures on stderr at the end."""

    def update(self, runner: Runner) -> None:
        pass

    def close(self, report: BenchReport | None) -> None:
        if report is not None:
            print(figures(report), file=sys.stderr)


def _text(view: LiveView, runner: Runner, now: float) -> str:
    lines = view.render(runner, now).plain.strip().splitlines()
    return "<br>".join(html.escape(line) for line in lines)


class Widget:
    """An ipywidgets bar with the live view's lines beside it, as ``tqdm.notebook`` draws."""

    def __init__(
        self, clock: Callable[[], float], settings: dict[str, Any], display: Callable[[Any], Any]
    ) -> None:
        from ipywidgets import HTML, HBox, IntProgress, Layout

        self.clock = clock
        self.throttle = Throttle(clock)
        self.view = LiveView(clock, settings, Console(file=io.StringIO()))
        self.bar = IntProgress(min=0, max=1000, value=0, bar_style="info")
        self.label = HTML(value="drumfire bench: starting…")
        self.box = HBox(
            [self.bar, self.label], layout=Layout(display="inline-flex", flex_flow="row wrap")
        )
        display(self.box)

    def update(self, runner: Runner) -> None:
        if self.throttle.ready():
            now = self.clock()
            self.bar.value = round(1000 * fraction(runner, now))
            self.label.value = _text(self.view, runner, now)

    def close(self, report: BenchReport | None) -> None:
        if report is None:
            self.bar.bar_style = "danger"
            return
        self.bar.value = 1000 if not report.stopped else self.bar.value
        self.bar.bar_style = "danger" if report.stopped else "success"
        self.label.value = html.escape(figures(report))


class _HTMLLine:
    """Without ipywidgets: one HTML output, updated in place (``display_id``)."""

    def __init__(
        self, clock: Callable[[], float], settings: dict[str, Any], display: Callable[..., Any]
    ) -> None:
        ipython_display = importlib.import_module("IPython.display")
        html_type: Any = ipython_display.HTML
        self._html: Callable[[str], Any] = html_type
        self.clock = clock
        self.throttle = Throttle(clock)
        self.view = LiveView(clock, settings, Console(file=io.StringIO()))
        self.handle = display(self._html("<code>drumfire bench: starting…</code>"), display_id=True)

    def update(self, runner: Runner) -> None:
        if self.throttle.ready():
            text = _text(self.view, runner, self.clock())
            self.handle.update(self._html(f"<code>{text}</code>"))

    def close(self, report: BenchReport | None) -> None:
        if report is not None:
            self.handle.update(self._html(f"<code>{html.escape(figures(report))}</code>"))


def open_bench_display(
    progress: bool | None,
    clock: Callable[[], float],
    settings: dict[str, Any],
    *,
    final: bool = True,
) -> BenchDisplay | None:
    """The display ``progress=`` asks for here, shown now; None for none.

    ``final``: print the figures after the terminal's live view (the API; the
    command line prints its own summary).
    """
    if progress is False:
        return None
    if in_kernel():
        from IPython import display as ipython_display

        show: Callable[..., Any] = ipython_display.display
        try:
            return Widget(clock, settings, show)
        except ImportError:  # no ipywidgets: the text fallback
            return _HTMLLine(clock, settings, show)
    if stderr_is_terminal():
        return Terminal(clock, settings, final=final)
    if progress:
        return Lines()
    return None


def guarded(display: BenchDisplay) -> Callable[[Runner], None]:
    """The runner's ``on_tick``: updates ``display``, dropped for good if it fails."""
    broken: list[BaseException] = []

    def tick(runner: Runner) -> None:
        if not broken:
            try:
                display.update(runner)
            except Exception as exc:  # a closed front end: the benchmark matters more
                broken.append(exc)

    return tick


def close_bench_display(display: BenchDisplay | None, report: BenchReport | None) -> None:
    """Draw the figures; a display that fails now is left as it is."""
    if display is None:
        return
    try:
        display.close(report)
    except Exception:
        pass

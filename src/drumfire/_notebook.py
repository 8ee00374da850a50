"""``progress=`` in the Python API: a widget in Jupyter, a live bar on a terminal.

``progress=None`` (the default) shows the progress when the code runs
interactively: in a Jupyter kernel (an ipywidgets bar, as ``tqdm.auto``
shows; an updating HTML line when ipywidgets is missing) or with stderr on a
terminal (the rich bar of ``drumfire run``). ``True`` always shows it (off a
terminal and outside a kernel: one summary line on stderr at the end);
``False`` never does.

The display is fed by the engine's periodic tick (every 50 ms), never per
row, and redraws at most ten times a second (:class:`Throttle`), so its cost
does not grow with the request rate. The last update, with the run's
figures, is drawn when the run ends.
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import UsageError
from ._progress import Progress, format_summary
from ._result import Stats

if TYPE_CHECKING:
    from rich.console import Console

# rich and html are imported where a display is drawn: the API without progress= (and
# the CLI, which imports this module) does without them at start-up.

__all__ = [
    "INTERVAL",
    "Display",
    "Throttle",
    "chain",
    "close_display",
    "in_kernel",
    "open_display",
    "progress_option",
]

#: Seconds between two redraws, at least (ten a second at most).
INTERVAL = 0.1


def progress_option(kwargs: dict[str, Any]) -> bool | None:
    """Take ``progress`` out of ``kwargs``; None, True or False."""
    progress = kwargs.pop("progress", None)
    if progress is not None and not isinstance(progress, bool):
        raise UsageError(f"progress= takes True, False or None (automatic), not {progress!r}")
    return progress


def in_kernel() -> bool:
    """True when this code runs in a Jupyter (IPython) kernel."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has it already
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half imported: not a kernel we know
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Throttle:
    """True at most once every ``interval`` seconds of ``clock`` (the first call: True)."""

    def __init__(self, clock: Callable[[], float], interval: float = INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self._last: float | None = None

    def ready(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class Display(Protocol):
    def update(self, stats: Stats) -> None: ...

    def close(self, stats: Stats) -> None: ...


def _line(progress: Progress, stats: Stats, now: float) -> str:
    """The one-line state of the run, as ``drumfire run`` shows it, in plain text."""
    return progress.render(stats, now).plain.strip()


def _html_line(line: str) -> str:
    """``line`` as HTML, its double spaces between figures kept (HTML would fold them)."""
    import html

    return html.escape(line).replace("  ", " &nbsp;")


def _final(stats: Stats) -> list[str]:
    """The run's figures: rows, time and rate; ok and failures; latency."""
    lines = format_summary(stats).splitlines()[:3]
    return [line.strip() for line in lines]


class Widget:
    """An ipywidgets bar and a line of text under it, as ``tqdm.notebook`` draws."""

    def __init__(self, clock: Callable[[], float], display: Callable[[Any], Any]) -> None:
        from ipywidgets import HTML, HBox, IntProgress, Layout
        from rich.console import Console

        self.clock = clock
        self.throttle = Throttle(clock)
        self._text = Progress(Console(file=io.StringIO()), clock)
        self.bar = IntProgress(min=0, max=1, value=0, bar_style="info")
        self.label = HTML(value="starting…")
        self.box = HBox(
            [self.bar, self.label], layout=Layout(display="inline-flex", flex_flow="row wrap")
        )
        display(self.box)

    def update(self, stats: Stats) -> None:
        if self.throttle.ready():
            self._draw(stats)

    def _draw(self, stats: Stats) -> None:
        done = stats.done + stats.skipped
        if stats.total:
            self.bar.max = max(stats.total, 1)
            self.bar.value = min(done, stats.total)
        else:  # no total known: a full bar, the count in the text
            self.bar.max, self.bar.value = 1, 1
        self.label.value = _html_line(_line(self._text, stats, self.clock()))

    def close(self, stats: Stats) -> None:
        self._draw(stats)
        if stats.total is None:
            self.bar.max = self.bar.value = 1
        self.bar.bar_style = "danger" if stats.stopped or stats.unreachable else "success"
        import html

        self.label.value = "<br>".join(html.escape(line) for line in _final(stats))


class _HTMLLine:
    """Without ipywidgets: one HTML output, updated in place (``display_id``)."""

    def __init__(self, clock: Callable[[], float], display: Callable[..., Any]) -> None:
        # By module object: IPython 8 does not re-export HTML for mypy, IPython 9 does.
        ipython_display = importlib.import_module("IPython.display")
        from rich.console import Console

        self.clock = clock
        self.throttle = Throttle(clock)
        html_type: Any = ipython_display.HTML
        self._html: Callable[[str], Any] = html_type
        self._text = Progress(Console(file=io.StringIO()), clock)
        self.handle = display(self._html("<code>drumfire: starting…</code>"), display_id=True)

    def update(self, stats: Stats) -> None:
        if self.throttle.ready():
            line = _html_line(_line(self._text, stats, self.clock()))
            self.handle.update(self._html(f"<code>{line}</code>"))

    def close(self, stats: Stats) -> None:
        import html

        lines = "<br>".join(html.escape(line) for line in _final(stats))
        self.handle.update(self._html(f"<code>{lines}</code>"))


class Terminal:
    """The live bar of ``drumfire run`` on stderr; the run's figures at the end."""

    def __init__(self, clock: Callable[[], float], console: Console | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(self.console, clock, interval=INTERVAL)
        self.progress.__enter__()

    def update(self, stats: Stats) -> None:
        self.progress.update(stats)  # throttled there, to ``INTERVAL``

    def close(self, stats: Stats) -> None:
        self.progress.__exit__(None, None, None)
        self.console.print("\n".join(_final(stats)), markup=False, highlight=False)


def open_display(progress: bool | None, clock: Callable[[], float]) -> Display | None:
    """The display ``progress=`` asks for here, shown now; None for none."""
    if progress is False:
        return None
    if in_kernel():
        from IPython import display as ipython_display

        display: Callable[..., Any] = ipython_display.display
        try:
            return Widget(clock, display)
        except ImportError:  # no ipywidgets: the text fallback
            return _HTMLLine(clock, display)
    if progress or stderr_is_terminal():
        return Terminal(clock)
    return None


def close_display(display: Display | None, stats: Stats) -> None:
    """Draw the run's figures; a display that fails now is left as it is."""
    if display is None:
        return
    try:
        display.close(stats)
    except Exception:
        pass  # the results and their figures matter more than the picture


def chain(first: Callable[[Stats], None] | None, display: Display) -> Callable[[Stats], None]:
    """An ``on_tick`` that calls ``first`` (if any), then updates ``display``.

    A display that fails (a closed front end, a widget gone) is dropped for
    the rest of the run rather than failing a run of a million rows.
    """
    broken: list[BaseException] = []

    def tick(stats: Stats) -> None:
        if first is not None:
            first(stats)
        if not broken:
            try:
                display.update(stats)
            except Exception as exc:
                broken.append(exc)

    return tick

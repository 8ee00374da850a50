"""The live progress bar and the end-of-run summary (stderr, via rich).

The engine calls :meth:`Progress.update` from its periodic tick; the display
redraws at most every ``interval`` seconds, so its cost does not grow with
the request rate.
"""

from __future__ import annotations

import math
import os
import shlex
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._result import Stats
from ._text import counted

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live
    from rich.progress_bar import ProgressBar
    from rich.text import Text

# rich is imported where it draws, not with this module: a run that shows nothing
# (--quiet, or no terminal) does without it (a fifth of drumfire's start-up).

__all__ = [
    "Progress",
    "RateEstimator",
    "draws_live",
    "format_deaths",
    "format_summary",
    "format_unreachable",
    "rerun_command",
]

#: Failure reasons the summary gives an example message for, most frequent first.
EXAMPLES_SHOWN = 5


def format_duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def format_rate(rate: float) -> str:
    """Rows per second as the bar and the summary say it: whole above 10, else with the
    figures that count (a slow server's "0.5 rows/s" read "0 rows/s" next to its rows)."""
    if rate >= 9.95 or rate <= 0:
        return f"{rate:,.0f}"
    if rate >= 0.0995:
        return f"{rate:.1f}"
    return f"{rate:.2g}"


def format_wall(seconds: float) -> str:
    """A run's duration for the summary: seconds to 2 decimals, milliseconds below 1 s.

    A short run said "in 0.00 s" next to its rate; "in 7 ms" says how short.
    """
    ms = round(seconds * 1000)
    if ms >= 1000:
        return f"{seconds:.2f} s"
    return f"{ms} ms" if ms else "under 1 ms"


def held_text(held: Sequence[tuple[str, float, str]]) -> str:
    """What the rows wait for while an origin is held, the longest wait first.

    ``waiting for quota, 12 s (api.example.com)`` or ``held by Retry-After, 20 s
    (host)``, and ``+N hosts`` when more are held: a run that waits says so, where
    the ETA alone said ``stalled``.
    """
    host, left, why = held[0]
    seconds = max(1, math.ceil(left))
    what = "waiting for quota" if why == "quota" else f"held by {why}"
    more = f" +{counted(len(held) - 1, 'host')}" if len(held) > 1 else ""
    return f"{what}, {format_duration(seconds)} ({host}){more}"


def draws_live(console: Console) -> bool:
    """Whether the live bar is drawn on ``console``: a terminal that is one (``isatty``),
    as the Python API and ``drumfire bench`` decide.

    Not rich's ``is_terminal`` alone: ``FORCE_COLOR`` (which CI set for colours) or
    ``TTY_COMPATIBLE=1`` make it true for a log file, and the bar was redrawn into the
    log ten times a second, cursor codes and all. ``TTY_INTERACTIVE`` (rich's switch for
    animations) decides when set: 0 never, 1 always.
    """
    if not console.is_interactive:  # not a terminal, a dumb one, or TTY_INTERACTIVE=0
        return False
    if os.environ.get("TTY_INTERACTIVE") == "1":
        return True
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # closed
        return False


class RateEstimator:
    """Rows per second over a recent window, and an ETA only once that rate is known.

    The rate is measured over the last ``window`` seconds, not since the start:
    a run's first seconds (connecting, the first round trips, the adaptive
    concurrency ramping up) say little about its pace later. Against a slow
    server the window is longer: ``latencies`` typical latencies (by Little's
    law, rows in flight over rows per second), so that answers that come in
    bursts a round trip apart are averaged over several round trips; at most
    ``max_window`` seconds. The time before the first row is done (connecting,
    the first round trip) is not part of it.

    The rate is **known**, and an ETA shown, once

    * ``min_rows`` rows have been done in the window,
    * rows have been done for ``min_span`` seconds and two typical latencies,
    * and the pace is steady: the rate over the newer half of the window is
      within ``tolerance`` (25 %) of the rate over all of it. While the
      concurrency still ramps up (slow start doubles it every round trip), the
      newer half is much faster, and the ETA says "estimating" instead of the
      hours that the first seconds' pace would promise.

    A pace that never settles is taken as known after three windows of rows
    done anyway: the recent window is then the best estimate there is. Once
    known, the rate stays known (no flicker back to "estimating") and the
    window keeps its length; with no row done in the whole window, the ETA is
    None (stalled). Pure: the caller passes the time (an injected clock).
    """

    def __init__(
        self,
        window: float = 5.0,
        *,
        min_rows: int = 20,
        min_span: float = 1.0,
        tolerance: float = 0.25,
        latencies: float = 4.0,
        max_window: float = 60.0,
    ) -> None:
        self.window = window
        self.min_rows = min_rows
        self.min_span = min_span
        self.tolerance = tolerance
        self.latencies = latencies
        self.max_window = max_window
        self.known = False
        self.rate = 0.0
        self._samples: deque[tuple[float, int]] = deque()
        self._since: float | None = None  # the last moment with no row done yet
        self._latency = 0.0

    @property
    def kept(self) -> int:
        """How many samples the window holds now (bounded: see :meth:`span`)."""
        return len(self._samples)

    def span(self) -> float:
        """The window's length now (longer for a slow server)."""
        return min(max(self.window, self.latencies * self._latency), self.max_window)

    def observe(self, now: float, done: int, inflight: int = 0) -> float:
        """Record that ``done`` rows were done at ``now``; the recent rate (rows/s)."""
        samples = self._samples
        if done == 0 or self._since is None:
            samples.clear()
            self._since = now
        samples.append((now, done))
        window = self.span()
        while len(samples) > 2 and now - samples[1][0] >= window:
            samples.popleft()
        t0, d0 = samples[0]
        self.rate = (done - d0) / (now - t0) if now > t0 else 0.0
        if not self.known and done > 0:
            if self.rate > 0 and inflight > 0:
                # Little's law: in flight = rate x latency. Learned until the rate is
                # known, then kept (in a stall the rate falls and this would soar).
                self._latency = inflight / self.rate
            self.known = self._settled(now, done)
        return self.rate

    def _settled(self, now: float, done: int) -> bool:
        assert self._since is not None
        if now - self._since >= 3 * self.span():
            return True
        t0, d0 = self._samples[0]
        if done - d0 < self.min_rows or now - t0 < max(self.min_span, 2 * self._latency):
            return False
        middle = (t0 + now) / 2
        tm, dm = min(self._samples, key=lambda s: abs(s[0] - middle))
        if not t0 < tm < now or self.rate <= 0:
            return False
        newer = (done - dm) / (now - tm)
        return abs(newer / self.rate - 1.0) <= self.tolerance

    def eta(self, remaining: int) -> float | None:
        """Seconds until ``remaining`` more rows are done; None until known, or stalled."""
        if not self.known or self.rate <= 0:
            return None
        return remaining / self.rate


class Progress:
    """A bar, done/total, rows/s over a recent window, ETA, failures so far, concurrency."""

    #: Widest bar drawn, in cells (narrower when the line needs the room).
    BAR_WIDTH = 30

    def __init__(
        self, console: Console, clock: Callable[[], float], interval: float = 0.1, label: str = ""
    ) -> None:
        self.console = console
        self.clock = clock
        self.interval = interval
        self.label = label
        self._live: Live | None = None
        self._last = -1e9
        self.estimator = RateEstimator()
        #: Rows the output already held (--resume): done/total starts there.
        self.resumed = 0

    @property
    def live(self) -> bool:
        """Whether the live display is on (inside ``with``)."""
        return self._live is not None

    def __enter__(self) -> Progress:
        from rich.live import Live
        from rich.text import Text

        self._live = Live(Text(""), console=self.console, auto_refresh=False, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def rate(self, now: float, done: int, inflight: int = 0) -> float:
        """Rows per second over the recent window (see :class:`RateEstimator`)."""
        return self.estimator.observe(now, done, inflight)

    def _done(self, stats: Stats) -> int:
        # Rows already in the output count as done from the start (--resume);
        # the rate counts only the rows of this run.
        done = stats.done + max(stats.skipped, self.resumed)
        return min(done, stats.total) if stats.total else done

    def render(self, stats: Stats, now: float) -> Text:
        """The line of figures (without the bar): also the notebook's text."""
        from rich.text import Text

        rate = self.rate(now, stats.done, stats.concurrency)
        done = self._done(stats)
        line = Text()
        if self.label:
            line.append(f"{self.label} ", style="bold")
        if stats.total:
            pct = 100.0 * done / stats.total if stats.total else 0.0
            line.append(f"{done:,}/{stats.total:,} ({pct:.1f}%)", style="bold")
        else:
            line.append(counted(done, "row"), style="bold")
        line.append(f"  {format_rate(rate)} rows/s")
        if stats.total and done < stats.total:
            eta = self.estimator.eta(stats.total - done)
            if eta is not None:
                line.append(f"  ETA {format_duration(eta)}")
            elif self.estimator.known:
                line.append("  ETA stalled", style="yellow")
            else:
                line.append("  ETA estimating", style="dim")
        if stats.limit:
            line.append(f"  in flight {stats.concurrency}/{stats.limit}")
        else:  # no limit known (worker processes): what is out
            line.append(f"  in flight {stats.concurrency}")
        if stats.held:
            line.append(f"  {held_text(stats.held)}", style="yellow")
        if stats.retrying:
            # Rows sleeping for their Retry-After or back-off: with nothing else to do,
            # the rate falls to 0 and the ETA says stalled, which this explains.
            waits = counted(stats.retrying, "row waits", "rows wait")
            line.append(f"  {waits} to retry", style="yellow")
        if stats.reasons:
            parts = ", ".join(f"{k} {v:,}" for k, v in stats.reasons.most_common(4))
            line.append(f"  failed {stats.failed:,}: {parts}", style="yellow")
        if stats.stopped:
            line.append("  stopping…", style="red")
        return line

    def bar(self, stats: Stats, now: float, width: int) -> ProgressBar:
        """The bar: filled to done/total; without a total, a pulse."""
        from rich.progress_bar import ProgressBar

        if stats.total:
            return ProgressBar(total=stats.total, completed=self._done(stats), width=width)
        return ProgressBar(total=None, pulse=True, width=width, animation_time=now)

    def renderable(self, stats: Stats, now: float) -> RenderableType:
        """The bar and the line, side by side (the line wraps under a narrow terminal)."""
        from rich.table import Table

        line = self.render(stats, now)
        room = self.console.width - line.cell_len - 1
        width = max(10, min(self.BAR_WIDTH, room))
        if room < 10:  # too narrow for both on one line: the bar above the line
            rows = Table.grid()
            rows.add_row(self.bar(stats, now, min(self.BAR_WIDTH, self.console.width)))
            rows.add_row(line)
            return rows
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=width, no_wrap=True)
        grid.add_column()
        grid.add_row(self.bar(stats, now, width), line)
        return grid

    def update(self, stats: Stats) -> None:
        now = self.clock()
        if now - self._last < self.interval or self._live is None:
            return
        self._last = now
        self._live.update(self.renderable(stats, now), refresh=True)


#: What the rows waited for, as the summary says it (see Stats.note_tick).
_WAITED_FOR = {
    "Retry-After": "an origin held by Retry-After",
    "quota": "a quota's reset",
    "retry": "retries' Retry-After or back-off",
}


def format_summary(stats: Stats, output: str | None = None) -> str:
    """The end-of-run summary as plain text lines."""
    s = stats.summary()
    lat = s["latency_ms"]
    stopped = ""
    if s["stopped"]:
        # How much of the input is left: the rows done alone did not say it.
        left = s["not_done"]
        stopped = " (stopped early" + (
            f": {counted(left, 'row')} of {stats.total:,} not done)" if left is not None else ")"
        )
    lines = [
        f"drumfire: {counted(s['rows'], 'row')} in {format_wall(s['wall_s'])} — "
        f"{format_rate(stats.rate)} rows/s{stopped}",
        f"  ok {s['ok']:,} · failed {s['failed']:,}"
        + (
            " (" + ", ".join(f"{k}: {v:,}" for k, v in s["failures"].items()) + ")"
            if s["failures"]
            else ""
        )
        + f" · requests sent {s['requests']:,}"
        # One per row attempt; a request re-sent because its kept-alive connection
        # was found closed before any byte of the answer is said apart.
        + (
            f" (+{s['resent']:,} re-sent: kept-alive connection found closed)"
            if s["resent"]
            else ""
        ),
    ]
    if s["requests"] and not s["status"]:
        # No answer at all (refused, reset, timed out): the times are the failures', and
        # "p50 0.3 ms" of refused connections read as a fast server (as bench says it).
        lines.append(
            f"  latency none: no request was answered (the failures took p50 {lat['p50']:.1f}"
            f" ms · max {lat['max']:.1f} ms)"
        )
    elif s["requests"]:  # with none (a --resume with nothing left), no latency to show
        lines.append(
            f"  latency p50 {lat['p50']:.1f} ms · p90 {lat['p90']:.1f} ms · "
            f"p99 {lat['p99']:.1f} ms · max {lat['max']:.1f} ms"
        )
    examples = list(s["failure_examples"].items())[:EXAMPLES_SHOWN]
    if examples:
        from rich.markup import escape

        # The detail behind each short reason, with a hint at the usual cause.
        lines.append("  why (one example per reason, most frequent first):")
        # (escaped: the summary is printed as rich markup, the message is the server's)
        lines.extend(
            f"    {reason} ×{s['failures'][reason]:,}: {escape(example)}"
            for reason, example in examples
        )
    if s["waited_s"]:
        # The server's pauses are in the run's time, and so in rows/s: said, so that a
        # fast server that asked for a pause does not look slow.
        why = [_WAITED_FOR[w] for w in sorted(stats.waited_for) if w in _WAITED_FOR]
        lines.append(
            f"  waited {s['waited_s']:,.1f} s with no request in flight, for "
            + (" and ".join(why) or "the server")
            + ": in the time and rows/s above"
        )
    if s["pipelined"]:
        lines.append(
            f"  pipelined: {counted(s['pipelined'], 'request')} went behind others on a busy "
            "connection (CPU was the limit: drumfire's, or the machine's with a local server)"
        )
    if s["skipped"]:
        was = counted(s["skipped"], "row was", "rows were")
        lines.append(f"  resumed: {was} already in the output")
    if s["duplicate_ids"]:
        lines.append(
            f"  warning: {counted(s['duplicate_ids'], 'row repeats', 'rows repeat')} an id "
            "seen earlier in the input"
        )
        lines.append(
            "    rows that share an id cannot be told apart in the output; --resume sends all "
            "the rows of such an id again unless the output has all (an input read twice: a "
            "file, not stdin; an empty id is its row's number): give each row its own id (--id)"
        )
    if output:
        lines.append(f"  results: {output}")
    return "\n".join(lines)


def rerun_command(argv: Sequence[str], add: str) -> str:
    """The ``drumfire run`` command in ``argv`` as a shell line, with option ``add``.

    ``--overwrite`` is left out (the point is to keep what the output holds),
    and so is ``add`` when the command already has it. Without a ``run``
    command in ``argv`` (``main()`` called in-process), a sentence instead.
    """
    args = list(argv)
    if "run" not in args:
        return f"the same command with {add}"
    end = args.index("--") if "--" in args else len(args)  # after it: arguments, not options
    kept = [a for a in args[:end] if a != "--overwrite"]
    name = add.split("=", 1)[0]
    if not any(a == name or a.startswith(name + "=") for a in kept):
        kept.append(add)
    return "drumfire " + shlex.join(kept + args[end:])


def format_deaths(deaths: list[tuple[str, int]], stopped: bool) -> str:
    """The one line that says which worker processes died, and what became of their rows.

    ``deaths``: for each dead worker, what it was and how it ended
    (``worker process 1 of 2 (pid 7) was killed by SIGKILL``), and how many of its
    rows were recorded as cancelled; ``stopped``: none was left, so the rest of
    the input was not sent.
    """
    named = [who for who, _ in deaths]
    who = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    they = "it" if len(deaths) == 1 else "they"
    held = sum(n for _, n in deaths)
    if held:
        rows = (
            f"the {counted(held, 'row')} {they} held without an answer "
            f"{'is' if held == 1 else 'are'} recorded as cancelled (any {they} had sent "
            "may have reached the server), which --resume sends again"
        )
    else:
        rows = f"{they} held no row without an answer"
    if stopped:
        rows += "; no worker was left, so the run stopped: the rows not sent are left for --resume"
    return f"drumfire: error: {who}; {rows}"


def format_unreachable(stats: Stats) -> str | None:
    """The one line that says the run stopped because its target cannot be reached."""
    if stats.unreachable is None:
        return None
    return (
        f"drumfire: error: target unreachable: {stats.unreachable}; stopped, the rows not "
        "sent are left for --resume (--keep-going sends every row regardless)"
    )

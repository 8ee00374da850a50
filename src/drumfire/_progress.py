"""The live progress line and the end-of-run summary (stderr, via rich).

The engine calls :meth:`Progress.update` from its periodic tick; the display
redraws at most every ``interval`` seconds, so its cost does not grow with
the request rate.
"""

from __future__ import annotations

import shlex
from collections import deque
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from ._result import Stats

__all__ = ["Progress", "format_summary", "format_unreachable", "rerun_command"]

#: Failure reasons the summary gives an example message for, most frequent first.
EXAMPLES_SHOWN = 5


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """done/total, rows/s over the last few seconds, ETA, failures by reason, concurrency."""

    def __init__(
        self, console: Console, clock: Callable[[], float], interval: float = 0.1, label: str = ""
    ) -> None:
        self.console = console
        self.clock = clock
        self.interval = interval
        self.label = label
        self._live: Live | None = None
        self._last = -1e9
        self._window: deque[tuple[float, int]] = deque()
        #: Rows the output already held (--resume): done/total starts there.
        self.resumed = 0

    def __enter__(self) -> Progress:
        self._live = Live(Text(""), console=self.console, auto_refresh=False, transient=True)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def rate(self, now: float, done: int) -> float:
        """Rows per second over roughly the last five seconds."""
        window = self._window
        window.append((now, done))
        while len(window) > 2 and now - window[0][0] > 5.0:
            window.popleft()
        t0, d0 = window[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0

    def render(self, stats: Stats, now: float) -> Text:
        rate = self.rate(now, stats.done)
        # Rows already in the output count as done from the start (--resume);
        # the rate counts only the rows of this run.
        done = stats.done + max(stats.skipped, self.resumed)
        if stats.total:
            done = min(done, stats.total)
        line = Text()
        if self.label:
            line.append(f"{self.label} ", style="bold")
        if stats.total:
            pct = 100.0 * done / stats.total if stats.total else 0.0
            line.append(f"{done:,}/{stats.total:,} ({pct:.1f}%)", style="bold")
        else:
            line.append(f"{done:,} rows", style="bold")
        line.append(f"  {rate:,.0f} rows/s")
        if stats.total and rate > 0 and done < stats.total:
            line.append(f"  ETA {_duration((stats.total - done) / rate)}")
        line.append(f"  in flight {stats.concurrency}/{stats.limit}")
        if stats.reasons:
            parts = ", ".join(f"{k} {v:,}" for k, v in stats.reasons.most_common(4))
            line.append(f"  failed: {parts}", style="yellow")
        if stats.stopped:
            line.append("  stopping…", style="red")
        return line

    def update(self, stats: Stats) -> None:
        now = self.clock()
        if now - self._last < self.interval or self._live is None:
            return
        self._last = now
        self._live.update(self.render(stats, now), refresh=True)


def format_summary(stats: Stats, output: str | None = None) -> str:
    """The end-of-run summary as plain text lines."""
    s = stats.summary()
    lat = s["latency_ms"]
    lines = [
        f"drumfire: {s['rows']:,} rows in {s['wall_s']:.2f} s — {s['rows_per_s']:,.0f} rows/s"
        + (" (stopped early)" if s["stopped"] else ""),
        f"  ok {s['ok']:,} · failed {s['failed']:,}"
        + (
            " (" + ", ".join(f"{k}: {v:,}" for k, v in s["failures"].items()) + ")"
            if s["failures"]
            else ""
        )
        + f" · requests sent {s['requests']:,}",
        f"  latency p50 {lat['p50']:.1f} ms · p90 {lat['p90']:.1f} ms · "
        f"p99 {lat['p99']:.1f} ms · max {lat['max']:.1f} ms",
    ]
    examples = list(s["failure_examples"].items())[:EXAMPLES_SHOWN]
    if examples:
        # The detail behind each short reason, with a hint at the usual cause.
        lines.append("  why (one example per reason, most frequent first):")
        # (escaped: the summary is printed as rich markup, the message is the server's)
        lines.extend(
            f"    {reason} ×{s['failures'][reason]:,}: {escape(example)}"
            for reason, example in examples
        )
    if s["pipelined"]:
        lines.append(
            f"  pipelined: {s['pipelined']:,} requests went behind others on a busy "
            "connection (CPU was the limit: drumfire's, or the machine's with a local server)"
        )
    if s["skipped"]:
        lines.append(f"  resumed: {s['skipped']:,} rows were already in the output")
    if s["duplicate_ids"]:
        lines.append(
            f"  warning: {s['duplicate_ids']:,} rows repeat an id seen earlier in the input"
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
    kept = [a for a in args if a != "--overwrite"]
    name = add.split("=", 1)[0]
    if not any(a == name or a.startswith(name + "=") for a in kept):
        kept.append(add)
    return "drumfire " + shlex.join(kept)


def format_unreachable(stats: Stats) -> str | None:
    """The one line that says the run stopped because its target cannot be reached."""
    if stats.unreachable is None:
        return None
    return (
        f"drumfire: error: target unreachable: {stats.unreachable}; stopped, the rows not "
        "sent are left for --resume (--keep-going sends every row regardless)"
    )

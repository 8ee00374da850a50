"""The live view while a benchmark runs (stderr, redrawn a few times a second).

It reads the runner's counters from the periodic tick; nothing is computed
per request for it. Latency figures are those of the last complete second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ._report import target_of
from ._runner import Runner

__all__ = ["LiveView"]


class LiveView:
    def __init__(
        self,
        clock: Callable[[], float],
        settings: dict[str, Any],
        console: Console | None = None,
        interval: float = 0.25,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.console = console or Console(stderr=True)
        self.interval = interval
        self._live: Live | None = None
        self._last = -1e9

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, auto_refresh=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, runner: Runner) -> None:
        now = self.clock()
        if self._live is None or now - self._last < self.interval:
            return
        self._last = now
        self._live.update(self.render(runner, now), refresh=True)

    def render(self, runner: Runner, now: float) -> Text:
        rec = runner.recorder
        text = Text()
        target = target_of(self.settings)
        model = (
            f"open {self.settings.get('rate')}" if runner.open_model else "closed"
        ) + f", {runner.concurrency} conn."
        text.append("drumfire bench ", style="bold")
        text.append(f"{target}  ({model})\n")
        if now < runner.measure_start:
            text.append(f"warming up… {runner.measure_start - now:.1f} s left", style="yellow")
            return text
        elapsed = now - runner.measure_start
        total = runner.end - runner.measure_start
        if runner.limit is not None:
            done = rec.requests / runner.limit
            where = f"{rec.requests:,}/{runner.limit:,} requests"
        else:
            done = elapsed / total if total > 0 else 0.0
            where = f"{elapsed:,.1f}/{total:,.0f} s"
        done = min(max(done, 0.0), 1.0)
        bar = "█" * int(done * 24) + "░" * (24 - int(done * 24))
        text.append(f"{bar} {where}   ")
        text.append(f"{rec.requests:,} requests\n", style="bold")
        last = rec.timeline[-1] if rec.timeline else None
        if last is not None:
            text.append(f"{last.rps:,.0f} req/s", style="bold cyan")
            text.append(
                f"   latency p50 {last.p50_ms:.2f}  p90 {last.p90_ms:.2f}  "
                f"p99 {last.p99_ms:.2f}  max {last.max_ms:.2f} ms"
            )
            if rec.answered:
                text.append(f"   (all: p99 {rec.percentile_ms(99):.2f} ms)")
            text.append("\n")
        text.append(f"in flight {runner.inflight}")
        if runner.open_model:
            text.append(f"   queued {runner.backlog:,}")
        errors = sum(rec.errors.values())
        bad = sum(v for k, v in rec.status.items() if k >= 400)
        if errors or bad:
            parts = [f"{k} {v:,}" for k, v in sorted(rec.errors.items(), key=lambda kv: -kv[1])]
            parts += [f"HTTP {k} {v:,}" for k, v in sorted(rec.status.items()) if k >= 400]
            text.append("   errors: " + ", ".join(parts[:5]), style="red")
        if runner.resent:
            text.append(f"   re-sent {runner.resent:,}", style="yellow")
        if runner.stopped:
            text.append("   stopping…", style="red")
        return text

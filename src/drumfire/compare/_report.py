"""The comparison's results: per-strategy figures, the terminal table, JSON and HTML."""

from __future__ import annotations

import html
import os
import platform
import sys
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._text import counted

__all__ = ["CompareReport", "StrategyReport", "machine_info"]


@dataclass
class StrategyReport:
    """How one strategy did. Figures are None for a strategy that was skipped or failed."""

    name: str
    description: str
    concurrency: int
    rows: int = 0
    ok: int = 0
    failed: int = 0
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    processes: int | None = None
    results_match: bool | None = None
    mismatches: int = 0
    example_mismatch: dict[str, Any] | None = None
    skipped: str | None = None
    error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    runs_rps: list[float] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.wall_s is not None

    @property
    def rps(self) -> float | None:
        if self.wall_s is None:
            return None
        return self.rows / max(self.wall_s, 1e-9)

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_s is None or not self.rows:
            return None
        return self.cpu_s * 1000.0 / self.rows

    @property
    def cpu_us_per_request(self) -> float | None:
        """Client CPU per request in microseconds, the unit of docs/benchmarks.md."""
        ms = self.cpu_ms_per_request
        return None if ms is None else ms * 1000.0

    def to_dict(self) -> dict[str, Any]:
        def r(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "name": self.name,
            "description": self.description,
            "concurrency": self.concurrency,
            "rps": r(self.rps, 1),
            "wall_s": r(self.wall_s, 3),
            "cpu_s": r(self.cpu_s, 3),
            "cpu_ms_per_request": r(self.cpu_ms_per_request, 4),
            "cpu_us_per_request": r(self.cpu_us_per_request, 1),
            "peak_rss_mb": r(self.peak_rss_mb, 1),
            "processes": self.processes,
            "runs_rps": [round(x, 1) for x in self.runs_rps],
            "rows": self.rows,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": self.statuses,
            "results_match": self.results_match,
            "mismatches": self.mismatches,
            "example_mismatch": self.example_mismatch,
            "skipped": self.skipped,
            "error": self.error,
        }


def machine_info() -> dict[str, Any]:
    """Where the comparison ran: CPUs, CPU model, Python, OS."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):  # pragma: no cover - not available
        load = None
    return {
        "cpus": cpus,
        "load_average": load,
        "cpu_model": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(terse=True),
        "executable": sys.executable,
    }


@dataclass
class CompareReport:
    """The whole comparison: what ran, on what, and how each strategy did."""

    url: str
    extract: list[tuple[str, str]]
    rows: int
    concurrency: int
    reference: str | None
    strategies: list[StrategyReport]
    machine: dict[str, Any] = field(default_factory=machine_info)
    input: str | None = None
    skipped_rows: int = 0
    repeat: int = 1
    stopped: bool = False  # interrupted: the strategies not run are skipped so

    @property
    def ran(self) -> list[StrategyReport]:
        return [s for s in self.strategies if s.ran]

    @property
    def fastest(self) -> str | None:
        ran = self.ran
        if not ran:
            return None
        return max(ran, key=lambda s: s.rps or 0.0).name

    @property
    def all_match(self) -> bool:
        return all(s.results_match for s in self.ran)

    @property
    def mismatched(self) -> list[str]:
        return [s.name for s in self.ran if not s.results_match]

    def get(self, name: str) -> StrategyReport:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "url": self.url,
            "extract": {name: expr for name, expr in self.extract},
            "rows": self.rows,
            "skipped_rows": self.skipped_rows,
            "concurrency": self.concurrency,
            "repeat": self.repeat,
            "stopped": self.stopped,
            "reference": self.reference,
            "fastest": self.fastest,
            "all_match": self.all_match,
            "mismatched": self.mismatched,
            "machine": self.machine,
            "strategies": [s.to_dict() for s in self.strategies],
        }

    # -- terminal ----------------------------------------------------------------------------

    def table(self, width: int = 120) -> Table:
        """The comparison as a rich table; the bar and ratio columns only when ``width`` allows."""
        best = max((s.rps or 0.0 for s in self.ran), default=0.0)
        ref = self.get(self.reference) if self.reference else None
        ref_rps = ref.rps if ref is not None else None
        show_bar = width >= 100
        show_ratio = bool(ref_rps) and width >= 90
        title = (
            f"{counted(self.rows, 'request')}, concurrency {self.concurrency}, "
            f"{self.machine['cpus']} CPUs, {self.machine['python']}"
        )
        if self.repeat > 1:
            title += f"; median of {self.repeat} runs"
        table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
        table.add_column("strategy", no_wrap=True)
        table.add_column("c", justify="right")
        table.add_column("req/s", justify="right", no_wrap=True)
        if show_bar:
            table.add_column("", no_wrap=True, width=20)
        table.add_column("wall s", justify="right")
        table.add_column("CPU µs/req", justify="right")
        table.add_column("MB", justify="right")
        table.add_column("failed", justify="right")
        table.add_column("same", justify="center")
        if show_ratio:
            table.add_column(f"vs {self.reference}", justify="right", no_wrap=True)
        for s in self.strategies:
            if not s.ran:
                # Why is said under the table, where a long reason cannot widen the columns.
                status = Text(
                    "skipped" if s.skipped else "error", style="yellow" if s.skipped else "red"
                )
                blanks = len(table.columns) - 3
                table.add_row(s.name, "", status, *([""] * blanks))
                continue
            rps = s.rps or 0.0
            match = Text("yes", style="green") if s.results_match else Text("NO", style="bold red")
            cells: list[str | Text] = [
                Text(s.name, style="bold" if s.name == "drumfire" else ""),
                str(s.concurrency),
                f"{rps:,.0f}",
            ]
            if show_bar:
                n = round(20 * rps / best) if best else 0
                cells.append(Text("█" * n, style="green" if s.name == self.fastest else "cyan"))
            cells += [
                f"{s.wall_s:.2f}",
                f"{s.cpu_us_per_request:,.1f}" if s.cpu_us_per_request is not None else "",
                f"{s.peak_rss_mb:.0f}" if s.peak_rss_mb is not None else "",
                f"{s.failed:,}",
                match,
            ]
            if show_ratio and ref_rps:
                cells.append(f"{rps / ref_rps:.2f}×")
            table.add_row(*cells)
        return table

    def print(self, console: Console | None = None) -> None:
        """Print the table and what to make of it."""
        console = console or Console()
        console.print(self.table(console.width))
        for line, style in self.verdict_lines():
            console.print(line, style=style or None, markup=False, highlight=False)

    def verdict(self) -> list[str]:
        """A few plain sentences: who was fastest, which strategies disagreed."""
        return [line for line, _ in self.verdict_lines()]

    def verdict_lines(self) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        if self.stopped:
            lines.append(("stopped: the strategies that ran to the end are in the table", "yellow"))
        fastest = self.fastest
        if fastest is not None:
            lines.append((f"fastest: {fastest}", "bold"))
        if self.reference:
            lines.append((f"results compared with: {self.reference}", ""))
        for s in self.strategies:
            if s.skipped:
                lines.append((f"{s.name}: skipped: {s.skipped}", "yellow"))
            elif s.error:
                lines.append((f"{s.name}: failed: {s.error}", "red"))
        for s in self.ran:
            if s.results_match:
                continue
            differ = f"{s.mismatches:,} of {counted(self.rows, 'row')} differ"
            lines.append((f"{s.name}: {differ}", "red"))
            if s.example_mismatch:
                ex = s.example_mismatch
                lines.append(
                    (
                        f"  e.g. row {ex['row']} (id {ex['id']}): {self.reference} got "
                        f"{ex['expected']}, {s.name} got {ex['got']}",
                        "",
                    )
                )
        if self.ran and self.all_match:
            lines.append(("every strategy produced the same rows", "green"))
        if self.ran and all(s.rows and s.failed == s.rows for s in self.ran):
            # A server that is down or a wrong --url: the table times failures, not answers.
            lines.append(
                (
                    "every row failed in every strategy (no usable answer): the speeds are "
                    "of failures, not of the server's answers; check the server and --url",
                    "yellow",
                )
            )
        if self.skipped_rows:
            were = counted(
                self.skipped_rows, "unreadable input row was", "unreadable input rows were"
            )
            lines.append((f"{were} left out", "yellow"))
        return lines

    # -- HTML --------------------------------------------------------------------------------

    def to_html(self) -> str:
        """A self-contained page (no scripts, no network): a bar chart of req/s and the table."""
        return _html(self)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:60em;padding:0 1em;color:#1d1d1f}
h1{font-size:1.5em;margin-bottom:.2em}.sub{color:#555;margin-top:0}
.chart{margin:1.5em 0}.bar-row{display:flex;align-items:center;margin:.25em 0}
.label{width:13em;text-align:right;padding-right:.8em;white-space:nowrap}
.track{flex:1;background:#f1f1f4;border-radius:3px}
.bar{background:#5b8def;height:1.5em;border-radius:3px;min-width:2px}
.bar.best{background:#2e9d5b}.bar.drumfire{outline:2px solid #1d1d1f}
.value{width:7em;padding-left:.6em;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;margin:1.5em 0;font-variant-numeric:tabular-nums}
th,td{padding:.35em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child,td.desc{text-align:left}td.desc{color:#555;font-size:.9em}
.no{color:#c0392b;font-weight:bold}.yes{color:#2e9d5b}.skip{color:#a67c00}
code{background:#f4f4f6;padding:.1em .3em;border-radius:3px}
"""


def _html(report: CompareReport) -> str:
    esc = html.escape
    ran = report.ran
    best = max((s.rps or 0.0 for s in ran), default=0.0)
    fastest = report.fastest
    bars: list[str] = []
    for s in sorted(ran, key=lambda s: s.rps or 0.0, reverse=True):
        rps = s.rps or 0.0
        pct = 100.0 * rps / best if best else 0.0
        classes = "bar" + (" best" if s.name == fastest else "")
        classes += " drumfire" if s.name == "drumfire" else ""
        bars.append(
            f'<div class="bar-row"><div class="label">{esc(s.name)}</div>'
            f'<div class="track"><div class="{classes}" style="width:{pct:.1f}%"></div></div>'
            f'<div class="value">{rps:,.0f} req/s</div></div>'
        )
    rows: list[str] = []
    for s in report.strategies:
        if not s.ran:
            why = s.skipped or s.error or "not run"
            css = "skip" if s.skipped else "no"
            rows.append(
                f"<tr><td>{esc(s.name)}</td><td colspan=8 class='desc {css}'>{esc(why)}</td>"
                f"<td class=desc>{esc(s.description)}</td></tr>"
            )
            continue
        match = "<span class=yes>yes</span>" if s.results_match else "<span class=no>NO</span>"
        cpu = s.cpu_us_per_request
        mem = s.peak_rss_mb
        rows.append(
            "<tr>"
            f"<td>{esc(s.name)}</td><td>{s.concurrency}</td><td>{(s.rps or 0):,.0f}</td>"
            f"<td>{s.wall_s:.2f}</td><td>{'' if cpu is None else f'{cpu:,.1f}'}</td>"
            f"<td>{'' if mem is None else f'{mem:.0f}'}</td><td>{s.processes or ''}</td>"
            f"<td>{s.failed:,}</td><td>{match}</td><td class=desc>{esc(s.description)}</td>"
            "</tr>"
        )
    notes = "".join(f"<li>{esc(line)}</li>" for line in report.verdict())
    m = report.machine
    best_of = f", median of {report.repeat} runs" if report.repeat > 1 else ""
    extract = " ".join(f"-e {esc(n)}={esc(e)}" for n, e in report.extract)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>drumfire compare</title><style>{_CSS}</style></head>
<body>
<h1>drumfire compare</h1>
<p class="sub">{counted(report.rows, 'request')}, concurrency {report.concurrency}{best_of};
{m["cpus"]} CPUs ({esc(str(m["cpu_model"]))}), {esc(str(m["python"]))},
{esc(str(m["platform"]))}</p>
<p><code>{esc(report.url)}</code> {extract}</p>
<h2>Requests per second</h2>
<div class="chart">{"".join(bars) or "<p>No strategy ran.</p>"}</div>
<h2>Table</h2>
<table><thead><tr><th>strategy</th><th>in flight</th><th>req/s</th><th>wall s</th>
<th>CPU µs/req</th><th>peak MB</th><th>processes</th><th>failed</th><th>same rows</th>
<th>how</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<ul>{notes}</ul>
<p class="sub">CPU µs/req: client CPU time (user + system, all its processes) divided by the
number of requests. Peak MB: the sum of the peak resident memory of every process the strategy
used (shared pages of forked processes are counted in each).</p>
</body></html>
"""

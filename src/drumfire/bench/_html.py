"""The HTML report: one self-contained page, inline CSS and SVG, no script, no network.

Charts are drawn here as SVG from the report's figures, so the page opens
anywhere (a file attachment, an air-gapped machine) and prints well. Hovering a
point shows its value through SVG ``<title>`` tooltips.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._report import BenchReport

__all__ = ["render_fragment", "render_page"]

BLUE = "#2563eb"
GREEN = "#059669"
AMBER = "#d97706"
RED = "#dc2626"
GREY = "#6b7280"
INK = "#111827"
GRID = "#e5e7eb"

Point = tuple[float, float]

#: Seconds of the timeline shorter than this (the run's last, partial one) are not
#: drawn: a few answers in a few milliseconds are no rate.
MIN_SPAN = 0.5


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_ms(ms: float) -> str:
    if ms == 0:
        return "0"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1000:.0f} µs"


def _fmt_num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def _tick_label(value: float, unit: str) -> str:
    if unit == "ms":
        if value == 0:
            return "0"
        if value < 1:
            return f"{value * 1000:g} µs"
        if value >= 1000:
            return f"{value / 1000:g} s"
        return f"{value:g} ms"
    if unit == "s":
        return f"{value:g} s"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 10))
        v += step
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    lo = max(lo, 1e-6)
    ticks: list[float] = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**k
            if lo <= v <= hi:
                ticks.append(v)
    if len(ticks) > 8:
        ticks = [t for t in ticks if str(t).lstrip("0.").startswith("1")]
    return ticks


class _Frame:
    """A plot area inside an SVG, with a value → pixel mapping on each axis."""

    def __init__(
        self,
        width: float,
        height: float,
        x: tuple[float, float],
        y: tuple[float, float],
        *,
        ylog: bool = False,
        left: float = 64,
        right: float = 18,
        top: float = 14,
        bottom: float = 40,
    ) -> None:
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = left, right, top, bottom
        self.x0, self.x1 = x
        self.y0, self.y1 = y
        self.ylog = ylog
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 * 10 if ylog else self.y0 + 1

    def px(self, x: float) -> float:
        span = self.width - self.left - self.right
        return self.left + (x - self.x0) / (self.x1 - self.x0) * span

    def py(self, y: float) -> float:
        span = self.height - self.top - self.bottom
        if self.ylog:
            y = max(y, self.y0)
            f = (math.log10(y) - math.log10(self.y0)) / (math.log10(self.y1) - math.log10(self.y0))
        else:
            f = (y - self.y0) / (self.y1 - self.y0)
        return self.height - self.bottom - f * span

    def grid(
        self,
        xticks: Sequence[tuple[float, str]],
        yticks: Sequence[tuple[float, str]],
        xlabel: str,
        ylabel: str,
    ) -> str:
        out = []
        bottom = self.height - self.bottom
        for y, label in yticks:
            p = self.py(y)
            out.append(
                f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{p:.1f}" '
                f'y2="{p:.1f}" stroke="{GRID}"/>'
                f'<text x="{self.left - 8}" y="{p + 4:.1f}" text-anchor="end" '
                f'class="tick">{_e(label)}</text>'
            )
        for x, label in xticks:
            p = self.px(x)
            out.append(
                f'<line x1="{p:.1f}" x2="{p:.1f}" y1="{self.top}" y2="{bottom}" '
                f'stroke="{GRID}"/>'
                f'<text x="{p:.1f}" y="{bottom + 17}" text-anchor="middle" '
                f'class="tick">{_e(label)}</text>'
            )
        out.append(
            f'<line x1="{self.left}" x2="{self.width - self.right}" y1="{bottom}" '
            f'y2="{bottom}" stroke="#9ca3af"/>'
        )
        out.append(
            f'<text x="{(self.left + self.width - self.right) / 2:.0f}" '
            f'y="{self.height - 4}" text-anchor="middle" class="axis">{_e(xlabel)}</text>'
        )
        mid = (self.top + bottom) / 2
        out.append(
            f'<text x="14" y="{mid:.0f}" text-anchor="middle" class="axis" '
            f'transform="rotate(-90 14 {mid:.0f})">{_e(ylabel)}</text>'
        )
        return "".join(out)

    def path(self, points: Sequence[Point], color: str, width: float = 2, dash: str = "") -> str:
        if not points:
            return ""
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{self.px(x):.1f},{self.py(y):.1f}"
            for i, (x, y) in enumerate(points)
        )
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return (
            f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}" '
            f'stroke-linejoin="round" stroke-linecap="round"{extra}/>'
        )

    def svg(self, body: str, label: str) -> str:
        return (
            f'<svg viewBox="0 0 {self.width} {self.height}" role="img" aria-label="{_e(label)}" '
            f'preserveAspectRatio="xMidYMid meet">{body}</svg>'
        )


def _legend(items: Sequence[tuple[str, str, str]]) -> str:
    parts = []
    for name, color, dash in items:
        style = "dashed" if dash else "solid"
        parts.append(
            f'<span class="key"><i style="border-top:3px {style} {color}"></i>{_e(name)}</span>'
        )
    return f'<div class="legend">{"".join(parts)}</div>'


# -- the charts --------------------------------------------------------------------


#: Width of one character of a ``.mark`` label (13 px, semibold), at most, in
#: the SVG's units: wide enough for digits, "µ" and "%" in the usual sans fonts.
MARK_EM = 13 * 0.62


def _text_width(text: str, em: float) -> float:
    """An upper bound on the drawn width of ``text`` (no layout engine here)."""
    return len(text) * em


def _percentile_x(pct: float) -> float:
    return math.log10(1.0 / max(1.0 - pct / 100.0, 1e-12))


def percentile_chart(report: BenchReport, width: int = 1100, height: int = 360) -> str:
    """Latency by percentile, the x axis stretched towards the tail (as HdrHistogram plots)."""
    dist = report.distribution
    if not dist:
        return '<p class="empty">No answered request: nothing to plot.</p>'
    total = max(report.requests, 1)
    xmax = max(1.0, math.ceil(math.log10(total) * 2) / 2) if total > 1 else 1.0
    pts = [(min(_percentile_x(p), xmax), ms) for p, ms in dist[:-1]]
    pts.append((xmax, dist[-1][1]))
    ymax = max(ms for _, ms in pts) * 1.1 or 1.0
    f = _Frame(width, height, (0.0, xmax), (0.0, ymax), left=72, right=40)
    # 0%, 90%, 99%, 99.9%...: written out (":g" would round 99.99999 to "100").
    labels = {0: "0%", 1: "90%", 2: "99%"}
    xticks = [(float(k), labels.get(k, "99." + "9" * (k - 2) + "%")) for k in range(int(xmax) + 1)]
    yticks = [(v, _tick_label(v, "ms")) for v in _nice_ticks(0.0, ymax)]
    body = [f.grid(xticks, yticks, "percentile", "latency")]
    area = [(pts[0][0], 0.0), *pts, (pts[-1][0], 0.0)] if pts else []
    if area:
        d = " ".join(
            f"{'M' if i == 0 else 'L'}{f.px(x):.1f},{f.py(y):.1f}" for i, (x, y) in enumerate(area)
        )
        body.append(f'<path d="{d}Z" fill="{BLUE}" fill-opacity="0.08" stroke="none"/>')
    body.append(f.path(pts, BLUE, 2.5))
    lat = report.latency_ms
    marks = [("p50", 50.0, GREEN), ("p90", 90.0, AMBER), ("p99", 99.0, RED), ("p99.9", 99.9, RED)]
    mx, my = f.px(xmax), f.py(lat["max"])
    for name, pct, color in marks:
        key = name.replace(".", "")
        x = _percentile_x(pct)
        if x > xmax:
            continue
        ms = lat[key]
        cx, cy = f.px(x), f.py(ms)
        label = f"{name} {_fmt_ms(ms)}"
        # Above the point, unless the max's label (above-left of the max) is near.
        below = mx - cx < 200 and abs(my - cy) < 24
        ty = cy + 22 if below else cy - 9
        # Right of the point, unless the label would run past the chart's edge
        # (a point at the right end: p99 of 100 requests): then left of it.
        if cx + 8 + _text_width(label, MARK_EM) > width:
            tx, anchor = f"{cx - 8:.1f}", ' text-anchor="end"'
        else:
            tx, anchor = f"{cx + 8:.1f}", ""
        body.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#fff" stroke="{color}" '
            f'stroke-width="2.5"><title>{name}: {_fmt_ms(ms)}</title></circle>'
            f'<text x="{tx}" y="{ty:.1f}" class="mark"{anchor} fill="{color}">'
            f"{_e(label)}</text>"
        )
    cx, cy = mx, my
    body.append(
        f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{INK}"><title>max: '
        f"{_fmt_ms(lat['max'])}</title></circle>"
        f'<text x="{cx - 9:.1f}" y="{cy - 9:.1f}" class="mark" text-anchor="end" fill="{INK}">'
        f"max {_e(_fmt_ms(lat['max']))}</text>"
    )
    return f.svg("".join(body), "latency by percentile")


def throughput_chart(report: BenchReport, width: int = 540, height: int = 300) -> str:
    """Requests per second over time, failed ones in red; the asked rate dashed."""
    rows = [s for s in report.timeline if s["span_s"] >= MIN_SPAN]
    if not rows:
        return '<p class="empty">No timeline.</p>'
    n = len(rows)
    asked = [(float(t), float(r)) for t, r in (report.rate or {}).get("asked_curve") or []]
    ymax = max([s["rps"] for s in rows] + [r for _, r in asked] + [1.0]) * 1.12
    f = _Frame(width, height, (0.0, float(n)), (0.0, ymax))
    step = max(1, math.ceil(n / 8))
    xticks = [(float(t), f"{t} s") for t in range(0, n + 1, step)]
    yticks = [(v, _tick_label(v, "")) for v in _nice_ticks(0.0, ymax)]
    body = [f.grid(xticks, yticks, "time", "requests / s")]
    bw = max((f.px(1) - f.px(0)) * 0.8, 1.0)
    for s in rows:
        t = s["t"]
        failed_rate = s["failed"] / s["span_s"]
        x = f.px(t + 0.5) - bw / 2
        y_all, y_bad = f.py(s["rps"]), f.py(failed_rate)
        y0 = f.py(0)
        tip = f"{t}–{t + 1} s: {s['rps']:,.0f} req/s, {s['failed']:,} failed"
        body.append(
            f'<rect x="{x:.1f}" y="{y_all:.1f}" width="{bw:.1f}" height="{y0 - y_all:.1f}" '
            f'fill="{BLUE}" fill-opacity="0.75"><title>{_e(tip)}</title></rect>'
        )
        if s["failed"]:
            body.append(
                f'<rect x="{x:.1f}" y="{y_bad:.1f}" width="{bw:.1f}" height="{y0 - y_bad:.1f}" '
                f'fill="{RED}"><title>{_e(tip)}</title></rect>'
            )
    if asked:
        body.append(f.path([(t, r) for t, r in asked if t <= n], INK, 1.5, "6 4"))
    return f.svg("".join(body), "requests per second over time")


def latency_time_chart(report: BenchReport, width: int = 540, height: int = 300) -> str:
    """p50, p90, p99 and max latency per second."""
    rows = [s for s in report.timeline if s["requests"] and s["span_s"] >= MIN_SPAN]
    if not rows:
        return '<p class="empty">No timeline.</p>'
    n = max(s["t"] for s in rows) + 1
    values = [s[k] for s in rows for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms") if s[k] > 0]
    lo, hi = (min(values), max(values)) if values else (0.1, 1.0)
    ylog = hi / max(lo, 1e-6) > 30
    if ylog:
        y0 = 10 ** math.floor(math.log10(max(lo, 1e-3)))
        y1 = 10 ** math.ceil(math.log10(hi * 1.05))
        yticks = [(v, _tick_label(v, "ms")) for v in _log_ticks(y0, y1)]
    else:
        y0, y1 = 0.0, hi * 1.12
        yticks = [(v, _tick_label(v, "ms")) for v in _nice_ticks(0.0, y1)]
    f = _Frame(width, height, (0.0, float(n)), (y0, y1), ylog=ylog, left=72)
    step = max(1, math.ceil(n / 8))
    xticks = [(float(t), f"{t} s") for t in range(0, n + 1, step)]
    body = [f.grid(xticks, yticks, "time", "latency" + (" (log scale)" if ylog else ""))]
    for key, color, dash in (
        ("max_ms", GREY, "3 4"),
        ("p99_ms", RED, ""),
        ("p90_ms", AMBER, ""),
        ("p50_ms", GREEN, ""),
    ):
        pts = [(s["t"] + 0.5, s[key]) for s in rows]
        body.append(f.path(pts, color, 2, dash))
    for s in rows:
        tip = (
            f"{s['t']}–{s['t'] + 1} s: p50 {_fmt_ms(s['p50_ms'])}, p90 {_fmt_ms(s['p90_ms'])}, "
            f"p99 {_fmt_ms(s['p99_ms'])}, max {_fmt_ms(s['max_ms'])}"
        )
        x = f.px(s["t"] + 0.5)
        body.append(
            f'<circle cx="{x:.1f}" cy="{f.py(s["p99_ms"]):.1f}" r="2.5" fill="{RED}">'
            f"<title>{_e(tip)}</title></circle>"
        )
    return f.svg("".join(body), "latency over time")


def histogram_chart(report: BenchReport, width: int = 1100, height: int = 240) -> str:
    """How many answers fell in each (log-spaced) latency bucket."""
    buckets = report.histogram
    if not buckets:
        return '<p class="empty">No answered request.</p>'
    n = len(buckets)
    top = max(b["count"] for b in buckets) or 1
    f = _Frame(width, height, (0.0, float(n)), (0.0, top * 1.15), left=72, bottom=44)
    yticks = [(v, _tick_label(v, "")) for v in _nice_ticks(0.0, top * 1.15, 4)]
    xticks: list[tuple[float, str]] = []
    body = [f.grid(xticks, yticks, "latency", "answers")]
    bw = (f.px(1) - f.px(0)) * 0.86
    for i, b in enumerate(buckets):
        x = f.px(i + 0.5) - bw / 2
        y = f.py(b["count"])
        tip = f"{_fmt_ms(b['lo_ms'])} – {_fmt_ms(b['hi_ms'])}: {b['count']:,} answers"
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{f.py(0) - y:.1f}" '
            f'rx="2" fill="{BLUE}" fill-opacity="0.8"><title>{_e(tip)}</title></rect>'
            f'<text x="{f.px(i + 0.5):.1f}" y="{height - f.bottom + 17}" text-anchor="middle" '
            f'class="tick">≤ {_e(_fmt_ms(b["hi_ms"]))}</text>'
        )
        if b["count"]:
            share = 100.0 * b["count"] / max(report.requests, 1)
            body.append(
                f'<text x="{f.px(i + 0.5):.1f}" y="{y - 5:.1f}" text-anchor="middle" '
                f'class="tick">{share:.1f}%</text>'
            )
    return f.svg("".join(body), "latency histogram")


# -- the page ----------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #111827;
  font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { font-size: 24px; margin: 0 0 2px; letter-spacing: -0.01em; }
header h1 span { color: #2563eb; }
header .target { font: 14px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  color: #374151; word-break: break-all; }
header .meta { color: #6b7280; font-size: 13px; margin-top: 4px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr));
  gap: 12px; margin: 20px 0; }
.card { background: #fff; border-radius: 10px; padding: 12px 14px;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); border-top: 3px solid #2563eb; }
.card.good { border-top-color: #059669; } .card.warn { border-top-color: #d97706; }
.card.bad { border-top-color: #dc2626; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
  color: #6b7280; }
.card .value { font-size: 24px; font-weight: 650; margin-top: 2px;
  font-variant-numeric: tabular-nums; }
.card .sub { font-size: 12px; color: #6b7280; }
section.panel { background: #fff; border-radius: 10px; padding: 16px 18px 10px;
  margin-bottom: 16px;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); }
section.panel h2 { font-size: 16px; margin: 0 0 2px; }
section.panel p.note { margin: 0 0 8px; color: #6b7280; font-size: 13px; }
.row { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
@media (max-width: 900px) { .row { grid-template-columns: 1fr; } }
svg { width: 100%; height: auto; display: block; }
svg text { font-family: inherit; }
svg .tick { font-size: 12px; fill: #6b7280; }
svg .axis { font-size: 12px; fill: #374151; }
svg .mark { font-size: 13px; font-weight: 600; paint-order: stroke; stroke: #fff;
  stroke-width: 4px; stroke-linejoin: round; }
.legend { display: flex; gap: 16px; flex-wrap: wrap; font-size: 13px; color: #374151;
  margin: 2px 0 6px; }
.legend .key i { display: inline-block; width: 22px; margin-right: 6px; vertical-align: middle; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin: 4px 0 10px;
  font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 10px 5px 0; border-bottom: 1px solid #f0f1f3;
  vertical-align: top; }
th { color: #6b7280; font-weight: 500; }
td.num, th.num { text-align: right; white-space: nowrap; }
.tables { display: grid; grid-template-columns: 1fr 1fr 1.5fr; gap: 16px; }
@media (max-width: 900px) { .tables { grid-template-columns: 1fr; } }
.warning { background: #fffbeb; border: 1px solid #fcd34d; color: #92400e; border-radius: 8px;
  padding: 10px 14px; margin: 0 0 16px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.empty { color: #6b7280; }
footer { color: #9ca3af; font-size: 12px; text-align: center; margin-top: 18px; }
"""


def _card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div><div class="sub">{_e(sub)}</div></div>'
    )


def _table(rows: Sequence[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append(f'<tr><th>{_e(head[0])}</th><th class="num">{_e(head[1])}</th></tr>')
    for k, v in rows:
        out.append(f'<tr><td>{_e(k)}</td><td class="num">{_e(v)}</td></tr>')
    out.append("</table>")
    return "".join(out)


def _cards(report: BenchReport) -> str:
    lat = report.latency_ms
    failed_pct = 100.0 * report.failed / report.requests if report.requests else 0.0
    tone = "good" if report.failed == 0 else ("warn" if failed_pct < 1 else "bad")
    cards = [
        _card("requests", f"{report.requests:,}", f"in {report.duration_s:.1f} s"),
        _card("throughput", f"{_fmt_num(report.rps)}/s", "answered + failed"),
        _card("p50", _fmt_ms(lat["p50"]), f"mean {_fmt_ms(lat['mean'])}"),
        _card("p99", _fmt_ms(lat["p99"]), f"p90 {_fmt_ms(lat['p90'])}"),
        _card("p99.9", _fmt_ms(lat["p999"]), ""),
        _card("max", _fmt_ms(lat["max"]), f"max − avg {_fmt_ms(lat['max_minus_average'])}"),
        _card("failed", f"{report.failed:,}", f"{failed_pct:.2f} %", tone),
    ]
    if not report.status:  # no answer: its zeros are no latency (see NO_ANSWER)
        cards[2:6] = [_card("latency", "none", "no request was answered", "bad")]
    return f'<div class="cards">{"".join(cards)}</div>'


def _describe(report: BenchReport) -> str:
    s = report.settings
    if report.model == "open":
        how = (
            f"open model at {s.get('rate')} (latency from each request's due time), "
            f"at most {s.get('concurrency')} connections"
        )
    else:
        how = f"closed model, {s.get('concurrency')} connections"
    if s.get("requests"):
        length = f"{s['requests']:,} requests"
    else:
        length = f"{s.get('duration_s') or 0:g} s"
    warm = f", {s['warmup_s']:g} s warm-up" if s.get("warmup_s") else ""
    return f"{how}; {length}{warm}"


def _body(report: BenchReport) -> str:
    s = report.settings
    lat = report.latency_ms
    target = report.target
    parts = [
        "<header>",
        "<h1><span>drumfire</span> bench</h1>",
        f'<div class="target">{_e(s.get("method", "GET"))} {_e(target)}</div>',
        f'<div class="meta">{_e(_describe(report))} · started {_e(s.get("started_at", ""))}'
        + (" · stopped early" if report.stopped else "")
        + "</div>",
        "</header>",
        _cards(report),
    ]
    for w in report.warnings:
        parts.append(f'<div class="warning">⚠ {_e(w)}</div>')
    parts += [
        '<section class="panel"><h2>Latency by percentile</h2>'
        '<p class="note">Each point: the latency that this share of answers stayed under. '
        "The axis stretches towards the tail, where the slowest answers are.</p>",
        percentile_chart(report),
        "</section>",
        '<div class="row">',
        '<section class="panel"><h2>Requests per second</h2>',
        _legend(
            [("answered", BLUE, ""), ("failed", RED, "")]
            + ([("asked rate", INK, "dash")] if report.model == "open" else [])
        ),
        throughput_chart(report),
        "</section>",
        '<section class="panel"><h2>Latency over time</h2>',
        _legend([("p50", GREEN, ""), ("p90", AMBER, ""), ("p99", RED, ""), ("max", GREY, "d")]),
        latency_time_chart(report),
        "</section>",
        "</div>",
        '<section class="panel"><h2>Latency distribution</h2>',
        histogram_chart(report),
        "</section>",
    ]
    lat_rows = [
        ("mean", _fmt_ms(lat["mean"])),
        ("stdev", _fmt_ms(lat["stdev"])),
        ("min", _fmt_ms(lat["min"])),
        ("p50", _fmt_ms(lat["p50"])),
        ("p90", _fmt_ms(lat["p90"])),
        ("p99", _fmt_ms(lat["p99"])),
        ("p99.9", _fmt_ms(lat["p999"])),
        ("max", _fmt_ms(lat["max"])),
        ("max minus average", _fmt_ms(lat["max_minus_average"])),
    ]
    fixed = report.latency_corrected_ms
    if fixed:  # closed model: as wrk corrects coordinated omission (the footer says so)
        lat_rows += [
            (f"corrected {name}", _fmt_ms(fixed[key]))
            for name, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"))
        ]
    status_rows = [(f"HTTP {k}", f"{v:,}") for k, v in report.status.items()]
    status_rows += [(k, f"{v:,}") for k, v in report.errors.items()]
    if report.resent:
        status_rows.append(("re-sent: kept-alive connection found closed", f"{report.resent:,}"))
    if report.cancelled:
        status_rows.append(
            (
                f"cancelled when stopped (oldest {_fmt_ms(report.cancelled_max_ms)})",
                f"{report.cancelled:,}",
            )
        )
    targets = s.get("targets") or 1
    run_rows = [
        ("model", report.model),
        ("connections", f"{s.get('concurrency', '?')}"),
        ("rate asked", f"{s.get('rate')}" if s.get("rate") else "—"),
        ("duration", f"{report.duration_s:.2f} s"),
        ("warm-up", f"{s.get('warmup_s') or 0:g} s"),
        ("timeout", f"{s.get('timeout_s', '?')} s"),
        ("targets", f"{targets:,}" + (" (shuffled)" if s.get("shuffle") else "")),
        ("connections opened", f"{s.get('connections_opened', '?')}"),
        ("client", f"Python {s.get('python', '?')}, {s.get('loop', '?')}"),
    ]
    if report.rate is not None:
        r = report.rate
        run_rows += [
            ("sent", f"{r['sent_per_s']:,.1f} requests/s"),
            (
                "wait for a connection p50 / p99 / max",
                "{p50:.2f} / {p99:.2f} / {max:.2f} ms".format(**r["queue_ms"]),
            ),
            ("largest backlog", f"{r['backlog_max']:,} requests"),
            (
                "client's own lateness mean / max",
                "{mean:.3f} / {max:.2f} ms".format(**r["client_lag_ms"]),
            ),
            ("sends > 1 ms late (client)", f"{r['late_sends']:,}"),
            ("given up unsent (timed out waiting for a connection)", f"{r.get('unsent', 0):,}"),
        ]
    parts += [
        '<div class="tables">',
        '<section class="panel"><h2>Latency</h2>',
        _table(lat_rows),
        "</section>",
        '<section class="panel"><h2>Outcomes</h2>',
        _table(status_rows or [("none", "0")], ("status / error", "count")),
        "</section>",
        '<section class="panel"><h2>Run</h2>',
        _table(run_rows),
        "</section>",
        "</div>",
    ]
    return "".join(parts)


def render_page(report: BenchReport) -> str:
    title = f"drumfire bench — {report.target}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
        + _body(report)
        + "<footer>drumfire bench · latencies of answered requests, in the order: "
        "mean, percentiles (HdrHistogram, 3 significant digits), exact max; closed model: "
        "corrected for coordinated omission as wrk corrects it</footer>"
        + "</main></body></html>\n"
    )


def render_fragment(report: BenchReport) -> str:
    """The page's content for a notebook cell (styles scoped by a wrapper class)."""
    scoped = CSS.replace(":root { color-scheme: light; }", "").replace("body {", ".dfb {")
    return f'<div class="dfb"><style>{scoped}</style><main>{_body(report)}</main></div>'


# Keep the chart functions importable for tests and other pages.
CHARTS: dict[str, Callable[[BenchReport], str]] = {
    "percentile": percentile_chart,
    "throughput": throughput_chart,
    "latency": latency_time_chart,
    "histogram": histogram_chart,
}

"""The ``drumfire bench`` HTML report in a real browser (headless Chromium).

Two checks: a screenshot of a real run's page (it renders: charts and text, not
a blank page), and the layout of every label of every chart, measured by the
browser itself: each ``<text>`` box must lie inside its SVG's viewBox, else the
browser clips it at the chart's edge. A script added to a copy of the page
measures the boxes (``getBoundingClientRect``) and writes what it found into the
page; ``--dump-dom`` gives the page back after it ran. The page drumfire writes
has no script: only the copy does.

The charts are checked on real runs and on reports built from recorded figures
with the awkward shapes (3 requests, 100 requests whose p99 is the right end of
the percentile axis, 2,000,000 fast requests, a 40 s run with 30 s answers, an
open-model run, 10 minutes of timeline).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from drumfire.bench import BenchReport, bench
from drumfire.bench._html import CHARTS, CSS, render_page
from drumfire.bench._recorder import Recorder, new_histogram
from drumfire.bench._report import build_report
from drumfire.bench._runner import RunData
from drumfire.demo.server import DemoServer

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs chromium (apt install chromium)"
)

#: Reads, for every SVG, the box of each of its texts in page pixels and the
#: viewBox mapped to page pixels (getScreenCTM), and lists the texts that stick out.
MEASURE = """<script>
(function () {
  var clipped = [], texts = 0, svgs = document.querySelectorAll("svg");
  svgs.forEach(function (svg) {
    var vb = svg.viewBox.baseVal, m = svg.getScreenCTM();
    var a = new DOMPoint(vb.x, vb.y).matrixTransform(m);
    var b = new DOMPoint(vb.x + vb.width, vb.y + vb.height).matrixTransform(m);
    svg.querySelectorAll("text").forEach(function (t) {
      texts += 1;
      var r = t.getBoundingClientRect(), slack = 0.5;
      if (r.left < a.x - slack || r.top < a.y - slack ||
          r.right > b.x + slack || r.bottom > b.y + slack) {
        clipped.push({chart: svg.getAttribute("aria-label"), text: t.textContent,
                      box: [r.left - a.x, r.top - a.y, r.right - a.x, r.bottom - a.y],
                      view: [b.x - a.x, b.y - a.y]});
      }
    });
  });
  var out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({svgs: svgs.length, texts: texts, clipped: clipped});
  document.body.appendChild(out);
})();
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def measure(tmp_path: Path, page: str, width: int = 1200) -> dict[str, Any]:
    """What the browser measured on ``page`` (its charts' texts that stick out)."""
    assert "<script" not in page  # the report has none; the copy gets the measuring one
    copy = tmp_path / "measured.html"
    copy.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    done = chromium(tmp_path, f"--window-size={width},1400", "--dump-dom", copy.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, done.stderr[-2000:]
    measured: dict[str, Any] = orjson.loads(html.unescape(found.group(1)))
    return measured


def synthetic(
    n: int,
    base_ms: float,
    tail_ms: float,
    seconds: float = 3.0,
    open_model: bool = False,
    failures: int = 0,
) -> BenchReport:
    """A report from recorded figures: ``n`` answers over ``seconds``, a few slow ones."""
    rec = Recorder(start=0.0)
    for i in range(n):
        t = i * seconds * 0.93 / n
        latency = base_ms / 1000 * (1 + (i % 97) / 97)
        if i % max(n // 3, 1) == 1:
            latency += tail_ms / 1000
        rec.response(t + latency, t, 200 if i % 7 else 404)
    for _ in range(failures):
        rec.failure(seconds * 0.95, "timeout")
    rec.finish(seconds)
    queue = new_histogram() if open_model else None
    if queue is not None:
        queue.record_value(1, n)
    data = RunData(
        recorder=rec,
        begin=-1.0,
        measure_start=0.0,
        finish=seconds,
        sent=n,
        first_send=0.0,
        last_send=seconds * 0.93,
        queue=queue,
        lag_max=0.0,
        lag_sum=0.0,
        late=0,
        backlog_max=0,
        loop_lag_max=0.0,
        connections=8,
        stopped=False,
    )
    rate = f"{n / seconds:.0f}/s" if open_model else None
    settings: dict[str, Any] = {
        "url": "http://127.0.0.1:9/x",
        "concurrency": 8,
        "rate": rate,
        "rate_fixed": n / seconds if open_model else None,
        "warmup_s": 0.0,
        "duration_s": seconds,
        "method": "GET",
    }
    report = build_report(data, settings, rate)
    if report.rate is not None:
        report.rate["asked_curve"] = [[i / 4, n / seconds] for i in range(int(seconds * 4) + 1)]
    return report


SHAPES: dict[str, dict[str, Any]] = {
    "3 requests": {"n": 3, "base_ms": 0.05, "tail_ms": 0},
    "100 requests": {"n": 100, "base_ms": 2, "tail_ms": 40},
    "1,000 requests": {"n": 1000, "base_ms": 2, "tail_ms": 400},
    "30 s answers": {"n": 10_000, "base_ms": 900, "tail_ms": 29_000, "seconds": 40, "failures": 50},
    "2,000,000 fast": {"n": 2_000_000, "base_ms": 0.02, "tail_ms": 5, "seconds": 10},
    "open model": {"n": 3000, "base_ms": 3, "tail_ms": 3000, "seconds": 12, "open_model": True},
    "10 minutes": {"n": 50_000, "base_ms": 12, "tail_ms": 120, "seconds": 600},
}


def test_no_chart_label_sticks_out_of_its_chart(tmp_path: Path) -> None:
    parts = []
    for name, shape in SHAPES.items():
        report = synthetic(**shape)
        for chart in CHARTS.values():
            svg = chart(report).replace('aria-label="', f'aria-label="{name}: ', 1)
            parts.append(f"<div>{svg}</div>")
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{CSS}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>"
    )
    measured = measure(tmp_path, page)
    assert measured["svgs"] == len(SHAPES) * len(CHARTS)
    assert measured["texts"] > 300
    assert measured["clipped"] == []


def test_the_percentile_labels_move_left_of_a_point_at_the_right_end(tmp_path: Path) -> None:
    # 100 requests: the percentile axis ends at 99 %, where p99 is drawn; its label used
    # to start right of the point and was cut at the chart's edge.
    page = render_page(synthetic(**SHAPES["100 requests"]))
    assert re.search(r'text-anchor="end" fill="[^"]+">p99 ', page)
    assert measure(tmp_path, page)["clipped"] == []


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    with DemoServer(latency=0.002, jitter=0.004) as server:
        report = bench(server.url("/json"), rate=300, duration=2.0, concurrency=8)
    page = tmp_path / "report.html"
    report.save_html(page)
    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1400)
    # A blank or broken page compresses to a few kB; charts and text do not.
    assert len(data) > 40_000
    # The same page, measured in the browser: every label inside its chart, on a wide
    # window and on a narrow one (one chart a row, the SVGs scaled down).
    for window in (1200, 700):
        measured = measure(tmp_path, report.to_html(), window)
        assert measured["svgs"] == 4
        assert measured["clipped"] == []

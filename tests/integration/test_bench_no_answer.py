"""A bench run where no request was answered (every one timed out) shows no latency
figures: its latencies were all ``0.000 ms`` (p50, p99, max), as if every answer had been
instant, in the summary, the one-line figures and the HTML cards."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from servers import ScriptedServer, stall

from drumfire.bench import bench
from drumfire.bench._display import figures
from drumfire.bench.cli import bench_command


def test_no_answer_is_no_latency(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    with ScriptedServer(lambda *_: stall(30)) as srv:
        args = [srv.url("/x"), "-n", "2", "-c", "2", "--timeout", "0.05", "--quiet"]
        result = CliRunner().invoke(bench_command, [*args, "--html", str(page)])
        report = bench(srv.url("/x"), requests=1, concurrency=1, timeout=0.05, progress=False)
    assert result.exit_code == 0, result.output
    assert "  latency    none: no request was answered" in result.output
    assert "p50 0.000" not in result.output
    assert "errors     timeout: 2" in result.output
    assert "with failures" in result.output  # the time the failures took is still shown
    assert report.status == {}
    assert "latency none: no request was answered" in figures(report)
    assert "p50 0.00 ms" not in figures(report)
    html = page.read_text(encoding="utf-8")
    assert "no request was answered" in html

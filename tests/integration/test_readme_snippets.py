"""The README's and docs/bench.md's Python blocks run as a reader would paste them: against
the demo server, with the reader's own names (``df``, ``rows``, ``url``) made here, and
``async for`` at the top level as a notebook cell runs it. The first block ("From Python")
is run by tests/integration/test_run_rows.py."""

from __future__ import annotations

import ast
import asyncio
import types
from pathlib import Path
from typing import Any

import pytest

import drumfire
from drumfire.demo import DemoServer, write_sample_routes

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


def _block(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index(heading)) + len("```python\n")
    return text[start : text.index("```", start)]


def _run(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    ran = eval(compiled, namespace)
    if isinstance(ran, types.CoroutineType):
        asyncio.run(ran)
    return namespace


def test_files_in_the_python_api(
    demo_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    pd = pytest.importorskip("pandas")
    monkeypatch.chdir(tmp_path)
    write_sample_routes(tmp_path / "routes.csv", 40)
    pd.read_csv("routes.csv", dtype=str).to_parquet("routes.parquet")
    code = _block(ROOT / "README.md", "### Files in the Python API")
    url = demo_server.base_url + ROUTE
    for _ in range(2):  # the second time, resume=True has nothing left to send
        ns = _run(code, {"drumfire": drumfire, "Path": Path, "url": url})
    assert len(ns["results"]) == 40
    assert {r["status"] for r in ns["results"]} <= {200, 400}
    assert len(pd.read_parquet("results.parquet")) == 40


def test_uploads_and_downloads_as_keyword_arguments(
    demo_server: DemoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.png").write_bytes(b"\x89PNG a")
    (tmp_path / "b.png").write_bytes(b"\x89PNG bb")
    code = _block(ROOT / "README.md", "From Python, the same as keyword arguments")
    rows = [{"id": "r1", "path": "a.png", "a": "a.png", "b": "b.png",
             "url": demo_server.base_url + "/json"}]  # fmt: skip
    lines = [line for line in code.splitlines() if line.strip()]
    results = []
    for statement in ast.parse(code).body:
        source = ast.get_source_segment(code, statement)
        assert source is not None
        results.append(eval(source, {"drumfire": drumfire, "rows": rows,
                                     "url": demo_server.base_url + "/echo"}))  # fmt: skip
    assert len(results) == 5, code
    assert len(lines) == 6, code
    for result in results:
        assert [(r["status"], r["error"]) for r in result] == [(200, "")], result
    saved = results[-1][0]
    assert saved["saved_path"] == "images/r1.jpg"
    assert (tmp_path / "downloads" / "images" / "r1.jpg").stat().st_size == saved["saved_bytes"]
    assert len(saved["saved_sha256"]) == 64


def test_progress_and_the_figures(demo_server: DemoServer) -> None:
    pd = pytest.importorskip("pandas")
    code = _block(ROOT / "README.md", "### Progress bars and the run's figures")
    rows = [{"id": str(i), "lon1": "24.94", "lat1": "60.17", "lon2": "24.95", "lat2": "60.16"}
            for i in range(30)]  # fmt: skip
    ns = _run(code, {"df": pd.DataFrame(rows), "rows": rows, "url": demo_server.base_url + ROUTE})
    summary = ns["stats"].summary()
    assert summary["rows"] == 30
    assert summary["failures"] == {}
    assert ns["frame"].attrs["drumfire"]["rows"] == 30
    assert ns["it"].stats.summary()["rows"] == 30
    documented = ("rows", "ok", "failed", "requests", "resent", "pipelined", "failures", "status",
                  "wall_s", "rows_per_s", "latency_ms", "skipped", "duplicate_ids", "stopped",
                  "not_done", "unreachable", "waited_s", "failure_examples")  # fmt: skip
    assert sorted(summary) == sorted(documented)
    assert isinstance(ns["run"], drumfire.ARun)


def test_bench_from_python(demo_server: DemoServer, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code = _block(ROOT / "docs" / "bench.md", "## From Python")
    code = code.replace("http://127.0.0.1:8080/", demo_server.base_url + "/json")
    search = demo_server.base_url + "/echo?q={q}"
    code = code.replace("http://127.0.0.1:9200/idx/_search?q={q}", search)
    # shorter: 50 requests, not 30 s; the ramp over one second, without the warm-up
    for was, now in (('duration="30s"', "requests=50"), ('"1m", warmup="5s"', '"1s"')):
        assert was in code, was
        code = code.replace(was, now)
    first = code.index("report.rps")
    ns = _run(code[:first], {})
    assert ns["report"].requests == 50
    ns = _run(code, {})
    assert ns["report"].requests > 0
    assert ns["report"].to_dict()["rate"]["asked"] == "100:1000/s"
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!")

"""Unit tests of ``drumfire.compare``: parsing, matching, reports, the worker's skip path."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from rich.console import Console

from drumfire import UsageError
from drumfire._extract import Extractor
from drumfire.compare import STRATEGY_NAMES, CompareReport, StrategyReport, parse_strategies, worker
from drumfire.compare._runner import copy_figures, count_mismatches
from drumfire.compare.strategies import EXTRA_HINT, STRATEGIES, Strategy, get, missing_modules
from drumfire.compare.strategies._common import finish, split


def test_strategy_names_are_the_issue_s_nine() -> None:
    assert STRATEGY_NAMES == (
        "serial",
        "session",
        "urllib3-pool",
        "threads",
        "requests-futures",
        "aiohttp",
        "multiprocessing",
        "multiprocessing+asyncio",
        "drumfire",
    )
    assert get("drumfire").requires == ()
    assert all(s.description for s in STRATEGIES)


def test_parse_strategies() -> None:
    assert parse_strategies(None) == list(STRATEGY_NAMES)
    assert parse_strategies("drumfire, serial,drumfire") == ["drumfire", "serial"]
    assert parse_strategies(["aiohttp"]) == ["aiohttp"]
    with pytest.raises(UsageError, match="unknown strategy 'curl'"):
        parse_strategies("serial,curl")
    with pytest.raises(UsageError, match="no strategy"):
        parse_strategies(" , ")


def test_missing_modules() -> None:
    fake = Strategy("x", "native", "drumfire_strategy", ("json", "no_such_module_xyz"), True, "")
    assert missing_modules(fake) == ["no_such_module_xyz"]
    assert missing_modules(get("drumfire")) == []


def test_importing_the_package_imports_no_optional_library() -> None:
    code = (
        "import sys, drumfire.compare, drumfire.compare.cli, drumfire.compare.worker; "
        "print([m for m in ('requests', 'requests_futures', 'urllib3', 'aiohttp') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("status", "body", "fields", "error"),
    [
        (200, b'{"code":"Ok","routes":[{"duration":1.5}]}', {"code": "Ok", "d": 1.5}, ""),
        (400, b'{"code":"NoRoute"}', {"code": "NoRoute", "d": None}, ""),
        (200, b"<html>", {"code": None, "d": None}, "json"),
        (500, b"<html>", {"code": None, "d": None}, ""),
        (200, b"", {"code": None, "d": None}, "json"),
        (204, b"", {"code": None, "d": None}, ""),
        (200, b"null", {"code": None, "d": None}, "json"),
    ],
)
def test_finish_follows_the_engine(
    status: int, body: bytes, fields: dict[str, Any], error: str
) -> None:
    extractor = Extractor([("code", "code"), ("d", "routes[0].duration")])
    assert finish(extractor, "7", status, body) == ("7", status, fields, error)


def test_finish_without_extraction() -> None:
    assert finish(Extractor([]), "1", 200, b"not json") == ("1", 200, None, "")


def test_split() -> None:
    rows = [{"i": i} for i in range(10)]
    parts = split(rows, 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    assert [r for p in parts for r in p] == rows
    assert [len(p) for p in split(rows[:2], 8)] == [1, 1]


def _result(outcomes: list[list[Any]], wall: float = 2.0) -> dict[str, Any]:
    return {
        "outcomes": outcomes,
        "wall_s": wall,
        "cpu_user_s": 0.3,
        "cpu_sys_s": 0.1,
        "peak_rss_kb": 40 * 1024,
        "processes": 1,
    }


KEYS = ["1", "2", "3"]
IDS = ["a", "b", "c"]
GOOD: list[list[Any]] = [
    ["1", 200, {"x": 1}, ""],
    ["2", 400, {"x": None}, ""],
    ["3", None, None, "ConnectError: refused"],
]


def test_figures() -> None:
    report = StrategyReport("s", "", 4)
    copy_figures(report, _result(GOOD))
    assert (report.rows, report.ok, report.failed) == (3, 1, 1)
    assert report.statuses == {"200": 1, "400": 1, "none": 1}
    assert report.rps == pytest.approx(1.5)
    assert report.cpu_ms_per_request == pytest.approx(400 / 3)
    assert report.cpu_us_per_request == pytest.approx(400_000 / 3)
    assert report.peak_rss_mb == pytest.approx(40.0)


def test_match_same_rows_in_any_order_and_shared_failures() -> None:
    reference: dict[str, tuple[int | None, Any]] = {
        "1": (200, {"x": 1}),
        "2": (400, {"x": None}),
        "3": (None, None),
    }
    assert count_mismatches(_result(list(reversed(GOOD))), KEYS, IDS, reference) == (0, None)


def test_match_reports_differences() -> None:
    reference: dict[str, tuple[int | None, Any]] = {
        "1": (200, {"x": 1}),
        "2": (400, {"x": None}),
        "3": (200, {"x": 3}),
    }
    other: list[list[Any]] = [
        ["1", 200, {"x": 2}, ""],
        ["2", 400, {"x": None}, ""],
        ["4", 200, None, ""],
    ]
    mismatches, example = count_mismatches(_result(other), KEYS, IDS, reference)
    assert mismatches == 3  # row 1 differs, row 3 is missing, row 4 is extra
    assert example == {"row": 1, "id": "a", "expected": '200 {"x":1}', "got": '200 {"x":2}'}
    _, example = count_mismatches(_result(other[1:]), KEYS, IDS, reference)
    assert example is not None
    assert example["got"] == "no row"


def test_match_a_failure_only_matters_when_the_reference_differs() -> None:
    reference: dict[str, tuple[int | None, Any]] = {
        "1": (200, {"x": 1}),
        "2": (400, {"x": None}),
        "3": (200, {"x": 3}),
    }
    mismatches, example = count_mismatches(_result(GOOD), KEYS, IDS, reference)
    assert mismatches == 1
    assert example is not None
    assert example["id"] == "c"
    assert example["got"] == "no response"


def test_match_repeated_rows() -> None:
    assert count_mismatches(_result([*GOOD, GOOD[0]]), KEYS, IDS, None)[0] == 1


def _report() -> CompareReport:
    fast = StrategyReport("drumfire", "drumfire.run", 8, rows=100, ok=60, wall_s=0.05)
    fast.cpu_s, fast.peak_rss_mb, fast.processes, fast.results_match = 0.01, 40.0, 1, True
    slow = StrategyReport("serial", "requests.get", 1, rows=100, ok=60, wall_s=0.5)
    slow.cpu_s, slow.peak_rss_mb, slow.processes, slow.results_match = 0.2, 39.0, 1, False
    slow.mismatches = 2
    slow.example_mismatch = {"row": 3, "id": "x<3", "expected": "200 [1]", "got": "no response"}
    skipped = StrategyReport("aiohttp", "aiohttp", 8, skipped=f"needs aiohttp: {EXTRA_HINT}")
    return CompareReport(
        url="http://h/<p>?a={a}",
        extract=[("x", "x")],
        rows=100,
        concurrency=8,
        reference="drumfire",
        strategies=[slow, skipped, fast],
        repeat=3,
    )


def test_report_dict() -> None:
    data = _report().to_dict()
    assert data["fastest"] == "drumfire"
    assert data["all_match"] is False
    assert data["mismatched"] == ["serial"]
    assert data["repeat"] == 3
    assert data["machine"]["cpus"] >= 1
    serial, aio, native = data["strategies"]
    assert serial["rps"] == 200.0
    assert native["rps"] == 2000.0
    assert serial["cpu_ms_per_request"] == 2.0
    assert serial["cpu_us_per_request"] == 2000.0
    assert aio["rps"] is None
    assert aio["skipped"].startswith("needs aiohttp")
    for s in data["strategies"]:
        assert {"name", "rps", "wall_s", "cpu_ms_per_request", "results_match"} <= set(s)


@pytest.mark.parametrize("width", [80, 140])
def test_report_prints_at_any_width(width: int) -> None:
    console = Console(record=True, width=width, color_system=None)
    _report().print(console)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines())
    for expected in ("drumfire", "serial", "skipped", "2,000", "median of 3 runs", "NO"):
        assert expected in text
    assert "serial: 2 of 100 rows differ" in text
    assert "row 3 (id x<3): drumfire got 200 [1], serial got no response" in text
    assert "aiohttp: skipped: needs aiohttp: pip install 'drumfire[compare]'" in text
    assert ("vs drumfire" in text) == (width >= 90)
    assert "CPU µs/req" in text  # client CPU per request, as in docs/benchmarks.md


def test_report_html_is_self_contained_and_escaped() -> None:
    page = _report().to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert "<script" not in page
    assert "<link" not in page
    assert "src=" not in page
    assert "http://h/&lt;p&gt;" in page
    assert "id x&lt;3" in page
    assert 'style="width:100.0%"' in page  # the fastest bar is full width
    assert 'style="width:10.0%"' in page
    assert "<th>CPU µs/req</th>" in page


def test_worker_reports_a_missing_library_as_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Strategy) -> Any:
        raise ModuleNotFoundError("No module named 'aiohttp'", name="aiohttp")

    monkeypatch.setattr(Strategy, "load", fail)
    result = worker.run_task({"strategy": "aiohttp"})
    assert result == {"skipped": f"aiohttp is not installed: {EXTRA_HINT}"}


def test_worker_usage() -> None:
    assert worker.main([]) == 2

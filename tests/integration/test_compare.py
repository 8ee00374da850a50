"""``drumfire compare`` end to end on the demo server: every strategy, real workers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from drumfire.cli import main as drumfire_cli
from drumfire.compare import STRATEGY_NAMES, compare
from drumfire.compare.cli import compare_command
from drumfire.compare.strategies import Strategy, missing_modules
from drumfire.compare.strategies._common import ID_KEY
from drumfire.demo import DemoServer, route_answer, write_sample_routes

ROWS = 60
EXTRACT = {"code": "code", "duration": "routes[0].duration", "distance": "routes[0].distance"}
ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false"


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_routes(tmp_path_factory.mktemp("compare") / "routes.csv", ROWS)


@pytest.fixture(scope="module")
def expected(routes: Path) -> dict[str, tuple[int, dict[str, Any]]]:
    """id → (status, extracted fields), from the demo server's own answer function."""
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    with routes.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            status, body = route_answer(
                float(row["lon1"]), float(row["lat1"]), float(row["lon2"]), float(row["lat2"])
            )
            route = body["routes"][0] if status == 200 else None
            out[row["id"]] = (
                status,
                {
                    "code": body["code"],
                    "duration": route["duration"] if route else None,
                    "distance": route["distance"] if route else None,
                },
            )
    return out


def _run_worker(
    tmp: Path, strategy: str, rows: list[dict[str, str]], url: str, **task_fields: Any
) -> dict[str, Any]:
    """Run one strategy's worker process on ``rows``; ``task_fields`` add to or replace
    the task's (``data``, ``text_rows``, ``extract``...)."""
    (tmp / "rows.json").write_bytes(orjson.dumps(rows))
    task = {
        "strategy": strategy,
        "rows": str(tmp / "rows.json"),
        "url": url,
        "extract": list(EXTRACT.items()),
        "concurrency": 4,
        "out": str(tmp / "out.json"),
        **task_fields,
    }
    (tmp / "task.json").write_bytes(orjson.dumps(task))
    subprocess.run(
        [sys.executable, "-m", "drumfire.compare.worker", str(tmp / "task.json")],
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = orjson.loads((tmp / "out.json").read_bytes())
    return result


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_every_strategy_gets_the_right_rows(
    strategy: str,
    server: DemoServer,
    routes: Path,
    expected: dict[str, tuple[int, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    with routes.open(encoding="utf-8") as f:
        rows = [{**row, ID_KEY: row["id"]} for row in csv.DictReader(f)]
    result = _run_worker(tmp_path, strategy, rows, server.base_url + ROUTE)

    got = {id_: (status, fields) for id_, status, fields, _ in result["outcomes"]}
    assert len(result["outcomes"]) == ROWS
    assert got == expected
    assert all(error == "" for *_, error in result["outcomes"])
    assert {200, 400} <= {status for status, _ in got.values()}  # both kinds of answer seen
    assert result["wall_s"] > 0
    assert result["cpu_user_s"] + result["cpu_sys_s"] > 0
    assert result["peak_rss_kb"] > 1000
    assert result["processes"] >= (2 if strategy.startswith("multiprocessing") else 1)


def test_cli_all_strategies_json_and_html(server: DemoServer, routes: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "compare.json", tmp_path / "compare.html"
    args = [str(routes), "--url", server.base_url + ROUTE, "--json", str(out_json)]
    args += ["--html", str(out_html), "-c", "4", "-q"]
    for name, expr in EXTRACT.items():
        args += ["-e", f"{name}={expr}"]
    result = CliRunner().invoke(compare_command, args)
    assert result.exit_code == 0, result.output

    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["rows"] == ROWS
    assert report["concurrency"] == 4
    assert report["reference"] == "drumfire"
    assert report["all_match"] is True
    assert [s["name"] for s in report["strategies"]] == list(STRATEGY_NAMES)
    for s in report["strategies"]:
        for key in ("name", "rps", "wall_s", "cpu_ms_per_request", "results_match", "peak_rss_mb"):
            assert key in s
        assert s["results_match"] is True, s
        assert s["rps"] > 0
        assert s["wall_s"] > 0
        assert s["cpu_ms_per_request"] > 0
        assert s["rows"] == ROWS
        assert s["failed"] == 0
        assert s["ok"] + s["statuses"].get("400", 0) == ROWS
    by_name = {s["name"]: s for s in report["strategies"]}
    assert by_name["serial"]["concurrency"] == 1
    assert by_name["threads"]["concurrency"] == 4

    page = out_html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for name in STRATEGY_NAMES:
        assert f">{name}<" in page
    assert "<script" not in page
    assert "http://" not in page.replace(server.base_url, "")
    assert "same rows" in result.output
    assert "fastest:" in result.output


def test_subset_and_limit(server: DemoServer, routes: Path) -> None:
    report = compare(
        routes,
        server.base_url + ROUTE,
        extract=EXTRACT,
        strategies="urllib3-pool, drumfire",
        limit=7,
        concurrency=2,
    )
    assert [s.name for s in report.strategies] == ["urllib3-pool", "drumfire"]
    assert report.rows == 7
    assert all(s.rows == 7 and s.results_match for s in report.strategies)
    data = report.to_dict()
    assert data["rows"] == 7
    assert len(data["strategies"]) == 2


def test_limit_counts_a_bad_line_as_run_does(server: DemoServer, tmp_path: Path) -> None:
    """``-n 2`` is the first two rows of INPUT, as ``drumfire run -n 2`` takes them: a bad
    line is one of them (run gives it its error row; compare leaves it out and says so).
    compare skipped it and took the next good row instead, so the two sent other rows."""
    rows = tmp_path / "rows.csv"
    rows.write_text("id,n\na,1\nb,2,extra\nc,3\n", encoding="utf-8")
    report = compare(rows, server.base_url + "/status/200?n={n}", strategies="drumfire", limit=2)
    assert (report.rows, report.skipped_rows) == (1, 1)
    assert report.to_dict()["skipped_rows"] == 1


def test_without_extract_the_rows_compare_by_status(server: DemoServer, routes: Path) -> None:
    """No -e: every strategy's rows are compared by their status. drumfire's rows have an
    empty fields dict there and the others' none, and every row was reported to differ,
    'drumfire got 200, urllib3-pool got 200', exit status 1."""
    report = compare(
        routes, server.base_url + ROUTE, strategies="urllib3-pool,drumfire", limit=5
    )
    assert report.all_match, [(s.name, s.example_mismatch) for s in report.strategies]
    assert all(s.mismatches == 0 for s in report.strategies)


def test_without_drumfire_the_first_strategy_is_the_reference(
    server: DemoServer, routes: Path
) -> None:
    report = compare(
        routes,
        server.base_url + ROUTE,
        extract=EXTRACT,
        strategies=["threads", "urllib3-pool"],
        limit=10,
        repeat=2,
    )
    assert report.reference == "threads"
    assert report.all_match
    assert all(len(s.runs_rps) == 2 for s in report.strategies)


def test_mismatches_are_named_with_an_example(server: DemoServer, tmp_path: Path) -> None:
    """The echo endpoint answers with the request's headers, and user agents differ."""
    rows = tmp_path / "rows.csv"
    rows.write_text("id,n\na,1\nb,2\nc,3\n", encoding="utf-8")
    out_json = tmp_path / "r.json"
    args = [str(rows), "--url", server.base_url + "/echo?n={n}", "-e", 'ua=headers."user-agent"']
    args += ["-e", "path=path", "-s", "session,drumfire", "--json", str(out_json), "-q"]
    result = CliRunner().invoke(compare_command, args)
    assert result.exit_code == 1, result.output
    report = json.loads(out_json.read_text(encoding="utf-8"))
    session, drumfire = report["strategies"]
    assert drumfire["results_match"] is True
    assert session["results_match"] is False
    assert session["mismatches"] == 3
    example = session["example_mismatch"]
    assert example["row"] == 1
    assert example["id"] == "a"
    assert "drumfire/" in example["expected"]
    assert "python-requests/" in example["got"]
    assert report["mismatched"] == ["session"]
    assert "session: 3 of 3 rows differ" in result.output


def test_missing_extra_is_skipped_with_the_pip_command(
    server: DemoServer, routes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(strategy: Strategy) -> list[str]:
        return ["aiohttp"] if "aiohttp" in strategy.requires else missing_modules(strategy)

    monkeypatch.setattr("drumfire.compare._runner.missing_modules", missing)
    report = compare(
        routes,
        server.base_url + ROUTE,
        extract=EXTRACT,
        strategies="aiohttp,drumfire",
        limit=5,
    )
    aio, native = report.strategies
    assert aio.skipped == "needs aiohttp: pip install 'drumfire[compare]'"
    assert not aio.ran
    assert aio.rps is None
    assert aio.results_match is None
    assert native.ran
    assert native.results_match
    assert report.to_dict()["strategies"][0]["skipped"].endswith("'drumfire[compare]'")
    assert any("pip install" in line for line in report.verdict())


def test_usage_errors_exit_2(server: DemoServer, routes: Path) -> None:
    url = server.base_url + ROUTE
    cases = [
        [str(routes), "--url", url, "-s", "curl"],
        [str(routes), "--url", server.base_url + "/route/{nope}"],
        [str(routes), "--url", url, "-e", "bad=[["],
        [str(routes.with_name("missing.csv")), "--url", url],
    ]
    for args in cases:
        result = CliRunner().invoke(compare_command, args)
        assert result.exit_code == 2, (args, result.output)
        assert "drumfire: error:" in result.output


UGLY = 'say "hi" & #1 +50% a/b \\ c\nnext line'


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_csv_cells_in_a_json_body_are_typed_as_drumfire_run_types_them(
    strategy: str, server: DemoServer, tmp_path: Path
) -> None:
    # A CSV cell outside a JSON string becomes a JSON value (number, true, null...), as
    # `drumfire run` sends it; from a CSV file compare's every strategy sends the same.
    rows = [
        {"id": "a", "n": "1", ID_KEY: "a"},
        {"id": "b", "n": "2.50", ID_KEY: "b"},
        {"id": "c", "n": "x", ID_KEY: "c"},
        {"id": "d", "n": "", ID_KEY: "d"},
        {"id": "e", "n": UGLY, ID_KEY: "e"},
    ]
    result = _run_worker(
        tmp_path,
        strategy,
        rows,
        server.base_url + "/echo",
        extract=[["body", "body"]],
        concurrency=2,
        data='{"n": {n}, "s": "{n}"}',
        text_rows=True,
    )
    bodies = {id_: json.loads(fields["body"]) for id_, _, fields, _ in result["outcomes"]}
    assert bodies == {
        "a": {"n": 1, "s": "1"},
        "b": {"n": 2.5, "s": "2.50"},
        "c": {"n": "x", "s": "x"},
        "d": {"n": None, "s": ""},
        "e": {"n": UGLY, "s": UGLY},  # not JSON: a string, escaped, in both places
    }


def test_compare_from_a_csv_file_sends_json_bodies_as_run_does(
    server: DemoServer, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,n\na,1\nb,true\nc,x\n", encoding="utf-8")
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"id": "a", "n": "1"}\n', encoding="utf-8")
    # The workers' interpreter, through a script that keeps each task it is given: the
    # compare runner must tell them that CSV cells are text (JSON Lines values are not).
    for source, text in ((rows, True), (lines, False)):
        tasks = tmp_path / f"tasks-{source.suffix[1:]}"
        tasks.mkdir()
        python = tasks / "python"
        python.write_text(
            f"#!{sys.executable}\n"
            "import runpy, shutil, sys\n"
            f"shutil.copy(sys.argv[-1], {str(tasks)!r})\n"
            "sys.argv = sys.argv[2:]\n"
            "runpy.run_module('drumfire.compare.worker', run_name='__main__', alter_sys=True)\n",
            encoding="utf-8",
        )
        python.chmod(0o755)
        report = compare(
            source,
            server.base_url + "/echo",
            extract={"body": "body"},
            strategies="drumfire,threads",
            data='{"n": {n}}',
            python=str(python),
        )
        assert report.all_match
        told = {t.name: orjson.loads(t.read_bytes())["text_rows"] for t in tasks.glob("*.json")}
        assert told == {"task-drumfire.json": text, "task-threads.json": text}
    out = tmp_path / "run.csv"
    result = CliRunner().invoke(
        drumfire_cli,
        [
            "run",
            str(rows),
            "--url",
            server.base_url + "/echo",
            "-d",
            '{"n": {n}}',
            "-e",
            "body=body",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as f:
        sent = {r["id"]: json.loads(r["body"]) for r in csv.DictReader(f)}
    assert sent == {"a": {"n": 1}, "b": {"n": True}, "c": {"n": "x"}}

"""Processes, parse functions, the rate cap, resume after SIGKILL: real servers and signals."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, respond

from drumfire.demo.server import DemoServer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as s:
        yield s


def drumfire(*args: object, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False, **kw,  # type: ignore[call-overload]
    )  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_results_identical_whatever_the_process_count(server: DemoServer, tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 3000)
    outputs = []
    for p in (1, 2, 3):
        out = tmp_path / f"out{p}.csv"
        proc = drumfire("run", routes, "--url", server.base_url + ROUTE, "-p", p, "--ordered",
                        "-e", "code=code", "-e", "d=routes[0].distance", "-o", out, "-q")
        assert proc.returncode == 0, proc.stderr
        outputs.append([(r["id"], r["status"], r["error"], r["code"], r["d"])
                        for r in read_csv(out)])
    assert outputs[0] == outputs[1] == outputs[2]
    assert [row[0] for row in outputs[0]] == [str(i) for i in range(1, 3001)]


PARSE = '''
def parse(response):
    data = response.json()
    if data.get("code") != "Ok":
        raise ValueError("no route here")
    return {"km": round(data["routes"][0]["distance"] / 1000, 1), "status_seen": response.status}
'''


@pytest.mark.parametrize("processes", [1, 2])
def test_parse_function_fields_and_errors_as_rows(
    server: DemoServer, tmp_path: Path, processes: int
) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 400)
    (tmp_path / "p.py").write_text(PARSE)
    out = tmp_path / "out.jsonl"
    proc = drumfire("run", routes, "--url", server.base_url + ROUTE, "--parse",
                    f"{tmp_path / 'p.py'}:parse", "-p", processes, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(int(r["id"]) for r in rows) == list(range(1, 401))
    ok = [r for r in rows if r["status"] == 200]
    bad = [r for r in rows if r["status"] == 400]
    assert ok
    assert bad
    assert all(r["error"] == "" and r["km"] >= 0 and r["status_seen"] == 200 for r in ok)
    assert all(r["error"] == "parse: ValueError: no route here" for r in bad)


def test_parse_option_errors_exit_2(tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 5)
    for spec in ("nofile.py:f", f"{routes}", f"{tmp_path / 'p.py'}:missing"):
        (tmp_path / "p.py").write_text("x = 1\n")
        proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/" + "{id}", "--parse", spec)
        assert proc.returncode == 2, (spec, proc.stderr)
        assert proc.stderr.count("\n") == 1


def test_rate_cap_is_accurate(server: DemoServer, tmp_path: Path, timing_claims: bool) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 300)
    summary = tmp_path / "s.json"
    proc = drumfire("run", routes, "--url", server.base_url + ROUTE, "--rate", "200/s",
                    "-o", tmp_path / "o.csv", "-q", "--summary-json", summary)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(summary.read_text())
    # 300 starts at 200/s take 1.5 s (the first is at t=0): never faster (a loaded
    # machine can only make it slower); within a few percent with --timing.
    assert figures["rows"] == 300
    assert figures["rows_per_s"] <= 200 * 1.05
    if timing_claims:
        assert figures["rows_per_s"] == pytest.approx(200, rel=0.05)


def test_rate_cap_across_processes(server: DemoServer, tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 400)
    out = tmp_path / "o.csv"
    start = time.perf_counter()
    proc = drumfire("run", routes, "--url", server.base_url + ROUTE, "--rate", "12000/min",
                    "-p", "2", "-o", out, "-q")
    wall = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert len(read_csv(out)) == 400
    assert wall >= 1.9  # 400 rows at 200/s is 2 s, whatever the process count


def test_a_short_run_under_a_rate_is_dealt_to_every_process(
    tmp_path: Path, timing_claims: bool
) -> None:
    # Each worker sends at its share of --rate. Rows went to the workers 256 at a
    # time: 40 rows all to the first, which sent them at half the rate asked (and
    # 600 rows at --rate 100/s -p 2 took 10 s). Under a rate a chunk is about half a
    # second of a worker's share, so both workers take rows (-c 2: one connection each).
    # And their starts interleave: the second starts half its interval after the
    # first (both went at once, every tenth of a second).
    rows = tmp_path / "in.csv"
    rows.write_text("n\n" + "".join(f"{i}\n" for i in range(40)))
    out = tmp_path / "o.csv"
    arrived: list[float] = []

    def answer(*_: object) -> Action:
        arrived.append(time.monotonic())
        return respond(200, {"ok": 1})

    with ScriptedServer(answer) as srv:
        proc = drumfire("run", rows, "--url", srv.url("/{n}"), "--rate", "20/s",
                        "-p", "2", "-c", "2", "-o", out, "-q")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert sorted(int(r.target[1:]) for r in srv.requests) == list(range(40))
        assert len({r.connection for r in srv.requests}) == 2
    if timing_claims:  # 20/s: about one every 50 ms, not two at once every 100 ms
        assert min(b - a for a, b in itertools.pairwise(sorted(arrived))) > 0.01
    assert [r["status"] for r in read_csv(out)] == ["200"] * 40


def ids_in(path: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        return [r["id"] for r in read_csv(path)]
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("kill_after", [1, 300, 900])
def test_resume_after_sigkill(tmp_path: Path, fmt: str, kill_after: int) -> None:
    # A slow server so the run is mid-flight when killed: once the server has
    # answered that many of the 1,500 rows (before and after the first flush, at
    # 1 s); then resume against a fast one.
    routes = write_sample_routes(tmp_path / "routes.csv", 1500)
    out = tmp_path / f"out.{fmt}"
    with DemoServer(latency=0.01) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", "run", str(routes), "--url",
             slow.base_url + ROUTE, "-e", "code=code", "-c", "8", "-o", str(out), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while slow.requests_served < kill_after and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it was killed"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # Simulate the torn write a kill can leave behind.
    with out.open("ab") as f:
        f.write(b'777,200,1.0,1,,O' if fmt == "csv" else b'{"id":"777","sta')
    before = out.read_bytes().count(b"\n")
    with DemoServer() as fast:
        done = drumfire("run", routes, "--url", fast.base_url + ROUTE, "-e", "code=code",
                        "-o", out, "--resume", "-q")
    assert done.returncode == 0, done.stderr
    ids = ids_in(out, fmt)
    assert sorted(ids, key=int) == [str(i) for i in range(1, 1501)]  # each id exactly once
    assert out.read_bytes().endswith(b"\n")
    assert before >= 0


def test_resume_refuses_a_different_column_set(server: DemoServer, tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 20)
    out = tmp_path / "o.csv"
    assert drumfire("run", routes, "--url", server.base_url + ROUTE, "-o", out, "-q",
                    "-e", "code=code").returncode == 0
    proc = drumfire("run", routes, "--url", server.base_url + ROUTE, "-o", out, "--resume")
    assert proc.returncode == 2
    assert "--resume" in proc.stderr


def test_resume_with_duplicate_ids_sends_the_missing_occurrence(
    server: DemoServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,lon1,lat1,lon2,lat2\n" + "".join(
        f"{i % 3},24.94,60.17,24.95,60.1{i}\n" for i in range(6)))
    out = tmp_path / "o.csv"
    # An earlier run wrote one row for id 0 only.
    out.write_text("id,status,elapsed_ms,attempts,error\n0,200,1.0,1,\n")
    proc = drumfire("run", source, "--url", server.base_url + ROUTE, "-o", out, "--resume")
    assert proc.returncode == 0, proc.stderr
    assert sorted(ids_in(out, "csv")) == ["0", "0", "1", "1", "2", "2"]
    assert "repeat an id" in proc.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_template_error_row_names_its_input_line_with_workers_too(
    server: DemoServer, tmp_path: Path, fmt: str
) -> None:
    # The workers prepare the rows; the parent reads the input and knows its lines.
    lines = ["id,v,note"] if fmt == "csv" else []
    bad: dict[str, int] = {}
    for i in range(1200):
        if i % 100 == 0:
            lines.append("")  # a blank line: the rows after it are one line further on
        v = ".." if i % 400 == 7 else str(i)
        if fmt == "csv":
            note = '"two\nlines"' if i % 150 == 0 else "one"
            lines.append(f"r{i},{v},{note}")
        else:
            lines.append(json.dumps({"id": f"r{i}", "v": v}))
        if v == "..":
            bad[f"r{i}"] = sum(entry.count("\n") + 1 for entry in lines)  # its line
    src = tmp_path / f"in.{fmt}"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    url = server.base_url + "/status/200/{v}"
    errors: dict[str, dict[str, str]] = {}
    for procs in ("1", "2"):
        out = tmp_path / f"out{procs}.csv"
        proc = drumfire("run", src, "--url", url, "-o", out, "-q", "-p", procs)
        assert proc.returncode == 0, proc.stderr
        errors[procs] = {r["id"]: r["error"] for r in read_csv(out) if r["error"]}
    assert errors["1"] == errors["2"]
    assert sorted(errors["2"]) == sorted(bad)
    for id_, line in bad.items():
        assert errors["2"][id_].startswith(f"template: line {line}: the value '..' (column 'v')")

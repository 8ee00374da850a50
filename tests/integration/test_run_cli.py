"""``drumfire run`` and ``drumfire demo`` as a user runs them: a subprocess, real files,
real servers on 127.0.0.1, real signals."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from servers import Action, ScriptedServer, refused_port, respond

from drumfire.demo import DemoServer, route_answer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
BASE_COLUMNS = ["id", "status", "elapsed_ms", "attempts", "error"]
CLI = [sys.executable, "-m", "drumfire.cli"]


def drumfire(
    *args: str | Path, stdin: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def expected(row: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return route_answer(
        float(row["lon1"]), float(row["lat1"]), float(row["lon2"]), float(row["lat2"])
    )


def assert_usage_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drumfire: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    return write_sample_routes(tmp_path / "routes.csv", 300, seed=11)


# -- inputs and outputs ----------------------------------------------------------------------


def test_csv_in_csv_out(demo_server: DemoServer, routes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    proc = drumfire(
        "run", routes, "--url", demo_server.base_url + ROUTE,
        "-e", "code=code", "-e", "duration=routes[0].duration", "-c", "8", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "drumfire: 300 rows" in proc.stderr
    assert f"results: {out}" in proc.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == [*BASE_COLUMNS, "code", "duration"]
    results = {r["id"]: r for r in read_rows(out)}
    inputs = read_rows(routes)
    assert len(read_rows(out)) == len(inputs) == len(results) == 300
    for row in inputs:
        status, body = expected(row)
        result = results[row["id"]]
        assert (result["status"], result["error"], result["attempts"]) == (str(status), "", "1")
        assert result["code"] == body["code"]
        if status == 200:
            assert float(result["duration"]) == body["routes"][0]["duration"]
        else:
            assert result["duration"] == ""


def test_jsonl_out(demo_server: DemoServer, routes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = drumfire(
        "run", routes, "--url", demo_server.base_url + ROUTE,
        "-e", "code=code", "-e", "distance=routes[0].distance", "-q", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # -q: no summary
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 300
    assert Counter(r["id"] for r in records) == Counter(str(i) for i in range(1, 301))
    inputs = {row["id"]: row for row in read_rows(routes)}
    for record in records:
        assert list(record) == [*BASE_COLUMNS, "code", "distance"]
        status, body = expected(inputs[record["id"]])
        assert (record["status"], record["error"], record["code"]) == (status, "", body["code"])
        if status == 200:
            assert record["distance"] == body["routes"][0]["distance"]
        else:
            assert record["distance"] is None


def test_stdin_to_stdout(demo_server: DemoServer, routes: Path) -> None:
    proc = drumfire(
        "run", "-", "--url", demo_server.base_url + ROUTE, "-e", "code=code", "-o", "-",
        stdin=routes.read_text(encoding="utf-8"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = read_csv(proc.stdout)
    assert len(results) == 300
    assert {r["id"] for r in results} == {str(i) for i in range(1, 301)}
    assert all(r["code"] in ("Ok", "NoRoute") and r["error"] == "" for r in results)
    assert "drumfire: 300 rows" in proc.stderr  # the summary goes to stderr, not the data


def test_keep_id_and_ordered(demo_server: DemoServer, routes: Path, tmp_path: Path) -> None:
    inputs = read_rows(routes)
    source = tmp_path / "keyed.csv"
    with source.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "label", "lon1", "lat1", "lon2", "lat2", "id"])
        for row in inputs:
            key = f"k{int(row['id']) * 7 % 1000:03d}"
            label = f"label, {row['id']}"
            writer.writerow([key, label, row["lon1"], row["lat1"], row["lon2"], row["lat2"], "x"])
    out = tmp_path / "out.csv"
    proc = drumfire(
        "run", source, "--url", demo_server.base_url + ROUTE, "--id", "key",
        "--keep", "label,lon1", "--ordered", "-c", "16", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["id", *BASE_COLUMNS[1:], "label", "lon1"]
        rows = list(csv.reader(fh))
    assert [r[0] for r in rows] == [f"k{int(row['id']) * 7 % 1000:03d}" for row in inputs]
    assert [r[5] for r in rows] == [f"label, {row['id']}" for row in inputs]
    assert [r[6] for r in rows] == [row["lon1"] for row in inputs]


def test_keep_names_a_column_with_a_comma_in_double_quotes(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # The value of --keep is split on commas; a name holding one is quoted, as in
    # a CSV header (and as xsv takes it). Plain names and repeated --keep as before.
    source = tmp_path / "in.csv"
    source.write_text('id,q,"lat, lon","say ""hi""",plain\n1,x,"60.1, 24.9",yes,p\n')
    out = tmp_path / "out.csv"
    proc = drumfire(
        "run", source, "--url", demo_server.url("/status/200?q={q}"),
        "--keep", '"lat, lon", plain', "--keep", '"say ""hi""",q', "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        header, row = list(csv.reader(fh))
    assert header == [*BASE_COLUMNS, "lat, lon", "plain", 'say "hi"', "q"]
    assert row[5:] == ["60.1, 24.9", "p", "yes", "x"]
    # without the quotes, the name is cut at its comma, and named as the user wrote it
    proc = drumfire("run", source, "--url", demo_server.url("/"), "--keep", "lat, lon")
    assert_usage_error(proc, "--keep names column 'lat'")
    proc = drumfire("run", source, "--url", demo_server.url("/"), "--keep", '"lat, lon')
    assert_usage_error(proc, "--keep '\"lat, lon': the quote at position 0 is not closed")


def test_keeping_a_column_named_like_an_output_column_is_refused(
    demo_server: DemoServer, routes: Path, tmp_path: Path
) -> None:
    proc = drumfire(
        "run", routes, "--url", demo_server.base_url + ROUTE, "--keep", "id", "-o",
        tmp_path / "out.csv",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "'id'" in proc.stderr


def test_some_rows_failing_still_exits_0(demo_server: DemoServer, tmp_path: Path) -> None:
    with refused_port() as port:
        urls = tmp_path / "urls.txt"
        urls.write_text(
            "\n".join(
                [demo_server.url("/status/200"), demo_server.url("/status/500")] * 5
                + [f"http://127.0.0.1:{port}/nothing"] * 3
            )
            + "\n"
        )
        out = tmp_path / "out.csv"
        proc = drumfire("run", urls, "--retries", "0", "-o", out)
    assert proc.returncode == 0, proc.stderr
    results = read_rows(out)
    assert len(results) == 13
    assert Counter((r["status"], r["error"]) for r in results) == {
        ("200", ""): 5,
        ("500", ""): 5,
        ("", "connect"): 3,
    }
    assert "failed 8" in proc.stderr


# -- usage errors: exit 2, one line ----------------------------------------------------------


def test_template_naming_a_missing_column(routes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{lon1}/{nope}", "-o", out)
    assert_usage_error(proc, "'nope'")
    assert not out.exists()


def test_a_format_spec_in_the_url_is_one_line_saying_what_templates_take(
    routes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    url = "http://127.0.0.1:9/{lon1:.3f}/{lat1}"
    proc = drumfire("run", routes, "--url", url, "-o", out)
    message = assert_usage_error(
        proc, f"--url {url!r}: placeholder {{lon1:.3f}} is not supported: for column 'lon1' write "
    )
    assert "{column} and {+column} only (RFC 6570 levels 1 and 2" in message
    assert not out.exists()


def test_a_bad_port_in_the_url_is_a_usage_error(routes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:80x/{lon1}", "-o", out)
    assert_usage_error(proc, "127.0.0.1:80x", "bad port")
    assert not out.exists()


@pytest.mark.parametrize(
    "option", ["--keep=nope", "--id=nope", "--header=X-A: {nope}", "--data={nope}"]
)
def test_other_options_naming_a_missing_column(routes: Path, option: str) -> None:
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{lon1}", option, "-o", "-")
    assert_usage_error(proc, "'nope'")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "expr",
    [
        "d=routes[0",
        "x=[?",
        "=code",
        "d=",
        "a.b.c",
    ],
)
def test_malformed_extract_expression(routes: Path, expr: str) -> None:
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{lon1}", "-e", expr)
    assert_usage_error(proc, "--extract")


def test_malformed_extract_expression_still_exits_2(routes: Path) -> None:
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{lon1}", "-e", "d=routes[0")
    assert proc.returncode == 2
    assert proc.stderr.startswith("drumfire: error: bad --extract expression 'routes[0'")
    assert "Traceback" not in proc.stderr


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    proc = drumfire("run", missing, "--url", "http://127.0.0.1:9/{lon1}")
    assert_usage_error(proc, str(missing))


@pytest.mark.parametrize("where", ["missing-dir/out.csv", "."], ids=["no-dir", "a-dir"])
def test_unwritable_output(routes: Path, tmp_path: Path, where: str) -> None:
    out = tmp_path / where
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{lon1}", "-o", out)
    assert_usage_error(proc, "cannot write output")


# -- signals ---------------------------------------------------------------------------------


def _wait_for_lines(path: Path, lines: int, proc: subprocess.Popen[str]) -> None:
    for _ in range(1200):  # up to a minute: a bounded wait for the event, not a timing claim
        if path.exists() and path.read_bytes().count(b"\n") >= lines:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not get {lines} lines")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_run_keeping_whole_rows(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 2000)
    out = tmp_path / "out.csv"
    with DemoServer(latency=0.3) as srv:
        proc = subprocess.Popen(
            [*CLI, "run", str(routes), "--url", srv.base_url + ROUTE, "-e", "code=code",
             "-c", "4", "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _wait_for_lines(out, 2, proc)  # the run is under way: it flushes once a second
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == code, stderr
    assert stdout == ""
    assert "drumfire:" in stderr
    assert "stopped early" in stderr
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [*BASE_COLUMNS, "code"]
    assert all(len(r) == 6 for r in rows)
    ids = [r[0] for r in rows[1:]]
    assert 4 <= len(ids) < 2000
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {str(i) for i in range(1, 2001)}
    assert all(r[4] in ("", "cancelled") for r in rows[1:])
    assert f"drumfire: {len(ids):,} rows" in stderr


def test_sigint_while_rows_wait_for_retry_after(tmp_path: Path) -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return respond(503, b"", [("Retry-After", "3600")])

    urls = tmp_path / "urls.txt"
    with ScriptedServer(handler) as srv:
        urls.write_text("".join(srv.url(f"/{i}") + "\n" for i in range(4)))
        proc = subprocess.Popen(
            [*CLI, "run", str(urls), "-c", "4", "-o", str(tmp_path / "out.csv"),
             "--max-retry-wait", "10000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            for _ in range(1200):  # up to a minute
                if len(srv.requests) >= 4:
                    break
                time.sleep(0.05)
            assert len(srv.requests) == 4
            proc.send_signal(signal.SIGINT)
            # The retries are due in an hour: a run that waited for them could not end within
            # this guard (an event, not a timing claim).
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert len(srv.requests) == 4  # no retry was sent
    assert proc.returncode == 130
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(encoding="utf-8"))))
    assert sorted(r["error"] for r in rows) == ["cancelled"] * 4


# -- demo ------------------------------------------------------------------------------------


def test_demo_command(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = drumfire("demo", "-n", "500", "--dir", folder)
    assert proc.returncode == 0, proc.stderr
    results = read_rows(folder / "results.csv")
    assert len(results) == 500
    assert {r["id"] for r in results} == {str(i) for i in range(1, 501)}
    assert all(r["error"] == "" and r["code"] in ("Ok", "NoRoute") for r in results)
    assert len(read_rows(folder / "routes.csv")) == 500
    assert "first rows of" in proc.stderr


def test_bench_and_compare_load_only_when_used() -> None:
    # `drumfire run` counts its own start-up in its throughput: importing the
    # command line must not import the bench and compare commands (the
    # ``drumfire.bench()`` function of the Python API is light and stays)...
    probe = (
        "import sys, drumfire.cli; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('drumfire.bench.cli', 'drumfire.compare'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert proc.stdout.strip() == "[]"
    # ...yet both are listed and work.
    listing = drumfire("--help")
    assert listing.returncode == 0
    assert "bench" in listing.stdout
    assert "compare" in listing.stdout
    for command in ("bench", "compare"):
        proc = drumfire(command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert f" {command} [OPTIONS]" in proc.stdout.splitlines()[0]


@pytest.mark.parametrize("fail", [False, True])
def test_run_skips_the_interpreter_teardown_but_nothing_else(
    demo_server: DemoServer, routes: Path, tmp_path: Path, fail: bool
) -> None:
    # entry() ends `run` with os._exit once its files are closed: atexit
    # handlers (the teardown) do not run, yet every row is written, stdout is
    # flushed and the exit status is kept. Other commands exit the usual way.
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}{ROUTE}" if fail else demo_server.base_url + ROUTE
        _check_quick_exit(routes, url, fail)


def _check_quick_exit(routes: Path, url: str, fail: bool) -> None:
    probe = (
        "import atexit, sys; atexit.register(print, 'teardown', file=sys.stderr); "
        "from drumfire.cli import entry; sys.argv[0] = 'drumfire'; entry()"
    )
    args = ["run", routes, "--url", url, "-e", "code=code", "--retries", "0", "-o", "-"]
    if fail:  # every row, although the target is unreachable
        args.append("--keep-going")
    proc = subprocess.run(
        [sys.executable, "-c", probe, *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "teardown" not in proc.stderr
    rows = read_csv(proc.stdout)
    assert len(rows) == 300
    assert {r["error"] for r in rows} == ({"connect"} if fail else {""})
    usage = subprocess.run(
        [sys.executable, "-c", probe, "run", str(routes), "--url", "http://x/{nope}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert usage.returncode == 2
    assert "teardown" in usage.stderr  # a usage error exits the usual way
    # --parse loads user code: its atexit handlers and files see the usual shutdown.
    parser = routes.parent / "parser.py"
    parser.write_text(
        "import atexit, sys\n"
        "atexit.register(print, 'parser teardown', file=sys.stderr)\n"
        "def parse(response):\n    return {'n': len(response.body)}\n"
    )
    parsed = subprocess.run(
        [sys.executable, "-c", probe, *map(str, args), "--parse", f"{parser}:parse"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0, parsed.stderr
    assert "parser teardown" in parsed.stderr
    assert len(read_csv(parsed.stdout)) == 300
    version = subprocess.run(
        [sys.executable, "-c", probe, "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert version.returncode == 0
    assert "teardown" in version.stderr


def test_progress_on_a_terminal_shows_the_total(routes: Path, tmp_path: Path) -> None:
    # Counting the rows first is skipped only when nothing is displayed.
    import os
    import pty

    master, slave = pty.openpty()
    try:
        with DemoServer(latency=0.02) as slow:  # about 0.6 s: the display draws
            proc = subprocess.run(
                [
                    *CLI,
                    "run",
                    str(routes),
                    "--url",
                    slow.base_url + ROUTE,
                    "-c",
                    "10",
                    "-o",
                    str(tmp_path / "out.csv"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=slave,
                timeout=30,
                check=False,
            )
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"/300 (" in shown, shown[-500:]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_progress_of_a_resumed_run_starts_at_the_rows_done(
    routes: Path, tmp_path: Path, processes: str
) -> None:
    import os
    import pty
    import re

    out = tmp_path / "out.csv"
    with DemoServer() as fast:
        assert drumfire("run", routes, "--url", fast.base_url + ROUTE, "-o", out).returncode == 0
    # As if the run had stopped after 200 of its 300 rows.
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:201]))
    master, slave = pty.openpty()
    try:
        with DemoServer(latency=0.02) as slow:  # about 1 s for the last 100: the display draws
            proc = subprocess.run(
                [*CLI, "run", str(routes), "--url", slow.base_url + ROUTE, "-c", "2",
                 "-p", processes, "-o", str(out), "--resume"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                timeout=30, check=False,
            )  # fmt: skip
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's side is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    counts = [int(n.replace(b",", b"")) for n in re.findall(rb"([\d,]+)/300 \(", shown)]
    assert counts, shown[-500:]
    assert counts[0] >= 200, counts  # the 200 rows already in the output count from the start
    assert len(read_rows(out)) == 300


def test_cells_with_a_lone_carriage_return_resume_and_retry_once(tmp_path: Path) -> None:
    """A CR alone in an id, an extracted value and a kept value: --resume reads the CSV
    output back row for row, and --retry-failed rewrites it so. Such cells used to be
    written bare and read back as two rows each: every resume sent those rows again and
    wrote them twice, and --retry-failed tore them apart once more."""
    n = 12
    ids = [f"r{i}\rx" if i % 3 == 0 else f"r{i}" for i in range(n)]
    src = tmp_path / "in.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\r\n")  # a CR inside a quoted cell
        writer.writerow(["id", "n", "k"])
        writer.writerows([id_, i, f"k\r{i}"] for i, id_ in enumerate(ids))
    seen: Counter[int] = Counter()

    def handler(index: int, method: str, target: str, headers: Any, body: bytes) -> Action:
        i = int(target.rsplit("/", 1)[1])
        seen[i] += 1
        if i in (0, 4) and seen[i] == 1:  # fails once: --retry-failed sends it again
            return respond(503, {"v": "a\rb"})
        return respond(200, {"v": f"v\r{i}"})

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        common = [src, "--url", srv.url("/{n}"), "-e", "v=v", "--keep", "k", "-o", out,
                  "--retries", "0", "-q"]  # fmt: skip
        first = drumfire("run", *common, "-n", "6")
        assert first.returncode == 0, first.stderr
        for again in (["--resume"], ["--retry-failed", "503"], ["--resume"]):
            proc = drumfire("run", *common, *again)
            assert proc.returncode == 0, proc.stderr
    got = read_rows(out)
    assert Counter(r["id"] for r in got) == Counter(ids)
    assert all(r["status"] == "200" for r in got), got
    assert all(r["v"] == f"v\r{i}" and r["k"] == f"k\r{i}" for i, r in
               ((int(r["v"][2:]), r) for r in got))  # fmt: skip
    assert seen == Counter({i: 2 if i in (0, 4) else 1 for i in range(n)})

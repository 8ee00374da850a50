"""A run you can trust when it is stopped, restarted, shares a file or meets a full disk.

Real ``drumfire run`` processes against servers on 127.0.0.1; every wait is
for an event (a request reaching the server, lines reaching the output), never
for a guessed time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_errors import one_error_line
from servers import Action, ScriptedServer, refused_port, reset, respond, stall

from drumfire import InputError
from drumfire import run as run_api
from drumfire.demo import DemoServer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
CLI = [sys.executable, "-m", "drumfire.cli"]
Headers = dict[str, str]


def drumfire(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def start(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[str] | None = None) -> None:
    for _ in range(1200):  # up to a minute: a bounded wait for the event, not a timing claim
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("the awaited event did not come")


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def url_list(path: Path, srv: ScriptedServer, n: int) -> Path:
    path.write_text("".join(srv.url(f"/{i}") + "\n" for i in range(1, n + 1)))
    return path


def targets(srv: ScriptedServer, since: int = 0) -> list[str]:
    return [r.target for r in srv.requests[since:]]


@pytest.fixture
def stopped_run(tmp_path: Path) -> Iterator[tuple[Path, Path, ScriptedServer, threading.Event]]:
    """A scripted server that answers 200, except /7.. with 503 Retry-After until healed."""
    healed = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if healed.is_set() or int(target[1:]) <= 6:
            return respond(200, {"n": int(target[1:])})
        return respond(503, b"", [("Retry-After", "30")])

    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 10)
        yield urls, tmp_path / "out.csv", srv, healed


# -- resume finishes the job -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "processes"), [(signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGINT, "2")]
)
def test_resume_sends_the_cancelled_rows_again(
    stopped_run: tuple[Path, Path, ScriptedServer, threading.Event],
    signum: signal.Signals,
    processes: str,
) -> None:
    urls, out, srv, healed = stopped_run
    # -c 1: rows 1-6 are answered, rows 7-10 each wait 30 s for their retry
    # (Retry-After delays only its own row).
    proc = start("run", urls, "-c", "1", "-p", processes, "-e", "n=n", "-o", out)
    try:
        wait_until(lambda: "/10" in targets(srv) and lines_in(out) >= 7, proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, stderr
    first = rows(out)
    assert sorted(((r["id"], r["error"]) for r in first), key=lambda p: int(p[0])) == [
        *((str(i), "") for i in range(1, 7)),
        *((str(i), "cancelled") for i in range(7, 11)),
    ]
    # The summary says how to finish the job, as a command to paste.
    hint = next(line for line in stderr.splitlines() if "resume with:" in line)
    assert hint.strip().startswith("resume with: drumfire run ")
    assert hint.endswith(" --resume")
    assert f" {out}" in hint
    healed.set()
    sent = len(srv.requests)
    done = drumfire("run", urls, "-e", "n=n", "-o", out, "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(targets(srv, sent), key=lambda t: int(t[1:])) == ["/7", "/8", "/9", "/10"]
    final = rows(out)
    assert sorted(int(r["id"]) for r in final) == list(range(1, 11))  # each id once
    assert all(r["status"] == "200" and r["error"] == "" for r in final)
    assert final[:6] == first[:6]  # the rows already done are untouched
    # Nothing left to do: a third run sends nothing and changes nothing.
    before, sent = out.read_bytes(), len(srv.requests)
    again = drumfire("run", urls, "-e", "n=n", "-o", out, "--resume", "-q")
    assert again.returncode == 0, again.stderr
    assert len(srv.requests) == sent
    assert out.read_bytes() == before


def test_retry_failed_sends_again_only_the_chosen_failures(tmp_path: Path) -> None:
    healed = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        n = int(target[1:])
        if healed.is_set() or n not in (3, 4, 5, 6):
            return respond(200, {"n": n})
        if n == 3:
            return reset()
        if n == 4:
            return respond(503, b"")
        if n == 5:
            return respond(404, b"")
        return stall(60)  # 6: a timeout (the stall ends with the server)

    out = tmp_path / "out.jsonl"
    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 10)
        common = ["run", urls, "--retries", "0", "--timeout", "5", "-o", out, "-q"]
        first = drumfire(*common)
        assert first.returncode == 0, first.stderr
        before = {json.loads(line)["id"]: line for line in out.read_text().splitlines()}
        assert {k: json.loads(v)["error"] or json.loads(v)["status"] for k, v in before.items()
                if k in "3456"} == {"3": "reset", "4": 503, "5": 404, "6": "timeout"}  # fmt: skip
        healed.set()
        sent = len(srv.requests)
        # The default: transport errors and 429/502/503/504, not a 404 (an answer).
        again = drumfire(*common, "--retry-failed")
        assert again.returncode == 0, again.stderr
        assert sorted(targets(srv, sent)) == ["/3", "/4", "/6"]
        after = {json.loads(line)["id"]: line for line in out.read_text().splitlines()}
        assert len(out.read_text().splitlines()) == 10  # no second row for a re-sent id
        assert {k: v for k, v in after.items() if k not in "346"} == {
            k: v for k, v in before.items() if k not in "346"
        }  # the successes (and the 404) are byte for byte the same
        assert all(json.loads(after[k])["status"] == 200 for k in "346")
        # A list names what to send again: here the 404 (not quiet: one row, said so).
        sent = len(srv.requests)
        loud = [a for a in common if a != "-q"]
        listed = drumfire(*loud, "--retry-failed", "404,connect")
        assert listed.returncode == 0, listed.stderr
        assert targets(srv, sent) == ["/5"]
        said = listed.stderr.splitlines()
        assert said[0] == (
            f"drumfire: 1 row of {out} will be sent again (cancelled, or chosen by --retry-failed)"
        )
        assert said[1].startswith("drumfire: 1 row in ")
        assert "  resumed: 9 rows were already in the output" in said
        final = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(int(r["id"]) for r in final) == list(range(1, 11))
        assert all(r["status"] == 200 and r["error"] == "" for r in final)


def test_retry_failed_needs_a_file_and_valid_names(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("http://127.0.0.1:9/\n")
    one_error_line(drumfire("run", urls, "--retry-failed"), 2, "--retry-failed", "output file")
    bad = drumfire("run", urls, "-o", tmp_path / "o.csv", "--retry-failed=connect,nope")
    one_error_line(bad, 2, "--retry-failed", "'nope'")
    both = drumfire("run", urls, "-o", tmp_path / "o.csv", "--resume", "--overwrite")
    one_error_line(both, 2, "--resume", "--overwrite")


# -- input-error rows ---------------------------------------------------------------------------


@pytest.mark.parametrize("processes", ["1", "2"])
def test_input_error_rows_take_no_real_id_and_resume_keeps_each_once(
    demo_server: DemoServer, tmp_path: Path, processes: str
) -> None:
    lines = []
    for i in range(1, 41):
        if i % 10 == 3:
            lines.append("{not json")  # lines 3, 13, 23, 33
        else:
            lines.append(json.dumps({"id": str(i), "lon1": "24.94", "lat1": "60.17",
                                     "lon2": "24.95", "lat2": "60.16"}))  # fmt: skip
    # A real row whose id is the number of a broken line: it must get its own row.
    lines.append(json.dumps({"id": "3", "lon1": "24.94", "lat1": "60.17", "lon2": "24.95",
                             "lat2": "60.16"}))  # fmt: skip
    source = tmp_path / "in.jsonl"
    # A blank line first: the errors name the file's lines (4, 14...), whatever -p.
    source.write_text("\n" + "\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    summary = tmp_path / "s.json"
    url = demo_server.base_url + ROUTE
    for resume in ([], ["--resume"], ["--resume"]):
        proc = drumfire("run", source, "--url", url, "-p", processes, "-o", out, "-q",
                        "--summary-json", summary, *resume)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    figures = json.loads(summary.read_text())
    assert (figures["rows"], figures["skipped"]) == (0, 41)  # the last resume had nothing to do
    result = rows(out)
    real = [r["id"] for r in result if not r["error"].startswith("input:")]
    errors = [r for r in result if r["error"].startswith("input:")]
    assert Counter(real) == Counter([str(i) for i in range(1, 41) if i % 10 != 3] + ["3"])
    assert sorted(r["error"].split(":")[1] for r in errors) == [" line 14", " line 24",
                                                                " line 34", " line 4"]  # fmt: skip
    assert all(r["id"] == "" for r in errors)  # no real row has an empty id
    assert all(r["status"] == "200" for r in result if r["id"] == "3")


# -- no silent overwrite -----------------------------------------------------------------------


def test_an_existing_output_is_kept_unless_the_user_says_otherwise(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 30)
    out = tmp_path / "out.csv"
    url = demo_server.base_url + ROUTE
    assert drumfire("run", routes, "--url", url, "-o", out, "-q").returncode == 0
    before = out.read_bytes()
    again = drumfire("run", routes, "--url", url, "-o", out, "-q")
    one_error_line(again, 2, str(out), "--resume", "--overwrite")
    assert out.read_bytes() == before
    # An empty file is no loss: it is used as if new.
    empty = tmp_path / "empty.csv"
    empty.touch()
    assert drumfire("run", routes, "--url", url, "-o", empty, "-q").returncode == 0
    assert len(rows(empty)) == 30
    # --overwrite replaces; standard output is never refused.
    replaced = drumfire("run", routes, "--url", url, "-o", out, "-q", "--overwrite",
                        "-e", "code=code")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert len(rows(out)) == 30
    assert "code" in rows(out)[0]
    to_stdout = drumfire("run", routes, "--url", url, "-q")
    assert to_stdout.returncode == 0
    assert len(list(csv.DictReader(io.StringIO(to_stdout.stdout)))) == 30


def test_an_output_that_cannot_be_read_is_named_in_one_line(tmp_path: Path) -> None:
    # Read to see whether it holds results, with or without --resume: the line names
    # the output, not an option the user did not give.
    routes = write_sample_routes(tmp_path / "routes.csv", 3)
    url = "http://127.0.0.1:9" + ROUTE  # nothing is sent
    broken_csv = tmp_path / "o.csv"
    broken_csv.write_bytes(b"id,status\n\xff\xfe,1\n")
    resumed = drumfire("run", routes, "--url", url, "-o", broken_csv, "--resume")
    line = one_error_line(resumed, 2, f"cannot read output '{broken_csv}'", "utf-8")
    assert "--resume" not in line
    broken_parquet = tmp_path / "o.parquet"
    broken_parquet.mkdir()
    (broken_parquet / "part-00000.parquet").write_bytes(b"junk")
    fresh = drumfire("run", routes, "--url", url, "-o", broken_parquet)
    line = one_error_line(fresh, 2, f"cannot read output '{broken_parquet}'")
    assert "--resume" not in line


def test_a_usage_error_leaves_no_new_output_behind(tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 3)
    out = tmp_path / "out.csv"
    proc = drumfire("run", routes, "--url", "http://127.0.0.1:9/{nope}", "-o", out)
    assert proc.returncode == 2
    assert not out.exists()


# -- one writer --------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_second_run_on_the_same_output_stops_at_once(tmp_path: Path, processes: str) -> None:
    release = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if target == "/1":
            release.wait(120)  # the first run stays under way until the test lets it end
        return respond(200, {"n": target})

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 20)
        first = start("run", urls, "-p", processes, "-o", out, "-q")
        try:
            wait_until(lambda: "/1" in targets(srv), first)  # the lock is taken before this
            for extra in ([], ["--resume"], ["--overwrite"], ["--retry-failed"]):
                second = drumfire("run", urls, "-o", out, *extra)
                one_error_line(second, 2, str(out), "another drumfire run", f"pid {first.pid}")
            release.set()
            first.communicate(timeout=60)
        finally:
            release.set()
            if first.poll() is None:
                first.kill()
                first.communicate()
        assert first.returncode == 0
        assert sorted(int(r["id"]) for r in rows(out)) == list(range(1, 21))
        # Once the first run is over, the file is free again.
        assert drumfire("run", urls, "-o", out, "--resume", "-q").returncode == 0


def test_a_killed_run_leaves_no_lock(tmp_path: Path) -> None:
    release = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if not release.is_set() and target == "/5":
            release.wait(20)
        return respond(200, b"{}")

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 10)
        first = start("run", urls, "-c", "1", "-o", out, "-q")
        try:
            wait_until(lambda: "/5" in targets(srv), first)
            first.kill()
            first.communicate(timeout=60)
        finally:
            release.set()
        done = drumfire("run", urls, "-o", out, "--resume", "-q")
        assert done.returncode == 0, done.stderr
        assert sorted(int(r["id"]) for r in rows(out)) == list(range(1, 11))


# -- clear ends --------------------------------------------------------------------------------


def test_a_full_disk_found_before_the_first_request_exits_2(tmp_path: Path) -> None:
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 50)
        proc = drumfire("run", urls, "-o", "/dev/full")  # the CSV header is written first
        one_error_line(proc, 2, "'/dev/full'", "No space left on device")
        assert srv.requests == []
        # JSON Lines has no header, and /dev/full is not a file, where room could be
        # reserved first (a full disk is: test_run_full_disk.py): the first flush meets it.
        late = drumfire("run", urls, "-o", "/dev/full", "--output-format", "jsonl")
        one_error_line(late, 1, "'/dev/full'", "No space left on device")
        assert "Traceback" not in late.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_full_disk_under_way_is_one_line_and_exit_1(tmp_path: Path, processes: str) -> None:
    # About 1.5 MB of rows: more than the 1 MiB output buffer, which overflows under way.
    with DemoServer() as srv:
        routes = write_sample_routes(tmp_path / "routes.csv", 12_000)
        proc = drumfire("run", routes, "--url", srv.base_url + ROUTE, "-p", processes,
                        "--keep", "lon1,lat1,lon2,lat2", "--output-format", "jsonl",
                        "-o", "/dev/full", timeout=110)  # fmt: skip
    one_error_line(proc, 1, "cannot write output '/dev/full': No space left on device")


@pytest.mark.parametrize("how", ["read-ahead", "--no-read-ahead", "-p 2"])
def test_an_input_cut_short_is_one_line_and_exit_1(
    demo_server: DemoServer, tmp_path: Path, how: str
) -> None:
    # A .gz whose end is missing: the rows before it are sent, then one line names the input.
    whole = gzip.compress(b"id,q\n" + b"".join(b"%d,v%d\n" % (i, i) for i in range(60_000)))
    cut = tmp_path / "in.csv.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out = tmp_path / "out.csv"
    extra = [] if how == "read-ahead" else how.split()
    proc = drumfire("run", cut, "--url", demo_server.base_url + "/echo?q={q}", "-o", out, "-q",
                    *extra, timeout=110)  # fmt: skip
    one_error_line(proc, 1, f"cannot read input '{cut}': Compressed file ended")
    assert len(rows(out)) > 1000  # those read before the end were sent and written
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(b"id,q\n1,v\n")  # not gzip at all: found before the first request
    early = drumfire("run", plain, "--url", demo_server.base_url + "/echo?q={q}", *extra)
    one_error_line(early, 2, f"cannot read input '{plain}': Not a gzipped file")


@pytest.mark.parametrize("keep", [12, 30, 5])
def test_a_gz_cut_in_its_first_block_is_one_line_before_the_first_request(
    tmp_path: Path, keep: int
) -> None:
    # Cut within its first block (a small file, or a copy or a compression stopped
    # early), the .gz failed on the first look at its bytes (is it UTF-16?), outside
    # the guard of its reads: click's "Aborted!", exit 1, the input unnamed; the
    # Python API raised EOFError. (5 bytes: the gzip header cut.)
    whole = gzip.compress(b"id\n" + b"".join(b"%d\n" % i for i in range(1, 21)))
    cut = tmp_path / "in.csv.gz"
    cut.write_bytes(whole[:keep] if keep < 20 else whole[:-keep])
    out = tmp_path / "out.csv"
    proc = drumfire("run", cut, "--url", "http://127.0.0.1:9/{id}", "-o", out)
    one_error_line(proc, 2, f"cannot read input '{cut}': Compressed file ended")
    assert not out.exists()
    with pytest.raises(InputError, match="Compressed file ended"):
        list(run_api(str(cut), "http://127.0.0.1:9/{id}"))


def test_a_pipelined_run_sends_every_row_read_before_the_input_fails(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # The pipelined fill takes its rows many at a time: an input that fails among them
    # must not take the rows read before it along (they are sent, then the error ends it).
    from drumfire._sources import open_source

    whole = gzip.compress(b"id,q\n" + b"".join(b"%d,v%d\n" % (i, i) for i in range(60_000)))
    cut = tmp_path / "in.csv.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    source = open_source(str(cut), None, "utf-8", count=False)
    read: list[object] = []
    with pytest.raises(Exception, match="Compressed file ended"):
        read.extend(source.items)  # (extend keeps what it took before the error)
    readable = len(read)
    assert readable > 1000
    out = tmp_path / "out.csv"
    pipelined = [sys.executable, "-c", "from drumfire._engine import Engine; "
                 "Engine.CPU_SURE = 0.0; from drumfire.cli import entry; entry()"]  # fmt: skip
    proc = subprocess.run(
        [*map(str, pipelined), "run", str(cut), "--url", demo_server.base_url + "/echo?q={q}",
         "-o", str(out), "-q", "--no-read-ahead"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    one_error_line(proc, 1, f"cannot read input '{cut}': Compressed file ended")
    got = rows(out)
    assert sorted(int(r["id"]) for r in got) == list(range(readable))
    assert set(Counter(r["status"] or r["error"] for r in got)) <= {"200", "cancelled"}


@pytest.mark.parametrize("fmt", [None, "csv", "jsonl", "text", "parquet"])
@pytest.mark.parametrize("kind", ["parquet", "gzip"])
def test_parquet_or_gzip_on_standard_input_is_one_line_saying_what_works(
    tmp_path: Path, kind: str, fmt: str | None
) -> None:
    # Neither can be read from stdin (Parquet needs its footer, gzip is known by the
    # file's name): one line says to give the path, before any request.
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "parquet":
        pq.write_table(pa.table({"id": ["1"], "q": ["v"]}), tmp_path / "in.parquet")
        data = (tmp_path / "in.parquet").read_bytes()
        needle = "standard input (-) holds Parquet, which drumfire reads only from a path"
    else:
        data = gzip.compress(b"id,q\n1,v\n")
        needle = "standard input (-) is gzip-compressed: give the file's path instead of -"
    if fmt == "parquet":  # said with --format: the same line, whatever the bytes
        needle = "standard input (-) holds Parquet"
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        given = [] if fmt is None else ["--format", fmt]
        proc = subprocess.run(
            [*CLI, "run", "-", *given, "--url", srv.url("/?q={q}"), "-o", tmp_path / "out.csv"],
            input=data, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert srv.requests == []
    text = subprocess.CompletedProcess(proc.args, proc.returncode, "", proc.stderr.decode())
    one_error_line(text, 2, needle)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_json_lines_integers_past_64_bits_go_out_exact(
    demo_server: DemoServer, tmp_path: Path, processes: str
) -> None:
    # orjson reads them as floats; so did the worker processes' pipe (-p 2).
    rows_in = tmp_path / "in.jsonl"
    rows_in.write_text('{"id": "a", "n": 1234567890123456789012}\n{"id": "b", "n": 5}\n')
    out = tmp_path / "out.csv"
    proc = drumfire("run", rows_in, "--url", demo_server.base_url + "/echo?q={n}",
                    "-e", "q=query.q", "--keep", "n", "-o", out, "-q", "-p", processes)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = {r["id"]: (r["q"], r["n"]) for r in rows(out)}
    assert got == {"a": ("1234567890123456789012",) * 2, "b": ("5", "5")}


def test_standard_output_closed_is_one_line(demo_server: DemoServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(demo_server.base_url + "/json\n")
    argv = shlex.join([*CLI, "run", str(urls), "-o", "-"])
    proc = subprocess.run(["bash", "-c", f"exec {argv} >&-"], capture_output=False,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=False)  # fmt: skip
    one_error_line(proc, 2, "cannot write output standard output: it is closed")


@pytest.mark.parametrize("quiet", [["-q"], []], ids=["quiet", "progress"])
def test_standard_error_closed_changes_nothing(
    demo_server: DemoServer, tmp_path: Path, quiet: list[str]
) -> None:
    # `2>&-` (cron jobs, daemons): nothing to say it on, and nothing went wrong.
    urls = tmp_path / "urls.txt"
    urls.write_text(demo_server.base_url + "/json\n")
    out = tmp_path / "out.csv"
    argv = shlex.join([*CLI, "run", str(urls), "-o", str(out), *quiet])
    proc = subprocess.run(["bash", "-c", f"exec {argv} 2>&-"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0
    assert out.read_text().count("\n") == 2  # the header and the row


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl"])
def test_standard_output_closed_loses_no_row_of_a_file_output(
    demo_server: DemoServer, tmp_path: Path, name: str
) -> None:
    # `>&-` with -o FILE: the JSON Lines sink looked up sys.stdout.buffer when it
    # closed (sys.stdout is None then) and lost its buffered rows with a traceback.
    urls = tmp_path / "urls.txt"
    urls.write_text((demo_server.base_url + "/json\n") * 3)
    out = tmp_path / name
    argv = shlex.join([*CLI, "run", str(urls), "-o", str(out), "-q"])
    proc = subprocess.run(["bash", "-c", f"exec {argv} >&-"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert out.read_text().count("\n") == (4 if name.endswith(".csv") else 3)


@pytest.mark.parametrize(
    "where", ["missing-dir/s.json", "a-dir", "a-file/s.json"], ids=["no-dir", "dir", "under-file"]
)
def test_an_unwritable_summary_is_found_before_the_first_request(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("x")
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 5)
        proc = drumfire("run", urls, "-o", tmp_path / "out.csv",
                        "--summary-json", tmp_path / where)  # fmt: skip
        one_error_line(proc, 2, "--summary-json", str(tmp_path / where))
        assert srv.requests == []
    assert not (tmp_path / "out.csv").exists()


def _held_run(
    tmp_path: Path, out: Path, extra: list[str | Path], remove: Path
) -> subprocess.CompletedProcess[str]:
    """Run until its output has rows, remove ``remove``, then let the run end."""
    release = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if target == "/20":
            release.wait(120)
        return respond(200, b"{}")

    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 20)
        proc = start("run", urls, "-o", out, "-q", *extra)
        try:
            wait_until(lambda: lines_in(out) >= 2, proc)  # rows flushed: the run is under way
            shutil.rmtree(remove)
            release.set()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_the_output_directory_removed_under_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    out = folder / "out.csv"
    proc = _held_run(tmp_path, out, [], folder)
    one_error_line(proc, 1, f"cannot write output {str(out)!r}", "removed during the run")


def test_the_summary_directory_removed_under_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "figures"
    folder.mkdir()
    summary = folder / "s.json"
    out = tmp_path / "out.csv"
    proc = _held_run(tmp_path, out, ["--summary-json", summary], folder)
    one_error_line(proc, 1, "--summary-json", str(summary), "No such file or directory")
    assert len(rows(out)) == 20  # every row was written all the same


# -- exit status for scripts -------------------------------------------------------------------


def test_fail_on_error_gives_scripts_exit_status_3(tmp_path: Path) -> None:
    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        return respond(503 if target == "/2" else 200, b"{}")

    with ScriptedServer(handler) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 4)

        def run(*extra: str) -> int:
            out = tmp_path / "out.csv"
            out.unlink(missing_ok=True)
            return drumfire("run", urls, "--retries", "0", "-o", out, "-q", *extra).returncode

        assert run() == 0
        assert run("--fail-on-error") == 0  # an HTTP status is an answer, not an error
        assert run("--fail-on-error", "5xx") == 3
        assert run("--fail-on-error=503") == 3
        assert run("--fail-on-error=404,timeout") == 0
    with refused_port() as port:
        urls.write_text(f"http://127.0.0.1:{port}/\n")
        out = tmp_path / "dead.csv"
        assert drumfire("run", urls, "--retries", "0", "-o", out, "-q").returncode == 0
        failing = drumfire("run", urls, "--retries", "0", "-o", out, "--overwrite",
                           "--fail-on-error")  # fmt: skip
        assert failing.returncode == 3
        assert "--fail-on-error" in failing.stderr
        assert "re-send the failed rows with: drumfire run " in failing.stderr


def test_no_rerun_hint_for_an_output_that_keeps_nothing(tmp_path: Path) -> None:
    """``-o /dev/null`` keeps no row to resume from: the summary said "re-send the failed
    rows with: drumfire run … -o /dev/null --retry-failed", which sends every row again."""
    urls = tmp_path / "urls.txt"
    with refused_port() as port:
        urls.write_text(f"http://127.0.0.1:{port}/\n")
        proc = drumfire("run", urls, "--retries", "0", "-o", "/dev/null")
    assert proc.returncode == 0, proc.stderr
    assert "connect ×1" in proc.stderr
    assert "re-send" not in proc.stderr


def test_the_rerun_hint_never_shows_a_header_value_or_a_password(tmp_path: Path) -> None:
    """The command to paste hides -H values and URL user info, as every message does."""
    with refused_port() as port:
        urls = tmp_path / "in.csv"
        urls.write_text("id\n1\n")
        out = tmp_path / "out.csv"
        proc = drumfire("run", urls, "--url", f"http://user:pw-S3CRET@127.0.0.1:{port}/",
                        "-H", "Authorization: Bearer TOK3N", "--header=X-Key: K3Y",
                        "--retries", "0", "-o", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hint = next(line for line in proc.stderr.splitlines() if "re-send the failed" in line)
    assert "drumfire run " in hint
    assert "--retry-failed" in hint
    assert "-H 'Authorization: ***'" in hint
    assert "'--header=X-Key: ***'" in hint
    assert f"http://***@127.0.0.1:{port}/" in hint
    for secret in ("S3CRET", "TOK3N", "K3Y"):
        assert secret not in proc.stderr


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "out.sqlite", "out.parquet"])
def test_an_output_in_a_missing_directory_is_found_before_the_first_request(
    tmp_path: Path, name: str
) -> None:
    # A Parquet output (a directory) made every missing parent (`mkdir -p`): a typo in
    # the path left a new tree and a run where every other format stops at once.
    where = tmp_path / "missing-dir" / name
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        urls = url_list(tmp_path / "urls.txt", srv, 5)
        proc = drumfire("run", urls, "-o", where)
        one_error_line(proc, 2, f"cannot write output {str(where)!r}: No such file or directory")
        assert srv.requests == []
    assert not (tmp_path / "missing-dir").exists()


@pytest.mark.parametrize("mode", [[], ["--overwrite"], ["--resume"], ["--retry-failed"]])
def test_the_input_as_output_is_refused_before_anything(tmp_path: Path, mode: list[str]) -> None:
    # `run routes.csv -o routes.csv --overwrite` truncated the input while it was read:
    # the rows past the first read buffer were lost without a word (exit 0), and so was
    # the input file. The refusal without --overwrite even suggested --overwrite.
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        source = tmp_path / "routes.csv"
        source.write_text("id,q\n" + "".join(f"{i},{'x' * 100}\n" for i in range(30_000)))
        before = source.read_bytes()
        for output in (source, tmp_path / "." / "routes.csv"):
            proc = drumfire("run", source, "--url", f"http://127.0.0.1:{srv.port}/{{q}}",
                            "-o", output, *mode)  # fmt: skip
            one_error_line(proc, 2, f"output {str(output)!r} is the input file")
        assert srv.requests == []
    assert source.read_bytes() == before

"""``--resume`` and ``resume=True`` with rows that share an id: one output row per input row.

Rows that share an id (a repeated id, or an empty id cell, which takes the row's
number) cannot be told apart in the output, and they finish out of input order.
The earlier outputs here are written by a run over part of the input (the rows
a stopped run would have finished), so every case is exact; the server echoes
each row's value back, so every output row is checked to be its own row's answer.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import drumfire
from drumfire.demo.server import DemoServer

#: The demo server's echo: ``got`` is the value the server saw for the row.
URL = "/echo?v={v}"

#: (the input, the rows an earlier run finished, the rows a resume must send)
CASES = {
    # The blank id takes its row number, 2: the output's row for id 2 may be b's or c's.
    "blank id": ("1,a\n,b\n2,c\n", "2,c\n", ["a", "b", "c"]),
    # x twice with one row done (which one cannot be told); y done; z never sent.
    "repeated id": ("x,a\nx,b\ny,c\nz,d\n", "x,b\ny,c\n", ["a", "b", "d"]),
    # As many rows of x in the output as in the input: done, nothing sent.
    "all done": ("x,a\nx,b\n", "x,a\nx,b\n", []),
    # More rows of x than the input has (an older run's double): x is sent once more.
    "too many": ("x,a\ny,b\n", "x,a\nx,a\n", ["a", "b"]),
}


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as s:
        yield s


def drumfire_run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def output_rows(out: Path, fmt: str) -> list[tuple[str, str, str]]:
    """(id, kept value, value the server saw) of every output row, sorted."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out).to_pydict()
        rows = zip(table["id"], table["v"], table["got"], strict=True)
        return sorted((str(i), str(v), str(g)) for i, v, g in rows)
    if fmt == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(out)) as db:
            found = db.execute("SELECT id, v, got FROM results").fetchall()
        return sorted((str(i), str(v), str(g)) for i, v, g in found)
    if fmt == "jsonl":
        found = [json.loads(line) for line in out.read_text().splitlines()]
        return sorted((r["id"], r["v"], r["got"]) for r in found)
    with out.open(newline="", encoding="utf-8") as f:
        return sorted((r["id"], r["v"], r["got"]) for r in csv.DictReader(f))


def expected(text: str) -> list[tuple[str, str, str]]:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        id_, v = line.split(",")
        rows.append((id_ or str(n), v, v))
    return sorted(rows)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(
    ("fmt", "processes"),
    [("csv", 1), ("csv", 2), ("parquet", 1), ("parquet", 2), ("sqlite", 1), ("jsonl", 1)],
)
def test_resume_gives_each_input_row_one_row_of_its_own(
    server: DemoServer, tmp_path: Path, case: str, fmt: str, processes: int
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    whole, earlier, resent = CASES[case]
    source, part = tmp_path / "in.csv", tmp_path / "part.csv"
    source.write_text("id,v\n" + whole)
    part.write_text("id,v\n" + earlier)
    out = tmp_path / f"out.{fmt}"
    common = ("--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v", "-o", out)
    first = drumfire_run(part, *common, "-q")
    assert first.returncode == 0, first.stderr
    before = server.requests_served
    proc = drumfire_run(source, *common, "--resume", "-p", processes)
    assert proc.returncode == 0, proc.stderr
    assert output_rows(out, fmt) == expected(whole)
    assert server.requests_served - before == len(resent)
    if case in ("blank id", "repeated id", "too many"):
        assert "with every input row of their ids" in proc.stderr
    # A second resume finds every row done and sends nothing.
    before = server.requests_served
    again = drumfire_run(source, *common, "--resume", "-q")
    assert again.returncode == 0, again.stderr
    assert server.requests_served == before
    assert output_rows(out, fmt) == expected(whole)


def test_retry_failed_sends_every_row_of_an_id_one_of_whose_rows_failed(
    server: DemoServer, tmp_path: Path
) -> None:
    # The earlier output: x's rows, one failed (503), one fine: which input row each
    # answered cannot be told, so --retry-failed sends both and drops both.
    source = tmp_path / "in.csv"
    source.write_text("id,v\nx,a\nx,b\ny,c\n")
    out = tmp_path / "out.csv"
    out.write_text(
        "id,status,elapsed_ms,attempts,error,got,v\n"
        "x,200,1.0,1,,b,b\n"
        "x,503,1.0,1,,,a\n"
        "y,200,1.0,1,,c,c\n"
    )
    before = server.requests_served
    proc = drumfire_run(
        source, "--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v",
        "-o", out, "--retry-failed",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert server.requests_served - before == 2
    assert output_rows(out, "csv") == expected("x,a\nx,b\ny,c\n")


def test_standard_input_is_read_once_and_resumed_as_before(
    server: DemoServer, tmp_path: Path
) -> None:
    # Standard input cannot be read twice: no counting pass, rows skipped by id as
    # the output has rows of it (the README says so); the run still completes.
    out = tmp_path / "out.csv"
    out.write_text("id,status,elapsed_ms,attempts,error,got,v\nx,200,1.0,1,,b,b\n")
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", "-", "--url", server.base_url + URL,
         "-e", "got=query.v", "--keep", "v", "-o", str(out), "--resume"],
        input="id,v\nx,a\nx,b\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Counter(r[0] for r in output_rows(out, "csv")) == {"x": 2}


@pytest.mark.parametrize("kind", ["path", "list"])
def test_api_resume_sends_every_row_of_a_shared_id(
    server: DemoServer, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("id,status,elapsed_ms,attempts,error,got,v\n2,200,1.0,1,,c,c\n")
    rows: object = [{"id": "1", "v": "a"}, {"id": "", "v": "b"}, {"id": "2", "v": "c"}]
    if kind == "path":
        rows = tmp_path / "in.csv"
        rows.write_text("id,v\n1,a\n,b\n2,c\n")
    run = drumfire.run(
        rows, server.base_url + URL, extract={"got": "query.v"}, keep=["v"], output=out, resume=True
    )
    results = list(run)
    assert sorted((r.id, (r.kept or {})["v"]) for r in results) == [
        ("1", "a"), ("2", "b"), ("2", "c")
    ]  # fmt: skip
    assert output_rows(out, "csv") == expected("1,a\n,b\n2,c\n")


def test_api_resume_from_an_iterator_is_read_once(server: DemoServer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("id,status,elapsed_ms,attempts,error,got,v\nx,200,1.0,1,,b,b\n")
    rows = iter([{"id": "x", "v": "a"}, {"id": "x", "v": "b"}])
    run = drumfire.run(
        rows, server.base_url + URL, extract={"got": "query.v"}, keep=["v"], output=out, resume=True
    )
    results = list(run)
    assert len(results) == 1  # as before: the output's row for x is taken for the first


def write_input(path: Path, kind: str, rows: list[tuple[int | None, str]]) -> None:
    """``rows`` (id or None for an empty one, value) as an input file of ``kind``."""
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids = pa.array([i for i, _ in rows], pa.int64())
        pq.write_table(pa.table({"id": ids, "v": [v for _, v in rows]}), path)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "v": v}) + "\n" for i, v in rows))
    elif kind == "tsv":
        path.write_text("id\tv\n" + "".join(f"{'' if i is None else i}\t{v}\n" for i, v in rows))
    else:  # csv.gz
        import gzip

        text = "id,v\n" + "".join(f"{'' if i is None else i},{v}\n" for i, v in rows)
        path.write_bytes(gzip.compress(text.encode()))


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "parquet", "csv.gz"])
def test_every_input_kind_is_counted_before_a_resume(
    server: DemoServer, tmp_path: Path, kind: str
) -> None:
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    source, part = tmp_path / f"in.{kind}", tmp_path / f"part.{kind}"
    # The empty (null) id takes its row number, 2: the output's row for 2 is c's.
    write_input(source, kind, [(1, "a"), (None, "b"), (2, "c")])
    write_input(part, kind, [(2, "c")])
    out = tmp_path / "out.csv"
    common = ("--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v", "-o", out)
    first = drumfire_run(part, *common, "-q")
    assert first.returncode == 0, first.stderr
    before = server.requests_served
    proc = drumfire_run(source, *common, "--resume", "-q")
    assert proc.returncode == 0, proc.stderr
    assert server.requests_served - before == 3
    assert output_rows(out, "csv") == expected("1,a\n,b\n2,c\n")


def test_limit_counts_only_the_rows_it_reads(server: DemoServer, tmp_path: Path) -> None:
    # -n 2 reads two of x's three rows; the output has both: done, nothing sent.
    source = tmp_path / "in.csv"
    source.write_text("id,v\nx,a\nx,b\nx,c\n")
    out = tmp_path / "out.csv"
    common = ("--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v", "-o", out)
    first = drumfire_run(source, *common, "-n", "2", "-q")
    assert first.returncode == 0, first.stderr
    before = server.requests_served
    proc = drumfire_run(source, *common, "-n", "2", "--resume", "-q")
    assert proc.returncode == 0, proc.stderr
    assert server.requests_served == before
    assert output_rows(out, "csv") == expected("x,a\nx,b\n")


def test_a_shorter_limit_keeps_the_rows_past_it(server: DemoServer, tmp_path: Path) -> None:
    # A whole run, then --resume -n 3: a's second row lies past the limit, so the count
    # of a (1) is under the output's (2); that is not a double, and nothing is dropped
    # (it deleted the answer of "a,e" and sent "a,a" again).
    source = tmp_path / "in.csv"
    source.write_text("id,v\na,a\nb,b\nc,c\nd,d\na,e\n")
    out = tmp_path / "out.csv"
    common = ("--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v", "-o", out)
    first = drumfire_run(source, *common, "-q")
    assert first.returncode == 0, first.stderr
    before = server.requests_served
    proc = drumfire_run(source, *common, "-n", "3", "--resume", "-q")
    assert proc.returncode == 0, proc.stderr
    assert server.requests_served == before
    assert output_rows(out, "csv") == expected("a,a\nb,b\nc,c\nd,d\na,e\n")


def test_an_input_unreadable_part_way_is_resumed_up_to_there(
    server: DemoServer, tmp_path: Path
) -> None:
    # A .gz cut short: the ids pass stops where the input does, and the run goes on up
    # to that row and stops there, exit status 1, as without the pass (it refused the
    # whole resume with exit 2 and sent nothing).
    import gzip

    # Values that do not compress to nothing: the cut must lie past the first read.
    rows = "".join(f"r{i % 500},{i}-{i * 7919 % 100003:05d}{i * 104729 % 99991:05d}\n"
                   for i in range(20000))  # fmt: skip
    whole = gzip.compress(("id,v\n" + rows).encode())
    source = tmp_path / "in.csv.gz"
    source.write_bytes(whole)
    out = tmp_path / "out.csv"
    common = ("--url", server.base_url + URL, "-e", "got=query.v", "--keep", "v", "-o", out)
    first = drumfire_run(source, *common, "-n", "100", "-q")  # a run stopped early
    assert first.returncode == 0, first.stderr
    source.write_bytes(whole[: len(whole) * 2 // 3])
    proc = drumfire_run(source, *common, "--resume", "-q")
    assert proc.returncode == 1, proc.stderr
    assert "cannot read input" in proc.stderr
    got = output_rows(out, "csv")
    answered = [(v, g) for _, v, g in got if g]  # the rest: in flight at the stop, cancelled
    assert len(answered) > 100  # the readable rows past the first run's were sent
    assert all(v == g for v, g in answered)  # each row its own answer
    assert len({v for _, v, _ in got}) == len(got)  # none twice


def test_a_cluster_part_sends_every_row_of_an_id_one_of_whose_rows_goes(
    server: DemoServer, tmp_path: Path
) -> None:
    # --cluster: a finished part holds one row per row of its partition; when one row
    # of x is sent again (cancelled), the other row of x goes too, as which input row
    # each answered cannot be told. (run_part in this process: no cluster needed.)
    pytest.importorskip("distributed")
    from drumfire._cluster import plan_parts, run_part
    from drumfire._job import make_job

    source = tmp_path / "in.csv"
    source.write_text("id,v\nx,a\nx,b\ny,c\n")
    (part,) = plan_parts(str(source), "csv", size=1 << 30)
    out = tmp_path / "out.jsonl"
    out.mkdir()
    job = make_job(server.base_url + URL, extract={"got": "query.v"}, keep=["v"])
    first = run_part(part, job, str(out), "jsonl")
    assert first["rows"] == 3
    path = out / "part-000000.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row["v"] == "a":  # the first row of x: the old rule took b's row for it
            row.update(status=None, error="cancelled", got=None)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = server.requests_served
    again = run_part(part, job, str(out), "jsonl")
    assert (again["rows"], again["kept"], again["stats"]["done"]) == (3, 1, 2)
    assert server.requests_served - before == 2
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((r["id"], r["v"], r["got"]) for r in rows) == expected("x,a\nx,b\ny,c\n")


def test_a_pipe_as_input_is_read_once(server: DemoServer, tmp_path: Path) -> None:
    # A named pipe (as `<(zcat in.csv.gz)` gives): a second reader would take rows from
    # the run, so no counting pass; every row not in the output is still sent.
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "out.csv"
    out.write_text("id,status,elapsed_ms,attempts,error,got,v\ny,200,1.0,1,,c,c\n")

    def feed() -> None:
        with contextlib.suppress(OSError), fifo.open("w") as f:  # waits for the run to open it
            f.write("id,v\nx,a\nx,b\ny,c\nz,d\n")

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        proc = drumfire_run(
            fifo, "--format", "csv", "--url", server.base_url + URL, "-e", "got=query.v",
            "--keep", "v", "-o", out, "--resume", "-q",
        )  # fmt: skip
    finally:
        if writer.is_alive():  # the run never opened it: let the writer's open return
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join()
    assert proc.returncode == 0, proc.stderr
    assert output_rows(out, "csv") == expected("x,a\nx,b\ny,c\nz,d\n")

"""Parquet and SQLite, in and out, from the command line and the Python API, against the
demo server on 127.0.0.1: typed columns, kill -9 then --resume, streamed Parquet input."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import drumfire
from drumfire import _readahead as readahead
from drumfire._job import make_job
from drumfire._sources import open_source
from drumfire.demo import DemoServer, route_answer, write_sample_routes

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
ECHO = "/echo?n={n}&x={x}&f={flag}"
CLI = [sys.executable, "-m", "drumfire.cli"]
# The read-ahead child forced on at the first sweep (see test_run_readahead.py).
FORCED_READ_AHEAD = [
    sys.executable,
    "-c",
    "from drumfire._engine import Engine; Engine.CPU_BOUND = 0.0; Engine.CPU_TICKS = 1; "
    "from drumfire.cli import entry; entry()",
]


def drumfire_cli(
    *args: object, cmd: list[str] = CLI, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=120, check=False, **kw
    )


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def answer(row: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return route_answer(*(float(row[c]) for c in ("lon1", "lat1", "lon2", "lat2")))


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    """Poll for an event in the output (bounded); fail if the run ends first."""
    for _ in range(6000):
        if condition():
            return
        if proc.poll() is not None:
            return  # finished before: the resume then has everything to skip
        time.sleep(0.01)
    raise AssertionError("the run never wrote its first rows")


def test_parquet_output_has_typed_columns(demo_server: DemoServer, tmp_path: Path) -> None:
    routes = csv_rows(write_sample_routes(tmp_path / "routes.csv", 300))
    lines = [json.dumps(r) for r in routes]
    broken = dict(routes[9])
    del broken["lon2"]
    lines[9] = json.dumps(broken)  # a template error: a row with no status
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    proc = drumfire_cli(
        "run", tmp_path / "in.jsonl", "--url", demo_server.base_url + ROUTE,
        "-e", "code=code", "-e", "duration=routes[0].duration", "-e", "loc=waypoints[0].location",
        "--keep", "lon1", "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (out / "part-00000.parquet").is_file()
    table = ds.dataset(str(out)).to_table()
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "id": "string", "status": "int32", "elapsed_ms": "double", "attempts": "int32",
        "error": "string", "code": "string", "duration": "double", "loc": "string",
        "lon1": "string",
    }  # fmt: skip
    got = {r["id"]: r for r in table.to_pylist()}
    assert sorted(got, key=int) == [str(i) for i in range(1, 301)]
    assert got["10"]["status"] is None
    assert "template" in got["10"]["error"]
    for i, row in enumerate(routes, 1):
        if i == 10:
            continue
        status, doc = answer(row)
        r = got[str(i)]
        assert (r["status"], r["attempts"], r["error"], r["code"]) == (status, 1, "", doc["code"])
        assert r["lon1"] == row["lon1"]
        if status == 200:
            assert r["duration"] == doc["routes"][0]["duration"]
            assert json.loads(r["loc"]) == doc["waypoints"][0]["location"]
        else:
            assert r["duration"] is None


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_kill_9_then_resume_gives_every_id_once(tmp_path: Path, fmt: str) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 3000)
    out = tmp_path / ("out.parquet" if fmt == "parquet" else "out.sqlite")

    def written() -> bool:
        if fmt == "parquet":
            return (out / "part-00000.parquet").exists()
        if not out.exists():
            return False
        conn = sqlite3.connect(out)
        try:
            return bool(conn.execute("SELECT count(*) FROM results").fetchone()[0])
        except sqlite3.OperationalError:
            return False  # the table is made with the first flush
        finally:
            conn.close()

    with DemoServer(latency=0.01) as slow:
        proc = subprocess.Popen(
            [*CLI, "run", str(routes), "--url", slow.base_url + ROUTE, "-e", "code=code",
             "-c", "8", "-o", str(out), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(written, proc)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if fmt == "parquet":
        (out / ".part-00099.parquet.tmp").write_bytes(b"PAR1 torn")  # as a kill mid-write leaves
        before = ds.dataset(str(out)).to_table().num_rows
    else:
        conn = sqlite3.connect(out)
        before = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        conn.close()
    assert before > 0
    summary = tmp_path / "summary.json"
    with DemoServer() as fast:
        done = drumfire_cli(
            "run", routes, "--url", fast.base_url + ROUTE, "-e", "code=code", "-o", out,
            "--resume", "-q", "--summary-json", summary,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    if fmt == "parquet":
        assert not (out / ".part-00099.parquet.tmp").exists()
        ids = ds.dataset(str(out)).to_table().column("id").to_pylist()
    else:
        conn = sqlite3.connect(out)
        ids = [i for (i,) in conn.execute("SELECT id FROM results")]
        conn.close()
    assert sorted(ids, key=int) == [str(i) for i in range(1, 3001)]  # each id exactly once
    assert json.loads(summary.read_text())["skipped"] == before


def write_typed_parquet(path: Path, n: int) -> None:
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(n)],
            "n": pa.array([i if i % 5 else None for i in range(n)], pa.int64()),
            "x": [i / 4 for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
        }
    )
    pq.write_table(table, path, row_group_size=max(1, n // 7))  # several row groups
    assert pq.ParquetFile(path).metadata.num_row_groups >= 7


@pytest.mark.parametrize("read_ahead", [False, True])
def test_parquet_input_values_keep_their_types(
    demo_server: DemoServer, tmp_path: Path, read_ahead: bool
) -> None:
    n = 20_000 if read_ahead else 2000
    write_typed_parquet(tmp_path / "in.parquet", n)
    out = tmp_path / "out.jsonl"
    proc = drumfire_cli(
        "run", tmp_path / "in.parquet", "--url", demo_server.base_url + ECHO,
        "-e", "q=query", "--keep", "n,flag", "-o", out, "-q",
        cmd=FORCED_READ_AHEAD if read_ahead else CLI,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == n
    assert rows["r3"]["q"] == {"n": "3", "x": "0.75", "f": "false"}  # 3, not 3.0
    assert rows["r5"]["q"] == {"n": "", "x": "1.25", "f": "false"}  # null: empty
    assert (rows["r3"]["n"], rows["r3"]["flag"]) == (3, False)  # kept with their types
    assert all(r["status"] == 200 for r in rows.values())


def test_sqlite_url_names_the_table(demo_server: DemoServer, tmp_path: Path) -> None:
    write_sample_routes(tmp_path / "routes.csv", 200)
    proc = drumfire_cli(
        "run", "routes.csv", "--url", demo_server.base_url + ROUTE, "-e", "code=code",
        "-o", "sqlite:///sub.db?table=runs", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(tmp_path / "sub.db")
    try:
        assert conn.execute("SELECT count(*), count(DISTINCT id) FROM runs").fetchone() == (
            200,
            200,
        )
        assert conn.execute("SELECT typeof(status), typeof(code) FROM runs LIMIT 1").fetchone() == (
            "integer",
            "text",
        )
    finally:
        conn.close()


def test_api_takes_a_path_and_writes_an_output(demo_server: DemoServer, tmp_path: Path) -> None:
    routes = write_sample_routes(tmp_path / "routes.csv", 400)
    url = demo_server.base_url + ROUTE
    # A Path as input, results returned and written as Parquet.
    got = drumfire.run_all(routes, url, extract={"code": "code"}, output=tmp_path / "o.parquet")
    assert [r["id"] for r in got] == [str(i) for i in range(1, 401)]
    table = ds.dataset(str(tmp_path / "o.parquet")).to_table()
    assert sorted(table.column("id").to_pylist(), key=int) == [r["id"] for r in got]
    # A str path, stopped early: what was yielded is in the output; resume sends the rest.
    db = str(tmp_path / "o.db")
    first = []
    for result in drumfire.run(str(routes), url, extract={"code": "code"}, output=db):
        first.append(result.id)
        if len(first) == 50:
            break
    again = drumfire.run(str(routes), url, extract={"code": "code"}, output=db, resume=True)
    rest = [r.id for r in again]
    conn = sqlite3.connect(db)
    ids = [i for (i,) in conn.execute("SELECT id FROM results")]
    conn.close()
    assert sorted(ids, key=int) == [str(i) for i in range(1, 401)]
    assert not set(first) & set(rest)
    assert set(first) <= set(ids)

    # arun too, with a Parquet input and a JSON Lines output.
    write_typed_parquet(tmp_path / "in.parquet", 100)

    async def collect() -> list[str]:
        return [
            r.id
            async for r in drumfire.arun(
                tmp_path / "in.parquet",
                demo_server.base_url + "/echo?n={n}",
                output=tmp_path / "a.jsonl",
            )
        ]

    ids = asyncio.run(collect())
    written = [json.loads(line)["id"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(written) == sorted(f"r{i}" for i in range(100))


def test_api_string_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(drumfire.InputError, match="no such file"):
        drumfire.run_all("http://127.0.0.1:9/x", "{url}")
    with pytest.raises(drumfire.UsageError, match="needs output="):
        drumfire.run_all(["http://127.0.0.1:9/x"], resume=True)
    routes = write_sample_routes(tmp_path / "routes.csv", 3)
    with pytest.raises(drumfire.TemplateError, match="nope"):  # and the file is closed
        drumfire.run(routes, "http://127.0.0.1:9/{nope}", output=tmp_path / "o.db")
    assert not (tmp_path / "o.db").exists()


def test_without_pyarrow_one_line_names_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "pyarrow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no pyarrow here')\n")
    # The fake first, then this drumfire (not another copy installed in the environment).
    here = Path(drumfire.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), str(here)])}
    routes = write_sample_routes(tmp_path / "routes.csv", 3)
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    output = tmp_path / "o.parquet"
    for args, named in (
        ([routes, "-o", output], f"output {str(output)!r}"),
        (
            [tmp_path / "in.parquet", "-o", tmp_path / "o.csv"],
            f"input {str(tmp_path / 'in.parquet')!r}",
        ),
    ):
        proc = drumfire_cli("run", *args, "--url", "http://127.0.0.1:9/{id}", env=env)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines == [
            f"drumfire: error: {named}: Parquet needs pyarrow: pip install 'drumfire[parquet]'"
        ], proc.stderr
    # The Python API says the same; neither leaves an output directory behind.
    code = (
        "import sys, drumfire\n"
        "try:\n"
        "    drumfire.run_all([{'id': 'a'}], 'http://127.0.0.1:9/{id}', output=sys.argv[1])\n"
        "except drumfire.UsageError as exc:\n"
        "    print(exc)\n"
    )
    api_output = tmp_path / "py.parquet"
    proc = drumfire_cli(api_output, cmd=[sys.executable, "-c", code], env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"output {str(api_output)!r}: Parquet needs pyarrow: pip install 'drumfire[parquet]'\n"
    )
    assert not output.exists()
    assert not api_output.exists()


@pytest.mark.skipif(not readahead.available(), reason="read-ahead needs Linux and 2+ CPUs")
def test_a_read_ahead_child_reads_the_parquet_input(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # The engine made CPU-bound at once, as in test_run_readahead.py: the forked
    # child takes over the Parquet reader mid-file and every row still comes once.
    write_typed_parquet(tmp_path / "in.parquet", 20_000)
    source = open_source(str(tmp_path / "in.parquet"))
    results: list[drumfire.Result] = []
    starter = readahead.Starter()
    engine = make_job(demo_server.base_url + ECHO, extract={"q": "query"}).engine(
        source, results.append, cpu_clock=time.perf_counter, tick_interval=0.005,
        on_cpu_bound=starter,
    )  # fmt: skip
    engine.CPU_TICKS = 1
    engine.CPU_SPAN = 0.004
    try:
        asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 60))
    finally:
        starter.close()
        source.close()
    assert starter.reader is not None, "the engine never handed its input over"
    assert sorted(r.id for r in results) == sorted(f"r{i}" for i in range(20_000))
    got = {r.id: r.fields for r in results}
    assert got["r19999"] == {"q": {"n": "19999", "x": "4999.75", "f": "false"}}


def test_run_all_gives_back_an_arrow_table_or_a_polars_frame(demo_server: DemoServer) -> None:
    url = demo_server.base_url + "/echo?n={n}"
    table = pa.table({"id": ["a", "b", "c"], "n": pa.array([1, 2, None], pa.int64())})
    got = drumfire.run_all(table, url, extract={"q": "query.n", "m": "method"}, keep=["n"])
    assert isinstance(got, pa.Table)
    types = {f.name: str(f.type) for f in got.schema}
    assert types == {
        "id": "string", "status": "int32", "elapsed_ms": "double", "attempts": "int32",
        "error": "string", "q": "string", "m": "string", "n": "int64",
    }  # fmt: skip
    assert got.column("id").to_pylist() == ["a", "b", "c"]  # input order
    assert got.column("q").to_pylist() == ["1", "2", ""]
    assert got.column("n").to_pylist() == [1, 2, None]
    batch = drumfire.run_all(table.to_batches()[0], url)
    assert isinstance(batch, pa.Table)
    assert batch.num_rows == 3
    pl = pytest.importorskip("polars")
    frame = drumfire.run_all(pl.from_arrow(table), url, extract={"q": "query.n"})
    assert isinstance(frame, pl.DataFrame)
    assert frame["id"].to_list() == ["a", "b", "c"]
    assert str(frame.schema["status"]) == "Int32"
    assert frame["q"].to_list() == ["1", "2", ""]


def test_run_all_arrow_has_a_parse_functions_fields_after_the_extracted(
    demo_server: DemoServer,
) -> None:
    # As a pandas frame has them (they were dropped once a field was extracted).
    table = pa.table({"id": ["a", "b"], "n": ["1", "22"]})
    got = drumfire.run_all(table, demo_server.base_url + "/echo?n={n}", extract={"q": "query.n"},
                           parse=lambda r: {"size": len(r.body)})  # fmt: skip
    assert got.column_names[5:] == ["q", "size"]
    assert got.column("q").to_pylist() == ["1", "22"]
    assert got.schema.field("size").type == pa.int64()


def typed_ids(out: Path, fmt: str) -> list[tuple[str, int | None]]:
    if fmt == "parquet":
        table = pq.read_table(out).to_pydict()
        return sorted(zip(table["id"], table["status"], strict=True))
    with sqlite3.connect(out) as db:
        return sorted(db.execute("SELECT id, status FROM results").fetchall())


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_typed_outputs_refuse_overwrite_lock_and_retry_failed(
    demo_server: DemoServer, tmp_path: Path, fmt: str
) -> None:
    """The rules of issue 14 hold for the typed outputs too: no silent overwrite,
    one writer, and --retry-failed replaces the failed rows (each id once)."""
    out = tmp_path / f"out.{fmt}"
    url = demo_server.base_url + "/status/{code}"
    first = tmp_path / "first.csv"
    first.write_text("id,code\n1,200\n2,503\n3,200\n")
    done = drumfire_cli("run", first, "--url", url, "-o", out, "--retries", "0", "-q")
    assert done.returncode == 0, done.stderr
    assert typed_ids(out, fmt) == [("1", 200), ("2", 503), ("3", 200)]

    again = drumfire_cli("run", first, "--url", url, "-o", out, "-q")
    assert again.returncode == 2
    assert "--overwrite" in again.stderr
    assert len(again.stderr.splitlines()) == 1

    second = tmp_path / "second.csv"
    second.write_text("id,code\n1,200\n2,200\n3,200\n")
    fixed = drumfire_cli("run", second, "--url", url, "-o", out, "--retry-failed", "-q")
    assert fixed.returncode == 0, fixed.stderr
    assert typed_ids(out, fmt) == [("1", 200), ("2", 200), ("3", 200)]

    # A second run on the same output while one holds it stops at once (exit 2);
    # the first one waits for more input on a pipe that stays open.
    holder = subprocess.Popen(
        [*CLI, "run", "-", "--url", url, "-o", out, "--resume", "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    assert holder.stdin is not None
    holder.stdin.write(b"id,code\n")
    holder.stdin.flush()
    try:
        lock = out / ".drumfire.lock" if fmt == "parquet" else out
        for _ in range(6000):  # wait for the lock to be taken (bounded)
            if any(
                line.split()[1] == "FLOCK" and line.split()[4] == str(holder.pid)
                for line in Path("/proc/locks").read_text().splitlines()
            ):
                break
            assert holder.poll() is None
            time.sleep(0.01)
        blocked = drumfire_cli("run", first, "--url", url, "-o", out, "--resume", "-q")
        assert blocked.returncode == 2
        assert f"pid {holder.pid}" in blocked.stderr
        assert lock.exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0

"""``drumfire run --cluster`` and ``run_dask`` on a real Dask LocalCluster of 2 worker processes.

Servers are on 127.0.0.1; a worker or the client is killed with SIGKILL while a
scripted server holds one request, so the kill always lands mid-partition.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import Action, ScriptedServer, respond

from drumfire._cluster import plan_parts
from drumfire.demo import DemoServer

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

pytestmark = [pytest.mark.timeout(300)]

N = 600
WAIT = 120.0  # the most any awaited event may take on a loaded machine


def drumfire(*args: object, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", *map(str, args)],
        capture_output=True, text=True, timeout=240, check=False, **kw,
    )  # fmt: skip


def write_input(path: Path, n: int = N) -> Path:
    """A CSV whose values hold commas, quotes and newlines (quoted), with no id column."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "q"])
        for i in range(n):
            q = f'two\nlines "{i}", here' if i % 7 == 0 else f"v{i}"
            writer.writerow([f"k{i}", q])
    return path


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as local,
        Client(local) as client,
    ):
        yield local, client


def read_dataset(path: Path) -> Any:
    if path.suffix == ".jsonl":
        parts = sorted(path.glob("part-*.jsonl"))
        return pd.concat([pd.read_json(p, lines=True, dtype=False) for p in parts])
    return pd.read_parquet(path)


@pytest.mark.parametrize("name", ["out.parquet", "out.jsonl"])
def test_cluster_run_matches_a_single_process_run(
    demo: DemoServer, tmp_path: Path, name: str
) -> None:
    src = write_input(tmp_path / "in.csv")
    url = demo.base_url + "/echo?q={q}"
    common = ("--url", url, "-e", "q=query.q", "--keep", "key")
    one = drumfire("run", src, *common, "-o", tmp_path / "one.csv", "-q")
    assert one.returncode == 0, one.stderr
    out = tmp_path / name
    many = drumfire(
        "run", src, *common, "-o", out, "--cluster", "local:2", "--partition-size", "1K"
    )
    assert many.returncode == 0, many.stderr
    assert f"{N:,} of {N:,} rows" in many.stderr
    parts = sorted(p.name for p in out.iterdir() if p.name.startswith("part-"))
    assert len(parts) > 3  # really cut into partitions
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    got = read_dataset(out)
    want = pd.read_csv(tmp_path / "one.csv", dtype=str, keep_default_na=False)
    assert sorted(got["id"]) == sorted(want["id"])  # every row exactly once, same ids
    got = got.set_index("id").sort_index()
    want = want.set_index("id").sort_index()
    assert (got["status"] == 200).all()
    assert list(got["q"]) == list(want["q"])
    assert list(got["key"]) == list(want["key"])
    # the value sent is the row's: quoted newlines were never cut
    assert got.loc["1", "q"] == 'two\nlines "0", here'


def test_blank_lines_the_reader_skips_keep_the_single_process_ids(
    demo: DemoServer, tmp_path: Path
) -> None:
    # A blank first line: every partition but the first read its first row as the
    # header (its row lost, the template's column missing, on every --resume too). A
    # line of a no-break space: every later partition numbered its rows (the ids,
    # without an id column) one too high.
    src = tmp_path / "in.csv"
    body = "".join(f"k{i},x{i}\n" + ("\u00a0\n" if i % 40 == 0 else "") for i in range(200))
    src.write_text("\n" + "k,v\n" + body, encoding="utf-8")
    common = ("--url", demo.base_url + "/echo?v={v}", "--keep", "v")
    one = drumfire("run", src, *common, "-o", tmp_path / "one.csv", "-q")
    assert one.returncode == 0, one.stderr
    out = tmp_path / "out.parquet"
    many = drumfire(
        "run", src, *common, "-o", out, "--cluster", "local:2", "--partition-size", "600"
    )
    assert many.returncode == 0, many.stderr
    assert "200 of 200 rows" in many.stderr
    assert len([p for p in out.iterdir() if p.name.startswith("part-")]) > 2
    got = read_dataset(out)
    want = pd.read_csv(tmp_path / "one.csv", dtype=str, keep_default_na=False)
    assert (got["status"] == 200).all()
    assert sorted(zip(got["id"], got["v"], strict=True)) == sorted(
        zip(want["id"], want["v"], strict=True)
    )


def test_the_cluster_summary_counts_failures_as_a_run_does(
    demo: DemoServer, tmp_path: Path
) -> None:
    # An HTTP 404 is a failed row (no error text): counted as a single run counts it.
    src = tmp_path / "in.csv"
    src.write_text("id,code\n" + "".join(f"r{i},{404 if i % 3 == 0 else 200}\n" for i in range(30)))
    url = demo.base_url + "/status/{code}"
    single = drumfire("run", src, "--url", url, "-o", tmp_path / "one.csv")
    assert single.returncode == 0, single.stderr
    assert "failed 10 (http 404: 10)" in single.stderr
    out = tmp_path / "out.parquet"
    many = drumfire("run", src, "--url", url, "-o", out, "--cluster", "local:1")
    assert many.returncode == 0, many.stderr
    assert "30 of 30 rows in 1 partition (0 already done), 10 failed," in many.stderr
    # rows/s is over the time since the cluster was ready: the LocalCluster's start (its
    # processes spawned, seconds) was counted as sending time, and said nothing.
    found = re.search(
        r", ([\d.]+) s \(([\d.]+) s of it before the cluster was ready, ([\d.]+) s after "
        r"the last partition\), ([\d.,]+) rows/s sent",
        many.stderr,
    )
    assert found is not None, many.stderr
    whole, start, close = float(found[1]), float(found[2]), float(found[3])
    assert start + close <= whole + 0.1


def test_cluster_refuses_stdin_and_other_outputs(tmp_path: Path) -> None:
    r = drumfire("run", "-", "--url", "http://127.0.0.1:9/{q}", "-o", tmp_path / "o.parquet",
                 "--cluster", "local:1", input="q\n1\n")  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "not stdin" in r.stderr
    src = write_input(tmp_path / "in.csv", 3)
    r = drumfire("run", src, "--url", "http://127.0.0.1:9/{q}", "--cluster", "local:1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "dataset directory" in r.stderr


class Holder:
    """A handler that holds the first request for ``q=HOLD`` until released."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(
        self, index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        q = parse_qs(urlsplit(target).query).get("q", [""])[0]
        with self.lock:
            self.seen[q] += 1
            first = q == "HOLD" and self.seen[q] == 1
        if first:
            self.arrived.set()
            self.release.wait(WAIT)
        return respond(200, {"q": q})


def hold_input(path: Path, at: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("id,q\n")
        for i in range(N):
            f.write(f"r{i},{'HOLD' if i == at else f'v{i}'}\n")
    return path


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.05)


def assert_exactly_once(out: Path) -> Any:
    got = read_dataset(out)
    assert sorted(got["id"]) == sorted(f"r{i}" for i in range(N))
    assert (got["error"] == "").all()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    return got


def test_a_worker_killed_mid_partition_still_gives_every_row_once(
    cluster: Any, tmp_path: Path
) -> None:
    local, client = cluster
    holder = Holder()
    src = hold_input(tmp_path / "in.csv", at=N // 2)
    out = tmp_path / "out.parquet"
    with ScriptedServer(holder) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", "run", src, "--url",
             server.base_url + "/x?q={q}", "-o", out, "--cluster", local.scheduler_address,
             "--partition-size", "1K", "--timeout", "100"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.arrived.wait(WAIT), "the held request never came"
            # The worker whose task sends the held row: kill it (the nanny restarts it).
            index = next(
                p.index
                for p in plan_parts(str(src), "csv", size=1024)
                if p.first_row <= N // 2 < p.first_row + p.rows
            )
            busy = {
                addr
                for addr, keys in client.processing().items()
                if any(f"drumfire-part-{index:06d}-" in str(k) for k in keys)
            }
            assert len(busy) == 1
            pids = client.run(os.getpid, workers=list(busy))
            os.kill(next(iter(pids.values())), signal.SIGKILL)
            holder.release.set()
            _, err = proc.communicate(timeout=240)
        finally:
            holder.release.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert_exactly_once(out)
    assert holder.seen["HOLD"] == 2  # sent again after the worker died: the stated limit


def test_resume_after_the_client_is_killed(tmp_path: Path) -> None:
    holder = Holder()
    src = hold_input(tmp_path / "in.csv", at=0)
    out = tmp_path / "out.parquet"
    with ScriptedServer(holder) as server:
        args = ["run", src, "--url", server.base_url + "/x?q={q}", "-o", out,
                "--cluster", "local:2", "--partition-size", "1K", "--timeout", "100"]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", *map(str, args)],
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert holder.arrived.wait(WAIT), "the held request never came"
            wait_for(lambda: any(p.name.startswith("part-") for p in out.iterdir()), "a part")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster
            proc.wait()
            holder.release.set()
        done = read_dataset(out)  # the parts complete before the kill
        assert 0 < len(done) < N
        again = drumfire(*args, "--resume")
        assert again.returncode == 0, again.stderr
        assert f"({len(done):,} already done)" in again.stderr
        # Without --resume the parts are not silently replaced.
        refused = drumfire(*args)
        assert refused.returncode == 2
        assert "--resume" in refused.stderr
    assert_exactly_once(out)
    # Rows in parts finished before the kill were sent once only.
    assert all(holder.seen[q] == 1 for q in done["id"].str.replace("r", "v"))


def test_run_dask_composes_with_a_dask_pipeline(
    cluster: Any, demo: DemoServer, tmp_path: Path
) -> None:
    import dask.dataframe as dd

    from drumfire.cluster import run_dask

    frame = pd.DataFrame({"id": [f"r{i}" for i in range(200)], "q": [f"v{i}" for i in range(200)]})
    ddf = dd.from_pandas(frame, npartitions=4)
    results = run_dask(ddf, demo.base_url + "/echo?q={q}", extract={"q": "query.q"})
    assert results.npartitions == 4
    got = results.compute()
    assert list(got.index) == list(frame.index)  # each partition keeps its index
    assert list(got["id"]) == list(frame["id"])
    assert list(got["q"]) == list(frame["q"])
    src = write_input(tmp_path / "in.csv", 100)
    lazy = run_dask(src, demo.base_url + "/echo?q={q}", extract={"q": "query.q"},
                    partition_size=1024)  # fmt: skip
    assert lazy.npartitions > 1
    by_path = lazy.compute()
    assert sorted(by_path["id"], key=int) == [str(i) for i in range(1, 101)]
    assert (by_path["status"] == 200).all()


def test_run_dask_results_have_one_typed_schema_for_to_parquet(
    cluster: Any, demo: DemoServer, tmp_path: Path
) -> None:
    # The README's example: run_dask(...).to_parquet(...). Every column has a declared
    # type (object columns made Dask's writer fail), the same in every partition.
    import dask.dataframe as dd

    from drumfire.cluster import run_dask
    from drumfire.demo import write_sample_routes

    routes = pd.read_csv(write_sample_routes(tmp_path / "routes.csv", 120), dtype=str)
    routes["n"] = range(len(routes))
    url = demo.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
    extract = {"duration": "routes[0].duration", "code": "code"}
    results = run_dask(dd.from_pandas(routes, npartitions=3), url, extract=extract,
                       keep=["n"], dtypes={"duration": "float64"})  # fmt: skip
    results.to_parquet(tmp_path / "durations")
    got = pd.read_parquet(tmp_path / "durations")
    assert len(got) == 120
    assert set(got["id"]) == set(routes["id"])
    types = {name: str(dtype) for name, dtype in got.dtypes.items()}
    assert types["duration"] == "float64"  # declared
    assert types["n"] == "Int64"  # a kept column keeps the input's type (nullable)
    assert types["code"].startswith(("str", "string"))  # the default: text
    assert got["status"].isin([200, 400]).all()
    assert got.loc[got["status"] == 200, "duration"].notna().all()
    assert got.loc[got["status"] == 400, "duration"].isna().all()  # NoRoute: no value
    by_path = run_dask(tmp_path / "routes.csv", url, extract=extract)
    by_path.to_parquet(tmp_path / "by_path")
    assert len(pd.read_parquet(tmp_path / "by_path")) == 120
    # A value its declared column cannot hold is one clear error, not a lost value.
    wrong = run_dask(tmp_path / "routes.csv", url, extract=extract, dtypes={"code": "int64"})
    with pytest.raises(Exception, match=r"does not fit column 'code' \(int64\)"):
        wrong.compute()
    with pytest.raises(Exception, match="neither extracted nor kept"):
        run_dask(tmp_path / "routes.csv", url, extract=extract, dtypes={"x": "int64"})


def partitioned(src: Path, n: int, value: Any) -> tuple[list[Any], dict[str, str]]:
    """An input of ``n`` rows ``id,v`` cut every 256 bytes, each row's ``v`` then set to
    ``value(partition, row)``, 4 characters: every line the same length, so the cuts
    stay where they are. Returns the partitions and the values by id."""
    src.write_text("id,v\n" + "".join(f"r{i:03d},0000\n" for i in range(n)))
    parts = plan_parts(str(src), "csv", size=256)
    rows = [(p.index, i) for p in parts for i in range(p.first_row, p.first_row + p.rows)]
    values = {f"r{i:03d}": value(index, i) for index, i in rows}
    src.write_text("id,v\n" + "".join(f"{k},{v}\n" for k, v in values.items()))
    assert plan_parts(str(src), "csv", size=256) == parts
    return parts, values


def first_partitions(index: int, i: int) -> str:
    """The first partition: no value at all; the second: only half of its rows; the
    third: whole numbers only (int64 there, float64 in the others)."""
    if index == 0 or (index == 1 and i % 2 == 0):
        return "none"
    return f"{'w' if index == 2 else 0}{i:03d}"


def test_parts_without_a_value_share_the_numbers_type_of_the_others(
    cluster: Any, tmp_path: Path
) -> None:
    # A partition whose field got no value (every row failed: an outage, NoRoute) typed
    # it as text in its part while the others held numbers: pandas and pyarrow.dataset
    # took the first part's type (numbers read as text), polars refused the dataset.
    # The client now rewrites such parts with the others' type (and a part of whole
    # numbers as float64, as one process types them), and --retry-failed's rewrite of
    # a part keeps numbers when the rows sent again fail once more or bring integers.
    pl = pytest.importorskip("polars")
    import pyarrow as pa
    import pyarrow.dataset as ds

    local, _ = cluster
    src = tmp_path / "in.csv"
    n = 90
    parts, values = partitioned(src, n, first_partitions)
    assert len(parts) >= 4

    fixed = threading.Event()  # the outage is over: whole numbers for the rows it failed

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        v = parse_qs(urlsplit(target).query)["v"][0]
        if v == "none":
            return respond(200, {"n": 7}) if fixed.is_set() else respond(404, {})
        return respond(200, {"n": int(v[1:]) if v[0] == "w" else int(v) + 0.5})

    def check(want: dict[str, float | None]) -> None:
        assert len([p for p in out.iterdir() if p.name.startswith("part-")]) == len(parts)
        table = ds.dataset(out).to_table()
        assert table.schema.field("n").type == pa.float64()
        assert dict(zip(table.column("id").to_pylist(), table.column("n").to_pylist(),
                        strict=True)) == want  # fmt: skip
        frame = pd.read_parquet(out)
        assert str(frame["n"].dtype) == "float64"
        got = dict(zip(frame["id"], frame["n"], strict=True))
        assert {k: None if pd.isna(v) else v for k, v in got.items()} == want
        polars = pl.read_parquet(str(out / "*.parquet"))
        assert polars.schema["n"] == pl.Float64
        assert len(polars) == n

    out = tmp_path / "out.parquet"
    want = {
        k: None if v == "none" else float(v[1:]) if v[0] == "w" else int(v) + 0.5
        for k, v in values.items()
    }
    with ScriptedServer(handler) as server:
        args = ["run", src, "--url", server.base_url + "/x?v={v}", "-e", "n=n", "-o", out,
                "--cluster", local.scheduler_address, "--partition-size", "256"]  # fmt: skip
        first = drumfire(*args)
        assert first.returncode == 0, first.stderr
        check(want)
        # The rows sent again fail again: the parts keep their numbers (they were made text).
        again = drumfire(*args, "--retry-failed", "404")
        assert again.returncode == 0, again.stderr
        check(want)
        # They get whole numbers beside the kept fractions: float64 (they were made text).
        fixed.set()
        last = drumfire(*args, "--retry-failed", "404")
        assert last.returncode == 0, last.stderr
    check({k: 7.0 if v is None else v for k, v in want.items()})


def test_a_stop_leaves_the_parts_alone_while_a_remote_cluster_may_still_write(
    cluster: Any, tmp_path: Path
) -> None:
    # After Ctrl-C or SIGTERM a remote cluster runs on the tasks that were running (Dask
    # cannot interrupt them), and one may rewrite its part then (--resume, --retry-failed)
    # while the client gave the parts one schema: a part the client read, then replaced
    # with its cast copy, would undo the task's rewrite (its answers lost). The client now
    # leaves the parts (and the temporary files) to the next run's end after such a stop.
    import pyarrow as pa
    import pyarrow.parquet as pq

    local, _ = cluster
    src = tmp_path / "in.csv"
    n = 90
    # The first partition holds the held request; the second no value for n (its
    # part types n as text), the others numbers.
    parts, values = partitioned(src, n, lambda index, i: ("HOLD" if i == 0 else "none")
                                if index < 2 else f"{i:04d}")  # fmt: skip
    assert len(parts) >= 4
    arrived, release = threading.Event(), threading.Event()

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        v = parse_qs(urlsplit(target).query)["v"][0]
        if v == "HOLD":
            arrived.set()
            release.wait(WAIT)
        return respond(200, {} if v in ("none", "HOLD") else {"n": int(v)})

    def n_type(index: int) -> Any:
        return pq.read_schema(out / f"part-{index:06d}.parquet").field("n").type

    out = tmp_path / "out.parquet"
    with ScriptedServer(handler) as server:
        args = ["run", src, "--url", server.base_url + "/x?v={v}", "-e", "n=n", "-o", out,
                "--cluster", local.scheduler_address, "--partition-size", "256",
                "--timeout", "100"]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", *map(str, args)],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert arrived.wait(WAIT), "the held request never came"
            names = {f"part-{p.index:06d}.parquet" for p in parts[1:]}
            wait_for(lambda: names <= {p.name for p in out.iterdir()}, "the other parts")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=WAIT)
        finally:
            release.set()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 143, err
        assert n_type(1) != pa.int64()  # left as its task wrote it
        assert "the next run (--resume) gives the parts one schema" in err
        # The task still running on the cluster writes its part after the client ended.
        wait_for(lambda: (out / "part-000000.parquet").exists(), "the late part")
        again = drumfire(*args, "--resume")
        assert again.returncode == 0, again.stderr
    assert {n_type(p.index) for p in parts} == {pa.int64()}
    got = pd.read_parquet(out)
    assert sorted(got["id"]) == sorted(values)
    assert (got["error"] == "").all()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_parts_whose_values_disagree_are_one_dataset_of_text(cluster: Any, tmp_path: Path) -> None:
    # A field that is a number in one partition and text in another (and absent in a third,
    # every row failed) gave parts that polars refused as one dataset, and that pandas and
    # pyarrow read with the first part's type. Now it is text in every part, as one process
    # types a column whose values disagree; --retry-failed's rewrite of a part whose kept
    # numbers meet new text writes them as one process does too (100.0, not Arrow's 100).
    pl = pytest.importorskip("polars")
    import pyarrow.dataset as ds

    local, _ = cluster
    src = tmp_path / "in.csv"
    n = 60

    def value(index: int, i: int) -> str:
        # The first partition: numbers, half of them failing at first; the second:
        # text; the third: nothing (every row fails); the others: numbers.
        if index == 1:
            return "text"
        return "gone" if index == 2 or (index == 0 and i % 2) else "numb"

    parts, values = partitioned(src, n, value)
    assert len(parts) >= 3
    back = threading.Event()  # the failed rows of the first partition now answer text

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        v = parse_qs(urlsplit(target).query)["v"][0]
        if v == "gone":
            return respond(200, {"n": "late"}) if back.is_set() else respond(404, {})
        return respond(200, {"n": 100.0 if v == "numb" else "word"})

    out = tmp_path / "out.parquet"
    with ScriptedServer(handler) as server:
        args = ["run", src, "--url", server.base_url + "/x?v={v}", "-e", "n=n", "-o", out,
                "--cluster", local.scheduler_address, "--partition-size", "256"]  # fmt: skip
        first = drumfire(*args)
        assert first.returncode == 0, first.stderr
        want = {k: {"numb": "100.0", "text": "word", "gone": None}[v] for k, v in values.items()}
        table = ds.dataset(out).to_table()
        assert dict(zip(table.column("id").to_pylist(), table.column("n").to_pylist(),
                        strict=True)) == want  # fmt: skip
        frame = pd.read_parquet(out)
        assert {type(v) for v in frame["n"].dropna()} == {str}
        assert len(pl.read_parquet(str(out / "*.parquet"))) == n
        back.set()
        again = drumfire(*args, "--retry-failed", "404")
        assert again.returncode == 0, again.stderr
    table = ds.dataset(out).to_table()
    got = dict(zip(table.column("id").to_pylist(), table.column("n").to_pylist(), strict=True))
    assert got == {k: "late" if w is None else w for k, w in want.items()}
    assert len(pl.read_parquet(str(out / "*.parquet"))) == n


def test_running_partitions_report_their_rows_to_the_client(cluster: Any, tmp_path: Path) -> None:
    from drumfire._cluster import TOPIC, run_part
    from drumfire._job import make_job

    _, client = cluster
    holder = Holder()
    src = hold_input(tmp_path / "in.csv", at=N - 1)
    out = tmp_path / "out"
    out.mkdir()
    events: list[dict[str, int]] = []
    progressed = threading.Event()

    def on_event(event: Any) -> None:
        events.append(event[1])
        if event[1]["done"] > 0:
            progressed.set()

    client.subscribe_topic(TOPIC, on_event)
    with ScriptedServer(holder) as server:
        (part,) = plan_parts(str(src), "csv", size=1 << 30)
        job = make_job(server.base_url + "/x?q={q}", concurrency=1)
        future = client.submit(run_part, part, job, str(out), "parquet")
        try:
            assert holder.arrived.wait(WAIT)
            assert progressed.wait(WAIT), "no progress event while the partition ran"
        finally:
            holder.release.set()
        figures = future.result(timeout=WAIT)
    assert figures["rows"] == N
    assert events[-1]["part"] == 0
    assert 0 < events[-1]["done"] <= N


def test_a_template_error_row_names_the_whole_inputs_line(
    demo: DemoServer, tmp_path: Path
) -> None:
    # Each partition reads its byte range as a file of its own: the lines it
    # names must be those of the whole input (records over two lines included).
    src = tmp_path / "in.csv"
    text = "id,v,note\n"
    bad: dict[str, int] = {}
    for i in range(400):
        line = text.count("\n") + 1
        v = ".." if i % 90 == 45 else str(i)
        if v == "..":
            bad[f"r{i}"] = line
        note = '"two\nlines"' if i % 7 == 0 else "one"
        text += f"r{i},{v},{note}\n" + ("\n" if i % 50 == 0 else "")
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out.parquet"
    url = demo.base_url + "/status/200/{v}"
    many = drumfire(
        "run", src, "--url", url, "-o", out, "--cluster", "local:2", "--partition-size", "2K"
    )
    assert many.returncode == 0, many.stderr
    assert len([p for p in out.iterdir() if p.name.startswith("part-")]) > 2
    got = read_dataset(out)
    errors = {r.id: r.error for r in got.itertuples() if r.error}
    assert sorted(errors) == sorted(bad)
    for id_, line in bad.items():
        assert errors[id_].startswith(f"template: line {line}: the value '..' (column 'v')")


def test_sigterm_of_the_client_ends_as_ctrl_c_does(tmp_path: Path) -> None:
    # A job scheduler's SIGTERM (SLURM, Kubernetes): the finished parts are kept, the
    # summary and the command to resume are printed, exit 143, as without a cluster
    # (the client used to die at once: no summary, no hint, no cleaning).
    holder = Holder()
    src = hold_input(tmp_path / "in.csv", at=0)
    out = tmp_path / "out.parquet"
    with ScriptedServer(holder) as server:
        args = ["run", src, "--url", server.base_url + "/x?q={q}", "-o", out,
                "--cluster", "local:2", "--partition-size", "1K", "--timeout", "100"]  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "drumfire.cli", *map(str, args)],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert holder.arrived.wait(WAIT), "the held request never came"
            wait_for(lambda: any(p.name.startswith("part-") for p in out.iterdir()), "a part")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=WAIT)
        finally:
            holder.release.set()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 143, err
        assert "drumfire: interrupted; the finished parts are kept" in err
        # The LocalCluster's shutdown (the busy worker killed after 4 s, its task
        # cancelled) printed distributed's WARNING lines: only drumfire's are shown.
        assert all(line.startswith(("drumfire:", "  ")) for line in err.splitlines()), err
        hint = [line for line in err.splitlines() if "resume with: drumfire run" in line]
        assert len(hint) == 1, err
        assert hint[0].endswith("--resume")
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
        again = drumfire(*args, "--resume")
        assert again.returncode == 0, again.stderr
    assert_exactly_once(out)


#: ``drumfire run`` whose ``local:N`` LocalCluster writes ``STARTING`` as its start begins
#: and ``CLOSED`` once closed; Ctrl-C raises KeyboardInterrupt, as in a terminal (a test run
#: in the background starts its children with SIGINT ignored).
FLAGGED = """
import signal, sys
if __name__ == "__main__":  # (the worker processes import this file too)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import distributed
    starting, closed = sys.argv.pop(1), sys.argv.pop(1)

    class Flagged(distributed.LocalCluster):
        def __init__(self, *args, **kwargs):
            open(starting, "w").close()
            super().__init__(*args, **kwargs)

        def close(self, *args, **kwargs):
            done = super().close(*args, **kwargs)
            open(closed, "w").close()
            return done

    distributed.LocalCluster = Flagged
    from drumfire.cli import entry
    sys.argv[0] = "drumfire"
    entry()
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_the_local_cluster_starts_ends_as_any_stop_does(
    tmp_path: Path, signum: int, code: int
) -> None:
    # A first Ctrl-C while local:N started its LocalCluster ended in click's "Aborted!",
    # exit 1, no summary, and distributed's traceback at exit closing workers still
    # starting; a SIGTERM there, exit 143 without a summary. Now the stop is recorded
    # while the cluster starts, then the cluster is closed and the run ends as a stop
    # of a running one does: the summary, the command to resume, 128 + the signal.
    script = tmp_path / "flagged.py"
    script.write_text(FLAGGED)
    starting, closed = tmp_path / "starting", tmp_path / "closed"
    src = hold_input(tmp_path / "in.csv", at=-1)
    out = tmp_path / "out.parquet"
    proc = subprocess.Popen(
        [sys.executable, script, starting, closed, "run", src, "--url",
         "http://127.0.0.1:9/x?q={q}", "-o", out, "--cluster", "local:2"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(starting.exists, "the LocalCluster's start")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == code, err
    lines = err.splitlines()
    assert lines[0].startswith(f"drumfire: 0 of {N} rows in 1 partition (0 already done)"), err
    assert lines[1] == "drumfire: interrupted; the finished parts are kept", err
    assert lines[2].startswith("  resume with: drumfire run"), err
    assert len(lines) == 3, err
    assert closed.exists()  # the cluster was closed, not left to distributed's exit


@pytest.mark.parametrize("step", ["submit", "close", "clean"])
def test_sigterm_while_submitting_or_cleaning_up_ends_as_ctrl_c_does(
    step: str,
    demo: DemoServer,
    cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only the wait for the tasks caught the SIGTERM: one while the tasks were submitted,
    # or while the client, the local cluster and the temporary files were cleaned up,
    # escaped as drumfire._cluster._Terminated (a traceback, exit 1, no summary, the
    # temporary files left). The signal is raised from inside each step, so it lands
    # there every time; one in the cleanup lets the cleanup finish.
    from drumfire import _cluster
    from drumfire._job import make_job

    local, _ = cluster
    src = hold_input(tmp_path / "in.csv", at=-1)
    out = tmp_path / "out.parquet"
    finished: list[str] = []

    def terminate(where: str) -> None:
        signal.raise_signal(signal.SIGTERM)  # its handler has run when this returns
        finished.append(where)

    if step == "submit":
        split_job = _cluster.split_job
        monkeypatch.setattr(
            _cluster, "split_job", lambda *a: (terminate("submit"), split_job(*a))[1]
        )
    elif step == "close":

        class LocalCluster:  # stands for the one that local:N starts
            def close(self) -> None:
                terminate("close")

        connect = _cluster.connect
        monkeypatch.setattr(_cluster, "connect", lambda a: (connect(a)[0], LocalCluster()))
    else:
        clean = _cluster.Store.clean

        def clean_after_a_sigterm(store: Any) -> None:
            (out / ".part-000099.parquet.tmp").write_bytes(b"cut short")
            terminate("clean")
            clean(store)

        monkeypatch.setattr(_cluster.Store, "clean", clean_after_a_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    job = make_job(demo.base_url + "/echo?q={q}")
    args = {"cluster": local.scheduler_address, "output": str(out), "out_fmt": "parquet",
            "partition_size": 4096}  # fmt: skip
    _, code = _cluster.run_cluster(str(src), job, **args)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert code == 143, err
    assert "drumfire: interrupted; the finished parts are kept" in err
    assert finished == ([] if step == "submit" else [step])
    assert signal.getsignal(signal.SIGTERM) is before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    _, code = _cluster.run_cluster(str(src), job, resume=True, **args)  # type: ignore[arg-type]
    assert code == 0, capsys.readouterr().err
    assert_exactly_once(out)


@pytest.mark.parametrize("step", ["close", "clean"])
def test_ctrl_c_while_cleaning_up_after_ctrl_c_ends_with_the_summary(
    step: str,
    demo: DemoServer,
    cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A second Ctrl-C while the client closed (the cluster stopping, the temporary
    # files removed) raised KeyboardInterrupt out of the cleanup: a traceback (or
    # click's "Aborted!", exit 1), no summary, the cleanup half done. Now it is
    # recorded and the run ends as after one Ctrl-C: the summary, exit 130. The
    # first Ctrl-C comes while the tasks are submitted, the second inside the step.
    from drumfire import _cluster
    from drumfire._job import make_job

    local, _ = cluster
    src = hold_input(tmp_path / "in.csv", at=-1)
    out = tmp_path / "out.parquet"
    finished: list[str] = []

    def interrupt(where: str) -> None:
        signal.raise_signal(signal.SIGINT)  # its handler has run when this returns
        finished.append(where)

    split_job = _cluster.split_job
    monkeypatch.setattr(_cluster, "split_job", lambda *a: (interrupt("submit"), split_job(*a))[1])
    if step == "close":

        class LocalCluster:  # stands for the one that local:N starts
            def close(self) -> None:
                interrupt("close")

        connect = _cluster.connect
        monkeypatch.setattr(_cluster, "connect", lambda a: (connect(a)[0], LocalCluster()))
    else:
        clean = _cluster.Store.clean

        def clean_after_a_ctrl_c(store: Any) -> None:
            (out / ".part-000099.parquet.tmp").write_bytes(b"cut short")
            interrupt("clean")
            clean(store)

        monkeypatch.setattr(_cluster.Store, "clean", clean_after_a_ctrl_c)
    # Ctrl-C raising KeyboardInterrupt, as in a terminal: a test run started in the
    # background inherits SIGINT ignored.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        job = make_job(demo.base_url + "/echo?q={q}")
        args = {"cluster": local.scheduler_address, "output": str(out), "out_fmt": "parquet",
                "partition_size": 4096}  # fmt: skip
        _, code = _cluster.run_cluster(str(src), job, **args)  # type: ignore[arg-type]
        err = capsys.readouterr().err
        assert code == 130, err
        assert err.endswith("drumfire: interrupted; the finished parts are kept\n"), err
        assert finished == [step]  # the first Ctrl-C stopped the submission at once
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    _, code = _cluster.run_cluster(str(src), job, resume=True, **args)  # type: ignore[arg-type]
    assert code == 0, capsys.readouterr().err
    assert_exactly_once(out)


def test_run_dask_refuses_what_it_cannot_do_before_anything_is_computed(tmp_path: Path) -> None:
    # drumfire.run's output=, resume=, progress= and parse= were a bare TypeError naming
    # make_job; the file options ran on the workers, saving into each worker's directory
    # with no saved_path column to say which row saved what (--cluster refuses them); a
    # column the frame lacks was found only by a task, inside Dask's traceback.
    import dask.dataframe as dd

    from drumfire import TemplateError, UsageError
    from drumfire.cluster import run_dask

    frame = dd.from_pandas(pd.DataFrame({"q": ["a", "b"]}), npartitions=1)
    url = "http://127.0.0.1:9/x?q={q}"
    for kwargs, needle in [
        ({"output": tmp_path / "o.csv"}, "run_dask: output= is not supported: write the "
                                         "result frame (results.to_parquet(PATH))"),
        ({"resume": True}, "run_dask: resume= is not supported"),
        ({"progress": True}, "run_dask: progress= is not supported"),
        ({"parse": lambda r: {}}, "run_dask: parse= is not supported"),
        ({"save_body": "{q}"}, "run_dask: data_file=, files=, form= and save_body= are not "
                               "supported on a cluster yet (as --cluster)"),
        ({"files": {"f": "{q}"}}, "run_dask: data_file=, files=, form= and save_body="),
        ({"timout": 3}, "run_dask: no keyword argument timout=: did you mean timeout=?"),
    ]:  # fmt: skip
        with pytest.raises(UsageError) as caught:
            run_dask(frame, url, workers=1, **kwargs)
        assert str(caught.value).startswith(needle), caught.value
    with pytest.raises(TemplateError, match=r"^keep= names column 'nope'"):
        run_dask(frame, url, workers=1, keep=["nope"])
    with pytest.raises(TemplateError, match="'missing'"):
        run_dask(frame, "http://127.0.0.1:9/x?q={missing}", workers=1)
    assert not list(tmp_path.iterdir())
    src = write_input(tmp_path / "in.csv", 3)  # from a path: the file's columns
    with pytest.raises(TemplateError, match="'missing'"):
        run_dask(src, "http://127.0.0.1:9/x?q={missing}", workers=1)

"""``--cluster`` with ``--parse``, ``--retry-failed``, ``--fail-on-error``, ``--summary-json``,
``-p`` refused, and fsspec paths (``file://``, ``memory://``) for input and output (issue 17).

A real Dask LocalCluster (2 worker processes through the CLI; threads in this
process for ``memory://``, which only one process sees) against servers on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from servers import Action, ScriptedServer, refused_port, respond

pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

pytestmark = [pytest.mark.timeout(300)]

N = 300


def drumfire(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drumfire.cli", *map(str, args)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def write_input(path: Path, n: int = N) -> Path:
    path.write_text("id,q\n" + "".join(f"r{i},v{i}\n" for i in range(n)))
    return path


def failing(i: int) -> bool:
    return i % 10 == 3


class FlakyOnce:
    """Answers 503 to the first request of every tenth row, 200 (echoing q) otherwise."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(
        self, index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        q = parse_qs(urlsplit(target).query).get("q", [""])[0]
        with self.lock:
            self.seen[q] += 1
            first = self.seen[q] == 1
        if first and failing(int(q[1:])):
            return respond(503, {"q": q})
        return respond(200, {"q": q, "n": int(q[1:])})


PARSE = """
def parse(response):
    data = response.json()
    return {"twice": data["n"] * 2}
"""


def test_parse_summary_fail_on_error_then_retry_failed(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.csv")
    (tmp_path / "p.py").write_text(PARSE)
    out = tmp_path / "out.parquet"
    summary = tmp_path / "s.json"
    server = FlakyOnce()
    with ScriptedServer(server) as srv:
        args = ["run", src, "--url", srv.base_url + "/x?q={q}", "-o", out, "--cluster",
                "local:2", "--partition-size", "1K", "--parse", f"{tmp_path / 'p.py'}:parse",
                "--retries", "0"]  # fmt: skip
        first = drumfire(*args, "--summary-json", summary, "--fail-on-error", "5xx")
        # The 503s are rows with an outcome --fail-on-error names: exit status 3.
        assert first.returncode == 3, first.stderr
        assert "--retry-failed" in first.stderr  # the hint to re-send them
        figures = json.loads(summary.read_text())
        bad = sum(1 for i in range(N) if failing(i))
        assert (figures["rows"], figures["ok"], figures["failed"]) == (N, N - bad, bad)
        assert figures["status"] == {"200": N - bad, "503": bad}
        assert figures["requests"] == N
        got = pd.read_parquet(out)
        assert sorted(got["id"]) == sorted(f"r{i}" for i in range(N))
        assert (got[got["status"] == 200]["twice"] % 2 == 0).all()  # the parse function ran
        assert got[got["status"] == 503]["twice"].isna().all()  # 503: nothing parsed
        again = drumfire(*args, "--retry-failed", "--summary-json", summary)
        assert again.returncode == 0, again.stderr
        seen = server.seen
    figures = json.loads(summary.read_text())
    assert (figures["rows"], figures["ok"], figures["skipped"]) == (bad, bad, N - bad)
    got = pd.read_parquet(out)
    assert sorted(got["id"]) == sorted(f"r{i}" for i in range(N))  # each row once
    assert (got["status"] == 200).all()
    got = got.set_index("id")
    assert all(got.loc[f"r{i}", "twice"] == 2 * i for i in range(N))
    # Only the failed rows were sent again.
    assert all(seen[f"v{i}"] == (2 if failing(i) else 1) for i in range(N))


def test_cluster_refuses_processes_naming_the_worker_count(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.csv", 3)
    r = drumfire("run", src, "--url", "http://127.0.0.1:9/{q}", "-o", tmp_path / "o.parquet",
                 "--cluster", "local:1", "-p", "2")  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "-p" in r.stderr
    assert "local:N" in r.stderr


def echo_server() -> ScriptedServer:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        q = parse_qs(urlsplit(target).query).get("q", [""])[0]
        return respond(200, {"q": q})

    return ScriptedServer(handler)


def test_file_urls_for_input_and_output(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.csv")
    out = tmp_path / "out.jsonl"
    with echo_server() as srv:
        r = drumfire("run", f"file://{src}", "--url", srv.base_url + "/x?q={q}", "-e", "q=q",
                     "-o", f"file://{out}", "--cluster", "local:2", "--partition-size", "1K",
                     "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    parts = sorted(out.glob("part-*.jsonl"))
    rows = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(N))
    assert all(r["q"] == "v" + r["id"][1:] for r in rows)


@pytest.fixture
def threads_cluster() -> Any:
    """A LocalCluster of threads in this process: ``memory://`` is one process's file system."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as local:
        yield local


@pytest.mark.parametrize("out_fmt", ["parquet", "jsonl"])
def test_memory_urls_write_parts_then_their_entries(threads_cluster: Any, out_fmt: str) -> None:
    import fsspec

    from drumfire._cluster import Store, run_cluster
    from drumfire._job import make_job

    fs = fsspec.filesystem("memory")
    base = f"memory://drumfire-test-{out_fmt}"
    fs.pipe(f"{base}/in.csv", ("id,q\n" + "".join(f"r{i},v{i}\n" for i in range(N))).encode())
    output = f"{base}/out.{out_fmt}"
    with echo_server() as srv:
        job = make_job(srv.base_url + "/x?q={q}", extract={"q": "q"})
        stats, code = run_cluster(
            f"{base}/in.csv", job, cluster=threads_cluster.scheduler_address, output=output,
            out_fmt=out_fmt, partition_size=1024, quiet=True,
        )  # fmt: skip
        assert (code, stats.done, stats.ok) == (0, N, N)
        names = {p.rsplit("/", 1)[-1] for p in fs.ls(output, detail=False)}
        parts = sorted(n for n in names if n.startswith("part-"))
        assert len(parts) >= 3
        assert Store.DONE in names  # each part is finished by its entry, written after it
        entries = fs.ls(f"{output}/{Store.DONE}", detail=False)
        assert sorted(e.rsplit("/", 1)[-1] for e in entries) == [f"{p}.json" for p in parts]
        # A part whose entry is missing (its writer died between the two writes) is
        # not finished: --resume writes it again; the others are skipped.
        fs.rm(f"{output}/{Store.DONE}/{parts[0]}.json")
        stats, code = run_cluster(
            f"{base}/in.csv", job, cluster=threads_cluster.scheduler_address, output=output,
            out_fmt=out_fmt, partition_size=1024, quiet=True, resume="--resume",
        )  # fmt: skip
    assert code == 0
    assert 0 < stats.done < N
    assert stats.done + stats.skipped == N
    if out_fmt == "parquet":
        frame = pd.read_parquet(output)  # pyarrow leaves out the _drumfire entries
        ids = list(frame["id"])
    else:
        ids = [
            json.loads(line)["id"]
            for p in parts
            for line in fs.cat_file(f"{output}/{p}").decode().splitlines()
        ]
    assert sorted(ids) == sorted(f"r{i}" for i in range(N))
    fs.rm(base, recursive=True)


def test_local_cluster_starts_while_the_default_dashboard_port_is_taken() -> None:
    # Another cluster (another user's, another test run) holds dask's default
    # dashboard port 8787: local:N must still start, without the fallback's
    # warning (an error under pytest, and noise for users).
    import contextlib
    import socket

    from drumfire._cluster import connect

    holder = socket.socket()
    with contextlib.suppress(OSError):  # already taken: as good
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    try:
        client, cluster = connect("local:1")
        try:
            assert sum(client.nthreads().values()) == 1
        finally:
            client.close()
            cluster.close()
    finally:
        holder.close()


def test_resume_sends_the_cancelled_rows_of_a_finished_part_again(tmp_path: Path) -> None:
    # A finished part holding `cancelled` rows (as an older drumfire wrote for a partition
    # its unreachable target stopped): the task of a --resume sends those rows again, and
    # only those, and rewrites the part whole. (run_part in this process: no cluster needed.)
    from drumfire._cluster import plan_parts, run_part
    from drumfire._job import make_job

    src = write_input(tmp_path / "in.csv", 20)
    (part,) = plan_parts(str(src), "csv", size=1 << 30)
    out = tmp_path / "out.jsonl"
    out.mkdir()
    seen: Counter[str] = Counter()

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        q = parse_qs(urlsplit(target).query).get("q", [""])[0]
        seen[q] += 1
        return respond(200, {"q": q})

    with ScriptedServer(handler) as srv:
        job = make_job(srv.base_url + "/x?q={q}", extract={"q": "q"})
        first = run_part(part, job, str(out), "jsonl")
        assert (first["rows"], first["skipped"]) == (20, False)
        path = out / "part-000000.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows:
            if row["id"] in ("r3", "r7"):
                row.update(status=None, error="cancelled", q=None)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        again = run_part(part, job, str(out), "jsonl")
        skipped = run_part(part, job, str(out), "jsonl")
    assert (again["rows"], again["kept"], again["stats"]["done"]) == (20, 18, 2)
    assert skipped["skipped"]  # nothing left to send: the part stays as it is
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(f"r{i}" for i in range(20))
    assert all(r["status"] == 200 and r["error"] == "" and r["q"] for r in rows)
    assert all(seen[f"v{i}"] == (2 if i in (3, 7) else 1) for i in range(20))


def test_an_unreachable_target_stops_the_run_with_exit_1_and_resume_completes_it(
    tmp_path: Path,
) -> None:
    # As without --cluster: a target that refuses every connection stops the run
    # (exit 1, one line naming it). A partition stopped so writes no part (no request
    # reached a server): it used to write its cancelled rows alone, leaving the rows
    # never sent out of the part, and the run said nothing and exited 0.
    src = write_input(tmp_path / "in.csv")
    out = tmp_path / "out.parquet"
    summary = tmp_path / "s.json"
    common = ["-o", out, "--cluster", "local:2", "--partition-size", "1K"]
    with refused_port() as port:
        dead = drumfire("run", src, "--url", f"http://127.0.0.1:{port}/x?q={{q}}", *common,
                        "--summary-json", summary)  # fmt: skip
    assert dead.returncode == 1, dead.stderr
    lines = [line for line in dead.stderr.splitlines() if "target unreachable" in line]
    assert len(lines) == 1, dead.stderr
    assert lines[0].startswith(f"drumfire: error: target unreachable: 127.0.0.1:{port}: ")
    assert "--resume" in lines[0]
    assert json.loads(summary.read_text())["unreachable"].startswith(f"127.0.0.1:{port}: ")
    assert not [p for p in out.iterdir() if p.name.startswith("part-")]
    with echo_server() as srv:
        again = drumfire("run", src, "--url", srv.base_url + "/x?q={q}", *common, "--resume",
                         "-e", "q=q")  # fmt: skip
    assert again.returncode == 0, again.stderr
    got = pd.read_parquet(out)
    assert sorted(got["id"]) == sorted(f"r{i}" for i in range(N))  # every row, once
    assert (got["status"] == 200).all()


def test_delimiter_cuts_and_reads_the_parts_as_one_machine_reads_the_file(tmp_path: Path) -> None:
    # --delimiter was refused with --cluster and by run_dask. The parts are cut where the
    # rows start by the delimiter's rules (a quoted cell over two lines holding ';' stays
    # whole; a quote after a comma opens nothing in a ';' CSV) and each is read with it.
    from drumfire import UsageError
    from drumfire.cluster import run_dask

    src = tmp_path / "in.csv"
    rows = []
    for i in range(N):
        q = f'"two;\nlines ""{i}"""' if i % 7 == 0 else f'a,"b{i}' if i % 11 == 0 else f"v{i}"
        rows.append(f"r{i};{q};x\n")
    src.write_text("id;q;other\n" + "".join(rows))
    out = tmp_path / "out.parquet"
    with echo_server() as srv:
        url = srv.base_url + "/x?q={q}"
        common = ["--url", url, "-e", "q=q", "--delimiter", ";"]
        one = drumfire("run", src, *common, "-o", tmp_path / "one.jsonl", "-q")
        assert one.returncode == 0, one.stderr
        many = drumfire("run", src, *common, "-o", out, "--cluster", "local:2",
                        "--partition-size", "1K")  # fmt: skip
        assert many.returncode == 0, many.stderr
        assert f"{N:,} of {N:,} rows" in many.stderr
        lazy = run_dask(src, url, extract={"q": "q"}, delimiter=";", partition_size=1024)
        frame = lazy.compute(scheduler="sync")
    lines = (tmp_path / "one.jsonl").read_text().splitlines()
    want = {r["id"]: r["q"] for r in map(json.loads, lines)}
    assert len(want) == N
    assert want["r0"] == 'two;\nlines "0"'
    assert want["r11"] == 'a,"b11'
    got = pd.read_parquet(out)
    assert len([p for p in out.iterdir() if p.name.startswith("part-")]) > 3
    assert dict(zip(got["id"], got["q"], strict=True)) == want
    assert dict(zip(frame["id"], frame["q"], strict=True)) == want
    # The delimiter is the dataset's: a resume with it finds every part done, one with
    # another is refused.
    again = ["-o", out, "--cluster", "local:1", "--partition-size", "1K", "--resume"]
    same = drumfire("run", src, "--url", "http://127.0.0.1:9/x?q={q}", *again, "--delimiter", ";")
    assert same.returncode == 0, same.stderr
    assert f"({N:,} already done)" in same.stderr
    other = drumfire("run", src, "--url", "http://127.0.0.1:9/x", *again, "--delimiter", "|")
    assert other.returncode == 2, other.stderr
    assert "--partition-size or --delimiter changed); use --overwrite" in other.stderr
    import dask.dataframe as dd

    with pytest.raises(UsageError, match=r"run_dask: delimiter= applies only when data is a file"):
        run_dask(dd.from_pandas(pd.DataFrame({"q": ["a"]}), npartitions=1), url, delimiter=";")


def test_an_address_where_something_else_listens_is_one_line(tmp_path: Path) -> None:
    # Not a Dask scheduler: a server that sends 16 bytes, then waits for the client to
    # hang up. distributed fails on what it reads (struct.error here; a huge numpy
    # array elsewhere), which was a traceback: one line, exit 2.
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(20):  # bounded: distributed retries its handshake a few times
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                # distributed's frame count (1), then a frame length it cannot take
                conn.sendall(bytes.fromhex("0100000000000000ffffffffffffff0f"))
                conn.settimeout(60)
                try:
                    conn.recv(1 << 16)  # until the client gives up
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        proc = drumfire(
            "run", write_input(tmp_path / "in.csv", 3), "--url", "http://127.0.0.1:9/{q}",
            "--cluster", f"tcp://127.0.0.1:{port}", "-o", tmp_path / "out.parquet",
        )  # fmt: skip
    finally:
        listener.close()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"drumfire: error: --cluster 'tcp://127.0.0.1:{port}': cannot reach the scheduler"
    ), lines


def test_an_address_where_nothing_listens_says_so_in_one_line(tmp_path: Path) -> None:
    # distributed's Client retries a refused connection until its timeout: the run
    # waited 30 s, then said "Timed out trying to connect". drumfire probes the address
    # first, and a refused connection is one line naming it at once.
    import socket

    with socket.socket() as bound:  # bound, never listening: a connection is refused
        bound.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{bound.getsockname()[1]}"
        proc = drumfire(
            "run", write_input(tmp_path / "in.csv", 3), "--url", "http://127.0.0.1:9/{q}",
            "--cluster", address, "-o", tmp_path / "out.parquet",
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"drumfire: error: --cluster '{address}': cannot reach the scheduler: nothing "
        "listens there (connection refused)"
    ]


def test_a_resume_sees_any_file_of_a_parquet_directory_replaced(tmp_path: Path) -> None:
    # The manifest stamped the first file of the input alone: a directory whose second
    # file was replaced since (the same row groups, other values) resumed, keeping parts
    # read from the old file beside parts read from the new. Now every file is stamped.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.parquet"  # a directory, as a Parquet dataset is
    src.mkdir()

    def write(name: str, start: int, prefix: str) -> None:
        table = pa.table({"id": [f"r{start + i}" for i in range(50)],
                          "q": [f"{prefix}{i}" for i in range(50)]})  # fmt: skip
        pq.write_table(table, src / name)

    write("a.parquet", 0, "a")
    write("b.parquet", 50, "b")
    out = tmp_path / "out.parquet"
    with echo_server() as srv:
        args = ["run", src, "--url", srv.base_url + "/x?q={q}", "-o", out, "-q",
                "--cluster", "local:1"]  # fmt: skip
        first = drumfire(*args)
        assert first.returncode == 0, first.stderr
        same = drumfire(*args, "--resume")  # nothing changed: every part is done
        assert same.returncode == 0, same.stderr
        write("b.parquet", 50, "changed")
        again = drumfire(*args, "--resume")
    assert again.returncode == 2, again.stderr
    assert "was written for another input or partitioning" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_run_dask_names_its_keywords_not_the_command_line(tmp_path: Path) -> None:
    """run_dask's template and column checks said --url, --keep, --id, --extract and -e, as
    the command line's do; drumfire.run says url=, keep=, id=, extract= (README)."""
    from drumfire import UsageError
    from drumfire.cluster import run_dask

    src = tmp_path / "in.csv"
    src.write_text("id;u\na;x\n")
    frame = pd.DataFrame({"id": ["a"], "u": ["x"]})
    import dask.dataframe as dd

    lazy = dd.from_pandas(frame, npartitions=1)
    url = "http://127.0.0.1:9/{u}"
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (src, {}, "url='http://127.0.0.1:9/{u}' uses column 'u', which the input does not "
                  "have (columns: id;u); fields separated by ';'? say delimiter=';'"),
        (lazy, {"keep": ["z"]}, "keep= names column 'z', which the input does not have"),
        (lazy, {"id": "z"}, "id= names column 'z', which the input does not have"),
        (lazy, {"extract": {"x": "[["}}, "bad extract= expression '[['"),
        (lazy, {"extract": {"status": "a"}}, "output column 'status' is a column every row "
                                             "has; choose another name in extract="),
    ]  # fmt: skip
    for data, kwargs, message in cases:
        with pytest.raises(UsageError) as info:
            run_dask(data, url, **kwargs)
        assert str(info.value).startswith(message), info.value
        assert "--" not in str(info.value), info.value

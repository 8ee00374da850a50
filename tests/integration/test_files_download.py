"""Issue 20: each response body saved to its own file, from nginx serving a directory.

Every file must arrive identical, no temporary name may be left behind (also after
``kill -9`` and ``--resume``), and no row's values may write outside --save-dir.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, respond
from static_nginx import static_nginx

from drumfire import run, run_all
from drumfire._savebody import TEMP_SUFFIX

CLI = [sys.executable, "-m", "drumfire.cli"]
SIZES = [0, 1, 512, 65535, 65536, 65537, 150_000]


def drumfire(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 files of mixed sizes (most small) in two folders."""
    root = tmp_path_factory.mktemp("served")
    rng = random.Random(2020)
    for i in range(3000):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        size = SIZES[i % len(SIZES)] if i % 10 == 0 else rng.randrange(0, 4000)
        (folder / f"img{i:04d}.jpg").write_bytes(rng.randbytes(size))
    return root


def write_input(root: Path, target: Path) -> list[str]:
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    with target.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name"])
        for name in names:
            w.writerow([name.replace("/", "-"), name])
    return names


def temp_names(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def assert_identical(root: Path, saved: Path, names: list[str]) -> None:
    for name in names:
        assert (saved / name).read_bytes() == (root / name).read_bytes(), name
    assert temp_names(saved) == []


def test_thousands_of_downloads_are_identical(served: Path, tmp_path: Path) -> None:
    names = write_input(served, tmp_path / "in.csv")
    out = tmp_path / "dl"
    with static_nginx(served) as base:
        proc = drumfire(
            "run", tmp_path / "in.csv", "--url", base + "/{name}",
            "--save-body", "files/{name}", "--save-dir", out, "--save-sha256",
            "-o", tmp_path / "out.csv", "-q",
        )
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == len(names) == 3000
    assert {r["status"] for r in rows} == {"200"}
    assert {r["error"] for r in rows} == {""}
    assert_identical(served, out / "files", names)
    for r in rows[:200]:
        data = (served / r["saved_path"].removeprefix("files/")).read_bytes()
        assert int(r["saved_bytes"]) == len(data)
        assert r["saved_sha256"] == hashlib.sha256(data).hexdigest()


def test_kill_9_then_resume_completes_them(served: Path, tmp_path: Path) -> None:
    names = write_input(served, tmp_path / "in.csv")
    out = tmp_path / "dl"
    output = tmp_path / "out.csv"
    args = [
        "run", tmp_path / "in.csv", "--save-body", "{name}", "--save-dir", out,
        "-o", output, "-q",
    ]
    with static_nginx(served) as base:
        # Slow enough that it is still running when the first rows are on disk.
        proc = subprocess.Popen(
            [*CLI, *map(str, args), "--url", base + "/{name}", "--rate", "400/s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            for _ in range(600):  # wait for an event (rows flushed), bounded
                if output.exists() and output.read_text().count("\n") > 50:
                    break
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        first = read_csv(output) if output.exists() else []
        assert 0 < len(first) < len(names)
        again = drumfire(*args, "--url", base + "/{name}", "--resume")
    assert again.returncode == 0, again.stderr
    rows = read_csv(output)
    counts = Counter(r["id"] for r in rows)
    assert len(counts) == len(names)
    assert set(counts.values()) == {1}  # every row exactly once
    assert_identical(served, out, names)
    # Rows whose file was complete but whose row was lost are written without a request.
    for r in rows:
        assert r["error"] == "", r
        assert int(r["saved_bytes"]) == (served / r["saved_path"]).stat().st_size


def test_path_escapes_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(outside, target_is_directory=True)
    (target / "filelink").symlink_to(outside / "x.txt")
    bad = {
        "dotdot": "../outside/x.txt",
        "deep": "a/../../outside/x.txt",
        "abs": str(outside / "x.txt"),
        "link": "link/x.txt",
        "filelink": "filelink",
        "empty": "",
        "dir": "sub/",
    }
    rows = [{"id": k, "p": v} for k, v in bad.items()] + [{"id": "fine", "p": "ok/x.txt"}]

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"payload")

    with ScriptedServer(handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/"), save_body="{p}",
                                          save_dir=str(target))}
        assert len(srv.requests) == 1  # refused rows are never sent
    assert results["fine"].status == 200
    assert results["fine"].fields == {"saved_path": "ok/x.txt", "saved_bytes": 7}
    assert (target / "ok" / "x.txt").read_bytes() == b"payload"
    for key in bad:
        assert results[key].error.startswith("save: "), (key, results[key])
        assert results[key].status is None
    assert "'..' step" in results["dotdot"].error
    assert "absolute path" in results["abs"].error
    assert "symbolic link" in results["link"].error
    assert list(outside.iterdir()) == []


def _named_body(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
    return respond(200, b"body of " + target.encode())


def test_a_saved_body_never_replaces_the_run_s_own_files(tmp_path: Path) -> None:
    """A row whose path is the input, the output, a file beside it or --summary-json is
    refused before it is sent: renamed over them, a body replaced the input while it was
    read and the output while it was written (the run then lost every result)."""
    names = ["a.txt", "results.csv", "in.csv", ".results.csv.drumfire-batch",
             "summary.json", "b.txt"]
    source = tmp_path / "in.csv"
    source.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    before = source.read_bytes()
    with ScriptedServer(_named_body) as srv:
        done = drumfire("run", source, "--url", srv.url("/") + "{name}", "--save-body",
                        "{name}", "--save-dir", tmp_path, "-o", tmp_path / "results.csv",
                        "-c", "1", "--summary-json", tmp_path / "summary.json")
        assert sorted(r.target for r in srv.requests) == ["/a.txt", "/b.txt"]
    assert done.returncode == 0, done.stderr
    assert source.read_bytes() == before
    rows = {names[int(r["id"])]: r for r in read_csv(tmp_path / "results.csv")}
    assert len(rows) == len(names)
    assert rows["a.txt"]["saved_path"] == "a.txt"
    assert (tmp_path / "b.txt").read_bytes() == b"body of /b.txt"
    assert rows["results.csv"]["error"] == (
        "save: 'results.csv' is the output of this run: a body saved there would replace it"
    )
    assert "is the input of this run" in rows["in.csv"]["error"]
    assert "beside the output" in rows[".results.csv.drumfire-batch"]["error"]
    assert "--summary-json" in rows["summary.json"]["error"]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == len(names)


def test_the_api_guards_its_input_and_output_too(tmp_path: Path) -> None:
    """As the command line: rows read from a file, output= and a Parquet output's
    directory (a body saved inside it would join the dataset)."""
    source = tmp_path / "in.csv"
    source.write_text("id,name\n1,in.csv\n2,out.jsonl\n3,ok.txt\n")
    with ScriptedServer(_named_body) as srv:
        got = run_all(source, srv.url("/") + "{name}", save_body="{name}",
                      save_dir=str(tmp_path), output=str(tmp_path / "out.jsonl"))
        assert [r.target for r in srv.requests] == ["/ok.txt"]
    errors = {r["id"]: r["error"] for r in got}
    assert "is the input of this run" in errors["1"]
    assert "is the output of this run" in errors["2"]
    assert errors["3"] == ""
    assert source.read_text().startswith("id,name")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    pytest.importorskip("pyarrow")
    rows = [{"id": "1", "name": "out.parquet/part.parquet"}, {"id": "2", "name": "ok2.txt"}]
    with ScriptedServer(_named_body) as srv:
        got = run_all(rows, srv.url("/") + "{name}", save_body="{name}",
                      save_dir=str(tmp_path), output=str(tmp_path / "out.parquet"))
        assert [r.target for r in srv.requests] == ["/ok2.txt"]
    assert "is inside the output of this run" in got[0]["error"]


def test_save_status_and_max_body(tmp_path: Path) -> None:
    """404 bodies are not saved by default (kept for -e); --max-body caps a saved body."""

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target == "/missing":
            return respond(404, {"why": "gone"})
        if target == "/big":
            return respond(200, b"x" * 5000)
        return respond(200, b"y" * 10)

    rows = [{"id": "missing"}, {"id": "big"}, {"id": "small"}]
    with ScriptedServer(handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/{id}"), save_body="{id}.bin",
                                          save_dir=str(tmp_path), max_body=1000,
                                          extract={"why": "why"})}
        everything = {r.id: r for r in run([{"id": "missing"}], srv.url("/{id}"),
                                            save_body="all/{id}.bin", save_dir=str(tmp_path),
                                            save_status="all")}
    assert results["missing"].status == 404
    assert results["missing"].fields == {"why": "gone", "saved_path": None, "saved_bytes": None}
    # The answer came: the row keeps its status, and says which limit it passed.
    assert (results["big"].status, results["big"].error) == (
        200,
        "body_too_large: over --max-body (1000 bytes)",
    )
    assert results["big"].reason == "body_too_large"
    assert results["small"].fields == {"why": None, "saved_path": "small.bin", "saved_bytes": 10}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all", "small.bin"]
    saved = (tmp_path / "all" / "missing.bin").read_bytes()
    assert json.loads(saved) == {"why": "gone"}
    assert everything["missing"].fields == {
        "saved_path": "all/missing.bin",
        "saved_bytes": len(saved),
    }


def test_a_download_over_max_body_keeps_its_status(tmp_path: Path) -> None:
    """`--max-body` stops a download as curl's --max-filesize does: status 200, the
    limit named, no file; plain, chunked and gzip-compressed bodies alike, and the
    next rows on the same connection are still answered."""
    from servers import chunked, gzipped

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        name = target.rsplit("/", 1)[1]
        if name == "plain":
            return respond(200, b"x" * 5000)
        if name == "chunked":
            return chunked(200, b"x" * 5000, size=700)
        if name == "gzip":
            return gzipped(200, b"x" * 50_000)
        return respond(200, b"y" * 10)

    inp = tmp_path / "in.csv"
    inp.write_text("id\nplain\nchunked\ngzip\nsmall\n")
    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        done = drumfire("run", inp, "--url", srv.url("/{id}"), "--save-body", "{id}.bin",
                        "--save-dir", tmp_path / "saved", "--max-body", "1000", "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    rows = {r["id"]: r for r in read_csv(out)}
    for name in ("plain", "chunked", "gzip"):
        assert (rows[name]["status"], rows[name]["error"], rows[name]["saved_path"]) == (
            "200", "body_too_large: over --max-body (1000 bytes)", ""), rows[name]
    assert (rows["small"]["status"], rows["small"]["error"]) == ("200", "")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["small.bin"]


def test_cut_short_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A body cut short by the server: the row fails, no half file under any name."""

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        from servers import partial

        return partial(200, b"z" * 100_000, 40_000)

    with ScriptedServer(handler) as srv:
        results = list(run([{"id": "1"}], srv.url("/"), save_body="{id}.bin",
                           save_dir=str(tmp_path), retries=1))
    assert results[0].error == "reset" or results[0].error.startswith("protocol"), results[0]
    assert list(tmp_path.iterdir()) == []


def test_output_columns_in_csv(tmp_path: Path) -> None:
    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"abc")

    (tmp_path / "in.csv").write_text("id\n1\n2\n")
    with ScriptedServer(handler) as srv:
        proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/{id}"),
                        "--save-body", "{id}.txt", "--save-dir", tmp_path / "s", "-o", "-",
                        "-q", "--keep", "id")
    assert proc.returncode == 2  # --keep id: a column every row has
    with ScriptedServer(handler) as srv:
        proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/{id}"),
                        "--save-body", "{id}.txt", "--save-dir", tmp_path / "s", "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr
    header = next(csv.reader(io.StringIO(proc.stdout)))
    assert header == ["id", "status", "elapsed_ms", "attempts", "error", "saved_path",
                      "saved_bytes"]


def test_a_body_that_cannot_be_written_is_a_save_row(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"a file, not a directory")

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"abc")

    with ScriptedServer(handler) as srv:
        [result] = run([{"id": "1"}], srv.url("/"), save_body="taken/{id}.bin",
                       save_dir=str(tmp_path), retries=0)
    assert result.error.startswith("save: taken/1.bin: "), result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_worker_processes_save_too(served: Path, tmp_path: Path) -> None:
    names = write_input(served, tmp_path / "in.csv")[:400]
    with (tmp_path / "in.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "name"])
        w.writerows([n.replace("/", "-"), n] for n in names)
    out = tmp_path / "dl"
    with static_nginx(served) as base:
        proc = drumfire("run", tmp_path / "in.csv", "--url", base + "/{name}", "-p", "2",
                        "--save-body", "{name}", "--save-dir", out, "-o", tmp_path / "o.csv",
                        "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(read_csv(tmp_path / "o.csv")) == 400
    assert_identical(served, out, names)


def test_api_output_resume_skips_complete_files(tmp_path: Path) -> None:
    """output= with resume=True: a row missing from the output whose file is complete
    is written without a request."""

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, target.encode())

    rows = [{"id": str(i)} for i in range(5)]
    out = tmp_path / "s"
    out.mkdir()
    (out / "3.txt").write_bytes(b"/3")  # saved by a run that died before writing its row
    (out / f".4.txt.dead{TEMP_SUFFIX}").write_bytes(b"/")  # and a half file it left
    with ScriptedServer(handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/{id}"), save_body="{id}.txt",
                                          save_dir=str(out), output=str(tmp_path / "o.csv"),
                                          resume=True)}
        sent = sorted(r.target for r in srv.requests)
    assert sent == ["/0", "/1", "/2", "/4"]
    assert results["3"].attempts == 0
    assert results["3"].fields == {"saved_path": "3.txt", "saved_bytes": 2}
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.txt" for i in range(5)]
    assert len(read_csv(tmp_path / "o.csv")) == 5


@pytest.mark.parametrize("kind", ["list", "pandas", "arrow", "batch", "polars"])
def test_run_all_has_the_save_columns_whatever_it_is_given(tmp_path: Path, kind: str) -> None:
    """Every kind run_all gives back has saved_path, saved_bytes and saved_sha256
    (Arrow and polars dropped them: their columns were the extracted names only)."""

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(404, b"no") if target == "/b" else respond(200, b"hello")

    pa = pytest.importorskip("pyarrow")
    given: list[dict[str, str]] = [{"id": "a"}, {"id": "b"}]
    rows: object = given
    if kind == "pandas":
        rows = pytest.importorskip("pandas").DataFrame(given)
    elif kind in ("arrow", "batch"):
        table = pa.Table.from_pylist(given)
        rows = table if kind == "arrow" else table.to_batches()[0]
    elif kind == "polars":
        rows = pytest.importorskip("polars").DataFrame(given)
    with ScriptedServer(handler) as srv:
        got = run_all(rows, srv.url("/{id}"), save_body="{id}.bin", save_dir=str(tmp_path),
                      save_sha256=True)  # fmt: skip
    if kind == "list":
        records = got
    elif kind == "pandas":
        records = [{k: None if v is None or v != v else v for k, v in r.items()}
                   for r in got.to_dict("records")]  # fmt: skip
    elif kind == "polars":
        records = got.to_dicts()
    else:
        records = got.to_pylist()
    saved = [{k: r[k] for k in ("id", "saved_path", "saved_bytes", "saved_sha256")}
             for r in records]  # fmt: skip
    assert saved == [
        {"id": "a", "saved_path": "a.bin", "saved_bytes": 5,
         "saved_sha256": hashlib.sha256(b"hello").hexdigest()},
        {"id": "b", "saved_path": None, "saved_bytes": None, "saved_sha256": None},
    ]  # fmt: skip
    assert (tmp_path / "a.bin").read_bytes() == b"hello"


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_the_save_columns_have_their_types_whatever_the_first_flush_holds(
    tmp_path: Path, fmt: str
) -> None:
    """A first run of 404s only (no saved_bytes yet) made saved_bytes a string column,
    kept by --resume: drumfire's own columns have fixed types, as the base ones."""
    import pyarrow.parquet as pq

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"hello") if target == "/ok" else respond(404, b"no")

    first, every = tmp_path / "first.csv", tmp_path / "every.csv"
    first.write_text("id,p\n1,no\n2,no\n")
    every.write_text("id,p\n1,no\n2,no\n3,ok\n")
    out = tmp_path / f"out.{fmt}"
    with ScriptedServer(handler) as srv:
        args = ["--url", srv.url("/{p}"), "--save-body", "{id}.bin", "--save-sha256",
                "--save-dir", tmp_path / "saved", "-o", out, "-q"]  # fmt: skip
        assert drumfire("run", first, *args).returncode == 0
        done = drumfire("run", every, *args, "--resume")
    assert done.returncode == 0, done.stderr
    if fmt == "parquet":
        table = pq.read_table(out)
        types = {name: str(table.schema.field(name).type) for name in table.column_names[5:]}
        assert types == {"saved_path": "string", "saved_bytes": "int64", "saved_sha256": "string"}
        rows = {r["id"]: r["saved_bytes"] for r in table.to_pylist()}
    else:
        import sqlite3

        with sqlite3.connect(out) as db:
            declared = {r[1]: r[2] for r in db.execute("PRAGMA table_info(results)")}
            rows = dict(db.execute("SELECT id, saved_bytes FROM results").fetchall())
        assert [declared[n] for n in ("saved_path", "saved_bytes", "saved_sha256")] == [
            "TEXT", "INTEGER", "TEXT",
        ]  # fmt: skip
    assert rows == {"1": None, "2": None, "3": 5}


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars"])
@pytest.mark.parametrize("saved", [True, False])
def test_run_all_save_columns_have_one_type_whether_or_not_a_row_saved(
    tmp_path: Path, kind: str, saved: bool
) -> None:
    """saved_bytes is an integer column (pandas: Int64, as status) and saved_path and
    saved_sha256 text, in a frame of 404s only too (pandas gave float64, or object)."""
    pa = pytest.importorskip("pyarrow")
    given = [{"id": "a", "p": "ok" if saved else "no"}, {"id": "b", "p": "no"}]
    rows: object = pa.Table.from_pylist(given)
    if kind == "pandas":
        rows = pytest.importorskip("pandas").DataFrame(given)
    elif kind == "polars":
        rows = pytest.importorskip("polars").DataFrame(given)

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        return respond(200, b"hello") if target == "/ok" else respond(404, b"no")

    with ScriptedServer(handler) as srv:
        got = run_all(rows, srv.url("/{p}"), save_body="{id}.bin", save_dir=str(tmp_path),
                      save_sha256=True)  # fmt: skip
    names = ["saved_path", "saved_bytes", "saved_sha256"]
    if kind == "pandas":
        import pandas as pd

        text = pd.Series(["x"]).dtype  # the id column's: str (pandas 3) or object
        assert [str(got[n].dtype) for n in ["id", *names]] == [str(text), str(text), "Int64",
                                                              str(text)]  # fmt: skip
        assert got["saved_bytes"].tolist() == ([5] if saved else [pd.NA]) + [pd.NA]
    elif kind == "polars":
        assert [str(got.schema[n]) for n in names] == ["String", "Int64", "String"]
        assert got["saved_bytes"].to_list() == [5 if saved else None, None]
    else:
        assert [str(got.schema.field(n).type) for n in names] == ["string", "int64", "string"]
        assert got.column("saved_bytes").to_pylist() == [5 if saved else None, None]

"""The values kept aside by the typed outputs (Parquet's ``_unfit.jsonl``, SQLite's
``<table>_unfit``) describe the rows the output holds now, through ``--retry-failed``,
``--resume`` and ``--overwrite``. Real servers on 127.0.0.1; every run is a real command."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from servers import Action, ScriptedServer, respond

import drumfire
from drumfire._parquet import ParquetSink
from drumfire._result import Result
from drumfire._sqlite import SqliteSink

CLI = [sys.executable, "-m", "drumfire.cli"]
Headers = dict[str, str]


def drumfire_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def unfit_entries(out: Path, fmt: str) -> list[tuple[str, str, Any]]:
    """``(id, column, value)`` of every value kept aside, sorted."""
    if fmt == "parquet":
        path = out / "_unfit.jsonl"
        if not path.exists():
            return []
        found = [json.loads(line) for line in path.read_text().splitlines()]
        return sorted((e["id"], e["column"], e["value"]) for e in found)
    with sqlite3.connect(out) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'results_unfit'").fetchone():
            return []
        rows = db.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    return sorted((i, c, json.loads(v)) for i, c, v in rows)


def output_rows(out: Path, fmt: str, column: str) -> dict[str, tuple[int | None, Any]]:
    """``{id: (status, column's cell)}``."""
    if fmt == "parquet":
        table = ds.dataset(str(out)).to_table().to_pydict()
        return {
            i: (s, v) for i, s, v in zip(table["id"], table["status"], table[column], strict=True)
        }
    with sqlite3.connect(out) as db:
        query = f'SELECT id, status, "{column}" FROM results'
        return {i: (s, v) for i, s, v in db.execute(query)}


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_retry_failed_takes_the_old_unfit_values_of_the_rows_it_sends_again(
    tmp_path: Path, fmt: str
) -> None:
    # Before: row 2's "n/a" (from its 503) stayed beside its new result, v = 2.
    healed = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        n = int(target.rsplit("/", 1)[1])
        if n == 2 and not healed.is_set():
            return respond(503, {"v": "n/a"})
        return respond(200, {"v": "many" if n == 3 else n})

    source = tmp_path / "in.csv"
    source.write_text("id\n1\n2\n3\n")
    out = tmp_path / f"out.{fmt}"
    with ScriptedServer(handler) as srv:
        url = srv.url("/v/{id}")
        common = ("--url", url, "-e", "v=v", "-o", out, "--retries", "0", "-q")
        # Row 1 alone makes v an integer column; then "n/a" and "many" do not fit it.
        first = drumfire_cli("run", source, *common, "-n", "1")
        assert first.returncode == 0, first.stderr
        second = drumfire_cli("run", source, *common, "--resume")
        assert second.returncode == 0, second.stderr
        assert unfit_entries(out, fmt) == [("2", "v", "n/a"), ("3", "v", "many")]
        assert output_rows(out, fmt, "v") == {"1": (200, 1), "2": (503, None), "3": (200, None)}

        healed.set()
        third = drumfire_cli("run", source, *common, "--retry-failed")
        assert third.returncode == 0, third.stderr
    assert output_rows(out, fmt, "v") == {"1": (200, 1), "2": (200, 2), "3": (200, None)}
    assert unfit_entries(out, fmt) == [("3", "v", "many")]  # row 3 was kept: its value too


def cancelled_output(out: Path, fmt: str) -> None:
    """An output as a run stopped by Ctrl-C leaves it: row 1 done, row 2 ``cancelled``;
    the kept column ``k`` is an integer column, and row 2's "n/a" is kept aside."""
    sink = (ParquetSink if fmt == "parquet" else SqliteSink)(str(out), [], ["k"])
    sink.write(Result("1", 200, 1.0, 1, "", None, {"k": 1}))
    sink.flush()  # the column types are decided here
    sink.write(Result("2", None, 2.0, 1, "cancelled", None, {"k": "n/a"}))
    sink.close()


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_resume_sends_a_cancelled_row_again_without_its_old_entry(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: row 2 sent again kept "n/a" aside a second time, two entries for one row.
    out = tmp_path / f"out.{fmt}"
    cancelled_output(out, fmt)
    capsys.readouterr()
    assert unfit_entries(out, fmt) == [("2", "k", "n/a")]
    rows = [{"id": "1", "k": 1}, {"id": "2", "k": "n/a"}]
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        got = list(drumfire.run(rows, srv.url("/{id}"), keep=["k"], output=out, resume=True))
        assert [r.target for r in srv.requests] == ["/2"]
    assert [(r.id, r.status, r.error) for r in got] == [("2", 200, "")]
    assert output_rows(out, fmt, "k") == {"1": (200, 1), "2": (200, None)}
    assert unfit_entries(out, fmt) == [("2", "k", "n/a")]  # once, for its new row


@pytest.mark.parametrize("fmt", ["parquet", "sqlite"])
def test_overwrite_takes_the_values_kept_aside_with_the_rows(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    cancelled_output(out, fmt)
    source = tmp_path / "in.csv"
    source.write_text("id,k\n1,1\n")
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        proc = drumfire_cli(
            "run", source, "--url", srv.url("/{id}"), "--keep", "k", "-o", out, "--overwrite",
            "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert output_rows(out, fmt, "k") == {"1": (200, "1")}
    assert unfit_entries(out, fmt) == []


@pytest.mark.timeout(300)
def test_a_cluster_run_over_a_parquet_output_takes_its_values_kept_aside(
    tmp_path: Path,
) -> None:
    # Before: --cluster --overwrite replaced the parts and left _unfit.jsonl, whose
    # "n/a" for row 2 then stood beside a row 2 that never had it.
    pytest.importorskip("distributed")
    out = tmp_path / "out.parquet"
    cancelled_output(out, "parquet")
    source = tmp_path / "in.csv"
    source.write_text("id,k\n1,1\n2,2\n")
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        proc = drumfire_cli(
            "run", source, "--url", srv.url("/{id}"), "--keep", "k", "-o", out, "--overwrite",
            "--cluster", "local:1", "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted(ds.dataset(str(out)).to_table().column("id").to_pylist()) == ["1", "2"]
    assert not (out / "_unfit.jsonl").exists()

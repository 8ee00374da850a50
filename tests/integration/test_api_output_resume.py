"""``output=`` / ``resume=True`` of the Python API keep the promises of ``drumfire run -o``.

Real servers on 127.0.0.1; every wait is for an event, never for a guessed time.
"""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, respond

import drumfire

Headers = dict[str, str]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_resume_sends_the_cancelled_rows_again(tmp_path: Path) -> None:
    healed = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if healed.is_set() or int(target[1:]) <= 6:
            return respond(200, {"n": int(target[1:])})
        return respond(503, b"", [("Retry-After", "30")])

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        urls = [srv.url(f"/{i}") for i in range(1, 11)]
        for seen, _ in enumerate(drumfire.run(urls, concurrency=1, output=out), 1):
            if seen == 6:  # row 7 is now waiting 30 s for its retry: stop there
                for _ in range(400):
                    if any(r.target == "/7" for r in srv.requests):
                        break
                    time.sleep(0.05)
                break
        first = rows(out)
        assert ("7", "cancelled") in [(r["id"], r["error"]) for r in first]
        healed.set()
        again = list(drumfire.run(urls, concurrency=1, output=out, resume=True))
    assert "7" in [r.id for r in again]
    final = rows(out)
    assert Counter(r["id"] for r in final) == Counter(str(i) for i in range(1, 11))
    assert all(r["error"] == "" for r in final), final


def test_resume_twice_writes_an_input_error_row_once(tmp_path: Path) -> None:
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        src = tmp_path / "in.csv"
        src.write_text(f'id,u\n1,{srv.url("/1")}\n2,"{srv.url("/2")}\n3,{srv.url("/3")}\n')
        out = tmp_path / "out.csv"
        for resume in (False, True, True):
            list(drumfire.run(src, "{u}", output=out, resume=resume))
    got = rows(out)
    assert sorted(r["id"] for r in got) == ["", "1", "3"]
    assert [r["error"] for r in got if r["id"] == ""] == ["input: line 3: unterminated quote"]


def test_a_second_writer_of_the_same_output_is_refused(tmp_path: Path) -> None:
    """One writer, as with the command line: the API holds the lock while it runs."""
    release = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        release.wait(10)
        return respond(200, {})

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        first = drumfire.run([srv.url("/1")], output=out)
        try:
            with pytest.raises(drumfire.UsageError, match="being written by another"):
                drumfire.run([srv.url("/2")], output=out, resume=True)
        finally:
            release.set()
            assert [r.error for r in first] == [""]


def test_output_dash_is_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ``-o -``: rows go to standard output, and no file named '-' appears."""
    monkeypatch.chdir(tmp_path)
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        got = list(drumfire.run([srv.url("/1")], output="-"))
    assert [r.error for r in got] == [""]
    assert not (tmp_path / "-").exists()
    assert capsys.readouterr().out.startswith("id,status,elapsed_ms,attempts,error\n1,200,")


def test_a_resumed_dataframe_keeps_the_labels_of_the_rows_it_sent(tmp_path: Path) -> None:
    """run_all(df, resume=True) returns only the rows sent now, each with its input label,
    so ``result.join(df)`` still pairs every result with its own input row (it used to get
    a fresh 0..k-1 index: each result joined the input row at that position instead)."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {"id": [f"r{i}" for i in range(8)], "v": [f"v{i}" for i in range(8)]},
        index=[10 * i for i in range(8)],
    )
    plain = df.reset_index(drop=True)  # a RangeIndex, the usual case
    extract = {"path": "path"}
    with ScriptedServer(lambda *a: respond(200, {"path": a[2]})) as srv:
        url = srv.url("/{v}")
        for frame, out in ((df, tmp_path / "labels.csv"), (plain, tmp_path / "plain.csv")):
            first = drumfire.run_all(
                frame.iloc[[0, 2, 3, 7]], url, extract=extract, output=out, progress=False
            )
            assert first.index.tolist() == frame.index[[0, 2, 3, 7]].tolist()
            again = drumfire.run_all(
                frame, url, extract=extract, output=out, resume=True, progress=False
            )
            assert again["id"].tolist() == ["r1", "r4", "r5", "r6"]
            assert again.index.tolist() == frame.index[[1, 4, 5, 6]].tolist()
            joined = again.join(frame.drop(columns="id"))
            assert (joined["path"] == "/" + joined["v"]).all(), joined


def test_run_all_keeps_a_dataframes_kept_columns_as_it_holds_them(tmp_path: Path) -> None:
    """A kept column has the input's dtype and values, also in a resume (the rows sent
    now). Made from the results, a nullable Int64 column with a gap was float64: its
    integers past 2**53 rounded, 1152921504606846977 came back as 1152921504606846976."""
    pd = pytest.importorskip("pandas")
    big = 2**60 + 1
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(6)],
            "n": pd.array([big, None, 3, big + 2, None, 5], dtype="Int64"),
            "c": pd.Series(["a", None, "b", "a", "b", None], dtype="category"),
            "b": pd.array([True, None, False, True, False, None], dtype="boolean"),
        },
        index=[10 * i for i in range(6)],
    )
    out = tmp_path / "out.csv"
    keep = ["n", "c", "b"]
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        url = srv.url("/{id}")
        whole = drumfire.run_all(df, url, keep=keep, progress=False)
        drumfire.run_all(df.iloc[[0, 3]], url, keep=keep, output=out, progress=False)
        resumed = drumfire.run_all(df, url, keep=keep, output=out, resume=True, progress=False)
    pd.testing.assert_frame_equal(whole[keep], df[keep])
    assert resumed["id"].tolist() == ["r1", "r2", "r4", "r5"]
    pd.testing.assert_frame_equal(resumed[keep], df[keep].iloc[[1, 2, 4, 5]])


def test_run_all_unordered_keeps_the_kept_columns_types_and_values() -> None:
    """With ordered=False (completion order, a fresh index) the kept columns were made from
    the results' values alone: a nullable Int64 column with a gap came back float64, 2**60 + 1
    as 1152921504606846976, and a category or boolean column as text or object."""
    pd = pytest.importorskip("pandas")
    big = 2**60 + 1
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(4)],
            "n": pd.array([big, None, 3, big + 2], dtype="Int64"),
            "c": pd.Series(["a", None, "b", "a"], dtype="category"),
            "b": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    keep = ["n", "c", "b"]
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        got = drumfire.run_all(df, srv.url("/{id}"), keep=keep, ordered=False, progress=False)
    got = got.set_index("id").loc[df["id"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[keep], df[keep])


LEFT_GOING = """
import sys
import drumfire
url, out = sys.argv[1], sys.argv[2]
it = drumfire.run([{"id": f"r{i}"} for i in range(2000)], url, output=out, concurrency=4)
for result in it:
    print(result.id, flush=True)
    if result.id == "r19":
        break  # 'it' stays referenced: the run is left going until the interpreter exits
"""


def test_a_run_left_going_at_exit_keeps_its_rows_in_the_output(tmp_path: Path) -> None:
    """A script that leaves its ``for`` loop and ends with the ``Run`` still held lost its
    whole ``output=``, the rows it had been given too: the engine's daemon thread was
    frozen at exit. Now the run is stopped at exit as a ``close()`` would stop it."""
    import subprocess
    import sys

    from drumfire.demo import DemoServer

    out = tmp_path / "out.csv"
    with DemoServer(latency=0.05) as server:
        proc = subprocess.run(
            [sys.executable, "-c", LEFT_GOING, server.base_url + "/echo?id={id}", str(out)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    given = proc.stdout.split()
    assert given[-1] == "r19"
    written = {r["id"]: r for r in rows(out)}
    assert len(written) == len(rows(out))  # each row once
    assert all(written[i]["status"] == "200" for i in given)
    assert {r["error"] for r in written.values()} <= {"", "cancelled"}


@pytest.mark.parametrize("mode", [{}, {"overwrite": True}, {"resume": True}])
def test_the_input_file_as_output_is_refused(tmp_path: Path, mode: dict[str, bool]) -> None:
    # run_all("routes.csv", ..., output="routes.csv", overwrite=True) emptied the input
    # while reading it: rows past the first read buffer were lost, and the input with them.
    source = tmp_path / "routes.csv"
    source.write_text("id,q\n" + "".join(f"{i},{'x' * 100}\n" for i in range(30_000)))
    before = source.read_bytes()
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        with pytest.raises(drumfire.UsageError, match="is the input file"):
            drumfire.run_all(source, srv.url("/{q}"), output=str(source), **mode)
        assert srv.requests == []
    assert source.read_bytes() == before


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_resume_takes_the_old_spelling_of_a_date_time_id_as_that_id(
    tmp_path: Path, suffix: str
) -> None:
    """A datetime id was Python's str() (a space) before ids became ISO 8601 (a T): the
    rows an earlier run wrote so are done, not sent again on resume=True."""
    import datetime as dt

    import pandas as pd

    out = tmp_path / f"out{suffix}"
    stamps = [dt.datetime(2024, 1, 2), pd.Timestamp("2024-01-03 04:05:06.5", tz="UTC"),
              dt.datetime(2024, 1, 4)]  # fmt: skip
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        urls = [srv.url(f"/{n}") for n in range(3)]
        # The earlier run's ids, as it wrote them: str(datetime).
        drumfire.run_all([{"id": str(s), "u": u} for s, u in zip(stamps[:2], urls, strict=False)],
                         "{u}", output=out)  # fmt: skip
        assert len(srv.requests) == 2
        again = drumfire.run_all(
            [{"id": s, "u": u} for s, u in zip(stamps, urls, strict=True)],
            "{u}", output=out, resume=True,
        )  # fmt: skip
        assert [r.target for r in srv.requests[2:]] == ["/2"]
    assert [r["id"] for r in again] == ["2024-01-04T00:00:00"]  # the one row not done
    if suffix == ".csv":
        assert [r["id"] for r in rows(out)] == [
            "2024-01-02 00:00:00", "2024-01-03 04:05:06.500000+00:00", "2024-01-04T00:00:00"
        ]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".sqlite"])
def test_ids_of_values_json_has_no_type_for_resume_as_written(tmp_path: Path, suffix: str) -> None:
    """bytes, a tuple, a timedelta, a boolean, an object as ids: the text an output holds
    is the text a resume makes of the same value, in every format (none sent again)."""
    import datetime as dt

    ids = [b"abc", b"\xff\x00", (1, "a"), dt.timedelta(seconds=90.5), True, {"a": 1}, 10**20]
    out = tmp_path / f"out{suffix}"
    with ScriptedServer(lambda *a: respond(200, {})) as srv:
        given = [{"id": v, "u": srv.url(f"/{n}")} for n, v in enumerate(ids)]
        first = drumfire.run_all(given, "{u}", output=out)
        assert len(srv.requests) == len(ids)
        again = drumfire.run_all(given, "{u}", output=out, resume=True)
        assert len(srv.requests) == len(ids)  # nothing sent again
    assert sorted(r["id"] for r in first) == sorted(
        ["abc", "/wA=", '[1,"a"]', "PT90.5S", "true", '{"a":1}', "100000000000000000000"]
    )
    assert len(again) == 0

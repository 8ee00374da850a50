"""The typed outputs' values kept aside, opened to add to (a resume): an entry stays while
a row of its id has a null in its column, whatever a crash or a rewrite left."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from drumfire._errors import UsageError
from drumfire._outfile import OutputLock
from drumfire._parquet import ParquetSink
from drumfire._result import Result
from drumfire._sqlite import SqliteSink


def result(id_: str, fields: dict[str, Any] | None, error: str = "") -> Result:
    return Result(id_, 200 if fields is not None else None, 1.0, 1, error, fields, None)


def parquet_entries(out: Path) -> list[tuple[str, str, Any]]:
    path = out / "_unfit.jsonl"
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["id"], e["column"], e["value"]) for e in found]


def sqlite_entries(db: Path) -> list[tuple[str, str, str]] | None:
    """The table's entries; None when it does not exist."""
    with sqlite3.connect(db) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'results_unfit'").fetchone():
            return None
        return conn.execute('SELECT id, "column", value FROM results_unfit').fetchall()


def write(sink: ParquetSink | SqliteSink, first: list[Result], later: list[Result]) -> None:
    """``first`` decide the column types; ``later`` may not fit them."""
    for r in first:
        sink.write(r)
    sink.flush()
    for r in later:
        sink.write(r)
    sink.close()


def test_a_crash_between_the_entries_and_their_part_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.parquet"
    write(ParquetSink(str(out), ["n"], []), [result("1", {"n": 1})], [result("2", {"n": "x"})])
    unfit = out / "_unfit.jsonl"
    # As a kill -9 after a flush appended its entries, before its part was renamed:
    # rows 3 and 4 are in no part (they will be sent again), the last line is torn.
    with unfit.open("a") as f:
        f.write('{"id":"3","column":"n","value":"y"}\n{"id":"4","colu')
    (out / "._unfit.jsonl.tmp").write_text("half a rewrite")  # a crash during a resume's
    ParquetSink(str(out), ["n"], [], append=True).close()
    assert parquet_entries(out) == [("2", "n", "x")]
    assert not (out / "._unfit.jsonl.tmp").exists()
    # Without a part at all (every row gone), the file goes.
    for part in out.glob("part-*.parquet"):
        part.unlink()
    ParquetSink(str(out), ["n"], [], append=True).close()
    assert not unfit.exists()
    capsys.readouterr()


def test_an_entry_stays_while_a_row_of_its_id_has_a_null_in_its_column(tmp_path: Path) -> None:
    """Entries name a row by its id; with an id twice in the output, the null cells tell."""
    out = tmp_path / "out.parquet"
    first = [result("1", {"n": 1, "m": 1})]
    later = [
        result("2", {"n": "kept", "m": 2}),  # its row stays: its entry too
        result("3", {"n": 3, "m": 3}),  # an id twice in the input: this row stays,
        result("3", {"n": 3, "m": "gone"}, error="timeout"),  # this one is sent again
        result("4", {"n": 4, "m": 4}),  # an entry naming column n, where it has 4
        result("5", {"n": None, "m": 5}),  # an entry naming column n, null there
    ]
    write(ParquetSink(str(out), ["n", "m"], []), first, later)
    with (out / "_unfit.jsonl").open("a") as f:
        f.write('{"id":"4","column":"n","value":"stale"}\n')
        f.write('{"id":"5","column":"n","value":"stale"}\n')
        f.write('{"id":"5","column":"gone","value":"not a column"}\n')
        f.write("a line drumfire did not write\n")
    lock = OutputLock.acquire_output(str(out), "parquet")
    assert lock is not None
    try:
        lock.rewrite("parquet", lambda record: record[2] == "timeout")
        ParquetSink(str(out), ["n", "m"], [], append=True).close()
    finally:
        lock.close()
    assert (out / "_unfit.jsonl").read_text().splitlines() == [
        '{"id":"2","column":"n","value":"kept"}',
        '{"id":"5","column":"n","value":"stale"}',  # cannot be told from a null of its own
        "a line drumfire did not write",  # not an entry: left as it is
    ]


def test_a_refused_resume_leaves_the_entries_alone(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    write(ParquetSink(str(out), ["n"], []), [result("1", {"n": 1})], [result("2", {"n": "x"})])
    with (out / "_unfit.jsonl").open("a") as f:
        f.write('{"id":"9","column":"n","value":"no row"}\n')
    with pytest.raises(UsageError, match="differ from this run's"):
        ParquetSink(str(out), ["other"], [], append=True)
    assert len(parquet_entries(out)) == 2
    db = tmp_path / "out.db"
    write(SqliteSink(str(db), ["n"], []), [result("1", {"n": 1})], [result("2", {"n": "x"})])
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO results_unfit VALUES ('9', 'n', '\"no row\"')")
    with pytest.raises(UsageError, match="differ from this run's"):
        SqliteSink(str(db), ["other"], [], append=True)
    assert len(sqlite_entries(db) or []) == 2


def test_sqlite_entries_follow_the_rows_of_their_table(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    first = [result("1", {"n": 1, "m": 1})]
    later = [
        result("2", {"n": "kept", "m": 2}),
        result("3", {"n": 3, "m": "failed"}, error="timeout"),
        result("4", {"n": "gone", "m": 4}, error="cancelled"),
    ]
    write(SqliteSink(str(db), ["n", "m"], []), first, later)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO results_unfit VALUES ('2', 'nope', '1')")  # not a column
        conn.execute("DELETE FROM results WHERE error != ''")  # what a resume's rewrite does
    SqliteSink(str(db), ["n", "m"], [], append=True).close()
    assert sqlite_entries(db) == [("2", "n", '"kept"')]
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE results")
    SqliteSink(str(db), ["n", "m"], [], append=True).close()  # a table of no rows' entries
    assert sqlite_entries(db) is None


def test_the_resume_rewrite_then_the_sink_keep_each_row_s_entries(tmp_path: Path) -> None:
    """What ``drumfire run --retry-failed`` does, in its order: rewrite, then open to add."""
    for fmt, out in (("parquet", tmp_path / "out.parquet"), ("sqlite", tmp_path / "out.db")):
        sink = (ParquetSink if fmt == "parquet" else SqliteSink)(str(out), ["n"], [])
        first = [result("1", {"n": 1})]
        write(sink, first, [result("2", {"n": "x"}, "reset"), result("3", {"n": "y"})])
        lock = OutputLock.acquire_output(str(out), fmt)
        assert lock is not None
        try:
            lock.rewrite(fmt, lambda record: record[2] == "reset")
            sink = (ParquetSink if fmt == "parquet" else SqliteSink)(
                str(out), ["n"], [], append=True
            )
            sink.write(result("2", {"n": 2}))
            sink.close()
        finally:
            lock.close()
        if fmt == "parquet":
            assert parquet_entries(out) == [("3", "n", "y")]
        else:
            assert sqlite_entries(out) == [("3", "n", '"y"')]


NAN, INF = float("nan"), float("inf")


COLUMNS = ["x", "n", "b", "s"]
#: The first row types the columns (x float, n integer, b bool, s string); the later
#: values are a NaN, infinities and booleans in each.
FIRST = [result("0", {"x": 0.5, "n": 1, "b": True, "s": "a"})]
LATER = [
    result("1", {"x": NAN, "n": NAN, "b": NAN, "s": NAN}),
    result("2", {"x": True, "n": True, "b": 1, "s": True}),
    result("3", {"x": INF, "n": -INF, "b": False, "s": -INF}),
    result("4", {"x": None, "n": None, "b": None, "s": None}),
]


def test_parquet_keeps_a_nan_and_the_infinities_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.parquet"
    write(ParquetSink(str(out), COLUMNS, []), FIRST, LATER)
    capsys.readouterr()
    rows = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert math.isnan(rows["1"]["x"])  # a float64 column keeps NaN: not null
    # Before: the text "null" in a string column, for a NaN or an infinity alike.
    assert [rows["1"][c] for c in ("n", "b", "s")] == [None, None, "NaN"]
    assert [rows["3"][c] for c in COLUMNS] == [INF, None, False, "-Infinity"]
    assert [rows["2"][c] for c in COLUMNS] == [None, None, None, "true"]
    lines = (out / "_unfit.jsonl").read_text().splitlines()
    # Before: "value":null for the NaN and the infinity, which lost them.
    assert sorted(lines) == sorted(
        [
            '{"id":"1","column":"n","value":NaN}',
            '{"id":"3","column":"n","value":-Infinity}',
            '{"id":"2","column":"n","value":true}',
            '{"id":"1","column":"b","value":NaN}',
            '{"id":"2","column":"b","value":1}',
            '{"id":"2","column":"x","value":true}',
        ]
    )
    first_nan = next(line for line in lines if "NaN" in line)
    assert math.isnan(json.loads(first_nan)["value"])  # as Python's json module reads it
    # A resume reads these entries back (its rule: a null cell of their row holds them).
    ParquetSink(str(out), COLUMNS, [], append=True).close()
    assert len((out / "_unfit.jsonl").read_text().splitlines()) == 6


def test_sqlite_sets_aside_a_nan_and_a_boolean_in_a_real_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As Parquet does: a NaN stays distinguishable from a missing value, and a boolean
    is never the number 1.0."""
    db = tmp_path / "out.db"
    write(SqliteSink(str(db), COLUMNS, []), FIRST, LATER)
    assert "4 value(s) did not fit" in capsys.readouterr().err
    with sqlite3.connect(db) as conn:
        cells = conn.execute("SELECT id, x, n, b, s FROM results ORDER BY id").fetchall()
    # Before: NaN was NULL with nothing aside (x, n, b); True was 1.0 in x.
    assert cells[1:] == [
        ("1", None, None, None, "NaN"),
        ("2", None, 1, 1, "true"),  # an INTEGER column: SQLite's booleans are 1 and 0
        ("3", INF, -INF, 0, "-Infinity"),  # a REAL, kept
        ("4", None, None, None, None),
    ]
    assert sorted(sqlite_entries(db) or []) == [
        ("1", "b", "NaN"),
        ("1", "n", "NaN"),
        ("1", "x", "NaN"),
        ("2", "x", "true"),
    ]

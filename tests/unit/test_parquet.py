"""Typed outputs and Parquet input without a network: _columns, _parquet, _sqlite."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from drumfire._columns import UNFIT, column_kind, convert
from drumfire._errors import InputError, UsageError
from drumfire._parquet import ParquetSink, arrow_array
from drumfire._result import Result
from drumfire._resume import DoneIds, scan_output
from drumfire._sinks import open_sink
from drumfire._sources import open_source
from drumfire._sqlite import SqliteSink, sqlite_target


def done_ids(path: str, fmt: str) -> DoneIds:
    """The ids --resume keeps (what the CLI and the API's resume= read)."""
    return scan_output(path, fmt, lambda record: False).done


def result(i: int, fields: dict[str, Any] | None, kept: dict[str, Any] | None = None) -> Result:
    return Result(f"r{i}", 200 if fields is not None else None, 1.5 + i, 1, "", fields, kept)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([True, None, False], "bool"),
        ([1, 2, None], "int64"),
        ([1, 2.5], "float64"),
        ([1 << 60, 2.5], "float64"),  # a power of two: exact as a float64
        ([(1 << 53) + 1, 2.5], "string"),  # a float64 would round it: text, every digit
        ([2.5, -(1 << 53) - 1, 1], "string"),
        (["a", None], "string"),
        ([{"a": 1}], "string"),
        ([1, "a"], "string"),
        ([True, 1], "string"),
        ([None, None], "string"),
        ([], "string"),
    ],
)
def test_column_kind_from_the_first_values(values: list[Any], kind: str) -> None:
    assert column_kind(values) == kind


def test_convert_keeps_what_fits_and_refuses_the_rest() -> None:
    assert convert(3, "float64") == 3.0
    assert type(convert(3, "float64")) is float
    assert convert(3.0, "int64") == 3
    # An integer a float64 would round (a snowflake id, nanoseconds) is kept whole aside.
    assert convert(1 << 53, "float64") == float(1 << 53)
    assert convert((1 << 53) + 1, "float64") is UNFIT
    assert convert(9007199254740993, "float64") is UNFIT
    assert convert(1 << 1100, "float64") is UNFIT  # beyond float64's range
    assert convert(2.5, "int64") is UNFIT
    assert convert(1 << 70, "int64") is UNFIT
    assert convert("x", "float64") is UNFIT
    assert convert(True, "int64") is UNFIT  # a bool is not a number here
    assert convert(1, "bool") is UNFIT
    assert convert({"a": [1]}, "string") == '{"a":[1]}'
    assert convert(True, "string") == "true"
    assert convert(None, "int64") is None


def test_parquet_parts_typed_columns_and_unfit_values(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(str(out), ["n", "x", "ok", "obj"], ["lon"])
    first = [
        result(i, {"n": i, "x": i / 2, "ok": True, "obj": {"i": i}}, {"lon": "1"}) for i in range(3)
    ]
    for r in [*first, result(3, None, {"lon": "2"})]:
        sink.write(r)
    sink.flush()  # the schema is decided here, from these rows
    sink.write(result(4, {"n": 2.5, "x": 7, "ok": "yes", "obj": [1]}, {"lon": "3"}))
    sink.write(result(5, {"n": 5.0, "x": None, "ok": False, "obj": "s"}, {"lon": "4"}))
    sink.flush()
    assert sorted(os.listdir(out)) == ["_unfit.jsonl", "part-00000.parquet", "part-00001.parquet"]
    sink.close()  # the small parts merged into one
    assert sorted(os.listdir(out)) == ["_unfit.jsonl", "part-00002.parquet"]
    table = ds.dataset(str(out)).to_table()
    assert table.schema.names == [
        "id",
        "status",
        "elapsed_ms",
        "attempts",
        "error",
        "n",
        "x",
        "ok",
        "obj",
        "lon",
    ]
    types = {f.name: str(f.type) for f in table.schema}
    assert types == {
        "id": "string",
        "status": "int32",
        "elapsed_ms": "double",
        "attempts": "int32",
        "error": "string",
        "n": "int64",
        "x": "double",
        "ok": "bool",
        "obj": "string",
        "lon": "string",
    }
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["r3"]["status"] is None
    assert rows["r3"]["n"] is None
    assert rows["r1"]["obj"] == '{"i":1}'
    # A later value is converted when nothing is lost, else null here and kept aside.
    assert (rows["r4"]["n"], rows["r4"]["x"], rows["r4"]["ok"], rows["r4"]["obj"]) == (
        None,
        7.0,
        None,
        "[1]",
    )
    assert rows["r5"]["n"] == 5
    unfit = [json.loads(line) for line in (out / "_unfit.jsonl").read_text().splitlines()]
    assert unfit == [
        {"id": "r4", "column": "n", "value": 2.5},
        {"id": "r4", "column": "ok", "value": "yes"},
    ]


def test_parquet_resume_keeps_the_schema_and_numbers_parts_on(tmp_path: Path) -> None:
    out = str(tmp_path / "out.parquet")
    sink = ParquetSink(out, ["n"], [])
    sink.write(result(1, {"n": 1}))
    sink.close()
    (tmp_path / "out.parquet" / ".part-00001.parquet.tmp").write_bytes(b"torn")  # a kill -9
    done = done_ids(out, "parquet")
    assert len(done) == 1
    assert done.take("r1")
    sink = ParquetSink(out, ["n"], [], append=True)
    assert not (tmp_path / "out.parquet" / ".part-00001.parquet.tmp").exists()
    sink.write(result(2, {"n": 2.0}))  # an int column still: 2.0 fits as 2
    sink.close()
    assert sorted(os.listdir(out)) == ["part-00000.parquet", "part-00001.parquet"]
    assert ds.dataset(out).to_table().column("n").to_pylist() == [1, 2]
    with pytest.raises(UsageError, match="differ from this run's"):
        ParquetSink(out, ["other"], [], append=True)
    # Without --resume the output starts again (a run of no rows: one empty part).
    ParquetSink(out, ["n"], []).close()
    assert os.listdir(out) == ["part-00000.parquet"]
    assert pq.read_metadata(os.path.join(out, "part-00000.parquet")).num_rows == 0


@pytest.mark.parametrize("learn", [False, True])
def test_a_run_of_no_rows_leaves_one_empty_part_that_readers_read(
    tmp_path: Path, learn: bool
) -> None:
    # An empty input (or every row skipped) left a directory without a part, which
    # pandas, pyarrow.dataset and polars refuse. Now one part of no rows, with the
    # columns (the types of no value: text, but for declared ones), as to_parquet does.
    pd = pytest.importorskip("pandas")
    out = tmp_path / "out.parquet"
    fields = [] if learn else ["n", "saved_bytes"]
    ParquetSink(str(out), fields, ["lon"], learn=learn, kinds={"saved_bytes": "int64"}).close()
    assert sorted(os.listdir(out)) == ["part-00000.parquet"]
    columns = ["id", "status", "elapsed_ms", "attempts", "error", *fields, "lon"]
    table = ds.dataset(out).to_table()
    assert table.num_rows == 0
    assert table.column_names == columns
    if not learn:
        assert table.schema.field("n").type == pa.string()
        assert table.schema.field("saved_bytes").type == pa.int64()
    frame = pd.read_parquet(out)
    assert list(frame.columns) == columns
    assert len(frame) == 0
    # A resume that adds rows does not keep the types of no value: the empty part
    # goes, and the rows decide (else numbers in a text column, or all unfit).
    sink = ParquetSink(str(out), ["n"] if learn else fields, ["lon"], append=True)
    sink.write(result(1, {"n": 1.5, "saved_bytes": 3}, {"lon": 2}))
    sink.close()
    assert sink.unfit == 0
    assert sorted(os.listdir(out)) == ["part-00000.parquet"]
    table = ds.dataset(out).to_table()
    assert table.schema.field("n").type == pa.float64()
    assert table.column("n").to_pylist() == [1.5]
    assert table.column("lon").to_pylist() == [2]


def test_a_crash_during_compaction_neither_loses_nor_repeats_rows(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(str(out), ["n"], [])
    for i in range(5):
        sink.write(result(i, {"n": i}))
        sink.flush()
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    sink.close()
    assert os.listdir(out) == ["part-00005.parquet"]
    assert pq.ParquetFile(out / "part-00005.parquet").metadata.num_rows == 5
    for name, data in saved.items():  # as if killed after the rename, before the deletions
        (out / name).write_bytes(data)
    done = done_ids(str(out), "parquet")
    assert len(done) == 5
    source = open_source(str(out))
    assert sorted(row["id"] for _, row in source.items) == [f"r{i}" for i in range(5)]
    source.close()
    ParquetSink(str(out), ["n"], [], append=True).close()
    assert os.listdir(out) == ["part-00005.parquet"]


def test_parquet_learns_parse_fields_and_refuses_a_foreign_directory(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    sink = open_sink(str(out), None, [], [], learn=True)
    sink.write(result(1, {"km": 1.5, "name": "a"}))
    sink.close()
    assert pq.read_schema(out / "part-00000.parquet").names[5:] == ["km", "name"]
    sink = open_sink(str(out), None, [], [], append=True, learn=True)
    sink.write(result(2, {"km": 2.5, "name": "b"}))
    sink.close()
    assert len(ds.dataset(str(out)).to_table()) == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="other files"):
        open_sink(str(tmp_path / "mine"), "parquet", [], [])
    with pytest.raises(UsageError, match="standard output"):
        open_sink("-", "parquet", [], [])


def test_parquet_input_streams_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(20_000)],
            "n": pa.array([i if i % 7 else None for i in range(20_000)], pa.int64()),
            "x": [i / 4 for i in range(20_000)],
            "flag": [i % 2 == 0 for i in range(20_000)],
        }
    )
    pq.write_table(table, path, row_group_size=3000)
    source = open_source(str(path))
    assert source.fmt == "parquet"
    assert source.total == 20_000  # from the metadata, without reading the rows
    assert source.columns == frozenset({"id", "n", "x", "flag"})
    items = list(source.items)
    source.close()
    assert [n for n, _ in items] == list(range(1, 20_001))
    assert items[3] == (4, {"id": "r3", "n": 3, "x": 0.75, "flag": False})
    assert type(items[3][1]["n"]) is int
    assert items[7][1]["n"] is None
    with pytest.raises(InputError, match="does not exist"):
        open_source(str(tmp_path / "missing.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="as Parquet"):
        open_source(str(tmp_path / "bad.parquet"))


def test_a_parquet_output_directory_is_an_input(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(str(out), ["n"], [])
    for i in range(3):
        sink.write(result(i, {"n": i}))
        sink.flush()
    sink.close()
    source = open_source(str(out))
    assert source.total == 3
    assert [row["id"] for _, row in source.items] == ["r0", "r1", "r2"]


def test_sqlite_typed_table_and_resume(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    sink = SqliteSink(str(db), ["n", "obj"], ["lon"])
    sink.write(result(1, {"n": 1, "obj": {"a": 1}}, {"lon": "2"}))
    sink.write(result(2, None, {"lon": "3"}))
    sink.flush()
    sink.write(result(3, {"n": "many", "obj": True}, {"lon": "4"}))  # "many": see _unfit
    sink.close()
    conn = sqlite3.connect(db)
    try:
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='results'").fetchone()
        assert '"n" INTEGER' in sql
        assert '"status" INTEGER' in sql
        assert '"elapsed_ms" REAL' in sql
        rows = conn.execute("SELECT id, status, n, obj, lon FROM results ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [
        ("r1", 200, 1, '{"a":1}', "2"),
        ("r2", None, None, None, "3"),
        ("r3", 200, None, "true", "4"),
    ]
    done = done_ids(str(db), "sqlite")
    assert len(done) == 3
    with pytest.raises(UsageError, match="differ from this run's"):
        SqliteSink(str(db), ["n"], [], append=True)
    SqliteSink(str(db), ["n"], []).close()  # replaces the table (created at the first row)
    assert len(done_ids(str(db), "sqlite")) == 0


def test_text_in_a_number_column_is_kept_exactly_in_unfit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: SQLite's column affinity made them numbers: 12, 1.1, 1.2345678901234569e+23.
    texts = ["0012", Decimal("1.10"), "123456789012345678901234"]
    db = tmp_path / "out.db"
    sink = SqliteSink(str(db), ["v"], ["r"])
    sink.write(result(0, {"v": 1}, {"r": 0.5}))  # INTEGER and REAL columns
    sink.flush()
    for i, text in enumerate(texts, 1):
        sink.write(result(i, {"v": text}, {"r": text}))
    sink.close()
    warning = capsys.readouterr().err
    assert "6 value(s) did not fit the type of their column (first in 'v')" in warning
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, v, r FROM results ORDER BY id").fetchall()
        unfit = conn.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    finally:
        conn.close()
    assert rows == [("r0", 1, 0.5), ("r1", None, None), ("r2", None, None), ("r3", None, None)]
    exact = ['"0012"', '"1.10"', '"123456789012345678901234"']  # JSON text of the exact text
    assert unfit == [
        (f"r{i}", column, value) for i, value in enumerate(exact, 1) for column in ("v", "r")
    ]


def test_integers_beyond_64_bits_lose_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    u64 = (1 << 64) - 1
    # Among the first values: a text column (Parquet string, SQLite TEXT) of exact digits.
    assert column_kind([1, u64]) == "string"
    assert convert(u64, "string") == "18446744073709551615"
    assert convert(1 << 1100, "float64") is UNFIT  # beyond float64: not an OverflowError
    db = tmp_path / "out.db"
    sink = SqliteSink(str(db), ["n", "x"], ["u"])
    sink.write(result(1, {"n": 1, "x": 0.5}, {"u": u64}))
    sink.flush()
    # Later, in an INTEGER column: SQLite would round its text to a REAL, so it is set aside.
    sink.write(result(2, {"n": u64, "x": 1 << 64}, {"u": 2}))
    sink.write(result(3, {"n": -(1 << 63), "x": 1 << 1100}, {"u": -(1 << 70)}))
    sink.close()
    warning = capsys.readouterr().err
    assert "2 value(s) did not fit the type of their column (first in 'n')" in warning
    assert "table 'results_unfit'" in warning
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, n, x, u, typeof(u) FROM results ORDER BY id").fetchall()
        unfit = conn.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    finally:
        conn.close()
    assert rows == [
        ("r1", 1, 0.5, str(u64), "text"),
        ("r2", None, float(1 << 64), "2", "text"),
        ("r3", -(1 << 63), None, str(-(1 << 70)), "text"),
    ]
    assert unfit == [("r2", "n", str(u64)), ("r3", "x", str(1 << 1100))]
    SqliteSink(str(db), ["n", "x"], ["u"], append=True).close()  # --resume keeps them
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM results_unfit").fetchone() == (2,)
    finally:
        conn.close()
    SqliteSink(str(db), ["n", "x"], ["u"]).close()  # replaced with its table
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        conn.close()
    out = tmp_path / "out.parquet"
    parquet = ParquetSink(str(out), [], ["u"])
    parquet.write(result(1, None, {"u": u64}))
    parquet.close()
    assert ds.dataset(str(out)).to_table().column("u").to_pylist() == [str(u64)]


def test_an_integer_a_float_would_round_is_kept_aside_in_a_float_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A float64 column (typed from 1.5) then meets 2**53 + 1 (a snowflake id, a time in
    # nanoseconds): it was stored as 9007199254740992.0, with no warning.
    odd = (1 << 53) + 1
    db = tmp_path / "out.db"
    out = tmp_path / "out.parquet"
    sinks = [SqliteSink(str(db), ["x"], []), ParquetSink(str(out), ["x"], [])]
    for sink in sinks:
        sink.write(result(1, {"x": 1.5}))
        sink.flush()
        sink.write(result(2, {"x": odd}))
        sink.write(result(3, {"x": 1 << 60}))  # exact as a float: converted
        sink.close()
    assert capsys.readouterr().err.count("1 value(s) did not fit") == 2
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, x FROM results ORDER BY id").fetchall()
        unfit = conn.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    finally:
        conn.close()
    assert rows == [("r1", 1.5), ("r2", None), ("r3", float(1 << 60))]
    assert unfit == [("r2", "x", str(odd))]
    table = ds.dataset(str(out)).to_table()
    assert table.column("x").to_pylist() == [1.5, None, float(1 << 60)]
    assert (out / "_unfit.jsonl").read_text() == f'{{"id":"r2","column":"x","value":{odd}}}\n'


def test_sqlite_url() -> None:
    assert sqlite_target("sqlite:///rel/out.db?table=runs") == ("rel/out.db", "runs")
    assert sqlite_target("sqlite:////abs/out.db") == ("/abs/out.db", "results")
    assert sqlite_target("x.sqlite") == ("x.sqlite", "results")
    for bad in ("sqlite://host/x.db", "sqlite:///x.db?table=a;b", "sqlite:///x.db?tbl=a"):
        with pytest.raises(UsageError, match="output"):
            sqlite_target(bad)


def test_the_core_does_not_import_pyarrow() -> None:
    code = "import sys, drumfire, drumfire.cli, drumfire._batch; print('pyarrow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["out.parquet", "out.sqlite"])
def test_parse_fields_are_learnt_after_a_start_of_failures(tmp_path: Path, name: str) -> None:
    out = str(tmp_path / name)
    sink = open_sink(out, None, [], [], learn=True)
    sink.write(result(1, None))  # a failure: no fields to learn from
    sink.flush()  # held back, not written with no field columns
    sink.write(result(2, {"km": 2.5}))
    sink.close()
    if name.endswith(".parquet"):
        table = ds.dataset(out).to_table()
        assert table.schema.names[5:] == ["km"]
        assert table.column("km").to_pylist() == [None, 2.5]
    else:
        conn = sqlite3.connect(out)
        assert conn.execute("SELECT id, km FROM results").fetchall() == [("r1", None), ("r2", 2.5)]
        conn.close()


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (["a", None, "é", ""], pa.string()),
        ([200, None, 404], pa.int32()),
        ([1, 2], pa.int32()),
        ([1.5, None, 0.0], pa.float64()),
        ([True, None, False, True, True, False, False, False, True], pa.bool_()),
        ([1 << 62, None, -5], pa.int64()),
        ([], pa.int64()),
    ],
)
def test_arrays_built_without_pa_array_hold_the_same_values(values: list[Any], dtype: Any) -> None:
    array = arrow_array(pa, values, dtype)
    array.validate(full=True)
    assert array.type == dtype
    assert array.equals(pa.array(values, dtype))


def test_writing_parquet_does_not_import_pandas(tmp_path: Path) -> None:
    # pa.array would (about 50 MB of memory in a run that has no use for it).
    code = (
        "import sys\n"
        "from drumfire._parquet import ParquetSink\n"
        "from drumfire._result import Result\n"
        f"s = ParquetSink({str(tmp_path / 'o.parquet')!r}, ['x'], [])\n"
        "s.write(Result('1', None, 1.0, 0, 'connect', None))\n"
        "s.write(Result('2', 200, 1.0, 1, '', {'x': 1}))\n"
        "s.close(); print('pandas' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_a_failed_merge_leaves_the_parts_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.parquet"
    sink = ParquetSink(str(out), ["n"], [])
    for i in range(3):
        sink.write(result(i, {"n": i}))
        sink.flush()
    (out / "part-00001.parquet").write_bytes(b"not parquet")  # the merging child fails on it
    sink.close()
    assert "could not merge the small parts" in capsys.readouterr().err
    names = sorted(n for n in os.listdir(out) if not n.startswith("."))
    assert names == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


@pytest.mark.parametrize("name", ["out.parquet", "out.sqlite"])
def test_records_and_dropping_rows_to_send_again(tmp_path: Path, name: str) -> None:
    # For a resume that sends some rows again (cancelled ones, say): what each row
    # says about itself, and removing the chosen ones from the output.
    from drumfire._parquet import drop_parquet_rows, parquet_records
    from drumfire._sqlite import drop_sqlite_rows, sqlite_records

    out = str(tmp_path / name)
    sink = open_sink(out, None, ["n"], [])
    sink.write(result(1, {"n": 1}))
    sink.write(Result("r2", None, 5.0, 1, "cancelled", None))
    sink.flush()
    sink.write(Result("r3", 503, 5.0, 4, "", None))
    sink.close()
    records, drop = (
        (parquet_records, drop_parquet_rows)
        if name.endswith(".parquet")
        else (sqlite_records, drop_sqlite_rows)
    )
    assert sorted(records(out)) == [("r1", 200, ""), ("r2", None, "cancelled"), ("r3", 503, "")]
    assert drop(out, lambda r: r[2] == "cancelled" or r[1] == 503) == 2
    assert list(records(out)) == [("r1", 200, "")]
    assert drop(out, lambda r: False) == 0


def _routes(ids: range, duration: float | None) -> list[Result]:
    return [Result(str(i), 400 if duration is None else 200, 1.0, 1, "",
                   {"code": "NoRoute" if duration is None else "Ok", "duration": duration})
            for i in ids]  # fmt: skip


@pytest.mark.parametrize("name", ["out.parquet", "out.sqlite"])
def test_a_first_flush_without_a_value_waits_for_one(tmp_path: Path, name: str) -> None:
    # OSRM's first second of answers all NoRoute (a slow start, an input sorted by region):
    # -e duration=routes[0].duration had no value yet, so it became a string column for
    # the whole run, durations written as text ("267.9") in Parquet and SQLite alike.
    out = str(tmp_path / name)
    sink = open_sink(out, None, ["code", "duration"], [])
    for r in _routes(range(1, 4), None):
        sink.write(r)
    sink.flush()  # held: 'duration' has no value yet
    for r in _routes(range(4, 6), 267.9):
        sink.write(r)
    sink.flush()
    sink.close()
    if name.endswith(".parquet"):
        table = ds.dataset(out).to_table()
        assert table.schema.field("duration").type == pa.float64()
        got = sorted((r["id"], r["duration"]) for r in table.to_pylist())
    else:
        with sqlite3.connect(out) as conn:
            got = sorted(conn.execute("SELECT id, duration FROM results").fetchall())
            [(typ,)] = conn.execute("SELECT DISTINCT typeof(duration) FROM results "
                                    "WHERE duration IS NOT NULL").fetchall()  # fmt: skip
            assert typ == "real"
    assert got == [("1", None), ("2", None), ("3", None), ("4", 267.9), ("5", 267.9)]


@pytest.mark.parametrize("name", ["out.parquet", "out.sqlite"])
def test_a_column_that_stays_empty_is_written_after_ten_flushes(tmp_path: Path, name: str) -> None:
    # A field no answer has (a typo in -e) must not hold the rows back for long.
    out = str(tmp_path / name)
    sink = open_sink(out, None, ["code", "duration"], [])
    for flush in range(11):  # ten put off, the eleventh written
        sink.write(_routes(range(flush + 1, flush + 2), None)[0])
        sink.flush()
    if name.endswith(".parquet"):
        assert ds.dataset(out).count_rows() == 11
    else:
        with sqlite3.connect(out) as conn:
            assert conn.execute("SELECT count(*) FROM results").fetchone() == (11,)
    sink.close()

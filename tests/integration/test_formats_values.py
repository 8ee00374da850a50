"""Values JSON has no type for (decimals, timestamps, durations, binary, big integers), from
the command line against the demo server on 127.0.0.1: every input row gives its row, in
every output, with one process or several."""

from __future__ import annotations

import csv
import datetime as dt
import json
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

from drumfire.demo import DemoServer

CLI = [sys.executable, "-m", "drumfire.cli"]
UTC = dt.UTC


def drumfire_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def read_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of a CSV or JSON Lines output by id (an input error row: by its error)."""
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["id"] or r["error"]: r for r in rows}


#: Columns of a Parquet input whose values JSON has no type for, and their text.
TYPED = {
    "dec": (pa.array([Decimal("1.10"), Decimal("-3.00")], pa.decimal128(10, 2)), ["1.10", "-3.00"]),
    "tz": (
        pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), None],
                 pa.timestamp("us", tz="Europe/Paris")),
        ["2024-01-02T04:04:05.123456+01:00", None],
    ),
    "ns": (
        pa.array([1704164645123456789, 1], pa.timestamp("ns")),
        ["2024-01-02T03:04:05.123456789", "1970-01-01T00:00:00.000000001"],
    ),
    "dur": (
        pa.array([dt.timedelta(seconds=90, microseconds=5), dt.timedelta(days=-1)],
                 pa.duration("us")),
        ["PT90.000005S", "-PT86400S"],
    ),
}  # fmt: skip


def write_parquet(path: Path, **columns: Any) -> Path:
    pq.write_table(pa.table({"q": ["a", "b"], **columns}), path)
    return path


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_kept_values_json_has_no_type_for_are_their_text(
    demo_server: DemoServer, tmp_path: Path, suffix: str, processes: int
) -> None:
    # They made a traceback and lost rows; with -p 2 any such column did, used or not.
    source = write_parquet(tmp_path / "in.parquet", **{k: a for k, (a, _) in TYPED.items()})
    out = tmp_path / f"out.{suffix}"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?q={q}&d={dec}",
        "-e", "d=query.d", "--keep", ",".join(TYPED), "-p", processes, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert sorted(rows) == ["1", "2"]
    for name, (_, texts) in TYPED.items():
        empty = "" if suffix == "csv" else None
        assert [rows[i][name] for i in ("1", "2")] == [empty if t is None else t for t in texts]
    assert [rows[i]["d"] for i in ("1", "2")] == ["1.10", "-3.00"]  # sent as the same text


def test_arrow_intervals_are_sent_and_written_as_iso_8601(demo_server: DemoServer) -> None:
    # A month_day_nano_interval column (Arrow tables; Parquet cannot hold one) reached the
    # URL as "MonthDayNano(months=1, days=2, nanoseconds=3000000000)".
    import drumfire

    spans = [pa.MonthDayNano([1, 2, 3_000_000_000]), pa.MonthDayNano([0, 0, -5]), None]
    table = pa.table({"id": ["a", "b", "c"], "iv": pa.array(spans, pa.month_day_nano_interval())})
    results = drumfire.run_all(
        table, demo_server.base_url + "/echo?iv={iv}", extract={"sent": "query.iv"},
        keep=["iv"], progress=False,
    )  # fmt: skip
    got = {r["id"]: (r["status"], r["sent"], r["iv"]) for r in results.to_pylist()}
    assert got == {
        "a": (200, "P1M2DT3S", "P1M2DT3S"),
        "b": (200, "-PT0.000000005S", "-PT0.000000005S"),
        "c": (200, "", None),  # null renders as empty, as any null
    }


PARSE = """
import datetime, decimal
def parse(response):
    return {"dec": decimal.Decimal("0.10"), "raw": b"\\xff\\x00", "at": datetime.date(2024, 1, 2)}
"""


def test_a_parse_function_may_return_them_with_worker_processes(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    (tmp_path / "p.py").write_text(PARSE)
    source = write_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.csv"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?q={q}",
        "--parse", f"{tmp_path / 'p.py'}:parse", "-p", 2, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    got = [(r["dec"], r["raw"], r["at"]) for r in rows.values()]
    assert got == [("0.10", "/wA=", "2024-01-02")] * 2  # bytes not UTF-8: base64


YEAR_10000_US = 253402300800000000  # 10000-01-01T00:00:00, in microseconds since 1970


@pytest.mark.parametrize("processes", [1, 2])
def test_timestamps_out_of_python_range_lose_no_row(
    demo_server: DemoServer, tmp_path: Path, processes: int
) -> None:
    # Before: OverflowError "date value out of range" for the batch, even from an unused column.
    n = 20
    source = tmp_path / "in.parquet"
    far = pa.array([YEAR_10000_US if i % 3 == 0 else i for i in range(n)], pa.timestamp("us"))
    unused = pa.array([2932897 if i % 2 else i for i in range(n)], pa.date32())
    queries = [f"q{i}" for i in range(n)]
    pq.write_table(pa.table({"q": queries, "far": far, "unused": unused}), source)
    out = tmp_path / "out.csv"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?q={q}&t={far}",
        "-e", "t=query.t", "-p", processes, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert sorted(rows, key=int) == [str(i) for i in range(1, n + 1)]
    assert rows["1"]["t"] == "10000-01-01T00:00:00"
    assert rows["2"]["t"] == "1970-01-01T00:00:00.000001"
    assert all(r["status"] == "200" for r in rows.values())


@pytest.mark.parametrize("processes", [1, 2])
def test_binary_is_sent_as_its_text_or_is_an_error_row(
    demo_server: DemoServer, tmp_path: Path, processes: int
) -> None:
    # Before: the Python repr went out, q=b'%5Cx00%5Cxff%26%3D%23'.
    binary = pa.array([b"caf\xc3\xa9 &=#", b"\x00\xff&=#"], pa.binary())
    source = write_parquet(tmp_path / "in.parquet", b=binary)
    out = tmp_path / "out.jsonl"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?b={b}", "--json", '{"b": "{b}"}',
        "-e", "query=raw_query", "-e", "body=body", "-p", processes, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert rows["1"]["query"] == "b=caf%C3%A9%20%26%3D%23"
    assert json.loads(rows["1"]["body"]) == {"b": "café &=#"}
    error = "input: line 2: column 'b' is binary, not UTF-8 text"
    assert rows[error]["status"] is None  # the row is in the output, naming its line


def test_integers_beyond_64_bits_into_sqlite(demo_server: DemoServer, tmp_path: Path) -> None:
    # Before: OverflowError "Python int too large to convert to SQLite INTEGER", no table.
    source = tmp_path / "in.jsonl"
    source.write_text('{"n": 18446744073709551615}\n{"n": 5}\n')
    out = tmp_path / "u64.sqlite"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?n={n}", "--keep", "n",
        "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(out)
    try:
        rows = conn.execute("SELECT id, n, typeof(n) FROM results ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [("1", "18446744073709551615", "text"), ("2", "5", "text")]  # exact


def test_kept_timestamps_in_a_parquet_output_are_plain_text(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # Before: "\"2024-01-02T03:04:05.123456\"", JSON quotes inside the string.
    ts = pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 123456), None], pa.timestamp("us"))
    source = write_parquet(tmp_path / "in.parquet", ts=ts, f=pa.array([1.1, 2.5], pa.float32()))
    out = tmp_path / "out.parquet"
    proc = drumfire_cli(
        "run", source, "--url", demo_server.base_url + "/echo?f={f}", "-e", "sent=query.f",
        "--keep", "ts,f", "-o", out, "-q", "--ordered",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = ds.dataset(str(out)).to_table()
    assert table.column("ts").to_pylist() == ["2024-01-02T03:04:05.123456", None]
    assert table.column("f").to_pylist() == [1.1, 2.5]  # kept as the float32's shortest decimal
    assert table.column("f").type == pa.float64()
    # Sent as 1.1, not 1.100000023841858 (the value's float64).
    assert table.column("sent").to_pylist() == ["1.1", "2.5"]


def test_a_nan_stays_distinguishable_from_a_missing_value(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # Before: SQLite stored the NaN as NULL, nothing set aside: a missing value to any reader.
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"q": ["a", "b", "c"], "f": [0.5, float("nan"), None]}), source)
    url = demo_server.base_url + "/echo?q={q}"
    warnings = []
    for out in (tmp_path / "out.sqlite", tmp_path / "out.parquet"):
        proc = drumfire_cli("run", source, "--url", url, "--keep", "f", "-o", out)
        assert proc.returncode == 0, proc.stderr
        warnings.append("did not fit" in proc.stderr)
    assert warnings == [True, False]
    with sqlite3.connect(tmp_path / "out.sqlite") as db:
        cells = db.execute("SELECT id, f FROM results ORDER BY id").fetchall()
        aside = db.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    assert cells == [("1", 0.5), ("2", None), ("3", None)]
    assert aside == [("2", "f", "NaN")]  # SQLite has no NaN: null, and the value aside
    table = ds.dataset(str(tmp_path / "out.parquet")).to_table()
    f = table.sort_by("id").column("f").to_pylist()
    assert f[0] == 0.5
    assert f[1] != f[1]  # NaN, in a float64 column
    assert f[2] is None
    assert not (tmp_path / "out.parquet" / "_unfit.jsonl").exists()


def test_a_boolean_in_a_real_column_is_set_aside_as_in_parquet(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # Before: SQLite stored true as 1.0 in the REAL column, a number like any other.
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "1", "v": 0.5}\n{"id": "2", "v": true}\n{"id": "3", "v": 2}\n')
    url = demo_server.base_url + "/echo?id={id}"
    for out in (tmp_path / "out.sqlite", tmp_path / "out.parquet"):
        common = ("run", source, "--url", url, "--keep", "v", "-o", out, "-q")
        first = drumfire_cli(*common, "-n", "1")  # v: a float column
        assert first.returncode == 0, first.stderr
        rest = drumfire_cli(*common, "--resume")
        assert rest.returncode == 0, rest.stderr
    with sqlite3.connect(tmp_path / "out.sqlite") as db:
        cells = db.execute("SELECT id, v, typeof(v) FROM results ORDER BY id").fetchall()
        aside = db.execute('SELECT id, "column", value FROM results_unfit').fetchall()
    assert cells == [("1", 0.5, "real"), ("2", None, "null"), ("3", 2.0, "real")]
    assert aside == [("2", "v", "true")]
    table = ds.dataset(str(tmp_path / "out.parquet")).to_table().to_pydict()
    assert dict(zip(table["id"], table["v"], strict=True)) == {"1": 0.5, "2": None, "3": 2.0}
    lines = (tmp_path / "out.parquet" / "_unfit.jsonl").read_text().splitlines()
    assert lines == ['{"id":"2","column":"v","value":true}']


PARSE_NAN = """
def parse(response):
    return {"ratio": float("nan"), "top": float("-inf")}
"""


def test_worker_processes_carry_a_nan_and_an_infinity(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # The pipes are JSON, which writes NaN and infinities as null: with -p 2 the
    # request said q= (empty) and the kept value was lost, where -p 1 sends q=nan.
    # Only the float columns are looked at for them (the schema says); the int and
    # string columns' nulls stay nulls.
    source = tmp_path / "in.parquet"
    floats = [0.5, float("nan"), None, float("inf")]
    table = pa.table({"id": ["a", "b", "c", "d"], "f": floats, "n": [1, None, 3, None],
                      "s": [None, "x", None, "y"],
                      "l": [[0.5], [float("nan")], None, []]})  # fmt: skip
    pq.write_table(table, source)
    (tmp_path / "p.py").write_text(PARSE_NAN)
    got = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}.csv"
        proc = drumfire_cli(
            "run", source, "--url", demo_server.base_url + "/echo?q={f}&n={n}&s={s}",
            "--keep", "f,n,s,l", "-e", "sent=query.q", "-e", "n_sent=query.n",
            "--parse", f"{tmp_path / 'p.py'}:parse", "-p", processes, "-o", out, "-q",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        rows = read_rows(out)
        got[processes] = {
            i: (r["sent"], r["f"], r["ratio"], r["top"], r["n_sent"], r["n"], r["s"], r["l"])
            for i, r in rows.items()
        }
    assert got[2] == got[1]
    assert got[2]["b"][:7] == ("nan", "nan", "nan", "-inf", "", "", "x")
    assert got[2]["c"][:7] == ("", "", "nan", "-inf", "3", "3", "")  # a null stays a null
    assert got[2]["d"][:2] == ("inf", "inf")


def test_worker_processes_carry_a_nan_made_by_an_expression(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # JMESPath's to_number reads NaN and infinities: with -p 2 the worker marked NaN for
    # the pipe only for --parse and the kept float columns, so the cell came out empty
    # (a missing value) where -p 1 wrote nan. Rows in two chunks: both workers send.
    source = tmp_path / "in.csv"
    values = ["NaN", "inf", "-Infinity", "1.5", "", "x"]
    source.write_text(
        "id,v\n" + "".join(f"r{i},{values[i % len(values)]}\n" for i in range(300)),
        encoding="utf-8",
    )
    got = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}.csv"
        proc = drumfire_cli(
            "run", source, "--url", demo_server.base_url + "/echo?v={v}",
            "-e", "x=to_number(query.v)", "-e", "both=[to_number(query.v), query.v]",
            "-p", processes, "-o", out, "-q",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        got[processes] = {i: (r["x"], r["both"]) for i, r in read_rows(out).items()}
    assert got[2] == got[1]
    assert [got[2][f"r{i}"][0] for i in range(6)] == ["nan", "inf", "-inf", "1.5", "", ""]
    assert got[2]["r4"][1] == '[null,""]'  # a null stays a null


@pytest.mark.parametrize("suffix", ["parquet", "sqlite"])
def test_a_dataframes_nullable_columns_keep_their_types_in_typed_outputs(
    demo_server: DemoServer, tmp_path: Path, suffix: str
) -> None:
    """pandas' nullable Int64, boolean and Float64 columns give NumPy scalars, where a
    NumPy column gives Python numbers: kept into Parquet or SQLite, they made text
    columns ("1152921504606846977", "True")."""
    pd = pytest.importorskip("pandas")
    import drumfire

    big = 2**60 + 1  # beyond a float64's exact integers
    frame = pd.DataFrame(
        {
            "n": pd.array([big, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "f": pd.array([1.5, None, 2.0], dtype="Float64"),
        }
    )
    out = tmp_path / f"out.{suffix}"
    drumfire.run_all(
        frame, demo_server.base_url + "/echo?n={n}", keep=["n", "b", "f"], output=out
    )
    if suffix == "parquet":
        table = ds.dataset(str(out)).to_table().sort_by("id")
        assert [str(table.schema.field(c).type) for c in "nbf"] == ["int64", "bool", "double"]
        got = {c: table.column(c).to_pylist() for c in "nbf"}
    else:
        with sqlite3.connect(out) as db:
            declared = {r[1]: r[2] for r in db.execute("PRAGMA table_info(results)")}
            cells = db.execute("SELECT n, b, f FROM results ORDER BY id").fetchall()
        assert [declared[c] for c in "nbf"] == ["INTEGER", "INTEGER", "REAL"]
        got = {c: [row[i] for row in cells] for i, c in enumerate("nbf")}
        got["b"] = [None if v is None else bool(v) for v in got["b"]]
    assert got == {"n": [big, None, 3], "b": [True, None, False], "f": [1.5, None, 2.0]}

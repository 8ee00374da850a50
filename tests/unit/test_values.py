"""Values JSON has no type for, in every output and on the worker pipes (drumfire._values)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import sqlite3
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumfire._columns import convert, json_text
from drumfire._messages import ResultBatch, RowChunk, from_parent, from_worker
from drumfire._parquet import ParquetSink
from drumfire._result import Result
from drumfire._sinks import CsvSink, JsonlSink
from drumfire._sqlite import SqliteSink
from drumfire._values import (
    cell_text,
    dumps,
    duration_text,
    interval_text,
    mark_floats,
    pipe_dumps,
    pipe_loads,
)

PARIS = dt.timezone(dt.timedelta(hours=1))
#: A value, and its text in a cell (CSV, a string column); in JSON that text is a string.
AS_TEXT: list[tuple[Any, str]] = [
    (decimal.Decimal("1.10"), "1.10"),
    (decimal.Decimal("-3.000"), "-3.000"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=PARIS), "2024-01-02T03:04:05+01:00"),
    (pd.Timestamp("2024-01-02T03:04:05.123456789"), "2024-01-02T03:04:05.123456789"),
    (dt.date(2024, 1, 2), "2024-01-02"),
    (dt.time(3, 4, 5, 500000), "03:04:05.500000"),
    (dt.timedelta(seconds=90, microseconds=5), "PT90.000005S"),
    (dt.timedelta(days=-1), "-PT86400S"),
    (pd.Timedelta(90_000_000_005), "PT90.000000005S"),
    (b"caf\xc3\xa9 &=#", "café &=#"),  # UTF-8: its text
    (b"\x00\xff&=#", "AP8mPSM="),  # not UTF-8: base64
]
#: Values whose JSON is not a string: in a cell, their JSON text.
AS_JSON: list[tuple[Any, str]] = [
    (np.float32(1.5), "1.5"),
    (np.int64(7), "7"),
    (namedtuple("P", "a b")(1, 2), "[1,2]"),
    (1 << 64, "18446744073709551616"),  # beyond orjson's 64 bits: the exact number
    ({"k": decimal.Decimal("2"), "big": -(1 << 70)}, '{"k":"2","big":-1180591620717411303424}'),
    ({(1, 2): "tuple key"}, '{"(1, 2)":"tuple key"}'),
]


@pytest.mark.parametrize(("value", "text"), AS_TEXT)
def test_a_value_json_has_no_type_for_is_its_text(value: Any, text: str) -> None:
    assert cell_text(value) == text
    assert json.loads(dumps(value)) == text
    assert convert(value, "string") == text  # a Parquet or SQLite text column: no quotes


@pytest.mark.parametrize(("value", "text"), AS_JSON)
def test_other_values_are_their_json(value: Any, text: str) -> None:
    assert cell_text(value) == text
    assert dumps(value).decode() == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (np.float64("nan"), "NaN"),
    ],
)
def test_a_nan_or_an_infinity_is_not_null_in_a_cell(value: Any, text: str) -> None:
    # Before: "null", orjson's JSON for them, which is a missing value's.
    assert cell_text(value) == text
    assert convert(value, "string") == text
    assert json_text(value) == text  # the value kept aside (_unfit)
    back = json.loads(text)  # Python's json module reads it back
    assert back == value or (math.isnan(back) and math.isnan(value))
    assert dumps(value) == b"null"  # JSON Lines keeps JSON's null
    assert cell_text(None) == json_text(None) == "null"


def test_durations_are_iso_8601_seconds() -> None:
    assert duration_text(0, 6) == "PT0S"
    assert duration_text(1_500, 3) == "PT1.5S"
    assert duration_text(-1, 9) == "-PT0.000000001S"
    assert duration_text(90, 0) == "PT90S"


@pytest.mark.parametrize(
    ("months", "days", "nanoseconds", "text"),
    [
        (1, 2, 3_000_000_000, "P1M2DT3S"),
        (14, 0, 0, "P14M"),  # months stay months: a year is not assumed
        (0, 30, 0, "P30D"),  # days stay days: a day is not assumed to be 86,400 s
        (0, 0, 90_500_000_000, "PT90.5S"),
        (0, 0, 0, "PT0S"),
        (0, 1, 1, "P1DT0.000000001S"),
        (-1, 0, -5, "-P1MT0.000000005S"),  # all negative: one leading minus
        (-1, -2, 0, "-P1M2D"),
        (1, -2, 0, "P1M-2D"),  # mixed signs: each part its own, as PostgreSQL writes them
        (-1, 2, 3_000_000_000, "P-1M2DT3S"),
        (0, 1, -1_500_000_000, "P1DT-1.5S"),
    ],
)
def test_intervals_are_iso_8601_months_days_and_seconds(
    months: int, days: int, nanoseconds: int, text: str
) -> None:
    assert interval_text(months, days, nanoseconds) == text


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_an_interval_of_nanoseconds_only_reads_as_that_duration(nanoseconds: int) -> None:
    assert interval_text(0, 0, nanoseconds) == duration_text(nanoseconds, 9)


def result(i: int, kept: dict[str, Any]) -> Result:
    return Result(f"r{i}", 200, 1.0, 1, "", {"f": kept["v"]}, kept)


def test_every_output_writes_them_as_text(tmp_path: Path) -> None:
    values = [v for v, _ in AS_TEXT]
    texts = [t for _, t in AS_TEXT]
    rows = [result(i, {"v": v}) for i, v in enumerate(values)]

    out = io.StringIO()
    csv_sink = CsvSink(out, ["f"], ["v"])
    for r in rows:
        csv_sink.write(r)
    written = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["f"], r["v"]) for r in written] == list(zip(texts, texts, strict=True))

    binary = io.BytesIO()
    jsonl = JsonlSink(binary)
    for r in rows:
        jsonl.write(r)
    lines = [json.loads(line) for line in binary.getvalue().splitlines()]
    assert [(r["f"], r["v"]) for r in lines] == list(zip(texts, texts, strict=True))

    parquet = ParquetSink(str(tmp_path / "out.parquet"), ["f"], ["v"])
    for r in rows:
        parquet.write(r)
    parquet.close()
    table = ds.dataset(str(tmp_path / "out.parquet")).to_table()
    assert table.column("v").to_pylist() == texts  # a string column, without JSON quotes

    sqlite = SqliteSink(str(tmp_path / "out.db"), ["f"], ["v"])
    for r in rows:
        sqlite.write(r)
    sqlite.close()
    conn = sqlite3.connect(tmp_path / "out.db")
    try:
        stored = [v for (v,) in conn.execute("SELECT v FROM results ORDER BY rowid")]
    finally:
        conn.close()
    # SQLite keeps bytes as they are, in a BLOB; the others as their text.
    assert stored == [v if isinstance(v, bytes) else t for v, t in AS_TEXT]


def test_the_worker_pipes_carry_them_as_text() -> None:
    row = {"q": "a", "d": decimal.Decimal("1.10"), "t": pd.Timestamp("2024-01-02T03:04:05")}
    chunk = from_parent(RowChunk([[0, 1, row, None]], []).encode())
    assert isinstance(chunk, RowChunk)
    assert chunk.rows == [[0, 1, {"q": "a", "d": "1.10", "t": "2024-01-02T03:04:05"}, None]]
    sent = Result("1", 200, 1.0, 1, "", {"b": b"\x00\xff"}, {"d": decimal.Decimal("2.5")})
    batch = from_worker(ResultBatch([[0, *sent]]).encode())
    assert isinstance(batch, ResultBatch)
    assert list(batch.results()) == [(0, sent._replace(fields={"b": "AP8="}, kept={"d": "2.5"}))]


def test_loads_exact_keeps_integers_past_64_bits() -> None:
    from drumfire._values import loads_exact

    data = b'[{"id": 99999999999999999999999, "n": -9223372036854775809, "f": 1.5}, '
    data += b"18446744073709551615]"
    assert loads_exact(data) == [
        {"id": 99999999999999999999999, "n": -9223372036854775809, "f": 1.5},
        18446744073709551615,
    ]
    assert loads_exact(b'{"n": 1234567890123456789}') == {"n": 1234567890123456789}  # orjson's


def test_a_chunk_is_walked_only_where_its_schema_says_a_nan_may_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-p N: the parent looked over every chunk holding a null for a NaN, value by value;
    with an Arrow input's float columns known, only their values are looked at (none
    for a chunk of int and string columns), and a NaN still crosses exactly."""
    import drumfire._messages as messages

    walked: list[Any] = []

    def counting(value: Any) -> Any:
        walked.append(value)
        return mark_floats(value)

    monkeypatch.setattr(messages, "mark_floats", counting)
    nan, inf = float("nan"), float("-inf")
    plain = [[i, i + 1, {"n": None if i % 2 else i, "s": None, "id": str(i)}, None]
             for i in range(256)]  # fmt: skip
    data = RowChunk(plain, []).encode(frozenset())  # no column may hold one
    assert (walked, data) == ([], RowChunk(plain, []).encode(frozenset({"absent"})))
    assert from_parent(data) == RowChunk(plain, [])
    rows = [[0, 1, {"f": nan, "n": None, "l": [1.5, inf]}, None], [1, 2, None, "bad line"],
            [2, 3, {"f": None, "n": 7, "l": None}, None],
            [3, 4, {"f": 0.5, "n": 1, "l": []}, None]]  # fmt: skip
    back = from_parent(RowChunk(rows, []).encode(frozenset({"f", "l"})))
    assert isinstance(back, RowChunk)
    assert math.isnan(back.rows[0][2]["f"])
    assert back.rows[0][2]["l"] == [1.5, inf]
    assert [r[2] for r in back.rows[1:]] == [None, rows[2][2], rows[3][2]]
    assert sorted(map(repr, walked)) == sorted(map(repr, [nan, [1.5, inf], 0.5, []]))
    walked.clear()  # Python rows (None): any value may hold one, each is looked at
    back = from_parent(RowChunk(rows, []).encode())
    assert isinstance(back, RowChunk)
    assert math.isnan(back.rows[0][2]["f"])
    assert walked == []  # the whole message is walked by _values, not per column
    assert pipe_dumps([rows, []]) == RowChunk(rows, []).encode()


def test_the_float_columns_of_an_arrow_schema() -> None:
    """Only values that are or hold a float may be a NaN: integers, strings, booleans and
    what is read as text (decimal, temporal, binary) never are."""
    import pyarrow as pa

    from drumfire._arrow_rows import nan_columns

    schema = pa.schema([
        ("i", pa.int64()), ("s", pa.string()), ("ls", pa.large_string()), ("b", pa.bool_()),
        ("d", pa.decimal128(5, 2)), ("t", pa.timestamp("us")), ("day", pa.date32()),
        ("bin", pa.binary()), ("li", pa.list_(pa.int32())), ("z", pa.null()),
        ("dict", pa.dictionary(pa.int8(), pa.string())),
        ("f", pa.float64()), ("f32", pa.float32()), ("h", pa.float16()),
        ("lf", pa.list_(pa.float64())), ("st", pa.struct([("a", pa.int8()), ("x", pa.float32())])),
        ("m", pa.map_(pa.string(), pa.float64())), ("df", pa.dictionary(pa.int8(), pa.float64())),
    ])  # fmt: skip
    assert nan_columns(pa, [schema]) == {"f", "f32", "h", "lf", "st", "m", "df"}
    other = pa.schema([("i", pa.float64()), ("s", pa.string())])  # a part that differs
    assert nan_columns(pa, [schema, other]) == {"f", "f32", "h", "lf", "st", "m", "df", "i"}


def test_the_parent_knows_where_a_nan_may_be_from_the_source(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from drumfire._parallel import nan_columns
    from drumfire._sources import open_source, rows_source

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a"], "n": [1], "f": [0.5]}), path)
    (tmp_path / "in.csv").write_text("id,f\na,nan\n")
    for name, expected in (("in.parquet", {"f"}), ("in.csv", frozenset())):
        source = open_source(str(tmp_path / name))
        try:
            assert nan_columns(source) == expected
        finally:
            source.close()
    assert nan_columns(rows_source([{"id": "a", "f": math.nan}])) is None


def test_the_pipes_carry_nan_and_infinities_and_nothing_else_changes() -> None:
    nan, inf = float("nan"), float("inf")
    value = [[1, 2, {"f": nan, "g": [inf, -inf, None], "big": 10**25}, None], ["x"]]
    back = pipe_loads(pipe_dumps(value))
    assert math.isnan(back[0][2]["f"])
    assert back[0][2]["g"] == [inf, -inf, None]
    assert back[0][2]["big"] == 10**25
    assert back[1] == ["x"]
    plain = [[1, {"a": "b", "n": None}]]
    assert pipe_dumps(plain) == dumps(plain)  # nothing to mark: the same bytes
    assert pipe_loads(pipe_dumps([nan], floats=False)) == [None]  # told there are none

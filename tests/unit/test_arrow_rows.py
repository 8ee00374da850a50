"""Parquet input and Arrow tables read as rows (drumfire._arrow_rows): values JSON has no
type for arrive as text, and no value makes a batch of rows fail."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drumfire import InputError
from drumfire import _frames as frames
from drumfire._arrow_rows import BatchRows
from drumfire._rows import InputProblem
from drumfire._sources import open_source, rows_source
from drumfire._values import cell_text

YEAR_10000_US = 253402300800000000  # 10000-01-01T00:00:00, in microseconds since 1970
BEFORE_YEAR_1_US = -62135596800000001  # 0000-12-31T23:59:59.999999


def read(path: Path, table: pa.Table) -> list[Any]:
    pq.write_table(table, path)
    source = open_source(str(path))
    try:
        return [row for _, row in source.items]
    finally:
        source.close()


def test_out_of_range_timestamps_and_dates_are_read_as_iso_text(tmp_path: Path) -> None:
    # to_pylist raised OverflowError ("date value out of range") and the batch's rows were lost.
    table = pa.table(
        {
            "q": ["a", "b", "c"],
            "far": pa.array([YEAR_10000_US, BEFORE_YEAR_1_US, None], pa.timestamp("us")),
            "day": pa.array([2932897, -719163, 0], pa.date32()),  # 10000-01-01, 0000-12-31
            "in_list": pa.array([[YEAR_10000_US], [], None], pa.list_(pa.timestamp("us"))),
        }
    )
    assert read(tmp_path / "in.parquet", table) == [
        {
            "q": "a",
            "far": "10000-01-01T00:00:00",
            "day": "10000-01-01",
            "in_list": ["10000-01-01T00:00:00"],
        },
        {"q": "b", "far": "0000-12-31T23:59:59.999999", "day": "0000-12-31", "in_list": []},
        {"q": "c", "far": None, "day": "1970-01-01", "in_list": None},
    ]


def test_temporal_and_decimal_columns_are_read_as_text(tmp_path: Path) -> None:
    second = 1704164645  # 2024-01-02T03:04:05Z
    table = pa.table(
        {
            "s": pa.array([second], pa.timestamp("s")),
            "ms_tz": pa.array([second * 1000 + 5], pa.timestamp("ms", tz="Europe/Paris")),
            "us_utc": pa.array([second * 10**6], pa.timestamp("us", tz="UTC")),
            "ns": pa.array([second * 10**9 + 7], pa.timestamp("ns")),
            "time": pa.array([dt.time(3, 4, 5, 6000)], pa.time64("us")),
            "dec": pa.array([Decimal("12.500")], pa.decimal128(8, 3)),
            "big_dec": pa.array([Decimal("1" * 40)], pa.decimal256(40, 0)),
            "dur_ms": pa.array([-1500], pa.duration("ms")),
            "dur_s": pa.array([0], pa.duration("s")),
            "nested": pa.array(
                [{"d": Decimal("0.5"), "m": [("k", dt.timedelta(microseconds=1))]}],
                pa.struct(
                    [("d", pa.decimal128(3, 1)), ("m", pa.map_(pa.string(), pa.duration("us")))]
                ),
            ),
        }
    )  # fmt: skip
    assert read(tmp_path / "in.parquet", table) == [
        {
            "s": "2024-01-02T03:04:05",  # as isoformat: no zero fraction
            "ms_tz": "2024-01-02T04:04:05.005000+01:00",
            "us_utc": "2024-01-02T03:04:05+00:00",
            "ns": "2024-01-02T03:04:05.000000007",
            "time": "03:04:05.006000",
            "dec": "12.500",
            "big_dec": "1" * 40,
            "dur_ms": "-PT1.5S",
            "dur_s": "PT0S",
            "nested": {"d": "0.5", "m": [("k", "PT0.000001S")]},
        }
    ]


def test_intervals_are_read_as_iso_8601_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # to_pylist gives MonthDayNano tuples: a template rendered their repr
    # ("MonthDayNano(months=1, days=2, nanoseconds=3000000000)") and outputs a JSON array.
    # Parquet cannot hold this type (pyarrow refuses to write it): Arrow tables can.
    monkeypatch.setattr(frames, "BATCH_ROWS", 2)  # sliced batches, nested columns too
    mdn = pa.month_day_nano_interval()
    spans = [pa.MonthDayNano([1, 2, 3_000_000_000]), None, pa.MonthDayNano([-1, 0, -5])]
    table = pa.table(
        {
            "i": [0, 1, 2],
            "iv": pa.array(spans, mdn),
            "xs": pa.array([[spans[0], None], None, []], pa.list_(mdn)),
            "st": pa.array([{"d": spans[2]}, {"d": None}, None], pa.struct([("d", mdn)])),
        }
    )
    rows = [row for _, row in frames.frame_source(table, "arrow").items]
    assert rows == [
        {"i": 0, "iv": "P1M2DT3S", "xs": ["P1M2DT3S", None], "st": {"d": "-P1MT0.000000005S"}},
        {"i": 1, "iv": None, "xs": None, "st": {"d": None}},
        {"i": 2, "iv": "-P1MT0.000000005S", "xs": [], "st": None},
    ]


def test_float32_reads_as_its_shortest_decimal(tmp_path: Path) -> None:
    # A float32 1.1 read as a float64 is 1.100000023841858, which a template would send.
    table = pa.table({"f": pa.array([1.1, None, 3.4e38, float("inf")], pa.float32())})
    assert [row["f"] for row in read(tmp_path / "in.parquet", table)] == [
        1.1,
        None,
        3.4e38,
        float("inf"),
    ]


def test_binary_is_text_when_utf_8_and_else_an_error_row(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["r1", "r2", "r3", "r4"],
            "b": pa.array([b"caf\xc3\xa9 &=#", b"\x00\xff", None, b"ok"], pa.binary()),
            "fixed": pa.array([b"ab", b"cd", b"ef", b"\xfe\xff"], pa.binary(2)),
            "deep": pa.array([[b"x"], [b"y"], [b"\xc3("], []], pa.list_(pa.large_binary())),
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    source = open_source(str(path))
    items = list(source.items)
    source.close()
    assert items[0] == (1, {"id": "r1", "b": "café &=#", "fixed": "ab", "deep": ["x"]})
    # Not UTF-8: no text to send, so the row is an input error naming its line and column.
    problems = [(n, p.line, p.message) for n, p in items[1:] if isinstance(p, InputProblem)]
    assert problems == [
        (2, 2, "column 'b' is binary, not UTF-8 text"),
        (3, 3, "column 'deep' is binary, not UTF-8 text"),
        (4, 4, "column 'fixed' is binary, not UTF-8 text"),
    ]


def test_an_arrow_table_in_sliced_batches_is_read_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # to_batches(max_chunksize=) slices: nested columns are rebuilt from their offsets.
    monkeypatch.setattr(frames, "BATCH_ROWS", 2)
    n = 5
    table = pa.table(
        {
            "i": list(range(n)),
            "ts": pa.array([[i * 10**6, None] for i in range(n)], pa.list_(pa.timestamp("us"))),
            "st": pa.array(
                [None if i == 2 else {"d": Decimal(i)} for i in range(n)],
                pa.struct([("d", pa.decimal128(3, 0))]),
            ),
            "b": pa.array([b"\xff" if i == 3 else b"t" for i in range(n)], pa.binary()),
            "pair": pa.array(
                [None if i == 1 else [Decimal(i), None] for i in range(n)],
                pa.list_(pa.decimal128(3, 0), 2),
            ),
        }
    )
    items = list(frames.frame_source(table, "arrow").items)
    assert [n for n, _ in items] == [1, 2, 3, 4, 5]
    rows = [row for _, row in items]
    first, third = ["1970-01-01T00:00:00", None], ["1970-01-01T00:00:02", None]
    assert rows[0] == {"i": 0, "ts": first, "st": {"d": "0"}, "b": "t", "pair": ["0", None]}
    assert rows[1]["pair"] is None
    assert rows[2] == {"i": 2, "ts": third, "st": None, "b": "t", "pair": ["2", None]}
    problem = rows[3]
    assert isinstance(problem, InputProblem)
    assert (problem.line, problem.message) == (4, "column 'b' is binary, not UTF-8 text")
    assert (rows[4]["st"], rows[4]["pair"]) == ({"d": "4"}, ["4", None])


def test_sliced_list_and_map_columns_with_nulls_keep_their_own_values() -> None:
    # A slice with a null entry: from_arrays refused its offsets ("Null bitmap with offsets
    # slice not supported"), and .values/.keys/.items gave the whole chunk's values.
    def value(i: int, kind: type) -> Any:
        return None if i % 3 == 0 else [kind(i), None]

    n = 10
    table = pa.table(
        {
            "i": list(range(n)),
            "xs": pa.array([value(i, Decimal) for i in range(n)], pa.list_(pa.decimal128(3, 0))),
            "big": pa.array([value(i, float) for i in range(n)], pa.large_list(pa.float32())),
            "m": pa.array(
                [None if i % 4 == 0 else [(f"k{i}", Decimal(i))] for i in range(n)],
                pa.map_(pa.string(), pa.decimal128(3, 0)),
            ),
        }
    )
    (whole,) = table.to_batches()
    for start, length in ((4, 6), (3, 4), (1, 5), (7, 3), (10, 0)):
        batch = whole.slice(start, length)
        rows = [row for _, row in BatchRows(pa).rows(batch)]
        expected = [
            {
                "i": i,
                "xs": None if i % 3 == 0 else [str(i), None],
                "big": None if i % 3 == 0 else [float(i), None],
                "m": None if i % 4 == 0 else [(f"k{i}", str(i))],
            }
            for i in range(start, start + length)
        ]
        assert rows == expected


def test_a_table_over_one_batch_with_a_null_list_entry_is_read_whole() -> None:
    # The reviewer's case: rows after the first 8,192 (a slice of the chunk) raised.
    n = frames.BATCH_ROWS + 1808
    xs = pa.array([None if i % 100 == 0 else [1.5] for i in range(n)], pa.list_(pa.float32()))
    table = pa.table({"id": list(range(n)), "xs": xs})
    rows = [row for _, row in frames.frame_source(table, "arrow").items]
    assert rows == [{"id": i, "xs": None if i % 100 == 0 else [1.5]} for i in range(n)]


def test_small_and_negative_scale_decimals_are_plain_text(tmp_path: Path) -> None:
    # Arrow's own text of a decimal is scientific under 1e-6 or with a negative scale:
    # decimal(10, 8) 0.00000010 was sent and written as "1.0E-7", 12300 at scale -2 as "1.23E+4".
    table = pa.table(
        {
            "small": pa.array(
                [Decimal("0.00000010"), Decimal("-0.00000001"), None, Decimal("60.1")],
                pa.decimal128(10, 8),
            ),
            "usual": pa.array([Decimal("0.000001"), Decimal("1.10"), None, Decimal("-2")],
                              pa.decimal128(9, 6)),
            "in_list": pa.array(
                [[Decimal("1E-8")], None, [], [None]], pa.list_(pa.decimal128(9, 8))
            ),
        }
    )  # fmt: skip
    rows = read(tmp_path / "in.parquet", table)
    assert [r["small"] for r in rows] == ["0.00000010", "-0.00000001", None, "60.10000000"]
    assert [r["usual"] for r in rows] == ["0.000001", "1.100000", None, "-2.000000"]
    assert [r["in_list"] for r in rows] == [["0.00000001"], None, [], [None]]
    # Parquet has no negative scale; an Arrow table may.
    neg = pa.table({"neg": pa.array([Decimal("12300"), Decimal("0"), None], pa.decimal128(5, -2))})
    rows = [row for _, row in frames.frame_source(neg, "arrow").items]
    assert [r["neg"] for r in rows] == ["12300", "0", None]


def test_an_arrow_table_naming_a_column_twice_is_one_line() -> None:
    """Of two columns named ``a``, the second was sent and the first never, silently."""
    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    with pytest.raises(InputError, match=r"^the Arrow table names columns more than once: 'a';"):
        frames.frame_source(table, "arrow")


def test_timestamps_and_times_read_as_a_dataframe_of_the_same_file_reads_them(
    tmp_path: Path,
) -> None:
    # A Parquet file gave the column's precision ("…T00:00:00.000000"), the same file
    # read by pandas.read_parquet and run as a DataFrame isoformat's ("…T00:00:00"):
    # two URLs for one row, and a --resume of the one never found the other's ids.
    pd = pytest.importorskip("pandas")
    values = [0, 1_000, 1_500_000, 123_456_789_000, 123_456_000_007]  # in nanoseconds
    columns: dict[str, Any] = {"i": list(range(len(values)))}
    for unit, per in (("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)):
        for tz in (None, "America/New_York"):
            whole = [v // per * per // per for v in values]
            columns[f"{unit}_{tz}"] = pa.array(whole, pa.timestamp(unit, tz))
    columns["t_ms"] = pa.array([v // 10**6 % 86_400_000 for v in values], pa.time32("ms"))
    columns["t_us"] = pa.array([v // 10**3 % 86_400_000_000 for v in values], pa.time64("us"))
    path = tmp_path / "in.parquet"
    from_file = read(path, pa.table(columns))
    frame = pd.read_parquet(path)
    source = rows_source(frame)  # as run(frame): Timestamps, written by cell_text
    from_frame = [{k: cell_text(v) for k, v in row.items()} for _, row in source.items]
    assert [{k: cell_text(v) for k, v in row.items()} for row in from_file] == from_frame
    assert from_file[0]["us_None"] == "1970-01-01T00:00:00"
    assert from_file[2]["ms_America/New_York"] == "1969-12-31T19:00:00.001000-05:00"
    assert from_file[4]["ns_None"] == "1970-01-01T00:02:03.456000007"

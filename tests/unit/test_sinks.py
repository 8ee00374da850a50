"""Output sinks (drumfire._sinks)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drumfire._errors import UsageError
from drumfire._result import BASE_COLUMNS, Result
from drumfire._sinks import CsvSink, JsonlSink, ListSink, open_sink, output_format_for

OK = Result(
    "r1",
    200,
    12.34567,
    1,
    "",
    {"duration": 3.5, "code": "Ok", "geo": {"a": [1, 2]}, "flag": True, "none": None},
    {"lon": "24.9", "extra": ["x"]},
)
FAILED = Result("r2", None, 30000.0, 4, "timeout", None, {"lon": "25.0", "extra": None})
FIELDS = ["duration", "code", "geo", "flag", "none"]
KEEP = ["lon", "extra"]


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_base_columns() -> None:
    assert BASE_COLUMNS == ("id", "status", "elapsed_ms", "attempts", "error")


def test_csv_sink_column_order_and_cells() -> None:
    out = io.StringIO()
    sink = CsvSink(out, FIELDS, KEEP)
    sink.write(OK)
    sink.write(FAILED)
    sink.flush()
    header, ok, failed = csv_rows(out.getvalue())
    assert header == [*BASE_COLUMNS, *FIELDS, *KEEP]
    assert ok == [
        "r1",
        "200",
        "12.346",
        "1",
        "",
        "3.5",
        "Ok",
        '{"a":[1,2]}',
        "true",
        "",
        "24.9",
        '["x"]',
    ]
    assert failed == ["r2", "", "30000.000", "4", "timeout", "", "", "", "", "", "25.0", ""]
    assert out.getvalue().count("\r") == 0


def test_csv_sink_bool_false_and_missing_keys() -> None:
    out = io.StringIO()
    sink = CsvSink(out, ["a", "b"], ["k"])
    sink.write(Result("1", 200, 1.0, 1, "", {"a": False}, None))
    assert csv_rows(out.getvalue())[1] == ["1", "200", "1.000", "1", "", "false", "", ""]


def test_csv_sink_without_fields_or_keep() -> None:
    out = io.StringIO()
    sink = CsvSink(out, [], [])
    sink.write(Result("1", 404, 0.5, 2, "", {"ignored": 1}, {"ignored": 2}))
    assert csv_rows(out.getvalue()) == [list(BASE_COLUMNS), ["1", "404", "0.500", "2", ""]]


def test_csv_sink_quotes_awkward_values() -> None:
    out = io.StringIO()
    sink = CsvSink(out, ["t"], [])
    sink.write(Result("a,b", 200, 1.0, 1, 'parse: x "y"\nz', {"t": "line1\nline2"}))
    assert csv_rows(out.getvalue())[1] == [
        "a,b",
        "200",
        "1.000",
        "1",
        'parse: x "y"\nz',
        "line1\nline2",
    ]


def test_csv_sink_quotes_a_lone_carriage_return() -> None:
    """A CR alone ends a line for CSV readers (Python's csv, pandas, drumfire's --resume), so a
    cell holding one is quoted: Python's writer with LF line ends left it bare, and the row
    read back as two (a --resume then sent it again and wrote it twice)."""
    out = io.StringIO()
    sink = CsvSink(out, ["t", "n"], ["k"])
    sink.write(Result("a\rb", 200, 1.0, 1, "", {"t": "x", "n": 3}, {"k": "v"}))
    sink.write(Result("c", 200, 1.0, 1, "", {"t": "y\rz", "n": None}, {"k": "v"}))
    sink.write(Result("d", None, 0.0, 0, "", None, {"k": "w\r"}))
    sink.write(Result("e", 200, 1.0, 1, "", {"t": "plain", "n": 4}, {"k": "v"}))
    text = out.getvalue()
    assert csv_rows(text)[1:] == [
        ["a\rb", "200", "1.000", "1", "", "x", "3", "v"],
        ["c", "200", "1.000", "1", "", "y\rz", "", "v"],
        ["d", "", "0.000", "0", "", "", "", "w\r"],
        ["e", "200", "1.000", "1", "", "plain", "4", "v"],
    ]
    assert text.endswith("\ne,200,1.000,1,,plain,4,v\n")  # other rows as before
    assert "\r\n" not in text


class _Text(str):
    """A str subclass (a StrEnum, numpy.str_ are others), written through the cell's text."""


def test_csv_sink_quotes_a_lone_carriage_return_in_any_text_a_value_becomes() -> None:
    # Only values of type str were looked at: bytes from a --parse function (written as
    # text) or a str subclass left the CR bare, the row read back as two, and a --resume
    # took the stray fragment "3," for row 3's result (it was never sent).
    out = io.StringIO()
    sink = CsvSink(out, ["raw"], [], parse=True)
    sink.write(Result("1", 200, 1.0, 1, "", {"raw": b"x\r3"}, None))
    sink.write(Result("2", 200, 1.0, 1, "", {"raw": _Text("y\r4")}, None))
    sink.write(Result("5", 200, 1.0, 1, "", {"raw": "plain"}, None))
    rows = csv_rows(out.getvalue())[1:]
    assert [row[:2] for row in rows] == [["1", "200"], ["2", "200"], ["5", "200"]]
    assert [row[5] for row in rows] == ["x\r3", "y\r4", "plain"]
    header = io.StringIO()
    CsvSink(header, ["a\rb"], [])  # a column named with a CR: the header is quoted too
    assert csv_rows(header.getvalue()) == [[*BASE_COLUMNS, "a\rb"]]


def test_csv_sink_close_closes_its_stream() -> None:
    out = io.StringIO()
    sink = CsvSink(out, [], [])
    sink.close()
    assert out.closed


def test_jsonl_sink_key_order_and_values() -> None:
    out = io.BytesIO()
    sink = JsonlSink(out)
    sink.write(OK)
    sink.write(FAILED)
    sink.flush()
    lines = out.getvalue().splitlines()
    first = orjson.loads(lines[0])
    assert list(first) == [*BASE_COLUMNS, *FIELDS, *KEEP]
    assert first == {
        "id": "r1",
        "status": 200,
        "elapsed_ms": 12.346,
        "attempts": 1,
        "error": "",
        "duration": 3.5,
        "code": "Ok",
        "geo": {"a": [1, 2]},
        "flag": True,
        "none": None,
        "lon": "24.9",
        "extra": ["x"],
    }
    second = orjson.loads(lines[1])
    assert second == {
        "id": "r2",
        "status": None,
        "elapsed_ms": 30000.0,
        "attempts": 4,
        "error": "timeout",
        "lon": "25.0",
        "extra": None,
    }
    assert out.getvalue().endswith(b"\n")
    sink.close()
    assert out.closed


def test_list_sink() -> None:
    sink = ListSink()
    sink.write(OK)
    sink.flush()
    sink.close()
    assert sink.results == [OK]


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("-", "csv"),
        ("out.csv", "csv"),
        ("OUT.CSV", "csv"),
        ("out", "csv"),
        ("out.txt", "csv"),
        ("out.jsonl", "jsonl"),
        ("out.ndjson", "jsonl"),
        ("out.json", "jsonl"),
    ],
)
def test_output_format_from_path(path: str, fmt: str) -> None:
    assert output_format_for(path, None) == fmt


def test_explicit_output_format() -> None:
    assert output_format_for("out.csv", "jsonl") == "jsonl"
    with pytest.raises(UsageError, match="unknown output format 'xml'"):
        output_format_for("out.csv", "xml")


def test_unknown_output_extension() -> None:
    with pytest.raises(UsageError, match="--output-format"):
        output_format_for("out.xls", None)


def test_typed_formats_from_extension() -> None:  # written by _parquet and _sqlite
    assert output_format_for("out.parquet", None) == "parquet"
    assert output_format_for("out.db", None) == "sqlite"
    assert output_format_for("sqlite:///out.x?table=t", None) == "sqlite"


@pytest.mark.parametrize(("name", "cls"), [("o.csv", CsvSink), ("o.jsonl", JsonlSink)])
def test_open_sink_writes_a_file(tmp_path: Path, name: str, cls: type) -> None:
    path = tmp_path / name
    sink = open_sink(str(path), None, ["f"], ["k"])
    assert isinstance(sink, cls)
    sink.write(Result("1", 200, 1.0, 1, "", {"f": 1}, {"k": "v"}))
    sink.close()
    text = path.read_text(encoding="utf-8")
    if cls is CsvSink:
        assert text == "id,status,elapsed_ms,attempts,error,f,k\n1,200,1.000,1,,1,v\n"
    else:
        assert orjson.loads(text) == {
            "id": "1",
            "status": 200,
            "elapsed_ms": 1.0,
            "attempts": 1,
            "error": "",
            "f": 1,
            "k": "v",
        }


def test_open_sink_append(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    for i in range(2):
        sink = open_sink(str(path), None, [], [], append=True)
        sink.write(Result(str(i), 200, 1.0, 1, ""))
        sink.close()
    assert [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()] == ["0", "1"]


@pytest.mark.parametrize("name", ["o.csv", "o.jsonl"])
def test_unwritable_path_is_a_usage_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="cannot write output"):
        open_sink(str(tmp_path / "no-such-dir" / name), None, [], [])


def test_directory_as_output_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(UsageError, match="cannot write output"):
        open_sink(str(tmp_path / "d.csv"), None, [], [])


# -- --parse fields in CSV ------------------------------------------------------------


class _Keep(io.StringIO):
    def close(self) -> None:  # keep the text readable after the sink closes
        pass


def parsed(
    id_: str, status: int | None, fields: dict[str, object] | None, error: str = ""
) -> Result:
    return Result(id_, status, 1.0, 1, error, fields, None)


def test_csv_learns_parse_columns_from_the_first_answer() -> None:
    out = _Keep()
    sink = CsvSink(out, ["code"], [], learn=True)
    sink.write(parsed("0", None, None, "connect"))  # held back: nothing to learn from
    sink.write(parsed("p", 200, {"code": None}, "parse: KeyError: 'km'"))  # the same
    sink.write(parsed("1", 200, {"code": "Ok", "km": 1.5, "etag": "x"}))
    sink.write(parsed("2", 200, {"code": "Ok", "km": 2.0, "etag": "y", "new": [1]}))
    sink.write(parsed("3", None, {"code": None}, "timeout"))
    sink.close()
    assert csv_rows(out.getvalue()) == [
        [*BASE_COLUMNS, "code", "km", "etag", "parse_extra"],
        ["0", "", "1.000", "1", "connect", "", "", "", ""],
        ["p", "200", "1.000", "1", "parse: KeyError: 'km'", "", "", "", ""],
        ["1", "200", "1.000", "1", "", "Ok", "1.5", "x", ""],
        ["2", "200", "1.000", "1", "", "Ok", "2.0", "y", '{"new":[1]}'],
        ["3", "", "1.000", "1", "timeout", "", "", "", ""],
    ]


def test_csv_declared_parse_columns() -> None:
    out = _Keep()
    sink = CsvSink(out, [], ["k"], learn=True, parse_columns=["b", "a"])
    sink.write(Result("1", 200, 1.0, 1, "", {"a": 1, "c": "x"}, {"k": "v"}))
    sink.close()
    assert csv_rows(out.getvalue()) == [
        [*BASE_COLUMNS, "b", "a", "parse_extra", "k"],
        ["1", "200", "1.000", "1", "", "", "1", '{"c":"x"}', "v"],
    ]


def test_csv_parse_header_written_when_no_row_was_answered() -> None:
    out = _Keep()
    sink = CsvSink(out, ["code"], [], learn=True)
    sink.write(parsed("1", None, None, "connect"))
    sink.close()
    assert csv_rows(out.getvalue()) == [
        [*BASE_COLUMNS, "code", "parse_extra"],
        ["1", "", "1.000", "1", "connect", "", ""],
    ]


def test_csv_parse_columns_after_1000_unanswered_rows() -> None:
    out = _Keep()
    sink = CsvSink(out, [], [], learn=True)
    for i in range(1001):  # 1000 held back, then the header goes out without them
        sink.write(parsed(str(i), None, None, "connect"))
    sink.write(parsed("late", 200, {"km": 1}))
    sink.close()
    rows = csv_rows(out.getvalue())
    assert rows[0] == [*BASE_COLUMNS, "parse_extra"]
    assert [r[0] for r in rows[1:]] == [*map(str, range(1001)), "late"]
    assert rows[-1] == ["late", "200", "1.000", "1", "", '{"km":1}']


def test_resume_takes_the_learned_parse_columns_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    sink = open_sink(str(path), None, ["code"], ["k"], learn=True)
    sink.write(Result("1", 200, 1.0, 1, "", {"code": "Ok", "km": 1}, {"k": "a"}))
    sink.close()
    again = open_sink(str(path), None, ["code"], ["k"], append=True, learn=True)
    again.write(Result("2", 200, 1.0, 1, "", {"code": "Ok", "km": 2, "z": 0}, {"k": "b"}))
    again.close()
    assert csv_rows(path.read_text()) == [
        [*BASE_COLUMNS, "code", "km", "parse_extra", "k"],
        ["1", "200", "1.000", "1", "", "Ok", "1", "", "a"],
        ["2", "200", "1.000", "1", "", "Ok", "2", '{"z":0}', "b"],
    ]


_CELLS = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(alphabet=st.sampled_from(list('ab ,"\n\r\té☃{}')), max_size=6),
    st.binary(max_size=3),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    id_=st.text(alphabet=st.sampled_from(list('1a ,"\n\r{}')), max_size=4),
    status=st.sampled_from([200, 404, None]),
    error=st.sampled_from(["", "timeout", "parse: a, b", 'x "y"', "a\rb"]),
    values=st.one_of(st.none(), st.lists(_CELLS, min_size=2, max_size=2)),
)
def test_the_usual_lines_are_what_the_csv_writer_writes(
    id_: str, status: int | None, error: str, values: list[object] | None
) -> None:
    # A sink of extracted fields only makes its lines itself (generated code, no csv
    # writer) where no cell needs quoting: byte for byte what the writer's way gives.
    names = ["d", "e,{x}"]
    fields = None if values is None else dict(zip(names, values, strict=True))
    result = Result(id_, status, 1.23456, 2, error, fields, None)
    by_lines, by_writer = io.StringIO(), io.StringIO()
    CsvSink(by_lines, names, []).write_all([result, OK._replace(fields=None), result])
    writer = CsvSink(by_writer, names, [])
    for r in (result, OK._replace(fields=None), result):
        writer.write(r)  # row by row: the csv writer's way
    assert by_lines.getvalue() == by_writer.getvalue()

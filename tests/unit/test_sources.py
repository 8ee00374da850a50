"""Input sources (drumfire._sources) on temporary files."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from codecs import BOM_UTF8
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drumfire._errors import InputError, UsageError
from drumfire._instream import check_stdin_start, stdin_start
from drumfire._rows import InputProblem, LineMap
from drumfire._sources import Source, count_rows, format_for, open_source, rows_source


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_all(path: str, **kwargs: Any) -> tuple[Source, list[tuple[int, Any]]]:
    source = open_source(path, **kwargs)
    try:
        return source, list(source.items)
    finally:
        if source.close is not None:
            source.close()


def rows(items: list[tuple[int, Any]]) -> list[Any]:
    return [row for _, row in items]


def problems(items: list[tuple[int, Any]]) -> list[tuple[int, int, str]]:
    return [(n, p.line, p.message) for n, p in items if isinstance(p, InputProblem)]


# -- CSV / TSV -----------------------------------------------------------------------


def test_csv_with_header(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", b'lon,lat,name\n24.9,60.1,a\n25.0,60.2,"b, c"\n')
    source, items = read_all(path)
    assert source.fmt == "csv"
    assert source.columns == frozenset({"lon", "lat", "name"})
    assert source.total == 2
    assert items == [
        (1, {"lon": "24.9", "lat": "60.1", "name": "a"}),
        (2, {"lon": "25.0", "lat": "60.2", "name": "b, c"}),
    ]


def test_csv_header_names_are_stripped(tmp_path: Path) -> None:
    source, items = read_all(write(tmp_path, "in.csv", b" a , b\n1,2\n"))
    assert source.columns == frozenset({"a", "b"})
    assert rows(items) == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize("ext", [".tsv", ".tab"])
def test_tsv(tmp_path: Path, ext: str) -> None:
    source, items = read_all(write(tmp_path, "in" + ext, b"a\tb\n1,5\t2\n"))
    assert source.fmt == "tsv"
    assert rows(items) == [{"a": "1,5", "b": "2"}]


def test_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbfid,url\r\n1,http://a\r\n\r\n2,http://b\r\n  \r\n3,http://c"
    source, items = read_all(write(tmp_path, "in.csv", data))
    assert source.columns == frozenset({"id", "url"})
    assert items == [
        (1, {"id": "1", "url": "http://a"}),
        (2, {"id": "2", "url": "http://b"}),
        (3, {"id": "3", "url": "http://c"}),
    ]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-8-sig", "utf-8"])
@pytest.mark.parametrize(
    ("name", "data"),
    [("in.csv", b"id,url\n1,http://a\n"), ("in.tsv", b"id\turl\n1\thttp://a\n"),
     ("in.txt", b"http://a\n"), ("in.jsonl", b'{"id": "1", "url": "http://a"}\n')],
)  # fmt: skip
def test_a_utf8_bom_is_dropped_whatever_the_encoding(
    tmp_path: Path, encoding: str, name: str, data: bytes
) -> None:
    # Read in Latin-1 the mark was the text 'ï»¿': the first column was 'ï»¿id', which no
    # template names, and a URL list's first URL 'ï»¿http://a' (JSON Lines dropped it).
    source, items = read_all(write(tmp_path, name, BOM_UTF8 + data), encoding=encoding)
    assert [row["url"] for _, row in items] == ["http://a"]
    if name.endswith((".csv", ".tsv")):
        assert source.columns == frozenset({"id", "url"})


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
@pytest.mark.parametrize(
    ("data", "fmt"),
    [(b"id,url\n1,http://a\n", "csv"), (b"http://a\n", "text"),
     (b'{"id": "1", "url": "http://a"}\n', "jsonl")],
)  # fmt: skip
def test_standard_input_with_a_utf8_bom_is_sniffed_without_it(
    monkeypatch: pytest.MonkeyPatch, encoding: str, data: bytes, fmt: str
) -> None:
    # In Latin-1 the mark made a URL list or JSON Lines on stdin look like a CSV whose
    # header was the first URL (or JSON object), and the run stopped on a missing column.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(BOM_UTF8 + data)))
    source, items = read_all("-", encoding=encoding)
    assert source.fmt == fmt
    assert [row["url"] for _, row in items] == ["http://a"]


def test_a_quoted_blank_record_is_no_blank_line(tmp_path: Path) -> None:
    # '""' and '"  "' are records of one field, not blank lines: in a file of two
    # columns each is an error row, as any record of one field is (they were dropped
    # without a word). Blank and white-space-only lines are still skipped.
    data = b'id,v\n1,a\n""\n \t\n\n"  "\n"\n"\n2,b\n'
    source, items = read_all(write(tmp_path, "in.csv", data))
    span = " (a quoted field opened on this line makes it one record with the next 1 line)"
    assert problems(items) == [
        (2, 3, "expected 2 fields, found 1"),
        (3, 6, "expected 2 fields, found 1"),
        (4, 7, "expected 2 fields, found 1" + span),
    ]
    assert items[0] == (1, {"id": "1", "v": "a"})
    assert items[4] == (5, {"id": "2", "v": "b"})
    assert source.lines is not None
    assert source.lines.line_of(5) == 9


def test_a_one_column_files_quoted_blank_value_is_a_row(tmp_path: Path) -> None:
    # csv.writer writes a one-column row whose value is empty as '""', so that it is
    # no blank line: a row, as '"  "' is; an empty or white-space-only line is skipped.
    data = b'url\n""\n\n   \n"  "\nhttp://a/1\n"\n"\n'
    source, items = read_all(write(tmp_path, "in.csv", data))
    assert items == [
        (1, {"url": ""}),
        (2, {"url": "  "}),
        (3, {"url": "http://a/1"}),
        (4, {"url": "\n"}),
    ]
    assert source.lines is not None
    assert [source.lines.line_of(n) for n in range(1, 5)] == [2, 5, 6, 7]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.text(alphabet=st.sampled_from(list('a ,"\n')), max_size=4), max_size=12),
    block=st.sampled_from([1, 3, 64, 1 << 16]),
    step=st.sampled_from([1, 2, 32]),
)
def test_a_written_one_column_csv_reads_back_exactly(
    tmp_path: Path, values: list[str], block: int, step: int
) -> None:
    # Every value csv.writer writes in a one-column file comes back, '' too (written
    # '""'), but a value of spaces only: written bare, it is a blank line, skipped.
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["v"])
    writer.writerows([v] for v in values)
    path = write(tmp_path, "one.csv", out.getvalue().encode())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("drumfire._sources._BLOCK", block)
        mp.setattr("drumfire._sources._STEP", step)
        _, items = read_all(path)
    assert rows(items) == [{"v": v} for v in values if v == "" or v.strip(" ")]


def test_quoted_newline_in_a_field(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.csv", b'a,b\n"line1\nline2",x\n3,4\n'))
    assert rows(items) == [{"a": "line1\nline2", "b": "x"}, {"a": "3", "b": "4"}]


def test_wrong_field_count_is_a_problem_naming_the_line(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n\n3\n5,6,7\n8,9\n"
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert [n for n, _ in items] == [1, 2, 3, 4]
    assert items[0] == (1, {"a": "1", "b": "2"})
    assert items[3] == (4, {"a": "8", "b": "9"})
    assert problems(items) == [
        (2, 4, "expected 2 fields, found 1"),
        (3, 5, "expected 2 fields, found 3"),
    ]
    assert "line=4" in repr(items[1][1])


def test_unbalanced_quote_is_a_problem_and_the_rows_after_it_come_back(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.csv", b'a,b\n1,"2\n3,4\n'))
    assert problems(items) == [(1, 2, "unterminated quote")]
    assert items[1] == (2, {"a": "3", "b": "4"})


def test_unterminated_quote_on_line_3_of_500_loses_one_row(tmp_path: Path) -> None:
    lines = [b"id,v\n"] + [b"%d,v%d\n" % (i, i) for i in range(1, 500)]
    lines[2] = b'2,"oops\n'  # line 3
    source, items = read_all(write(tmp_path, "in.csv", b"".join(lines)))
    assert problems(items) == [(2, 3, "unterminated quote")]
    good = rows(items)
    assert len(items) == 499
    assert [r["id"] for r in good if isinstance(r, dict)] == [
        str(i) for i in range(1, 500) if i != 2
    ]
    assert source.total == 499


def test_a_quote_open_past_the_line_limit_is_cut_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("drumfire._sources.QUOTE_MAX_LINES", 5)
    monkeypatch.setattr("drumfire._sources._STEP", 1)  # checked after every line
    # Line 4 opens a quote; line 12 would close it (taking 8 lines) but the
    # limit cuts it at 5, so lines 5.. are rows again, 12 one of them.
    lines = [b"id,v\n"] + [b"%d,v%d\n" % (i, i) for i in range(1, 20)]
    lines[3] = b'3,"opens\n'
    lines[11] = b'11,"closed"\n'
    _, items = read_all(write(tmp_path, "in.csv", b"".join(lines)))
    assert problems(items) == [(3, 4, "unterminated quote")]
    assert [r["id"] for r in rows(items) if isinstance(r, dict)] == [
        str(i) for i in range(1, 20) if i != 3
    ]
    assert {"id": "11", "v": "closed"} in rows(items)


def test_a_quote_closed_far_away_is_cut_at_the_limit(tmp_path: Path) -> None:
    # A stray quote on line 3, and another 1,500 lines later that would close it.
    lines = [b"id,v\n"] + [b"%d,v%d\n" % (i, i) for i in range(1, 2001)]
    lines[2] = b'2,"stray\n'
    lines[1502] = b'1502,"x"\n'
    _, items = read_all(write(tmp_path, "in.csv", b"".join(lines)))
    assert problems(items) == [(2, 3, "unterminated quote")]
    ids = [r["id"] for r in rows(items) if isinstance(r, dict)]
    assert ids == [str(i) for i in range(1, 2001) if i != 2]


def test_a_long_quoted_field_within_the_limits_is_one_field(tmp_path: Path) -> None:
    text = "\n".join(f"paragraph {i}" for i in range(900))
    data = f'id,text\n1,"{text}"\n2,x\n'.encode()
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert rows(items) == [{"id": "1", "text": text}, {"id": "2", "text": "x"}]


def test_a_long_quoted_field_that_closes_is_one_field_past_the_line_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past QUOTE_MAX_LINES, a quote that closes cleanly (before a delimiter or a
    # line end) within QUOTE_MAX_BYTES is a cell of many lines, not a runaway.
    monkeypatch.setattr("drumfire._sources.QUOTE_MAX_LINES", 5)
    monkeypatch.setattr("drumfire._sources._BLOCK", 64)  # read on block by block
    text = "\n".join(f'p{i}, a ""q"" {i}' for i in range(40))
    data = f'id,text\n1,"{text}"\n2,x\n3,"{text}",\n4,y\n'.encode()
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert rows(items)[:2] == [
        {"id": "1", "text": text.replace('""', '"')},
        {"id": "2", "text": "x"},
    ]
    # the third record is long and closes too, with a field too many: one error row
    assert problems(items) == [
        (3, 43, "expected 2 fields, found 3 (a quoted field opened on this line makes it "
                "one record with the next 39 lines)")
    ]  # fmt: skip
    assert items[3] == (4, {"id": "4", "text": "y"})
    # Over the bytes, it is cut as before.
    monkeypatch.setattr("drumfire._sources.QUOTE_MAX_BYTES", 200)
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert problems(items)[0] == (1, 2, "unterminated quote")


def test_a_quote_over_the_byte_limit_is_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("drumfire._sources.QUOTE_MAX_BYTES", 100)
    monkeypatch.setattr("drumfire._sources._STEP", 1)  # checked after every line
    data = b'id,v\n1,"' + b"x" * 60 + b"\n" + b"y" * 60 + b'"\n2,z\n'
    _, items = read_all(write(tmp_path, "in.csv", data))
    # Line 3 ("yyy...") is read again: one field, not two; then the row 2.
    assert problems(items) == [
        (1, 2, "unterminated quote"),
        (2, 3, "expected 2 fields, found 1"),
    ]
    assert items[2] == (3, {"id": "2", "v": "z"})


def test_the_opening_line_is_the_one_whose_quote_stays_open(tmp_path: Path) -> None:
    # The record begins on line 2 with a quoted field that closes on line 3,
    # where a second quote opens and never closes.
    data = b'a,b\n"x\ny","open\n5,6\n'
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert problems(items) == [(1, 3, "unterminated quote")]
    assert items[1] == (2, {"a": "5", "b": "6"})


def test_line_numbers_after_an_unterminated_quote(tmp_path: Path) -> None:
    data = b'a,b\n1,"x\n2,2\n3\n4,4\n'
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert problems(items) == [(1, 2, "unterminated quote"), (3, 4, "expected 2 fields, found 1")]
    assert rows(items)[-1] == {"a": "4", "b": "4"}


def test_tsv_unterminated_quote(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.tsv", b'a\tb\n"1\t2\n3\t4\n'))
    assert problems(items) == [(1, 2, "unterminated quote")]
    assert items[1] == (2, {"a": "3", "b": "4"})


def test_stray_quote_is_a_problem_and_reading_continues(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.csv", b'a,b\n"x"y,2\n3,4\n'))
    assert len(items) == 2
    assert problems(items)[0][:2] == (1, 2)
    assert items[1] == (2, {"a": "3", "b": "4"})


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        open_source(write(tmp_path, "in.csv", b""))


@pytest.mark.parametrize("data", [b"\n", b"\r\n", b"\n\n"])
def test_only_blank_lines_is_empty(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InputError, match="empty"):
        open_source(write(tmp_path, "in.csv", data))


def test_leading_blank_lines_before_the_header_are_skipped(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.csv", b"\n\r\na,b\n1,2\n"))
    assert rows(items) == [{"a": "1", "b": "2"}]


def test_duplicate_header_names(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="more than once: a"):
        open_source(write(tmp_path, "in.csv", b"a,b,a\n1,2,3\n"))


def test_a_column_without_a_name_is_left_out(tmp_path: Path) -> None:
    # pandas' to_csv writes its index so (",a,b"); the run was refused. Such a column
    # cannot be named: it is counted in each row's fields, and no template sees it.
    source = open_source(write(tmp_path, "in.csv", b",a,,b\n0,1,x,2\n1,3,y\n"))
    try:
        assert source.columns == {"a", "b"}
        items = list(source.items)
    finally:
        source.close()
    assert {k: v for k, v in items[0][1].items() if k} == {"a": "1", "b": "2"}
    assert problems(items) == [(2, 3, "expected 4 fields, found 3")]


def test_header_with_unbalanced_quote(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        open_source(write(tmp_path, "in.csv", b'"a,b\n'))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_source(str(tmp_path / "nope.csv"))


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="directory"):
        open_source(str(tmp_path / "dir.csv"))


def test_input_error_is_a_usage_error() -> None:
    assert issubclass(InputError, UsageError)


def test_latin1_input_needs_an_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "name,n\ncaf\xe9,1\nna\xefve,2\n".encode("latin-1"))
    # Read as UTF-8, each undecodable line is one error row naming its line.
    _, items = read_all(path)
    assert [(n, p.line) for n, p in items if isinstance(p, InputProblem)] == [(1, 2), (2, 3)]
    assert all("encoding" in p.message for _, p in items if isinstance(p, InputProblem))
    _, items = read_all(path, encoding="latin-1")
    assert rows(items) == [{"name": "caf\xe9", "n": "1"}, {"name": "na\xefve", "n": "2"}]


def test_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown encoding"):
        open_source(write(tmp_path, "in.csv", b"a\n1\n"), encoding="no-such-codec")


def test_gzipped_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv.gz", gzip.compress(b"a,b\n1,2\n"))
    source, items = read_all(path)
    assert source.fmt == "csv"
    assert rows(items) == [{"a": "1", "b": "2"}]


def test_a_record_over_several_lines_is_named_by_its_first_line_and_its_span(
    tmp_path: Path,
) -> None:
    # A stray quote on line 4, "closed" by an unrelated one on line 12: lines 4-12 are one
    # record (as any CSV reader sees it); its error row says so, from where it began.
    lines = ["a,b", "1,x", "2,x", '"stray,3', *(f"{i},y" for i in range(5, 12))]
    lines.append('it\'s "q" here,12')
    _, items = read_all(write(tmp_path, "in.csv", ("\n".join([*lines, "13,z"]) + "\n").encode()))
    (n, line, why), = problems(items)
    assert (n, line) == (3, 4)
    assert why.startswith("malformed CSV: ")
    assert why.endswith("(a quoted field opened on this line makes it one record with the "
                        "next 8 lines)")  # fmt: skip
    assert rows(items)[-1] == {"a": "13", "b": "z"}  # reading goes on after it
    _, items = read_all(write(tmp_path, "more.csv", b'a,b\n1,2\n3,"x\ny\nz",4\n5,6\n'))
    assert problems(items) == [(2, 3, "expected 2 fields, found 3 (a quoted field opened on this "
                                "line makes it one record with the next 2 lines)")]  # fmt: skip


def test_a_gzip_that_cannot_be_read_is_one_input_error(tmp_path: Path) -> None:
    not_gzip = write(tmp_path, "plain.csv.gz", b"a,b\n1,2\n")
    with pytest.raises(InputError, match=r"^cannot read input '.*plain\.csv\.gz': Not a gzip"):
        open_source(not_gzip)
    whole = gzip.compress(b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(100_000)))
    cut = write(tmp_path, "cut.csv.gz", whole[: len(whole) // 2])
    source = open_source(cut)  # the header reads fine: the end is missing
    with pytest.raises(InputError, match=r"^cannot read input '.*cut\.csv\.gz': Compressed file"):
        list(source.items)
    assert source.close is not None
    source.close()
    lines = write(tmp_path, "cut.jsonl.gz", whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"^cannot read input '.*cut\.jsonl\.gz'"):
        list(open_source(lines).items)


# -- JSON Lines ------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".jsonl", ".ndjson", ".json"])
def test_jsonl(tmp_path: Path, ext: str) -> None:
    data = b'{"a": 1, "b": {"c": [1]}}\n\n  \n{"a": "x"}\r\n'
    source, items = read_all(write(tmp_path, "in" + ext, data))
    assert source.fmt == "jsonl"
    assert source.columns is None
    assert items == [(1, {"a": 1, "b": {"c": [1]}}), (2, {"a": "x"})]


def test_jsonl_integers_outside_64_bits_stay_exact(tmp_path: Path) -> None:
    # orjson reads them as floats: an id of 23 digits would become 1e+23.
    data = b'{"id": 99999999999999999999999, "n": -9223372036854775809}\n{"f": 1.5}\n'
    _, items = read_all(write(tmp_path, "in.jsonl", data))
    big = {"id": 99999999999999999999999, "n": -9223372036854775809}
    assert items == [(1, big), (2, {"f": 1.5})]


def test_jsonl_problems(tmp_path: Path) -> None:
    data = b'{"a": 1}\nnot json\n[1, 2]\n"str"\n{"b": 2}\n'
    _, items = read_all(write(tmp_path, "in.jsonl", data))
    assert [n for n, _ in items] == [1, 2, 3, 4, 5]
    assert items[0] == (1, {"a": 1})
    assert items[4] == (5, {"b": 2})
    found = problems(items)
    assert [(n, line) for n, line, _ in found] == [(2, 2), (3, 3), (4, 4)]
    assert found[0][2].startswith("not JSON")
    assert found[1][2] == "not a JSON object but list"
    assert found[2][2] == "not a JSON object but str"


def test_jsonl_problems_say_where_in_the_line(tmp_path: Path) -> None:
    # orjson counts the line break: a line cut short said "line 2 column 1 (char 9)"
    # inside "input: line 1: ...", naming a line that is not there.
    data = b'{"a": 1\n{"a": x}\n{"\xc3\xa9": 1e400}\n'
    _, items = read_all(write(tmp_path, "in.jsonl", data))
    assert [text for _, _, text in problems(items)] == [
        "not JSON: unexpected end of data at the end of the line",
        "not JSON: unexpected character, expected a JSON value at column 7",
        "not JSON: number is infinity when parsed as double at column 7",
    ]


def test_jsonl_undecodable_bytes_say_so(tmp_path: Path) -> None:
    # orjson's words were "str is not valid UTF-8: surrogates not allowed" for a \xff byte.
    _, items = read_all(write(tmp_path, "in.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n'))
    assert problems(items) == [(2, 2, "undecodable bytes (say --encoding)")]


@pytest.mark.parametrize("name", ["in.csv", "in.tsv", "in.jsonl", "in.txt", "in.csv.gz"])
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_are_one_clear_error(tmp_path: Path, name: str, codec: str) -> None:
    # Excel's "Unicode Text" is UTF-16 with a byte order mark: the header was "not valid text
    # in this encoding; say --encoding", and --encoding utf-16 is refused; JSON Lines gave a
    # "not JSON" row per line, a URL list garbled requests.
    text = "id,q\n1,a\n" if name != "in.jsonl" else '{"id": 1}\n'
    data = ("\ufeff" + text).encode(codec) if codec.endswith("-be") else text.encode(codec)
    if name.endswith(".gz"):
        data = gzip.compress(data)
    path = write(tmp_path, name, data)
    with pytest.raises(InputError) as caught:
        open_source(path)
    wide = "UTF-32" if codec == "utf-32" else "UTF-16"
    assert str(caught.value) == (
        f"input {path!r} is {wide} text (it starts with a {wide} byte order mark); "
        f"only UTF-8 and other ASCII-compatible encodings are read: convert it, e.g. "
        f"iconv -f {wide} -t UTF-8 FILE > FILE.utf8"
    )


def test_utf16_on_standard_input_is_one_clear_error() -> None:
    with pytest.raises(InputError, match=r"^standard input \(-\) is UTF-16 text"):
        check_stdin_start("id,q\n".encode("utf-16")[:4])
    check_stdin_start(b"id,q")  # UTF-8, with or without its BOM, is read
    check_stdin_start(b"\xef\xbb\xbfi")


def test_jsonl_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.jsonl", b"\n\n{}\n\nnope\n"))
    assert items[0] == (1, {})
    assert problems(items)[0][:2] == (2, 5)


def test_jsonl_undecodable_line_is_one_problem(tmp_path: Path) -> None:
    _, items = read_all(write(tmp_path, "in.jsonl", b'{"a": 1}\n\xff\xfe\n{"b": 2}\n'))
    assert items[0] == (1, {"a": 1})
    assert problems(items)[0][:2] == (2, 2)
    assert items[2] == (3, {"b": 2})


def test_csv_undecodable_row_after_the_first_block(tmp_path: Path) -> None:
    data = b"a,b\n" + b"1,2\n" * 5000 + b"\xff,3\n" + b"4,5\n" * 10
    _, items = read_all(write(tmp_path, "big.csv", data))
    assert len(items) == 5011
    assert problems(items)[0][:2] == (5001, 5002)


UNDECODABLE = "undecodable bytes (say --encoding)"


@pytest.mark.parametrize("sep", [",", "\t"])
def test_undecodable_bytes_in_a_quoted_cell_make_its_record_one_problem(
    tmp_path: Path, sep: str
) -> None:
    # Line 3, inside the quoted cell of the record on lines 2-4, is not UTF-8: the
    # record is one error row naming its first line (it was sent, a stand-in for
    # line 3 in its cell), and the rows after it keep their lines.
    ext = ".csv" if sep == "," else ".tsv"
    data = f'id{sep}v\n1{sep}"a\n\xff\nb"\n2{sep}c\n'.encode("latin-1")
    source, items = read_all(write(tmp_path, "in" + ext, data))
    span = " (a quoted field opened on this line makes it one record with the next 2 lines)"
    assert problems(items) == [(1, 2, UNDECODABLE + span)]
    assert items[1] == (2, {"id": "2", "v": "c"})
    assert source.lines is not None
    assert source.lines.line_of(2) == 5


def test_undecodable_bytes_on_the_line_opening_a_quote_keep_the_quote(tmp_path: Path) -> None:
    # The quote opened on the undecodable line 2 still makes lines 2-3 one record:
    # its rest, 'b,c"', used to be read as a row of its own (2 records, 3 rows).
    _, items = read_all(write(tmp_path, "in.csv", b'id,v\n1,"caf\xe9\nb,c"\n2,d\n'))
    span = " (a quoted field opened on this line makes it one record with the next 1 line)"
    assert problems(items) == [(1, 2, UNDECODABLE + span)]
    assert items[1] == (2, {"id": "2", "v": "d"})


def test_undecodable_bytes_outweigh_what_else_is_wrong_with_the_record(tmp_path: Path) -> None:
    data = b'a,b\n\xff\n1,2\n\xff,\xfe,3\n4,"x\n\xff"y\n5,6\n'
    _, items = read_all(write(tmp_path, "in.csv", data))
    span = " (a quoted field opened on this line makes it one record with the next 1 line)"
    assert problems(items) == [
        (1, 2, UNDECODABLE),  # one field of two
        (3, 4, UNDECODABLE),  # three fields
        (4, 5, UNDECODABLE + span),  # malformed: a closing quote followed by 'y'
    ]
    assert items[1] == (2, {"a": "1", "b": "2"})
    assert items[4] == (5, {"a": "5", "b": "6"})


def test_undecodable_bytes_after_an_unterminated_quote_are_read_again(tmp_path: Path) -> None:
    # The quote on line 2 never closes: the lines after it are read again as rows,
    # the undecodable one among them an error row of its own.
    data = b'a,b\n1,"x\n2,y\n3,\xff\n4,z\n'
    _, items = read_all(write(tmp_path, "in.csv", data))
    assert problems(items) == [(1, 2, "unterminated quote"), (3, 4, UNDECODABLE)]
    assert [items[1], items[3]] == [(2, {"a": "2", "b": "y"}), (4, {"a": "4", "b": "z"})]


def test_an_undecodable_header_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^the header line is not valid text in this encoding"):
        read_all(write(tmp_path, "in.csv", b"i\xffd,v\n1,2\n"))
    with pytest.raises(InputError, match=r"^the header line is not valid text in this encoding"):
        read_all(write(tmp_path, "in.csv", b'"i\nd\xff",v\n1,2\n'))  # on its second line


#: A cell's text: ``ÿ`` and ``é`` are written as Latin-1 bytes, not valid UTF-8.
LATIN1_FIELD = st.text(alphabet=st.sampled_from(list('ab,"\n \xff\xe9')), max_size=6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.tuples(st.integers(0, 2), st.lists(LATIN1_FIELD, min_size=2, max_size=2)),
        min_size=1,
        max_size=12,
    ),
    block=st.sampled_from([1, 3, 7, 64, 1 << 16]),
    step=st.sampled_from([1, 2, 32]),
)
def test_a_record_with_undecodable_bytes_is_one_problem_whatever_the_blocks(
    tmp_path: Path, records: list[tuple[int, list[str]]], block: int, step: int
) -> None:
    # Read as Latin-1 the file is the table csv.writer wrote; read as UTF-8 each
    # record holding a Latin-1 byte is one error row naming its first line, and
    # every other row is read as it was written, from its own line.
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["a", "b"])
    starts: list[int] = []
    for blanks, fields in records:
        out.write("\n" * blanks)
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(fields)
    path = write(tmp_path, "l.csv", out.getvalue().encode("latin-1"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("drumfire._sources._BLOCK", block)
        mp.setattr("drumfire._sources._STEP", step)
        _, as_latin1 = read_all(path, encoding="latin-1")
        source, items = read_all(path)
    assert rows(as_latin1) == [{"a": a, "b": b} for _, (a, b) in records]
    assert len(items) == len(records)
    assert source.lines is not None
    for (n, row), start, (_, fields) in zip(items, starts, records, strict=True):
        if any(c in "".join(fields) for c in "\xff\xe9"):
            assert isinstance(row, InputProblem)
            assert (row.line, row.message.startswith(UNDECODABLE)) == (start, True)
        else:
            assert row == {"a": fields[0], "b": fields[1]}
            assert source.lines.line_of(n) == start


def test_records_past_the_no_line_mark_are_read_the_same(tmp_path: Path) -> None:
    # Past _NO_LINE (2**30 lines) every record takes the slower branch: read the same.
    data = b'a,b\n1,2\n\n"3\n",4\n5\n\xff,6\n7,8\n'
    path = write(tmp_path, "in.csv", data)
    _, reference = read_all(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("drumfire._sources._NO_LINE", 2)
        source, items = read_all(path)
    assert [(n, repr(r)) for n, r in items] == [(n, repr(r)) for n, r in reference]
    assert source.lines is not None
    assert [source.lines.line_of(n) for n in (1, 2, 5)] == [2, 4, 8]


# -- text URL lists ------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".txt", ".urls", ".list"])
def test_text_url_list(tmp_path: Path, ext: str) -> None:
    data = b"# a comment\nhttp://a/1\n\n   \n  https://b/2  \r\n  # indented comment\nhttp://c/3"
    source, items = read_all(write(tmp_path, "in" + ext, data))
    assert source.fmt == "text"
    assert source.columns == frozenset({"url"})
    assert items == [
        (1, {"url": "http://a/1"}),
        (2, {"url": "https://b/2"}),
        (3, {"url": "http://c/3"}),
    ]


# -- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.tsv", "tsv"),
        ("a.tab", "tsv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("a.txt", "text"),
        ("a.urls", "text"),
        ("a.list", "text"),
        ("a.csv.gz", "csv"),
        ("dir.d/a.jsonl.gz", "jsonl"),
    ],
)
def test_format_from_extension(name: str, fmt: str) -> None:
    assert format_for(name, None) == fmt


@pytest.mark.parametrize("name", ["a.xyz", "a", "a.gz", "a.csv.bak"])
def test_unknown_extension(name: str) -> None:
    with pytest.raises(InputError, match="--format"):
        format_for(name, None)


def test_explicit_format_wins(tmp_path: Path) -> None:
    source, items = read_all(write(tmp_path, "in.dat", b"a\tb\n1\t2\n"), fmt="tsv")
    assert source.fmt == "tsv"
    assert rows(items) == [{"a": "1", "b": "2"}]
    with pytest.raises(InputError, match="unknown input format"):
        open_source(write(tmp_path, "in.csv", b"a\n"), fmt="xml")


def test_unknown_extension_on_a_real_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot tell the format"):
        open_source(write(tmp_path, "in.xyz", b"a\n1\n"))


# -- count_rows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "with_header", "without_header"),
    [
        (b"", 0, 0),
        (b"a\n", 0, 1),
        (b"a\n1\n2\n", 2, 3),
        (b"a\n1\n2", 2, 3),
        (b"a\r\n1\r\n2\r\n", 2, 3),
        (b"a\n1\n\n2\n", 2, 3),
        (b"a\r\n1\r\n\r\n2\r\n", 2, 3),
    ],
)
def test_count_rows(tmp_path: Path, data: bytes, with_header: int, without_header: int) -> None:
    path = write(tmp_path, "c.csv", data)
    assert count_rows(path, header=True) == with_header
    assert count_rows(path, header=False) == without_header


def test_open_source_counts_only_when_asked(tmp_path: Path) -> None:
    # The command line skips the counting pass when no progress display shows
    # a total: the rows read are the same either way.
    path = write(tmp_path, "in.csv", b"a\n1\n2\n3\n")
    counted, counted_items = read_all(path)
    uncounted, uncounted_items = read_all(path, count=False)
    assert counted.total == 3
    assert uncounted.total is None
    assert uncounted_items == counted_items


@pytest.mark.parametrize(
    ("data", "rows_"),
    [
        (b'a,b\n"x\ny",1\n2,3\n', 2),
        (b'a,b\n"x""\n\ny",1\n2,"3"\n', 2),
        (b'a,b\n"1\n2\n3",4', 1),
        (b'a,b\n"x",1\n\n"y",2\n', 2),
    ],
)
def test_count_rows_counts_records_not_lines(tmp_path: Path, data: bytes, rows_: int) -> None:
    path = write(tmp_path, "q.csv", data)
    assert count_rows(path, header=True, quoted=True) == rows_
    source, items = read_all(path)
    assert source.total == rows_ == len(items)


def test_count_rows_across_blocks(tmp_path: Path) -> None:
    # A quoted field that spans the 4 MiB block boundary.
    big = b"x\n" * (3 << 20)
    data = b'a,b\n1,"' + big + b'"\n2,3\n'
    path = write(tmp_path, "big.csv", data)
    assert count_rows(path, header=True, quoted=True) == 2


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("c.csv", b"id\na\n\n\nb\n"),  # a run of blank lines
        ("c.csv", b"id\r\na\r\n\r\n\r\n\r\nb\r\n"),
        ("c.csv", b"\n\nid\na\n \t\nb\n  "),  # blank before the header, white space alone
        ("c.csv", b'\xef\xbb\xbfid,v\na,"x\n\n\ny"\n\n\nb,"\n"\n'),  # quoted blank lines
        ("c.jsonl", b'{"id": 1}\n\n\n  \n{"id": 2}\n'),
        ("c.txt", b"# urls\nhttp://a/1\n\n\n  # off\nhttp://a/2\n#"),
    ],
)
def test_count_rows_skips_the_lines_the_readers_skip(
    tmp_path: Path, name: str, data: bytes
) -> None:
    # The progress bar's total: runs of blank lines were counted as rows (the bar
    # ended at 2/3), as were white space alone and a text list's comments.
    path = write(tmp_path, name, data)
    source, items = read_all(path)
    assert source.total == len(items) == 2


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["1", "", " ", "\t", '"x\n\ny"', "# c", "2,3"]), max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from(["c.csv", "c.txt"]),
)
def test_count_rows_is_the_rows_read(lines: list[str], end: str, name: str) -> None:
    if name == "c.txt":
        lines = [line for line in lines if '"' not in line]
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), name, ("id" + end + end.join(lines)).encode())
        source, items = read_all(path)
    assert source.total == len(items)


def test_count_rows_not_a_file(tmp_path: Path) -> None:
    assert count_rows(str(tmp_path / "missing.csv"), header=True) is None
    assert count_rows(str(tmp_path), header=True) is None


# -- rows_source -----------------------------------------------------------------------


def test_rows_source_dicts() -> None:
    data = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    source = rows_source(data)
    assert source.fmt == "rows"
    assert source.columns == frozenset({"a", "b"})
    assert source.total == 2
    assert list(source.items) == [(1, data[0]), (2, data[1])]


def test_rows_source_strings() -> None:
    source = rows_source(["http://a/", "http://b/"])
    assert source.columns == frozenset({"url"})
    assert list(source.items) == [(1, {"url": "http://a/"}), (2, {"url": "http://b/"})]


def test_rows_source_generator_has_no_total() -> None:
    def gen() -> Iterator[dict[str, int]]:
        for i in range(3):
            yield {"i": i}

    source = rows_source(gen())
    assert source.total is None
    assert source.columns == frozenset({"i"})
    assert list(source.items) == [(1, {"i": 0}), (2, {"i": 1}), (3, {"i": 2})]


def test_rows_source_empty() -> None:
    source = rows_source([])
    assert source.total == 0
    assert list(source.items) == []
    assert rows_source(iter([])).total == 0


def test_rows_source_bad_first_row() -> None:
    with pytest.raises(InputError, match="not int"):
        rows_source([1, 2])


def test_rows_source_bad_later_row_is_a_problem() -> None:
    items = list(rows_source([{"a": 1}, 5, "http://x"]).items)
    assert items[0] == (1, {"a": 1})
    assert isinstance(items[1][1], InputProblem)
    assert items[1][0] == 2
    assert "int" in items[1][1].message
    assert items[2] == (3, {"url": "http://x"})


def test_rows_source_bad_row_takes_the_right_article() -> None:
    # `rows = [{...}, ...]` copied literally: the second row is the Ellipsis.
    items = list(rows_source([{"a": 1}, ..., [1], 2]).items)
    assert problems(items) == [
        (2, 2, "row is an ellipsis, not a mapping"),
        (3, 3, "row is a list, not a mapping"),
        (4, 4, "row is an int, not a mapping"),
    ]


def test_rows_source_pandas() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    source = rows_source(frame)
    assert source.fmt == "frame"
    assert source.total == 2
    assert source.columns == frozenset({"a", "b"})
    assert [(n, dict(r)) for n, r in source.items] == [
        (1, {"a": 1, "b": "x"}),
        (2, {"a": 2, "b": "y"}),
    ]


def test_a_dataframe_naming_a_column_twice_is_one_line() -> None:
    """The last of two same-named columns was sent and the other never, silently
    (``1`` and ``"1"`` too: a template names both ``{1}``), where a CSV header
    naming a column twice is refused."""
    pd = pytest.importorskip("pandas")
    for names, dupe in ((["a", "b", "a"], "'a'"), ([1, "1"], "'1'")):
        frame = pd.DataFrame([[1, 2, 3][: len(names)]], columns=names)
        message = f"^the DataFrame names columns more than once: {dupe};"
        with pytest.raises(InputError, match=message):
            rows_source(frame)


def test_a_float32_dataframe_column_gives_its_shortest_decimal() -> None:
    """pandas hands a float32 column's values out as the float64 of their bits:
    1.1 was sent as 1.100000023841858, where pandas' to_csv writes 1.1 and a Parquet
    float32 column is read as 1.1."""
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    values = np.array([1.1, 0.1, float("nan"), -2.5e-7], dtype=np.float32)
    frame = pd.DataFrame({"f": values, "d": [1.1, 0.1, 0.2, 0.3]})
    rows = [row for _, row in rows_source(frame).items]
    assert [r["f"] for r in rows[:2]] == [1.1, 0.1]
    assert rows[2]["f"] != rows[2]["f"]  # NaN stays a number (see the README)
    assert rows[3]["f"] == -2.5e-7
    assert [type(r["f"]) for r in rows] == [float] * 4
    assert [r["d"] for r in rows] == [1.1, 0.1, 0.2, 0.3]


def test_a_parquet_input_naming_a_column_twice_is_one_line(tmp_path: Path) -> None:
    """As a DataFrame's: one of two same-named Parquet columns was sent, the other
    never, silently. A file of a dataset directory is named."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    names = ["id", "x", "x"]
    dup = pa.table([pa.array(["1"]), pa.array(["a"]), pa.array(["b"])], names=names)
    pq.write_table(dup, tmp_path / "dup.parquet")
    twice = r"^input '.*dup\.parquet' names columns more than once: 'x';"
    with pytest.raises(InputError, match=twice):
        open_source(str(tmp_path / "dup.parquet"), "parquet", count=False)
    folder = tmp_path / "set"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["1"], "x": ["a"]}), folder / "a.parquet")
    pq.write_table(dup, folder / "b.parquet")
    with pytest.raises(InputError, match=r"^input '.*b\.parquet' names columns more than once"):
        open_source(str(folder), "parquet", count=False)


def test_rows_source_frame_like_object() -> None:
    """Duck-typed like a DataFrame (to_dict, columns, itertuples): no pandas needed."""

    class Frame:
        columns = ("a", 0)

        def to_dict(self) -> None:  # only its presence matters
            raise AssertionError

        def __len__(self) -> int:
            return 2

        def itertuples(self, index: bool, name: None) -> Iterator[tuple[Any, ...]]:
            assert index is False
            assert name is None
            yield from [(1, "x"), (2, "y")]

    source = rows_source(Frame())
    assert source.columns == frozenset({"a", "0"})
    assert source.total == 2
    assert list(source.items) == [(1, {"a": 1, "0": "x"}), (2, {"a": 2, "0": "y"})]


# -- arbitrary bytes never crash a source -----------------------------------------------


def _consume(path: str) -> None:
    try:
        source = open_source(path)
    except InputError:
        return
    try:
        for item in source.items:
            assert isinstance(item, tuple)
            n, row = item
            assert type(n) is int
            assert n >= 1
            assert isinstance(row, Mapping | InputProblem)
    finally:
        source.close()


BYTES = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"a",
                b",",
                b"\t",
                b'"',
                b"\n",
                b"\r",
                b"{",
                b"}",
                b"\xff",
                b"\xef\xbb\xbf",
                b"\x00",
                b'{"a":1}',
                b"[1]",
                b" ",
                b":",
                b"\xc3\xa9",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=BYTES, ext=st.sampled_from([".csv", ".tsv", ".jsonl", ".txt"]))
def test_arbitrary_bytes_never_crash(tmp_path: Path, data: bytes, ext: str) -> None:
    path = tmp_path / ("fuzz" + ext)
    path.write_bytes(data)
    _consume(str(path))


# -- what the CSV reader gets, whatever the blocks ---------------------------------------

FIELD = st.text(alphabet=st.sampled_from(list('ab,"\n\r é')), max_size=8)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    table=st.lists(st.lists(FIELD, min_size=2, max_size=2), min_size=1, max_size=12),
    block=st.sampled_from([1, 3, 7, 64, 1 << 16]),
    step=st.sampled_from([1, 2, 32]),
)
def test_written_csv_reads_back_exactly(
    tmp_path: Path, table: list[list[str]], block: int, step: int
) -> None:
    # Whatever csv.writer writes (quotes, line breaks in cells...) comes back
    # as the same rows, however the input is cut into blocks and groups.
    out = io.StringIO()
    writer = csv.writer(out)  # "\r\n" line ends: cells with \r or \n are quoted
    writer.writerow(["a", "b"])
    writer.writerows(table)
    path = write(tmp_path, "w.csv", out.getvalue().encode())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("drumfire._sources._BLOCK", block)
        mp.setattr("drumfire._sources._STEP", step)
        _, items = read_all(path)
    assert problems(items) == []
    assert rows(items) == [{"a": x, "b": y} for x, y in table]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(st.sampled_from([b"1,2\n", b'"x\n', b'3,"y"\n', b"\n", b'a"b,c\n']), max_size=30),
    block=st.sampled_from([1, 5, 1 << 16]),
)
def test_blocks_do_not_change_what_is_read(tmp_path: Path, data: list[bytes], block: int) -> None:
    # Quotes that run past 3 lines are cut; the blocks the input is read in
    # change nothing in the items.
    path = write(tmp_path, "b.csv", b"a,b\n" + b"".join(data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("drumfire._sources.QUOTE_MAX_LINES", 3)
        mp.setattr("drumfire._sources._STEP", 1)
        _, reference = read_all(path)
        mp.setattr("drumfire._sources._BLOCK", block)
        _, items = read_all(path)
    assert [(n, repr(r)) for n, r in items] == [(n, repr(r)) for n, r in reference]


def test_the_start_of_standard_input_is_peeked_and_left_in_place() -> None:
    import os

    read_end, write_end = os.pipe()
    with open(read_end, "rb") as reader, open(write_end, "wb") as writer:
        writer.write(b"\x1f\x8b\x08\x00rest")
        writer.close()
        assert stdin_start(reader) == b"\x1f\x8b\x08\x00"
        assert reader.read() == b"\x1f\x8b\x08\x00rest"  # nothing was consumed
    assert stdin_start(io.StringIO("no peek")) == b""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (b"PAR1", r"^standard input \(-\) holds Parquet, which drumfire reads only from a path"),
        (b"\x1f\x8b\x08", r"^standard input \(-\) is gzip-compressed: give the file's path"),
    ],
)
def test_parquet_or_gzip_on_standard_input_is_refused(start: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        check_stdin_start(start)
    assert "\n" not in str(info.value)
    for text in (b"id,q\n", b"PAR", b"\x1f", b"", b'{"a": 1}\n'):
        check_stdin_start(text)  # text, or too little to tell: read as before


# -- the line each row starts on (template error rows name it) ------------------------


def test_line_map_keeps_only_where_the_shift_changes() -> None:
    lines = LineMap()
    assert lines.line_of(1) is None  # nothing read yet
    for n, line in [(1, 2), (2, 3), (3, 5), (4, 6), (5, 9)]:
        lines.mark(n, line)
    assert [lines.line_of(n) for n in range(1, 8)] == [2, 3, 5, 6, 9, 10, 11]
    assert lines.between(2, 4) == [(1, 2), (3, 5)]  # the mark in force at row 2, then row 3's
    other = LineMap()
    other.extend(lines.between(4, 7))
    assert [other.line_of(n) for n in range(4, 8)] == [6, 9, 10, 11]
    lines.moved(100, 1000)  # a --cluster part: 100 rows and 1000 lines before it
    assert lines.line_of(103) == 1005
    assert lines.between(103, 103) == [(103, 1005)]


def test_line_map_forgets_the_oldest_changes_past_its_limit(monkeypatch: Any) -> None:
    monkeypatch.setattr(LineMap, "LIMIT", 4)
    lines = LineMap()
    for n in range(1, 7):
        lines.mark(n, 2 * n)  # every row one line further: a change at each
    assert lines.line_of(1) is None  # forgotten: the error row names the row number
    assert lines.line_of(6) == 12


def test_each_row_knows_its_first_line(tmp_path: Path) -> None:
    data = b'id,v\n1,a\n\n2,"x\ny"\n3,b\n\n\n4,"p\nq\nr"\n5,c\n'
    source, items = read_all(write(tmp_path, "in.csv", data))
    assert source.lines is not None
    assert [source.lines.line_of(n) for n, _ in items] == [2, 4, 6, 9, 12]
    data = b'{"v": 1}\n\n{"v": 2}\nnot json\n\n{"v": 3}\n'
    source, items = read_all(write(tmp_path, "in.jsonl", data))
    assert source.lines is not None
    assert [source.lines.line_of(n) for n, r in items if not isinstance(r, InputProblem)] == [
        1,
        3,
        6,
    ]
    data = b"# urls\nhttp://a/1\n\nhttp://a/2\n"
    source, items = read_all(write(tmp_path, "in.txt", data))
    assert source.lines is not None
    assert [source.lines.line_of(n) for n, _ in items] == [2, 4]
    assert rows_source([{"v": 1}]).lines is None  # rows, not lines


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.tuples(
            st.integers(0, 2),  # blank lines before the record
            st.text(alphabet="ab,\n\"", max_size=6),  # a value, quoted when it must be
        ),
        max_size=30,
    )
)
def test_a_csv_rows_line_is_where_its_record_starts(tmp_path: Path, records: Any) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "v"])
    starts: list[int] = []
    for i, (blanks, value) in enumerate(records):
        out.write("\n" * blanks)
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow([f"r{i}", value])
    source, items = read_all(write(tmp_path, "in.csv", out.getvalue().encode()))
    assert source.lines is not None
    assert [source.lines.line_of(n) for n, _ in items] == starts


def test_lines_ended_by_a_lone_cr_are_named_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"carriage return \(CR\) that does not end a line.*tr"):
        read_all(write(tmp_path, "mac.csv", b"id,v\r1,a\r2,b\r"))
    _, items = read_all(write(tmp_path, "in.csv", b"id,v\n1,a\rb\n2,c\n"))
    assert problems(items) == [
        (1, 2, "malformed CSV: a carriage return (CR) inside an unquoted field (quote the field)")
    ]
    assert items[1] == (2, {"id": "2", "v": "c"})


def test_count_rows_across_blocks_skips_blank_lines_and_reads_a_file_without_newlines(
    tmp_path: Path,
) -> None:
    # Blank lines on both sides of the 4 MiB block boundaries; and a file whose lines end in
    # a lone CR (no newline at all, 24 MiB): counted in one pass, not block by block again.
    many = 2_000_000
    path = write(tmp_path, "blank.csv", b"id\n" + b"x\n\n\n" * many)
    assert count_rows(path, header=True, quoted=True) == many
    path = write(tmp_path, "cr.csv", b"id\r" + b"1,2,3\r" * (4 << 20))
    assert count_rows(path, header=True, quoted=True) == 0
    assert count_rows(path, header=False) == 1


def _across(lines: list[bytes], head: bytes, tail: bytes) -> bytes:
    """``head``, then rows, each line of ``lines`` cut in two by a 4 MiB block boundary
    (the one after the line's first two bytes), then ``tail``."""
    block = 1 << 22
    data = bytearray(head)
    for line in lines:
        gap = (len(data) // block + 1) * block - 2 - len(data)  # to 2 bytes before it
        if gap % 2:
            data += b"ab\n"
            gap -= 3
        data += b"a\n" * (gap // 2)
        assert len(data) % block == block - 2
        data += line
    return bytes(data + tail)


@pytest.mark.parametrize(
    ("name", "lines", "tail"),
    [
        ("c.csv", [b"    \n"], b"b\n"),  # white space alone, across the boundary
        ("c.csv", [b"\r\n", b" \t \r\n", b"    \n"], b"b\n"),  # at three boundaries
        ("c.csv", [b'"x\n\n",1\n', b"    \n"], b"b\n"),  # quoted, then blank
        ("c.txt", [b"  # off\n", b"    \n"], b"http://a/2\n"),  # a comment across it
        ("c.jsonl", [b"    \n"], b'{"id": 2}\n'),
        ("c.csv", [b"  x \n"], b""),  # a row across it is one
        ("c.csv", [b"x" + b" " * (5 << 20)], b""),  # the last line's, white space at its end
        ("c.csv", [b"    " + b" " * (5 << 20)], b""),  # the last line, all white space
    ],
)
def test_count_rows_skips_a_blank_line_across_a_block_boundary(
    tmp_path: Path, name: str, lines: list[bytes], tail: bytes
) -> None:
    # The bar's total counted a line of white space as a row when a 4 MiB block boundary
    # fell inside it (the line's start was in one block, checked in neither): the bar
    # ended one short of its total per such boundary.
    head = b"id\n" if name == "c.csv" else b""
    path = write(tmp_path, name, _across(lines, head=head, tail=tail))
    source, items = read_all(path, count=True)
    assert source.total == len(items)

"""The cuts of ``--cluster``: read part by part, an input gives exactly the items it gives whole."""

from __future__ import annotations

from codecs import BOM_UTF8
from pathlib import Path
from typing import Any

import pytest

from drumfire import InputError
from drumfire._cluster import open_part, plan_parts
from drumfire._rows import InputProblem
from drumfire._sources import open_source


def items(source: Any) -> list[tuple[int, Any]]:
    out = []
    for n, row in source.items:
        out.append((n, (row.line, row.message) if isinstance(row, InputProblem) else row))
    if source.close is not None:
        source.close()
    return out


def write_messy(path: Path) -> None:
    lines = ["key,q"]
    for i in range(3000):
        if i % 11 == 0 and not 500 <= i < 1600:  # none while the runaway is open
            lines.append(f'k{i},"two\nlines, ""{i}"""')
        elif i == 500:
            lines.append(f'k{i},"runaway')  # unterminated, over 1000 lines before EOF
        elif i == 2990:
            lines.append(f'k{i},"to the end')  # unterminated, runs to the end
        elif i == 2000:  # a document of 1,200 lines in one cell: closed, so one row
            lines.append(f'k{i},"' + "\n".join(f'doc, ""{j}""' for j in range(1200)) + '"')
        elif i % 97 == 0:
            lines.append(f"k{i},a,b")  # a wrong field count
        elif i % 101 == 0:
            lines.append("")  # blank
        else:
            lines.append(f"k{i},v{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("size", [700, 4096, 1 << 30])
def test_parts_read_the_same_items_as_the_whole_file(tmp_path: Path, size: int) -> None:
    src = tmp_path / "in.csv"
    write_messy(src)
    whole = items(open_source(str(src), "csv", count=False))
    parts = plan_parts(str(src), "csv", size=size)
    if size < 1 << 20:
        assert len(parts) > 5
    got: list[tuple[int, Any]] = []
    for part in parts:
        scratch = tmp_path / f"s{part.index}"
        scratch.mkdir()
        read = items(open_part(part, str(scratch)))
        assert len(read) == part.rows  # the plan counts rows as the reader does
        got.extend(read)
    assert got == whole
    assert sum(p.rows for p in parts) == len(whole)
    document = [row for _, row in whole if isinstance(row, dict) and row["key"] == "k2000"]
    assert [row["q"].count("\n") for row in document] == [1199]


@pytest.mark.parametrize(("delimiter", "encoding"), [(";", "utf-8"), ("\t", "utf-8"),
                                                   ("§", "utf-8"), ("§", "cp1252")])  # fmt: skip
def test_parts_read_with_the_delimiter_give_the_whole_files_items(
    tmp_path: Path, delimiter: str, encoding: str
) -> None:
    # --delimiter on a cluster: where a quote opens a field depends on the delimiter
    # (a quote after a comma is no field start in a ';' CSV), so the cuts follow it,
    # and every part is read with it. '§' is two bytes in UTF-8, one in cp1252; 'é"'
    # ends in a byte that '©' (the UTF-8 of '§' is C2 A7) would share if read by bytes.
    lines = [f"key{delimiter}q{delimiter}r"]
    for i in range(400):
        if i % 9 == 0:  # a quoted cell over two lines, holding the delimiter and ""
            lines.append(f'k{i}{delimiter}"two{delimiter}\nlines ""{i}"""{delimiter}x')
        elif i % 13 == 0:  # a quote after a comma: text, not a quoted field, here
            lines.append(f'k{i}{delimiter}a,"b{delimiter}é"c')
        else:
            lines.append(f"k{i}{delimiter}v{i},w{delimiter}r{i}")
    src = tmp_path / "in.csv"
    src.write_text("\n".join(lines) + "\n", encoding=encoding)
    whole = items(open_source(str(src), "csv", encoding, count=False, delimiter=delimiter))
    assert len(whole) == 400
    assert all(isinstance(row, dict) and len(row) == 3 for _, row in whole)
    parts = plan_parts(str(src), "csv", encoding, size=300, delimiter=delimiter)
    assert len(parts) > 10
    got = [x for p in parts for x in items(open_part(p, str(tmp_path)))]
    assert got == whole
    assert whole[9][1]["q"] == f'two{delimiter}\nlines "9"'


def test_a_delimiter_is_refused_for_an_input_without_fields(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"q": 1}\n')
    with pytest.raises(InputError, match=r"a delimiter separates CSV fields; .* is read as jsonl"):
        plan_parts(str(src), "jsonl", delimiter=";")


def test_jsonl_and_url_lists_cut_at_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"id": "r{i}", "n": {i}}}\n' for i in range(500)) + "nope\n")
    whole = items(open_source(str(src), "jsonl", count=False))
    parts = plan_parts(str(src), "jsonl", size=600)
    got = [x for p in parts for x in items(open_part(p, str(tmp_path)))]
    assert len(parts) > 5
    assert got == whole
    urls = tmp_path / "in.txt"
    urls.write_text("# a comment\n" + "".join(f"http://h/{i}\n\n" for i in range(300)))
    whole = items(open_source(str(urls), "text", count=False))
    parts = plan_parts(str(urls), "text", size=500)
    assert [x for p in parts for x in items(open_part(p, str(tmp_path)))] == whole


def test_parquet_row_groups_read_the_same_items_as_the_whole_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Binary that is not UTF-8 is an input error row: it names the row of the whole input.
    src = tmp_path / "in.parquet"
    values = [b"\xff" if i % 40 == 7 else f"v{i}".encode() for i in range(200)]
    pq.write_table(pa.table({"b": pa.array(values, pa.binary())}), src, row_group_size=30)
    whole = items(open_source(str(src), "parquet", count=False))
    parts = plan_parts(str(src), "parquet", size=1)
    assert len(parts) > 3
    assert [x for p in parts for x in items(open_part(p, str(tmp_path)))] == whole
    assert whole[7] == (8, (8, "column 'b' is binary, not UTF-8 text"))


def test_a_parquet_input_naming_a_column_twice_is_refused_before_any_task(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array(["1"]), pa.array(["2"])], names=["x", "x"]), src)
    with pytest.raises(InputError, match=r"^input '.*dup\.parquet' names columns more than once"):
        plan_parts(str(src), "parquet")


def test_stdin_and_gzip_are_refused(tmp_path: Path) -> None:
    from drumfire import UsageError

    with pytest.raises(UsageError, match="not stdin"):
        plan_parts("-", "csv")
    gz = tmp_path / "in.csv.gz"
    gz.write_bytes(b"")
    with pytest.raises(UsageError, match="decompress"):
        plan_parts(str(gz), "csv")


def test_the_run_limits_are_shared_by_the_task_slots() -> None:
    from drumfire._cluster import split_job
    from drumfire._job import make_job

    job = make_job("http://h/{q}", rate=100.0, concurrency=10, max_concurrency=512)
    task = split_job(job, 3)
    assert task.rate == pytest.approx(100.0 / 3)
    assert task.concurrency == 4  # rounded up: 3 slots never run below the asked total
    assert task.max_concurrency == 171
    adaptive = split_job(make_job("http://h/{q}"), 1000)
    assert adaptive.rate is None
    assert adaptive.concurrency is None
    assert adaptive.max_concurrency == 1


def read_in_parts(path: Path, fmt: str, encoding: str, size: int, **kw: Any) -> list[Any]:
    """The items of ``path`` read part by part; each part gives the rows its plan counts."""
    parts = plan_parts(str(path), fmt, encoding, size=size, **kw)
    assert len(parts) > 2
    got: list[tuple[int, Any]] = []
    for part in parts:
        assert part.first_row == len(got)  # the row numbers of the whole input
        read = items(open_part(part, str(path.parent)))
        assert len(read) == part.rows
        got.extend(read)
    return got


@pytest.mark.parametrize(
    ("lead", "encoding"),
    [(b"\n", "utf-8"), (b"\r\n\n\r\n", "utf-8"), (b'""\n\n', "utf-8"),
     (BOM_UTF8 + b"\n", "utf-8"), (BOM_UTF8 + b"\n", "utf-8-sig"), (b"\n\n", "cp1252"),
     (BOM_UTF8 + b"\n", "latin-1")],
)  # fmt: skip
def test_blank_lines_before_the_header_are_skipped_as_the_reader_skips_them(
    tmp_path: Path, lead: bytes, encoding: str
) -> None:
    # The planner took the first line for the header: after a blank one, every part
    # but the first read its first row as the header (a row lost, and its template's
    # columns missing), while one process reads the file fine.
    src = tmp_path / "in.csv"
    body = "".join(f"{i},x{i}\n" for i in range(1, 201))
    src.write_bytes(lead + b"id,v\n" + body.encode())
    whole = items(open_source(str(src), "csv", encoding, count=False))
    assert len(whole) == 200
    assert read_in_parts(src, "csv", encoding, 600) == whole
    parts = plan_parts(str(src), "csv", encoding, size=600)
    assert {p.header for p in parts} == {b"id,v\n"}
    assert parts[0].first_line == lead.count(b"\n") + 2  # the line after the header


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_header_over_several_lines_is_one_record_for_the_plan(tmp_path: Path, eol: str) -> None:
    # A quoted column name holding line breaks: the planner took the header's first line
    # alone, so every part's reader refused "an unterminated quote" (and the first part
    # counted one row too many), while one process reads the file fine.
    src = tmp_path / "in.csv"
    rows = [f"k{i},a,b" if i % 37 == 0 else f"k{i},v{i}" for i in range(200)]  # some bad
    src.write_bytes(eol.join(['id,"multi', "line", 'name"', *rows, ""]).encode())
    whole = items(open_source(str(src), "csv", count=False))
    assert len(whole) == 200
    assert whole[37] == (38, (41, "expected 2 fields, found 3"))  # line 41 of the file
    assert read_in_parts(src, "csv", "utf-8", 300) == whole
    parts = plan_parts(str(src), "csv", size=300)
    assert parts[0].first_line == 4


def test_a_file_of_blank_lines_plans_one_empty_part(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    # (A line of spaces is no blank line here: the reader takes it for the header.)
    src.write_bytes(b"\n\r\n\n")
    (part,) = plan_parts(str(src), "csv")
    assert (part.rows, part.header, part.start, part.end) == (0, b"", 4, 4)


#: Lines that are white space once decoded, though not all of it ASCII (str.strip
#: drops it, bytes.strip does not), or not even white space as bytes (\x1c-\x1f).
UNICODE_BLANKS = ["\u00a0", "\u3000 \t", "\x1c\x1d\x1e\x1f", "\u0085", "\u2028", " \u00a0\r"]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", None), ("utf-8", "\t"), ("cp1252", ";"), ("latin-1", None), ("gb18030", "\u3000"),
     ("utf-7", None)],
)  # fmt: skip
def test_lines_blank_once_decoded_are_no_rows_in_the_plan(
    tmp_path: Path, encoding: str, delimiter: str | None
) -> None:
    # The planner counted a line of a no-break space as a row, which the reader skips:
    # every later part numbered its rows one too high (the ids of a run without an id
    # column). A blank line holding the delimiter (a tab, U+3000) is a record of empty
    # fields; a line that does not decode is an error row; 'é' and '«' start rows.
    sep = delimiter or ","
    blanks = [b for b in UNICODE_BLANKS if b.encode(encoding, "ignore").decode(encoding) == b]
    assert len(blanks) >= 2
    lines = [f"k{sep}v"]
    for i in range(120):
        row = {3: f"é{i}{sep}«{i}»", 4: f"«{i}»{sep}v{i}"}.get(i % 10, f"k{i}{sep}v{i}")
        lines.append(row)
        if i % 7 == 0:
            lines.append(blanks[i % len(blanks)])
        if i % 31 == 0:
            lines.append(f"\t{sep}  ")
        if i % 37 == 0:
            lines.append("\r\u00a0")  # a carriage return inside a line: an error row
    data = "\n".join(lines).encode(encoding) + b"\n\xff\xfe\n" + b"last,1\n"
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    whole = items(open_source(str(src), "csv", encoding, count=False, delimiter=delimiter))
    assert 120 < len(whole) < 140
    assert read_in_parts(src, "csv", encoding, 200, delimiter=delimiter) == whole


def test_a_line_holding_a_quote_is_a_row_for_the_plan(tmp_path: Path) -> None:
    # '""' is a quoted empty value, not a blank line: csv.writer writes a one-column
    # row with an empty value so. The plan counts it, by the rule of a reader for which
    # a quoted blank value is a value (a change of the reader's own: this pins the
    # planner's half).
    src = tmp_path / "in.csv"
    src.write_text("q\n" + "".join(f"v{i}\n" + ('""\n' if i % 5 == 0 else "") for i in range(20)))
    parts = plan_parts(str(src), "csv", size=30)
    assert len(parts) > 2
    assert sum(p.rows for p in parts) == 24


def test_url_lists_and_json_lines_skip_what_their_readers_skip(tmp_path: Path) -> None:
    # A URL list: a line blank once decoded, or a comment after a no-break space, is
    # no row. JSON Lines tests its bytes: a no-break space is a row (not JSON), a
    # UTF-8 byte order mark alone on the first line is not.
    urls = tmp_path / "in.txt"
    urls.write_text(
        "\ufeff\n"
        + "".join(f"http://h/{i}\n" + ("\u00a0# note\n\u3000\n" if i % 9 == 0 else "")
                  for i in range(100)),
        encoding="utf-8",
    )  # fmt: skip
    whole = items(open_source(str(urls), "text", count=False))
    assert len(whole) == 100
    assert read_in_parts(urls, "text", "utf-8", 200) == whole
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        "\ufeff\n" + "".join(f'{{"n": {i}}}\n' + ("\u00a0\n" if i % 9 == 0 else "")
                             for i in range(100)),
        encoding="utf-8",
    )  # fmt: skip
    whole = items(open_source(str(jsonl), "jsonl", count=False))
    assert len(whole) == 112
    assert read_in_parts(jsonl, "jsonl", "utf-8", 200) == whole


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "text"])
def test_utf16_is_refused_in_one_line_before_it_is_cut(tmp_path: Path, fmt: str) -> None:
    # Cut at the byte "\n", a UTF-16 file would be split inside its characters.
    src = tmp_path / "in.dat"
    src.write_text("q\n1\n2\n", encoding="utf-16")
    with pytest.raises(InputError, match=r"^input '.*in.dat' is UTF-16 text .* iconv -f UTF-16"):
        plan_parts(str(src), fmt)
    with pytest.raises(InputError, match=r"^--encoding utf-16: only ASCII-compatible"):
        plan_parts(str(src), fmt, "utf-16")


def test_utf16_on_an_object_store_is_refused_by_the_plan() -> None:
    # No client-side read of a remote input's header follows the plan: without this
    # refusal every task failed on the workers.
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    with fs.open("/drumfire-plan/in.csv", "wb") as f:
        f.write("q\n1\n".encode("utf-16"))
    try:
        with pytest.raises(InputError, match=r"^input 'memory://drumfire-plan/in.csv' is UTF-16"):
            plan_parts("memory://drumfire-plan/in.csv", "csv")
    finally:
        fs.rm("/drumfire-plan", recursive=True)


#: Pieces of lines for the random files below: white space of all kinds, a lone carriage
#: return, NUL, comment marks, delimiters, letters of one and of several bytes. No quote:
#: a line of '""' is a row to the plan (see above), and becoming one to the reader.
PIECES = ["", " ", "\t", "\u00a0", "\u3000", "\x1c", "\x1f", "\u0085", "\u2028", "\x0b", "\x0c",
          "\r", "a", "é", "«", "#", ",", ";", "1", "Мо", "\x00"]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_random_files_give_the_same_rows_part_by_part(tmp_path: Path, seed: int) -> None:
    # Whatever the lines, the plan counts what the reader reads: each part gives the rows
    # its plan counts, numbered as in the whole file. (Seeded: the same files every run.)
    import random

    rnd = random.Random(seed)
    for trial in range(40):
        encoding = rnd.choice(["utf-8", "utf-8-sig", "cp1252", "latin-1", "gb18030", "shift_jis"])
        fmt = rnd.choice(["csv", "tsv", "text", "jsonl"])
        delimiter = rnd.choice([None, ";", "\t", "\x1f"]) if fmt in ("csv", "tsv") else None
        sep = delimiter or ("\t" if fmt == "tsv" else ",")
        lines = [rnd.choice(["", "\r", "\u00a0"]) for _ in range(rnd.randint(0, 2))]
        if fmt in ("csv", "tsv"):
            lines.append(f"a{sep}b")
        for _ in range(rnd.randint(5, 40)):
            if rnd.random() < 0.5:
                lines.append("".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 4))))
            else:
                lines.append('{"a": 1}' if fmt == "jsonl" else f"x{rnd.randint(0, 9)}{sep}y")
        data = ("\n".join(lines) + rnd.choice(["", "\n"])).encode(encoding, "ignore")
        if rnd.random() < 0.2:
            data += b"\n\xff\xa0\n"  # not UTF-8 (nor Shift_JIS)
        src = tmp_path / f"in{trial}.{fmt}"
        src.write_bytes(data)
        try:
            whole = items(open_source(str(src), fmt, encoding, count=False, delimiter=delimiter))
        except InputError:  # no usable header: nothing to cut
            continue
        got: list[tuple[int, Any]] = []
        for part in plan_parts(str(src), fmt, encoding, size=rnd.choice([10, 40]),
                               delimiter=delimiter):  # fmt: skip
            read = items(open_part(part, str(tmp_path)))
            assert len(read) == part.rows, (trial, data)
            got.extend(read)
        assert got == whole, (trial, data)


def test_a_part_starting_on_an_array_or_a_lone_cr_reads_it_as_the_whole_file_does(
    tmp_path: Path,
) -> None:
    # The input's first line stops the run when it starts a JSON array or holds a CR
    # that does not end it; a later one is its row's error, whichever part it opens.
    src = tmp_path / "in.jsonl"
    odd = ["[1, 2]", "[", '{"id": "a"}\r{"id": "b"}']
    src.write_bytes(
        "".join((odd[i % 3] if i % 5 == 4 else f'{{"id": "r{i}"}}') + "\n" for i in range(200))
        .encode()
    )
    whole = items(open_source(str(src), "jsonl", count=False))
    parts = plan_parts(str(src), "jsonl", size=40)
    assert len(parts) > 20
    assert [x for p in parts for x in items(open_part(p, str(tmp_path)))] == whole
    urls = tmp_path / "in.txt"
    odd_urls = [b"http://h/a\rhttp://h/b\n", b"# note\rhttp://h/c\n", b"# a comment\n"]
    urls.write_bytes(b"".join(odd_urls[i % 3] if i % 4 == 3 else b"http://h/%d\n" % i
                              for i in range(100)))  # fmt: skip
    whole = items(open_source(str(urls), "text", count=False))
    parts = plan_parts(str(urls), "text", size=40)
    assert [x for p in parts for x in items(open_part(p, str(tmp_path)))] == whole


def test_a_gzip_or_parquet_file_named_as_text_is_refused_before_any_task(tmp_path: Path) -> None:
    # As a run in one process refuses it: the plan cut its bytes as lines, and each
    # task named its own scratch copy.
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    packed = tmp_path / "in.csv"
    packed.write_bytes(gzip.compress(b"id,v\n1,a\n"))
    with pytest.raises(InputError, match=r"in\.csv' is gzip-compressed: name it \.gz"):
        plan_parts(str(packed), "csv")
    table = tmp_path / "table.jsonl"
    pq.write_table(pa.table({"v": ["a"]}), table)
    with pytest.raises(InputError, match="is a Parquet file: say --format parquet"):
        plan_parts(str(table), "jsonl")
    text = tmp_path / "par.csv"
    text.write_text("PAR1,v\n1,a\n")  # a header that starts so, in a CSV that ends otherwise
    assert len(plan_parts(str(text), "csv")) == 1

"""The cuts of ``--cluster``: read part by part, an input gives exactly the items it gives whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
    from drumfire import InputError

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

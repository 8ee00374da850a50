"""``--delimiter CHAR`` (``delimiter=``): CSV inputs separated by another character.

Real runs against the demo server on 127.0.0.1; the refusals come before any request.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from cli_errors import one_error_line

import drumfire
from drumfire.demo import DemoServer

CLI = [sys.executable, "-m", "drumfire.cli"]


def cli(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def answers(path: Path) -> list[tuple[str, str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return sorted((r["id"], r["status"], r["x"]) for r in csv.DictReader(f))


def test_a_semicolon_csv_is_read_with_the_delimiter(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text('id;x\na;1,5\nb;"2;3"\n')  # a comma is text; a quoted ; is too
    url = demo_server.base_url + "/echo?x={x}"
    out = tmp_path / "out.csv"
    proc = cli("run", source, "--url", url, "-e", "x=query.x", "--delimiter", ";", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert answers(out) == [("a", "200", "1,5"), ("b", "200", "2;3")]
    # from Python, the path with delimiter=
    result = drumfire.run_all(source, url, extract={"x": "query.x"}, delimiter=";")
    assert sorted((r["id"], r["x"]) for r in result) == [("a", "1,5"), ("b", "2;3")]
    # standard input too
    proc = cli("run", "-", "--url", url, "-e", "x=query.x", "--delimiter", ";", "-o", out, "-q",
               "--overwrite", stdin=source.read_text())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert answers(out) == [("a", "200", "1,5"), ("b", "200", "2;3")]


def test_tsv_defaults_to_a_tab_and_the_delimiter_overrides_it(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    url = demo_server.base_url + "/echo?x={x}"
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\tx\na\t1,5\n")
    out = tmp_path / "out.csv"
    proc = cli("run", tsv, "--url", url, "-e", "x=query.x", "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert answers(out) == [("a", "200", "1,5")]
    piped = tmp_path / "in.txt"  # a tab written as \t, and a .tsv that is not tabbed
    piped.write_text("id|x\na|7\n")
    for name, delimiter in (("in.tsv", "|"), ("in.csv", "|")):
        (tmp_path / name).write_text(piped.read_text())
        proc = cli("run", tmp_path / name, "--url", url, "-e", "x=query.x",
                   "--delimiter", delimiter, "-o", out, "-q", "--overwrite")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert answers(out) == [("a", "200", "7")]
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text("id\tx\nb\t8\n")
    proc = cli("run", tabbed, "--url", url, "-e", "x=query.x", "--delimiter", "\\t", "-o", out,
               "-q", "--overwrite")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert answers(out) == [("b", "200", "8")]


def test_resume_reads_the_ids_with_the_delimiter(demo_server: DemoServer, tmp_path: Path) -> None:
    """The ids pass of a resume opens the input again: with the same delimiter."""
    source = tmp_path / "in.csv"
    source.write_text("id;x\na;1\na;2\nb;3\n")  # a shared id: the ids pass reads the input
    url = demo_server.base_url + "/echo?x={x}"
    out = tmp_path / "out.csv"
    args = ("run", source, "--url", url, "-e", "x=query.x", "--delimiter", ";", "-o", out)
    proc = cli(*args, "-n", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = cli(*args, "--resume")
    assert proc.returncode == 0, proc.stderr
    # read with a comma, the ids would be row numbers, and the output's "a" none of them
    assert "1 row of" in proc.stderr
    assert "with every input row of their ids" in proc.stderr
    assert answers(out) == [("a", "200", "1"), ("a", "200", "2"), ("b", "200", "3")]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (";;", "--delimiter ';;': give one character (';', '|', '\\t' for a tab)"),
        ("", "--delimiter '': give one character"),
        ('"', "--delimiter '\"': the quote, a line break or NUL cannot separate fields"),
        ("\n", "--delimiter '\\n': the quote, a line break or NUL cannot separate fields"),
    ],
)
def test_a_bad_delimiter_is_one_line(tmp_path: Path, value: str, why: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id;u\na;x\n")
    proc = cli("run", source, "--url", "http://127.0.0.1:9/{u}", "--delimiter", value, "-o", "-")
    one_error_line(proc, 2, why)


def test_a_delimiter_for_an_input_without_fields_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"u": "x"}\n')
    url = "http://127.0.0.1:9/{u}"
    proc = cli("run", source, "--url", url, "--delimiter", ";", "-o", "-")
    one_error_line(proc, 2, f"a delimiter separates CSV fields; {str(source)!r} is read as jsonl")
    with pytest.raises(drumfire.UsageError, match=r"^delimiter= applies only when rows is a file"):
        drumfire.run_all([{"u": "x"}], url, delimiter=";")
    with pytest.raises(drumfire.UsageError, match=r"^delimiter=';;': give one character"):
        drumfire.run_all(source, url, delimiter=";;")


def test_a_header_of_one_column_holding_a_separator_says_delimiter(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id;u\na;x\n")
    proc = cli("run", source, "--url", "http://127.0.0.1:9/{u}", "-o", "-")
    line = one_error_line(proc, 2, "(columns: id;u); fields separated by ';'? say --delimiter ';'")
    # each names its own words: the command line was also told "(delimiter=)", and a
    # Python call "say --delimiter ';' (delimiter=)", which it never typed
    assert line.endswith("say --delimiter ';'"), line
    with pytest.raises(drumfire.TemplateError) as info:
        drumfire.run_all(source, "http://127.0.0.1:9/{u}")
    assert str(info.value).endswith("fields separated by ';'? say delimiter=';'"), info.value

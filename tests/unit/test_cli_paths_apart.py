"""A report or summary path that names a file of the run: ``run --summary-json`` naming the
output (``-o``) or the input, ``bench``/``compare`` ``--json`` naming ``--html`` or the input.
Each was written at the end over that file without a word (the results, or the input's rows,
replaced by the figures); now one line, exit 2, before anything is sent or written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from drumfire.cli import main

ROWS = "id,url\n1,http://127.0.0.1:9/a\n"


def _one_line(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def here(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "in.csv").write_text(ROWS)
    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


@pytest.mark.parametrize(
    ("output", "summary", "what"),
    [
        ("out.csv", "out.csv", "the output (-o)"),
        ("out.csv", "./sub/../out.csv", "the output (-o)"),
        ("sqlite:///out.db", "out.db", "the output (-o)"),
        ("out.csv", "in.csv", "the input"),
    ],
)
def test_summary_json_over_the_output_or_the_input_is_refused(
    here: Path, output: str, summary: str, what: str
) -> None:
    (here / "sub").mkdir()
    line = _one_line(["run", "in.csv", "-q", "-o", output, "--summary-json", summary])
    assert line == (
        f"drumfire: error: --summary-json {summary!r} is {what}: the summary would replace "
        "its rows; give it a path of its own"
    )
    assert (here / "in.csv").read_text() == ROWS
    assert not (here / "out.csv").exists()


def test_bench_and_compare_reports_apart(here: Path) -> None:
    line = _one_line(
        ["bench", "http://127.0.0.1:9/", "-n", "1", "--json", "r.out", "--html", "./r.out"]
    )
    assert "--json and --html name one file, 'r.out'" in line
    line = _one_line(["bench", "-i", "in.csv", "-n", "1", "--html", "in.csv"])
    assert "--html 'in.csv' is the input" in line
    line = _one_line(["compare", "in.csv", "-s", "drumfire", "--json", "in.csv"])
    assert "--json 'in.csv' is the input" in line
    line = _one_line(["compare", "in.csv", "-s", "drumfire", "--json", "c", "--html", "c"])
    assert "--json and --html name one file" in line
    assert (here / "in.csv").read_text() == ROWS

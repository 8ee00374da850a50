"""click's own usage errors (a value out of range, not a number, an unknown option or
command, a missing argument) are one line naming the option and exit status 2 in every
command, as the README promises and as ``bench`` already had them; click printed four
(usage, a pointer to --help, a blank line, the error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from drumfire.cli import main


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "in.csv", "-c", "0"], "'-c' / '--concurrency': 0 is not in the range"),
        (["run", "in.csv", "--timeout", "30s"], "'--timeout': '30s' is not a valid float"),
        (["run", "in.csv", "--retries", "-1"], "'--retries': -1 is not in the range"),
        (["run", "in.csv", "-n", "0"], "'-n' / '--limit': 0 is not in the range"),
        (["run", "in.csv", "--bogus"], "No such option '--bogus'"),
        (["run"], "Missing argument 'INPUT'"),
        (["compare", "in.csv", "-c", "0"], "'-c' / '--concurrency': 0 is not in the range"),
        (["compare", "in.csv", "--max-seconds", "0"], "'--max-seconds': 0.0 is not in the range"),
        (["serve", "--port", "-1"], "'-p' / '--port': -1 is not in the range"),
        (["demo", "-n", "0"], "'-n' / '--rows': 0 is not in the range"),
        (["bench", "http://127.0.0.1:9/", "-c", "0"], "'-c' / '--concurrency': 0 is not"),
        (["nope"], "No such command 'nope'"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_click_usage_errors_are_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    prefix = "drumfire bench: error: " if args[0] == "bench" else "drumfire: error: "
    assert lines[0].startswith(prefix), lines
    assert says in lines[0]


def test_the_console_script_says_it_in_one_line_on_stderr() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire", "run", "in.csv", "--rate", "1/s", "-c", "x"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "drumfire: error: Invalid value for '-c' / '--concurrency': 'x' is not a valid "
        "integer range."
    ]


def test_no_arguments_still_show_the_help() -> None:
    result = CliRunner().invoke(main, [])
    assert "Commands:" in result.output
    assert "error:" not in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "in.csv", "-d", "a=1", "-d", "b=2"], "'-d' / '--data'"),
        (["run", "in.csv", "--data=a=1", "-d", "b=2"], "'-d' / '--data'"),
        (["run", "in.csv", "--json", '{"a": 1}', "--json", '{"b": 2}'], "'--json'"),
        (["bench", "http://127.0.0.1:9/", "-X", "POST", "-d", "a", "-d", "b"], "'-d' / '--data'"),
        (["compare", "in.csv", "-d", "a=1", "-d", "b=2"], "'-d' / '--data'"),
    ],
)
def test_a_body_given_twice_is_refused_not_half_sent(args: list[str], option: str) -> None:
    """click kept the last -d silently: ``-d a=1 -d b=2`` sent ``b=2``, where curl sends
    ``a=1&b=2``; one line says what to write instead."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"Invalid value for {option}: given 2 times: one " in lines[0]


def test_partition_size_is_checked_and_refused_without_a_cluster(tmp_path: Path) -> None:
    """``--partition-size`` matters with ``--cluster`` only: a bad value was taken without
    a word when the run had no ``--cluster`` (a typo'd cluster run ran on one machine)."""
    rows = tmp_path / "in.txt"
    rows.write_text("http://127.0.0.1:9/\n")
    for value, says in (("abc", "'abc' is not a size like 64M"), ("1M", "--cluster runs only")):
        result = CliRunner().invoke(main, ["run", str(rows), "-q", "--partition-size", value])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1, result.output
        assert lines[0].startswith("drumfire: error: --partition-size")
        assert says in lines[0]

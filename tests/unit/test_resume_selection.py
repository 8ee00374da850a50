"""--retry-failed / --fail-on-error selections, the resume scan and rewrite, the resume hint."""

from __future__ import annotations

import io
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from drumfire._errors import UsageError
from drumfire._progress import Progress, rerun_command
from drumfire._result import Stats
from drumfire._resume import RETRY_FAILED_DEFAULT, Selection, scan_output, write_kept


def test_selection_items() -> None:
    default = Selection(RETRY_FAILED_DEFAULT, "--retry-failed")
    assert default.matches("connect", None)
    assert default.matches("timeout", None)
    assert default.matches("", 503)
    assert not default.matches("", 404)
    assert not default.matches("", 200)
    assert not default.matches("input: line 3: not JSON", None)
    assert not default.matches("cancelled", None)  # resume always re-sends those anyway
    # Rows not sent because the origin's quota was spent for longer than --max-retry-wait.
    assert default.matches("retry_after: quota resets in 40s, over --max-retry-wait 2s", None)
    classes = Selection("4xx, json", "--fail-on-error")
    assert classes.matches("", 404)
    assert classes.matches("json", 200)
    assert not classes.matches("", 503)
    anything = Selection("errors", "--fail-on-error")
    assert anything.matches("parse: ValueError: x", 200)
    assert not anything.matches("", 500)


@pytest.mark.parametrize("text", ["", ",", "nope", "5x", "600", "http 503"])
def test_selection_refuses_unknown_items(text: str) -> None:
    with pytest.raises(UsageError, match="--retry-failed"):
        Selection(text, "--retry-failed")


def test_selection_counts_run_figures() -> None:
    reasons = Counter({"connect": 2, "http 503": 1, "json": 4})
    statuses = Counter({200: 4, 503: 1})
    assert Selection("transport", "x").count(reasons, statuses) == 2
    assert Selection("errors", "x").count(reasons, statuses) == 6
    assert Selection("5xx", "x").count(reasons, statuses) == 1
    assert Selection("404", "x").count(reasons, statuses) == 0


CSV = (
    "id,status,elapsed_ms,attempts,error,code\n"
    "1,200,1.000,1,,Ok\n"
    '2,,0.000,1,cancelled,\n'
    "3,,3.000,4,connect,\n"
    '4,200,1.000,1,,"a,b"\n'
    ",,0.000,0,input: line 6: not JSON,\n"
    "6,503,1.000,4,,\n"
)


def test_scan_and_rewrite_keep_what_is_not_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text(CSV + "7,200,1.0")  # a torn last line
    again = Selection(RETRY_FAILED_DEFAULT, "--retry-failed")

    def resend(record: tuple[str, int | None, str]) -> bool:
        return record[2] == "cancelled" or again.matches(record[2], record[1])

    resumed = scan_output(str(path), "csv", resend)
    assert (resumed.kept, resumed.dropped) == (3, 3)
    assert resumed.problems == frozenset({6})
    assert [i for i in ("1", "2", "3", "4", "6", "", "7") if i in resumed.done] == ["1", "4"]
    # The rows to send again, by id (--save-body sends them whatever their file)
    assert [i for i in ("1", "2", "3", "4", "6", "", "7") if resumed.again.take(i)] == [
        "2",
        "3",
        "6",
    ]
    assert not resumed.again.take("2")  # once each, as often as dropped
    out = io.BytesIO()
    write_kept(str(path), "csv", resend, out)
    assert out.getvalue().decode() == (
        "id,status,elapsed_ms,attempts,error,code\n"
        "1,200,1.000,1,,Ok\n"
        '4,200,1.000,1,,"a,b"\n'
        ",,0.000,0,input: line 6: not JSON,\n"
    )


def test_scan_of_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(
        b'{"id":"a","status":200,"error":""}\n{"id":"b","status":null,"error":"cancelled"}\n'
        b'{"id":"","status":null,"error":"input: line 9: not JSON"}\n'
    )
    resumed = scan_output(str(path), "jsonl", lambda r: r[2] == "cancelled")
    assert (resumed.kept, resumed.dropped, resumed.problems) == (2, 1, frozenset({9}))
    out = io.BytesIO()
    write_kept(str(path), "jsonl", lambda r: r[2] == "cancelled", out)
    assert out.getvalue().count(b"\n") == 2
    assert b'"b"' not in out.getvalue()


def test_rerun_command() -> None:
    argv = ["run", "in put.csv", "--url", "http://h/{id}", "-o", "o.csv", "--overwrite"]
    assert rerun_command(argv, "--resume") == (
        "drumfire run 'in put.csv' --url 'http://h/{id}' -o o.csv --resume"
    )
    assert rerun_command([*argv, "--resume"], "--resume").count("--resume") == 1
    assert rerun_command(["x"], "--resume") == "the same command with --resume"


def test_rerun_command_adds_its_option_before_a_double_dash() -> None:
    """After ``--`` every word is an argument: ``--resume`` put there was an extra INPUT,
    and the command the hint gave was refused (``Got unexpected extra argument``)."""
    argv = ["run", "-o", "out.csv", "--overwrite", "--", "-rows.csv"]
    assert rerun_command(argv, "--resume") == "drumfire run -o out.csv --resume -- -rows.csv"
    kept = ["run", "-o", "out.csv", "--", "--overwrite"]  # an INPUT named --overwrite stays
    assert rerun_command(kept, "--resume") == "drumfire run -o out.csv --resume -- --overwrite"


def test_progress_starts_at_the_resumed_count() -> None:
    console = Console(file=io.StringIO(), width=200)
    progress = Progress(console, time.perf_counter)
    progress.resumed = 40
    stats = Stats(time.perf_counter, total=100)
    assert str(progress.render(stats, 1.0)).startswith("40/100 (40.0%)")
    stats.skipped = 60  # the input had more resumed rows than announced: never past total
    stats.done = 50
    assert str(progress.render(stats, 2.0)).startswith("100/100")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("people.csv", "name,email\nann,a@x\nbob,b@x"),
        ("people.jsonl", '{"name": "ann"}\n{"name": "bob"}'),
    ],
)
def test_resume_on_a_file_that_is_not_drumfire_output_changes_nothing(
    tmp_path: Path, name: str, text: str
) -> None:
    """The torn-line repair must not cut the last line of someone else's file."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError, match="does not look like drumfire output"):
        scan_output(str(path), name.rpartition(".")[2], lambda record: False)
    assert path.read_text() == text


@pytest.mark.parametrize("cut", ["after_a_newline_in_quotes", "inside_quotes", "after_the_quote"])
def test_a_torn_row_with_line_breaks_in_a_quoted_cell_is_cut_whole(
    tmp_path: Path, cut: str
) -> None:
    # A flush cut short (kill -9 during a large write, a full disk) inside a quoted cell
    # that holds a line break: only the last physical line was cut, the open quote stayed,
    # and the rows --resume appended were read back as part of that cell (rows lost).
    whole = '1,200,1.000,1,,"a\nb ""q"""\n2,200,1.000,1,,plain\n'
    torn = '3,200,1.000,1,,"x\ny\n'
    torn = {
        "after_a_newline_in_quotes": torn[: torn.index("y")],
        "inside_quotes": torn[: torn.index("y") + 1],
        "after_the_quote": '3,200,1.000,1,,"x\ny"',
    }[cut]
    path = tmp_path / "o.csv"
    path.write_text("id,status,elapsed_ms,attempts,error,v\n" + whole + torn, newline="")
    resumed = scan_output(str(path), "csv", lambda record: False)
    assert path.read_bytes().decode() == "id,status,elapsed_ms,attempts,error,v\n" + whole
    assert resumed.kept == 2
    assert [i for i in ("1", "2", "3") if i in resumed.done] == ["1", "2"]

"""Pure checks of the flag handling shared by the commands (no server, no subprocess)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from drumfire._cli_common import (
    basic_auth_header,
    column_list,
    hide_secrets,
    looks_like_url,
    old_quiet,
)
from drumfire._errors import UsageError


def test_the_rerun_hint_hides_credentials_given_with_u() -> None:
    argv = ["run", "in.csv", "-u", "alice:pw", "--user=bob:pw2", "-ucarol:pw3", "--url", "http://x/"]
    assert hide_secrets(argv) == [
        "run", "in.csv", "-u", "***", "--user=***", "-u***", "--url", "http://x/",
    ]  # fmt: skip
    # the old -u URL is shown as any URL is: its user info hidden
    assert hide_secrets(["-u", "http://me:pw@h/{v}"]) == ["-u", "http://***@h/{v}"]


def test_basic_auth_header_is_what_curl_sends() -> None:
    token = base64.b64encode("alice:p:w é".encode()).decode()
    assert basic_auth_header("alice:p:w é", []) == f"Authorization: Basic {token}"
    with pytest.raises(UsageError, match="USER:PASSWORD"):
        basic_auth_header("alice", [])
    with pytest.raises(UsageError, match="keep one"):
        basic_auth_header("a:b", ["authorization: Bearer x"])


@pytest.mark.parametrize(
    ("values", "names"),
    [
        (["a,b", " c , ,d ", ""], ["a", "b", "c", "d"]),  # as before quoting existed
        (['"lat, lon",id'], ["lat, lon", "id"]),
        (['id, "lat, lon" ,x'], ["id", "lat, lon", "x"]),
        (['" padded ",""'], [" padded ", ""]),  # quoted: taken exactly
        (['"say ""hi""",b'], ['say "hi"', "b"]),
        (['a"b,c"'], ['a"b', 'c"']),  # a quote that does not start a name is a character
        (["a,b", '"c,d"'], ["a", "b", "c,d"]),  # repeated
    ],
)
def test_column_list_splits_on_commas_outside_quotes(values: list[str], names: list[str]) -> None:
    assert column_list(values, "--keep") == names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"a,b', "--keep '\"a,b': the quote at position 0 is not closed"),
        ('x,"a""', '--keep \'x,"a""\': the quote at position 2 is not closed'),
        ('"a,b"c,d', "--keep '\"a,b\"c,d': text after the quoted name 'a,b'"),
    ],
)
def test_column_list_names_the_option_and_the_value(value: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        column_list([value], "--keep")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "url"),
    [("http://h/", True), ("{url}", True), ("{base}/x", True), ("a:b", False), ("a", False)],
)
def test_looks_like_url(text: str, url: bool) -> None:
    assert looks_like_url(text) is url


def test_bench_q_without_a_value_is_the_old_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    assert old_quiet(["http://h/", "-q"]) == ["http://h/", "--quiet"]
    assert old_quiet(["-q", "-n", "3"]) == ["--quiet", "-n", "3"]
    assert old_quiet(["-q", "200", "-n", "3"]) == ["-q", "200", "-n", "3"]  # the rate
    assert old_quiet(["--", "-q"]) == ["--", "-q"]
    assert capsys.readouterr().err.count("-q for quiet is deprecated") == 2


@pytest.mark.parametrize("value", ["2s", "1m30s", "500ms", "10", "2.5"])
def test_bench_refuses_a_wrk_duration_as_the_body(value: str) -> None:
    """wrk reads ``-d 10`` as ten seconds, as it reads ``-d 10s``: neither is POSTed."""
    from click.testing import CliRunner

    from drumfire.bench.cli import bench_command

    # port 9 (discard) is never reached: the refusal comes before any connection
    result = CliRunner().invoke(bench_command, ["http://127.0.0.1:9/", "-n", "1", "-d", value])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"drumfire bench: error: -d {value!r} looks like a duration (wrk's -d): here -d is the "
        f"request body, as in curl; for the duration write -z {value} (to send it as a body, "
        "add -X POST)"
    ]


@pytest.mark.parametrize("command", ["bench", "compare"])
@pytest.mark.parametrize("body", ['{"q": "x"}', "@body.json"])
def test_a_json_body_given_to_the_report_path_option_is_refused(
    command: str, body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --json BODY`` is curl's body (``@FILE`` too); bench's and compare's ``--json
    PATH`` is the report: given a body, they used to send none and write the report to a
    file named like it (``@body.json`` still was, after a whole benchmark of GETs)."""
    from click.testing import CliRunner

    from drumfire.bench.cli import bench_command
    from drumfire.compare.cli import compare_command

    monkeypatch.chdir(tmp_path)  # where a report named like the body would land
    (tmp_path / "body.json").write_text('{"q": "x"}', encoding="utf-8")
    if command == "bench":
        args = ["http://127.0.0.1:9/", "-n", "1", "--json", body]
        result = CliRunner().invoke(bench_command, args)
        prefix = "drumfire bench: error: "
    else:
        rows = tmp_path / "rows.csv"
        rows.write_text("id,v\n1,a\n", encoding="utf-8")
        args = [str(rows), "--url", "http://127.0.0.1:9/{v}", "-s", "drumfire", "--json", body]
        result = CliRunner().invoke(compare_command, args)
        prefix = "drumfire: error: "
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(prefix + "--json PATH is where the report goes")
    assert not (tmp_path / body).exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--rate", "0"], "drumfire: error: --rate: '0': a rate must be above zero"),
        (["--per-host-rate", "-2/min"],
         "drumfire: error: --per-host-rate: '-2/min': a rate must be above zero"),
        (["--rate", "fast"], "drumfire: error: --rate: 'fast' is not a rate like 500"),
    ],
)  # fmt: skip
def test_run_rates_say_why_they_are_refused(args: list[str], line: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from drumfire.cli import main

    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "in.txt"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(line), lines[0]


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon", "", "5s"])
def test_max_retry_wait_refuses_in_one_line_naming_the_option(value: str, tmp_path: Path) -> None:
    """Seconds, 0 or more: ``nan`` used to pass click's range and mean no cap at all,
    and a negative took three lines of usage."""
    from click.testing import CliRunner

    from drumfire.cli import main

    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "in.txt"), "--max-retry-wait", value])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"drumfire: error: --max-retry-wait {value!r}: give a number of seconds, 0 or more "
        "(0: wait for no Retry-After)"
    ]


@pytest.mark.parametrize(("option", "value"), [("--timeout", "nan"), ("--connect-timeout", "inf")])
def test_a_timeout_that_never_fires_names_the_option(
    tmp_path: Path, option: str, value: str
) -> None:
    """click's FloatRange lets nan and inf through; make_job refused them naming its
    keyword (timeout=nan), which a command line never typed."""
    from click.testing import CliRunner

    from drumfire.cli import main

    (tmp_path / "in.txt").write_text("http://127.0.0.1:9/\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "in.txt"), option, value])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"drumfire: error: {option} {value}: give a number of seconds above 0 (5 or 2.5)"
    ]


def test_bench_names_its_timeout_option_too() -> None:
    from click.testing import CliRunner

    from drumfire.bench.cli import bench_command

    result = CliRunner().invoke(bench_command, ["http://127.0.0.1:9/", "--timeout", "nan"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "drumfire bench: error: --timeout nan: give a number of seconds above 0 (5 or 2.5)"
    )


@pytest.mark.parametrize(
    ("rate", "line"),
    [
        ("0", "--rate '0': a rate must be above zero (500, 500/s or 100/min)"),
        ("0/min:0", "--rate '0/min:0': a rate must be above zero (500, 500/s or 100/min)"),
        ("-5", "--rate '-5': '-5': a rate must be above zero (500, 500/s or 100/min)"),
    ],
)
def test_bench_rates_say_a_rate_is_above_zero(rate: str, line: str) -> None:
    """bench --rate reads each rate with run's parser, and words a zero the same."""
    from click.testing import CliRunner

    from drumfire.bench.cli import bench_command

    result = CliRunner().invoke(bench_command, ["http://127.0.0.1:9/", f"--rate={rate}"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"drumfire bench: error: {line}"]


@pytest.mark.parametrize(
    ("command", "args", "needle"),
    [
        ("bench", ["-d", "@{path}"],
         "cannot read --data file '{path}': No such file or directory (bench sends one body "
         "for every request: a file per row is drumfire run --data-file '{path}')"),
        ("bench", ["-F", "data=@{path}"],
         "-F data: {path}: No such file or directory (bench sends one form for every "
         "request: a file per row is drumfire run -F)"),
        ("compare", ["-d", "@{path}"],
         "cannot read --data file '{path}': No such file or directory (compare reads one "
         "body file: a file per row is drumfire run --data-file '{path}')"),
    ],
)  # fmt: skip
def test_a_file_per_row_given_to_bench_or_compare_names_drumfire_run(
    command: str, args: list[str], needle: str, tmp_path: Path
) -> None:
    """bench and compare read one body (or form) file; given a per-row path template,
    the message pointed at --data-file, an option neither of them has."""
    from click.testing import CliRunner

    from drumfire.bench.cli import bench_command
    from drumfire.compare.cli import compare_command

    rows = tmp_path / "rows.csv"
    rows.write_text("id,path\n1,a.jpg\n", encoding="utf-8")
    if command == "bench":
        argv = ["--input", str(rows), "--url", "http://127.0.0.1:9/", "-n", "1", *args]
        result = CliRunner().invoke(bench_command, argv)
    else:
        argv = [str(rows), "--url", "http://127.0.0.1:9/", "-s", "drumfire", *args]
        result = CliRunner().invoke(compare_command, argv)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].endswith(needle), lines[0]

"""Flags a curl, wrk, hey or oha user would guess (issue 16), against real servers.

``-u USER:PASSWORD`` (curl), ``-L`` (curl), ``run -n/--limit`` (head -n),
``bench -q RATE`` (hey, oha), wrk's ``-d 2s`` refused on bench, ``compare -X/-H/-d``,
and each old meaning of a short flag still accepted with a one-line warning.
"""

from __future__ import annotations

import base64
import csv
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from servers import Action, ScriptedServer, echo, respond

from drumfire.bench.cli import bench_command
from drumfire.compare.cli import compare_command
from drumfire.compare.strategies import Strategy

CLI = [sys.executable, "-m", "drumfire.cli"]
SECRET = "s3cret-pw"


def drumfire(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text("id,v\n1,a\n2,b\n3,c\n4,d\n", encoding="utf-8")
    return path


def _out_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_run_u_is_user_and_password_as_in_curl(rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as srv:
        done = drumfire("run", rows, "--url", srv.url("/{v}"), "-u", f"alice:{SECRET}", "-o", out)
        seen = [r.headers.get("authorization") for r in srv.requests]
    assert done.returncode == 0, done.stderr
    token = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert seen == [f"Basic {token}"] * 4
    assert SECRET not in done.stderr
    assert token not in done.stderr
    assert "deprecated" not in done.stderr  # -u alice:pw is not the old -u URL


def test_run_u_without_a_password_or_with_an_authorization_header_is_refused(
    rows: Path,
) -> None:
    bare = drumfire("run", rows, "--url", "http://127.0.0.1:9/{v}", "-u", "alice")
    assert bare.returncode == 2
    assert bare.stderr.strip().splitlines() == [
        "drumfire: error: -u/--user: write USER:PASSWORD (a batch cannot prompt for a password)"
    ]
    both = drumfire(
        "run", rows, "--url", "http://127.0.0.1:9/{v}", "-u", f"a:{SECRET}",
        "-H", f"Authorization: Bearer {SECRET}",
    )  # fmt: skip
    assert both.returncode == 2
    assert both.stderr.count("\n") == 1
    assert "keep one" in both.stderr
    assert SECRET not in both.stderr


def test_run_u_with_a_url_is_the_old_meaning_with_a_warning(rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as srv:
        done = drumfire("run", rows, "-u", srv.url("/{v}"), "-o", out)
        targets = sorted(r.target for r in srv.requests)
    assert done.returncode == 0, done.stderr
    assert targets == ["/a", "/b", "/c", "/d"]
    assert done.stderr.splitlines()[0] == (
        "drumfire: warning: -u for the URL is deprecated: write --url "
        "(-u is now USER:PASSWORD, as in curl)"
    )


def test_run_n_limits_the_rows(rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as srv:
        done = drumfire("run", rows, "--url", srv.url("/{v}"), "-n", 2, "-o", out)
        sent = len(srv.requests)
    assert done.returncode == 0, done.stderr
    # without --ordered, rows come out as they are answered: compare as a set
    assert sorted(r["id"] for r in _out_rows(out)) == ["1", "2"]
    assert sent == 2
    again = drumfire("run", rows, "--url", "http://127.0.0.1:9/", "--limit", 0)
    assert again.returncode == 2
    assert "--limit" in again.stderr


def test_run_capital_l_follows_redirects(rows: Path, tmp_path: Path) -> None:
    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        if target.startswith("/old"):
            return respond(301, b"", [("Location", "/new")])
        return respond(200, {"at": target})

    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        done = drumfire("run", rows, "--url", srv.url("/old"), "-L", "-e", "at=at", "-o", out)
    assert done.returncode == 0, done.stderr
    assert {(r["status"], r["at"]) for r in _out_rows(out)} == {("200", "/new")}


def test_bench_q_is_the_rate_as_in_hey_and_oha(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(
            bench_command, [srv.url("/"), "-q", "6000/min", "-n", "5", "--json", str(report)]
        )
    assert result.exit_code == 0, result.output
    settings = orjson.loads(report.read_bytes())["settings"]
    assert (settings["model"], settings["rate_fixed"]) == ("open", 100.0)
    # no deprecation warning (the report's own "warning: ... late" depends on the machine's load)
    assert "drumfire bench: warning" not in result.output


@pytest.mark.parametrize(
    ("old", "warning"),
    [
        (["-n", "3", "-q"], "-q for quiet is deprecated: write --quiet (-q is now the rate)"),
        (["-q", "-n", "3"], "-q for quiet is deprecated: write --quiet (-q is now the rate)"),
        (["-r", "50", "-n", "3", "--quiet"], "-r for the rate is deprecated: write -q or --rate"),
    ],
)
def test_bench_old_short_flags_still_work_with_a_warning(old: list[str], warning: str) -> None:
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(bench_command, [srv.url("/"), *old])
        sent = len(srv.requests)
    assert result.exit_code == 0, result.output
    assert f"drumfire bench: warning: {warning}" in result.output.splitlines()
    assert sent >= 3


def test_bench_refuses_a_wrk_duration_given_as_the_body() -> None:
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(bench_command, [srv.url("/"), "-c", "2", "-d", "2s"])
        sent = len(srv.requests)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "drumfire bench: error: -d '2s' looks like a duration (wrk's -d): here -d is the "
        "request body, as in curl; for the duration write -z 2s (to send it as a body, "
        "add -X POST)"
    ]
    assert sent == 0
    with ScriptedServer(echo) as srv:  # with a method, "2s" is a body the user meant
        result = CliRunner().invoke(bench_command, [srv.url("/"), "-X", "POST", "-d", "2s",
                                                    "-n", "2", "--quiet"])
        bodies = {r.body for r in srv.requests}
    assert result.exit_code == 0, result.output
    assert bodies == {b"2s"}


def test_compare_sends_method_headers_and_body_like_run(rows: Path) -> None:
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(
            compare_command,
            [str(rows), "--url", srv.url("/{v}"), "-X", "PUT", "-H", "X-Row: {id}",
             "-d", "v={v}", "-u", f"bob:{SECRET}", "-s", "session,drumfire", "-q",
             "-e", "method=method", "-e", "body=body", "-e", "row=headers.\"x-row\""],
        )  # fmt: skip
        seen = {(r.method, r.target, r.headers.get("x-row"), r.body) for r in srv.requests}
        auth = {r.headers.get("authorization") for r in srv.requests}
        types = {r.headers.get("content-type") for r in srv.requests}
    assert result.exit_code == 0, result.output
    assert seen == {
        ("PUT", f"/{v}", str(i), f"v={v}".encode()) for i, v in enumerate("abcd", 1)
    }
    assert auth == {"Basic " + base64.b64encode(f"bob:{SECRET}".encode()).decode()}
    assert types == {"application/x-www-form-urlencoded"}  # as drumfire run sends it


def test_compare_without_its_extra_says_so_and_exits_non_zero(
    rows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(strategy: Strategy) -> list[str]:
        return list(strategy.requires)  # as when 'drumfire[compare]' is not installed

    monkeypatch.setattr("drumfire.compare.cli.missing_modules", missing)
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(compare_command, [str(rows), "--url", srv.url("/{v}")])
        sent = len(srv.requests)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("drumfire: error: strategies ")
    assert "pip install 'drumfire[compare]'" in lines[0]
    assert "matched" not in result.output
    assert sent == 0
    with ScriptedServer(echo) as srv:  # drumfire alone needs no extra
        alone = CliRunner().invoke(
            compare_command, [str(rows), "--url", srv.url("/{v}"), "-s", "drumfire", "-q"]
        )
    assert alone.exit_code == 0, alone.output


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("v={v}&id={id}", None), ('{"v": "{v}", "n": {id}}', None), ("v={v}", "text/plain")],
)
def test_compare_strategies_encode_values_as_drumfire_does(
    tmp_path: Path, body: str, content_type: str | None
) -> None:
    """A value that needs encoding (a space, '&', '"', '#') reaches the server the same from
    every strategy: drumfire's encoding, in the URL and in a form or JSON body."""
    path = tmp_path / "rows.csv"
    path.write_text('id,v\n1,a b\n2,x&y=1\n3,"say ""hi"""\n4,c#d\n5,café/é\n', encoding="utf-8")
    header = ["-H", f"Content-Type: {content_type}"] if content_type else []
    with ScriptedServer(echo) as srv:
        result = CliRunner().invoke(
            compare_command,
            [str(path), "--url", srv.url("/p/{v}?q={v}"), "-d", body, *header,
             "-s", "drumfire,session", "-q", "-e", "body=body", "-e", "query=raw_query"],
        )  # fmt: skip
        sent: dict[bytes, set[tuple[str, bytes]]] = {}
        for r in srv.requests:
            sent.setdefault(r.body, set()).add((r.target, r.body))
    assert result.exit_code == 0, result.output
    assert "differ" not in result.output
    assert len(srv.requests) == 10
    assert len(sent) == 5  # each row's body, the same from both strategies
    assert all(len(seen) == 1 for seen in sent.values())  # and the same URL

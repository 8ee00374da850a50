"""Pure checks of the flag handling shared by the commands (no server, no subprocess)."""

from __future__ import annotations

import base64

import pytest

from drumfire._cli_common import basic_auth_header, looks_like_url
from drumfire._errors import UsageError
from drumfire.bench.cli import _old_quiet
from drumfire.cli import _hide_secrets


def test_the_rerun_hint_hides_credentials_given_with_u() -> None:
    argv = ["run", "in.csv", "-u", "alice:pw", "--user=bob:pw2", "-ucarol:pw3", "--url", "http://x/"]
    assert _hide_secrets(argv) == [
        "run", "in.csv", "-u", "***", "--user=***", "-u***", "--url", "http://x/",
    ]  # fmt: skip
    # the old -u URL is shown as any URL is: its user info hidden
    assert _hide_secrets(["-u", "http://me:pw@h/{v}"]) == ["-u", "http://***@h/{v}"]


def test_basic_auth_header_is_what_curl_sends() -> None:
    token = base64.b64encode("alice:p:w é".encode()).decode()
    assert basic_auth_header("alice:p:w é", []) == f"Authorization: Basic {token}"
    with pytest.raises(UsageError, match="USER:PASSWORD"):
        basic_auth_header("alice", [])
    with pytest.raises(UsageError, match="keep one"):
        basic_auth_header("a:b", ["authorization: Bearer x"])


@pytest.mark.parametrize(
    ("text", "url"),
    [("http://h/", True), ("{url}", True), ("{base}/x", True), ("a:b", False), ("a", False)],
)
def test_looks_like_url(text: str, url: bool) -> None:
    assert looks_like_url(text) is url


def test_bench_q_without_a_value_is_the_old_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    assert _old_quiet(["http://h/", "-q"]) == ["http://h/", "--quiet"]
    assert _old_quiet(["-q", "-n", "3"]) == ["--quiet", "-n", "3"]
    assert _old_quiet(["-q", "200", "-n", "3"]) == ["-q", "200", "-n", "3"]  # the rate
    assert _old_quiet(["--", "-q"]) == ["--", "-q"]
    assert capsys.readouterr().err.count("-q for quiet is deprecated") == 2

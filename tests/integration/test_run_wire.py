"""The request on the wire is exactly what the row says, whatever its values.

Each test reads the request head as it came off the socket (the raw-socket
:class:`ScriptedServer` keeps it in ``Request.head``): one ``Host``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from servers import Action, Request, ScriptedServer, echo, respond

import drumfire

CLI = [sys.executable, "-m", "drumfire.cli"]


def _lines(request: Request) -> list[str]:
    """The request line and header lines, as sent."""
    return request.head.decode("latin-1").split("\r\n")


def _hosts(request: Request) -> list[str]:
    return [line for line in _lines(request)[1:] if line.lower().startswith("host:")]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False
    )  # fmt: skip


# -- Host ----------------------------------------------------------------------------


def test_a_host_header_replaces_drumfires_own(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,h,n\n1,api.example.com,Host\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as server:
        for header in ("Host: api.example.com", "Host: {h}", "{n}: {h}", "host: {h}"):
            proc = _cli("run", str(rows), "-q", "--url", server.url("/v"), "-H", header,
                        "-H", "X-Kept: 1", "-o", str(out), "--overwrite")  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        # Without one, drumfire's own, from the URL.
        drumfire.run_all([{"id": "d"}], server.url("/v"))
        sent = list(server.requests)
    assert len(sent) == 5
    for request, host in zip(sent, ["Host", "Host", "Host", "host"], strict=False):
        lines = _lines(request)
        assert lines[0] == "GET /v HTTP/1.1"
        assert lines[1] == f"{host}: api.example.com"  # first, as RFC 9112 §3.2 asks
        assert _hosts(request) == [f"{host}: api.example.com"]
        assert "X-Kept: 1" in lines
    assert _hosts(sent[4]) == [f"Host: 127.0.0.1:{server.port}"]


def test_a_same_origin_redirect_keeps_the_host_header() -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if target == "/old":
            return respond(302, b"", [("Location", "/new")])
        return respond(200, b"ok")

    with ScriptedServer(handler) as server:
        results = drumfire.run_all(
            [{"id": "1"}], server.url("/old"), headers=["Host: vhost.test"], follow_redirects=3
        )
        sent = list(server.requests)
    assert results[0]["status"] == 200
    assert [r.target for r in sent] == ["/old", "/new"]
    assert [_hosts(r) for r in sent] == [["Host: vhost.test"]] * 2


def test_two_host_headers_are_refused() -> None:
    with ScriptedServer(echo) as server:
        with pytest.raises(drumfire.UsageError, match=r"^header 'Host' \(-H\) is given twice"):
            drumfire.run_all([{"id": "1"}], server.url("/"), headers=["Host: a", "host: b"])
        results = drumfire.run_all(
            [{"id": "1", "n": "Host"}, {"id": "2", "n": "X-Other"}],
            server.url("/"),
            headers=["Host: a", "{n}: b"],
        )
        sent = list(server.requests)
    errors = {r["id"]: r["error"] for r in results}
    assert errors == {
        "1": "template: row 1: two Host headers after substitution: a request has one",
        "2": "",
    }
    [request] = sent
    assert _hosts(request) == ["Host: a"]
    assert "X-Other: b" in _lines(request)

"""The request on the wire is exactly what the row says, whatever its values.

Each test reads the request head as it came off the socket (the raw-socket
:class:`ScriptedServer` keeps it in ``Request.head``): one ``Host``, drumfire's
own framing only, no path moved by a ``.``/``..`` value, nothing dropped from
a whole-URL value, and no raw ``%`` that does not start an escape.
"""

from __future__ import annotations

import csv
import json
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


# -- framing: Content-Length and Transfer-Encoding are drumfire's ---------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Content-Length: 5", "header 'Content-Length' (-H): drumfire sets it from the body"),
        ("content-length: 0", "header 'content-length' (-H): drumfire sets it from the body"),
        (
            "Transfer-Encoding: chunked",
            "header 'Transfer-Encoding' (-H): drumfire sends a body with Content-Length, "
            "never chunked",
        ),
    ],
)
def test_a_framing_header_is_a_usage_error_in_run_and_bench(
    tmp_path: Path, header: str, message: str
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n1\n", encoding="utf-8")
    with ScriptedServer(echo) as server:
        for args in (
            ["run", str(rows), "-q", "--url", server.url("/x"), "-d", "a=1"],
            ["run", str(rows), "-q", "--url", server.url("/x")],
            ["bench", server.url("/x"), "-n", "3"],
            ["bench", "-i", str(rows), "--url", server.url("/x"), "-n", "3"],
        ):
            proc = _cli(*args, "-H", header)
            assert proc.returncode == 2, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1, proc.stderr
            assert lines[0].endswith(f"error: {message}; remove it"), proc.stderr
        assert server.requests == []


def test_a_templated_header_name_that_gives_a_framing_header_is_an_error_row() -> None:
    rows = [
        {"id": "1", "n": "Content-Length", "v": "5"},
        {"id": "2", "n": "TRANSFER-ENCODING", "v": "chunked"},
        {"id": "3", "n": "X-Fine", "v": "5"},
    ]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(rows, server.url("/x"), headers=["{n}: {v}"], data="a=1")
        sent = list(server.requests)
    errors = {r["id"]: r["error"] for r in results}
    assert errors == {
        "1": "template: row 1: header name '{n}' is 'Content-Length' after substitution: "
        "drumfire sets it from the body",
        "2": "template: row 2: header name '{n}' is 'TRANSFER-ENCODING' after substitution: "
        "drumfire sends a body with Content-Length, never chunked",
        "3": "",
    }
    [request] = sent
    framing = [
        line
        for line in _lines(request)
        if line.lower().startswith(("content-length:", "transfer-encoding:"))
    ]
    assert framing == ["Content-Length: 3"]
    assert request.body == b"a=1"


def test_connection_close_is_sent_and_honoured() -> None:
    # This server keeps every connection open: drumfire closes it itself after
    # the answer to a request that said Connection: close (RFC 9112 §9.6).
    rows = [{"id": str(i)} for i in range(6)]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(
            rows, server.url("/c/{id}"), headers=["Connection: close"], concurrency=1
        )
        closing = list(server.requests)
    with ScriptedServer(echo) as server:
        drumfire.run_all(rows, server.url("/k/{id}"), headers=["Connection: keep-alive"],
                         concurrency=1)  # fmt: skip
        kept = list(server.requests)
    assert [r["status"] for r in results] == [200] * 6
    assert all("Connection: close" in _lines(r) for r in closing)
    assert sorted(r.connection for r in closing) == list(range(6))  # one connection each
    assert all(r.position == 0 for r in closing)
    assert all("Connection: keep-alive" in _lines(r) for r in kept)
    assert {r.connection for r in kept} == {0}  # kept alive: one connection for all


# -- a '.' or '..' value never moves the path -----------------------------------------


def test_a_dot_segment_value_is_an_error_row_and_others_arrive_as_they_are() -> None:
    values = ["..", ".", "a..b", "..x", "x.", "...", "%2E%2E", ""]
    rows = [{"id": str(i), "v": v} for i, v in enumerate(values)]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(rows, server.url("/p/{v}/end"), headers=["X-Row: {id}"])
        raw = drumfire.run_all(rows[:2], server.url("/r/{+v}/end"), headers=["X-Row: r{id}"])
        sent = {r.headers["x-row"]: r for r in server.requests}
    errors = {r["id"]: r["error"] for r in results}
    assert errors["0"] == (
        "template: row 1: the value '..' (column 'v') would be a '..' path segment, "
        "which moves the path"
    )
    assert errors["1"] == (
        "template: row 2: the value '.' (column 'v') would be a '.' path segment, "
        "which moves the path"
    )
    assert "0" not in sent
    assert "1" not in sent
    targets = {k: _lines(r)[0] for k, r in sent.items()}
    assert targets["2"] == "GET /p/a..b/end HTTP/1.1"
    assert targets["3"] == "GET /p/..x/end HTTP/1.1"
    assert targets["4"] == "GET /p/x./end HTTP/1.1"
    assert targets["5"] == "GET /p/.../end HTTP/1.1"
    assert targets["6"] == "GET /p/%252E%252E/end HTTP/1.1"
    assert targets["7"] == "GET /p//end HTTP/1.1"
    # {+v} is the user's way to send URL syntax: dot segments included.
    assert [r["error"] for r in raw] == ["", ""]
    assert targets["r0"] == "GET /r/../end HTTP/1.1"
    assert targets["r1"] == "GET /r/./end HTTP/1.1"


# -- whole-URL values: nothing dropped, no lone '%' -----------------------------------


def test_a_whole_url_value_keeps_tab_cr_lf_and_encodes_a_lone_percent(tmp_path: Path) -> None:
    with ScriptedServer(echo) as server:
        base = server.url("/p")
        urls = tmp_path / "urls.txt"
        urls.write_text(
            f"{base}?q=a\tb&id=1\n{base}?q=100%&id=2\n{base}?q=%zz&r=%41%4&id=3\n"
            f"{base}?q=a\x01b&id=4\n",
            encoding="utf-8",
        )
        proc = _cli("run", str(urls), "-q", "-o", str(tmp_path / "out.csv"))
        assert proc.returncode == 0, proc.stderr
        # A CSV column used as --url '{url}': CR and LF inside a quoted cell too.
        rows = tmp_path / "rows.csv"
        with rows.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(
                [["id", "url"], ["5", f"{base}?q=a\r\nb&id=5"], ["6", f"{base}/a\tb%/?id=6"]]
            )
        proc = _cli("run", str(rows), "-q", "--url", "{url}", "-o", str(tmp_path / "out2.csv"))
        assert proc.returncode == 0, proc.stderr
        lines = sorted(_lines(r)[0] for r in server.requests)
    assert lines == [
        "GET /p/a%09b%25/?id=6 HTTP/1.1",
        "GET /p?q=%25zz&r=%41%254&id=3 HTTP/1.1",
        "GET /p?q=100%25&id=2 HTTP/1.1",
        "GET /p?q=a%01b&id=4 HTTP/1.1",
        "GET /p?q=a%09b&id=1 HTTP/1.1",
        "GET /p?q=a%0D%0Ab&id=5 HTTP/1.1",
    ]


def test_a_control_character_in_a_whole_url_host_is_an_error_row() -> None:
    with ScriptedServer(echo) as server:
        good = server.url("/ok")
        results = drumfire.run_all(
            [{"id": "1", "url": f"http://127.0.0.1\t:{server.port}/x"}, {"id": "2", "url": good}],
            "{url}",
        )
        sent = [r.target for r in server.requests]
    errors = {r["id"]: r["error"] for r in results}
    assert errors["1"].startswith("template: row 1: URL 'http://127.0.0.1%09:")
    assert errors["1"].endswith("has a bad host")
    assert errors["2"] == ""
    assert sent == ["/ok"]


# -- methods ---------------------------------------------------------------------------


def test_a_method_is_sent_in_upper_case(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,m\n1,post\n2,Delete\n", encoding="utf-8")
    with ScriptedServer(echo) as server:
        for method in ("post", "{m}"):
            proc = _cli("run", str(rows), "-q", "--url", server.url("/m/{id}"), "-X", method,
                        "-o", str(tmp_path / "out.csv"), "--overwrite")  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        lines = sorted(_lines(r)[0] for r in server.requests)
    assert lines == [
        "DELETE /m/2 HTTP/1.1",
        "POST /m/1 HTTP/1.1",
        "POST /m/1 HTTP/1.1",
        "POST /m/2 HTTP/1.1",
    ]


# -- pandas' missing values ------------------------------------------------------------


def test_pandas_missing_values_are_sent_and_kept_as_missing() -> None:
    """pandas' NA and NaT (nullable Int64, string, boolean, datetime columns) and a
    string column's NaN are missing values, as None: nothing in a URL, null in a JSON
    body, the row number as the id. An NA id used to stop the run with a traceback
    ('boolean value of NA is ambiguous'), and other NAs were sent as the text '<NA>'.
    A boolean column's numpy True is 'true' in a URL, as a bool is (it was 'True')."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "id": pd.array([7, None], dtype="Int64"),
            "n": pd.array([1, None], dtype="Int64"),
            "s": pd.array(["a b", None], dtype="string"),
            "b": pd.array([True, None], dtype="boolean"),
            "t": pd.to_datetime(["2024-01-02 03:04:05", None]),
            # pandas 3's default string dtype: a missing string is NaN
            "k": pd.Series(["x", None], dtype="str"),
        }
    )
    url_t = "/q?n={n}&s={s}&b={b}&t={t}&k={k}"
    body = {"n": "{n}", "s": "{s}", "b": "{b}", "t": "{t}", "k": "{k}", "id": "{id}"}
    with ScriptedServer(echo) as server:
        result = drumfire.run_all(frame, server.url(url_t), json=body, keep=["n", "s", "k"])
        # the same values in Python rows (as df.to_dict("records") gives them)
        listed = drumfire.run_all(
            [{"id": pd.NA, "n": pd.NA, "s": pd.NA, "b": pd.NA, "t": pd.NaT, "k": None}],
            server.url(url_t),
            json=body,
        )
        sent = sorted(server.requests, key=lambda r: r.body)
    assert result["id"].tolist() == ["7", "2"]  # no value: the row number
    assert result["error"].tolist() == ["", ""]
    assert listed == [{**listed[0], "id": "1", "status": 200, "error": ""}]
    assert result["n"].isna().tolist() == [False, True]
    assert result["s"].isna().tolist() == [False, True]
    assert result["k"].isna().tolist() == [False, True]
    missing = [r for r in sent if r.target == "/q?n=&s=&b=&t=&k="]
    assert len(missing) == 2
    assert [json.loads(r.body) for r in missing] == [
        {"n": None, "s": None, "b": None, "t": None, "k": None, "id": None}
    ] * 2
    full = [r for r in sent if r not in missing]
    assert [r.target for r in full] == ["/q?n=1&s=a%20b&b=true&t=2024-01-02T03:04:05&k=x"]
    assert json.loads(full[0].body) == {
        "n": 1, "s": "a b", "b": True, "t": "2024-01-02T03:04:05", "k": "x", "id": 7
    }  # fmt: skip


def test_a_missing_categorical_value_is_sent_as_missing() -> None:
    """A categorical column marks a missing value with a float NaN (its categories
    cannot hold one): that was sent as the text 'nan', in the URL and the JSON body."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"c": pd.Series(["a", None, "b"], dtype="category")})
    with ScriptedServer(echo) as server:
        result = drumfire.run_all(frame, server.url("/c?c={c}"), json={"c": "{c}"}, keep=["c"])
        sent = {r.target: json.loads(r.body) for r in server.requests}
    assert sent == {"/c?c=a": {"c": "a"}, "/c?c=": {"c": None}, "/c?c=b": {"c": "b"}}
    assert result["error"].tolist() == ["", "", ""]
    assert result["c"].isna().tolist() == [False, True, False]


def test_values_json_has_no_type_for_are_sent_as_the_outputs_write_them(tmp_path: Path) -> None:
    """A Python row's bytes, tuple, timedelta or datetime is sent in a URL and a JSON
    body as JSON Lines writes it. A URL had Python's text (b'abc', (1, 'a'),
    0:01:30.500000, a datetime with a space where the JSON body had a 'T')."""
    import datetime as dt
    import decimal

    row = {
        "b": b"caf\xc3\xa9",
        "t": (1, "a"),
        "td": dt.timedelta(seconds=90.5),
        "when": dt.datetime(2024, 1, 2, 3, 4, 5),
        "d": decimal.Decimal("1.10"),
    }
    out = tmp_path / "out.jsonl"
    with ScriptedServer(echo) as server:
        drumfire.run_all(
            [row],
            server.url("/v?" + "&".join(f"{k}={{{k}}}" for k in row)),
            json={k: f"{{{k}}}" for k in row},
            keep=list(row),
            output=out,
        )
        (sent,) = server.requests
    written = json.loads(out.read_text(encoding="utf-8"))
    kept = {k: written[k] for k in row}
    assert kept == {"b": "café", "t": [1, "a"], "td": "PT90.5S", "when": "2024-01-02T03:04:05",
                    "d": "1.10"}  # fmt: skip
    assert json.loads(sent.body) == kept
    assert sent.target == (
        "/v?b=caf%C3%A9&t=%5B1,%22a%22%5D&td=PT90.5S&when=2024-01-02T03:04:05&d=1.10"
    )

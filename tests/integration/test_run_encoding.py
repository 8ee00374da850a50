"""Issue 13: every row is sent exactly as its values say.

For any string value (hypothesis text: every ASCII punctuation character, line
breaks, NUL, non-BMP characters), the request that reaches a real server on
127.0.0.1 decodes back to exactly that value, in a path segment, a query
value, a form body and a JSON body. The server is the raw-socket
:class:`ScriptedServer`, which records each request's target and body bytes as
they came off the wire; each example sends a batch of values in one run.
"""

from __future__ import annotations

import base64
import csv
import string
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import Request, ScriptedServer, echo

import drumfire

CLI = [sys.executable, "-m", "drumfire.cli"]

# Every ASCII punctuation character, white space and NUL, often; any other
# character (non-BMP included; no lone surrogates, which no UTF-8 text holds).
_chars = st.one_of(
    st.sampled_from(string.punctuation + " \t\r\n\x00\x7f"),
    st.sampled_from("é€\u2028\U0001f600\U00010348"),
    st.characters(exclude_categories=("Cs",)),
)
values = st.text(_chars, max_size=24)
batches = st.lists(values, min_size=1, max_size=50)
PROPERTY = settings(
    max_examples=12,  # about 300 values per place
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _send(
    values: list[str], url: str, refused: frozenset[str] = frozenset(), **kwargs: Any
) -> dict[str, Request]:
    """Run one batch (row i holds values[i]) against an echo server; requests by row id.

    A value in ``refused`` must be a ``template:`` row, never a request.
    """
    rows = [{"id": str(i), "v": v} for i, v in enumerate(values)]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(
            rows,
            server.base_url + url,
            headers=["X-Row: {id}"],
            concurrency=4,
            retries=0,
            **kwargs,
        )
        assert len(results) == len(values)
        for r in results:
            if values[int(r["id"])] in refused:
                assert r["status"] is None
                assert r["error"].startswith("template: ")
            else:
                assert (r["status"], r["error"]) == (200, "")
        by_row = {r.headers["x-row"]: r for r in server.requests}
    assert len(by_row) == len([v for v in values if v not in refused])
    return by_row


def _clean(target: str) -> None:
    """A request-target on the wire: printable ASCII, no space, no fragment."""
    assert all(0x21 <= ord(c) <= 0x7E for c in target), target
    assert "#" not in target


@PROPERTY
@given(batches)
def test_a_value_in_a_path_segment_arrives_as_one_segment(batch: list[str]) -> None:
    # '.' and '..' would move the path (servers remove dot segments): refused.
    dots = frozenset({".", ".."})
    got = _send(batch, "/p/{v}/end", refused=dots)
    for i, value in enumerate(batch):
        if value in dots:
            assert str(i) not in got
            continue
        target = got[str(i)].target
        _clean(target)
        assert target.startswith("/p/")
        assert target.endswith("/end")
        segment = target[3:-4]
        assert "/" not in segment
        assert "?" not in segment
        assert unquote(segment, errors="strict") == value


@PROPERTY
@given(batches)
def test_a_value_in_the_query_arrives_as_exactly_one_parameter(batch: list[str]) -> None:
    got = _send(batch, "/q?a=1&q={v}&z=2")
    for i, value in enumerate(batch):
        target = got[str(i)].target
        _clean(target)
        path, _, query = target.partition("?")
        assert path == "/q"
        assert parse_qsl(query, keep_blank_values=True, errors="strict") == [
            ("a", "1"),
            ("q", value),
            ("z", "2"),
        ]


@PROPERTY
@given(batches)
def test_a_value_in_a_form_body_arrives_as_exactly_one_field(batch: list[str]) -> None:
    got = _send(batch, "/form", data="a=1&v={v}&z=2")
    for i, value in enumerate(batch):
        request = got[str(i)]
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        body = request.body.decode("ascii")
        assert parse_qsl(body, keep_blank_values=True, errors="strict") == [
            ("a", "1"),
            ("v", value),
            ("z", "2"),
        ]


@PROPERTY
@given(batches)
def test_a_value_in_a_json_string_arrives_as_that_string(batch: list[str]) -> None:
    # Written as JSON users write it: no doubled braces.
    got = _send(batch, "/json", json='{"v": "{v}", "list": ["<{v}>"], "n": 1}')
    for i, value in enumerate(batch):
        request = got[str(i)]
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["accept"] == "application/json"
        assert orjson.loads(request.body) == {"v": value, "list": [f"<{value}>"], "n": 1}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(values, inner, max_size=3),
    max_leaves=8,
)


@PROPERTY
@given(st.lists(_json_values, min_size=1, max_size=40))
def test_a_json_lines_value_keeps_its_json_type(batch: list[Any]) -> None:
    # Rows of Python objects (as JSON Lines gives them): a placeholder outside a
    # string inserts the value as JSON, whatever its type.
    rows = [{"id": str(i), "v": v} for i, v in enumerate(batch)]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(
            rows, server.base_url + "/j", json={"v": "{v}", "s": "{id}"}, headers=["X-Row: {id}"]
        )
        assert {r["error"] for r in results} == {""}
        by_row = {r.headers["x-row"]: r for r in server.requests}
    for i, value in enumerate(batch):
        assert orjson.loads(by_row[str(i)].body) == {"v": value, "s": str(i)}


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_csv_file_through_the_command_line(tmp_path: Path, processes: str) -> None:
    # The text-input path (CSV cells are strings) and the CLI's --json, with
    # values that broke requests before issue 13; worker processes (-p 2) read
    # the cells the same way.
    nasty = [
        "a&b=c",
        "x#y",
        "1+1",
        "a/b?c",
        "../../etc",
        "100%",
        "%20",
        'say "hi"\\',
        "line\nbreak\r\n",
        "tab\there",
        "nul\x00",
        "caf\xe9 \U0001f600",
        "{v}",
        "",
        " ",
        string.punctuation,
    ]
    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(["id", "v", "n"])
        for i, v in enumerate(nasty):
            writer.writerow([i, v, "" if i % 3 == 0 else "12.5" if i % 3 == 1 else "word"])
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as server:
        proc = subprocess.run(
            [
                *CLI, "run", str(rows), "-q", "-o", str(out), "-c", "4", "-p", processes,
                "--url", server.base_url + "/p/{v}?q={v}&id={id}",
                "--json", '{"v": "{v}", "n": {n}}',
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        requests = list(server.requests)
    with out.open(newline="", encoding="utf-8") as fh:
        assert {(r["status"], r["error"]) for r in csv.DictReader(fh)} == {("200", "")}
    assert len(requests) == len(nasty)
    for request in requests:
        _clean(request.target)
        path, _, query = request.target.partition("?")
        fields = dict(parse_qsl(query, keep_blank_values=True, errors="strict"))
        i = int(fields["id"])
        assert unquote(path.removeprefix("/p/")) == nasty[i]
        assert fields["q"] == nasty[i]
        # A CSV cell where a JSON value goes: empty is null, a number stays one,
        # other text is a string.
        n = [None, 12.5, "word"][i % 3]
        assert orjson.loads(request.body) == {"v": nasty[i], "n": n}


def test_a_body_that_is_not_json_after_substitution_is_an_error_row(tmp_path: Path) -> None:
    rows = [
        {"id": "1", "frag": '"ok"'},
        {"id": "2", "frag": "not json"},
        {"id": "3", "frag": "1, 2"},
    ]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(rows, server.base_url + "/x", json='{"v": {+frag}}')
        sent = [orjson.loads(r.body) for r in server.requests]
    by_id = {r["id"]: r for r in results}
    assert by_id["1"]["status"] == 200
    assert sent == [{"v": "ok"}]  # the others never reached the wire
    for id_ in ("2", "3"):
        assert by_id[id_]["status"] is None
        assert by_id[id_]["error"].startswith(f"template: row {id_}: the body is not valid JSON")


def test_a_csv_cell_that_looks_like_json_but_is_not_is_an_error_row(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text('id,v\n1,"[1, 2]"\n2,"[1, 2"\n3,"{""a"": 1}"\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as server:
        proc = subprocess.run(
            [*CLI, "run", str(rows), "-q", "-o", str(out), "--url", server.base_url + "/x",
             "--json", '{"v": {v}}'],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        sent = sorted(orjson.dumps(orjson.loads(r.body)) for r in server.requests)
    assert proc.returncode == 0, proc.stderr
    assert sent == [b'{"v":[1,2]}', b'{"v":{"a":1}}']
    with out.open(newline="", encoding="utf-8") as fh:
        rows_out = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows_out["2"]["status"] == ""
    assert rows_out["2"]["error"].startswith("template: line 3: column 'v' starts like a JSON")


def test_url_user_info_becomes_basic_authorization() -> None:
    with ScriptedServer(echo) as server:
        port = server.port
        plain = f"http://us%40er:p%3Aw%20d@127.0.0.1:{port}/a"
        # A whole URL per row (the URL-list input too).
        drumfire.run_all(
            [{"id": "whole", "u": f"http://me:secret@127.0.0.1:{port}/b"}],
            "{u}",
            headers=["X-Row: {id}"],
        )
        # A fixed URL with credentials, and templated user info (encoded, then decoded).
        drumfire.run_all([{"id": "s"}], plain, headers=["X-Row: {id}"])
        drumfire.run_all(
            [{"id": "t", "user": "n@me:x", "pw": "p/w?#"}],
            f"http://{{user}}:{{pw}}@127.0.0.1:{port}/c",
            headers=["X-Row: {id}"],
        )
        # An explicit Authorization header wins.
        drumfire.run_all([{"id": "e"}], plain, headers=["X-Row: {id}", "Authorization: Bearer tok"])
        got = {r.headers["x-row"]: r for r in server.requests}

    def basic(request: Request) -> str:
        scheme, _, token = request.headers["authorization"].partition(" ")
        assert scheme == "Basic"
        return base64.b64decode(token).decode("utf-8")

    assert got["whole"].target == "/b"
    assert basic(got["whole"]) == "me:secret"
    assert basic(got["s"]) == "us@er:p:w d"
    assert basic(got["t"]) == "n@me:x:p/w?#"
    assert got["t"].target == "/c"
    assert got["e"].headers["authorization"] == "Bearer tok"


def test_the_command_line_refuses_a_bad_header_before_the_first_request(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,v\n1,a\n", encoding="utf-8")
    with ScriptedServer(echo) as server:
        for header, needle in [
            ("Authorization Bearer s3cret: x", "header 1: its name is not a token"),
            ("Bearer s3cret", "header 1 is not in the form 'Name: value'"),
            ("X-Key: s3cret\nEvil: 1", "header 'X-Key': its value holds a line break, NUL or"),
            ("X-Key: s3cret\x01", "header 'X-Key': its value holds a line break, NUL or other"),
            ("X-Key: s3cret\x7f", "header 'X-Key': its value holds a line break, NUL or other"),
        ]:
            proc = subprocess.run(
                [*CLI, "run", str(rows), "-q", "--url", server.base_url + "/{v}", "-H", header],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert proc.returncode == 2, proc.stderr
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1, proc.stderr
            assert needle in lines[0], proc.stderr
            assert "s3cret" not in proc.stderr
        assert server.requests == []


def test_a_templated_header_that_would_break_the_request_is_an_error_row() -> None:
    rows = [
        {"id": "1", "v": "ok\tok"},
        {"id": "2", "v": "a\r\nX-Evil: 1"},
        {"id": "3", "v": "b\x00"},
        {"id": "4", "v": "c\x1b[31m"},
    ]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(rows, server.base_url + "/h", headers=["X-V: {v}"])
        sent = [r.headers["x-v"] for r in server.requests]
    assert sent == ["ok\tok"]  # a tab is allowed in a field value (RFC 9110)
    errors = {r["id"]: r["error"] for r in results}
    assert errors["1"] == ""
    for id_ in ("2", "3", "4"):
        assert errors[id_] == (
            f"template: row {id_}: the value of header 'X-V' has a line break, NUL or other "
            "control character after substitution"
        )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('{"a": {n} {m}}', "cannot be valid JSON"),
        ('{"a": 1,}', "cannot be valid JSON"),
    ],
)
def test_a_json_template_that_can_never_be_json_is_a_usage_error(
    tmp_path: Path, template: str, message: str
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,n,m\n1,2,3\n", encoding="utf-8")
    proc = subprocess.run(
        [*CLI, "run", str(rows), "-q", "--url", "http://127.0.0.1:9/x", "--json", template],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr


def test_json_and_data_together_is_a_usage_error_and_json_file_is_sent_as_is(
    tmp_path: Path,
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id,v\n1,a\n", encoding="utf-8")
    proc = subprocess.run(
        [*CLI, "run", str(rows), "-q", "--url", "http://127.0.0.1:9/x", "--json", "{}", "-d", "a"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "drumfire: error: the body is given twice: use --data (data=) or --json (json=)"
    )
    body = tmp_path / "body.json"
    body.write_bytes(b'{"raw": "{v}"}')  # a file is bytes, sent as they are
    with ScriptedServer(echo) as server:
        proc = subprocess.run(
            [*CLI, "run", str(rows), "-q", "--url", server.base_url + "/x", "--json", f"@{body}",
             "-H", "Accept: text/plain"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        [request] = server.requests
    assert request.method == "POST"
    assert request.body == b'{"raw": "{v}"}'
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/plain"  # an explicit -H wins


@pytest.mark.parametrize(
    ("args", "content_type", "body"),
    [
        # --json with the user's Content-Type: that type is sent, the body stays JSON
        # (requests and httpx: json= encodes, an explicit header wins). -p 2: the
        # worker processes get the Job's data_is_json too.
        (["--json", '{"v": "{v}", "n": {n}}', "-H", "Content-Type: text/plain", "-p", "2"],
         "text/plain", {"v": 'say "hi"', "n": 12.5}),
        (["--json", '{"v": "{v}"}', "-H", "content-type: application/x-ndjson"],
         "application/x-ndjson", {"v": 'say "hi"'}),
        # -d with a +json type is JSON-encoded, as with application/json.
        (["-d", '{"v": "{v}", "n": {n}}', "-H", "Content-Type: application/vnd.api+json"],
         "application/vnd.api+json", {"v": 'say "hi"', "n": 12.5}),
        # -d '{v}': the body is the placeholder, no JSON text: a form, as curl's -d.
        (["-d", "{v}"], "application/x-www-form-urlencoded", "say+%22hi%22"),
        (["-d", '{"v": {v}}'], "application/json", {"v": 'say "hi"'}),
    ],
)
def test_a_json_body_keeps_the_users_content_type_and_a_placeholder_is_not_json(
    tmp_path: Path, args: list[str], content_type: str, body: Any
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text('id,v,n\n1,"say ""hi""",12.5\n', encoding="utf-8")
    with ScriptedServer(echo) as server:
        proc = subprocess.run(
            [*CLI, "run", str(rows), "-q", "-o", str(tmp_path / "out.csv"),
             "--url", server.base_url + "/x", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        [request] = server.requests
    assert request.method == "POST"
    assert request.head.lower().count(b"\r\ncontent-type:") == 1
    assert request.headers["content-type"] == content_type
    if isinstance(body, str):
        assert request.body == body.encode()
    else:
        assert orjson.loads(request.body) == body


def test_json_objects_under_a_templated_content_type_stay_json() -> None:
    rows = [{"id": "1", "v": 'a"b', "ct": "text/plain"}, {"id": "2", "v": [1], "ct": "x/y"}]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(
            rows, server.base_url + "/x", json={"v": "{v}"}, headers={"Content-Type": "{ct}"}
        )
        sent = {r.headers["content-type"]: orjson.loads(r.body) for r in server.requests}
    assert {r["error"] for r in results} == {""}
    assert sent == {"text/plain": {"v": 'a"b'}, "x/y": {"v": [1]}}

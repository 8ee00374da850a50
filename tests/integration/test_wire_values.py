"""The request on the wire is exactly what the row says, whatever its values.

Property checks over row values of every kind (any text without lone
surrogates: astral characters, NUL, CR/LF, quotes, ``& = ? # / % + ;``,
spaces, empty and long; integers beyond 64 bits; floats with NaN, the
infinities, -0.0 and 1e300; booleans; None), sent through the Python API and
the command line to the raw-socket :class:`ScriptedServer` on 127.0.0.1, and
read back from the bytes that arrived with decoders drumfire does not use
(``urllib.parse``, the standard ``json`` module, ``email``'s MIME parser), as a
server would read them. Each place a value can land is checked: a URL path
segment, a query name and value, ``{+x}`` reserved expansion, a JSON string
and a JSON value, a form field, a multipart text part and a header value.

The expected text of a value that is not a string is spelled out here, from
the README ("Templates"): None nothing, a boolean ``true``/``false``, a number
as Python writes it; in a JSON value the value's own JSON type (NaN and the
infinities ``null``). Examples are derandomized and the database is off, so
every run checks the same values.
"""

from __future__ import annotations

import csv
import json
import math
import string
import subprocess
import sys
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from servers import Request, ScriptedServer, echo

import drumfire
from drumfire.bench import bench

CLI = [sys.executable, "-m", "drumfire.cli"]

PROPERTY = settings(
    max_examples=8,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that change a request's shape, often; then any character but a lone
# surrogate (which no UTF-8 text holds).
_chars = st.one_of(
    st.sampled_from(string.punctuation + " \t\r\n\x00\x7f\x85"),
    st.sampled_from("&=?#/%+;%2e"),
    st.sampled_from("é€\u2028\ufeff\U0001f600\U00010348"),
    st.characters(exclude_categories=("Cs",)),
)
_short = st.text(_chars, max_size=16)
# Long values, cheaply: a short text repeated (the server takes a 64 KiB head).
_long = st.builds(
    lambda s, n: s * n, st.text(_chars, min_size=1, max_size=4), st.integers(150, 300)
)
_fixed = st.sampled_from(["", " ", " a", "a\t", ".", "..", "%", "%41", "a b", "#", "\r\n", "{v}"])
texts = st.one_of(_short, _short, _fixed, _long)
_floats = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 1e300, -1e300, 5e-324]),
)
_ints = st.one_of(
    st.integers(-(2**200), 2**200),
    st.sampled_from([2**64, 2**64 + 1, -(2**64) - 1, 2**63]),
)
values = st.one_of(texts, texts, _ints, _floats, st.booleans(), st.none())
batches = st.lists(values, min_size=20, max_size=40)
text_batches = st.lists(texts, min_size=20, max_size=40)

_DOTS = frozenset({".", ".."})
# RFC 9110 §5.5: what a header value may not hold (a tab may).
_HEADER_CONTROLS = frozenset(map(chr, [*range(0x09), *range(0x0A, 0x20), 0x7F]))


def text_of(value: Any) -> str:
    """What the README says a value is as text (URL, form, header, JSON string)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # nan, inf, -0.0, 1e+300
    return str(value)


def json_of(value: Any) -> Any:
    """A value where a JSON value goes: its own JSON type; NaN and infinities null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(body: bytes) -> Any:
    """The standard json module, refusing the NaN/Infinity it would otherwise take."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(body.decode("utf-8"), parse_constant=refuse)


def same(got: Any, want: Any) -> bool:
    """Equal, and for floats of the same sign (-0.0 stays -0.0)."""
    if isinstance(want, float) and isinstance(got, float):
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    return type(got) is type(want) and got == want


def _clean(target: str) -> None:
    """A request-target on the wire: printable ASCII, no space, no fragment."""
    assert all(0x21 <= ord(c) <= 0x7E for c in target), target
    assert "#" not in target


def _send(
    batch: list[Any], url: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], dict[int, Request]]:
    """Row i holds batch[i] in column ``v``: the results, and the requests by row."""
    rows = [{"id": str(i), "v": v} for i, v in enumerate(batch)]
    headers = [*kwargs.pop("headers", []), "X-Row: {id}"]
    with ScriptedServer(echo) as server:
        results = drumfire.run_all(
            rows, server.base_url + url, headers=headers, concurrency=4, retries=0, **kwargs
        )
        by_row = {int(r.headers["x-row"]): r for r in server.requests}
    assert [r["id"] for r in results] == [str(i) for i in range(len(batch))]
    return results, by_row


@PROPERTY
@given(batches)
def test_any_value_arrives_in_a_path_segment_a_query_name_and_a_query_value(
    batch: list[Any],
) -> None:
    results, got = _send(batch, "/p/{v}/end?{v}=1&q={v}&z=2")
    for i, value in enumerate(batch):
        text = text_of(value)
        if text in _DOTS:  # servers remove dot segments: refused, never sent
            assert results[i]["error"].startswith(f"template: row {i + 1}: the value ")
            assert i not in got
            continue
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        target = got[i].target
        _clean(target)
        path, _, query = target.partition("?")
        assert path.startswith("/p/")
        assert path.endswith("/end")
        segment = path[3:-4]
        assert "/" not in segment  # the value cannot move the request's path
        assert unquote(segment, errors="strict") == text
        assert parse_qsl(query, keep_blank_values=True, errors="strict") == [
            (text, "1"),
            ("q", text),
            ("z", "2"),
        ]


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_RESERVED = frozenset(":/?#[]@!$&'()*+,;=")
_HEX = frozenset(string.hexdigits)


def reserved_expansion(text: str) -> str:
    """RFC 6570 §3.2.3, written out: unreserved and reserved characters and
    ``%XX`` triplets stay, anything else is UTF-8 percent-encoded."""
    out: list[str] = []
    for k, ch in enumerate(text):
        triplet = ch == "%" and len(text) > k + 2 and {text[k + 1], text[k + 2]} <= _HEX
        if ch in _UNRESERVED or ch in _RESERVED or triplet:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


@PROPERTY
@given(batches)
def test_a_reserved_expansion_keeps_url_syntax_and_encodes_the_rest(batch: list[Any]) -> None:
    results, got = _send(batch, "/r/{+v}")
    for i, value in enumerate(batch):
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        target = got[i].target
        _clean(target)
        # A '#' starts the fragment, which is never sent.
        assert target == "/r/" + reserved_expansion(text_of(value)).partition("#")[0]


@PROPERTY
@given(batches)
def test_any_value_arrives_as_a_json_string_and_as_a_json_value(batch: list[Any]) -> None:
    results, got = _send(batch, "/j", json='{"s": "{v}", "n": {v}, "k": ["{v}"]}')
    for i, value in enumerate(batch):
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        body = strict_json(got[i].body)
        assert set(body) == {"s", "n", "k"}
        assert body["s"] == text_of(value)
        assert body["k"] == [text_of(value)]
        assert same(body["n"], json_of(value)), (body["n"], value)


@PROPERTY
@given(batches)
def test_any_value_arrives_as_one_form_field(batch: list[Any]) -> None:
    results, got = _send(batch, "/f", data="a=1&{v}={v}&z=2")
    for i, value in enumerate(batch):
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        request = got[i]
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        text = text_of(value)
        fields = parse_qsl(request.body.decode("ascii"), keep_blank_values=True, errors="strict")
        assert fields == [("a", "1"), (text, text), ("z", "2")]


@PROPERTY
@given(batches)
def test_any_value_arrives_as_a_multipart_text_part(batch: list[Any]) -> None:
    results, got = _send(batch, "/m", form={"v": "{v}", "w": "<{v}>"})
    for i, value in enumerate(batch):
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        request = got[i]
        head = b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
        message = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
        parts = list(message.iter_parts())
        names = [p.get_param("name", header="content-disposition") for p in parts]
        assert names == ["v", "w"]
        text = text_of(value).encode("utf-8")
        assert [p.get_payload(decode=True) for p in parts] == [text, b"<" + text + b">"]


def _header_line(request: Request, name: bytes) -> bytes:
    [line] = [x for x in request.head.split(b"\r\n") if x.lower().startswith(name.lower() + b":")]
    return line


@PROPERTY
@given(batches)
def test_a_header_value_arrives_as_it_is_or_the_row_is_refused(batch: list[Any]) -> None:
    results, got = _send(batch, "/h", headers=["X-V: {v}", "X-W: <{v}>"])
    for i, value in enumerate(batch):
        text = text_of(value)
        if _HEADER_CONTROLS & set(text):
            # A line break would start a header of the value's own: never sent.
            assert i not in got
            assert results[i]["error"] == (
                f"template: row {i + 1}: the value of header 'X-V' has a line break, NUL or other "
                "control character after substitution"
            )
            continue
        if text != text.strip(" \t"):
            # A server drops the spaces and tabs around a value (RFC 9110 §5.5).
            assert i not in got
            assert results[i]["error"] == (
                f"template: row {i + 1}: the value of header 'X-V' starts or ends with a space "
                "or tab after substitution, which a server would drop (RFC 9110 §5.5)"
            )
            continue
        assert (results[i]["status"], results[i]["error"]) == (200, "")
        assert _header_line(got[i], b"X-V") == b"X-V: " + text.encode("utf-8")
        assert _header_line(got[i], b"X-W") == b"X-W: <" + text.encode("utf-8") + b">"
        # ... and read back as a server reads it (RFC 9110 §5.5: the spaces and tabs
        # around a value dropped; not str.strip, which takes a UTF-8 byte 0x85 too).
        read = _header_line(got[i], b"X-V").partition(b":")[2].strip(b" \t")
        assert read.decode("utf-8") == text


# -- the command line: CSV cells (text) -------------------------------------------------------


def _json_cell(cell: str) -> tuple[bool, Any]:
    """A CSV cell where a JSON value goes (README): (accepted, the value that arrives).

    Empty: null; exactly a JSON number, true, false or null: that; starting with
    ``{`` or ``[``: that JSON, or refused; anything else: the text.
    """
    if not cell:
        return True, None
    try:
        parsed = strict_json(cell.encode())
    except ValueError:
        return cell[0] not in "{[", cell
    if cell[0] in "{[":
        return True, parsed
    scalar = parsed is None or isinstance(parsed, bool | int | float)
    return True, parsed if scalar and cell == cell.strip() else cell


# A command-line example takes a second or two: a failing one is shown as found,
# not shrunk (shrinking would take minutes).
_NO_SHRINK = (Phase.explicit, Phase.generate)


def _write_csv(path: Path, batch: list[str]) -> list[int]:
    """Write the rows; the line each row starts on (a cell may hold line breaks)."""
    lines: list[int] = []
    line = 2  # the header is line 1
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(["id", "v"])
        for i, v in enumerate(batch):
            lines.append(line)
            writer.writerow([i, v])
            line += 1 + v.count("\n")
    return lines


def _run_cli(
    tmp_path: Path, batch: list[str], url: str, *args: str
) -> tuple[dict[int, dict[str, str]], dict[int, Request], list[int]]:
    """Run the CLI over a CSV of ``batch``: the output rows and the requests by row,
    and the line each row starts on."""
    rows = tmp_path / "rows.csv"
    out = tmp_path / "out.csv"
    lines = _write_csv(rows, batch)
    with ScriptedServer(echo) as server:
        proc = subprocess.run(
            [*CLI, "run", str(rows), "-q", "-o", str(out), "--overwrite", "-c", "4",
             "--retries", "0", "--url", server.base_url + url, "-H", "X-Row: {id}", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        by_row = {int(r.headers["x-row"]): r for r in server.requests}
    with out.open(newline="", encoding="utf-8") as fh:
        results = {int(r["id"]): r for r in csv.DictReader(fh)}
    assert sorted(results) == list(range(len(batch)))
    return results, by_row, lines


@settings(PROPERTY, max_examples=4, phases=_NO_SHRINK)
@given(text_batches)
def test_csv_cells_arrive_in_the_url_and_the_json_body(
    tmp_path_factory: Any, batch: list[str]
) -> None:
    tmp_path = tmp_path_factory.mktemp("cells")
    results, got, lines = _run_cli(
        tmp_path, batch, "/p/{v}/end?{v}=1&q={v}", "--json", '{"s": "{v}", "n": {v}}'
    )
    for i, cell in enumerate(batch):
        line = lines[i]
        accepted, n = _json_cell(cell)
        error = results[i]["error"]
        if cell in _DOTS:
            assert error.startswith(f"template: line {line}: the value "), error
            assert i not in got
            continue
        if not accepted:
            assert error.startswith(f"template: line {line}: column 'v' starts like a JSON"), error
            assert i not in got
            continue
        assert (results[i]["status"], error) == ("200", "")
        target = got[i].target
        _clean(target)
        path, _, query = target.partition("?")
        assert unquote(path.removeprefix("/p/").removesuffix("/end"), errors="strict") == cell
        fields = parse_qsl(query, keep_blank_values=True, errors="strict")
        assert fields == [(cell, "1"), ("q", cell)]
        body = strict_json(got[i].body)
        assert body["s"] == cell
        assert same(body["n"], n), (body["n"], cell)


@settings(PROPERTY, max_examples=4, phases=_NO_SHRINK)
@given(text_batches)
def test_csv_cells_arrive_in_a_form_and_a_header_or_the_line_is_named(
    tmp_path_factory: Any, batch: list[str]
) -> None:
    tmp_path = tmp_path_factory.mktemp("cells")
    results, got, lines = _run_cli(tmp_path, batch, "/f", "-d", "v={v}", "-H", "X-V: {v}")
    for i, cell in enumerate(batch):
        line = lines[i]
        error = results[i]["error"]
        if _HEADER_CONTROLS & set(cell) or cell != cell.strip(" \t"):
            assert error.startswith(f"template: line {line}: the value of header 'X-V' "), error
            assert i not in got
            continue
        assert (results[i]["status"], error) == ("200", "")
        assert parse_qsl(got[i].body.decode("ascii"), keep_blank_values=True) == [("v", cell)]
        assert _header_line(got[i], b"X-V") == b"X-V: " + cell.encode("utf-8")


# -- a URL with no values: what curl and wrk send ---------------------------------------------


def test_a_url_without_placeholders_is_sent_as_curl_and_wrk_send_it(tmp_path: Path) -> None:
    # Targets that curl 7.88 and wrk 4 send as they are; drumfire's run and bench
    # send the same (an empty query too: '/x?' is not '/x', RFC 3986 §6.2.3).
    targets = [
        "/a/b?x=1&y=2",
        "/",
        "/x?",
        "/x?a",
        "/a%20b/%41?q=%2F",
        "/a%2Fb",
        "/p/%2e%2e/x",
        "/~user/!$&'()*+,;=:@?/?:@",
        "/x?a=1&a=2&=&&",
    ]
    for target in targets:
        with ScriptedServer(echo) as server:
            url = server.base_url + target
            drumfire.run_all([{"id": "1"}], url, retries=0)
            sent = [r.target for r in server.requests]
        assert sent == [target], (target, sent)
    # bench and the command lines (the same request plan), once.
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n1\n", encoding="utf-8")
    with ScriptedServer(echo) as server:
        url = server.base_url + "/x?"
        bench(url, requests=1, concurrency=1, quiet=True, progress=False)
        for args in (
            ["run", str(rows), "-q", "-o", str(tmp_path / "out.csv"), "--url", url],
            ["bench", url, "-n", "1", "-c", "1"],
        ):
            proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
        assert [r.target for r in server.requests] == ["/x?"] * 3

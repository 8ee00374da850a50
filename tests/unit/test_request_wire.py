"""The request a row makes is exactly what it says (drumfire._request, _url).

One ``Host`` (a ``-H Host`` replaces drumfire's), drumfire's own framing only,
no ``.``/``..`` value that moves the path, nothing dropped from a whole URL and
no lone ``%`` in a request-target. The bytes on a real socket are checked in
``tests/integration/test_run_wire.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumfire._errors import TemplateError
from drumfire._request import USER_AGENT, RequestPlan, asks_close, redirect
from drumfire._url import clean_target, split_url

UA = f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n".encode()


def _same_both_ways(plan: RequestPlan, row: dict[str, Any]) -> bytes | str:
    """The request bytes, or the error; the short preparers must say the same."""
    ways = [plan.prepare, plan.preparer()]
    if all(type(v) is str for v in row.values()):  # the preparer for text rows (CSV)
        ways.append(plan.preparer(text_rows=True))
    outcomes: list[bytes | str] = []
    for prepare in ways:
        try:
            outcomes.append(prepare(row).data)
        except ValueError as exc:
            outcomes.append(str(exc))
    assert outcomes[1:] == outcomes[:1] * (len(ways) - 1)
    return outcomes[0]


# -- Host ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "row", "line"),
    [
        (["Host: api.example.com"], {}, b"Host: api.example.com"),
        (["host: api.example.com:8080"], {}, b"host: api.example.com:8080"),
        (["Host: {h}"], {"h": "v.test"}, b"Host: v.test"),
        (["{n}: {h}"], {"n": "HOST", "h": "v.test"}, b"HOST: v.test"),
        ({"Host": "m.test"}, {}, b"Host: m.test"),
    ],
)
def test_a_host_header_replaces_drumfires_own_in_its_place(
    headers: Any, row: dict[str, Any], line: bytes
) -> None:
    plan = RequestPlan("http://127.0.0.1:8080/x", headers=[*headers, "X-A: 1"]
                       if isinstance(headers, list) else headers)  # fmt: skip
    data = _same_both_ways(plan, row)
    assert isinstance(data, bytes)
    extra = b"X-A: 1\r\n" if isinstance(headers, list) else b""
    assert data == b"GET /x HTTP/1.1\r\n" + line + b"\r\n" + extra + UA + b"\r\n"


def test_without_a_host_header_the_url_gives_it() -> None:
    plan = RequestPlan("http://127.0.0.1:8080/x", headers=["{n}: 1"])
    data = plan.prepare({"n": "X-Host"}).data
    assert data == b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Host: 1\r\n" + UA + b"\r\n"


def test_two_host_headers_are_refused() -> None:
    with pytest.raises(TemplateError, match=r"^header 'Host' \(-H\) is given twice"):
        RequestPlan("http://h/", headers=["Host: a", "HOST: b"])
    plan = RequestPlan("http://h/", headers=["Host: a", "{n}: b"])
    with pytest.raises(ValueError, match=r"^two Host headers after substitution"):
        plan.prepare({"n": "host"})


def test_an_empty_host_header_is_refused() -> None:
    # RFC 9112 §3.2: a request to a URL with a host sends it; "Host: " gets a 400.
    with pytest.raises(TemplateError, match=r"^header 'Host' \(-H\) is empty"):
        RequestPlan("http://h/", headers=["Host:"])
    plan = RequestPlan("http://h/", headers=["Host: {h}"])
    with pytest.raises(ValueError, match=r"^the Host header is empty after substitution"):
        plan.prepare({"h": ""})


def test_a_redirect_keeps_a_host_header_for_the_same_origin_only() -> None:
    sent = RequestPlan("http://127.0.0.1:8080/a", headers=["Host: v.test"]).prepare({})
    same = redirect(sent, 302, "/b")
    assert same is not None
    assert same.data.startswith(b"GET /b HTTP/1.1\r\nHost: v.test\r\n")
    assert same.data.count(b"Host:") == 1
    other = redirect(sent, 302, "http://other.test/c")
    assert other is not None
    assert other.data.startswith(b"GET /c HTTP/1.1\r\nHost: other.test\r\n")
    assert other.data.count(b"Host:") == 1
    plain = redirect(RequestPlan("http://127.0.0.1:8080/a").prepare({}), 302, "/b")
    assert plain is not None
    assert plain.data.startswith(b"GET /b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")


# -- drumfire's default headers -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("User-Agent", b"User-Agent: v"),
        ("accept", b"accept: v"),
        ("CONTENT-TYPE", b"CONTENT-TYPE: v"),
        ("Authorization", b"Authorization: v"),
    ],
)
@pytest.mark.parametrize("url", ["http://u:p@127.0.0.1:8080/x", "{+url}"])
def test_a_templated_name_that_gives_a_default_header_replaces_it(
    name: str, line: bytes, url: str
) -> None:
    # -H '{hn}: {hv}' whose name comes out as one of drumfire's defaults (or as the
    # Authorization the URL's credentials make) used to send both: the default and the
    # user's. As a fixed name does, it now replaces drumfire's, in this row's request.
    plan = RequestPlan(url, headers=["{hn}: {hv}"], data="a=1")
    row = {"hn": name, "hv": "v", "url": "http://u:p@127.0.0.1:8080/x"}
    data = _same_both_ways(plan, row)
    assert isinstance(data, bytes)
    head = data.split(b"\r\n\r\n")[0].lower()
    assert head.count(name.lower().encode() + b":") == 1
    assert line + b"\r\n" in data
    others = plan.prepare({**row, "hn": "X-Other"}).data.lower()
    for default in (b"user-agent:", b"accept:", b"content-type:", b"authorization: basic"):
        assert others.count(default) == 1


# -- framing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Content-Length: 5", "header 'Content-Length' (-H): drumfire sets it from the body"),
        ("CONTENT-LENGTH: {n}", "header 'CONTENT-LENGTH' (-H): drumfire sets it from the body"),
        (
            "Transfer-Encoding: chunked",
            "header 'Transfer-Encoding' (-H): drumfire sends a body with Content-Length, "
            "never chunked",
        ),
    ],
)
def test_a_framing_header_is_refused_before_the_first_request(header: str, message: str) -> None:
    for data in (None, "a={n}"):
        with pytest.raises(TemplateError) as caught:
            RequestPlan("http://h/", headers=[header], data=data)
        assert str(caught.value) == message + "; remove it"


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding"])
def test_a_templated_name_that_gives_a_framing_header_is_a_value_error(name: str) -> None:
    plan = RequestPlan("http://h/", headers=["{n}: 1"], data="a=1")
    with pytest.raises(ValueError, match=f"^header name '{{n}}' is '{name}' after substitution: "):
        plan.prepare({"n": name})
    data = plan.prepare({"n": "X-Length"}).data
    assert data.count(b"Content-Length") == 1


@pytest.mark.parametrize(
    ("headers", "may_close", "row", "closes"),
    [
        ([], False, {}, False),
        (["Connection: close"], True, {}, True),
        (["connection: Keep-Alive, CLOSE"], True, {}, True),
        (["Connection: keep-alive"], False, {}, False),
        (["Connection: {c}"], True, {"c": "close"}, True),
        (["Connection: {c}"], True, {"c": "keep-alive"}, False),
        (["{n}: close"], True, {"n": "Connection"}, True),
        (["{n}: close"], True, {"n": "X-Connection"}, False),
        (["X-Note: Connection: close"], False, {}, False),
    ],
)
def test_connection_close_is_sent_as_given_and_seen(
    headers: list[str], may_close: bool, row: dict[str, str], closes: bool
) -> None:
    plan = RequestPlan("http://h/", headers=headers)
    assert plan.may_close is may_close
    assert asks_close(plan.prepare(row).data) is closes


# -- dot segments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "row", "result"),
    [
        ("http://h/p/{v}/end", {"v": ".."}, "the value '..' (column 'v') would be a '..'"),
        ("http://h/p/{v}/end", {"v": "."}, "the value '.' (column 'v') would be a '.'"),
        ("http://h/p/{v}", {"v": ".."}, "would be a '..'"),
        ("http://h/{v}?q=1", {"v": "."}, "would be a '.'"),
        ("http://h/p/{v}#f", {"v": ".."}, "would be a '..'"),
        ("http://h:{port}/p/{v}", {"port": "81", "v": ".."}, "would be a '..'"),
        ("{base}/p/{v}/end", {"base": "http://h", "v": ".."}, "would be a '..'"),
        ("http://h/p/{a}{b}", {"a": ".", "b": "."}, "the values '.', '.' (columns 'a', 'b')"),
        ("http://h/p/.{v}/", {"v": "."}, "the value '.' (column 'v') would be a '..'"),
        ("http://h/p/{v}./", {"v": ""}, "the value '' (column 'v') would be a '.'"),
        ("http://h/p/{a}/{b}", {"a": "x", "b": ".."}, "(column 'b') would be a '..'"),
        ("http://h/p/{v}/end", {"v": "a..b"}, "/p/a..b/end"),
        ("http://h/p/{v}/end", {"v": "..x"}, "/p/..x/end"),
        ("http://h/p/{v}/end", {"v": "..."}, "/p/.../end"),
        ("http://h/p/{v}/end", {"v": ""}, "/p//end"),
        ("http://h/p/{v}/end", {"v": "%2E%2E"}, "/p/%252E%252E/end"),
        ("http://h/p/x{v}/", {"v": "."}, "/p/x./"),
        ("http://h/p/{a},{b}", {"a": ".", "b": "."}, "/p/.,."),
        ("http://h/p/..{v}/", {"v": "."}, "/p/.../"),
        ("http://h/p?q={v}", {"v": ".."}, "/p?q=.."),
        ("http://h/p?q=/{v}/", {"v": ".."}, "/p?q=/../"),
        ("http://h/r/{+v}/end", {"v": ".."}, "/r/../end"),
        ("http://h/r/{+a}{b}/end", {"a": ".", "b": "."}, "/r/../end"),
        ("http://h/r/{+v}", {"v": "../x"}, "/r/../x"),
        ("{url}", {"url": "http://h/a/../b"}, "/a/../b"),
        ("http://h/p/{v}", {"v": None}, "/p/"),
        ("http://h/p/{v}", {"v": 1.5}, "/p/1.5"),
        ("http://h/p/%2E{v}/end", {"v": "."}, "'..' path segment"),  # %2E is a '.'
        ("http://h/p/%2e{v}/end", {"v": "x"}, "/p/%2ex/end"),
    ],
)
def test_a_value_that_would_be_a_dot_segment_is_refused(
    url: str, row: dict[str, Any], result: str
) -> None:
    got = _same_both_ways(RequestPlan(url), row)
    if result.startswith("/"):
        assert isinstance(got, bytes)
        assert got.startswith(f"GET {result} HTTP/1.1\r\n".encode())
    else:
        assert isinstance(got, str)
        assert result in got
        assert got.endswith("path segment, which moves the path")


@given(st.text(alphabet=".a/%", max_size=4), st.text(alphabet=".a/%", max_size=4))
def test_only_a_segment_of_exactly_dots_is_refused(a: str, b: str) -> None:
    got = _same_both_ways(RequestPlan("http://h/s/{a}/{b}{a}/e?q={b}"), {"a": a, "b": b})
    if isinstance(got, str):
        assert a in (".", "..") or b + a in (".", "..")
    else:
        path = got.split(b" ")[1].partition(b"?")[0]
        assert b"/./" not in path
        assert b"/../" not in path


def test_the_readme_table_row_for_dot_dot() -> None:
    # README, Templates: `..` is a template: row in a path, itself everywhere else.
    row = {"v": ".."}
    with pytest.raises(ValueError, match="path segment, which moves the path"):
        RequestPlan("http://h/p/{v}").prepare(row)
    assert RequestPlan("http://h/s?q={v}").prepare(row).data.startswith(b"GET /s?q=.. ")
    assert RequestPlan("http://h/r/{+v}").prepare(row).data.startswith(b"GET /r/.. ")
    assert RequestPlan("http://h/", data="q={v}").prepare(row).data.endswith(b"\r\n\r\nq=..")
    json_string = RequestPlan("http://h/", data='{"s": "{v}"}').prepare(row).data
    assert json_string.endswith(b'{"s": ".."}')
    json_value = RequestPlan("http://h/", data='{"s": {v}}').prepare(row, text_rows=True).data
    assert json_value.endswith(b'{"s": ".."}')


# -- whole URLs: nothing dropped, no lone '%' ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h/p?q=a\tb", "/p?q=a%09b"),
        ("http://h/p?q=a\r\nb", "/p?q=a%0D%0Ab"),
        ("http://h/a\tb/c", "/a%09b/c"),
        ("http://h/p?q=a\x01b", "/p?q=a%01b"),
        ("http://h/p?q=100%", "/p?q=100%25"),
        ("http://h/p?q=%zz&r=%4", "/p?q=%25zz&r=%254"),
        ("http://h/p?q=%41%2f%E9", "/p?q=%41%2f%E9"),
        ("http://h/%/a b%", "/%25/a%20b%25"),
        ("  http://h/p?q=1\r\n", "/p?q=1"),  # around the URL: trimmed (a line from a file)
    ],
)
def test_a_whole_url_keeps_every_character_and_encodes_a_lone_percent(
    url: str, target: str
) -> None:
    assert split_url(url) == (("http", "h", 80), target)
    got = _same_both_ways(RequestPlan("{url}"), {"url": url})
    assert isinstance(got, bytes)
    assert got.startswith(f"GET {target} HTTP/1.1\r\nHost: h\r\n".encode())


def test_a_lone_percent_in_the_url_template_is_encoded_too() -> None:
    plan = RequestPlan("http://h/100%/{v}?r=%zz&s=%41")
    assert plan.prepare({"v": "x"}).data.startswith(b"GET /100%25/x?r=%25zz&s=%41 HTTP/1.1\r\n")
    assert clean_target("/%") == "/%25"
    assert clean_target("/%4") == "/%254"


@pytest.mark.parametrize("url", ["http://h\t.test/", "http://h%09.test/", "http://h%7f/"])
def test_a_control_character_in_a_host_is_a_bad_host(url: str) -> None:
    with pytest.raises(ValueError, match="has a bad host"):
        split_url(url)


def test_user_info_keeps_its_tab() -> None:
    data = RequestPlan("{url}").prepare({"url": "http://u:p\tw@h/"}).data
    assert b"\r\nAuthorization: Basic dTpwCXc=\r\n" in data  # base64 of "u:p\tw"

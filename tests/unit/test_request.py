"""Templates, URLs, bodies and the request plan (drumfire._template, _url, _body, _request)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drumfire._body import json_body, json_template
from drumfire._errors import TemplateError, UsageError
from drumfire._request import USER_AGENT, RequestPlan
from drumfire._template import Template
from drumfire._url import host_header, split_url

UA = f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n".encode()


# -- Template ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "columns", "row", "expected"),
    [
        ("plain text", (), {}, "plain text"),
        ("", (), {}, ""),
        ("{a}", ("a",), {"a": "x"}, "x"),
        ("/r/{a},{b};{a}", ("a", "b", "a"), {"a": "1", "b": "2"}, "/r/1,2;1"),
        ("{{a}}", (), {}, "{a}"),
        ("{{{a}}}", ("a",), {"a": "x"}, "{x}"),
        ("x}}y{{z", (), {}, "x}y{z"),
        ('{{"k": {v}}}', ("v",), {"v": 1}, '{"k": 1}'),
        ("{ a }", (" a ",), {" a ": "s"}, "s"),
    ],
)
def test_template_render(
    source: str, columns: tuple[str, ...], row: dict[str, Any], expected: str
) -> None:
    t = Template(source)
    assert t.columns == columns
    assert t.is_static is (not columns)
    assert t.render(row) == expected
    assert repr(t) == f"Template({source!r})"


@pytest.mark.parametrize(
    "source", ["{", "}", "{}", "a{b", "a}b", "{a{b}", "{{}", "}}}", "{}}", "x{", "{a}}"]
)
def test_malformed_templates(source: str) -> None:
    with pytest.raises(TemplateError, match="malformed template"):
        Template(source)


def test_template_error_is_a_usage_error() -> None:
    assert issubclass(TemplateError, UsageError)


@pytest.mark.parametrize("source", ["{a.b}", "{0}", "{a[0]}", "{a:>10}", "{a!r}", "{__class__}"])
def test_no_format_tricks_placeholder_is_a_literal_column_name(source: str) -> None:
    t = Template(source)
    name = source[1:-1]
    assert t.columns == (name,)
    assert t.render({name: "V"}) == "V"
    with pytest.raises(KeyError):
        t.render({"a": "unused"})


@pytest.mark.parametrize("value", ["{x}", "{0}", "{}", "{{", "}", "{a.__class__}", "%s"])
def test_values_are_inserted_verbatim(value: str) -> None:
    assert Template("[{v}]").render({"v": value}) == f"[{value}]"


@given(st.text())
def test_any_value_is_inserted_verbatim(value: str) -> None:
    assert Template("a{v}b{{c}}").render({"v": value}) == f"a{value}b{{c}}"


@given(st.text())
def test_any_text_escaped_is_static_and_renders_to_itself(text: str) -> None:
    t = Template(text.replace("{", "{{").replace("}", "}}"))
    assert t.is_static
    assert t.render({}) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12, "12"),
        (-3, "-3"),
        (1.5, "1.5"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        ({"a": [1, None]}, '{"a":[1,null]}'),
        ([1, "x"], '[1,"x"]'),
        ("", ""),
        ("caf\xe9", "caf\xe9"),
    ],
)
def test_non_str_values(value: Any, text: str) -> None:
    assert Template("{v}").render({"v": value}) == text


def test_missing_column_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="lat"):
        Template("{lon},{lat}").render({"lon": "1"})


def test_template_check() -> None:
    t = Template("http://h/{a}/{b}")
    t.check({"a", "b", "c"})
    with pytest.raises(TemplateError, match=r"column 'b'.*columns: a, c"):
        t.check({"a", "c"})
    with pytest.raises(TemplateError, match="columns: none"):
        t.check(set())


# -- URLs and Host -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin", "target"),
    [
        ("http://example.com", ("http", "example.com", 80), "/"),
        ("http://example.com/a?b=1", ("http", "example.com", 80), "/a?b=1"),
        ("HTTP://Example.COM:8080/a", ("http", "example.com", 8080), "/a"),
        ("https://example.com/a#frag", ("https", "example.com", 443), "/a"),
        ("http://[::1]:5000/x", ("http", "::1", 5000), "/x"),
        # An empty query is kept, as curl and wrk send it ('/x?' is not '/x').
        ("http://example.com/x?", ("http", "example.com", 80), "/x?"),
        ("http://example.com?#f", ("http", "example.com", 80), "/?"),
        ("http://example.com/x#f?", ("http", "example.com", 80), "/x"),
    ],
)
def test_split_url(url: str, origin: tuple[str, str, int], target: str) -> None:
    assert split_url(url) == (origin, target)


@pytest.mark.parametrize("url", ["ftp://h/", "h/path", "http:///path", "http://h:99999/"])
def test_split_url_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        split_url(url)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (("http", "h", 80), "h"),
        (("http", "h", 8080), "h:8080"),
        (("https", "h", 443), "h"),
        (("https", "h", 80), "h:80"),
        (("http", "h", 443), "h:443"),
        (("http", "::1", 80), "[::1]"),
        (("http", "::1", 81), "[::1]:81"),
    ],
)
def test_host_header(origin: tuple[str, str, int], host: str) -> None:
    assert host_header(origin) == host


# -- RequestPlan.prepare ---------------------------------------------------------------


def test_get_with_static_origin_exact_bytes() -> None:
    plan = RequestPlan("http://example.com/route/{a},{b}?steps=false")
    p = plan.prepare({"a": "1.5", "b": "2"})
    assert p.origin == ("http", "example.com", 80)
    assert p.method == "GET"
    assert p.idempotent is True
    assert p.data == (
        b"GET /route/1.5,2?steps=false HTTP/1.1\r\nHost: example.com\r\n" + UA + b"\r\n"
    )


def test_non_default_port_in_host_header() -> None:
    p = RequestPlan("http://127.0.0.1:5000/x/{v}").prepare({"v": 1})
    assert p.origin == ("http", "127.0.0.1", 5000)
    assert p.data.startswith(b"GET /x/1 HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n")


@pytest.mark.parametrize(
    ("url", "host"),
    [("http://h:80/", b"h"), ("https://h:443/", b"h"), ("https://h/", b"h")],
)
def test_default_port_omitted(url: str, host: bytes) -> None:
    p = RequestPlan(url).prepare({})
    assert b"\r\nHost: " + host + b"\r\n" in p.data


def test_https_origin() -> None:
    p = RequestPlan("https://api.example.com/v1?q={q}").prepare({"q": "x"})
    assert p.origin == ("https", "api.example.com", 443)
    assert p.data.startswith(b"GET /v1?q=x HTTP/1.1\r\nHost: api.example.com\r\n")


@pytest.mark.parametrize(
    ("url", "row", "origin", "start"),
    [
        (
            "http://{host}/x/{a}",
            {"host": "h2:81", "a": "q"},
            ("http", "h2", 81),
            b"GET /x/q HTTP/1.1\r\nHost: h2:81\r\n",
        ),
        (
            "http://{host}:{port}/x",
            {"host": "h3", "port": 8443},
            ("http", "h3", 8443),
            b"GET /x HTTP/1.1\r\nHost: h3:8443\r\n",
        ),
        (
            "{url}",
            {"url": "https://h4/a b?c=d"},
            ("https", "h4", 443),
            b"GET /a%20b?c=d HTTP/1.1\r\nHost: h4\r\n",
        ),
        (
            "{scheme}://h5/",
            {"scheme": "https"},
            ("https", "h5", 443),
            b"GET / HTTP/1.1\r\nHost: h5\r\n",
        ),
    ],
)
def test_dynamic_origin(
    url: str, row: dict[str, Any], origin: tuple[str, str, int], start: bytes
) -> None:
    plan = RequestPlan(url)
    p = plan.prepare(row)
    assert p.origin == origin
    assert p.data.startswith(start)


def test_dynamic_origin_differs_per_row_and_caches_header_block_per_origin() -> None:
    plan = RequestPlan("{url}")
    a = plan.prepare({"url": "http://a/1"})
    b = plan.prepare({"url": "http://b:8/2"})
    a2 = plan.prepare({"url": "http://a/3"})
    assert (a.origin, b.origin, a2.origin) == (
        ("http", "a", 80),
        ("http", "b", 8),
        ("http", "a", 80),
    )
    assert b"Host: a\r\n" in a.data
    assert b"Host: b:8\r\n" in b.data
    assert b"Host: a\r\n" in a2.data


def test_dynamic_origin_bad_url_is_value_error() -> None:
    plan = RequestPlan("{url}")
    with pytest.raises(ValueError, match="only http"):
        plan.prepare({"url": "ftp://x/"})
    with pytest.raises(ValueError, match="only http"):
        plan.prepare({"url": "not a url"})


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a b", b"a%20b"),
        ("caf\xe9", b"caf%C3%A9"),
        ("x\r\nHost: evil", b"x%0D%0AHost%3A%20evil"),
        ("tab\there", b"tab%09here"),
        ('q"<>\\^`{|}', b"q%22%3C%3E%5C%5E%60%7B%7C%7D"),
        # Issue 13: a value is data, not URL syntax: '%' is encoded (the old rule kept
        # it, so "%20" reached the server as a space), and so are ',;:@' in a path.
        ("already%20encoded", b"already%2520encoded"),
        ("a,b;c:d@e", b"a%2Cb%3Bc%3Ad%40e"),
        ("a/b?c#d", b"a%2Fb%3Fc%23d"),
        ("../x", b"..%2Fx"),
        ("24.94-_~", b"24.94-_~"),
    ],
)
def test_unsafe_characters_are_percent_encoded_in_the_target(value: str, encoded: bytes) -> None:
    p = RequestPlan("http://h/p/{v}").prepare({"v": value})
    head = p.data.split(b"\r\n", 1)[0]
    assert head == b"GET /p/" + encoded + b" HTTP/1.1"


@given(st.text())
def test_request_line_is_always_one_clean_line(value: str) -> None:
    p = RequestPlan("http://h/p?q={v}").prepare({"v": value})
    line, rest = p.data.split(b"\r\n", 1)
    assert line.startswith(b"GET /p?q=")
    assert line.endswith(b" HTTP/1.1")
    target = line[4:-9]
    assert all(0x21 <= c <= 0x7E for c in target)
    assert rest.startswith(b"Host: h\r\n")


def test_literal_braces_in_a_static_url() -> None:
    p = RequestPlan("http://h/a{{b}}").prepare({})
    assert p.data.startswith(b"GET /a%7Bb%7D HTTP/1.1\r\n")


def test_literal_braces_in_a_templated_url() -> None:
    p = RequestPlan("http://h/a{{b}}/{v}").prepare({"v": "{c}"})
    assert p.data.startswith(b"GET /a%7Bb%7D/%7Bc%7D HTTP/1.1\r\n")


def test_header_templates() -> None:
    plan = RequestPlan(
        "http://h/", headers=["X-Id: {id}", "Authorization: Bearer {token}", "X-Static: s"]
    )
    p = plan.prepare({"id": 7, "token": "t0k"})
    assert p.data == (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Id: 7\r\nAuthorization: Bearer t0k\r\n"
        b"X-Static: s\r\n" + UA + b"\r\n"
    )
    assert plan.columns == {"id", "token"}


def test_header_name_template() -> None:
    p = RequestPlan("http://h/", headers=[("X-{n}", "v")]).prepare({"n": "Name"})
    assert b"\r\nX-Name: v\r\n" in p.data


def test_headers_as_mapping_override_defaults() -> None:
    p = RequestPlan(
        "http://h/", headers={"User-Agent": "me/1", "accept": "application/json"}
    ).prepare({})
    assert (
        p.data
        == b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: me/1\r\naccept: application/json\r\n\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nEvil: x", "a\nb", "a\rb", "a\x00b", "a\x01b", "a\x7f"])
def test_header_value_with_line_break_after_substitution(value: str) -> None:
    plan = RequestPlan("http://h/", headers=["X-A: {v}"])
    with pytest.raises(ValueError, match="line break, NUL or other control") as info:
        plan.prepare({"v": value})
    assert value not in str(info.value)


@pytest.mark.parametrize(
    ("template", "value"),
    [("{v}", " a"), ("{v}", "a\t"), ("{v}", " "), ("Bearer {v}", ""), ("{v} x", "\t")],
)
def test_header_value_with_spaces_around_it_after_substitution(template: str, value: str) -> None:
    # A server drops them (RFC 9110 §5.5): it would read another value than the row's.
    plan = RequestPlan("http://h/", headers=[("X-A", template)])
    with pytest.raises(ValueError, match="starts or ends with a space or tab") as info:
        plan.prepare({"v": value})
    assert str(info.value) == (
        "the value of header 'X-A' starts or ends with a space or tab after substitution, "
        "which a server would drop (RFC 9110 §5.5)"
    )
    # Inside the value, and an empty value, are sent as they are.
    for inside in ("a b", "a\tb", ""):
        assert f"\r\nX-A: {inside}\r\n".encode() in RequestPlan(
            "http://h/", headers=[("X-A", "{v}")]
        ).prepare({"v": inside}).data


@pytest.mark.parametrize("name", ["X-A: b", "X\r\nB", "", "X A", "X(A)", "é"])
def test_header_name_that_is_not_a_token_after_substitution(name: str) -> None:
    plan = RequestPlan("http://h/", headers=[("{n}", "v")])
    with pytest.raises(ValueError, match="not a token"):
        plan.prepare({"n": name})


@pytest.mark.parametrize("header", ["NoColon", ": value", "   : v"])
def test_malformed_header_option(header: str) -> None:
    with pytest.raises(TemplateError, match="Name: value"):
        RequestPlan("http://h/", headers=[header])


def test_post_json_body() -> None:
    plan = RequestPlan("http://h/api", data='{{"id": {id}, "name": "{name}"}}')
    p = plan.prepare({"id": 3, "name": "caf\xe9"})
    body = '{"id": 3, "name": "caf\xe9"}'.encode()
    assert p.method == "POST"
    assert p.idempotent is False
    assert p.data == (
        b"POST /api HTTP/1.1\r\nHost: h\r\n"
        + UA
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    assert plan.columns == {"id", "name"}


@pytest.mark.parametrize("data", ["[{v}]", "  {{}}"])
def test_json_content_type_for_array_or_leading_space(data: str) -> None:
    p = RequestPlan("http://h/", data=data).prepare({"v": 1})
    assert b"\r\nContent-Type: application/json\r\n" in p.data


def test_post_form_body() -> None:
    p = RequestPlan("http://h/", data="a={a}&b=2").prepare({"a": "x"})
    assert b"\r\nContent-Type: application/x-www-form-urlencoded\r\n" in p.data
    assert p.data.endswith(b"\r\nContent-Length: 7\r\n\r\na=x&b=2")


def test_bytes_body_is_sent_as_is() -> None:
    p = RequestPlan("http://h/", data=b'{"raw": "{x}"}').prepare({})
    assert p.data.endswith(b'Content-Length: 14\r\n\r\n{"raw": "{x}"}')
    assert b"application/json" in p.data


def test_explicit_content_type_is_kept() -> None:
    p = RequestPlan("http://h/", data="{{}}", headers=["Content-Type: text/plain"]).prepare({})
    assert p.data.count(b"Content-Type") == 1
    assert b"\r\nContent-Type: text/plain\r\n" in p.data


def test_empty_body_methods_send_content_length_zero() -> None:
    for method in ("POST", "PUT", "PATCH"):
        p = RequestPlan("http://h/", method=method).prepare({})
        assert p.data.endswith(b"\r\nContent-Length: 0\r\n\r\n")
    for method in ("GET", "DELETE", "HEAD", "OPTIONS"):
        p = RequestPlan("http://h/", method=method).prepare({})
        assert b"Content-Length" not in p.data


@pytest.mark.parametrize(
    ("method", "data", "expected"),
    [
        (None, None, "GET"),
        (None, "x", "POST"),
        ("", None, "GET"),
        ("put", None, "PUT"),
        ("Delete", None, "DELETE"),
        ("GET", "x", "GET"),
        ("head", None, "HEAD"),
    ],
)
def test_method_defaults(method: str | None, data: str | None, expected: str) -> None:
    p = RequestPlan("http://h/", method=method, data=data).prepare({})
    assert p.method == expected
    assert p.data.startswith(expected.encode() + b" / HTTP/1.1\r\n")


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        ("GET", True),
        ("HEAD", True),
        ("PUT", True),
        ("DELETE", True),
        ("OPTIONS", True),
        ("POST", False),
        ("PATCH", False),
    ],
)
def test_idempotent_flag(method: str, idempotent: bool) -> None:
    assert RequestPlan("http://h/", method=method).prepare({}).idempotent is idempotent
    templated = RequestPlan("http://h/", method="{m}").prepare({"m": method.lower()})
    assert templated.method == method
    assert templated.idempotent is idempotent


def test_method_template() -> None:
    plan = RequestPlan("http://h/{p}", method="{verb}")
    assert plan.columns == {"p", "verb"}
    p = plan.prepare({"p": "x", "verb": "patch"})
    assert p.method == "PATCH"
    assert p.data.startswith(b"PATCH /x HTTP/1.1\r\n")


def test_unsupported_static_method_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="unsupported method 'FETCH'"):
        RequestPlan("http://h/", method="fetch")


def test_unsupported_templated_method_is_a_value_error() -> None:
    plan = RequestPlan("http://h/", method="{m}")
    with pytest.raises(ValueError, match="unsupported method 'CONNECT'"):
        plan.prepare({"m": "connect"})


def test_missing_column_at_prepare_is_key_error() -> None:
    with pytest.raises(KeyError):
        RequestPlan("http://h/{a}").prepare({"b": 1})


def test_plan_check_names_the_missing_column() -> None:
    plan = RequestPlan("http://h/{a}", headers=["X-B: {b}"], data="c={c}", method="{m}")
    assert plan.columns == {"a", "b", "c", "m"}
    plan.check({"a", "b", "c", "m"})
    for missing in ("a", "b", "c", "m"):
        with pytest.raises(TemplateError, match=f"column '{missing}'"):
            plan.check({"a", "b", "c", "m"} - {missing})


def test_malformed_url_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError):
        RequestPlan("http://h/{unclosed")


def test_static_unsupported_url_raises_at_construction() -> None:
    with pytest.raises(TemplateError, match="only http"):
        RequestPlan("ftp://h/x")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:abc/{x}", "bad port"),
        ("http://127.0.0.1:99999/route/{x}", "bad port"),
        ("ftp://h/{x}", "only http"),
        ("http:///{x}", "no host"),
    ],
)
def test_a_bad_fixed_origin_is_a_usage_error(url: str, message: str) -> None:
    # The part before the first placeholder fixes the origin: a bad one would
    # fail every row, so it stops the run before the first request.
    with pytest.raises(TemplateError, match=message):
        RequestPlan(url)


def test_the_short_preparer_gives_the_same_bytes_as_prepare() -> None:
    from drumfire._request import RequestPlan

    plan = RequestPlan("http://127.0.0.1:8080/route/{a},{b}?q={c}", headers=["X-Key: k"])
    fast = plan.preparer()
    assert fast != plan.prepare  # this plan takes the short way
    for row in ({"a": "1", "b": "2", "c": "x y"}, {"a": 1, "b": None, "c": "é<>"}):
        assert fast(row) == plan.prepare(row)
    text = plan.preparer(text_rows=True)  # for rows of str only (CSV, text input)
    for row in ({"a": "1", "b": "2", "c": "x y"}, {"a": "{b}", "b": "", "c": "é<>%"}):
        assert text(row) == plan.prepare(row)
    with pytest.raises(KeyError, match="'c'"):
        text({"a": "1", "b": "2"})
    one = RequestPlan("http://127.0.0.1:8080/v/{a}")  # one column
    assert one.preparer(text_rows=True)({"a": "x"}) == one.prepare({"a": "x"})
    templated = RequestPlan("http://127.0.0.1:8080/{a}", headers=["X-Key: {a}"])
    assert templated.preparer() == templated.prepare


# -- issue 13: each value encoded for the place where it lands ---------------------------

HTTP_PUNCT = "".join(chr(c) for c in range(0x20, 0x7F) if not chr(c).isalnum())


def _target(url: str, row: dict[str, Any]) -> bytes:
    return RequestPlan(url).prepare(row).data.split(b"\r\n", 1)[0][4:-9]


@pytest.mark.parametrize(
    ("value", "path", "query", "reserved", "form"),
    [
        ("24.94", "24.94", "24.94", "24.94", "24.94"),
        ("a b", "a%20b", "a%20b", "a%20b", "a+b"),
        ("a&b=c", "a%26b%3Dc", "a%26b%3Dc", "a&b=c", "a%26b%3Dc"),
        ("1+1", "1%2B1", "1%2B1", "1+1", "1%2B1"),
        ("a/b?c", "a%2Fb%3Fc", "a/b?c", "a/b?c", "a%2Fb%3Fc"),
        ("x#y", "x%23y", "x%23y", "x", "x%23y"),
        ("100%", "100%25", "100%25", "100%25", "100%25"),
        ("%41", "%2541", "%2541", "%41", "%2541"),
        ("a;b,c:d@e", "a%3Bb%2Cc%3Ad%40e", "a%3Bb,c:d@e", "a;b,c:d@e", "a%3Bb%2Cc%3Ad%40e"),
        ("caf\xe9", "caf%C3%A9", "caf%C3%A9", "caf%C3%A9", "caf%C3%A9"),
        ("\U0001f600", "%F0%9F%98%80", "%F0%9F%98%80", "%F0%9F%98%80", "%F0%9F%98%80"),
        ("\r\n\x00", "%0D%0A%00", "%0D%0A%00", "%0D%0A%00", "%0D%0A%00"),
    ],
)
def test_encoding_table(value: str, path: str, query: str, reserved: str, form: str) -> None:
    # The README's table: each row of it is checked here.
    row = {"v": value}
    assert _target("http://h/p/{v}", row) == b"/p/" + path.encode()
    assert _target("http://h/s?q={v}", row) == b"/s?q=" + query.encode()
    assert _target("http://h/r/{+v}", row) == b"/r/" + reserved.encode()
    body = RequestPlan("http://h/", data="v={v}").prepare(row).data.split(b"\r\n\r\n", 1)[1]
    assert body == b"v=" + form.encode()


@given(st.text())
def test_a_path_value_decodes_back_and_stays_one_segment(value: str) -> None:
    if value in (".", ".."):  # a dot segment would move the path: refused
        with pytest.raises(ValueError, match="path segment, which moves the path"):
            _target("http://h/a/{v}/b", {"v": value})
        return
    target = _target("http://h/a/{v}/b", {"v": value}).decode("ascii")
    segment = target.removeprefix("/a/").removesuffix("/b")
    assert "/" not in segment
    assert unquote(segment, errors="strict") == value


@given(st.text(), st.text())
def test_a_query_value_decodes_back_as_exactly_one_parameter(key: str, value: str) -> None:
    target = _target("http://h/s?{k}={v}&z=1", {"k": key, "v": value}).decode("ascii")
    query = target.partition("?")[2]
    assert parse_qsl(query, keep_blank_values=True, errors="strict") == [(key, value), ("z", "1")]


@given(st.text(alphabet=st.sampled_from(HTTP_PUNCT + "aZ09é")))
def test_the_short_preparer_encodes_like_prepare(value: str) -> None:
    plan = RequestPlan("http://h:81/r/{a},{b}?q={c}&r={+d}")
    row = {"a": value, "b": "1.5", "c": value, "d": value}
    expected = plan.prepare(row)
    assert plan.preparer(text_rows=True)(row) == expected
    assert plan.preparer()(row) == expected
    one = RequestPlan("http://h:81/r/{+a}")
    assert one.preparer(text_rows=True)({"a": value}) == one.prepare({"a": value})


def test_non_str_values_in_a_url_are_encoded_too() -> None:
    plan = RequestPlan("http://h/p/{a}?b={b}&c={c}")
    row = {"a": {"k": "v w"}, "b": None, "c": True}
    assert _target("http://h/p/{a}?b={b}&c={c}", row) == (
        b"/p/%7B%22k%22%3A%22v%20w%22%7D?b=&c=true"
    )
    assert plan.preparer()(row) == plan.prepare(row)


@pytest.mark.parametrize(
    ("url", "row", "origin", "target"),
    [
        # a whole URL: only what may not be on the wire is encoded, as before
        ("{url}", {"url": "https://h/a b?c=d&e=%41#f"}, ("https", "h", 443), b"/a%20b?c=d&e=%41"),
        # the start of a URL; the placeholders after it are encoded where they land
        ("{base}/x/{a}?q={b}", {"base": "http://h:81/api", "a": "a/b", "b": "&"},
         ("http", "h", 81), b"/api/x/a%2Fb?q=%26"),
        ("{scheme}://{host}:{port}/x/{a}", {"scheme": "https", "host": "h", "port": 8443,
         "a": "?"}, ("https", "h", 8443), b"/x/%3F"),
        ("http://{host}/", {"host": "[::1]:8080"}, ("http", "::1", 8080), b"/"),
        ("{url}", {"url": "http://b\xfccher.example/"}, ("http", "xn--bcher-kva.example", 80),
         b"/"),
    ],
)  # fmt: skip
def test_origin_placeholders(
    url: str, row: dict[str, Any], origin: tuple[str, str, int], target: bytes
) -> None:
    p = RequestPlan(url).prepare(row)
    assert p.origin == origin
    assert p.data.split(b"\r\n", 1)[0] == b"GET " + target + b" HTTP/1.1"


@pytest.mark.parametrize("host", ["evil.com/x", "a b", "h?x", "h#x", "u@h", "h\r\n"])
def test_a_host_value_with_url_syntax_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="column 'host' goes into the URL's host") as info:
        RequestPlan("http://{host}/x").prepare({"host": host})
    assert host not in str(info.value)


def test_query_right_after_the_authority_and_fragments() -> None:
    plan = RequestPlan("http://h:81?q={q}#frag-{f}")
    assert plan.preparer() != plan.prepare  # a fixed origin: the short way
    p = plan.prepare({"q": "a b", "f": "never sent"})
    assert p.origin == ("http", "h", 81)
    assert p.data.startswith(b"GET /?q=a%20b HTTP/1.1\r\n")
    assert RequestPlan("http://h/a#{f}").prepare({}).data.startswith(b"GET /a HTTP/1.1\r\n")


def test_url_user_info_becomes_basic_authorization() -> None:
    static = RequestPlan("http://us%40er:p%3Aw@h/{a}").prepare({"a": "x"})
    assert b"\r\nAuthorization: Basic dXNAZXI6cDp3\r\n" in static.data  # "us@er:p:w"
    assert b"us%40er" not in static.data
    whole = RequestPlan("{url}").prepare({"url": "http://me@h/"})
    assert b"\r\nAuthorization: Basic bWU6\r\n" in whole.data  # "me:"
    templated = RequestPlan("http://{u}:{p}@h/").prepare({"u": "a:b", "p": "é/"})
    assert b"\r\nAuthorization: Basic YTpiOsOpLw==\r\n" in templated.data  # "a:b:é/"
    explicit = RequestPlan("http://u:p@h/", headers=["authorization: Bearer t"]).prepare({})
    assert explicit.data.count(b"uthorization") == 1
    assert b"\r\nauthorization: Bearer t\r\n" in explicit.data
    assert b"Authorization" not in RequestPlan("http://h/").prepare({}).data


def test_error_messages_hide_url_passwords() -> None:
    with pytest.raises(ValueError, match="only http") as info:
        RequestPlan("{url}").prepare({"url": "ftp://me:s3cret@h/"})
    assert "s3cret" not in str(info.value)
    assert "***@h" in str(info.value)


# -- JSON bodies ------------------------------------------------------------------------

JSON_HEAD = b"Content-Type: application/json\r\n"


def _body(plan: RequestPlan, row: dict[str, Any], text_rows: bool = False) -> bytes:
    p = plan.preparer(text_rows=text_rows)(row)
    head, _, body = p.data.partition(b"\r\n\r\n")
    assert b"\r\nContent-Length: %d" % len(body) in head
    return body


def test_a_json_body_is_written_as_json() -> None:
    plan = RequestPlan("http://h/", data='{"text": "{text}", "n": {n}, "o": {"k": [{n}]}}')
    assert plan.columns == {"text", "n"}
    body = _body(plan, {"text": 'say "hi"\\\n', "n": 3})
    assert body == b'{"text": "say \\"hi\\"\\\\\\n", "n": 3, "o": {"k": [3]}}'
    assert orjson.loads(body)["text"] == 'say "hi"\\\n'


def test_the_old_doubled_braces_still_work() -> None:
    plan = RequestPlan("http://h/", data='{{"id": {id}, "o": {{"n": "{name}"}}}}')
    assert orjson.loads(_body(plan, {"id": 1, "name": "x"})) == {"id": 1, "o": {"n": "x"}}


@pytest.mark.parametrize(
    ("template", "row", "expected"),
    [
        ('{"a": "{{b}}"}', {}, {"a": "{b}"}),  # a literal {column} inside a string
        ('{"a": "{not a column"}', {}, {"a": "{not a column"}),
        ('{"a": "}{"}', {}, {"a": "}{"}),
        ('{"a": {}, "b": [], "c": { "d": 1}}', {}, {"a": {}, "b": [], "c": {"d": 1}}),
        ('{"{k}": "{v}"}', {"k": "key", "v": "val"}, {"key": "val"}),
        ('[{v}, "{v}"]', {"v": "x"}, ["x", "x"]),
        ('{"first name": "{first name}"}', {"first name": "Ann"}, {"first name": "Ann"}),
    ],
)
def test_json_braces(template: str, row: dict[str, Any], expected: Any) -> None:
    assert orjson.loads(_body(RequestPlan("http://h/", data=template), row)) == expected


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("", None),
        ("12", 12),
        ("-1.5e3", -1500.0),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ('{"a": "b"}', {"a": "b"}),
        ("007", "007"),  # not a JSON number: kept as text
        ("+1", "+1"),
        (" 12", " 12"),
        ("NaN", "NaN"),
        ("True", "True"),
        ("word", "word"),
        ('"quoted"', '"quoted"'),
    ],
)
def test_a_text_cell_where_a_json_value_goes(cell: str, value: Any) -> None:
    plan = RequestPlan("http://h/", data='{"v": {v}}')
    assert orjson.loads(_body(plan, {"v": cell}, text_rows=True)) == {"v": value}
    # Python and JSON Lines values keep their own type: a str is a string.
    assert orjson.loads(_body(plan, {"v": cell})) == {"v": cell}


@pytest.mark.parametrize("cell", ["[1, 2", "{a: 1}", "{"])
def test_a_text_cell_that_looks_like_json_but_is_not(cell: str) -> None:
    plan = RequestPlan("http://h/", data='{"v": {v}}')
    with pytest.raises(ValueError, match="column 'v' starts like a JSON object or array"):
        plan.preparer(text_rows=True)({"v": cell})


@pytest.mark.parametrize(
    "value",
    [1, -2.5, True, None, [1, "a", None], {"k": [1.5]}, 2**70, "s", float("nan"), float("inf")],
)
def test_python_values_keep_their_json_type(value: Any) -> None:
    body = _body(RequestPlan("http://h/", data='{"v": {v}, "s": "{v}"}'), {"v": value})
    doc = orjson.loads(body)
    if isinstance(value, float) and (value != value or value == float("inf")):
        assert doc["v"] is None  # NaN (pandas' missing value) and infinities are null
    elif isinstance(value, int) and not isinstance(value, bool) and value > 2**64:
        assert body.startswith(b'{"v": %d,' % value)
    else:
        assert doc["v"] == value


@given(st.text())
def test_any_text_in_a_json_string_arrives_as_that_string(value: str) -> None:
    plan = RequestPlan("http://h/", data='{"v": "<{v}>"}')
    assert orjson.loads(_body(plan, {"v": value})) == {"v": f"<{value}>"}
    assert orjson.loads(_body(plan, {"v": value}, text_rows=True)) == {"v": f"<{value}>"}


@pytest.mark.parametrize(
    "template", ['{"a": {n} {m}}', '{"a": 1,}', '{"a": "{n}}', "[1, 2", '{"a": 1{n}}']
)
def test_a_json_template_that_cannot_be_json_is_a_template_error(template: str) -> None:
    with pytest.raises(TemplateError, match=r"is sent as JSON .* but cannot be valid JSON"):
        RequestPlan("http://h/", data=template)


def test_raw_json_placeholders_are_checked_on_every_row() -> None:
    plan = RequestPlan("http://h/", data='{"v": {+frag}}')
    assert orjson.loads(_body(plan, {"frag": "[1, 2]"})) == {"v": [1, 2]}
    with pytest.raises(ValueError, match="the body is not valid JSON after substitution"):
        plan.prepare({"frag": "1, 2"})


def test_a_lone_surrogate_is_a_value_error_not_a_crash() -> None:
    for data in ('{"v": "{v}"}', '{"v": {v}}', "v={v}"):
        with pytest.raises(ValueError, match="surrogate"):
            RequestPlan("http://h/", data=data).prepare({"v": 'a\ud800"b'})


@pytest.mark.parametrize(
    ("headers", "data", "body"),
    [
        (["Content-Type: application/json"], '"{v}"', b'"a\\"b"'),
        (["Content-Type: application/vnd.api+json; charset=utf-8"], '["{v}"]', b'["a\\"b"]'),
        # not JSON, or unknown: values as they are, braces doubled (the strict syntax)
        (["Content-Type: text/plain"], '{{"v": "{v}"}}', b'{"v": "a"b"}'),
        (["Content-Type: {ct}"], '{{"v": "{v}"}}', b'{"v": "a"b"}'),
    ],
)
def test_json_is_chosen_by_content_type(headers: list[str], data: str, body: bytes) -> None:
    plan = RequestPlan("http://h/", data=data, headers=headers)
    assert _body(plan, {"v": 'a"b', "ct": "application/json"}) == body


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-ndjson", "Application/Vnd.Api+JSON", "{ct}", "application/json"],
)
def test_a_json_body_stays_json_under_the_callers_content_type(content_type: str) -> None:
    # json= / --json (json=True): encoded as JSON, sent with the caller's Content-Type, as
    # requests and httpx do; the template is read as JSON (no doubled braces) for any type.
    plan = RequestPlan(
        "http://h/", data='{"v": "{v}", "n": {n}}', headers=[f"Content-Type: {content_type}"],
        json=True,
    )  # fmt: skip
    data = plan.prepare({"v": 'a"b', "n": 5, "ct": "text/plain"}).data
    assert data.endswith(b'\r\n\r\n{"v": "a\\"b", "n": 5}')
    assert data.count(b"Content-Type") == 1
    sent = "text/plain" if content_type == "{ct}" else content_type
    assert f"\r\nContent-Type: {sent}\r\n".encode() in data


def test_a_json_body_without_a_content_type_is_application_json() -> None:
    # A body that is one placeholder is a JSON value here: json=True says it is JSON.
    data = RequestPlan("http://h/", data="{v}", json=True).prepare({"v": 'a"b'}).data
    assert b"\r\nContent-Type: application/json\r\n" in data
    assert data.endswith(b'\r\n\r\n"a\\"b"')


def test_a_json_body_that_cannot_be_json_names_json_not_the_content_type() -> None:
    with pytest.raises(TemplateError, match=r"is sent as JSON \(--json \(json=\)\) but cannot"):
        RequestPlan("http://h/", data='{"a": 1,}', headers=["Content-Type: text/plain"], json=True)


@pytest.mark.parametrize(
    ("data", "content_type", "body"),
    [
        # The body's own text decides, not the brace of a placeholder (curl's -d: a form).
        ("{v}", "application/x-www-form-urlencoded", b"a%22b+c"),
        ("  {v}", "application/x-www-form-urlencoded", b"  a%22b+c"),
        ("{+v}", "application/x-www-form-urlencoded", b'a"b c'),
        ("{k}={v}&x=1", "application/x-www-form-urlencoded", b"key=a%22b+c&x=1"),
        # Literal text that starts with { or [ is JSON, placeholders inside or not.
        ('{"a": {v}}', "application/json", b'{"a": "a\\"b c"}'),
        ('{"a": "{v}"}', "application/json", b'{"a": "a\\"b c"}'),
        ("[{v}]", "application/json", b'["a\\"b c"]'),
        ('{ "a": 1}', "application/json", b'{ "a": 1}'),
        ('{{"a": {v}}}', "application/json", b'{"a": "a\\"b c"}'),
    ],
)
def test_data_is_json_when_its_literal_text_starts_like_json(
    data: str, content_type: str, body: bytes
) -> None:
    p = RequestPlan("http://h/", data=data).prepare({"v": 'a"b c', "k": "key"})
    assert f"\r\nContent-Type: {content_type}\r\n".encode() in p.data
    assert p.data.endswith(b"\r\n\r\n" + body)


def test_a_bytes_body_is_typed_by_its_first_character() -> None:
    # -d @file is no template: a file that starts with a brace is JSON, as before.
    p = RequestPlan("http://h/", data=b"{v}").prepare({})
    assert b"\r\nContent-Type: application/json\r\n" in p.data


def test_a_form_body_encodes_values_as_form_components() -> None:
    plan = RequestPlan("http://h/", data="a={a}&b={+b}")
    assert _body(plan, {"a": "x y&z=1+2%", "b": "p%20q"}) == b"a=x+y%26z%3D1%2B2%25&b=p%20q"


@given(st.text(), st.text())
def test_any_form_value_decodes_back(a: str, b: str) -> None:
    body = _body(RequestPlan("http://h/", data="a={a}&b={b}"), {"a": a, "b": b})
    assert parse_qsl(body.decode("ascii"), keep_blank_values=True) == [("a", a), ("b", b)]


def test_json_template_from_an_object() -> None:
    obj = {"n": "{n}", "s": "id {id}", "raw": "{+r}", "k": [1, None, True, "{{x}}"]}
    assert json_template(obj) == '{"n":{n},"s":"id {id}","raw":{+r},"k":[1,null,true,"{{x}}"]}'
    plan = RequestPlan("http://h/", data=json_template(obj))
    assert orjson.loads(_body(plan, {"n": 2.5, "id": 7, "r": "[]"})) == {
        "n": 2.5,
        "s": "id 7",
        "raw": [],
        "k": [1, None, True, "{x}"],
    }


def test_json_body_headers_follow_curl() -> None:
    body, added = json_body({"a": 1}, ["X-A"])
    assert body == '{"a":1}'
    assert added == [("Content-Type", "application/json"), ("Accept", "application/json")]
    assert json_body('{"a": {a}}', [" accept "])[1] == [("Content-Type", "application/json")]
    assert json_body(b"{}", ["content-type", "Accept"]) == (b"{}", [])


# -- headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X A", "X(A)", "Caf\xe9", "Bearer s3cret token"])
def test_a_static_header_name_that_is_not_a_token_is_refused(name: str) -> None:
    with pytest.raises(TemplateError, match="header 1: its name is not a token") as info:
        RequestPlan("http://h/", headers=[f"{name}: v"])
    assert name not in str(info.value)


@pytest.mark.parametrize("value", ["s3cret\r\nX: y", "s3cret\n", "s3cret\x00"])
def test_a_static_header_value_with_a_line_break_or_nul_is_refused(value: str) -> None:
    with pytest.raises(TemplateError, match="header 'X-Key': its value holds a line break"):
        RequestPlan("http://h/", headers=[("X-Key", value)])
    with pytest.raises(TemplateError) as info:
        RequestPlan("http://h/", headers={"X-Key": value})
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("header", ["Bearer s3cret", "s3cret", ": s3cret"])
def test_a_malformed_header_option_is_not_echoed(header: str) -> None:
    with pytest.raises(TemplateError, match="header 2 is not in the form 'Name: value'") as info:
        RequestPlan("http://h/", headers=["X-A: 1", header])
    assert "s3cret" not in str(info.value)


def test_a_header_value_may_hold_tabs_and_non_ascii() -> None:
    p = RequestPlan("http://h/", headers=["X-A: {v}"]).prepare({"v": "a\tb \xe9"})
    assert "\r\nX-A: a\tb \xe9\r\n".encode() in p.data


def test_a_malformed_header_value_template_is_not_echoed() -> None:
    with pytest.raises(TemplateError, match="malformed template in the value of header 'X-J'") as e:
        RequestPlan("http://h/", headers=["X-J: {s3cret"])
    assert "s3cret" not in str(e.value)
    plan = RequestPlan("http://h/", headers=['X-J: {"tok": "s3cret"}', "X-K: {key}"])
    with pytest.raises(TemplateError, match="header 'X-J' uses a column, which") as e:
        plan.check({"key"})
    assert "s3cret" not in str(e.value)
    with pytest.raises(TemplateError, match="header 'X-K' uses column 'key', which"):
        RequestPlan("http://h/", headers=["X-K: {key}"]).check({"a"})


def test_a_lone_closing_brace_message_says_how_to_write_one() -> None:
    with pytest.raises(TemplateError, match=r"lone '\}' at position 1 \(write '\}\}' for"):
        Template("a}b")


def test_a_body_that_is_not_text_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="use json= or --json"):
        RequestPlan("http://h/", data={"a": 1})  # type: ignore[arg-type]


def test_odd_python_values_never_escape_as_type_errors() -> None:
    # A dict with keys JSON has none for: JSON all the same, the key as its text (as
    # the outputs write it), never Python's text (single quotes) or a TypeError.
    row = {"v": {(1, 2): "tuple key", 3: [float("nan")]}}
    p = RequestPlan("http://h/p/{v}").prepare(row)
    assert p.data.startswith(b"GET /p/" + quote('{"(1, 2)":"tuple key","3":[null]}', "").encode())
    body = RequestPlan("http://h/", data='{"v": {v}}').prepare({"v": {(1, 2): True}}).data
    assert body.endswith(b'\r\n\r\n{"v": {"(1, 2)":true}}')


def test_an_integer_beyond_64_bits_inside_an_array_or_object_stays_exact() -> None:
    # JSON Lines reads integers of any size exactly; one inside an array or object was
    # refused in a JSON body ("Integer exceeds 64-bit range") and sent as Python's
    # text in a URL ({'k': 1234...}), though the same integer alone was right.
    big = 12345678901234567890123
    row = {"v": {"k": [big]}}
    body = RequestPlan("http://h/", data='{"v": {v}}').prepare(row).data
    assert body.endswith(b'\r\n\r\n{"v": {"k":[12345678901234567890123]}}')
    url = RequestPlan("http://h/p?q={v}").prepare(row).data
    target = url.split(b" ")[1].decode()
    assert unquote(target) == '/p?q={"k":[12345678901234567890123]}'


def test_a_body_template_naming_a_missing_column_says_it_is_the_body() -> None:
    # It said "template '{"a":{missing}}' uses column ...", not which template.
    with pytest.raises(TemplateError, match=r"^the body 'a=\{m\}' uses column 'm', which"):
        RequestPlan("http://h/", data="a={m}").check({"q"})
    with pytest.raises(TemplateError, match=r"^the body '\{\"a\": \{m\}\}' uses column 'm'"):
        RequestPlan("http://h/", data='{"a": {m}}').check({"q"})


def test_url_template_messages_hide_the_password() -> None:
    with pytest.raises(TemplateError, match=r"malformed template 'http://\*\*\*@h/\{a'") as e:
        RequestPlan("http://me:s3cret@h/{a")
    assert "s3cret" not in str(e.value)
    with pytest.raises(TemplateError, match=r"--url 'http://\*\*\*@h/\{a\}' uses column 'a'"):
        RequestPlan("http://me:s3cret@h/{a}").check({"b"})
    with pytest.raises(TemplateError, match=r"--url 'http://h/\{a\}' uses column 'a'"):
        RequestPlan("http://h/{a}").check({"b"})


SUPPORTED = (
    "templates take {column} and {+column} only (RFC 6570 levels 1 and 2: no format spec, "
    "':N' prefix, '*' explode, list or operator such as {?q} or {/q})"
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h/s?q={q:3}", "placeholder {q:3} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={q!r}", "placeholder {q!r} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={q[0]}", "placeholder {q[0]} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={q.x}", "placeholder {q.x} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={q*}", "placeholder {q*} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={+q:3}", "placeholder {+q:3} is not supported: for column 'q' write {+q}"),
        ("http://h/s{?q}", "placeholder {?q} is not supported: for column 'q' write ?q={q}"),
        ("http://h/s?a=1{&q}", "placeholder {&q} is not supported: for column 'q' write &q={q}"),
        ("http://h/s{/q}", "placeholder {/q} is not supported: for column 'q' write /{q}"),
        ("http://h/s?q={q,id}", "placeholder {q,id} is not supported: for column 'q' write {q}"),
        ("http://h/s?q={n:>8}", "placeholder {n:>8} names no column and is not supported syntax"),
    ],
)
def test_unsupported_placeholder_syntax_is_named_with_what_to_write(url: str, message: str) -> None:
    # One line naming the option, the URL and the placeholder; then what templates take.
    with pytest.raises(TemplateError) as info:
        RequestPlan(url).check({"id", "q"})
    assert str(info.value) == f"--url {url!r}: {message}; {SUPPORTED}"


def test_names_that_look_like_syntax_are_columns_when_the_input_has_them() -> None:
    # JSON Lines keys and CSV headers may hold ':' ',' '.' '*': such a column is used.
    for name in ("geo:lat", "a,b", "q.x", "n*", "?q"):
        plan = RequestPlan(f"http://h/p/{{{name}}}")
        plan.check({name, "q"})
        assert plan.prepare({name: "v", "q": "w"}).data.startswith(b"GET /p/v ")
    # a dotted name the input lacks, whose stem is no column either: a missing column
    with pytest.raises(TemplateError, match=r"uses column 'a\.b', which the input does not have"):
        RequestPlan("http://h/{a.b}").check({"q"})


def test_unsupported_syntax_in_bodies_and_methods_is_named_too() -> None:
    with pytest.raises(TemplateError, match=r"^the body '\{\"a\": \{q:3\}\}': placeholder \{q:3\}"):
        RequestPlan("http://h/", data='{"a": {q:3}}').check({"q"})
    with pytest.raises(TemplateError, match=r"^the body 'a=\{q!s\}': placeholder \{q!s\} is not"):
        RequestPlan("http://h/", data="a={q!s}").check({"q"})
    # a header value may hold a secret: its placeholder is not echoed, as before
    with pytest.raises(TemplateError) as info:
        RequestPlan("http://h/", headers=["X-A: {q:s3cret}"]).check({"q"})
    assert str(info.value).startswith("the value of header 'X-A' uses a column, which")
    assert "s3cret" not in str(info.value)

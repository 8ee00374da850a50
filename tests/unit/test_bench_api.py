"""What ``bench()`` prepares before the first request: targets, settings, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from drumfire import UsageError
from drumfire.bench._api import DEFAULT_DURATION, make_plan

BASE: dict[str, Any] = {
    "rows": None,
    "input": None,
    "input_format": None,
    "method": None,
    "headers": None,
    "data": None,
    "concurrency": None,
    "rate": None,
    "requests": None,
    "duration": None,
    "warmup": 0,
    "timeout": 10.0,
    "connect_timeout": 10.0,
    "shuffle": False,
    "seed": None,
    "verify": True,
    "max_body": 1 << 20,
}


def plan(url: str | None = "http://127.0.0.1:8080/x", **kwargs: Any) -> Any:
    return make_plan(url, **{**BASE, **kwargs})


def test_single_url_is_literal() -> None:
    p = plan(
        "http://127.0.0.1:8080/predictions/{model}",
        method="post",
        data='{"data": "def quicksort():"}',
    )
    (target,) = p.targets
    origin, data, head = target
    assert origin == ("http", "127.0.0.1", 8080)
    assert not head
    assert data.startswith(b"POST /predictions/%7Bmodel%7D HTTP/1.1\r\n")
    assert data.endswith(b'\r\n\r\n{"data": "def quicksort():"}')
    assert b"Content-Type: application/json\r\n" in data
    assert b"Content-Length: 28\r\n" in data


def test_single_url_header_with_braces_is_literal() -> None:
    (target,) = plan(headers=['X-Json: {"a": 1}']).targets
    assert b'X-Json: {"a": 1}\r\n' in target[1]


def test_defaults() -> None:
    closed = plan()
    assert closed.settings["model"] == "closed"
    assert closed.settings["concurrency"] == 8
    assert closed.runner_args["duration"] == DEFAULT_DURATION
    assert closed.runner_args["schedule"] is None
    opened = plan(rate=100)
    assert opened.settings["concurrency"] == 64
    assert opened.settings["rate_fixed"] == 100.0
    assert opened.runner_args["schedule"] is not None
    counted = plan(requests=5)
    assert counted.runner_args["duration"] is None
    staged = plan(rate="10@1s,20@2s")
    assert staged.runner_args["duration"] == pytest.approx(3.0)
    assert plan(rate="10@1s,20@2s", requests=7).runner_args["duration"] is None


def test_rows_and_templates() -> None:
    rows = [{"q": "a b", "m": "PUT"}, {"q": "c", "m": "GET"}, {"nope": 1}]
    p = plan("http://h:81/s?q={q}", rows=rows, method="{m}", headers=["X-Q: {q}"])
    assert p.settings["targets"] == 2
    assert p.settings["rows_skipped"] == 1
    assert p.settings["url"] is None
    assert p.settings["url_template"] == "http://h:81/s?q={q}"
    first, second = p.targets
    assert first[1].startswith(b"PUT /s?q=a%20b HTTP/1.1\r\nHost: h:81\r\nX-Q: a b\r\n")
    assert second[1].startswith(b"GET /s?q=c HTTP/1.1\r\n")
    # rows of URLs
    p = plan(None, rows=["http://h/1", "http://h/2"])
    assert [t[1].split(b" ")[1] for t in p.targets] == [b"/1", b"/2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": None}, "give a URL"),
        ({"rows": [], "input": "x.csv"}, "not both"),
        ({"url": "ftp://h/"}, "only http"),
        ({"rows": [{"a": 1}], "url": "http://h/{b}"}, "uses column .b."),
        ({"duration": 0}, "more than 0"),
        ({"timeout": 0}, "timeout=0: give a number of seconds above 0"),
        ({"connect_timeout": float("nan")}, "connect_timeout=nan: give a number of seconds"),
        ({"input": "/nonexistent/file.csv"}, "does not exist"),
        ({"method": "BREW"}, "unsupported method"),
        # were ignored: one URL has no order to shuffle, a seed without --shuffle no effect
        ({"shuffle": True}, r"^--shuffle visits input rows .*give --input FILE$"),
        ({"seed": 7, "rows": [{"url": "http://h/"}]}, r"^--seed is .*give --shuffle too$"),
        ({"shuffle": True, "keywords": True}, r"^shuffle=True visits .*give rows= or input=$"),
        ({"seed": 7, "keywords": True}, r"^seed=7 is the seed of shuffle=True: give that too$"),
    ],
)
def test_plan_errors(kwargs: dict[str, Any], message: str) -> None:
    url = kwargs.pop("url", "http://127.0.0.1:8080/x")
    with pytest.raises(UsageError, match=message):
        plan(url, **kwargs)


def test_a_malformed_header_is_named_by_position_never_echoed() -> None:
    from drumfire import TemplateError
    from drumfire.bench._api import literal_headers

    with pytest.raises(TemplateError) as info:
        literal_headers(["Accept: */*", "Authorization Bearer s3cr3t"])
    assert str(info.value) == "header 2 is not in the form 'Name: value'"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency=0: give a whole number, 1 or more"),
        ({"requests": 0}, "requests=0: give a whole number, 1 or more"),
        ({"duration": 0}, "duration=0: give a duration above 0"),
        ({"duration": "x"}, "duration='x' is not a duration like 30s"),
        ({"warmup": "x"}, "warmup='x' is not a duration like 30s"),
        ({"rate": "abc"}, "rate='abc': 'abc' is not a rate like 500"),
        ({"rate": ""}, "rate='': give a rate"),
        ({"rate": "100:1000", "requests": 5}, "rate='100:1000/s': a ramp over the run needs a "
                                              "duration (duration=)"),
    ],
)  # fmt: skip
def test_bench_names_its_keywords(kwargs: dict[str, Any], message: str) -> None:
    """From Python, bench() said `the concurrency (-c) must be at least 1` and `-z/--duration
    'x' is not a duration`: options the caller never typed (its timeout= was named already)."""
    import drumfire

    with pytest.raises(UsageError) as info:
        drumfire.bench("http://127.0.0.1:8080/x", progress=False, **kwargs)
    assert str(info.value).startswith(message), info.value
    assert " -" not in str(info.value), info.value


def test_max_body_takes_a_size_as_run_does() -> None:
    """``bench(max_body="64M")``, as ``run(max_body="64M")`` takes it: the text went to every
    connection, whose first answer raised TypeError in the transport (a traceback each)."""
    assert plan(max_body="64M").runner_args["max_body"] == 64 * 1024 * 1024
    assert plan(max_body=1000).runner_args["max_body"] == 1000
    with pytest.raises(UsageError, match=r"^max_body=-1: give a number of bytes"):
        plan(max_body=-1)

"""Retry-After parsing (``Retry.parse_retry_after``), with a fixed ``now``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drumfire._settings import Retry

retry_after_seconds = Retry.parse_retry_after

# Wed, 21 Oct 2015 07:28:00 GMT
NOW = 1445412480.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("007", 7.0),
        ("86400", 86400.0),
        # Past 2**31: 2**31 (RFC 9111 §1.2.2's rule for a delta-seconds too large).
        ("2147483649", 2147483648.0),
        ("9" * 400, 2147483648.0),  # was an infinity, and its error text an OverflowError
        ("9" * 5000, 2147483648.0),  # past Python's int() digit limit too
    ],
)
def test_delay_seconds(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # IMF-fixdate
        ("Wed, 21 Oct 2015 08:28:00 GMT", 3600.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),
        ("Wednesday, 21-Oct-15 07:28:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Wed, 21 Oct 2015 07:28:30 +0000", 30.0),
    ],
)
def test_http_date(value: str, seconds: float) -> None:
    assert retry_after_seconds(value, now=NOW) == pytest.approx(seconds)


def test_http_date_without_now_uses_the_wall_clock() -> None:
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600))
    got = retry_after_seconds(future)
    assert got is not None
    assert 3500 < got <= 3600


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "-5",
        "1.5",
        "5s",
        "Wed, 32 Oct 2015 07:28:30 GMT",
        "Wed, 21 Oct 2015 25:28:30 GMT",
        "Wed, 21 Foo 2015 07:28:30 GMT",
        "2015-10-21T07:28:30Z",
    ],
)
def test_garbage_is_none(value: str | None) -> None:
    assert retry_after_seconds(value, now=NOW) is None


@pytest.mark.parametrize("value", ["\xb2", "\xb9\xb3", "1\xb2"])
def test_superscript_digits_are_garbage(value: str) -> None:
    assert retry_after_seconds(value, now=NOW) is None


@pytest.fixture
def new_york() -> Iterator[None]:
    tzset = getattr(time, "tzset", None)
    if tzset is None:
        pytest.skip("time.tzset is not available")
    import os

    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        tzset()


@pytest.mark.usefixtures("new_york")
def test_gmt_date_is_independent_of_the_local_timezone() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=NOW) == pytest.approx(30.0)


@pytest.mark.usefixtures("new_york")
def test_asctime_date_is_gmt() -> None:
    assert retry_after_seconds("Wed Oct 21 07:28:30 2015", now=NOW) == pytest.approx(30.0)


def test_an_http_date_whose_fields_overflow_is_malformed() -> None:
    # email.utils raised OverflowError, which escaped the answer's handling: the run hung.
    assert retry_after_seconds("Thu, 01 Jan 2099 00:00:99999999999999999999 GMT", NOW) is None

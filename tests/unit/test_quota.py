"""The quota header fields (drumfire._quota): canned values, no server."""

from __future__ import annotations

import pytest

from drumfire._quota import parse_quota, rate_fields


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-ratelimit-remaining": "10", "x-ratelimit-reset": "30"}, (10.0, 30.0)),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000000060"}, (0.0, 60.0)),
        ({"ratelimit": '"default";r=50;t=30'}, (50.0, 30.0)),
        ({"ratelimit": '"a";q=1, "b";r=0;t=5'}, (0.0, 5.0)),
        # The draft's examples (draft-ietf-httpapi-ratelimit-headers §4.2): no t paces nothing.
        ({"ratelimit": '"default";r=999;pk=:dHJpYWwxMjEzMjM=:'}, (999.0, 0.0)),
        ({"ratelimit": '"default";r=300000000;t=60;pk=:QXBwLTk5OQ==:'}, (300000000.0, 60.0)),
        ({"ratelimit": '"dayLimit";r=100;t=36000'}, (100.0, 36000.0)),
        # Several quotas, all in force: the most restrictive, wherever it is in the list.
        ({"ratelimit": '"day";r=90000;t=10, "tight";r=3;t=2'}, (3.0, 2.0)),
        ({"ratelimit": '"tight";r=3;t=2, "day";r=90000;t=10'}, (3.0, 2.0)),
        ({"ratelimit": '"day";r=100;t=36000, "min";r=50;t=30'}, (100.0, 36000.0)),
        # One spent: nothing until it resets (the latest reset when several are spent).
        ({"ratelimit": '"min";r=0;t=20, "day";r=90000;t=10'}, (0.0, 20.0)),
        ({"ratelimit": '"a";r=0;t=3,"b";r=0;t=9,"c";r=5;t=1'}, (0.0, 9.0)),
        ({"ratelimit": 'tok;r=4;t=2;x, "p,q;r=0;t=99";r=8;t=2'}, (4.0, 2.0)),  # tokens, quotes
        # A malformed field is ignored (draft §7), and the older fields read instead.
        ({"ratelimit": '"a";r=1.5;t=2'}, None),
        ({"ratelimit": '"a";r=-1;t=2'}, None),
        ({"ratelimit": '"a";r=1;t=x'}, None),
        ({"ratelimit": '"a;r=1;t=2'}, None),
        ({"ratelimit": '"a";r=1;t=2, '}, None),
        ({"ratelimit": '"a";r=1;t=2,,"b";r=1;t=1'}, None),
        (
            {"ratelimit": '"a";r=oops', "x-ratelimit-remaining": "7", "x-ratelimit-reset": "2"},
            (7.0, 2.0),
        ),
        ({"ratelimit": '"a";q=10;w=60'}, None),  # no service limit item at all
        # Draft-07's Dictionary (express-rate-limit's draft-7 mode, several gateways).
        ({"ratelimit": "limit=100, remaining=50, reset=5"}, (50.0, 5.0)),
        ({"ratelimit": "limit=10, remaining=0, reset=10"}, (0.0, 10.0)),
        ({"ratelimit": "limit=10, reset=10"}, None),
        ({"ratelimit": "limit=10, remaining=x, reset=10"}, None),
        # Resets that are plainly Unix times, in seconds or milliseconds (the wall is 10^9).
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000000060000"}, (0.0, 60.0)),
        ({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "1000000000500"}, (3.0, 0.5)),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "999999990000"}, (0.0, 0.0)),  # past
        # Absurd resets (over a year ahead) are malformed: never a hold for ever.
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1e15"}, None),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "900000000"}, None),  # 28 years
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000000000"}, None),  # 2033
        ({"ratelimit": '"a";r=0;t=999999999999999'}, None),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "31536000"}, (0.0, 31536000.0)),
        ({"ratelimit-remaining": "7", "ratelimit-reset": "2"}, (7.0, 2.0)),
        ({"x-ratelimit-remaining": "many", "x-ratelimit-reset": "2"}, None),
        ({"x-ratelimit-remaining": "-1", "x-ratelimit-reset": "2"}, None),
        ({"x-ratelimit-remaining": "5"}, None),
        ({}, None),
    ],
)
def test_parse_quota(headers: dict[str, str], expected: tuple[float, float] | None) -> None:
    assert parse_quota(headers.get, 1_000_000_000.0) == expected


def test_a_ratelimit_list_split_over_lines_is_read_whole() -> None:
    # RFC 9110 §5.3: a list field sent on several lines is one list (draft §4).
    raw = [
        (b"RateLimit", b'"day";r=90000;t=10'),
        (b"Content-Type", b"application/json"),
        (b"ratelimit", b'"tight";r=0;t=2'),
        (b"X-RateLimit-Remaining", b"5"),
        (b"X-RateLimit-Remaining", b"3"),  # not a list: the first line holds
    ]
    fields = rate_fields(raw)
    assert fields == {
        "ratelimit": '"day";r=90000;t=10, "tight";r=0;t=2',
        "x-ratelimit-remaining": "5",
    }
    assert parse_quota(fields.get, 0.0) == (0.0, 2.0)
    assert rate_fields([(b"Content-Type", b"text/plain")]) == {}

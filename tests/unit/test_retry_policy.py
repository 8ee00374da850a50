"""The retry policy owned by ``Retry``: what is retried, and when a wait is too long."""

from __future__ import annotations

import random

import pytest

from drumfire import Retry
from drumfire._settings import FINAL_REASONS


@pytest.mark.parametrize(
    ("status", "idempotent", "unsafe", "expected"),
    [
        (503, True, False, True),
        (503, False, False, True),  # the server says it did not process it
        (429, False, False, True),
        (502, True, False, True),
        (502, False, False, False),  # a POST may have been processed
        (502, False, True, True),
        (504, False, False, False),
        (500, True, False, False),  # not in the statuses
        (200, True, False, False),
    ],
)
def test_is_retry(status: int, idempotent: bool, unsafe: bool, expected: bool) -> None:
    assert Retry(unsafe=unsafe).is_retry(status, idempotent) is expected


def test_is_retry_follows_the_statuses() -> None:
    r = Retry(statuses=frozenset({500}))
    assert r.is_retry(500, True)
    assert not r.is_retry(503, True)


@pytest.mark.parametrize(
    ("reason", "detail", "idempotent", "expected"),
    [
        ("connect", "refused", False, True),  # never reached the server
        ("reset", "", True, True),
        ("reset", "", False, False),
        ("timeout", "", True, True),
        ("tls", "certificate verify failed: self-signed certificate", True, False),
        ("protocol", "malformed response: invalid constant string", True, False),
        ("protocol", "unsupported content-encoding 'br'", True, False),
        ("protocol", "connection closed mid-response", True, True),  # cut short: transient
        ("body_too_large", "response body larger than 10 bytes", True, False),
        # local failures, whatever the method: the row ends at once
        ("file: a.bin: shorter than its 9 bytes: changed while sent", "", True, False),
        ("file: a.bin: Permission denied", "", True, False),
        ("save: a.bin: No space left on device", "", True, False),
    ],
)
def test_is_retry_failure(reason: str, detail: str, idempotent: bool, expected: bool) -> None:
    assert Retry().is_retry_failure(reason, detail, idempotent) is expected


def test_final_reasons_are_never_retried_even_unsafe() -> None:
    for reason in FINAL_REASONS:
        assert not Retry(unsafe=True).is_retry_failure(reason, "x", True)


def test_over_wait() -> None:
    r = Retry(max_retry_after=60.0)
    assert not r.over_wait(None)
    assert not r.over_wait(60.0)
    assert r.over_wait(60.5)
    assert r.over_wait_error(3600.0) == "retry_after: 3600s over --max-retry-wait 60s"
    assert Retry(max_retry_after=2.5).over_wait_error(5) == (
        "retry_after: 5s over --max-retry-wait 2.5s"
    )


@pytest.mark.parametrize(
    ("cap", "asked", "error"),
    [
        (0.0, 0.4, "retry_after: 0.4s over --max-retry-wait 0s"),
        (0.0, 0.01, "retry_after: 0.1s over --max-retry-wait 0s"),
        (3.0, 3.04, "retry_after: 3.1s over --max-retry-wait 3s"),
        (0.0, 1.1, "retry_after: 1.1s over --max-retry-wait 0s"),
        (60.0, 3599.6, "retry_after: 3599.6s over --max-retry-wait 60s"),
        (0.0, 5.0, "retry_after: 5s over --max-retry-wait 0s"),
    ],
)
def test_over_wait_error_shows_a_wait_over_the_cap(cap: float, asked: float, error: str) -> None:
    # An HTTP-date's wait is a fraction of a second off whole: rounded to the second,
    # 0.4 s over a cap of 0 read "0s over --max-retry-wait 0s".
    retry = Retry(max_retry_after=cap)
    assert retry.over_wait(asked)
    assert retry.over_wait_error(asked) == error


@pytest.mark.parametrize(
    ("cap", "left", "error"),
    [
        (2.0, 39.997, "retry_after: quota resets in 40s, over --max-retry-wait 2s"),
        (0.0, 0.4, "retry_after: quota resets in 1s, over --max-retry-wait 0s"),
        (2.5, 2.6, "retry_after: quota resets in 3s, over --max-retry-wait 2.5s"),
        (60.0, 3600.0, "retry_after: quota resets in 3600s, over --max-retry-wait 60s"),
    ],
)
def test_quota_wait_error_names_the_quota(cap: float, left: float, error: str) -> None:
    # A spent quota's wait, in whole seconds rounded up: still over the cap.
    assert Retry(max_retry_after=cap).quota_wait_error(left) == error


def test_default_cap_is_a_minute() -> None:
    assert Retry().max_retry_after == 60.0
    rng = random.Random(1)
    assert Retry().delay(1, 30.0, rng) == 30.0

"""The retry decisions the engine asks ``Retry`` for (urllib3's model: the policy decides)."""

from __future__ import annotations

from drumfire import Retry


def test_is_exhausted_leaves_out_what_is_no_retry() -> None:
    retry = Retry(retries=2)
    assert not retry.is_exhausted(2)  # one retry made: one more may follow
    assert retry.is_exhausted(3)  # the first attempt and 2 retries
    # A redirect followed and the free re-send are attempts, not retries.
    assert not retry.is_exhausted(4, not_counted=2)
    assert retry.is_exhausted(5, not_counted=2)
    assert Retry(retries=0).is_exhausted(1)


def test_free_resend_only_for_a_stale_kept_alive_connection() -> None:
    retry = Retry()
    assert retry.is_free_resend("reset", reused=True, received_any=False, idempotent=True)
    assert not retry.is_free_resend("reset", reused=False, received_any=False, idempotent=True)
    assert not retry.is_free_resend("reset", reused=True, received_any=True, idempotent=True)
    assert not retry.is_free_resend("timeout", reused=True, received_any=False, idempotent=True)
    # A POST may have been processed: only with unsafe=True.
    assert not retry.is_free_resend("reset", reused=True, received_any=False, idempotent=False)
    assert Retry(unsafe=True).is_free_resend(
        "reset", reused=True, received_any=False, idempotent=False
    )
    assert Retry(unsafe=True).may_resend(False)
    assert not Retry().may_resend(False)


def test_free_resend_for_bytes_that_begin_no_answer_on_a_reused_connection() -> None:
    # The rest of the answer before (a body sent with a HEAD or 204 answer): the reader
    # says nothing of this answer was received.
    retry = Retry()
    assert retry.is_free_resend("protocol", reused=True, received_any=False, idempotent=True)
    assert not retry.is_free_resend("protocol", reused=False, received_any=False, idempotent=True)
    assert not retry.is_free_resend("protocol", reused=True, received_any=True, idempotent=True)
    assert not retry.is_free_resend("protocol", reused=True, received_any=False, idempotent=False)


def test_throttle_wait_is_the_retry_after_the_policy_would_wait_for() -> None:
    retry = Retry(max_retry_after=60.0)
    assert retry.throttle_wait("5") == 5.0
    assert retry.throttle_wait("61") is None  # over the cap: the row ends instead
    assert retry.throttle_wait("soon") is None
    assert retry.throttle_wait(None) is None

"""Stopping a run (Ctrl-C, SIGTERM) on the virtual network of test_engine: no new request
after the stop, and the rows not answered end ``cancelled`` with their real figures."""

from __future__ import annotations

from test_engine import Answer, ok, run

from drumfire import Retry


def outage(path: str, hits: int) -> Answer:
    return 503, {"Retry-After": "1"}, b"", 0.001


def test_a_stop_sends_no_new_request_first_or_retry() -> None:
    # Every answer a 503 with Retry-After: 1: the origin is held, rows wait
    # parked with it, ready to start, or sleeping before their retry. The stop
    # used to cancel only the sleeping ones; the origin's timer then sent the
    # others (first attempts among them) during the grace period.
    results, stats, server, _clock, engine = run(
        outage, 200, stop_at=2.5, concurrency=None, retry=Retry(retries=5)
    )
    assert server.sent_before_stop is not None
    assert len(server.requests) == server.sent_before_stop
    assert stats.stopped
    assert {r.error for r in results} == {"cancelled"}
    assert len({r.id for r in results}) == len(results)
    never_sent = [r for r in results if r.attempts == 0]
    assert never_sent  # rows read ahead and parked: cancelled, so --resume sends them
    assert all(r.status is None and r.elapsed_ms == 0.0 for r in never_sent)
    assert sum(r.attempts for r in results) == len(server.requests)
    assert engine.origins.parked == 0


def test_a_stop_with_a_per_host_rate_sends_nothing_more() -> None:
    results, _stats, server, _clock, _ = run(
        outage, 200, stop_at=2.5, concurrency=4, per_host_rate=20.0, retry=Retry(retries=5)
    )
    assert len(server.requests) == server.sent_before_stop
    assert sum(r.attempts for r in results) == len(server.requests)


def test_a_row_cancelled_while_waiting_reports_its_last_attempt_not_the_wait() -> None:
    # A 429 with Retry-After: 30 answered in 2 ms, then the stop at 1.5 s: the
    # row's elapsed_ms is that answer's 2 ms, not the 1.5 s it waited since, and
    # so are the summary's latency figures (they used to say 1.5 s).
    def throttled(path: str, hits: int) -> Answer:
        return 429, {"Retry-After": "30"}, b"", 0.002

    results, stats, server, _clock, _ = run(throttled, 20, stop_at=1.5, concurrency=4)
    assert len(server.requests) == 20
    assert {(r.error, r.attempts) for r in results} == {("cancelled", 1)}
    assert all(2.0 <= r.elapsed_ms < 5.0 for r in results), [r.elapsed_ms for r in results]
    assert stats.percentile_ms(100) < 5.0


def test_a_retried_row_cancelled_while_parked_reports_its_last_attempt() -> None:
    # Each row: a 503 with Retry-After: 1 answered in 3 ms, then 503s answered in
    # 40 ms. Rows waiting (sleeping, ready, parked with the held origin) when the
    # stop comes report their last attempt: 3 ms or 40 ms, never the wait.
    def script(path: str, hits: int) -> Answer:
        return 503, {"Retry-After": "1"}, b"", 0.003 if hits == 0 else 0.04

    results, stats, _server, _clock, _ = run(
        script, 200, stop_at=3.2, concurrency=None, retry=Retry(retries=10)
    )
    sent = [r for r in results if r.attempts]
    assert any(r.attempts > 1 for r in sent)
    assert all(r.error == "cancelled" for r in results)
    assert all(r.elapsed_ms < 45.0 for r in results), max(r.elapsed_ms for r in results)
    assert stats.percentile_ms(100) < 45.0


def test_rows_over_the_retry_after_cap_report_their_attempt() -> None:
    def script(path: str, hits: int) -> Answer:
        return 503, {"Retry-After": "3600"}, b"", 0.002

    results, _stats, _server, _clock, _ = run(script, 10, concurrency=2)
    assert all(r.error.startswith("retry_after: 3600s") for r in results)
    assert all(2.0 <= r.elapsed_ms < 3.0 for r in results), [r.elapsed_ms for r in results]


def test_a_redirect_answered_during_the_grace_is_not_followed() -> None:
    # The 302s come 1 s after the stop asked in-flight requests to finish: each
    # row ends cancelled (--resume sends it from its first URL), nothing is sent.
    def script(path: str, hits: int) -> Answer:
        if path.startswith("/to"):
            return ok(path, hits)
        return 302, {"Location": "/to" + path[1:]}, b"", 1.0

    results, _stats, server, _clock, _ = run(
        script, 4, stop_at=0.5, concurrency=4, follow_redirects=True
    )
    assert server.requests == ["/0", "/1", "/2", "/3"]
    assert {(r.status, r.error, r.attempts) for r in results} == {(None, "cancelled", 1)}
    assert all(1000.0 <= r.elapsed_ms < 1001.0 for r in results)


def test_a_failure_during_the_grace_that_would_be_retried_ends_cancelled() -> None:
    # The stop gives rows in flight 2 s. A row whose attempt fails then in a way a
    # retry would mend (a timeout here; a reset, a connect error) ended with that
    # reason, which --resume does not send again (only --retry-failed): the row was
    # left without its retries, as the rows waiting for theirs are not. It ends
    # cancelled, as a 503 answered during the grace does.
    def silent(path: str, hits: int) -> Answer:
        return 200, {}, b"", None if path == "/1" else 0.001

    results, _stats, server, _clock, _ = run(silent, 2, stop_at=0.5, concurrency=2, timeout=1.0)
    assert server.requests == ["/0", "/1"]
    assert {r.id: (r.status, r.error, r.attempts) for r in results} == {
        "0": (200, "", 1),
        "1": (None, "cancelled", 1),
    }
    # Without retries left (and so on a run with --retries 0), its reason stays.
    results, _stats, _server, _clock, _ = run(
        silent, 2, stop_at=0.5, concurrency=2, timeout=1.0, retry=Retry(retries=0)
    )
    assert {r.id: r.error for r in results} == {"0": "", "1": "timeout"}

"""Stopping a run (Ctrl-C, SIGTERM) on the virtual network of test_engine: no new request
after the stop, and the rows not answered end ``cancelled`` with their real figures."""

from __future__ import annotations

from test_engine import Answer, run

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

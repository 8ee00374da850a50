"""drumfire bench: throttled answers reported apart; percentiles with the failed requests."""

from __future__ import annotations

from typing import Any

from drumfire.bench._recorder import Recorder
from drumfire.bench._report import build_report
from drumfire.bench._runner import RunData


def _report(rec: Recorder, end: float) -> Any:
    data = RunData(
        recorder=rec, begin=-1.0, measure_start=0.0, finish=end, sent=rec.requests,
        first_send=0.0, last_send=end, queue=None, lag_max=0.0, lag_sum=0.0, late=0,
        backlog_max=0, loop_lag_max=0.0, connections=8, stopped=False,
    )  # fmt: skip
    return build_report(data, {"url": "http://127.0.0.1:9/", "concurrency": 8}, None)


def test_a_quarter_timing_out_does_not_headline_a_healthy_p99() -> None:
    rec = Recorder(start=0.0)
    for i in range(300):  # 300 quick answers, 5 ms each
        t = i * 0.01
        rec.response(t + 0.005, t, 200)
    for i in range(100):  # 100 requests that waited their 2 s timeout
        t = i * 0.01
        rec.failure(t + 2.0, "timeout", t)
    rec.finish(4.0)
    report = _report(rec, 4.0)
    assert report.latency_ms["p99"] < 0.01 * 1000  # answered only: healthy
    every = report.latency_with_failures_ms
    assert every["p50"] < 10.0
    assert every["p90"] >= 1990.0  # a quarter took the whole timeout
    assert every["p99"] >= 1990.0
    text = report.summary_text()
    assert "with failures" in text
    assert report.to_dict()["latency_with_failures_ms"] == every


def test_throttled_answers_are_counted_apart() -> None:
    rec = Recorder(start=0.0)
    for i in range(90):
        rec.response(i * 0.01 + 0.001, i * 0.01, 200)
    for i in range(6):
        rec.response(1.0 + i * 0.01, 1.0, 429)
    for i in range(4):
        rec.response(1.1 + i * 0.01, 1.1, 503)
    rec.finish(2.0)
    report = _report(rec, 2.0)
    assert report.throttled == 10
    assert report.to_dict()["throttled"] == 10
    assert "throttled  10 answers 429 or 503 (10.0 % of requests)" in report.summary_text()
    assert report.latency_with_failures_ms == {}  # nothing failed: one set of figures

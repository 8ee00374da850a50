"""The recorder and the load models, driven by a fake clock: no network, no sleeping.

A tiny discrete-event simulation stands in for the server: ``_send`` is replaced
by a function that schedules the answer, and the test advances the clock from
event to event (the next due request while a connection is free, or the next
answer), calling the runner exactly as the event loop would.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import pytest

from drumfire.bench._recorder import Recorder
from drumfire.bench._report import build_report
from drumfire.bench._runner import RunData, Runner
from drumfire.bench._schedule import Schedule, parse_rate_profile

ORIGIN = ("http", "127.0.0.1", 8080)
TARGET = (ORIGIN, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False)
T0 = 1000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeConn:
    origin: tuple[str, str, int] = ORIGIN

    def is_idle(self) -> bool:
        return False  # never handed back to the runner's idle pool


@dataclass
class Sim:
    """A server answering in ``service`` seconds, frozen during [freeze_from, freeze_to)."""

    runner: Runner
    clock: Clock
    service: float = 0.001
    freeze_from: float = math.inf
    freeze_to: float = math.inf
    answers: list[tuple[float, int, float]] = field(default_factory=list)
    sent: list[tuple[float, float]] = field(default_factory=list)  # (send time, job)
    seq: int = 0

    def send(self, job: float, deadline: float) -> None:
        now = self.clock.now
        self.runner.inflight += 1
        start = now
        if self.freeze_from <= now - T0 < self.freeze_to:
            start = T0 + self.freeze_to
        self.seq += 1
        heapq.heappush(self.answers, (start + self.service, self.seq, job))
        self.sent.append((now, job))

    def run(self) -> RunData:
        r = self.runner
        r.send = self.send  # type: ignore[method-assign]
        r.arm = lambda due: None  # type: ignore[method-assign]
        r.start(self.clock.now)
        r.pump(self.clock.now)
        while not (r.exhausted and r.inflight == 0):
            next_due = r.next_due if r.open_model and r.inflight < r.concurrency else math.inf
            next_answer = self.answers[0][0] if self.answers else math.inf
            if r.exhausted:
                next_due = math.inf
            if next_due == next_answer == math.inf:
                self.clock.now = max(self.clock.now, r.end)
                r.pump(self.clock.now)
                if not self.answers and r.inflight == 0:
                    break
                continue
            if next_answer <= next_due:
                self.clock.now, _, job = heapq.heappop(self.answers)
                r.on_status(FakeConn(), job, 200)  # type: ignore[arg-type]
            else:
                self.clock.now = max(self.clock.now, next_due)
                r.pump(self.clock.now)
        return r.result()


def _latencies_ms(rec: Recorder) -> list[float]:
    out: list[float] = []
    for item in rec.histogram.get_recorded_iterator():
        out += [item.value_iterated_to / 1000.0] * int(item.count_at_value_iterated_to)
    return out


def test_open_model_counts_the_wait_of_a_frozen_server() -> None:
    clock = Clock()
    runner = Runner(
        [TARGET],
        concurrency=2,
        schedule=Schedule(parse_rate_profile(100)),
        duration=2.0,
        clock=clock,
    )
    data = Sim(runner, clock, freeze_from=0.5, freeze_to=1.0).run()
    rec = data.recorder
    assert rec.answered == 200 == data.sent
    # Requests due in the freeze wait until it ends: up to 0.5 s from their due time.
    lat = sorted(_latencies_ms(rec))
    assert lat[-1] == pytest.approx(501.0, rel=0.01)
    frozen = [x for x in lat if x > 2.0]
    # 100/s for 0.5 s, plus a few due while the backlog drains 2 at a time afterwards
    assert len(frozen) == pytest.approx(52, abs=3)
    # They spread evenly over 0..500 ms: the median of them is about 250 ms.
    assert frozen[len(frozen) // 2] == pytest.approx(250, abs=20)
    report = build_report(data, {"concurrency": 2, "rate_fixed": 100.0}, "100/s")
    assert report.latency_ms["p90"] > 100
    assert report.rate is not None
    assert report.rate["sent_per_s"] == pytest.approx(100.0, rel=0.01)
    assert report.rps == pytest.approx(100.0, rel=0.01)
    assert report.rate["queue_ms"]["max"] == pytest.approx(490, abs=15)
    assert not report.warnings  # the lateness was the server's, not the client's


def test_closed_model_hides_the_freeze_as_a_send_time_tool_would() -> None:
    """The same server in the closed model: one slow answer per connection per freeze."""
    clock = Clock()
    runner = Runner([TARGET], concurrency=2, duration=2.0, clock=clock)
    data = Sim(runner, clock, freeze_from=0.5, freeze_to=1.0).run()
    lat = sorted(_latencies_ms(data.recorder))
    slow = [x for x in lat if x > 2.0]
    assert len(slow) == 2  # coordinated omission: the server "did" 2 slow answers
    assert lat[int(0.9 * len(lat))] == pytest.approx(1.0, rel=0.01)


def test_open_model_count_stops_exactly_and_skips_warmup() -> None:
    clock = Clock()
    runner = Runner(
        [TARGET],
        concurrency=4,
        schedule=Schedule(parse_rate_profile(200), warmup=0.5),
        requests=150,
        warmup=0.5,
        clock=clock,
    )
    sim = Sim(runner, clock)
    data = sim.run()
    assert data.recorder.answered == 150 == data.sent
    assert len(sim.sent) == 100 + 150  # 0.5 s of warm-up at 200/s, then the measured ones
    # The measured window: from the end of the warm-up to when request 151 would be due.
    assert data.finish - data.measure_start == pytest.approx(150 / 200, abs=0.002)


def test_queued_requests_that_outlive_the_timeout_are_errors() -> None:
    clock = Clock()
    runner = Runner(
        [TARGET],
        concurrency=1,
        schedule=Schedule(parse_rate_profile(100)),
        duration=1.0,
        timeout=0.2,
        clock=clock,
    )
    sim = Sim(runner, clock, freeze_from=0.3, freeze_to=0.9)
    # The fake server does not time out by itself: the answer of the stuck request
    # comes at 0.9 s, after which every request that waited over 0.2 s is dropped.
    data = sim.run()
    rec = data.recorder
    assert rec.answered + rec.errors.get("timeout", 0) == 100
    assert rec.errors["timeout"] == pytest.approx(40, abs=3)


def test_closed_model_count_and_warmup() -> None:
    clock = Clock()
    runner = Runner([TARGET], concurrency=3, requests=500, warmup=0.1, clock=clock)
    sim = Sim(runner, clock, service=0.002)
    data = sim.run()
    assert data.recorder.answered == 500
    warm = [job for _, job in sim.sent if job < 0]
    assert len(warm) == pytest.approx(3 * 0.1 / 0.002, abs=3)
    assert len(sim.sent) == 500 + len(warm)


def test_recorder_seconds_and_order() -> None:
    rec = Recorder(start=10.0)
    for i in range(300):  # 100 answers per second for 3 s, 1..100 ms
        t = 10.0 + i / 100.0
        rec.response(t + 0.0005, t - (i % 100 + 1) / 1000.0, 200 if i % 10 else 503)
    rec.failure(12.9, "timeout")
    rec.finish(13.0)
    assert [s.t for s in rec.timeline] == [0, 1, 2]
    assert [s.requests for s in rec.timeline] == [100, 100, 101]
    assert rec.timeline[2].failed == 11  # ten 503s and a timeout
    assert rec.timeline[0].p50_ms == pytest.approx(50, abs=1)
    assert rec.timeline[0].p99_ms == pytest.approx(99, abs=1)
    assert rec.status == {200: 270, 503: 30}
    assert rec.errors == {"timeout": 1}
    assert rec.requests == 301
    p = [rec.percentile_ms(x) for x in (50, 90, 99, 99.9)]
    assert p == sorted(p)
    assert p[-1] <= rec.max_us / 1000.0 == pytest.approx(100.5, abs=0.01)


def test_recorder_partial_last_second_and_empty_seconds() -> None:
    rec = Recorder(start=0.0)
    rec.response(0.5, 0.4, 200)
    rec.response(3.2, 3.1, 200)  # seconds 1 and 2 had nothing
    rec.finish(3.3)
    assert [(s.t, s.requests) for s in rec.timeline] == [(0, 1), (1, 0), (2, 0), (3, 1)]
    assert rec.timeline[-1].span == pytest.approx(0.3)
    assert rec.timeline[-1].rps == pytest.approx(1 / 0.3)

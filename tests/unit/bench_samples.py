"""A bench report built from a fixed, known set of answers, for the unit tests that show one."""

from __future__ import annotations

from typing import Any

from drumfire.bench import BenchReport
from drumfire.bench._recorder import Recorder, new_histogram
from drumfire.bench._report import build_report
from drumfire.bench._runner import RunData


def sample_report(n: int = 2000, open_model: bool = False) -> BenchReport:
    rec = Recorder(start=0.0)
    for i in range(n):  # 3 s of answers taking 2..98 ms, and a few 400 ms more
        t = i * 2.8 / n
        rec.response(t + 0.002 + (i % 97) / 1000.0 + (0.4 if i % 500 == 0 else 0), t, 200)
    rec.response(2.5, 2.49, 404)
    rec.failure(2.6, "timeout")
    rec.failure(2.7, "reset")
    rec.failure(2.8, "timeout")
    rec.finish(3.0)
    queue = new_histogram() if open_model else None
    if queue is not None:
        queue.record_value(1, n)
    data = RunData(
        recorder=rec,
        begin=-1.0,
        measure_start=0.0,
        finish=3.0,
        sent=n + 4,
        first_send=0.0,
        last_send=2.99,
        queue=queue,
        lag_max=0.0,
        lag_sum=0.0,
        late=0,
        backlog_max=0,
        loop_lag_max=0.0,
        connections=8,
        stopped=False,
    )
    settings: dict[str, Any] = {
        "url": "http://127.0.0.1:9/x?q=<b>&y=1",
        "concurrency": 8,
        "rate": "700/s" if open_model else None,
        "rate_fixed": 700.0 if open_model else None,
        "warmup_s": 0.0,
        "duration_s": 3.0,
        "method": "GET",
    }
    return build_report(data, settings, "700/s" if open_model else None)

"""The adaptive concurrency limit against servers of known capacity (no timing claims)."""

from __future__ import annotations

import itertools
import time

from drumfire import Retry, run
from drumfire.demo.server import DemoServer

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


def routes(n: int) -> list[dict[str, str]]:
    return [
        {"id": str(i), "lon1": "24.94", "lat1": "60.17", "lon2": "24.95", "lat2": f"60.1{i % 9}"}
        for i in range(n)
    ]


def attempts_over_rows(concurrency: int | None, n: int = 1500) -> tuple[int, float, int]:
    with DemoServer(latency=0.01, capacity=12) as server:
        results = list(run(routes(n), server.base_url + ROUTE, concurrency=concurrency,
                           retry=Retry(retries=20, backoff=0.005, max_backoff=0.05)))
        rejected = server.rejected
    ok = sum(1 for r in results if r.error == "" and r.status in (200, 400))
    extra = sum(r.attempts for r in results) - n
    return ok, extra / n, rejected


def test_capacity_bound_server_adaptive_wastes_little() -> None:
    # A server that admits 12 requests at a time and answers 503 to the rest.
    ok, extra, rejected = attempts_over_rows(None)
    assert ok == 1500  # every row still succeeds
    assert extra < 0.15  # extra attempts under 15% of the rows
    assert rejected == round(extra * 1500)


def test_fixed_high_concurrency_wastes_far_more() -> None:
    # -c 100 against 12 places: most attempts are 503s (some rows even run out of
    # their 20 retries); the adaptive limit settles near 12.
    ok_fixed, extra_fixed, _ = attempts_over_rows(100)
    ok_adaptive, extra_adaptive, _ = attempts_over_rows(None)
    assert ok_adaptive == 1500
    assert ok_fixed <= ok_adaptive
    assert extra_fixed > 10 * extra_adaptive


def test_latency_bound_server_adaptive_grows_to_the_cap() -> None:
    # A server that answers in 50 ms whatever the load (capacity far above the cap):
    # throughput grows with concurrency, so the default should climb to --max-concurrency.
    # Slow start doubles 8 -> 16 -> ... -> 128 -> the cap of 256; a fixed default
    # of 8 would show 8. One slow window (a pause of the shared test process)
    # can end slow start at 128 (TCP's ssthresh): the limit then creeps up from
    # 64 by one per round trip. So the input goes on until the event, 100
    # requests held at once (bounded: a minute), not for a fixed number of rows.
    with DemoServer(latency=0.05, capacity=100_000) as server:
        deadline = time.monotonic() + 60
        rows = itertools.takewhile(
            lambda _: server.peak_busy < 100 and time.monotonic() < deadline,
            itertools.chain.from_iterable(itertools.repeat(routes(1000))),
        )
        results = list(run(rows, server.base_url + ROUTE, max_concurrency=256))
        peak = server.peak_busy
        assert server.rejected == 0
    assert results
    assert all(r.error == "" for r in results)
    assert peak >= 100


def test_fixed_concurrency_is_exact() -> None:
    with DemoServer(latency=0.02, capacity=100_000) as server:
        list(run(routes(400), server.base_url + ROUTE, concurrency=16))
        assert server.peak_busy == 16

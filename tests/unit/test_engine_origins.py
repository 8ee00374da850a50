"""Rows for several origins on the virtual network of test_engine: a slow or held host
first in the input does not hold back the rows of the hosts after it."""

from __future__ import annotations

import pytest
from test_engine import Answer, run


def slow_then_fast(path: str, hits: int) -> Answer:
    # /s/...: a host that answers in a second; /f/...: one that answers at once.
    return 200, {}, b"{}", 1.0 if path.startswith("/s/") else 0.001


@pytest.mark.parametrize("template", ["{+u}", "http://{host}/{p}/{n}"])
def test_a_slow_host_first_in_the_input_does_not_hold_back_the_others(template: str) -> None:
    # 20 rows for a slow host, then 20 for a fast one, two at a time to each. While
    # the slow host was the only origin seen, the engine stopped reading when it was
    # full: the fast host's rows waited until the slow host's queue was empty (9 s).
    rows = [{"u": f"http://slow.test/s/{i}", "host": "slow.test", "p": "s", "n": i}
            for i in range(20)]  # fmt: skip
    rows += [{"u": f"http://fast.test/f/{i}", "host": "fast.test", "p": "f", "n": i}
             for i in range(20, 40)]  # fmt: skip
    results, _stats, server, _clock, _ = run(
        slow_then_fast, 0, rows=rows, url=template, per_host_concurrency=2
    )
    assert len(results) == 40
    assert all(r.status == 200 and r.attempts == 1 for r in results)
    fast = [t for i, t in server.written.items() if int(i) >= 20]
    assert max(fast) < 1.0  # all answered before the slow host's first answer


def test_rows_held_for_a_quota_go_at_the_latest_reset_a_shorter_one_too() -> None:
    # Two rows in flight: the first answer says the quota is spent for 50 s, the
    # second (half a second later) for 20 s. The rows parked meanwhile go at 20.5 s;
    # they waited the 50 s (the hold stood, and their timer with it).
    def script(path: str, hits: int) -> Answer:
        if path == "/0":
            return 200, {"RateLimit": '"q";r=0;t=50'}, b"{}", 0.001
        if path == "/1":
            return 200, {"RateLimit": '"q";r=0;t=20'}, b"{}", 0.5
        return 200, {}, b"{}", 0.001

    results, _stats, server, _clock, _ = run(script, 6, concurrency=2)
    assert [r.status for r in results] == [200] * 6
    later = [t for i, t in server.written.items() if int(i) >= 2]
    assert min(later) >= 20.5
    assert max(later) < 21.0

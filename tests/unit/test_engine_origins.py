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

"""Throttled, flaky and slow servers (issue 15): each row of its table, by events and counts.

The servers (:mod:`drumfire._testing.throttle`) decide every answer from the row's
id and attempt number, so each run is the same; the assertions are on what the
server saw (which request came before which, how many were throttled) and on
the rows, never on wall-clock time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from servers import ScriptedServer, raw, respond, response_head

import drumfire
from drumfire import Result, Retry
from drumfire._testing.throttle import Behaviour, ThrottleServer, share


def rows(n: int, prefix: str = "r") -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}"} for i in range(n)]


def only_one(ids: list[str]) -> tuple[str, float]:
    """The id with the smallest share, and a throttle share that picks it alone."""
    ranked = sorted(ids, key=share)
    return ranked[0], (share(ranked[0]) + share(ranked[1])) / 2


def run(server: ThrottleServer, n: int, **kwargs: object) -> dict[str, Result]:
    results = list(drumfire.run(rows(n), server.url, **kwargs))  # type: ignore[arg-type]
    assert len(results) == n
    return {r.id: r for r in results}


# -- Retry-After delays the row that got it -------------------------------------------------


@pytest.mark.parametrize(("status", "after"), [(503, "3"), (429, "date:3")])
def test_retry_after_delays_only_its_own_row(status: int, after: str) -> None:
    ids = [r["id"] for r in rows(500)]
    slow, cut = only_one(ids)
    behaviour = Behaviour(throttle_share=cut, throttle_status=status, retry_after=after)
    with ThrottleServer(behaviour) as server:
        got = run(server, 500)
        events = server.events
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert got[slow].attempts == 2
    assert all(r.attempts == 1 for i, r in got.items() if i != slow)
    # Every other row was answered while the throttled one waited for its retry.
    retried_at = events.index((slow, 2, 200))
    assert {e[0] for e in events[:retried_at]} == set(ids)


def test_retry_after_beyond_the_cap_ends_that_row_now() -> None:
    # One row answers 503 + Retry-After: 3600 forever: it ends at once with its
    # status and a clear error; the other 499 finish as usual.
    with ThrottleServer(Behaviour(stuck=frozenset({"r7"}))) as server:
        got = run(server, 500, concurrency=16)
        assert server.attempts("r7") == 1
    stuck = got.pop("r7")
    assert (stuck.status, stuck.attempts) == (503, 1)
    assert stuck.error == "retry_after: 3600s over --max-retry-wait 60s"
    assert all(r.status == 200 and r.error == "" and r.attempts == 1 for r in got.values())


def test_retry_after_within_the_cap_is_waited_for_with_retries() -> None:
    ids = [r["id"] for r in rows(50)]
    slow, cut = only_one(ids)
    behaviour = Behaviour(throttle_share=cut, retry_after="1", throttle_times=2)
    with ThrottleServer(behaviour) as server:
        got = run(server, 50, retry=Retry(retries=3, max_retry_after=1.0))
    assert (got[slow].status, got[slow].attempts, got[slow].error) == (200, 3, "")


def test_no_retries_means_the_answer_is_the_row() -> None:
    with ThrottleServer(Behaviour(stuck=frozenset({"r3"}), stuck_after="1")) as server:
        got = run(server, 20, retry=Retry(retries=0))
        assert server.requests == 20
    assert (got["r3"].status, got["r3"].attempts, got["r3"].error) == (503, 1, "")


def test_max_retry_wait_option(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id\n" + "\n".join(f"r{i}" for i in range(30)) + "\n")
    out = tmp_path / "out.csv"
    with ThrottleServer(Behaviour(stuck=frozenset({"r3"}), stuck_after="5")) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url", server.url,
             "-o", str(out), "-q", "--max-retry-wait", "2.5"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 31
    [row] = [line for line in lines if line.startswith("r3,")]
    assert row.startswith("r3,503,")
    assert "retry_after: 5s over --max-retry-wait 2.5s" in row


# -- failures that retrying cannot change ---------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",  # malformed
        response_head(200, [("Content-Encoding", "br-nope"), ("Content-Length", "2")]) + b"{}",
    ],
    ids=["malformed", "unsupported-encoding"],
)
def test_protocol_errors_are_not_retried(answer: bytes) -> None:
    with ScriptedServer(lambda *_: raw(answer, then="close")) as srv:
        [result] = drumfire.run([{"id": "a"}], srv.url("/x/{id}"), retry=Retry(retries=3))
        assert len(srv.requests) == 1
    assert (result.status, result.attempts, result.error) == (None, 1, "protocol")


def test_a_plain_503_is_still_retried() -> None:
    answers = iter([respond(503, b""), respond(200, b"{}")])
    with ScriptedServer(lambda *_: next(answers)) as srv:
        [result] = drumfire.run([{"id": "a"}], srv.url("/x/{id}"),
                                retry=Retry(retries=3, backoff=0.01))
        assert len(srv.requests) == 2
    assert (result.status, result.attempts) == (200, 2)

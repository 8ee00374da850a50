"""Throttled, flaky and slow servers (issue 15): each row of its table, by events and counts.

The servers (:mod:`drumfire._testing.throttle`) decide every answer from the row's
id and attempt number, so each run is the same; the assertions are on what the
server saw (which request came before which, how many were throttled) and on
the rows, never on wall-clock time.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, raw, respond, response_head

import drumfire
from drumfire import Result, Retry
from drumfire._job import make_job
from drumfire._sources import rows_source
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


def test_max_retry_wait_0_ends_every_throttled_row_saying_why(tmp_path: Path) -> None:
    # Every answer is 503 + Retry-After: 5 and --max-retry-wait 0 waits for none: each
    # row ends at its first answer with the same error. Before, only the first ~300
    # said so; the rest ended with a bare 503, as if --retries were used up: the rows
    # before had each taken a token of the retry budget without retrying, and an
    # empty budget was asked first.
    n = 1000
    src = tmp_path / "in.csv"
    src.write_text("id\n" + "".join(f"r{i}\n" for i in range(n)))
    out = tmp_path / "out.csv"
    behaviour = Behaviour(throttle_share=1.0, throttle_times=10**6, retry_after="5")
    with ThrottleServer(behaviour) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url", server.url,
             "-o", str(out), "-q", "--max-retry-wait", "0"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        requests = server.requests
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert sorted(r["id"] for r in got) == sorted(f"r{i}" for i in range(n))
    assert Counter((r["status"], r["attempts"], r["error"]) for r in got) == {
        ("503", "1", "retry_after: 5s over --max-retry-wait 0s"): n
    }
    assert requests == n


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
    assert result.attempts == 1
    assert result.error.split(":")[0] in ("protocol", "encoding")


def test_a_plain_503_is_still_retried() -> None:
    answers = iter([respond(503, b""), respond(200, b"{}")])
    with ScriptedServer(lambda *_: next(answers)) as srv:
        [result] = drumfire.run([{"id": "a"}], srv.url("/x/{id}"),
                                retry=Retry(retries=3, backoff=0.01))
        assert len(srv.requests) == 2
    assert (result.status, result.attempts) == (200, 2)


# -- the table of issue 15, row by row ----------------------------------------------------


def first_attempts_come_first(events: list[tuple[str, int, int]]) -> bool:
    """Whether every row's first request came before any retry: nobody was held back."""
    last_first = max(i for i, e in enumerate(events) if e[1] == 1)
    first_retry = min((i for i, e in enumerate(events) if e[1] > 1), default=len(events))
    return last_first < first_retry


@pytest.mark.parametrize(("status", "after"), [(503, "2"), (429, "date:3")])
def test_a_tenth_throttled_with_retry_after(status: int, after: str) -> None:
    behaviour = Behaviour(throttle_share=0.1, throttle_status=status, retry_after=after)
    with ThrottleServer(behaviour) as server:
        got = run(server, 400)
        events = server.events
    throttled = {i for i, r in got.items() if share(i) < 0.1}
    assert 20 < len(throttled) < 70
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert all(got[i].attempts == (2 if i in throttled else 1) for i in got)
    assert first_attempts_come_first(events)


def test_token_bucket_is_met_at_its_rate_with_few_429s(timing_claims: bool) -> None:
    # 200 requests per second (burst 10), 429 + Retry-After: 1 above it.
    # More retries than the default 3: a row may meet the bucket empty several
    # times while the rate is first found (the benchmark keeps the defaults).
    with ThrottleServer(Behaviour(bucket_rate=200.0, bucket_burst=10.0)) as server:
        got = run(server, 600, retry=Retry(retries=8))
        statuses = server.statuses
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert statuses[200] == 600
    # The bucket refills by the wall clock, so the share of 429s depends on how
    # evenly a loaded machine lets the client pace: under 15 % is the benchmark's
    # target (pytest --timing); by default, a loose bound that a loaded machine
    # still meets (one CI run measured 15.01 %).
    share = 0.15 if timing_claims else 0.5
    assert statuses[429] < share * (statuses[429] + statuses[200])


def test_sparse_one_off_503s_do_not_collapse_concurrency() -> None:
    # 4 % of ids answer 503 once (no Retry-After), 1-20 ms latency: the default
    # still ramps up (before issue 15 every 503 cut it, down to 1 or 2 in flight).
    behaviour = Behaviour(throttle_share=0.04, retry_after=None, latency=0.001, spread=0.019)
    with ThrottleServer(behaviour) as server:
        got = run(server, 3000)
        peak = server.peak
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert peak >= 32


def test_a_slow_server_is_met_with_full_concurrency_within_a_few_round_trips() -> None:
    # 0.2 s latency, no limit: slow start x4 per round trip reaches the cap of
    # 512 (8 -> 32 -> 128 -> 512); 2,000 rows need it.
    with ThrottleServer(Behaviour(latency=0.2)) as server:
        got = run(server, 2000)
        peak = server.peak
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert peak >= 500


# -- many origins ---------------------------------------------------------------------------


def test_each_origin_has_its_own_cap() -> None:
    with ThrottleServer(Behaviour(latency=0.02)) as a, ThrottleServer(Behaviour(latency=0.02)) as b:
        urls = [{"id": f"{x}{i}", "url": s.url.replace("{id}", f"{x}{i}")}
                for i in range(150) for x, s in (("a", a), ("b", b))]  # fmt: skip
        results = list(drumfire.run(urls, per_host_concurrency=3))
        peaks = (a.peak, b.peak)
    assert len(results) == 300
    assert all(r.status == 200 for r in results)
    assert peaks == (3, 3)


def test_a_slow_origin_does_not_hold_back_the_others() -> None:
    # One origin answers in 0.5 s, one at once; rows alternate. With one request
    # at a time to the slow one, the fast one's rows all finish before the slow
    # one's third answer.
    with (
        ThrottleServer(Behaviour(latency=0.5)) as slow,
        ThrottleServer(Behaviour()) as fast,
    ):
        urls = [
            {"id": f"{x}{i}", "url": s.url.replace("{id}", f"{x}{i}")}
            for i in range(200)
            for x, s in (("s", slow), ("f", fast))
            if x == "f" or i < 6
        ]
        order = [r.id for r in drumfire.run(urls, per_host_concurrency=1)]
    assert len(order) == 206
    third_slow = [i for i, id_ in enumerate(order) if id_.startswith("s")][2]
    assert all(i < third_slow for i, id_ in enumerate(order) if id_.startswith("f"))


def test_an_origin_held_by_retry_after_does_not_stop_the_rows_of_others() -> None:
    """Rows alternate between an origin in a full outage (503, ``Retry-After: 1``, until
    the other has answered every one of its rows) and a healthy one. The outage's
    origin is held, and once half the bound on parked rows (2,048: 1,024) is its rows
    the rest go to a file on disk, so the reader goes on: the healthy origin gets all
    its rows, the outage ends, and every row is answered 200. The reader used to stop
    once 2,048 rows were parked, so the healthy origin never got its last rows and the
    outage never ended (its rows would have ended with their retries used up)."""
    n = 3000
    lock = threading.Lock()
    served = [0]
    done = threading.Event()

    def healthy(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        with lock:
            served[0] += 1
            if served[0] == n:
                done.set()
        return respond(200, {"ok": True})

    def outage(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if done.is_set():
            return respond(200, {"ok": True})
        return respond(503, {"busy": True}, [("Retry-After", "1")])

    with ScriptedServer(outage) as held, ScriptedServer(healthy) as fine:
        urls = [
            {"id": f"{x}{i}", "url": s.url(f"/{x}{i}")}
            for i in range(n)
            for x, s in (("h", held), ("f", fine))
        ]
        job = make_job("{url}", retry=Retry(retries=30, backoff=0.1))
        source = rows_source(urls)
        results: list[Result] = []
        engine = job.engine(source, results.append)
        most = {"parked": 0, "spilled": 0}

        def tick(stats: object) -> None:
            most["parked"] = max(most["parked"], engine.origins.parked)
            most["spilled"] = max(most["spilled"], engine.origins.spilled)

        engine.on_tick = tick
        asyncio.run(engine.run(source.items, source.total))
        assert done.is_set()
    assert len(results) == 2 * n
    assert Counter((r.id[0], r.status, r.error) for r in results) == {
        ("h", 200, ""): n,
        ("f", 200, ""): n,
    }
    assert most["spilled"] > 0  # the held origin's rows went to disk
    # Memory kept its bound: never all the held origin's rows at once (rows parked can
    # pass park_limit only by retries coming back to wait, which were in memory anyway).
    assert most["parked"] < n
    assert engine.origins.spills == {}


def test_per_host_options_are_checked(tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("http://127.0.0.1:1/x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(src), "--per-host-rate", "fast"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("Error: --per-host-rate:") or (
        "--per-host-rate" in proc.stderr
    )


# -- a host-wide pause only when the server says so for everyone ----------------------------


def test_a_full_outage_costs_about_one_window_of_probes() -> None:
    # Every answer is 503 + Retry-After: 1 for the first second: once most answers
    # are throttled the origin is held, rather than each row sending its own probe.
    with ThrottleServer(Behaviour(outage=1.0, outage_retry_after="1")) as server:
        got = run(server, 500)
        throttled = server.throttled
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert throttled <= 64


@pytest.mark.parametrize("style", ["x", "ietf", "ietf-multi", "ietf-split", "draft7"])
def test_quota_headers_are_followed_without_429s(style: str) -> None:
    # 200 requests per 2 s window, stated on every answer: drumfire paces to it.
    behaviour = Behaviour(quota=200, quota_window=2.0, quota_style=style)
    with ThrottleServer(behaviour) as server:
        got = run(server, 300)
        statuses = server.statuses
    assert all(r.status == 200 and r.error == "" for r in got.values())
    assert statuses[429] == 0


@pytest.mark.parametrize("reset", ["delta", "unix", "unix-ms"])
def test_a_quota_spent_longer_than_max_retry_wait_ends_the_rows_at_once(reset: str) -> None:
    # 5 requests per 10-minute window, --max-retry-wait 2: the quota is spent after 5
    # answers and resets in 10 minutes. Those rows are not held for it (the run used
    # to stall for the whole reset, and for ever with a reset in Unix milliseconds):
    # they end at once, not sent, with a retry_after error naming the quota.
    behaviour = Behaviour(quota=5, quota_window=600.0, quota_reset=reset)
    with ThrottleServer(behaviour) as server:
        got = run(server, 40, retry=Retry(max_retry_after=2.0))
        requests = server.requests
    assert sum(r.status == 200 for r in got.values()) == 5
    ended = [r for r in got.values() if r.status != 200]
    assert all(r.reason == "retry_after" for r in ended)
    # Those sent before the quota was read were answered 429 with Retry-After: 600;
    # the others were never sent.
    sent = [r for r in ended if r.status == 429]
    unsent = [r for r in ended if r.status is None]
    assert len(sent) + len(unsent) == len(ended)
    assert requests == 5 + len(sent)
    assert len(unsent) >= 20
    assert all(r.attempts == 0 for r in unsent)
    # "quota resets in 600s" (a second less or more: the window started a moment
    # before; a Unix time in seconds is rounded up)
    waits = {int(r.error.split("quota resets in ")[1].split("s,")[0]) for r in unsent}
    assert waits <= set(range(590, 602)), waits


@pytest.mark.parametrize("style", ["x", "ietf"])
def test_quota_headers_sent_only_on_429s_are_read(style: str) -> None:
    # 30 requests per 10-minute window, stated on the 429s alone (as many servers do),
    # --max-retry-wait 2. The first 30 answers (200s) say nothing, so quota headers
    # were no longer looked for, and every row after them was sent and answered 429
    # (its Retry-After: 600 over the cap). The 429s are read now: the quota is spent
    # for 10 minutes, and the rows not yet sent end unsent, naming it.
    behaviour = Behaviour(quota=30, quota_window=600.0, quota_style=style, quota_on="429")
    with ThrottleServer(behaviour) as server:
        got = run(server, 200, retry=Retry(max_retry_after=2.0), concurrency=4)
        requests = server.requests
    assert sum(r.status == 200 for r in got.values()) == 30
    unsent = [r for r in got.values() if r.status is None]
    assert all(r.reason == "retry_after" and "quota resets in" in r.error for r in unsent)
    assert all(r.attempts == 0 for r in unsent)
    # The first 429 is read before its row is settled: at most the 3 other requests
    # in flight then are answered 429 too.
    assert requests <= 30 + 4
    assert len(unsent) >= 200 - 34


def test_a_quota_spent_no_longer_than_max_retry_wait_is_waited_for() -> None:
    # 10 requests per 1-second window, the reset stated as a Unix time in milliseconds
    # (it used to read as a hold of 1.8e12 s): each spent window is held until its
    # reset, and every row ends 200. (A hold may end a moment before the server's
    # window does: a 429 then, whose Retry-After is waited for, so no assertion on 429s.)
    behaviour = Behaviour(quota=10, quota_window=1.0, quota_reset="unix-ms")
    with ThrottleServer(behaviour) as server:
        got = run(server, 25, retry=Retry(max_retry_after=2.0), concurrency=1)
    assert all(r.status == 200 and r.error == "" for r in got.values())


# -- a retry budget -------------------------------------------------------------------------


def test_a_failing_server_is_not_hammered_by_retries() -> None:
    # Every answer is 503 (no Retry-After), forever. With 10 retries per row and
    # no budget that is 11 requests per row; the budget lets retries add about
    # a fifth of the requests (plus a reserve of 100 and 10 per second).
    behaviour = Behaviour(throttle_share=1.0, throttle_times=1000, retry_after=None)
    with ThrottleServer(behaviour) as server:
        got = run(server, 1000, retry=Retry(retries=10, backoff=0.001, max_backoff=0.005))
        requests = server.requests
    assert all(r.status == 503 for r in got.values())
    assert requests < 1.5 * 1000


def test_the_throttle_server_closes_connections_left_open_when_it_stops() -> None:
    # A client connection still open at stop() was left to the garbage collector, which
    # closed it later with a ResourceWarning inside whichever test ran then (a CI flake).
    import gc
    import socket
    import warnings

    with ThrottleServer(Behaviour()) as server:
        client = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"GET /item/a HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b'"ok":true' not in answer:
            chunk = client.recv(4096)
            assert chunk, "the server closed before answering"
            answer += chunk
    with client, warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()
        # closed by the server at stop: end of stream (or a reset), not a hang
        client.settimeout(10)
        try:
            assert client.recv(1) == b""
        except ConnectionResetError:
            pass


# -- a stop sends nothing more ---------------------------------------------------------------


def test_no_request_is_sent_after_a_stop() -> None:
    # Every answer a 503 with Retry-After: 1: rows sleep before their retry, or
    # wait parked with the held origin. The run is stopped (as Ctrl-C does) at a
    # sweep that finds nothing on the wire, so every request sent before the stop
    # has reached the server: it must see no other. The stop used to cancel only
    # the sleeping rows; the origin's timer then sent the parked ones, first
    # attempts among them, during the grace period.
    import asyncio

    from drumfire._job import make_job
    from drumfire._result import Stats
    from drumfire._sources import rows_source

    def outage(index: int, method: str, target: str, headers: object, body: bytes) -> Action:
        return respond(503, b"", [("Retry-After", "1")])

    seen: list[int] = []
    with ScriptedServer(outage) as srv:
        source = rows_source([{"id": f"r{i}"} for i in range(300)])
        results: list[Result] = []
        job = make_job(srv.url("/{id}"), retry=Retry(retries=5))

        def tick(stats: Stats) -> None:
            if not seen and stats.concurrency == 0 and engine.origins.parked and srv.requests:
                seen.append(len(srv.requests))
                engine.stop()

        engine = job.engine(source, results.append, on_tick=tick, tick_interval=0.01)
        stats = asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 60))
        sent = len(srv.requests)
    assert seen, "the run ended before a sweep found the origin held"
    assert sent == seen[0]
    assert stats.stopped
    assert {r.error for r in results} == {"cancelled"}
    assert any(r.attempts == 0 for r in results)  # parked, never sent: --resume sends them
    assert sum(r.attempts for r in results) == sent

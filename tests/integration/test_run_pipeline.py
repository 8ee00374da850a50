"""HTTP pipelining: the engine queues GET requests on busy connections once its own
CPU limits the run. Here a CPU clock that runs as fast as the wall clock makes the
engine believe it is CPU-bound, so pipelining starts within a few sweeps, and real
servers on 127.0.0.1 answer: a scripted raw-socket server (closing after N answers
like osrm-routed, or resetting connections) and a real osrm-routed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from servers import Action, ScriptedServer, reset, respond

from drumfire import Result, Retry
from drumfire._engine import Engine
from drumfire._job import make_job
from drumfire._result import Stats
from drumfire._sources import rows_source
from drumfire._testing.osrm import OsrmServer, random_pairs, route_path

FAST = Retry(retries=3, backoff=0.01)


def run_engine(
    rows: list[dict[str, str]],
    url: str,
    *,
    cpu_bound: bool = True,
    **kwargs: Any,
) -> tuple[list[Result], Stats, Engine]:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 5.0)
    job = make_job(url, **kwargs)
    source = rows_source(rows)
    results: list[Result] = []
    # CPU time that passes as fast as wall time: a client using a whole core.
    cpu: Callable[[], float] = time.perf_counter if cpu_bound else (lambda: 0.0)
    engine = job.engine(source, results.append, cpu_clock=cpu, tick_interval=0.005)
    engine.CPU_TICKS = 1
    engine.CPU_SPAN = 0.005
    stats = asyncio.run(engine.run(source.items, source.total))
    return results, stats, engine


def by_id(results: list[Result]) -> dict[str, Result]:
    counts = Counter(r.id for r in results)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    return {r.id: r for r in results}


def rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"r{i}", "n": str(i)} for i in range(n)]


def echo_n(index: int, method: str, target: str, headers: dict[str, str], body: bytes) -> Action:
    # The answer names the request it answers: a mix-up would show in the rows.
    return respond(200, {"n": int(target.rsplit("/", 1)[1]), "method": method})


def check_answers(results: list[Result], n: int) -> dict[str, Result]:
    got = by_id(results)
    assert set(got) == {f"r{i}" for i in range(n)}
    for rid, r in got.items():
        assert (r.status, r.error) == (200, ""), r
        assert r.fields == {"n": int(rid[1:])}, r  # each answer went to its own row
    return got


def test_pipelined_answers_reach_their_rows_through_silent_closes() -> None:
    # Like osrm-routed: every connection closes after its 40th answer, which says
    # "Keep-Alive: max=1"; the requests queued behind it are sent again elsewhere.
    n = 3000
    with ScriptedServer(echo_n, max_requests=40, keep_alive_header=True) as server:
        results, stats, engine = run_engine(rows(n), server.url("/item/{n}"), extract={"n": "n"})
        served = len(server.requests)
    got = check_answers(results, n)
    assert engine.pipelining
    assert stats.pipelined > 0
    # Re-sent requests the server never answered do not count as attempts.
    assert all(r.attempts == 1 for r in got.values())
    assert stats.requests == n
    assert served >= n  # some queued requests were read by the server but not answered


def test_requests_handed_back_by_a_silent_close_are_counted_as_resent() -> None:
    # Every connection closes after its 40th answer without saying so: the requests
    # queued behind it are handed back and sent again on another. They are no
    # attempts (never answered), but they are sent twice: ``resent`` counts them (it
    # counted only a request found on a closed connection, and the summary said
    # fewer requests than the server read).
    n = 3000
    with ScriptedServer(echo_n, max_requests=40) as server:
        results, stats, engine = run_engine(rows(n), server.url("/item/{n}"), extract={"n": "n"})
        served = len(server.requests)
    got = check_answers(results, n)
    assert engine.pipelining
    assert all(r.attempts == 1 for r in got.values())
    assert stats.requests == n
    # The close resets the requests queued behind the 40th, unread: whether the reset
    # also loses the 40th answer (and the server reads that request twice) depends on
    # which comes first at the client, so ``served > n`` is not asserted (a loaded
    # machine failed it). Whatever the server read was counted, sent or re-sent.
    assert served >= n
    assert served <= stats.requests + stats.resent
    # A close without a word, which resets the requests it did not read, gives no exact
    # count (answers it had sent may be lost with them): nothing is learned from it.
    assert engine.pool.answers == {}


def test_a_servers_requests_per_connection_are_learned_from_its_closes() -> None:
    # As nginx after its keepalive_requests: the 40th answer says Connection: close,
    # and the requests pipelined behind it are read by nobody. Two connections ending
    # at 40 in a row teach drumfire the count: later ones get no more than 40 requests,
    # so hardly any is written past the close (without it, about 1,900 of them for
    # 3,000 rows were written twice).
    n = 3000
    with ScriptedServer(echo_n, max_requests=40, close_header=True) as server:
        results, stats, engine = run_engine(rows(n), server.url("/item/{n}"), extract={"n": "n"})
        served = len(server.requests)
    got = check_answers(results, n)
    assert engine.pipelining
    assert all(r.attempts == 1 for r in got.values())
    assert list(engine.pool.answers.values()) == [40]
    assert served <= stats.requests + stats.resent
    assert stats.resent < n // 4


def test_requests_queued_behind_a_reset_are_sent_again() -> None:
    n = 1500
    was_reset: set[str] = set()

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        # Reset some connections, never twice on the same request.
        if index % 97 == 50 and target not in was_reset:
            was_reset.add(target)
            return reset()
        return echo_n(index, method, target, headers, body)

    with ScriptedServer(handler) as server:
        results, stats, _ = run_engine(rows(n), server.url("/item/{n}"), extract={"n": "n"})
    got = check_answers(results, n)
    assert stats.pipelined > 0
    # A reset can also swallow answers already sent on that connection, so a row may
    # need more than one retry; none fails, and attempts add up to the requests sent.
    # A reset before any byte on a reused connection is the free re-send: no attempt,
    # counted in ``resent``.
    assert stats.resent + sum(r.attempts - 1 for r in got.values()) > 0
    assert stats.requests == sum(r.attempts for r in got.values())


def test_post_requests_are_never_pipelined() -> None:
    n = 400
    with ScriptedServer(echo_n) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), method="POST", data='{{"x": {n}}}', extract={"n": "n"}
        )
    check_answers(results, n)
    assert stats.pipelined == 0


def test_no_pipelining_while_the_cpu_is_not_the_limit() -> None:
    n = 400
    with ScriptedServer(echo_n) as server:
        results, stats, engine = run_engine(
            rows(n), server.url("/item/{n}"), cpu_bound=False, extract={"n": "n"}
        )
    check_answers(results, n)
    assert not engine.pipelining
    assert stats.pipelined == 0


def test_pipeline_1_turns_it_off() -> None:
    n = 400
    with ScriptedServer(echo_n) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), pipeline=1, extract={"n": "n"}
        )
    check_answers(results, n)
    assert stats.pipelined == 0


def test_pipelining_keeps_a_few_connections_with_deep_queues() -> None:
    # Started with 32 connections; once pipelining, the surplus closes as it falls
    # idle and the rest carry the requests (fewer, larger reads and writes).
    n = 4000
    seen: list[tuple[bool, int]] = []
    with ScriptedServer(echo_n) as server:
        job = make_job(server.url("/item/{n}"), extract={"n": "n"}, retry=FAST, concurrency=32)
        source = rows_source(rows(n))
        results: list[Result] = []
        engine = job.engine(
            source,
            results.append,
            cpu_clock=time.perf_counter,
            tick_interval=0.005,
            on_tick=lambda _: seen.append((engine.pipelining, engine.pool.open)),
        )
        engine.CPU_TICKS = 1
        engine.CPU_SPAN = 0.005
        stats = asyncio.run(engine.run(source.items, source.total))
        accepted = server.connections
    check_answers(results, n)
    assert stats.pipelined > 0
    # No churn: a row with nowhere to queue (connections still connecting when
    # pipelining started) waits for an answer instead of opening a connection
    # that would be closed again as surplus (once, nearly one per row).
    assert accepted < 40
    assert max(opened for _, opened in seen) > Engine.PIPELINE_CONNECTIONS
    assert engine.connection_cap <= Engine.PIPELINE_CONNECTIONS
    assert engine.pool.open == 0  # all closed at the end of the run
    # While pipelining, no new connection opens, and the surplus goes.
    assert any(on and opened <= Engine.PIPELINE_CONNECTIONS for on, opened in seen)


@pytest.mark.osrm
def test_pipelined_run_against_osrm_matches_direct_queries(osrm_server: OsrmServer) -> None:
    from test_run_osrm import direct_answers

    pairs = random_pairs(1500, seed=11)
    url = osrm_server.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false"
    results, stats, _ = run_engine(
        pairs,
        url,
        extract={"code": "code", "duration": "routes[0].duration"},
        concurrency=None,
        max_concurrency=4,
    )
    assert stats.pipelined > 0
    got = by_id(results)
    answers, _ = direct_answers(osrm_server.port, [route_path(p) for p in pairs])
    for pair, (status, body) in zip(pairs, answers, strict=True):
        row = got[pair["id"]]
        assert (row.status, row.error, row.attempts) == (status, "", 1), (pair, row)
        assert row.fields is not None
        assert row.fields["code"] == body["code"]
        expected = body["routes"][0]["duration"] if body.get("routes") else None
        assert row.fields["duration"] == expected


@pytest.mark.parametrize(
    ("share", "sweeps"), [(1.0, 1), (0.96, 1), (0.9, 2), (0.86, 2), (0.8, None)]
)
def test_how_many_sweeps_start_pipelining(share: float, sweeps: int | None) -> None:
    # 85 % of a core for 2 sweeps in a row, or 95 % for one, is CPU-bound.
    wall = [0.0]
    job = make_job("http://127.0.0.1:9/{n}")
    source = rows_source([{"n": "1"}])
    engine = job.engine(source, [].append, cpu_clock=lambda: wall[0] * share)
    started = None
    for sweep in range(1, 6):
        wall[0] += 0.05
        engine.watch_cpu(wall[0])
        if engine.pipelining:
            started = sweep
            break
    assert started == sweeps


def test_an_answer_over_max_body_teaches_no_count() -> None:
    # drumfire stops reading an answer over --max-body and closes that connection with
    # the requests queued behind it: its own close, not the server's limit.
    n = 600

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        number = int(target.rsplit("/", 1)[1])
        if number % 10 == 9:
            return respond(200, {"n": number, "pad": "x" * 5000})
        return echo_n(index, method, target, headers, body)

    with ScriptedServer(handler) as server:
        results, stats, engine = run_engine(
            rows(n), server.url("/item/{n}"), extract={"n": "n"}, max_body=1000
        )
    got = by_id(results)
    assert len(got) == n
    big = [r for rid, r in got.items() if int(rid[1:]) % 10 == 9]
    assert all((r.status, r.reason) == (200, "body_too_large") for r in big)
    assert stats.pipelined > 0
    assert engine.pool.answers == {}


def numbered(target: str) -> tuple[int, bytes]:
    number = int(target.rsplit("/", 1)[1])
    return number, b'{"n": %d}' % number


@pytest.mark.parametrize("closing", [b"Keep-Alive: timeout=5, max=1", b"Connection: close"])
def test_answers_behind_one_that_closes_are_sent_again(closing: bytes) -> None:
    # A gateway passing on its upstream's "Keep-Alive: max=1" (every 50th answer), or a
    # server going on after its own "Connection: close", with the answers pipelined
    # behind in the same send (batch): those answers are nobody's, their requests are
    # sent again. The max=1 case used to crash the engine (an answer with no request)
    # and never end; the close case failed the oldest row in flight with "protocol".
    n = 2000

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        number, doc = numbered(target)
        extra = closing if number % 50 == 7 else b"Keep-Alive: timeout=5, max=100"
        head = b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: %d\r\n\r\n" % (extra, len(doc))
        return Action(head + doc)

    with ScriptedServer(handler, batch=True) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), extract={"n": "n"}, retry=Retry(retries=0)
        )
        served = len(server.requests)
    got = check_answers(results, n)
    assert stats.pipelined > 0
    assert all(r.attempts == 1 for r in got.values())
    assert stats.requests == n
    # Each request the server read is counted: an attempt, or one re-sent.
    assert stats.resent > 0
    assert served <= stats.requests + stats.resent


def test_a_malformed_answer_fails_its_own_row_only() -> None:
    # One malformed answer among pipelined ones, sent together (batch): its row ends
    # with "protocol"; the whole answers read with it reach their rows, and the rows
    # behind it are sent again. They were thrown away, and the oldest row in flight
    # was failed instead (29 to 39 rows with valid answers, for 3,000).
    n = 3000
    bad = 777

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        number, doc = numbered(target)
        extra = b"Bad Header\r\n" if number == bad else b""
        return Action(
            b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(doc), doc)
        )

    with ScriptedServer(handler, batch=True) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), extract={"n": "n"}, retry=Retry(retries=0)
        )
        served = len(server.requests)
    got = by_id(results)
    assert set(got) == {f"r{i}" for i in range(n)}
    assert stats.pipelined > 0
    wrong = {rid: (r.status, r.error) for rid, r in got.items() if (r.status, r.error) != (200, "")}
    assert wrong == {f"r{bad}": (None, "protocol")}
    assert all(r.fields == {"n": int(rid[1:])} for rid, r in got.items() if rid != f"r{bad}")
    assert all(r.attempts == 1 for r in got.values())
    assert stats.examples["protocol"].startswith("malformed response: ")
    assert served <= stats.requests + stats.resent


def test_a_body_sent_with_a_204_answer_costs_no_other_row_its_answer() -> None:
    # A server that sends a body with a 204 answer (which has none, RFC 9110 §6.4.1),
    # among pipelined answers sent together: the bytes after the 204 begin no answer.
    # The row whose answer came after them failed with "protocol" (about 60 rows in
    # 3,000 here), although the server had answered it; now its request is sent again.
    n = 3000

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        number, doc = numbered(target)
        if number % 50 == 7:
            return Action(b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n{}")
        return Action(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(doc), doc))

    with ScriptedServer(handler, batch=True) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), extract={"n": "n"}, retry=Retry(retries=0)
        )
        served = len(server.requests)
    got = by_id(results)
    assert set(got) == {f"r{i}" for i in range(n)}
    assert stats.pipelined > 0
    wrong = {
        rid: (r.status, r.error, r.fields)
        for rid, r in got.items()
        if (r.status, r.error, r.fields) != (200, "", {"n": int(rid[1:])})
    }
    assert wrong == {f"r{i}": (204, "", {"n": None}) for i in range(7, n, 50)}
    assert all(r.attempts == 1 for r in got.values())
    assert served <= stats.requests + stats.resent


def test_a_folded_answer_right_after_a_body_begun_in_an_earlier_read() -> None:
    # Every answer folded (RFC 9112 §5.2: a user agent must unfold it) and larger than
    # a read, pipelined answers sent together (batch): each folded header block comes
    # in a read that began inside the body before it. Where that block began was not
    # known then, and its row failed with "protocol" instead of being read unfolded.
    n = 1000
    pad = "x" * 20_000

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        number, _ = numbered(target)
        doc = b'{"n": %d, "pad": "%s"}' % (number, pad.encode())
        return Action(
            b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nContent-Length: %d\r\n\r\n%s"
            % (len(doc), doc)
        )

    with ScriptedServer(handler, batch=True) as server:
        results, stats, _ = run_engine(
            rows(n), server.url("/item/{n}"), extract={"n": "n"}, retry=Retry(retries=0)
        )
    check_answers(results, n)
    assert stats.pipelined > 0

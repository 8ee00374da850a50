"""The engine on a fake network and a virtual clock: milliseconds per test, no sockets.

An asyncio loop whose time is the test's clock and whose selector, instead of
sleeping, moves that clock to the next timer; ``create_connection`` hands the
connections a fake transport to a scripted server, which answers each request
after a chosen (virtual) delay. The engine itself is unchanged: the same
``Connection`` objects, the same timers, the same sweep.
"""

from __future__ import annotations

import asyncio
import collections
import random
import selectors
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from rich.console import Console

from drumfire import Result, Retry, _settle
from drumfire._engine import Engine
from drumfire._job import make_job
from drumfire._limits import OriginLimit
from drumfire._pipelining import Pipelining
from drumfire._progress import Progress
from drumfire._result import Stats
from drumfire._sources import rows_source

ORIGIN = "http://127.0.0.1:8080"

#: What the scripted server does with a request: (status, headers, body, delay in
#: seconds); delay None: never answer. ``hits`` is how often that path came before.
Answer = tuple[int, dict[str, str], bytes, float | None]
Script = Callable[[str, int], Answer]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class VirtualSelector(selectors.SelectSelector):
    """Never waits: a wait for ``timeout`` seconds moves the clock on by that much."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise AssertionError("the engine waits for nothing: it would hang")
        self.clock.now += max(timeout, 0.0)
        return []


@dataclass
class Server:
    """A scripted HTTP/1.1 server behind fake transports."""

    script: Script
    connects: int = 0
    requests: list[str] = field(default_factory=list)
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Close each connection after this many answers, the last with "Connection:
    #: close" (as osrm-routed does), or never.
    close_after: int | None = None
    unread: int = 0  # requests written after the last one a connection answers
    #: When each row's result was written (clock time), by id.
    written: dict[str, float] = field(default_factory=dict)
    sent_before_stop: int | None = None  # requests received when the run was stopped
    #: Each connection serves its requests one at a time, this many seconds each
    #: after the one before (osrm-routed's way), not each after its own delay.
    serial: float | None = None


class FakeTransport(asyncio.Transport):
    def __init__(self, server: Server, protocol: asyncio.Protocol, loop: Any) -> None:
        super().__init__()
        self.server = server
        self.protocol = protocol
        self.loop = loop
        self.buffer = b""
        self.pending: collections.deque[bytes] = collections.deque()
        self.answered = 0
        self.seen = 0  # requests read on this connection
        self.closed = False
        self.free_at = 0.0  # Server.serial: when this connection's last answer is due

    def write(self, data: bytes | bytearray | memoryview) -> None:  # type: ignore[override]
        self.buffer += bytes(data)
        while b"\r\n\r\n" in self.buffer:  # GET requests: no body
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            last = self.server.close_after
            if last is not None and self.seen >= last:
                self.server.unread += 1  # the server reads no more on this connection
                continue
            self.seen += 1
            path = head.split(b" ", 2)[1].decode()
            hits = self.server.hits[path]
            self.server.hits[path] += 1
            self.server.requests.append(path)
            status, headers, body, delay = self.server.script(path, hits)
            if delay is None:
                continue  # never answered
            if self.server.serial is not None:
                now = self.loop.time()
                self.free_at = max(now, self.free_at) + self.server.serial
                delay = self.free_at - now
            lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            if self.seen == last:
                lines.append("Connection: close")
            self.pending.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            self.loop.call_later(delay, self._deliver)

    def _deliver(self) -> None:
        # Answers leave in request order (HTTP/1.1), whichever timer fires first.
        if self.closed or not self.pending:
            return
        self.protocol.data_received(self.pending.popleft())
        self.answered += 1
        if self.server.close_after is not None and self.answered >= self.server.close_after:
            self._lose()

    def _lose(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def close(self) -> None:
        self._lose()

    def abort(self) -> None:
        self._lose()

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def new_loop(clock: Clock, server: Server) -> asyncio.AbstractEventLoop:
    loop = asyncio.SelectorEventLoop(VirtualSelector(clock))
    loop.time = clock  # type: ignore[method-assign]

    async def create_connection(
        factory: Callable[[], asyncio.Protocol], host: str, port: int, **_: Any
    ) -> tuple[asyncio.Transport, asyncio.Protocol]:
        server.connects += 1
        protocol = factory()
        transport = FakeTransport(server, protocol, loop)
        protocol.connection_made(transport)
        return transport, protocol

    loop.create_connection = create_connection  # type: ignore[method-assign,assignment]
    return loop


def ok(path: str, hits: int) -> Answer:
    return 200, {}, b'{"n": "%s"}' % path.encode(), 0.001


def run(
    script: Script,
    n: int = 10,
    *,
    cpu_bound: bool = False,
    close_after: int | None = None,
    stop_at: float | None = None,
    on_tick: Callable[[Stats], None] | None = None,
    rows: list[dict[str, Any]] | None = None,
    url: str = ORIGIN + "/{n}",
    **kwargs: Any,
) -> tuple[list[Result], Stats, Server, Clock, Engine]:
    """Send rows 0..n-1 as GET /{n}; return the results in the order they were written.

    ``stop_at``: stop the run then (as Ctrl-C does), noting the requests sent so far.
    ``rows`` and ``url``: other rows (each with its id in ``n``) and URL template.
    """
    clock = Clock()
    server = Server(script, close_after=close_after)
    loop = new_loop(clock, server)
    kwargs.setdefault("retry", Retry(retries=2, backoff=0.1))
    kwargs.setdefault("id", "n")
    job = make_job(url, **kwargs)
    source = rows_source(rows if rows is not None else [{"n": str(i)} for i in range(n)])
    results: list[Result] = []

    def write(result: Result) -> None:
        results.append(result)
        server.written[result.id] = clock.now

    # A CPU clock as fast as the clock: the engine believes it uses a whole core.
    cpu: Callable[[], float] = clock if cpu_bound else (lambda: 0.0)
    engine = job.engine(source, write, clock=clock, cpu_clock=cpu, rng=random.Random(1))
    engine.on_tick = on_tick
    if stop_at is not None:

        def stop() -> None:
            server.sent_before_stop = len(server.requests)
            engine.stop()

        loop.call_later(stop_at, stop)
    try:
        stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    return results, stats, server, clock, engine


def by_id(results: list[Result]) -> dict[str, Result]:
    return {r.id: r for r in results}


def test_every_row_answered_once() -> None:
    results, stats, server, _clock, _ = run(ok, 50, concurrency=4)
    assert sorted(int(r.id) for r in results) == list(range(50))
    assert all((r.status, r.attempts, r.error) == (200, 1, "") for r in results)
    assert len(server.requests) == 50
    assert server.connects == 4  # kept alive: one connection per slot
    assert stats.done == 50


def test_retries_then_success_with_backoff() -> None:
    def flaky(path: str, hits: int) -> Answer:
        if path == "/3" and hits < 2:
            return 503, {}, b"", 0.001
        return ok(path, hits)

    results, _stats, server, clock, _ = run(flaky, 5, concurrency=2)
    row = by_id(results)["3"]
    assert (row.status, row.attempts, row.error) == (200, 3, "")
    assert server.hits["/3"] == 3
    assert clock.now < 1.0  # two short backoffs (at most 0.1 s and 0.2 s), no real sleep


def test_retries_run_out() -> None:
    results, _, server, _, _ = run(lambda p, h: (502, {}, b"", 0.001), 3, concurrency=1)
    assert all((r.status, r.attempts) == (502, 3) for r in results)  # 1 + 2 retries
    assert len(server.requests) == 9


def test_retry_after_delays_only_its_row() -> None:
    def throttled(path: str, hits: int) -> Answer:
        if path == "/0" and hits == 0:
            return 503, {"Retry-After": "5"}, b"", 0.001
        return ok(path, hits)

    results, _, server, _, _ = run(throttled, 20, concurrency=2)
    assert all(r.status == 200 for r in results)
    assert by_id(results)["0"].attempts == 2
    # The throttled row waited its 5 seconds; the others did not wait for it.
    assert results[-1].id == "0"
    assert server.written["0"] >= 5.0
    assert max(t for i, t in server.written.items() if i != "0") < 0.5


def test_a_retry_after_over_the_cap_ends_the_row_at_once() -> None:
    def throttled(path: str, hits: int) -> Answer:
        return 503, {"Retry-After": "3600"}, b"", 0.001

    results, _, server, clock, _ = run(throttled, 2, concurrency=2)
    assert all(r.status == 503 and r.error.startswith("retry_after: 3600s") for r in results)
    assert len(server.requests) == 2
    assert clock.now < 1.0


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("9" * 400, "retry_after: 2147483648s over --max-retry-wait"),
        ("Thu, 01 Jan 2099 00:00:99999999999999999999 GMT", ""),  # malformed: a retry
    ],
)
def test_a_retry_after_out_of_range_still_ends_each_row(value: str, error: str) -> None:
    # 400 digits gave an infinity whose error text raised OverflowError, and a date with
    # huge fields raised it in parsing, inside the answer's handling: a row ended with an
    # internal error or none at all, and the run hung.
    def throttled(path: str, hits: int) -> Answer:
        return (429, {"Retry-After": value}, b"", 0.001) if hits == 0 else ok(path, hits)

    results, _, _, _, _ = run(throttled, 3, concurrency=1)
    assert len(results) == 3
    if error:
        assert all(r.status == 429 and r.error.startswith(error) for r in results)
    else:
        assert all(r.status == 200 and r.attempts == 2 for r in results)


def test_rows_over_the_cap_all_say_so_and_leave_the_retry_budget_alone() -> None:
    # 1000 rows asked to wait an hour, over the cap: each ends at its first answer
    # with retry_after. They used to take a token of the origin's retry budget
    # (100 at first, a fifth per request sent) without retrying: once it ran out,
    # the rest ended with a bare 503, and later rows found no budget for their
    # retries. Rows 1000-1099 answer 502 once: every one of them is retried.
    def script(path: str, hits: int) -> Answer:
        if int(path[1:]) < 1000:
            return 503, {"Retry-After": "3600"}, b"", 0.001
        return (502, {}, b"", 0.001) if hits == 0 else ok(path, hits)

    results, _, server, _, _ = run(script, 1100, concurrency=16)
    got = by_id(results)
    over = collections.Counter((got[str(i)].status, got[str(i)].attempts, got[str(i)].error)
                               for i in range(1000))  # fmt: skip
    assert over == {(503, 1, "retry_after: 3600s over --max-retry-wait 60s"): 1000}
    assert all((got[str(i)].status, got[str(i)].attempts) == (200, 2) for i in range(1000, 1100))
    assert len(server.requests) == 1200


def test_a_row_the_retry_budget_does_not_retry_says_so() -> None:
    # Every answer a 503: the budget (no share, no floor: only its reserve) lets
    # some rows retry; the others end with their 503 and say why, where they ended
    # with a bare 503, as if their --retries had been used up.
    def down(path: str, hits: int) -> Answer:
        return 503, {}, b"", 0.001

    retry = Retry(retries=1, backoff=0.001, budget=0.0, budget_floor=0.0)
    results, _, server, _, _ = run(down, 300, concurrency=8, retry=retry)
    outcomes = collections.Counter((r.status, r.attempts, r.error) for r in results)
    refused = outcomes[(503, 1, retry.budget_error())]
    retried = outcomes[(503, 2, "")]
    assert refused > 0
    assert retried > 0
    assert refused + retried == 300
    assert len(server.requests) == 300 + retried
    assert retry.budget_error() == (
        "retry_budget: retries to this origin are at 0% of its recent requests plus 0/s"
    )


def test_deadline_ends_an_unanswered_request() -> None:
    def silent(path: str, hits: int) -> Answer:
        return (200, {}, b"{}", None) if path == "/1" else ok(path, hits)

    results, stats, server, clock, _ = run(
        silent, 3, concurrency=3, timeout=2.0, retry=Retry(retries=1, backoff=0.01)
    )
    row = by_id(results)["1"]
    assert (row.status, row.error, row.attempts) == (None, "timeout", 2)
    assert server.hits["/1"] == 2
    assert 4.0 <= clock.now < 5.0  # two attempts of 2 s each, found by the sweep
    assert "timeout" in stats.examples


def test_ordered_output_follows_the_input() -> None:
    def slow_evens(path: str, hits: int) -> Answer:
        delay = 0.05 if int(path[1:]) % 2 == 0 else 0.001
        return 200, {}, b"{}", delay

    results, _, _, _, _ = run(slow_evens, 40, concurrency=8, ordered=True)
    assert [r.id for r in results] == [str(i) for i in range(40)]
    unordered, _, _, _, _ = run(slow_evens, 40, concurrency=8)
    assert [r.id for r in unordered] != [str(i) for i in range(40)]


def test_ordered_goes_on_when_the_oldest_rows_answer_reopens_a_full_window() -> None:
    # Row 0 is slow: the rows after it are answered and held until the order window
    # (1,024 rows at -c 4) is full, and reading stops. Row 0's answer reopens it, but
    # the answer's handling started new requests before writing the row (none could
    # start), and it was the last in flight: nothing pumped again and the run stood
    # still until Ctrl-C (here: a stop at 600 s of the virtual clock).
    def script(path: str, hits: int) -> Answer:
        return 200, {}, b"{}", 5.0 if path == "/0" else 0.001

    results, _, _, clock, _ = run(script, 3000, concurrency=4, ordered=True, stop_at=600.0)
    assert [r.id for r in results] == [str(i) for i in range(3000)]
    assert all(r.status == 200 for r in results)
    assert clock.now < 600.0  # ended on its own, not by the stop


def test_pipelining_starts_and_hands_back_what_a_closed_connection_left() -> None:
    # Each connection closes after 7 answers: requests pipelined behind the 7th
    # were never answered, go back to the engine and are sent again elsewhere,
    # without counting as an attempt.
    results, stats, server, _, engine = run(
        ok, 2000, cpu_bound=True, close_after=7, concurrency=None, max_concurrency=8
    )
    assert stats.pipelined > 0
    assert engine.pipelining
    assert sorted(int(r.id) for r in results) == list(range(2000))
    assert all((r.status, r.attempts, r.error) == (200, 1, "") for r in results)
    assert server.unread > 0  # those were handed back and sent again
    assert engine.pool.open == 0


def test_a_per_host_cap_stays_requests_in_flight_while_pipelining() -> None:
    # Pipelining counts the adaptive limit in connections' worth of requests (64 each);
    # that multiplied a --per-host-concurrency 3 too: 192 requests in flight to a host
    # the user capped at 3 (an integration test saw it when the machine was busy).
    seen: list[int] = []

    def tick(stats: Stats) -> None:
        seen.append(stats.concurrency)

    results, stats, _, _, _ = run(
        lambda path, hits: (200, {}, b"{}", 0.02),
        3000,
        cpu_bound=True,
        per_host_concurrency=3,
        on_tick=tick,
    )
    assert len(results) == 3000
    assert stats.pipelined > 0
    assert 0 < max(seen) <= 3


def test_the_limit_shown_counts_requests_as_in_flight_does_while_pipelining() -> None:
    # The progress line's "in flight 192/12": the adaptive limit counts connections
    # while pipelining, each carrying up to --pipeline requests; shown in requests now.
    seen: list[tuple[int, int]] = []

    def tick(stats: Stats) -> None:
        seen.append((stats.concurrency, stats.limit))

    _, stats, _, _, engine = run(
        ok, 3000, cpu_bound=True, concurrency=None, max_concurrency=8, on_tick=tick
    )
    assert stats.pipelined > 0
    assert engine.pipelining
    assert seen
    assert all(inflight <= limit for inflight, limit in seen), seen
    assert max(inflight for inflight, _ in seen) > 8  # more than the limit's 8 connections


def test_latency_alone_leaves_pipelining_its_connections() -> None:
    # A server that serves each connection's requests one at a time, 10 ms each: a
    # request pipelined behind 63 others is answered 640 ms after it was sent. The
    # adaptive limit (a connection's worth of requests per unit while pipelining)
    # took that wait for a queueing server and cut, down to one connection: against
    # osrm-routed one of its two threads had nothing to do (issue 19). Latency alone
    # no longer takes it below the connections pipelining keeps.
    seen: list[tuple[bool, int]] = []
    engine: Engine | None = None

    def tick(stats: Stats) -> None:
        assert engine is not None
        seen.append((engine.pipelining, stats.limit))

    clock = Clock()
    server = Server(ok, serial=0.01)
    loop = new_loop(clock, server)
    job = make_job(ORIGIN + "/{n}", id="n")
    source = rows_source([{"n": str(i)} for i in range(20_000)])
    results: list[Result] = []
    engine = job.engine(source, results.append, clock=clock, cpu_clock=clock)
    engine.on_tick = tick
    try:
        stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert len(results) == 20_000
    assert stats.pipelined > 19_000
    limits = [limit for on, limit in seen[:-2] if on]  # not the input's end
    assert len(limits) > 100
    assert min(limits) >= Pipelining.CONNECTIONS * 64


def test_watch_cpu_turns_pipelining_on_and_off() -> None:
    clock = Clock()
    share = [1.0]
    cpu = [0.0]

    def cpu_clock() -> float:
        return cpu[0]

    job = make_job(ORIGIN + "/{n}")
    source = rows_source([{"n": "1"}])
    engine = job.engine(source, [].append, clock=clock, cpu_clock=cpu_clock)

    def sweep() -> None:
        clock.now += 0.05
        cpu[0] += 0.05 * share[0]
        engine.watch_cpu(clock.now)

    sweep()
    assert engine.pipelining  # a whole core for one sweep is enough
    share[0] = 0.2
    sweep()
    assert engine.pipelining  # one idle sweep is not
    sweep()
    assert not engine.pipelining


def test_numbered_results_for_drivers_that_order_elsewhere() -> None:
    clock = Clock()
    server = Server(ok)
    loop = new_loop(clock, server)
    job = make_job(ORIGIN + "/{n}", concurrency=3, id="n")
    source = rows_source([{"n": str(i)} for i in range(30)])
    got: list[tuple[int, str]] = []

    def unexpected(result: Result) -> None:
        raise AssertionError(result)

    engine = job.engine(
        source,
        unexpected,
        on_numbered=lambda result, seq: got.append((seq, result.id)),
        clock=clock,
        cpu_clock=lambda: 0.0,
    )
    try:
        loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert sorted(got) == [(i, str(i)) for i in range(30)]
    with pytest.raises(ValueError, match="on_numbered"):
        make_job(ORIGIN + "/{n}", ordered=True).engine(
            rows_source([{"n": "1"}]), unexpected, on_numbered=lambda r, s: None
        )


def test_input_and_template_errors_keep_their_place() -> None:
    clock = Clock()
    loop = new_loop(clock, Server(ok))
    job = make_job(ORIGIN + "/{n}", ordered=True, concurrency=2)
    source = rows_source([{"n": "0"}, {"m": "1"}, {"n": "2"}])
    results: list[Result] = []
    engine = job.engine(source, results.append, clock=clock, cpu_clock=lambda: 0.0)
    try:
        loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert [r.id for r in results] == ["1", "2", "3"]  # no id column: the row numbers
    assert results[1].error == "template: row 2 has no column 'n'"
    assert [r.status for r in results] == [200, None, 200]


def test_every_part_of_the_engine_is_there() -> None:
    # The parts declare in EngineCore what they call on each other; the engine
    # must define each of those (else a call would reach the declaration).
    from drumfire._core import EngineCore

    declared = [n for n, v in vars(EngineCore).items() if callable(v) and not n.startswith("__")]
    assert declared
    for name in declared:
        assert getattr(Engine, name) is not getattr(EngineCore, name), name


def test_a_quota_spent_past_the_cap_ends_answered_rows_with_their_status_and_time() -> None:
    # After 3 answers every one is a 429 saying the quota is spent for an hour (no
    # Retry-After). The quota is read before the answers are settled: a row answered
    # so ends at once with its 429 and its attempt's time. It used to be put to sleep
    # for a retry first and then ended with no status and its wait as elapsed_ms.
    def spent(path: str, hits: int) -> Answer:
        if int(path[1:]) < 3:
            return ok(path, hits)
        return 429, {"RateLimit": '"h";r=0;t=3600'}, b"", 0.001

    results, _, server, _, _ = run(
        spent, 40, concurrency=4, retry=Retry(max_retry_after=2.0, backoff=0.5)
    )
    error = "retry_after: quota resets in 3600s, over --max-retry-wait 2s"
    outcomes = collections.Counter(
        (r.status, r.attempts, r.error) for r in results if r.status != 200
    )
    assert set(outcomes) <= {(429, 1, error), (None, 0, error)}
    assert outcomes[(429, 1, error)] >= 1
    assert len(server.requests) == 3 + outcomes[(429, 1, error)]  # none retried
    assert all(r.elapsed_ms < 100 for r in results)  # an attempt's time, never a wait


def test_quota_headers_on_429s_alone_cost_the_200s_no_header_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One row in three is answered 429 with quota headers (some left), every attempt;
    # the 200s carry none. After the origin's first 16 answers only the 429s are
    # searched for them: each 429 used to re-arm the search of the next 16 answers,
    # so most 200s had one.
    def throttles(path: str, hits: int) -> Answer:
        if int(path[1:]) % 3 == 0:
            return 429, {"RateLimit": '"h";r=500;t=1'}, b"", 0.001
        return ok(path, hits)

    searched = [0]  # header searches made
    real = _settle.rate_fields

    def counting(raw: Any) -> Any:
        searched[0] += 1
        return real(raw)

    monkeypatch.setattr(_settle, "rate_fields", counting)
    results, _, server, _, engine = run(throttles, 300, concurrency=4)
    throttled = sum(1 for r in results if r.status == 429) * 3  # three attempts each
    assert throttled == 100 * 3
    assert len(server.requests) == 200 + throttled
    assert searched[0] <= OriginLimit.WATCH + throttled
    solo = engine.origins.solo
    assert solo is not None
    assert solo.watch == 0
    assert solo.quota_rate == pytest.approx(500.0)


def test_answers_are_read_between_runs_of_rows_that_start_nothing() -> None:
    # --retry-failed on a large output: row 0 is sent, then 2,998 rows the output
    # keeps are read, then row 2999. The engine read all of them in one go before
    # the loop could read row 0's answer, so its elapsed_ms counted that work
    # (580 ms for 100,000 kept rows, against a server answering in 0.3 ms). Now it
    # reads at most PASS_AT_ONCE (256) such rows at a time, then lets the loop run.
    clock = Clock()
    server = Server(lambda path, hits: (200, {}, b"{}", 0.0))
    loop = new_loop(clock, server)
    job = make_job(ORIGIN + "/{n}", id="n", concurrency=4)
    source = rows_source([{"n": str(i)} for i in range(3000)])
    skipped_then: dict[str, int] = {}
    engine: Engine

    def write(result: Result) -> None:
        skipped_then[result.id] = engine.stats.skipped

    engine = job.engine(source, write, clock=clock, skip=lambda id_: id_ not in ("0", "2999"))
    try:
        stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert stats.skipped == 2998
    assert sorted(skipped_then) == ["0", "2999"]
    assert skipped_then["0"] < 1000  # answered long before the reading ended (it was 2998)
    assert skipped_then["2999"] == 2998


def test_the_pipelined_fill_also_reads_rows_that_start_nothing_a_run_at_a_time() -> None:
    # The pipelined fill takes its rows many at a time (_next_flights): it stops at
    # PASS_AT_ONCE rows that start nothing too, so the loop reads answers in between.
    clock = Clock()
    server = Server(lambda path, hits: (200, {}, b"{}", 0.01))
    loop = new_loop(clock, server)
    job = make_job(ORIGIN + "/{n}", id="n")
    kept = {str(i) for i in range(2000, 5000)}  # what --resume finds in the output
    source = rows_source([{"n": str(i)} for i in range(6000)])
    skipped_then: dict[str, int] = {}
    engine: Engine

    def write(result: Result) -> None:
        skipped_then[result.id] = engine.stats.skipped

    # The engine's thread busy all along: pipelining from the first sweep.
    engine = job.engine(
        source, write, clock=clock, cpu_clock=lambda: clock.now, skip=kept.__contains__
    )
    try:
        stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert stats.skipped == len(kept)
    assert len(skipped_then) == 6000 - len(kept)
    assert stats.pipelined > 0
    # Rows sent before the kept ones were answered while those were read, 256 at a time:
    # some answers came in between (before, the fill read all 3,000 in one go).
    assert {n for n in skipped_then.values() if 0 < n < len(kept)}


def test_a_quota_hold_is_shown_on_the_progress_line() -> None:
    # The first answer says the quota is spent for 12 s (within --max-retry-wait): the
    # origin is held and the rows wait. The progress line used to show only a rate
    # falling to nothing and "ETA stalled"; the ticks now carry the hold, and the line
    # says what the run waits for and how long is left, as for a Retry-After hold.
    def quota(path: str, hits: int) -> Answer:
        left = 0 if path == "/0" else 100
        return 200, {"RateLimit": f'"h";r={left};t=12'}, b"{}", 0.001

    seen: list[tuple[float, list[tuple[str, float, str]]]] = []

    def tick(stats: Stats) -> None:
        seen.append((stats.clock(), list(stats.held)))

    results, stats, _, clock, _ = run(quota, 5, concurrency=1, on_tick=tick)
    assert [r.status for r in results] == [200] * 5
    assert clock.now >= 12.0
    held = [h for _, h in seen if h]
    assert held
    assert all(h == [("127.0.0.1:8080", pytest.approx(h[0][1]), "quota")] for h in held)
    assert max(h[0][1] for h in held) <= 12.0
    assert min(h[0][1] for h in held) > 0.0
    assert seen[-1][1] == []  # over once the quota reset
    stats.held = [("127.0.0.1:8080", 11.2, "quota")]
    line = Progress(Console(), clock).render(stats, clock.now).plain
    assert "waiting for quota, 12s (127.0.0.1:8080)" in line


def test_the_pipelined_fill_numbers_each_row_by_its_place_past_rows_that_start_nothing() -> None:
    # A worker process maps its engine's numbers back to the parent's rows
    # (on_numbered). The pipelined fill numbered the row after a kept (or error)
    # row with the number the fill began at, so two rows shared a number and the
    # worker would file a result under another row's number.
    clock = Clock()
    server = Server(lambda path, hits: (200, {}, b"{}", 0.01))
    loop = new_loop(clock, server)
    job = make_job(ORIGIN + "/{n}", id="n")
    kept = {str(i) for i in range(0, 600, 3)}  # every third row found by --resume
    source = rows_source([{"n": str(i)} for i in range(600)])
    numbers: dict[str, int] = {}

    def numbered(result: Result, seq: int) -> None:
        numbers[result.id] = seq

    engine = job.engine(
        source,
        lambda result: None,
        on_numbered=numbered,
        clock=clock,
        cpu_clock=lambda: clock.now,
        skip=kept.__contains__,
    )
    try:
        stats = loop.run_until_complete(engine.run(source.items, source.total))
    finally:
        loop.close()
    assert stats.pipelined > 0
    assert stats.skipped == len(kept)
    assert numbers == {str(i): i for i in range(600) if str(i) not in kept}

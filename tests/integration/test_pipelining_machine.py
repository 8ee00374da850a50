"""The machine case of pipelining: a local server keeping the machine's cores busy.

The engine's thread is idle here (a CPU clock that does not move), the machine
reading says every core is busy, and the server's CPU reading is injected: the
engine pipelines to the scripted server on 127.0.0.1 because of the machine, not
because of its own CPU, and the rows stay right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from servers import ScriptedServer
from test_run_pipeline import FAST, check_answers, echo_n, rows

from drumfire import Result
from drumfire._connection import pipeline_room
from drumfire._engine import Engine
from drumfire._job import make_job
from drumfire._pipelining import Pipelining, ServerCpu, server_cpu_reader
from drumfire._result import Stats
from drumfire._sources import rows_source


def saturated() -> tuple[float, float]:
    """Two cores, both busy all the time."""
    t = time.perf_counter()
    return 2 * t, 2 * t


def run_local(
    url: str,
    n: int,
    server: Callable[[int], Callable[[], float | None] | None] | None,
    sleep: Callable[[float], None] | None = time.sleep,
    cpu_clock: Callable[[], float] = lambda: 0.0,  # the engine's thread is never busy
    **kwargs: Any,
) -> tuple[list[Result], Stats, Engine, list[str], list[object]]:
    job = make_job(url, extract={"n": "n"}, retry=FAST, timeout=5.0, **kwargs)
    source = rows_source(rows(n))
    results: list[Result] = []
    seen: list[str] = []
    hooked: list[object] = []
    engine = job.engine(
        source,
        results.append,
        cpu_clock=cpu_clock,
        machine_cpu=saturated,
        tick_interval=0.005,
        on_tick=lambda _: seen.append(engine.pipelining_policy.why),
        on_cpu_bound=hooked.append,
        sleep=sleep,
    )
    engine.CPU_SPAN = 0.005
    engine.CPU_TICKS = 1
    policy = engine.pipelining_policy
    policy.MACHINE_TICKS = 1
    policy.GUARD_RATIO = 0.0  # a thread-served test server's rate says nothing here
    if server is not None:
        policy.server = server
    stats = asyncio.run(engine.run(source.items, source.total))
    return results, stats, engine, seen, hooked


def test_a_local_server_saturating_the_machine_gets_pipelined_requests() -> None:
    n = 3000
    looked_up: list[int] = []
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the machine case's pauses, recorded
        pauses.append(seconds)
        time.sleep(seconds)

    def busy_server(port: int) -> Callable[[], float | None]:
        looked_up.append(port)
        return lambda: 1.7 * time.perf_counter()  # 1.7 cores' worth

    # Like osrm-routed: each connection closes after its 40th answer.
    with ScriptedServer(echo_n, max_requests=40, keep_alive_header=True) as server:
        results, stats, _, seen, hooked = run_local(
            server.url("/item/{n}"), n, busy_server, sleep
        )
        port = server.port
    got = check_answers(results, n)
    assert looked_up == [port]
    assert "machine" in seen
    assert "client" not in seen
    assert stats.pipelined > 0
    assert all(r.attempts == 1 for r in got.values())
    assert stats.requests == n
    # Not the client case: no read-ahead process would help, it would take the server's CPU.
    assert hooked == []
    # It paused after turns with answers, never longer than the setting's nap.
    assert pauses
    assert all(0 < seconds <= Pipelining.NAP for seconds in pauses)


def test_an_idle_local_server_behind_a_busy_machine_gets_no_pipelining() -> None:
    n = 600
    with ScriptedServer(echo_n) as server:
        results, stats, _, seen, _ = run_local(server.url("/item/{n}"), n, lambda port: lambda: 0.0)
    check_answers(results, n)
    assert set(seen) == {""}
    assert stats.pipelined == 0


def test_post_requests_never_turn_the_machine_case_on() -> None:
    # Nothing could be pipelined: it would only cut the connections to 5.
    n = 300
    with ScriptedServer(echo_n) as server:
        results, stats, engine, seen, _ = run_local(
            server.url("/item/{n}"),
            n,
            lambda port: lambda: 1.7 * time.perf_counter(),
            method="POST",
            data='{{"x": {n}}}',
        )
    check_answers(results, n)
    assert set(seen) == {""}
    assert stats.pipelined == 0
    assert engine.connection_cap >= 8


def test_no_pause_without_a_sleep_nor_in_the_client_case() -> None:
    # An engine without a sleep (arun's: the caller's loop has other work) pipelines
    # for the machine as before, without pausing; the client case never pauses.
    n = 1500
    busy = lambda port: lambda: 1.7 * time.perf_counter()  # noqa: E731
    with ScriptedServer(echo_n, max_requests=40, keep_alive_header=True) as server:
        results, stats, _, seen, _ = run_local(server.url("/item/{n}"), n, busy, None)
    check_answers(results, n)
    assert "machine" in seen
    assert stats.pipelined > 0
    pauses: list[float] = []
    with ScriptedServer(echo_n, max_requests=40, keep_alive_header=True) as server:
        results, stats, _, seen, _ = run_local(
            server.url("/item/{n}"), n, busy, pauses.append, cpu_clock=time.perf_counter
        )
    check_answers(results, n)
    assert "client" in seen
    assert "machine" not in seen
    assert pauses == []


def test_a_server_in_this_process_is_not_taken_for_a_busy_one() -> None:
    # The default lookup finds the listening socket in this very process (the test's
    # server thread): its CPU is the client's own, so there is no machine case.
    n = 600
    with ScriptedServer(echo_n) as server:
        reader = server_cpu_reader(server.port)
        assert isinstance(reader, ServerCpu)
        reader.thread.join(10)
        assert reader() is None
        results, stats, _, seen, _ = run_local(server.url("/item/{n}"), n, None)
    check_answers(results, n)
    assert set(seen) == {""}
    assert stats.pipelined == 0


class _Conn:
    """What pipeline_room looks at: a busy GET connection that answered before."""

    def __init__(self, behind: int, left: int | None = None) -> None:
        from drumfire._connection import BUSY, Connection

        self.state = BUSY
        self.served = 1
        self.flight = type("J", (), {"prepared": type("P", (), {"method": "GET"})()})()
        self.behind = [None] * behind
        self.left = left
        self.limit = None
        self.room = lambda depth: Connection.room(self, depth)  # type: ignore[arg-type]
        self.remaining = lambda: Connection.remaining(self)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("behind", "left", "refill", "room"),
    [
        (10, None, 1, 53),  # the client case: as soon as one fits
        (62, None, 1, 1),
        (10, None, 32, 53),  # the machine case: once half the depth fits...
        (40, None, 32, 0),  # ...not before: one write for many requests
        (31, None, 32, 32),
        (5, 10, 32, 0),  # near the server's Keep-Alive max: only once the queue is empty
        (0, 10, 32, 9),
    ],
)
def test_a_busy_connection_is_refilled_in_batches(
    behind: int, left: int | None, refill: int, room: int
) -> None:
    engine = make_job("http://127.0.0.1:9/{n}").engine(rows_source([{"n": "1"}]), [].append)
    conn = _Conn(behind, left)
    assert pipeline_room(conn, engine.pipeline, refill) == room  # type: ignore[arg-type]


def test_arun_never_pauses_the_callers_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # arun runs on the caller's event loop, which has other work: its engine gets no
    # sleep, so the machine case pipelines without pausing. run() owns its loop.
    import drumfire

    sleeps: list[object] = []
    original = Engine.__init__

    def init(self: Engine, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        sleeps.append(self.sleep)

    monkeypatch.setattr(Engine, "__init__", init)

    async def collect(url: str) -> list[Result]:
        return [r async for r in drumfire.arun(rows(20), url, extract={"n": "n"})]

    with ScriptedServer(echo_n) as server:
        url = server.url("/item/{n}")
        check_answers(asyncio.run(collect(url)), 20)
        check_answers(list(drumfire.run(rows(20), url, extract={"n": "n"})), 20)
    assert sleeps == [None, time.sleep]

"""``drumfire bench`` against real servers on 127.0.0.1: the demo server, and a server of
our own that freezes for a while every few seconds (the coordinated-omission case).

The machine may be shared and loaded: by default these tests assert behaviour (counts
set by the schedule, bounds that a slower machine only makes truer, events such as
"c requests were in flight at once"); throughput and latency claims are checked only
with ``pytest --timing`` (the ``timing_claims`` fixture). Every run is a few seconds
at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from servers import ScriptedServer, echo

from drumfire import UsageError
from drumfire.bench import BenchError, BenchReport, abench, bench
from drumfire.bench.cli import bench_command
from drumfire.demo.server import DemoServer

LATENCY_KEYS = ("mean", "p50", "p90", "p99", "p999", "max")


# -- a server that stalls ------------------------------------------------------------


class StallServer:
    """HTTP/1.1 keep-alive server that freezes ``freeze`` s in every ``period`` s.

    Freezes are the windows [period - freeze, period) + k*period after the first
    request arrived (so a run does not start frozen, and the freezes fall at the
    same moments of the run however long it took to start): a request that arrives
    in one is answered when it ends. It records every request's path and the
    server-side time from its arrival to its answer (what a tool measuring from the
    send time sees), and the most connections open at once. ``/status/NNN``
    answers that status; ``/hang`` never answers.
    """

    def __init__(self, period: float = 2.0, freeze: float = 0.0) -> None:
        self.period = period
        self.freeze = freeze
        self.paths: list[bytes] = []
        self.service: list[float] = []
        self.open = 0
        self.max_open = 0
        self.t0 = 0.0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._transports: set[asyncio.Transport] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def frozen_until(self, now: float) -> float:
        if self.freeze <= 0:
            return now
        phase = (now - self.t0) % self.period
        if phase >= self.period - self.freeze:
            return now + (self.period - phase)
        return now

    def start(self) -> StallServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = self

        class Proto(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                self.transport = transport
                self.buf = b""
                server._transports.add(transport)
                server.open += 1
                server.max_open = max(server.max_open, server.open)

            def connection_lost(self, exc: Exception | None) -> None:
                server.open -= 1
                server._transports.discard(self.transport)

            def data_received(self, data: bytes) -> None:
                self.buf += data
                while (end := self.buf.find(b"\r\n\r\n")) >= 0:
                    head, self.buf = self.buf[:end], self.buf[end + 4 :]
                    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                    if m:
                        self.buf = self.buf[int(m.group(1)) :]
                    path = head.split(b" ", 2)[1]
                    arrival = time.perf_counter()
                    if not server.paths:
                        server.t0 = arrival  # the freezes are timed from the first request
                    server.paths.append(path)
                    if path == b"/hang":
                        continue
                    status = int(path[8:11]) if path.startswith(b"/status/") else 200
                    delay = server.frozen_until(arrival) - arrival
                    if delay > 0:
                        loop.call_later(delay, self.reply, arrival, status)
                    else:
                        self.reply(arrival, status)

            def reply(self, arrival: float, status: int) -> None:
                server.service.append(time.perf_counter() - arrival)
                if not self.transport.is_closing():
                    self.transport.write(
                        b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n"
                        b"Content-Type: text/plain\r\n\r\nok" % status
                    )

        async def serve() -> asyncio.Server:
            return await loop.create_server(Proto, "127.0.0.1", 0)

        srv = loop.run_until_complete(serve())
        self.port = srv.sockets[0].getsockname()[1]
        self.t0 = time.perf_counter()
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            srv.close()
            for t in list(self._transports):
                t.abort()
            loop.run_until_complete(srv.wait_closed())
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture
def stall() -> Iterator[StallServer]:
    server = StallServer().start()
    try:
        yield server
    finally:
        server.close()


def _check_report(report: BenchReport) -> dict[str, Any]:
    d = report.to_dict()
    for key in ("requests", "duration_s", "rps", "latency_ms", "status", "errors"):
        assert key in d
    lat = d["latency_ms"]
    assert all(key in lat for key in LATENCY_KEYS)
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert all(isinstance(k, str) for k in d["status"])
    assert d["requests"] == sum(d["status"].values()) + sum(d["errors"].values())
    return d


# -- stop conditions, models ----------------------------------------------------------


def test_count_stops_at_exactly_n(demo: DemoServer, timing_claims: bool) -> None:
    report = bench(demo.url("/json"), requests=777, concurrency=5)
    d = _check_report(report)
    assert d["requests"] == 777
    assert d["status"] == {"200": 777}
    assert d["errors"] == {}
    assert d["model"] == "closed"
    assert d["latency_ms"]["p50"] > 0
    # Latencies in milliseconds: 5 connections, one request at a time each, cannot
    # spend more than 5 x the run's duration waiting for answers (Little's law).
    assert d["latency_ms"]["mean"] * 777 <= 5 * d["duration_s"] * 1000 * 1.01
    if timing_claims:
        assert d["latency_ms"]["p50"] < 100


def test_duration_stops_near_the_duration(demo: DemoServer, timing_claims: bool) -> None:
    served = demo.requests_served
    started = time.perf_counter()
    report = bench(demo.url("/json"), duration="1s", concurrency=4)
    took = time.perf_counter() - started
    d = _check_report(report)
    assert 1.0 <= d["duration_s"] <= took
    assert d["requests"] > 0
    # It stops: nothing is sent after the duration but the answers it waits for
    # (the requests in flight then are not counted).
    assert d["requests"] <= demo.requests_served - served <= d["requests"] + 4
    if timing_claims:
        assert d["duration_s"] < 1.3
        assert took < 4.0
        assert d["requests"] > 100
    assert [s["t"] for s in d["timeline"]][:1] == [0]


def test_warmup_requests_are_not_counted(stall: StallServer) -> None:
    report = bench(stall.base_url + "/w", rate=100, duration="1s", warmup="0.5s", concurrency=4)
    d = _check_report(report)
    assert d["requests"] == pytest.approx(100, abs=2)
    assert len(stall.paths) == pytest.approx(150, abs=3)  # 50 warm-up + 100 measured
    assert d["settings"]["warmup_s"] == 0.5
    # and with a count, in the closed model
    before = len(stall.paths)
    report = bench(stall.base_url + "/w", requests=200, warmup=0.3, concurrency=2)
    assert report.requests == 200
    assert len(stall.paths) - before > 200


def test_closed_model_keeps_c_connections_busy(timing_claims: bool) -> None:
    # With a capacity set, the demo server counts the requests it holds at once
    # (its /json fast path does not count: a query string avoids it).
    with DemoServer(latency=0.05, capacity=1000) as slow:
        four = bench(slow.url("/json?c=4"), concurrency=4, duration=1.0)
        peak_four = slow.peak_busy
        eight = bench(slow.url("/json?c=8"), concurrency=8, duration=1.0)
        peak_eight = slow.peak_busy
    # c requests in flight at once, never more.
    assert (peak_four, peak_eight) == (4, 8)
    # Each connection waits ~50 ms per answer: at most 4 / 0.05 = 80 requests/s.
    assert four.rps <= 82
    assert eight.rps <= 164
    assert four.latency_ms["p50"] >= 50
    assert four.settings["connections_opened"] == 4
    assert eight.settings["connections_opened"] == 8
    if timing_claims:
        assert four.rps >= 55
        assert eight.rps >= 110


def test_connections_stay_within_c_under_rate(stall: StallServer) -> None:
    report = bench(stall.base_url + "/", rate=300, duration=0.5, concurrency=3)
    assert report.settings["concurrency"] == 3
    assert stall.max_open <= 3


def test_open_model_keeps_the_rate(demo: DemoServer, timing_claims: bool) -> None:
    report = bench(demo.url("/json"), rate=200, duration="4s", concurrency=4)
    d = _check_report(report)
    assert d["model"] == "open"
    assert d["requests"] == pytest.approx(800, abs=2)  # set by the schedule
    # Never faster than asked (a loaded machine can only make it slower).
    assert d["rps"] <= 200 * 1.05
    assert d["rate"]["sent_per_s"] <= 200 * 1.05
    assert d["rate"]["asked"] == "200/s"
    per_second = [s["rps"] for s in d["timeline"] if s["span_s"] >= 0.9]
    assert len(per_second) >= 3
    if timing_claims:
        assert d["rps"] == pytest.approx(200, rel=0.05)
        assert d["rate"]["sent_per_s"] == pytest.approx(200, rel=0.05)
        assert not [w for w in d["warnings"] if "could not keep" in w]
        assert statistics.median(per_second) == pytest.approx(200, rel=0.05)


def test_open_model_count(demo: DemoServer, timing_claims: bool) -> None:
    report = bench(demo.url("/json"), rate=500, requests=300, concurrency=4)
    assert report.requests == 300
    assert report.duration_s >= 0.6 - 1e-6  # the 301st would have been due at 0.6 s
    if timing_claims:
        assert report.duration_s == pytest.approx(0.6, abs=0.1)


def test_ramp(demo: DemoServer) -> None:
    report = bench(demo.url("/json"), rate="50:250", duration=2.0, concurrency=4)
    # (50 + 250) / 2 * 2 s = 300 requests
    assert report.requests == pytest.approx(300, abs=2)
    assert report.rate is not None
    curve = report.rate["asked_curve"]
    assert curve[0] == [0.0, 50.0]
    assert curve[-1][1] == pytest.approx(250.0, rel=0.02)


def test_freeze_shows_in_the_open_model(timing_claims: bool) -> None:
    """200/s over 4 connections, the server frozen 0.5 s in every 2 s (at 1.5 s and 3.5 s)."""
    server = StallServer(period=2.0, freeze=0.5).start()
    try:
        report = bench(server.base_url + "/", rate=200, duration="5s", concurrency=4)
    finally:
        server.close()
    d = _check_report(report)
    assert d["requests"] == pytest.approx(1000, abs=3)
    assert d["errors"] == {}
    assert d["rps"] <= 200 * 1.05
    assert d["rate"]["sent_per_s"] <= 200 * 1.05
    # A quarter of the time frozen: the requests due then waited up to 0.5 s.
    assert d["latency_ms"]["p90"] >= 100
    assert d["latency_ms"]["max"] >= 400
    assert d["rate"]["queue_ms"]["max"] >= 300
    assert d["rate"]["backlog_max"] >= 20
    # The timeline shows the freezes as latency spikes.
    p99s = [s["p99_ms"] for s in d["timeline"] if s["requests"]]
    assert max(p99s) >= 300
    if timing_claims:
        # What a tool timing from the send would see: the server's own view, ~1 ms at p90
        # (on a quiet machine: a loaded one stretches any service time).
        service = sorted(server.service)
        assert service[int(0.9 * len(service))] < 0.005
        slow = [s for s in server.service if s > 0.05]
        assert len(slow) <= 4 * 3  # only the requests in flight when a freeze began
        assert d["rps"] == pytest.approx(200, rel=0.05)
        assert d["rate"]["sent_per_s"] == pytest.approx(200, rel=0.05)
        assert d["latency_ms"]["max"] <= 700
        assert min(p99s) < 50


def test_open_model_sends_the_backlog_left_at_the_end() -> None:
    """The run ends while the server is frozen: the queued requests still count."""
    server = StallServer(period=1.0, freeze=0.5).start()  # frozen from 0.5 s to 1.0 s
    try:
        report = bench(server.base_url + "/", rate=100, duration=0.9, concurrency=4)
    finally:
        server.close()
    d = _check_report(report)
    assert d["requests"] == 90
    assert d["errors"] == {}
    assert d["latency_ms"]["max"] >= 400
    assert d["duration_s"] >= 0.95  # up to the last answer, after the freeze


def test_status_codes_and_errors_are_counted(stall: StallServer) -> None:
    report = bench(stall.base_url + "/status/503", requests=50, concurrency=2)
    d = _check_report(report)
    assert d["status"] == {"503": 50}
    assert d["failed"] == 50
    assert d["ok"] == 0
    report = bench(stall.base_url + "/hang", requests=3, concurrency=3, timeout=0.3)
    d = _check_report(report)
    assert d["errors"] == {"timeout": 3}
    assert d["status"] == {}
    assert d["latency_ms"]["max"] == 0.0


def test_a_short_timeout_fires_between_the_ticks(stall: StallServer) -> None:
    """Deadlines were enforced by the 0.1 s tick alone: a 20 ms --timeout fired at up to
    120 ms. A sweep a tenth of the timeout apart (5 ms at least) fires them now: with the
    tick an hour apart, these two requests end only if the sweep times them out."""
    from drumfire.bench._api import make_plan
    from drumfire.bench._runner import Runner

    plan = make_plan(
        stall.base_url + "/hang", rows=None, input=None, input_format=None, method=None,
        headers=[], data=None, concurrency=1, rate=None, requests=2, duration=None,
        warmup=0, timeout=0.02, connect_timeout=10.0, shuffle=False, seed=None,
        verify=True, max_body=1 << 20,
    )  # fmt: skip

    async def run() -> Any:
        runner = Runner(plan.targets, tick_interval=3600.0, **plan.runner_args)
        assert runner.sweep_interval == 0.005  # a tenth of 20 ms is under the floor
        return await runner.run()

    data = asyncio.run(run())
    assert data.recorder.errors == {"timeout": 2}


def test_no_server_is_an_error() -> None:
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BenchError, match="cannot connect"):
        bench(f"http://127.0.0.1:{port}/", requests=1)


def test_rows_rotate_in_order_or_shuffled(stall: StallServer) -> None:
    rows = [{"q": "a"}, {"q": "b"}, {"q": "c"}]
    bench(stall.base_url + "/s?q={q}", rows=rows, requests=6, concurrency=1)
    assert stall.paths == [b"/s?q=a", b"/s?q=b", b"/s?q=c"] * 2
    del stall.paths[:]
    bench(stall.base_url + "/s?q={q}", rows=rows, requests=30, concurrency=1, shuffle=True)
    assert sorted(stall.paths) == sorted([b"/s?q=a", b"/s?q=b", b"/s?q=c"] * 10)
    assert stall.paths[:15] != [b"/s?q=a", b"/s?q=b", b"/s?q=c"] * 5


def test_the_summary_names_what_was_benchmarked(tmp_path: Path, demo: DemoServer) -> None:
    """``bench(url, rows=...)``'s summary once began 'drumfire bench ' and nothing more."""
    template = demo.url("/echo?q={q}")
    queries = tmp_path / "q.csv"
    queries.write_text("q\nx\n")
    for report, target in [
        (bench(template, rows=[{"q": "x"}], requests=3), f"{template} ← rows"),
        (bench(template, input=str(queries), requests=3), f"{template} ← {queries}"),
        (bench(demo.url("/json"), requests=3), demo.url("/json")),
    ]:
        assert report.summary_text().splitlines()[0] == f"drumfire bench {target}"
        assert f"<title>drumfire bench — {target}</title>" in report.to_html()


def test_input_file_with_method_headers_body(tmp_path: Path, demo: DemoServer) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"q": "x"}\n{"q": "y"}\nnot json\n')
    report = bench(
        demo.url("/echo?q={q}"),
        input=str(queries),
        method="POST",
        headers=["X-Query: {q}"],
        data='{{"query": "{q}"}}',
        requests=20,
        concurrency=2,
    )
    assert report.status == {"200": 20}
    assert report.settings["targets"] == 2
    assert report.settings["rows_skipped"] == 1
    with pytest.raises(UsageError, match="no usable row"):
        bench(demo.url("/echo?q={nope}"), input=str(queries), requests=1)


def test_single_url_body_is_literal(stall: StallServer) -> None:
    # Braces in a single URL's body are not template placeholders.
    report = bench(
        stall.base_url + "/p", method="POST", data='{"data": "def quicksort():"}', requests=3
    )
    assert report.status == {"200": 3}


@pytest.mark.parametrize("model", ["closed", "open"])
def test_connection_close_is_honoured_when_the_server_keeps_the_connection(model: str) -> None:
    # This server keeps every connection open: bench closes it itself after the answer
    # to a request that said Connection: close (RFC 9112 §9.6), as drumfire run does,
    # and the next request goes on a new connection.
    paced: dict[str, Any] = {"rate": 200} if model == "open" else {}
    with ScriptedServer(echo) as server:
        report = bench(server.url("/c"), headers=["Connection: close"], requests=12,
                       concurrency=2, **paced)  # fmt: skip
        closing = list(server.requests)
    with ScriptedServer(echo) as server:
        bench(server.url("/k"), headers=["Connection: keep-alive"], requests=12, concurrency=2,
              **paced)  # fmt: skip
        kept = list(server.requests)
    assert report.status == {"200": 12}
    assert report.errors == {}
    assert report.settings["connections_opened"] == 12
    assert len(closing) == 12
    assert all(r.headers["connection"] == "close" for r in closing)
    assert sorted(r.connection for r in closing) == list(range(12))  # one connection each
    assert len(kept) == 12
    assert {r.connection for r in kept} <= {0, 1}  # kept alive: the two connections of -c 2


def test_a_templated_connection_close_closes_only_after_those_requests() -> None:
    rows = [{"c": "close"}, {"c": "keep-alive"}, {"c": "keep-alive"}]
    with ScriptedServer(echo) as server:
        report = bench(server.url("/{c}"), rows=rows, headers=["Connection: {c}"],
                       requests=9, concurrency=1)  # fmt: skip
        seen = list(server.requests)
    assert report.status == {"200": 9}
    by_connection: dict[int, list[str]] = {}
    for r in seen:
        by_connection.setdefault(r.connection, []).append(r.headers["connection"])
    # One connection at a time: each "close" is the last request on its connection.
    assert list(by_connection.values()) == [
        ["close"],
        ["keep-alive", "keep-alive", "close"],
        ["keep-alive", "keep-alive", "close"],
        ["keep-alive", "keep-alive"],
    ]


def test_bench_inside_a_running_loop(demo: DemoServer) -> None:
    async def main() -> tuple[BenchReport, BenchReport]:
        inside = bench(demo.url("/json"), requests=50)  # a notebook cell
        awaited = await abench(demo.url("/json"), requests=50)
        return inside, awaited

    inside, awaited = asyncio.run(main())
    assert inside.requests == awaited.requests == 50


def test_ctrl_c_of_a_bench_inside_a_running_loop_stops_its_load() -> None:
    """In a notebook bench() runs on a helper thread: Ctrl-C (the kernel's interrupt) used
    to reach only the caller, and the helper went on loading the server for the rest of
    the duration. Now the load stops, and the helper is gone when the interrupt is raised."""
    main = threading.main_thread().ident
    assert main is not None
    assert threading.get_ident() == main  # the signal goes to this thread
    pressed = threading.Event()

    def handler(index: int, method: str, target: str, headers: Any, body: bytes) -> Any:
        # Mid-run: the helper sends, so the cell waits for it. The user presses Ctrl-C.
        if index == 20:
            pressed.set()
            signal.pthread_kill(main, signal.SIGINT)
        return echo(index, method, target, headers, body)

    async def cell() -> BenchReport:
        return bench(srv.url("/x"), duration=120, concurrency=2, progress=False)

    with ScriptedServer(handler) as srv:
        # A loop of its own, as a kernel has: asyncio.run's would take the signal itself.
        loop = asyncio.new_event_loop()
        # Ctrl-C raising KeyboardInterrupt, as in a kernel: a test run started in the
        # background (a CI job, `cmd &`) inherits SIGINT ignored, and nothing would come.
        before = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with pytest.raises(KeyboardInterrupt):
                loop.run_until_complete(cell())
        finally:
            signal.signal(signal.SIGINT, before)
            loop.close()
        assert pressed.is_set()
        # The helper's load is over, not going on for two minutes: besides the two
        # requests that may have been in flight, the server sees only the next run's.
        sent = len(srv.requests)
        assert bench(srv.url("/x"), requests=3, concurrency=1, progress=False).requests == 3
        assert len(srv.requests) <= sent + 2 + 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": "soon"}, "duration"),
        ({"rate": "fast"}, "rate"),
        ({"rate": "100:200", "requests": 5}, "needs a duration"),
        ({"requests": 0}, "requests=0: give a whole number, 1 or more"),
        ({"concurrency": 0}, "concurrency=0: give a whole number, 1 or more"),
        ({"warmup": "-1s"}, "warmup"),
    ],
)
def test_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        bench("http://127.0.0.1:9/", **kwargs)


# -- the command ------------------------------------------------------------------------


def test_cli_json_and_html(tmp_path: Path, demo: DemoServer) -> None:
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = [demo.url("/json"), "-n", "300", "-c", "3"]
    args += ["--json", str(out_json), "--html", str(out_html)]
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 0, result.output
    assert "requests   300" in result.output
    assert "latency distribution" in result.output
    d = orjson.loads(out_json.read_bytes())
    assert list(d)[:6] == ["requests", "duration_s", "rps", "latency_ms", "status", "errors"]
    assert d["requests"] == 300
    assert list(d["latency_ms"])[:6] == list(LATENCY_KEYS)
    page = out_html.read_text()
    assert "<svg" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)


def test_cli_input_and_rate(tmp_path: Path, stall: StallServer) -> None:
    rows = tmp_path / "q.csv"
    rows.write_text("q\none\ntwo\n")
    args = ["--input", str(rows), "--url", stall.base_url + "/?q={q}"]
    args += ["--rate", "100", "-z", "0.5s", "--quiet"]
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 0, result.output
    assert "open model" in result.output
    assert set(stall.paths) == {b"/?q=one", b"/?q=two"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a URL"),
        (["http://127.0.0.1:9/", "-z", "soon"], "duration"),
        (["http://127.0.0.1:9/", "--rate", "x"], "rate"),
        (["http://127.0.0.1:9/", "-c", "0"], "-c"),
        (["http://127.0.0.1:9/", "--bogus"], "No such option"),
        (["--input", "/nonexistent.csv"], "does not exist"),
        (["http://127.0.0.1:9/", "--json", "/nonexistent/dir/r.json"], "does not exist"),
    ],
)
def test_cli_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("drumfire bench: error:")
    assert message in lines[0]


def test_cli_connect_failure_exits_1() -> None:
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(bench_command, [f"http://127.0.0.1:{port}/", "-n", "1"])
    assert result.exit_code == 1
    assert "cannot connect" in result.output


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_stops_on_sigint_and_reports(
    signum: int, status: int, demo: DemoServer, tmp_path: Path
) -> None:
    """Ctrl-C exits 130 and SIGTERM 143, as run and compare do (SIGTERM exited 130)."""
    out = tmp_path / "r.json"
    code = "from drumfire.bench.cli import bench_command; bench_command()"
    args = [demo.url("/json"), "-z", "600s", "-c", "2", "--json", str(out)]
    served = demo.requests_served
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while demo.requests_served < served + 1000:  # wait for the run to be going
            assert time.monotonic() < deadline, "the run did not start"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, output
    assert "(stopped early)" in output
    d = orjson.loads(out.read_bytes())
    assert d["stopped"] is True
    assert d["requests"] > 0
    assert d["duration_s"] < 600  # stopped before the duration asked


# -- the HTML page in a real browser: tests/integration/test_bench_html.py -----------


def test_reports_never_show_the_password_of_the_url(tmp_path: Path, demo: DemoServer) -> None:
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    url = demo.url("/json").replace("http://", "http://user:S3CRET@")
    args = [url, "-n", "20", "-c", "2", "--json", str(out_json), "--html", str(out_html)]
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 0, result.output
    assert "http://***@127.0.0.1" in result.output
    for text in (result.output, out_json.read_text(), out_html.read_text()):
        assert "S3CRET" not in text

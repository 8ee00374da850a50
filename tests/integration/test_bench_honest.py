"""``drumfire bench`` counts what a misbehaving server did, against raw-socket servers on
127.0.0.1: requests it dropped on a reused connection, and requests still unanswered when
the run was stopped. Neither may vanish from the report."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from servers import Action, ScriptedServer, close, respond, stall

from drumfire.bench import bench
from drumfire.bench._api import make_plan
from drumfire.bench._report import build_report
from drumfire.bench._runner import Runner


def _every_fourth_dropped(
    index: int, method: str, target: str, headers: dict[str, str], body: bytes
) -> Action:
    # The server reads the request, then closes the connection without an answer.
    return close() if index % 4 == 3 else respond(200, "ok")


def test_requests_the_server_drops_on_a_reused_connection_are_counted() -> None:
    """A GET the server closes a kept-alive connection on, before any byte of an answer,
    is sent again once on a new connection (what HTTP clients do for a connection the
    server had closed), and the report says how many: ``resent``, on the summary's
    requests line and in a warning. They used to be re-sent silently, so a server that
    dropped a quarter of its requests showed none of it."""
    with ScriptedServer(_every_fourth_dropped) as srv:
        report = bench(srv.url("/"), requests=40, concurrency=1, progress=False)
        dropped = len(srv.requests) - 40
    d = report.to_dict()
    assert dropped > 0
    assert (d["status"], d["errors"]) == ({"200": 40}, {})
    assert d["resent"] == dropped
    text = report.summary_text()
    assert f"(+{dropped} re-sent: kept-alive connection found closed)" in text
    assert any("re-sent" in w for w in d["warnings"])
    assert "re-sent: kept-alive connection found closed" in report.to_html()


def test_a_post_dropped_on_a_reused_connection_is_an_error_not_sent_again() -> None:
    """A POST may have been acted on: it is not sent again (as `drumfire run` does without
    --retry-unsafe, and as Go's client that hey uses), but counted as a ``reset``. It used
    to be re-sent and counted as answered."""

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return close() if index == 2 else respond(200, "ok")

    with ScriptedServer(handler) as srv:
        report = bench(
            srv.url("/"), method="POST", data="x", requests=5, concurrency=1, progress=False
        )
        sent = len(srv.requests)
    d = report.to_dict()
    assert sent == 5
    assert (d["status"], d["errors"], d["resent"]) == ({"200": 4}, {"reset": 1}, 0)
    assert d["failed"] == 1


def test_requests_in_flight_when_stopped_are_counted_as_cancelled() -> None:
    """Requests still unanswered once a stop's grace is over are cancelled: the report
    counts them (``cancelled``, and how long the oldest had waited) and says so in the
    summary. They used to vanish: a server hanging on every request showed 0 failures."""

    hanging = threading.Event()

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if index == 4:  # 3 answered, then one hanging on each of the 2 connections
            hanging.set()
        return stall(5.0) if index >= 3 else respond(200, "ok")

    with ScriptedServer(handler) as srv:
        plan = make_plan(
            srv.url("/"), rows=None, input=None, input_format=None, method=None,
            headers=[], data=None, concurrency=2, rate=None, requests=None, duration=60.0,
            warmup=0, timeout=30.0, connect_timeout=10.0, shuffle=False, seed=None,
            verify=True, max_body=1 << 20,
        )  # fmt: skip

        async def run() -> Any:
            runner = Runner(plan.targets, **plan.runner_args)
            task = asyncio.ensure_future(runner.run())
            await asyncio.get_running_loop().run_in_executor(None, hanging.wait, 20.0)
            runner.stop(grace=0.0)
            return await task

        data = asyncio.run(run())
    report = build_report(data, dict(plan.settings), None)
    d = report.to_dict()
    assert (d["status"], d["errors"]) == ({"200": 3}, {})
    assert d["cancelled"] == 2
    assert d["cancelled_max_ms"] > 0
    assert d["stopped"] is True
    assert "cancelled  2 requests unanswered when the run was stopped" in report.summary_text()
    assert "cancelled when stopped" in report.to_html()


def test_the_closed_model_reports_its_latencies_corrected_for_coordinated_omission() -> None:
    """One answer held for 0.3 s on the only connection: the closed model measures it once,
    while clients arriving meanwhile would have waited too. The report gives, beside the
    measured latencies, those corrected as wrk corrects them (``latency_corrected_ms``, a
    summary line): the slow answer also counts the requests its connection held back,
    one every ``expected`` (the run's mean time between two requests of a connection).
    wrk's percentiles of such a run showed the stall where drumfire's did not."""

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if index == 30:
            time.sleep(0.3)  # the server is busy elsewhere
        return respond(200, "ok")

    with ScriptedServer(handler) as srv:
        report = bench(srv.url("/"), requests=60, concurrency=1, progress=False)
    d = report.to_dict()
    raw, fixed = d["latency_ms"], d["latency_corrected_ms"]
    assert raw["max"] >= 300
    assert fixed["p90"] >= 100  # the held-back requests' waits, up to 0.3 s
    assert all(fixed[k] >= raw[k] for k in ("p50", "p90", "p99", "p999"))
    assert fixed["max"] == raw["max"]
    assert fixed["interval_ms"] > 0
    text = report.summary_text()
    assert "corrected  p50" in text
    assert "coordinated omission" in text
    page = report.to_html()
    assert "corrected p99" in page
    assert "corrected for coordinated omission" in page


def test_the_open_model_needs_no_correction() -> None:
    with ScriptedServer(lambda *_: respond(200, "ok")) as srv:
        report = bench(srv.url("/"), rate=200, requests=20, concurrency=2, progress=False)
    assert report.to_dict()["latency_corrected_ms"] == {}
    assert "corrected" not in report.summary_text()


def test_requests_given_up_unsent_are_not_counted_as_sent() -> None:
    """Open model, a server that never answers, one connection: a request holds it until
    its 0.2 s timeout, found by a sweep every 20 ms while requests fall due every 10 ms,
    so some of the 100 requests due wait their whole timeout for the connection and time
    out unsent. The report counted them as sent (``sent 99/s (asked 100/s)`` for a run
    that wrote about half); it now says how many were given up unsent (``rate.unsent``),
    and ``sent_per_s`` counts the requests written."""
    with ScriptedServer(lambda *_: stall(5.0)) as srv:
        report = bench(
            srv.url("/"), rate=100, duration=1.0, concurrency=1, timeout=0.2, progress=False
        )
        seen = len(srv.requests)
    d = report.to_dict()
    assert d["requests"] == 100
    assert d["errors"] == {"timeout": 100}
    unsent = d["rate"]["unsent"]
    assert 0 < unsent <= 100 - seen  # the server saw every request written, or fewer
    # The last request was due at 0.99 s: the sends spanned that at least.
    assert d["rate"]["sent_per_s"] <= (100 - unsent - 1) / 0.98
    assert f"{unsent:,} given up unsent" in report.summary_text()


def test_requests_waiting_for_a_connection_when_stopped_are_cancelled_too() -> None:
    """Open model, one connection, a server that never answers: the requests falling due
    queue for the connection. Stopped, they are counted with the one in flight
    (``cancelled``; they used to vanish), and the rate sent is over the time up to the
    stop (it was over the first and last send, which said 100/s for a client that sent
    one request and then waited)."""
    queued = asyncio.Event()

    def on_tick(runner: Runner) -> None:
        if runner.backlog >= 5:
            queued.set()

    with ScriptedServer(lambda *_: stall(5.0)) as srv:
        plan = make_plan(
            srv.url("/"), rows=None, input=None, input_format=None, method=None,
            headers=[], data=None, concurrency=1, rate="100", requests=None, duration=60.0,
            warmup=0, timeout=30.0, connect_timeout=10.0, shuffle=False, seed=None,
            verify=True, max_body=1 << 20,
        )  # fmt: skip

        async def run() -> Any:
            runner = Runner(plan.targets, on_tick=on_tick, **plan.runner_args)
            task = asyncio.ensure_future(runner.run())
            await queued.wait()
            runner.stop(grace=0.0)
            return await task

        data = asyncio.run(run())
    report = build_report(data, dict(plan.settings), "100/s")
    d = report.to_dict()
    assert d["requests"] == 0
    assert d["cancelled"] >= 6  # the one in flight, and at least 5 queued
    assert d["cancelled_max_ms"] >= 50  # the oldest was due 5 requests (50 ms) before
    assert d["rate"]["sent_per_s"] == 0.0  # one request written in the whole run


def test_posts_failing_on_connections_closed_unannounced_get_a_hint() -> None:
    """A server closing every connection after its answer, without ``Connection: close``:
    a POST written on the connection before the close is seen fails (not re-sent), half of
    them. The warning says why and what to do, where a user saw 50 % of ``reset``."""
    with ScriptedServer(lambda *_: respond(200, "ok", then="close")) as srv:
        report = bench(
            srv.url("/"), method="POST", data="x", requests=40, concurrency=1, progress=False
        )
    d = report.to_dict()
    resets = d["errors"].get("reset", 0)
    assert resets > 0
    hint = [w for w in d["warnings"] if "Connection: close" in w]
    assert hint, d["warnings"]
    assert hint[0].startswith(f"{resets:,} requests failed with a reset")

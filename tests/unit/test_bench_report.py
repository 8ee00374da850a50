"""The report built from recorded figures: keys, order, text, HTML; the fast response path."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from bench_samples import sample_report

from drumfire._response import Response
from drumfire.bench._fastconn import BenchConnection, Loop, inspect_head
from drumfire.bench._recorder import Recorder
from drumfire.bench._report import build_report
from drumfire.bench._runner import RunData

REQUIRED = ("requests", "duration_s", "rps", "latency_ms", "status", "errors")
LATENCY_KEYS = ("mean", "p50", "p90", "p99", "p999", "max")


def test_report_keys_values_and_order() -> None:
    report = sample_report()
    d = report.to_dict()
    assert list(d)[: len(REQUIRED)] == list(REQUIRED)
    assert list(d["latency_ms"])[: len(LATENCY_KEYS)] == list(LATENCY_KEYS)
    assert d["requests"] == 2004
    assert d["status"] == {"200": 2000, "404": 1}
    assert d["errors"] == {"timeout": 2, "reset": 1}
    assert d["ok"] == 2000
    assert d["failed"] == 4
    assert d["duration_s"] == pytest.approx(3.0)
    assert d["rps"] == pytest.approx(2004 / 3.0, rel=1e-3)
    lat = d["latency_ms"]
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert lat["max"] == pytest.approx(447.0, abs=0.01)  # exact, not a histogram bucket
    assert lat["average"] == lat["mean"]
    assert lat["max_minus_average"] == pytest.approx(lat["max"] - lat["mean"], abs=1e-3)
    assert [s["t"] for s in d["timeline"]] == [0, 1, 2]
    assert sum(s["requests"] for s in d["timeline"]) == 2004
    pct = [p for p, _ in d["distribution"]]
    ms = [v for _, v in d["distribution"]]
    assert pct == sorted(pct)
    assert ms == sorted(ms)
    assert ms[-1] == lat["max"]
    assert sum(b["count"] for b in d["histogram"]) == 2001
    # JSON round trip.
    assert orjson.loads(report.to_json())["latency_ms"] == lat


def test_summary_text() -> None:
    text = sample_report().summary_text()
    assert "requests   2,004" in text
    assert "p99.9" in text
    assert "max minus average" in text
    assert "404: 1" in text
    assert "timeout: 2" in text
    assert text.count("|") >= 8  # the small distribution
    # What counts as a failure, said where the counts are (wrk's "Non-2xx or 3xx
    # responses"); the summary gave the statuses and errors, never the share.
    assert "failed     4 of 2,004 (0.2 %): statuses 400 and over, and no answer" in text


def test_html_is_self_contained_and_escaped() -> None:
    for report in (sample_report(), sample_report(open_model=True)):
        page = report.to_html()
        assert page.startswith("<!DOCTYPE html>")
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
        assert "<script" not in page
        assert "@import" not in page
        assert page.count("<svg") == 4
        assert "&lt;b&gt;" in page
        assert "<b>" not in page
        assert report._repr_html_().startswith('<div class="dfb">')


def test_empty_report() -> None:
    rec = Recorder(start=0.0)
    rec.finish(1.0)
    data = RunData(rec, 0.0, 0.0, 1.0, 0, 0.0, 0.0, None, 0.0, 0.0, 0, 0, 0.0, 1, False)
    report = build_report(data, {"concurrency": 1}, None)
    assert report.requests == 0
    assert report.latency_ms["p99"] == 0.0
    assert "no request was measured" in report.warnings[0]
    assert "No answered request" in report.to_html()
    assert report.summary_text()


# -- the fast response path ----------------------------------------------------------


NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 22 Nov 2026 04:48:02 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (NGINX[:-4], (200, 5)),
        (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length:  12", (503, 12)),
        (b"HTTP/1.1 404\r\nContent-Length: 0", (404, 0)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5, max=1", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5x", (0, -1)),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0", (0, -1)),
        (b"HTTP/1.1 100 Continue\r\nContent-Length: 0", (0, -1)),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0", (0, -1)),
        (b"HTTP/1.1 200 OK\r\nServer: x", (0, -1)),
    ],
)
def test_inspect_head(head: bytes, expected: tuple[int, int]) -> None:
    assert inspect_head(head) == expected


class Owner:
    def __init__(self) -> None:
        self.heads: dict[bytes, tuple[int, int]] = {}
        self.loop: Loop | None = None
        self.events: list[tuple[str, Any]] = []

    def on_connected(self, conn: Any) -> None:
        self.events.append(("connected", None))

    def on_status(self, conn: Any, job: Any, status: int) -> None:
        self.events.append(("fast", status))

    def on_responses(self, conn: Any, answered: list[tuple[Any, Response]]) -> None:
        for _job, response in answered:
            self.events.append(("full", response.status))

    def on_failure(self, conn: Any, job: Any, reason: str, detail: str) -> None:
        self.events.append(("failure", reason))

    def on_closed(self, conn: Any) -> None:
        self.events.append(("closed", None))


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return None


def _conn() -> tuple[BenchConnection, Owner]:
    owner = Owner()
    conn = BenchConnection(owner, ("http", "h", 80), 1 << 20)
    conn.connection_made(Transport())  # type: ignore[arg-type]
    return conn, owner


def test_fast_path_and_fallbacks_agree() -> None:
    conn, owner = _conn()
    conn.send(1.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX + b"hello")
    assert owner.events[-1] == ("fast", 200)
    assert conn.is_idle()
    # Split over two chunks: the full parser takes it.
    conn.send(2.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX[:30])
    conn.data_received(NGINX[30:] + b"hello")
    assert owner.events[-1] == ("full", 200)
    assert conn.is_idle()
    # Chunked: the full parser.
    conn.send(3.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert owner.events[-1] == ("full", 201)
    # The fast path again, after the full parser was used.
    conn.send(4.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX.replace(b"200 OK", b"503 Busy") + b"hello")
    assert owner.events[-1] == ("fast", 503)
    # HEAD: the full parser (no body whatever Content-Length says).
    conn.send(5.0, b"HEAD / HTTP/1.1\r\n\r\n", True, 9.0)
    conn.data_received(NGINX)
    assert owner.events[-1] == ("full", 200)
    # Connection: close -> full parser, connection closed.
    conn.send(6.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    assert ("closed", None) in owner.events
    assert owner.events[-1] == ("full", 200)


def test_cut_short_after_fast_answers_is_a_protocol_error() -> None:
    conn, owner = _conn()
    conn.send(1.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX + b"hello")
    conn.send(2.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX + b"he")  # 3 bytes missing: not fast, the reader waits
    conn.connection_lost(None)
    assert owner.events[-1] == ("failure", "protocol")


def test_stale_connection_is_recognised() -> None:
    conn, owner = _conn()
    conn.send(1.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    conn.data_received(NGINX + b"hello")
    conn.send(2.0, b"GET / HTTP/1.1\r\n\r\n", False, 9.0)
    assert conn.served == 1
    assert not conn.received_any
    conn.connection_lost(ConnectionResetError())
    assert owner.events[-1] == ("failure", "reset")


def test_closed_loop_short_cut_resends_counts_and_stops() -> None:
    clock_now = [10.0]
    rec = Recorder(start=10.0)
    owner = Owner()
    loop = Loop(lambda: clock_now[0], b"GET /again HTTP/1.1\r\n\r\n", 3, 5.0, rec)
    loop.until = 20.0
    owner.loop = loop
    conn = BenchConnection(owner, ("http", "h", 80), 1 << 20)
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.send(10.0, b"GET /first HTTP/1.1\r\n\r\n", False, 15.0)
    for i in range(1, 5):
        clock_now[0] = 10.0 + i * 0.01
        conn.data_received(NGINX + b"hello")
    # Three re-sends by the short cut (the limit), then the runner's turn.
    assert (
        transport.written == [b"GET /first HTTP/1.1\r\n\r\n"] + [b"GET /again HTTP/1.1\r\n\r\n"] * 3
    )
    assert loop.sent == 3
    assert owner.events[-1] == ("fast", 200)
    assert conn.is_idle()
    assert rec.requests == 3  # the 4th answer went to the runner, which records it
    assert conn.served == 4
    # Past ``until`` the short cut stops too.
    loop.until, loop.limit = 0.0, 100
    conn.send(11.0, b"GET /x HTTP/1.1\r\n\r\n", False, 15.0)
    conn.data_received(NGINX + b"hello")
    assert loop.sent == 3
    assert owner.events[-1] == ("fast", 200)


def test_the_percentile_axis_names_each_nine() -> None:
    from drumfire.bench._html import percentile_chart

    report = sample_report()
    report.requests = 10**8  # the axis reaches 99.999999 %
    svg = percentile_chart(report)
    labels = re.findall(r'class="tick">([0-9.]+%)</text>', svg)
    assert labels == ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%",
                      "99.99999%", "99.999999%"]  # fmt: skip


def test_a_rate_not_kept_for_busy_connections_is_not_blamed_on_the_client() -> None:
    """40 sends, 2 of them 1 ms late, against a backlog of 150 (every connection held by a
    server that hangs): the warning blamed the client ("fell behind ... late by up to 1
    ms") because 5 % of so few sends were late. A lateness under one request's interval
    cannot lose the rate: the connections were busy."""
    from drumfire.bench._recorder import new_histogram

    rec = Recorder(start=0.0)
    for i in range(36):
        rec.response(0.01 * i + 0.001, 0.01 * i, 200)
    rec.finish(2.0)
    queue = new_histogram()
    queue.record_value(1, 40)
    data = RunData(
        recorder=rec, begin=0.0, measure_start=0.0, finish=2.0, sent=40, first_send=0.0,
        last_send=2.0, queue=queue, lag_max=0.001, lag_sum=0.002, late=2, backlog_max=150,
        loop_lag_max=0.0, connections=4, stopped=True,
    )  # fmt: skip
    settings: dict[str, Any] = {"url": "http://127.0.0.1:9/", "concurrency": 4,
                                "rate": "100/s", "rate_fixed": 100.0, "warmup_s": 0.0}
    warnings = build_report(data, settings, "100/s").warnings
    assert any("all 4 connections were busy" in w for w in warnings), warnings
    assert not any("fell behind" in w for w in warnings), warnings

"""The engine end to end through the Python API (``drumfire.run``/``arun``/``run_all``),
against real servers on 127.0.0.1: the demo server and scripted raw-socket servers that
misbehave on purpose (resets, stalls, silent closes, truncation, odd framings)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from servers import (
    Action,
    ScriptedServer,
    chunked,
    close,
    echo,
    gzipped,
    partial,
    raw,
    refused_port,
    reset,
    respond,
    response_head,
    stall,
)

import drumfire
from drumfire import Result, Retry
from drumfire._job import make_job
from drumfire._progress import format_summary
from drumfire._sources import rows_source
from drumfire.demo import DemoServer, route_answer

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
FAST = Retry(retries=2, backoff=0.01)
OK_DOC = {"code": "Ok", "routes": [{"duration": 12.5, "distance": 100.0}]}


@pytest.fixture(autouse=True)
def _no_engine_thread_left() -> Iterator[None]:
    yield
    # drumfire.run's engine thread ends right after its last result; give it a moment.
    for thread in threading.enumerate():
        if thread.name == "drumfire-engine":
            thread.join(timeout=30)  # bounded: a loaded machine may be slow to run it
    alive = [t.name for t in threading.enumerate() if t.name == "drumfire-engine"]
    assert not alive, "drumfire.run left its engine thread running"


def run(rows: Any, url: str, **kwargs: Any) -> list[Result]:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("timeout", 2.0)
    return list(drumfire.run(rows, url, **kwargs))


def by_id(results: list[Result]) -> dict[str, Result]:
    counts = Counter(r.id for r in results)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    return {r.id: r for r in results}


def route_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lon1, lon2 = rng.uniform(24.90, 24.99), rng.uniform(24.90, 24.99)
        lat1, lat2 = rng.uniform(60.15, 60.20), rng.uniform(60.15, 60.20)
        rows.append(
            {
                "id": f"row-{i}",
                "lon1": f"{lon1:.6f}",
                "lat1": f"{lat1:.6f}",
                "lon2": f"{lon2:.6f}",
                "lat2": f"{lat2:.6f}",
            }
        )
    return rows


def ok_handler(
    index: int, method: str, target: str, headers: dict[str, str], body: bytes
) -> Action:
    return respond(200, {"code": "Ok", "index": index})


def one_row(url: str, **kwargs: Any) -> Result:
    results = run([{"id": "only"}], url, **kwargs)
    assert len(results) == 1
    assert results[0].id == "only"
    return results[0]


# -- every row, exactly once -----------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 8, 64])
def test_every_row_exactly_one_result(demo_server: DemoServer, concurrency: int) -> None:
    rows = route_rows(2000, seed=concurrency)
    results = run(
        rows,
        demo_server.base_url + ROUTE,
        extract={"code": "code", "duration": "routes[0].duration"},
        concurrency=concurrency,
    )
    assert len(results) == len(rows)
    got = by_id(results)
    assert set(got) == {row["id"] for row in rows}
    for row in rows:
        status, body = route_answer(
            float(row["lon1"]), float(row["lat1"]), float(row["lon2"]), float(row["lat2"])
        )
        result = got[row["id"]]
        assert (result.status, result.error, result.attempts) == (status, "", 1), result
        assert result.fields is not None
        assert result.fields["code"] == body["code"]
        expected = body["routes"][0]["duration"] if status == 200 else None
        assert result.fields["duration"] == expected


# -- connections -----------------------------------------------------------------------------


def test_keep_alive_connections_are_reused() -> None:
    with ScriptedServer(ok_handler) as srv:
        results = run([{"id": str(i)} for i in range(200)], srv.url("/n/{id}"), concurrency=4)
        assert len(by_id(results)) == 200
        assert all(r.status == 200 and r.error == "" and r.attempts == 1 for r in results)
        assert 1 <= srv.connections <= 4
        assert len(srv.requests) == 200


@pytest.mark.parametrize("announce", [True, False], ids=["keep-alive-max", "no-hint"])
@pytest.mark.parametrize("n", [1, 5])
def test_server_closing_after_n_requests_silently(announce: bool, n: int) -> None:
    # osrm-routed's way: after N answers the connection is closed with no "Connection: close";
    # with announce, the answers carry "Keep-Alive: timeout=5, max=K" counting down to 1.
    # retries=0: re-sending on a connection found closed must not need the retry budget.
    with ScriptedServer(ok_handler, max_requests=n, keep_alive_header=announce) as srv:
        results = run(
            [{"id": str(i)} for i in range(150)],
            srv.url("/n/{id}"),
            concurrency=4,
            retry=Retry(retries=0),
        )
        assert len(by_id(results)) == 150
        assert [r for r in results if r.status != 200 or r.error] == []
        assert srv.connections >= 150 // n
        if announce:
            # "max=1" says the server closes next: the client must not try the connection.
            assert all(r.attempts == 1 for r in results)
            assert len(srv.requests) == 150


def test_a_resend_on_a_kept_alive_connection_found_closed_is_not_an_attempt() -> None:
    """The server closes a kept-alive connection as the next request reaches it (an idle
    timeout racing the request; before any byte of an answer): the request is re-sent at
    once on a new connection. That is no attempt of the row (curl and requests report one
    request) and no retry: ``requests sent`` counts 3 for the 3 rows, and the re-send is
    counted apart (``resent``), as the summary says. It used to count 4."""

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return close() if index == 1 else respond(200, {"code": "Ok"})

    with ScriptedServer(handler) as srv:
        job = make_job(srv.url("/n/{id}"), concurrency=1, retry=Retry(retries=0))
        source = rows_source([{"id": str(i)} for i in range(3)])
        results: list[Result] = []
        engine = job.engine(source, results.append)
        stats = asyncio.run(engine.run(source.items, source.total))
        assert len(srv.requests) == 4  # the second request was written twice
        assert srv.connections == 2
    assert sorted((r.id, r.status, r.attempts, r.error) for r in results) == [
        ("0", 200, 1, ""),
        ("1", 200, 1, ""),
        ("2", 200, 1, ""),
    ]
    assert (stats.requests, stats.resent) == (3, 1)
    assert "requests sent 3 (+1 re-sent: kept-alive connection found closed)" in (
        format_summary(stats)
    )


@pytest.mark.parametrize("server_closes", [True, False])
def test_connection_close_on_every_response(server_closes: bool) -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        then = "close" if server_closes else "keep"  # else the client must close
        return respond(200, {"code": "Ok"}, [("Connection", "close")], then=then)

    with ScriptedServer(handler) as srv:
        results = run(
            [{"id": str(i)} for i in range(60)],
            srv.url("/n/{id}"),
            concurrency=4,
            extract={"code": "code"},
            retry=Retry(retries=0),
        )
        assert len(by_id(results)) == 60
        assert all(r.status == 200 and not r.error and r.attempts == 1 for r in results)
        assert all(r.fields == {"code": "Ok"} for r in results)
        assert srv.connections == 60


@pytest.mark.parametrize("fail", [reset, close], ids=["rst", "fin"])
def test_dropped_before_any_byte_once_then_ok(fail: Any) -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return fail() if index == 0 else respond(200, OK_DOC)

    with ScriptedServer(handler) as srv:
        result = one_row(srv.url("/x"))
    assert (result.status, result.attempts, result.error) == (200, 2, "")


@pytest.mark.parametrize("fail", [reset, close], ids=["rst", "fin"])
def test_dropped_before_any_byte_every_time(fail: Any) -> None:
    with ScriptedServer(lambda *_: fail()) as srv:
        result = one_row(srv.url("/x"), retry=Retry(retries=2, backoff=0.01))
        assert len(srv.requests) == 3
    assert (result.status, result.attempts, result.error) == (None, 3, "reset")


def test_connection_refused() -> None:
    with refused_port() as port:
        result = one_row(f"http://127.0.0.1:{port}/x", retry=Retry(retries=2, backoff=0.01))
    assert (result.status, result.attempts, result.error) == (None, 3, "connect")


@pytest.mark.parametrize(
    "head", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"], ids=["silent", "mid-body"]
)
def test_stall_longer_than_the_timeout(head: bytes) -> None:
    with ScriptedServer(lambda *_: stall(5.0, head)) as srv:
        start = time.monotonic()
        result = one_row(srv.url("/x"), timeout=0.5, retry=Retry(retries=1, backoff=0.01))
        waited = time.monotonic() - start
        assert len(srv.requests) == 2
    assert (result.status, result.attempts, result.error) == (None, 2, "timeout")
    assert waited >= 0.9


# -- statuses and retries --------------------------------------------------------------------


def test_503_then_200_is_retried() -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return respond(503, {"code": "Busy"}) if index == 0 else respond(200, OK_DOC)

    with ScriptedServer(handler) as srv:
        result = one_row(srv.url("/x"), extract={"code": "code"})
    assert (result.status, result.attempts, result.error) == (200, 2, "")
    assert result.fields == {"code": "Ok"}


def test_retry_after_is_honoured() -> None:
    seen: list[float] = []

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        seen.append(time.monotonic())
        if index == 0:
            return respond(503, b"", [("Retry-After", "1")])
        return respond(200, OK_DOC)

    with ScriptedServer(handler) as srv:
        result = one_row(srv.url("/x"))
    assert (result.status, result.attempts, result.error) == (200, 2, "")
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 0.9


def test_429_every_time_ends_with_429() -> None:
    with ScriptedServer(lambda *_: respond(429, {"code": "TooMany"})) as srv:
        result = one_row(srv.url("/x"), extract={"code": "code"}, retry=Retry(retries=2, backoff=0))
        assert len(srv.requests) == 3
    assert (result.status, result.attempts, result.error) == (429, 3, "")
    assert result.fields == {"code": "TooMany"}
    assert result.reason == "http 429"


def test_500_is_not_retried() -> None:
    with ScriptedServer(lambda *_: respond(500, {"code": "Oops"})) as srv:
        result = one_row(srv.url("/x"))
        assert len(srv.requests) == 1
    assert (result.status, result.attempts, result.error) == (500, 1, "")


@pytest.mark.parametrize(("status", "attempts"), [(503, 3), (502, 1)])
def test_post_retried_only_on_statuses_saying_it_was_not_processed(
    status: int, attempts: int
) -> None:
    with ScriptedServer(lambda *_: respond(status, b"")) as srv:
        result = one_row(srv.url("/x"), data="{id}", retry=Retry(retries=2, backoff=0))
        assert [r.method for r in srv.requests] == ["POST"] * attempts
    assert (result.status, result.attempts, result.error) == (status, attempts, "")


@pytest.mark.parametrize("unsafe", [False, True])
def test_post_is_not_resent_after_a_reset_unless_unsafe(unsafe: bool) -> None:
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        return reset() if index == 0 else respond(200, OK_DOC)

    with ScriptedServer(handler) as srv:
        result = one_row(
            srv.url("/x"),
            data='{{"id": "{id}"}}',
            retry=Retry(retries=2, backoff=0.01, unsafe=unsafe),
        )
        assert srv.requests[0].method == "POST"
        assert srv.requests[0].body == b'{"id": "only"}'
        assert len(srv.requests) == (2 if unsafe else 1)
    if unsafe:
        assert (result.status, result.attempts, result.error) == (200, 2, "")
    else:
        assert (result.status, result.attempts, result.error) == (None, 1, "reset")


@pytest.mark.parametrize("then", ["close", "reset"])
def test_body_shorter_than_content_length(then: str) -> None:
    action = partial(200, OK_DOC, sent=10, then=then, pause=0.1)
    with ScriptedServer(lambda *_: action) as srv:
        result = one_row(srv.url("/x"), retry=Retry(retries=1, backoff=0.01))
        assert len(srv.requests) == 2
    assert (result.status, result.attempts, result.error) == (None, 2, "protocol")


# -- bodies and extraction -------------------------------------------------------------------


def test_non_json_200_with_extract_is_a_json_error() -> None:
    with ScriptedServer(lambda *_: respond(200, "<html>hello</html>")) as srv:
        result = one_row(srv.url("/x"), extract={"code": "code"})
    assert (result.status, result.attempts, result.error) == (200, 1, "json")
    assert result.fields == {"code": None}


def test_json_400_has_its_fields_and_no_error() -> None:
    doc = {"code": "NoRoute", "message": "Impossible route between points"}
    with ScriptedServer(lambda *_: respond(400, doc)) as srv:
        result = one_row(srv.url("/x"), extract={"code": "code", "message": "message"})
    assert (result.status, result.attempts, result.error) == (400, 1, "")
    assert result.fields == doc
    assert result.reason == "http 400"


@pytest.mark.parametrize(
    "action",
    [
        chunked(200, OK_DOC, size=5),
        chunked(200, OK_DOC, size=1000),
        gzipped(200, OK_DOC),
        gzipped(200, OK_DOC, chunk=4),
        respond(200, OK_DOC, length=False, then="close"),
        respond(200, OK_DOC, [("Content-Encoding", "identity")]),
    ],
    ids=["chunked-5", "chunked-1000", "gzip", "gzip-chunked", "close-delimited", "identity"],
)
def test_framings_and_encodings(action: Action) -> None:
    with ScriptedServer(lambda *_: action) as srv:
        results = run(
            [{"id": str(i)} for i in range(20)],
            srv.url("/x/{id}"),
            concurrency=2,
            extract={"code": "code", "duration": "routes[0].duration"},
        )
    assert len(by_id(results)) == 20
    for result in results:
        assert (result.status, result.error) == (200, ""), result
        assert result.fields == {"code": "Ok", "duration": 12.5}


def _two_members(then_garbage: bool) -> bytes:
    text = json.dumps(OK_DOC).encode()
    packed = gzip.compress(text[:10]) + gzip.compress(text[10:])
    return packed + (b"\0\0not gzip" if then_garbage else b"")


@pytest.mark.parametrize("garbage", [False, True], ids=["members", "members-then-garbage"])
@pytest.mark.parametrize("size", [None, 3], ids=["whole", "chunked-3"])
def test_multi_member_gzip_body_decoded_whole(garbage: bool, size: int | None) -> None:
    # RFC 1952: a gzip body may be several members (`cat a.gz b.gz`); every one is
    # decoded, as urllib3 and Python's gzip module do. Only the first used to be kept:
    # a silently cut body (a JSON error row here). Bytes after the last member that
    # are not a member are dropped, as urllib3 drops them.
    packed = _two_members(garbage)
    hdrs = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    action = chunked(200, packed, hdrs, size=size) if size else respond(200, packed, hdrs)
    with ScriptedServer(lambda *_: action) as srv:
        results = run(
            [{"id": str(i)} for i in range(6)],
            srv.url("/x/{id}"),
            concurrency=2,
            extract={"code": "code", "duration": "routes[0].duration"},
        )
    assert len(by_id(results)) == 6
    for result in results:
        assert (result.status, result.error) == (200, ""), result
        assert result.fields == {"code": "Ok", "duration": 12.5}


def test_head_response_with_content_length_but_no_body() -> None:
    # A HEAD answer announces the GET body's length but sends none; the connection must
    # not wait for it, and must stay usable for the next request.
    with ScriptedServer(echo) as srv:
        results = run(
            [{"id": str(i)} for i in range(10)],
            srv.url("/x/{id}"),
            method="HEAD",
            concurrency=1,
            extract={"method": "method"},
        )
        assert srv.connections == 1
    assert len(by_id(results)) == 10
    assert all((r.status, r.error, r.attempts) == (200, "", 1) for r in results)
    assert all(r.fields == {"method": None} for r in results)


@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("GET", None),
        ("DELETE", None),
        ("OPTIONS", None),
        ("PUT", '{{"id": "{id}"}}'),
        ("PATCH", '{{"id": "{id}"}}'),
        ("POST", '{{"id": "{id}"}}'),
        ("{verb}", None),
    ],
)
def test_methods_headers_and_bodies_reach_the_server(method: str, data: str | None) -> None:
    rows = [{"id": f"r{i}", "verb": v} for i, v in enumerate(["delete", "get", "options"] * 3)]
    with ScriptedServer(echo) as srv:
        results = run(
            rows,
            srv.url("/items/{id}?v={verb}"),
            method=method,
            data=data,
            headers={"X-Row": "row {id}", "Authorization": "Bearer {verb}"},
            extract={
                "method": "method",
                "target": "target",
                "body": "body",
                "x_row": 'headers."x-row"',
                "auth": "headers.authorization",
                "length": 'headers."content-length"',
            },
            concurrency=3,
        )
    got = by_id(results)
    for row in rows:
        result = got[row["id"]]
        expected_method = row["verb"].upper() if method == "{verb}" else method
        assert (result.status, result.error) == (200, ""), result
        assert result.fields is not None
        assert result.fields["method"] == expected_method
        assert result.fields["target"] == f"/items/{row['id']}?v={row['verb']}"
        assert result.fields["x_row"] == f"row {row['id']}"
        assert result.fields["auth"] == f"Bearer {row['verb']}"
        if data is None:
            assert result.fields["body"] == ""
        else:
            body = f'{{"id": "{row["id"]}"}}'
            assert result.fields["body"] == body
            assert result.fields["length"] == str(len(body))


def test_head_delete_put_patch_reach_the_server() -> None:
    with ScriptedServer(echo) as srv:
        for method in ("HEAD", "DELETE", "PUT", "PATCH"):
            result = one_row(srv.url("/x"), method=method)
            assert (result.status, result.error) == (200, "")
            assert srv.requests[-1].method == method
            assert srv.requests[-1].headers.get("content-length") == (
                "0" if method in ("PUT", "PATCH") else None
            )


def test_demo_echo_sees_templated_headers_and_body(demo_server: DemoServer) -> None:
    rows = [{"id": str(i), "name": f"n{i}", "token": f"t{i}"} for i in range(50)]
    extract = {
        "method": "method",
        "path": "path",
        "q": "query.q",
        "x_name": 'headers."x-name"',
        "auth": "headers.authorization",
        "ctype": 'headers."content-type"',
        "body": "body",
    }
    url = demo_server.url("/echo?q={name}")
    headers = ["X-Name: {name}", "Authorization: Bearer {token}"]
    posted = run(rows, url, headers=headers, data='{{"n": "{name}"}}', extract=extract)
    got = run(rows, url, headers=headers, extract=extract)
    for results, method in ((posted, "POST"), (got, "GET")):
        by = by_id(results)
        for row in rows:
            fields = by[row["id"]].fields
            assert (by[row["id"]].status, by[row["id"]].error) == (200, "")
            assert fields is not None
            assert fields["method"] == method
            assert fields["path"] == "/echo"
            assert fields["q"] == row["name"]
            assert fields["x_name"] == row["name"]
            assert fields["auth"] == f"Bearer {row['token']}"
            if method == "POST":
                assert fields["body"] == f'{{"n": "{row["name"]}"}}'
                assert fields["ctype"] == "application/json"
            else:
                assert fields["body"] == ""


# -- ordering and the three APIs -------------------------------------------------------------


def test_ordered_returns_input_order() -> None:
    rows = route_rows(300, seed=3)
    with DemoServer(latency=0.002, jitter=0.02, seed=1) as srv:
        results = run(rows, srv.base_url + ROUTE, concurrency=16, ordered=True)
    assert [r.id for r in results] == [row["id"] for row in rows]
    assert all(r.status in (200, 400) and not r.error for r in results)


def test_arun_inside_a_running_loop(demo_server: DemoServer) -> None:
    rows = route_rows(500, seed=4)

    async def main() -> list[Result]:
        out = []
        async for result in drumfire.arun(
            rows, demo_server.base_url + ROUTE, extract={"code": "code"}, concurrency=8
        ):
            out.append(result)
        return out

    results = asyncio.run(main())
    got = by_id(results)
    assert set(got) == {row["id"] for row in rows}
    assert all(r.status in (200, 400) and not r.error for r in results)


def test_arun_closed_early_returns_promptly() -> None:
    rows = route_rows(5000, seed=5)

    async def main() -> list[Result]:
        out = []
        gen = drumfire.arun(rows, srv.base_url + ROUTE, concurrency=8)
        async with contextlib.aclosing(gen) as results:
            async for result in results:
                out.append(result)
                if len(out) == 3:
                    break
        return out

    with DemoServer(latency=0.1) as srv:
        first = asyncio.run(main())
        served = srv.requests_served
    assert len(first) == 3
    assert served < 1000  # the loop is closed: the rest of the batch (5,000 rows) was not sent


def test_run_all_returns_dicts_in_input_order(demo_server: DemoServer) -> None:
    rows = route_rows(300, seed=6)
    for row in rows:
        row["label"] = "L" + row["id"]
    records = drumfire.run_all(
        rows,
        demo_server.base_url + ROUTE,
        extract={"code": "code", "duration": "routes[0].duration"},
        keep=["label"],
        concurrency=16,
    )
    assert isinstance(records, list)
    assert [r["id"] for r in records] == [row["id"] for row in rows]
    for record, row in zip(records, rows, strict=True):
        assert list(record) == [
            "id",
            "status",
            "elapsed_ms",
            "attempts",
            "error",
            "code",
            "duration",
            "label",
        ]
        assert record["label"] == row["label"]
        assert record["status"] in (200, 400)
        assert record["code"] == ("Ok" if record["status"] == 200 else "NoRoute")


def test_run_all_with_a_dataframe_returns_a_dataframe(demo_server: DemoServer) -> None:
    pd = pytest.importorskip("pandas")
    rows = route_rows(200, seed=8)
    frame = pd.DataFrame(rows)
    out = drumfire.run_all(frame, demo_server.base_url + ROUTE, extract={"code": "code"})
    assert isinstance(out, pd.DataFrame)
    assert len(out) == 200
    assert list(out["id"]) == [row["id"] for row in rows]
    assert set(out["code"]) <= {"Ok", "NoRoute"}


def test_break_out_of_run_returns_promptly_and_stops_the_engine() -> None:
    rows = route_rows(5000, seed=9)
    with DemoServer(latency=0.2) as srv:
        for result in drumfire.run(rows, srv.base_url + ROUTE, concurrency=8):
            assert result.status in (200, 400)
            break
        # Leaving the loop closed the generator, which stopped the engine and
        # joined its thread: nothing more can be sent.
        assert not [t for t in threading.enumerate() if t.name == "drumfire-engine"]
        served = srv.requests_served
        time.sleep(0.3)
        assert srv.requests_served <= served + 8  # nothing new was started
    assert served < 1000  # not the whole batch (5,000 rows)


# -- bugs found (strict xfail: they pass once fixed) ------------------------------------------


def test_break_while_rows_wait_for_retry_after_returns_promptly() -> None:
    """Leaving the loop does not wait for the retries: they are due in an hour, so a run that
    waited could not return before the test's own timeout (an event, not a timing claim)."""

    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if target == "/ok":
            # Answer once the other rows have had their 503 (bounded wait).
            for _ in range(1000):
                if sum(r.target == "/wait" for r in srv.requests) >= 2:
                    break
                time.sleep(0.01)
            return respond(200, OK_DOC)
        return respond(503, b"", [("Retry-After", "3600")])

    rows = [{"p": "ok"}, {"p": "wait"}, {"p": "wait"}]
    with ScriptedServer(handler) as srv:
        wait = Retry(retries=2, backoff=0.01, max_retry_after=10_000)  # an hour is waited for
        results = drumfire.run(rows, srv.url("/{p}"), concurrency=3, retry=wait)
        for result in results:
            assert result.status == 200
            break
        results.close()  # what leaving the loop does; returns without waiting an hour
        assert len(srv.requests) == 3  # no retry was sent


def test_interim_100_continue_is_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    with ScriptedServer(lambda *_: raw(interim + respond(200, OK_DOC).data)) as srv:
        result = one_row(srv.url("/x"), extract={"code": "code"})
    assert (result.status, result.error, result.fields) == (200, "", {"code": "Ok"})


def test_expect_100_continue_against_the_demo_server(demo_server: DemoServer) -> None:
    result = one_row(
        demo_server.url("/echo"),
        data="hello",
        headers={"Expect": "100-continue"},
        extract={"body": "body"},
    )
    assert (result.status, result.error, result.fields) == (200, "", {"body": "hello"})


@pytest.mark.parametrize(
    "extra", [b"xx", b"HTTP/1.1 200 OK\r\nX-Extra: 1\r\n"], ids=["garbage", "partial-head"]
)
def test_bytes_beyond_content_length_do_not_spoil_the_connection(extra: bytes) -> None:
    # The first answer says Content-Length: 2 but sends more (a broken server). The
    # answer itself is complete; the connection must not be reused (ResponseReader's
    # docstring: "bytes beyond it make the connection non-reusable").
    def handler(
        index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        if index == 0:
            return raw(response_head(200, [("Content-Length", "2")]) + b"{}" + extra)
        return respond(200, OK_DOC)

    with ScriptedServer(handler) as srv:
        results = run(
            [{"id": "a"}, {"id": "b"}], srv.url("/x"), concurrency=1, retry=Retry(retries=0)
        )
        assert srv.connections == 2
    got = by_id(results)
    assert (got["a"].status, got["a"].error) == (200, "")
    assert (got["b"].status, got["b"].error, got["b"].attempts) == (200, "", 1)


def test_head_against_the_demo_server(demo_server: DemoServer) -> None:
    # The demo /echo answers only GET and POST; a HEAD gets 405, whose answer (see the
    # next test) wrongly carries a body. The client must still get every row right.
    results = run(
        [{"id": str(i)} for i in range(40)],
        demo_server.url("/echo?i={id}"),
        method="HEAD",
        concurrency=2,
        extract={"code": "code"},
    )
    assert len(by_id(results)) == 40
    assert all((r.status, r.error, r.attempts) == (405, "", 1) for r in results)


def test_demo_server_sends_no_body_in_a_head_response(demo_server: DemoServer) -> None:
    with socket.create_connection(("127.0.0.1", demo_server.port), timeout=5) as sock:
        sock.sendall(
            b"HEAD /status/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = b""
        for _ in range(100):
            if data.count(b"HTTP/1.1 ") >= 2 and data.endswith(b"}"):
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 ")
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")  # the next answer, not a body


# -- a consumer that fails -------------------------------------------------------------------


class SinkBroke(Exception):
    pass


def run_engine_until_it_raises(url: str, rows: list[dict[str, str]], **kwargs: Any) -> int:
    """Run an engine whose result consumer raises at its 6th row; return the rows it took."""
    from drumfire._job import make_job
    from drumfire._sources import rows_source

    taken: list[Result] = []

    def on_result(result: Result) -> None:
        if len(taken) == 5:
            raise SinkBroke("disk full")
        taken.append(result)

    job = make_job(url, **kwargs)
    source = rows_source(rows)
    engine = job.engine(source, on_result)
    with pytest.raises(SinkBroke, match="disk full"):
        asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 30))
    return len(taken)


@pytest.mark.parametrize("ordered", [False, True])
def test_a_consumer_that_raises_on_an_answer_ends_the_run(
    demo_server: DemoServer, ordered: bool
) -> None:
    # A broken sink (disk full) or consumer ends the run with its error. The
    # answers are handed on from a connection's callback, where an exception
    # would only be logged by the event loop and the rows after it lost.
    rows = route_rows(300)
    taken = run_engine_until_it_raises(
        demo_server.base_url + ROUTE, rows, concurrency=8, ordered=ordered
    )
    assert taken == 5


def test_a_consumer_that_raises_on_a_timed_out_row_ends_the_run() -> None:
    # Rows that time out are handed on from the engine's timer: the run must end
    # with the error, not wait forever for a sweep that no longer comes.
    with ScriptedServer(lambda *_: stall(5.0, b"")) as srv:
        taken = run_engine_until_it_raises(
            srv.url("/x"), [{"id": str(i)} for i in range(20)], concurrency=20,
            timeout=0.3, retries=0,
        )  # fmt: skip
    assert taken == 5


# -- a dead target stops the run (issue 14) -----------------------------------------------


def run_with_unreachable_after(rows: list[dict[str, str]], after: int) -> tuple[list[Result], Any]:
    """The engine as ``drumfire run`` sets it up: stop after ``after`` failed connects."""
    import dataclasses

    from drumfire._job import make_job
    from drumfire._sources import rows_source

    job = dataclasses.replace(
        make_job("{url}", concurrency=1, retry=Retry(retries=0)), unreachable_after=after
    )
    source = rows_source(rows)
    results: list[Result] = []
    engine = job.engine(source, results.append)
    stats = asyncio.run(asyncio.wait_for(engine.run(source.items), 60))
    return results, stats


def test_connects_that_all_fail_from_the_start_stop_the_run() -> None:
    with refused_port() as port:
        rows = [{"id": str(i), "url": f"http://127.0.0.1:{port}/{i}"} for i in range(60)]
        results, stats = run_with_unreachable_after(rows, 5)
    assert [r.error for r in results] == ["connect"] * 4 + ["cancelled"]
    assert stats.unreachable.startswith(f"127.0.0.1:{port}: the first 5 connection attempts")
    assert "Connection refused" in stats.unreachable
    assert stats.stopped


def test_a_target_that_once_answered_is_never_called_unreachable() -> None:
    # One connection made (the first row, with concurrency 1), then every other
    # row refused: the server was there, so the run sends every row.
    with ScriptedServer(lambda *_: respond(200, {"ok": True})) as srv, refused_port() as port:
        rows = [{"id": "0", "url": srv.url("/x")}]
        rows += [{"id": str(i), "url": f"http://127.0.0.1:{port}/{i}"} for i in range(1, 60)]
        results, stats = run_with_unreachable_after(rows, 5)
    assert [r.error for r in results] == [""] + ["connect"] * 59
    assert stats.unreachable is None
    assert not stats.stopped
    refused = f"[Errno 111] Connection refused to 127.0.0.1:{port}"
    assert stats.examples["connect"].startswith(refused)

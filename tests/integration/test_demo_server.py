"""End-to-end tests of the demo server over real sockets (stdlib clients only, no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import drumfire.demo
from drumfire.demo import (
    JSON_DOCUMENT,
    QUOTES,
    DemoServer,
    quote_answer,
    route_answer,
    serve,
    write_sample_routes,
)
from drumfire.demo import server as server_module

TIMEOUT = 5.0
# uvloop's timers count whole milliseconds of a clock read at the start of a loop
# turn: a delay can end up to a millisecond before the client's own clock says so.
TIMER_SLACK = 0.002


# -- helpers ---------------------------------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """A minimal HTTP/1.1 reader on a plain socket, to control exactly what is sent when."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def read_response(self) -> RawResponse:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return RawResponse(int(status_line.split()[1]), headers, body)

    def at_eof(self) -> bool:
        """True if the server closed the connection (and sent nothing more)."""
        if self.buf:
            return False
        return self.sock.recv(1) == b""


def get_request(path: str, *extra_headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *extra_headers, "", ""]
    return "\r\n".join(lines).encode()


def fetch(
    srv: DemoServer,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def srv() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture(scope="module")
def slow_srv() -> Iterator[DemoServer]:
    with DemoServer(latency=0.2) as server:
        yield server


# -- endpoints -------------------------------------------------------------------------------


def test_json_document(srv: DemoServer) -> None:
    status, headers, body = fetch(srv, "/json")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    assert body == JSON_DOCUMENT
    assert 500 <= len(body) <= 620
    assert json.loads(body)["code"] == "Ok"


def test_routes_match_route_answer_on_one_keep_alive_connection(
    srv: DemoServer, tmp_path: Path
) -> None:
    csv_path = write_sample_routes(tmp_path / "routes.csv", 40, seed=7)
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
    statuses = set()
    try:
        for row in rows:
            coords = f"{row['lon1']},{row['lat1']};{row['lon2']},{row['lat2']}"
            conn.request("GET", f"/route/v1/driving/{coords}?overview=false")
            resp = conn.getresponse()
            expected_status, expected = route_answer(
                float(row["lon1"]), float(row["lat1"]), float(row["lon2"]), float(row["lat2"])
            )
            assert resp.status == expected_status
            assert json.loads(resp.read()) == expected
            statuses.add(resp.status)
    finally:
        conn.close()
    assert statuses == {200, 400}  # both real routes and NoRoute occur


def test_route_answer_formula_and_shape() -> None:
    # Along a meridian the distance does not depend on the longitude: find a pair with a route.
    lon = next(x for x in range(20) if route_answer(x, 0.0, x, 1.0)[0] == 200)
    status, body = route_answer(lon, 0.0, lon, 1.0)
    assert status == 200
    assert body["code"] == "Ok"
    metres_per_degree = math.pi / 180 * 6_371_008.8
    route = body["routes"][0]
    assert route["distance"] == pytest.approx(metres_per_degree * 1.3, abs=0.1)
    assert route["duration"] == round(route["distance"] / 11.0, 1)
    assert route["weight"] == route["duration"]
    assert route["weight_name"] == "routability"
    assert route["legs"][0]["distance"] == route["distance"]
    assert [w["location"] for w in body["waypoints"]] == [[lon, 0.0], [lon, 1.0]]
    assert all(isinstance(w["name"], str) and w["name"] for w in body["waypoints"])


def test_route_answer_deterministic_no_route_share() -> None:
    pairs = [(24.9 + i / 1000, 60.15, 24.95, 60.15 + i / 2000) for i in range(1000)]
    answers = [route_answer(*p) for p in pairs]
    assert answers == [route_answer(*p) for p in pairs]
    no_route = [b for s, b in answers if s == 400]
    expected = {"code": "NoRoute", "message": "Impossible route between points"}
    assert all(b == expected for b in no_route)
    assert 0.2 < len(no_route) / len(pairs) < 0.4


@pytest.mark.parametrize(
    "coords",
    [
        "24.9,60.1",
        "24.9,60.1;24.95",
        "a,b;c,d",
        "24.9,60.1;24.95,60.2;25.0,60.3",
        "24.9,91;24.95,60.2",
        "181,60.1;24.95,60.2",
        "nan,60.1;24.95,60.2",
        "",
    ],
)
def test_route_malformed_coordinates(srv: DemoServer, coords: str) -> None:
    status, _, body = fetch(srv, f"/route/v1/driving/{coords}")
    assert status == 400
    answer = json.loads(body)
    assert answer["code"] == "InvalidUrl"
    assert answer["message"]


def test_route_percent_encoded_separator(srv: DemoServer) -> None:
    plain = fetch(srv, "/route/v1/driving/24.93,60.17;24.95,60.18")
    encoded = fetch(srv, "/route/v1/driving/24.93,60.17%3B24.95,60.18")
    assert (plain[0], plain[2]) == (encoded[0], encoded[2])


def test_quote(srv: DemoServer) -> None:
    status, _, body = fetch(srv, "/quote")
    assert status == 200
    answer = json.loads(body)
    assert set(answer) == {"quote", "source"}
    triple = (answer["quote"], answer["source"]["chapter"], answer["source"]["part"])
    assert triple in QUOTES


def test_quote_uniform_part_and_seed(srv: DemoServer) -> None:
    for seed in range(8):
        status, _, body = fetch(srv, f"/quote/uniform?part=3&seed={seed}")
        assert status == 200
        assert json.loads(body) == quote_answer(seed, 3)
        assert json.loads(body)["source"]["part"] == 3
    assert fetch(srv, "/quote?seed=5")[2] == fetch(srv, "/quote?seed=5")[2]


def test_quote_counter_is_deterministic() -> None:
    with DemoServer() as fresh:
        got = [json.loads(fetch(fresh, "/quote/uniform?part=2")[2]) for _ in range(3)]
    assert got == [quote_answer(i, 2) for i in range(3)]


@pytest.mark.parametrize("query", ["part=9", "part=0", "part=x", "seed=x"])
def test_quote_bad_parameters(srv: DemoServer, query: str) -> None:
    status, _, body = fetch(srv, f"/quote/uniform?{query}")
    assert status == 400
    assert json.loads(body)["code"] in {"InvalidPart", "InvalidSeed"}


def test_slow_quote_is_delayed_and_pipelined_answers_keep_order(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        start = time.perf_counter()
        client.send(get_request("/quote/uniform?part=1&slow=true") + get_request("/json"))
        first = client.read_response()
        elapsed = time.perf_counter() - start
        second = client.read_response()
    assert elapsed >= 0.5 - TIMER_SLACK
    assert first.status == 200
    assert first.json()["source"]["part"] == 1
    assert second.body == JSON_DOCUMENT


def test_echo_get(srv: DemoServer) -> None:
    status, _, body = fetch(srv, "/echo?a=1&b=two%20words", headers={"X-Test": "abc"})
    assert status == 200
    answer = json.loads(body)
    assert answer["method"] == "GET"
    assert answer["path"] == "/echo"
    assert answer["query"] == {"a": "1", "b": "two words"}
    assert answer["raw_query"] == "a=1&b=two%20words"
    assert answer["headers"]["x-test"] == "abc"
    assert answer["headers"]["host"] == f"127.0.0.1:{srv.port}"
    assert answer["body"] == ""


def test_echo_post_reads_whole_body(srv: DemoServer) -> None:
    payload = json.dumps({"id": 1, "text": "héllo" * 50_000}).encode()
    status, _, body = fetch(
        srv, "/echo", method="POST", body=payload, headers={"Content-Type": "application/json"}
    )
    assert status == 200
    answer = json.loads(body)
    assert answer["method"] == "POST"
    assert answer["body"] == payload.decode()
    assert answer["body_length"] == len(payload)
    assert answer["headers"]["content-type"] == "application/json"


def test_echo_post_chunked(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        client.send(b"6\r\n world\r\n0\r\n\r\n")
        resp = client.read_response()
    assert resp.status == 200
    assert resp.json()["body"] == "hello world"


def test_expect_100_continue(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert client.read_response().status == 100
        client.send(b"ping")
        resp = client.read_response()
    assert resp.status == 200
    assert resp.json()["body"] == "ping"


@pytest.mark.parametrize("code", [200, 201, 302, 404, 418, 500, 503])
def test_status(srv: DemoServer, code: int) -> None:
    status, headers, body = fetch(srv, f"/status/{code}")
    assert status == code
    assert json.loads(body) == {"status": code}
    assert headers["Content-Type"] == "application/json"


def test_status_204_has_no_body(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(get_request("/status/204") + get_request("/status/201"))
        first, second = client.read_response(), client.read_response()
    assert (first.status, first.body) == (204, b"")
    assert "content-length" not in first.headers
    assert second.json() == {"status": 201}


@pytest.mark.parametrize("code", ["abc", "99", "600", "-200", "20x"])
def test_status_invalid(srv: DemoServer, code: str) -> None:
    status, _, body = fetch(srv, f"/status/{code}")
    assert status == 400
    assert json.loads(body)["code"] == "InvalidStatus"


def test_unknown_path_is_json_404(srv: DemoServer) -> None:
    status, headers, body = fetch(srv, "/nope?x=1")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["code"] == "NotFound"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/json", "GET"),
        ("POST", "/route/v1/driving/24.93,60.17;24.95,60.18", "GET"),
        ("POST", "/quote", "GET"),
        ("PUT", "/echo", "GET, POST"),
        ("POST", "/status/200", "GET"),
    ],
)
def test_wrong_method_is_405(srv: DemoServer, method: str, path: str, allow: str) -> None:
    status, headers, body = fetch(srv, path, method=method, body=b"{}")
    assert status == 405
    assert headers["Allow"] == allow
    assert json.loads(body)["code"] == "MethodNotAllowed"


# -- connection handling ---------------------------------------------------------------------


def test_keep_alive_two_requests_on_one_socket(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(get_request("/json"))
        first = client.read_response()
        client.send(get_request("/status/201"))
        second = client.read_response()
    assert (first.status, first.headers["connection"]) == (200, "keep-alive")
    assert first.body == JSON_DOCUMENT
    assert (second.status, second.headers["connection"]) == (201, "keep-alive")


def test_two_pipelined_requests_in_one_send(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(get_request("/status/201") + get_request("/quote/uniform?part=2&seed=1"))
        first, second = client.read_response(), client.read_response()
    assert first.json() == {"status": 201}
    assert second.json() == quote_answer(1, 2)


def test_connection_close_is_honoured(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        # The second request comes after "Connection: close", so it must be ignored.
        client.send(get_request("/json", "Connection: close") + get_request("/status/201"))
        resp = client.read_response()
        assert resp.headers["connection"] == "close"
        assert resp.body == JSON_DOCUMENT
        assert client.at_eof()


def test_http_1_0_closes_by_default(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(b"GET /status/200 HTTP/1.0\r\n\r\n")
        resp = client.read_response()
        assert (resp.status, resp.headers["connection"]) == (200, "close")
        assert client.at_eof()


def test_malformed_request_gets_400_and_close(srv: DemoServer) -> None:
    with RawClient(srv.port) as client:
        client.send(b"NOT AN HTTP REQUEST\r\n\r\n")
        resp = client.read_response()
        assert resp.status == 400
        assert resp.json()["code"] == "BadRequest"
        assert client.at_eof()


def test_latency_is_applied(slow_srv: DemoServer) -> None:
    start = time.perf_counter()
    status, _, _ = fetch(slow_srv, "/json")
    assert time.perf_counter() - start >= 0.2 - TIMER_SLACK
    assert status == 200
    start = time.perf_counter()
    status, _, _ = fetch(slow_srv, "/nope")
    assert time.perf_counter() - start >= 0.2 - TIMER_SLACK
    assert status == 404


def test_latency_with_pipelining_keeps_order(slow_srv: DemoServer) -> None:
    with RawClient(slow_srv.port) as client:
        start = time.perf_counter()
        client.send(b"".join(get_request(f"/status/{c}") for c in (201, 202, 203)))
        statuses = [client.read_response().status for _ in range(3)]
    assert time.perf_counter() - start >= 0.2 - TIMER_SLACK
    assert statuses == [201, 202, 203]


def test_answers_still_sent_after_client_half_close(slow_srv: DemoServer) -> None:
    with RawClient(slow_srv.port) as client:
        client.send(get_request("/status/202"))
        client.sock.shutdown(socket.SHUT_WR)
        assert client.read_response().status == 202
        assert client.at_eof()


def test_jitter_never_goes_below_latency() -> None:
    with DemoServer(latency=0.05, jitter=0.05) as server:
        for _ in range(3):
            start = time.perf_counter()
            fetch(server, "/json")
            assert time.perf_counter() - start >= 0.05 - TIMER_SLACK


# -- API -------------------------------------------------------------------------------------


def test_server_properties_and_counter() -> None:
    server = DemoServer()
    with pytest.raises(RuntimeError):
        _ = server.port
    with server:
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.url("json") == server.base_url + "/json"
        assert server.requests_served == 0
        fetch(server, "/json")
        fetch(server, "/nope")
        assert server.requests_served == 2
    server.close()  # idempotent


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError, match="latency"):
        DemoServer(latency=-1)
    with pytest.raises(ValueError, match="jitter"):
        DemoServer(jitter=math.nan)


def test_package_reexports_lazily() -> None:
    assert drumfire.demo.DemoServer is server_module.DemoServer
    assert "route_answer" in dir(drumfire.demo)
    with pytest.raises(AttributeError):
        _ = drumfire.demo.no_such_name


def test_serve_on_current_loop() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        port_future: asyncio.Future[int] = loop.create_future()
        task = asyncio.create_task(serve("127.0.0.1", 0, ready=port_future.set_result))
        try:
            port = await asyncio.wait_for(port_future, TIMEOUT)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get_request("/status/201", "Connection: close"))
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            await writer.wait_closed()
            return data
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    data = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 201 Created\r\n")
    assert data.endswith(b'{"status":201}')


def test_module_main_runs_and_stops_quietly_on_ctrl_c() -> None:
    src = Path(server_module.__file__).resolve().parents[2]
    path = os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    # SIGINT may be ignored if the test run was started in the background: restore it first.
    code = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
        "sys.argv = ['server', '--port', '0'];"
        "runpy.run_module('drumfire.demo.server', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-W", "error", "-c", code],
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("drumfire demo server on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with RawClient(port) as client:
            client.send(get_request("/json"))
            assert client.read_response().body == JSON_DOCUMENT
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert rest == ""


def test_write_sample_routes(tmp_path: Path) -> None:
    path = write_sample_routes(tmp_path / "a.csv", 25)
    again = write_sample_routes(str(tmp_path / "b.csv"), 25, seed=0)
    other = write_sample_routes(tmp_path / "c.csv", 25, seed=1)
    assert path.read_text() == again.read_text()
    assert path.read_text() != other.read_text()
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == ["id", "lon1", "lat1", "lon2", "lat2"]
        rows = list(reader)
    assert [r[0] for r in rows] == [str(i) for i in range(1, 26)]
    for _, lon1, lat1, lon2, lat2 in rows:
        for lon in (lon1, lon2):
            assert 24.90 <= float(lon) <= 24.99
            assert len(lon.split(".")[1]) == 6
        for lat in (lat1, lat2):
            assert 60.15 <= float(lat) <= 60.20
            assert len(lat.split(".")[1]) == 6
    assert write_sample_routes(tmp_path / "empty.csv", 0).read_text() == "id,lon1,lat1,lon2,lat2\n"

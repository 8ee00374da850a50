"""HTTPS against a real TLS server with a self-signed certificate (made by openssl)."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drumfire import run

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"secure": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_certificates_are_verified_by_default(tls_server: str) -> None:
    results = list(run([{"id": "1"}, {"id": "2"}], tls_server + "/x/{id}", retries=0))
    assert {(r.status, r.error) for r in results} == {(None, "tls")}


def test_verification_can_be_turned_off(tls_server: str) -> None:
    results = list(run([{"id": str(i)} for i in range(20)], tls_server + "/x/{id}",
                       verify=False, concurrency=4, extract={"s": "secure"}))
    assert len(results) == 20
    assert all(r.status == 200 and r.error == "" and r.fields == {"s": True} for r in results)


def test_certificate_failures_are_not_retried(tls_server: str) -> None:
    # Retrying cannot change a certificate verification failure: one attempt per row.
    results = list(run([{"id": "1"}], tls_server + "/x/{id}", retries=3))
    assert [(r.status, r.error, r.attempts) for r in results] == [(None, "tls", 1)]

"""HTTPS against a real TLS server with a self-signed certificate (made by openssl)."""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drumfire import Job, UsageError, run

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


# -- --cacert, --cert/--key (issue 14) ------------------------------------------------


def make_cert(folder: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``cn`` (also an IP SAN when it is one), and its key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={cn}", "-addext", f"subjectAltName=IP:{cn}" if cn[0].isdigit()
         else f"subjectAltName=DNS:{cn}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _WhoHandler(_Handler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert()  # type: ignore[attr-defined]
        subject = dict(pair[0] for pair in peer["subject"]) if peer else {}
        body = json.dumps({"client": subject.get("commonName")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def https_server(context: ssl.SSLContext, handler: type[_Handler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
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


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path, Path]]:
    """A server that requires a client certificate: (url, server cert, client cert, its key)."""
    folder: Path = tmp_path_factory.mktemp("mtls")
    server_cert, server_key = make_cert(folder, "server", "127.0.0.1")
    client_cert, client_key = make_cert(folder, "client", "drumfire-client")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_cert)
    with https_server(context, _WhoHandler) as url:
        yield url, server_cert, client_cert, client_key


def drumfire_run(tmp_path: Path, url: str, *options: str) -> tuple[int, list[dict[str, str]], str]:
    source = tmp_path / "urls.txt"
    source.write_text("".join(f"{url}/x/{i}\n" for i in range(3)))
    out = tmp_path / "out.csv"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(source), "-o", str(out),
         "--retries", "0", "-e", "client=client", *options],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    rows: list[dict[str, str]] = []
    if out.exists():
        with out.open(newline="") as f:
            rows = list(csv.DictReader(f))
    return done.returncode, rows, done.stderr


def test_cacert_trusts_a_self_signed_server(
    tmp_path: Path, mtls: tuple[str, Path, Path, Path]
) -> None:
    url, server_cert, client_cert, client_key = mtls
    code, rows, err = drumfire_run(
        tmp_path, url, "--cacert", str(server_cert), "--cert", str(client_cert),
        "--key", str(client_key),
    )  # fmt: skip
    assert code == 0, err
    assert [(r["status"], r["error"], r["client"]) for r in rows] == [
        ("200", "", "drumfire-client")
    ] * 3


def test_without_cacert_the_self_signed_server_is_refused(
    tmp_path: Path, mtls: tuple[str, Path, Path, Path]
) -> None:
    url, _server_cert, client_cert, client_key = mtls
    _, rows, _ = drumfire_run(tmp_path, url, "--cert", str(client_cert), "--key", str(client_key))
    assert {(r["status"], r["error"]) for r in rows} == {("", "tls")}


def test_a_server_that_wants_a_client_certificate_refuses_none(
    tmp_path: Path, mtls: tuple[str, Path, Path, Path]
) -> None:
    url, server_cert, _client_cert, _client_key = mtls
    _, rows, _ = drumfire_run(tmp_path, url, "--cacert", str(server_cert))
    assert len(rows) == 3
    assert {(r["status"], r["error"]) for r in rows} <= {("", "tls"), ("", "reset")}


def test_cert_with_its_key_in_the_same_file(
    tmp_path: Path, mtls: tuple[str, Path, Path, Path]
) -> None:
    url, server_cert, client_cert, client_key = mtls
    both = tmp_path / "both.pem"
    both.write_bytes(client_cert.read_bytes() + client_key.read_bytes())
    code, rows, err = drumfire_run(tmp_path, url, "--cacert", str(server_cert), "--cert", str(both))
    assert code == 0, err
    assert {r["client"] for r in rows} == {"drumfire-client"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--cacert", "/nonexistent/ca.pem"], "--cacert /nonexistent/ca.pem"),
        (["--cert", "/nonexistent/c.pem"], "--cert /nonexistent/c.pem"),
        (["--key", "/nonexistent/k.pem"], "--key"),
        (["--cacert", "{junk}"], "--cacert"),
        (["--cert", "{junk}"], "--cert"),
    ],
)
def test_an_unusable_tls_file_is_one_line_and_exit_2(
    tmp_path: Path, options: list[str], named: str
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    code, rows, err = drumfire_run(
        tmp_path, "https://127.0.0.1:9", *(o.replace("{junk}", str(junk)) for o in options)
    )
    assert code == 2
    assert rows == []
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err


def test_an_unusable_tls_file_is_named_as_the_python_call_gave_it(tmp_path: Path) -> None:
    # make_job's keywords (verify=PATH, cert=PATH or a pair, as requests) and a Job's
    # fields, never the command line's --cacert, --cert and --key, which a call never typed.
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    nope = str(tmp_path / "nope.pem")
    j = str(junk)
    for kwargs, message in [
        ({"cert": (None, j)}, f"cert=(None, {j!r}): a key needs its client certificate; "
                              "give cert=(certificate, key)"),
        ({"verify": nope}, f"verify={nope!r}: no such file"),
        ({"verify": j}, f"verify={j!r}: no usable PEM certificate ("),
        ({"cert": nope}, f"cert={nope!r}: no such file"),
        ({"cert": (j, nope)}, f"cert=({j!r}, {nope!r}): the key {nope!r}: no such file"),
        ({"cert": (nope, j)}, f"cert=({nope!r}, {j!r}): the certificate {nope!r}: no such"),
        ({"cert": (j, j)}, f"cert=({j!r}, {j!r}): no usable PEM certificate and private key ("),
    ]:
        with pytest.raises(UsageError) as info:
            list(run([{"url": "https://127.0.0.1:9/"}], "{url}", **kwargs))
        assert str(info.value).startswith(message), str(info.value)
    for fields, message in [
        ({"key": j}, "key= needs cert= (the client certificate it belongs to)"),
        ({"cacert": j}, f"cacert={j!r}: no usable PEM certificate ("),
        ({"cert": j, "key": nope}, f"key={nope!r}: no such file"),
        ({"cert": j, "key": j}, f"cert={j!r} / key={j!r}: no usable PEM certificate and"),
    ]:
        with pytest.raises(UsageError) as info:
            Job(**fields)
        assert str(info.value).startswith(message), str(info.value)


def test_an_empty_cacert_option_is_refused_not_ignored(tmp_path: Path) -> None:
    # --cacert '' was taken as no --cacert: the system's CAs, without a word.
    code, rows, err = drumfire_run(tmp_path, "https://127.0.0.1:9", "--cacert", "")
    assert (code, rows) == (2, [])
    assert err == "drumfire: error: --cacert '' names no file: give the CA certificates' PEM file\n"


def test_the_python_api_takes_verify_path_and_cert_pair(
    mtls: tuple[str, Path, Path, Path],
) -> None:
    url, server_cert, client_cert, client_key = mtls
    results = list(
        run(
            [{"id": "1"}],
            url + "/x/{id}",
            verify=str(server_cert),
            cert=(str(client_cert), str(client_key)),
            extract={"client": "client"},
        )
    )
    assert [(r.status, r.error, r.fields) for r in results] == [
        (200, "", {"client": "drumfire-client"})
    ]


def test_a_self_signed_server_is_explained_and_not_unreachable(
    tmp_path: Path, tls_server: str
) -> None:
    # More rows than the unreachable threshold: a TLS failure means the server
    # is there, so the run sends every row; the summary says why they failed.
    source = tmp_path / "urls.txt"
    source.write_text("".join(f"{tls_server}/x/{i}\n" for i in range(60)))
    out = tmp_path / "out.csv"
    done = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(source), "-o", str(out),
         "--retries", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "unreachable" not in done.stderr
    with out.open(newline="") as f:
        assert [r["error"] for r in csv.DictReader(f)] == ["tls"] * 60
    assert (
        "tls ×60: certificate verify failed: self-signed certificate "
        "(use --cacert FILE, or -k to skip verification)"
    ) in done.stderr


def test_bench_takes_the_same_tls_options(
    tmp_path: Path, mtls: tuple[str, Path, Path, Path]
) -> None:
    # drumfire bench shares the client TLS context: --cacert and --cert/--key too.
    url, server_cert, client_cert, client_key = mtls
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "bench", url + "/x", "-n", "20", "-c", "2",
         "--quiet", "--cacert", str(server_cert), "--cert", str(client_cert), "--key",
         str(client_key), "--json", str(report)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(report.read_text())
    assert figures["errors"] == {}
    assert figures["status"] == {"200": figures["requests"]}
    missing = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "bench", url + "/x", "-n", "1",
         "--cacert", str(tmp_path / "nothing.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "--cacert" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_certificate_failures_are_not_retried(tls_server: str) -> None:
    # Retrying cannot change a certificate verification failure: one attempt per row.
    results = list(run([{"id": "1"}], tls_server + "/x/{id}", retries=3))
    assert [(r.status, r.error, r.attempts) for r in results] == [(None, "tls", 1)]


def test_an_empty_verify_path_is_refused_not_taken_for_false() -> None:
    # bool("") is False: verify="" used to turn certificate checks off without a word.
    with pytest.raises(UsageError, match="verify=''"):
        list(run([{"url": "https://127.0.0.1:9/"}], "{url}", verify=""))


@pytest.mark.parametrize("command", ["run", "bench"])
def test_insecure_wins_over_cacert_in_run_and_bench(
    tmp_path: Path, tls_server: str, command: str
) -> None:
    # As curl -k --cacert FILE: no verification, so FILE is not read (curl goes on when it
    # is unusable). drumfire run did so; drumfire bench refused a missing FILE (exit 2).
    other, _ = make_cert(tmp_path, "other", "127.0.0.1")  # a CA that is not the server's
    for cacert in (str(other), str(tmp_path / "nothing.pem")):
        if command == "run":
            code, rows, err = drumfire_run(tmp_path, tls_server, "-k", "--cacert", cacert)
            assert code == 0, err
            assert [(r["status"], r["error"]) for r in rows] == [("200", "")] * 3
            continue
        report = tmp_path / "bench.json"
        done = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "bench", tls_server + "/x", "-n", "5",
             "-c", "1", "--quiet", "-k", "--cacert", cacert, "--json", str(report)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        figures = json.loads(report.read_text())
        assert (figures["errors"], figures["status"]) == ({}, {"200": 5})

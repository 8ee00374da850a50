"""Issue 20: a file per row as the body (raw and multipart), checked on the server side.

The server parses forms with Starlette's parser (python-multipart), not one written
for the test, and compares every byte with the file on disk.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from python_multipart.multipart import parse_form
from servers import Action, ScriptedServer, echo, respond

from drumfire import UsageError, run

CLI = [sys.executable, "-m", "drumfire.cli"]
# Mixed sizes: empty, tiny, around the 64 KiB chunk and the transport's buffer, and
# some of a few hundred KiB (the suite stays fast; the benchmark has the large ones).
SIZES = [0, 1, 100, 4096, 65535, 65536, 65537, 200_000, 700_000]


def drumfire(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 files of mixed sizes (one extension each of .jpg, .csv, .bin)."""
    folder = tmp_path_factory.mktemp("uploads")
    rng = random.Random(20)
    for i in range(300):
        size = SIZES[i % len(SIZES)] if i < 3 * len(SIZES) else rng.choice(SIZES[:6])
        ext = (".jpg", ".csv", ".bin")[i % 3]
        (folder / f"f{i:03d}{ext}").write_bytes(rng.randbytes(size))
    return folder


def write_input(folder: Path, target: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    with target.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "name"])
        for name in names:
            w.writerow([name, str(folder / name), name])
    return names


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Checker:
    """Answers 200 when the body (or the form's file part) is byte for byte the file
    named in the target (``/raw/NAME`` or ``/form/NAME``), else 422 with why."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock = threading.Lock()
        self.checked: dict[str, str] = {}  # name -> "ok" or why not

    def _expect(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def handler(
        self, index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        kind, _, name = target.lstrip("/").partition("/")
        problem = ""
        info: dict[str, Any] = {}
        if kind == "raw":
            if body != self._expect(name):
                problem = f"body differs: {len(body)} bytes"
            info["type"] = headers.get("content-type")
        else:
            fields: dict[str, bytes] = {}
            files: dict[str, Any] = {}

            def on_field(field: Any) -> None:
                fields[field.field_name.decode()] = field.value

            def on_file(file: Any) -> None:
                file.file_object.seek(0)
                files[file.field_name.decode()] = (
                    file.file_name.decode(),
                    file.content_type,
                    file.file_object.read(),
                )

            parse_form(
                {
                    "Content-Type": headers["content-type"].encode(),
                    "Content-Length": str(len(body)).encode(),
                },
                io.BytesIO(body),
                on_field,
                on_file,
            )
            filename, ctype, data = files["data"]
            if data != self._expect(name):
                problem = f"file part differs: {len(data)} bytes"
            if filename != name:
                problem = f"filename {filename!r}"
            if fields.get("id") != name.encode():
                problem = f"id field {fields.get('id')!r}"
            info = {"type": ctype, "fields": sorted(fields), "files": sorted(files)}
        with self.lock:
            self.checked[name] = problem or "ok"
        return respond(422 if problem else 200, {"problem": problem, **info})


def test_raw_file_per_row_cli(upload_dir: Path, tmp_path: Path) -> None:
    names = write_input(upload_dir, tmp_path / "in.csv")
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        proc = drumfire(
            "run", tmp_path / "in.csv", "--url", srv.url("/raw/{name}"),
            "--data-file", "{path}", "-c", "16", "-e", "type=type", "-e", "problem=problem",
            "-o", tmp_path / "out.csv", "-q",
        )
        assert proc.returncode == 0, proc.stderr
        methods = {r.method for r in srv.requests}
    rows = {r["id"]: r for r in read_csv((tmp_path / "out.csv").read_text())}
    assert set(rows) == set(names)
    assert {r["status"] for r in rows.values()} == {"200"}, [
        r for r in rows.values() if r["status"] != "200"
    ][:3]
    assert set(checker.checked.values()) == {"ok"}
    assert methods == {"POST"}  # curl --data-binary @file: POST
    # Content-Type from the extension (mimetypes), octet-stream when unknown.
    assert rows["f000.jpg"]["type"] == "image/jpeg"
    assert rows["f001.csv"]["type"] == "text/csv"
    assert rows["f002.bin"]["type"] == "application/octet-stream"


def test_data_at_placeholder_is_a_file_per_row(upload_dir: Path, tmp_path: Path) -> None:
    """-d @{path} says what --data-file '{path}' says (-d @file stays one file for all)."""
    names = write_input(upload_dir, tmp_path / "in.csv")[:30]
    with (tmp_path / "in.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "path", "name"])
        w.writerows([n, str(upload_dir / n), n] for n in names)
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/raw/{name}"),
                        "-d", "@{path}", "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr
    assert {r["status"] for r in read_csv(proc.stdout)} == {"200"}
    assert set(checker.checked.values()) == {"ok"}
    assert len(checker.checked) == 30


def test_multipart_file_per_row_cli(upload_dir: Path, tmp_path: Path) -> None:
    names = write_input(upload_dir, tmp_path / "in.csv")
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        proc = drumfire(
            "run", tmp_path / "in.csv", "--url", srv.url("/form/{name}"),
            "-F", "data=@{path}", "-F", "id={id}", "-c", "16", "-e", "type=type",
            "-o", tmp_path / "out.csv", "-q",
        )
        assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in read_csv((tmp_path / "out.csv").read_text())}
    assert set(rows) == set(names)
    assert {r["status"] for r in rows.values()} == {"200"}
    assert set(checker.checked.values()) == {"ok"}
    assert rows["f000.jpg"]["type"] == "image/jpeg"


def test_api_files_and_form(upload_dir: Path) -> None:
    """requests' files= / data=: the TorchServe image-classification case."""
    names = sorted(p.name for p in upload_dir.iterdir())[:40]
    rows = [{"id": n, "path": str(upload_dir / n), "name": n} for n in names]
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        results = list(
            run(rows, srv.url("/form/{name}"), files={"data": ("{path}", "image/png")},
                form={"id": "{id}"}, concurrency=8, extract={"type": "type"})
        )
    assert {r.status for r in results} == {200}
    assert {r.fields["type"] for r in results} == {"image/png"}  # ;type= wins
    assert set(checker.checked.values()) == {"ok"}


def test_missing_and_unreadable_files_are_error_rows(upload_dir: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"x")
    locked.chmod(0)
    rows = [
        {"id": "ok", "path": str(upload_dir / "f003.jpg"), "name": "f003.jpg"},
        {"id": "missing", "path": str(tmp_path / "nope.jpg"), "name": "nope.jpg"},
        {"id": "dir", "path": str(tmp_path), "name": "x"},
        {"id": "blank", "path": "", "name": "x"},  # an empty cell: said so, not "file: : …"
    ]
    if os.geteuid() != 0:  # root reads anything
        rows.append({"id": "locked", "path": str(locked), "name": "locked.bin"})
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        results = {r.id: r for r in run(rows, srv.url("/raw/{name}"), data_file="{path}")}
        assert len(srv.requests) == 1  # only the good row was sent
    assert results["ok"].status == 200
    assert results["ok"].error == ""
    assert results["missing"].error == f"file: {tmp_path / 'nope.jpg'}: No such file or directory"
    assert results["missing"].status is None
    assert results["missing"].attempts == 0
    assert results["dir"].error == f"file: {tmp_path}: is a directory"
    assert results["blank"].error == "file: no path: No such file or directory"
    if "locked" in results:
        assert results["locked"].error == f"file: {locked}: Permission denied"


def test_retry_and_redirect_resend_the_same_body(upload_dir: Path) -> None:
    """A 503 then a 307: the third attempt still carries the whole file."""
    name = "f007.csv"
    expected = (upload_dir / name).read_bytes()
    seen: list[bytes] = []

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        seen.append(body)
        if index == 0:
            return respond(503, b"", [("Retry-After", "0")])
        if index == 1:
            return respond(307, b"", [("Location", "/moved")])
        return respond(200, {"size": len(body), "path": target})

    with ScriptedServer(handler) as srv:
        results = list(run([{"path": str(upload_dir / name)}], srv.url("/up"),
                           data_file="{path}", method="PUT", follow_redirects=True,
                           extract={"size": "size", "path": "path"}))
    assert results[0].status == 200, results[0]
    assert results[0].fields == {"size": len(expected), "path": "/moved"}
    assert seen == [expected, expected, expected]


def test_a_file_that_grew_before_a_retry_is_not_sent_cut_short(tmp_path: Path) -> None:
    """The file grows after the first attempt (a 503): the retry sent the first 100
    bytes of the 200 now there as the whole file, and the row was a success. Now the
    row ends with the file's error, as for a file that shrinks, and no server sees a
    whole request of a prefix of the file."""
    upload = tmp_path / "grows.bin"
    upload.write_bytes(b"A" * 100)
    seen: list[bytes] = []

    def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:
        seen.append(body)
        with upload.open("ab") as fh:
            fh.write(b"B" * 100)
        return respond(503, b"", [("Retry-After", "0")])

    with ScriptedServer(handler) as srv:
        [result] = run([{"path": str(upload)}], srv.url("/up"), data_file="{path}",
                       method="PUT")
    assert seen == [b"A" * 100]  # the retry's body never arrived whole
    assert (result.status, result.attempts) == (None, 2)
    assert result.error == f"file: {upload}: longer than its 100 bytes: changed while sent"


class EarlyAnswerServer:
    """Answers 413 to ``/big`` as soon as its head is in and reads nothing more, so the
    client cannot finish writing a body larger than the socket buffers; reads ``/small``
    whole and answers 200."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        # A small receive buffer (no autotuning): the unread body cannot all fit.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.threads: list[threading.Thread] = []
        self.done = threading.Event()
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # drumfire closes with a reset
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if head.startswith(b"POST /big "):
                    conn.sendall(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
                    self.done.wait(60)  # read no more of the body
                    return
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.done.set()
        self.sock.close()
        for t in self.threads:
            t.join(timeout=10)


def test_early_answer_closes_the_connection(tmp_path: Path) -> None:
    """A server that answers 413 before reading a large body: the row gets the 413, and
    the connection, whose request body was not all written, is not used again."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 20) * 16)  # far more than the socket buffers hold
    small = tmp_path / "small.bin"
    small.write_bytes(b"tiny")
    server = EarlyAnswerServer()
    try:
        rows = [{"id": "big", "p": str(big)}, {"id": "small", "p": str(small)}]
        results = {
            r.id: r
            for r in run(rows, f"http://127.0.0.1:{server.port}/{{id}}", data_file="{p}",
                         concurrency=1, retries=0, ordered=True)
        }
    finally:
        server.close()
    assert results["big"].status == 413
    assert results["small"].status == 200
    assert server.connections == 2  # the first connection was closed, not reused


def test_json_content_type_header_wins(upload_dir: Path) -> None:
    checker = Checker(upload_dir)
    with ScriptedServer(checker.handler) as srv:
        results = list(run([{"p": str(upload_dir / "f000.jpg")}], srv.url("/raw/f000.jpg"),
                           data_file="{p}", headers={"Content-Type": "application/x-custom"},
                           extract={"type": "type"}))
    assert results[0].fields == {"type": "application/x-custom"}


def test_form_option_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n")
    for args, needle in [
        (["-F", "novalue"], "-F 1: not in the form"),
        (["-F", "a=@x;colour=red"], "-F a: unknown option"),
        (["--data-file", "{id}", "-F", "a=b"],
         "the body is given twice: --data-file (data_file=) and -F (form=, files=)"),
        (["--json", "{}", "--data-file", "{id}"],
         "the body is given twice: --json (json=) and --data-file (data_file=)"),
        (["--json", "@{id}"], "cannot read --json file '{id}': No such file or directory (a "
                              "file per row is --data-file '{id}')"),
        (["--save-status", "200"], "--save-status (save_status=) needs --save-body (save_body=)"),
        # Given as the default's value: refused too, as the API refuses it (it was run).
        (["--save-status", "2xx"], "--save-status (save_status=) needs --save-body"),
        (["--save-dir", ".", "--save-sha256"],
         "--save-dir (save_dir=) and --save-sha256 (save_sha256=) need --save-body"),
        (["--save-body", "{id}", "--save-status", "abc"], "--save-status: 'abc'"),
        (["--save-body", "{id}", "--save-dir", str(tmp_path / "in.csv")], "not a directory"),
        (["-F", "a=@{id}", "-H", "Content-Type: text/plain"], "sets its own Content-Type"),
        (["--save-body", "{id}", "--save-dir", str(tmp_path), "--cluster", "local:1",
          "-o", str(tmp_path / "o.parquet")], "--cluster: --data-file, -F or --save-body"),
    ]:
        proc = drumfire("run", tmp_path / "in.csv", "--url", "http://127.0.0.1:9/", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (args, proc.stderr)
        assert needle in lines[0], (args, proc.stderr)


def test_json_output_names_the_columns(upload_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "p": "/nonexistent/x"}) + "\n")
    proc = drumfire("run", tmp_path / "in.jsonl", "--url", "http://127.0.0.1:9/",
                    "--data-file", "{p}", "-o", "-", "-q")
    assert proc.returncode == 0, proc.stderr
    assert read_csv(proc.stdout)[0]["error"] == "file: /nonexistent/x: No such file or directory"


def test_bench_posts_a_file_and_a_form(upload_dir: Path) -> None:
    """drumfire bench -d @image.jpg and -F 'data=@image.jpg': the model-endpoint load test."""
    checker = Checker(upload_dir)
    image = upload_dir / "f006.jpg"
    with ScriptedServer(checker.handler) as srv:
        for url, body in [
            (srv.url("/raw/f006.jpg"), ["-d", f"@{image}"]),
            (srv.url("/form/f006.jpg"), ["-F", f"data=@{image}", "-F", "id=f006.jpg"]),
        ]:
            proc = drumfire("bench", url, *body, "-n", "30", "-c", "3", "-q")
            assert proc.returncode == 0, proc.stderr
            assert "requests   30" in proc.stdout, proc.stdout
        assert len(srv.requests) >= 60
        assert {r.method for r in srv.requests} == {"POST"}
    assert set(checker.checked.values()) == {"ok"}
    proc = drumfire("bench", "http://127.0.0.1:9/", "-F", "data=@/nonexistent.jpg")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "drumfire bench: error: -F data: /nonexistent.jpg: No such file or directory"
    )


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_literal_data_file_is_form_data_unless_a_header_says(
    command: str, tmp_path: Path
) -> None:
    """-d @image.jpg (no placeholder) is labelled as curl labels it, form data, whatever the
    file's name; -H 'Content-Type: image/jpeg' replaces that label, on run and on bench."""
    image = tmp_path / "kitten.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)  # a JPEG's first bytes
    (tmp_path / "in.csv").write_text("id\n1\n2\n")
    seen: dict[str, set[str | None]] = {}
    for label, header in [("default", []), ("header", ["-H", "Content-Type: image/jpeg"])]:
        with ScriptedServer(echo) as srv:
            if command == "run":
                args = ["run", tmp_path / "in.csv", "--url", srv.url("/up"), "-o", "-"]
            else:
                args = ["bench", srv.url("/up"), "-n", "3", "-c", "1"]
            proc = drumfire(*args, "-d", f"@{image}", *header, "-q")
            assert proc.returncode == 0, proc.stderr
            assert {r.body for r in srv.requests} == {image.read_bytes()}  # sent as it is
            seen[label] = {r.headers.get("content-type") for r in srv.requests}
    assert seen == {"default": {"application/x-www-form-urlencoded"}, "header": {"image/jpeg"}}


def test_api_body_given_twice_is_a_usage_error() -> None:
    with pytest.raises(
        UsageError, match=r"^the body is given twice: --data \(data=\) and --data-file"
    ):
        run([{"p": "x"}], "http://127.0.0.1:9/", data="x", data_file="{p}")
    for given in ({"save_dir": "."}, {"save_status": "2xx"}):  # the defaults' values, given
        with pytest.raises(UsageError, match=r"needs --save-body \(save_body=\)$"):
            run([{"p": "x"}], "http://127.0.0.1:9/", **given)
    with pytest.raises(UsageError, match=r"a \(path, content_type\) pair"):
        run([{"p": "x"}], "http://127.0.0.1:9/", files={"f": 3})


def form_parts(request: Any) -> list[tuple[str, str | None, str | None, bytes]]:
    """A multipart request's parts in order: (name, filename, content type, bytes)."""
    parts: list[tuple[str, str | None, str | None, bytes]] = []

    def on_field(field: Any) -> None:
        parts.append((field.field_name.decode(), None, None, field.value))

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        name = file.file_name.decode() if file.file_name is not None else None
        parts.append((file.field_name.decode(), name, file.content_type, file.file_object.read()))

    headers = {
        "Content-Type": request.headers["content-type"].encode(),
        "Content-Length": str(len(request.body)).encode(),
    }
    parse_form(headers, io.BytesIO(request.body), on_field, on_file)
    return parts


def test_api_takes_paths_and_requests_list_of_pairs(upload_dir: Path) -> None:
    """files= as requests' list of (name, value) pairs (a name may repeat), and a
    pathlib.Path as data_file=: they raised AttributeError and TypeError."""
    jpg, csv_file = upload_dir / "f000.jpg", upload_dir / "f001.csv"
    with ScriptedServer(echo) as srv:
        list(run([{"a": str(jpg)}], srv.url("/form"), files=[("f", "{a}"), ("f", csv_file)]))
        list(run([{"id": "1"}], srv.url("/raw"), data_file=jpg))
        form, raw = srv.requests
    assert form_parts(form) == [
        ("f", "f000.jpg", "image/jpeg", jpg.read_bytes()),
        ("f", "f001.csv", "text/csv", csv_file.read_bytes()),
    ]
    assert (raw.body, raw.headers["content-type"]) == (jpg.read_bytes(), "image/jpeg")


def raw_parts(request: Any) -> list[tuple[bytes, bytes]]:
    """A multipart body's parts in order, each (its header lines, its content)."""
    bound = request.headers["content-type"].split("boundary=")[1].encode()
    chunks = request.body.split(b"--" + bound)[1:-1]
    return [tuple(chunk[2:-2].split(b"\r\n\r\n", 1)) for chunk in chunks]  # type: ignore[misc]


def test_form_text_parts_are_sent_as_curl_sends_them(tmp_path: Path) -> None:
    """-F 'a=hello;type=application/json' is hello with that type, -F 'b=<{path}' the
    file's contents as a text part, a quoted value may hold ';': all three were sent as
    their literal text ('hello;type=application/json', '<…')."""
    text = tmp_path / "a b.txt"
    text.write_bytes(b"hello\r\nfrom the file")
    (tmp_path / "in.csv").write_text(f"id,path\n1,{text}\n")
    with ScriptedServer(echo) as srv:
        proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/f"), "-q", "-o", "-",
                        "-F", "a=hello;type=application/json", "-F", "b=<{path}",
                        "-F", 'c="x;y";filename={id}.txt', "-F", "d={id}")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        (request,) = srv.requests
    assert raw_parts(request) == [
        (b'Content-Disposition: form-data; name="a"\r\nContent-Type: application/json', b"hello"),
        (b'Content-Disposition: form-data; name="b"', b"hello\r\nfrom the file"),
        (b'Content-Disposition: form-data; name="c"; filename="1.txt"\r\n'
         b"Content-Type: text/plain", b"x;y"),
        (b'Content-Disposition: form-data; name="d"', b"1"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "ctype"), [("data.csv.gz", "application/gzip"), ("logo.svgz", "image/svg+xml")]
)
def test_a_compressed_file_is_labelled_as_what_its_bytes_are(
    tmp_path: Path, name: str, ctype: str
) -> None:
    """data.csv.gz went as text/csv (the type inside, gzip bytes): now application/gzip,
    as the raw body (--data-file) and as a form's file part (-F); logo.svgz, whose type
    names that extension (gzip-compressed SVG), is image/svg+xml, not application/gzip."""
    import gzip

    packed = tmp_path / name
    packed.write_bytes(gzip.compress(b"a,b\n1,2\n"))
    (tmp_path / "in.csv").write_text(f"id,path\n1,{packed}\n")
    with ScriptedServer(echo) as srv:
        for body in (["--data-file", "{path}"], ["-F", "f=@{path}"]):
            proc = drumfire("run", tmp_path / "in.csv", "--url", srv.url("/up"), "-q", "-o", "-",
                            *body)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        raw, form = srv.requests
    assert (raw.headers["content-type"], raw.body) == (ctype, packed.read_bytes())
    assert raw_parts(form) == [
        (b'Content-Disposition: form-data; name="f"; filename="%s"\r\n'
         b"Content-Type: %s" % (name.encode(), ctype.encode()), packed.read_bytes()),
    ]  # fmt: skip

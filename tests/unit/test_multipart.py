"""The multipart/form-data encoder (RFC 7578), read back by python-multipart (Starlette's)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from python_multipart.multipart import parse_form

from drumfire._bodies import (
    CHUNK,
    BodyPump,
    FilePlan,
    FormField,
    Streamed,
    parse_form_option,
    redirect,
    static_form,
)
from drumfire._errors import UsageError
from drumfire._multipart import FileSegment, Part, content_type_for, encode, length, to_bytes
from drumfire._request import RequestPlan
from drumfire._savebody import RowOutcome


def parse(body: bytes, ctype: str) -> tuple[dict[str, bytes], dict[str, Any]]:
    fields: dict[str, bytes] = {}
    files: dict[str, Any] = {}

    def on_field(f: Any) -> None:
        fields[f.field_name.decode()] = f.value

    def on_file(f: Any) -> None:
        f.file_object.seek(0)
        files[f.field_name.decode()] = (f.file_name.decode(), f.content_type, f.file_object.read())

    headers = {"Content-Type": ctype.encode(), "Content-Length": str(len(body)).encode()}
    parse_form(headers, io.BytesIO(body), on_field, on_file)
    return fields, files


def test_text_and_file_parts(tmp_path: Path) -> None:
    img = tmp_path / "kitten.jpg"
    img.write_bytes(b"\xff\xd8 jpeg \r\n--not-a-boundary\r\n")
    segments = encode(
        [
            Part("note", "café \"quoted\""),
            Part("data", FileSegment(str(img), img.stat().st_size), "kitten.jpg", "image/jpeg"),
        ],
        "b0undary",
    )
    assert isinstance(segments[1], FileSegment)  # the file stays on disk
    body = to_bytes(segments)
    assert length(segments) == len(body)
    fields, files = parse(body, "multipart/form-data; boundary=b0undary")
    assert fields == {"note": 'café "quoted"'.encode()}
    assert files == {"data": ("kitten.jpg", "image/jpeg", img.read_bytes())}
    assert body.endswith(b"--b0undary--\r\n")


def test_names_are_escaped_as_browsers_do() -> None:
    body = to_bytes(encode([Part('a"b\r\nc', "v")], "B"))
    assert b'name="a%22b%0D%0Ac"' in body


def test_empty_file_part(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    segments = encode([Part("f", FileSegment(str(empty), 0), "e.csv", "text/csv")], "B")
    assert all(isinstance(s, bytes) for s in segments)
    _, files = parse(to_bytes(segments), "multipart/form-data; boundary=B")
    assert files == {"f": ("e.csv", "text/csv", b"")}


@given(st.lists(st.tuples(st.text("abcxyz_", min_size=1, max_size=5), st.binary(max_size=300)),
                min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_round_trip(parts: list[tuple[str, bytes]]) -> None:
    segments = encode([Part(n, v, f"{n}.bin", "application/octet-stream") for n, v in parts],
                      "drumfire-0123456789abcdef")
    _, files = parse(to_bytes(segments), "multipart/form-data; boundary=drumfire-0123456789abcdef")
    assert {n: f[2] for n, f in files.items()} == dict(parts)


def test_content_type_from_the_name() -> None:
    assert content_type_for("/x/kitten.JPG") == "image/jpeg"
    assert content_type_for("a.csv") == "text/csv"
    assert content_type_for("noext") == "application/octet-stream"
    # Compressed: what the bytes are, not the type inside (it was text/csv for data.csv.gz).
    assert content_type_for("up/data.csv.gz") == "application/gzip"
    assert content_type_for("x.gz") == content_type_for("a.tgz") == "application/gzip"
    assert content_type_for("a.json.bz2") == content_type_for("a.txt.xz") == (
        "application/octet-stream"
    )
    assert content_type_for("a.csv.gz", None) == "application/gzip"
    # .svgz is SVG's own extension for gzip-compressed SVG (mimetypes: svg + gzip, as
    # for .svg.gz): image/svg+xml, as browsers send it; .svg.gz is gzip as any .gz.
    assert content_type_for("up/logo.svgz") == content_type_for("LOGO.SVGZ") == "image/svg+xml"
    assert content_type_for("logo.svgz", None) == "image/svg+xml"
    assert content_type_for("logo.svg.gz") == "application/gzip"
    assert content_type_for("logo.svgz.gz") == "application/gzip"


def test_form_option_syntax() -> None:
    assert parse_form_option("a=b") == FormField("a", "b")
    assert parse_form_option("img=@{path};type=image/png;filename=x.png") == FormField(
        "img", "{path}", True, "image/png", "x.png"
    )
    with pytest.raises(UsageError, match="-F 3: not in the form"):
        parse_form_option("=x", 3)
    with pytest.raises(UsageError, match="names no file"):
        parse_form_option("a=@")


def test_form_option_reads_text_parts_as_curl_does() -> None:
    """curl 7.88's tool_formparse.c, checked against curl itself: ;type= and ;filename=
    after a text value too, '<' for a file's contents as a text part, quotes, spaces."""
    p = parse_form_option
    assert p("a=hello;type=application/json") == FormField("a", "hello", False, "application/json")
    assert p("b=<up/a b.txt") == FormField("b", "up/a b.txt", True, as_text=True)
    assert p("b=<{path};type=text/csv") == FormField("b", "{path}", True, "text/csv", as_text=True)
    assert p("d= sp ace ;filename=x.txt") == FormField("d", "sp ace", filename="x.txt")
    assert p('e="q;uo\\"te\\\\" ') == FormField("e", 'q;uo"te\\')
    assert p('u="unclosed') == FormField("u", '"unclosed')  # taken as it is, as curl does
    assert p("f=x;type=text/plain; charset=utf-8") == FormField(
        "f", "x", False, "text/plain; charset=utf-8"
    )
    assert p('j=@"up/x;type=evil.txt"') == FormField("j", "up/x;type=evil.txt", True)
    assert p('k=@{p} ;type=a/b ;filename= "q r" ') == FormField("k", "{p}", True, "a/b", "q r")
    assert p("t={a};type=x/y;filename={b}.txt") == FormField("t", "{a}", False, "x/y", "{b}.txt")
    assert p("q=a&b={c}") == FormField("q", "a&b={c}")  # no ';': as it was
    for spec, message in [
        ("h=v;foo=bar", "-F h: unknown option 'foo=bar' (type=, filename=; a value with ';'"),
        ("h=a;b", "-F h: unknown option 'b'"),
        ("i=<x;filename=z", "-F i: unknown option 'filename=z' (type=;"),
        ("a=@x;headers=X-A: 1", "-F a: unknown option 'headers=X-A: 1'"),
        ('e="x"y', "-F e: text after a closing quote"),
        ("a=b;type=", "-F a: ';type=' names no type"),
        ("a=<", "-F a: '<' names no file"),
    ]:
        with pytest.raises(UsageError) as info:
            p(spec)
        assert str(info.value).startswith(message), (spec, str(info.value))


def test_a_second_type_is_a_parameter_of_the_first_as_curl_reads_it() -> None:
    """What curl 7.88.1 sends for these (checked on the wire; its tool_formparse.c takes
    'type=' as a type only while none is being read): neither the last wins nor is it
    refused, as a 'type' parameter is real (multipart/related, RFC 2387). After
    ;filename= a new ;type= starts, and replaces the first."""
    p = parse_form_option
    assert p("f=hi;type=text/a;type=text/b").content_type == "text/a;type=text/b"
    assert p("f=@x;type=text/a; type=text/b").content_type == "text/a; type=text/b"
    assert p("f=hi;type=text/a;TYPE=text/b").content_type == "text/a;TYPE=text/b"
    assert p("f=hi;type=text/a;charset=utf-8;type=text/b").content_type == (
        "text/a;charset=utf-8;type=text/b"
    )
    assert p("f=hi;type=text/a;type=").content_type == "text/a;type="
    assert p("m=@x;type=multipart/related;type=application/xop+xml") == FormField(
        "m", "x", True, "multipart/related;type=application/xop+xml"
    )
    assert p("f=hi;type=text/a;filename=x;type=text/b") == FormField(
        "f", "hi", False, "text/b", "x"
    )


def test_text_parts_with_a_type_a_filename_or_a_files_contents(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_bytes(b"from a file")
    specs = ["a={v};type=application/json", "b=<{p}", "c={v};filename={v}.txt", "d=<{p};type=x/y"]
    plan = FilePlan(RequestPlan("http://h/up"), form=[parse_form_option(s) for s in specs])
    data = plan.prepare({"v": "7", "p": str(note)}).data
    assert isinstance(data, Streamed)
    assert data.segments is not None
    assert FileSegment(str(note), 11) in data.segments  # '<' streams the file, too
    body = to_bytes(data.segments)
    streamed = data.split(b"boundary=")[1].split(b"\r\n")[0].decode()
    static, static_type = static_form([s.replace("{v}", "7").replace("{p}", str(note))
                                       for s in specs])  # fmt: skip
    for raw, bound in [(body, streamed), (static, static_type.split("boundary=")[1])]:
        heads = [part.split(b"\r\n\r\n")[0] for part in raw.split(f"--{bound}".encode())[1:-1]]
        assert heads == [
            b'\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: application/json',
            b'\r\nContent-Disposition: form-data; name="b"',  # a text part: no filename, no type
            b'\r\nContent-Disposition: form-data; name="c"; filename="7.txt"\r\n'
            b"Content-Type: text/plain",  # from the filename, as curl
            b'\r\nContent-Disposition: form-data; name="d"\r\nContent-Type: x/y',
        ]
        fields, files = parse(raw, f"multipart/form-data; boundary={bound}")
        assert fields == {"a": b"7", "b": b"from a file", "d": b"from a file"}
        assert files == {"c": ("7.txt", "text/plain", b"7")}


def test_static_form(tmp_path: Path) -> None:
    img = tmp_path / "k.png"
    img.write_bytes(b"PNG")
    body, ctype = static_form([f"data=@{img}", "id=7"])
    fields, files = parse(body, ctype)
    assert fields == {"id": b"7"}
    assert files == {"data": ("k.png", "image/png", b"PNG")}


def test_plan_renders_a_streamed_request(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_bytes(b'{"x": 1}')
    plan = FilePlan(RequestPlan("http://h/up/{id}", method="PUT"), data_file="{p}")
    prepared = plan.prepare({"id": "1", "p": str(f)})
    data = prepared.data
    assert isinstance(data, Streamed)
    assert data.startswith(b"PUT /up/1 HTTP/1.1\r\n")
    assert data.endswith(b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n")
    assert data.segments == (FileSegment(str(f), 8),)
    assert data.save is None
    again = pickle.loads(pickle.dumps(data))  # the read-ahead and -p pipes
    assert again == data
    assert again.segments == data.segments
    with pytest.raises(RowOutcome, match="file: /nope: No such file"):
        plan.prepare({"id": "1", "p": "/nope"})


@pytest.mark.parametrize(
    ("path", "why"),
    [("a\x00b.bin", "holds a NUL character"), ("a\ud800.bin", "(a lone surrogate)")],
)
@pytest.mark.parametrize("form", [False, True])
def test_a_path_no_file_can_have_is_the_row_s_file_error(path: str, why: str, form: bool) -> None:
    """os.stat raised ValueError for these: the row's error was "template: row N: embedded
    null byte", which named neither the file nor the option. Now it is ``file: PATH: why``."""
    if form:
        plan = FilePlan(RequestPlan("http://h/up"), form=[FormField("f", "{p}", is_file=True)])
    else:
        plan = FilePlan(RequestPlan("http://h/up"), data_file="{p}")
    with pytest.raises(RowOutcome) as info:
        plan.prepare({"p": path})
    assert info.value.error.startswith(f"file: {path!r}: ")
    assert info.value.error.endswith(why)


def test_redirect_keeps_the_body_for_307_and_drops_it_for_303(tmp_path: Path) -> None:
    f = tmp_path / "b.bin"
    f.write_bytes(b"12345")
    plan = FilePlan(RequestPlan("http://h/up", method="POST"), data_file=str(f))
    prepared = plan.prepare({})
    same = redirect(prepared, 307, "/other")
    assert same is not None
    assert isinstance(same.data, Streamed)
    assert same.data.startswith(b"POST /other HTTP/1.1")
    assert same.data.endswith(b"Content-Length: 5\r\n\r\n")
    assert same.data.segments == prepared.data.segments  # type: ignore[attr-defined]
    get = redirect(prepared, 303, "/done")
    assert get is not None
    assert get.data.startswith(b"GET /done HTTP/1.1")
    assert get.data.segments is None  # type: ignore[attr-defined]
    assert b"Content-Length" not in get.data


class FakeTransport:
    """Pauses the pump once more than ``high`` bytes are buffered, as asyncio does."""

    def __init__(self, conn: FakeConn, high: int) -> None:
        self.conn = conn
        self.high = high
        self.buffered = 0
        self.out = bytearray()
        self.biggest = 0

    def write(self, data: bytes) -> None:
        self.out += data
        self.buffered += len(data)
        self.biggest = max(self.biggest, self.buffered)
        if self.buffered > self.high:
            self.conn.write_paused = True

    def drain(self) -> None:
        self.buffered = 0
        self.conn.write_paused = False
        if self.conn.pump is not None:
            self.conn.pump.run()


class FakeConn:
    def __init__(self) -> None:
        self.write_paused = False
        self.pump: BodyPump | None = None
        self.transport = FakeTransport(self, 64 * 1024)
        self.aborted: tuple[str, str] | None = None

    def abort(self, reason: str, detail: str = "") -> None:
        self.aborted = (reason, detail)


def test_pump_writes_in_bounded_chunks_and_waits_for_the_drain(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    data = bytes(range(256)) * 4096 * 3  # 3 MiB
    f.write_bytes(data)
    conn = FakeConn()
    pump = conn.pump = BodyPump(conn, (b"head-", FileSegment(str(f), len(data)), b"-tail"))
    pump.run()
    drains = 0
    while conn.pump is not None and drains < 1000:
        assert conn.transport.buffered <= 64 * 1024 + CHUNK  # never more than that held
        conn.transport.drain()
        drains += 1
    assert conn.pump is None
    assert bytes(conn.transport.out) == b"head-" + data + b"-tail"
    assert conn.transport.biggest <= 64 * 1024 + CHUNK
    assert drains > 20


def test_pump_reports_a_file_that_grew_before_its_last_bytes(tmp_path: Path) -> None:
    """A file longer than the Content-Length announced: its first N bytes were sent as
    the whole file (a retry after the file grew); now the last chunk is held back and
    the request ends with the file's error, as for a file that shrank."""
    f = tmp_path / "g.bin"
    f.write_bytes(b"x" * (CHUNK + 10))
    conn = FakeConn()
    conn.pump = BodyPump(conn, (b"head", FileSegment(str(f), CHUNK + 5), b"tail"))
    conn.pump.run()
    for _ in range(10):
        if conn.pump is None:
            break
        conn.transport.drain()
    assert conn.pump is None
    assert conn.aborted is not None
    assert conn.aborted[0] == f"file: {f}: longer than its {CHUNK + 5} bytes: changed while sent"
    assert bytes(conn.transport.out) == b"head" + b"x" * CHUNK  # not its last 5 bytes


def test_pump_reports_a_file_that_shrank(tmp_path: Path) -> None:
    f = tmp_path / "s.bin"
    f.write_bytes(b"abc")
    conn = FakeConn()
    conn.pump = BodyPump(conn, (FileSegment(str(f), 10),))
    conn.pump.run()
    assert conn.pump is None
    assert conn.aborted is not None
    assert conn.aborted[0].startswith(f"file: {f}: shorter than its 10 bytes")

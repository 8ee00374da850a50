"""Input rows read whole and named by their line (issue: the input review): a cell of
tens of megabytes, lines ended by a carriage return alone, a pipe whose writer pauses.

Each test runs drumfire against a real server on 127.0.0.1 and checks the rows that came back.
"""

from __future__ import annotations

import contextlib
import csv
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from servers import ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]


def cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def stdout_lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """The run's output lines as a thread reads them (a test waits for each, bounded),
    and that thread."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True)
    reader.start()
    return lines, reader


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_cell_of_60_megabytes_leaves_the_answers_in_flight_alone(tmp_path: Path) -> None:
    """A line of 60 MB (under the csv module's field limit) was put together by adding
    each 64 KiB block to the text so far: some 28 GB of copying, half a minute in which
    the loop read no answer, and row 1, answered at once, timed out and was sent again. (The long
    line is a row of three fields: an error row, after which the reader goes on.)"""
    source = tmp_path / "in.csv"
    with source.open("w") as fh:
        fh.write("id,v\n1,a\n2,")
        fh.write("x" * (60 * 1024 * 1024))
        fh.write(",z\n3,b\n")
    out = tmp_path / "out.csv"
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        proc = cli("run", source, "--url", server.url("/r/{id}"), "-o", out, "--timeout", "15")
    assert proc.returncode == 0, proc.stderr
    rows = sorted((r["id"], r["status"], r["attempts"], r["error"]) for r in read_csv(out))
    assert rows == [
        ("", "", "0", "input: line 3: expected 2 fields, found 3"),
        ("1", "200", "1", ""),  # its first attempt: not timed out and sent again
        ("3", "200", "1", ""),
    ]


CR_FILE = (
    "drumfire: error: line 1 has a carriage return (CR) that does not end a line: lines must "
    "end with LF or CRLF (a file whose lines end with CR alone, as from an old Mac, converts "
    "with: tr '\\r' '\\n')\n"
)


def test_urls_on_lines_ended_by_cr_alone_stop_the_run_in_one_line(tmp_path: Path) -> None:
    """A URL list whose lines end with CR alone was one line: its URLs were sent as one
    request (``/a%0Dhttp://…/b``), or, after a comment, skipped with it without a word.
    Such a file stops before the first request, as a CSV one does; a later line holding
    a CR is its row's error, and the rows around it are sent."""
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        a, b = server.url("/a"), server.url("/b")
        for text in (f"{a}\r{b}\r", f"# two routes\r{a}\r{b}\r"):
            source = tmp_path / "in.txt"
            source.write_text(text)
            proc = cli("run", source, "-o", tmp_path / "out.csv")
            assert (proc.returncode, proc.stderr) == (2, CR_FILE)
        assert server.requests == []
        source.write_text(f"{a}\n# note\r{b}\n\n{b}\r\n")
        out = tmp_path / "out.csv"
        proc = cli("run", source, "-o", out)
        sent = [r.target for r in server.requests]
    assert proc.returncode == 0, proc.stderr
    assert sorted(sent) == ["/a", "/b"]
    assert sorted((r["id"], r["error"]) for r in read_csv(out)) == [
        ("", "input: line 2: a carriage return (CR) inside the line (lines end with LF or CRLF)"),
        ("1", ""),
        ("3", ""),
    ]


def test_json_lines_ended_by_cr_alone_say_so(tmp_path: Path) -> None:
    """JSON Lines ended by CR alone were one line, one error row for all its rows: ``not
    JSON: unexpected content after document``. JSON takes a CR inside a line for white
    space, so such a line that parses is a row as before."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a"}\r{"id": "b"}\r')
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        proc = cli("run", source, "--url", server.url("/{id}"), "-o", tmp_path / "first.csv")
        assert (proc.returncode, proc.stderr) == (2, CR_FILE)
        assert server.requests == []
        source.write_bytes(b'{"id": "a",\r"n": 1}\n{"id": "b"}\r{"id": "c"}\n{"id": "d"}\n')
        out = tmp_path / "out.csv"
        proc = cli("run", source, "--url", server.url("/{id}"), "-o", out)
        sent = sorted(r.target for r in server.requests)
    assert proc.returncode == 0, proc.stderr
    assert sent == ["/a", "/d"]
    assert sorted((r["id"], r["error"]) for r in read_csv(out)) == [
        ("", "input: line 2: not JSON: unexpected content after document at column 13; "
         "a carriage return (CR) inside the line (lines end with LF or CRLF)"),
        ("a", ""),
        ("d", ""),
    ]  # fmt: skip


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_pipe_whose_writer_pauses_holds_no_answer(processes: str) -> None:
    """Standard input was read in the engine's loop: while its writer paused, no answer
    was read, so a row answered at once waited for the next line (past --timeout a POST
    the server had done ended as a timeout). With -p the rows read waited in the
    parent's chunk for the writer's next ones. Row 1's result now comes while the pipe
    is open and silent; the rows after the pause follow."""
    with (
        ScriptedServer(lambda i, m, t, h, b: respond(200, {"got": b.decode()})) as server,
        subprocess.Popen(
            [*CLI, "run", "-", "--url", server.url("/r/{id}"), "-d", "{v}", "-e", "got=got",
             "-o", "-", "-q", "-p", processes],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc,
    ):  # fmt: skip
        assert proc.stdin is not None
        assert proc.stdout is not None
        lines, reader = stdout_lines(proc)
        try:
            proc.stdin.write("id,v\n1,a\n")
            proc.stdin.flush()
            assert lines.get(timeout=60) == "id,status,elapsed_ms,attempts,error,got\n"
            first = lines.get(timeout=60)  # stdin open, nothing more written
            proc.stdin.write("2,b\n")
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0
            reader.join(timeout=60)
        finally:
            proc.kill()
    rest = [lines.get_nowait() for _ in range(lines.qsize())]
    rows = list(csv.reader([first, *rest]))
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in rows] == [
        ("1", "200", "1", "", "a"),
        ("2", "200", "1", "", "b"),
    ]


def test_lines_of_spaces_before_the_header_are_blank_lines(tmp_path: Path) -> None:
    """A line of spaces or tabs before a CSV's header was the header (an empty line was
    skipped): the run stopped on "uses column 'v', which the input does not have
    (columns: none)". An input of such lines alone is empty, and says so."""
    source = tmp_path / "in.csv"
    source.write_text("  \n\t\n\nid,v\n \n1,a\n")
    out = tmp_path / "out.csv"
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        proc = cli("run", source, "--url", server.url("/{v}"), "-o", out)
        sent = [r.target for r in server.requests]
    assert proc.returncode == 0, proc.stderr
    assert sent == ["/a"]
    assert [(r["id"], r["error"]) for r in read_csv(out)] == [("1", "")]
    source.write_text("  \n \t \n")
    proc = cli("run", source, "--url", "http://127.0.0.1:9/{v}", "-o", tmp_path / "empty.csv")
    assert (proc.returncode, proc.stderr) == (
        2,
        "drumfire: error: the input is empty: expected a header line naming the columns\n",
    )


def test_a_gzip_or_parquet_file_named_as_text_says_what_it_is(tmp_path: Path) -> None:
    """A gzip file named .csv stopped on "the header line is not valid text in this
    encoding; say --encoding" (no encoding helps), a JSON Lines one gave an error row
    of its bytes, and a Parquet file named .csv a header of its bytes, whose columns
    were then missing. Each now says what it is, before the first request."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    packed = tmp_path / "in.csv"
    packed.write_bytes(gzip.compress(b"id,v\n1,a\n"))
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_bytes(gzip.compress(b'{"v": "a"}\n'))
    table = tmp_path / "table.csv"
    pq.write_table(pa.table({"v": ["a"]}), table)
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        got = [cli("run", path, "--url", server.url("/{v}"), "-o", tmp_path / f"{n}.csv")
               for n, path in enumerate((packed, jsonl, table))]  # fmt: skip
        assert server.requests == []
    gzipped = (
        "is gzip-compressed: name it .gz (a .gz file is decompressed as it is read), "
        "or decompress it first: gunzip -c FILE | drumfire ... -"
    )
    assert [(p.returncode, p.stderr) for p in got] == [
        (2, f"drumfire: error: input {str(packed)!r} {gzipped}\n"),
        (2, f"drumfire: error: input {str(jsonl)!r} {gzipped}\n"),
        (2, f"drumfire: error: input {str(table)!r} is a Parquet file: say --format parquet "
            "(or name it .parquet)\n"),
    ]  # fmt: skip
    proc = cli("run", table, "--format", "parquet", "--url", "http://127.0.0.1:9/{v}",
               "-o", tmp_path / "parquet.csv", "--retries", "0", "--keep-going")  # fmt: skip
    assert "Parquet file" not in proc.stderr


def test_a_json_array_is_no_json_lines_and_says_so(tmp_path: Path) -> None:
    """A pretty-printed JSON array (data.json) was read line by line: '[' and
    '{"v": "a"},' error rows, '{"v": "b"}' a row sent, ']' an error row, exit 0. An
    array, or an object over several lines, now stops before the first request, from a
    file or standard input, with one line saying how to make JSON Lines of it."""
    array = tmp_path / "data.json"
    array.write_text('[\n  {"v": "a"},\n  {"v": "b"}\n]\n')
    document = tmp_path / "one.json"
    document.write_text('{\n  "v": "a"\n}\n')
    line = tmp_path / "line.json"
    line.write_text('[{"v": "a"}, {"v": "b"}]\n')
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        got = [cli("run", path, "--url", server.url("/{v}"), "-o", tmp_path / f"{n}.csv")
               for n, path in enumerate((array, document, line))]  # fmt: skip
        piped = subprocess.run(
            [*CLI, "run", "-", "--url", server.url("/{v}"), "-o", tmp_path / "piped.csv"],
            input=array.read_text(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert server.requests == []
    to_lines = "; JSON Lines hold one object a line: convert the file with: jq -c"
    array_error = f"drumfire: error: line 1 starts a JSON array{to_lines} '.[]' FILE > FILE.jsonl\n"
    assert [(p.returncode, p.stderr) for p in (*got, piped)] == [
        (2, array_error),
        (2, f"drumfire: error: line 1 starts a JSON object over several lines{to_lines} . FILE "
            "> FILE.jsonl\n"),
        (2, array_error),
        (2, array_error),
    ]  # fmt: skip


def test_the_read_ahead_child_sends_the_rows_of_a_pipe_that_paused() -> None:
    """Once drumfire's CPU limits the run, a read-ahead child reads the pipe; it held the
    rows it had read in its chunk until it held 512 (or the input ended): a writer
    that paused after a row left it unsent. The row now goes as the pipe falls silent."""
    from drumfire._readahead import available

    if not available():
        pytest.skip("no read-ahead child on this machine")
    import time

    force = (
        "from drumfire._engine import Engine; Engine.CPU_BOUND = 0.0; Engine.CPU_TICKS = 1; "
        "from drumfire.cli import entry; entry()"
    )
    with (
        ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server,
        subprocess.Popen(
            [sys.executable, "-c", force, "run", "-", "--format", "csv", "--url",
             server.url("/{id}"), "-o", "-", "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ) as proc,
    ):  # fmt: skip
        assert proc.stdin is not None
        assert proc.stdout is not None
        lines, _ = stdout_lines(proc)
        try:
            proc.stdin.write("id\n")
            child: list[int] = []
            for start in range(0, 1_000_000, 1000):  # rows until the child appears
                proc.stdin.write("".join(f"{i}\n" for i in range(start, start + 1000)))
                proc.stdin.flush()
                child = _children(proc.pid)
                if child:
                    break
            assert child, "no read-ahead child appeared"
            proc.stdin.write("last\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 60
            seen = ""
            while not seen.startswith("last,") and time.monotonic() < deadline:
                with contextlib.suppress(queue.Empty):
                    seen = lines.get(timeout=1)
            assert seen.startswith("last,200,"), "the row written before the pause never came"
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0
        finally:
            proc.kill()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]

"""A kept body over ``--max-body``: the answer came, so the row keeps its status.

As a download over the limit does (``test_files_download``), and as curl's
``--max-filesize`` with ``-w '%{http_code}'`` shows it: the status, the error
``body_too_large: over --max-body (N bytes)``, no body (no extracted field), and no
retry. The connection is not reused (the rest of the body is unread); the rows after
it are answered on another.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from servers import Action, ScriptedServer, chunked, gzipped, respond

from drumfire import Response, run

LIMIT = "body_too_large: over --max-body (1000 bytes)"


def handler(index: int, method: str, target: str, headers: dict[str, str], body: bytes
            ) -> Action:  # fmt: skip
    name = target.rsplit("/", 1)[1]
    if name == "plain":
        return respond(200, b'{"v": "' + b"x" * 5000 + b'"}')
    if name == "chunked":
        return chunked(200, b"x" * 5000, size=700)
    if name == "gzip":
        return gzipped(200, b"x" * 50_000)
    if name == "close":  # no length: the body ends when the server closes
        return respond(200, b"x" * 5000, length=False, then="close")
    if name == "missing":
        return respond(404, b"y" * 5000)
    return respond(200, {"v": name})


def test_a_kept_body_over_max_body_keeps_its_status(tmp_path: Path) -> None:
    inp = tmp_path / "in.csv"
    inp.write_text("id\nplain\nsmall1\nchunked\ngzip\nclose\nmissing\nsmall2\n")
    out = tmp_path / "out.csv"
    with ScriptedServer(handler) as srv:
        done = subprocess.run(
            [sys.executable, "-m", "drumfire", "run", str(inp), "--url", srv.url("/{id}"),
             "-e", "v=v", "--max-body", "1000", "-o", str(out), "-q"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        asked = [r.target for r in srv.requests]
    assert done.returncode == 0, done.stderr
    with out.open(newline="") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    for name, status in [("plain", "200"), ("chunked", "200"), ("gzip", "200"),
                         ("close", "200"), ("missing", "404")]:  # fmt: skip
        row = rows[name]
        assert (row["status"], row["error"], row["v"], row["attempts"]) == (
            status, LIMIT, "", "1"), row
    for name in ("small1", "small2"):
        assert (rows[name]["status"], rows[name]["error"], rows[name]["v"]) == ("200", "", name)
    assert sorted(asked) == sorted(f"/{n}" for n in rows)  # each sent once: no retry


def test_the_api_row_says_which_limit_it_passed() -> None:
    with ScriptedServer(handler) as srv:
        ran = run([{"id": "plain"}, {"id": "ok"}], srv.url("/{id}"), max_body=1000,
                  extract={"v": "v"}, progress=False)  # fmt: skip
        results = {r.id: r for r in ran}
    # The summary's example, with its hint (it came with the transport failure before).
    summary = ran.stats.summary()
    assert summary["failure_examples"] == {
        "body_too_large": "over --max-body (1000 bytes) (raise --max-body)"
    }
    assert summary["failures"] == {"body_too_large": 1}
    big = results["plain"]
    assert (big.status, big.error, big.reason, big.fields) == (
        200, LIMIT, "body_too_large", {"v": None})
    assert not big.ok
    assert (results["ok"].status, results["ok"].fields) == (200, {"v": "ok"})


def test_bench_counts_an_answer_over_max_body_as_that_error() -> None:
    # bench measures what a client reading every body would meet: an answer it
    # stopped reading is the error body_too_large (it was "protocol": bench ran in an
    # ``except`` clause, which hid the reader's error from it), not its status.
    import drumfire.bench

    def some_big(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                 ) -> Action:  # fmt: skip
        return respond(200, b"x" * 5000) if index % 3 == 0 else respond(200, b"ok")

    with ScriptedServer(some_big) as srv:
        report = drumfire.bench.bench(srv.url("/a"), requests=30, concurrency=2, max_body=1000,
                                      progress=False)  # fmt: skip
    figures = report.to_dict()
    assert figures["errors"] == {"body_too_large": 10}
    assert (figures["ok"], figures["failed"]) == (20, 10)


def test_parse_does_not_run_on_a_body_it_did_not_get() -> None:
    # The body over the limit was not read: a --parse function would see b"" and could
    # return made-up fields (a length of 0). It runs on the rows whose body came.
    seen: list[int] = []

    def parse(response: Response) -> dict[str, int]:
        seen.append(len(response.body))
        return {"size": len(response.body)}

    with ScriptedServer(handler) as srv:
        ran = run([{"id": "plain"}, {"id": "ok"}], srv.url("/{id}"), max_body=1000,
                  parse=parse, progress=False)  # fmt: skip
        results = {r.id: r for r in ran}
    assert (results["plain"].status, results["plain"].error) == (200, LIMIT)
    assert not (results["plain"].fields or {}).get("size")
    assert results["ok"].fields == {"size": len(b'{"v": "ok"}')}
    assert seen == [len(b'{"v": "ok"}')]

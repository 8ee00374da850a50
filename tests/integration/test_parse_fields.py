"""What a ``--parse`` function (``parse=``) returns that is no dict of new fields: its row's
``parse:`` error, as a function that raises gets, never the run's end nor another row's truth.

A function that returned None (a forgotten ``return``, or fields for the 200s alone) ended
the whole run with a traceback, exit 1, the rows answered before it lost; one that returned
``{"id": …, "status": …}`` (``return response.json()`` of an API whose documents have an
``id``) replaced the row's id and status in JSON Lines and the API's rows, and wrote a CSV
header naming ``id`` and ``status`` twice.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import drumfire
from drumfire.demo import DemoServer

PARSE = """
def some(response):
    if response.status == 200:
        return {"got": response.json()["status"]}
    # None for the others: no return

def document(response):
    return {"id": "theirs", "status": "fine", "n": 1}

def also_got(response):
    return {"got": "from parse", "more": 1}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as demo:
        yield demo


def _run(
    tmp_path: Path, server: DemoServer, function: str, out: str, *more: str
) -> list[dict[str, str]]:
    source = tmp_path / "in.csv"
    source.write_text("id,code\na,200\nb,404\nc,200\n")
    (tmp_path / "p.py").write_text(PARSE)
    proc = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(source), "--url",
         server.base_url + "/status/{code}", "--parse", f"{tmp_path / 'p.py'}:{function}",
         "-c", "1", "--ordered", "-q", "-o", str(tmp_path / out), *more],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    text = (tmp_path / out).read_text(encoding="utf-8")
    if out.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines()]
    header = next(csv.reader([text.splitlines()[0]]))
    assert len(header) == len(set(header)), header
    return list(csv.DictReader(text.splitlines()))


def test_a_function_that_returns_none_makes_its_row_a_parse_error(
    tmp_path: Path, server: DemoServer
) -> None:
    rows = _run(tmp_path, server, "some", "out.csv")
    got = [(r["id"], r["status"], r["error"], r["got"]) for r in rows]
    assert got == [
        ("a", "200", "", "200"),
        ("b", "404", "parse: returned None, not a dict of fields (return {} for none)", ""),
        ("c", "200", "", "200"),
    ]


@pytest.mark.parametrize("out", ["out.csv", "out.jsonl"])
def test_a_field_named_as_a_column_every_row_has_is_refused(
    tmp_path: Path, server: DemoServer, out: str
) -> None:
    rows = _run(tmp_path, server, "document", out)
    assert [(r["id"], str(r["status"])) for r in rows] == [("a", "200"), ("b", "404"), ("c", "200")]
    message = "parse: returned 'id' and 'status', columns drumfire writes; rename them"
    assert {r["error"] for r in rows} == {message}
    assert all("n" not in r or r["n"] in ("", None) for r in rows)


def test_the_api_rows_keep_their_id_and_status(server: DemoServer) -> None:
    def parse(response: drumfire.Response) -> object:
        return [("id", "x")] if response.status == 200 else {"kept": 1}

    rows = [{"id": "a", "code": "200"}, {"id": "b", "code": "404"}]
    results = drumfire.run_all(rows, server.base_url + "/status/{code}", parse=parse,
                               keep=["code"], concurrency=1)  # fmt: skip
    assert [(r["id"], r["status"], r["error"]) for r in results] == [
        ("a", 200, "parse: returned list, not a dict of fields"),
        ("b", 404, ""),
    ]
    with_keep = drumfire.run_all(rows[:1], server.base_url + "/status/{code}",
                                 parse=lambda r: {"code": 5}, keep=["code"])  # fmt: skip
    assert with_keep[0]["code"] == "200"
    assert with_keep[0]["error"] == "parse: returned 'code', a kept column; rename it"


EXTRACTED = (
    "parse: returned 'got', also an extracted field's name (-e, extract=); rename one of the two"
)


@pytest.mark.parametrize("out", ["out.csv", "out.jsonl"])
def test_a_field_named_as_an_extracted_one_is_refused(
    tmp_path: Path, server: DemoServer, out: str
) -> None:
    # It replaced the -e field's value, silently: the output said 'from parse' under
    # the name the user gave the extracted value.
    rows = _run(tmp_path, server, "also_got", out, "-e", "got=status")
    assert [(r["id"], str(r["status"])) for r in rows] == [("a", "200"), ("b", "404"), ("c", "200")]
    assert {r["error"] for r in rows} == {EXTRACTED}
    assert [str(r["got"]) for r in rows] == ["200", "404", "200"]  # the extracted value


def test_the_api_refuses_a_parse_field_named_as_an_extracted_one(server: DemoServer) -> None:
    rows = [{"id": "a", "code": "200"}]
    url = server.base_url + "/status/{code}"
    results = drumfire.run_all(rows, url, extract={"got": "status"},
                               parse=lambda r: {"got": "from parse"})  # fmt: skip
    assert results[0]["error"] == EXTRACTED
    assert results[0]["got"] == 200
    two = drumfire.run_all(rows, url, extract={"got": "status", "n": "status"},
                           parse=lambda r: {"n": 1, "got": 2, "x": 3})  # fmt: skip
    assert two[0]["error"] == (
        "parse: returned 'n' and 'got', also extracted fields' names (-e, extract=); "
        "rename one of the two"
    )

"""Rows that reach the user whole (issue 13): input errors that lose nothing, ``--parse``
fields in CSV, response headers and encodings, the Python API's fields and DataFrames.

Each test runs drumfire against a real server on 127.0.0.1 and checks the rows that came back.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import gzip
import json
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import brotli
import pytest
import zstandard
from servers import Action, ScriptedServer, refused_port, respond

import drumfire
from drumfire.demo import DemoServer

CLI = [sys.executable, "-m", "drumfire.cli"]
README = Path(__file__).resolve().parents[2] / "README.md"


def cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- an unterminated quote loses one row, not the rest of the file ----------------------


def test_unterminated_quote_on_line_3_of_500(demo_server: DemoServer, tmp_path: Path) -> None:
    lines = ["id,code"] + [f"r{i},200" for i in range(1, 501)]
    lines[2] = 'r2,"200'  # line 3 opens a quote that never closes
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    proc = cli("run", source, "--url", demo_server.base_url + "/status/{code}", "-o", out)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(out)
    assert len(rows) == 500
    errors = [r for r in rows if r["error"]]
    assert [e["error"] for e in errors] == ["input: line 3: unterminated quote"]
    good = [r for r in rows if not r["error"]]
    assert len(good) == 499
    assert {r["status"] for r in good} == {"200"}
    assert sorted(r["id"] for r in good) == sorted(f"r{i}" for i in range(1, 501) if i != 2)


def test_a_document_of_many_lines_in_one_cell_is_one_row(tmp_path: Path) -> None:
    """A quoted cell past the 1,000-line limit whose quote closes is read whole: it
    used to be cut as an 'unterminated quote', and each of its lines read again as a
    row of its own (1,500 error rows for one, and lines holding a comma sent as rows)."""
    document = "\n".join(f'line {i}, with a comma and a ""quote""' for i in range(1500))
    source = tmp_path / "in.csv"
    source.write_text(f'id,text\na,x\nb,"{document}"\nc,y\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {"n": len(b)})) as server:
        proc = cli("run", source, "--url", server.url("/d"), "--json", '{"text": "{text}"}',
                   "-o", out)  # fmt: skip
        bodies = {json.loads(r.body)["text"] for r in server.requests}
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(out)
    assert sorted((r["id"], r["error"]) for r in rows) == [("a", ""), ("b", ""), ("c", "")]
    assert bodies == {"x", document.replace('""', '"'), "y"}



def test_undecodable_bytes_and_quoted_blank_records_are_error_rows(tmp_path: Path) -> None:
    """A record holding bytes that are not UTF-8 is one error row and nothing is sent
    for it: inside a quoted cell a stand-in for the line used to be sent in the cell,
    and on the line opening a quote the cell's rest became a row of its own. A quoted
    empty record ('""') is a record of one field, not a blank line that vanishes."""
    source = tmp_path / "in.csv"
    source.write_bytes(
        b'id,v\n1,"a\n\xff\nb"\n2,c\n3,"caf\xe9\nx,y"\n""\n\n4,d\n'
    )
    out = tmp_path / "out.csv"
    with ScriptedServer(lambda i, m, t, h, b: respond(200, {})) as server:
        proc = cli("run", source, "--url", server.url("/p/{v}"), "-o", out, "-c", "1")
        sent = sorted(r.target for r in server.requests)
    assert proc.returncode == 0, proc.stderr
    assert sent == ["/p/c", "/p/d"]
    one_more = "(a quoted field opened on this line makes it one record with the next {} line"
    assert sorted((r["id"], r["error"]) for r in read_csv(out)) == [
        ("", "input: line 2: undecodable bytes (say --encoding) " + one_more.format(2) + "s)"),
        ("", "input: line 6: undecodable bytes (say --encoding) " + one_more.format(1) + ")"),
        ("", "input: line 8: expected 2 fields, found 1"),
        ("2", ""),
        ("4", ""),
    ]


def test_progress_total_counts_rows_not_lines(tmp_path: Path) -> None:
    # A CSV whose cells hold line breaks: the count pass behind the progress
    # total must count its 3 rows, not its 7 lines.
    source = tmp_path / "in.csv"
    source.write_text('id,text\n1,"a\nb\nc"\n2,"d\ne"\n3,f\n')
    probe = (
        "import sys; from drumfire._sources import open_source; "
        "s = open_source(sys.argv[1]); print(s.total, sum(1 for _ in s.items))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(source)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert proc.stdout.split() == ["3", "3"]


# -- Result.fields on every row; run_all keeps a DataFrame's index --------------------


def test_fields_is_a_mapping_on_failed_rows(demo_server: DemoServer) -> None:
    with refused_port() as port:
        rows = [
            {"id": "ok", "url": demo_server.base_url + "/json"},
            {"id": "refused", "url": f"http://127.0.0.1:{port}/json"},
            {"id": "no-column"},
        ]
        results = {
            r.id: r
            for r in drumfire.run(
                rows, "{url}", extract={"code": "code"}, retries=0, concurrency=2
            )
        }
    # The README's own loop: r.fields["code"] on every row.
    assert {k: (r.error.partition(":")[0], r.fields["code"]) for k, r in results.items()} == {
        "ok": ("", "Ok"),
        "refused": ("connect", None),
        "no-column": ("template", None),
    }


def test_the_readme_python_example_runs_as_written(
    demo_server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its rows once ended in a literal ``...``, sent as one more row that failed."""
    pd = pytest.importorskip("pandas")
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("### From Python")) + len("```python\n")
    code = text[start : text.index("```", start)]
    assert "http://127.0.0.1:5000/" in code
    code = code.replace("http://127.0.0.1:5000/", demo_server.base_url + "/")
    # `df` is the reader's own DataFrame: here, of the example's rows.
    assert code.count("drumfire.run_all(df,") == 1
    code = code.replace("drumfire.run_all(df,", "drumfire.run_all(pd.DataFrame(rows),")
    # As a notebook cell runs it: `async for` at the top level.
    compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"pd": pd}
    ran = eval(compiled, namespace)
    if isinstance(ran, types.CoroutineType):
        asyncio.run(ran)
    assert capsys.readouterr().out.split() == ["a", "200", "146.8"]
    assert namespace["frame"]["error"].tolist() == [""]
    assert namespace["r"].error == ""


def test_the_readme_join_works_on_the_readme_rows(demo_server: DemoServer) -> None:
    """``result.join(df)`` once raised on them: both frames have an ``id`` column."""
    pd = pytest.importorskip("pandas")
    text = README.read_text(encoding="utf-8")
    joins = set(re.findall(r"`(result\.join\(df[^`]*\))` lines up by label", text))
    assert len(joins) == 1, joins
    df = pd.DataFrame(
        [{"id": "a", "lon1": "24.94", "lat1": "60.17", "lon2": "24.95", "lat2": "60.16"}],
        index=pd.Index(["x"]),
    )
    url = demo_server.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"
    result = drumfire.run_all(df, url)
    joined = eval(joins.pop(), {"result": result, "df": df})
    assert joined.loc["x", "status"] == 200
    assert joined.loc["x", "lat2"] == "60.16"


def test_run_all_keeps_the_index_and_an_integer_status(demo_server: DemoServer) -> None:
    pd = pytest.importorskip("pandas")
    with refused_port() as port:
        df = pd.DataFrame(
            {
                "url": [
                    demo_server.base_url + "/status/200",
                    f"http://127.0.0.1:{port}/x",
                    demo_server.base_url + "/status/404",
                ]
            },
            index=pd.Index(["a", "b", "c"], name="key"),
        )
        frame = drumfire.run_all(df, "{url}", extract={"s": "status"}, retries=0)
    assert list(frame.index) == ["a", "b", "c"]
    assert frame.index.name == "key"
    assert str(frame["status"].dtype) == "Int64"
    assert frame["status"].tolist()[0] == 200
    assert frame["status"].isna().tolist() == [False, True, False]
    assert frame.loc["c", "status"] == 404
    assert frame.loc["b", "error"] == "connect"
    assert frame["s"].tolist()[0] == 200
    assert pd.isna(frame.loc["b", "s"])
    # the input and the result line up by label
    assert frame.join(df).loc["b", "url"].endswith(f":{port}/x")


def test_run_all_on_an_empty_frame() -> None:
    pd = pytest.importorskip("pandas")
    frame = drumfire.run_all(pd.DataFrame({"url": []}), "{url}")
    assert list(frame.columns[:5]) == ["id", "status", "elapsed_ms", "attempts", "error"]
    assert len(frame) == 0
    # the extracted and kept columns too, as a pyarrow Table has them (they were missing:
    # frame["d"] raised KeyError when every row was skipped by a resume, or none was given)
    frame = drumfire.run_all(
        pd.DataFrame({"url": [], "k": []}), "{url}", extract={"d": "a.b"}, keep=["k"]
    )
    assert list(frame.columns) == ["id", "status", "elapsed_ms", "attempts", "error", "d", "k"]
    assert str(frame["status"].dtype) == "Int64"


# -- response encodings and headers, and --parse fields in CSV ------------------------


def _compressed(kind: str, body: bytes) -> tuple[bytes, str]:
    if kind == "br":
        return brotli.compress(body), "br"
    if kind == "zstd":
        return zstandard.compress(body), "zstd"
    if kind == "gzbr":
        return brotli.compress(gzip.compress(body)), "gzip, br"
    return body, "compress"  # a coding drumfire does not know


def encoded_handler(
    index: int, method: str, target: str, headers: dict[str, str], body: bytes
) -> Action:
    _, kind, n = target.split("/")
    data, coding = _compressed(kind, json.dumps({"n": int(n), "kind": kind}).encode())
    status = 203 if coding == "compress" else 200
    extra = [("X-More", "yes")] if n == "3" else []
    return respond(
        status,
        data,
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", coding),
            ("ETag", f'"e{n}"'),
            ("x-thing", "1"),
            *extra,
        ],
    )


KINDS = {"1": "br", "2": "zstd", "3": "gzbr", "4": "weird"}


def test_br_zstd_stacked_and_unknown_encodings() -> None:
    rows = [{"id": n, "kind": kind} for n, kind in KINDS.items()]
    with ScriptedServer(encoded_handler) as srv:
        results = {
            r.id: r
            for r in drumfire.run(rows, srv.url("/{kind}/{id}"), extract={"n": "n"}, retries=0)
        }
        targets = sorted(r.target for r in srv.requests)
    assert targets == ["/br/1", "/gzbr/3", "/weird/4", "/zstd/2"]
    assert {k: (r.status, r.error, r.fields["n"]) for k, r in results.items()} == {
        "1": (200, "", 1),
        "2": (200, "", 2),
        "3": (200, "", 3),
        # The status is the server's, the body is as sent (here plain JSON), and
        # the error says why it was not decoded.
        "4": (203, "encoding: unsupported content-encoding 'compress'", 4),
    }


PARSE = """
def parse(response):
    h = response.headers
    out = {"ctype": h.get("content-type"), "etag": h["ETag"], "thing": "X-Thing" in h}
    if response.status == 200:
        out["kind"] = response.json()["kind"]
    if h.get("x-more"):
        out["more"] = h["X-More"]
    return out
"""


def test_parse_fields_in_csv_with_learned_columns(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,kind\n" + "".join(f"{n},{k}\n" for n, k in KINDS.items()))
    (tmp_path / "p.py").write_text(PARSE)
    out = tmp_path / "out.csv"
    with ScriptedServer(encoded_handler) as srv:
        proc = cli(
            "run", source, "--url", srv.url("/{kind}/{id}"), "-e", "n=n",
            "--parse", f"{tmp_path / 'p.py'}:parse", "-c", "1", "--ordered", "-o", out, "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="") as fh:
        header = next(csv.reader(fh))
    # The first answer's fields, then parse_extra for what later rows add.
    assert header[5:] == ["n", "ctype", "etag", "thing", "kind", "parse_extra"]
    rows = {r["id"]: r for r in read_csv(out)}
    got = {k: (r["status"], r["ctype"], r["etag"], r["thing"], r["kind"]) for k, r in rows.items()}
    assert got == {
        "1": ("200", "application/json", '"e1"', "true", "br"),
        "2": ("200", "application/json", '"e2"', "true", "zstd"),
        "3": ("200", "application/json", '"e3"', "true", "gzbr"),
        "4": ("203", "application/json", '"e4"', "true", ""),
    }
    assert rows["3"]["parse_extra"] == '{"more":"yes"}'
    assert rows["1"]["parse_extra"] == rows["4"]["parse_extra"] == ""
    assert rows["4"]["error"] == "encoding: unsupported content-encoding 'compress'"


def test_parse_fields_in_csv_with_declared_columns(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,kind\n" + "".join(f"{n},{k}\n" for n, k in KINDS.items()))
    (tmp_path / "p.py").write_text(PARSE)
    out = tmp_path / "out.csv"
    with ScriptedServer(encoded_handler) as srv:
        proc = cli(
            "run", source, "--url", srv.url("/{kind}/{id}"), "--parse",
            f"{tmp_path / 'p.py'}:parse", "--parse-columns", "kind,more", "-o", out, "-q",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in read_csv(out)}
    assert list(rows["1"])[5:] == ["kind", "more", "parse_extra"]
    assert (rows["3"]["kind"], rows["3"]["more"]) == ("gzbr", "yes")
    assert json.loads(rows["2"]["parse_extra"]) == {
        "ctype": "application/json",
        "etag": '"e2"',
        "thing": True,
    }


def test_parse_columns_needs_parse(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id\n1\n")
    proc = cli("run", source, "--url", "http://127.0.0.1:9/{id}", "--parse-columns", "a")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["drumfire: error: --parse-columns needs --parse"]


# -- a CSV with an unnamed column: pandas' to_csv writes its index so -----------------


def test_a_nan_id_in_a_dataframe_takes_the_row_number(demo_server: DemoServer) -> None:
    """A NaN in the id column (float, or object with None/NaN mixed in, as pandas makes
    it) was the id 'nan' for every such row: a missing id now, as an empty one."""
    import numpy as np
    import pandas as pd

    url = demo_server.base_url + "/echo?x={x}"
    frame = pd.DataFrame({"id": ["a", np.nan, "c", None], "x": [1, 2, 3, 4]})
    result = drumfire.run_all(frame, url, extract={"x": "query.x"})
    assert list(result["id"]) == ["a", "2", "c", "4"]
    floats = pd.DataFrame({"id": [1.5, np.nan], "x": [1, 2]})
    result = drumfire.run_all(floats, url, extract={"x": "query.x"})
    assert list(zip(result["id"], result["x"], strict=True)) == [("1.5", "1"), ("2", "2")]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_nan_id_in_parquet_takes_the_row_number(
    demo_server: DemoServer, tmp_path: Path, processes: str
) -> None:
    """The same from a Parquet float column, through the worker processes' pipes too."""
    import numpy as np
    import pandas as pd

    pytest.importorskip("pyarrow")
    source = tmp_path / "in.parquet"
    pd.DataFrame({"id": [1.5, np.nan, 2.5], "x": [1, 2, 3]}).to_parquet(source)
    out = tmp_path / "out.csv"
    proc = cli(
        "run", source, "--url", demo_server.base_url + "/echo?x={x}", "-e", "x=query.x",
        "-p", processes, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sorted((r["id"], r["x"]) for r in read_csv(out)) == [
        ("1.5", "1"), ("2", "2"), ("2.5", "3")
    ]  # fmt: skip


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_pandas_csv_with_its_index_is_read(
    demo_server: DemoServer, tmp_path: Path, processes: str
) -> None:
    # DataFrame.to_csv writes the index by default, under an empty name (",id,lon1"): the run
    # was refused ("the header line has an empty column name"). Such a column cannot be named
    # by a template or --keep; it is read and left out, as pandas reads it ("Unnamed: 0").
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b", "c"], "lon1": [24.9, 24.8, 24.7]})
    source = tmp_path / "pairs.csv"
    frame.to_csv(source)
    assert source.read_text().splitlines()[0] == ",id,lon1"
    out = tmp_path / "out.csv"
    proc = cli(
        "run", source, "--url", demo_server.base_url + "/echo?x={lon1}", "-e", "x=query.x",
        "--keep", "lon1", "-p", processes, "-o", out, "-q",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = sorted(read_csv(out), key=lambda r: r["id"])
    assert [(r["id"], r["status"], r["x"], r["lon1"]) for r in rows] == [
        ("a", "200", "24.9", "24.9"),
        ("b", "200", "24.8", "24.8"),
        ("c", "200", "24.7", "24.7"),
    ]
    # A template naming the unnamed column by position or as {} finds no such column.
    proc = cli("run", source, "--url", demo_server.base_url + "/echo?x={0}", "-o", "-", "-q")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"drumfire: error: --url '{demo_server.base_url}/echo?x={{0}}' uses column '0', "
        "which the input does not have (columns: id, lon1)"
    ]

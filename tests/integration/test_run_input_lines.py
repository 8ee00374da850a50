"""Input rows read whole and named by their line (issue: the input review): a cell of
tens of megabytes, lines ended by a carriage return alone, a pipe whose writer pauses.

Each test runs drumfire against a real server on 127.0.0.1 and checks the rows that came back.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from servers import ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]


def cli(*args: str | Path, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


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

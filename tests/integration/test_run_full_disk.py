"""A full disk, in every output format: found before the first request, or, when it
fills under way, one line and exit 1 with the rows written kept for ``--resume``.

Without root, a file size limit (``RLIMIT_FSIZE``, set in the child before it
starts drumfire) stands for the full disk: writes past it fail with ``EFBIG``
as they fail with ``ENOSPC`` on a full one. As root, a small tmpfs is filled
for the real thing (skipped where mounting is not permitted).
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_errors import one_error_line
from servers import ScriptedServer, respond

from drumfire._outfile import ROOM

FORMATS = ["csv", "jsonl", "parquet", "sqlite"]
#: Runs ``python ARGS...`` with its file size limit set to the first argument.
LIMITED = [
    sys.executable,
    "-c",
    "import os, resource, sys\n"
    "_, hard = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), hard))\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])",
]


def drumfire(*args: str | Path, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "drumfire.cli", *map(str, args)]
    if limit is not None:
        command = [*LIMITED, str(limit), *command[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)


def no_room(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    line = one_error_line(proc, code, *needles)
    assert line.startswith("drumfire: error: cannot write output "), line


def ids_of(path: Path, fmt: str) -> list[str]:
    """The ids of an output's complete rows, in the order written (not a torn last line)."""
    if fmt in ("csv", "jsonl"):
        lines = path.read_text(encoding="utf-8").split("\n")[:-1]
        if fmt == "csv":
            return [row["id"] for row in csv.DictReader(lines)]
        return [json.loads(line)["id"] for line in lines]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parts = sorted(path.glob("part-*.parquet"))
        return [i for part in parts for i in pq.read_table(part)["id"].to_pylist()]
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT id FROM results ORDER BY rowid")]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(lambda *a: respond(200, b"{}")) as srv:
        yield srv


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_room_is_found_before_the_first_request(
    tmp_path: Path, server: ScriptedServer, fmt: str
) -> None:
    # JSON Lines and Parquet write nothing before their first flush: the room
    # is reserved first, so the run stops before sending (it sent every row).
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/{i}") + "\n" for i in range(50)))
    out = tmp_path / f"out.{fmt}"
    proc = drumfire("run", urls, "-o", out, limit=ROOM // 2)
    no_room(proc, 2, repr(str(out)), "File too large")
    assert server.requests == []
    # Nothing of it is left (a CSV kept its header: the next run was refused as
    # "already holds results"); with room, the same command runs.
    if fmt in ("csv", "jsonl"):  # a Parquet directory, a SQLite file: made before it
        assert not out.exists()
    again = drumfire("run", urls, "-o", out, "-q")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv"])
def test_no_room_is_found_before_the_first_request_in_the_api(
    tmp_path: Path, server: ScriptedServer, name: str
) -> None:
    script = (
        "import sys, drumfire\n"
        "try:\n"
        "    drumfire.run_all([{'id': str(i)} for i in range(50)], sys.argv[1], "
        "output=sys.argv[2])\n"
        "except drumfire.UsageError as exc:\n"
        "    sys.exit(f'UsageError: {exc}')\n"
    )
    out = tmp_path / name
    command = [*LIMITED, str(ROOM // 2), "-c", script, server.url("/{id}"), str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)
    assert proc.stderr.strip() == f"UsageError: cannot write output {str(out)!r}: File too large"
    assert server.requests == []
    assert not out.exists()  # nothing left to refuse the next call for


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_disk_that_fills_under_way_keeps_its_rows_for_resume(
    tmp_path: Path, server: ScriptedServer, fmt: str
) -> None:
    # Rows 1-5 are written by a first run; then rows of 100 kB each meet a
    # limit of twice ROOM (room enough at the start): exit 1, one line, the
    # rows written stay, and --resume without the limit completes the output.
    rows = tmp_path / "rows.jsonl"
    with rows.open("w") as f:
        for i in range(1, 21):
            pad = "" if i <= 5 else random.Random(i).randbytes(50_000).hex()
            f.write(json.dumps({"id": str(i), "pad": pad}) + "\n")
    out = tmp_path / f"out.{fmt}"
    args = ["run", rows, "--url", server.url("/{id}"), "--keep", "pad", "-o", out, "-q"]
    assert drumfire(*args, "-n", "5").returncode == 0
    full = drumfire(*args, "--resume", limit=2 * ROOM)
    no_room(full, 1, "File too large" if fmt != "sqlite" else "")
    assert sorted(ids_of(out, fmt)[:5]) == ["1", "2", "3", "4", "5"]
    done = drumfire(*args, "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(ids_of(out, fmt), key=int) == [str(i) for i in range(1, 21)]
    if fmt == "parquet":  # no half part left behind
        assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


# -- a real full disk (root) -------------------------------------------------------------------


# ``full_disk``: tests/conftest.py.


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_is_exit_2_before_anything_is_sent(
    tmp_path: Path, server: ScriptedServer, full_disk: Path, fmt: str
) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/{i}") + "\n" for i in range(50)))
    out = full_disk / f"out.{fmt}"
    proc = drumfire("run", urls, "-o", out)
    no_room(proc, 2, repr(str(out)))
    assert server.requests == []


def test_a_full_disk_is_a_usage_error_in_the_api(server: ScriptedServer, full_disk: Path) -> None:
    import drumfire as api

    rows = [{"id": str(i)} for i in range(50)]
    for fmt in FORMATS:
        with pytest.raises(api.UsageError, match="cannot write output"):
            api.run_all(rows, server.url("/{id}"), output=full_disk / f"out.{fmt}")
    assert server.requests == []


def test_a_full_disk_with_save_body_names_the_output_not_resume(
    tmp_path: Path, server: ScriptedServer, full_disk: Path
) -> None:
    """With --save-body a new output first notes when its batch began, in a file beside
    it; on a full disk that failed with '--resume: cannot write beside …' in a run that
    had no --resume. It is the output's line now, as without --save-body."""
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(server.url(f"/{i}") + "\n" for i in range(5)))
    out = full_disk / "out.csv"
    saving = ["--save-body", "{url}.bin", "--save-dir", tmp_path / "d"]
    proc = drumfire("run", urls, "-o", out, *saving)
    no_room(proc, 2, repr(str(out)))
    assert "--resume" not in proc.stderr
    assert server.requests == []

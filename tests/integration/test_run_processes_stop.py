"""-p N when the run stops early or a worker process dies: every row counted is written.

Real ``drumfire run -p 2`` processes against a scripted server on 127.0.0.1 that
holds chosen requests until the test lets them go; every wait is for an event (a
request reaching the server, a worker stopped or gone), never for a guessed time.
The worker pids are the run's children (``/proc/PID/task/PID/children``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procs import children_of, finish, state, wait_until
from servers import Action, ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]
Headers = dict[str, str]
KILLED = "cancelled: worker process was killed by SIGKILL"


def start(*args: str | Path, session: bool = False) -> subprocess.Popen[str]:
    """``session``: the run leads a process group of its own (its workers in it)."""
    return subprocess.Popen(
        [*CLI, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,
    )


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sent_ids(srv: ScriptedServer, since: int = 0) -> list[int]:
    return [int(r.target[1:]) for r in srv.requests[since:]]


Held = tuple[ScriptedServer, threading.Event, list[Callable[[int, str], bool]]]


@pytest.fixture
def held() -> Iterator[Held]:
    """A server that answers 200, except that the requests ``hold[0](index, target)``
    picks (``index`` counted from 0) wait until the event is set."""
    release = threading.Event()
    hold: list[Callable[[int, str], bool]] = [lambda index, target: False]

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        if hold[0](index, target):
            release.wait(30)  # bounded: a failing test does not hang the suite
        return respond(200, {"n": target[1:]})

    with ScriptedServer(handler) as srv:
        try:
            yield srv, release, hold
        finally:
            release.set()  # the server's threads end


def resume_sends_only_what_is_missing(
    srv: ScriptedServer, source: Path, url: str, out: Path, n: int, extra: list[str], bad: int = 0
) -> None:
    """--resume sends exactly the rows the output lacks or holds as cancelled, once each
    (row ``bad``, not JSON, is never sent)."""
    first = rows(out)
    answered = {int(r["id"]) for r in first if r["id"] and not r["error"].startswith("cancelled")}
    since = len(srv.requests)
    done = subprocess.run(
        [*CLI, "run", str(source), "--url", url, "-p", "2", "-o", str(out), "--resume", "-q",
         *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    every = set(range(1, n + 1)) - {bad}
    assert sorted(sent_ids(srv, since)) == sorted(every - answered)
    final = [int(r["id"]) for r in rows(out) if r["id"]]
    assert sorted(final) == sorted(every)


def write_urls(path: Path, n: int) -> Path:
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(1, n + 1)))
    return path


# -- a stop (Ctrl-C) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordered", "group"), [(False, False), (True, False), (True, True)]
)
def test_a_stopped_run_writes_every_row_it_counts(
    held: Held, tmp_path: Path, ordered: bool, group: bool
) -> None:
    # The worker with row 1 waits for its answer while the other one answers its rows
    # (with --ordered they wait behind row 1); then Ctrl-C (or SIGTERM). Row 1 is
    # cancelled after the 2 s grace; the rows its worker (and the other one) had not
    # started are left out, as rows never read, so that the rows after them in input
    # order are written and the summary counts what the output holds.
    srv, release, hold = held
    hold[0] = lambda index, target: target == "/1"
    n = 2000
    source = write_urls(tmp_path / "in.csv", n)
    out, summary = tmp_path / "out.csv", tmp_path / "s.json"
    url = srv.url("/{id}")
    extra = ["--ordered"] if ordered else []
    proc = start("run", source, "--url", url, "-p", "2", "-c", "2", "-o", out,
                 "--summary-json", summary, *extra, session=group)  # fmt: skip
    wait_until(lambda: len(srv.requests) >= 100, proc)
    if group:  # SIGTERM to the whole process group (systemd, kill -TERM -PGID): the
        os.killpg(proc.pid, signal.SIGTERM)  # workers leave the stop to the parent
    else:
        proc.send_signal(signal.SIGINT)
    stderr = finish(proc)
    release.set()
    assert proc.returncode == (143 if group else 130), stderr
    assert "Traceback" not in stderr
    assert "drumfire: error:" not in stderr  # no worker died
    written = rows(out)
    ids = [int(r["id"]) for r in written]
    assert len(ids) == len(set(ids))
    assert json.loads(summary.read_text())["rows"] == len(written)
    assert set(sent_ids(srv)) <= set(ids)  # every row sent has its row
    assert {r["error"] for r in written} <= {"", "cancelled"}
    assert len(ids) < n  # the stop left rows out
    if ordered:
        assert ids == sorted(ids)
    resume_sends_only_what_is_missing(srv, source, url, out, n, extra)


# -- a worker that dies -----------------------------------------------------------------------


def jsonl_input(path: Path, n: int, bad: int) -> Path:
    """``n`` rows ``{"id": i}``, line ``bad`` not JSON (an ``input:`` error row, id "")."""
    lines = [json.dumps({"id": i}) if i != bad else "not json" for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def check_death_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("drumfire: error:")]
    assert len(errors) == 1, stderr
    assert "worker process" in errors[0]
    assert "killed by SIGKILL" in errors[0]
    assert "--resume" in errors[0]


def check_rows(out: Path, summary: Path, n: int, bad: int, ordered: bool) -> None:
    written = rows(out)
    assert json.loads(summary.read_text())["rows"] == len(written)
    problems = [r for r in written if not r["id"]]
    assert [r["error"].split(":")[:2] for r in problems] == [["input", f" line {bad}"]]
    ids = [int(r["id"]) for r in written if r["id"]]
    # Each row once: the survivor took the rest of the input, the dead worker's rows
    # that had no result are error rows that say why.
    assert sorted(ids) == sorted(set(range(1, n + 1)) - {bad})
    errors = {r["error"] for r in written if r["id"]}
    assert errors == {"", KILLED}
    if ordered:
        assert ids == sorted(ids)


BAD = 300  # the input line that is not JSON


def both_workers_held(
    held: Held, tmp_path: Path, n: int, extra: list[str]
) -> tuple[subprocess.Popen[str], Path, list[int]]:
    """A ``-p 2 -c 2`` run of ``n`` rows once each worker waits on a request (after
    40 answered) with rows not started: the run, its input and its workers' pids."""
    srv, _release, hold = held
    hold[0] = lambda index, target: index >= 40
    source = jsonl_input(tmp_path / "in.jsonl", n, BAD)
    proc = start("run", source, "--url", srv.url("/{id}"), "-p", "2", "-c", "2",
                 "-o", tmp_path / "out.csv", "-q", "--summary-json", tmp_path / "s.json",
                 *extra)  # fmt: skip
    wait_until(lambda: len(srv.requests) >= 42, proc)  # one held request per worker
    workers = children_of(proc.pid)
    assert len(workers) == 2
    return proc, source, workers


@pytest.mark.parametrize("ordered", [False, True])
def test_a_killed_worker_ends_its_rows_and_the_run_says_so(
    held: Held, tmp_path: Path, ordered: bool
) -> None:
    # One worker is killed (the OOM killer's SIGKILL) while both wait on a request and
    # hold rows not started. With --ordered, more rows are left than the reorder
    # window (64 x 8 + 1024): the survivor goes on only once the dead one's rows end.
    srv, release, _hold = held
    n = 4000
    extra = ["--ordered", "--max-concurrency", "8"] if ordered else []
    proc, source, workers = both_workers_held(held, tmp_path, n, extra)
    os.kill(workers[0], signal.SIGKILL)
    release.set()
    stderr = finish(proc)
    assert proc.returncode == 1, stderr
    check_death_line(stderr)
    out = tmp_path / "out.csv"
    check_rows(out, tmp_path / "s.json", n, BAD, ordered)
    resume_sends_only_what_is_missing(srv, source, srv.url("/{id}"), out, n, extra, BAD)


def test_a_worker_that_dies_with_unread_messages_is_no_traceback(
    held: Held, tmp_path: Path
) -> None:
    # A worker frozen (SIGSTOP) while the parent writes to it (the other one takes the
    # rest of the input, then both are sent "no more rows"), then killed: its end of
    # the pipe closes with bytes unread, which the parent reads as a reset.
    _srv, release, _hold = held
    n = 2000
    proc, _source, workers = both_workers_held(held, tmp_path, n, [])
    # The first worker (the lowest pid) is told "no more rows" before the second.
    frozen, other = workers
    os.kill(frozen, signal.SIGSTOP)
    wait_until(lambda: state(frozen) == "T", proc)
    release.set()
    wait_until(lambda: state(other) in ("Z", ""), proc)  # it had its "no more rows"
    os.kill(frozen, signal.SIGKILL)
    stderr = finish(proc)
    assert proc.returncode == 1, stderr
    check_death_line(stderr)
    check_rows(tmp_path / "out.csv", tmp_path / "s.json", n, BAD, ordered=False)

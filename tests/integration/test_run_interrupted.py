"""Interrupted at chosen points, then resumed: every input row has exactly one output row.

Real ``drumfire run`` processes against a scripted server on 127.0.0.1. Each
interruption waits for an event (the k-th request reaching the server, a part
file written, a child process stopped), never for a guessed time; after it,
``--resume`` must leave one row per input row, each with its own answer.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procs import children_of, state, wait_until
from servers import Action, ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]
Headers = dict[str, str]


def output_rows(out: Path, fmt: str) -> list[tuple[str, int | None, str, str | None]]:
    """(id, status, error, the answer's ``n``) of every row of ``out``."""
    if fmt == "csv":
        with out.open(newline="", encoding="utf-8") as f:
            return [
                (r["id"], int(r["status"]) if r["status"] else None, r["error"], r["n"] or None)
                for r in csv.DictReader(f)
            ]
    if fmt == "jsonl":
        found = [json.loads(line) for line in out.read_text().splitlines()]
        return [(r["id"], r["status"], r["error"], r["n"]) for r in found]
    if fmt == "parquet":
        import pyarrow.dataset as ds

        table = ds.dataset(str(out), format="parquet").to_table().to_pylist()
        return [(r["id"], r["status"], r["error"], r["n"]) for r in table]
    with sqlite3.connect(out) as db:
        return list(db.execute("SELECT id, status, error, n FROM results"))


def assert_one_true_row_each(out: Path, fmt: str, n: int) -> None:
    found = output_rows(out, fmt)
    counts = Counter(row[0] for row in found)
    assert sorted(counts, key=int) == [str(i) for i in range(1, n + 1)], "a row is missing"
    assert [i for i, c in counts.items() if c > 1] == [], "a row is written twice"
    wrong = [row for row in found if row[1:] != (200, "", row[0])]
    assert wrong == [], "a row is not its own answer"


# -- a Parquet merge left running by a kill -9 of the run ------------------------------------

# Stops a process that is about to merge Parquet parts before it does anything else:
# the test then holds the merge where a kill -9 can find it, deterministically.
STOP_THE_MERGE = """\
import os, signal
try:
    with open("/proc/self/cmdline", "rb") as f:
        if b"merge_main" in f.read():
            os.kill(os.getpid(), signal.SIGSTOP)
except OSError:
    pass
"""


def merge_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a run whose Parquet merge stops itself as it starts."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOP_THE_MERGE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    return env


def two_parts(out: Path, first: threading.Event) -> Callable[..., Action]:
    """A server handler: rows answer ``{"n": id}``; while ``first`` is set, row 3 waits
    until the rows before it are a part of their own (the merge then has two parts)
    and row 4 fails (503: --retry-failed sends it again)."""

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        n = target[1:]
        if first.is_set() and n == "3":
            wait_until((out / "part-00000.parquet").exists)
        if first.is_set() and n == "4":
            return respond(503, {"n": n})
        return respond(200, {"n": n})

    return handler


def stopped_child(proc: subprocess.Popen[Any], found: list[int]) -> Callable[[], bool]:
    """Whether ``proc`` has a stopped child (its merge, see STOP_THE_MERGE), put in ``found``."""

    def check() -> bool:
        found[:] = [c for c in children_of(proc.pid) if state(c) == "T"]
        return bool(found)

    return check


def test_a_parquet_merge_ends_with_a_killed_run(tmp_path: Path) -> None:
    # A run's last step merges its small Parquet parts in a child process. A kill -9
    # of the run left that child going: it went on beside the --resume that followed,
    # and its merged part took the name of the resume's new part, replacing it: the
    # row the resume sent again (4) was lost.
    source = tmp_path / "in.csv"
    source.write_text("id\n1\n2\n3\n4\n")
    out = tmp_path / "out.parquet"
    first = threading.Event()
    first.set()
    with ScriptedServer(two_parts(out, first)) as srv:
        args = [*CLI, "run", source, "--url", srv.url("/{id}"), "-e", "n=n", "-o", out, "-q"]
        proc = subprocess.Popen([*map(str, args), "--retries", "0"], env=merge_env(tmp_path))
        merger: list[int] = []
        try:
            wait_until(stopped_child(proc, merger), proc)
            proc.kill()
            proc.wait(timeout=60)
            first.clear()
            again = subprocess.run(
                [*map(str, args), "--retry-failed"], capture_output=True, text=True, timeout=120,
                check=False,
            )  # fmt: skip
            assert again.returncode == 0, again.stderr
        finally:
            for pid in merger:  # let the merge go on, as it would have, and wait for its end
                if state(pid):
                    os.kill(pid, signal.SIGCONT)
            wait_until(lambda: all(state(pid) in ("", "Z") for pid in merger))
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
    assert_one_true_row_each(out, "parquet", 4)


def test_ctrl_c_while_the_output_closes_with_processes(tmp_path: Path) -> None:
    # -p 2 put the default Ctrl-C handler back before closing the output: a Ctrl-C
    # during the close (here the Parquet merge; the last flush of any output) was
    # "Aborted!", exit 1, no summary, the close cut short. As with -p 1, the rows
    # are all ended by then: the close goes on and the run ends as it would have.
    source = tmp_path / "in.csv"
    source.write_text("id\n1\n2\n3\n")
    out = tmp_path / "out.parquet"
    first = threading.Event()
    first.set()
    with ScriptedServer(two_parts(out, first)) as srv:
        proc = subprocess.Popen(
            [*CLI, "run", str(source), "--url", srv.url("/{id}"), "-e", "n=n", "-o", str(out),
             "-p", "2"],
            env=merge_env(tmp_path), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        merger: list[int] = []
        try:
            wait_until(stopped_child(proc, merger), proc)
            proc.send_signal(signal.SIGINT)  # the merge is stopped: the run is closing
            os.kill(merger[0], signal.SIGCONT)
            stderr = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Aborted" not in stderr
    assert "ok 3 · failed 0" in stderr
    assert_one_true_row_each(out, "parquet", 3)
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00002.parquet"]  # merged


def test_a_second_ctrl_c_ends_the_rows_in_flight_with_processes(
    tmp_path: Path, timing_claims: bool
) -> None:
    # A first Ctrl-C gives the rows in flight 2 seconds, a second none: -p 2's workers
    # were told once and went on waiting out the grace. The server never answers here,
    # so the row in flight ends as cancelled either way; how soon is a timing claim.
    source = tmp_path / "in.csv"
    source.write_text("id\n1\n2\n3\n")
    out = tmp_path / "out.csv"
    release = threading.Event()

    def handler(index: int, method: str, target: str, headers: Headers, body: bytes) -> Action:
        release.wait(30)  # bounded: a failing test does not hang the suite
        return respond(200, {"n": target[1:]})

    with ScriptedServer(handler) as srv:
        proc = subprocess.Popen(
            [*CLI, "run", str(source), "--url", srv.url("/{id}"), "-e", "n=n", "-o", str(out),
             "-p", "2", "-c", "2"],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until(lambda: len(srv.requests) == 1, proc)  # worker 1's one connection
            # Two signals of one kind sent at once are one (the kernel keeps one pending),
            # and a SIGTERM is a stop as Ctrl-C is: the second of any two ends the grace.
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            stderr = proc.communicate(timeout=60)[1]
            took = time.monotonic() - start
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode in (130, 143), stderr
    assert output_rows(out, "csv") == [("1", None, "cancelled", None)]
    if timing_claims:
        assert took < 1.0  # not the first Ctrl-C's 2 seconds


# -- killed at the k-th request, resumed, perhaps killed again ----------------------------------

N = 60  # rows: enough for rows in flight, written and not yet read at every kill point


class Killer:
    """A server handler that answers ``{"n": id}`` and, in the phase under way, sends the
    run a signal as its ``k``-th request (from 0) comes in; the requests after it are
    answered once the run has ended (a Ctrl-C's rows in flight end cancelled, and a
    fast run cannot finish every row before the signal reaches it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.since = 0  # the server's request count when the phase began
        self.at: tuple[int, signal.Signals] | None = None

    def phase(self, srv: ScriptedServer, at: tuple[int, signal.Signals] | None) -> None:
        with self.lock:
            self.since, self.at, self.proc = len(srv.requests), at, None

    def __call__(self, index: int, method: str, target: str, headers: Headers, body: bytes,
                 ) -> Action:  # fmt: skip
        with self.lock:
            proc, at, since = self.proc, self.at, self.since
        assert proc is not None
        if at is not None and index - since == at[0]:
            proc.send_signal(at[1])
        elif at is not None and index - since > at[0]:
            wait_until(lambda: proc.poll() is not None)
        return respond(200, {"n": target[1:]})


def run_phase(
    srv: ScriptedServer, killer: Killer, args: list[str], at: tuple[int, signal.Signals] | None
) -> tuple[int, str]:
    killer.phase(srv, at)
    with killer.lock:
        proc = killer.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        stderr = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stderr


def case_id(value: object) -> str:
    """``SIGINT@30`` (a stop at that request), ``p2>1`` (the process counts), ``then-none``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "then-none"
    assert isinstance(value, tuple)
    if isinstance(value[1], signal.Signals):
        return f"{value[1].name}@{value[0]}"
    return "p" + ">".join(value)


KILL, INT, TERM = signal.SIGKILL, signal.SIGINT, signal.SIGTERM
EXPECTED = {KILL: -9, INT: 130, TERM: 143}


@pytest.mark.parametrize(
    ("fmt", "first", "then", "processes"),
    [
        ("csv", (0, KILL), None, ("1", "2")),
        ("csv", (30, INT), (5, KILL), ("2", "1", "2")),
        ("csv", (N - 1, TERM), None, ("1", "1")),
        ("jsonl", (N - 1, KILL), (0, INT), ("2", "2", "1")),
        ("jsonl", (30, TERM), None, ("2", "1")),
        ("parquet", (30, KILL), (3, TERM), ("1", "2", "1")),
        ("parquet", (N - 1, INT), None, ("2", "2")),
        ("sqlite", (30, KILL), None, ("2", "1")),
        ("sqlite", (0, TERM), (N // 4, KILL), ("1", "2", "2")),
    ],
    ids=case_id,
)
def test_killed_anywhere_then_resumed_gives_one_true_row_each(
    tmp_path: Path,
    fmt: str,
    first: tuple[int, signal.Signals],
    then: tuple[int, signal.Signals] | None,
    processes: tuple[str, ...],
) -> None:
    # The run is stopped as its k-th request comes in (Ctrl-C and SIGTERM: rows in
    # flight cancelled; kill -9: whatever the last flush had written, perhaps a torn
    # row), resumed with another process count, maybe stopped again in that resume,
    # and resumed once more: each input row ends with one row, its own answer.
    source = tmp_path / "in.csv"
    source.write_text("id\n" + "".join(f"{i}\n" for i in range(1, N + 1)))
    out = tmp_path / f"out.{fmt if fmt != 'sqlite' else 'db'}"
    killer = Killer()
    stops = [first, *([then] if then is not None else []), None]
    with ScriptedServer(killer) as srv:
        for number, (at, procs) in enumerate(zip(stops, processes, strict=True)):
            args = [*CLI, "run", str(source), "--url", srv.url("/{id}"), "-e", "n=n", "-o",
                    str(out), "-c", "4", "-q", "-p", procs]  # fmt: skip
            args += ["--resume"] if number else []
            code, stderr = run_phase(srv, killer, args, at)
            assert code == (0 if at is None else EXPECTED[at[1]]), stderr
    assert_one_true_row_each(out, fmt, N)


def test_ctrl_c_before_the_first_request(tmp_path: Path) -> None:
    # Before the run's own handler (opening the input, a --resume's ids pass and
    # rewrite), Ctrl-C was click's "Aborted!", exit 1. The input is a named pipe that
    # the test opens and leaves empty: the run waits for its first bytes, before any
    # request, however slow the machine.
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        [*CLI, "run", str(fifo), "--url", "http://127.0.0.1:9/{id}", "-o", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with fifo.open("w"):  # returns once the run has opened it
            proc.send_signal(signal.SIGINT)
            stderr = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert stderr == "drumfire: stopped by Ctrl-C before the first request\n"
    assert not out.exists() or out.stat().st_size == 0

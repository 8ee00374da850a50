"""``drumfire run``'s progress bar on a real terminal (a pseudo-terminal), against a
scripted server on 127.0.0.1.

The server answers the first rows at once (some with 500) and holds the others
until the test has seen the bar show them; no test waits for a guessed time.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import Action, ScriptedServer, respond

CLI = [sys.executable, "-m", "drumfire.cli"]

ROWS = 60
ANSWERED = 40  # answered at once; the other 20 wait for the test
FAILING = {7, 14, 21, 28, 35}  # ids answered 500 (not retried: a failed row)


class Gated:
    """The handler: ids up to ANSWERED answer now, the rest once ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def __call__(
        self, index: int, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Action:
        row = int(target.rsplit("/", 1)[1])
        if row > ANSWERED:
            self.gate.wait(timeout=60)  # bounded: released by the test (or its cleanup)
        if row in FAILING:
            return respond(500, {"error": "boom"})
        return respond(200, {"row": row})


def read_until(fd: int, seen: bytearray, wanted: list[bytes], deadline: float) -> bool:
    """Read the terminal into ``seen`` until every ``wanted`` is in it (or the deadline)."""
    while time.monotonic() < deadline:
        if all(w in seen for w in wanted):
            return True
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child's side is closed
                return all(w in seen for w in wanted)
            if not chunk:
                return all(w in seen for w in wanted)
            seen += chunk
    return False


@contextlib.contextmanager
def on_a_terminal(
    args: list[str], gate: threading.Event
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``drumfire ARGS`` with its stderr on a pseudo-terminal 160 columns wide: the
    process and the terminal's reading end. On the way out ``gate`` is set (the held
    requests end) and a run still going is killed."""
    import pty

    master, slave = pty.openpty()
    proc = None
    try:
        env = {**os.environ, "COLUMNS": "160", "LINES": "24"}
        proc = subprocess.Popen(
            [*CLI, *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
        )  # fmt: skip
        os.close(slave)
        slave = -1
        yield proc, master
    finally:
        gate.set()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if slave >= 0:
            os.close(slave)
        os.close(master)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_run_on_a_terminal_shows_a_bar_with_every_figure(tmp_path: Path, processes: str) -> None:
    # With -p 2 the workers tell the parent their requests in flight and their limits.
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n" + "".join(f"{i}\n" for i in range(1, ROWS + 1)))
    out = tmp_path / "out.csv"
    handler = Gated()
    seen = bytearray()
    with ScriptedServer(handler) as server:
        args = ["run", str(rows), "--url", server.url("/item/{id}"), "-c", "40",
                "-p", processes, "-o", str(out)]  # fmt: skip
        with on_a_terminal(args, handler.gate) as (proc, master):
            wanted = [
                "━".encode(),  # the bar
                f"{ANSWERED}/{ROWS} (66.7%)".encode(),  # rows done / total
                b" rows/s",
                b"ETA ",
                f"in flight {ROWS - ANSWERED}/".encode(),  # the held rows, and the limit
                f"failed {len(FAILING)}: http 500 {len(FAILING)}".encode(),
            ]
            found = read_until(master, seen, wanted, time.monotonic() + 60)
            handler.gate.set()
            read_until(master, seen, [b"results: "], time.monotonic() + 60)
            code = proc.wait(timeout=60)
    text = bytes(seen)
    assert found, text[-1500:]
    assert code == 0
    assert len(out.read_text().splitlines()) == ROWS + 1
    # The live display is drawn in place (transient) and the summary follows it.
    assert b"drumfire: 60 rows in" in text
    assert re.search(rb"ETA (estimating|stalled|\d)", text)


def test_off_a_terminal_there_is_no_bar_only_the_summary(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n" + "".join(f"{i}\n" for i in range(1, 21)))
    handler = Gated()
    handler.gate.set()
    with ScriptedServer(handler) as server:
        done = subprocess.run(
            [*CLI, "run", str(rows), "--url", server.url("/item/{id}"), "-o",
             str(tmp_path / "out.csv")],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0
    assert "━".encode() not in done.stderr
    assert b"ETA" not in done.stderr
    assert done.stderr.startswith(b"drumfire: 20 rows in ")


def test_the_total_skips_blank_lines_and_a_stopped_run_says_what_is_left(tmp_path: Path) -> None:
    # Runs of blank lines (and white space alone) are no rows: they were counted in the
    # bar's total (60 rows showed /75). Stopped by Ctrl-C, the summary says how many
    # rows of the input have no result yet, where it said the rows done alone.
    import signal

    rows = tmp_path / "rows.csv"
    lines = "".join(f"{i}\n" + ("\n\n\n" if i % 4 == 0 else "  \n" if i % 5 == 0 else "")
                    for i in range(1, ROWS + 1))  # fmt: skip
    rows.write_text("id\n" + lines)
    out = tmp_path / "out.csv"
    handler = Gated()
    seen = bytearray()
    with ScriptedServer(handler) as server:
        args = ["run", str(rows), "--url", server.url("/item/{id}"), "-c", "10",
                "--retries", "0", "-o", str(out)]  # fmt: skip
        with on_a_terminal(args, handler.gate) as (proc, master):
            shown = f"{ANSWERED}/{ROWS} (".encode()  # the total, without the blank lines
            found = read_until(master, seen, [shown], time.monotonic() + 60)
            proc.send_signal(signal.SIGINT)
            read_until(master, seen, [b"resume with: "], time.monotonic() + 60)
            code = proc.wait(timeout=60)
    text = bytes(seen)
    assert found, text[-1500:]
    assert code == 130
    written = len(out.read_text().splitlines()) - 1
    assert ANSWERED < written < ROWS  # the rows in flight were cancelled, not the rest
    left = ROWS - written
    assert f"(stopped early: {left} rows of {ROWS} not done)".encode() in text, text[-1500:]


@pytest.mark.parametrize("forced", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_a_log_file_gets_no_bar_when_colours_are_forced(tmp_path: Path, forced: str) -> None:
    # FORCE_COLOR (which CI set for colours) or TTY_COMPATIBLE=1 made rich call a log
    # file a terminal: the bar was redrawn into it ten times a second, cursor codes
    # and all. The bar is for a terminal that is one, as with the Python API and bench.
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n" + "".join(f"{i}\n" for i in range(1, 21)))
    handler = Gated()
    handler.gate.set()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTY_")}
    env[forced] = "1"
    with ScriptedServer(handler) as server:
        done = subprocess.run(
            [*CLI, "run", str(rows), "--url", server.url("/item/{id}"), "-o",
             str(tmp_path / "out.csv")],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False, env=env,
        )  # fmt: skip
    assert done.returncode == 0
    assert "━".encode() not in done.stderr
    assert b"\r" not in done.stderr
    assert b"\x1b[2K" not in done.stderr  # no line erased to redraw it
    assert b"\x1b[?25l" not in done.stderr  # nor the cursor hidden
    assert re.sub(rb"\x1b\[[0-9;]*m", b"", done.stderr).startswith(b"drumfire: 20 rows in ")

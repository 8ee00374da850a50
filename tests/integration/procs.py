"""Waiting for a run's processes and reading their state from /proc, for the tests that
stop, kill or freeze a run and its children (shared: each test file had its copy)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[Any] | None = None) -> None:
    """Wait for ``check`` to hold; fail if ``proc`` ends first (a bounded wait, a minute)."""
    for _ in range(3000):  # up to a minute: a bounded wait for the event, not a timing claim
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended first (exit {proc.returncode})")
        time.sleep(0.02)
    raise AssertionError("the awaited event did not come")


def children_of(pid: int) -> list[int]:
    """The process's children, oldest first (pids are handed out in order)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def state(pid: int) -> str:
    """The process's state letter (``T`` stopped, ``Z`` ended, not reaped); "" when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def finish(proc: subprocess.Popen[str]) -> str:
    """The run's stderr once it ends (a minute at most); if it hung, it and its children
    are killed, so no process is left behind."""
    try:
        return proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            for pid in children_of(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.communicate()

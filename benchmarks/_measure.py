"""Process measurement: wall time, CPU and peak RSS of one child process
(``os.wait4`` rusage), and CPU of a process tree from /proc.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_RUN_TIMEOUT_S",
    "RunResult",
    "proc_cpu_seconds",
    "process_tree",
    "run_measured",
    "system_busy_seconds",
]

# Hard ceiling for any single child process (a client run or wrk).
DEFAULT_RUN_TIMEOUT_S = 900.0

_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- process measurement


@dataclasses.dataclass
class RunResult:
    """Outcome and resource use of one child process."""

    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    def check(self) -> RunResult:
        if self.returncode != 0 or self.timed_out:
            what = "timed out" if self.timed_out else f"exited {self.returncode}"
            tail = (self.stderr or self.stdout)[-2000:]
            raise RuntimeError(f"{shlex.join(self.argv)} {what}:\n{tail}")
        return self


_GNU_TIME = "/usr/bin/time"


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
) -> RunResult:
    """Run ``argv`` to completion; wall time includes process start-up.

    CPU comes from ``os.wait4`` and so covers that child (and any grand-children
    it waited for), nothing else running on the machine.  Max RSS comes from GNU
    ``/usr/bin/time -f %M`` wrapped around the command: on Linux a child's
    ``ru_maxrss`` starts at its *parent's* RSS at fork time and survives
    ``execve``, so ``wait4`` would report this (large) harness process instead.
    The wrapper's own CPU (about a millisecond) is included in the CPU figure.
    The whole process group is killed after ``timeout_s``.
    """
    argv = [str(a) for a in argv]
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="drumfire-bench-rss-") as rss_file,
    ):
        wrapped = argv
        if os.access(_GNU_TIME, os.X_OK):
            wrapped = [_GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout_s, _kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C, SIGTERM: never leave the child running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss
        if wrapped is not argv:
            lines = Path(rss_file.name).read_text().split()
            maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
        out.seek(0)
        err.seek(0)
        return RunResult(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_kib=maxrss,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out.is_set(),
        )


def proc_cpu_seconds(pids: Iterable[int]) -> float:
    """user+sys CPU seconds consumed so far by the given live processes (from /proc)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / _CLK_TCK


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (``/proc/stat``; steal included)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    result, todo = [], [pid]
    while todo:
        p = todo.pop()
        result.append(p)
        todo.extend(children.get(p, []))
    return result

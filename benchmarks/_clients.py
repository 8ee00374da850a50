"""The client command lines: drumfire (installed, or from this checkout), the
aiohttp reference client and the pipelined floor.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from _inputs import BENCH_DIR, SRC_DIR
from _measure import run_measured

__all__ = [
    "aiohttp_argv",
    "drumfire_argv",
    "drumfire_available",
    "drumfire_command",
    "pipelined_argv",
    "python_env",
]

# --------------------------------------------------------------------------- client commands


def python_env(extra_pythonpath: Sequence[Path] = ()) -> dict[str, str]:
    """The environment of the Python clients: bytecode cached, as an installed package has it.

    This checkout's ``src`` is compiled first (``drumfire_usable``), but with
    ``PYTHONDONTWRITEBYTECODE`` in the caller's environment (as on the machine of
    docs/benchmarks.md) a checkout compared with ``--base-cmd`` compiled its modules in
    every run (0.2 s for all of drumfire's): without it the preflight run writes the cache.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    parts = [str(p) for p in extra_pythonpath]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def drumfire_command(override: str | None = None) -> list[str]:
    """How to start the drumfire CLI.

    Default: this checkout's ``src`` through the same entry point as the
    ``drumfire`` console script (``drumfire.cli:entry``), so the benchmark always
    measures the working tree, not some older installed copy.
    """
    if override:
        return shlex.split(override)
    return [sys.executable, "-c", "from drumfire.cli import entry; entry()"]


def drumfire_available(cmd: Sequence[str]) -> tuple[bool, str]:
    try:
        run = run_measured([*cmd, "run", "--help"], env=python_env([SRC_DIR]), timeout_s=60)
    except OSError as exc:
        return False, str(exc)
    return run.returncode == 0, (run.stderr or run.stdout).strip()[-500:]


def drumfire_argv(
    cmd: Sequence[str],
    input_csv: Path,
    url_template: str,
    extracts: Sequence[str],
    output_csv: Path,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [*cmd, "run", str(input_csv), "--url", url_template]
    for e in extracts:
        argv += ["-e", e]
    return [*argv, "-o", str(output_csv), "--quiet", *extra]


def aiohttp_argv(
    input_csv: Path, url_template: str, field: str, output_csv: Path, concurrency: int = 8
) -> list[str]:
    return [
        sys.executable,
        str(BENCH_DIR / "aiohttp_client.py"),
        str(input_csv),
        "--url",
        url_template,
        "-c",
        str(concurrency),
        "--field",
        field,
        "-o",
        str(output_csv),
    ]


def pipelined_argv(input_csv: Path, url_template: str, field: str, output_csv: Path) -> list[str]:
    """The floor: ``benchmarks/pipelined_client.py`` with its defaults (4 connections, depth 64)."""
    return [
        sys.executable,
        str(BENCH_DIR / "pipelined_client.py"),
        str(input_csv),
        "--url",
        url_template,
        "--field",
        field,
        "-o",
        str(output_csv),
    ]

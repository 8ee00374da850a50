"""What the integration tests check of a failed command: one error line, naming its cause."""

from __future__ import annotations

import subprocess


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """Assert ``proc`` exited with ``code`` and one ``drumfire: error:`` line holding
    every needle; return that line."""
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("drumfire: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]

"""``drumfire compare`` against a server that is down: every row fails in every strategy,
and the verdict says so instead of naming the fastest at failing as if it were the fastest
client of the server (the rows are still the same: exit status 0, as documented)."""

from __future__ import annotations

import signal
from pathlib import Path

from click.testing import CliRunner
from servers import refused_port

from drumfire.compare.cli import compare_command


def test_every_row_failing_is_said(tmp_path: Path) -> None:
    rows = tmp_path / "in.csv"
    with refused_port() as port:
        rows.write_text(f"id,url\n1,http://127.0.0.1:{port}/a\n2,http://127.0.0.1:{port}/b\n")
        result = CliRunner().invoke(compare_command, [str(rows), "-s", "drumfire", "-q"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "every row failed in every strategy (no usable answer)" in said
    assert "check the server and --url" in said


def test_the_sigterm_handler_is_put_back(tmp_path: Path) -> None:
    """compare's SIGTERM handler (a stop that reports what ran) is for its own run: called
    in-process it stayed installed, and a later SIGTERM became a KeyboardInterrupt."""
    rows = tmp_path / "in.csv"
    rows.write_text("id,url\n1,http://127.0.0.1:9/a\n")
    before = signal.getsignal(signal.SIGTERM)
    for args in ([str(rows), "-s", "nope"], [str(rows), "-s", "drumfire", "-q", "-n", "1"]):
        CliRunner().invoke(compare_command, args)
        assert signal.getsignal(signal.SIGTERM) is before

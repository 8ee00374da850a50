"""Every ``--help`` speaks the user's words: no internal names, no placeholder metavars."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from drumfire.cli import main

COMMANDS = ["run", "bench", "compare", "serve", "demo"]


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_internal_words(command: str) -> None:
    text = _help(*([command] if command else []))
    for word in ("founding", "_engine", "Engine", "_request", "sans-I/O", "strategy table"):
        assert word not in text, (command, word)
    # click's type names are no help: every option that takes a value names what it is
    assert not re.search(r"\b(TEXT|INTEGER|FLOAT)\b", text), (command, text)
    assert "INTEGER RANGE" not in text


def test_every_option_has_a_help_text() -> None:
    for command in COMMANDS:
        cmd = main.get_command(None, command)  # type: ignore[arg-type]
        assert cmd is not None
        for param in cmd.params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            assert getattr(param, "help", None), (command, param.name)


def test_python_dash_m_drumfire_is_the_command() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "drumfire", "run", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "drumfire run [OPTIONS] INPUT" in proc.stdout

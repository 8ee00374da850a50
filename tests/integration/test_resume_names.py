"""A resume's messages name what the caller typed: ``resume=True`` and its keywords from
Python, ``--resume`` or ``--retry-failed`` on the command line.

They are raised before the first request: the URL's port is closed and never dialled.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_errors import one_error_line
from servers import refused_port

import drumfire


@pytest.fixture
def url() -> Iterator[str]:
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}/{{u}}"


def test_the_api_names_resume_true_not_the_option(tmp_path: Path, url: str) -> None:
    foreign = tmp_path / "out.csv"
    foreign.write_text("name,value\na,1\n")
    with pytest.raises(drumfire.UsageError) as info:
        list(drumfire.run([{"u": "a"}], url, output=foreign, resume=True))
    assert str(info.value).startswith(f"resume=True: {str(foreign)!r} does not look like")
    assert "--" not in str(info.value)


def test_the_api_names_the_keywords_whose_columns_differ(tmp_path: Path, url: str) -> None:
    out = tmp_path / "out.csv"
    out.write_text("id,status,error,attempts,elapsed_ms,other\n1,200,,1,3,x\n")
    with pytest.raises(drumfire.UsageError) as info:
        list(drumfire.run([{"u": "a"}], url, output=out, resume=True))
    message = str(info.value)
    assert message.startswith(f"resume=True: the columns of {str(out)!r}"), message
    assert message.endswith("use the same extract= and keep="), message
    assert "\n" not in message


def test_the_command_line_names_the_option_it_was_given(tmp_path: Path, url: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("u\na\n")
    foreign = tmp_path / "out.csv"
    foreign.write_text("name,value\na,1\n")
    for option in ("--resume", "--retry-failed"):
        proc = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url", url,
             "-o", str(foreign), option],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        one_error_line(proc, 2, f"{option}: {str(foreign)!r} does not look like drumfire output")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".sqlite"])
def test_a_resume_without_save_sha256_names_the_save_options(
    tmp_path: Path, url: str, suffix: str
) -> None:
    """The README's downloads, resumed without the first run's --save-sha256: the columns
    differ by ``saved_sha256``, and the message named --extract and --keep, which were the
    same in both runs."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    src = tmp_path / "in.csv"
    src.write_text("u\na\n")
    out = tmp_path / f"out{suffix}"
    saves = tmp_path / "d"
    base = [sys.executable, "-m", "drumfire.cli", "run", str(src), "--url", url, "-q",
            "-o", str(out), "--save-body", "{u}.json", "--save-dir", str(saves)]  # fmt: skip
    subprocess.run([*base, "--save-sha256"], capture_output=True, timeout=60, check=True)
    proc = subprocess.run([*base, "--resume"], capture_output=True, text=True, timeout=60)
    line = one_error_line(proc, 2, "--resume: the columns of ")
    assert line.endswith("use the same --save-body and --save-sha256 options"), line
    with pytest.raises(drumfire.UsageError) as info:
        list(drumfire.run([{"u": "a"}], url, output=out, resume=True, save_body="{u}.json",
                          save_dir=saves))  # fmt: skip
    assert str(info.value).endswith("use the same save_body= and save_sha256="), info.value

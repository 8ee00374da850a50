"""The CLI's defaults are the settings objects' (declared once, in drumfire._settings)."""

from __future__ import annotations

from pathlib import Path

import click

import drumfire
from drumfire import _settings
from drumfire._options import parse_size, size_text
from drumfire._settings import MAX_BODY, Retry, Timeouts
from drumfire.bench import _api as bench_api
from drumfire.bench.cli import bench_command
from drumfire.cli import run_command

SRC = Path(drumfire.__file__).parent


def _defaults(command: click.Command) -> dict[str, object]:
    return {p.name: p.default for p in command.params if p.name is not None}


def test_run_options_default_to_the_job_settings() -> None:
    job = drumfire.Job()
    shown = _defaults(run_command)
    assert shown["max_concurrency"] == job.max_concurrency == _settings.MAX_CONCURRENCY
    assert shown["pipeline"] == job.pipeline == _settings.PIPELINE
    assert shown["retries"] == job.retry.retries == Retry().retries
    assert float(str(shown["max_retry_wait"])) == job.retry.max_retry_after
    assert shown["timeout"] == job.timeouts.total == Timeouts().total
    assert shown["connect_timeout"] == job.timeouts.connect == Timeouts().connect
    assert parse_size(str(shown["max_body"])) == job.max_body == MAX_BODY
    assert parse_size(str(shown["max_header_size"])) == job.max_header_size
    assert shown["max_redirects"] == _settings.MAX_REDIRECTS
    assert drumfire.Job(follow_redirects=0) == job


def test_bench_options_default_to_the_bench_settings() -> None:
    shown = _defaults(bench_command)
    assert shown["timeout"] == bench_api.DEFAULT_TIMEOUT


def test_size_text_reads_back() -> None:
    for size in (1, 1000, 1024, 64 * 1024, MAX_BODY, 3 * 1024**3, 1536):
        assert parse_size(size_text(size)) == size
    assert size_text(MAX_BODY) == "64M"
    assert size_text(64 * 1024) == "64K"


def test_the_body_limit_is_written_once() -> None:
    """64 MiB used to be written in eight places; now only _settings says it.

    (_sources.py sets the csv module's largest field to the same size: another limit.)
    """
    places = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if "64 * 1024 * 1024" in p.read_text(encoding="utf-8")
    ]
    assert sorted(places) == ["_settings.py", "_sources.py"]

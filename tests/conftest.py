from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from drumfire._testing.osrm import OsrmError, OsrmServer, ensure_osrm

# No per-example deadline (200 ms by default) and no "too slow" health check:
# on a loaded machine they fail tests for the machine's speed, not for a bug.
settings.register_profile("drumfire", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("drumfire")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--timing",
        action="store_true",
        help="also check timing claims (throughput, latency bounds): on a quiet machine only",
    )


@pytest.fixture(scope="session")
def timing_claims(request: pytest.FixtureRequest) -> bool:
    """Whether to check timing claims (``pytest --timing``); off by default.

    The default run must pass on any machine, however loaded: tests assert
    behaviour and events, and what only a fast, quiet machine shows (a rate
    within 5 %, an answer within 100 ms) is checked only when asked for.
    """
    return bool(request.config.getoption("--timing"))


@pytest.fixture(scope="session")
def osrm_server() -> Iterator[OsrmServer]:
    """A real osrm-routed (Helsinki, car, CH) on 127.0.0.1, built once per session."""
    error = ""
    try:
        server = OsrmServer(ensure_osrm()).start()
    except OsrmError as exc:
        error = str(exc)
    if error:
        pytest.fail(f"could not build/start the OSRM test server from PyPI wheels: {error}", False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 256 kB filled to the last byte, unmounted after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk]
    try:
        mounted = subprocess.run(mount, capture_output=True, timeout=30, check=False)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"mount not permitted here: {mounted.stderr.decode().strip()}")
    try:
        fd = os.open(disk / "fill", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fd)
        yield disk
    finally:
        done = subprocess.run(["umount", disk], capture_output=True, timeout=30, check=False)
        if done.returncode != 0:  # a file left open on it: a leak
            subprocess.run(["umount", "-l", disk], capture_output=True, timeout=30, check=False)
            pytest.fail(f"the full disk was still in use: {done.stderr.decode().strip()}")

"""Fixtures shared by the ``test_run_*`` integration tests (raw servers live in servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drumfire.demo import DemoServer


@pytest.fixture(scope="module")
def demo_server() -> Iterator[DemoServer]:
    """The demo server with no added latency, shared by a test module."""
    with DemoServer() as server:
        yield server

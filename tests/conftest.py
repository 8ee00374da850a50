from __future__ import annotations

from collections.abc import Iterator

import pytest

from drumfire._testing.osrm import OsrmError, OsrmServer, ensure_osrm


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

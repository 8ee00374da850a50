"""Errors in the Python API: exceptions stop a call before it starts, a failed request is a row.

The choice of issue 18: the exception tree (DrumfireError > UsageError > TemplateError,
InputError) is what a caller can catch; a request that fails never raises, its row says why
with a :class:`drumfire.Reason`.
"""

from __future__ import annotations

import pytest
from servers import ScriptedServer, echo, refused_port

import drumfire
from drumfire import DrumfireError, Reason, TemplateError, UsageError


def test_a_problem_before_the_first_request_raises_one_tree() -> None:
    with pytest.raises(TemplateError, match="nope") as info:
        list(drumfire.run([{"a": "1"}], "http://127.0.0.1:9/{nope}"))
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, DrumfireError)


def test_a_failed_request_is_a_row_with_a_reason() -> None:
    with refused_port() as port, ScriptedServer(echo) as srv:
        rows = [{"id": "down", "url": f"http://127.0.0.1:{port}/"}, {"id": "up", "url": srv.url()}]
        results = {r.id: r for r in drumfire.run(rows, retries=0)}
    assert results["down"].reason == Reason.CONNECT
    assert results["down"].reason == "connect"
    assert isinstance(results["down"].reason, str)
    assert results["up"].reason == ""
    assert results["up"].ok

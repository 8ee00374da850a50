"""Errors in the Python API: exceptions stop a call before it starts, a failed request is a row.

The choice of issue 18: the exception tree (DrumfireError > UsageError > TemplateError,
InputError) is what a caller can catch; a request that fails never raises, its row says why
with a :class:`drumfire.Reason`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ScriptedServer, echo, refused_port

import drumfire
from drumfire import DrumfireError, Reason, TemplateError, UsageError


def test_a_problem_before_the_first_request_raises_one_tree() -> None:
    with pytest.raises(TemplateError, match="nope") as info:
        list(drumfire.run([{"a": "1"}], "http://127.0.0.1:9/{nope}"))
    assert isinstance(info.value, UsageError)
    assert isinstance(info.value, DrumfireError)


def test_rows_that_are_no_rows_are_one_input_error() -> None:
    """``run_all(None, url)`` raised Python's ``TypeError: 'NoneType' object is not
    iterable``, outside the tree; bytes were iterated as ints ("not int")."""
    for rows, what in ((None, "None"), (5, "an int"), (b"a,b", "a bytes")):
        with pytest.raises(drumfire.InputError, match=f"^rows is {what}: give dicts"):
            drumfire.run_all(rows, "http://127.0.0.1:9/", progress=False)


def test_one_dict_as_rows_is_one_input_error() -> None:
    """A dict was iterated: its keys became URL rows ({"a": 1} sent one request to the
    template's URL, {"n": [1, 2]} said the input had no column n, only url)."""
    with ScriptedServer(echo) as srv:
        for rows in ({"a": 1}, {"n": [1, 2]}):
            with pytest.raises(drumfire.InputError, match=r"^rows is one dict: give a list"):
                drumfire.run_all(rows, srv.url("/x"), progress=False)
        assert not srv.requests


def test_a_check_before_the_first_request_names_the_keyword_given() -> None:
    """A Python call names no ``--url`` or ``--keep``: the messages the command line
    shares say ``url=``, ``keep=``... as the resume's and the option checks' do."""
    url = "http://127.0.0.1:9/{a}"
    for call, start in [
        (lambda: drumfire.run([{"b": 1}], url), "url='http://127.0.0.1:9/{a}' uses column 'a'"),
        (lambda: drumfire.run_all([{"a": 1}], url, keep=["z"]), "keep= names column 'z',"),
        (lambda: drumfire.run_all([{"a": 1}], url, id="z"), "id= names column 'z',"),
        (lambda: drumfire.run_all([{"a": 1}], url, extract={"x": "[["}), "bad extract= exp"),
        (lambda: drumfire.run_all([{"a": 1, "error": 2}], url, keep=["error"]),
         "output column 'error' is a column every row has; rename it in the input (keep= "),
    ]:  # fmt: skip
        with pytest.raises(UsageError) as info:
            call()
        assert str(info.value).startswith(start), info.value
        assert "--" not in str(info.value)


    async def first() -> object:
        return await anext(drumfire.arun([{"b": 1}], url))

    with pytest.raises(TemplateError, match=r"^url="):  # arun's too; the class stays
        asyncio.run(first())


def test_a_failed_request_is_a_row_with_a_reason() -> None:
    with refused_port() as port, ScriptedServer(echo) as srv:
        rows = [{"id": "down", "url": f"http://127.0.0.1:{port}/"}, {"id": "up", "url": srv.url()}]
        results = {r.id: r for r in drumfire.run(rows, retries=0)}
    assert results["down"].reason == Reason.CONNECT
    assert results["down"].reason == "connect"
    assert isinstance(results["down"].reason, str)
    assert results["up"].reason == ""
    assert results["up"].ok


def test_output_that_holds_results_needs_resume_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with ScriptedServer(echo) as srv:
        rows = [{"id": "1", "url": srv.url("/a")}]
        first = list(drumfire.run(rows, output=out))
        with pytest.raises(UsageError, match=r"pass resume=True .* or overwrite=True"):
            list(drumfire.run(rows, output=out))
        assert out.read_text(encoding="utf-8").count("\n") == 2  # untouched
        again = list(drumfire.run([{"id": "2", "url": srv.url("/b")}], output=out, overwrite=True))
    assert [r.id for r in first] == ["1"]
    assert [r.id for r in again] == ["2"]
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("2,200,")
    with pytest.raises(UsageError, match="overwrite=True drops them"):
        list(drumfire.run(rows, output=out, overwrite=True, resume=True))
    with pytest.raises(UsageError, match="needs output="):
        list(drumfire.run(rows, overwrite=True))


def test_a_key_without_its_certificate_is_one_usage_error(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("not used", encoding="utf-8")
    # The Python call is told in its own words (it used to read '--key needs --cert').
    with pytest.raises(UsageError, match=r"^cert=\(None, '.*client.key'\): a key needs its"):
        drumfire.make_job("https://127.0.0.1:9/", cert=(None, str(key)))
    rows = tmp_path / "rows.csv"
    rows.write_text("id\n1\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "drumfire.cli", "run", str(rows), "--url", "https://127.0.0.1:9/",
         "--key", str(key)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "drumfire: error: --key needs --cert (the client certificate it belongs to)\n"
    )


def test_a_bad_argument_is_one_usage_error_before_any_request() -> None:
    # It used to reach the connection: a TypeError there, every row 'reset' after 4 attempts.
    with ScriptedServer(echo) as srv:
        for kwargs, start in [
            ({"max_body": "lots"}, "max_body='lots': "),
            ({"max_body": -1}, "max_body=-1: "),
            ({"timeout": "5"}, "timeout='5': "),
            ({"concurrency": "8"}, "concurrency='8': "),
            # not a function: every row ended with "parse: TypeError: 'int' object ..."
            ({"parse": 5}, "parse=5: give a function"),
        ]:
            with pytest.raises(UsageError, match=f"^{start}"):
                drumfire.run_all([{"id": "1"}], srv.url("/x"), progress=False, **kwargs)
        results = drumfire.run_all(
            [{"id": "1"}], srv.url("/x"), max_body="1K", rate="100/s", progress=False
        )
        assert srv.requests  # the CLI's size and rate syntax, accepted
    assert [(r["status"], r["error"]) for r in results] == [(200, "")]


def test_an_internal_error_in_a_connection_is_not_a_reset_to_retry() -> None:
    """A bug inside the transport (here a Job given a str max_body past its checks, which
    Job and make_job refuse) ends its row once, as protocol, the summary naming the error;
    it used to be a reset, retried four times, as if the network had failed."""
    import asyncio

    from drumfire._sources import rows_source

    job = drumfire.make_job("{url}", concurrency=1)
    object.__setattr__(job, "max_body", "100")  # a bug's stand-in: no check would let it by
    with ScriptedServer(echo) as srv:
        source = rows_source([{"id": "1", "url": srv.url("/x")}])
        results: list[drumfire.Result] = []
        engine = job.engine(source, results.append)
        stats = asyncio.run(asyncio.wait_for(engine.run(source.items), 30))
        assert len(srv.requests) == 1
    assert [(r.reason, r.attempts) for r in results] == [(Reason.PROTOCOL, 1)]
    assert stats.examples["protocol"].startswith("internal error: TypeError: ")


def test_an_exception_in_the_engines_own_answer_handling_ends_the_run_with_it() -> None:
    """A bug in what the engine does with answers (here its on_responses made to raise
    at the 5th read) ends the run with that error, as a broken sink does. Raised inside
    the connection's data_received, asyncio only logged it and closed the connection:
    the rows being settled never got a result and the run waited for them for ever."""
    import asyncio
    from typing import Any

    from drumfire._sources import rows_source

    job = drumfire.make_job("{url}", concurrency=4)
    with ScriptedServer(echo) as srv:
        source = rows_source([{"id": str(i), "url": srv.url(f"/{i}")} for i in range(50)])
        results: list[drumfire.Result] = []
        engine = job.engine(source, results.append)
        handle = engine.on_responses
        calls = []

        def broken(conn: Any, answered: Any) -> None:
            calls.append(answered)
            if len(calls) == 5:
                raise RuntimeError("a bug in the engine")
            handle(conn, answered)

        engine.on_responses = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match=r"^a bug in the engine$"):
            asyncio.run(asyncio.wait_for(engine.run(source.items), 30))
    assert len(results) < 50

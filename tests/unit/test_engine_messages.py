"""The drivers' messages: each type survives its encoding, and the bytes stay compact."""

from __future__ import annotations

import pickle

from drumfire import Result
from drumfire._messages import (
    Done,
    End,
    PreparedChunk,
    ResultBatch,
    RowChunk,
    Status,
    Stop,
    from_parent,
    from_worker,
)


def test_to_worker_round_trip() -> None:
    chunk = RowChunk([[0, 1, {"a": "x"}, None], [1, 2, None, "bad quote"]], [(1, 2)])
    for message in (chunk, End(), Stop(), Stop(unreachable=True), Stop(now=True)):
        assert from_parent(message.encode()) == message
        assert type(from_parent(message.encode())) is type(message)
    assert End().encode() == b"END"  # controls are short words, rows a JSON array
    assert chunk.encode().startswith(b"[[[0,1,")  # the rows, then where they start


def test_to_parent_round_trip() -> None:
    result = Result("a", 200, 1.5, 1, "", {"n": 1}, None)
    batch = ResultBatch([[7, *result]])
    decoded = from_worker(batch.encode())
    assert type(decoded) is ResultBatch
    assert list(decoded.results()) == [(7, result)]
    status = Status({"timeout": "no answer"}, None)
    assert from_worker(status.encode()) == status
    assert from_worker(Done().encode()) == Done()


def test_prepared_chunk_pickles() -> None:
    chunk = PreparedChunk([("1", ("GET",), None), None], 2, "")
    assert pickle.loads(pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)) == chunk


def test_load_round_trip() -> None:
    from drumfire._messages import Load

    decoded = from_worker(Load(12, 64).encode())
    assert type(decoded) is Load
    assert decoded == Load(12, 64)
    held = Load(0, 8, 700, 3, (("a.example", 29.5, "Retry-After"), ("b.example", 3.0, "quota")))
    assert from_worker(held.encode()) == held

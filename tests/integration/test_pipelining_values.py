"""Pipelined requests carry exactly the bytes of unpipelined ones, whatever the values.

The same CSV input (values full of ``& # + % / ? " \\ ' ;``, spaces, unicode, line
breaks inside quoted cells, empty cells, '.' and '..', 3,000-character values,
repeated ids, short rows) is sent three times to a scripted server on 127.0.0.1
that records every request head: with pipelining off, with the client case forced
(the engine believes its thread uses a whole core, so the read-ahead child reads
the rest of the input and builds the requests), and with the machine case forced
(a saturated machine and a busy local server, read through injected readers). The
heads the server read, and the rows written, must be the same in all three.
"""

from __future__ import annotations

import asyncio
import csv
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import Action, ScriptedServer, respond

from drumfire import Result
from drumfire._job import make_job
from drumfire._readahead import Starter, available
from drumfire._result import Stats
from drumfire._sources import open_source

N = 2000
PIECES = ["&", "#", "+", "%", "/", "?", '"', "\\", "'", ";", " ", "é", "日本", "😀", "e\u0301",
          "a\nb", "c\r\nd", "", "%41", "%zz", "x=y", "{v}", "\t", ",", "~-_."]  # fmt: skip


def messy(rng: random.Random, i: int) -> str:
    special = {0: "", 1: ".", 2: "..", 3: "L" * 3000 + rng.choice(PIECES), 4: f"plain{i}"}
    if i % 50 in special:
        return special[i % 50]
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8))) + str(i)


def write_input(path: Path) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["id", "v", "w"])
        for i in range(N):
            row = [f"r{i}" if i % 97 else f"r{i - 1}", messy(rng, i), messy(rng, i + 17)]
            out.writerow(row[:2] if i % 211 == 5 else row)  # a short row: an input error


def echo_target(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                ) -> Action:  # fmt: skip
    return respond(200, {"t": target, "xv": headers.get("x-v", "")})


def saturated() -> tuple[float, float]:
    """Two cores, both busy all the time."""
    t = time.perf_counter()
    return 2 * t, 2 * t


def run_mode(
    mode: str, path: Path, server: ScriptedServer, url: str, **kwargs: Any
) -> tuple[Counter[bytes], list[tuple[Any, ...]], Stats, list[str]]:
    """One run in ``mode`` ("off", "client" or "machine"): the heads read, the rows, the
    figures, and why pipelining was on at each sweep."""
    first = len(server.requests)
    job = make_job(server.url(url), extract={"t": "t", "xv": "xv"}, timeout=10.0, **kwargs)
    source = open_source(str(path))
    results: list[Result] = []
    why: list[str] = []
    starter = Starter() if mode == "client" else None
    cpu: Callable[[], float] = time.perf_counter if mode == "client" else (lambda: 0.0)
    engine = job.engine(
        source,
        results.append,
        cpu_clock=cpu,
        machine_cpu=saturated if mode == "machine" else None,
        tick_interval=0.005,
        on_cpu_bound=starter,
        on_tick=lambda _: why.append(engine.pipelining_policy.why),
    )
    engine.CPU_TICKS = 1
    engine.CPU_SPAN = 0.004
    policy = engine.pipelining_policy
    if mode == "off":
        policy.depth = 1
    elif mode == "machine":
        policy.MACHINE_TICKS = 1
        policy.GUARD_RATIO = 0.0  # a thread-served test server's rate says nothing here
        policy.server = lambda port: lambda: 1.7 * time.perf_counter()
    try:
        stats = asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 120))
    finally:
        source.close()
        if starter is not None:
            starter.close()
    if mode == "client":
        assert starter is not None
        assert starter.reader is not None
    heads = Counter(r.head for r in server.requests[first:])
    rows = sorted(
        ((r.id, r.status, r.attempts, r.error, sorted((r.fields or {}).items())) for r in results),
        key=repr,  # (a status may be None)
    )
    return heads, rows, stats, why


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/p/{v}/{w}?q={w}&r={v}#frag", None),  # two columns, path and query
        ("/p/{v}", ["X-V: {w}"]),  # a templated header: the general preparer
    ],
    ids=["path-query", "header"],
)
@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "client",
            marks=pytest.mark.skipif(not available(), reason="read-ahead needs Linux, 2+ CPUs"),
        ),
        "machine",
    ],
)
def test_pipelined_requests_are_the_unpipelined_bytes(
    tmp_path: Path, mode: str, url: str, headers: list[str] | None
) -> None:
    path = tmp_path / "in.csv"
    write_input(path)
    with ScriptedServer(echo_target) as server:
        plain_heads, plain_rows, plain_stats, plain_why = run_mode(
            "off", path, server, url, headers=headers
        )
        heads, rows, stats, why = run_mode(mode, path, server, url, headers=headers)
    assert set(plain_why) == {""}
    assert plain_stats.pipelined == 0
    assert mode in why
    assert stats.pipelined > 0
    assert len(rows) == N  # one row per input row: answers, template and input errors
    errors = Counter(row[3].split(":", 1)[0] for row in plain_rows if row[3])
    assert errors["template"] > 0
    assert errors["input"] > 0
    assert sum(plain_heads.values()) == sum(r[1] == 200 for r in plain_rows)
    assert heads == plain_heads  # byte for byte, each request once
    assert rows == plain_rows


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(
            "client",
            marks=pytest.mark.skipif(not available(), reason="read-ahead needs Linux, 2+ CPUs"),
        ),
        "machine",
    ],
)
def test_throttled_rows_while_pipelining_count_what_the_server_answered(
    tmp_path: Path, mode: str
) -> None:
    # One row in 20 gets a 429 (Retry-After: 0) on its first attempt, one in 31 a 503
    # on its first two, while requests are queued behind them: every row ends once,
    # 200, with as many attempts as the server gave it answers.
    path = tmp_path / "in.csv"
    path.write_text("id,n\n" + "".join(f"u{i},{i}\n" for i in range(N)), encoding="utf-8")
    answers: Counter[str] = Counter()

    def throttling(index: int, method: str, target: str, headers: dict[str, str], body: bytes
                   ) -> Action:  # fmt: skip
        n = target.rsplit("/", 1)[1]
        answers[n] += 1  # (one thread per connection; Counter updates suffice here)
        if answers[n] == 1 and int(n) % 20 == 3:
            return respond(429, "slow down", [("Retry-After", "0")])
        if answers[n] <= 2 and int(n) % 31 == 5:
            return respond(503, "busy")
        return respond(200, {"t": target, "xv": ""})

    with ScriptedServer(throttling) as server:
        _, rows, stats, why = run_mode(mode, path, server, "/p/{n}")
    assert mode in why
    assert stats.pipelined > 0
    assert [row[0] for row in rows] == sorted(f"u{i}" for i in range(N))  # each row once
    for rid, status, attempts, error, fields in rows:
        assert (status, error, dict(fields)["t"]) == (200, "", f"/p/{rid[1:]}")
        assert attempts == answers[rid[1:]], rid
    assert stats.requests == sum(answers.values())

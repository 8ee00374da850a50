"""Settings value objects, result rows, running statistics and the progress display."""

from __future__ import annotations

import dataclasses
import io
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from drumfire._progress import (
    Progress,
    format_duration,
    format_rate,
    format_summary,
    format_wall,
    held_text,
)
from drumfire._result import Result, Stats
from drumfire._settings import IDEMPOTENT_METHODS, METHODS, Retry, Timeouts


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- Retry / Timeouts ------------------------------------------------------------------


@pytest.mark.parametrize("value", [Retry(), Timeouts(), Retry(retries=0, unsafe=True)])
def test_settings_are_frozen(value: object) -> None:
    field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, 1)


def test_settings_equality_and_hash() -> None:
    assert Retry() == Retry()
    assert Retry(retries=5) != Retry()
    assert hash(Retry(statuses=frozenset({500}))) == hash(Retry(statuses=frozenset({500})))
    assert Timeouts(1, 2) == Timeouts(connect=1, total=2)
    assert Timeouts() != Timeouts(total=5)
    assert len({Timeouts(), Timeouts()}) == 1


@pytest.mark.parametrize(
    "value", [Retry(), Retry(retries=0, backoff=1, statuses=frozenset({500})), Timeouts(1.5, 9)]
)
def test_settings_pickle(value: object) -> None:
    assert pickle.loads(pickle.dumps(value)) == value


def test_settings_repr() -> None:
    assert repr(Timeouts()) == "Timeouts(connect=10.0, total=30.0)"
    assert repr(Retry(statuses=frozenset({503}))) == (
        "Retry(retries=3, backoff=0.1, max_backoff=10.0, statuses=frozenset({503}), "
        "unsafe=False, max_retry_after=60.0, budget=0.2, budget_floor=10.0)"
    )


def test_retry_defaults() -> None:
    r = Retry()
    assert r.retries == 3
    assert r.statuses == frozenset({429, 502, 503, 504})
    assert not r.unsafe


def test_methods() -> None:
    assert IDEMPOTENT_METHODS < METHODS
    assert "POST" not in IDEMPOTENT_METHODS
    assert "PATCH" not in IDEMPOTENT_METHODS


@pytest.mark.parametrize("attempt", range(0, 12))
def test_retry_delay_bounds(attempt: int) -> None:
    r = Retry(backoff=0.5, max_backoff=4.0)
    cap = min(4.0, 0.5 * 2 ** max(attempt - 1, 0))
    rng = random.Random(attempt)
    delays = [r.delay(attempt, rng=rng) for _ in range(200)]
    assert all(0 <= d <= cap for d in delays)
    # full jitter: spread over the range, not pinned at the cap
    assert min(delays) < cap / 4
    assert max(delays) > cap * 3 / 4


def test_retry_delay_is_reproducible_with_a_seeded_rng() -> None:
    r = Retry()
    a = [r.delay(n, rng=random.Random(7)) for n in range(1, 6)]
    b = [r.delay(n, rng=random.Random(7)) for n in range(1, 6)]
    assert a == b


def test_retry_delay_doubles_its_cap() -> None:
    r = Retry(backoff=1.0, max_backoff=100.0)

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [r.delay(n, rng=Top()) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 100]


@given(
    attempt=st.integers(0, 60),
    retry_after=st.none() | st.floats(0, 1e6),
    seed=st.integers(0, 2**32),
)
def test_retry_delay_properties(attempt: int, retry_after: float | None, seed: int) -> None:
    r = Retry(backoff=0.2, max_backoff=5.0, max_retry_after=60.0)
    d = r.delay(attempt, retry_after, rng=random.Random(seed))
    assert 0 <= d <= max(5.0, 60.0)
    if retry_after is not None:
        assert d >= min(retry_after, 60.0)
        assert d <= max(5.0, min(retry_after, 60.0))
    else:
        assert d <= 5.0


def test_retry_after_is_honoured_and_capped() -> None:
    rng = random.Random(0)
    r = Retry(backoff=0.1, max_backoff=1.0, max_retry_after=30.0)
    assert r.delay(1, retry_after=7.0, rng=rng) == 7.0
    assert r.delay(1, retry_after=500.0, rng=rng) == 30.0
    # a Retry-After shorter than the backoff does not shorten it below the jitter draw
    assert 0 <= r.delay(5, retry_after=0.0, rng=rng) <= 1.0


# -- Result ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "ok", "reason"),
    [
        (Result("1", 200, 1.0, 1, ""), True, ""),
        (Result("1", 204, 1.0, 1, ""), True, ""),
        (Result("1", 299, 1.0, 1, ""), True, ""),
        (Result("1", 301, 1.0, 1, ""), False, "http 301"),
        (Result("1", 404, 1.0, 1, ""), False, "http 404"),
        (Result("1", 503, 1.0, 4, ""), False, "http 503"),
        (Result("1", 199, 1.0, 1, ""), False, "http 199"),
        (Result("1", 200, 1.0, 1, "json"), False, "json"),
        (Result("1", 200, 1.0, 1, "parse: ValueError: bad"), False, "parse"),
        (Result("1", None, 1.0, 3, "timeout"), False, "timeout"),
        (Result("1", None, 0.0, 0, "input: line 3: not JSON"), False, "input"),
        (Result("1", None, 1.0, 1, ""), False, ""),
    ],
)
def test_result_ok_and_reason(result: Result, ok: bool, reason: str) -> None:
    assert result.ok is ok
    assert result.reason == reason


def test_result_as_dict() -> None:
    r = Result("7", 200, 2.5, 1, "", {"d": 1.5, "c": "Ok"}, {"lon": "24"})
    d = r.as_dict()
    assert d == {
        "id": "7",
        "status": 200,
        "elapsed_ms": 2.5,
        "attempts": 1,
        "error": "",
        "d": 1.5,
        "c": "Ok",
        "lon": "24",
    }
    assert list(d) == ["id", "status", "elapsed_ms", "attempts", "error", "d", "c", "lon"]
    assert Result("8", None, 0.0, 0, "connect").as_dict() == {
        "id": "8",
        "status": None,
        "elapsed_ms": 0.0,
        "attempts": 0,
        "error": "connect",
    }


def test_result_is_a_tuple_and_pickles() -> None:
    r = Result("1", 200, 1.0, 1, "", {"a": 1})
    assert r.kept is None
    assert pickle.loads(pickle.dumps(r)) == r


# -- Stats -----------------------------------------------------------------------------


def make_stats() -> tuple[FakeClock, Stats]:
    clock = FakeClock(1000.0)
    stats = Stats(clock, total=20)
    for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
        stats.add(Result("ok", 200, ms, 1, ""))
    stats.add(Result("a", 503, 5.0, 4, ""))
    stats.add(Result("b", 404, 6.0, 1, ""))
    stats.add(Result("c", None, 30000.0, 4, "timeout"))
    stats.add(Result("d", None, 8.0, 1, "timeout"))
    stats.add(Result("e", None, 0.0, 0, "input: line 2: not JSON"))
    stats.add(Result("f", 200, 7.0, 1, "json"))
    clock.t = 1004.0
    return clock, stats


def test_stats_counting() -> None:
    _, stats = make_stats()
    assert stats.done == 11
    assert stats.ok == 5
    assert stats.failed == 6
    assert stats.requests == 5 + 4 + 1 + 4 + 1 + 0 + 1
    assert stats.statuses == {200: 6, 503: 1, 404: 1}
    assert stats.reasons == {"http 503": 1, "http 404": 1, "timeout": 2, "input": 1, "json": 1}
    # rows with no attempt (input problems) are not in the latency histogram
    assert stats.latency.get_total_count() == 10


def test_stats_summary() -> None:
    clock, stats = make_stats()
    s = stats.summary()
    assert set(s) >= {
        "rows",
        "ok",
        "failed",
        "requests",
        "failures",
        "status",
        "wall_s",
        "rows_per_s",
        "latency_ms",
        "stopped",
        "skipped",
        "duplicate_ids",
    }
    assert (s["rows"], s["ok"], s["failed"], s["requests"]) == (11, 5, 6, 16)
    assert s["failures"] == {"timeout": 2, "http 503": 1, "http 404": 1, "input": 1, "json": 1}
    assert next(iter(s["failures"])) == "timeout"  # most common first
    assert s["status"] == {"200": 6, "404": 1, "503": 1}
    assert list(s["status"]) == ["200", "404", "503"]
    assert s["wall_s"] == 4.0
    assert s["rows_per_s"] == 2.8
    assert s["stopped"] is False
    assert s["skipped"] == 0
    assert s["duplicate_ids"] == 0
    lat = s["latency_ms"]
    assert set(lat) == {"p50", "p90", "p99", "max"}
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] == pytest.approx(5.0, rel=0.01)
    assert lat["max"] == pytest.approx(30000.0, rel=0.001)
    # the wall clock keeps running until the run finishes
    clock.t = 1010.0
    assert stats.summary()["wall_s"] == 10.0
    stats.finished = 1005.0
    clock.t = 2000.0
    assert stats.summary()["wall_s"] == 5.0
    assert stats.rate == pytest.approx(11 / 5)


def test_stats_empty() -> None:
    clock = FakeClock()
    stats = Stats(clock)
    s = stats.summary()
    assert s["rows"] == 0
    assert s["latency_ms"] == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    assert stats.rate == 0.0
    assert stats.wall > 0  # never a division by zero


@settings(max_examples=25, deadline=None)  # each Stats allocates a big histogram
@given(st.lists(st.floats(0.001, 3_000_000.0), min_size=1, max_size=50))
def test_percentiles_are_ordered(latencies: list[float]) -> None:
    stats = Stats(FakeClock())
    for ms in latencies:
        stats.add(Result("x", 200, ms, 1, ""))
    p = [stats.percentile_ms(q) for q in (0, 50, 90, 99, 100)]
    assert p == sorted(p)
    assert p[-1] == pytest.approx(max(latencies), rel=0.002, abs=0.002)



@pytest.mark.parametrize("latencies", [[206.644], [205.216, 205.274], [1.5] * 3 + [123456.789] * 9])
def test_max_is_the_longest_row_and_no_percentile_is_above_it(latencies: list[float]) -> None:
    # The histogram gives its bucket's top (206.719 for one row of 206.644 ms): the
    # summary said a max, and for one row a p50, that no row of the output had.
    results = [Result(str(i), 200, ms, 1, "") for i, ms in enumerate(latencies)]
    one, many = Stats(FakeClock()), Stats(FakeClock())
    for result in results:
        one.add(result)
    many.add_all(results)  # the path without a Python loop (8 rows or more) too
    for stats in (one, many):
        lat = stats.summary()["latency_ms"]
        assert lat["max"] == max(latencies)
        assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        if len(latencies) == 1:
            assert lat["p50"] == lat["p99"] == latencies[0]
        assert lat["p50"] == pytest.approx(sorted(latencies)[(len(latencies) - 1) // 2], rel=1e-3)

@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([200, 200, 200, 201, 204, 400, 404, 503, None]),
            st.sampled_from(["", "", "", "timeout", "json", "input: line 3: bad"]),
            st.integers(0, 4),
            st.floats(0.0, 100_000.0),
        ),
        max_size=40,
    )
)
def test_add_all_counts_as_add_does(rows: list[tuple[int | None, str, int, float]]) -> None:
    # add_all takes the usual row (200, no error) by a shorter path: same figures.
    results = [Result(str(i), s, ms, a, e) for i, (s, e, a, ms) in enumerate(rows)]
    one, many = Stats(FakeClock()), Stats(FakeClock())
    for result in results:
        one.add(result)
    many.add_all(results[:7])
    many.add_all(results[7:])
    assert many.summary() == one.summary()
    assert many.statuses == one.statuses
    assert [many.percentile_ms(q) for q in (50, 99, 100)] == [
        one.percentile_ms(q) for q in (50, 99, 100)
    ]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([200, 200, 201, 204, 400, 404, 503]), st.integers(1, 3)),
        max_size=40,
    )
)
def test_add_all_counts_answers_of_any_status_as_add_does(rows: list[tuple[int, int]]) -> None:
    # Answered rows without an error, whatever their status (osrm-routed answers 200
    # or 400 NoRoute): add_all counts them together, with the figures add gives; a
    # few (one read's worth) in a loop, more without one.
    results = [Result(str(i), s, 1.5 * i, a, "") for i, (s, a) in enumerate(rows)]
    one, many = Stats(FakeClock()), Stats(FakeClock())
    for result in results:
        one.add(result)
    many.add_all(results[:3])
    many.add_all(results[3:])
    assert many.summary() == one.summary()
    assert (many.statuses, many.reasons, many.ok) == (one.statuses, one.reasons, one.ok)
    assert [many.percentile_ms(q) for q in (50, 99, 100)] == [
        one.percentile_ms(q) for q in (50, 99, 100)
    ]


# -- format_summary ----------------------------------------------------------------------


def test_format_summary() -> None:
    _, stats = make_stats()
    text = format_summary(stats, "out.csv")
    lines = text.splitlines()
    assert lines[0] == "drumfire: 11 rows in 4.00 s — 2.8 rows/s"
    assert "ok 5 · failed 6" in lines[1]
    assert "timeout: 2" in lines[1]
    assert "http 503: 1" in lines[1]
    assert "requests sent 16" in lines[1]
    assert lines[2].startswith("  latency p50 5.0 ms · p90 ")
    assert "max 30000.0 ms" in lines[2] or "max 30015." in lines[2]
    assert lines[3] == "  results: out.csv"
    assert len(lines) == 4


def test_format_summary_without_a_request_has_no_latency_line() -> None:
    """A --resume with nothing left once printed 'latency p50 0.0 ms · p90 0.0 ms ...'."""
    clock = FakeClock(0.0)
    stats = Stats(clock)
    stats.skipped = 300
    clock.t = 0.05
    assert format_summary(stats, "out.csv").splitlines() == [
        "drumfire: 0 rows in 50 ms — 0 rows/s",
        "  ok 0 · failed 0 · requests sent 0",
        "  resumed: 300 rows were already in the output",
        "  results: out.csv",
    ]
    # Rows but no request either: files that could not be read, say.
    stats.add(Result("a", None, 0.0, 0, "file: a.jpg: No such file or directory"))
    assert not any("latency" in line for line in format_summary(stats).splitlines())


def test_format_summary_resume_and_duplicates() -> None:
    _, stats = make_stats()
    stats.skipped = 1500
    stats.duplicates = 3
    lines = format_summary(stats).splitlines()
    assert "  resumed: 1,500 rows were already in the output" in lines
    assert "  warning: 3 rows repeat an id seen earlier in the input" in lines
    # What it means, and where an unexpected one comes from (an empty id cell takes the
    # row's number, which may be another row's id), and what --resume does about it.
    at = lines.index("  warning: 3 rows repeat an id seen earlier in the input")
    assert lines[at + 1] == (
        "    rows that share an id cannot be told apart in the output; --resume sends all "
        "the rows of such an id again unless the output has all (an input read twice: a "
        "file, not stdin; an empty id is its row's number): give each row its own id (--id)"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "under 1 ms"),
        (0.0004, "under 1 ms"),
        (0.007, "7 ms"),
        (0.0123, "12 ms"),
        (0.9994, "999 ms"),
        (0.9996, "1.00 s"),
        (4.0, "4.00 s"),
        (125.456, "125.46 s"),
    ],
)
def test_format_wall(seconds: float, text: str) -> None:
    assert format_wall(seconds) == text


def test_format_summary_of_a_short_run_shows_milliseconds() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    for _ in range(8):
        stats.add(Result("x", 200, 1.0, 1, ""))
    clock.t = 0.002
    assert format_summary(stats).splitlines()[0] == "drumfire: 8 rows in 2 ms — 4,000 rows/s"


def test_format_summary_counts_of_one_are_singular() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    stats.add(Result("x", 200, 1.0, 1, ""))
    stats.skipped = stats.duplicates = stats.pipelined = 1
    clock.t = 2.0
    lines = format_summary(stats).splitlines()
    assert lines[0].startswith("drumfire: 1 row in ")
    assert "  resumed: 1 row was already in the output" in lines
    assert "  warning: 1 row repeats an id seen earlier in the input" in lines
    assert any(line.startswith("  pipelined: 1 request went behind") for line in lines)


def test_format_summary_big_numbers_and_stopped() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    for _ in range(12345):
        stats.add(Result("x", 200, 1.0, 1, ""))
    stats.stopped = True
    clock.t = 2.0
    text = format_summary(stats)
    assert text.splitlines()[0] == (
        "drumfire: 12,345 rows in 2.00 s — 6,172 rows/s (stopped early)"
    )
    assert "ok 12,345 · failed 0 · requests sent 12,345" in text
    assert "results:" not in text
    assert "(" not in text.splitlines()[1]


def test_a_stopped_run_says_how_many_rows_are_not_done() -> None:
    # It said "(stopped early)" and the rows done: not what was left of the input.
    clock = FakeClock(0.0)
    stats = Stats(clock, total=3000)
    stats.skipped = 400  # --resume: already in the output
    for _ in range(600):
        stats.add(Result("x", 200, 1.0, 1, ""))
    clock.t = 2.0
    assert stats.summary()["not_done"] == 0  # not stopped: every row has its result
    stats.stopped = True
    assert stats.summary()["not_done"] == 2000
    assert format_summary(stats).splitlines()[0] == (
        "drumfire: 600 rows in 2.00 s — 300 rows/s (stopped early: 2,000 rows of 3,000 not done)"
    )
    unknown = Stats(clock)  # standard input, or no count made: not said
    unknown.stopped = True
    assert unknown.summary()["not_done"] is None
    assert format_summary(unknown).splitlines()[0].endswith(" (stopped early)")


# -- Progress ----------------------------------------------------------------------------


def console() -> Console:
    return Console(file=io.StringIO(), width=200, force_terminal=False)


def test_progress_render_with_total_rate_and_eta() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock, total=1000)
    progress = Progress(console(), clock, label="job")
    line = progress.render(stats, 0.0).plain
    assert line == "job 0/1,000 (0.0%)  0 rows/s  ETA estimating  in flight 0"
    stats.concurrency = 8
    stats.limit = 16
    for tick in range(1, 21):  # two seconds at 100 rows/s, drawn ten times a second
        for _ in range(10):
            stats.add(Result("x", 200, 1.0, 1, ""))
        line = progress.render(stats, tick / 10).plain
    assert line == "job 200/1,000 (20.0%)  100 rows/s  ETA 8s  in flight 8/16"


def test_progress_shows_failures_and_stopping() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    progress = Progress(console(), clock)
    for reason in ["timeout", "timeout", "connect", "json", "reset", "protocol"]:
        stats.add(Result("x", None, 1.0, 1, reason))
    stats.stopped = True
    line = progress.render(stats, 1.0).plain
    assert line.startswith("6 rows  0 rows/s  in flight 0  failed 6: timeout 2, ")
    assert line.count(",") == 3  # at most four reasons
    assert line.endswith("  stopping…")


def test_progress_rate_uses_a_recent_window() -> None:
    progress = Progress(console(), FakeClock())
    assert progress.rate(0.0, 0) == 0.0
    assert progress.rate(1.0, 100) == 100.0
    assert progress.rate(2.0, 200) == 100.0
    # ten seconds later at a faster pace: the old samples have left the window
    for t in range(3, 13):
        progress.rate(float(t), 200 + (t - 2) * 1000)
    assert progress.rate(13.0, 11200) == pytest.approx(1000.0)


def test_progress_no_eta_when_done() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock, total=2)
    progress = Progress(console(), clock)
    progress.render(stats, 0.0)
    stats.add(Result("x", 200, 1.0, 1, ""))
    stats.add(Result("x", 200, 1.0, 1, ""))
    line = progress.render(stats, 1.0).plain
    assert "ETA" not in line
    assert line.startswith("2/2 (100.0%)")


def test_progress_update_is_throttled_and_live_writes_to_the_console() -> None:
    clock = FakeClock(0.0)
    out = io.StringIO()
    stats = Stats(clock, total=10)
    progress = Progress(Console(file=out, width=200, force_terminal=True), clock, interval=1.0)
    progress.update(stats)  # not entered: no live display, no error
    with progress:
        progress.update(stats)
        first = out.getvalue()
        assert "0/10" in first
        clock.t = 0.5
        stats.add(Result("x", 200, 1.0, 1, ""))
        progress.update(stats)
        assert out.getvalue() == first  # within the interval: no redraw
        clock.t = 1.5
        progress.update(stats)
        assert "1/10" in out.getvalue()
        assert progress.live
    assert not progress.live


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (0.6, "1s"),
        (59.4, "59s"),
        (59.6, "1m00s"),
        (61, "1m01s"),
        (3599.6, "1h00m"),
        (2 * 3600 + 65, "2h01m"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_blank_fields_give_every_row_the_asked_names() -> None:
    from drumfire._result import BlankFields

    blank = BlankFields(("duration",))
    failed = Result("1", None, 0.0, 1, "connect")
    filled = blank(failed)
    assert filled.fields == {"duration": None}
    assert filled[:5] == failed[:5]
    assert type(filled) is Result
    # A parse function's names are learned from the first row it answered.
    answered = Result("2", 200, 1.0, 1, "", {"duration": 3.5, "km": 1.2})
    assert blank(answered) is answered
    assert blank(Result("3", None, 0.0, 0, "input: line 4: unterminated quote")).fields == {
        "duration": None,
        "km": None,
    }
    # Nothing asked: still a mapping.
    assert BlankFields(())(failed).fields == {}


def test_format_summary_says_the_resent_requests_apart() -> None:
    """'requests sent' counts row attempts; re-sends after a dead keep-alive connection apart."""
    clock = FakeClock(0.0)
    stats = Stats(clock)
    stats.add(Result("a", 200, 5.0, 1, ""))
    stats.resent = 1
    clock.t = 1.0
    line = format_summary(stats).splitlines()[1]
    assert line == (
        "  ok 1 · failed 0 · requests sent 1 (+1 re-sent: kept-alive connection found closed)"
    )
    assert stats.summary()["resent"] == 1


def test_held_text_says_what_the_rows_wait_for() -> None:
    assert held_text([("api.example.com", 11.2, "quota")]) == (
        "waiting for quota, 12s (api.example.com)"
    )
    assert held_text([("a:8080", 75.0, "Retry-After"), ("b", 3.0, "quota")]) == (
        "held by Retry-After, 1m15s (a:8080) +1 host"
    )
    assert held_text([("a", 0.01, "quota")]) == "waiting for quota, 1s (a)"


def test_a_cluster_run_adds_up_the_parts_longest_latency() -> None:
    # --cluster adds up each part's figures: the max is the longest row of any part,
    # also from a part written before the figures carried it (its histogram's max).
    from drumfire._cluster import add_figures, figures

    parts = []
    for ms in (12.345, 678.901):
        part = Stats(FakeClock())
        part.add(Result("a", 200, ms, 1, ""))
        parts.append(figures(part))
    old = dict(parts[0])
    del old["longest_ms"]
    total = Stats(FakeClock())
    for got in parts:
        add_figures(total, got)
    assert total.summary()["latency_ms"]["max"] == 678.901
    alone = Stats(FakeClock())
    add_figures(alone, old)
    assert alone.summary()["latency_ms"]["max"] == pytest.approx(12.345, rel=1e-3)


def test_the_time_waited_for_the_server_is_counted_by_the_tick() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    assert stats.summary()["waited_s"] is None  # no tick (--cluster)
    stats.waited_s = 0.0
    held = [("api.example.com", 3.0, "Retry-After")]
    stats.note_tick(0.05, [], inflight=4, retrying=0)  # busy
    stats.note_tick(0.10, held, inflight=2, retrying=0)  # held, but answers still due
    stats.note_tick(0.15, held, inflight=0, retrying=0)  # nothing sent: waiting
    stats.note_tick(0.20, [], inflight=0, retrying=3)  # rows sleeping before a retry
    stats.note_tick(0.25, [], inflight=0, retrying=0)  # idle, nothing waits (slow input)
    stats.note_tick(0.30, [("q.example.com", 9.0, "quota")], inflight=0, retrying=0)
    assert stats.held == [("q.example.com", 9.0, "quota")]
    assert stats.waited_s == pytest.approx(0.15)  # (the summary: to a tenth, 0.1)
    assert stats.waited_for == {"Retry-After", "retry", "quota"}
    clock.t = 1.0
    stats.add(Result("a", 200, 1.0, 2, ""))
    assert (
        "  waited 0.1 s with no request in flight, for an origin held by Retry-After and "
        "a quota's reset and retries' Retry-After or back-off: in the time and rows/s above"
    ) in format_summary(stats).splitlines()


def test_a_run_with_no_answer_shows_no_latency_as_the_server_s() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock)
    stats.add(Result("a", None, 0.3, 4, "connect"))
    stats.add(Result("b", None, 0.4, 4, "connect"))
    clock.t = 0.5
    lines = format_summary(stats).splitlines()
    assert lines[2] == (
        "  latency none: no request was answered (the failures took p50 0.3 ms · max 0.4 ms)"
    )
    stats.add(Result("c", 503, 2.0, 1, ""))  # one answer, a 503: latency figures again
    assert format_summary(stats).splitlines()[2].startswith("  latency p50 ")


def test_a_slow_rate_is_not_zero() -> None:
    # 2 rows in 5 s said "0 rows/s" (the bar too, against a server answering in 2 s);
    # the JSON's 1 row in 60 s said 0.0.
    assert [format_rate(r) for r in (0.0, 0.0166, 0.4, 2.75, 9.96, 12.4, 12345.6)] == [
        "0", "0.017", "0.4", "2.8", "10", "12", "12,346"
    ]
    clock = FakeClock(0.0)
    stats = Stats(clock)
    stats.add(Result("a", 200, 2000.0, 1, ""))
    stats.add(Result("b", 200, 2000.0, 1, ""))
    clock.t = 5.0
    assert format_summary(stats).splitlines()[0] == "drumfire: 2 rows in 5.00 s — 0.4 rows/s"
    clock.t = 60.0
    assert stats.summary()["rows_per_s"] == 0.0333

"""Rows (items -> flights, error rows, skips), the reorder buffer and the finisher, without I/O."""

from __future__ import annotations

from typing import Any

from drumfire import Result
from drumfire._finish import Finisher
from drumfire._http import ResponseReader
from drumfire._job import make_job
from drumfire._ordering import Reorder
from drumfire._result import Stats
from drumfire._resume import DuplicateCounter
from drumfire._rows import SKIPPED, Flight, InputProblem, Rows, row_id


def rows(**kwargs: Any) -> Rows:
    plan = make_job("http://127.0.0.1:9/{n}").plan()
    return Rows(plan.preparer(), id_column="id", **kwargs)


def test_row_id_takes_the_column_else_the_row_number() -> None:
    assert row_id({"id": 7}, 3, "id") == "7"
    assert row_id({"id": ""}, 3, "id") == "3"
    assert row_id({"x": 1}, 3, None) == "3"


def test_row_id_of_a_json_value_is_its_json_text() -> None:
    # A JSON Lines or Parquet id that is a boolean, an object or a list was Python's text
    # ("True", "{'x': 1}"), unlike the same value in a template or a kept column.
    assert row_id({"id": True}, 3, "id") == "true"
    assert row_id({"id": {"x": "é"}}, 3, "id") == '{"x":"é"}'
    assert row_id({"id": [1, 2]}, 3, "id") == "[1,2]"
    assert row_id({"id": 1.5}, 3, "id") == "1.5"


def test_a_missing_id_as_pandas_has_it_takes_the_row_number() -> None:
    """A NaN id (a DataFrame's empty cell in a float or object column, numpy's, a
    Decimal's) or pandas' NA and NaT was the text 'nan' ('<NA>', 'NaT'), shared by every
    such row; it is empty now, as pandas takes it, so the row number is the id. Text
    is taken as written: a CSV cell 'nan' is an id."""
    import decimal

    import numpy as np
    import pandas as pd

    for missing in (float("nan"), np.float64("nan"), np.float32("nan"), decimal.Decimal("NaN"),
                    decimal.Decimal("sNaN"), pd.NA, pd.NaT):  # fmt: skip
        assert row_id({"id": missing}, 3, "id") == "3", missing
    assert row_id({"id": "nan"}, 3, "id") == "nan"
    assert row_id({"id": float("inf")}, 3, "id") == "inf"
    assert row_id({"id": np.int64(4)}, 3, "id") == "4"
    # as a template inserts it, and as the outputs write a Timestamp (ISO 8601 with T)
    assert row_id({"id": pd.Timestamp("2024-01-02")}, 3, "id") == "2024-01-02T00:00:00"


def test_make_prepares_counts_duplicates_and_skips() -> None:
    stats = Stats(lambda: 0.0)
    made = rows(duplicates=DuplicateCounter(), skip=lambda id_: id_ == "b")
    flight = made.make((1, {"id": "a", "n": "1"}), stats)
    assert isinstance(flight, Flight)
    assert (flight.id, flight.seq, flight.prepared.method) == ("a", -1, "GET")
    assert made.make((2, {"id": "b", "n": "2"}), stats) is SKIPPED
    made.make((3, {"id": "a", "n": "3"}), stats)
    assert stats.duplicates == 1


def test_ids_that_are_row_numbers_keep_no_set_of_ids_seen() -> None:
    """Without an id column every id is its row's number, unique by construction: no
    set of ids is kept (about 90 MB per million rows) and nothing is looked up."""
    plan = make_job("http://127.0.0.1:9/{n}").plan()
    counter = DuplicateCounter()
    made = Rows(plan.preparer(), duplicates=counter)
    stats = Stats(lambda: 0.0)
    for line in (1, 2, 3):
        flight = made.make((line, {"n": "1"}), stats)
        assert isinstance(flight, Flight)
        assert flight.id == str(line)
    assert made.usual_maker(stats) is not None
    assert (stats.duplicates, counter.seen) == (0, set())


def test_make_turns_problems_into_error_rows() -> None:
    stats = Stats(lambda: 0.0)
    made = rows(keep=("id",), skip_problem=lambda line: line == 9)
    error = made.make((4, InputProblem(4, "bad quote")), stats)
    assert isinstance(error, Result)
    assert (error.id, error.error) == ("", "input: line 4: bad quote")
    assert made.make((9, InputProblem(9, "x")), stats) is SKIPPED
    missing = made.make((5, {"id": "c"}), stats)
    assert isinstance(missing, Result)
    assert missing.error == "template: row 5 has no column 'n'"
    assert missing.kept == {"id": "c"}


def test_resume_writes_a_row_whose_file_is_complete_without_a_request() -> None:
    """``saved`` is asked for rows the output lacks (not skipped), and only on resume."""
    stats = Stats(lambda: 0.0)
    asked: list[str] = []

    def saved(id_: str, row: Any) -> dict[str, Any] | None:
        asked.append(id_)
        return {"saved_path": f"{id_}.bin", "saved_bytes": 3} if id_ == "f" else None

    made = rows(keep=("n",), skip=lambda id_: id_ == "s", saved=saved)
    done = made.make((1, {"id": "f", "n": "1"}), stats)
    assert done == Result("f", None, 0.0, 0, "", {"saved_path": "f.bin", "saved_bytes": 3},
                          {"n": "1"})
    assert isinstance(made.make((2, {"id": "x", "n": "2"}), stats), Flight)
    assert made.make((3, {"id": "s", "n": "3"}), stats) is SKIPPED
    parent = Rows(None, id_column="id", skip=lambda id_: False, saved=saved)
    assert isinstance(parent.screen((4, {"id": "f"}), stats), Result)  # -p: in the parent
    assert asked == ["f", "x", "f"]
    assert isinstance(rows(saved=saved).make((5, {"id": "f", "n": "5"}), stats), Flight)


def clock() -> float:
    return 0.0


def test_the_usual_maker_is_make_for_the_usual_row_and_passes_the_others_to_it() -> None:
    # The read-ahead child's quick path: a row it takes gives make's id and request and
    # counts a repeated id once; a row it passes (None) is make's, from the start.
    items: list[Any] = [
        (1, {"id": "a", "n": "1"}),
        (2, {"id": "a", "n": "2"}),  # a repeated id
        (3, {"id": "", "n": "3"}),  # no id: the row number (make's)
        (4, {"id": 7, "n": "4"}),  # not text (make's)
        (5, {"id": "e"}),  # no column n: a template error (make's)
        (6, InputProblem(6, "bad")),  # (make's)
        (7, {"id": "g", "n": "a b/.."}),  # encoded
    ]
    for item in items:
        quick_rows = rows(duplicates=DuplicateCounter())
        made_rows = rows(duplicates=DuplicateCounter())
        quick_counts, made_counts = Stats(clock), Stats(clock)
        usual = quick_rows.usual_maker(quick_counts)
        assert usual is not None
        for earlier in items[: items.index(item)]:  # the ids seen before it
            for r, counts in ((quick_rows, quick_counts), (made_rows, made_counts)):
                r.make(earlier, counts)
        got = usual(item)
        made = made_rows.make(item, made_counts)
        if got is None:
            assert item[0] in (3, 4, 5, 6)
            again = quick_rows.make(item, quick_counts)
            assert type(again) is type(made)
            if isinstance(made, Result):
                assert again == made
        else:
            assert isinstance(made, Flight)
            assert got == (made.id, made.prepared)
        assert quick_counts.duplicates == made_counts.duplicates
    assert rows(keep=("n",)).usual_maker(Stats(clock)) is None  # kept columns
    assert rows(skip=lambda id_: False).usual_maker(Stats(clock)) is None  # --resume


def test_screen_is_make_without_preparing() -> None:
    stats = Stats(lambda: 0.0)
    parent = Rows(None, id_column="id", skip=lambda id_: id_ == "s")
    assert parent.screen((1, {"id": "x"}), stats) == "x"
    assert parent.screen((2, {"id": "s"}), stats) is SKIPPED
    problem = InputProblem(3, "bad")
    assert parent.screen((3, problem), stats) is problem


def test_reorder_holds_early_results_and_passes_skips() -> None:
    out: list[str] = []
    order: Reorder[str] = Reorder(out.append)
    order.put(2, "c")
    order.put(1, None)  # skipped (--resume): nothing to write
    assert out == []
    assert order.ahead(3) == 3
    order.put(0, "a")
    assert out == ["a", "c"]
    assert order.ahead(3) == 0
    assert not order.held


def test_finisher_extracts_and_flags_bad_json() -> None:
    job = make_job("http://127.0.0.1:9/{n}", extract={"v": "v"}, keep=["n"])
    finisher = Finisher(job.extractor(), None, lambda row: {"n": row.get("n")})
    plan = job.plan()
    good, bad = (
        Flight(0, "1", {"n": "1"}, plan.prepare({"n": "1"})),
        Flight(1, "2", {"n": "2"}, plan.prepare({"n": "2"})),
    )
    reader = ResponseReader(1 << 20)
    reader.expect(False, 2)
    body_ok = b'{"v": 5}'
    answers = reader.feed_all(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body_ok), body_ok)
        + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnot"
    )
    first, second = finisher.results([(good, answers[0]), (bad, answers[1])], 0.0)
    assert (first.fields, first.error, first.kept) == ({"v": 5}, "", {"n": "1"})
    assert (second.fields, second.error) == ({"v": None}, "json")


def test_the_finisher_of_extracted_fields_alone_agrees_with_the_general_one() -> None:
    # --extract alone takes a shorter way for an answer that is a JSON document; every
    # answer's row is the one the general way gives (here made to run by a --keep
    # that keeps nothing).
    from drumfire._response import Response

    job = make_job("http://127.0.0.1:9/{n}", extract={"v": "v", "w": "a[0]"})
    plan = job.plan()
    usual = Finisher(job.extractor(), None, None)
    general = Finisher(job.extractor(), None, lambda row: None)
    bodies = [
        (200, b'{"v": 5, "a": [1]}', ""),
        (200, b"null", ""),  # JSON, but no document
        (200, b"", ""),  # an empty body
        (204, b"", ""),
        (200, b"not json", ""),
        (500, b"<html>", ""),
        (404, b'{"v": "x"}', ""),
        (200, b'{"v": 1}', "encoding: unknown coding 'x'"),  # an undecodable body
        (200, b"[1, 2]", ""),
    ]
    answered = [
        (
            Flight(k, f"r{k}", {"n": str(k)}, plan.prepare({"n": str(k)}), 1 + k % 2, 0.25),
            Response(status, [], body, True, None, error),
        )
        for k, (status, body, error) in enumerate(bodies)
    ]
    assert usual.results(answered, 1.0) == general.results(answered, 1.0)
    assert usual.results(answered[:1], 1.0)[0] == ("r0", 200, 750.0, 1, "", {"v": 5, "w": 1}, None)

"""Resumed.settle_shared: the input's ids counted against the output's rows (pure)."""

from __future__ import annotations

from collections.abc import Iterator

from drumfire._resume import DoneIds, Resumed


def resumed(*ids: str, dropped: int = 0) -> Resumed:
    return Resumed(DoneIds(ids), frozenset(), len(ids), dropped)


def test_ids_with_as_many_rows_on_both_sides_are_done() -> None:
    r = resumed("a", "b", "b")
    assert r.settle_shared(["a", "b", "b", "c"]) == 0
    assert [r.done.take(i) for i in ("a", "b", "b", "b", "c")] == [True, True, True, False, False]
    assert (r.kept, r.dropped) == (3, 0)
    assert not r.resends(lambda rec: False)(("b", 200, ""))


def test_an_id_with_fewer_or_more_rows_in_the_output_is_sent_whole() -> None:
    r = resumed("a", "b", "c", "c", "k", dropped=1)
    # b: 2 input rows, 1 kept; c: 1 input row, 2 kept; k: not in the input (kept as it is).
    assert r.settle_shared(["a", "b", "b", "c"]) == 3
    assert (r.kept, r.dropped) == (2, 4)
    assert [r.done.take(i) for i in ("a", "b", "c", "k")] == [True, False, False, True]
    drop = r.resends(lambda rec: rec[2] == "cancelled")
    assert [drop((i, 200, "")) for i in ("a", "b", "c", "k")] == [False, True, True, False]
    assert drop(("a", None, "cancelled"))
    assert not drop(("", None, "input: line 3: unterminated quote"))
    # Every row of b and c is sent, whatever file --save-body left under the name.
    assert all(r.sent_again(i) for i in ("b", "b", "c"))
    assert not r.sent_again("a")
    assert sorted(r.again.keys()) == sorted(DoneIds(["b", "c"]).keys())


def test_nothing_is_counted_without_rows_kept() -> None:
    r = resumed()
    seen: list[str] = []

    def ids() -> Iterator[str]:
        seen.append("read")
        yield "a"

    assert r.settle_shared(ids()) == 0
    assert seen == []


def test_a_date_time_id_with_a_space_is_the_same_id_as_its_iso_spelling() -> None:
    # Python's str() of a datetime / Timestamp, the id earlier runs wrote, against the
    # ISO 8601 id a datetime gets now (2024-01-02T00:00:00): one id for resume, counted
    # as one by settle_shared (two input rows, two old output rows: done).
    old = ["2024-01-02 00:00:00", "2024-01-02 00:00:00", "2024-01-03 04:05:06.500000+05:30",
           "2024-01-04 00:00:00.123456789"]  # fmt: skip
    r = resumed(*old)
    new = [o.replace(" ", "T") for o in old]
    assert r.settle_shared(new) == 0
    assert [r.done.take(i) for i in new] == [True, True, True, True]
    assert not r.done.take(new[0])  # both used: a third row of that id is sent
    # Only a whole date-time: other text with a space is its own id.
    for text in ("2024-01-02 00:00:00 UTC", "2024-01-02 00:00", "x024-01-02 00:00:00"):
        assert text.replace(" ", "T", 1) not in DoneIds([text])

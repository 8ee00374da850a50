"""The English of messages: counts agree with their noun, and the article fits the word."""

from __future__ import annotations

import pytest

from drumfire._text import counted, with_article


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 rows"), (1, "1 row"), (2, "2 rows"), (1075, "1,075 rows")]
)
def test_counted(n: int, text: str) -> None:
    assert counted(n, "row") == text


def test_counted_with_a_verb() -> None:
    assert counted(1, "row was", "rows were") == "1 row was"
    assert counted(1500, "row was", "rows were") == "1,500 rows were"


@pytest.mark.parametrize(
    ("word", "text"),
    [("ellipsis", "an ellipsis"), ("int", "an int"), ("list", "a list"), ("dict", "a dict")],
)
def test_with_article(word: str, text: str) -> None:
    assert with_article(word) == text

"""Small helpers for the English of messages: counts that agree with their noun, articles."""

from __future__ import annotations

__all__ = ["counted", "with_article"]


def counted(n: int, one: str, many: str | None = None) -> str:
    """``n`` with thousands separators and the words after it agreeing with it.

    ``counted(1, "row")`` is "1 row", ``counted(1075, "row")`` "1,075 rows";
    ``many`` is the plural when adding "s" is not it: ``counted(n, "row was", "rows were")``.
    """
    return f"{n:,} {one if n == 1 else (many if many is not None else one + 's')}"


def with_article(word: str) -> str:
    """``word`` after "a" or "an" (by its first letter): "a list", "an ellipsis"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"

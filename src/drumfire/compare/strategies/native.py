"""drumfire itself, through its Python API with its defaults."""

from __future__ import annotations

from collections.abc import Sequence

from ..._api import run
from ._common import ID_KEY, Outcome, Row

__all__ = ["drumfire_strategy"]


def drumfire_strategy(
    rows: Sequence[Row], url: str, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``drumfire.run`` with the same rows, template, extraction and concurrency."""
    return [
        (r.id, r.status, r.fields, r.error)
        for r in run(rows, url, extract=dict(extract), concurrency=concurrency, id=ID_KEY)
    ]

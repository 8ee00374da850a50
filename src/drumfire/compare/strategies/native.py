"""drumfire itself, through its Python API with its defaults."""

from __future__ import annotations

from collections.abc import Sequence

from ..._api import run
from ._common import ID_KEY, Outcome, Row, RowRequest

__all__ = ["drumfire_strategy"]


def drumfire_strategy(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``drumfire.run`` with the same rows, request, extraction and concurrency."""
    url, method, headers, data = request.args
    return [
        (r.id, r.status, r.fields, r.error)
        for r in run(
            rows,
            url,
            method=method,
            headers=[f"{n}: {v}" for n, v in headers],
            data=data,
            extract=dict(extract),
            concurrency=concurrency,
            id=ID_KEY,
        )
    ]

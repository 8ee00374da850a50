"""drumfire itself, through its Python API with its defaults."""

from __future__ import annotations

from collections.abc import Sequence

from ..._api import run
from ..._sources import Source, rows_source
from ._common import ID_KEY, Outcome, Row, RowRequest

__all__ = ["drumfire_strategy"]


def drumfire_strategy(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``drumfire.run`` with the same rows, request, extraction and concurrency."""
    url, method, headers, data, _ = request.args
    source = rows_source(rows)
    if request.text_rows:  # CSV cells, as `drumfire run` reads them from the file
        source = Source(source.items, source.columns, "csv", source.total)
    return [
        (r.id, r.status, r.fields, r.error)
        for r in run(
            source,
            url,
            method=method,
            headers=[f"{n}: {v}" for n, v in headers],
            data=data,
            extract=dict(extract),
            concurrency=concurrency,
            id=ID_KEY,
        )
    ]

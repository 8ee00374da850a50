"""The requests strategies: one thread (new connections, or a Session), or requests-futures.

Each is written the way a Python user would have ended up writing it with
hindsight: a session or pool wherever connections can be reused, the pool sized to the
threads that share it, retries on connection failures (as drumfire does), redirects not
followed (drumfire does not follow them either), no proxy from the environment, and no
compression asked for (see :data:`~._common.HEADERS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from ..._extract import Extractor
from ._common import (
    CONNECT_TIMEOUT,
    HEADERS,
    ID_KEY,
    TIMEOUT,
    Outcome,
    Row,
    RowRequest,
    failed,
    finish,
)
from .pools import retry

__all__ = ["requests_futures", "serial", "session"]


#: Connect directly even when the environment names a proxy (drumfire never uses one).
_NO_PROXY: Any = {"http": None, "https": None}


def serial(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``requests.get`` in a loop: a new connection (and TIME_WAIT socket) per request."""
    extractor = Extractor(extract)
    out: list[Outcome] = []
    for row in rows:
        id_ = row[ID_KEY]
        try:
            method, target, headers, body = request.render(row)
            r = requests.request(
                method,
                target,
                headers={**HEADERS, **headers},
                data=body,
                proxies=_NO_PROXY,
                timeout=(CONNECT_TIMEOUT, TIMEOUT),
                allow_redirects=False,
            )
        except Exception as exc:
            out.append(failed(id_, exc))
            continue
        out.append(finish(extractor, id_, r.status_code, r.content))
    return out


def _session(maxsize: int) -> requests.Session:
    s = requests.Session()
    s.headers.update(HEADERS)
    s.trust_env = False  # no proxy or .netrc look-ups per request; drumfire makes none
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=maxsize, max_retries=retry())
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def session(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``requests.Session`` in a loop: one kept-alive connection."""
    extractor = Extractor(extract)
    out: list[Outcome] = []
    with _session(1) as s:
        for row in rows:
            id_ = row[ID_KEY]
            try:
                method, target, headers, body = request.render(row)
                r = s.request(
                    method,
                    target,
                    headers=headers,
                    data=body,
                    timeout=(CONNECT_TIMEOUT, TIMEOUT),
                    allow_redirects=False,
                )
            except Exception as exc:
                out.append(failed(id_, exc))
                continue
            out.append(finish(extractor, id_, r.status_code, r.content))
    return out


def requests_futures(
    rows: Sequence[Row], request: RowRequest, extract: Sequence[tuple[str, str]], concurrency: int
) -> list[Outcome]:
    """``FuturesSession`` with ``concurrency`` workers and an adapter pool of that size."""
    from requests_futures.sessions import FuturesSession  # type: ignore[import-untyped,unused-ignore]

    extractor = Extractor(extract)
    out: list[Outcome] = []
    pending: list[tuple[str, Future[Any] | Outcome]] = []
    adapter = {"pool_connections": 4, "pool_maxsize": concurrency, "max_retries": retry()}
    with FuturesSession(max_workers=concurrency, adapter_kwargs=adapter) as s:
        s.headers.update(HEADERS)
        s.trust_env = False
        for row in rows:
            id_ = row[ID_KEY]
            try:
                method, target, headers, body = request.render(row)
            except Exception as exc:
                pending.append((id_, failed(id_, exc)))
                continue
            future = s.request(
                method,
                target,
                headers=headers,
                data=body,
                timeout=(CONNECT_TIMEOUT, TIMEOUT),
                allow_redirects=False,
            )
            pending.append((id_, future))
        for id_, item in pending:
            if isinstance(item, tuple):
                out.append(item)
                continue
            try:
                r = item.result()
            except Exception as exc:
                out.append(failed(id_, exc))
                continue
            out.append(finish(extractor, id_, r.status_code, r.content))
    return out

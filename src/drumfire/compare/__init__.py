"""``drumfire compare``: the usual ways to send a batch from Python, side by side, on any server.

The same rows are sent by each strategy (serial requests, a Session, a urllib3 pool, threads,
requests-futures, aiohttp, process pools, and drumfire), each in a fresh process, with the same
URL template, extraction and concurrency; the report gives requests/s, wall time, client CPU per
request and peak memory for each, and says whether they all produced the same rows.

The strategies' libraries come from the optional extra: ``pip install 'drumfire[compare]'``.
This package imports none of them; only the worker process of a strategy does.

>>> from drumfire.compare import compare
>>> report = compare("routes.csv", "http://127.0.0.1:5000/route/v1/driving/"
...                  "{lon1},{lat1};{lon2},{lat2}", extract={"duration": "routes[0].duration"})
>>> report.print()
>>> report.to_dict()["strategies"][0]["rps"]
"""

from ._report import CompareReport, StrategyReport
from ._runner import (
    DEFAULT_CONCURRENCY,
    STRATEGY_NAMES,
    CompareStopped,
    compare,
    parse_strategies,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "STRATEGY_NAMES",
    "CompareReport",
    "CompareStopped",
    "StrategyReport",
    "compare",
    "parse_strategies",
]

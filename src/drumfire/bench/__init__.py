"""``drumfire bench``: measure a service under load, honestly, from Python.

>>> from drumfire.bench import bench
>>> report = bench("http://127.0.0.1:8080/", concurrency=16, duration="30s")
>>> report.rps, report.latency_ms["p99"]
>>> report = bench("http://127.0.0.1:8080/", rate=200, duration="1m")  # open model
>>> report.save_html("report.html"); report.to_dict()

The closed model keeps ``concurrency`` connections busy; the open model
(``rate=``) sends on a fixed schedule and measures each request from the
moment it was due, so time spent queued behind a stalled server is counted
(no coordinated omission). See ``docs/bench.md``.
"""

import sys
import types
from typing import Any

from ._api import abench, bench
from ._report import BenchReport
from ._runner import BenchError
from ._schedule import parse_duration, parse_rate_profile

__all__ = ["BenchError", "BenchReport", "abench", "bench", "parse_duration", "parse_rate_profile"]


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`bench`.

    ``drumfire.bench`` names both the load-test function and this package: the
    first ``import drumfire.bench`` binds the package on ``drumfire``, so the
    package answers a call as the function does.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> BenchReport:
        return bench(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

# Once ``drumfire.bench`` was asked for before this package was imported, it is the function
# (drumfire.__getattr__): its package's names stay reachable through it as the docs write
# them, ``drumfire.bench.BenchError`` and the rest ('function' has no attribute, else).
for _name in __all__:
    setattr(bench, _name, globals()[_name])
del _name

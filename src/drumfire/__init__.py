"""drumfire: send a very large batch of HTTP requests as fast as the server
answers, keep every result, and tell how fast that was.

>>> import drumfire
>>> for result in drumfire.run(rows, url="http://127.0.0.1:5000/route/v1/driving/"
...                            "{lon1},{lat1};{lon2},{lat2}",
...                            extract={"duration": "routes[0].duration"}):
...     print(result.id, result.status, result.fields)

Errors: a problem found before the first request raises a :class:`UsageError`
(:class:`TemplateError`, :class:`InputError`); a request that fails is a row
whose ``reason`` is a :class:`Reason`, never an exception.

``bench`` and ``BenchReport`` (the load test) are imported on first use, so
``import drumfire`` does not load the benchmark modules.
"""

from typing import TYPE_CHECKING, Any

from ._api import ARun, Run, arun, run, run_all
from ._errors import DrumfireError, InputError, Reason, TemplateError, UsageError
from ._job import Job, make_job
from ._response import Response
from ._result import Result, Stats
from ._settings import Retry, Timeouts

if TYPE_CHECKING:
    from .bench import BenchReport, bench

__version__ = "0.1.0"

__all__ = [
    "ARun",
    "BenchReport",
    "DrumfireError",
    "InputError",
    "Job",
    "Reason",
    "Response",
    "Result",
    "Retry",
    "Run",
    "Stats",
    "TemplateError",
    "Timeouts",
    "UsageError",
    "__version__",
    "arun",
    "bench",
    "make_job",
    "run",
    "run_all",
]


def __getattr__(name: str) -> Any:
    """``drumfire.bench`` (the load-test function) and ``BenchReport``, imported on first use.

    ``drumfire.bench`` is also a subpackage (``from drumfire.bench import ...``);
    importing it makes the package itself callable as the function, so
    ``drumfire.bench(...)`` works whichever was imported first.
    """
    if name in ("bench", "BenchReport"):
        import importlib

        package = importlib.import_module("drumfire.bench")  # binds the package, then:

        globals()["bench"] = package.bench
        globals()["BenchReport"] = package.BenchReport
        return globals()[name]
    raise AttributeError(f"module 'drumfire' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""drumfire: send a very large batch of HTTP requests as fast as the server
answers, keep every result, and tell how fast that was.

>>> import drumfire
>>> for result in drumfire.run(rows, url="http://127.0.0.1:5000/route/v1/driving/"
...                            "{lon1},{lat1};{lon2},{lat2}",
...                            extract={"duration": "routes[0].duration"}):
...     print(result.id, result.status, result.fields)
"""

from ._api import Job, arun, make_job, run, run_all
from ._errors import (
    BodyTooLarge,
    ConnectError,
    DrumfireError,
    HeaderTooLarge,
    InputError,
    ProtocolError,
    RequestError,
    ResetError,
    TemplateError,
    TimeoutError_,
    TLSError,
    UsageError,
)
from ._http import Response
from ._result import Result, Stats
from ._settings import Retry, Timeouts

# ``drumfire.bench(...)`` is the load-test function; the subpackage stays
# importable as ``drumfire.bench`` through sys.modules (``from drumfire.bench import ...``).
from .bench import BenchReport, bench

__version__ = "0.1.0"

__all__ = [
    "BenchReport",
    "BodyTooLarge",
    "ConnectError",
    "DrumfireError",
    "HeaderTooLarge",
    "InputError",
    "Job",
    "ProtocolError",
    "RequestError",
    "ResetError",
    "Response",
    "Result",
    "Retry",
    "Stats",
    "TLSError",
    "TemplateError",
    "TimeoutError_",
    "Timeouts",
    "UsageError",
    "__version__",
    "arun",
    "bench",
    "make_job",
    "run",
    "run_all",
]

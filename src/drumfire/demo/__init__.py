"""The built-in demo server (see :mod:`drumfire.demo.server`).

Names are re-exported lazily so that ``python -m drumfire.demo.server`` does not import the
module twice (runpy warns when a package has already imported the module it is asked to run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drumfire.demo.server import (
        JSON_DOCUMENT,
        QUOTES,
        DemoServer,
        quote_answer,
        route_answer,
        run_server,
        serve,
        write_sample_routes,
    )

__all__ = [
    "JSON_DOCUMENT",
    "QUOTES",
    "DemoServer",
    "quote_answer",
    "route_answer",
    "run_server",
    "serve",
    "write_sample_routes",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from drumfire.demo import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""``--parse FILE.py:FUNCTION``: load a user's response-parsing function.

A library module (the CLI and the worker processes both load it), so that no
library module imports the click front end.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._errors import UsageError

__all__ = ["load_parse_function"]


def load_parse_function(spec: str) -> Callable[..., Any]:
    """``path/to/file.py:function`` → the function (for ``--parse``)."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"--parse {spec!r}: write FILE.py:FUNCTION")
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--parse: {path!r} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"drumfire_parse_{file.stem}", file)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"--parse: cannot load {path!r}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"--parse: {path!r} failed to load: {type(exc).__name__}: {exc}") from None
    func = getattr(module, name, None)
    if not callable(func):
        raise UsageError(f"--parse: {path!r} has no function {name!r}")
    return func  # type: ignore[no-any-return]

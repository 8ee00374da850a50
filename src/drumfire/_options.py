"""Settings' values as the Python API takes them, checked once: each field of a
:class:`~drumfire.Job` as it is made (by ``make_job`` or directly), and the keywords
of ``make_job`` that become other fields (``timeout``, ``retries``, ``verify``...).

The command line reads text and click checks it; a keyword argument can be
anything, and a wrong type used to surface mid-run, far from its cause (a
``TypeError`` in a connection, reported as ``reset`` rows). The rule here, one
for every setting: numbers are Python numbers (``timeout=5``, ``concurrency=8``;
``"5"`` is refused), paths are ``str`` or ``os.PathLike``, flags are ``bool``,
and a setting whose command-line value has a unit also takes that text: a size
(``max_body="64M"``, as ``--max-body``) or a rate (``rate="10/s"``, as
``--rate``). Anything else raises :class:`UsageError` with one line naming the
keyword and what to give (``max_body=-1: give a number of bytes, 0 or more, or
a size like '64M'``). These checks run once per call, never per row.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import re
from collections.abc import Callable
from typing import Any

from ._errors import UsageError
from ._limits import parse_rate

__all__ = [
    "check_count",
    "check_flag",
    "check_kind",
    "check_number",
    "check_path",
    "check_rate",
    "check_seconds",
    "check_size",
    "check_texts",
    "optional",
    "parse_size",
    "size_text",
    "statuses_text",
]


def parse_size(text: str) -> int:
    """``10M``, ``512k``, ``1G`` or a byte count; ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a size like 64M")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(float(m.group(1)) * factor)


def size_text(size: int) -> str:
    """A byte count as :func:`parse_size` reads it: ``64M``, ``64K``, or bytes."""
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is one (numpy's too), never a bool, float or str."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_count(name: str, value: Any, low: int, high: int, or_none: str = "") -> int:
    """A whole number from ``low`` to ``high`` (``or_none``: what None would mean, said
    in the message where None is allowed too)."""
    number = _whole(value)
    if number is None or not low <= number <= high:
        raise UsageError(f"{name}={value!r}: give a whole number from {low} to {high}{or_none}")
    return number


def check_seconds(name: str, value: Any) -> float:
    """A number of seconds above zero."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    raise UsageError(f"{name}={value!r}: give a number of seconds above 0 (5 or 2.5)")


def check_number(name: str, value: Any, what: str = "a number, 0 or more") -> float:
    """A finite number, 0 or more, as a float (a NaN compares as no bound at all)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number
    raise UsageError(f"{name}={value!r}: give {what}")


def check_size(name: str, value: Any, minimum: int = 0) -> int:
    """A number of bytes, or a size as the command line writes it (``"64M"``)."""
    if isinstance(value, str):
        try:
            size: int | None = parse_size(value)
        except ValueError:
            size = None
    else:
        size = _whole(value)
    if size is None or size < minimum:
        least = f"{minimum // 1024}K" if minimum >= 1024 else str(minimum)
        raise UsageError(
            f"{name}={value!r}: give a number of bytes, {least} or more, or a size like '64M'"
        )
    return size


def check_rate(name: str, value: Any) -> float | None:
    """Requests per second: None (no cap), a number, or a rate as ``--rate`` takes it."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_rate(value)
        except ValueError as exc:
            raise UsageError(f"{name}={value!r}: {exc}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        rate = float(value)
        if math.isfinite(rate) and rate > 0:
            return rate
    raise UsageError(
        f"{name}={value!r}: give requests per second above 0 (10), a rate like '10/s' or "
        "'100/min', or None"
    )


def check_flag(name: str, value: Any) -> bool:
    """True or False (a ``"no"`` would be true: refused rather than guessed)."""
    if not isinstance(value, bool):
        raise UsageError(f"{name}={value!r}: give True or False")
    return value


def check_path(name: str, value: Any) -> str:
    """A path (or path template): ``str`` or ``os.PathLike``, as ``str``."""
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise UsageError(f"{name}={value!r}: give a path, a str or an os.PathLike")


def statuses_text(name: str, value: Any) -> str:
    """``save_status``: the command line's text (``"2xx,404"``), a status (``200``), or
    an iterable of either (``[200, "3xx"]``), as that text."""
    if isinstance(value, str):
        return value
    try:
        items = [value] if _whole(value) is not None else list(value)
    except TypeError:
        items = []
    texts = [item if isinstance(item, str) else str(_whole(item)) for item in items]
    if not items or any(not isinstance(item, str) and _whole(item) is None for item in items):
        raise UsageError(
            f"{name}={value!r}: give statuses as '2xx,404', a status (200) or a list of them"
        )
    return ",".join(texts)


def check_kind(kind: type | tuple[type, ...], what: str) -> Callable[[str, Any], Any]:
    """A check that a value is a ``kind`` (``what`` names it in the message)."""

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, kind):
            raise UsageError(f"{name}={value!r}: give {what}")
        return value

    return check


def check_texts(what: str, pairs: bool | None = False) -> Callable[[str, Any], tuple[Any, ...]]:
    """A check of a list or tuple of ``str`` (``pairs``: of ``(str, str)`` pairs; None:
    of either), as a tuple; ``what`` says what to give in the message."""

    def fits(item: Any) -> bool:
        if isinstance(item, str):
            return pairs is not True
        return (
            pairs is not False
            and isinstance(item, tuple | list)
            and len(item) == 2
            and all(isinstance(i, str) for i in item)
        )

    def check(name: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, tuple | list) or not all(fits(i) for i in value):
            raise UsageError(f"{name}={value!r}: give {what}")
        if isinstance(value, tuple) and all(type(i) is not list for i in value):
            return value
        return tuple(tuple(i) if isinstance(i, list) else i for i in value)

    return check


def optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    """``check``, or None taken as it is."""
    return lambda name, value: None if value is None else check(name, value)

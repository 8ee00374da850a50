"""Field extraction: ``NAME=EXPR`` pairs evaluated as JMESPath over a JSON body.

jmespath's tree interpreter costs about 5 µs per expression; the usual
expressions (``code``, ``routes[0].duration``) are chains of field names and
indexes, which are compiled here to a direct walk with the same semantics
(a missing key, a wrong type or an index out of range gives None). Anything
else goes through jmespath itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ._errors import UsageError

__all__ = ["Extractor", "parse_extract_options"]

Getter = Callable[[Any], Any]


def _steps(node: dict[str, Any]) -> list[str | int] | None:
    """The key/index chain of a simple expression, or None if it is not simple."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    if kind == "index":
        return [node["value"]]
    if kind in ("subexpression", "index_expression"):
        out: list[str | int] = []
        for child in node["children"]:
            sub = _steps(child)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


def _lookup(steps: list[str | int]) -> str:
    """The chain of lookups ``steps`` make, as code: ``['routes'][0]['duration']``."""
    return "".join(f"[{step!r}]" if type(step) is str else f"[{int(step)}]" for step in steps)


def _walker(steps: list[str | int]) -> Getter:
    """A function that walks ``steps`` with JMESPath's semantics, unrolled.

    The body is generated (the chain of lookups as one expression, keys and
    indexes as literals from ``repr``) and tried as a whole: a missing key, an
    index out of range or a wrong type (a key looked up in a list, a number
    indexed) raises, and gives None, as JMESPath does. The one lookup Python
    allows where JMESPath does not is an index into a string (``"Ok"[0]``), and
    it can only end in a string: a string found by a chain with an index in it is
    walked again step by step (:func:`_careful_walker`).
    """
    chain = _lookup(steps)
    lines = [
        "def get(document):",
        "    try:",
        f"        value = document{chain}",
        "    except (KeyError, IndexError, TypeError):",
        "        return None",
    ]
    if any(type(step) is not str for step in steps):
        lines.append("    if type(value) is str: return careful(document)")
    lines.append("    return value")
    namespace: dict[str, Any] = {"careful": _careful_walker(steps)}
    exec("\n".join(lines), namespace)  # literals only, built above
    return cast(Getter, namespace["get"])


def _careful_walker(steps: list[str | int]) -> Getter:
    """:func:`_walker`'s steps one by one, each checking the type it steps into."""

    def get(value: Any) -> Any:
        for step in steps:
            if type(step) is str:
                if type(value) is not dict:
                    return None
                value = value.get(step)
            else:
                if type(value) is not list:
                    return None
                try:
                    value = value[cast(int, step)]
                except IndexError:
                    return None
        return value

    return get


#: A chain of unquoted names and indexes (``routes[0].duration``), JMESPath's grammar
#: for them; other expressions (and these with spaces or quotes) go to jmespath.
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*")
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(-?[0-9]+)\]")


def compile_expression(expr: str) -> Getter:
    """Compile one JMESPath expression; raise :class:`UsageError` if malformed.

    The usual chain of names and indexes is read here (jmespath, imported only
    for the others, costs some milliseconds of every run's start).
    """
    return _compiled(expr)[0]


def _compiled(expr: str) -> tuple[Getter, list[str | int] | None]:
    """:func:`compile_expression`, and the chain of names and indexes it walks, if so."""
    if _SIMPLE.fullmatch(expr):
        steps = [name or int(index) for name, index in _STEP.findall(expr)]
        return _walker(steps), steps
    import jmespath
    import jmespath.exceptions

    try:
        parsed = jmespath.compile(expr)
    except jmespath.exceptions.JMESPathError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"bad --extract expression {expr!r}: {first}") from None
    chain = _steps(dict(parsed.parsed))
    if chain is not None:
        return _walker(chain), chain
    search = parsed.search

    def guarded(value: Any) -> Any:
        # A function or comparison over a body of another shape (length() of an
        # error body) yields None for that field, as a missing key does.
        try:
            return search(value)
        except (jmespath.exceptions.JMESPathError, TypeError, ValueError):
            return None

    return guarded, None


class Extractor:
    """Named expressions, evaluated together over one decoded JSON document.

    ``apply(document)`` gives ``{name: value}`` for every expression, in order.
    """

    __slots__ = ("apply", "names")

    def __init__(self, fields: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        items = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        seen: set[str] = set()
        for name, _ in items:
            if name in seen:
                raise UsageError(f"--extract name {name!r} is given twice")
            seen.add(name)
        self.names = tuple(name for name, _ in items)
        compiled = [_compiled(expr) for _, expr in items]
        self.apply: Callable[[Any], dict[str, Any]] = _applier(self.names, compiled)

    def __bool__(self) -> bool:
        return bool(self.names)


def _applier(
    names: tuple[str, ...], compiled: list[tuple[Getter, list[str | int] | None]]
) -> Callable[[Any], dict[str, Any]]:
    """``document -> {name: value, ...}`` as one generated function.

    A chain of names and indexes is walked in the function itself, as
    :func:`_walker`'s body does it (one call per row, not one per field); other
    expressions are called. A comprehension over ``zip`` costs about four times
    as much for one field.
    """
    lines = ["def apply(document):"]
    namespace: dict[str, Any] = {}
    for i, (get, steps) in enumerate(compiled):
        if steps is None:
            namespace[f"g{i}"] = get
            lines.append(f"    v{i} = g{i}(document)")
            continue
        lines += [
            "    try:",
            f"        v{i} = document{_lookup(steps)}",
            "    except (KeyError, IndexError, TypeError):",
            f"        v{i} = None",
        ]
        if any(type(step) is not str for step in steps):  # as _walker has it
            namespace[f"g{i}"] = get
            lines.append(f"    if type(v{i}) is str: v{i} = g{i}(document)")
    entries = ", ".join(f"{name!r}: v{i}" for i, name in enumerate(names))
    lines.append(f"    return {{{entries}}}")
    exec("\n".join(lines), namespace)  # names and steps as literals from repr
    return cast(Callable[[Any], dict[str, Any]], namespace["apply"])


def parse_extract_options(options: Iterable[str]) -> list[tuple[str, str]]:
    """``["duration=routes[0].duration", "code"]`` → name/expression pairs.

    A bare expression that is a plain identifier names itself (``-e code``).
    """
    pairs: list[tuple[str, str]] = []
    for option in options:
        name, sep, expr = option.partition("=")
        name = name.strip()
        if not sep:
            expr = name
            if not name.replace("_", "a").isalnum():
                raise UsageError(f"--extract {option!r}: write NAME=EXPRESSION")
        if not name or not expr.strip():
            raise UsageError(f"--extract {option!r}: write NAME=EXPRESSION")
        pairs.append((name, expr.strip()))
    return pairs

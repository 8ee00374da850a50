"""No long module without a stated reason (issue 18).

Issue 18's bar: no module over about 600 lines without a reason stated in its
docstring. Every module under ``src/drumfire`` longer than :data:`MOST_LINES`
must say why in its module docstring, in a sentence that starts "Why this
module is long" (as ``cli.py`` and ``_limits.py`` do). Splitting the module
is the other way to pass.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import drumfire

ROOT = Path(drumfire.__file__).resolve().parent
#: "About 600 lines": a module may grow a little past it before it must say why.
MOST_LINES = 650
REASON = re.compile(r"(?:\A|[.!?:]\s+|\n\s*)Why this module is long\b")


def states_its_length(source: str) -> bool:
    """Whether the module docstring of ``source`` has a sentence "Why this module is long..."."""
    doc = ast.get_docstring(ast.parse(source))
    return doc is not None and REASON.search(doc) is not None


def long_modules_without_a_reason(root: Path = ROOT) -> list[str]:
    """The modules under ``root`` over :data:`MOST_LINES` lines that do not say why."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        if lines > MOST_LINES and not states_its_length(source):
            found.append(f"{path.relative_to(root.parent)} ({lines} lines)")
    return found


def test_the_reason_is_found_only_at_the_start_of_a_sentence() -> None:
    stated = '"""The thing.\n\nWhy this module is long (700 lines): one controller.\n"""\n'
    assert states_its_length(stated)
    assert states_its_length('"""One thing. Why this module is long: it is one."""\n')
    assert not states_its_length('"""Not a word on its length."""\n')
    assert not states_its_length('"""Nobody asks why this module is long."""\n')
    assert not states_its_length("# Why this module is long: a comment is no docstring.\n")


def test_a_long_module_without_a_reason_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    filler = "x = 1\n" * MOST_LINES
    (package / "short.py").write_text('"""Short."""\n' + "x = 1\n" * 10)
    (package / "long.py").write_text('"""Long."""\n' + filler)
    (package / "why.py").write_text(
        '"""Long.\n\nWhy this module is long: a reason.\n"""\n' + filler
    )
    assert long_modules_without_a_reason(package) == [f"pkg/long.py ({MOST_LINES + 1} lines)"]


def test_every_module_over_about_600_lines_says_why() -> None:
    assert long_modules_without_a_reason() == []

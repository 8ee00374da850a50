"""No module uses another module's private names (issue 18).

A name with a leading underscore is private to the module that defines it. A
name another module needs is not private: it drops the underscore (the module
itself stays private, ``drumfire._progress``, so the name is still not public
API). Every ``.py`` file under ``src``, ``tests`` and ``benchmarks`` is parsed
with :mod:`ast`, and the test fails listing each ``path:line`` where

* ``from X import _name`` imports an underscore name that is not a module
  (``from drumfire import _readahead`` and ``from . import _bodies`` load a
  private *module*, which is fine);
* ``obj._name`` is used where ``obj`` is not ``self``, ``cls`` or ``super()``,
  unless ``_name`` is defined in the same file (as a function, a class, a class
  attribute or a ``self._name =`` assignment: a module may use its own private
  names on its own objects) or is in :data:`ALLOWED_ATTRIBUTES`.

Dunder names (``__init__``, ``obj.__class__``) are not private.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
SCANNED = ("src", "tests", "benchmarks")

# Underscore names that other libraries make public API: keep this list short.
ALLOWED_ATTRIBUTES = {
    # namedtuple's API: the underscore only keeps clear of field names.
    "_replace",
    "_asdict",
    "_fields",
    "_make",
    # IPython's rich display protocol.
    "_repr_html_",
}
# ``module._name`` pairs the standard library documents.
ALLOWED_MODULE_ATTRIBUTES = {
    ("os", "_exit"),  # exit without cleanup, in a forked child
    ("sys", "_getframe"),
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _files() -> list[Path]:
    found: list[Path] = []
    for top in SCANNED:
        found.extend(sorted((REPO / top).rglob("*.py")))
    return found


def _is_module(base: Path, name: str) -> bool:
    return (base / f"{name}.py").is_file() or (base / name).is_dir()


def _import_bases(path: Path, node: ast.ImportFrom) -> list[Path]:
    """Directories where ``from X import name`` could find a module ``name``."""
    parts = (node.module or "").split(".") if node.module else []
    if node.level:
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        return [base.joinpath(*parts)]
    # Absolute: the installed package under src, or a sibling of a script
    # (benchmarks and tests run with their own directory on sys.path).
    return [root.joinpath(*parts) for root in (SRC, path.parent, REPO)]


def _defined_names(tree: ast.AST) -> set[str]:
    """Underscore names this file defines: functions, classes, attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    names.add(leaf.id)
                elif (
                    isinstance(leaf, ast.Attribute)
                    and isinstance(leaf.value, ast.Name)
                    and leaf.value.id in ("self", "cls")
                ):
                    names.add(leaf.attr)
        # __slots__ = ("_a", "_b")
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            for leaf in ast.walk(node.value):
                if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                    names.add(leaf.value)
    return {name for name in names if _is_private(name)}


def _is_own(value: ast.expr) -> bool:
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def private_uses(path: Path, source: str) -> list[str]:
    """``line: what`` for each use of another module's private name."""
    tree = ast.parse(source, filename=str(path))
    own = _defined_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            bases = _import_bases(path, node)
            for alias in node.names:
                if not _is_private(alias.name):
                    continue
                if any(_is_module(base, alias.name) for base in bases):
                    continue
                module = "." * node.level + (node.module or "")
                found.append(f"{node.lineno}: from {module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            if _is_own(node.value) or node.attr in own or node.attr in ALLOWED_ATTRIBUTES:
                continue
            if (
                isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in ALLOWED_MODULE_ATTRIBUTES
            ):
                continue
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_sees_imports_and_attributes(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    source = (
        "import os\n"
        "from drumfire._progress import _nothing_here\n"
        "from drumfire import _readahead\n"
        "from . import probe\n"
        "engine._room\n"
        "os._exit(0)\n"
        "point._replace(x=1)\n"
        "class A:\n"
        "    def __init__(self):\n"
        "        self._mine = 1\n"
        "    def same(self, other):\n"
        "        return other._mine + super()._x + self.__class__.__name__\n"
    )
    assert private_uses(path, source) == [
        "2: from drumfire._progress import _nothing_here",
        "5: engine._room",
    ]


def test_no_module_uses_another_modules_private_names() -> None:
    found: list[str] = []
    for path in _files():
        for use in private_uses(path, path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(REPO)}:{use}")
    assert not found, "private names used from another module:\n" + "\n".join(found)

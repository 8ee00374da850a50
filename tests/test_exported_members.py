"""The public surface of the ``drumfire`` package."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import drumfire

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(drumfire.__file__).parent


def test_all_is_sorted() -> None:
    assert drumfire.__all__ == sorted(drumfire.__all__)


def test_all_has_no_duplicates() -> None:
    assert len(set(drumfire.__all__)) == len(drumfire.__all__)


def test_every_exported_name_exists() -> None:
    missing = [name for name in drumfire.__all__ if not hasattr(drumfire, name)]
    assert missing == []


def test_no_private_names_exported() -> None:
    private = [
        name
        for name in drumfire.__all__
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert private == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from drumfire import *", namespace)
    namespace.pop("__builtins__", None)
    assert sorted(namespace) == sorted(drumfire.__all__)


def test_exceptions_share_one_base() -> None:
    for name in drumfire.__all__:
        obj = getattr(drumfire, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, drumfire.DrumfireError), name


def test_version() -> None:
    assert isinstance(drumfire.__version__, str)
    assert drumfire.__version__.count(".") >= 1


def test_import_loads_neither_bench_nor_compare() -> None:
    """``import drumfire`` stays light: the load test and the comparison load on first use."""
    code = "import sys, drumfire; print(sorted(m for m in sys.modules if 'drumfire.' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(out.stdout)
    assert [m for m in loaded if m.startswith(("drumfire.bench", "drumfire.compare"))] == []


def test_bench_is_the_function_whichever_is_imported_first() -> None:
    code = (
        "import drumfire.bench.cli, drumfire, inspect\n"
        "assert callable(drumfire.bench)\n"
        "assert inspect.signature(drumfire.bench.bench).parameters['url']\n"
        "from drumfire import bench, BenchReport\n"
        "assert inspect.isfunction(bench) and BenchReport.__name__ == 'BenchReport'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert drumfire.bench is drumfire.bench  # resolved once, then a plain attribute
    assert callable(drumfire.bench)


@pytest.mark.parametrize("first", ["import drumfire", "import drumfire.bench, drumfire"])
def test_the_bench_names_the_docs_write_dotted_are_there(first: str) -> None:
    """docs/bench.md and the README write ``drumfire.bench.BenchError``,
    ``drumfire.bench.bench`` and ``drumfire.bench.parse_rate_profile``: once ``drumfire.bench``
    was the function, each was an AttributeError ('function' object has no attribute)."""
    code = (
        f"{first}\n"
        "drumfire.bench\n"  # resolved: the function, or the callable package
        "import sys\n"
        "package = sys.modules['drumfire.bench']\n"
        "for name in package.__all__:\n"
        "    assert getattr(drumfire.bench, name) is getattr(package, name), name\n"
        "assert issubclass(drumfire.bench.BenchError, Exception)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_every_exported_exception_is_raised_somewhere() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))
    for name in drumfire.__all__:
        obj = getattr(drumfire, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            raised = re.search(rf"raise {name}\(", source)
            subclass_raised = any(
                re.search(rf"raise {sub.__name__}\(", source) for sub in obj.__subclasses__()
            )
            assert raised or subclass_raised, name


def test_every_exported_name_is_documented_and_tested() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tests = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py")
        if p.name != "test_exported_members.py"
    )  # fmt: skip
    for name in drumfire.__all__:
        if name == "__version__":
            continue
        assert re.search(rf"\b{name}\b", readme), f"{name} is not in the README"
        assert re.search(rf"\b{name}\b", tests), f"no test uses {name}"


def test_reason_is_the_row_error_word() -> None:
    assert drumfire.Reason.TIMEOUT == "timeout"
    result = drumfire.Result("1", None, 1.0, 1, "input: line 3: bad quote")
    assert result.reason == drumfire.Reason.INPUT
    assert {r.value for r in drumfire.Reason} >= {"connect", "reset", "tls", "cancelled"}

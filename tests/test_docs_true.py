"""What the README and docs/*.md say of the commands and the source tree is true.

Every option of every command is documented; every ``--option`` the documents name is one
of drumfire's, of a benchmark script's, or of the other tool the sentence is about; the
defaults in ``drumfire run``'s options table are the command's; the architecture tree names
each module of the package and no file that is gone. (The templates table is checked cell
by cell in tests/unit/test_request.py; the README's Python blocks run in
tests/integration/test_readme_snippets.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from drumfire.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXT = "\n".join(p.read_text(encoding="utf-8") for p in DOCS)
COMMANDS = ["run", "bench", "compare", "serve", "demo"]
LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")

#: Options of other tools that the documents name, each where a sentence is about that tool.
OTHERS = {
    "--data-binary", "--fail", "--form-string", "--max-filesize",  # curl
    "--algorithm",  # osrm-routed
    "--nworkers", "--nthreads",  # dask worker
    "--native", "--nonblocking",  # py-spy
    "--timing",  # pytest, tests/conftest.py
    "--help", "--version",
}  # fmt: skip


def _options(command: str) -> list[click.Option]:
    cmd = main.get_command(click.Context(main), command)
    assert cmd is not None, command
    return [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]


def _benchmark_options() -> set[str]:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "benchmarks").glob("*.py"))
    return set(re.findall(r"add_argument\(\s*(?:\"-\w\",\s*)?\"(--[\w-]+)\"", source))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_documented(command: str) -> None:
    for option in _options(command):
        for name in option.opts + option.secondary_opts:
            if name.startswith("--"):
                assert re.search(rf"{re.escape(name)}(?![\w-])", TEXT), (command, name)


def test_every_option_the_documents_name_exists() -> None:
    known = {n for c in COMMANDS for o in _options(c) for n in o.opts + o.secondary_opts}
    known |= _benchmark_options() | OTHERS
    for path in DOCS:
        unknown = set(LONG.findall(path.read_text(encoding="utf-8"))) - known
        assert not unknown, f"{path.name} names options no command has: {sorted(unknown)}"


def test_the_run_table_gives_the_run_defaults() -> None:
    """``--retries N` (3)`` and the like in the table of "From the shell"."""
    readme = DOCS[0].read_text(encoding="utf-8")
    table = readme[readme.index("Main options of `drumfire run`") :]
    table = table[: table.index("\n\n", table.index("| option |"))]
    stated = re.findall(r"`(--[a-z-]+)(?: [A-Z]+)?` \(([^)`]+)\)", table)
    stated += re.findall(r"`(--max-(?:body|header-size)) (\w+)`", table)
    stated += re.findall(r"up to `(--max-concurrency)`, (\d+)", table)
    assert len(stated) >= 9, stated
    defaults = {o.opts[-1]: o.default for o in _options("run")}
    for name, value in stated:
        default = defaults[name]
        if isinstance(default, float) and default.is_integer():
            default = int(default)
        if default is None and name == "--save-status":
            default = "2xx"  # applied with --save-body; None tells "not given"
        assert str(default) == value, (name, value, default)


def test_the_architecture_tree_names_every_module() -> None:
    readme = DOCS[0].read_text(encoding="utf-8")
    tree = readme[readme.index("## Architecture") : readme.index("### The engine core")]
    package = ROOT / "src" / "drumfire"
    for module in sorted(package.glob("*.py")):
        assert re.search(rf"(?<![\w/]){re.escape(module.name)}\b", tree), module.name
    for folder in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        assert f"{folder.name}/" in tree, folder.name
    for name in set(re.findall(r"(?<![\w.])(_?\w+(?:/\w+)?\.py)\b", tree)):
        found = list(package.glob(f"**/{name}")) + list(ROOT.glob(name))
        assert found or name == "FILE.py", f"the architecture names {name}, which is gone"


def test_the_keep_examples_are_accepted() -> None:
    """The README and --help showed ``--keep '"lat, lon",id'``, which run refuses: ``id``
    is a column every row has (rename it in the input: --keep cannot)."""
    from click.testing import CliRunner

    from drumfire._cli_common import column_list
    from drumfire._job import make_job

    help_text = CliRunner().invoke(main, ["run", "--help"], terminal_width=200).output
    examples = re.findall(r"--keep '([^']*(?:'\"'\"'[^']*)*)'", TEXT + help_text)
    examples = [e for e in examples if '"' in e]  # the quoted names' examples
    assert len(examples) >= 2, examples
    for example in examples:
        names = column_list([example], "--keep")
        make_job("http://h/", keep=names).extractor()  # raises for a column every row has

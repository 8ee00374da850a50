"""The documents a user reads carry no unresolved merge conflict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7}|={7}|>{7})( |$)", re.MULTILINE)


@pytest.mark.parametrize(
    "path", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_no_merge_conflict_markers(path: Path) -> None:
    found = [m.group(0) for m in MARKER.finditer(path.read_text(encoding="utf-8"))]
    assert not found, f"{path.name} has merge conflict markers: {found}"

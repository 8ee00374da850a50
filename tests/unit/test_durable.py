"""Every file drumfire renames into an output is on disk first: ``os.fsync`` of the whole
file, then ``os.replace`` (a power loss after the rename could leave a renamed part empty)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from drumfire._cluster_store import Store
from drumfire._parquet import ParquetSink, drop_parquet_rows, merge_parts
from drumfire._result import Result

pytest.importorskip("pyarrow")


class Journal:
    """The fsyncs (the path, the size then), renames and removals, in their order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, int]] = []
        fsync, replace, remove = os.fsync, os.replace, os.remove

        def synced(fd: Any) -> None:
            fd = fd if isinstance(fd, int) else fd.fileno()
            path = os.readlink(f"/proc/self/fd/{fd}")
            self.events.append(("fsync", path, os.fstat(fd).st_size))
            fsync(fd)

        def replaced(src: Any, dst: Any, **kw: Any) -> None:
            self.events.append(("replace", os.fspath(src), os.stat(src).st_size))
            replace(src, dst, **kw)

        def removed(path: Any, **kw: Any) -> None:
            self.events.append(("remove", os.fspath(path), 0))
            remove(path, **kw)

        monkeypatch.setattr(os, "fsync", synced)
        monkeypatch.setattr(os, "replace", replaced)
        monkeypatch.setattr(os, "remove", removed)

    def renames(self) -> list[str]:
        """The files renamed; each was synced whole before its rename."""
        found = []
        for i, (kind, path, size) in enumerate(self.events):
            if kind == "replace":
                assert ("fsync", path, size) in self.events[:i], (path, self.events)
                found.append(os.path.basename(path))
        return found


def result(i: int, n: Any, error: str = "") -> Result:
    return Result(f"r{i}", 200 if not error else None, 1.0, 1, error, {"n": n})


def test_parquet_parts_are_synced_before_their_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.parquet"
    journal = Journal(monkeypatch)
    sink = ParquetSink(str(out), ["n"], [])
    sink.write(result(0, 1))
    sink.flush()  # the schema: n is int64
    sink.write(result(1, "x"))  # does not fit: kept aside in _unfit.jsonl
    sink.write(result(2, "y"))
    sink.flush()
    sink.write(result(3, 3, "cancelled"))
    sink.flush()
    assert journal.renames() == [f".part-0000{i}.parquet.tmp" for i in range(3)]
    # _unfit.jsonl is on disk before the part whose values it holds.
    kinds = [(k, os.path.basename(p)) for k, p, _ in journal.events]
    assert kinds.index(("fsync", "_unfit.jsonl")) < kinds.index(
        ("replace", ".part-00001.parquet.tmp")
    )

    # The merge of small parts (in a child process at close; here, in this one): the
    # merged part synced, renamed, and that rename on disk before the parts go.
    journal.events.clear()
    names = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    merge_parts(str(out), names, 3)
    assert journal.renames() == [".part-00003.parquet.tmp"]
    kinds = [(k, os.path.basename(p)) for k, p, _ in journal.events]
    assert kinds.index(("fsync", "out.parquet")) < kinds.index(("remove", names[0]))

    # A resume's rewrite without the rows to send again, and of _unfit.jsonl then.
    journal.events.clear()
    assert drop_parquet_rows(str(out), lambda r: r[0] in ("r1", "r3")) == 2
    ParquetSink(str(out), ["n"], [], append=True).close()
    assert journal.renames()[:2] == [".part-00003.parquet.tmp", "._unfit.jsonl.tmp"]
    lines = (out / "_unfit.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r2"]


def test_a_cluster_part_and_its_manifest_are_synced_before_their_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(str(tmp_path))
    journal = Journal(monkeypatch)
    store.put_text("_drumfire_cluster.json", "{}")
    store.write("part-000000.parquet", b"PAR1 rows PAR1", {"rows": 1, "failed": 0})
    store.replace("part-000000.parquet", b"PAR1 other rows PAR1")
    names = journal.renames()
    assert names[0] == "_drumfire_cluster.json.tmp"
    assert [n.split(".")[1] for n in names[1:]] == ["part-000000", "part-000000"]

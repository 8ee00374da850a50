"""The output file's lock, overwrite rule and rewrite (real files, real forks)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from drumfire._errors import UsageError
from drumfire._outfile import (
    AGAIN_SUFFIX,
    REWRITE_SUFFIX,
    FileProblem,
    GuardedSink,
    OutputLock,
    check_summary_path,
)
from drumfire._result import Result
from drumfire._resume import DoneIds
from drumfire._sinks import open_sink


def test_a_second_lock_on_the_same_file_names_the_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "o.csv")
    lock = OutputLock.acquire(path)
    assert lock is not None
    try:
        with pytest.raises(UsageError, match=rf"another drumfire run \(pid {os.getpid()}\)"):
            OutputLock.acquire(path)
    finally:
        lock.close()
    again = OutputLock.acquire(path)
    assert again is not None
    again.close()


def test_a_forked_child_does_not_keep_the_output_locked(tmp_path: Path) -> None:
    # -p N workers and the read-ahead process are forks: were they to keep their
    # copy of the lock, a parent killed with -9 would leave the output locked.
    path = str(tmp_path / "o.csv")
    lock = OutputLock.acquire(path)
    assert lock is not None
    read_fd, write_fd = os.pipe()
    ready_r, ready_w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: say it runs (its fork hooks have), wait for the parent, leave
        try:
            os.close(write_fd)
            os.write(ready_w, b"!")
            os.read(read_fd, 1)
        finally:
            os._exit(0)
    os.close(read_fd)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"!"
        lock.close()
        second = OutputLock.acquire(path)  # the child is alive and holds no copy
        assert second is not None
        second.close()
    finally:
        os.close(write_fd)
        os.close(ready_r)
        os.waitpid(pid, 0)


def test_devices_are_neither_locked_nor_refused() -> None:
    assert OutputLock.acquire("/dev/null") is None


def test_overwrite_rule(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("id\n1\n")
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    try:
        with pytest.raises(UsageError, match=r"--resume.*--overwrite"):
            lock.refuse_or_truncate(overwrite=False)
        assert path.read_text() == "id\n1\n"
        lock.refuse_or_truncate(overwrite=True)
        assert path.read_text() == ""
    finally:
        lock.close()


def test_rewrite_replaces_the_file_and_keeps_it_locked(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"id":"1","error":""}\n{"id":"2","error":"cancelled"}\n')
    os.chmod(path, 0o640)
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    try:
        lock.rewrite("jsonl", lambda record: record[2] == "cancelled")
        assert path.read_bytes() == b'{"id":"1","error":""}\n'
        assert oct(path.stat().st_mode & 0o777) == oct(0o640)
        assert lock.gone() is None
        with pytest.raises(UsageError, match="another drumfire run"):
            OutputLock.acquire(str(path))
        assert [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]  # no temporary file left
    finally:
        lock.close()


def test_a_rewrite_killed_midway_leaves_a_file_the_next_one_removes(tmp_path: Path) -> None:
    """The rewrite's temporary file had a random name (mkstemp): a kill -9 while it was
    written left it for good. It has one name now, which the next rewrite replaces and
    a run that completes the input removes."""
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"id":"1","error":""}\n{"id":"2","error":"cancelled"}\n')
    stale = tmp_path / f".o.jsonl{REWRITE_SUFFIX}"
    stale.write_bytes(b'{"id":"1"')  # what a killed run leaves
    os.chmod(stale, 0o400)
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    try:
        lock.rewrite("jsonl", lambda record: record[2] == "cancelled")
        assert path.read_bytes() == b'{"id":"1","error":""}\n'
        assert [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]
        stale.write_bytes(b"")
        lock.forget_again()
        assert [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]
    finally:
        lock.close()


def test_a_removed_output_is_a_file_problem_at_the_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    sink = GuardedSink(open_sink(str(path), None, [], [], append=True), str(path), lock)
    sink.write(Result("1", 200, 1.0, 1, ""))
    sink.flush()
    path.unlink()
    with pytest.raises(FileProblem, match="removed during the run"):
        sink.flush()
    sink.close()  # reported once: closing stays quiet
    lock.close()


def test_summary_path_checks(tmp_path: Path) -> None:
    check_summary_path(str(tmp_path / "s.json"))
    assert not (tmp_path / "s.json").exists()  # checked, not left behind
    with pytest.raises(UsageError, match="is a directory"):
        check_summary_path(str(tmp_path))
    with pytest.raises(UsageError, match="No such file"):
        check_summary_path(str(tmp_path / "nope" / "s.json"))


def test_rewrite_through_a_symbolic_link_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_bytes(b'{"id":"1","error":""}\n{"id":"2","error":"cancelled"}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    lock = OutputLock.acquire(str(link))
    assert lock is not None
    try:
        lock.rewrite("jsonl", lambda record: record[2] == "cancelled")
    finally:
        lock.close()
    assert link.is_symlink()
    assert real.read_bytes() == b'{"id":"1","error":""}\n'


def test_rows_sent_again_are_remembered_until_a_run_completes(tmp_path: Path) -> None:
    """remember_again adds this run's rows to send again to those earlier runs left
    (returned), in a file beside the output; forget_again removes it."""
    path = str(tmp_path / "o.csv")
    lock = OutputLock.acquire(path)
    assert lock is not None
    try:
        assert len(lock.remember_again(DoneIds())) == 0
        assert os.listdir(tmp_path) == ["o.csv"]  # nothing to remember: no file
        assert len(lock.remember_again(DoneIds(["a", "b"]))) == 0
        marker = tmp_path / f".o.csv{AGAIN_SUFFIX}"
        assert sorted(os.listdir(tmp_path)) == [marker.name, "o.csv"]
        pending = lock.remember_again(DoneIds(["b", "c"]))  # a second stopped run
        assert ("a" in pending, "b" in pending, "c" in pending) == (True, True, False)
        pending = lock.remember_again(DoneIds())
        assert [i in pending for i in "abcd"] == [True, True, True, False]
        marker.write_bytes(marker.read_bytes()[:-1])
        with pytest.raises(UsageError, match=r"^--resume: '.*' is damaged: remove it"):
            lock.remember_again(DoneIds())
        lock.forget_again()
        assert os.listdir(tmp_path) == ["o.csv"]
        lock.forget_again()  # none: nothing to do
    finally:
        lock.close()


def test_the_list_of_rows_sent_again_leaves_no_temporary_file_and_takes_the_outputs_mode(
    tmp_path: Path,
) -> None:
    """A run killed while writing the list (kill -9) left a randomly named .tmp file that
    nothing removed; its one name is removed by the next run now. The list was written
    0600 whatever the output's mode; it takes the output's now, as the rewrite does."""
    path = tmp_path / "o.csv"
    path.write_text("")
    os.chmod(path, 0o640)
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    marker = tmp_path / f".o.csv{AGAIN_SUFFIX}"
    stale = tmp_path / f"{marker.name}.tmp"
    try:
        stale.write_bytes(b"half a list")  # what a killed run leaves
        os.chmod(stale, 0o400)  # even one this run could not open for writing
        assert len(lock.remember_again(DoneIds())) == 0  # reading the list removes it
        assert sorted(os.listdir(tmp_path)) == ["o.csv"]
        stale.write_bytes(b"half a list")
        lock.remember_again(DoneIds(["a"]))
        assert sorted(os.listdir(tmp_path)) == [marker.name, "o.csv"]
        assert marker.stat().st_mode & 0o777 == 0o640
        stale.write_bytes(b"half a list")
        lock.forget_again()  # a run that completes the input removes both
        assert os.listdir(tmp_path) == ["o.csv"]
    finally:
        lock.close()


def test_overwrite_drops_the_replaced_outputs_rows_to_send_again(tmp_path: Path) -> None:
    """They belonged to the output --overwrite replaces: kept, a later --resume would send
    those rows again though the new output holds them."""
    path = tmp_path / "o.csv"
    path.write_text("id,status\na,200\n")
    lock = OutputLock.acquire(str(path))
    assert lock is not None
    try:
        lock.remember_again(DoneIds(["a"]))
        lock.refuse_or_truncate(overwrite=True)
        assert os.listdir(tmp_path) == ["o.csv"]
        assert path.read_text() == ""
    finally:
        lock.close()


def test_each_output_has_its_own_list_of_rows_sent_again(tmp_path: Path) -> None:
    """Beside the file, a Parquet directory, or a SQLite database (one per table)."""
    pytest.importorskip("pyarrow")
    names = []
    for output, fmt in [(tmp_path / "o.parquet", "parquet"),
                        (f"sqlite:///{tmp_path}/o.db?table=runs", "sqlite"),
                        (tmp_path / "o.db", "sqlite")]:  # fmt: skip
        lock = OutputLock.acquire_output(str(output), fmt)
        assert lock is not None
        try:
            lock.remember_again(DoneIds(["x"]))
            names.append(sorted(n for n in os.listdir(tmp_path) if n.endswith(AGAIN_SUFFIX)))
        finally:
            lock.close()
    assert names[-1] == [f".o.db.results{AGAIN_SUFFIX}", f".o.db.runs{AGAIN_SUFFIX}",
                         f".o.parquet{AGAIN_SUFFIX}"]  # fmt: skip


def test_giving_the_room_back_fails_as_one_line_naming_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check_room's ftruncate (the room given back) raised its OSError raw; it is the line
    a full disk gives now. A full disk itself, and a file system without fallocate
    (left to the first flush), as before."""
    import errno

    path = str(tmp_path / "o.csv")
    lock = OutputLock.acquire(path)
    assert lock is not None
    try:
        lock.check_room()
        assert lock.size() == 0

        def fails(fd: int, length: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(os, "ftruncate", fails)
        with pytest.raises(UsageError) as info:
            lock.check_room()  # the room was taken; giving it back failed
        assert str(info.value) == f"cannot write output {path!r}: Input/output error"
        monkeypatch.undo()
        os.ftruncate(lock.fd, 0)

        def no_room(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "posix_fallocate", no_room)
        with pytest.raises(UsageError) as info:
            lock.check_room()
        assert str(info.value) == f"cannot write output {path!r}: No space left on device"

        def unsupported(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

        monkeypatch.setattr(os, "posix_fallocate", unsupported)
        lock.check_room()  # nothing to say before the first flush
        assert lock.size() == 0
    finally:
        lock.close()


@pytest.mark.parametrize("name", ["out.parquet", "out.sqlite", "out.csv"])
def test_a_second_writer_is_told_the_output_it_gave(tmp_path: Path, name: str) -> None:
    # For a Parquet output the line named the lock file inside it
    # ("output 'out.parquet/.drumfire.lock' is being written..."), not the -o given.
    output = str(tmp_path / name)
    fmt = name.rsplit(".", 1)[1]
    first = OutputLock.acquire_output(output, "csv" if fmt == "csv" else fmt)
    assert first is not None
    try:
        with pytest.raises(UsageError) as caught:
            OutputLock.acquire_output(output, "csv" if fmt == "csv" else fmt)
        assert str(caught.value).startswith(
            f"output {output!r} is being written by another drumfire run (pid {os.getpid()})"
        )
    finally:
        first.close()

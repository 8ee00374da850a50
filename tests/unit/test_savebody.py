"""--save-body on its own: path confinement, the temporary name and the rename, statuses."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drumfire._errors import UsageError
from drumfire._http import ResponseReader
from drumfire._savebody import (
    TEMP_SUFFIX,
    SaveError,
    SaveProblem,
    Saver,
    SaveSpec,
    parse_statuses,
)


def saver(root: Path, **spec: Any) -> Saver:
    return Saver(SaveSpec("{p}", str(root), **spec), lambda row: str(row["p"]))


def test_statuses() -> None:
    assert parse_statuses("2xx") == frozenset(range(200, 300))
    assert parse_statuses("200, 404") == {200, 404}
    assert len(parse_statuses("all")) == 500
    with pytest.raises(UsageError, match="--save-status: '2x'"):
        parse_statuses("2x")
    with pytest.raises(UsageError):
        parse_statuses("700")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../x", "'..' step"),
        ("a/../../x", "'..' step"),
        ("/etc/passwd", "absolute path"),
        ("", "names no file"),
        ("dir/", "names no file"),
        ("a\x00b", "NUL"),
        ("a\ud800b", "a lone surrogate"),  # it was "template: row N: 'utf-8' codec can't…"
        (".", "names the target directory itself"),  # no link: it said "through a link"
    ],
)
def test_refused_paths(tmp_path: Path, path: str, why: str) -> None:
    with pytest.raises(SaveProblem, match=r"^save: ") as info:
        saver(tmp_path).target({"p": path})
    assert why in info.value.error


@pytest.mark.parametrize("path", ["../x", "images/evil/../../x.jpg", "a/../b", "a\\..\\b"])
def test_any_dotdot_is_refused_and_the_message_says_so(tmp_path: Path, path: str) -> None:
    """'a/../b' would stay inside, and is refused all the same: the message does not claim
    that it steps out (it once said "a '..' step out of the target directory")."""
    with pytest.raises(SaveProblem) as info:
        saver(tmp_path).target({"p": path})
    assert info.value.error == (
        f"save: {path!r} has a '..' step (refused in any saved path, so none can leave "
        "--save-dir)"
    )


@pytest.mark.parametrize("path", [".a.drumfire-part", "sub/.x.jpg.1234.drumfire-part"])
def test_a_name_like_a_temporary_file_is_refused(tmp_path: Path, path: str) -> None:
    """A saved file named as drumfire's temporary files are (``.NAME.….drumfire-part``)
    was deleted, complete, by the next run's clean-up of a stopped run's leftovers, while
    the output still said it was saved there. Such a name is the row's error now."""
    s = saver(tmp_path)
    with pytest.raises(SaveProblem) as info:
        s.target({"p": path})
    assert "drumfire's temporary files" in info.value.error
    s.target({"p": "a.drumfire-part"})  # not hidden: the clean-up leaves it alone
    s.target({"p": ".drumfire-part.jpg"})


def test_a_symlink_out_is_refused_one_inside_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (root / "away").symlink_to(tmp_path / "out")
    (root / "here").symlink_to(root / "in")
    with pytest.raises(SaveProblem, match="symbolic link"):
        saver(root).target({"p": "away/x"})
    target = saver(root).target({"p": "here/x"})
    assert target.shown == "here/x"


def test_a_link_under_the_final_name_is_followed(tmp_path: Path) -> None:
    """As curl -o writes through it: the file the link leads to is replaced (whole, by a
    rename beside it), the link stays; a dangling link inside makes its file."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "target.bin").write_bytes(b"old")
    (tmp_path / "link.bin").symlink_to("real/target.bin")
    (tmp_path / "dangling.bin").symlink_to("real/new.bin")
    for name in ("link.bin", "dangling.bin"):
        target = saver(tmp_path).target({"p": name})
        sink = target.start(200)
        assert sink is not None
        sink.write(b"new body")
        sink.finish()
        assert target.commit() == {"saved_path": name, "saved_bytes": 8}
    assert (tmp_path / "link.bin").is_symlink()
    assert (tmp_path / "dangling.bin").is_symlink()
    assert (tmp_path / "real" / "target.bin").read_bytes() == b"new body"
    assert (tmp_path / "real" / "new.bin").read_bytes() == b"new body"
    assert saver(tmp_path).complete({"p": "link.bin"}) == {
        "saved_path": "link.bin",
        "saved_bytes": 8,
    }


def test_a_dot_dot_inside_a_name_is_fine(tmp_path: Path) -> None:
    assert saver(tmp_path).target({"p": "a..b/c..d"}).shown == "a..b/c..d"


def test_body_goes_to_a_temporary_name_then_is_renamed(tmp_path: Path) -> None:
    target = saver(tmp_path, sha256=True).target({"p": "sub/f.bin"})
    sink = target.start(200)
    assert sink is not None
    sink.write(b"hello ")
    temps = [p for p in (tmp_path / "sub").iterdir()]
    assert len(temps) == 1
    assert temps[0].name.startswith(".f.bin.")
    assert temps[0].name.endswith(TEMP_SUFFIX)
    assert not (tmp_path / "sub" / "f.bin").exists()  # never half a file under its name
    sink.write(b"world")
    sink.finish()
    # Complete, but not the final name until the engine knows it is the row's last answer.
    assert [p.name for p in (tmp_path / "sub").iterdir()] == [temps[0].name]
    assert target.commit() == {
        "saved_path": "sub/f.bin",
        "saved_bytes": 11,
        "saved_sha256": hashlib.sha256(b"hello world").hexdigest(),
    }
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.bin"]
    assert (tmp_path / "sub" / "f.bin").read_bytes() == b"hello world"
    assert target.commit() is None  # committed once


def test_a_name_that_fits_is_saved_though_its_temporary_name_would_not(tmp_path: Path) -> None:
    """240 bytes fit NAME_MAX (255); '.NAME.<random>.drumfire-part' would not: the
    temporary file takes a short name instead (curl -o saves such a name too)."""
    name = "é" * 120  # 240 bytes in UTF-8
    target = saver(tmp_path).target({"p": name})
    sink = target.start(200)
    assert sink is not None
    sink.write(b"long")
    [temp] = os.listdir(tmp_path)
    assert temp.startswith(".")
    assert temp.endswith(TEMP_SUFFIX)
    assert len(temp) < len(name)
    sink.finish()
    assert target.commit() == {"saved_path": name, "saved_bytes": 4}
    assert os.listdir(tmp_path) == [name]


def test_abort_removes_the_temporary_file(tmp_path: Path) -> None:
    target = saver(tmp_path).target({"p": "f"})
    sink = target.start(200)
    assert sink is not None
    sink.write(b"part")
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    assert target.commit() is None


def test_an_answer_that_is_not_the_last_leaves_no_file(tmp_path: Path) -> None:
    """A retried or redirected answer's body is discarded; a later answer replaces an
    earlier one that was not discarded, saved or not: never an earlier body under the name."""
    (tmp_path / "f").write_bytes(b"from an earlier run")
    target = saver(tmp_path, statuses=frozenset({503})).target({"p": "f"})
    sink = target.start(503)
    assert sink is not None
    sink.write(b"first attempt")
    sink.finish()
    target.discard()  # the engine retries it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
    sink = target.start(503)
    assert sink is not None
    sink.write(b"second attempt")
    sink.finish()
    assert target.start(200) is None  # the next answer is not saved: nor is the one before
    assert target.commit() is None
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    assert (tmp_path / "f").read_bytes() == b"from an earlier run"  # not claimed by the row


def test_a_directory_under_the_final_name_is_a_save_error_at_commit(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inside").write_bytes(b"")
    target = saver(tmp_path).target({"p": "d"})
    sink = target.start(200)
    assert sink is not None
    sink.write(b"body")
    sink.finish()
    with pytest.raises(SaveError) as info:
        target.commit()
    assert info.value.reason.startswith("save: d: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # the temporary file is gone


def test_statuses_not_saved_get_no_sink(tmp_path: Path) -> None:
    target = saver(tmp_path).target({"p": "f"})
    assert target.start(404) is None
    assert saver(tmp_path, statuses=frozenset({404})).target({"p": "f"}).start(404) is not None


def test_resume_takes_a_complete_file_as_done(tmp_path: Path) -> None:
    (tmp_path / "done.bin").write_bytes(b"12345")
    (tmp_path / "dir").mkdir()
    assert saver(tmp_path).complete({"p": "done.bin"}) == {
        "saved_path": "done.bin",
        "saved_bytes": 5,
    }
    assert saver(tmp_path, sha256=True).complete({"p": "done.bin"}) == {
        "saved_path": "done.bin",
        "saved_bytes": 5,
        "saved_sha256": hashlib.sha256(b"12345").hexdigest(),
    }
    assert saver(tmp_path).complete({"p": "missing.bin"}) is None
    assert saver(tmp_path).complete({"p": "dir"}) is None
    assert saver(tmp_path).complete({"p": "../done.bin"}) is None  # the prepare refuses it
    assert saver(tmp_path).complete({}) is None  # no column: the prepare says so


def test_a_committed_file_is_complete_for_its_own_row_only(tmp_path: Path) -> None:
    """Rows rendered to one path: the file names the row it was committed for."""
    s = saver(tmp_path)
    target = s.target({"p": "same.txt"})
    sink = target.start(200)
    assert sink is not None
    sink.write(b"row a's answer")
    sink.finish()
    assert target.commit("a") == {"saved_path": "same.txt", "saved_bytes": 14}
    try:
        os.getxattr(tmp_path / "same.txt", "user.drumfire.row")
    except OSError:
        pytest.skip("this file system keeps no extended attributes")
    assert s.complete({"p": "same.txt"}, row_id="a") == {"saved_path": "same.txt",
                                                         "saved_bytes": 14}
    assert s.complete({"p": "same.txt"}, row_id="b") is None  # another row's answer
    assert s.complete({"p": "same.txt"}) is not None  # no id given: as before


def test_clean_removes_only_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f".x.1234{TEMP_SUFFIX}").write_bytes(b"")
    (tmp_path / "a" / f".0123abcd{TEMP_SUFFIX}").write_bytes(b"")  # a long name's
    (tmp_path / "keep.bin").write_bytes(b"")
    assert saver(tmp_path).clean() == 2
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "keep.bin"]


def test_clean_leaves_the_files_a_live_process_holds(tmp_path: Path) -> None:
    """Another run's body on its way (or complete, not yet renamed) is locked: --resume's
    cleaning leaves it; the file of a run that stopped (no lock) goes."""
    writing = saver(tmp_path).target({"p": "writing"})
    sink = writing.start(200)
    assert sink is not None
    sink.write(b"half")
    complete = saver(tmp_path).target({"p": "complete"})
    done = complete.start(200)
    assert done is not None
    done.write(b"whole")
    done.finish()
    (tmp_path / f".stopped.1234abcd{TEMP_SUFFIX}").write_bytes(b"")
    assert saver(tmp_path).clean() == 1
    assert len(list(tmp_path.iterdir())) == 2
    sink.write(b" and the rest")
    sink.finish()
    assert writing.commit() == {"saved_path": "writing", "saved_bytes": 17}
    assert complete.commit() == {"saved_path": "complete", "saved_bytes": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complete", "writing"]


def test_a_temporary_file_removed_before_its_lock_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race between creating a temporary file and locking it: another run's cleaning
    comes in between and removes it (it is not locked yet); a new one is made."""
    import fcntl

    flock = fcntl.flock
    cleaned: list[int] = []

    def late_flock(fd: int, how: int) -> None:
        if not cleaned:  # the first lock: another run cleans just before it
            cleaned.append(-1)
            cleaned[0] = saver(tmp_path).clean()
        flock(fd, how)

    monkeypatch.setattr(fcntl, "flock", late_flock)
    target = saver(tmp_path).target({"p": "f"})
    sink = target.start(200)
    assert sink is not None
    assert cleaned == [1]
    sink.write(b"body")
    sink.finish()
    assert target.commit() == {"saved_path": "f", "saved_bytes": 4}
    assert os.listdir(tmp_path) == ["f"]


def test_a_target_that_cannot_be_written_is_a_save_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    target = saver(tmp_path).target({"p": "file/under"})
    with pytest.raises(SaveError) as info:
        target.start(200)
    assert info.value.reason.startswith("save: file/under: ")


def test_reader_streams_the_body_to_the_sink(tmp_path: Path) -> None:
    """ResponseReader with a saver: the body goes to the file, chunk by chunk."""
    reader = ResponseReader(max_body=1 << 20)
    target = saver(tmp_path).target({"p": "r.bin"})
    reader.expect()
    reader.saver = target
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    assert reader.feed_all(head + b"01234") == []
    assert reader.sink is not None
    [response] = reader.feed_all(b"56789")
    assert response.status == 200
    assert response.body == b""
    assert target.commit() == {"saved_path": "r.bin", "saved_bytes": 10}
    assert (tmp_path / "r.bin").read_bytes() == b"0123456789"
    assert os.listdir(tmp_path) == ["r.bin"]
    # the next answer on the connection is kept as usual
    reader.expect()
    [plain] = reader.feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert plain.body == b"ok"


def test_reader_ends_an_answer_whose_body_cannot_be_saved(tmp_path: Path) -> None:
    """A sink that fails (here its file cannot be made) ends the answer at once: its
    status, the save reason, and a connection not to reuse (the rest is unread)."""
    (tmp_path / "file").write_bytes(b"")
    reader = ResponseReader()
    reader.expect()
    reader.saver = saver(tmp_path).target({"p": "file/under"})
    [response] = reader.feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
    assert (response.status, response.body, response.keep_alive) == (200, b"", False)
    assert response.error.startswith("save: file/under: ")
    assert reader.sink is None
    assert reader.outstanding == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_reader_drops_a_half_body(tmp_path: Path) -> None:
    reader = ResponseReader()
    target = saver(tmp_path).target({"p": "h.bin"})
    reader.expect()
    reader.saver = target
    reader.feed_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
    reader.drop_sink()
    assert os.listdir(tmp_path) == []


def test_a_row_whose_file_was_complete_counts_as_ok() -> None:
    from drumfire._result import Result, Stats

    stats = Stats(lambda: 0.0)
    stats.add(Result("a", None, 0.0, 0, "", {"saved_path": "a", "saved_bytes": 1}))
    assert stats.ok == 1
    assert not stats.reasons


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="./\\a~ ", max_size=12))
def test_any_path_is_refused_or_inside(tmp_path: Path, path: str) -> None:
    """Whatever a row renders: either a save: refusal, or a file inside the directory."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    try:
        target = saver(root).target({"p": path})
    except SaveProblem:
        return
    real = os.path.realpath(target.path)
    assert os.path.commonpath([real, str(root.resolve())]) == str(root.resolve())
    assert real != str(root.resolve())

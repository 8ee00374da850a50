"""The output file of ``drumfire run``: one writer at a time, no silent overwrite, clear ends.

* **One writer.** :class:`OutputLock` holds an advisory ``flock`` on the
  output file itself for the whole run, so a second run on the same file
  stops at once, naming the process that holds it (read from ``/proc/locks``
  on Linux). The kernel drops the lock whatever ends the process, ``kill -9``
  included; there is no lock file to clean up. Forked children (``-p N``
  workers, the read-ahead process) close their copy at once, so a child that
  outlives its parent for a moment does not keep the output locked.
* **No silent overwrite.** An existing non-empty output is refused unless
  the run says ``--resume`` or ``--overwrite``; ``--overwrite`` truncates it
  only once the lock is held.
* **Rewriting for resume.** Rows to send again (``cancelled``, or chosen with
  ``--retry-failed``) are removed by writing the kept rows to a temporary
  file beside the output, locking it, and renaming it over the output: a
  crash leaves either the old file or the new one, never half of each. A run
  that waited on the old file's lock sees the rename (its file is no longer
  the one at the path) and tries again on the new one.
* **Rows sent again stay marked until sent.** Before the rewrite drops them,
  the ids of the rows to send again are added to a file beside the output
  (:meth:`OutputLock.remember_again`), removed only by a run that completes
  the input: a ``--resume`` after a run stopped before it re-sent them sends
  them, and never takes a file under their name, an older answer's, for theirs.
* **Room before the first request.** :meth:`OutputLock.check_room` reserves
  :data:`ROOM` bytes on the output's disk and gives them back, so a full disk
  (or quota, or file size limit) stops the run before anything is sent:
  JSON Lines and Parquet write nothing before their first flush, and a run
  that met the full disk only then would have sent every request in vain.
* **Clear ends.** :class:`GuardedSink` turns an ``OSError`` of the output
  (disk full, I/O error) into one :class:`FileProblem` naming the path and
  the reason, and at each flush checks that the path still leads to the
  file being written (a directory removed under a run would otherwise make
  every later row vanish without a word).

Only regular files are locked and checked: ``/dev/null``, ``/dev/full``, a
FIFO or standard output are written as they are. The typed outputs lock a
file of their own: a Parquet dataset directory its ``.drumfire.lock``, a
SQLite output its database file; their sinks replace and resume the rows
themselves (:meth:`OutputLock.rewrite` and ``--overwrite`` ask them to).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import uuid
from array import array
from collections.abc import Callable
from typing import Any

from ._errors import DrumfireError, UsageError
from ._resume import DoneIds, Record, holds_rows, write_kept
from ._sinks import TABLE_FORMATS, Sink

__all__ = [
    "AGAIN_SUFFIX",
    "REWRITE_SUFFIX",
    "ROOM",
    "FileProblem",
    "GuardedSink",
    "OutputLock",
    "check_summary_path",
    "refuse_input_as_output",
]

#: The room a run must find on the output's disk before its first request: a
#: few hundred rows, so a disk that is full, or all but, is found then.
ROOM = 64 * 1024
#: What posix_fallocate says when the room is not there (a file size limit:
#: EFBIG); other errors (a file system without it) leave the check to the first flush.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
#: The file beside an output that lists the rows dropped to be sent again and
#: perhaps not sent yet (:meth:`OutputLock.remember_again`): ``.NAME`` + this.
AGAIN_SUFFIX = ".drumfire-again"
#: The file :meth:`OutputLock.rewrite` writes the kept rows to: ``.NAME`` + this.
REWRITE_SUFFIX = ".drumfire-rewrite"
#: The file beside an output whose modification time is when the output's batch began
#: (:meth:`OutputLock.start_batch`), and which names the batch: ``.NAME`` + this.
BATCH_SUFFIX = ".drumfire-batch"
_BATCH_TEXT = b"drumfire: this output's batch began at this file's modification time\n"
_BATCH_ID = b"batch "  # the second line: its id, which each file saved in it carries
_AGAIN_HEAD = b"drumfire: ids of rows to send again, 8-byte keys\n"


class FileProblem(DrumfireError):
    """A file of the run could not be written once requests were under way (exit 1)."""


#: Lock descriptors this process holds; a forked child closes its copies.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _holder(st: os.stat_result) -> str:
    """``pid N`` of the process holding a flock on the file of ``st`` (Linux), if it shows."""
    found = None
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                # "3: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF" ("->" marks a waiter)
                parts = line.split()
                if len(parts) < 6 or parts[1] != "FLOCK":
                    continue
                dev = parts[5].split(":")
                if len(dev) != 3 or int(dev[2]) != st.st_ino:
                    continue
                same_dev = (int(dev[0], 16), int(dev[1], 16)) == (
                    os.major(st.st_dev),
                    os.minor(st.st_dev),
                )
                if same_dev or found is None:
                    found = parts[4]
                if same_dev:
                    break
    except (OSError, ValueError):
        pass
    return f"pid {found}" if found else "its pid is not known"


def _is_regular(path: str) -> bool | None:
    """True/False for an existing path, None when it does not exist."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return None
    except OSError:
        return True  # let opening it report the problem


class OutputLock:
    """An exclusive ``flock`` on the output file, held until :meth:`close`."""

    def __init__(self, path: str, fd: int, created: bool) -> None:
        self.path = path
        self.fd = fd
        self.created = created  # this run made the file (remove it if it stays empty)
        self.output = path  # the -o value: differs from path for the typed outputs
        self.fmt = ""  # set for the typed outputs (parquet, sqlite)
        _HELD.add(fd)

    @classmethod
    def acquire_output(cls, output: str, fmt: str) -> OutputLock | None:
        """:meth:`acquire` for ``-o output`` written in ``fmt``."""
        if fmt not in TABLE_FORMATS:
            return cls.acquire(output)
        if fmt == "parquet":
            from ._parquet import LOCK_NAME, require_pyarrow

            require_pyarrow(f"output {output!r}")  # before the directory: nothing is left
            try:  # the dataset directory, not its parents: a missing one is a usage error
                os.mkdir(output)
            except FileExistsError:
                if not os.path.isdir(output):
                    raise UsageError(f"cannot write output {output!r}: Not a directory") from None
            except OSError as exc:
                raise UsageError(f"cannot write output {output!r}: {exc.strerror or exc}") from None

            lock = cls.acquire(os.path.join(output, LOCK_NAME), shown=output)
        else:
            from ._sqlite import sqlite_target

            lock = cls.acquire(sqlite_target(output)[0])
        if lock is not None:
            lock.output, lock.fmt = output, fmt
        return lock

    @classmethod
    def acquire(cls, path: str, shown: str | None = None) -> OutputLock | None:
        """Create or open ``path`` and lock it; None for a path that is not a regular file.

        Raises :class:`UsageError` when it cannot be written or another run holds it,
        naming ``shown`` (the ``-o`` given: a Parquet directory, not its lock file).
        """
        for _ in range(20):  # each turn: the file at the path changed under us
            regular = _is_regular(path)
            if regular is False:
                return None
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                raise UsageError(f"cannot write output {path!r}: {exc.strerror or exc}") from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    os.close(fd)
                    return None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UsageError(
                        f"output {shown or path!r} is being written by another drumfire run "
                        f"({_holder(st)}); wait for it to end, or choose another -o"
                    ) from None
                except OSError:
                    pass  # a file system without flock (some network ones): go on unlocked
                try:
                    now = os.stat(path)
                except FileNotFoundError:
                    now = None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            if now is not None and (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                return cls(path, fd, created=regular is None)
            os.close(fd)  # renamed or removed after we opened it: open the new one
        raise UsageError(f"output {path!r} keeps being replaced by another process")

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def check_room(self) -> None:
        """Raise :class:`UsageError` when the output's disk has no :data:`ROOM` left.

        ``posix_fallocate`` reserves the room past the end of the locked file
        (the output itself, or a typed output's lock file or database) and
        ``ftruncate`` gives it back: nothing is written, a few microseconds.
        A ``kill -9`` between the two leaves zeros past the end: a CSV or JSON
        Lines output's ``--resume`` cuts them off as a torn line, SQLite reads
        its pages by the size in its header, and a lock file holds nothing. Any
        ``OSError`` on the way (the room given back included) is that one line too.
        """
        try:
            size = self.size()
            try:
                os.posix_fallocate(self.fd, size, ROOM)
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    raise
            finally:
                if self.size() != size:
                    os.ftruncate(self.fd, size)
        except OSError as exc:
            why = exc.strerror or exc
            raise UsageError(f"cannot write output {self.output!r}: {why}") from None

    def refuse_or_truncate(self, overwrite: bool) -> None:
        """No silent overwrite: a non-empty file needs ``--resume`` or ``--overwrite``.

        A typed output is replaced by its sink (opened without ``append``). The rows
        a replaced file had to send again (:meth:`remember_again`) go once it is empty
        (a typed output's, when the run completes): not before, or a run stopped in
        between would leave the old rows without the list that guards them.
        """
        if self.fmt:
            if not overwrite and holds_rows(self.output, self.fmt):
                raise UsageError(
                    f"output {self.output!r} already holds results; add --resume to complete "
                    "it (--retry-failed to also re-send failed rows), or --overwrite to replace it"
                )
            return
        if self.size() == 0:
            return
        if not overwrite:
            raise UsageError(
                f"output {self.path!r} already holds results; add --resume to complete it "
                "(--retry-failed to also re-send failed rows), or --overwrite to replace it"
            )
        try:
            os.ftruncate(self.fd, 0)
        except OSError as exc:
            raise UsageError(
                f"cannot overwrite output {self.path!r}: {exc.strerror or exc}"
            ) from None
        self.forget_again()

    def rewrite(self, fmt: str, resend: Callable[[Record], bool]) -> None:
        """Keep only the rows ``resend`` does not pick: a new file renamed over the old."""
        if self.fmt == "parquet":  # part by part, each renamed over itself
            from ._parquet import drop_parquet_rows

            drop_parquet_rows(self.output, resend)
            return
        if self.fmt == "sqlite":  # one transaction
            from ._sqlite import drop_sqlite_rows

            drop_sqlite_rows(self.output, resend)
            return
        target = os.path.realpath(self.path)  # through a symbolic link, not over it
        tmp = self._rewrite_path()
        try:
            # One name (the lock makes this run its only writer): a run killed while
            # writing it leaves a file this removes, not one more random name.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            tmp_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(
                f"--resume: cannot write beside {self.path!r}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(tmp_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(tmp_fd, stat.S_IMODE(os.fstat(self.fd).st_mode))
            with os.fdopen(tmp_fd, "wb", buffering=1 << 20, closefd=False) as out:
                write_kept(self.path, fmt, resend, out)
            os.fsync(tmp_fd)
            os.replace(tmp, target)
        except BaseException as exc:
            os.close(tmp_fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise UsageError(
                    f"--resume: cannot rewrite {self.path!r}: {exc.strerror or exc}"
                ) from None
            raise
        old, self.fd = self.fd, tmp_fd
        _HELD.add(tmp_fd)
        _HELD.discard(old)
        os.close(old)

    def _rewrite_path(self) -> str:
        """The temporary file :meth:`rewrite` writes beside the output (CSV, JSONL)."""
        return self._beside(REWRITE_SUFFIX)

    def _again_path(self) -> str:
        return self._beside(AGAIN_SUFFIX)

    def _beside(self, suffix: str) -> str:
        if self.fmt == "sqlite":  # one file per table of the database
            from ._sqlite import sqlite_target

            database, table = sqlite_target(self.output)
            folder, name = os.path.split(os.path.realpath(database))
            return os.path.join(folder, f".{name}.{table}{suffix}")
        folder, name = os.path.split(os.path.realpath(self.output))
        return os.path.join(folder, f".{name}{suffix}")

    def own_files(self) -> list[tuple[str, str]]:
        """The output's files, ``(path, what it is)``, that no saved body may replace
        (see ``_savebody.guard``): the output (a Parquet dataset's directory, a SQLite
        database and its journals) and the files drumfire keeps beside it."""
        main = self.output
        files = [(main, "the output")]
        if self.fmt == "sqlite":
            from ._sqlite import sqlite_target

            main = sqlite_target(self.output)[0]
            files = [(main + end, "the output") for end in ("", "-journal", "-wal", "-shm")]
        beside = "a file drumfire keeps beside the output"
        for suffix in (AGAIN_SUFFIX, REWRITE_SUFFIX, BATCH_SUFFIX):
            path = self._beside(suffix)
            files += [(path, beside), (path + ".tmp", beside)]
        return files

    def start_batch(self, saves: bool) -> None:
        """A run that starts the output anew (not ``--resume``) begins its batch: with
        ``--save-body`` (``saves``), a file beside the output whose modification time
        says when, written before any body is saved; else an older one goes.

        A ``--resume`` then takes a saved file as a missing row's answer only if it
        was written since (:meth:`batch_began`): a file of an earlier batch (before
        ``--overwrite``, or another output's in a shared ``--save-dir``) is sent again.
        The time is the file system's own clock, as the saved files' are. The file
        also names the batch (:meth:`batch_id`): each file saved in it carries that
        name where the file system keeps extended attributes (see ``_savebody``).
        """
        path = self._beside(BATCH_SUFFIX)
        if saves:
            # A new output's own file: a failure is the output's (as check_room says it),
            # not --resume's, which this run was not given.
            self._write_beside(
                path,
                _BATCH_TEXT + _BATCH_ID + uuid.uuid4().hex.encode() + b"\n",
                "cannot write output",
            )
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def batch_began(self) -> int | None:
        """When the output's batch began (ns, see :meth:`start_batch`), or None: an output
        written before drumfire kept it, or without ``--save-body``."""
        try:
            return os.stat(self._beside(BATCH_SUFFIX)).st_mtime_ns
        except OSError:
            return None

    def batch_id(self) -> str | None:
        """The name of the output's batch (see :meth:`start_batch`), or None: none begun
        with ``--save-body``, or begun by a drumfire that wrote only its time."""
        try:
            with open(self._beside(BATCH_SUFFIX), "rb") as f:
                lines = f.read(4096).splitlines()
        except OSError:
            return None
        for line in lines[1:2]:
            if line.startswith(_BATCH_ID) and line[len(_BATCH_ID) :].isalnum():
                return line[len(_BATCH_ID) :].decode("ascii")
        return None

    def remember_again(self, again: DoneIds) -> DoneIds:
        """Add the ids of ``again`` (rows this run drops to send again) to the file of
        such ids beside the output, before the rewrite drops them; return those that
        earlier runs left there.

        A row dropped from the output and not yet sent again is missing from it,
        like a row never sent, but a file under its name is an older answer's: a
        ``--resume`` must send it rather than take that file as its answer (see
        :func:`drumfire._bodies.saved_rows`). The file goes once a run completes
        the input (:meth:`forget_again`), every row then being in the output.
        """
        path = self._again_path()
        try:
            self._drop_stale_tmp(path)  # a run killed while writing the list
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise UsageError(f"--resume: cannot read {path!r}: {exc.strerror or exc}") from None
        keys = array("q")
        if data is not None:
            body = data[len(_AGAIN_HEAD) :]
            if not data.startswith(_AGAIN_HEAD) or len(body) % keys.itemsize:
                raise UsageError(
                    f"--resume: {path!r} is damaged: remove it to resume (the rows it "
                    "lists would then be taken from their saved files, if complete)"
                )
            keys.frombytes(body)
            if sys.byteorder == "big":
                keys.byteswap()
        pending = DoneIds(keys=keys)
        if len(again):
            merged = array("q", sorted(set(keys).union(again.keys())))
            if sys.byteorder == "big":
                merged.byteswap()
            self._write_beside(path, _AGAIN_HEAD + merged.tobytes())
        return pending

    def _write_beside(
        self, path: str, data: bytes, problem: str = "--resume: cannot write beside"
    ) -> None:
        """``data`` as the whole of ``path``, atomically, on disk before the rename.

        The temporary file has one name, ``path`` + ``.tmp``: the output's lock makes
        this run its only writer, so a run killed while writing it (``kill -9``)
        leaves a file the next run removes (:meth:`_drop_stale_tmp`) instead of
        one more random name. It takes the output's mode, as the rewritten output
        does (:meth:`rewrite`), so the list is as readable as the output it goes with.
        """
        tmp = path + ".tmp"
        try:
            self._drop_stale_tmp(path)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                os.fchmod(fd, stat.S_IMODE(os.fstat(self.fd).st_mode))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise UsageError(f"{problem} {self.output!r}: {exc.strerror or exc}") from None

    @staticmethod
    def _drop_stale_tmp(path: str) -> None:
        """Remove the temporary file a killed run left while writing ``path``."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".tmp")

    def forget_again(self) -> None:
        """A run completed the input: every row is in the output, none waits to be sent
        again (see :meth:`remember_again`)."""
        path = self._again_path()
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            self._drop_stale_tmp(path)
        if not self.fmt:  # a rewrite's, left by a run killed while writing it
            with contextlib.suppress(OSError):
                os.unlink(self._rewrite_path())

    def gone(self) -> str | None:
        """Why the path no longer leads to the locked file, or None if it does."""
        try:
            now = os.stat(self.path)
        except OSError as exc:
            return f"it was removed during the run ({exc.strerror or exc})"
        st = os.fstat(self.fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return "it was replaced by another file during the run"
        return None

    def discard_if_unused(self) -> None:
        """A run that ends before its first row: remove the file if it made it and it is empty."""
        if self.created and self.size() == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
                os.unlink(self._beside(BATCH_SUFFIX))  # the batch it began goes with it

    def close(self) -> None:
        if self.fd >= 0:
            _HELD.discard(self.fd)
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class GuardedSink:
    """A sink whose file problems become one :class:`FileProblem` naming the path.

    After the first problem, later calls raise it again and closing stays
    quiet: the rows already in the file stay, and the problem is reported once.
    """

    def __init__(self, sink: Sink, path: str, lock: OutputLock | None = None) -> None:
        self._sink = sink
        self._write_all: Callable[[list[Any]], None] | None = getattr(sink, "write_all", None)
        self._stdout = path == "-"
        self._what = "standard output" if self._stdout else repr(path)
        self._lock = lock
        self.failed: FileProblem | None = None

    def _problem(self, why: str, message: str | None = None) -> FileProblem:
        if self.failed is None:
            self.failed = FileProblem(message or f"cannot write output {self._what}: {why}")
            if self._stdout:
                # Python would report the same broken pipe again when it exits.
                with contextlib.suppress(OSError):
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                    os.close(devnull)
        return self.failed

    def write(self, result: Any) -> None:
        self.write_all([result])

    def write_all(self, results: list[Any]) -> None:
        """:meth:`write` for rows answered together: the sink's ``write_all`` where it has one."""
        if self.failed is not None:
            raise self.failed
        try:
            if self._write_all is not None:
                self._write_all(results)
            else:
                write = self._sink.write
                for result in results:
                    write(result)
        except OSError as exc:
            raise self._problem(exc.strerror or str(exc)) from None
        except UsageError as exc:  # the typed sinks say what failed in one line
            raise self._problem("", str(exc)) from None

    def _check(self) -> None:
        if self._lock is not None:
            why = self._lock.gone()
            if why is not None:
                raise self._problem(why)

    def flush(self) -> None:
        """Flush, and check the path still leads to the file (once a second in a run)."""
        if self.failed is not None:
            raise self.failed
        try:
            self._sink.flush()
        except OSError as exc:
            raise self._problem(exc.strerror or str(exc)) from None
        except UsageError as exc:
            raise self._problem("", str(exc)) from None
        self._check()

    def close(self) -> None:
        already = self.failed is not None
        try:
            self._sink.close()
        except (OSError, UsageError) as exc:
            problem = (
                self._problem("", str(exc))
                if isinstance(exc, UsageError)
                else self._problem(exc.strerror or str(exc))
            )
            if not already:
                raise problem from None
            return
        if not already:
            self._check()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sink, name)


def check_summary_path(path: str, option: str = "--summary-json") -> None:
    """``--summary-json`` (or a report's ``option``, as ``bench --json``): make sure it
    can be written before the first request."""
    try:
        if os.path.isdir(path):
            raise UsageError(f"{option} {path!r} is a directory")
        existed = os.path.lexists(path)
        with open(path, "ab"):
            pass
        if not existed:
            os.unlink(path)
    except OSError as exc:
        raise UsageError(f"cannot write {option} {path!r}: {exc.strerror or exc}") from None


def refuse_input_as_output(input_path: str, output: str, out_fmt: str) -> None:
    """Raise :class:`UsageError` when ``-o`` names the input (by any path to it):
    truncating it, or appending to it, while it is read loses rows and the input."""
    if input_path == "-" or output == "-":
        return
    target = output
    if out_fmt == "sqlite":
        from ._sqlite import sqlite_target

        target = sqlite_target(output)[0]
    try:
        same = os.path.samefile(input_path, target)
    except (OSError, ValueError):  # no output yet, or an input that is not a path
        return
    if same:
        raise UsageError(
            f"output {output!r} is the input file {input_path!r}: writing it would lose the "
            "rows still to be read; choose another -o"
        )

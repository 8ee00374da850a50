"""``--save-body``: each response body streamed to a file of its own.

A row's path comes from a template rendered with its values, relative to a
target directory that the row's values can never leave: an absolute path,
a ``..`` step or a symbolic link that points out is refused as the row's
error (``save: …``), before anything is sent; so is the path of one of the
run's own files (its input, its output and the files beside it: :func:`guard`).
The body is written, as it arrives, to a temporary name in the same directory,
then flushed to disk
(fsync) when it is complete, and renamed over the final name only once
the engine knows it is the row's final answer: a file under its final name
is always whole, whatever stops the run (``kill -9`` included), so
``--resume`` can take it as done, and it is always the answer its row
reports (a body of an attempt that was retried or redirected is removed).

Each temporary file is held under an advisory ``flock`` from its creation to
its rename or removal, so ``--resume`` (:meth:`Saver.clean`) removes only the
temporary files no live process holds: those a stopped run left, never those
of another run still saving into the same directory. The kernel drops the
lock however the process ends (``kill -9`` included).

A file saved for an output's batch carries the batch's name (an extended
attribute, ``user.drumfire.batch``, where the file system keeps them): a
``--resume`` takes a file as a missing row's answer only if it carries its
batch's name, and a file without one (copied, saved by an older drumfire, or
on a file system without extended attributes) only if it was written since the
batch began (its modification time; see :meth:`Saver.complete`). A file also names
its row (``user.drumfire.row``, a hash of the row's id), so rows rendered to the
same path do not take each other's file as their answer.

The reader (:mod:`drumfire._http`) calls :meth:`SaveTarget.start` when a
response's headers are in, and writes the body to the :class:`Sink` it gets
instead of keeping it. The engine then calls :meth:`SaveTarget.commit` for
the row's final answer, or :meth:`SaveTarget.discard` for any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import Reason, SinkError, UsageError

__all__ = [
    "TEMP_SUFFIX",
    "RowOutcome",
    "SaveError",
    "SaveProblem",
    "SaveSpec",
    "SaveTarget",
    "Saver",
    "Sink",
    "parse_statuses",
]

#: The end of a temporary file's name: ``.NAME.<random>.drumfire-part``.
TEMP_SUFFIX = ".drumfire-part"


class RowOutcome(ValueError):
    """A row that ends before any request with this ``error`` (file options).

    A ValueError, so a driver that does not know it still makes an error row.
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SaveProblem(RowOutcome):
    """The rendered path is refused (it would leave the target directory)."""


class SaveError(SinkError):
    """Writing a body to its file failed (disk full, permissions): the row's error,
    ``save: PATH: why`` (the reason names the file, as ``file: …`` does)."""

    reason = Reason.SAVE.value

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = f"{Reason.SAVE.value}: {message}"


def parse_statuses(text: str, option: str = "--save-status") -> frozenset[int]:
    """``2xx``, ``200,404``, ``2xx,3xx`` or ``all``: the statuses whose body is saved."""
    statuses: set[int] = set()
    for item in (i.strip().lower() for i in text.split(",")):
        if item in ("all", "any", "*"):
            statuses.update(range(100, 600))
        elif len(item) == 3 and item[0] in "12345" and item[1:] == "xx":
            base = int(item[0]) * 100
            statuses.update(range(base, base + 100))
        elif item.isdigit() and 100 <= int(item) <= 599:
            statuses.add(int(item))
        else:
            raise UsageError(
                f"{option}: {item!r} is not a status (200), a class (2xx) or 'all'"
            )
    return frozenset(statuses)


@dataclass(frozen=True)
class SaveSpec:
    """What ``--save-body`` asks: immutable and picklable (it crosses to worker processes).

    ``template``: the path of each row's file, relative to ``directory``;
    ``statuses``: whose bodies are saved (others are kept as usual, for ``-e``);
    ``sha256``: add each file's SHA-256 to its row; ``batch``: the name of the
    output's batch (:meth:`~drumfire._outfile.OutputLock.batch_id`), which each file
    saved carries, or None (no output, or one begun by an older drumfire); ``own``:
    the run's own files, ``(real path, what it is)``, that no saved body may replace
    or go inside (see :func:`guard`).
    """

    template: str
    directory: str = "."
    statuses: frozenset[int] = frozenset(range(200, 300))
    sha256: bool = False
    batch: str | None = None
    own: tuple[tuple[str, str], ...] = ()

    def columns(self) -> tuple[str, ...]:
        """The output columns a saved body adds to each row."""
        base = ("saved_path", "saved_bytes")
        return (*base, "saved_sha256") if self.sha256 else base

    def check_directory(self) -> None:
        """The target directory must exist (made if missing) and be a directory."""
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise UsageError(f"--save-dir {self.directory}: not a directory")
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"--save-dir {self.directory}: {exc.strerror or exc}"
            ) from None


def for_batch(job: Any, batch: str | None) -> Any:
    """``job`` whose saved files name the output's ``batch`` (see the module docstring)."""
    if job.save is None or job.save.batch == batch:
        return job
    return dataclasses.replace(job, save=dataclasses.replace(job.save, batch=batch))


def guard(job: Any, own: Iterable[tuple[str | None, str]]) -> Any:
    """``job`` whose saved paths may not be the run's own files: ``own`` is
    ``(path, what it is)`` pairs (a None or ``-`` path is skipped), the input, the
    output and the files kept beside it. Renamed over one, a body replaced the input
    while it was read and the output while it was written: every result was lost."""
    save = job.save
    if save is None:
        return job
    listed = tuple((os.path.realpath(p), what) for p, what in own if p and p != "-")
    return dataclasses.replace(job, save=dataclasses.replace(save, own=listed))


def _refusal(shown: str) -> str | None:
    """Why a rendered relative path is refused before looking at the disk, or None."""
    if not shown or shown.endswith(("/", os.sep)):
        return "names no file"
    if "\x00" in shown:
        return "holds a NUL character"
    try:
        os.fsencode(shown)
    except UnicodeEncodeError:
        return "holds a character no file name can (a lone surrogate)"
    if os.path.isabs(shown) or shown.startswith("\\"):
        return "is an absolute path"
    parts = shown.replace("\\", "/").split("/")
    if ".." in parts:
        # Any '..', even one that would end inside: no path can climb out, however written.
        return "has a '..' step (refused in any saved path, so none can leave --save-dir)"
    if _is_temp_name(parts[-1]):
        # Saved under it, the file would be taken for a stopped run's leftover and deleted
        # by the next run's clean-up (Saver.clean), while the output says it is there.
        return f"is named as drumfire's temporary files are (.NAME.…{TEMP_SUFFIX})"
    return None


def _is_temp_name(name: str) -> bool:
    """Whether a file name is one :meth:`Saver.clean` takes for a temporary file."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


class Saver:
    """Renders each row's path and checks it stays inside the target directory."""

    def __init__(self, spec: SaveSpec, render: Callable[[Mapping[str, Any]], str]) -> None:
        self.spec = spec
        self.render = render
        self.root = os.path.realpath(spec.directory)
        self.columns = spec.columns()

    def _locate(self, row: Mapping[str, Any]) -> tuple[str, str]:
        """The row's path as rendered, and on disk; raises :class:`SaveProblem`.

        On disk is where its symbolic links lead, checked inside the directory:
        a link under the final name is followed (as curl -o writes through it),
        so the file it leads to is the one replaced, and the link stays.
        """
        shown = self.render(row)
        why = _refusal(shown)
        if why is None:
            full = os.path.join(self.root, os.path.normpath(shown))
            # realpath follows every symbolic link on the way, the last one included:
            # a link inside the directory that points out is refused like "..".
            real = os.path.realpath(full)
            if real == self.root:  # '.', or a link to the directory itself
                why = "names the target directory itself, not a file in it"
            elif os.path.commonpath([real, self.root]) != self.root:
                why = "leaves the target directory (through a symbolic link)"
            else:
                why = self._own_file(real)
        if why is not None:
            raise SaveProblem(f"save: {shown!r} {why}")
        return shown, real

    def _own_file(self, real: str) -> str | None:
        """Why ``real`` is refused as one of the run's own files (or inside one: a
        Parquet dataset's directory), or None."""
        for path, what in self.spec.own:
            if real == path:
                return f"is {what} of this run: a body saved there would replace it"
            if real.startswith(path + os.sep):
                return f"is inside {what} of this run (a directory): a body there would join it"
        return None

    def target(self, row: Mapping[str, Any]) -> SaveTarget:
        """The row's :class:`SaveTarget`; raises :class:`SaveProblem`."""
        shown, path = self._locate(row)
        return SaveTarget(path, shown, self)

    def complete(
        self, row: Mapping[str, Any], since: int | None = None, row_id: str | None = None
    ) -> dict[str, Any] | None:
        """``--resume``: the row's fields if its file is complete on disk, else None.

        A path that is refused or cannot be rendered is None too: preparing the row
        reports why; so is a file that cannot be read (it is saved again), and one
        last written before ``since`` (ns): an earlier batch's, not this one's answer.
        A file that names its batch is taken if that is the output's (whenever it was
        written: the clock may have been set back), and never if it is another's
        (another output's saving into the same directory during this batch).
        Nor is a file that names another row (``row_id``: this row's id): rows whose
        paths are the same (``{category}.json``) each need their own answer.
        """
        try:
            shown, path = self._locate(row)
            if not os.path.isfile(path):
                return None
            if row_id is not None and _tag_of(path, _ROW_ATTRIBUTE) not in (None, _row_key(row_id)):
                return None
            batch = _batch_of(path) if self.spec.batch is not None else None
            if batch is not None:
                if batch != self.spec.batch:
                    return None
            elif since is not None and os.stat(path).st_mtime_ns < since:
                return None
            return SaveTarget(path, shown, self).fields_of_file()
        except (KeyError, ValueError, OSError):  # SaveProblem is a ValueError
            return None

    def clean(self) -> int:
        """Remove temporary files a stopped run left (``--resume``); return how many.

        A file whose lock is held belongs to a live process (another run saving
        into this directory) and stays. The lock is taken before the file is
        removed and held while it is: a run that has just created the file and
        not yet locked it sees its name gone once it has the lock, and makes
        another (see :func:`_create_temp`).
        """
        removed = 0
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if _is_temp_name(name):
                    removed += _remove_unheld(os.path.join(folder, name))
        return removed


class SaveTarget:
    """One row's file: where it goes, and the body of its latest answer (``done``), saved
    under a temporary name until :meth:`commit` or :meth:`discard`."""

    __slots__ = ("done", "path", "saver", "shown")

    def __init__(self, path: str, shown: str, saver: Saver) -> None:
        self.path = path
        self.shown = shown
        self.saver = saver
        self.done: Sink | None = None  # a complete body, not yet under the final name

    def start(self, status: int) -> Sink | None:
        """A response with ``status`` begins: the sink for its body, or None (not saved)."""
        self.discard()  # an earlier answer's body: this one replaces it, saved or not
        if status not in self.saver.spec.statuses:
            return None
        return Sink(self)

    def commit(self, row_id: str | None = None) -> dict[str, Any] | None:
        """The row's final answer: its body under the final name, and the row's fields.

        None when that answer's body was not saved (its status is not one to save).
        Raises :class:`SaveError` when the rename fails (a directory under that name).
        ``row_id``: the row's id, named on the file (see :meth:`Saver.complete`).
        """
        sink, self.done = self.done, None
        return sink.commit(row_id) if sink is not None else None

    def discard(self) -> None:
        """The latest answer is not the row's last (retried, redirected) or the row
        failed: remove its body, so no file claims to be an answer the row did not get."""
        sink, self.done = self.done, None
        if sink is not None:
            sink.abort()

    def fields_of_file(self) -> dict[str, Any]:
        """The row's fields for a file already complete on disk (``--resume``)."""
        size = os.path.getsize(self.path)
        fields: dict[str, Any] = {"saved_path": self.shown, "saved_bytes": size}
        if self.saver.spec.sha256:
            import hashlib  # --save-sha256 only

            digest = hashlib.sha256()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            fields["saved_sha256"] = digest.hexdigest()
        return fields


#: The extended attribute that names the batch a saved file was saved for.
_BATCH_ATTRIBUTE = "user.drumfire.batch"
#: The one that names the row whose answer it is (a hash of its id: :func:`_row_key`).
_ROW_ATTRIBUTE = "user.drumfire.row"


def _tag(fd: int, value: str, attribute: str = _BATCH_ATTRIBUTE) -> None:
    """Name the batch (or the row) on the file ``fd``, where the file system (and the
    platform: Linux) keeps extended attributes; elsewhere the file goes without (its
    time tells)."""
    with contextlib.suppress(OSError, AttributeError):  # ENOTSUP; no os.setxattr (macOS)
        os.setxattr(fd, attribute, value.encode("ascii"))


def _tag_of(path: str, attribute: str) -> str | None:
    """What a saved file's ``attribute`` names (see :func:`_tag`), or None."""
    try:
        return os.getxattr(path, attribute).decode("ascii", "replace")
    except (OSError, AttributeError):  # none (ENODATA), no extended attributes
        return None


def _batch_of(path: str) -> str | None:
    """The batch a saved file names (see :func:`_tag`), or None."""
    return _tag_of(path, _BATCH_ATTRIBUTE)


def _row_key(row_id: str) -> str:
    """What a saved file carries of its row's id: a hash, so any id fits an attribute."""
    import hashlib  # --save-body only: not at start-up

    data = row_id.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _lock(fd: int) -> bool:
    """Take the file's ``flock`` without waiting: False if a live process holds it.

    On a file system without ``flock`` (some network ones) it is True, unlocked:
    runs go on as the output's lock does there (see ``drumfire._outfile``).
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass
    return True


def _remove_unheld(path: str) -> int:
    """Remove the temporary file ``path`` unless a live process holds it: 1 if removed."""
    try:
        # For writing: where flock is emulated with fcntl locks (NFS), an exclusive
        # lock needs it; on a read-only descriptor it fails, and a live run's file
        # would be taken for a stopped one's.
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0  # gone already, or not a file drumfire made
    try:
        if not _lock(fd):
            return 0
        os.unlink(path)  # by name: a file its run renamed meanwhile is not there
        return 1
    except OSError:
        return 0
    finally:
        os.close(fd)


def _create_temp(folder: str, name: str) -> tuple[str, int]:
    """A new temporary file in ``folder`` for the final ``name``, locked: its path and
    descriptor.

    ``.NAME.<random>.drumfire-part`` says whose it is, but is 24 bytes longer than
    ``NAME``: when the file system refuses it (a name near NAME_MAX, 255 bytes on
    most), ``.<random>.drumfire-part``, so any name that fits can be saved.
    Between its creation and its lock another run's :meth:`Saver.clean` may take
    the file for a stopped run's and remove it: once locked, it must still be
    under its name, else another one is made.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    import secrets  # --save-body only: not at start-up

    prefix = f".{name}."
    for _ in range(8):
        temp = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            fd = os.open(temp, flags, 0o644)
        except FileExistsError:  # the same random name: draw again
            continue
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG or prefix == ".":
                raise
            prefix = "."  # NAME is too long to be part of it
            continue
        try:
            held = _lock(fd) and os.path.samestat(os.stat(temp), os.fstat(fd))
        except OSError:  # its name is gone: removed by a cleaner before the lock
            held = False
        if held:
            return temp, fd
        os.close(fd)
    raise OSError(errno.EAGAIN, "temporary files keep being removed by another process")


class Sink:
    """A body on its way to disk, under a temporary name until :meth:`finish`."""

    __slots__ = ("_digest", "_fd", "_temp", "size", "target")

    def __init__(self, target: SaveTarget) -> None:
        self.target = target
        self.size = 0
        if target.saver.spec.sha256:
            import hashlib  # --save-sha256 only

            self._digest: Any = hashlib.sha256()
        else:
            self._digest = None
        folder, name = os.path.split(target.path)
        try:
            os.makedirs(folder, exist_ok=True)
            self._temp, self._fd = _create_temp(folder, name)
        except OSError as exc:
            self._temp, self._fd = "", -1
            why = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError) and not os.path.isdir(folder):
                why = "Not a directory"  # a file where a folder of the path should be
            raise SaveError(f"{target.shown}: {why}") from None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._digest is not None:
            self._digest.update(data)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.abort()
            raise SaveError(f"{self.target.shown}: {exc.strerror or exc}") from None

    def finish(self) -> None:
        """The body is complete: to disk, kept under its temporary name (and its lock)
        until :meth:`SaveTarget.commit` (the row's final answer) or :meth:`abort`."""
        batch = self.target.saver.spec.batch
        if batch is not None:
            _tag(self._fd, batch)
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.abort()
            raise SaveError(f"{self.target.shown}: {exc.strerror or exc}") from None
        self.target.done = self

    def commit(self, row_id: str | None = None) -> dict[str, Any]:
        """Rename the complete body over the final name; the row's fields.

        The file names ``row_id`` first, so a ``--resume`` takes it for no other row
        rendered to the same path (:meth:`Saver.complete`).
        """
        if row_id is not None:
            _tag(self._fd, _row_key(row_id), _ROW_ATTRIBUTE)
        try:
            os.replace(self._temp, self.target.path)
        except OSError as exc:
            self.abort()
            raise SaveError(f"{self.target.shown}: {exc.strerror or exc}") from None
        self._close()  # renamed first: no cleaner can take it for a stopped run's
        fields: dict[str, Any] = {"saved_path": self.target.shown, "saved_bytes": self.size}
        if self._digest is not None:
            fields["saved_sha256"] = self._digest.hexdigest()
        return fields

    def abort(self) -> None:
        """The response did not complete (or is not the row's last): remove the
        temporary file, then let go of it."""
        if self._temp:
            try:
                os.unlink(self._temp)
            except OSError:
                pass
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1


def save_fields(names: Iterable[str]) -> dict[str, Any]:
    """The save columns of a row whose body was not saved: all empty."""
    return dict.fromkeys(names)

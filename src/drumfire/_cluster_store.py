"""Where a cluster run's input and parts live: a local path, or any fsspec URL.

Part of ``drumfire run --cluster`` (see :mod:`drumfire._cluster`): the storage
rules (local: a temporary file renamed over the part; an object store: one
write, then the part's entry) and the optional imports (``dask``,
``distributed``, ``fsspec``, imported when first used).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import TYPE_CHECKING, Any

from ._errors import UsageError

if TYPE_CHECKING:
    pass

EXTRA = "pip install 'drumfire[dask]'"
def require_dask(what: str) -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{what}: needs dask and distributed: {EXTRA}") from None


def optional_module(name: str) -> Any:
    """An optional dependency, imported when first used (and typed as Any: it ships no types)."""
    import importlib

    return importlib.import_module(name)


# -- where the input and the parts live: a local path, or any fsspec URL ---------------------


def is_local(path: str) -> bool:
    """A local path (``file://`` included); anything else with ``://`` goes through fsspec."""
    return "://" not in path or path.startswith("file://")


def local_path(path: str) -> str:
    return os.path.abspath(path[7:] if path.startswith("file://") else path)


def filesystem(url: str) -> tuple[Any, str]:
    """``(filesystem, path in it)`` for an fsspec URL (``s3://``, ``gs://``, ``memory://``...)."""
    try:
        core = optional_module("fsspec.core")
    except ImportError:
        raise UsageError(f"{url!r}: a URL path needs fsspec: {EXTRA}") from None
    try:
        fs, path = core.url_to_fs(url)
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package missing
        raise UsageError(f"{url!r}: {exc}".splitlines()[0]) from None
    return fs, path


def open_binary(path: str) -> Any:
    """A file object to read ``path`` (local, or an fsspec URL) as bytes; seekable."""
    if is_local(path):
        return open(local_path(path), "rb", buffering=1 << 20)
    fs, inner = filesystem(path)
    return fs.open(inner, "rb")


def path_exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(local_path(path))
    fs, inner = filesystem(path)
    return bool(fs.exists(inner))


class Store:
    """The output dataset directory: where parts are written, found and counted.

    Local (a path or ``file://``): a part is written under a hidden temporary
    name, synced, and renamed over its final name (atomic on one file system).
    Any other fsspec URL (an object store: ``s3://``, ``gs://``, ``az://``;
    ``memory://`` in tests) has no atomic rename: a part is written to its final
    name in one write (an object store's PUT, or a multipart upload completed
    at close, is atomic: the object is whole or absent), and it counts as
    finished only once its entry ``_drumfire_done/part-NNNNNN.json`` is written
    after it. A part without its entry is written again by the next attempt
    or ``--resume``; readers skip the ``_``-prefixed entries.
    """

    DONE = "_drumfire_done"

    def __init__(self, directory: str) -> None:
        self.local = is_local(directory)
        if self.local:
            self.fs: Any = None
            self.root = local_path(directory)
        else:
            self.fs, self.root = filesystem(directory)

    def path(self, name: str) -> str:
        return os.path.join(self.root, name) if self.local else f"{self.root}/{name}"

    def _entry(self, name: str) -> str:
        return f"{self.root}/{self.DONE}/{name}.json"

    def makedirs(self) -> None:
        if self.local:
            os.makedirs(self.root, exist_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def names(self) -> list[str]:
        if self.local:
            return os.listdir(self.root)
        if not self.fs.exists(self.root):
            return []
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]

    def remove(self, name: str) -> None:
        if self.local:
            os.unlink(os.path.join(self.root, name))
        else:
            self.fs.rm(self.path(name), recursive=True)

    def done(self, name: str) -> bool:
        """Whether the part ``name`` is complete."""
        if self.local:
            return os.path.exists(self.path(name))
        return bool(self.fs.exists(self._entry(name)))

    def read(self, name: str) -> bytes:
        if self.local:
            with open(self.path(name), "rb") as f:
                return f.read()
        return bytes(self.fs.cat_file(self.path(name)))

    def write(self, name: str, data: bytes, entry: dict[str, Any]) -> None:
        """Write the part ``name`` so that a partial one is never taken for a finished one."""
        if not self.local:
            self.fs.pipe_file(self.path(name), data)
            self.fs.pipe_file(self._entry(name), json.dumps(entry).encode())
            return
        self._replace_local(name, data)

    def replace(self, name: str, data: bytes) -> None:
        """Rewrite the finished part ``name`` with the same rows (its entry stays true):
        the old part or the new one is there, never a partial one."""
        if self.local:
            self._replace_local(name, data)
        else:
            self.fs.pipe_file(self.path(name), data)

    def open(self, name: str) -> Any:
        """A seekable file object to read ``name``."""
        if self.local:
            return open(self.path(name), "rb")
        return self.fs.open(self.path(name), "rb")

    def _replace_local(self, name: str, data: bytes) -> None:
        # A name of its own per attempt: two runs of one task never write one file.
        temp = os.path.join(self.root, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path(name))  # atomic: the part is complete or absent
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def put_text(self, name: str, text: str) -> None:
        if self.local:
            with open(self.path(name) + ".tmp", "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.path(name) + ".tmp", self.path(name))
        else:
            self.fs.pipe_file(self.path(name), text.encode())

    def get_text(self, name: str) -> str | None:
        try:
            return self.read(name).decode()
        except (OSError, ValueError):  # FileNotFoundError included
            return None

    def clean(self) -> None:
        """Remove attempts cut short by a dead worker (local temporary files)."""
        if self.local:
            for name in os.listdir(self.root):
                if name.startswith(".part-") and name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.root, name))

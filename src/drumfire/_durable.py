"""Files renamed into place only once their bytes are on disk.

drumfire writes each file it renames into an output (a Parquet part, a part
rewritten without the rows to send again, a merged part, the ``_unfit.jsonl``
list, a cluster part and its manifest) under a temporary name, then renames it
over its final name: a reader finds the old file or the new one, never half of
one. The rename alone promises that only until the machine stops: after a power
loss or a kernel crash, a file system may have written the rename but not yet the
file's data (ext4's and XFS's delayed allocation), and the renamed file comes back
empty or short, a complete part to every reader and to ``--resume``. So the file
is synced before its rename, as drumfire's other outputs are (the rewritten
output, the lists beside it, a saved answer: ``os.fsync`` before ``os.replace``).

The rename itself may be lost to a power loss that follows it (the directory
not synced): the old state comes back, the new file absent, and a resume sends
its rows again. Only where a removal follows the rename, and would be wrong
without it (the small parts a merged part replaces), is the directory synced
between the two.
"""

from __future__ import annotations

import os

__all__ = ["sync_directory", "sync_file"]


def sync_file(path: str) -> None:
    """Put the data of the file ``path`` on disk (written and closed by another writer,
    such as pyarrow's, which gives no file descriptor)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directory(path: str) -> None:
    """Put the entries of the directory ``path`` on disk: the renames done in it first."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Child processes that end with their parent, whatever ends the parent.

A ``kill -9`` of ``drumfire run`` runs no handler and no ``finally``: its
worker processes (``-p N``) and its read-ahead child must notice by
themselves. Two means, both used:

* the kernel's parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): the
  child gets SIGKILL the moment the parent (the thread that forked it) ends,
  even while blocked in a read or a send;
* end of file on the pipe from the parent, which a child sees only if it holds
  no copy of the parent's end of that pipe: :func:`close_inherited` closes the
  copies a fork hands down.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

__all__ = ["close_inherited", "die_with_parent"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """In a freshly forked child: SIGKILL when ``parent`` ends; exit now if it already has.

    Without ``prctl`` (not Linux) nothing is asked of the kernel; the child
    then relies on end of file from its parent's pipe.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)  # the parent died before prctl took effect


def close_inherited(fds: Iterable[int]) -> None:
    """Let go of the parent's file descriptors a fork copied into this child.

    Each is pointed at ``/dev/null`` rather than closed: the number stays
    taken, so the inherited object that still names it (a multiprocessing
    ``Connection``) can never close a descriptor this child opens later.
    """
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in fds:
            try:
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)

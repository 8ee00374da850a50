"""The runs of :func:`drumfire.run` still going, stopped at Ctrl-C and at interpreter exit.

``run`` drives its engine in a daemon thread while the caller iterates. Two
moments reach none of the caller's iteration, so the engine was left sending:

* **Ctrl-C (a Jupyter kernel's interrupt) in the caller's loop body.** The
  ``KeyboardInterrupt`` is raised there, not in the iterator; a ``Run`` held by
  a variable (``it = drumfire.run(...)``, ``for r in it: ...``) is not closed, and
  its engine sent the other rows in the background. While a run goes on, the main
  thread's SIGINT handler (when it is Python's default) stops every live run at
  once, then raises ``KeyboardInterrupt`` as the default does (set at the run's
  start and at each ``for`` over it); the default comes back once no run is live
  (``asyncio.run`` installs its own only over the default).
* **Interpreter exit** with such a ``Run`` not finished: the daemon thread is
  frozen mid-run, and the rows of its ``output=``, even those the caller had been
  given, were lost. At exit every live run is stopped and waited for.

Stopped means as ``close()`` stops a run: no row starts, those in flight end
``cancelled`` (``resume=True`` sends them again), the output is closed.
"""

from __future__ import annotations

import asyncio
import atexit
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["Stopper", "live", "unwatch_sigint", "watch_sigint"]


class Stopper:
    """Stops one run's engine from any thread: :meth:`soon` without waiting (a signal
    handler may call it), a call waiting for the engine's thread to end."""

    __slots__ = ("engine", "loop", "thread")

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self.thread: threading.Thread | None = None

    def soon(self) -> None:
        try:
            # One turn later: asked before the engine's run began (close() at once),
            # its stop would find no run to stop, and every row would be sent.
            self.loop.call_soon_threadsafe(self.loop.call_soon, self.engine.stop, 0)
        except RuntimeError:
            pass  # the loop already closed: the run is over

    def __call__(self) -> None:
        self.soon()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()


#: The runs whose engine thread is still going.
_LIVE: set[Stopper] = set()


def live(stopper: Stopper, going: bool) -> None:
    """Count ``stopper``'s run as going (from its start) or not (once its thread ends)."""
    if going:
        _LIVE.add(stopper)
        watch_sigint()
    else:
        _LIVE.discard(stopper)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    for stopper in list(_LIVE):
        stopper.soon()
    signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as before


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def watch_sigint() -> None:
    """Ctrl-C stops the live runs, from the main thread, while the default handler is in
    place: at a run's start, and at each ``for`` over it (a Jupyter kernel puts the
    default back after each cell, so a run iterated in a later cell sets it again)."""
    if (
        _LIVE
        and _in_main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, _on_sigint)


def unwatch_sigint() -> None:
    """Python's default SIGINT handler again, once no run is going (the caller's thread
    after its iteration: signal handlers are set from the main thread only)."""
    if not _LIVE and _in_main_thread() and signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@atexit.register
def _stop_at_exit() -> None:
    for stopper in list(_LIVE):
        stopper()

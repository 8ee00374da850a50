"""How a ``--cluster`` run's client stops on SIGTERM and Ctrl-C (see :mod:`drumfire._cluster`).

While the tasks run, Ctrl-C raises KeyboardInterrupt as usual and SIGTERM raises
:class:`Terminated`; :mod:`drumfire._cluster` catches both, keeps the parts
done and prints the summary. While the client then closes (the cluster
stopped, temporary files removed), either signal is only recorded: raised
there, it left the cleanup half done and ended in a traceback. So it is while
``local:N`` starts its LocalCluster: raised there, it left worker processes
starting with nothing to close them (click's ``Aborted!``, distributed's
traceback at exit); recorded, the run stops once the start is done.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["CLIENT_CLOSE", "StopSignals", "Terminated", "close_client", "quiet_teardown"]

#: Seconds the Dask client is given to close at the end of a run. distributed's own
#: bound is 60 s (twice its timeout); a stop that left the client unable to close
#: (seen once in the SIGTERM test: a Ctrl-C or SIGTERM raised inside the client's own
#: waiting) then ended, a minute later, in a traceback and exit 1, with no summary.
CLIENT_CLOSE = 10.0


def close_client(client: Any) -> bool:
    """Close the Dask ``client`` within :data:`CLIENT_CLOSE` seconds; False if it did not
    (the cluster's own close, which follows, still ends the workers it started)."""
    try:
        client.close(timeout=CLIENT_CLOSE)
    except TimeoutError:
        return False
    return True


@contextlib.contextmanager
def quiet_teardown(own_cluster: bool, stopped: bool) -> Iterator[None]:
    """While a stopped run closes the LocalCluster it started, distributed logs nothing.

    Cancelling the tasks of a stopped run makes the cluster's scheduler (in this
    process) log errors of its own ("Couldn't gather keys ... forgotten"): news of
    the stop drumfire reports itself, not of a fault. A cluster given by address
    keeps its logs (they are in its processes anyway), and so does a run not stopped.
    """
    if not (own_cluster and stopped):
        yield
        return
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


class Terminated(BaseException):
    """SIGTERM reached the client (see :class:`StopSignals`): a BaseException, as
    KeyboardInterrupt is, so that no `except Exception` takes it for a task's failure."""


class StopSignals:
    """While a run is driven, SIGTERM stops it as Ctrl-C does (the parts done kept, the
    summary, exit 143) and a second one ends the process; in the cleanup (:meth:`hold`) it
    is only recorded in ``came``, and so is a Ctrl-C, in ``ctrl_c`` (it raised
    KeyboardInterrupt out of the cleanup: a traceback, no summary). Only the main thread
    may set a handler: elsewhere, nothing."""

    def __init__(self) -> None:
        self.came = False
        self.ctrl_c = False
        self._held_int = False
        self._main = threading.current_thread() is threading.main_thread()
        if self._main:
            self._before = signal.getsignal(signal.SIGTERM)
            self._before_int = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, signum: int, frame: Any) -> None:
        self._record(signum, frame)
        raise Terminated

    def _record(self, signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, self._before)
        self.came = True

    def _record_ctrl_c(self, signum: int, frame: Any) -> None:
        self.ctrl_c = True

    def release(self) -> None:
        """Raise again, after :meth:`hold` (around a LocalCluster's start): SIGTERM as
        :class:`Terminated` (unless one came: then it ends the process), Ctrl-C as usual."""
        if not self._main:
            return
        if not self.came:
            signal.signal(signal.SIGTERM, self._stop)
        if self._held_int:
            signal.signal(signal.SIGINT, self._before_int)
            self._held_int = False

    def stop_recorded(self) -> None:
        """Raise the stop recorded while held, if any: :class:`Terminated` for a SIGTERM,
        KeyboardInterrupt for a Ctrl-C."""
        if self.came:
            raise Terminated
        if self.ctrl_c:
            raise KeyboardInterrupt

    def hold(self) -> None:
        """From now, record a SIGTERM instead of raising (unless one came already), and a
        Ctrl-C (unless SIGINT is ignored, as in a background job)."""
        if not self._main:
            return
        if not self.came:
            signal.signal(signal.SIGTERM, self._record)
        if self._before_int not in (signal.SIG_IGN, None):  # None: set from C
            signal.signal(signal.SIGINT, self._record_ctrl_c)
            self._held_int = True

    def restore(self) -> None:
        if self._main:
            signal.signal(signal.SIGTERM, self._before)
        if self._held_int:
            signal.signal(signal.SIGINT, self._before_int)
            self._held_int = False

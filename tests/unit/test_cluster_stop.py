"""The cluster client's teardown after a stop (drumfire._cluster_stop)."""

from __future__ import annotations

import logging
import signal

import pytest

from drumfire._cluster_stop import (
    CLIENT_CLOSE,
    StopSignals,
    Terminated,
    close_client,
    quiet_teardown,
)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.parametrize(("own", "stopped", "shown"), [(True, True, False), (True, False, True),
                                                       (False, True, True)])  # fmt: skip
def test_a_stopped_run_closes_its_own_cluster_without_distributed_s_errors(
    own: bool, stopped: bool, shown: bool
) -> None:
    # Cancelling a stopped run's tasks made the LocalCluster's scheduler (in the client's
    # process) log "Couldn't gather keys ... forgotten" as an ERROR, now and then: a line
    # on the terminal beside drumfire's summary (distributed's handler is on its
    # "distributed" logger), and a flaky CI run. A cluster given by address, and a run
    # not stopped, keep distributed's logs.
    log = logging.getLogger("distributed")
    before = log.level
    kept = _Kept()
    log.addHandler(kept)
    try:
        with quiet_teardown(own, stopped):
            logging.getLogger("distributed.scheduler").error("Couldn't gather keys")
    finally:
        log.removeHandler(kept)
    assert bool(kept.lines) is shown
    assert log.level == before


@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt),
                                                (signal.SIGTERM, Terminated)])  # fmt: skip
def test_a_stop_held_while_the_cluster_starts_is_raised_once_released(
    signum: int, raised: type[BaseException]
) -> None:
    # Around a LocalCluster's start: the signal is recorded, not raised (a start cut
    # short left worker processes starting with nothing to close them); once released,
    # the recorded stop is raised where the run can end as a stop of a running one.
    before_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before_term = signal.getsignal(signal.SIGTERM)
    try:
        stops = StopSignals()
        stops.hold()
        signal.raise_signal(signum)  # recorded: its handler has run when this returns
        stops.release()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(raised):
            stops.stop_recorded()
        stops.restore()
        assert signal.getsignal(signal.SIGTERM) is before_term
        quiet = StopSignals()
        quiet.hold()
        quiet.release()
        quiet.stop_recorded()  # nothing came: nothing raised
        quiet.restore()
    finally:
        signal.signal(signal.SIGINT, before_int)
        signal.signal(signal.SIGTERM, before_term)


class _Client:
    """Stands in for a Dask client: its close() times out, or not."""

    def __init__(self, hangs: bool) -> None:
        self.hangs = hangs
        self.timeouts: list[float] = []

    def close(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.hangs:
            raise TimeoutError(f"timed out after {timeout} s.")


def test_a_client_that_cannot_close_is_given_up_on_within_the_bound() -> None:
    # distributed's own bound (60 s) ended a stopped run in a traceback and exit 1.
    stuck, fine = _Client(hangs=True), _Client(hangs=False)
    assert close_client(stuck) is False
    assert close_client(fine) is True
    assert stuck.timeouts == fine.timeouts == [CLIENT_CLOSE]

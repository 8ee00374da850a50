"""The cluster client's teardown after a stop (drumfire._cluster_stop)."""

from __future__ import annotations

import logging

import pytest

from drumfire._cluster_stop import quiet_teardown


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

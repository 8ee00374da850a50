"""What a ``-p N`` parent knows of its workers' engines: their :class:`Load` messages.

A worker's engine tells, when it changes (at most every :data:`LOAD_EVERY`
seconds): its requests in flight and limit, its rows parked for origins their
server holds, its rows sleeping before a retry and the origins held. The parent
deals a worker rows past its parked ones (see :mod:`drumfire._parallel`), and
adds the rest up at its own tick, as one engine's would be, for the progress
line (``held by Retry-After``, ``rows wait to retry``) and the summary's waited
time (``waited_s``): the time with no request in flight in any worker while
rows waited, to a tenth of a second (a worker tells a change that late at most).
"""

from __future__ import annotations

from ._messages import Load
from ._result import Stats

__all__ = ["LOAD_EVERY", "Told", "is_news", "load_now", "note_loads"]

LOAD_EVERY = 0.1  # seconds between two reports of a worker, at least
REFRESH = 1.0  # seconds between two reports while origins are held (their time left)


def load_now(stats: Stats, parked: int) -> Load:
    """A worker's Load at its engine's tick: ``stats`` as the tick left them."""
    return Load(stats.concurrency, stats.limit, parked, stats.retrying, tuple(stats.held))


def is_news(load: Load, told: Load, since: float) -> bool:
    """Whether ``load`` is worth a message, ``told`` sent ``since`` seconds ago.

    At once when the worker starts or stops waiting (nothing in flight, rows waiting
    for the server): a tenth of a second late each time, the parent's waited time
    grew past the run's (a 1 s Retry-After counted 1.1 s in a run of 1.06 s).
    """
    if _waits(load) != _waits(told):
        return True
    if since < LOAD_EVERY:
        return False
    if load[:4] != told[:4] or [h[::2] for h in load.held] != [h[::2] for h in told.held]:
        return True
    # The seconds left change at every tick: sent again now and then, as a hold can
    # be made longer (a probe's new Retry-After).
    return bool(load.held) and since >= REFRESH


def _waits(load: Load) -> bool:
    return not load.inflight and bool(load.retrying or load.held)


class Told:
    """A worker's last Load, its holds' ends on the parent's clock (read at ``now``)."""

    __slots__ = ("ends", "load")

    def __init__(self, load: Load, now: float) -> None:
        self.load = load
        self.ends = [(host, now + left, why) for host, left, why in load.held]


def note_loads(stats: Stats, workers: list[tuple[Told | None, int]], now: float) -> None:
    """The parent's tick: each live worker's last Load, as one engine's tick would.

    ``workers``: each live worker's last Load (None: none yet) and its rows dealt not
    answered; those of a worker that told nothing yet count as in flight (so no time
    is counted as waited that may not have been). The parent ticks as a Load comes,
    before taking it: the time since its last tick was the old Load's.
    """
    told = [t for t, _ in workers if t is not None]
    holds: dict[str, tuple[float, str]] = {}
    for t in told:
        for host, end, why in t.ends:
            if end > now and end > holds.get(host, (0.0, ""))[0]:
                holds[host] = (end, why)
    held = sorted(((h, end - now, why) for h, (end, why) in holds.items()), key=lambda h: -h[1])
    unknown = sum(pending for t, pending in workers if t is None)
    inflight = sum(t.load.inflight for t in told) + unknown
    stats.note_tick(now, held, inflight, sum(t.load.retrying for t in told))
    # The workers' requests in flight against their limits, for the progress bar.
    stats.concurrency = inflight
    stats.limit = sum(t.load.limit for t in told)

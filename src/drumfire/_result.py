"""Result rows and the running statistics of a batch."""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from hdrh.histogram import HdrHistogram

from ._errors import Reason, explain

__all__ = ["BlankFields", "Result", "Stats", "is_failure"]

#: Columns every output row starts with, in this order.
BASE_COLUMNS = ("id", "status", "elapsed_ms", "attempts", "error")


class Result(NamedTuple):
    """One output row: the outcome of one input row.

    ``status`` is the HTTP status of the last attempt, or None when no
    response came. ``error`` is "" on success, else a short stable reason
    (``timeout``, ``connect``, ``reset``, ``protocol``, ``json``...), possibly
    followed by ``": detail"`` for input and parse errors. ``fields`` holds the
    extracted values (and a parse function's); from :func:`drumfire.run`,
    :func:`~drumfire.arun` and :func:`~drumfire.run_all` it is a dict on
    every row, with None for each asked name when no response came. ``kept``
    holds the input columns asked for with ``keep``.
    """

    id: str
    status: int | None
    elapsed_ms: float
    attempts: int
    error: str
    fields: dict[str, Any] | None = None
    kept: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """A 2xx response with no error."""
        return not self.error and self.status is not None and 200 <= self.status < 300

    @property
    def reason(self) -> str:
        """The short reason this row failed, "" if it did not (``http 503`` for a status)."""
        if self.error:
            return self.error.partition(":")[0]
        if self.status is not None and not 200 <= self.status < 300:
            return f"http {self.status}"
        return ""

    def as_dict(self) -> dict[str, Any]:
        """The flat output row: base columns, extracted fields, kept columns."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "elapsed_ms": self.elapsed_ms,
            "attempts": self.attempts,
            "error": self.error,
        }
        if self.fields:
            out.update(self.fields)
        if self.kept:
            out.update(self.kept)
        return out


class BlankFields:
    """Gives a row that has no fields (no response came, an error row) the asked
    names with None values, so ``result.fields[name]`` works on every row.

    The names are the extracted ones, then those a parse function returned
    on the first row it answered (rows before that have only the extracted
    ones). Used by the Python API's drivers.
    """

    __slots__ = ("_known", "_names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._known = False  # the parse function's names are learned

    def __call__(self, result: Result) -> Result:
        fields = result[5]
        if fields is not None:
            if not self._known and len(fields) > len(self._names):
                self._known = True
                self._names = tuple(fields)
            return result
        return _new_result(Result, (*result[:5], dict.fromkeys(self._names), result[6]))


_new_result = tuple.__new__


def is_failure(status: int | None, error: str) -> bool:
    """Whether a row counts as failed: an error, or a status other than 2xx.

    The rule of :meth:`Stats.add` (``failed`` = ``done`` - ``ok``), for
    counting rows read back from an output (the ``--cluster`` parts).
    """
    return bool(error) or (status is not None and not 200 <= status < 300)


_STATUS, _ERROR, _ATTEMPTS, _ELAPSED = (
    operator.itemgetter(1),
    operator.itemgetter(4),
    operator.itemgetter(3),
    operator.itemgetter(2),
)
_TO_MICROS = (1000.0).__mul__  # elapsed_ms * 1000, as add() has it
#: Distinct latencies kept waiting before they are recorded (hdrh's record_value is
#: Python: a few microseconds each).
_PENDING_MOST = 20_000
#: Rows at once from which add_all counts without a Python loop.
_MANY = 8
#: An answer over --max-body: its row's reason (see Stats.add).
_OVER = Reason.BODY_TOO_LARGE.value


class Stats:
    """Counters and a latency histogram, updated once per finished row.

    ``clock`` is injected (``time.perf_counter`` in a run) so that rate and
    ETA logic can be tested without sleeping.
    """

    def __init__(self, clock: Callable[[], float], total: int | None = None) -> None:
        self.clock = clock
        self.started = clock()
        self.finished: float | None = None
        self.total = total
        self.done = 0
        self.ok = 0
        self.requests = 0  # row attempts made, retries included (not ``resent``)
        self.reasons: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._latency = HdrHistogram(1, 3_600_000_000, 3)  # microseconds, up to an hour
        # Latencies wait here, rounded to 12 significant bits (finer than the
        # histogram's 3 digits; add_all's usual rows in whole microseconds), until
        # the histogram is read or they are many: hdrh's record_value is Python and
        # costs more than the rest of add().
        self._pending: Counter[int] = Counter()
        # The longest latency, as the row has it: the histogram gives its bucket's
        # top, up to 0.1 % above, and the summary's max (and a one-row p50) was a
        # figure no row of the output had.
        self.longest_ms = 0.0
        self.concurrency = 0  # requests in flight at the last tick
        self.limit = 0  # the concurrency limit at the last tick, in requests
        # Origins held at the last tick that rows wait for, longest wait first: (host,
        # seconds left, "Retry-After" or "quota"). The progress line says the first.
        self.held: list[tuple[str, float, str]] = []
        # Seconds with no request in flight while rows waited for the server's leave
        # (a retry's Retry-After or back-off, an origin held, a quota's reset), to a
        # tick, and what for: the run's rows/s counts that time (see note_tick). None:
        # not measured (the parent of -p's workers, a --cluster run: no engine ticks).
        self.waited_s: float | None = None
        self.waited_for: set[str] = set()
        self.retrying = 0  # rows sleeping before a retry at the last tick
        self._ticked = self.started
        self.stopped = False
        self.skipped = 0  # rows already in the output (--resume)
        self.duplicates = 0  # rows whose id was seen before in this input
        self.pipelined = 0  # requests sent behind others on a busy connection (re-sends too)
        # Requests sent again at once, on a new connection, because the kept-alive
        # one they went on was found closed before any byte of the answer, or closed
        # with them queued (pipelined) behind an answer: not attempts (``requests``
        # counts one per row attempt, as curl and requests do).
        self.resent = 0
        # One example message per transport failure reason (the first seen), hint
        # included: the row keeps the short reason, the summary shows what it was.
        # (Rows like "parse: ..." or "input: line N: ..." carry their own detail.)
        self.examples: dict[str, str] = {}
        # Set when the run stopped because no connection could be made
        # (``host:port: the last error``); see Engine.unreachable_after.
        self.unreachable: str | None = None

    def note_tick(
        self, now: float, held: list[tuple[str, float, str]], inflight: int, retrying: int
    ) -> None:
        """The engine's tick: the origins held at ``now`` (see :attr:`held`), the
        requests in flight and the rows sleeping before a retry. The time since the
        last tick counts as waited when nothing was in flight and rows waited (so to a
        tick: a twentieth of a second)."""
        self.held = held
        self.retrying = retrying
        since, self._ticked = self._ticked, now
        if inflight or not (held or retrying):
            return
        self.waited_s = (self.waited_s or 0.0) + (now - since)
        self.waited_for.update(why for _host, _left, why in held)
        if retrying:
            self.waited_for.add("retry")

    def add(self, result: Result) -> None:
        self.done += 1
        self.requests += result.attempts
        status = result.status
        if status is not None:
            self.statuses[status] += 1
        if result.error:
            reason = result.error.partition(":")[0]
            self.reasons[reason] += 1
            if reason == _OVER and reason not in self.examples:
                # An answer over --max-body is a row, not a transport failure: its
                # example (with the hint to raise --max-body) is taken here.
                self.examples[reason] = explain(reason, result.error.partition(": ")[2])
        elif status is None or 200 <= status < 300:  # not is_failure(status, error)
            # (no status and no error: a row whose file --resume found complete, --save-body)
            self.ok += 1
        else:
            self.reasons[f"http {status}"] += 1
        if result.attempts:
            ms = result.elapsed_ms
            if ms > self.longest_ms:
                self.longest_ms = ms
            # (whole µs rounded, as the output writes elapsed_ms: a row's p50 is its max)
            us = round(ms * 1000) or 1
            shift = us.bit_length() - 12
            if shift > 0:
                us = us >> shift << shift
            pending = self._pending
            pending[us] = pending.get(us, 0) + 1

    def add_all(self, results: list[Result]) -> None:
        """:meth:`add` for many rows at once, the usual row (answered, no error, whatever
        its status) in fewer steps.

        When every row is such a row (the usual hand-over), they are counted with
        no Python loop: their latencies wait in whole microseconds. That gives the
        histogram the same figures: the 12 bits :meth:`add` keeps are finer than
        the histogram's buckets, and round down within them.
        """
        count = len(results)
        if not count:
            return
        # (Not for a few rows, as a server that answers one at a time gives: the loop
        # below costs less than these calls then.)
        if count >= _MANY:
            statuses: list[int | None] = list(map(_STATUS, results))
            if None not in statuses and not any(map(_ERROR, results)):
                tries: list[int] = list(map(_ATTEMPTS, results))
                if 0 not in tries:
                    took: list[float] = list(map(_ELAPSED, results))
                    top = max(took)
                    if top > self.longest_ms:
                        self.longest_ms = top
                    micros = list(map(round, map(_TO_MICROS, took)))
                    if 0 in micros:
                        micros = [us or 1 for us in micros]
                    pending = self._pending
                    pending.update(micros)
                    if len(pending) > _PENDING_MOST:
                        self._fold()
                    self.requests += sum(tries)
                    self._answered(cast("list[int]", statuses))
                    return
        pending = self._pending
        get = pending.get
        add = self.add
        requests = 0
        top = self.longest_ms
        codes: list[int] = []  # the statuses of the rows answered without an error
        for result in results:
            _id, status, elapsed_ms, attempts, error, _fields, _kept = result
            if error or not attempts or status is None:
                add(result)
                continue
            codes.append(status)
            requests += attempts
            if elapsed_ms > top:
                top = elapsed_ms
            us = round(elapsed_ms * 1000) or 1
            shift = us.bit_length() - 12
            if shift > 0:
                us = us >> shift << shift
            pending[us] = get(us, 0) + 1
        if top > self.longest_ms:  # (rows given to add() above may have raised it)
            self.longest_ms = top
        if codes:
            self.requests += requests
            self._answered(codes)

    def _answered(self, codes: list[int]) -> None:
        """Count rows answered with these statuses and no error, as :meth:`add` does:
        2xx is ok, any other ``http N`` (osrm-routed's 400 NoRoute)."""
        count = len(codes)
        ok = codes.count(200)
        if ok == count:
            self.statuses[200] += count
        else:
            by_status = Counter(codes)
            self.statuses.update(by_status)
            for code, n in by_status.items():
                if code != 200:
                    if 200 <= code < 300:
                        ok += n
                    else:
                        self.reasons[f"http {code}"] += n
        self.done += count
        self.ok += ok

    def forget(self, results: list[Result], longest_ms: float) -> None:
        """Take back ``results``, counted here but never handed to the caller (a Python
        caller that left the iteration early): the figures are then those of the rows
        it was given, as tqdm's count is the items consumed, and the run is stopped
        (:attr:`not_done` counts the rows taken back). ``longest_ms``: the longest
        latency among the rows given (the histogram cannot say it to the µs).
        ``requests`` keeps their attempts: those requests were sent."""
        if not results:
            return
        self.stopped = True
        self._fold()
        record = self._latency.record_value
        for result in results:
            self.done -= 1
            status = result.status
            if status is not None:
                self.statuses[status] -= 1
            if result.error:
                self.reasons[result.error.partition(":")[0]] -= 1
            elif status is None or 200 <= status < 300:
                self.ok -= 1
            else:
                self.reasons[f"http {status}"] -= 1
            if result.attempts:
                record(round(result.elapsed_ms * 1000) or 1, -1)  # its bucket, as add's
        self.statuses = +self.statuses  # (the counts now 0 dropped)
        self.reasons = +self.reasons
        self.longest_ms = longest_ms

    @property
    def latency(self) -> HdrHistogram:
        """Latency in microseconds of every row that made a request."""
        if self._pending:
            self._fold()
        return self._latency

    def _fold(self) -> None:
        """Record the latencies waiting in :attr:`_pending` in the histogram."""
        record = self._latency.record_value
        for value, count in self._pending.items():
            record(value, count)
        self._pending.clear()

    @property
    def failed(self) -> int:
        return self.done - self.ok

    @property
    def wall(self) -> float:
        end = self.finished if self.finished is not None else self.clock()
        return max(end - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.done / self.wall

    @property
    def not_done(self) -> int | None:
        """The input's rows without a result: 0 once the run went to its end; for a
        run stopped early, those neither done nor skipped (``--resume``) out of the
        input's count, None when that count is not known (standard input, or a file
        that was not counted: no progress display)."""
        if not self.stopped:
            return 0
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.skipped)

    def percentile_ms(self, pct: float) -> float:
        """The latency percentile ``pct`` (0-100) in ms, to the histogram's 3
        significant digits, never above the longest latency (:meth:`max_ms`)."""
        if self.latency.get_total_count() == 0:
            return 0.0
        return min(float(self.latency.get_value_at_percentile(pct)) / 1000.0, self.max_ms())

    def max_ms(self) -> float:
        """The longest latency of a row that made a request, to the microsecond as
        the output writes ``elapsed_ms`` (0.0 when no row made one)."""
        return round(self.longest_ms, 3)

    def summary(self) -> dict[str, Any]:
        """A plain dict of the figures, for ``--json`` and the Python API."""
        return {
            "rows": self.done,
            "ok": self.ok,
            "failed": self.failed,
            "requests": self.requests,
            "failures": dict(self.reasons.most_common()),
            "status": {str(k): v for k, v in sorted(self.statuses.items())},
            "wall_s": round(self.wall, 3),
            # (to 0.1, and 3 figures below 1: 1 row in 60 s is not 0.0)
            "rows_per_s": round(self.rate, 1) if self.rate >= 1 else float(f"{self.rate:.3g}"),
            "latency_ms": {
                "p50": self.percentile_ms(50),
                "p90": self.percentile_ms(90),
                "p99": self.percentile_ms(99),
                "max": self.max_ms(),
            },
            "stopped": self.stopped,
            "not_done": self.not_done,
            "skipped": self.skipped,
            "duplicate_ids": self.duplicates,
            "pipelined": self.pipelined,
            "resent": self.resent,
            "waited_s": None if self.waited_s is None else round(self.waited_s, 1),
            "failure_examples": {
                reason: self.examples[reason]
                for reason, _ in self.reasons.most_common()
                if reason in self.examples
            },
            "unreachable": self.unreachable,
        }

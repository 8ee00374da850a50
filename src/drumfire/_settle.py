"""Settling rows: what an answer or a failure means for its row, and handing results on.

An answer may finish its row, or mean a retry (at once or after a backoff or
a ``Retry-After``), a redirect to follow, or the end of the row with its
status; a failure may mean the free re-send after a stale connection, a
retry, the end of the row, or that the target is unreachable. ``Retry``
decides what is retried; this part of the engine acts on it and hands each
result on (in order with ``--ordered``).

:class:`Settling` is a part of :class:`drumfire._engine.Engine` (see
:mod:`drumfire._core`).
"""

from __future__ import annotations

import time

from ._bodies import redirect  # keeps a body streamed from files, and the save target
from ._connection import Connection
from ._core import EngineCore
from ._errors import explain
from ._limits import OriginLimit
from ._quota import parse_quota, rate_fields
from ._response import Response
from ._result import Result
from ._rows import Flight

__all__ = ["Settling"]


class Settling(EngineCore):
    """The engine's answers, failures, retries and results (see the module docstring)."""

    def _read_quota(
        self, host: OriginLimit, answered: list[tuple[Flight, Response]], now: float
    ) -> None:
        """Quota headers (RateLimit, X-RateLimit-*): pace the origin, or hold it at zero.

        Looked for in an origin's first answers, unless it sends them, and in
        every throttled answer (429, 503: many servers send them there alone). A
        quota spent for longer than ``--max-retry-wait`` is not waited for: the
        rows parked for the origin end now, as later ones will when they come
        to it (``_admit``), with a ``retry_after`` error naming the quota.
        """
        wall = time.time()
        longest = self.retry.max_retry_after
        for _job, response in answered:
            fields = rate_fields(response.raw_headers)
            quota = parse_quota(fields.get, wall) if fields else None
            if quota is not None:
                left, reset = quota
                throttled = response.status in (429, 503)
                if left <= 0.0 and throttled:
                    # The draft (§7): a Retry-After takes precedence over the reset.
                    after = self.retry.parse_retry_after(response.header("retry-after"), wall)
                    if after is not None:
                        reset = after
                held = host.hold_until
                host.quota(now, left, reset, longest, throttled)
                if host.hold_until < held and host.timer is not None:
                    # Set for the longer hold: the rows parked get one for this one
                    # (on_responses hands them back to the pump, which parks them again).
                    host.timer.cancel()
                    host.timer = None
                if host.hold_until > now:
                    self.origins.held.add(host)  # (see Origins.relieve and holds)
            elif host.watch:
                host.watch -= 1
        if host.spent_until and host.queue:
            spent = host.spent(now)
            if spent:
                error = self.retry.quota_wait_error(spent)
                for flight in list(self.origins.take_parked(host)):
                    self._cancel(flight, error)  # waiting: its last attempt's time, if any

    def _sort_answers(
        self, host: OriginLimit, answered: list[tuple[Flight, Response]], now: float
    ) -> list[tuple[Flight, Response]]:
        """:meth:`on_responses` where some answers need more than writing their row
        (an overload signal, a retry, a redirect): settle those, count the others'
        latency, and return the others (the rows to write)."""
        special = self._special
        follow = self.follow_redirects
        watched = host.watch
        usual: list[tuple[Flight, Response]] = []
        waited = 0.0  # the latencies of the answers that were not overload signals
        calm = 0
        for flight, response in answered:
            status = response.status
            overload = status == 429 or status == 503
            if overload:
                if not watched:
                    # Many servers send quota headers on their 429s alone: those are
                    # always read (they are rare; a 200 costs no header search).
                    self._read_quota(host, [(flight, response)], now)
                wait = self.retry.throttle_wait(response.header("retry-after"))
                host.throttled(now, now - flight.start, wait, flight.attempts > 1)
                if host.hold_until > now:
                    self.origins.held.add(host)  # (see Origins.relieve and holds)
            else:
                waited += now - flight.start
                calm += 1
            if follow or status in special:
                self._settle(flight, response, overload, now)
            else:
                usual.append((flight, response))  # nothing to retry, wait for or follow
        if calm:
            host.answered(now, waited, calm)
        return usual

    def _settle(self, flight: Flight, response: Response, overload: bool, now: float) -> None:
        """An answer that may mean a retry, a wait or a redirect."""
        status = response.status
        retry = self.retry
        if response.error:  # its body not saved, kept or decoded: no retry or redirect mends that
            self._pump()
            self._finish_all([(flight, response)], now)
            return
        if 300 <= status < 400 and self.follow_redirects:
            location = response.header("location")
            if location is not None:
                if flight.hops >= self.follow_redirects:
                    self._pump()
                    self._give_up(flight, status, "too_many_redirects", now)
                    return
                nxt = redirect(flight.prepared, status, location)
                if nxt is not None and self._stopping:
                    # No new request once stopping: --resume sends the row again.
                    self._give_up(flight, None, "cancelled", now)
                    self._pump()
                    return
                if nxt is not None:
                    self._not_final(flight)
                    flight.took = now - flight.start
                    flight.prepared = nxt
                    flight.host = None  # perhaps another origin
                    flight.hops += 1
                    self._ready.append(flight)
                    self._pump()
                    return
        if self._budget_left(flight) and retry.is_retry(status, flight.prepared.idempotent):
            # Retry-After delays this row only (as urllib3, Envoy and gRPC do).
            retry_after = retry.parse_retry_after(response.header("retry-after"))
            if retry.over_wait(retry_after):
                # Longer than the user will wait: end the row now with its status,
                # so a later run (--retry-failed, --resume) can take it. Asked before
                # the origin's retry budget: this row is not retried, so it takes no
                # token (a run of them emptied the budget, and the rows after ended
                # with a bare status, not saying why, and left others no retries).
                assert retry_after is not None
                self._pump()
                self._give_up(flight, status, retry.over_wait_error(retry_after), now)
                return
            host = flight.host
            if host is not None and host.spent_until:
                spent = host.spent(now)
                if spent:  # its origin's quota is spent past --max-retry-wait: no retry
                    self._pump()
                    self._give_up(flight, status, retry.quota_wait_error(spent), now)
                    return
            if self._may_retry(flight, now):
                self._not_final(flight)
                self._retry_later(flight, retry_after, now)
                self._pump()
                return
            # The origin's retry budget is spent: the row ends with this answer and
            # says why (a bare status read as "its retries were used up").
            self._pump()
            for result in self.finisher.results([(flight, response)], now):
                error = result.error or retry.budget_error()
                self._emit(result._replace(error=error), flight.seq)
            return
        # Put the next request on the wire first (it takes this connection, the
        # most recently idle), then extract and write this row: the server works
        # on the next answer while the client does its share.
        self._pump()
        self._finish_all([(flight, response)], now)

    def on_failure(self, conn: Connection, flight: Flight, reason: str, detail: str) -> None:
        self._inflight -= 1
        host = flight.host
        examples = self.stats.examples
        if detail and reason not in examples and reason != "cancelled":
            examples[reason] = explain(reason, detail)
        if (
            self.unreachable_after
            and not self._reached
            and (self.stats.unreachable is not None or self._unreachable(conn, reason, detail))
        ):
            # The run stops: the target is unreachable. Rows still failing to
            # connect are cancelled, as those never sent are: --resume sends them.
            self._answered_host(host, 1)
            self._give_up(flight, None, "cancelled")
            self._pump()
            return
        if reason == "timeout" and host is not None:
            now = self.clock()
            host.limit.sample(now, now - flight.start, True)
        self._answered_host(host, 1)
        if reason == "cancelled":
            self._give_up(flight, None, "cancelled")
        elif flight.free_retry and self.retry.is_free_resend(
            reason, conn.served > 0, conn.received_any, flight.prepared.idempotent
        ):
            # A kept-alive connection the server had already closed: re-send at
            # once, without using the retry budget (urllib3 and aiohttp do the same).
            # Not an attempt (as curl and requests report one request; the server
            # had closed the connection before the request came), but counted apart
            # in ``resent``, as the pipelined requests a closed connection left
            # unanswered are (``on_unanswered``). Once stopping, cancelled: --resume sends it.
            flight.free_retry = False
            flight.attempts -= 1
            flight.took = self.clock() - flight.start
            if self._stopping:
                self._cancel(flight)
            else:
                self.stats.resent += 1
                self._ready.append(flight)
        elif (
            # Once stopping too: a failure a retry would mend during the grace ends the
            # row cancelled (_retry_later), as the rows waiting for their retry do, so
            # --resume sends it (it ended with its reason, which only --retry-failed sends).
            self._budget_left(flight)
            and self.retry.is_retry_failure(reason, detail, flight.prepared.idempotent)
            # A refused connection cost the server nothing: outside the budget.
            and (reason == "connect" or self._may_retry(flight, self.clock()))
        ):
            self._retry_later(flight, None, self.clock())
        else:
            self._give_up(flight, None, reason)
        self._pump()

    def _unreachable(self, conn: Connection, reason: str, detail: str) -> bool:
        """Count a failed connect; stop the run when the first ``unreachable_after`` all failed.

        A connection that never got made (refused, no such host, no route,
        connect timeout) counts; anything else (a TLS failure, a reset, an
        answer) means the server is there, and counting stops for the run.
        """
        if conn.transport is not None or reason not in ("connect", "timeout"):
            if reason != "cancelled":
                self._reached = True
            return False
        self._unreached += 1
        if self._unreached < self.unreachable_after or self._stopping:
            return False
        _scheme, host, port = conn.origin
        self.stats.unreachable = (
            f"{host}:{port}: the first {self._unreached} connection attempts all failed "
            f"(the last: {reason}: {detail or 'no connection'})"
        )
        self.stop(grace=0)
        return True

    def _budget_left(self, flight: Flight) -> bool:
        # Redirects followed are attempts but not retries (the free re-send is neither).
        return not self.retry.is_exhausted(flight.attempts, flight.hops)

    def _may_retry(self, flight: Flight, now: float) -> bool:
        """The origin's retry budget (a share of its recent requests) has room for one."""
        host = flight.host
        return host is None or host.may_retry(now)

    def _retry_later(self, flight: Flight, retry_after: float | None, now: float) -> None:
        """Its attempt ended at ``now``: send the row again, at once or after a wait."""
        flight.took = now - flight.start
        if self._stopping:
            self._cancel(flight)
            return
        delay = self.retry.delay(flight.attempts, retry_after, self.rng)
        if delay <= 0:
            self._ready.append(flight)
            return
        self._waiting += 1
        assert self._loop is not None
        self._sleeping[flight] = self._loop.call_later(delay, self._wake, flight)

    def _wake(self, flight: Flight) -> None:
        self._sleeping.pop(flight, None)
        self._waiting -= 1
        if self._stopping:
            self._cancel(flight)
            self._check_done()
            return
        self._ready.append(flight)
        self._pump()

    # -- finishing rows ------------------------------------------------------

    def _not_final(self, flight: Flight) -> None:
        """The answer just read is not the row's last (a retry or a redirect follows,
        or the row ends with an error): a body saved from it must not stay."""
        files = self.finisher.files
        if files is not None:
            files.abandon(flight.prepared)

    def _give_up(
        self, flight: Flight, status: int | None, reason: str, now: float | None = None
    ) -> None:
        """End the row whose attempt ended (or was cut) at ``now`` (None: the clock's now)."""
        self._not_final(flight)
        if now is None:
            now = self.clock()
        elapsed = (now - flight.start) * 1000.0 if flight.attempts else 0.0
        kept = self.rows.kept(flight.row)
        self._emit(
            Result(flight.id, status, elapsed, flight.attempts, reason, None, kept), flight.seq
        )

    def _cancel(self, flight: Flight, reason: str = "cancelled") -> None:
        """End a row waiting for its next attempt (or its first) with ``reason``.

        Its ``elapsed_ms`` is its last attempt's, from sending to the last byte,
        not the time it waited since (a Retry-After, its origin's pause).
        """
        kept = self.rows.kept(flight.row)
        self._emit(
            Result(flight.id, None, flight.took * 1000.0, flight.attempts, reason, None, kept),
            flight.seq,
        )

    def _finish_all(self, answered: list[tuple[Flight, Response]], now: float) -> None:
        """Rows answered at ``now``: decode, extract, count and hand each on."""
        done = self.finisher.results(answered, now)
        if self._order is not None:
            for (flight, _response), result in zip(answered, done, strict=True):
                self._emit(result, flight.seq)
            return
        if done:  # _emit, inlined for the usual case: hand each on, then count them
            on_result = self.on_result
            numbered = self.on_numbered
            handed = 0
            try:
                if self.on_results is not None:
                    # All at once (a file's sink). If it fails, none is counted: which
                    # of them reached the file is not known.
                    self.on_results(done)
                    handed = len(done)
                elif numbered is None:
                    for result in done:
                        on_result(result)
                        handed += 1
                else:
                    for (flight, _response), result in zip(answered, done, strict=True):
                        numbered(result, flight.seq)
                        handed += 1
            except Exception as exc:  # a broken sink or consumer ends the run with its error
                self._fail(exc)
            finally:
                self.stats.add_all(done if handed == len(done) else done[:handed])

    def _skip_seq(self, seq: int) -> None:
        """A row with no result to write (resumed): keep the reorder buffer moving."""
        if self._order is not None:
            self._order.put(seq, None)

    def _emit(self, result: Result, seq: int) -> None:
        self.stats.add(result)
        try:
            order = self._order
            if order is not None:
                window = self.order_window
                full = order.ahead(self._seq) >= window
                order.put(seq, result)
                if full and order.ahead(self._seq) < window:
                    # The oldest row's result reopened a full window. The answer's
                    # handling pumped before this (nothing could start then), and if
                    # it was the last request in flight nothing else would: the run
                    # stopped, rows unread, until Ctrl-C.
                    self._pump_later(0.0)
            elif self.on_numbered is not None:
                self.on_numbered(result, seq)
            else:
                self.on_result(result)
        except Exception as exc:  # a broken sink or consumer ends the run with its error
            # (from a connection's or a timer's callback it would only be logged)
            self._fail(exc)

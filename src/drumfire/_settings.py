"""Immutable settings: retries, timeouts, limits.

Value objects in the manner of httpx's ``Timeout`` and urllib3's ``Retry``:
frozen, comparable, printable and picklable, because they cross process
boundaries and are shared by every connection.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from ._errors import UsageError
from ._options import check_count, check_flag, check_number, check_seconds

__all__ = [
    "FINAL_REASONS",
    "IDEMPOTENT_METHODS",
    "MAX_BODY",
    "MAX_CONCURRENCY",
    "MAX_REDIRECTS",
    "METHODS",
    "MOST_RETRIES",
    "PIPELINE",
    "SWEEP_FLOOR",
    "UNPROCESSED_STATUSES",
    "Retry",
    "Timeouts",
    "sweep_interval",
]

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

# Defaults, declared once: the settings objects (``Timeouts``, ``Retry``,
# ``drumfire.Job``) hold them, and the CLI, the API, the engine and bench read
# them from there (``--help`` shows the same figures).
#: The largest response body accepted, after decompression (``--max-body``).
MAX_BODY = 64 * 1024 * 1024
#: The cap of the adaptive concurrency (``--max-concurrency``).
MAX_CONCURRENCY = 512
#: The most GET requests queued on one connection once the client's CPU limits the run.
PIPELINE = 64
#: Redirects followed per row when following is on (requests' default; curl's is 50).
MAX_REDIRECTS = 10
#: The most retries of a row (``--retries``' range, ``Retry.retries``').
MOST_RETRIES = 100


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``connect``: to open a connection; ``total``: one attempt, from send to last byte."""

    connect: float = 10.0
    total: float = 30.0

    def __post_init__(self) -> None:
        """Each value is a number of seconds above 0 (an int becomes a float).

        Raises:
            UsageError: one line naming the field (``Timeouts.connect=0: give a number
                of seconds above 0 (5 or 2.5)``); a NaN or an infinity never fires.
        """
        for name in ("connect", "total"):
            object.__setattr__(self, name, check_seconds(f"Timeouts.{name}", getattr(self, name)))


#: The shortest time between two sweeps for connections past their deadline.
SWEEP_FLOOR = 0.005


def sweep_interval(tick: float, *timeouts: float) -> float:
    """How often an owner of connections (the engine, bench's runner) aborts those past
    their deadline: a tenth of the shortest timeout, so that a timeout fires at most a
    tenth late, and at most ``tick`` apart; never under :data:`SWEEP_FLOOR` (a timeout
    under 50 ms may fire up to 5 ms late), which bounds the sweeps' cost."""
    return max(SWEEP_FLOOR, min(tick, *(t / 10 for t in timeouts)))


#: Statuses with which the server says it did not process the request (RFC 9110
#: §15.5.30 and §15.6.4; RFC 6585 §4): a re-send is safe whatever the method.
UNPROCESSED_STATUSES = frozenset({429, 503})
#: The longest Retry-After delay-seconds taken as it is (RFC 9111 §1.2.2's 2**31).
_LONGEST_DELAY = float(2**31)

#: Row reasons that a retry cannot change: the same request to the same server
#: gets the same answer. ``tls``: certificate verification and every other
#: handshake failure (a wrong certificate, protocol version or cipher is
#: configuration, not luck); ``protocol``: a malformed response, an unsupported
#: or broken ``Content-Encoding``, a protocol upgrade (but not a response cut
#: short by a closed connection, which is retried like a reset);
#: ``body_too_large``: over ``--max-body``; ``header_too_large``: over the header cap;
#: ``file`` and ``save`` (``file: PATH: why``): a file to send that is missing or
#: changed while sent, a body that cannot be written (a full disk, a name too
#: long): local failures, and a file sent again would go with a stale length.
FINAL_REASONS = frozenset(
    {"tls", "protocol", "body_too_large", "header_too_large", "file", "save"}
)
#: ``protocol`` details that mean the connection ended mid-response: transient.
_CUT_SHORT = ("connection closed mid-response",)


_SECONDS = "a number of seconds, 0 or more"


def _statuses(value: Any) -> frozenset[int]:
    """``Retry.statuses``: HTTP statuses (100 to 599), in any iterable, as a frozenset."""
    codes = None
    if not isinstance(value, str | bytes):
        with contextlib.suppress(TypeError, UsageError):
            codes = frozenset(check_count("status", s, 100, 599) for s in value)
    if codes is None:
        raise UsageError(
            f"Retry.statuses={value!r}: give HTTP statuses (100 to 599), a set of ints like {{503}}"
        )
    return codes


@dataclass(frozen=True, slots=True)
class Retry:
    """The retry policy: what is retried, how long to wait first, how much in all.

    In the manner of urllib3's ``Retry``, this object owns every retry decision
    (:meth:`is_retry`, :meth:`is_retry_failure`, :meth:`is_free_resend`,
    :meth:`is_exhausted`, :meth:`parse_retry_after`, :meth:`throttle_wait`,
    :meth:`delay`); the engine only asks.

    Retried: connection failures, resets, timeouts, responses cut short, and the
    statuses in ``statuses``; never the reasons in :data:`FINAL_REASONS`. A
    request that may have reached the server is only re-sent when its method is
    idempotent, or when ``unsafe`` is set; 429 and 503 say it was not processed,
    so they are retried for any method.
    The wait before attempt *n* (n ≥ 2) is a "full jitter" exponential backoff,
    ``uniform(0, min(max_backoff, backoff * 2**(n-2)))``, or the server's
    ``Retry-After`` when that is longer. A ``Retry-After`` over
    ``max_retry_after`` seconds is not waited for: the row ends at once with
    its status and the error :meth:`over_wait_error`, so that a later
    ``--retry-failed`` or ``--resume`` run can take it (0: no ``Retry-After``
    is waited for; ``Retry-After: 0`` asks for no wait). A quota the server says
    is spent for longer is not waited for either: the rows that would start
    before its reset end unsent, with :meth:`quota_wait_error`.
    ``budget`` and ``budget_floor``: retries to one origin may add at most
    ``budget`` of its recent first attempts, plus ``budget_floor`` per second
    (gRPC's retry throttling, Finagle's retry budget); beyond that a row that
    would be retried ends with its last answer and, for an answer, the error
    :meth:`budget_error` (``retry_budget: …``). A row over ``max_retry_after``
    would not be retried, so the budget is not asked and it says why.
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 10.0
    statuses: frozenset[int] = field(default=frozenset({429, 502, 503, 504}))
    unsafe: bool = False
    max_retry_after: float = 60.0
    budget: float = 0.2
    budget_floor: float = 10.0

    def __post_init__(self) -> None:
        """Check every field: the engine trusts them (a NaN wait or a negative budget
        would fail mid-run, far from its cause). Numbers become floats, statuses a frozenset.

        Raises:
            UsageError: one line naming the field (``Retry.backoff=-1: give a number
                of seconds, 0 or more``).
        """
        put = object.__setattr__
        put(self, "retries", check_count("Retry.retries", self.retries, 0, MOST_RETRIES))
        for name in ("backoff", "max_backoff", "max_retry_after"):
            seconds = check_number(f"Retry.{name}", getattr(self, name), _SECONDS)
            put(self, name, seconds)
        put(self, "budget", check_number("Retry.budget", self.budget, "a share, 0 or more (0.2)"))
        floor = "retries per second, 0 or more"
        put(self, "budget_floor", check_number("Retry.budget_floor", self.budget_floor, floor))
        put(self, "statuses", _statuses(self.statuses))
        check_flag("Retry.unsafe", self.unsafe)

    def is_retry(self, status: int, idempotent: bool) -> bool:
        """Whether an answer with ``status`` may be retried (attempts left aside)."""
        return status in self.statuses and (
            idempotent or self.unsafe or status in UNPROCESSED_STATUSES
        )

    def is_retry_failure(self, reason: str, detail: str, idempotent: bool) -> bool:
        """Whether a failed attempt (no answer) may be retried (attempts left aside).

        A connect failure never reached the server: any method is re-sent. Others
        may have been processed: only idempotent methods, or with ``unsafe``.
        """
        kind = reason.partition(":")[0]  # "file: PATH: why" is a file reason
        if kind in FINAL_REASONS and not (kind == "protocol" and detail in _CUT_SHORT):
            return False
        return reason == "connect" or idempotent or self.unsafe

    def is_exhausted(self, attempts: int, not_counted: int = 0) -> bool:
        """Whether a row sent ``attempts`` times has used up its retries.

        ``not_counted``: attempts that were no retry (redirects followed, the
        free re-send after a stale connection, see :meth:`is_free_resend`).
        """
        return attempts - not_counted > self.retries

    def may_resend(self, idempotent: bool) -> bool:
        """Whether a request the server may have received may be sent again."""
        return idempotent or self.unsafe

    def is_free_resend(
        self, reason: str, reused: bool, received_any: bool, idempotent: bool
    ) -> bool:
        """Whether a failure means a kept-alive connection the server had already closed,
        or one out of step.

        A reset on a reused connection before any byte of the answer: the request
        is re-sent at once on a new connection, outside the retry budget (as
        urllib3 and aiohttp do), if it may be sent again at all. So is a
        ``protocol`` failure there with nothing of the answer received: bytes where
        the answer should begin that begin no answer (the reader says so), the rest
        of the answer before it (a body sent with a HEAD or 204 answer).
        """
        return (
            (reason == "reset" or reason == "protocol")
            and reused
            and not received_any
            and self.may_resend(idempotent)
        )

    def throttle_wait(self, value: str | None) -> float | None:
        """A throttled answer's ``Retry-After`` value in seconds, when this policy would wait.

        None when it is missing, malformed, or over ``max_retry_after``.
        """
        wait = self.parse_retry_after(value)
        return None if self.over_wait(wait) else wait

    def over_wait(self, retry_after: float | None) -> bool:
        """Whether the server asks for a longer wait than this policy will make."""
        return retry_after is not None and retry_after > self.max_retry_after

    def budget_error(self) -> str:
        """The error of a row whose retry the origin's budget did not allow."""
        return (
            f"retry_budget: retries to this origin are at {self.budget:.0%} of its recent "
            f"requests plus {self.budget_floor:g}/s"
        )

    def over_wait_error(self, retry_after: float) -> str:
        """The row's error when :meth:`over_wait`: a stable reason, then the figures.

        Whole seconds as they are (delay-seconds always are); a fraction (an
        HTTP-date's distance from now) rounded up to a tenth, so the figure is
        over the cap as the wait was: rounded to the second, 0.4 s over a cap
        of 0 read ``0s over --max-retry-wait 0s``.
        """
        if float(retry_after).is_integer():
            asked = f"{retry_after:.0f}"
        else:  # round() first: 1.1 * 10 is 11.000000000000002
            asked = f"{math.ceil(round(retry_after * 10, 6)) / 10:.1f}"
        return f"retry_after: {asked}s over --max-retry-wait {self.max_retry_after:g}s"

    def quota_wait_error(self, reset: float) -> str:
        """The error of a row not sent: the origin's quota is spent for ``reset`` more seconds.

        The reason of a ``Retry-After`` over the cap (the server asks for the
        same wait), naming the quota: ``retry_after: quota resets in 38s, over
        --max-retry-wait 2s``.
        """
        # Whole seconds, rounded up (so still over the cap): the reset was measured
        # a moment ago, and 39.997 read as "40.0s".
        whole, cap = math.ceil(round(reset, 6)), self.max_retry_after
        return f"retry_after: quota resets in {whole}s, over --max-retry-wait {cap:g}s"

    @staticmethod
    def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
        """Parse ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

        Returns seconds from ``now`` (wall-clock time, default :func:`time.time`),
        0 for a date in the past, None for a missing or malformed value (a date
        whose fields overflow included). Delay-seconds past 2**31 count as 2**31,
        as RFC 9111 §1.2.2 has a cache do with a delta-seconds too large to hold:
        400 digits were an infinity, which no error text could round.
        """
        if not value:
            return None
        value = value.strip()
        if value.isascii() and value.isdigit():
            return float(min(int(value), _LONGEST_DELAY)) if len(value) < 20 else _LONGEST_DELAY
        import email.utils  # only for an HTTP-date: not at start-up (about 4 ms of imports)

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # asctime form: HTTP dates are always GMT (RFC 9110 §5.6.7)
            when = when.replace(tzinfo=datetime.UTC)
        wall = time.time() if now is None else now
        return max(0.0, when.timestamp() - wall)

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt number ``attempt + 1``.

        A ``retry_after`` over ``max_retry_after`` is cut to it here; the engine
        ends such rows instead of waiting (:meth:`over_wait`).
        """
        cap = min(self.max_backoff, self.backoff * (2 ** max(attempt - 1, 0)))
        wait = (rng or random).uniform(0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


"""Immutable settings: retries, timeouts, limits.

Value objects in the manner of httpx's ``Timeout`` and urllib3's ``Retry``:
frozen, comparable, printable and picklable, because they cross process
boundaries and are shared by every connection.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["IDEMPOTENT_METHODS", "METHODS", "Retry", "Timeouts"]

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``connect``: to open a connection; ``total``: one attempt, from send to last byte."""

    connect: float = 10.0
    total: float = 30.0


@dataclass(frozen=True, slots=True)
class Retry:
    """When to try a request again, and how long to wait first.

    Retried: connection failures, resets, timeouts, truncated responses, and the
    statuses in ``statuses``. A request that may have reached the server is only
    re-sent when its method is idempotent, or when ``unsafe`` is set.
    The wait before attempt *n* (n ≥ 2) is a "full jitter" exponential backoff,
    ``uniform(0, min(max_backoff, backoff * 2**(n-2)))``, or the server's
    ``Retry-After`` when that is longer (capped at ``max_retry_after``).
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 10.0
    statuses: frozenset[int] = field(default=frozenset({429, 502, 503, 504}))
    unsafe: bool = False
    max_retry_after: float = 120.0

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt number ``attempt + 1``."""
        cap = min(self.max_backoff, self.backoff * (2 ** max(attempt - 1, 0)))
        wait = (rng or random).uniform(0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

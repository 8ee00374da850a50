"""Rate-limit header fields: how much of a server's quota is left, and when it resets.

Sans-I/O, as the rest of the protocol code: :func:`parse_quota` takes a look-up
of an answer's fields and returns figures; :class:`~drumfire._limits.OriginLimit`
paces or holds the origin by them. The IETF httpapi draft
(draft-ietf-httpapi-ratelimit-headers) is followed in its -08 and later form
(Structured Field Lists, RFC 9651), its draft-07 form, and the older and
vendor fields still in common use.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["parse_quota", "rate_fields"]

#: Resets above these are Unix times, not delays: in seconds (10^9 s is 31 years
#: ahead, a 2001 date), and in milliseconds (10^11 s would be the year 5138).
_UNIX_SECONDS = 1e9
_UNIX_MILLISECONDS = 1e11
#: A reset further ahead (seconds) is a malformed value, no quota window: a year
#: is longer than any quota period in use (most are a minute, an hour or a day).
_LONGEST_RESET = 366 * 86400.0


def rate_fields(
    raw: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...],
) -> dict[str, str]:
    """The answer's rate-limit fields by lower-case name, in one pass over its headers.

    ``RateLimit`` sent on several lines reads as one, joined by ``", "`` (RFC
    9110 §5.3): the IETF draft lets its list be split so. The others, not
    lists, keep their first line (a gateway may repeat its upstream's).
    """
    fields: dict[str, str] = {}
    for name, value in raw:
        lower = name.lower()
        if b"ratelimit" in lower:
            key, item = lower.decode("latin-1"), value.decode("latin-1").strip()
            before = fields.get(key)
            if before is None:
                fields[key] = item
            elif key == "ratelimit":
                fields[key] = f"{before}, {item}"
    return fields


def parse_quota(header: Callable[[str], str | None], wall: float) -> tuple[float, float] | None:
    """(requests remaining, seconds until the quota resets) from an answer's headers, or None.

    Reads, in this order (the first present and well-formed wins):

    * the IETF httpapi draft's ``RateLimit`` field (draft-ietf-httpapi-ratelimit-headers,
      -08 on, §4): a List of service limit items, ``"policy";r=R;t=T``, one per quota
      policy. Every quota applies (§7: none is to be exceeded), so the most
      restrictive one is returned (:func:`_tightest`); items without ``r`` are skipped;
    * its draft-07 form, a Dictionary ``limit=L, remaining=R, reset=T`` (still sent by
      express-rate-limit's ``draft-7`` mode and several gateways);
    * the drafts' earlier ``RateLimit-Remaining`` / ``RateLimit-Reset`` and the common
      ``X-RateLimit-Remaining`` / ``X-RateLimit-Reset``.

    ``header`` looks a field up by name (lower case), with lines repeated in one
    answer joined by ``", "`` (RFC 9110 §5.3: the draft allows a list split over
    several ``RateLimit`` lines). A reset is a delay in seconds, or plainly a Unix
    time: over 10^9 in seconds (GitHub's form), over 10^11 in milliseconds (some
    gateways'), either made relative to ``wall`` (:func:`time.time`). A malformed
    field is ignored (draft §7), and so is a reset more than a year ahead (no
    quota window is that long; a hold must not last for ever).
    """
    value = header("ratelimit")
    if value:
        quota = _ratelimit_field(value)
        if quota is not None:
            return _reset_from_now(quota[0], quota[1], wall)
    remaining = header("x-ratelimit-remaining") or header("ratelimit-remaining")
    reset = header("x-ratelimit-reset") or header("ratelimit-reset")
    if remaining is None or reset is None:
        return None
    try:
        left, when = float(remaining.strip()), float(reset.strip())
    except ValueError:
        return None
    if not (math.isfinite(left) and math.isfinite(when)) or left < 0 or when < 0:
        return None
    return _reset_from_now(left, when, wall)


def _reset_from_now(left: float, when: float, wall: float) -> tuple[float, float] | None:
    """``(left, when)`` with a Unix-time ``when`` made a delay; None when absurdly far."""
    if when > _UNIX_MILLISECONDS:
        when = max(0.0, when / 1000.0 - wall)
    elif when > _UNIX_SECONDS:
        when = max(0.0, when - wall)
    if when > _LONGEST_RESET:
        return None
    return left, when


def _ratelimit_field(value: str) -> tuple[float, float] | None:
    """The ``RateLimit`` field's most restrictive quota, or None (malformed, or no quota in it).

    A small reader of the Structured Field forms the drafts use (RFC 9651 §3.1, §3.2):
    members split at commas outside quoted strings, parameters at semicolons.
    ``r`` and ``t`` (``remaining`` and ``reset``) must be non-negative Integers.
    """
    members = _sf_members(value)
    if members is None:
        return None
    first = members[0][0]
    if "=" in first and not first.startswith('"'):
        # Draft-07: a Dictionary, limit=100, remaining=50, reset=5.
        keys = {}
        for bare, _params in members:
            key, _, item = bare.partition("=")
            keys[key.strip()] = item.strip()
        left, when = _sf_integer(keys.get("remaining")), _sf_integer(keys.get("reset", "0"))
        if left is None or when is None:
            return None
        return float(left), float(when)
    quotas: list[tuple[int, int | None]] = []
    for _bare, params in members:
        if "r" not in params:
            continue  # not a service limit item (r is REQUIRED, draft §4.1)
        left = _sf_integer(params["r"])
        when = _sf_integer(params["t"]) if "t" in params else None
        if left is None or ("t" in params and when is None):
            return None  # malformed: the whole field is ignored
        quotas.append((left, when))
    return _tightest(quotas)


def _tightest(quotas: list[tuple[int, int | None]]) -> tuple[float, float] | None:
    """The most restrictive of several quotas that all apply, as (remaining, reset).

    One spent (``r`` 0) is the tightest: nothing may start until it resets (the
    latest of them, when several are). Else the lowest pace, ``r / t`` per second:
    keeping to it keeps to every other quota too (r_i requests at most before
    each t_i). A quota with no ``t`` (no known reset) paces nothing.
    """
    spent = [when for left, when in quotas if left == 0 and when]
    if spent:
        return 0.0, float(max(spent))
    timed = [(left, when) for left, when in quotas if when]
    if timed:
        left, when = min(timed, key=lambda q: q[0] / q[1])
        return float(left), float(when)
    if quotas:
        return float(min(left for left, _when in quotas)), 0.0
    return None


def _sf_members(value: str) -> list[tuple[str, dict[str, str]]] | None:
    """A Structured Field List or Dictionary as (bare item, parameters) pairs; None if malformed.

    Quoted strings may hold commas and semicolons (a policy named "a,b"); byte
    sequences (``:cHsdsRa894=:``) hold neither. A parameter without a value is a
    Boolean true (RFC 9651 §3.1.2), kept as ``?1``.
    """
    parts: list[str] = []
    piece: list[str] = []
    quoted = escaped = False
    members: list[list[str]] = []
    for char in value:
        if quoted:
            piece.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
            piece.append(char)
        elif char == ";" or char == ",":
            parts.append("".join(piece).strip())
            piece = []
            if char == ",":
                members.append(parts)
                parts = []
        else:
            piece.append(char)
    if quoted:
        return None  # an unterminated string
    parts.append("".join(piece).strip())
    members.append(parts)
    out: list[tuple[str, dict[str, str]]] = []
    for member in members:
        if not member[0]:
            return None  # an empty member: "a, , b" or a trailing comma
        params: dict[str, str] = {}
        for param in member[1:]:
            key, eq, item = param.partition("=")
            key = key.strip()
            if not key:
                return None
            params[key] = item.strip() if eq else "?1"
        out.append((member[0], params))
    return out


def _sf_integer(text: str | None) -> int | None:
    """A non-negative Structured Field Integer (at most 15 digits, RFC 9651 §3.3.1), or None."""
    if text is None or not (0 < len(text) <= 15 and text.isascii() and text.isdigit()):
        return None
    return int(text)

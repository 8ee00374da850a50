"""One exception tree for drumfire, and the mapping from low-level errors to row reasons.

::

    DrumfireError
    ├── UsageError            bad options, templates or input found before the run (exit 2)
    │   ├── TemplateError     a template names a column the input lacks, or is malformed
    │   └── InputError        the input cannot be opened or its header is unusable
    └── RequestError          one request failed; in a batch this becomes a row, never a raise
        ├── ConnectError      "connect"   refused, unreachable, DNS
        ├── ResetError        "reset"     the peer closed or reset the connection
        ├── TimeoutError_     "timeout"   connect or total timeout
        ├── TLSError          "tls"       handshake or certificate failure
        ├── ProtocolError     "protocol"  malformed or truncated HTTP
        │   └── HeaderTooLarge "header_too_large"  a header block over the cap
        └── BodyTooLarge      "body_too_large"

In a batch run nothing here escapes to the caller except :class:`UsageError`;
every per-request problem is recorded as a short, stable reason string in the
result row (see :data:`REASONS`).
"""

from __future__ import annotations

import ssl

__all__ = [
    "REASONS",
    "BodyTooLarge",
    "ConnectError",
    "DrumfireError",
    "HeaderTooLarge",
    "InputError",
    "ProtocolError",
    "RequestError",
    "ResetError",
    "TLSError",
    "TemplateError",
    "TimeoutError_",
    "UsageError",
    "explain",
    "reason_for",
]

#: Every reason a row's ``error`` column can hold.
REASONS = (
    "connect",
    "reset",
    "timeout",
    "tls",
    "protocol",
    "body_too_large",
    "header_too_large",
    "json",
    "parse",
    "input",
    "template",
    "cancelled",
    "too_many_redirects",
)


class DrumfireError(Exception):
    """Base of every exception drumfire raises."""


class UsageError(DrumfireError):
    """A problem with options, templates or input, found before the first request."""


class TemplateError(UsageError):
    pass


class InputError(UsageError):
    pass


class RequestError(DrumfireError):
    """One request failed. ``reason`` is the stable short name written to the row."""

    reason = "error"


class ConnectError(RequestError):
    reason = "connect"


class ResetError(RequestError):
    reason = "reset"


class TimeoutError_(RequestError):
    reason = "timeout"


class TLSError(RequestError):
    reason = "tls"


class ProtocolError(RequestError):
    reason = "protocol"


class HeaderTooLarge(ProtocolError):
    """The response's header block grew past the cap (``--max-header-size``)."""

    reason = "header_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"response header block over {limit} bytes (raise it with --max-header-size)"
        )
        self.limit = limit


class BodyTooLarge(RequestError):
    reason = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


def reason_for(exc: BaseException | None, *, connecting: bool = False) -> str:
    """Map an exception from the transport to a row reason.

    ``connecting`` says whether the connection was still being opened, where
    any OSError means the server could not be reached.
    """
    if isinstance(exc, RequestError):
        return exc.reason
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if connecting:
        return "connect"
    return "reset"


#: (reason, words in the detail, hint): the first match adds its hint to an
#: example message in the summary. The usual causes of a failed run, and what
#: to do about each; the row itself keeps only the short reason.
_HINTS = (
    ("tls", "certificate verify failed", "use --cacert FILE, or -k to skip verification"),
    ("tls", "certificate required", "the server wants a client certificate: --cert FILE"),
    ("tls", "wrong version number", "does that port speak TLS? try http:// for it"),
    ("connect", "refused", "is the server running and listening on that port?"),
    ("connect", "name or service not known", "check the host name in the URL"),
    ("connect", "nodename nor servname", "check the host name in the URL"),
    ("connect", "temporary failure in name resolution", "check the host name and DNS"),
    ("connect", "unreachable", "check the address and the network"),
    ("timeout", "connect", "raise --connect-timeout, or check the address and firewall"),
    ("timeout", "", "the server did not answer within --timeout; raise it, or lower -c"),
    ("body_too_large", "", "raise --max-body"),
)


def explain(reason: str, detail: str) -> str:
    """``detail`` with a hint at the usual cause of ``reason``, for the summary."""
    lowered = detail.lower()
    for hint_reason, words, hint in _HINTS:
        if reason == hint_reason and words in lowered:
            return f"{detail} ({hint})" if detail else hint
    return detail

"""What goes wrong: exceptions for what stops a call, :class:`Reason` for a row that failed.

Two kinds of failure, each with one home (as httpx maps transport errors at its
boundary, ``httpx/_exceptions.py``):

* A problem that stops a call before the first request is an exception, and
  these are the only exceptions drumfire raises to its caller (exit status 2 on
  the command line)::

      DrumfireError
      └── UsageError            bad options, templates or input found before the run
          ├── TemplateError     a template names a column the input lacks, or is malformed
          └── InputError        the input cannot be opened or its header is unusable

* A request that fails is a result row, never a raise: ``Result.error`` starts
  with a :class:`Reason` (a ``str`` enum: ``result.reason == Reason.TIMEOUT``).

Inside the transport, the sans-I/O HTTP reader signals a bad response by raising
a :class:`RequestError` (``ProtocolError``, ``HeaderTooLarge``, ``BodyTooLarge``,
each carrying its reason); the connection catches it and, with
:func:`reason_for` for socket and TLS errors, turns it into the row's reason.
A :class:`SinkError` (a ``--save-body`` file that cannot be written) is not the
response's fault: the reader ends the answer with its status and that reason.
These are private: they never reach the caller.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Sequence

__all__ = [
    "BodyTooLarge",
    "DrumfireError",
    "HeaderTooLarge",
    "InputError",
    "ProtocolError",
    "Reason",
    "RequestError",
    "SinkError",
    "TemplateError",
    "UsageError",
    "as_called",
    "columns_differ",
    "explain",
    "reason_for",
    "resume_named",
]


class Reason(enum.StrEnum):
    """Why a row failed: the stable word that starts its ``error`` (``Result.reason``).

    Some reasons are followed by ``": "`` and a detail (``input: line 7: …``,
    ``encoding: …``, ``retry_after: 90s over --max-retry-wait 60s``). A member
    is a ``str``, so ``result.reason == "timeout"`` and
    ``result.reason == Reason.TIMEOUT`` are the same test.
    """

    CONNECT = "connect"  # refused, unreachable, DNS, or a connect timeout
    RESET = "reset"  # the peer closed or reset the connection
    TIMEOUT = "timeout"  # no full answer within --timeout
    TLS = "tls"  # handshake or certificate failure
    PROTOCOL = "protocol"  # a malformed or truncated response
    BODY_TOO_LARGE = "body_too_large"  # over --max-body
    HEADER_TOO_LARGE = "header_too_large"  # over --max-header-size
    ENCODING = "encoding"  # a content or transfer coding not decoded (the status stays)
    RETRY_AFTER = "retry_after"  # asked to wait longer than --max-retry-wait
    RETRY_BUDGET = "retry_budget"  # a retryable answer the origin's retry budget did not retry
    TOO_MANY_REDIRECTS = "too_many_redirects"
    JSON = "json"  # a 2xx whose body is not JSON while fields were asked for
    PARSE = "parse"  # the --parse function raised
    INPUT = "input"  # a bad input line
    TEMPLATE = "template"  # a value a template cannot take
    CANCELLED = "cancelled"  # the run stopped before the row's answer came
    FILE = "file"  # a file to send is missing, unreadable or changed (file: PATH: why)
    SAVE = "save"  # a --save-body path refused, or a body not written (save: PATH: why)


class DrumfireError(Exception):
    """Base of every exception drumfire raises."""


class UsageError(DrumfireError):
    """A problem with options, templates or input, found before the first request."""


class TemplateError(UsageError):
    pass


class InputError(UsageError):
    pass


#: What the modules below the command line and the API start a resume's messages
#: with, and the options they name there; :func:`resume_named` puts each caller's names.
RESUME = "--resume: "
_SAME_FIELDS = "use the same --extract and --keep options"
_SAME_SAVED = "use the same --save-body and --save-sha256 options"
_API_NAMES = (
    (_SAME_FIELDS, "use the same extract= and keep="),
    (_SAME_SAVED, "use the same save_body= and save_sha256="),
)
#: The columns --save-body and --save-sha256 add to an output.
_SAVED_COLUMNS = frozenset({"saved_path", "saved_bytes", "saved_sha256"})


def columns_differ(where: str, found: Sequence[str], columns: Sequence[str]) -> UsageError:
    """A resume's refusal of an output whose columns are not this run's, naming the
    options that make the difference: a download resumed without the first run's
    ``--save-sha256`` was told to use the same --extract and --keep, which it did."""
    saved = _SAVED_COLUMNS.intersection(found) != _SAVED_COLUMNS.intersection(columns)
    return UsageError(
        f"{RESUME}the columns of {where} ({','.join(found)}) differ from this run's "
        f"({','.join(columns)}); {_SAME_SAVED if saved else _SAME_FIELDS}"
    )


#: The command line's words in the messages of the checks before the first request
#: (shared with ``drumfire run``), as a call names them: ``url=``, not ``--url``.
_KEYWORDS = (
    ("--keep names column", "keep= names column"),
    ("--id names column", "id= names column"),
    ("bad --extract expression", "bad extract= expression"),
    ("choose another name for -e NAME=...", "choose another name in extract="),
    ("(--keep cannot)", "(keep= cannot)"),
    ("name it once in --keep", "name it once in keep="),
    ("? say --delimiter ", "? say delimiter="),
)


def as_called(exc: UsageError) -> UsageError:
    """``exc`` with the keywords of a Python call (run, run_all, run_dask) where it names
    command-line options: the checks are the command line's, and the API's boundary
    renames their words, as :func:`resume_named` does a resume's."""
    text = str(exc)
    named = "url=" + text[len("--url ") :] if text.startswith("--url ") else text
    for option, keyword in _KEYWORDS:
        named = named.replace(option, keyword)
    return exc if named == text else type(exc)(named)


def resume_named(exc: UsageError, name: str) -> UsageError:
    """``exc`` naming the resume as its caller asked for it: ``name`` is an option
    (``--retry-failed``) or a keyword (``resume=True``, whose message names keywords).

    The output readers and writers (``_resume``, ``_outfile``, the sinks) raise with
    the command line's words, which a Python call never typed; the boundary (the API's
    ``output=``, the command line) renames them, as httpx maps errors at its boundary.
    """
    text = str(exc)
    if not text.startswith(RESUME):
        return exc
    text = f"{name}: {text[len(RESUME):]}"
    if not name.startswith("-"):
        for option, keyword in _API_NAMES:
            text = text.replace(option, keyword)
    return type(exc)(text)


class RequestError(DrumfireError):
    """A response the HTTP reader refuses (private: it becomes the row's ``reason``)."""

    # Plain str values: rows, counters and their JSON hold plain strings (orjson
    # refuses a str subclass as a dict key); Reason names them.
    reason: str = Reason.PROTOCOL.value


class ProtocolError(RequestError):
    reason = Reason.PROTOCOL.value


class SinkError(RequestError):
    """The body could not be written where it goes (``--save-body``: a full disk, a name
    too long): a local failure, not the server's. The reader ends the answer there with
    its status and this reason (``Response.error``), and does not reuse the connection."""


class HeaderTooLarge(ProtocolError):
    """The response's header block grew past the cap (``--max-header-size``)."""

    reason = Reason.HEADER_TOO_LARGE.value

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"response header block over {limit} bytes (raise it with --max-header-size)"
        )
        self.limit = limit


class BodyTooLarge(RequestError):
    reason = Reason.BODY_TOO_LARGE.value

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit
        #: The error of a row whose answer keeps its status (a saved body, as curl's
        #: --max-filesize): the reason, and the limit it passed.
        self.answer_error = f"{self.reason}: over --max-body ({limit} bytes)"


def reason_for(exc: BaseException | None, *, connecting: bool = False) -> str:
    """Map an exception from the transport to a row reason.

    ``connecting`` says whether the connection was still being opened, where
    any OSError means the server could not be reached.
    """
    if isinstance(exc, RequestError):
        return exc.reason
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Reason.TLS.value
    if isinstance(exc, TimeoutError):
        return Reason.TIMEOUT.value
    if connecting:
        return Reason.CONNECT.value
    return Reason.RESET.value


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

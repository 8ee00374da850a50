"""The TLS files of a run, checked before the first request, named as their caller gave them.

The same files come three ways: the command line's ``--cacert``, ``--cert`` and
``--key``; :func:`~drumfire.make_job`'s keywords (``verify='ca.pem'``,
``cert='c.pem'`` or ``cert=('c.pem', 'k.pem')``, as requests); and the fields of
a :class:`~drumfire.Job` (``cacert``, ``cert``, ``key``). :func:`check_tls_files`
raises :class:`TLSFileError` in a Job's words (the lowest caller); each boundary
renames it with :meth:`TLSFileError.named`, as ``resume_named`` does for a
resume's messages, so a Python call never reads ``--key needs --cert``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Literal

from ._connection import TLS
from ._errors import UsageError

__all__ = ["TLSFileError", "check_tls_files"]

#: Who gave the files: the command line, make_job (and the API's calls) or a Job.
Caller = Literal["cli", "api", "job"]


@dataclass(frozen=True)
class _Problem:
    kind: Literal["key alone", "no such file", "ca unusable", "cert unusable"]
    cacert: str | None
    cert: str | None
    key: str | None
    which: Literal["cacert", "cert", "key"] = "cert"  # the missing file's
    detail: str = ""  # the ssl module's words


class TLSFileError(UsageError):
    """A TLS file that cannot be used, or a key without its certificate."""

    def __init__(self, problem: _Problem, caller: Caller = "job") -> None:
        super().__init__(_message(problem, caller))
        self.problem = problem
        self.caller = caller

    def __reduce__(self) -> tuple[type[TLSFileError], tuple[_Problem, Caller]]:
        return (TLSFileError, (self.problem, self.caller))  # picklable, as other errors

    def named(self, caller: Caller) -> TLSFileError:
        """The same problem in ``caller``'s words."""
        return TLSFileError(self.problem, caller)


def check_tls_files(verify: bool, cacert: str | None, cert: str | None, key: str | None) -> None:
    """Build the TLS context of these files now; a file that cannot be used is a
    :class:`TLSFileError` (the message names the path, never the file's contents)."""
    if key is not None and cert is None:
        raise TLSFileError(_Problem("key alone", cacert, cert, key))
    files: tuple[tuple[Literal["cacert", "cert", "key"], str | None], ...] = (
        ("cacert", cacert),
        ("cert", cert),
        ("key", key),
    )
    for which, path in files:
        if path is not None and not os.path.isfile(path):
            raise TLSFileError(_Problem("no such file", cacert, cert, key, which))
    if cacert is not None:
        try:
            ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            problem = _Problem("ca unusable", cacert, cert, key, detail=str(exc))
            raise TLSFileError(problem) from None
    if cert is not None:
        try:
            TLS(verify, cacert, cert, key).context()  # the run's context, cached
        except (OSError, ssl.SSLError) as exc:
            raise TLSFileError(
                _Problem("cert unusable", cacert, cert, key, detail=str(exc))
            ) from None


def _message(p: _Problem, caller: Caller) -> str:
    unusable_cert = f"no usable PEM certificate and private key ({p.detail})"
    unusable_ca = f"no usable PEM certificate ({p.detail})"
    if caller == "api":  # verify=PATH, cert=PATH or cert=(PATH, KEY), as requests
        given = f"cert={p.cert!r}" if p.key is None else f"cert=({p.cert!r}, {p.key!r})"
        if p.kind == "key alone":
            return f"{given}: a key needs its client certificate; give cert=(certificate, key)"
        if p.kind == "no such file":
            if p.which == "cacert":
                return f"verify={p.cacert!r}: no such file"
            if p.key is None:
                return f"{given}: no such file"
            what = "the certificate" if p.which == "cert" else "the key"
            return f"{given}: {what} {getattr(p, p.which)!r}: no such file"
        if p.kind == "ca unusable":
            return f"verify={p.cacert!r}: {unusable_ca}"
        return f"{given}: {unusable_cert}"
    # One name a file: the command line's option (--cert c.pem), or a Job's field (cert='c.pem').
    cli = caller == "cli"

    def name(which: str) -> str:
        path = getattr(p, which)
        return f"--{which} {path}" if cli else f"{which}={path!r}"

    if p.kind == "key alone":
        needs = "--key needs --cert" if cli else "key= needs cert="
        return f"{needs} (the client certificate it belongs to)"
    if p.kind == "no such file":
        return f"{name(p.which)}: no such file"
    if p.kind == "ca unusable":
        return f"{name('cacert')}: {unusable_ca}"
    pair = name("cert") + (f" / {name('key')}" if p.key is not None else "")
    return f"{pair}: {unusable_cert}"

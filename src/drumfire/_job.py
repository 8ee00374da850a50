"""A batch's settings: :class:`Job` (immutable, picklable) and :func:`make_job`.

``make_job`` turns the keyword arguments of :func:`drumfire.run` (and of the
command line, through ``cli``) into a :class:`Job`; ``Job.engine`` builds the
:class:`~drumfire._engine.Engine` for one source. Kept apart from ``_api`` so
that the modules below the API (``_files``, ``_batch``, ``_parallel``, the
cluster) can use a Job without importing the API's runners.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._bodies import FormField, file_plan, file_settings
from ._body import json_body
from ._columns import SAVED
from ._connection import TLS
from ._engine import Engine, EngineSettings
from ._errors import TemplateError, UsageError
from ._extract import Extractor
from ._http import MAX_HEADER
from ._options import (
    check_count,
    check_flag,
    check_kind,
    check_path,
    check_rate,
    check_seconds,
    check_size,
    check_texts,
    optional,
    statuses_text,
)
from ._request import RequestPlan
from ._response import Response
from ._result import BASE_COLUMNS, Result
from ._savebody import SaveSpec
from ._settings import (
    MAX_BODY,
    MAX_CONCURRENCY,
    MAX_REDIRECTS,
    MOST_RETRIES,
    PIPELINE,
    Retry,
    Timeouts,
)
from ._sources import TEXT_FORMATS, Source
from ._tlsfiles import TLSFileError, check_tls_files

__all__ = ["Job", "check_keywords", "make_job"]


@dataclass(frozen=True)
class Job:
    """Everything that describes a batch except its rows. Immutable and picklable."""

    url: str = "{url}"
    method: str | None = None
    headers: tuple[tuple[str, str], ...] | tuple[str, ...] = ()
    data: str | bytes | None = None
    # ``data`` is a JSON body (--json, json=): encoded as JSON whatever the Content-Type.
    data_is_json: bool = False
    extract: tuple[tuple[str, str], ...] = ()
    keep: tuple[str, ...] = ()
    id: str | None = None
    concurrency: int | None = None  # None: adaptive
    max_concurrency: int = MAX_CONCURRENCY
    rate: float | None = None  # requests per second, at most
    retry: Retry = field(default_factory=Retry)
    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: bool = True
    cacert: str | None = None  # CA certificates to trust (PEM), instead of the system's
    cert: str | None = None  # a client certificate (PEM)
    key: str | None = None  # its private key (PEM), if not in ``cert``
    max_body: int = MAX_BODY
    max_header_size: int = MAX_HEADER  # most bytes in a response's header block
    ordered: bool = False
    follow_redirects: int = 0  # most redirects followed per row; 0: none
    pipeline: int = PIPELINE  # most GET requests per connection when the client is CPU-bound
    # Stop when the first N connection attempts all fail to connect (0: never);
    # ``drumfire run`` sets 50 unless --keep-going.
    unreachable_after: int = 0
    per_host_concurrency: int | None = None  # most in flight to one origin
    per_host_rate: float | None = None  # most starts per second to one origin
    # Files in and out (drumfire._bodies): a file per row as the body (a path
    # template), a multipart form, each response body saved to a file.
    data_file: str | None = None
    form: tuple[FormField, ...] = ()
    save: SaveSpec | None = None
    skip_saved: bool = False  # --resume: a row whose file is complete is not sent

    def __post_init__(self) -> None:
        """Check every field, made by :func:`make_job` or directly (see :mod:`drumfire._options`).

        Raises:
            UsageError: a value of the wrong type or out of range, in one line naming
                its field (``max_body=-1: give a number of bytes, 0 or more, ...``), or
                a TLS file that cannot be used. A size or a rate written as on the
                command line (``"64M"``, ``"10/s"``) becomes its number, a list a tuple.
                Two bodies (``data``, ``data_file``, ``form``): one line naming both.
        """
        for name, check in FIELD_CHECKS:
            value = getattr(self, name)
            checked = check(name, value)
            if checked is not value:
                object.__setattr__(self, name, checked)
        # One body: make_job and the command line refuse two with their own names.
        bodies = [
            name
            for name, given in (
                ("data", self.data is not None),
                ("data_file", self.data_file is not None),
                ("form", bool(self.form)),
            )
            if given
        ]
        if len(bodies) > 1:
            raise UsageError(f"the body is given twice: {'= and '.join(bodies)}=; give one")
        if self.cacert is not None or self.cert is not None or self.key is not None:
            # An unusable file, or a key without its certificate (named as fields here;
            # make_job and the command line rename it: see drumfire._tlsfiles).
            check_tls_files(self.verify, self.cacert, self.cert, self.key)

    def field_names(self) -> list[str]:
        """The output columns after the base ones and before the kept ones."""
        names = [name for name, _ in self.extract]
        if self.save is not None:
            names.extend(self.save.columns())
        return names

    def field_kinds(self) -> dict[str, str]:
        """The fixed kinds (:mod:`drumfire._columns`) of the field columns drumfire
        fills itself, ``saved_path``...; the others take theirs from the rows."""
        return {name: SAVED[name] for name in self.save.columns()} if self.save is not None else {}

    def uses_files(self) -> bool:
        return self.data_file is not None or bool(self.form) or self.save is not None

    def tls(self) -> TLS | bool:
        """The TLS setting for the connections (a plain bool when only ``verify`` is set)."""
        if self.cacert is None and self.cert is None and self.key is None:
            return self.verify
        return TLS(self.verify, self.cacert, self.cert, self.key)

    def plan(self) -> RequestPlan:
        headers: list[Any] = list(self.headers)
        if self.uses_files():
            return file_plan(self, headers)  # type: ignore[return-value]  # the same face
        return RequestPlan(
            self.url, method=self.method, headers=headers, data=self.data, json=self.data_is_json
        )

    def extractor(self) -> Extractor:
        """The compiled expressions; raises UsageError for a bad one or a name clash."""
        taken = set(BASE_COLUMNS)
        fields = self.field_names()
        for n, name in enumerate(fields + list(self.keep)):
            if name in taken:
                what = "a column every row has" if name in BASE_COLUMNS else "used twice"
                if n < len(fields) or name in fields:  # a kept column's clash too: -e renames
                    how = "choose another name for -e NAME=..."
                elif name in BASE_COLUMNS:  # --keep copies a column under its own name
                    how = "rename it in the input (--keep cannot)"
                else:
                    how = "name it once in --keep"
                raise UsageError(f"output column {name!r} is {what}; {how}")
            taken.add(name)
        return Extractor(self.extract)

    def check(self, plan: RequestPlan, source: Source) -> str | None:
        """Validate templates against the source's columns; return the id column to use."""
        if source.columns is not None:
            plan.check(source.columns)
            for column in self.keep:
                if column not in source.columns:
                    raise TemplateError(
                        f"--keep names column {column!r}, which the input does not have"
                    )
            if self.id is not None and self.id not in source.columns:
                raise TemplateError(f"--id names column {self.id!r}, which the input does not have")
        if self.id is not None:
            return self.id
        if source.columns is None or "id" in source.columns:
            return "id"
        return None

    def engine(
        self,
        source: Source,
        on_result: Callable[[Result], None],
        *,
        parse: Callable[[Response], Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Engine:
        """The engine for ``source``, with this job's settings.

        ``kwargs`` that name an :class:`EngineSettings` field (``tick_interval``,
        ``order_window``...) override the job's value; the others (clocks and
        hooks: ``clock``, ``on_tick``, ``skip``...) go to the Engine as they are.
        """
        plan = self.plan()
        settings = EngineSettings(
            keep=self.keep,
            id_column=self.check(plan, source),
            concurrency=self.concurrency,
            max_concurrency=self.max_concurrency,
            rate=self.rate,
            retry=self.retry,
            timeouts=self.timeouts,
            max_body=self.max_body,
            max_header=self.max_header_size,
            verify=self.tls(),
            ordered=self.ordered,
            follow_redirects=self.follow_redirects,
            # Never pipelined: a request's body or saved answer is its connection's alone.
            pipeline=1 if self.uses_files() else self.pipeline,
            text_rows=source.fmt in TEXT_FORMATS,
            unreachable_after=self.unreachable_after,
            per_host_concurrency=self.per_host_concurrency,
            per_host_rate=self.per_host_rate,
        )
        if source.lines is not None:  # template error rows name their input line
            kwargs.setdefault("line_of", source.lines.line_of)
        overrides = {name: kwargs.pop(name) for name in _SETTING_NAMES & kwargs.keys()}
        if overrides:
            settings = dataclasses.replace(settings, **overrides)
        return Engine(plan, on_result, settings, extractor=self.extractor(), parse=parse, **kwargs)


#: The keywords of :meth:`Job.engine` that are settings, not clocks or hooks.
_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(EngineSettings))


def make_job(
    url: str = "{url}",
    *,
    method: str | None = None,
    headers: Mapping[str, str] | Sequence[str] | None = None,
    data: str | bytes | None = None,
    extract: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    keep: Sequence[str] = (),
    id: str | None = None,
    concurrency: int | None = None,
    max_concurrency: int = MAX_CONCURRENCY,
    rate: float | str | None = None,
    retries: int = Retry().retries,
    timeout: float = Timeouts().total,
    connect_timeout: float = Timeouts().connect,
    verify: bool | str | os.PathLike[str] = True,
    cert: str | os.PathLike[str] | tuple[str | os.PathLike[str] | None, str] | None = None,
    max_body: int | str = MAX_BODY,
    max_header_size: int | str = MAX_HEADER,
    ordered: bool = False,
    retry: Retry | None = None,
    follow_redirects: bool | int = False,
    pipeline: int = PIPELINE,
    json: Any = None,
    per_host_concurrency: int | None = None,
    per_host_rate: float | str | None = None,
    data_file: str | os.PathLike[str] | None = None,
    files: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    form: Mapping[str, str] | Sequence[str | tuple[str, str]] | None = None,
    save_body: str | os.PathLike[str] | None = None,
    save_dir: str | os.PathLike[str] | None = None,
    save_status: str | int | Iterable[str | int] | None = None,
    save_sha256: bool = False,
    skip_saved: bool = False,
) -> Job:
    """The :class:`Job` of these settings (the keyword arguments of :func:`drumfire.run`).

    Each value is checked here, once (see :mod:`drumfire._options`): numbers
    are numbers, paths ``str`` or ``os.PathLike``, flags ``bool``; a size or a
    rate may also be written as on the command line (``"64M"``, ``"10/s"``).
    ``save_dir`` and ``save_status`` default to ``"."`` and ``"2xx"``; giving
    either (or ``save_sha256``) needs ``save_body``.

    Raises:
        UsageError: a value of the wrong type or out of range, in one line
            naming its keyword; or settings that do not go together.
    """
    header_items: tuple[Any, ...]
    if headers is None:
        header_items = ()
    elif isinstance(headers, Mapping):
        header_items = tuple((str(k), str(v)) for k, v in headers.items())
    else:
        header_items = tuple(headers)
    # As requests: verify=False, True, or the path of the CA certificates to
    # trust; cert= a client certificate file, or a (certificate, key) pair.
    if verify == "":  # bool("") is False: an empty path must not turn verification off
        raise UsageError("verify='' names no CA file: give a path, True or False")
    if not isinstance(verify, bool | str | os.PathLike):  # None would turn verification off
        raise UsageError(f"verify={verify!r}: give True, False or the path of a CA file")
    cacert = None if isinstance(verify, bool) else check_path("verify", verify)
    cert_file, key_file = _cert_pair(cert)
    total = check_seconds("timeout", timeout)
    body = "--json (json=)" if json is not None else "--data (data=)" if data is not None else None
    if json is not None:  # curl's --json: the body, Content-Type and Accept
        if data is not None:
            raise UsageError("the body is given twice: use --data (data=) or --json (json=)")
        names = [h[0] if isinstance(h, tuple) else h.partition(":")[0] for h in header_items]
        data, added = json_body(json, names)
        header_items = (*header_items, *added)
    if cacert is not None or cert_file is not None or key_file is not None:
        try:  # before the Job does, to name the files as this call took them
            check_tls_files(bool(verify), cacert, cert_file, key_file)
        except TLSFileError as exc:
            raise exc.named("api") from None
    # Job checks its fields (__post_init__); here only the keywords it has no field for
    # (timeout, retries, verify, cert, save_*...) or of a wider type (sizes, rates, paths).
    return Job(
        url=url,
        method=method,
        headers=header_items,
        data=data,
        data_is_json=json is not None,
        extract=tuple(extract.items() if isinstance(extract, Mapping) else (extract or ())),
        keep=tuple(keep),
        id=id,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        rate=check_rate("rate", rate),
        retry=(
            retry
            if retry is not None
            else Retry(retries=check_count("retries", retries, 0, MOST_RETRIES))
        ),
        timeouts=Timeouts(
            connect=min(check_seconds("connect_timeout", connect_timeout), total), total=total
        ),
        verify=bool(verify),
        cacert=cacert,
        cert=cert_file,
        key=key_file,
        max_body=check_size("max_body", max_body),
        max_header_size=check_size("max_header_size", max_header_size, _LEAST_HEADER),
        ordered=ordered,
        # True: up to MAX_REDIRECTS hops, as requests (curl -L: 50); a number: that many.
        follow_redirects=(
            (MAX_REDIRECTS if follow_redirects else 0)
            if isinstance(follow_redirects, bool)
            else follow_redirects
        ),
        pipeline=pipeline,
        per_host_concurrency=per_host_concurrency,
        per_host_rate=check_rate("per_host_rate", per_host_rate),
        **file_settings(
            body,
            None if data_file is None else check_path("data_file", data_file),
            files,
            form,
            None if save_body is None else check_path("save_body", save_body),
            None if save_dir is None else check_path("save_dir", save_dir),
            None if save_status is None else statuses_text("save_status", save_status),
            check_flag("save_sha256", save_sha256),
            skip_saved,
        ),
    )



#: The keywords :func:`make_job` takes (the API's calls hand theirs on to it), and
#: those the calls take first (the output's, the input's), for the nearest name.
_KEYWORDS = tuple(name for name in inspect.signature(make_job).parameters if name != "url")
_NEAR = (
    *_KEYWORDS,
    *("output", "output_format", "resume", "overwrite", "input_format", "delimiter", "progress"),
)
#: The command line's options a Python call may be given by their names: what to use.
_CLI_ONLY = {
    "format": "the API's is input_format=",
    "retry_failed": "the command line's --retry-failed; in Python, run the failed rows again",
    "processes": "the command line's -p; in Python, run_dask spreads a batch over processes",
    "quiet": "the command line's; in Python, progress=False",
    "limit": "the command line's -n; in Python, give the rows wanted",
    "user": "the command line's -u; in Python, an Authorization header in headers=",
}


def check_keywords(settings: Mapping[str, Any], where: str) -> None:
    """One :class:`UsageError` line for a keyword no setting has (a typo: the nearest one).

    Python's own TypeError would name ``make_job``, which the caller never called.
    """
    for name in settings:
        if name not in _KEYWORDS:
            import difflib  # only for a misspelled keyword

            near = difflib.get_close_matches(name, _NEAR, n=1)
            hint = _CLI_ONLY.get(name) or (f"did you mean {near[0]}=?" if near else "")
            raise UsageError(f"{where}: no keyword argument {name}=" + (hint and f": {hint}"))


# The ranges the command line's options allow (click's IntRange there).
_MOST_IN_FLIGHT = 100_000
_MOST_REDIRECTS = 100
_MOST_PIPELINED = 256
_LEAST_HEADER = 1024


_MOST_ATTEMPTS = 1_000_000_000


def _optional_count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    return check_count(name, value, 1, _MOST_IN_FLIGHT, ", or None (adaptive)")


def _form_fields(name: str, value: Any) -> tuple[FormField, ...]:
    """``form``: the parts, as make_job makes them of its ``form=`` and ``files=``."""
    if not isinstance(value, tuple | list) or not all(isinstance(f, FormField) for f in value):
        raise UsageError(f"{name}={value!r}: give FormField parts (make_job's form=, files=)")
    return tuple(value) if isinstance(value, list) else value


def _range(low: int, high: int) -> Callable[[str, Any], int]:
    return lambda name, value: check_count(name, value, low, high)


#: Each field of a Job and its check (see Job.__post_init__), in the fields' order.
FIELD_CHECKS: tuple[tuple[str, Callable[[str, Any], Any]], ...] = (
    ("url", check_kind(str, "the URL template, a str")),
    ("method", optional(check_kind(str, "a method, a str, or None"))),
    ("headers", check_texts("'Name: value' strings or (name, value) pairs", pairs=None)),
    (
        "data",
        optional(
            check_kind(
                (str, bytes),
                "the body, a str or bytes, or None (a form body is its text, "
                "data='q={q}&n=1', not a dict as in requests; a JSON body goes in json=)",
            )
        ),
    ),
    ("data_is_json", check_flag),
    ("extract", check_texts("(name, expression) pairs of str", pairs=True)),
    ("keep", check_texts("column names, a tuple of str")),
    ("id", optional(check_kind(str, "a column name, a str, or None"))),
    ("concurrency", _optional_count),
    ("max_concurrency", _range(1, _MOST_IN_FLIGHT)),
    ("rate", check_rate),
    ("retry", check_kind(Retry, "a drumfire.Retry (or retries=N to make_job)")),
    ("timeouts", check_kind(Timeouts, "a drumfire.Timeouts (it checks its seconds)")),
    ("verify", check_flag),
    ("cacert", optional(check_path)),
    ("cert", optional(check_path)),
    ("key", optional(check_path)),
    ("max_body", check_size),
    ("max_header_size", lambda name, value: check_size(name, value, _LEAST_HEADER)),
    ("ordered", check_flag),
    ("follow_redirects", _range(0, _MOST_REDIRECTS)),
    ("pipeline", _range(1, _MOST_PIPELINED)),
    ("unreachable_after", _range(0, _MOST_ATTEMPTS)),
    ("per_host_concurrency", _optional_count),
    ("per_host_rate", check_rate),
    ("data_file", optional(check_path)),
    ("form", _form_fields),
    ("save", optional(check_kind(SaveSpec, "a SaveSpec (make_job's save_body=), or None"))),
    ("skip_saved", check_flag),
)


def _cert_pair(cert: Any) -> tuple[str | None, str | None]:
    """``cert=``: a file (certificate and key), or a ``(certificate, key)`` pair of paths."""
    if cert is None:
        return None, None
    if isinstance(cert, tuple | list) and len(cert) == 2:
        first, key = cert
        return (None if first is None else check_path("cert", first)), check_path("cert", key)
    if isinstance(cert, str | os.PathLike):
        return check_path("cert", cert), None
    raise UsageError(f"cert={cert!r}: give a certificate file, or a (certificate, key) pair")

"""Files in the Python API: an input path, and ``output=`` / ``resume=`` as on the command line.

``rows`` may be a :class:`os.PathLike` (``pathlib.Path``) or a ``str`` naming
an existing file: it is opened as ``drumfire run`` opens INPUT (format from the
extension, or ``input_format=``; ``encoding=`` for text). Any other ``str``
raises :class:`~drumfire.InputError` rather than being read as a sequence of
one-letter URLs; a list of URL strings stays the way to pass URLs.

``output=`` writes each result to a file as it completes (any output format of
the command line, chosen by extension or ``output_format=``), flushed about
once a second and at the end, while the results are still yielded or returned.
``resume=True`` keeps the rows already in that output and sends only the rest;
the rows skipped are not yielded again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._bodies import clean_temps, saved_rows
from ._errors import InputError, UsageError, resume_named
from ._frames import frame_kind, frame_source
from ._job import Job, check_keywords, make_job
from ._outfile import OutputLock, refuse_input_as_output
from ._result import Result, Stats
from ._resume import Resumed, holds_rows, is_cancelled, scan_output
from ._rows import item_ids
from ._savebody import for_batch, guard
from ._sinks import TABLE_FORMATS, Sink, open_sink, output_format_for
from ._sources import Source, check_delimiter, open_source, rows_source

__all__ = ["Output", "count_shared_ids", "open_rows", "reopener", "reread"]

FLUSH_EVERY = 1.0  # seconds, as the command line


def _delimiter(kwargs: Mapping[str, Any]) -> str | None:
    given = kwargs.get("delimiter")
    return None if given is None else check_delimiter(given, "delimiter")


def open_rows(rows: Any, kwargs: dict[str, Any]) -> Source:
    """The source for ``rows``; takes ``input_format``, ``encoding`` and ``delimiter``
    out of ``kwargs``."""
    delimiter = _delimiter(kwargs)
    kwargs.pop("delimiter", None)
    input_format = kwargs.pop("input_format", None)
    encoding = kwargs.pop("encoding", "utf-8")
    if isinstance(rows, Source):  # opened already (drumfire compare's worker)
        return rows
    if isinstance(rows, str | os.PathLike):
        path = os.fspath(rows)
        if not isinstance(path, str):
            raise InputError(f"rows: give the input path as a str or Path, not {path!r}")
        if isinstance(rows, str) and not os.path.exists(path):
            raise InputError(
                f"rows {path[:200]!r} is a string but no such file exists: give the path of "
                "an input file, or a list of URL strings or of dicts"
            )
        return open_source(path, input_format, encoding, delimiter=delimiter)
    for name, value in (("input_format", input_format), ("delimiter", delimiter)):
        if value is not None:
            raise UsageError(f"{name}= applies only when rows is a file path")
    kind = frame_kind(rows)
    if kind is not None:  # a pyarrow Table or a polars DataFrame
        return frame_source(rows, kind)
    return rows_source(rows)


def count_shared_ids(
    resumed: Resumed,
    reopen: Callable[[], Source] | None,
    id_column: str | None,
    limit: int | None = None,
) -> int:
    """Resume: read the input's ids once before sending (``reopen`` opens it again),
    so rows that share an id are all sent again where the output has not as many
    rows of it (:meth:`Resumed.settle_shared`); return the output rows that drops.

    Nothing is read when no row can share an id (no id column: ids are row numbers),
    when the output keeps no row, or when the input cannot be read twice
    (``reopen`` None: standard input, an iterator): the rows of a shared id are
    then skipped as the output has rows of it, as before (see the README).
    ``limit``: only the first rows count (``-n``).
    """
    if id_column is None or reopen is None or not len(resumed.done):
        return 0
    source = reopen()
    try:
        items = source.items if limit is None else itertools.islice(source.items, limit)
        return resumed.settle_shared(item_ids(items, id_column), limited=limit is not None)
    finally:
        if source.close is not None:
            source.close()


def reread(
    path: str, fmt: str | None, encoding: str, delimiter: str | None = None
) -> Callable[[], Source] | None:
    """How to open the input file ``path`` again, or None when it cannot be read twice:
    standard input (``-``), a pipe or a device (``<(zcat …)``, ``/dev/stdin``: a
    second reader would take rows from the first)."""
    if path == "-":
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # opening it reports the problem
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a directory: a Parquet dataset
        return None
    return lambda: open_source(path, fmt, encoding, count=False, delimiter=delimiter)


def reopener(rows: Any, kwargs: Mapping[str, Any]) -> Callable[[], Source] | None:
    """How to read API ``rows`` again from the start, or None when they cannot be:
    a file path, a list or tuple, a pandas or polars frame or an Arrow table can;
    an iterator (a generator, a file object) cannot."""
    if isinstance(rows, Source):
        return None
    if isinstance(rows, str | os.PathLike):
        fmt, encoding = kwargs.get("input_format"), kwargs.get("encoding", "utf-8")
        return reread(str(os.fspath(rows)), fmt, encoding, _delimiter(kwargs))
    kind = frame_kind(rows)
    if kind is not None:
        return lambda: frame_source(rows, kind)
    pandas = hasattr(rows, "to_dict") and hasattr(rows, "columns")  # as rows_source tells
    if pandas or isinstance(rows, Sequence):
        return lambda: rows_source(rows)
    return None


class Output:
    """The ``output=`` file of an API run (nothing when none is given)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        """Take ``output``, ``output_format``, ``resume`` and ``overwrite`` out of ``kwargs``."""
        path = kwargs.pop("output", None)
        self.fmt: str | None = kwargs.pop("output_format", None)
        self.resume = bool(kwargs.pop("resume", False))
        self.overwrite = bool(kwargs.pop("overwrite", False))
        # run_all's: where the number of each row resume skips goes (see _numbered_skips)
        self._skipped_to: array[int] | None = kwargs.pop("_skipped_to", None)
        self.path = None if path is None else os.fspath(path)
        if self.path is not None and not isinstance(self.path, str):
            raise UsageError(f"output: give a str or Path, not {self.path!r}")
        if self.resume and self.path is None:
            raise UsageError("resume=True needs output= (the file to resume)")
        if self.overwrite and self.path is None:
            raise UsageError("overwrite=True needs output= (the file to replace)")
        if self.resume and self.overwrite:
            raise UsageError("resume=True keeps the rows of output=, overwrite=True drops them")
        self.sink: Sink | None = None
        self.skip: Callable[[str], bool] | None = None
        self.skip_problem: Callable[[int], bool] | None = None
        self.saved: Callable[[str, Mapping[str, Any]], dict[str, Any] | None] | None = None
        self._lock: OutputLock | None = None
        self._last = 0.0

    def open(
        self,
        job: Job,
        learn: bool,
        reopen: Callable[[], Source] | None = None,
        id_column: str | None = None,
        own: Sequence[tuple[str | None, str]] = (),
    ) -> Job:
        """Read the ids to skip (``resume``) and open the sink; check the job first.
        Returns the job to run: with ``save_body=``, its saved files name the output's
        batch (see ``_savebody``).

        ``reopen`` and ``id_column``: see :func:`count_shared_ids`; ``own``: the run's
        other files no saved body may replace (the input; see ``_savebody.guard``).
        """
        if self.path is None:
            job = guard(job, own)
            return job
        fmt = output_format_for(self.path, self.fmt)
        # As ``drumfire run -o``: one writer, and resume sends the cancelled rows again
        # and does not write an input-error row it already holds.
        self._lock = None if self.path == "-" else OutputLock.acquire_output(self.path, fmt)
        try:
            if self._lock is not None and not self.resume:
                # As -o: no silent overwrite of a file that already holds results.
                held = holds_rows(self.path, fmt) if fmt in TABLE_FORMATS else self._lock.size()
                if held and not self.overwrite:
                    raise UsageError(
                        f"output {self.path!r} already holds results; pass resume=True to "
                        "complete it, or overwrite=True to replace it"
                    )
                self._lock.refuse_or_truncate(overwrite=True)
                self._lock.start_batch(job.save is not None)
            if self._lock is not None and job.save is not None:
                job = for_batch(job, self._lock.batch_id())
            job = guard(job, [*own, *(self._lock.own_files() if self._lock is not None else [])])
            if self.resume:
                resumed = scan_output(self.path, fmt, is_cancelled)
                count_shared_ids(resumed, reopen, id_column)
                if self._lock is not None and job.save is not None:
                    # Before the rewrite drops them: no file is their answer until sent.
                    resumed.pending = self._lock.remember_again(resumed.again)
                    resumed.since = self._lock.batch_began()  # nor an earlier batch's
                if resumed.dropped and self._lock is not None:
                    self._lock.rewrite(fmt, resumed.resends(is_cancelled))
                self.skip = resumed.done.take
                self.skip_problem = resumed.problems.__contains__
                if self._skipped_to is not None:
                    self.skip, self.skip_problem = _numbered_skips(
                        self.skip, self.skip_problem, self._skipped_to
                    )
                self.saved = saved_rows(job, resumed.sent_again, resumed.since)
            self.sink = open_sink(
                self.path,
                fmt,
                job.field_names(),
                list(job.keep),
                append=self.resume,
                learn=learn,
                kinds=job.field_kinds(),
            )
            if self._lock is not None:
                self._lock.check_room()  # a full disk: nothing is sent (see _outfile)
        except BaseException as exc:
            if self._lock is not None:
                # A file this call made and nothing reached (a CSV's header is still
                # in the buffer): removed, so the next call is not refused for it.
                self._lock.discard_if_unused()
            if self.sink is not None:
                sink, self.sink = self.sink, None
                with contextlib.suppress(OSError, UsageError):
                    sink.close()
            self._close_lock()
            named = resume_named(exc, "resume=True") if isinstance(exc, UsageError) else exc
            if named is not exc:  # named as the call names it, not as --resume
                raise named from None
            raise
        self._last = time.monotonic()
        return job

    def engine_kwargs(self) -> dict[str, Any]:
        if self.sink is None:
            return {}
        return {
            "skip": self.skip,
            "skip_problem": self.skip_problem,
            "saved": self.saved,
            "on_tick": self._on_tick,
        }

    def wrap(self, on_result: Callable[[Result], None]) -> Callable[[Result], None]:
        """``on_result`` that first writes the result to the output."""
        if self.sink is None:
            return on_result
        write = self.sink.write

        def both(result: Result) -> None:
            write(result)
            on_result(result)

        return both

    def _on_tick(self, stats: Stats) -> None:
        now = time.monotonic()
        if now - self._last >= FLUSH_EVERY and self.sink is not None:
            self.sink.flush()
            self._last = now

    def close(self, finished: Stats | None = None) -> None:
        """Close the output; ``finished``: the figures of a run that ended by itself."""
        try:
            if self.sink is not None:
                sink, self.sink = self.sink, None
                sink.close()
            if (
                self._lock is not None
                and finished is not None
                and not finished.stopped
                and finished.unreachable is None
            ):
                self._lock.forget_again()  # the whole input has its rows in the output
        finally:
            self._close_lock()

    def _close_lock(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.close()


def _numbered_skips(
    skip: Callable[[str], bool], skip_problem: Callable[[int], bool], to: array[int]
) -> tuple[Callable[[str], bool], Callable[[int], bool]]:
    """``skip`` and ``skip_problem`` that also put the 0-based number of each row they
    skip in ``to``: the engine asks one of the two once per input row, in input order
    (:meth:`Rows.screen <drumfire._rows.Rows.screen>`), so run_all can give each
    result of a resumed DataFrame its input row's label."""
    asked = [0]  # rows asked about so far, by either

    def numbered(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
        def ask(key: Any) -> bool:
            n = asked[0]
            asked[0] = n + 1
            if test(key):
                to.append(n)
                return True
            return False

        return ask

    return numbered(skip), numbered(skip_problem)


def prepare(rows: Any, url: str, kwargs: dict[str, Any], learn: bool) -> tuple[Source, Job, Output]:
    """Source, job and output of an API call, checked before anything is sent."""
    output = Output(kwargs)
    reopen = reopener(rows, kwargs) if output.resume else None
    source = open_rows(rows, kwargs)
    try:
        if output.resume and kwargs.get("save_body") is not None:
            kwargs["skip_saved"] = True  # a row whose file is complete is not sent again
        check_keywords(kwargs, "drumfire")
        job = make_job(url, **kwargs)
        id_column = job.check(job.plan(), source)  # a template error before the output
        job.extractor()
        if output.path is not None and isinstance(rows, str | os.PathLike):
            fmt = output_format_for(output.path, output.fmt)
            refuse_input_as_output(os.fspath(rows), output.path, fmt)
        given = os.fspath(rows) if isinstance(rows, str | os.PathLike) else None
        job = output.open(job, learn, reopen, id_column, [(given, "the input")])
        if job.skip_saved:
            # Once the output is ours (a call refused for another run's lock removes
            # nothing); only the temporary files no live run holds (see _savebody).
            clean_temps(job)
    except BaseException:
        if source.close is not None:
            source.close()
        raise
    return source, job, output

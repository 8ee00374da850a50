"""The ``drumfire`` command: a thin layer over the library.

It parses options into the library's value objects, maps
:class:`~drumfire.UsageError` to exit status 2 with a one-line message, and
leaves everything else to ``_batch.execute``.

Why this module is long (about 1,070 lines): it is the ``run`` command, one click
command with about fifty options. Their declarations (about 300 lines) are kept
together so that they read in the order ``--help`` shows them, and the body only
turns their values into settings, checks the output and prints the hints after
the summary. Other commands live with their subject (``bench/cli.py``,
``compare/cli.py``, ``demo/cli.py``: imported only when used), options shared by
several commands in ``_cli_common.py``, defaults in ``_settings.py``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import click
import orjson

from ._bodies import clean_temps, saved_rows
from ._cli_common import (
    CONTEXT,
    ONE_BODY,
    OneLineErrors,
    basic_auth_header,
    column_list,
    connect_timeout_option,
    encoding_option,
    format_option,
    hide_secrets,
    insecure_option,
    once,
    one_line_usage,
    read_data,
    same_file,
    seconds_option,
    url_from_user,
    url_option,
    user_option,
)
from ._errors import InputError, UsageError, resume_named
from ._extract import parse_extract_options
from ._instream import Background
from ._job import Job, make_job
from ._limits import parse_rate
from ._options import parse_size, size_text
from ._outfile import (
    FileProblem,
    GuardedSink,
    OutputLock,
    check_summary_path,
    refuse_input_as_output,
)
from ._parse import load_parse_function
from ._progress import draws_live, rerun_command
from ._result import Stats
from ._resume import (
    RETRY_FAILED_DEFAULT,
    Record,
    Resumed,
    Selection,
    is_cancelled,
    scan_output,
)
from ._savebody import for_batch, guard
from ._settings import MAX_REDIRECTS, Retry
from ._sinks import TABLE_FORMATS, Sink, open_sink, output_format_for
from ._sources import Source, check_delimiter, open_source
from ._text import counted
from ._tlsfiles import TLSFileError

__all__ = ["entry", "main"]

#: The defaults every option shows and uses: the API's own (declared once, in _settings).
_DEFAULTS = Job()


#: Connection attempts that must all fail to connect, none succeeding, before
#: ``run`` calls its target unreachable and stops (unless --keep-going).
UNREACHABLE_AFTER = 50


def _size_option(option: str, text: str, minimum: int = 0) -> int:
    """A size option's value; a bad one is one line naming the option."""
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if size < minimum:
        raise UsageError(f"{option} {text!r}: at least {size_text(minimum)}")
    return size


def _fail(message: str) -> NoReturn:
    click.echo(f"drumfire: error: {message}", err=True)
    sys.exit(2)


def _parse_columns_option(
    values: Sequence[str], parse_spec: str | None, pairs: Sequence[tuple[str, str]], keep: list[str]
) -> list[str] | None:
    """``--parse-columns`` as a list (None when not given); checked against the other columns."""
    from ._result import BASE_COLUMNS
    from ._sinks import PARSE_EXTRA

    names = column_list(values, "--parse-columns")
    if not values:
        return None
    if parse_spec is None:
        raise UsageError("--parse-columns needs --parse")
    taken = {*BASE_COLUMNS, PARSE_EXTRA, *(n for n, _ in pairs), *keep}
    for name in names:
        if name in taken:
            raise UsageError(f"--parse-columns: {name!r} is already an output column")
        taken.add(name)
    return names


def _processes_option(text: str, url: str) -> int:
    if text.strip().lower() == "auto":
        from ._parallel import auto_processes

        return auto_processes(url)
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--processes {text!r}: give a number or 'auto'") from None
    if not 1 <= n <= 256:
        raise UsageError(f"--processes {n}: choose between 1 and 256")
    return n


def _rate_option(text: str | None, option: str = "--rate") -> float | None:
    if text is None:
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _wait_option(text: str, option: str = "--max-retry-wait") -> float:
    """Seconds, 0 or more (0: wait for no ``Retry-After``); a bad value is one line.

    Not a ``click.FloatRange``: that lets ``nan`` through (no wait is over it:
    no cap at all) and refuses in three lines of usage.
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(
            f"{option} {text!r}: give a number of seconds, 0 or more (0: wait for no Retry-After)"
        )
    return seconds


class _Commands(OneLineErrors, click.Group):
    """The command group (its usage errors one line, see OneLineErrors); ``bench``,
    ``compare``, ``demo``, ``serve`` are imported only when used.

    They pull in rich tables, HTML reports and more: about 35 ms of start-up
    that ``drumfire run`` (which counts its own start in its throughput) need
    not pay.
    """

    LAZY: ClassVar[dict[str, tuple[str, str]]] = {
        "bench": ("drumfire.bench.cli", "bench_command"),
        "compare": ("drumfire.compare.cli", "compare_command"),
        "demo": ("drumfire.demo.cli", "demo_command"),
        "serve": ("drumfire.demo.cli", "serve_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:  # drumfire nope
            one_line_usage(exc, "drumfire")

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, attr = self.LAZY[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(package_name="drumfire")
def main() -> None:
    """Send a very large batch of HTTP requests as fast as the server answers,
    keep every result, and tell how fast that was."""


def file_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Files in and out (drumfire._bodies): passed to make_job as they are."""
    options = [
        click.option(
            "--data-file",
            "data_file",
            default=None,
            metavar="TEMPLATE",
            help="A file per row as the body, streamed: a path template ('{path}'; "
            "-d @{path} says the same). Content-Type from its name unless -H says.",
        ),
        click.option(
            "-F",
            "--form",
            "form",
            multiple=True,
            metavar="NAME=VALUE",
            help="A multipart form field, as curl's -F: 'name=value' (templated), "
            "'name=@{path}' (a file) or 'name=<{path}' (its contents as text); then "
            ";type=MEDIA ;filename=NAME. Repeatable.",
        ),
        click.option(
            "--save-body",
            "save_body",
            default=None,
            metavar="TEMPLATE",
            help="Save each response body to this path (a template, relative to "
            "--save-dir), streamed to disk, renamed when complete.",
        ),
        # Their default is None, so that one given without --save-body, even as its
        # default's value, is refused (as the API does); the help says the value.
        click.option(
            "--save-dir",
            "save_dir",
            default=None,
            metavar="DIR",
            help="The directory --save-body paths are in; a row's path never leaves it.  "
            "[default: .]",
        ),
        click.option(
            "--save-status",
            "save_status",
            default=None,
            metavar="LIST",
            help="Statuses whose body --save-body saves: 200,404, 2xx, all.  [default: 2xx]",
        ),
        click.option(
            "--save-sha256",
            "save_sha256",
            is_flag=True,
            help="Add each saved file's SHA-256 to its row (saved_sha256).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command("run", cls=OneLineErrors, context_settings=CONTEXT)
@click.argument("input_path", metavar="INPUT")
@url_option
@user_option
@click.option(
    "-X",
    "--method",
    default=None,
    metavar="METHOD",
    help="Method (template). Default GET, or POST with --data.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Request header (template); repeatable.",
)
@click.option(
    "-d",
    "--data",
    multiple=True,
    callback=once(ONE_BODY),
    metavar="BODY",
    help="Request body (template); @FILE reads a file.",
)
@click.option(
    "--json",
    "json_data",
    multiple=True,
    callback=once("one JSON body is sent: give it once"),
    metavar="BODY",
    help="JSON request body (template); @FILE reads a file. Like curl's --json: "
    "Content-Type and Accept become application/json, the method POST.",
)
@click.option(
    "-e",
    "--extract",
    multiple=True,
    metavar="NAME=EXPR",
    help="JMESPath expression over the JSON body; repeatable.",
)
@click.option(
    "--parse",
    "parse_spec",
    default=None,
    metavar="FILE.py:FUNCTION",
    help="A function (response) -> dict whose fields join the row (named apart from -e fields).",
)
@click.option(
    "--parse-columns",
    "parse_columns",
    multiple=True,
    metavar="NAME",
    help="The --parse fields that get CSV columns, in order (default: the first answer's); "
    "others go to parse_extra. Comma-separated, as --keep.",
)
@click.option(
    "--id",
    "id_column",
    default=None,
    metavar="COLUMN",
    help="Column holding the row id [default: 'id' if present, else the row number].",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="COLUMN",
    help="Input column(s) to copy to the output; repeatable or comma-separated (a name "
    "with a comma in double quotes: --keep '\"lat, lon\",city').",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Use only the first N rows of INPUT (as head -n).",
)
@click.option(
    "-o",
    "--output",
    default="-",
    metavar="PATH",
    show_default=True,
    help="Output file (.csv, .jsonl, .parquet directory, .sqlite/.db or "
    "sqlite:///PATH?table=NAME), or - for standard output. A file that already "
    "holds rows needs --resume, --retry-failed or --overwrite.",
)
@format_option
@click.option(
    "--output-format",
    type=click.Choice(["csv", "jsonl", "parquet", "sqlite"]),
    default=None,
    help="Output format [default: from the extension].",
)
@encoding_option
@click.option(
    "--delimiter",
    default=None,
    metavar="CHAR",
    help="The character between a CSV input's fields: ';', '|', '\\t' (tab) "
    "[default: ',', a tab for .tsv/.tab and --format tsv].",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=None,
    metavar="N",
    help="Requests in flight at once (= open connections) [default: adaptive].",
)
@click.option(
    "-p",
    "--processes",
    default="1",
    show_default=True,
    metavar="N|auto",
    help="Worker processes, each with its own event loop and connections.",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 100_000),
    metavar="N",
    default=_DEFAULTS.max_concurrency,
    show_default=True,
    help="Cap for the adaptive concurrency.",
)
@click.option(
    "--pipeline",
    type=click.IntRange(1, 256),
    default=_DEFAULTS.pipeline,
    show_default=True,
    metavar="N",
    help="Once CPU limits the run (drumfire's own, or the machine's with a local server), "
    "send up to N GET requests on a connection before their answers (HTTP pipelining); "
    "1 turns it off.",
)
@click.option(
    "--read-ahead/--no-read-ahead",
    default=True,
    show_default=True,
    help="Read the input and prepare the requests in a second process (Linux, 2+ CPUs, "
    "-p 1); it yields its CPU to anything else once drumfire's own CPU limits the run.",
)
@click.option(
    "--rate",
    default=None,
    metavar="RATE",
    help="Start at most RATE requests per second (500, 500/s, 100/min).",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 100),
    metavar="N",
    default=_DEFAULTS.retry.retries,
    show_default=True,
    help="Retries after a connect error, reset, timeout, 429, 502, 503 or 504.",
)
@click.option(
    "--per-host-concurrency",
    type=click.IntRange(1, 100_000),
    default=None,
    metavar="N",
    help="At most N requests in flight to each origin (scheme, host, port) "
    "[default: adaptive per origin, up to --max-concurrency].",
)
@click.option(
    "--per-host-rate",
    default=None,
    metavar="RATE",
    help="Start at most RATE requests per second to each origin (500, 500/s, 100/min).",
)
@click.option(
    "--max-retry-wait",
    default=f"{_DEFAULTS.retry.max_retry_after:g}",
    show_default=True,
    metavar="SECONDS",
    help="Longest Retry-After waited for (it delays only its own row; 0: none); a row "
    "asked to wait longer ends at once with its status and error retry_after. The same "
    "for a spent quota (RateLimit, X-RateLimit-*): rows end, unsent, rather than wait "
    "longer for its reset.",
)
@click.option(
    "--retry-unsafe",
    is_flag=True,
    help="Also re-send non-idempotent requests (POST, PATCH) that may have reached the server.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.001),
    metavar="SECONDS",
    default=_DEFAULTS.timeouts.total,
    show_default=True,
    help="Seconds for one attempt, from sending to the last byte.",
)
@connect_timeout_option
@insecure_option
@click.option(
    "--cacert",
    metavar="FILE",
    default=None,
    help="Verify servers against the CA certificates in FILE (PEM) instead of the system's.",
)
@click.option(
    "--cert",
    metavar="FILE",
    default=None,
    help="Client certificate (PEM) to present; its key too unless --key is given.",
)
@click.option("--key", metavar="FILE", default=None, help="Private key (PEM) of --cert.")
@click.option(
    "--keep-going",
    is_flag=True,
    help=f"Send every row even when the first {UNREACHABLE_AFTER} connection attempts all "
    "fail to connect (by default the run then stops, exit 1: the target is unreachable).",
)
@click.option(
    "--max-body",
    default=size_text(_DEFAULTS.max_body),
    metavar="SIZE",
    show_default=True,
    help="Largest response body accepted (after decompression).",
)
@click.option(
    "--max-header-size",
    default=size_text(_DEFAULTS.max_header_size),
    metavar="SIZE",
    show_default=True,
    help="Largest response header block accepted; past it the row ends with header_too_large.",
)
@click.option("--ordered", is_flag=True, help="Write rows in input order (bounded reorder buffer).")
@click.option(
    "-L",
    "--follow-redirects",
    "follow_redirects",
    is_flag=True,
    help="Follow 301/302/303/307/308 (credentials dropped on a cross-origin hop).",
)
@click.option(
    "--max-redirects",
    type=click.IntRange(1, 100),
    metavar="N",
    default=MAX_REDIRECTS,
    show_default=True,
    help="Most redirects followed per row with -L/--follow-redirects.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the rows already in OUTPUT (repairing a torn last line) and send only the rest; "
    "rows recorded as cancelled are sent again.",
)
@click.option(
    "--retry-failed",
    "retry_failed",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[LIST]",
    help="--resume, and also send again the rows of OUTPUT that ended with these reasons or "
    f"statuses (comma-separated; 5xx for a class) [default: {RETRY_FAILED_DEFAULT}; "
    "transport = connect,reset,timeout,tls,protocol]. Their old rows are removed.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace OUTPUT if it already holds rows (without it, that needs --resume).",
)
@click.option(
    "--fail-on-error",
    "fail_on_error",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[LIST]",
    help="Exit with status 3 when a row ended with an error [default: any error], or with "
    "one of LIST (reasons and statuses, as --retry-failed).",
)
@click.option(
    "--summary-json",
    default=None,
    metavar="PATH",
    help="Also write the summary figures as JSON to this file.",
)
@click.option(
    "--cluster",
    default=None,
    metavar="ADDRESS",
    help="Run on a Dask cluster: a scheduler address, or local:N for N local worker "
    "processes; -o is a dataset directory of parts (pip install 'drumfire[dask]').",
)
@click.option(
    "--partition-size",
    default="16M",
    show_default=True,
    metavar="SIZE",
    help="With --cluster: input bytes per partition (one task, one part file).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress display and no summary.")
@file_options
def run_command(
    input_path: str,
    url: str,
    user: str | None,
    method: str | None,
    headers: tuple[str, ...],
    data: str | None,
    json_data: str | None,
    extract: tuple[str, ...],
    parse_spec: str | None,
    parse_columns: tuple[str, ...],
    id_column: str | None,
    keep: tuple[str, ...],
    limit: int | None,
    output: str,
    input_format: str | None,
    output_format: str | None,
    encoding: str,
    delimiter: str | None,
    concurrency: int | None,
    processes: str,
    max_concurrency: int,
    pipeline: int,
    read_ahead: bool,
    rate: str | None,
    retries: int,
    per_host_concurrency: int | None,
    per_host_rate: str | None,
    max_retry_wait: str,
    retry_unsafe: bool,
    timeout: float,
    connect_timeout: float,
    insecure: bool,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    keep_going: bool,
    max_body: str,
    max_header_size: str,
    ordered: bool,
    follow_redirects: bool,
    max_redirects: int,
    resume: bool,
    retry_failed: str | None,
    overwrite: bool,
    fail_on_error: str | None,
    summary_json: str | None,
    cluster: str | None,
    partition_size: str,
    quiet: bool,
    **files: Any,
) -> None:
    """Send one request per row of INPUT (CSV/TSV with a header, JSON Lines, Parquet, a
    text file of URLs, or - for stdin) and write one result row per input row.

    \b
    Example:
      drumfire run routes.csv \\
        --url 'http://127.0.0.1:5000/route/v1/driving/{lon1},{lat1};{lon2},{lat2}' \\
        -e code=code -e 'duration=routes[0].duration' -o results.csv
    """
    resuming: str | None = None  # the option a resume's messages name (see resume_named)
    try:
        url, header_lines = _credentials(url, user, headers)
        pairs = parse_extract_options(extract)
        keep_columns = column_list(keep, "--keep")
        if data is not None and data.startswith("@") and "{" in data:
            files["data_file"], data = data[1:], None  # -d @{path}: a file per row
        files["skip_saved"] = bool(resume or retry_failed is not None)
        if cacert == "":  # was taken as no --cacert: verified against the system's CAs
            raise UsageError("--cacert '' names no file: give the CA certificates' PEM file")
        job = make_job(
            url,
            method=method,
            headers=header_lines,
            **files,
            data=read_data(data),
            json=read_data(json_data, "--json"),
            extract=pairs,
            keep=keep_columns,
            id=id_column,
            concurrency=concurrency,
            max_concurrency=max_concurrency,
            rate=_rate_option(rate),
            per_host_concurrency=per_host_concurrency,
            per_host_rate=_rate_option(per_host_rate, "--per-host-rate"),
            retry=Retry(
                retries=retries,
                unsafe=retry_unsafe,
                max_retry_after=_wait_option(max_retry_wait),
            ),
            timeout=seconds_option("--timeout", timeout),
            connect_timeout=seconds_option("--connect-timeout", connect_timeout),
            verify=False if insecure else (cacert if cacert is not None else True),
            cert=(cert, key) if key is not None else cert,  # checked: TLSFileError
            max_body=_size_option("--max-body", max_body),
            max_header_size=_size_option("--max-header-size", max_header_size, 1024),
            ordered=ordered,
            follow_redirects=max_redirects if follow_redirects else 0,
            pipeline=pipeline,
        )
        job.extractor()  # compile expressions now: a bad one is a usage error
        if not keep_going:  # a dead target ends the run early (see the README)
            job = dataclasses.replace(job, unreachable_after=UNREACHABLE_AFTER)
        nprocs = _processes_option(processes, url)
        if delimiter is not None:
            delimiter = check_delimiter(delimiter, "--delimiter")
        parse = load_parse_function(parse_spec) if parse_spec else None
        declared = _parse_columns_option(parse_columns, parse_spec, pairs, keep_columns)
        again = (
            Selection(retry_failed or RETRY_FAILED_DEFAULT, "--retry-failed")
            if retry_failed is not None
            else None
        )
        failing = (
            Selection(fail_on_error or "errors", "--fail-on-error")
            if fail_on_error is not None
            else None
        )
        resuming = "--retry-failed" if again is not None else "--resume" if resume else None
        if resuming is not None and overwrite:
            raise UsageError(
                f"{resuming} keeps the rows of OUTPUT, --overwrite drops them: choose one"
            )
        if resuming is not None and output == "-":
            raise UsageError(f"{resuming} needs an output file (-o PATH), not standard output")
        out_fmt = output_format_for(output, output_format)
        partition_bytes = _size_option("--partition-size", partition_size, 1)
        if cluster is None and _given("partition_size"):  # a typo'd --cluster run, say
            raise UsageError("--partition-size applies to --cluster runs only")
        if cluster is not None:  # a thin layer: see _cluster.py and "On a Dask cluster"
            from ._cluster import TaskOptions, parse_option, run_cluster

            if job.uses_files():
                raise UsageError(
                    "--cluster: --data-file, -F or --save-body is not supported with a cluster yet"
                )
            if limit is not None:
                raise UsageError("--cluster: -n/--limit is not supported with a cluster yet")
            if nprocs > 1:
                raise UsageError(
                    "--cluster: -p does not apply (each worker process runs one engine); "
                    "choose the number of worker processes instead (local:N, or the "
                    "cluster's workers)"
                )
            if summary_json:
                _summary_apart(summary_json, input_path, output, out_fmt)
            options = TaskOptions(parse_option(parse_spec) if parse_spec else None, again)
            ran, status = run_cluster(
                input_path,
                job,
                cluster=cluster,
                output=output,
                out_fmt=out_fmt,
                input_format=input_format,
                encoding=encoding,
                delimiter=delimiter,
                resume=resuming,
                overwrite=overwrite,
                partition_size=partition_bytes,
                quiet=quiet,
                options=options,
            )
            sys.exit(_finish(ran, status, output, summary_json, failing, quiet))
        if summary_json:
            _summary_apart(summary_json, input_path, output, out_fmt)
        # The total is for the progress display only: no display, no counting pass.
        displayed = not quiet and _stderr_is_terminal()
        source = open_source(
            input_path, input_format, encoding, count=displayed, delimiter=delimiter
        )
        if limit is not None:
            source = _first_rows(source, limit)
        lock: OutputLock | None = None
        try:
            id_column = job.check(job.plan(), source)
            refuse_input_as_output(input_path, output, out_fmt)
            # One writer: the lock is held from before the output is read until the end.
            lock = OutputLock.acquire_output(output, out_fmt) if output != "-" else None
            if lock is not None and resuming is None:
                lock.refuse_or_truncate(overwrite)
                lock.start_batch(job.save is not None)
            if lock is not None and job.save is not None:
                job = for_batch(job, lock.batch_id())  # each file saved names the batch
            own = [(input_path, "the input"), (summary_json, "the --summary-json file")]
            job = guard(job, [*own, *(lock.own_files() if lock is not None else [])])
            # A typed output (Parquet, SQLite) is replaced by its sink, not truncated.
            append = not (overwrite and out_fmt in TABLE_FORMATS)

            def resend(record: Record) -> bool:
                _, status, error = record
                if is_cancelled(record):
                    return True
                return again is not None and again.matches(error, status)

            resumed = scan_output(output, out_fmt, resend) if resuming else None
            shared = 0
            drop: Callable[[Record], bool] = resend
            if resumed is not None:
                from ._files import count_shared_ids, reread

                # Ids only, before sending: rows that share an id are sent again
                # together (see count_shared_ids); standard input is read once.
                reopen = reread(input_path, input_format, encoding, delimiter)
                shared = count_shared_ids(resumed, reopen, id_column, limit)
                drop = resumed.resends(resend)
            if resumed is not None and lock is not None and job.save is not None:
                # Before the rewrite drops them: no file is their answer until sent.
                resumed.pending = lock.remember_again(resumed.again)
                resumed.since = lock.batch_began()  # nor a file of an earlier batch
            fields = job.field_names()
            if job.skip_saved:
                clean_temps(job)  # what a stopped run left (see --save-body)

            def open_output() -> Sink:
                return open_sink(
                    output,
                    output_format,
                    fields,
                    keep_columns,
                    append=append,
                    learn=parse_spec is not None,
                    parse_columns=declared,
                    kinds=job.field_kinds(),
                )

            sink = open_output()
            if resumed is not None and resumed.dropped and lock is not None:
                sink.close()  # nothing written yet: the file already has its header
                lock.rewrite(out_fmt, drop)
                sink = open_output()
                if not quiet and resumed.dropped > shared:
                    why = "cancelled" + (", or chosen by --retry-failed" if again else "")
                    click.echo(
                        f"drumfire: {counted(resumed.dropped - shared, 'row')} of {output} will "
                        f"be sent again ({why})",
                        err=True,
                    )
                if not quiet and shared:
                    click.echo(
                        f"drumfire: {counted(shared, 'row')} of {output} will be sent again, "
                        "with every input row of their ids (the output has not as many rows of "
                        "them as the input, and rows that share an id cannot be told apart)",
                        err=True,
                    )
            guarded = GuardedSink(sink, output, lock)
            if lock is not None:
                # Before the CSV header is flushed: a file refused for want of room
                # holds nothing, so it is removed and the next run is not refused.
                lock.check_room()  # JSON Lines and Parquet have written nothing yet
            try:
                guarded.flush()  # a full disk shows now, before the first request
            except FileProblem as exc:
                raise UsageError(str(exc)) from None
        except BaseException:
            if source.close is not None:
                source.close()
            if lock is not None:
                lock.discard_if_unused()
                lock.close()
            raise
    except TLSFileError as exc:  # make_job names the files as keywords: these are options
        _fail(str(exc.named("cli")))
    except UsageError as exc:
        _fail(str(resume_named(exc, resuming) if resuming else exc))
    except click.BadParameter as exc:
        _fail(exc.format_message())
    except KeyboardInterrupt:
        # Before the engine's own handler (opening the input, the ids pass and the
        # rewrite of a --resume): click's "Aborted!" and exit 1 said neither.
        click.echo("drumfire: stopped by Ctrl-C before the first request", err=True)
        sys.exit(130)
    stats, code = _run(
        job, source, guarded, nprocs, quiet, output, parse, parse_spec, read_ahead, resumed
    )
    if lock is not None:
        if stats is not None and code == 0 and limit is None:
            lock.forget_again()  # the whole input has its rows in the output
        lock.close()
    if stats is not None:
        code = _finish(stats, code, output, summary_json, failing, quiet)
    global _quick_exit
    # Every file is closed (see entry()); a --parse module is user code whose
    # atexit handlers and open files must see the usual shutdown.
    _quick_exit = parse_spec is None
    sys.exit(code)


def _summary_apart(summary: str, input_path: str, output: str, out_fmt: str) -> None:
    """``--summary-json``: writable, and neither the output nor the input, whose rows
    the summary would replace at the end of the run (it did, without a word)."""
    for path, what in ((output, "the output (-o)"), (input_path, "the input")):
        if path == "-":
            continue
        if path is output and out_fmt == "sqlite":
            from ._sqlite import sqlite_target

            path = sqlite_target(output)[0]
        if same_file(summary, path):
            raise UsageError(
                f"--summary-json {summary!r} is {what}: the summary would replace its rows; "
                "give it a path of its own"
            )
    check_summary_path(summary)


def _given(name: str) -> bool:
    """Whether the option ``name`` (its parameter's name) was given, not left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not click.core.ParameterSource.DEFAULT


def _credentials(url: str, user: str | None, headers: Sequence[str]) -> tuple[str, list[str]]:
    """``-u``: USER:PASSWORD as curl means it (a URL there: its old meaning, with a warning)."""
    old = url_from_user(user, _given("url"))
    if old is not None:
        return old, list(headers)
    if user is None:
        return url, list(headers)
    return url, [*headers, basic_auth_header(user, headers)]


def _first_rows(source: Source, limit: int) -> Source:
    """``-n/--limit``: the first ``limit`` rows (a bad line counts: it gets its output row)."""
    import itertools

    total = None if source.total is None else min(source.total, limit)
    if isinstance(source.items, Background):  # the thread reads no further
        source.items.limit(limit)
        return dataclasses.replace(source, total=total)
    return dataclasses.replace(source, items=itertools.islice(source.items, limit), total=total)


def _run(
    job: Job,
    source: Source,
    sink: GuardedSink,
    nprocs: int,
    quiet: bool,
    output: str,
    parse: Callable[..., Any] | None,
    parse_spec: str | None,
    read_ahead: bool,
    resumed: Resumed | None,
) -> tuple[Stats | None, int]:
    """Run the batch; a file problem met on the way (the output's, or an input that
    cannot be read on: a truncated .gz) is one line and exit status 1."""
    from ._batch import execute

    label = None if output == "-" else output
    skip = resumed.done.take if resumed is not None else None
    skip_problem = resumed.problems.__contains__ if resumed is not None else None
    # --resume with --save-body: a row the output lacks whose file is complete is
    # written without a request; a row it drops to send again is sent.
    saved = saved_rows(job, resumed.sent_again, resumed.since) if resumed is not None else None
    try:
        if nprocs > 1:
            from ._parallel import execute_parallel

            stats, code = execute_parallel(
                job,
                source,
                sink,
                nprocs,
                quiet=quiet,
                output_label=label,
                parse_spec=parse_spec,
                skip=skip,
                skip_problem=skip_problem,
                saved=saved,
                resumed=resumed.kept if resumed is not None else 0,
            )
        else:
            stats, code = execute(
                job,
                source,
                sink,
                quiet=quiet,
                parse=parse,
                output_label=label,
                skip=skip,
                read_ahead=read_ahead,
                skip_problem=skip_problem,
                saved=saved,
                resumed=resumed.kept if resumed is not None else 0,
            )
    except (FileProblem, InputError) as exc:  # the output or the input failed under way
        click.echo(f"drumfire: error: {exc}", err=True)
        return None, 1
    return stats, code


def _keeps_rows(output: str) -> bool:
    """Whether a run can be resumed from ``output``: not standard output, nor a device such
    as ``/dev/null`` (a hint to add --resume there would send every row again)."""
    if output == "-":
        return False
    try:
        mode = os.stat(output).st_mode
    except (OSError, ValueError):  # not there (a sqlite:/// URL, a file not made yet)
        return True
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def _finish(
    stats: Stats,
    code: int,
    output: str,
    summary_json: str | None,
    failing: Selection | None,
    quiet: bool,
) -> int:
    """The summary file, the hints after the summary, and the exit status for scripts."""
    if summary_json:
        try:
            Path(summary_json).write_bytes(
                orjson.dumps(stats.summary(), option=orjson.OPT_INDENT_2)
            )
        except OSError as exc:
            click.echo(
                f"drumfire: error: cannot write --summary-json {summary_json!r}: "
                f"{exc.strerror or exc}",
                err=True,
            )
            return 1
    argv = hide_secrets(sys.argv[1:])
    hidden = " (header values, -u and URL user info shown as ***)" if argv != sys.argv[1:] else ""
    keeps = _keeps_rows(output)
    if code in (130, 143):
        if not quiet and keeps:
            click.echo(f"  resume with: {rerun_command(argv, '--resume')}{hidden}", err=True)
        return code
    if not quiet and keeps:
        failed = Selection(RETRY_FAILED_DEFAULT, "--retry-failed").count(
            stats.reasons, stats.statuses
        )
        if failed:
            click.echo(
                f"  re-send the failed rows with: {rerun_command(argv, '--retry-failed')}{hidden}",
                err=True,
            )
    if code == 0 and failing is not None:
        n = failing.count(stats.reasons, stats.statuses)
        if n:
            if not quiet:
                click.echo(
                    f"drumfire: {counted(n, 'row')} ended with an outcome --fail-on-error names: "
                    "exit status 3",
                    err=True,
                )
            return 3
    return code


#: Set by ``run`` once its output, input and workers are closed.
_quick_exit = False


def _stderr_is_terminal() -> bool:
    """Whether the live bar is drawn on stderr (see draws_live: a terminal, not a log
    file that FORCE_COLOR makes look like one)."""
    from rich.console import Console  # only when a display may be drawn

    return draws_live(Console(stderr=True))


def _hold_standard_fds() -> None:
    """Point a closed standard descriptor (``<&-``, ``>&-``, ``2>&-``) at ``/dev/null``.

    Its number would go to the next socket, and uvloop aborts the process when it closes
    a descriptor under 3 (an assertion: ``bench URL <&-`` dumped core, exit 134). Python
    has already set ``sys.stdin`` (or stdout, stderr) to None for it, so a command that
    needs the stream still finds it closed (``run -o -``: one line).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def entry() -> None:
    """The console script: :func:`main`, and after ``run`` an exit without the teardown.

    Once ``run`` has closed its files, the interpreter's shutdown has nothing
    left to do but free memory and modules one by one: about 50 ms after a big
    run, which ``drumfire run`` would count in its own throughput. The exit
    status is the same; stdout and stderr are flushed first. Other commands
    (and ``main`` called in-process, as by tests) exit the usual way, and so
    does ``run --parse``, which loads user code.
    """
    global _quick_exit
    _quick_exit = False
    _hold_standard_fds()
    try:
        main()
    except SystemExit as exc:
        if not _quick_exit or not isinstance(exc.code, int):
            raise
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None: that descriptor was closed (``2>&-``)
                    stream.flush()
        except OSError:
            raise exc from None  # a closed pipe: let the usual exit report it
        os._exit(exc.code)


if __name__ == "__main__":  # pragma: no cover
    entry()

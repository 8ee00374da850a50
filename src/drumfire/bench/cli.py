"""``drumfire bench``: the click command (registered on the ``drumfire`` group)."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click

from .._bodies import static_form
from .._cli_common import (
    CONTEXT,
    ONE_BODY,
    OneLineErrors,
    basic_auth_header,
    connect_timeout_option,
    insecure_option,
    looks_like_url,
    old_quiet,
    once,
    read_data,
    report_path,
    seconds_option,
    separate_reports,
    to_stdout,
    url_from_user,
    user_option,
    warn,
    write_report,
)
from .._connection import TLS
from .._errors import UsageError
from .._outfile import check_summary_path
from .._settings import MAX_BODY
from .._sources import FORMATS
from .._tlsfiles import TLSFileError, check_tls_files
from ._api import (
    DEFAULT_CLOSED_CONCURRENCY,
    DEFAULT_DURATION,
    DEFAULT_OPEN_CONCURRENCY,
    DEFAULT_TIMEOUT,
    make_plan,
    run_plan,
)
from ._runner import BenchError

__all__ = ["bench_command"]


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"drumfire bench: error: {message}", err=True)
    sys.exit(code)


class _OneLineErrors(OneLineErrors):
    """Usage errors as one line and exit status 2, also when run from the group."""

    prefix = "drumfire bench"

    def prepare(self, args: list[str]) -> list[str]:
        return old_quiet(args)


# wrk's -d: 2s, 1m30s, 500ms, or a bare number of seconds (wrk reads "-d 10" as 10 s).
_DURATION = re.compile(r"\d+(?:\.\d+)?(?:(?:us|ms|s|m|h)(?:\d+(?:\.\d+)?(?:ms|s))?)?")


def _refuse_duration_as_body(data: str | None, method: str | None) -> None:
    """wrk's ``-d 2s`` is a duration; here -d is the body, as in curl: refuse the mix-up."""
    if data is not None and method is None and _DURATION.fullmatch(data.strip()):
        _fail(
            f"-d {data!r} looks like a duration (wrk's -d): here -d is the request body, as "
            f"in curl; for the duration write -z {data.strip()} (to send it as a body, add -X POST)"
        )


def _old_flags(
    rate: str | None, old_rate: str | None, quiet: bool, url: str | None
) -> tuple[str | None, bool, str | None]:
    """The rate and quiet flags of before -q was the rate: accepted, with a warning."""
    if old_rate is not None:
        if rate is not None:
            _fail("the rate is given twice: keep -q/--rate")
        warn("-r for the rate is deprecated: write -q or --rate", "drumfire bench")
        rate = old_rate
    if rate is not None and looks_like_url(rate) and url is None:
        # `bench -q URL`: the -q of before, quiet, took no value
        warn("-q for quiet is deprecated: write --quiet (-q is now the rate)", "drumfire bench")
        return None, True, rate
    return rate, quiet, url


def _check_output(path: str | None, option: str) -> None:
    """A report's file, before the run: a missing directory, a directory, a file that
    cannot be written is one line now, not a traceback after the whole run."""
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        _fail(f"{option} {path!r}: the directory {str(parent)!r} does not exist")
    try:
        check_summary_path(path, option)
    except UsageError as exc:
        _fail(str(exc))


@click.command("bench", cls=_OneLineErrors, context_settings=CONTEXT)
@click.argument("url", required=False)
@click.option(
    "-i",
    "--input",
    "input_path",
    default=None,
    metavar="FILE",
    help="Rows (CSV/TSV, JSON Lines, text of URLs, - for stdin) to rotate over.",
)
@user_option
@click.option(
    "--url",
    "url_template",
    default=None,
    metavar="TEMPLATE",
    help="URL template for --input rows; {column} is replaced [default: {url}].",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Input format [default: from the extension].",
)
@click.option("--shuffle", is_flag=True, help="Visit the input rows in random order.")
@click.option("--seed", type=int, default=None, metavar="N", help="Seed for --shuffle.")
@click.option(
    "-X",
    "--method",
    default=None,
    metavar="METHOD",
    help="Method. Default GET, or POST with --data.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Request header; repeatable (a template with --input).",
)
@click.option(
    "-d",
    "--data",
    multiple=True,
    callback=once(ONE_BODY),
    metavar="BODY",
    help="Request body; @FILE reads a file (a template with --input).",
)
@click.option(
    "-F",
    "--form",
    "form",
    multiple=True,
    metavar="NAME=VALUE",
    help="A multipart form field, as curl's -F: 'name=value', 'name=@FILE' or "
    "'name=<FILE' (its contents as text); then ;type=MEDIA ;filename=NAME. The form is "
    "built once and sent with every request.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=None,
    metavar="N",
    help=f"Connections [default: {DEFAULT_CLOSED_CONCURRENCY}; with --rate, "
    f"at most {DEFAULT_OPEN_CONCURRENCY}].",
)
@click.option(
    "-q",
    "--rate",
    default=None,
    metavar="RATE",
    help="Open model: requests/s due on a fixed schedule (200, 200/s, 6000/min), a ramp "
    "over the run (100:1000), or stages (100@10s,500@20s). -q as in hey and oha.",
)
@click.option("-r", "old_rate", default=None, hidden=True)  # deprecated: -q or --rate
@click.option(
    "-n",
    "--requests",
    type=click.IntRange(1),
    default=None,
    metavar="COUNT",
    help="Stop after COUNT measured requests.",
)
@click.option(
    "-z",
    "--duration",
    default=None,
    metavar="DURATION",
    help=f"Stop after this long (10s, 2m, 1m30s) [default: {DEFAULT_DURATION:g}s unless -n].",
)
@click.option(
    "--warmup",
    default="0",
    metavar="DURATION",
    help="Send load this long first, without measuring it.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.001),
    default=DEFAULT_TIMEOUT,
    metavar="SECONDS",
    show_default=True,
    help="Seconds a request may take (from its due time under --rate); checked every tenth "
    "of it, so it fires at most a tenth late (5 ms under 50 ms).",
)
@connect_timeout_option
@insecure_option
@click.option(
    "--cacert", metavar="FILE", default=None, help="Trust the CA certificates in FILE (PEM)."
)
@click.option("--cert", metavar="FILE", default=None, help="Client certificate (PEM).")
@click.option("--key", metavar="FILE", default=None, help="Private key (PEM) of --cert.")
@click.option(
    "--json",
    "json_path",
    default=None,
    metavar="PATH",
    help="Write the report as JSON.",
)
@click.option(
    "--html",
    "html_path",
    default=None,
    metavar="PATH",
    help="Write the report as a self-contained HTML page.",
)
@click.option("--quiet", is_flag=True, help="No live view (the summary is still printed).")
def bench_command(
    url: str | None,
    input_path: str | None,
    user: str | None,
    url_template: str | None,
    input_format: str | None,
    shuffle: bool,
    seed: int | None,
    method: str | None,
    headers: tuple[str, ...],
    data: str | None,
    form: tuple[str, ...],
    concurrency: int | None,
    rate: str | None,
    old_rate: str | None,
    requests: int | None,
    duration: str | None,
    warmup: str,
    timeout: float,
    connect_timeout: float,
    insecure: bool,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    json_path: str | None,
    html_path: str | None,
    quiet: bool,
) -> None:
    """Measure a service under load: throughput, latency percentiles, errors.

    Closed model by default (-c connections, each sending again as soon as
    its answer came); --rate for the open model, where latency counts from
    when each request was due, so a stalling server cannot hide.

    \b
    Examples:
      drumfire bench http://127.0.0.1:8080/predictions/model -X POST \\
        -d '{"data": "def quicksort():"}' -c 16 -z 30s
      drumfire bench --input queries.jsonl \\
        --url 'http://127.0.0.1:9200/idx/_search?q={q}' --rate 500 -z 1m --html report.html
    """
    rate, quiet, url = _old_flags(rate, old_rate, quiet, url)
    header_lines = list(headers)
    try:
        old_url = url_from_user(user, url_template is not None, "drumfire bench")
        if old_url is not None:
            url_template = old_url
        elif user is not None:
            header_lines.append(basic_auth_header(user, headers))
    except UsageError as exc:
        _fail(str(exc))
    _refuse_duration_as_body(data, method)
    if input_path is not None:
        if url is not None and url_template is not None:
            _fail("give the URL template once: as URL or as --url")
        template = url_template or url
        single = None
    else:
        if url_template is not None:
            if url is not None:
                _fail("give the URL once: as URL or as --url")
            _fail("--url is a template for --input rows; for one URL, give it as URL")
        if url is None:
            _fail("give a URL, or --input FILE with a --url template (see --help)")
        template = None
        single = url
    try:
        report_path(json_path)
    except UsageError as exc:
        _fail(str(exc))
    _check_output(json_path, "--json")
    _check_output(html_path, "--html")
    try:
        separate_reports(json_path, html_path, input_path)
    except UsageError as exc:
        _fail(str(exc))
    tls: bool | TLS = not insecure
    if insecure:  # -k wins, as in drumfire run and curl: no CA file is read
        cacert = None
    if cacert is not None or cert is not None or key is not None:
        tls = TLS(not insecure, cacert, cert, key)
        try:  # the same TLS context as drumfire run, checked up front
            check_tls_files(not insecure, cacert, cert, key)
        except TLSFileError as exc:
            _fail(str(exc.named("cli")))
    try:
        body = read_data(data, one="bench sends one body for every request")
    except UsageError as exc:
        _fail(str(exc))
    if form:  # an image upload, say: the form is encoded once (see drumfire._bodies)
        if data is not None:
            _fail("the body is given twice: -d and -F")
        try:
            body, form_type = static_form(form)
        except UsageError as exc:
            per_row = any("{" in spec for spec in form) and "No such file" in str(exc)
            hint = " (bench sends one form for every request: a file per row is drumfire run -F)"
            _fail(str(exc) + (hint if per_row else ""))
        header_lines.append(f"Content-Type: {form_type}")
    try:
        plan = make_plan(
            single if single is not None else template,
            rows=None,
            input=input_path,
            input_format=input_format,
            method=method,
            headers=header_lines,
            data=body,
            concurrency=concurrency,
            rate=rate,
            requests=requests,
            duration=duration,
            warmup=warmup,
            timeout=seconds_option("--timeout", timeout),
            connect_timeout=seconds_option("--connect-timeout", connect_timeout),
            shuffle=shuffle,
            seed=seed,
            verify=tls,
            max_body=MAX_BODY,
        )
    except UsageError as exc:
        _fail(str(exc))
    try:
        report = run_plan(plan, quiet=quiet, handle_signals=True)
    except BenchError as exc:
        _fail(str(exc), 1)
    shown = to_stdout(lambda: click.echo(report.summary_text()), "drumfire bench")
    written = True
    if json_path:
        written = write_report(json_path, "--json", report.to_json() + b"\n", "drumfire bench")
        if written and shown:
            shown = to_stdout(lambda: click.echo(f"  json: {json_path}"), "drumfire bench")
    if html_path:
        if not write_report(html_path, "--html", report.to_html().encode(), "drumfire bench"):
            written = False
        elif shown:
            shown = to_stdout(lambda: click.echo(f"  html: {html_path}"), "drumfire bench")
    written = written and shown
    stopped = 128 + (report.stop_signal or signal.SIGINT)  # 130, or 143 after SIGTERM
    sys.exit(1 if not written else stopped if report.stopped else 0)

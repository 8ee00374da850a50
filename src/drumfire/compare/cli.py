"""The ``drumfire compare`` command (registered on the main group by :mod:`drumfire.cli`)."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

import click
import orjson
from rich.console import Console

from .._cli_common import (
    CONTEXT,
    ONE_BODY,
    OneLineErrors,
    basic_auth_header,
    encoding_option,
    format_option,
    once,
    read_data,
    report_path,
    separate_reports,
    to_stdout,
    url_from_user,
    url_option,
    user_option,
    write_report,
)
from .._errors import UsageError
from .._extract import parse_extract_options
from .._outfile import check_summary_path
from ._report import StrategyReport
from ._runner import (
    DEFAULT_CONCURRENCY,
    STRATEGY_NAMES,
    CompareStopped,
    compare,
    parse_strategies,
)
from .strategies import EXTRA_HINT, get, missing_modules

__all__ = ["compare_command"]


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be: the strategy running is stopped with its
    worker (which runs in a session of its own, out of reach of the signal) and what ran
    is reported, as after Ctrl-C; exit 143."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process
    raise _Terminated


def _fail(message: str) -> NoReturn:
    click.echo(f"drumfire: error: {message}", err=True)
    sys.exit(2)


def _check_installed(strategies: str | None) -> None:
    """Strategies that cannot run here are a usage error, before any row is sent."""
    names = parse_strategies(strategies)
    lacking = {n: missing_modules(get(n)) for n in names}
    missing = sorted({m for mods in lacking.values() for m in mods})
    if missing:
        blocked = ", ".join(n for n, mods in lacking.items() if mods)
        raise UsageError(
            f"strategies {blocked} need {', '.join(missing)}, not installed: {EXTRA_HINT} "
            "(or choose others with -s, e.g. -s drumfire)"
        )


@click.command("compare", cls=OneLineErrors, context_settings=CONTEXT)
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
    "-e",
    "--extract",
    multiple=True,
    metavar="NAME=EXPR",
    help="JMESPath expression over the JSON body; repeatable. Compared across strategies.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_CONCURRENCY,
    metavar="N",
    show_default=True,
    help="Requests in flight, for every strategy where concurrency applies.",
)
@click.option(
    "-s",
    "--strategies",
    default=None,
    metavar="A,B,...",
    help="Strategies to run, comma-separated [default: all]: " + ", ".join(STRATEGY_NAMES) + ".",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Use only the first N rows.",
)
@click.option(
    "-r",
    "--repeat",
    type=click.IntRange(1, 100),
    default=1,
    metavar="N",
    show_default=True,
    help="Run every strategy this many times, round after round; report each one's median run.",
)
@click.option(
    "--id",
    "id_column",
    default=None,
    metavar="COLUMN",
    help="Column holding the row id [default: 'id' if present, else the row number].",
)
@format_option
@encoding_option
@click.option(
    "--json",
    "json_path",
    default=None,
    metavar="PATH",
    help="Write the report as JSON to this file.",
)
@click.option(
    "--html",
    "html_path",
    default=None,
    metavar="PATH",
    help="Write the report as a self-contained HTML page (bar chart and table).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(0.1),
    metavar="SECONDS",
    default=None,
    help="Stop a strategy that takes longer than this and report it as failed.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines, only the table.")
def compare_command(
    input_path: str,
    url: str,
    user: str | None,
    method: str | None,
    headers: tuple[str, ...],
    data: str | None,
    extract: tuple[str, ...],
    concurrency: int,
    strategies: str | None,
    limit: int | None,
    repeat: int,
    id_column: str | None,
    input_format: str | None,
    encoding: str,
    json_path: str | None,
    html_path: str | None,
    max_seconds: float | None,
    quiet: bool,
) -> None:
    """Send the rows of INPUT the usual Python ways (requests, urllib3, aiohttp, thread and
    process pools) and with drumfire, check that they all got the same results, and compare
    their speed, client CPU and memory.

    Each strategy runs in its own fresh process, one after the other. The strategies other
    than drumfire need the optional extra: pip install 'drumfire[compare]' (without it,
    choose -s drumfire). Exit status: 0 when every strategy produced the same rows, 1 when
    one did not or failed, 2 for a usage error or a missing extra.

    \b
    Example:
      drumfire compare routes.csv \\
        --url 'http://127.0.0.1:5000/route/v1/driving/{lon1},{lat1};{lon2},{lat2}' \\
        -e 'duration=routes[0].duration' --json compare.json --html compare.html
    """
    err = Console(stderr=True)
    out = Console()

    def progress(name: str, report: StrategyReport | None) -> None:
        if quiet:
            return
        if report is None:
            err.print(f"running {name} …", highlight=False)
            return
        if report.skipped:
            line = f"  skipped: {report.skipped}"
        elif report.error:
            line = f"  failed: {report.error}"
        else:
            line = f"  {report.rps or 0:,.0f} req/s, {report.wall_s or 0:.2f} s"
        err.print(line, highlight=False, markup=False)

    before = signal.signal(signal.SIGTERM, _on_sigterm)
    # Put back when the command ends: called in-process (a test, a notebook), the handler
    # stayed, and a later SIGTERM became this command's _Terminated (a KeyboardInterrupt).
    click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, before))
    code = 0
    try:
        report_path(json_path)
        separate_reports(json_path, html_path, input_path)
        for path, option in ((json_path, "--json"), (html_path, "--html")):
            if path is not None:  # before the run, not a traceback after it
                check_summary_path(path, option)
        _check_installed(strategies)
        given = click.get_current_context().get_parameter_source("url")
        old_url = url_from_user(user, given is not click.core.ParameterSource.DEFAULT)
        header_lines = list(headers)
        if old_url is not None:
            url = old_url
        elif user is not None:
            header_lines.append(basic_auth_header(user, headers))
        pairs = parse_extract_options(extract)
        report = compare(
            input_path,
            url,
            extract=pairs,
            strategies=strategies,
            concurrency=concurrency,
            limit=limit,
            repeat=repeat,
            id=id_column,
            input_format=input_format,
            encoding=encoding,
            strategy_timeout=max_seconds,
            on_progress=progress,
            method=method,
            headers=header_lines,
            data=read_data(data, one="compare reads one body file"),
        )
    except UsageError as exc:
        _fail(str(exc))
    except ValueError as exc:  # a URL template that is not http(s)://host/...
        _fail(str(exc))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (_Terminated)
        code = 128 + (signal.SIGTERM if _signalled_term(exc) else signal.SIGINT)
        if not isinstance(exc, CompareStopped):
            click.echo("drumfire compare: stopped before any strategy ran", err=True)
            sys.exit(code)
        report = exc.report
    written = to_stdout(lambda: report.print(out), "drumfire")
    if json_path:
        as_json = orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2)
        written = write_report(json_path, "--json", as_json, "drumfire") and written
    if html_path:
        html = report.to_html().encode("utf-8")
        written = write_report(html_path, "--html", html, "drumfire") and written
    failed = not written or any(s.error or s.skipped for s in report.strategies)
    sys.exit(code or (0 if report.all_match and not failed and report.ran else 1))


def _signalled_term(exc: BaseException) -> bool:
    """Whether the interrupt was SIGTERM's (raised inside compare(), so the cause)."""
    return any(isinstance(e, _Terminated) for e in (exc, exc.__context__, exc.__cause__))

"""Pieces the ``drumfire`` commands share: click settings, common options, ``@file`` bodies.

``run``, ``bench`` and ``compare`` read the same kind of input through the same
templates, so the options that mean the same thing are declared once here.
"""

from __future__ import annotations

import binascii
import contextlib
import errno
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from ._errors import UsageError
from ._settings import Timeouts
from ._sources import FORMATS
from ._url import shown_url

__all__ = [
    "CONTEXT",
    "ONE_BODY",
    "OneLineErrors",
    "basic_auth_header",
    "column_list",
    "connect_timeout_option",
    "encoding_option",
    "format_option",
    "hide_secrets",
    "insecure_option",
    "looks_like_url",
    "old_quiet",
    "once",
    "one_line_usage",
    "read_data",
    "report_path",
    "same_file",
    "seconds_option",
    "separate_reports",
    "to_stdout",
    "url_from_user",
    "url_option",
    "user_option",
    "warn",
    "write_report",
]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

def one_line_usage(exc: click.UsageError, command: str) -> NoReturn:
    """click's usage error (a bad value, an unknown option, a missing argument) as the
    one line every other usage error is, exit status 2: click prints four lines
    (usage, a pointer to --help, a blank line, the error). No arguments at all, where
    click shows the help, still shows it."""
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # click 8.2
        raise exc
    click.echo(f"{command}: error: {exc.format_message().replace(chr(10), ' ')}", err=True)
    sys.exit(2)


class OneLineErrors(click.Command):
    """A command whose click usage errors are one line (see :func:`one_line_usage`),
    also when it runs from the group; ``prefix`` starts the line."""

    prefix = "drumfire"

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, self.prepare(args), parent, **extra)
        except click.UsageError as exc:
            one_line_usage(exc, self.prefix)

    def prepare(self, args: list[str]) -> list[str]:
        """The arguments as the command parses them (``bench``: old flags rewritten)."""
        return args


def once(hint: str) -> Any:
    """A click callback for an option declared ``multiple=True`` that must be given once:
    its value (None when not given); given several times, a usage error saying ``hint``.
    click keeps the last of a repeated option silently, and ``-d a=1 -d b=2`` would
    send ``b=2`` alone where curl sends ``a=1&b=2``."""

    def check(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> str | None:
        if len(values) > 1:
            raise click.BadParameter(f"given {len(values)} times: {hint}", ctx, param)
        return values[0] if values else None

    return check


#: ``-d``: one body; curl joins several with ``&``, which a template or JSON body would
#: not want: refused, with what to write.
ONE_BODY = "one body is sent (curl joins several -d with '&': write -d 'a=1&b=2')"


url_option = click.option(
    "--url",
    default="{url}",
    metavar="TEMPLATE",
    show_default=True,
    help="URL template; {column} is replaced by the row's value, percent-encoded for where "
    "it lands ({+column}: raw, for values that are URL syntax).",
)
# -u is user:password, as in curl, wget and httpie; it used to be the URL, and a -u
# value that is a URL (template) is still read as one, with a warning (see url_from_user).
user_option = click.option(
    "-u",
    "--user",
    default=None,
    metavar="USER:PASSWORD",
    help="Basic authentication, as curl's -u: sent as an Authorization header, never printed.",
)
format_option = click.option(
    "--format",
    "input_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Input format [default: from the extension].",
)
encoding_option = click.option(
    "--encoding", default="utf-8", show_default=True, metavar="NAME", help="Input text encoding."
)
connect_timeout_option = click.option(
    "--connect-timeout",
    type=click.FloatRange(0.001),
    metavar="SECONDS",
    default=Timeouts().connect,
    show_default=True,
    help="Seconds to open a connection.",
)
insecure_option = click.option(
    "-k", "--insecure", is_flag=True, help="Do not verify TLS certificates."
)


def column_list(values: Sequence[str], option: str) -> list[str]:
    """Column names from a repeatable, comma-separated option (``--keep a,b --keep c``).

    A name that holds a comma is written in double quotes, as in a CSV header
    and as xsv's column selections take it: ``--keep '"lat, lon",city'``; a quote
    inside it is doubled, as in CSV. A quoted name is taken exactly
    (spaces kept); an unquoted one is stripped of spaces around it, and empty
    ones are skipped, as before quoting existed. A quote that does not start a
    name is an ordinary character (``a"b``).
    """
    out: list[str] = []
    for value in values:
        i, n = 0, len(value)
        while i <= n:
            start = i
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                name, i = _quoted_name(value, i, option)
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] != ",":
                    raise UsageError(
                        f"{option} {value!r}: text after the quoted name {name!r}; "
                        "separate names with commas"
                    )
                out.append(name)
            else:
                end = value.find(",", i)
                i = n if end == -1 else end
                name = value[start:i].strip()
                if name:
                    out.append(name)
            i += 1  # past the comma
    return out


def _quoted_name(value: str, i: int, option: str) -> tuple[str, int]:
    """The name quoted at ``value[i]`` (a ``"``) and the position after its closing quote."""
    parts: list[str] = []
    j = i + 1
    while True:
        end = value.find('"', j)
        if end == -1:
            raise UsageError(
                f"{option} {value!r}: the quote at position {i} is not closed "
                '(a name with a comma is written "a,b"; a quote in it is doubled)'
            )
        parts.append(value[j:end])
        if value.startswith('""', end):
            parts.append('"')
            j = end + 2
            continue
        return "".join(parts), end + 1


def read_data(
    data: str | None, option: str = "--data", one: str | None = None
) -> str | bytes | None:
    """``--data`` (or ``--json``, named by ``option``): the text itself, or the bytes of
    a file given as ``@path``. ``one``: the command that reads one file for every request
    (``bench``, ``compare``), which a path with a placeholder then sends to ``run``."""
    if data is not None and data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            per_row = ""
            if "{" in data:
                per_row = f" (a file per row is --data-file {data[1:]!r})"
                if one is not None:
                    per_row = f" ({one}: a file per row is drumfire run --data-file {data[1:]!r})"
            raise UsageError(
                f"cannot read {option} file {data[1:]!r}: {exc.strerror or exc}{per_row}"
            ) from None
    return data


def write_report(path: str, option: str, data: bytes, command: str) -> bool:
    """Write the report of ``bench --json/--html`` or ``compare``'s; a failure met now,
    after the run (a disk that filled up), is one line on stderr and False."""
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        click.echo(
            f"{command}: error: cannot write {option} {path!r}: {exc.strerror or exc}", err=True
        )
        return False
    return True


def to_stdout(write: Callable[[], object], command: str) -> bool:
    """Call ``write``, which prints a summary on standard output; a failure (a closed
    pipe: ``| head``, a full disk) is one line on stderr and False, not a traceback, as
    for ``run``'s rows (see ``GuardedSink``)."""
    try:
        try:
            write()
            if sys.stdout is not None:  # None: closed (``>&-``), the summary is not wanted
                sys.stdout.flush()
        except SystemExit:  # rich's Console exits on a broken pipe: the reports are not written
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)) from None
    except OSError as exc:
        why = exc.strerror or exc
        click.echo(f"{command}: error: cannot write to standard output: {why}", err=True)
        with contextlib.suppress(OSError, AttributeError, ValueError):
            # Python would report the same broken pipe again when it exits.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return False
    return True


def seconds_option(option: str, seconds: float) -> float:
    """``--timeout``, ``--connect-timeout``: click's FloatRange lets ``nan`` and ``inf``
    through, which the API's checks would refuse naming their keyword, not the option."""
    if not math.isfinite(seconds):
        raise UsageError(f"{option} {seconds}: give a number of seconds above 0 (5 or 2.5)")
    return seconds


def warn(message: str, command: str = "drumfire") -> None:
    """A one-line warning on stderr (a deprecated flag, a choice made for the user)."""
    click.echo(f"{command}: warning: {message}", err=True)


def looks_like_url(text: str) -> bool:
    """A URL or URL template (``http://…``, ``{url}``), not ``user:password``."""
    return "://" in text or text.startswith("{")


def url_from_user(user: str | None, url_given: bool, command: str = "drumfire") -> str | None:
    """The URL when ``-u`` was given one, as before ``-u`` meant user:password (deprecated)."""
    if user is None or not looks_like_url(user):
        return None
    if url_given:
        raise UsageError("-u is USER:PASSWORD now, as in curl; the URL goes in --url only")
    warn("-u for the URL is deprecated: write --url (-u is now USER:PASSWORD, as in curl)", command)
    return user


def basic_auth_header(user: str, headers: Sequence[str]) -> str:
    """``-u USER:PASSWORD`` as the header curl sends (RFC 7617); the value is never echoed."""
    if ":" not in user:
        raise UsageError("-u/--user: write USER:PASSWORD (a batch cannot prompt for a password)")
    if any(re.match(r"\s*authorization\s*:", h, re.IGNORECASE) for h in headers):
        raise UsageError(
            "-u/--user and an Authorization header (-H) both give credentials: keep one"
        )
    token = binascii.b2a_base64(user.encode("utf-8"), newline=False).decode("ascii")
    return f"Authorization: Basic {token}"


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (by any path to it; one that does
    not exist yet by its resolved path)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def separate_reports(json_path: str | None, html_path: str | None, rows: str | None) -> None:
    """``--json`` and ``--html`` of bench and compare: one file for both would keep the
    HTML alone, written last; the input's file (``rows``) would lose its rows."""
    if json_path is not None and html_path is not None and same_file(json_path, html_path):
        raise UsageError(
            f"--json and --html name one file, {json_path!r}: the HTML would replace the JSON; "
            "give each its own path"
        )
    for path, option in ((json_path, "--json"), (html_path, "--html")):
        if path is not None and rows is not None and rows != "-" and same_file(path, rows):
            raise UsageError(
                f"{option} {path!r} is the input: the report would replace its rows; "
                "give it a path of its own"
            )


def report_path(path: str | None) -> str | None:
    """``--json PATH`` of bench and compare: the report's file, which ``run --json`` is not.

    ``run --json BODY`` is curl's JSON body (``@FILE``: read from a file); given to ``bench``
    or ``compare``, such a value would send no body and write the report to a file named like
    the JSON (or ``@FILE``): refused. A report whose name starts with ``@`` can be written
    ``./@name``.
    """
    if path is not None and path.lstrip()[:1] in ("{", "[", "@"):
        raise UsageError(
            "--json PATH is where the report goes (here it is not curl's --json body): "
            "for a JSON body write -d 'BODY' or -d @FILE (sent as application/json when it "
            "starts with { or [)"
        )
    return path


def hide_secrets(argv: Sequence[str]) -> list[str]:
    """``argv`` for a command to paste: header values, -u and URL user info shown as ``***``.

    Header values are never echoed (they hold tokens), so the hint has the user put them back.
    """
    shown: list[str] = []
    header_next = user_next = False
    for arg in argv:
        if header_next or (arg.startswith(("--header=", "-H")) and arg != "-H"):
            prefix = "" if header_next else arg[: 9 if arg.startswith("--header=") else 2]
            name, colon, _ = arg[len(prefix) :].partition(":")
            arg = f"{prefix}{name}: ***" if colon else f"{prefix}***"
            header_next = False
        elif arg in ("-H", "--header"):
            header_next = True
        elif user_next or (arg.startswith(("--user=", "-u")) and arg != "-u"):
            prefix = "" if user_next else arg[: 7 if arg.startswith("--user=") else 2]
            value = arg[len(prefix) :]
            # the old -u URL: shown as any URL is, without its user info
            arg = prefix + (shown_url(value) if looks_like_url(value) else "***")
            user_next = False
        elif arg in ("-u", "--user"):
            user_next = True
        elif "://" in arg:
            arg = shown_url(arg)
        shown.append(arg)
    return shown


def old_quiet(args: list[str]) -> list[str]:
    """A ``-q`` with no value after it is the quiet flag of before -q was the rate."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "-q" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            warn("-q for quiet is deprecated: write --quiet (-q is now the rate)", "drumfire bench")
            out[i] = "--quiet"
    return out

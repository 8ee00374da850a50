"""Pieces the ``drumfire`` commands share: click settings, common options, ``@file`` bodies.

``run``, ``bench`` and ``compare`` read the same kind of input through the same
templates, so the options that mean the same thing are declared once here.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._errors import UsageError
from ._settings import Timeouts
from ._sources import FORMATS

__all__ = [
    "CONTEXT",
    "connect_timeout_option",
    "encoding_option",
    "format_option",
    "insecure_option",
    "read_data",
    "url_option",
]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

url_option = click.option(
    "-u",
    "--url",
    default="{url}",
    show_default=True,
    help="URL template; {column} is replaced by the row's value, percent-encoded for where "
    "it lands ({+column}: raw, for values that are URL syntax).",
)
format_option = click.option(
    "--format",
    "input_format",
    type=click.Choice(FORMATS),
    default=None,
    help="Input format [default: from the extension].",
)
encoding_option = click.option(
    "--encoding", default="utf-8", show_default=True, help="Input text encoding."
)
connect_timeout_option = click.option(
    "--connect-timeout",
    type=click.FloatRange(0.001),
    default=Timeouts().connect,
    show_default=True,
    help="Seconds to open a connection.",
)
insecure_option = click.option(
    "-k", "--insecure", is_flag=True, help="Do not verify TLS certificates."
)


def read_data(data: str | None) -> str | bytes | None:
    """``--data``: the text itself, or the bytes of a file given as ``@path``."""
    if data is not None and data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read --data file {data[1:]!r}: {exc.strerror or exc}"
            ) from None
    return data

"""``drumfire serve`` and ``drumfire demo``: the demo server, and the main job run against it.

Registered on the ``drumfire`` group by :mod:`drumfire.cli`, imported only when used.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import NoReturn

import click

from .._cli_common import CONTEXT, OneLineErrors
from .._job import make_job
from .._sinks import open_sink
from .._sources import open_source
from .._text import counted

__all__ = ["demo_command", "serve_command"]


def _fail(message: str) -> NoReturn:
    click.echo(f"drumfire: error: {message}", err=True)
    sys.exit(2)


def _seconds(option: str, value: float) -> float:
    """A delay option: a finite number of seconds, 0 or more (one line naming it, else)."""
    if not (math.isfinite(value) and value >= 0):
        _fail(f"{option}: give a number of seconds, 0 or more (not {value:g})")
    return value


@click.command("serve", cls=OneLineErrors, context_settings=CONTEXT)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="Address to listen on.",
)
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    metavar="N",
    help="Port to listen on.",
)
@click.option(
    "--latency",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds added to every answer.",
)
@click.option(
    "--jitter",
    type=float,
    default=0.0,
    metavar="SECONDS",
    show_default=True,
    help="Up to this many seconds more, at random.",
)
def serve_command(host: str, port: int, latency: float, jitter: float) -> None:
    """Run the demo server: routes shaped like the OSRM routing server's
    (/route/v1/driving/...), /quote, /echo, /status/N, and /json (one fixed
    answer, for throughput tests)."""
    from .server import run_server

    latency, jitter = _seconds("--latency", latency), _seconds("--jitter", jitter)
    shown = f"[{host}]" if ":" in host else host

    def ready(bound: int) -> None:
        click.echo(f"drumfire: demo server listening on http://{shown}:{bound} (Ctrl-C to stop)")

    try:
        run_server(host, port, latency=latency, jitter=jitter, ready=ready)
    except OSError as exc:  # a busy port, an address not on this machine, a privileged port
        _fail(f"cannot listen on {shown}:{port}: {exc.strerror or exc}")


@click.command("demo", cls=OneLineErrors, context_settings=CONTEXT)
@click.option(
    "-n",
    "--rows",
    type=click.IntRange(1, 10_000_000),
    metavar="N",
    default=20_000,
    show_default=True,
    help="Rows in the sample input.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="drumfire-demo",
    show_default=True,
    help="Where to write the sample input and the results.",
)
@click.option(
    "--latency",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds the demo server adds to every answer.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=None,
    metavar="N",
    help="Fixed concurrency [default: adaptive, as drumfire run].",
)
def demo_command(rows: int, directory: str, latency: float, concurrency: int | None) -> None:
    """Start the demo server, write a sample input of routes, send it with drumfire run,
    and show the results."""
    from .._batch import execute
    from .server import DemoServer, write_sample_routes

    latency = _seconds("--latency", latency)
    folder = Path(directory)
    routes = folder / "routes.csv"
    results = folder / "results.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_sample_routes(routes, rows)
    except OSError as exc:  # a missing parent on a read-only file system, a full disk
        _fail(f"cannot write the sample input in {directory!r}: {exc.strerror or exc}")
    with DemoServer(latency=latency) as server:
        url = server.base_url + "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}?overview=false"
        click.echo(f"demo server: {server.base_url}", err=True)
        click.echo(f"input: {routes} ({counted(rows, 'origin-destination pair')})", err=True)
        click.echo(
            f"running: drumfire run {routes} --url '{url}' -e code=code "
            f"-e 'duration=routes[0].duration' -e 'distance=routes[0].distance' "
            + (f"-c {concurrency} " if concurrency else "")
            + f"-o {results}\n",
            err=True,
        )
        job = make_job(
            url,
            extract={
                "code": "code",
                "duration": "routes[0].duration",
                "distance": "routes[0].distance",
            },
            concurrency=concurrency,
        )
        source = open_source(str(routes))
        sink = open_sink(str(results), None, ["code", "duration", "distance"], [])
        _, code = execute(job, source, sink, output_label=str(results))
    if code == 0:
        with results.open(encoding="utf-8") as f:
            head = [next(f, "").rstrip("\n") for _ in range(4)]
        click.echo("\nfirst rows of " + str(results) + ":\n  " + "\n  ".join(head), err=True)
    sys.exit(code)

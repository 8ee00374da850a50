"""Machine facts, the measurement rounds (tools alternated in the same minute),
the summary table and JSON report, and the command-line arguments shared by
``bench_nginx.py`` and ``bench_osrm.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _clients import aiohttp_argv, drumfire_argv, drumfire_available, pipelined_argv, python_env
from _inputs import ALL_TOOLS, SRC_DIR, read_output_csv
from _measure import DEFAULT_RUN_TIMEOUT_S, proc_cpu_seconds, run_measured, system_busy_seconds
from _wrk import run_wrk

__all__ = [
    "Measurement",
    "add_common_arguments",
    "client_runner",
    "drumfire_usable",
    "exit_on_signals",
    "format_table",
    "machine_info",
    "measure_client",
    "measure_wrk",
    "parse_tools",
    "preflight",
    "report",
    "run_rounds",
    "start",
    "summarize",
    "write_json",
]

# --------------------------------------------------------------------------- machine facts


def _first_line(argv: Sequence[str]) -> str:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    return ((cp.stdout or "") + (cp.stderr or "")).strip().splitlines()[0]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "nginx": _first_line(["nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
    }


# --------------------------------------------------------------------------- rounds and report


@dataclasses.dataclass
class Measurement:
    """One tool, one round."""

    tool: str
    requests: int
    wall_s: float
    requests_per_s: float
    client_cpu_s: float
    client_maxrss_kib: int
    server_cpu_s: float
    ok: bool
    detail: str = ""
    machine_busy_s: float = 0.0
    latency_ms: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def client_cpu_us_per_request(self) -> float:
        return self.client_cpu_s / max(self.requests, 1) * 1e6

    @property
    def server_cpu_pct(self) -> float:
        return 100.0 * self.server_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def other_cpu_pct(self) -> float:
        """CPU used by anything but client and server during the run (100 % = one core)."""
        other = self.machine_busy_s - self.client_cpu_s - self.server_cpu_s
        return max(0.0, 100.0 * other / self.wall_s) if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["client_cpu_us_per_request"] = round(self.client_cpu_us_per_request, 2)
        d["server_cpu_pct"] = round(self.server_cpu_pct, 1)
        d["other_cpu_pct"] = round(self.other_cpu_pct, 1)
        return d


def measure_wrk(
    base_url: str,
    paths_file: Path,
    duration_s: float,
    workdir: Path,
    server_pids: Sequence[int],
    *,
    allow_errors: bool = False,
) -> Measurement:
    """One wrk run.  ``allow_errors``: non-2xx answers and socket errors (a server
    that closes keep-alive connections) are only reported, not a failure."""
    before, busy = proc_cpu_seconds(server_pids), system_busy_seconds()
    res = run_wrk(base_url, paths_file, duration_s=duration_s, workdir=workdir)
    server_cpu = proc_cpu_seconds(server_pids) - before
    busy = system_busy_seconds() - busy
    errors = res.non_2xx + sum(res.socket_errors.values())
    detail = ""
    if errors:
        detail = f"non-2xx {res.non_2xx} of {res.requests}"
        if any(res.socket_errors.values()):
            detail += f", socket errors {res.socket_errors}"
    return Measurement(
        tool="wrk",
        requests=res.requests,
        wall_s=res.duration_s,
        requests_per_s=res.requests_per_s,
        client_cpu_s=res.run.cpu_s,
        client_maxrss_kib=res.run.maxrss_kib,
        server_cpu_s=server_cpu,
        ok=errors == 0 or allow_errors,
        detail=detail,
        machine_busy_s=busy * res.duration_s / res.run.wall_s,  # wrk's start-up excluded
        latency_ms={"avg": res.latency_avg_ms, **res.latency_percentiles_ms},
    )


def measure_client(
    tool: str,
    argv: Sequence[str],
    output_csv: Path,
    expected_rows: int,
    server_pids: Sequence[int],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    allow_failed_rows: bool = False,
) -> Measurement:
    """Run one batch client; requests/s = rows / wall time of the whole process.

    The run is valid when the output has exactly ``expected_rows`` rows, each
    with status 200 and an empty ``error`` column (when there is one).  With
    ``allow_failed_rows`` (a real server may answer 400 NoRoute) other statuses
    are only counted in ``detail``, and the client's non-zero exit is tolerated.
    """
    output_csv.unlink(missing_ok=True)
    before, busy = proc_cpu_seconds(server_pids), system_busy_seconds()
    run = run_measured(argv, env=env, timeout_s=timeout_s)
    server_cpu = proc_cpu_seconds(server_pids) - before
    busy = system_busy_seconds() - busy
    exit_info = f"exit {run.returncode}: " + (run.stderr or run.stdout).strip()[-300:]
    ok, detail = True, ""
    if run.timed_out:
        ok, detail = False, f"timed out after {timeout_s:g}s"
    elif not output_csv.exists():
        ok, detail = False, f"no output file; {exit_info}"
    else:
        header, rows = read_output_csv(output_csv)
        status_col = next((c for c in ("status", "http_status", "status_code") if c in header), "")
        bad = sum(1 for r in rows if (status_col and r[status_col] != "200") or r.get("error"))
        if len(rows) != expected_rows:
            ok, detail = False, f"{len(rows)} output rows, expected {expected_rows}; {exit_info}"
        elif bad:
            ok = allow_failed_rows
            detail = f"{bad} of {len(rows)} rows not 200 / with an error"
        elif run.returncode != 0:
            ok, detail = False, exit_info
        elif not status_col:
            detail = f"no status column in {header}"
    return Measurement(
        tool=tool,
        requests=expected_rows,
        wall_s=run.wall_s,
        requests_per_s=expected_rows / run.wall_s,
        client_cpu_s=run.cpu_s,
        client_maxrss_kib=run.maxrss_kib,
        server_cpu_s=server_cpu,
        ok=ok,
        detail=detail,
        machine_busy_s=busy,
    )


def exit_on_signals() -> None:
    """Turn SIGTERM / SIGHUP into SystemExit, so that ``with`` blocks stop the
    servers and :func:`run_measured` kills its child on the way out."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def parse_tools(text: str) -> list[str]:
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(ALL_TOOLS))
    if unknown or not tools:
        raise SystemExit(f"--tools: unknown {unknown}; choose from {','.join(ALL_TOOLS)}")
    return list(dict.fromkeys(tools))


def preflight(
    tools: Sequence[str],
    client: Callable[[str, Path, int, float], Measurement],
    input_csv: Path,
    workdir: Path,
    rows: int = 200,
    timeout_s: float = 60.0,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Run each batch client once on the first ``rows`` rows; drop the ones that fail.

    It catches a broken client in seconds instead of after a full run, and
    warms the page cache for the interpreter and its imports.
    """
    small = workdir / "preflight.csv"
    with input_csv.open() as src, small.open("w") as dst:
        n = -1  # the header is not a row
        for line in src:
            if n >= rows:
                break
            dst.write(line)
            n += 1
    kept = []
    for tool in tools:
        if tool == "wrk":
            kept.append(tool)
            continue
        m = client(tool, small, n, timeout_s)
        if m.ok:
            kept.append(tool)
            log(f"preflight {tool}: ok ({n} rows in {m.wall_s:.2f}s)")
        else:
            log(f"preflight {tool}: FAILED, left out of the rounds: {m.detail}")
    return kept


def run_rounds(
    tools: Sequence[str],
    rounds: int,
    runners: Mapping[str, Callable[[], Measurement]],
    *,
    max_other_cpu_pct: float | None = None,
    retries: int = 2,
    pause_s: float = 1.0,
    log: Callable[[str], None] = print,
) -> dict[str, list[Measurement]]:
    """Run every tool once per round; the order rotates each round to spread drift.

    On a shared machine, a measurement during which other processes used more
    than ``max_other_cpu_pct`` of a core is disturbed: it is run again (up to
    ``retries`` times, after a pause); the last try is kept either way.
    """
    results: dict[str, list[Measurement]] = {t: [] for t in tools}
    for r in range(rounds):
        order = list(tools[r % len(tools) :]) + list(tools[: r % len(tools)])
        for tool in order:
            for attempt in range(retries + 1):
                m = runners[tool]()
                disturbed = max_other_cpu_pct is not None and m.other_cpu_pct > max_other_cpu_pct
                if not m.ok:
                    flag = f"  FAILED: {m.detail}"
                else:
                    flag = f"  note: {m.detail}" * bool(m.detail)
                if disturbed:
                    again = attempt < retries
                    flag += "  (disturbed: run again)" if again else "  (disturbed: kept)"
                log(
                    f"round {r + 1}/{rounds} {tool:<9} {m.requests_per_s:>10,.0f} req/s"
                    f"  wall {m.wall_s:6.2f}s"
                    f"  client CPU {m.client_cpu_us_per_request:6.1f} µs/req"
                    f"  server CPU {m.server_cpu_pct:5.1f}%"
                    f"  other CPU {m.other_cpu_pct:5.1f}%{flag}"
                )
                time.sleep(pause_s * (1 + 4 * disturbed))
                if not disturbed:
                    break
            results[tool].append(m)
    return results


def summarize(results: Mapping[str, list[Measurement]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for tool, ms in results.items():
        good = [m for m in ms if m.ok] or ms
        summary[tool] = {
            "rounds_req_per_s": [round(m.requests_per_s, 1) for m in ms],
            "median_req_per_s": round(statistics.median(m.requests_per_s for m in good), 1),
            "median_client_cpu_us_per_request": round(
                statistics.median(m.client_cpu_us_per_request for m in good), 2
            ),
            "max_client_rss_mib": round(max(m.client_maxrss_kib for m in ms) / 1024, 1),
            "median_server_cpu_pct": round(statistics.median(m.server_cpu_pct for m in good), 1),
            "max_other_cpu_pct": round(max(m.other_cpu_pct for m in ms), 1),
            "all_ok": all(m.ok for m in ms),
            "errors": [m.detail for m in ms if not m.ok],
            "notes": sorted({m.detail for m in ms if m.ok and m.detail}),
        }
    ref = summary.get("wrk", {}).get("median_req_per_s")
    for s in summary.values():
        s["ratio_to_wrk"] = round(s["median_req_per_s"] / ref, 3) if ref else None
    if "drumfire" in summary and "aiohttp" in summary:
        summary["drumfire"]["ratio_to_aiohttp"] = round(
            summary["drumfire"]["median_req_per_s"] / summary["aiohttp"]["median_req_per_s"], 3
        )
    return summary


def format_table(summary: Mapping[str, Mapping[str, Any]], rounds: int) -> str:
    headers = [
        "tool",
        *(f"round {i + 1}" for i in range(rounds)),
        "median req/s",
        "vs wrk",
        "client CPU µs/req",
        "client max RSS MiB",
        "server CPU %",
        "other CPU % (max)",
    ]
    lines = []
    for tool, s in summary.items():
        per_round = [f"{v:,.0f}" for v in s["rounds_req_per_s"]]
        per_round += [""] * (rounds - len(per_round))
        ratio = s["ratio_to_wrk"]
        lines.append(
            [
                tool + ("" if s["all_ok"] else " (!)"),
                *per_round,
                f"{s['median_req_per_s']:,.0f}",
                f"{ratio:.2f}x" if ratio is not None else "-",
                f"{s['median_client_cpu_us_per_request']:.1f}",
                f"{s['max_client_rss_mib']:.0f}",
                f"{s['median_server_cpu_pct']:.0f}",
                f"{s['max_other_cpu_pct']:.0f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(headers)]
    out = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        ),
    ]
    out.append("  ".join("-" * w for w in widths))
    for row in lines:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if "drumfire" in summary and "ratio_to_aiohttp" in summary["drumfire"]:
        out.append(f"drumfire / aiohttp: {summary['drumfire']['ratio_to_aiohttp']:.2f}x")
    return "\n".join(out)


def client_runner(
    work: Path,
    drumfire_cmd: Sequence[str],
    template: str,
    extracts: Sequence[str],
    field: str,
    args: argparse.Namespace,
    pids: Sequence[int],
    *,
    allow_failed_rows: bool = False,
) -> Callable[[str, Path, int, float], Measurement]:
    """``client(tool, csv_in, n, timeout_s)``: one measured run of drumfire, aiohttp,
    pipelined or base.

    drumfire runs with ``--drumfire-args``, extracting ``extracts``; the aiohttp and
    pipelined clients extract ``field``; tool "base" is the drumfire CLI of ``--base-cmd``
    (another checkout), run as drumfire is. Each writes ``work/out_TOOL.csv``.
    """
    py_env = python_env([SRC_DIR])
    commands = {"drumfire": drumfire_cmd}
    if args.base_cmd:
        commands["base"] = shlex.split(args.base_cmd)

    def client(tool: str, csv_in: Path, n: int, timeout_s: float) -> Measurement:
        out = work / f"out_{tool}.csv"
        if tool in commands:
            argv = drumfire_argv(
                commands[tool], csv_in, template, extracts, out, shlex.split(args.drumfire_args)
            )
        elif tool == "pipelined":
            argv = pipelined_argv(csv_in, template, field, out)
        else:
            argv = aiohttp_argv(csv_in, template, field, out, args.aiohttp_concurrency)
        return measure_client(
            tool,
            argv,
            out,
            n,
            pids,
            env=py_env,
            timeout_s=timeout_s,
            allow_failed_rows=allow_failed_rows,
        )

    return client


def report(
    benchmark: str,
    size: tuple[str, int],
    args: argparse.Namespace,
    results: Mapping[str, list[Measurement]],
    *,
    machine: Mapping[str, Any],
    tools: Sequence[str],
    requested: Sequence[str],
    config: Mapping[str, Any],
) -> int:
    """Print the table (and write ``--json``) for one benchmark; return its exit status.

    ``size`` is the run's size, e.g. ``("requests", 200000)``; ``config`` adds the
    benchmark's own settings to those every benchmark has. The status is 0 when
    every requested tool ran and every run was clean, else 1.
    """
    summary = summarize(results)
    print()
    print(
        f"{benchmark}, {size[1]} requests per client run, {args.rounds} rounds, "
        f"wrk -t1 -c8 -d{args.wrk_duration:g}s, aiohttp -c {args.aiohttp_concurrency}, "
        f"drumfire {args.drumfire_args or 'defaults'}"
    )
    print(format_table(summary, args.rounds))
    if args.json:
        write_json(
            args.json,
            {
                "benchmark": benchmark.lower(),
                "machine": dict(machine),
                "config": {
                    size[0]: size[1],
                    "rounds": args.rounds,
                    "tools": list(tools),
                    "max_other_cpu_pct": args.max_other_cpu,
                    "wrk": f"-t1 -c8 -d{args.wrk_duration:g}s",
                    "aiohttp_concurrency": args.aiohttp_concurrency,
                    **config,
                    "drumfire_args": args.drumfire_args,
                },
                "summary": summary,
                "rounds": {t: [m.as_dict() for m in ms] for t, ms in results.items()},
            },
        )
        print(f"figures written to {args.json}")
    complete = set(summary) == set(requested)
    return 0 if complete and all(s["all_ok"] for s in summary.values()) else 1


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options bench_nginx.py and bench_osrm.py share."""
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--tools", default=",".join(ALL_TOOLS), help="subset of wrk,drumfire,aiohttp,pipelined"
    )
    p.add_argument("--wrk-duration", type=float, default=10.0, help="seconds per wrk run (10)")
    p.add_argument("--aiohttp-concurrency", type=int, default=8)
    p.add_argument(
        "--drumfire-cmd",
        default=None,
        help="command that starts the drumfire CLI (default: this checkout's src)",
    )
    p.add_argument(
        "--drumfire-args",
        default="",
        help="extra drumfire run options, e.g. '-c 8' (default: none, drumfire's defaults)",
    )
    p.add_argument(
        "--run-timeout", type=float, default=600.0, help="kill a client run after this (600 s)"
    )
    p.add_argument(
        "--max-other-cpu",
        type=float,
        default=30.0,
        help="re-run (twice at most) a measurement during which other processes used more "
        "than this %% of a core (30; -1 to never re-run)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    p.add_argument("--keep", type=Path, default=None, help="keep inputs/outputs in this dir")
    p.add_argument(
        "--base-cmd",
        default=None,
        help="also measure another drumfire CLI, e.g. main's checkout: "
        "\"env PYTHONPATH=../main/src python -c 'from drumfire.cli import entry; entry()'\"; "
        "it runs as tool 'base' in the same rounds (an A/B in one run)",
    )


def start(args: argparse.Namespace) -> list[str]:
    """After parsing: normalise the shared options, install signal handling; the tools
    (with "base" last when ``--base-cmd`` asks for the A/B, right after drumfire)."""
    if args.max_other_cpu < 0:
        args.max_other_cpu = None
    exit_on_signals()
    tools = parse_tools(args.tools)
    return [*tools, "base"] if args.base_cmd else tools


def drumfire_usable(cmd: Sequence[str]) -> bool:
    """Whether the drumfire CLI starts; says why not on stderr.

    This checkout's ``src`` is byte-compiled first. An installed drumfire has
    its ``.pyc`` files (pip writes them; a first run of an editable install
    does), but with ``PYTHONDONTWRITEBYTECODE`` set, as on the machine of
    docs/benchmarks.md, every run would compile the changed modules again:
    about 40 ms of start-up that no user pays.
    """
    import compileall

    compileall.compile_dir(str(SRC_DIR / "drumfire"), quiet=1)
    ok, why = drumfire_available(cmd)
    if not ok:
        last = why.splitlines()[-1] if why else ""
        print(f"drumfire CLI not usable ({last}); see --tools", file=sys.stderr)
    return ok

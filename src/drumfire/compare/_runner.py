"""Running the comparison: read the rows once, run each strategy in a fresh process, compare."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .._errors import InputError, UsageError
from .._extract import Extractor
from .._request import RequestPlan
from .._rows import InputProblem
from .._sources import TEXT_FORMATS, Source, open_source, rows_source
from ._report import CompareReport, StrategyReport
from .strategies import EXTRA_HINT, STRATEGIES, Strategy, get, missing_modules
from .strategies._common import ID_KEY

__all__ = [
    "DEFAULT_CONCURRENCY",
    "STRATEGY_NAMES",
    "CompareStopped",
    "compare",
    "parse_strategies",
]

STRATEGY_NAMES: tuple[str, ...] = tuple(s.name for s in STRATEGIES)
DEFAULT_CONCURRENCY = 8

Progress = Callable[[str, StrategyReport | None], None]
_Key = tuple[int | None, Any]


def parse_strategies(names: str | Sequence[str] | None) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` → checked names in the order given; None means all."""
    if names is None:
        return list(STRATEGY_NAMES)
    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name not in STRATEGY_NAMES:
            raise UsageError(f"unknown strategy {name!r} (choose from {', '.join(STRATEGY_NAMES)})")
        if name not in out:
            out.append(name)
    if not out:
        raise UsageError("no strategy named; choose from " + ", ".join(STRATEGY_NAMES))
    return out


def _extract_pairs(
    extract: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    if extract is None:
        return []
    if isinstance(extract, Mapping):
        return [(str(k), str(v)) for k, v in extract.items()]
    return [(str(k), str(v)) for k, v in extract]


def _id_column(source: Source, id_column: str | None) -> str | None:
    if id_column is not None:
        if source.columns is not None and id_column not in source.columns:
            raise UsageError(f"--id names column {id_column!r}, which the input does not have")
        return id_column
    if source.columns is None or "id" in source.columns:
        return "id"
    return None


def _load_rows(
    source: Source, id_column: str | None, limit: int | None
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The rows to send (each with its comparison key), their ids, and unreadable rows left out."""
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    skipped = 0
    try:
        for line, row in source.items:
            if limit is not None and len(rows) + skipped >= limit:
                break  # a bad line counts, as with drumfire run -n (it gets its row there)
            if isinstance(row, InputProblem):
                skipped += 1
                continue
            value = row.get(id_column) if id_column is not None else None
            ids.append(str(line) if value is None or value == "" else str(value))
            item = dict(row)
            item[ID_KEY] = str(len(rows) + 1)
            rows.append(item)
    finally:
        if source.close is not None:
            source.close()
    return rows, ids, skipped


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the worker and any pool processes it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run_worker(
    strategy: Strategy, task: dict[str, Any], folder: Path, python: str, timeout: float | None
) -> dict[str, Any]:
    task_path = folder / f"task-{strategy.name}.json"
    out_path = folder / f"out-{strategy.name}.json"
    task = {**task, "strategy": strategy.name, "out": str(out_path)}
    task_path.write_bytes(orjson.dumps(task))
    cmd = [python, "-m", "drumfire.compare.worker", str(task_path)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return {"error": f"did not finish within {timeout:g} s"}
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0 or not out_path.exists():
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        detail = " | ".join(tail) or f"exit status {proc.returncode}"
        return {"error": f"the worker failed: {detail}"[:500]}
    result: dict[str, Any] = orjson.loads(out_path.read_bytes())
    out_path.unlink()
    return result


def _show(key: _Key | None) -> str:
    if key is None:
        return "no row"
    status, fields = key
    text = "no response" if status is None else str(status)
    if fields:
        text += " " + orjson.dumps(fields).decode()
    return text


def _outcomes(result: dict[str, Any]) -> tuple[dict[str, _Key], int]:
    """A run's outcomes by comparison key, and how many keys came more than once."""
    got: dict[str, _Key] = {}
    duplicates = 0
    for id_, status, fields, _error in result["outcomes"]:
        if id_ in got:
            duplicates += 1
        # Without -e, drumfire's rows have an empty fields dict (a Result always has
        # one) and the other strategies' None: both mean "no fields".
        got[id_] = (status, fields or None)
    return got, duplicates


def copy_figures(report: StrategyReport, result: dict[str, Any]) -> None:
    """Copy one run's figures into ``report``."""
    statuses: Counter[str] = Counter()
    report.ok = report.failed = 0
    for _id, status, _fields, error in result["outcomes"]:
        statuses["none" if status is None else str(status)] += 1
        if error:
            report.failed += 1
        elif status is not None and 200 <= status < 300:
            report.ok += 1
    report.rows = len(result["outcomes"])
    report.wall_s = float(result["wall_s"])
    report.cpu_s = float(result["cpu_user_s"]) + float(result["cpu_sys_s"])
    report.peak_rss_mb = int(result["peak_rss_kb"]) / 1024.0
    report.processes = int(result["processes"])
    report.statuses = dict(sorted(statuses.items()))


def count_mismatches(
    result: dict[str, Any], keys: list[str], ids: list[str], reference: dict[str, _Key] | None
) -> tuple[int, dict[str, Any] | None]:
    """Rows of ``result`` that differ from ``reference`` (or are missing, extra, repeated)."""
    got, mismatches = _outcomes(result)
    example: dict[str, Any] | None = None
    for index, key in enumerate(keys):
        mine = got.get(key)
        expected = reference.get(key) if reference is not None else mine
        if mine is not None and mine == expected:
            continue
        mismatches += 1
        if example is None:
            example = {
                "row": int(key),
                "id": ids[index],
                "expected": _show(expected),
                "got": _show(mine),
            }
    mismatches += len(set(got) - set(keys))
    return mismatches, example


class CompareStopped(KeyboardInterrupt):
    """:func:`compare` was interrupted (Ctrl-C; SIGTERM on the command line) while the
    strategies ran: ``report`` holds those that ran to the end (the one running stopped,
    the rest not run). A KeyboardInterrupt, so that code catching that still does."""

    def __init__(self, report: CompareReport) -> None:
        super().__init__("the comparison was stopped")
        self.report = report


def _header_pairs(headers: Sequence[str] | Mapping[str, str] | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    pairs = []
    for number, line in enumerate(headers, 1):
        name, sep, value = line.partition(":")
        if not sep or not name.strip():  # never the text: it may be a credential
            raise UsageError(f"header {number} is not in the form 'Name: value'")
        pairs.append((name.strip(), value.strip()))
    return pairs


def _median_run(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (of two middle ones, the faster)."""
    ranked = sorted(found, key=lambda r: float(r["wall_s"]))
    return ranked[(len(ranked) - 1) // 2]


def compare(
    rows: str | os.PathLike[str] | Iterable[Any] | Any,
    url: str = "{url}",
    *,
    extract: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    strategies: str | Sequence[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    limit: int | None = None,
    id: str | None = None,
    input_format: str | None = None,
    encoding: str = "utf-8",
    repeat: int = 1,
    strategy_timeout: float | None = None,
    on_progress: Progress | None = None,
    python: str | None = None,
    method: str | None = None,
    headers: Sequence[str] | Mapping[str, str] | None = None,
    data: str | bytes | None = None,
) -> CompareReport:
    """Send the same rows with every strategy (or those named) and compare them.

    Args:
        rows: an input file path (CSV/TSV, JSON Lines, a text file of URLs, as
            ``drumfire run`` reads them) or Python rows (dicts, URL strings, a DataFrame).
        url: the URL template, as for ``drumfire run``.
        extract: ``{name: JMESPath expression}``, evaluated the same way for every strategy.
        strategies: names (a list or ``"a,b,c"``); all of them when None.
        concurrency: requests in flight for every strategy where concurrency applies.
        limit: use only the first ``limit`` rows.
        id: the id column (default ``id`` if present, else the row number).
        repeat: run every strategy this many times, round after round, and report each
            one's median run (by wall time); rows must match in every run.
        strategy_timeout: seconds after which a strategy is stopped and reported as failed.
        on_progress: called with ``(name, None)`` before a strategy runs and
            ``(name, report)`` after.
        python: the interpreter for the worker processes (default: this one).
        method, headers, data: the request, as ``-X``, ``-H`` (``"Name: value"`` lines or
            a mapping) and ``-d``, templates as for ``drumfire run``; every strategy sends
            the same (each value encoded for where it lands, as ``drumfire run`` does).

    Each strategy runs in a fresh ``python -m drumfire.compare.worker`` process, one after
    the other. The reference for "same rows" is drumfire, or the first strategy that ran
    when drumfire is not among them. Raises :class:`~drumfire.UsageError` for bad options,
    templates or input, and :class:`CompareStopped` (a KeyboardInterrupt holding the
    report of what ran) when interrupted while the strategies run.
    """
    names = parse_strategies(strategies)
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    if repeat < 1:
        raise UsageError("--repeat must be at least 1")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    pairs = _extract_pairs(extract)
    Extractor(pairs)  # a bad expression is a usage error, before anything runs
    pairs_h = _header_pairs(headers)
    body = data
    plan = RequestPlan(url, method=method, headers=pairs_h, data=body)
    label: str | None = None
    if isinstance(rows, str | os.PathLike):
        label = os.fspath(rows)
        source = open_source(label, input_format, encoding)
    else:
        source = rows_source(rows)
    try:
        if source.columns is not None:
            plan.check(source.columns)
        id_column = _id_column(source, id)
    except BaseException:
        if source.close is not None:
            source.close()
        raise
    loaded, ids, skipped_rows = _load_rows(source, id_column, limit)
    if not loaded:
        raise InputError("the input has no rows to send")
    keys = [str(i) for i in range(1, len(loaded) + 1)]

    # In the order given (by default the table's order), round after round so that a
    # burst of load on the machine does not fall on one strategy only; rows are compared at
    # the end.
    order = [get(n) for n in names]
    reports = {
        s.name: StrategyReport(
            s.name, s.description, min(concurrency, len(loaded)) if s.concurrent else 1
        )
        for s in order
    }
    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in order}
    with tempfile.TemporaryDirectory(prefix="drumfire-compare-") as tmp:
        folder = Path(tmp)
        rows_path = folder / "rows.json"
        rows_path.write_bytes(orjson.dumps(loaded, option=orjson.OPT_SERIALIZE_NUMPY))
        task = {
            "rows": str(rows_path),
            "url": url,
            "extract": pairs,
            "concurrency": concurrency,
            "method": method,
            "headers": pairs_h,
            # bytes (-d @file) travel as base64 in the JSON task
            "data": body if not isinstance(body, bytes) else None,
            "data_b64": base64.b64encode(body).decode() if isinstance(body, bytes) else None,
            # CSV cells are text: the JSON body types them as `drumfire run` does
            "text_rows": source.fmt in TEXT_FORMATS,
        }
        running: StrategyReport | None = None
        try:
            for round_ in range(repeat):
                # Each round starts one further along, so no strategy always follows the
                # same one.
                shift = round_ % len(order)
                for strategy in order[shift:] + order[:shift]:
                    report = running = reports[strategy.name]
                    if report.skipped or report.error:
                        continue
                    if on_progress is not None:
                        on_progress(strategy.name, None)
                    missing = missing_modules(strategy)
                    if missing:
                        report.skipped = f"needs {', '.join(missing)}: {EXTRA_HINT}"
                    else:
                        python = python or sys.executable
                        result = _run_worker(strategy, task, folder, python, strategy_timeout)
                        if "skipped" in result:
                            report.skipped = str(result["skipped"])
                        elif "error" in result:
                            report.error = str(result["error"])
                        else:
                            copy_figures(report, result)  # this run's, for the progress
                            report.runs_rps.append(report.rps or 0.0)
                            runs[strategy.name].append(result)
                    if on_progress is not None:
                        on_progress(strategy.name, report)
        except KeyboardInterrupt as exc:
            # Ctrl-C (or the command line's SIGTERM): the worker running was killed
            # with its process group (_run_worker); what ran to the end is reported.
            interrupt: KeyboardInterrupt | None = exc
            for report in reports.values():
                if runs[report.name] or report.skipped or report.error:
                    continue
                if report is running:
                    report.error = "stopped while it ran"
                else:
                    report.skipped = "not run: the comparison was stopped"
        else:
            interrupt = None

    done = {name: found for name, found in runs.items() if found and not reports[name].error}
    reference: str | None = None
    if "drumfire" in done:
        reference = "drumfire"
    elif done:
        reference = next(n for n in names if n in done)
    ref_rows = _outcomes(done[reference][0])[0] if reference is not None else None
    for name, found in done.items():
        report = reports[name]
        copy_figures(report, _median_run(found))
        report.mismatches, report.example_mismatch = 0, None
        for result in found:
            ref = None if name == reference else ref_rows
            mismatches, example = count_mismatches(result, keys, ids, ref)
            if mismatches > report.mismatches:
                report.mismatches, report.example_mismatch = mismatches, example
        report.results_match = report.mismatches == 0
    whole = CompareReport(
        url=url,
        extract=pairs,
        rows=len(loaded),
        concurrency=concurrency,
        reference=reference,
        strategies=list(reports.values()),
        input=label,
        repeat=repeat,
        skipped_rows=skipped_rows,
        stopped=interrupt is not None,
    )
    if interrupt is not None:
        raise CompareStopped(whole) from interrupt  # the cause: which signal it was
    return whole

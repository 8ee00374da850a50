"""The benchmark report: figures, a plain-text summary, JSON and the HTML page."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._omission import corrected_percentiles, expected_interval_us
from ._recorder import Recorder, RunData

__all__ = ["PERCENTILES", "BenchReport", "build_report", "target_of"]

#: Why a request was re-sent (the words of `drumfire run`'s summary).
RESENT = "kept-alive connection found closed"
#: A share of re-sent requests above this gets a warning.
RESENT_WARN = 0.01

#: What the summaries say for the latency of a run where no request was answered
#: (``latency_ms`` then holds zeros, which are no latency).
NO_ANSWER = "none: no request was answered"

#: The percentiles of ``latency_ms`` (key, percentile).
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


def target_of(settings: Mapping[str, Any]) -> str:
    """What a run was aimed at: its URL, or its URL template and where the rows came from
    (``http://h/{id} ← rows.csv``; ``← rows`` for rows given in Python)."""
    url = settings.get("url")
    if url:
        return str(url)
    template = settings.get("url_template")
    source = settings.get("input") or "rows"
    return f"{template} ← {source}" if template else str(settings.get("input") or "")


def _r(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


@dataclass
class BenchReport:
    """What ``drumfire bench`` measured.

    The JSON form (:meth:`to_dict`) starts with ``requests``, ``duration_s``,
    ``rps``, ``latency_ms`` (``mean``, ``p50``, ``p90``, ``p99``, ``p999``,
    ``max``, ...), ``status`` (code as a string → count) and ``errors``
    (reason → count). Latencies are of answered requests (any status), in
    milliseconds (all 0 when none was answered: ``status`` is empty, and the
    summaries say ``none``); requests that got no answer are counted in ``errors``, and
    ``latency_with_failures_ms`` gives the percentiles with them counted at the
    time they took (a timeout at its timeout), so that a run where a quarter
    time out does not headline a healthy p99. ``throttled`` counts the answers
    429 (Too Many Requests) and 503 (Service Unavailable). ``resent`` counts the
    requests sent again once because the server closed their kept-alive
    connection without an answer (GET, HEAD, PUT, DELETE, OPTIONS; any other
    method is a ``reset`` error), and ``cancelled`` the requests still
    unanswered when the run was stopped (not in ``requests``).
    """

    requests: int
    duration_s: float
    rps: float
    latency_ms: dict[str, float]
    status: dict[str, int]
    errors: dict[str, int]
    ok: int
    failed: int
    model: str  # "closed" or "open"
    rate: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    distribution: list[list[float]]  # [percentile, ms] pairs, for the percentile chart
    histogram: list[dict[str, Any]]  # latency buckets: lo_ms, hi_ms, count
    settings: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False
    hdr: str = ""  # the latency HdrHistogram (µs), compressed and base64-encoded
    throttled: int = 0  # answers 429 or 503
    latency_with_failures_ms: dict[str, float] = field(default_factory=dict)
    resent: int = 0  # requests re-sent once: the server closed their kept-alive connection
    cancelled: int = 0  # requests still unanswered when the run was stopped (not in requests)
    cancelled_max_ms: float = 0.0  # how long the oldest of them had waited
    # Closed model: the percentiles corrected for coordinated omission as wrk does
    # (see _omission), and the interval used; empty in the open model.
    latency_corrected_ms: dict[str, float] = field(default_factory=dict)
    # The signal that stopped the run (SIGINT, SIGTERM), for the command's exit status.
    stop_signal: int | None = None

    # -- conversions ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (what ``--json`` writes), keys in a stable order."""
        return {
            "requests": self.requests,
            "duration_s": self.duration_s,
            "rps": self.rps,
            "latency_ms": dict(self.latency_ms),
            "status": dict(self.status),
            "errors": dict(self.errors),
            "ok": self.ok,
            "failed": self.failed,
            "model": self.model,
            "rate": dict(self.rate) if self.rate is not None else None,
            "warnings": list(self.warnings),
            "stopped": self.stopped,
            "settings": dict(self.settings),
            "timeline": [dict(s) for s in self.timeline],
            "distribution": [list(p) for p in self.distribution],
            "histogram": [dict(b) for b in self.histogram],
            "hdr": self.hdr,
            "throttled": self.throttled,
            "latency_with_failures_ms": dict(self.latency_with_failures_ms),
            "resent": self.resent,
            "cancelled": self.cancelled,
            "cancelled_max_ms": self.cancelled_max_ms,
            "latency_corrected_ms": dict(self.latency_corrected_ms),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    def save_json(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_json() + b"\n")

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS and SVG, no script, no network)."""
        from ._html import render_page

        return render_page(self)

    def save_html(self, path: str | Path) -> None:
        Path(path).write_text(self.to_html(), encoding="utf-8")

    def _repr_html_(self) -> str:  # Jupyter
        from ._html import render_fragment

        return render_fragment(self)

    @property
    def target(self) -> str:
        """The URL, or the URL template and its rows' source (:func:`target_of`)."""
        return target_of(self.settings)

    def __str__(self) -> str:
        return self.summary_text()

    # -- text --------------------------------------------------------------------

    def summary_text(self, width: int = 40) -> str:
        """The terminal summary: throughput, latency percentiles, a small distribution."""
        lat = self.latency_ms
        s = self.settings
        target = target_of(s)
        if self.model == "open":
            how = f"open model, rate {self.rate['asked'] if self.rate else '?'}, " + (
                f"at most {s.get('concurrency')} connections"
            )
        else:
            how = f"closed model, {s.get('concurrency')} connections"
        lines = [
            f"drumfire bench {target}",
            f"  {how}" + (f", warm-up {s['warmup_s']:g} s" if s.get("warmup_s") else ""),
            "",
            f"  requests   {self.requests:,} in {self.duration_s:.2f} s"
            + (f" (+{self.resent:,} re-sent: {RESENT})" if self.resent else "")
            + (" (stopped early)" if self.stopped else ""),
            f"  throughput {self.rps:,.1f} requests/s",
        ]
        if self.rate is not None:
            r = self.rate
            lines.append(
                f"  sent       {r['sent_per_s']:,.1f} requests/s (asked {r['asked']}); "
                f"wait for a connection p99 {r['queue_ms']['p99']:.2f} ms, "
                f"max backlog {r['backlog_max']:,}"
            )
            if r.get("unsent"):
                lines.append(
                    f"             {r['unsent']:,} given up unsent: their --timeout passed "
                    "while they waited for a connection (counted as timeouts)"
                )
        if not self.status:  # its figures are zeros: no answer is no latency of 0 ms
            lines += ["", f"  latency    {NO_ANSWER}"]
        else:
            lines += [
                "",
                "  latency    mean {mean:.3f} ms   stdev {stdev:.3f} ms".format(**lat),
                "             p50 {p50:.3f}   p90 {p90:.3f}   p99 {p99:.3f}   "
                "p99.9 {p999:.3f}   max {max:.3f} ms".format(**lat),
                "             average {average:.3f} ms   max minus average "
                "{max_minus_average:.3f} ms".format(**lat),
            ]
        fixed = self.latency_corrected_ms
        if fixed and _corrected_differs(lat, fixed):
            lines.append(
                "  corrected  p50 {p50:.3f}   p90 {p90:.3f}   p99 {p99:.3f}   "
                "p99.9 {p999:.3f}   max {max:.3f} ms".format(**fixed)
            )
            lines.append(
                "             (closed model: a slow answer held back the requests its "
                "connection would have sent;\n"
                "             counted one every {interval_ms:.3f} ms, as wrk corrects "
                "coordinated omission; --rate measures it)".format(**fixed)
            )
        every = self.latency_with_failures_ms
        if every:
            lines.append(
                "  with failures (no answer, at the time they took: a timeout at its timeout)\n"
                "             p50 {p50:.3f}   p90 {p90:.3f}   p99 {p99:.3f}   "
                "p99.9 {p999:.3f}   max {max:.3f} ms".format(**every)
            )
        if self.histogram:
            lines += ["", "  latency distribution (ms)"]
            top = max(b["count"] for b in self.histogram) or 1
            for b in self.histogram:
                bar = "■" * (math.ceil(width * b["count"] / top) if b["count"] else 0)
                lines.append(f"  {b['hi_ms']:>11.3f} [{b['count']:>9,}] |{bar}")
        codes = ", ".join(f"{k}: {v:,}" for k, v in self.status.items()) or "none"
        lines += ["", f"  status     {codes}"]
        if self.throttled:
            share = 100.0 * self.throttled / self.requests if self.requests else 0.0
            lines.append(
                f"  throttled  {self.throttled:,} answers 429 or 503 ({share:.1f} % of requests)"
            )
        if self.errors:
            lines.append("  errors     " + ", ".join(f"{k}: {v:,}" for k, v in self.errors.items()))
        if self.failed:
            share = 100.0 * self.failed / self.requests if self.requests else 0.0
            lines.append(
                f"  failed     {self.failed:,} of {self.requests:,} ({share:.1f} %): "
                "statuses 400 and over, and no answer"
            )
        if self.cancelled:
            lines.append(
                f"  cancelled  {self.cancelled:,} requests unanswered when the run was stopped "
                f"(the oldest after {self.cancelled_max_ms:,.1f} ms; not in the figures above)"
            )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


# -- building -------------------------------------------------------------------


def _corrected_differs(raw: Mapping[str, float], fixed: Mapping[str, float]) -> bool:
    """Whether the correction moved a percentile by more than a tenth (and 1 µs): the
    summary shows the corrected line then (the JSON always has it)."""
    return any(
        fixed[k] - raw[k] > max(0.1 * raw[k], 0.001) for k, _ in PERCENTILES
    )


def _corrected(rec: Recorder, duration: float, connections: int) -> dict[str, float]:
    """The closed model's latencies corrected for coordinated omission (see _omission)."""
    hist = rec.histogram
    if hist.get_total_count() == 0:
        return {}
    expected = expected_interval_us(duration, rec.answered, connections)
    recorded = [
        (min(int(item.value_iterated_to), rec.max_us), int(item.count_added_in_this_iter_step))
        for item in hist.get_recorded_iterator()
    ]
    values = corrected_percentiles(recorded, expected, [pct for _, pct in PERCENTILES])
    out = {key: _r(v / 1000.0) for (key, _), v in zip(PERCENTILES, values, strict=True)}
    out["max"] = _r(rec.max_us / 1000.0)
    out["interval_ms"] = _r(expected / 1000.0)
    return out


def _distribution(recorder: Recorder) -> tuple[list[list[float]], list[dict[str, Any]]]:
    """Percentile curve points and log-spaced latency buckets from the histogram."""
    hist = recorder.histogram
    total = hist.get_total_count()
    if total == 0:
        return [], []
    values: list[int] = []
    cumulative: list[int] = []
    for item in hist.get_recorded_iterator():
        values.append(min(int(item.value_iterated_to), recorder.max_us))
        cumulative.append(int(item.total_count_to_this_value))
    # Percentile curve: levels 1 - 10^-x, denser towards the tail, up to the last sample.
    points: list[list[float]] = []
    top = math.log10(total) if total > 1 else 1.0
    steps = 60
    for i in range(steps + 1):
        x = top * i / steps
        pct = 100.0 * (1.0 - 10.0**-x)
        rank = max(1, math.ceil(pct / 100.0 * total))
        idx = bisect.bisect_left(cumulative, rank)
        points.append([round(pct, 6), values[min(idx, len(values) - 1)] / 1000.0])
    points.append([100.0, recorder.max_us / 1000.0])
    # Buckets: log-spaced between min and max.
    lo = max(recorder.min_us, 1)
    hi = max(recorder.max_us, lo + 1)
    n = 12 if hi / lo > 4 else 8
    edges = [lo * (hi / lo) ** (i / n) for i in range(n + 1)]
    counts = [0] * n
    prev = 0
    for value, cum in zip(values, cumulative, strict=True):
        count = cum - prev
        prev = cum
        j = bisect.bisect_left(edges, value) - 1
        counts[min(max(j, 0), n - 1)] += count
    buckets = [
        {"lo_ms": _r(edges[i] / 1000.0), "hi_ms": _r(edges[i + 1] / 1000.0), "count": counts[i]}
        for i in range(n)
    ]
    return points, buckets


def run_connections(settings: Mapping[str, Any]) -> int:
    """The closed model's connections (``-c``), as the settings say."""
    value = settings.get("concurrency")
    return value if isinstance(value, int) and value > 0 else 1


def build_report(run: RunData, settings: dict[str, Any], rate_asked: str | None) -> BenchReport:
    rec = run.recorder
    hist = rec.histogram
    answered = rec.answered
    requests = answered + sum(rec.errors.values())
    duration = max(run.finish - run.measure_start, 1e-9)
    mean = rec.sum_us / answered / 1000.0 if answered else 0.0
    latency: dict[str, float] = {"mean": _r(mean)}
    for key, pct in PERCENTILES:
        latency[key] = _r(rec.percentile_ms(pct))
    latency["max"] = _r(rec.max_us / 1000.0)
    latency["min"] = _r(rec.min_us / 1000.0)
    latency["stdev"] = _r(hist.get_stddev() / 1000.0) if answered else 0.0
    latency["average"] = latency["mean"]
    latency["max_minus_average"] = _r(latency["max"] - latency["mean"])
    status = {str(k): v for k, v in sorted(rec.status.items())}
    errors = dict(sorted(rec.errors.items(), key=lambda kv: -kv[1]))
    ok = sum(v for k, v in rec.status.items() if k < 400)
    warnings: list[str] = []
    rate: dict[str, Any] | None = None
    if run.queue is not None:
        span = run.last_send - run.first_send
        # Requests written: those given up unsent (their timeout passed while they
        # waited for a connection) are timeouts, but they never reached the server.
        written = run.sent - run.unsent
        sent_rate = (written - 1) / span if written > 1 and span > 0 else 0.0
        queue = run.queue
        has = queue.get_total_count() > 0

        def q(pct: float) -> float:
            return _r(min(queue.get_value_at_percentile(pct), queue.get_max_value()) / 1000.0)

        rate = {
            "asked": rate_asked,
            "sent_per_s": _r(sent_rate, 1),
            "queue_ms": {
                "p50": q(50) if has else 0.0,
                "p99": q(99) if has else 0.0,
                "max": _r(queue.get_max_value() / 1000.0) if has else 0.0,
            },
            "backlog_max": run.backlog_max,
            "client_lag_ms": {
                "mean": _r(run.lag_sum / run.sent * 1000.0) if run.sent else 0.0,
                "max": _r(run.lag_max * 1000.0),
            },
            "late_sends": run.late,
            "unsent": run.unsent,
        }
        fixed = settings.get("rate_fixed")
        late_share = run.late / run.sent if run.sent else 0.0
        if fixed and run.sent > 10 and sent_rate < 0.95 * fixed:
            # The client is to blame only if its own lateness could lose the rate: more
            # than 1 % of the sends late, by a request's interval or more.
            if run.backlog_max > 1 and (late_share < 0.01 or run.lag_max * fixed < 1.0):
                warnings.append(
                    f"could not keep the asked rate: sent {sent_rate:,.1f}/s of {fixed:g}/s; "
                    f"all {settings.get('concurrency')} connections were busy (backlog up to "
                    f"{run.backlog_max:,}): the server is slower than the rate with this -c"
                )
            else:
                warnings.append(
                    f"could not keep the asked rate: sent {sent_rate:,.1f}/s of {fixed:g}/s; "
                    "the client itself fell behind (its sends were late by up to "
                    f"{run.lag_max * 1000:.0f} ms)"
                )
        elif late_share > 0.01:
            warnings.append(
                f"{100 * late_share:.1f} % of the sends were more than 1 ms late through the "
                f"client's own fault (up to {run.lag_max * 1000:.1f} ms; short of CPU?): "
                "the latencies include that lateness"
            )
    if run.loop_lag_max > 0.1:
        warnings.append(
            f"the client's event loop stalled for up to {run.loop_lag_max * 1000:.0f} ms: "
            "it may have been short of CPU"
        )
    if requests and run.resent / requests > RESENT_WARN:
        warnings.append(
            f"the server closed the connection without an answer on {run.resent:,} requests "
            f"({100 * run.resent / requests:.1f} %) sent on a kept-alive connection: each was "
            "re-sent once on a new connection and counted from its first send (an idle "
            "connection's close racing the request looks so, and so does a server dropping "
            "requests)"
        )
    if run.closed_unsafe:
        warnings.append(
            f"{run.closed_unsafe:,} requests failed with a reset as the server closed their "
            "kept-alive connection without an answer, not re-sent as they are not idempotent "
            "(POST, PATCH); a server that closes connections after answering without saying "
            "'Connection: close' does this to every other request: try -H 'Connection: close'"
        )
    if requests == 0:
        warnings.append("no request was measured")
    distribution, histogram = _distribution(rec)
    with_failures: dict[str, float] = {}
    if rec.failed_histogram.get_total_count():
        merged = rec.with_failures()
        top = merged.get_max_value()
        for key, pct in PERCENTILES:
            with_failures[key] = _r(min(merged.get_value_at_percentile(pct), top) / 1000.0)
        with_failures["max"] = _r(top / 1000.0)
    return BenchReport(
        requests=requests,
        duration_s=_r(duration, 4),
        rps=_r(requests / duration, 1),
        latency_ms=latency,
        status=status,
        errors=errors,
        ok=ok,
        failed=requests - ok,
        model="open" if run.queue is not None else "closed",
        rate=rate,
        timeline=[s.to_dict() for s in rec.timeline],
        distribution=distribution,
        histogram=histogram,
        settings={**settings, "connections_opened": run.connections},
        warnings=warnings,
        stopped=run.stopped,
        hdr=hist.encode().decode("ascii") if hist.get_total_count() else "",
        throttled=rec.status.get(429, 0) + rec.status.get(503, 0),
        latency_with_failures_ms=with_failures,
        latency_corrected_ms=(
            {} if run.queue is not None else _corrected(rec, duration, run_connections(settings))
        ),
        resent=run.resent,
        cancelled=run.cancelled,
        cancelled_max_ms=_r(run.cancelled_max * 1000.0),
    )

"""Running one batch on a Dask cluster: ``drumfire run --cluster`` and :func:`run_dask`.

The input is cut into partitions on the client (byte ranges of CSV/TSV/JSON
Lines/URL files, cut at row starts outside quoted fields; groups of Parquet row
groups). Each partition is a Dask task that reads its own rows, runs the
ordinary engine on its own event loop in a thread of its own (never on the
worker's communication loop) and writes one part file, ``part-NNNNNN.parquet``
(or ``.jsonl``), under a hidden temporary name renamed when complete. The
partition number is the part's name, so a task that Dask runs twice (a dead
worker, a retry) writes the same part again, and a task whose part exists
skips: every input row is in exactly one complete part.

``dask`` and ``distributed`` are imported inside the functions only: nothing in
the core imports this module. The work is in seven modules: this one drives the
run from the client (the output directory, the tasks, the live line, the
summary); :mod:`._cluster_dask` is the Python API (:func:`run_dask`, whose
partitions run as these tasks do); :mod:`._cluster_plan` cuts the input;
:mod:`._cluster_task` is the task a worker runs; :mod:`._cluster_store` is
where input and parts live (local paths, fsspec URLs); :mod:`._cluster_stop`
handles SIGTERM and Ctrl-C on the client; :mod:`._cluster_schema` gives the
Parquet parts one schema at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from ._cluster_plan import PARTITION_SIZE, Part, part_name, plan_parts
from ._cluster_schema import share_schema
from ._cluster_stop import CLIENT_CLOSE, StopSignals, Terminated, close_client, quiet_teardown
from ._cluster_store import (
    EXTRA,
    Store,
    filesystem,
    is_local,
    local_path,
    open_binary,
    optional_module,
    require_dask,
)
from ._cluster_task import (
    REPORT_EVERY,
    TOPIC,
    TaskOptions,
    add_figures,
    figures,
    open_part,
    parse_option,
    run_part,
)
from ._errors import UsageError
from ._progress import format_rate
from ._text import counted

if TYPE_CHECKING:
    from ._job import Job
    from ._result import Stats

__all__ = [
    "EXTRA",
    "MANIFEST",
    "PARTITION_SIZE",
    "REPORT_EVERY",
    "TOPIC",
    "Part",
    "Store",
    "TaskOptions",
    "add_figures",
    "check_columns",
    "connect",
    "figures",
    "is_local",
    "local_path",
    "open_binary",
    "open_part",
    "parse_option",
    "part_name",
    "plan_parts",
    "probe",
    "run_cluster",
    "run_part",
    "split_job",
]

MANIFEST = "_drumfire_cluster.json"


# -- the run (on the client) ----------------------------------------------------------


def split_job(job: Job, slots: int) -> Job:
    """The settings of one task when ``slots`` tasks run at once: the run's limits shared."""
    slots = max(1, slots)
    return dataclasses.replace(
        job,
        rate=None if job.rate is None else job.rate / slots,
        concurrency=None if job.concurrency is None else max(1, math.ceil(job.concurrency / slots)),
        max_concurrency=max(1, math.ceil(job.max_concurrency / slots)),
    )


def connect(address: str) -> tuple[Any, Any]:
    """``(client, cluster)``: ``local:N`` starts a LocalCluster of N worker processes."""
    dist = optional_module("distributed")
    Client, LocalCluster = dist.Client, dist.LocalCluster

    if address.startswith("local:"):
        try:
            n = int(address[6:])
        except ValueError:
            n = 0
        if n < 1:
            raise UsageError(f"--cluster {address!r}: say local:N with N worker processes (N >= 1)")
        # Its log lines below ERROR (a cancelled task's, "still alive after 4 s, killing"
        # at shutdown) are no news on the terminal of a run that starts and stops it;
        # the cluster's own, also in its worker processes (distributed's default: WARNING).
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
        return Client(cluster), cluster
    probe(address)
    try:
        return Client(address, timeout=30), None
    except (OSError, ValueError) as exc:  # unreachable, timed out, or not an address
        raise UsageError(f"--cluster {address!r}: cannot reach the scheduler: {exc}") from None
    except Exception as exc:  # something answers there, but not a Dask scheduler
        # (distributed then fails on what it reads: struct.error, a 3 EiB numpy array...)
        raise UsageError(
            f"--cluster {address!r}: cannot reach the scheduler (is a Dask scheduler "
            f"listening there?): {type(exc).__name__}: {exc}"
        ) from None


#: Seconds :func:`probe` waits for a TCP connection to a scheduler's address. A reachable
#: host answers a connection (accepted, or refused) in far less, even across the world; one
#: that does not answer is down or behind a firewall that drops the packets.
PROBE_TIMEOUT = 10.0


def probe(address: str) -> None:
    """One line, at once, when nothing listens at a scheduler's TCP address (``tcp://``,
    ``tls://``, ``ws://``, ``wss://``, or ``HOST:PORT``): distributed's Client retries a
    refused connection until its timeout (30 s here), then said only that it timed out.

    A TCP connection opened and closed (no byte sent; a scheduler logs it at INFO, as
    "closed before handshake completed"). Other schemes, and an address distributed
    cannot parse, are left to the Client, which says what it finds.
    """
    import socket

    addressing = optional_module("distributed.comm.addressing")
    try:
        scheme, location = addressing.parse_address(address)
        host, port = addressing.parse_host_port(location)
    except ValueError:
        return
    if scheme not in ("tcp", "tls", "ws", "wss"):
        return
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return
    except ConnectionRefusedError:
        why = "nothing listens there (connection refused)"
    except TimeoutError:
        why = f"no answer within {PROBE_TIMEOUT:g} s (the host is down, or a firewall drops)"
    except socket.gaierror as exc:
        why = f"unknown host {host!r} ({exc.strerror or exc})"
    except OSError as exc:
        why = str(exc.strerror or exc)
    raise UsageError(f"--cluster {address!r}: cannot reach the scheduler: {why}")


def _stamp(path: str) -> tuple[int, Any]:
    """``(size, modification stamp)`` of an input file, local or an fsspec URL."""
    if is_local(path):
        st = os.stat(local_path(path))
        return st.st_size, st.st_mtime_ns
    fs, inner = filesystem(path)
    info = fs.info(inner)
    stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
    return int(info.get("size") or 0), str(stamp)


def _manifest(
    parts: list[Part], path: str, out_fmt: str, size: int, delimiter: str | None = None
) -> dict[str, Any]:
    input_size, mtime = _stamp(parts[0].path if parts else path)
    manifest = {
        "input": local_path(path) if is_local(path) else path,
        "input_size": input_size,
        "input_mtime_ns": mtime,
        "partition_size": size,
        "partitions": len(parts),
        "output_format": out_fmt,
    }
    if delimiter is not None:  # only then: a dataset written before --delimiter still resumes
        manifest["delimiter"] = delimiter
    # A directory of Parquet files: the others' stamps too (the first file's alone let a
    # resume keep parts read from a file since replaced). Only then, so that a dataset
    # of one file written before this key resumes as it did.
    others = sorted({part.path for part in parts} - {parts[0].path}) if parts else []
    if others:
        manifest["input_files"] = [[name, *_stamp(name)] for name in others]
    return manifest


def _prepare_directory(
    output: str, manifest: dict[str, Any], resume: str | None, overwrite: bool
) -> None:
    """``resume``: the option that keeps the parts (``--resume``, ``--retry-failed``), or None."""
    store = Store(output)
    store.makedirs()
    names = store.names()
    # A single-process run's values kept aside (see _parquet) go with its parts:
    # they would describe rows this run replaces.
    ours = [
        n
        for n in names
        if n.startswith(("part-", ".part-"))
        or n in (MANIFEST, Store.DONE, "_unfit.jsonl", "._unfit.jsonl.tmp")
    ]
    other = [n for n in names if n not in ours and n != ".drumfire.lock"]
    if other:
        raise UsageError(
            f"output {output!r} holds files drumfire did not write ({other[0]!r}); "
            "choose another -o"
        )
    holds = any(n.startswith("part-") for n in names)
    if holds and resume:
        text = store.get_text(MANIFEST)
        try:
            before = json.loads(text) if text is not None else None
        except ValueError:
            before = None
        if isinstance(before, dict) and "input_files" not in before:
            manifest = {k: v for k, v in manifest.items() if k != "input_files"}  # (older)
        if before != manifest:
            raise UsageError(
                f"{resume}: {output!r} was written for another input or partitioning "
                "(its input file, size, --partition-size or --delimiter changed); use "
                "--overwrite"
            )
        return
    if holds and not overwrite and not resume:
        raise UsageError(
            f"output {output!r} already holds parts; say --resume to complete it "
            "or --overwrite to replace it"
        )
    for n in ours:
        store.remove(n)
    store.put_text(MANIFEST, json.dumps(manifest))


class _Line:
    """One live line on stderr for the whole run (a terminal only), then the summary."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.live = not quiet and sys.stderr.isatty()
        self.quiet = quiet
        self.started = time.monotonic()
        # When the cluster was ready (started, or connected to): rows/s is over the time
        # since, where it counted a LocalCluster's start of seconds as sending time.
        self.ready: float | None = None
        self.last: float | None = None  # when the last partition ended (then the close)
        self.done = self.failed = self.sent = 0
        # Rows done so far by partitions still running, from their workers' events
        # (the latest event of a partition; a re-run after a worker death starts over).
        self.running: dict[int, tuple[int, int]] = {}
        self.finished: set[int] = set()
        self.lock = threading.Lock()

    def event(self, event: Any) -> None:
        """A worker's progress event (called on the client's event loop)."""
        msg = event[1]
        with self.lock:
            if msg["part"] not in self.finished:
                self.running[msg["part"]] = (msg["done"], msg["failed"])
        self.show()

    def add(self, figures: dict[str, Any]) -> None:
        with self.lock:
            self.finished.add(figures["index"])
            self.last = time.monotonic()
            self.running.pop(figures["index"], None)
            self.done += figures["rows"]
            self.failed += figures["failed"]
            if not figures["skipped"]:
                self.sent += figures["rows"] - figures.get("kept", 0)
        self.show()

    def show(self) -> None:
        if not self.live:
            return
        with self.lock:
            done = self.done + sum(d for d, _ in self.running.values())
            sent = self.sent + sum(d for d, _ in self.running.values())
            failed = self.failed + sum(f for _, f in self.running.values())
        elapsed = max(time.monotonic() - (self.ready or self.started), 1e-9)
        sys.stderr.write(  # (erased to the line's end: a shorter line left a longer one's tail)
            f"\r{done:,}/{self.total:,} rows  {format_rate(sent / elapsed)} rows/s  "
            f"{failed:,} failed\x1b[K"
        )
        sys.stderr.flush()


def run_cluster(
    input_path: str,
    job: Job,
    *,
    cluster: str,
    output: str,
    out_fmt: str,
    input_format: str | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    resume: str | bool | None = None,
    overwrite: bool = False,
    partition_size: int = PARTITION_SIZE,
    quiet: bool = False,
    options: TaskOptions | None = None,
) -> tuple[Stats, int]:
    """``drumfire run INPUT --cluster ADDRESS``: the run's figures and exit status.

    ``resume``: ``"--resume"`` or ``"--retry-failed"`` (which also needs
    ``options.again``) to complete the dataset, else None. ``input_path`` and
    ``output`` may be fsspec URLs (``s3://...``): the workers read and write
    them themselves. ``delimiter``: a CSV input's, checked (``check_delimiter``).
    """
    from ._outfile import OutputLock
    from ._sources import format_for

    if resume is True:
        resume = "--resume"
    resume = resume or None
    if input_path == "-":
        raise UsageError("--cluster: the workers read the input themselves; give a file, not stdin")
    if output == "-":
        raise UsageError("--cluster writes a dataset directory of parts: give -o DIR.parquet")
    if out_fmt not in ("parquet", "jsonl"):
        raise UsageError(f"--cluster writes Parquet or JSON Lines parts, not {out_fmt}")
    require_dask("--cluster")
    fmt = input_format or format_for(input_path, None)
    parts = plan_parts(input_path, fmt, encoding, partition_size, delimiter)
    check_columns(job, input_path, fmt, encoding, parts)
    # A local output is locked (DIR/.drumfire.lock); an object store has no locks:
    # one client per output (see docs/scale-out.md).
    lock = (
        OutputLock.acquire_output(local_path(output), "parquet") if is_local(output) else None
    )
    try:
        manifest = _manifest(parts, input_path, out_fmt, partition_size, delimiter)
        _prepare_directory(output, manifest, resume, overwrite)
        return _drive(parts, job, cluster, output, out_fmt, quiet, options)
    finally:
        if lock is not None:
            lock.close()


def check_columns(job: Job, path: str, fmt: str, encoding: str, parts: list[Part]) -> None:
    """Templates, keep and id against the input's columns before anything starts, as
    without a cluster (a TemplateError)."""
    from ._sources import open_source

    if is_local(path):
        delimiter = parts[0].delimiter if parts else None
        source = open_source(local_path(path), fmt, encoding, count=False, delimiter=delimiter)
        try:
            job.check(job.plan(), source)
        finally:
            if source.close is not None:
                source.close()
    elif parts:
        with tempfile.TemporaryDirectory(prefix="drumfire-check-") as scratch:
            source = open_part(parts[0], scratch)
            try:
                job.check(job.plan(), source)
            finally:
                if source.close is not None:
                    source.close()


def _drive(
    parts: list[Part],
    job: Job,
    address: str,
    output: str,
    out_fmt: str,
    quiet: bool,
    options: TaskOptions | None = None,
) -> tuple[Stats, int]:
    from ._result import Stats

    as_completed = optional_module("distributed").as_completed

    directory = local_path(output) if is_local(output) else output
    line = _Line(sum(p.rows for p in parts), quiet)
    stats = Stats(time.monotonic, line.total)
    stats.started = line.started
    errors: list[str] = []
    interrupted = 0  # the signal that stopped the run
    unshared: str | None = None
    unfinished = False  # stopped with tasks not done (running, or queued)
    futures: list[Any] = []  # the tasks submitted
    slots = 0
    stops = StopSignals()
    client = cluster = None
    try:
        if address.startswith("local:"):
            # Its start is not cut short (worker processes would be left starting, with
            # nothing to close them): a stop then is recorded, and raised once it is up.
            stops.hold()
        try:
            client, cluster = connect(address)
            line.ready = time.monotonic()
        finally:
            stops.release()
        stops.stop_recorded()
        slots = sum(client.nthreads().values()) or 1
        if line.live:
            client.subscribe_topic(TOPIC, line.event)
        task_job = split_job(job, slots)
        run_id = uuid.uuid4().hex[:8]
        for part in parts:  # one by one: a stop while submitting knows what was
            futures.append(
                client.submit(
                    run_part,
                    part,
                    task_job,
                    directory,
                    out_fmt,
                    options,
                    key=f"drumfire-part-{part.index:06d}-{run_id}",
                )
            )
        for future in as_completed(futures):
            try:
                got = future.result()
            except Exception as exc:  # a task that failed for good: its part is missing
                errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                continue
            line.add(got)
            if got["skipped"]:
                stats.skipped += got["rows"]
                continue
            stats.skipped += got.get("kept", 0)
            if "unreachable" in got:
                # A dead target stops the run, as without a cluster: the other
                # partitions are not started (each would try it 50 times), and the
                # stopped one wrote no part, which --resume sends.
                stats.unreachable = got["unreachable"]
                stats.stopped = True
                unfinished = any(not f.done() for f in futures)
                client.cancel(futures)
                break
            add_figures(stats, got["stats"])
    except (KeyboardInterrupt, Terminated) as exc:
        # From the start of the cluster on. The parts done stay, the tasks are released
        # (a remote cluster may finish those running: --resume skips them).
        interrupted = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
        stats.stopped = True
        unfinished = any(not f.done() for f in futures)
    finally:
        # A SIGTERM or a Ctrl-C now would cut the cleanup short (the cluster half
        # closed, temporary files left, a traceback): it is recorded. The cleanup is
        # bounded: a LocalCluster's nanny kills a worker still busy after 4 s.
        stops.hold()
        try:
            with quiet_teardown(cluster is not None, stats.stopped):
                if client is not None and not close_client(client):
                    sys.stderr.write(
                        f"drumfire: warning: the Dask client did not close within "
                        f"{CLIENT_CLOSE:g} s; closing the cluster\n"
                    )
                if cluster is not None:
                    cluster.close()
            # After a stop, a remote cluster may still run the tasks that were running
            # (a task cannot be interrupted; only a LocalCluster's workers are ended by
            # its close): one may be writing its part now, or rewriting a finished one.
            # Its temporary file and the parts are then left alone (a part rewritten here
            # meanwhile would undo its rewrite); the next run's end cleans and shares.
            running = unfinished and cluster is None
            if not running:
                Store(directory).clean()
                # Also after a stop: the parts present are read as one table meanwhile.
                unshared = share_schema(directory) if out_fmt == "parquet" else None
        finally:
            stops.restore()
    if running and out_fmt == "parquet":
        sys.stderr.write(
            "drumfire: the partitions still running on the cluster may write their parts "
            "after this; the next run (--resume) gives the parts one schema\n"
        )
    if unshared is not None:
        sys.stderr.write(
            f"drumfire: warning: could not give the parts one schema (each is complete as "
            f"it is): {unshared}\n"
        )
    if (stops.came or stops.ctrl_c) and not interrupted:  # it came during the cleanup
        interrupted = signal.SIGTERM if stops.came else signal.SIGINT
        stats.stopped = True
    stats.finished = time.monotonic()
    if line.live:
        sys.stderr.write("\n")
    elapsed = stats.finished - line.started
    ready = line.ready if line.ready is not None else stats.finished
    last = max(line.last, ready) if line.last is not None else ready
    sending = last - ready  # (not the cluster's start, nor its close after the last part)
    if not quiet:
        sys.stderr.write(
            f"drumfire: {line.done:,} of {counted(line.total, 'row')} in "
            f"{counted(len(parts), 'partition')} "
            f"({line.done - line.sent:,} already done), {line.failed:,} failed, "
            f"{elapsed:.1f} s ({ready - line.started:.1f} s of it before the cluster was "
            f"ready, {stats.finished - last:.1f} s after the last partition), "
            f"{format_rate(line.sent / sending if sending > 0 else 0.0)} rows/s sent "
            f"on {counted(slots, 'worker thread')}; output {output}\n"
        )
    if interrupted:
        sys.stderr.write("drumfire: interrupted; the finished parts are kept\n")
        return stats, 128 + interrupted
    if stats.unreachable is not None:  # shown even with --quiet: it is the run's outcome
        sys.stderr.write(
            f"drumfire: error: target unreachable: {stats.unreachable}; stopped, the "
            "partitions not finished are left for --resume (--keep-going sends every row "
            "regardless)\n"
        )
        return stats, 1
    for message in errors[:3]:
        sys.stderr.write(f"drumfire: error: a partition failed: {message}\n")
    if errors:
        sys.stderr.write(f"  resume with the same command and --resume ({len(errors)} missing)\n")
        return stats, 1
    return stats, 0

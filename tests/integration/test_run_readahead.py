"""The read-ahead child process (``drumfire._readahead``) against the demo server.

The engine is made to believe it is CPU-bound at once (a CPU clock that runs as
fast as the wall clock), so it starts pipelining and hands the rest of its input
to a forked child within a few milliseconds. Every test compares the rows with
those of the same run read in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drumfire import InputError, Result
from drumfire._batch import execute
from drumfire._engine import Engine
from drumfire._job import make_job
from drumfire._readahead import ReadAhead, Starter, available
from drumfire._result import Stats
from drumfire._resume import DuplicateCounter
from drumfire._rows import WAIT
from drumfire._sinks import CsvSink
from drumfire._sources import Source, open_source, rows_source
from drumfire.demo import DemoServer, route_answer, write_sample_routes

pytestmark = pytest.mark.skipif(not available(), reason="read-ahead needs Linux and 2+ CPUs")

ROUTE = "/route/v1/driving/{lon1},{lat1};{lon2},{lat2}"


def route_rows(n: int) -> list[Any]:
    rows: list[Any] = []
    for i in range(n):
        rows.append(
            {
                "id": f"r{i}",
                "lon1": f"{24.90 + (i % 97) / 1000:.6f}",
                "lat1": f"{60.15 + (i % 89) / 2000:.6f}",
                "lon2": f"{24.91 + (i % 83) / 1000:.6f}",
                "lat2": f"{60.16 + (i % 79) / 2000:.6f}",
            }
        )
    # What the child must pass on as rows of their own, in their places:
    rows[1500] = ["not", "a", "mapping"]  # an input problem
    del rows[1700]["lon2"]  # a template error
    rows[1900]["id"] = rows[1800]["id"]  # a duplicate id
    return rows


def run_engine(
    url: str, rows: Any, *, read_ahead: bool, **kwargs: Any
) -> tuple[list[Result], Stats, Starter | None]:
    skip: Callable[[str], bool] | None = kwargs.pop("skip", None)
    on_tick: Callable[[Stats], None] | None = kwargs.pop("on_tick", None)
    job = make_job(url, **kwargs)
    source = rows if isinstance(rows, Source) else rows_source(rows)
    results: list[Result] = []
    starter = Starter() if read_ahead else None
    engine = job.engine(
        source,
        results.append,
        cpu_clock=time.perf_counter,  # "a whole core": CPU-bound from the first sweep
        tick_interval=0.005,
        on_cpu_bound=starter,
        skip=skip,
        duplicates=DuplicateCounter(),
        on_tick=on_tick,
    )
    engine.CPU_TICKS = 1
    engine.CPU_SPAN = 0.004
    try:
        stats = asyncio.run(asyncio.wait_for(engine.run(source.items, source.total), 60))
    finally:
        if starter is not None:
            starter.close()
    return results, stats, starter


def test_a_template_error_row_names_its_input_line_from_the_child_too(
    demo_server: DemoServer, tmp_path: Path
) -> None:
    # The child reads on where the engine stopped: its rows' lines must follow on.
    lines = ["id,v,note"]
    for i in range(3000):
        if i % 250 == 0:
            lines.append("")  # a blank line: the rows after it are one line further on
        note = '"two\nlines"' if i % 300 == 0 else "one"
        lines.append(f"r{i},{'..' if i in (5, 2600) else i},{note}")
    path = tmp_path / "in.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = path.read_text(encoding="utf-8").split("\n")
    want = {f"r{i}": text.index(f"r{i},..,one") + 1 for i in (5, 2600)}
    url = demo_server.base_url + "/status/200/{v}"
    got = {}
    for read_ahead in (True, False):
        source = open_source(str(path))
        try:
            results, _, starter = run_engine(url, source, read_ahead=read_ahead)
        finally:
            source.close()
        if read_ahead:
            assert starter is not None
            assert starter.reader is not None
        errors = {r.id: r.error for r in results if r.error}
        assert sorted(errors) == ["r2600", "r5"]
        got[read_ahead] = errors
    assert got[True] == got[False]
    for id_, line in want.items():
        assert got[True][id_].startswith(f"template: line {line}: the value '..' (column 'v')")


def rows_of(results: list[Result]) -> list[tuple[Any, ...]]:
    return sorted(
        (r.id, r.status, r.attempts, r.error, sorted((r.fields or {}).items()), r.kept)
        for r in results
    )


@pytest.mark.parametrize("ordered", [False, True])
def test_read_ahead_gives_the_same_rows(demo_server: DemoServer, ordered: bool) -> None:
    rows = route_rows(3000)
    skipped = {f"r{i}" for i in range(2000, 2100)}
    kwargs: dict[str, Any] = {
        "extract": {"code": "code", "duration": "routes[0].duration"},
        "keep": ["lon1"],
        "ordered": ordered,
    }
    url = demo_server.base_url + ROUTE
    ahead, ahead_stats, starter = run_engine(
        url, rows, read_ahead=True, skip=skipped.__contains__, **kwargs
    )
    inline, inline_stats, _ = run_engine(
        url, rows, read_ahead=False, skip=skipped.__contains__, **kwargs
    )
    assert starter is not None
    assert starter.reader is not None, "the engine never handed its input over"
    assert rows_of(ahead) == rows_of(inline)
    assert len(ahead) == 3000 - 100
    for stats in (ahead_stats, inline_stats):
        assert (stats.duplicates, stats.skipped) == (1, 100)
    errors = {r.id: r.error for r in ahead if r.error and r.id}
    problems = [r for r in ahead if r.error.startswith("input:")]
    assert [(r.id, r.error[:31]) for r in problems] == [("", "input: line 1501: row is a list")]
    assert "has no column 'lon2'" in errors["r1700"]
    ok = next(r for r in ahead if r.id == "r42")
    status, doc = route_answer(*(float(rows[42][c]) for c in ("lon1", "lat1", "lon2", "lat2")))
    assert ok.status == status
    assert ok.fields is not None
    assert ok.fields["code"] == doc["code"]
    assert ok.kept == {"lon1": rows[42]["lon1"]}
    if ordered:
        assert [r.id for r in ahead] == [r.id for r in inline]


@pytest.mark.parametrize(("ordered", "resume"), [(False, False), (False, True), (True, False)])
def test_the_usual_chunks_taken_in_pieces_give_the_same_rows(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch, ordered: bool, resume: bool
) -> None:
    # No kept columns: the child sends the usual chunk (ids and request bytes), and a
    # pipelined fill takes it in pieces of the room it has (ReadAhead.take). Between
    # them come an input problem, a template error and a repeated id (each ends a
    # chunk's run), rows --resume skips, and the rows the pump starts one by one.
    taken: list[int] = []
    take = ReadAhead.take

    def counted(self: ReadAhead, most: int) -> Any:
        run = take(self, most)
        if run is not None:
            taken.append(len(run.ids))
        return run

    monkeypatch.setattr(ReadAhead, "take", counted)
    rows = route_rows(6000)
    skipped = {f"r{i}" for i in range(2000, 2100)} if resume else set()
    kwargs: dict[str, Any] = {"extract": {"code": "code"}, "ordered": ordered}
    url = demo_server.base_url + ROUTE
    ahead, ahead_stats, starter = run_engine(
        url, rows, read_ahead=True, skip=skipped.__contains__, **kwargs
    )
    assert starter is not None
    assert starter.reader is not None, "the engine never handed its input over"
    inline, inline_stats, _ = run_engine(
        url, rows, read_ahead=False, skip=skipped.__contains__, **kwargs
    )
    assert rows_of(ahead) == rows_of(inline)
    assert len(ahead) == 6000 - len(skipped)
    assert len({r.id for r in ahead}) == len(ahead) - 1  # r1900 repeats r1800's id
    for stats in (ahead_stats, inline_stats):
        assert (stats.duplicates, stats.skipped) == (1, len(skipped))
    if ordered:
        assert not taken  # the reorder window takes rows one by one
        assert [r.id for r in ahead] == [r.id for r in inline]
    else:
        assert taken, "no pipelined fill took a piece of a usual chunk"
        assert sum(taken) < 6000


def test_usual_chunks_of_gets_with_a_body_are_not_pipelined(demo_server: DemoServer) -> None:
    # A GET with a body is never queued behind another request: a fill that takes a
    # usual chunk of them hands its rows to the pump, which starts each on its own.
    rows = [{"id": f"g{i}", "q": f"text {i}"} for i in range(3000)]
    kwargs: dict[str, Any] = {"method": "GET", "data": "q={q}", "extract": {"body": "body"}}
    url = demo_server.base_url + "/echo"
    ahead, ahead_stats, starter = run_engine(url, rows, read_ahead=True, **kwargs)
    assert starter is not None
    assert starter.reader is not None
    inline, _, _ = run_engine(url, rows, read_ahead=False, **kwargs)
    assert rows_of(ahead) == rows_of(inline)
    assert sorted(r.fields["body"] for r in ahead if r.fields) == sorted(
        f"q=text+{i}" for i in range(3000)
    )
    assert ahead_stats.pipelined == 0


def test_the_child_is_reaped(demo_server: DemoServer) -> None:
    _, _, starter = run_engine(demo_server.base_url + ROUTE, route_rows(2000), read_ahead=True)
    assert starter is not None
    assert starter.reader is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(starter.reader.pid, os.WNOHANG)


@pytest.mark.parametrize("keep", [[], ["lon1"]])  # the usual chunks, or entries
def test_an_input_failing_in_the_child_ends_the_run_with_its_error(
    demo_server: DemoServer, keep: list[str]
) -> None:
    # The child's last message says why; nothing is read from the pipe after it (a
    # pipelined fill asking for more said "the read-ahead process ended" instead).
    def rows() -> Iterator[dict[str, str]]:
        yield from route_rows(2000)[:1000]
        raise OSError("the disk went away")

    for _ in range(5):  # the fill's last look at the pipe comes at a moment of its own
        with pytest.raises(InputError, match="the input failed: OSError: the disk went away"):
            run_engine(demo_server.base_url + ROUTE, rows(), read_ahead=True, keep=keep)


def test_a_slow_child_does_not_block_the_engine(demo_server: DemoServer, tmp_path: Path) -> None:
    # The child stalls mid-input until the engine has swept 20 times with no
    # row finishing: the engine waits for the pipe without blocking its loop,
    # so its sweeps (deadlines, flushing, the progress display) go on
    # meanwhile. A blocked engine would never release the child (it gives up
    # after 30 s, and the test fails).
    parent = os.getpid()
    stalled, released = tmp_path / "stalled", tmp_path / "released"

    def rows() -> Iterator[dict[str, str]]:
        for i, row in enumerate(route_rows(2000)):
            if i == 1000 and os.getpid() != parent:
                stalled.touch()
                deadline = time.monotonic() + 30
                while not released.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
            yield row

    idle: list[int] = []  # rows done, seen by each sweep during the stall while none finish

    def on_tick(stats: Stats) -> None:
        if released.exists() or not stalled.exists():
            return
        if idle and idle[-1] != stats.done:
            idle.clear()
        idle.append(stats.done)
        if len(idle) >= 20:
            released.touch()

    results, _, starter = run_engine(
        demo_server.base_url + ROUTE, rows(), read_ahead=True, on_tick=on_tick,
    )  # fmt: skip
    assert starter is not None
    assert starter.reader is not None
    assert len(results) == 2000
    assert len(idle) >= 20, "the engine stopped sweeping while the child stalled"


def test_no_child_when_the_fork_fails(
    demo_server: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Out of processes or file descriptors: the engine goes on reading itself.
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    rows = route_rows(2000)
    results, _, starter = run_engine(demo_server.base_url + ROUTE, rows, read_ahead=True)
    assert starter is not None
    assert starter.reader is None
    assert isinstance(starter.error, OSError)
    assert len(results) == 2000


def test_a_child_that_dies_ends_the_run(demo_server: DemoServer) -> None:
    # A child killed from outside (the OOM killer): the run ends with an error,
    # it does not wait forever for rows that will not come.
    parent = os.getpid()

    def rows() -> Iterator[dict[str, str]]:
        yield from route_rows(2000)[:500]
        if os.getpid() == parent:  # no hand-over happened: fail the test, not pytest
            raise RuntimeError("the engine read every row itself")
        os._exit(3)  # in the child: dies at row 500, with no word to the parent

    with pytest.raises(InputError, match="ended before the end of the input"):
        run_engine(demo_server.base_url + ROUTE, rows(), read_ahead=True)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ReadAhead]:
    """Any CPU share counts as CPU-bound: the read-ahead starts at the first sweep.

    The list receives each read-ahead started.
    """
    monkeypatch.setattr(Engine, "CPU_BOUND", 0.0)
    monkeypatch.setattr(Engine, "CPU_TICKS", 1)
    started: list[ReadAhead] = []
    init = ReadAhead.__init__

    def spy(self: ReadAhead, *args: Any) -> None:
        init(self, *args)
        started.append(self)

    monkeypatch.setattr(ReadAhead, "__init__", spy)
    return started


def execute_on_routes(
    demo_server: DemoServer, path: Path, n: int, out: io.StringIO
) -> tuple[Stats, int]:
    """execute() as `drumfire run` calls it, on ``n`` sample routes; CSV rows into ``out``."""
    source = open_source(str(write_sample_routes(path, n, seed=3)), count=False)
    sink = CsvSink(out, ["code"], [])
    sink.close = lambda: None  # type: ignore[method-assign]  # keep the text to read
    job = make_job(demo_server.base_url + ROUTE, extract={"code": "code"})
    return execute(job, source, sink, quiet=True, read_ahead=True)


def test_the_command_line_path_hands_over_and_writes_every_row(
    demo_server: DemoServer, tmp_path: Path, started: list[ReadAhead]
) -> None:
    out = io.StringIO()
    stats, code = execute_on_routes(demo_server, tmp_path / "routes.csv", 20_000, out)
    assert code == 0
    assert len(started) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 20_000
    assert len({line.split(",", 1)[0] for line in lines[1:]}) == 20_000
    assert stats.done == 20_000


def test_ctrl_c_with_a_read_ahead_child(
    demo_server: DemoServer,
    tmp_path: Path,
    started: list[ReadAhead],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SIGINT reaches the parent mid-run (the child ignores it anyway): exit
    # status 130, every row written once, and the child, blocked on a full
    # pipe, is ended and reaped. Meanwhile the child holds none of the
    # parent's sockets (its connections, the loop's wake-up pair).
    import threading

    child_sockets: list[list[str]] = []
    from_child = threading.Event()  # the parent took a row the child prepared
    finished = threading.Event()
    iterate = ReadAhead.__iter__

    def spy_iter(self: ReadAhead) -> Iterator[Any]:
        items = iterate(self)
        for item in items:
            if item is not WAIT:
                from_child.set()
                yield item
                break
            yield item
        yield from items

    monkeypatch.setattr(ReadAhead, "__iter__", spy_iter)

    def look_then_interrupt() -> None:
        # Events, not a timer: the child has sent rows (so it is past its set-up),
        # and some rows are written. Bounded, in case the run never gets there.
        deadline = time.monotonic() + 60
        while not finished.is_set() and time.monotonic() < deadline:
            if from_child.is_set() and out.getvalue().count("\n") > 1:
                break
            time.sleep(0.01)
        else:
            return  # the assertions below say what did not happen
        links = [os.readlink(fd) for fd in Path(f"/proc/{started[0].pid}/fd").iterdir()]
        child_sockets.append([link for link in links if link.startswith("socket:")])
        os.kill(os.getpid(), signal.SIGINT)

    out = io.StringIO()
    watcher = threading.Thread(target=look_then_interrupt)
    watcher.start()
    try:
        stats, code = execute_on_routes(demo_server, tmp_path / "routes.csv", 50_000, out)
    finally:
        finished.set()
        watcher.join()
    assert child_sockets == [[]]
    assert code == 130
    assert stats.stopped
    ids = [line.split(",", 1)[0] for line in out.getvalue().splitlines()[1:]]
    assert 0 < len(ids) < 50_000
    assert len(set(ids)) == len(ids) == stats.done
    assert len(started) == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(started[0].pid, os.WNOHANG)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def test_the_child_dies_with_its_parent_while_reading_stdin(tmp_path: Path) -> None:
    # Input from a pipe that stays open: the child blocks reading it, writes
    # nothing, and would never notice the parent's death but for the
    # parent-death signal.
    force = (
        "from drumfire._engine import Engine; Engine.CPU_BOUND = 0.0; Engine.CPU_TICKS = 1; "
        "from drumfire.cli import entry; entry()"
    )
    with DemoServer() as demo:
        proc = subprocess.Popen(
            [sys.executable, "-c", force, "run", "-", "--format", "csv", "--url",
             demo.base_url + ROUTE, "-o", str(tmp_path / "out.csv"), "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdin is not None
        stdin = proc.stdin
        stdin.write(b"id,lon1,lat1,lon2,lat2\n")
        # Rows keep coming until the child appears: the engine forks it at its first
        # sweep, and a run that had already answered every row written so far would
        # wait for more input instead (on a quiet machine 3,000 rows took < 50 ms).
        appeared = threading.Event()

        def feed() -> None:
            for start in range(0, 1_000_000, 1000):
                if appeared.is_set():
                    return
                chunk = b"".join(
                    b"%d,24.94,60.17,24.95,60.18\n" % i for i in range(start, start + 1000)
                )
                try:
                    stdin.write(chunk)
                    stdin.flush()
                except (BrokenPipeError, ValueError):
                    return

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            try:
                children = wait_for_children(proc)
            finally:
                appeared.set()
                feeder.join(timeout=60)
            wait_until_reading_stdin(children[0])
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            assert gone(children[0]), "the child outlived its parent"
        finally:  # a failure above leaves no process behind for the next test to meet
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            with contextlib.suppress(OSError):
                stdin.close()


def wait_for_children(proc: subprocess.Popen[bytes]) -> list[int]:
    deadline = time.monotonic() + 20
    children: list[int] = []
    while not children and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        children = children_of(proc.pid)
    assert children, "no read-ahead child appeared"
    return children


def wait_until_reading_stdin(pid: int) -> None:
    """Wait (bounded) until a thread of ``pid`` is blocked in ``read(0, ...)``: it has
    read every row (the child reads a pipe in a thread of its own: see Background)."""
    read = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)
    deadline = time.monotonic() + 30
    while read is not None and time.monotonic() < deadline:
        try:
            calls = [p.read_text().split() for p in Path(f"/proc/{pid}/task").glob("*/syscall")]
        except OSError:
            return  # no /proc/PID/task/TID/syscall here: the test still kills a reading child
        if not calls:
            return
        if any(syscall[:2] == [read, "0x0"] for syscall in calls):
            return
        time.sleep(0.01)
    if read is not None:
        raise AssertionError("the read-ahead child never blocked reading stdin")


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether ``pid`` ends within ``within`` seconds (a zombie counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def test_resume_after_sigkill_with_a_read_ahead_child(tmp_path: Path) -> None:
    # `drumfire run` with the read-ahead forced on at the first sweep, killed
    # with SIGKILL mid-run: the child, blocked on its pipe, exits by itself
    # (its next write fails), and --resume then completes every row once.
    force = (
        "from drumfire._engine import Engine; Engine.CPU_BOUND = 0.0; Engine.CPU_TICKS = 1; "
        "from drumfire.cli import entry; entry()"
    )
    routes = write_sample_routes(tmp_path / "routes.csv", 15_000, seed=5)
    out = tmp_path / "out.csv"
    with DemoServer(latency=0.05) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-c", force, "run", str(routes), "--url", slow.base_url + ROUTE,
             "-e", "code=code", "-o", str(out), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        children = wait_for_children(proc)
        deadline = time.monotonic() + 60
        while slow.requests_served < 1000 and time.monotonic() < deadline:  # mid-run
            assert proc.poll() is None, "the run ended before it was killed"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert gone(children[0]), "the child outlived its parent"
    with DemoServer() as fast:
        done = subprocess.run(
            [sys.executable, "-m", "drumfire.cli", "run", str(routes), "--url",
             fast.base_url + ROUTE, "-e", "code=code", "-o", str(out), "--resume", "-q"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ids = [line.split(",", 1)[0] for line in out.read_text().splitlines()[1:]]
    assert sorted(ids, key=int) == [str(i) for i in range(1, 15_001)]

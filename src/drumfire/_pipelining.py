"""When to pipeline, how deep, and on how many connections: one small policy object.

HTTP pipelining (several GET requests written on a connection before their answers)
saves system calls and loop wake-ups on both sides: fewer, larger reads and writes.
It pays only when CPU is what limits the run, and there are two ways it can be:

* **client**: the engine's own thread uses a whole core (a fast local server such
  as nginx answers faster than Python can frame requests and write rows);
* **machine**: the server is on this machine (a loopback address) and, together,
  server and client use every core (osrm-routed on a 2-core machine). The engine's
  thread is then far from busy, but each microsecond it spends is taken from the
  server; a server process using at least half a core must be one of the busy ones.

Elsewhere (a remote or slow server, an idle machine) it stays off: more requests
per connection cannot make a server answer sooner, and a slow server needs
connections, not queues. Which requests may be pipelined at all (GET without a
body, behind a connection that has answered; hand-back when it closes; the
server's ``Keep-Alive: max``) is the engine's and the connection's business:
this object only says *whether* and *how much*.

The policy reads its signals through injected callables (a clock, the thread's
CPU clock, the machine's ``/proc/stat`` and the server's CPU), so it is tested
with fakes and no sleeping. :meth:`Pipelining.sample` runs on the engine's
periodic sweep (about 50 ms) and returns a new :class:`Setting` when the
decision changes.
"""

from __future__ import annotations

import ipaddress
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "OFF",
    "CpuTotals",
    "Pipelining",
    "ServerCpu",
    "Setting",
    "is_local_host",
    "listener_pids",
    "machine_cpu",
    "process_cpu",
    "server_cpu_reader",
]

#: Cumulative CPU seconds (busy, all) of every core, as in ``/proc/stat``; None: unknown.
CpuTotals = Callable[[], "tuple[float, float] | None"]

_CLK_TCK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


@dataclass(frozen=True, slots=True)
class Setting:
    """What the engine should do: ``depth`` requests at most per connection (1: no
    pipelining), on at most ``connections`` connections (None: no cap), and ``why``.

    ``refill``: top a connection's queue up only once this many requests fit (1: as
    soon as one does). A server that answers one request at a time (osrm-routed)
    would otherwise get one write per answer, as without pipelining.

    ``nap``: the longest pause, in seconds, after a loop turn that brought answers
    (0: none). A server that answers one request at a time sends each answer alone,
    and a client that wakes for each one reads them one by one: a system call, a
    wake-up and the loop's bookkeeping per answer, each taken from the server when
    the two share the machine. Pausing while the server works through the requests
    queued on each connection lets the next turn read several answers at once (as a
    network card's interrupt coalescing does). The engine pauses less when its
    connections carry fewer requests (``PipelinedDispatch._take_nap``).
    """

    depth: int = 1
    connections: int | None = None
    why: str = ""
    refill: int = 1
    nap: float = 0.0

    @property
    def on(self) -> bool:
        return self.depth > 1


OFF = Setting()


def _read_start(path: str, size: int = 1024) -> bytes | None:
    """The first ``size`` bytes of a file; None if unreadable. Read every sweep: no
    buffered file object (its fstat and isatty calls cost more than the read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def machine_cpu(path: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, all) CPU seconds of every core since boot, or None where unreadable.

    Busy is everything but idle and iowait; steal counts as busy (the host took it).
    """
    first = _read_start(path)
    if first is None:
        return None
    fields = first.split(b"\n", 1)[0].split()
    if len(fields) < 6 or fields[0] != b"cpu":
        return None
    try:
        values = [int(v) for v in fields[1:9]]
    except ValueError:
        return None
    total = sum(values)
    idle = values[3] + values[4]  # idle, iowait
    return (total - idle) / _CLK_TCK, total / _CLK_TCK


def process_cpu(pids: tuple[int, ...], proc: str = "/proc") -> float | None:
    """user+sys CPU seconds the live processes ``pids`` used so far; None if none is readable."""
    total = 0
    seen = False
    for pid in pids:
        stat = _read_start(f"{proc}/{pid}/stat")
        if stat is None:
            continue
        fields = stat.rpartition(b")")[2].split()
        try:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (IndexError, ValueError):
            continue
        seen = True
    return total / _CLK_TCK if seen else None


def is_local_host(host: str) -> bool:
    """Whether ``host`` names this machine by a loopback name or address."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def listener_pids(port: int, proc: str = "/proc") -> tuple[int, ...] | None:
    """The processes holding a listening TCP socket on ``port`` (any address).

    From ``/proc/net/tcp{,6}`` (the socket's inode) and ``/proc/*/fd``. None when
    it cannot be told (no such socket found, or other users' fds not readable).
    Runs once per run, when the machine is first found busy: a few milliseconds.
    """
    inodes: set[str] = set()
    uids: set[int] = set()  # the sockets' owners: other users' processes are skipped unread
    for table in ("tcp", "tcp6"):
        try:
            with open(f"{proc}/net/{table}", encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    parts = line.split()
                    # local_address is ADDR:PORT in hex; state 0A is LISTEN.
                    listening = len(parts) > 9 and parts[3] == "0A"
                    if listening and int(parts[1].rpartition(":")[2], 16) == port:
                        inodes.add(parts[9])
                        uids.add(int(parts[7]))
        except (OSError, ValueError):
            continue
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: list[int] = []
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        fd_dir = f"{proc}/{entry}/fd"
        try:
            if os.stat(f"{proc}/{entry}").st_uid not in uids:
                continue
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return tuple(found) or None


class ServerCpu:
    """The CPU seconds used so far by the server listening on loopback ``port``.

    Finding it (:func:`listener_pids`) walks every process's fds: tens of
    milliseconds on a busy machine, so it runs in a thread and the engine's loop
    does not wait; until it is done, and when the server cannot be found or runs in
    this very process (a test's server thread: its CPU is the client's too), a
    reading is None.
    """

    def __init__(self, port: int) -> None:
        self._pids: tuple[int, ...] | None = None
        self.thread = threading.Thread(
            target=self._look, args=(port,), name="drumfire-find-server", daemon=True
        )
        self.thread.start()

    def _look(self, port: int) -> None:
        pids = listener_pids(port)
        self._pids = pids if pids and os.getpid() not in pids else ()

    def __call__(self) -> float | None:
        pids = self._pids
        return process_cpu(pids) if pids else None


def server_cpu_reader(port: int) -> Callable[[], float | None]:
    """The default way :class:`Pipelining` reads a local server's CPU: :class:`ServerCpu`."""
    return ServerCpu(port)


#: One sweep's readings: (clock, thread CPU s, machine busy s, machine all s, server CPU s,
#: requests answered); None where not read.
_Readings = tuple[float, float, "float | None", "float | None", "float | None", int]


class Pipelining:
    """Decides, sweep after sweep, whether the engine pipelines (see the module doc).

    Args:
        depth: the most requests per connection when on (the CLI's ``--pipeline``);
            1 means never.
        thread_cpu: CPU seconds of the engine's thread (``time.thread_time``).
        machine: cumulative (busy, all) CPU seconds of the machine (:func:`machine_cpu`);
            None: the machine is never looked at (only the client case).
        server: given the loopback port of the run's origin, a reader of the CPU
            seconds its server used so far, or None when that cannot be told
            (:func:`server_cpu_reader`). Looked up once, the first time the machine
            is found saturated.
    """

    #: Share of one core the engine's thread must use to be the bottleneck, and
    #: below which it no longer is; each must hold for CPU_TICKS sweeps in a row.
    #: One sweep at CPU_SURE or more is enough (the first 50 ms against nginx).
    CPU_BOUND, CPU_FREE, CPU_TICKS, CPU_SURE = 0.85, 0.5, 2, 0.95
    #: Seconds: the shortest span a share is measured over. Below the 50 ms sweep:
    #: timers fire up to a millisecond early, and a skipped sweep delays the switch.
    CPU_SPAN = 0.04
    #: Connections kept while pipelining for the client's CPU: a few deep queues mean
    #: few, large reads and writes. Never more than were open when it started.
    CONNECTIONS = 4
    #: The client case refills a connection as soon as one request fits: a fast server's
    #: answers come many per read, and the refill of each loop turn is one write anyway.
    CLIENT_REFILL = 1
    #: Busy share of all cores from which the machine is saturated, and below which
    #: it no longer is; held for MACHINE_TICKS sweeps (more than CPU_TICKS: the
    #: machine's load moves with everything else running on it).
    MACHINE_BUSY, MACHINE_FREE, MACHINE_TICKS = 0.9, 0.7, 4
    #: Cores' worth of CPU the local server must use meanwhile: it is one of the
    #: processes the machine is busy with, not an idle one behind a busy machine.
    SERVER_BUSY = 0.5
    #: The machine case is given up for the run when, GUARD_SPAN seconds after it
    #: started, answers come at less than GUARD_RATIO of the rate before it.
    GUARD_SPAN, GUARD_RATIO = 0.3, 0.8
    #: The machine case's longest pause after a turn with answers (Setting.nap), and the
    #: share of the time the server needs for the requests outstanding that a pause may
    #: take: the server does not run out of queued work meanwhile. On OSRM
    #: (docs/benchmarks.md, "Issue 19, tenth session"): about 6 answers per read instead
    #: of one, and about half the client CPU per request.
    NAP, NAP_SHARE = 0.02, 0.25

    def __init__(
        self,
        depth: int,
        *,
        thread_cpu: Callable[[], float],
        machine: CpuTotals | None = None,
        server: Callable[[int], Callable[[], float | None] | None] = server_cpu_reader,
    ) -> None:
        self.depth = max(1, depth)
        self.thread_cpu = thread_cpu
        self.machine = machine
        self.server = server
        #: The loopback port of the run's only origin, if so (set by the engine):
        #: the machine case is only for such a server.
        self.local_port: int | None = None
        self.setting = OFF
        self._server_cpu: Callable[[], float | None] | None = None
        self._server_port: int | None = None  # the port _server_cpu was looked up for
        # Until start(): as if the clocks had started at zero.
        self._mark: _Readings = (0.0, 0.0, None, None, None, 0)
        self._streak = 0
        self._machine_streak = 0
        self._machine_ok = True  # False once the machine case was found not to help
        self._guard: tuple[float, int, float] | None = None  # (since, answered, rate before)
        self._rate = 0.0  # answers per second over the last sweeps

    @property
    def on(self) -> bool:
        return self.setting.on

    @property
    def why(self) -> str:
        """Why it is on: ``"client"`` or ``"machine"``; ``""`` while off."""
        return self.setting.why

    @property
    def rate(self) -> float:
        """Answers per second over the last sweeps (0 before the second sweep)."""
        return self._rate

    def pause(self, outstanding: int, connections: int) -> float:
        """Seconds to pause after a loop turn with answers (``Setting.nap``), given the
        requests ``outstanding`` on the ``connections`` that carry them; 0: none.

        A share (NAP_SHARE) of the time the server needs for them at the answer rate
        of the last sweeps, and at most the setting's nap: fewer outstanding (the
        input's end) make it shorter, fewer than two per connection (rows that
        cannot be pipelined, connections just opened) none, and so does an unknown
        rate.
        """
        longest = self.setting.nap
        rate = self._rate
        if longest <= 0.0 or rate <= 0.0 or outstanding < 2 * connections:
            return 0.0
        return min(self.NAP_SHARE * outstanding / rate, longest)

    def start(self, now: float, answered: int = 0) -> None:
        """Take the first readings (the run starts)."""
        self._mark = self._read(now, answered)

    def _read(self, now: float, answered: int) -> _Readings:
        busy = all_ = server = None
        if self.machine is not None and self.local_port is not None and self._machine_ok:
            got = self.machine()
            if got is not None:
                busy, all_ = got
            if self._server_cpu is not None and self._server_port == self.local_port:
                server = self._server_cpu()
        return now, self.thread_cpu(), busy, all_, server, answered

    def sample(self, now: float, answered: int = 0, open_connections: int = 0) -> Setting | None:
        """One sweep's readings; the new setting when the decision changes, else None.

        ``answered``: requests answered so far (for the guard of the machine case);
        ``open_connections``: connections open now (the cap is never above it).
        """
        if self.depth <= 1:
            return None
        wall0, cpu0, busy0, all0, server0, answered0 = self._mark
        span = now - wall0
        if span < self.CPU_SPAN:
            return None
        self._mark = mark = self._read(now, answered)
        _, cpu, busy, all_, server, _ = mark
        thread = (cpu - cpu0) / span
        # Answers per second, smoothed over a few sweeps: the guard's "before".
        rate = (answered - answered0) / span
        self._rate = rate if self._rate == 0.0 else 0.5 * (self._rate + rate)
        machine: float | None = None
        if busy is not None and busy0 is not None and all_ is not None and all0 is not None:
            machine = (busy - busy0) / (all_ - all0) if all_ > all0 else None
        served: float | None = None
        if server is not None and server0 is not None:
            served = (server - server0) / span
        why = self.setting.why
        if why == "machine":
            return self._while_machine(now, thread, machine, answered)
        if why == "client":
            return self._while_client(thread, machine)
        return self._while_off(now, thread, machine, served, answered, open_connections)

    def _cap(self, open_: int) -> int:
        return max(1, min(open_, self.CONNECTIONS)) if open_ > 0 else self.CONNECTIONS

    def _while_off(
        self,
        now: float,
        thread: float,
        machine: float | None,
        served: float | None,
        answered: int,
        open_: int,
    ) -> Setting | None:
        self._streak = self._streak + 1 if thread >= self.CPU_BOUND else 0
        if self._streak >= self.CPU_TICKS or thread >= self.CPU_SURE:
            self._streak = self._machine_streak = 0
            return self._turn(Setting(self.depth, self._cap(open_), "client", self.CLIENT_REFILL))
        if machine is None or machine < self.MACHINE_BUSY:
            self._machine_streak = 0
            return None
        if self._server_port != self.local_port:
            # The machine is busy: find the server once, then measure it too.
            assert self.local_port is not None
            self._server_port = self.local_port
            self._server_cpu = self.server(self.local_port)
            if self._server_cpu is None:
                self._machine_ok = False  # cannot tell who is busy: stay with the client case
            else:
                self._mark = (*self._mark[:4], self._server_cpu(), self._mark[5])
            return None
        if served is None or served < self.SERVER_BUSY:
            self._machine_streak = 0
            return None
        self._machine_streak += 1
        if self._machine_streak < self.MACHINE_TICKS:
            return None
        self._machine_streak = 0
        self._guard = (now, answered, self._rate)
        # Two connections per core's worth the server uses: it serves each connection's
        # requests in turn, one thread at a time, so each of its threads finds a second
        # connection's request waiting while the client reads the first one's answers.
        # One more covers the gap while a connection it closed (osrm-routed: after 512
        # answers) is opened again. On OSRM with 2 cores that is 5: 0.96x wrk, where
        # ceil(served) + 1 (3) gave 0.92x and 8 gave 0.95x at more CPU per request
        # (docs/benchmarks.md, issue 19).
        conns = 2 * math.ceil(served) + 1
        conns = min(conns, open_) if open_ else conns
        return self._turn(Setting(self.depth, conns, "machine", self.refill_at(), self.NAP))

    def refill_at(self) -> int:
        """The machine case's refill mark: half the depth (see :class:`Setting`)."""
        return max(1, self.depth // 2)

    def _while_client(self, thread: float, machine: float | None) -> Setting | None:
        # A local server keeping the machine busy keeps it on too: no flapping
        # when pipelining itself brought the client's share down.
        busy = machine is not None and machine >= self.MACHINE_BUSY
        self._streak = self._streak + 1 if thread < self.CPU_FREE and not busy else 0
        if self._streak < self.CPU_TICKS:
            return None
        self._streak = 0
        return self._turn(OFF)

    def _while_machine(
        self, now: float, thread: float, machine: float | None, answered: int
    ) -> Setting | None:
        guard = self._guard
        if guard is not None and now - guard[0] >= self.GUARD_SPAN:
            since, answered0, before = guard
            self._guard = None
            if (answered - answered0) / (now - since) < self.GUARD_RATIO * before:
                self._machine_ok = False  # it did not help here: not again in this run
                self._streak = 0
                return self._turn(OFF)
        # Off once neither case holds: the machine has room again, and the client
        # is not CPU-bound either.
        free = thread < self.CPU_BOUND and (machine is None or machine < self.MACHINE_FREE)
        self._streak = self._streak + 1 if free else 0
        if self._streak < self.CPU_TICKS:
            return None
        self._streak = 0
        return self._turn(OFF)

    def _turn(self, setting: Setting) -> Setting:
        self.setting = setting
        return setting

"""The pipelining policy, with fake CPU readings: no sleeping, no real /proc."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from drumfire._pipelining import (
    OFF,
    Pipelining,
    ServerCpu,
    Setting,
    is_local_host,
    listener_pids,
    machine_cpu,
    process_cpu,
)

SWEEP = 0.05


class Fake:
    """A run's readings, advanced one sweep at a time."""

    def __init__(self, *, server: float | None = 1.7, cores: int = 2) -> None:
        self.now = 0.0
        self.thread = 0.0  # CPU seconds of the engine's thread
        self.busy = 0.0  # machine: busy and all CPU seconds
        self.all = 0.0
        self.server_s = 0.0 if server is not None else None
        self.answered = 0
        self.cores = cores
        self.lookups: list[int] = []
        self.server_share = server

    def machine(self) -> tuple[float, float] | None:
        return self.busy, self.all

    def server(self, port: int) -> Callable[[], float | None] | None:
        self.lookups.append(port)
        if self.server_s is None:
            return None
        return lambda: self.server_s

    def policy(self, depth: int = 64, *, port: int | None = 5000) -> Pipelining:
        p = Pipelining(
            depth, thread_cpu=lambda: self.thread, machine=self.machine, server=self.server
        )
        p.local_port = port
        p.start(self.now, self.answered)
        return p

    def sweep(
        self,
        p: Pipelining,
        *,
        thread: float = 0.2,
        machine: float = 0.5,
        rate: float = 2000.0,
        open_connections: int = 8,
    ) -> Setting | None:
        """One sweep where the thread used ``thread`` of a core and the machine
        ``machine`` of all its cores; ``rate`` answers per second."""
        self.now += SWEEP
        self.thread += thread * SWEEP
        self.all += self.cores * SWEEP
        self.busy += machine * self.cores * SWEEP
        if self.server_s is not None and self.server_share is not None:
            self.server_s += self.server_share * SWEEP
        self.answered += int(rate * SWEEP)
        return p.sample(self.now, self.answered, open_connections)


def sweeps_until_on(fake: Fake, p: Pipelining, most: int = 12, **kw: float) -> int | None:
    for n in range(1, most + 1):
        if fake.sweep(p, **kw) is not None and p.on:
            return n
    return None


@pytest.mark.parametrize(
    ("share", "sweeps"), [(1.0, 1), (0.96, 1), (0.9, 2), (0.86, 2), (0.8, None)]
)
def test_the_client_case_starts_after_enough_busy_sweeps(share: float, sweeps: int | None) -> None:
    # 85 % of a core for 2 sweeps in a row, or 95 % for one: the client is CPU-bound.
    fake = Fake()
    p = fake.policy(port=None)
    assert sweeps_until_on(fake, p, 5, thread=share) == sweeps
    if sweeps is not None:
        assert p.setting == Setting(64, 4, "client")


def test_the_client_case_keeps_no_more_connections_than_are_open() -> None:
    fake = Fake()
    p = fake.policy(port=None)
    assert fake.sweep(p, thread=1.0, open_connections=2) == Setting(64, 2, "client")


def test_the_client_case_ends_when_the_thread_is_free_again() -> None:
    fake = Fake()
    p = fake.policy(port=None)
    fake.sweep(p, thread=1.0)
    assert p.why == "client"
    assert fake.sweep(p, thread=0.6) is None  # between the two thresholds: no change
    assert fake.sweep(p, thread=0.3) is None
    assert fake.sweep(p, thread=0.3) == OFF
    assert not p.on


def test_a_busy_machine_keeps_the_client_case_on() -> None:
    fake = Fake()
    p = fake.policy()
    fake.sweep(p, thread=1.0)
    for _ in range(10):
        assert fake.sweep(p, thread=0.2, machine=0.98) is None
    assert p.why == "client"


def test_depth_1_never_pipelines() -> None:
    fake = Fake()
    p = fake.policy(depth=1)
    assert sweeps_until_on(fake, p, thread=1.0, machine=1.0) is None


def test_a_local_server_saturating_the_machine_turns_it_on() -> None:
    # osrm-routed: the client's thread uses a fifth of a core, the machine is full,
    # the server uses 1.7 cores. One sweep finds the server, then 4 in a row.
    fake = Fake()
    p = fake.policy()
    assert sweeps_until_on(fake, p, thread=0.2, machine=0.97) == 1 + Pipelining.MACHINE_TICKS
    # 1.7 cores' worth: two connections for each of its 2 busy threads, and one spare.
    # Pausing after each turn with answers, so that the next reads several at once.
    assert p.setting == Setting(64, 5, "machine", 32, Pipelining.NAP)
    assert fake.lookups == [5000]  # looked up once


def test_the_rate_is_answers_per_second_over_the_last_sweeps() -> None:
    fake = Fake()
    p = fake.policy()
    assert p.rate == 0.0
    fake.sweep(p, rate=2000.0)
    assert p.rate == pytest.approx(2000.0)
    fake.sweep(p, rate=1000.0)
    assert p.rate == pytest.approx(1500.0)  # smoothed


@pytest.mark.parametrize(
    ("outstanding", "connections", "pause"),
    [
        (205, 5, Pipelining.NAP),  # 205 requests at 2,000/s: a quarter is 25 ms, over the cap
        (55, 5, 0.25 * 55 / 2000),  # fewer queued (the input's end): a shorter pause
        (6, 3, 0.25 * 6 / 2000),
        (6, 5, 0.0),  # fewer than two per connection: not pipelining in earnest
        (0, 0, 0.0),  # nothing in flight
    ],
)
def test_the_machine_case_pauses_for_a_share_of_the_queued_work(
    outstanding: int, connections: int, pause: float
) -> None:
    fake = Fake()
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.97, rate=2000.0)
    assert p.why == "machine"
    assert p.pause(outstanding, connections) == pytest.approx(pause)


def test_no_pause_in_the_client_case_nor_while_off() -> None:
    fake = Fake()
    p = fake.policy(port=None)
    fake.sweep(p, rate=2000.0)
    assert p.pause(205, 5) == 0.0  # off: the rate is known, the setting has no nap
    fake.sweep(p, thread=1.0)
    assert p.why == "client"
    assert p.pause(205, 5) == 0.0


def test_the_machine_case_needs_consecutive_saturated_sweeps() -> None:
    fake = Fake()
    p = fake.policy()
    fake.sweep(p, machine=0.97)  # finds the server
    for _ in range(5):
        for _ in range(Pipelining.MACHINE_TICKS - 1):
            assert fake.sweep(p, machine=0.97) is None
        assert fake.sweep(p, machine=0.6) is None
    assert not p.on


def test_no_machine_case_for_a_remote_server() -> None:
    fake = Fake()
    p = fake.policy(port=None)
    assert sweeps_until_on(fake, p, thread=0.2, machine=1.0) is None
    assert fake.lookups == []


def test_no_machine_case_when_the_server_cannot_be_found() -> None:
    # Not readable, or the server runs in this process (a test's server thread).
    fake = Fake(server=None)
    p = fake.policy()
    assert sweeps_until_on(fake, p, thread=0.2, machine=1.0) is None
    assert fake.lookups == [5000]


def test_no_machine_case_when_the_server_is_not_what_keeps_the_machine_busy() -> None:
    # Another program fills the cores; the local server (a slow API) waits on I/O.
    fake = Fake(server=0.1)
    p = fake.policy()
    assert sweeps_until_on(fake, p, thread=0.2, machine=1.0) is None


def test_no_machine_case_without_a_machine_reading() -> None:
    fake = Fake()
    p = Pipelining(64, thread_cpu=lambda: fake.thread, machine=lambda: None, server=fake.server)
    p.local_port = 5000
    p.start(0.0)
    assert sweeps_until_on(fake, p, thread=0.2, machine=1.0) is None


def test_the_machine_case_ends_when_the_machine_has_room_again() -> None:
    fake = Fake()
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.97)
    assert fake.sweep(p, machine=0.8) is None  # between the thresholds: stays
    assert fake.sweep(p, machine=0.5) is None
    assert fake.sweep(p, machine=0.5) == OFF


def test_the_machine_case_is_given_up_when_answers_come_slower() -> None:
    fake = Fake()
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.97, rate=2000)
    changed = [fake.sweep(p, machine=0.97, rate=1000) for _ in range(8)]
    assert OFF in changed
    assert not p.on
    # ...and not tried again in this run.
    assert sweeps_until_on(fake, p, 20, thread=0.2, machine=0.97, rate=2000) is None
    # The client case still may.
    assert sweeps_until_on(fake, p, 2, thread=1.0) == 1


def test_the_machine_case_stays_when_answers_come_as_fast() -> None:
    fake = Fake()
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.97, rate=2000)
    assert all(fake.sweep(p, machine=0.97, rate=1900) is None for _ in range(20))
    assert p.why == "machine"


def test_short_spans_are_not_measured() -> None:
    fake = Fake()
    p = fake.policy(port=None)
    fake.thread = 1.0
    assert p.sample(Pipelining.CPU_SPAN / 2, 0, 8) is None  # too short to tell
    assert p.sample(SWEEP, 0, 8) == Setting(64, 4, "client")


# -- readers -----------------------------------------------------------------------------


def test_machine_cpu_reads_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    tick = os.sysconf("SC_CLK_TCK")
    assert machine_cpu(str(stat)) == (150 / tick, 1000 / tick)
    stat.write_text("garbage\n")
    assert machine_cpu(str(stat)) is None
    assert machine_cpu(str(tmp_path / "missing")) is None


def test_process_cpu_sums_utime_and_stime(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    for pid, (utime, stime) in {11: (30, 10), 12: (5, 5)}.items():
        (tmp_path / str(pid)).mkdir()
        fields = ["S", "1", *["0"] * 9, str(utime), str(stime), "0", "0"]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (osrm (routed)) " + " ".join(fields))
    assert process_cpu((11, 12, 13), str(tmp_path)) == pytest.approx(50 / tick)
    assert process_cpu((13,), str(tmp_path)) is None


def test_listener_pids_finds_the_process_listening_on_the_port(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue ... uid  timeout inode\n"
    tail = f"00000000:00000000 00:00000000 00000000 {os.getuid():5}        0"
    rows = [
        # 127.0.0.1:5000 LISTEN, inode 777; the same port connected (01), inode 888.
        f"   0: 0100007F:1388 00000000:0000 0A {tail} 777 1\n",
        f"   1: 0100007F:1388 0100007F:D431 01 {tail} 888 1\n",
    ]
    (tmp_path / "net" / "tcp").write_text(header + "".join(rows))
    for pid, inode in ((40, 888), (41, 777)):
        fd = tmp_path / str(pid) / "fd"
        fd.mkdir(parents=True)
        os.symlink(f"socket:[{inode}]", fd / "3")
    assert listener_pids(5000, str(tmp_path)) == (41,)
    assert listener_pids(5001, str(tmp_path)) is None


def test_listener_pids_finds_a_real_listener() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        found = listener_pids(port)
    if found is None:  # pragma: no cover - /proc not readable here
        pytest.skip("no /proc/net/tcp")
    assert os.getpid() in found


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("api.localhost", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_local_host(host: str, local: bool) -> None:
    assert is_local_host(host) is local


def test_the_machine_case_keeps_two_connections_per_busy_server_core_and_one_more() -> None:
    fake = Fake(server=5.5, cores=8)
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.95, open_connections=16)
    assert p.setting == Setting(64, 13, "machine", 32, Pipelining.NAP)
    fake = Fake(server=5.5, cores=8)
    p = fake.policy()
    sweeps_until_on(fake, p, thread=0.2, machine=0.95, open_connections=4)
    assert p.setting == Setting(64, 4, "machine", 32, Pipelining.NAP)  # never more than open


def test_server_cpu_reads_a_server_in_another_process() -> None:
    import subprocess
    import sys

    code = (
        "import socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); sys.stdin.read()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            port = int(proc.stdout.readline())
            reader = ServerCpu(port)
            reader.thread.join(10)
            found = listener_pids(port)
            got = reader()
        finally:
            proc.stdin.close()
            proc.wait(10)
    if found is None:  # pragma: no cover - /proc not readable here
        pytest.skip("no /proc/net/tcp")
    assert found == (proc.pid,)
    assert got is not None
    assert got >= 0.0

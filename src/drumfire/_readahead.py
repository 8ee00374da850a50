"""Read-ahead: a child process reads the rest of the input and prepares the requests.

Against a fast local server ``drumfire run`` is limited by its one Python
core, and about a third of its work per row needs no network: read and split
the input line, take the id, check for a duplicate and for ``--resume``,
render the request bytes (:meth:`Engine._make <drumfire._engine.Engine._make>`).
When the engine finds its own CPU is the limit (the moment it starts
pipelining), the command line forks a child that takes over the input where
the engine left it, does that part, and sends the outcome, in input order, in
chunks over a pipe; the engine turns each prepared row into a
:class:`~drumfire._engine.Job` with one call. On a slow or remote server the
engine is never CPU-bound, and no child is started.

* **Order and every row.** The child sends one entry per input item: a
  prepared row, an error row (input or template problem), or "skipped"
  (``--resume``). The engine numbers them as they arrive, as it numbers
  items read in-process, so ``--ordered``, the reorder window and the error
  rows behave the same. The child starts from the engine's state: the ids
  seen so far (duplicates), the ``--resume`` ids not yet met.
* **Priority.** The child runs at ``SCHED_IDLE``: only on CPU time nobody else
  wants. So the server is never pushed onto the engine's core: at normal
  priority, or ``nice 10``, the engine was preempted 6 000-10 000 times per
  200 000 rows against nginx (2.08-2.10 s), at ``SCHED_IDLE`` 2 000-4 000
  times (1.98-2.00 s). The child only started because the client was
  CPU-bound while the machine had CPU to spare; if other processes later take
  every core, the child gets little CPU and the run slows down.
* **Ending.** Ctrl-C goes to the process group: the child ignores it and the
  parent decides. :meth:`ReadAhead.close` closes the pipe and kills and reaps
  the child, which holds nothing but the input it reads. If the parent dies
  (``kill -9``), the child's next write fails and it exits.
* **Failures.** An error while reading the input in the child (an I/O error,
  a corrupt gzip stream) ends the run with an :class:`~drumfire.InputError`
  naming it.

Linux only (``fork``, ``SCHED_IDLE``) and only with 2 or more CPUs;
``drumfire run --no-read-ahead`` turns it off.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._engine import SKIPPED, Job
from ._errors import InputError
from ._request import Prepared

if TYPE_CHECKING:
    from ._engine import Engine, Item

__all__ = ["ReadAhead", "Starter", "available"]

CHUNK_ROWS = 512  # entries per message: about 35 kB of pickle for OSRM-like rows
PIPE_BYTES = 1 << 20  # the pipe's capacity: the child may run ~15 chunks ahead
_HEADER = struct.Struct("<I")
_new_prepared = tuple.__new__


def available() -> bool:
    """Whether this machine can run a read-ahead process usefully."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    return len(os.sched_getaffinity(0)) >= 2


class ReadAhead:
    """The child process and the parent's end of its pipe; iterate for the engine's items.

    ``items`` is the rest of the engine's source (see
    :meth:`Engine.hand_over_items`); iterate the read-ahead once in its place.
    The child is a fork of this process taken from inside an event-loop
    callback: it never returns to the loop, and ends with ``os._exit``.
    """

    def __init__(self, engine: Engine, items: Iterator[Item]) -> None:
        read_fd, write_fd = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (ImportError, AttributeError, OSError):
            pass  # a smaller pipe only means more turns
        self.pid = os.fork()
        if self.pid == 0:  # the child
            code = 0
            try:
                os.close(read_fd)
                _serve(engine, items, write_fd)
            except BaseException:  # the child must never return into the caller
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        self._stream = os.fdopen(read_fd, "rb", buffering=PIPE_BYTES)
        self._closed = False

    def __iter__(self) -> Iterator[Job | Any]:
        # The engine takes the items one by one from C (chain over lists): the
        # generator below runs once per chunk, not once per row.
        return itertools.chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[Job | Any]]:
        stream = self._stream
        loads = pickle.loads
        unpack = _HEADER.unpack
        size = _HEADER.size
        while True:
            head = stream.read(size)
            if len(head) < size:
                raise InputError("the read-ahead process ended before the end of the input")
            entries, duplicates, failure = loads(stream.read(unpack(head)[0]))
            items: list[Job | Any] = [
                Job(-1, e[0], e[2], _new_prepared(Prepared, e[1]))
                if type(e) is tuple
                else SKIPPED
                if e is None
                else e  # an error row
                for e in entries
            ]
            if duplicates:
                items.insert(0, duplicates)
            yield items
            if failure is not None:
                if failure:
                    raise InputError(failure)
                return  # the end of the input

    def _signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """End the child (it only reads) and reap it; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stream.close()
        self._signal(signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


class Starter:
    """The engine's ``on_cpu_bound`` hook: hand the rest of its input to a read-ahead child.

    :meth:`close` (idempotent) ends the child, if one was started.
    """

    def __init__(self) -> None:
        self.reader: ReadAhead | None = None

    def __call__(self, engine: Engine) -> None:
        def take(items: Iterator[Item]) -> Iterator[Any]:
            self.reader = ReadAhead(engine, items)
            return iter(self.reader)

        engine.hand_over_items(take)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _serve(engine: Engine, items: Iterator[Item], fd: int) -> None:
    """The child: prepare every item, send the entries in chunks, then the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # it then runs at the parent's priority
    stats = engine.stats
    make = engine._make
    keep = engine.keep
    entries: list[Any] = []
    reported = stats.duplicates  # those seen before the fork are counted already
    failure: str | None = ""

    def send(end: str | None) -> None:
        nonlocal reported
        duplicates = stats.duplicates - reported
        reported = stats.duplicates
        blob = pickle.dumps((entries, duplicates, end), pickle.HIGHEST_PROTOCOL)
        _write_all(fd, _HEADER.pack(len(blob)) + blob)
        entries.clear()

    try:
        for item in items:
            made = make(item)
            if type(made) is Job:
                kept = engine._kept(made.row) if keep else None
                entries.append((made.id, tuple(made.prepared), kept))
            elif made is SKIPPED:
                entries.append(None)
            else:
                entries.append(made)
            if len(entries) >= CHUNK_ROWS:
                send(None)
    except Exception as exc:  # an unreadable input: the parent ends the run with it
        failure = f"reading the input failed: {type(exc).__name__}: {exc}"[:500]
    send(failure)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

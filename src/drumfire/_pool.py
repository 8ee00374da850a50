"""The connection pool: idle keep-alive connections per origin, and how many are open.

Shared by the batch engine and the benchmark runner. Like httpcore's pool it
asks the connections predicates (:meth:`Connection.is_idle
<drumfire._connection.Connection.is_idle>`) and never writes their state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._connection import Connection
    from ._request import Origin

__all__ = ["Pool"]


class Pool:
    """Idle keep-alive connections per origin, and the count of open ones.

    At most ``limit`` connections are open at once: when a new origin needs a
    connection and the limit is reached, an idle connection to another origin
    is closed first (:meth:`make_room`). So a run never holds more sockets
    than its concurrency. The owner tells the pool of each connection it
    opens (:meth:`opened`) and of each that closed (:meth:`closed`).
    """

    __slots__ = ("_cuts", "_open", "answers", "idle", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: dict[Origin, list[Connection]] = {}
        self._open = 0
        #: The most answers an origin's server gives a connection, learned (see :meth:`cut`).
        self.answers: dict[Origin, int] = {}
        self._cuts: dict[Origin, int] = {}  # the answers before the origin's last cut

    @property
    def open(self) -> int:
        """Connections open or connecting."""
        return self._open

    def opened(self, conn: Connection) -> None:
        """``conn`` was just created (it is connecting)."""
        self._open += 1

    def closed(self, conn: Connection) -> None:
        """``conn`` closed (its owner's ``on_closed``)."""
        self._open -= 1

    def cut(self, origin: Origin, answers: int) -> None:
        """A server ended a connection to ``origin`` after ``answers`` answers with a
        ``Connection: close``, in front of requests pipelined behind (see
        ``Connection.cut``: only such exact counts).

        Servers that limit requests per connection (nginx's ``keepalive_requests``)
        end every connection at the same count, and pipelined requests written past
        it are read by nobody: sent again elsewhere, written twice. The same count
        twice in a row is taken as the limit (:attr:`answers`), as a
        ``Keep-Alive: max`` would be; a cut at another count forgets it (resets,
        a server restarted with another limit).
        """
        if self._cuts.get(origin) == answers:
            self.answers[origin] = answers
            return
        self._cuts[origin] = answers
        self.answers.pop(origin, None)

    def take(self, origin: Origin) -> Connection | None:
        """An idle connection to ``origin`` (the most recently used), if any."""
        stack = self.idle.get(origin)
        while stack:
            conn = stack.pop()
            if conn.is_idle():
                return conn
        return None

    def may_take(self, origin: Origin) -> bool:
        """Whether :meth:`take` may find an idle connection to ``origin`` (False: it will not)."""
        return bool(self.idle.get(origin))

    def give(self, conn: Connection) -> None:
        """``conn`` fell idle: keep it for the next request to its origin."""
        stack = self.idle.get(conn.origin)
        if stack is None:
            self.idle[conn.origin] = [conn]
        else:
            stack.append(conn)

    def make_room(self) -> None:
        """Close idle connections (to any origin) until one more may be opened."""
        for stack in self.idle.values():
            while stack and self._open >= self.limit:
                stack.pop(0).close()
            if self._open < self.limit:
                return

    def close_all(self) -> None:
        """End of run: drop every idle connection at once.

        An abort, not a close: a TLS close is a shutdown exchange that needs
        the event loop, which the caller is about to stop; for TCP both end
        in the same RST (see ``Connection.close``).
        """
        for stack in self.idle.values():
            while stack:
                conn = stack.pop()
                if conn.is_idle():
                    conn.abort("cancelled")
        self.idle.clear()

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

    __slots__ = ("_open", "idle", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: dict[Origin, list[Connection]] = {}
        self._open = 0

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

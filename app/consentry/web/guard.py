"""Waitress's listener with bounds for slow and greedy clients, and its own error replies
dressed in our security headers.

Waitress alone closes a connection only after ``channel_timeout`` of *silence*, and stops
accepting when ``connection_limit`` is reached: 200 sockets that trickle a header line every
4 s, or 150 idle sockets that reconnect as soon as they are closed, held every slot and the
kiosk page stopped answering. Here:

- one client address holds at most ``per_client`` connections: a newcomer from an address at
  its share closes that address's connection that has waited longest for a request (refused
  only when all of them are busy with one). Behind a NAT, or with the shipped bind 127.0.0.1
  where every client (the kiosk's own browser too) is one address, idle sockets held by one
  local process then cannot lock the page out;
- a connection must deliver a complete request (head and body) within ``head_timeout_s`` of
  being accepted or of its previous response, however busy it keeps the line;
- at ``total`` connections the listener keeps accepting and makes room by closing the
  connection that has waited longest for its request, from the address holding the most,
  so a flood from many addresses cannot lock a newcomer out either (a request being served
  is never cut).

The accept loop runs on waitress's own thread; the door's frame loop never waits on it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections import Counter

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

log = logging.getLogger(__name__)
NOTE_EVERY_S = 60.0  # a flood must not become a flood of log lines


def reset(conn: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): a refused flood leaves no TIME_WAIT sockets behind."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def error_task(security_headers: list[tuple[str, str]]) -> type[ErrorTask]:
    class SecureErrorTask(ErrorTask):
        """Waitress's 400, 413, 431, 500 and 501, with the headers our own pages send."""

        def execute(self) -> None:
            # before waitress's own (2.1 or 3.x): it writes the reply, and with it the head, at its end
            self.response_headers.extend(security_headers)
            super().execute()

    return SecureErrorTask


class GuardedChannel(HTTPChannel):
    serving = False  # a worker thread is running this connection's request

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since = self.creation_time  # when this connection began to owe us a request

    def service(self) -> None:
        self.serving = True
        try:
            super().service()
        finally:
            # in this order: the loop thread must never see "not serving" with the old clock
            self.waiting_since = time.time()
            self.serving = False

    def owes_request(self) -> bool:
        """Waiting for a request: none queued or being served (its answer may still be sent)."""
        return not self.requests and not self.serving and not self.will_close


class GuardedServer(TcpWSGIServer):
    """A TcpWSGIServer (``adj`` as waitress's Adjustments) with the bounds above."""

    def __init__(self, application, *, adj, per_client: int, total: int, head_timeout_s: float,
                 security_headers: list[tuple[str, str]]) -> None:
        self.per_client, self.total, self.head_timeout_s = per_client, total, head_timeout_s
        self.channel_class = type("Channel", (GuardedChannel,), {"error_task_class": error_task(security_headers)})
        self.refused = self.evicted = self.cut = 0
        self._noted: dict[str, float] = {}
        super().__init__(application, map={}, adj=adj, sockinfo=adj.listen[0])

    def _note(self, kind: str, message: str, *args) -> None:
        now = time.monotonic()
        if now - self._noted.get(kind, -NOTE_EVERY_S) >= NOTE_EVERY_S:
            self._noted[kind] = now
            log.warning(message + " (at most one such line a minute)", *args)

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        host = addr[0]
        channels = list(self.active_channels.values())
        per_host = Counter(c.addr[0] for c in channels)
        if per_host[host] >= self.per_client:  # one of its own makes room, or none (all busy)
            if not self._make_room([c for c in channels if c.addr[0] == host], per_host):
                self.refused += 1
                self._note("refused", "web: refusing a connection from %s (%d open, all busy)", host, per_host[host])
                reset(conn)
                return
        elif len(channels) >= self.total and not self._make_room(channels, per_host):
            self.refused += 1
            self._note("full", "web: %d connections all busy; refusing one from %s", len(channels), host)
            reset(conn)
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            reset(conn)
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def _make_room(self, channels: list[GuardedChannel], per_host: Counter) -> bool:
        """Close the connection among ``channels`` that has waited longest for a request, from
        the address holding the most; False when every one is busy with a request."""
        waiting = [c for c in channels if c.owes_request() and not c.total_outbufs_len]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: (-per_host[c.addr[0]], c.waiting_since))
        self.evicted += 1
        self._note("evicted", "web: making room for a newcomer; closing the longest-waiting connection from %s",
                   victim.addr[0])
        victim.handle_close()
        return True

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.head_timeout_s
        for channel in list(self.active_channels.values()):
            if channel.owes_request() and channel.waiting_since < cutoff:
                self.cut += 1
                channel.will_close = True

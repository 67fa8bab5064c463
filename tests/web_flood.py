"""Slow and greedy web clients, run as their own process by tests/test_hostile_web.py so that
they compete with the appliance for the CPU as a real attacker would, not for the test's GIL.

    python -m tests.web_flood PORT --sockets 200 --addresses 20 --trickle 4 --seconds 30

opens ``--sockets`` connections to 127.0.0.1:PORT from loopback addresses 127.0.0.2,
127.0.0.3, … (``--first`` onwards, ``--addresses`` of them, round robin). With ``--trickle S`` each sends a request
line and then one header line every S seconds and never ends its head (slow loris); without
it, each sends nothing (idle). Every socket the server closes is reopened at once. Prints one
JSON line at the end: connections opened and closed by the server, and the most held open at
once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import signal
import socket
import time


class Flood:
    def __init__(self, port: int, sockets: int, addresses: int, trickle: float | None, first: int = 2) -> None:
        self.port, self.addresses, self.trickle, self.first = port, addresses, trickle, first
        self.selector = selectors.DefaultSelector()
        self.slots: dict[int, socket.socket | None] = dict.fromkeys(range(sockets))
        self.sent_line: dict[int, float] = {}
        self.opened = self.closed = self.held = 0

    def source(self, slot: int) -> str:
        return f"127.0.0.{self.first + slot % self.addresses}"

    def open(self, slot: int) -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((self.source(slot), 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            return  # tried again on the next tick
        self.slots[slot] = s
        self.sent_line[slot] = 0.0
        self.selector.register(s, selectors.EVENT_READ, slot)
        self.opened += 1

    def drop(self, slot: int) -> None:
        s = self.slots[slot]
        if s is not None:
            self.selector.unregister(s)
            s.close()
            self.slots[slot] = None
            self.closed += 1

    def tick(self) -> None:
        now = time.monotonic()
        for slot, s in self.slots.items():
            if s is None:
                self.open(slot)
            elif self.trickle is not None and now - self.sent_line[slot] >= self.trickle:
                line = b"X-Slow: 1\r\n" if self.sent_line[slot] else b"GET / HTTP/1.1\r\nHost: x\r\n"
                try:
                    s.send(line)
                    self.sent_line[slot] = now
                except BlockingIOError:
                    pass
                except OSError:
                    self.drop(slot)
        self.held = max(self.held, sum(s is not None for s in self.slots.values()))

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.tick()
            for key, _ in self.selector.select(timeout=0.05):
                try:
                    data = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # closed (or refused) by the server: reconnect at once
                    self.drop(key.data)
                    self.open(key.data)


def stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--addresses", type=int, default=1)
    parser.add_argument("--first", type=int, default=2, help="127.0.0.1 is the server's (and the test's own)")
    parser.add_argument("--trickle", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    flood = Flood(args.port, args.sockets, args.addresses, args.trickle, args.first)
    signal.signal(signal.SIGTERM, stop)  # ends the run cleanly: the counts are still printed
    with contextlib.suppress(KeyboardInterrupt):
        flood.run(args.seconds)
    print(json.dumps({"opened": flood.opened, "closed": flood.closed, "held": flood.held}), flush=True)


if __name__ == "__main__":
    main()

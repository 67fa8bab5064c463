"""An audit hook that records every write-mode open, rename, removal, copy and socket event
while it is active (audit hooks cannot be removed, so it switches itself off on exit)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def recorded_writes() -> Iterator[list[tuple]]:
    events: list[tuple] = []
    active = [True]

    def hook(event: str, args: tuple) -> None:
        if not active[0]:
            return
        if event == "open":
            _, mode, flags = args
            if (mode and any(c in str(mode) for c in "wax+")) or (
                    isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                events.append(args)
        elif event.startswith("socket.") or event in ("os.rename", "os.remove", "shutil.copyfile"):
            events.append((event, args))

    sys.addaudithook(hook)
    try:
        yield events
    finally:
        active[0] = False

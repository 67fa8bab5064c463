"""Secure-channel set-up time and grant-to-read latency of the OSDP reader against libosdp's own
ControlPanel on a pty: `PYTHONPATH=app python -m tests.panel_bench [TRIALS]`."""

from __future__ import annotations

import statistics
import sys
import time

from consentry.config import PanelConfig
from consentry.panel.formats import Card
from consentry.panel.osdp_reader import OsdpReader

from tests.panel_rig import Panel, Pty

KEY = bytes.fromhex("8f3a61c2d94be07512aa03f6c8e1b4d7")


def trial(up: list[float], latency: list[float], reads: int = 5) -> None:
    line = Pty()
    reader = OsdpReader(PanelConfig(kind="osdp", port=line.path, address=1), KEY, lambda s: Card(1, 2)).start()
    start = time.monotonic()
    panel = Panel(line, 1, KEY)
    try:
        assert panel.wait_secure(30)
        up.append(time.monotonic() - start)
        for _ in range(reads):
            start = time.monotonic()
            reader.unlock(1.0, subject="s-x")
            panel.reads.get(timeout=10)
            latency.append(time.monotonic() - start)
    finally:
        panel.close()
        reader.close()
        line.close()


def main(trials: int) -> None:
    up: list[float] = []
    latency: list[float] = []
    for _ in range(trials):
        trial(up, latency)
    p90 = sorted(latency)[int(len(latency) * 0.9)]
    print(f"secure channel up: n={len(up)} median {statistics.median(up):.2f} s, max {max(up):.2f} s; "
          f"grant to card read at the panel: n={len(latency)} median {statistics.median(latency) * 1000:.0f} ms, "
          f"p90 {p90 * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

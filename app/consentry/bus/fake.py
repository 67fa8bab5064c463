"""A bus that records what would have been sent (for unit tests and runs without MQTT)."""

from __future__ import annotations

import queue

from . import messages


class RecordingBus:
    def __init__(self, device_id: str = "test") -> None:
        self.prefix = f"consentry/{device_id}"
        self.sent: list[tuple[str, object, bool]] = []
        self.inbox: queue.Queue[tuple[str, dict]] = queue.Queue()
        self.dropped = 0
        self.queued = 0

    def start(self) -> None:
        self.sent.append(("available", "online", True))

    def publish(self, suffix: str, payload: dict, retain: bool = False) -> None:
        self.sent.append((suffix, messages.check(suffix, payload), retain))

    def publish_state(self, suffix: str, value: str) -> None:
        self.sent.append((suffix, value, True))

    def link_status(self) -> str:
        return "recording (no broker)"

    def close(self) -> None:
        self.sent.append(("available", "offline", True))

    def of(self, suffix: str) -> list:
        return [payload for topic, payload, _ in self.sent if topic == suffix]

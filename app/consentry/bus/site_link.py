"""A site's MQTT link (paho-mqtt 2): retained, QoS 1 records under ``consentry/site/<site>/``.

Separate from :class:`~consentry.bus.mqtt.MqttBus` (a device's own events): site records are
bytes signed and sealed by the fleet room, never checked against the event allowlist, and
every subscriber of the site needs them. Subscriptions are made in the order given on every
(re)connect, so the broker delivers retained revocations before retained enrolments.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ..config import MqttConfig
from .mqtt import new_client

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]
OnLink = Callable[[bool], None]


def site_prefix(site: str) -> str:
    return f"consentry/site/{site}"


class SiteLink:
    def __init__(self, cfg: MqttConfig, client_id: str, subscriptions: Sequence[str], on_message: OnMessage,
                 on_link: OnLink | None = None) -> None:
        self.cfg = cfg
        self.subscriptions = list(subscriptions)
        self.on_message = on_message
        self.on_link = on_link or (lambda up: None)
        self.connected = threading.Event()
        client = new_client(cfg, client_id)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self) -> SiteLink:
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=15)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker refused the site link: %s", reason_code)
            return
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.connected.set()
        self._notify(True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self._notify(False)

    def _notify(self, up: bool) -> None:
        try:
            self.on_link(up)
        except Exception:  # noqa: BLE001 - a callback's error must not end paho's network thread
            log.exception("site link callback failed")

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.on_message(message.topic, bytes(message.payload))
        except Exception:  # noqa: BLE001 - see above: one hostile message never ends the link
            log.exception("dropped a site message on %s", message.topic)

    def resubscribe(self) -> None:
        """Ask the broker for every retained message again (after a batch failed to apply)."""
        if self.connected.is_set() and self.subscriptions:
            self._client.unsubscribe(self.subscriptions)
            self._client.subscribe([(topic, 1) for topic in self.subscriptions])

    def publish(self, topic: str, payload: bytes, retain: bool = True):
        """QoS 1; an empty retained payload clears the topic. Returns paho's MessageInfo."""
        return self._client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

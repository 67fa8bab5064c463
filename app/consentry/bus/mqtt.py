"""MQTT with paho-mqtt 2 (CallbackAPIVersion.VERSION2) — the only module that imports paho.

Topics live under ``consentry/<device_id>/`` (docs/mqtt.md). ``available`` is retained with
a last will of ``offline``. While the broker is away, events wait in a bounded queue (the
oldest are dropped and counted) and go out in order after reconnecting. Requests from the
broker (checkout verification, signed revoke commands) are put in ``inbox`` for the main
loop, so every decision is taken on one thread.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import threading
from pathlib import Path

from ..config import MqttConfig
from ..errors import ConfigError
from ..secretfile import read_private
from . import messages

log = logging.getLogger(__name__)

SUBSCRIPTIONS = ("checkout/request", "cmd/revoke")
MAX_REQUEST_BYTES = 4096


def read_credentials(path: Path | None) -> tuple[str, str] | None:
    """``username:password`` from a file (owner-only) or the systemd credential consentry-mqtt."""
    if path is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(os.environ["CREDENTIALS_DIRECTORY"]) / "consentry-mqtt"
        path = candidate if candidate.exists() else None
    if path is None:
        return None
    user, sep, password = read_private(path, "MQTT credentials file").decode().strip().partition(":")
    if not sep or not user:
        raise ConfigError(f"MQTT credentials file {path} must hold username:password")
    return user, password


def parse_request(raw: bytes) -> dict | None:
    """A request payload as a flat JSON object of scalars, or None. Bounded in size; nested
    values are refused (no request needs them), and a document nested a thousand deep, which
    makes the parser recurse past Python's limit, is refused like any other bad input."""
    if len(raw) > MAX_REQUEST_BYTES:
        return None
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or any(isinstance(v, dict | list) for v in payload.values()):
        return None
    return payload


def new_client(cfg: MqttConfig, client_id: str):
    """A paho client for ``cfg``: MQTT 3.1.1, TLS and credentials as configured, reconnecting
    with a 1-10 s backoff, and a callback's error logged rather than ending the link."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if cfg.tls_ca:
        client.tls_set(ca_certs=str(cfg.tls_ca), certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
                       keyfile=str(cfg.tls_key) if cfg.tls_key else None)
    credentials = read_credentials(cfg.credentials_file)
    if credentials:
        client.username_pw_set(*credentials)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.suppress_exceptions = True  # a second guard: a callback's error is logged, the link lives
    return client


class MqttBus:
    def __init__(self, cfg: MqttConfig) -> None:
        import paho.mqtt.client as mqtt

        self.cfg = cfg
        self.prefix = f"consentry/{cfg.device_id}"
        self.inbox: queue.Queue[tuple[str, dict]] = queue.Queue(maxsize=100)
        self._pending: collections.deque[tuple[str, str, bool]] = collections.deque(maxlen=cfg.queue_size)
        self._lock = threading.Lock()
        self.dropped = 0
        self.connected = threading.Event()
        self._mqtt = mqtt
        client = new_client(cfg, f"consentry-{cfg.device_id}")
        client.will_set(self.topic("available"), "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    def start(self) -> None:
        """Connect in the background; publishing works (queued) before the broker answers."""
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=15)
        self._client.loop_start()

    # -- paho callbacks (network thread) --------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        log.info("connected to MQTT broker %s:%d", self.cfg.host, self.cfg.port)
        client.publish(self.topic("available"), "online", qos=1, retain=True)
        for suffix in SUBSCRIPTIONS:
            client.subscribe(self.topic(suffix), qos=1)
        self._discovery()
        self.connected.set()
        self._flush()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("lost the MQTT broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        # An exception escaping a callback ends paho's network thread: the link would die
        # silently while ``connected`` stayed set. Nothing a message holds may get that far.
        try:
            self._accept(message.topic, message.payload)
        except Exception:  # noqa: BLE001 - see above
            log.exception("dropped a message on %s that could not be parsed", message.topic)

    def _accept(self, topic: str, raw: bytes) -> None:
        suffix = topic[len(self.prefix) + 1:]
        payload = parse_request(raw)
        if payload is None:
            log.warning("ignoring a malformed message on %s", topic)
            return
        try:
            self.inbox.put_nowait((suffix, payload))
        except queue.Full:
            log.warning("request inbox full; dropping a message on %s", topic)

    # -- publishing -----------------------------------------------------------------------
    def publish(self, suffix: str, payload: dict, retain: bool = False) -> None:
        """Send (or queue while disconnected) a checked payload."""
        body = json.dumps(messages.check(suffix, payload))
        self._send(self.topic(suffix), body, retain)

    def publish_state(self, suffix: str, value: str) -> None:
        """Retained plain-text state (``state/lock``, ``state/door``, ``state/last_decision``)."""
        self._send(self.topic(suffix), value, True)

    def _send(self, topic: str, body: str, retain: bool) -> None:
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append((topic, body, retain))
        if self.connected.is_set():
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            while self._pending and self.connected.is_set():
                topic, body, retain = self._pending[0]
                info = self._client.publish(topic, body, qos=1, retain=retain)
                if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                    break  # not connected after all: keep it for the next connect
                self._pending.popleft()

    def link_status(self) -> str:
        """``connected`` only while paho's network thread is alive and the broker has us."""
        thread = getattr(self._client, "_thread", None)  # paho keeps no public handle on it
        if thread is not None and not thread.is_alive():
            return f"network thread stopped ({self.queued} queued, {self.dropped} dropped)"
        if self.connected.is_set():
            return "connected"
        return f"broker unreachable ({self.queued} queued, {self.dropped} dropped)"

    @property
    def queued(self) -> int:
        return len(self._pending)

    def _discovery(self) -> None:
        """Home Assistant MQTT discovery: lock state, door contact, last decision."""
        if not self.cfg.discovery_prefix:
            return
        device = {"identifiers": [f"consentry-{self.cfg.device_id}"], "name": f"Consentry {self.cfg.device_id}",
                  "manufacturer": "Consentry"}
        base = {"availability_topic": self.topic("available"), "device": device}
        entities = {
            ("binary_sensor", "lock"): {"name": "Door lock", "device_class": "lock",
                                        "state_topic": self.topic("state/lock"),
                                        "payload_on": "unlocked", "payload_off": "locked"},
            ("binary_sensor", "door"): {"name": "Door", "device_class": "door",
                                        "state_topic": self.topic("state/door"),
                                        "payload_on": "open", "payload_off": "closed"},
            ("sensor", "last_decision"): {"name": "Last decision",
                                          "state_topic": self.topic("state/last_decision")},
        }
        for (component, key), config in entities.items():
            uid = f"consentry_{self.cfg.device_id}_{key}"
            topic = f"{self.cfg.discovery_prefix}/{component}/{uid}/config"
            self._client.publish(topic, json.dumps({**base, **config, "unique_id": uid}), qos=1, retain=True)

    def close(self, timeout: float = 3.0) -> None:
        """Publish ``offline`` (retained), wait briefly for it, disconnect."""
        if self.connected.is_set():
            info = self._client.publish(self.topic("available"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the offline message")
        self._client.disconnect()
        self._client.loop_stop()

"""A real MQTT broker for tests: Debian's mosquitto on a free loopback port (amqtt in-process
only where mosquitto is absent), plus a recording subscriber."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from consentry.bus.broker import LocalMosquitto, free_port, mosquitto_binary, wait_port


class Mosquitto(LocalMosquitto):
    """The app's launcher; skips the test where mosquitto is not installed."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None) -> None:
        if mosquitto_binary() is None:
            pytest.skip("mosquitto is not installed (make test installs it from Debian when it can)")
        super().__init__(workdir, extra_conf, port)


class Recorder:
    """Subscribes to ``topic`` (default everything) and keeps every message."""

    def __init__(self, port: int, topic: str = "#", **tls) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"recorder-{port}-{time.time_ns()}")
        if tls:
            self.client.tls_set(**tls)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def json(self, suffix: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith("/" + suffix)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_certs(directory: Path, client_names: tuple[str, ...]) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and one client certificate per name."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def issue(name: str, issuer_key, issuer_name, key, *, ca: bool = False, san: bool = False):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, cert, key) -> None:
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = directory / f"{stem}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("consentry-test-ca", ca_key, None, ca_key, ca=True)
    write("ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    write("server", issue("localhost", ca_key, ca.subject, server_key, san=True), server_key)
    for name in client_names:
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, issue(name, ca_key, ca.subject, key), key)
    return {p.stem + p.suffix: p for p in directory.iterdir()}


class Amqtt:
    """An in-process amqtt broker on a free loopback port — only where mosquitto is absent.
    Same ``start()``/``stop()``/``port`` as :class:`Mosquitto` (plain TCP, anonymous)."""

    def __init__(self, port: int | None = None) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError:
            pytest.skip("neither mosquitto nor amqtt is installed (make test installs mosquitto when it can)")
        self._broker_class = Broker
        self.port = port or free_port()
        self._loop = None
        self._thread: threading.Thread | None = None
        self._broker = None

    def start(self) -> Amqtt:
        import asyncio

        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                      "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}

            async def boot() -> None:
                self._broker = self._broker_class(config)
                await self._broker.start()

            try:
                self._loop.run_until_complete(boot())
            finally:
                ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="amqtt", daemon=True)
        self._thread.start()
        ready.wait(10)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        import asyncio

        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop = None


def real_broker(workdir: Path):
    """Debian's mosquitto; amqtt in-process only where mosquitto is absent (or when
    CONSENTRY_TEST_BROKER=amqtt asks for it)."""
    have_mosquitto = shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    if os.environ.get("CONSENTRY_TEST_BROKER") == "amqtt" or not have_mosquitto:
        return Amqtt()
    return Mosquitto(workdir)

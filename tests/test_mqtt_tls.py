"""MQTT over TLS with client certificates and a broker ACL (real mosquitto)."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
import pytest
from consentry.bus import messages
from consentry.bus.mqtt import MqttBus, read_credentials
from consentry.config import MqttConfig
from consentry.errors import ConfigError

from tests.broker import Mosquitto, Recorder, make_certs


@pytest.fixture
def tls_broker(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs, ("consentry-tls-1", "observer"))
    acl = tmp_path / "acl"
    acl.write_text("user consentry-tls-1\ntopic readwrite consentry/tls-1/#\ntopic write homeassistant/#\n\n"
                   "user observer\ntopic read #\n")
    conf = (f"cafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\nkeyfile {certs / 'server.key'}\n"
            "require_certificate true\nuse_identity_as_username true\nallow_anonymous false\n"
            f"acl_file {acl}\n")
    server = Mosquitto(tmp_path, conf).start()
    yield server, certs
    server.stop()


def test_the_bus_talks_tls_with_a_client_certificate(tls_broker):
    server, certs = tls_broker
    observer = Recorder(server.port, "consentry/#", ca_certs=str(certs / "ca.pem"),
                        certfile=str(certs / "observer.pem"), keyfile=str(certs / "observer.key"))
    cfg = MqttConfig(port=server.port, device_id="tls-1", tls_ca=certs / "ca.pem",
                     tls_cert=certs / "consentry-tls-1.pem", tls_key=certs / "consentry-tls-1.key")
    bus = MqttBus(cfg)
    bus.start()
    assert bus.connected.wait(10), "TLS connection with a client certificate failed"
    bus.publish("event/access", messages.access_event("unknown", None, None, 12.0))
    assert observer.wait_for(lambda r: r.json("event/access"))
    bus.close()
    assert observer.wait_for(lambda r: [p for t, p, _ in r.messages if t.endswith("available")][-1:] == [b"offline"])
    observer.close()


def test_a_client_without_a_certificate_is_refused(tls_broker):
    server, certs = tls_broker
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
    client.tls_set(ca_certs=str(certs / "ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        client.connect("127.0.0.1", server.port)
        client.loop(timeout=2.0)
        client.loop(timeout=2.0)
        if not client.is_connected():
            raise ConnectionError("refused")


def test_credentials_file_must_be_private(tmp_path):
    creds = tmp_path / "mqtt.cred"
    creds.write_text("consentry:s3cret\n")
    creds.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_credentials(creds)
    creds.chmod(0o600)
    assert read_credentials(creds) == ("consentry", "s3cret")

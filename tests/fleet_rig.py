"""A site for tests: a kiosk and doors, each with its own real vault (SQLite, AES-GCM), talking
through a real broker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from consentry.config import FleetConfig, MqttConfig
from consentry.fleet import identity as ids
from consentry.fleet.join import init_site, join
from consentry.fleet.service import FleetService, gallery_rekeyer, gallery_updater
from consentry.match import MatchPolicy, gallery_from_vault
from consentry.vault import ConsentRecord, KeyFile, Vault

MODEL = "dlib_resnet_v1_int8+flip"
NAME = "Ottoline Fleetwood-Example"
FAST = FleetConfig(heartbeat_seconds=0.3, max_staleness_seconds=120)


def consent(purposes: tuple[str, ...] = ("door",)) -> ConsentRecord:
    return ConsentRecord("consentry-door", "1", "ab" * 32, "2026-11-28T00:00:00+00:00", "kiosk", "tester", 365,
                         "adult", purposes)


def vectors(seed: int, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(128).astype(np.float32) * 0.09
    return [base + rng.standard_normal(128).astype(np.float32) * 0.01 for _ in range(n)]


def mqtt_for(port: int, device: str) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, device_id=device)


def open_vault(root: Path, name: str) -> Vault:
    key = KeyFile(root / name / "master.key")
    if not key.path.exists():
        key.create()
    return Vault(root / name / "home", key, create=True)


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Door:
    """A door's vault, replica service and live gallery (as the appliance wires them)."""

    def __init__(self, vault: Vault, mqtt: MqttConfig, cfg: FleetConfig = FAST) -> None:
        self.vault = vault
        self.gallery = gallery_from_vault(vault, MODEL, MatchPolicy(0.4), "door").gallery
        self.service = FleetService(vault, mqtt, cfg, model=MODEL,
                                    on_change=gallery_updater([(self.gallery, "door", False)]),
                                    on_rekey=gallery_rekeyer([(self.gallery, "door", False)])).start()

    def grants(self, probe: np.ndarray) -> str | None:
        """Who this door would let in for ``probe`` right now (None: nobody)."""
        if not self.service.verdict().granting:
            return None
        return self.gallery.identify(probe, MODEL).subject

    def replica_refusals(self) -> int:
        return self.service.replica.refusals

    def close(self) -> None:
        self.service.close()


class Site:
    def __init__(self, root: Path, port: int, mqtt: MqttConfig | None = None) -> None:
        self.root = root
        self.port = port
        self.vault = open_vault(root, "kiosk")
        self.identity = init_site(self.vault, "test site")
        self.service = FleetService(self.vault, mqtt or mqtt_for(port, "kiosk"), FAST, model=MODEL).start()
        assert self.service.link.wait_connected(10)

    @property
    def fingerprint(self) -> str:
        from consentry.fleet.records import fingerprint

        return fingerprint(self.identity.public)

    def enrol(self, seed: int, purposes: tuple[str, ...] = ("door",)) -> str:
        return self.vault.enroll(NAME, consent(purposes), vectors(seed), MODEL)

    def join(self, name: str, port: int | None = None, mqtt: MqttConfig | None = None) -> Vault:
        """A new door vault, joined through the broker and approved by its code."""
        vault = open_vault(self.root, name)
        mqtt = mqtt or mqtt_for(port or self.port, name)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                join(vault, mqtt, site=None, site_key=self.fingerprint, label=name, timeout=30,
                     out=lambda text: None)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        assert wait(lambda: self._pending(vault) is not None, 20), "the join request never reached the kiosk"
        door, code = self._pending(vault)
        self.service.site.approve(door, code)
        thread.join(30)
        if errors:
            raise errors[0]
        return vault

    def _pending(self, vault: Vault) -> tuple[str, str] | None:
        raw = vault.secret(ids.SECRET)
        if raw is None:
            return None
        me = ids.load(raw, vault.transform)
        listed = {d.door for d in self.service.site.doors()}
        return (me.door, me.code) if me.door in listed else None

    def close(self) -> None:
        self.service.close()
        self.vault.close()

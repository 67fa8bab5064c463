"""A device's part in its site, on one MQTT link and one heartbeat thread.

On the kiosk: every (re)connect republishes the site's retained records; at once after an
enrolment or a revocation in this process, and within WATCH_S of a commit by another
(`consentry enroll`, `consentry revoke`), it publishes what changed in the vault; every
heartbeat re-issues the head.
On a door: records are applied by the replica; every heartbeat (and after every batch) the
door reports its state. Neither ever sends a name: doors hold none.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..bus.site_link import SiteLink
from ..config import FleetConfig, MqttConfig
from ..errors import ConsentryError
from ..vault.replica import ReplicaSubject
from . import identity as ids
from .replica import Replica, Verdict
from .site import Site, remove_door, sync_from_vault

log = logging.getLogger(__name__)

WATCH_S = 0.2
OnChange = Callable[[list[ReplicaSubject], list[str]], None]


def gallery_updater(galleries: list[tuple[object, str, bool]]) -> OnChange:
    """Keep a device's live galleries — (gallery, purpose, opted-in only) — in step with its
    replica (revocations already leave them through the vault's revoke callback)."""
    def update(added: list[ReplicaSubject], removed: list[str]) -> None:
        for gallery, purpose, opted_in_only in list(galleries):
            for subject in added:
                gallery.remove(subject.subject)
                consent = subject.consent
                if purpose in consent.purposes and (consent.identify_opt_in or not opted_in_only):
                    gallery.add(subject.subject, subject.vectors)
    return update


def gallery_rekeyer(galleries: list[tuple[object, str, bool]]) -> Callable[[object], None]:
    """The site renewed its transform (a door was removed): the galleries' templates and
    probes move with it, as the vault's stored templates do."""
    def rekey(transform) -> None:
        for gallery, _purpose, _opted_in_only in list(galleries):
            gallery.retransform(transform)
    return rekey


class FleetService:
    def __init__(self, vault, mqtt: MqttConfig, cfg: FleetConfig, *, model: str,
                 on_change: OnChange | None = None, clock: Callable[[], float] = time.time,
                 on_rekey: Callable[[object], None] | None = None, client_tag: str = "") -> None:
        """``client_tag``: a suffix for the MQTT client id, so a command run beside the running
        appliance (`fleet approve`, `fleet doors`) never takes over its connection."""
        found = ids.load(vault.secret(ids.SECRET), vault.transform)
        if found is None:
            raise ConsentryError("this device belongs to no site (`consentry fleet init` or `fleet join`)")
        self.vault = vault
        self.cfg = cfg
        self.model = model
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._republish = threading.Event()
        self._changed = threading.Event()  # the kiosk's vault changed since its last sync
        self._changed.set()
        self.on_rekey = on_rekey
        self.site: Site | None = None
        self.replica: Replica | None = None
        if isinstance(found, ids.SiteIdentity):
            self.role = "site"
            self.site = Site(found, vault, self._publish, clock=clock, heartbeat=cfg.heartbeat_seconds)
            self.link = SiteLink(mqtt, f"consentry-site-{found.site}{client_tag}", self.site.topics,
                                 self.site.on_message, self._kiosk_link)
            vault.on_enrol(lambda subject: self._vault_changed())
            vault.on_revoke(lambda subject: self._vault_changed())
        else:
            self.role = "door"
            self.on_change = on_change or (lambda added, removed: None)
            self.replica = Replica(found, vault, max_staleness=cfg.max_staleness_seconds,
                                   max_skew=cfg.max_skew_seconds, clock=clock, on_applied=self._applied,
                                   on_failure=lambda: self.link.resubscribe(), on_rekey=self._rekeyed)
            self.link = SiteLink(mqtt, f"consentry-door-{found.door}{client_tag}", self.replica.topics,
                                 self.replica.offer, self.replica.on_link)
        self._thread = threading.Thread(target=self._beat, name="fleet", daemon=True)

    @property
    def name(self) -> str:
        return self.site.identity.site if self.site else self.replica.identity.site

    def start(self) -> FleetService:
        if self.replica is not None:
            self.replica.start()
        self.link.start()
        self._thread.start()
        return self

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self.link.publish(topic, payload, retain)

    def _kiosk_link(self, up: bool) -> None:
        if up:
            self._republish.set()
            self._wake.set()

    def _vault_changed(self) -> None:
        self._changed.set()
        self._wake.set()

    def _rekeyed(self, identity: ids.DoorIdentity, transform) -> None:
        """The transform first: interrupted, the door restarts with the old key, receives the
        retained grant again and finishes (adopting the same transform twice changes nothing)."""
        self.vault.adopt_transform(transform)
        self.vault.put_secret(ids.SECRET, identity.secret())
        if self.on_rekey is not None:
            self.on_rekey(transform)

    def _applied(self, added: list[ReplicaSubject], removed: list[str]) -> None:
        try:
            self.on_change(added, removed)
        finally:
            self._wake.set()

    def _beat(self) -> None:
        """A tick every heartbeat, or sooner: at once when woken, and — on a kiosk — within
        WATCH_S of a commit to the vault by another process (`consentry revoke`, `enroll`)."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the heartbeat outlives a failed round; it is logged
                log.exception("fleet heartbeat failed")
            deadline = time.monotonic() + self.cfg.heartbeat_seconds
            seen = self.vault.data_version()
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self._wake.wait(min(WATCH_S, max(0.0, deadline - time.monotonic()))):
                    break
                if self.site is not None and self.vault.data_version() != seen:
                    self._changed.set()
                    break
            self._wake.clear()

    def tick(self) -> None:
        if self.site is not None:
            if self._republish.is_set():
                self._republish.clear()
                self.site.republish()
            # Comparing the vault with the published records reads every subject (0.3 s for
            # 2,000 here): only after a change, not every heartbeat.
            if self._changed.is_set():
                self._changed.clear()
                self._follow_rotation()
                sync_from_vault(self.site, self.vault, self.model)
            self.site.publish_head()
        elif self.link.connected.is_set():
            self._publish(f"{self.replica.prefix}/doors/{self.replica.identity.door}/state",
                          self.replica.report(), True)

    def _follow_rotation(self) -> None:
        """Another process (`consentry fleet remove`) rotated the site key: issue under it."""
        found = ids.load(self.vault.secret(ids.SECRET), self.vault.transform)
        if isinstance(found, ids.SiteIdentity) and found.epoch != self.site.identity.epoch:
            self.site.follow(found, self.vault.fleet_max_seq())

    def remove_door(self, door: str) -> int:
        """`consentry fleet remove` and the staff page: see site.remove_door."""
        if self.site is None:
            raise ConsentryError("only the site's enrolment kiosk removes doors")
        count = remove_door(self.site, self.vault, self.model, door)
        if self.on_rekey is not None:
            self.on_rekey(self.vault.transform)  # the kiosk's own galleries move too
        return count

    # -- what the appliance asks ----------------------------------------------------------
    def verdict(self) -> Verdict:
        """A door's permission to grant now; a kiosk always may."""
        return self.replica.verdict() if self.replica is not None else Verdict(True)

    def status(self) -> str:
        if self.site is not None:
            doors = self.site.doors()
            behind = sum(1 for d in doors if d.status == "approved" and d.behind)
            return f"kiosk of {self.name}: {len(doors)} door(s), {behind} behind"
        verdict = self.verdict()
        return f"door of {self.name}: " + ("in step" if verdict.granting else f"not granting ({verdict.reason})")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.replica is not None and self.link.connected.is_set():
            self._publish(f"{self.replica.prefix}/doors/{self.replica.identity.door}/state",
                          self.replica.report(), True)
        self.link.close()
        if self.replica is not None:
            self.replica.close()

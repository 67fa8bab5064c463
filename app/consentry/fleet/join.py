"""Joining a site (door) and admitting a door (kiosk), as the CLI runs them.

A door finds the site's announcement, makes its key pair (kept sealed in its vault, so a
retried join shows the same code), publishes a join request, shows the code, and waits for
its grant. Nothing secret is typed or copied: staff compare six digits, and the door is given the
site key's fingerprint (read on the kiosk), so no announcement on the broker is trusted on first use.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable

from ..bus.site_link import SiteLink, site_prefix
from ..config import MqttConfig
from ..errors import ConsentryError
from . import identity as ids
from .records import (
    MAX_GRANT_BYTES,
    MAX_SMALL_BYTES,
    VERSION,
    Budget,
    RecordRefused,
    b64,
    fingerprint,
    flat,
    unb64,
    verified,
)

log = logging.getLogger(__name__)
ASK_AGAIN_S = 30.0


def find_sites(mqtt: MqttConfig, wait: float) -> list[tuple[str, str, bytes]]:
    """(site id, label, public signing key) of every announcement seen within ``wait`` s.
    Anyone who may publish on the broker can announce any site id with any key: nothing here
    is trusted until its key matches the fingerprint staff read off the kiosk."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    found: list[tuple[str, str, bytes]] = []
    budget = Budget(20)

    def take(topic: str, raw: bytes) -> None:
        try:
            body = flat(raw, "announcement", MAX_SMALL_BYTES)
            public = unb64(body.get("signing_key"), "site key")
            verified(Ed25519PublicKey.from_public_bytes(public), raw, "announcement", MAX_SMALL_BYTES)
            found.append((str(body["site"]), str(body.get("label", ""))[:64], public))
        except (ValueError, KeyError, TypeError, RecordRefused):
            if budget.take():
                log.warning("ignored a malformed site announcement on %s%s", topic[:100], budget.note())

    link = SiteLink(mqtt, f"consentry-join-{secrets.token_hex(4)}", ["consentry/sites/+"], take).start()
    try:
        if not link.wait_connected(wait):
            raise ConsentryError(f"no MQTT broker at {mqtt.host}:{mqtt.port}")
        time.sleep(min(wait, 1.0))
    finally:
        link.close()
    return list(found)


def same_fingerprint(typed: str, public: bytes) -> bool:
    """Typed as the kiosk shows it (``ab12:cd34:…``), any case, colons and spaces optional."""
    clean = "".join(ch for ch in typed.lower() if ch in "0123456789abcdef")
    return len(clean) == 16 and hmac.compare_digest(clean, fingerprint(public).replace(":", ""))


def pinned_site(mqtt: MqttConfig, site: str | None, site_key: str) -> tuple[str, str, bytes]:
    """The announcement whose signing key has the fingerprint staff read on the kiosk (its
    staff page, `fleet init`, `fleet doors`): the out-of-band pin. An announcement with the
    site's id and another key is ignored, whoever sent it."""
    seen = find_sites(mqtt, 5.0)
    matching = [s for s in seen if same_fingerprint(site_key, s[2]) and (site is None or s[0] == site)]
    if not matching:
        named = sorted({s[0] for s in seen})
        raise ConsentryError(f"no site on {mqtt.host}:{mqtt.port} announces the signing key {site_key} "
                             f"(announced: {', '.join(named) or 'none'}). Check the fingerprint on the "
                             "kiosk's staff page; an announcement with another key may be an impostor")
    return matching[0]


def join(vault, mqtt: MqttConfig, *, site: str | None, site_key: str, label: str, timeout: float,
         out: Callable[[str], None] = print) -> ids.DoorIdentity:
    """Wait up to ``timeout`` s for staff to approve this door; then the data key and site
    transform are stored in the vault (every local template moves to the site's transform).
    ``site_key``: the site signing key's fingerprint as the kiosk shows it; only an
    announcement, and a grant, signed with that key is taken."""
    current = ids.load(vault.secret(ids.SECRET), vault.transform)
    if isinstance(current, ids.SiteIdentity) or (isinstance(current, ids.DoorIdentity) and current.data_key):
        raise ConsentryError(f"this device already belongs to site {current.site}")
    site, site_label, public = pinned_site(mqtt, site, site_key)
    door = current if isinstance(current, ids.DoorIdentity) and current.site == site and \
        current.site_public == public else ids.DoorIdentity.create(site, public)
    vault.put_secret(ids.SECRET, door.secret())
    granted: list[bytes] = []
    arrived = threading.Event()

    def take(topic: str, raw: bytes) -> None:
        if raw and len(raw) <= MAX_GRANT_BYTES:
            granted.append(raw)
            arrived.set()

    prefix = site_prefix(site)
    link = SiteLink(mqtt, f"consentry-door-{door.door}-join", [f"{prefix}/grant/{door.door}"], take).start()
    try:
        if not link.wait_connected(10):
            raise ConsentryError(f"no MQTT broker at {mqtt.host}:{mqtt.port}")
        request = json.dumps({"v": VERSION, "door": door.door, "public_key": b64(door.public),
                              "label": label[:64]}).encode()
        link.publish(f"{prefix}/join/{door.door}", request).wait_for_publish(10)
        out(f"door {door.door} asks to join site {site} ({site_label}), signing key {fingerprint(public)}.")
        out(f"code {door.code}: approve this door with that code on the kiosk's staff page")
        # asked again now and then: a kiosk busy refusing a squatter's requests (10 a minute) or
        # one that expired this request lists it once there is room
        approved, transform = _await_grant(door, granted, arrived, timeout,
                                           lambda: link.publish(f"{prefix}/join/{door.door}", request))
        vault.adopt_transform(transform)
        vault.put_secret(ids.SECRET, approved.secret())
        link.publish(f"{prefix}/join/{door.door}", b"").wait_for_publish(10)
    finally:
        link.close()
    out(f"joined site {site}: start the appliance (`consentry run`) and it syncs the site's subjects")
    return approved


def _await_grant(door: ids.DoorIdentity, granted: list[bytes], arrived: threading.Event,
                 timeout: float, ask_again: Callable[[], object]) -> tuple[ids.DoorIdentity, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not arrived.wait(min(ASK_AGAIN_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() < deadline:
                ask_again()
            continue
        arrived.clear()
        while granted:
            raw = granted.pop(0)
            try:
                body = verified(door.verify_key, raw, "grant", MAX_GRANT_BYTES)
                if body.get("door") != door.door or body.get("site") != door.site:
                    raise RecordRefused("grant for another door")
                return door.open_grant(unb64(body.get("sealed"), "grant"))
            except RecordRefused as exc:
                log.warning("ignored a grant: %s", exc)
    raise ConsentryError(f"not approved within {timeout:.0f} s: run `consentry fleet join` again (the code "
                         "stays the same) and approve it on the kiosk")


def init_site(vault, label: str) -> ids.SiteIdentity:
    if vault.secret(ids.SECRET) is not None:
        raise ConsentryError("this device already belongs to a site")
    site = ids.SiteIdentity.create(label, vault.transform)
    vault.put_secret(ids.SECRET, site.secret())
    return site

"""Joining a site (door) and admitting a door (kiosk), as the CLI runs them.

A door finds the site's announcement, makes its key pair (kept sealed in its vault, so a
retried join shows the same code), publishes a join request, shows the code, and waits for
its grant. Nothing secret is typed or copied: staff only compare six digits.
"""

from __future__ import annotations

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
from .records import VERSION, RecordRefused, b64, unb64, verified

log = logging.getLogger(__name__)


def find_sites(mqtt: MqttConfig, wait: float) -> dict[str, tuple[str, bytes]]:
    """site id → (label, public signing key) announced on the broker within ``wait`` s."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    found: dict[str, tuple[str, bytes]] = {}

    def take(topic: str, raw: bytes) -> None:
        try:
            body = json.loads(raw[:4096])
            public = unb64(body.get("signing_key"), "site key")
            verified(Ed25519PublicKey.from_public_bytes(public), raw, "announcement")
            found[str(body["site"])] = (str(body.get("label", ""))[:64], public)
        except (ValueError, KeyError, TypeError, AttributeError, RecordRefused):
            log.warning("ignored a malformed site announcement on %s", topic)

    link = SiteLink(mqtt, f"consentry-join-{secrets.token_hex(4)}", ["consentry/sites/+"], take).start()
    try:
        if not link.wait_connected(wait):
            raise ConsentryError(f"no MQTT broker at {mqtt.host}:{mqtt.port}")
        time.sleep(min(wait, 1.0))
    finally:
        link.close()
    return found


def join(vault, mqtt: MqttConfig, *, site: str | None, label: str, timeout: float,
         out: Callable[[str], None] = print) -> ids.DoorIdentity:
    """Wait up to ``timeout`` s for staff to approve this door; then the data key and site
    transform are stored in the vault (every local template moves to the site's transform)."""
    current = ids.load(vault.secret(ids.SECRET), vault.transform)
    if isinstance(current, ids.SiteIdentity) or (isinstance(current, ids.DoorIdentity) and current.data_key):
        raise ConsentryError(f"this device already belongs to site {current.site}")
    sites = find_sites(mqtt, 5.0)
    if site is None and len(sites) != 1:
        raise ConsentryError(f"{len(sites)} sites announce themselves on this broker; name one with --site "
                             f"({', '.join(sorted(sites)) or 'none'})")
    site = site or next(iter(sites))
    if site not in sites:
        raise ConsentryError(f"site {site} does not announce itself on {mqtt.host}:{mqtt.port}")
    door = current if isinstance(current, ids.DoorIdentity) and current.site == site else \
        ids.DoorIdentity.create(site, sites[site][1])
    vault.put_secret(ids.SECRET, door.secret())
    granted: list[bytes] = []
    arrived = threading.Event()

    def take(topic: str, raw: bytes) -> None:
        if raw:
            granted.append(raw)
            arrived.set()

    prefix = site_prefix(site)
    link = SiteLink(mqtt, f"consentry-door-{door.door}", [f"{prefix}/grant/{door.door}"], take).start()
    try:
        if not link.wait_connected(10):
            raise ConsentryError(f"no MQTT broker at {mqtt.host}:{mqtt.port}")
        request = {"v": VERSION, "door": door.door, "public_key": b64(door.public), "label": label[:64]}
        link.publish(f"{prefix}/join/{door.door}", json.dumps(request).encode()).wait_for_publish(10)
        out(f"door {door.door} asks to join site {site} ({sites[site][0]}).")
        out(f"code {door.code}: approve this door with that code on the kiosk's staff page")
        approved, transform = _await_grant(door, granted, arrived, timeout)
        vault.adopt_transform(transform)
        vault.put_secret(ids.SECRET, approved.secret())
        link.publish(f"{prefix}/join/{door.door}", b"").wait_for_publish(10)
    finally:
        link.close()
    out(f"joined site {site}: start the appliance (`consentry run`) and it syncs the site's subjects")
    return approved


def _await_grant(door: ids.DoorIdentity, granted: list[bytes], arrived: threading.Event,
                 timeout: float) -> tuple[ids.DoorIdentity, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not arrived.wait(max(0.0, deadline - time.monotonic())):
            break
        arrived.clear()
        while granted:
            raw = granted.pop(0)
            try:
                body = verified(door.verify_key, raw, "grant")
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

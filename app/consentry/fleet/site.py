"""The enrolment kiosk's side of a site: it issues every record, the head, and door grants.

Topics (retained, QoS 1; docs/fleet.md): ``consentry/sites/<site>`` (the site's public key);
under ``consentry/site/<site>/``: ``subject/<id>``
(a subject's latest enrol record), ``revoked/<id>`` (a tombstone; the subject's enrol topic is
cleared), ``head`` (re-issued every heartbeat), ``join/<door>`` (from doors), ``grant/<door>``
(HPKE-sealed to an approved door), ``doors/<door>/state`` (each door's report).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..bus.site_link import site_prefix
from ..errors import ConsentryError
from .identity import SiteIdentity, door_id, join_code, same_code
from .records import (
    MAX_SMALL_BYTES,
    VERSION,
    Budget,
    Head,
    Payload,
    Record,
    RecordRefused,
    StateHash,
    b64,
    flat,
    sign,
    unb64,
)
from .replica import state_mac

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool], None]
MAX_PENDING = 50  # join requests waiting for staff; more are ignored (anyone on the broker may ask)
JOINS_PER_MINUTE = 10  # new join requests taken a minute: a squatter fills no more than this
PENDING_TTL_S = 900.0  # a join request not approved within this is forgotten (the door asks again)
REPORT_MISSES = 3  # a door silent for this many heartbeats (plus a margin) is "not reporting"


def announce_topic(site: str) -> str:
    return f"consentry/sites/{site}"


class SiteLog(Protocol):
    def fleet_versions(self) -> dict[str, tuple[int, str, str]]: ...

    def fleet_note(self, subject: str, seq: int, kind: str, digest: str, record: bytes) -> None: ...

    def fleet_records(self) -> list[tuple[str, int, str, bytes | None]]: ...

    def fleet_max_seq(self) -> int: ...

    def fleet_door(self, door: str, public_key: bytes, label: str, status: str) -> None: ...

    def fleet_doors(self) -> list[tuple[str, bytes, str, str]]: ...

    def fleet_forget_door(self, door: str, why: str) -> None: ...


@dataclass(frozen=True)
class DoorReport:
    """What a door last said about itself (``at``: its Unix time, s)."""

    door: str
    seq: int
    state: str
    granting: bool
    reason: str | None
    at: float


@dataclass(frozen=True)
class DoorView:
    """A door as the staff page lists it: ``status`` pending | approved; ``code`` the six
    digits the door shows while it waits; ``behind`` True when its last report is not the
    site's current state."""

    door: str
    label: str
    status: str
    code: str
    report: DoorReport | None
    behind: bool
    reporting: bool = True  # False: an approved door whose last report is older than its heartbeat allows


class Site:
    def __init__(self, identity: SiteIdentity, log_: SiteLog, publish: Publish, *,
                 clock: Callable[[], float] = time.time, heartbeat: float = 10.0) -> None:
        self.identity = identity
        self.log = log_
        self.publish = publish
        self.clock = clock
        self.prefix = site_prefix(identity.site)
        self._lock = threading.RLock()
        versions = log_.fleet_versions()
        self.state = StateHash({s: (seq, kind) for s, (seq, kind, _) in versions.items()})
        self._versions = {s: (seq, kind) for s, (seq, kind, _) in versions.items()}
        self._seq = log_.fleet_max_seq()
        self.reports: dict[str, DoorReport] = {}
        self._logs = Budget(20)  # anyone on the broker may send join requests and reports
        self._joins = Budget(JOINS_PER_MINUTE)
        self._pending_since: dict[str, float] = {}
        self._rejected: set[str] = set()  # its retained request may still be in flight to us
        self.report_timeout = REPORT_MISSES * heartbeat + 5.0

    @property
    def topics(self) -> list[str]:
        return [f"{self.prefix}/join/+", f"{self.prefix}/doors/+/state"]

    # -- issuing --------------------------------------------------------------------------
    def _issue(self, kind: str, subject: str, payload: Payload | None, digest: str) -> bytes:
        with self._lock:
            self._seq += 1
            record = Record(self.identity.site, self._seq, kind, subject, round(self.clock(), 3), None)
            if payload is not None:
                record = Record(record.site, record.seq, kind, subject, record.issued,
                                payload.seal(self.identity.data_key, record.aad))
            raw = sign(self.identity.signing_key, record.fields())
            self.log.fleet_note(subject, record.seq, kind, digest, raw)
            self.state.replace(subject, self._versions.get(subject), (record.seq, kind))
            self._versions[subject] = (record.seq, kind)
        return raw

    def enrol(self, subject: str, payload: Payload, digest: str) -> bytes:
        """Issue (and publish) a subject's enrol record; a changed subject gets a new one."""
        if self._versions.get(subject, (0, ""))[1] == "revoke":
            raise ConsentryError(f"subject {subject} was revoked; a revoked id is never reused")
        raw = self._issue("enrol", subject, payload, digest)
        self.publish(f"{self.prefix}/subject/{subject}", raw, True)
        self.publish_head()
        return raw

    def revoke(self, subject: str) -> bytes:
        """The tombstone first, then the subject's enrol topic is cleared."""
        raw = self._issue("revoke", subject, None, "")
        self.publish(f"{self.prefix}/revoked/{subject}", raw, True)
        self.publish(f"{self.prefix}/subject/{subject}", b"", True)
        self.publish_head()
        return raw

    def head(self) -> Head:
        with self._lock:
            live = sum(1 for _, kind in self._versions.values() if kind == "enrol")
            return Head(self.identity.site, self._seq, self.state.hex(), live, round(self.clock(), 3))

    def publish_head(self) -> Head:
        head = self.head()
        self.publish(f"{self.prefix}/head", sign(self.identity.signing_key, head.fields()), True)
        return head

    def announce(self) -> None:
        body = {"v": VERSION, "kind": "announce", "site": self.identity.site, "label": self.identity.label,
                "signing_key": b64(self.identity.public), "issued": round(self.clock(), 3)}
        self.publish(announce_topic(self.identity.site), sign(self.identity.signing_key, body), True)

    def republish(self) -> None:
        """Everything, on every (re)connect: a broker that lost its retained store is refilled."""
        self.announce()
        records = self.log.fleet_records()
        for subject, _seq, kind, raw in records:
            if kind == "revoke" and raw:
                self.publish(f"{self.prefix}/revoked/{subject}", raw, True)
        for subject, _seq, kind, raw in records:
            if kind == "enrol" and raw:
                self.publish(f"{self.prefix}/subject/{subject}", raw, True)
        for door, public, _label, status in self.log.fleet_doors():
            if status == "approved":
                self._grant(door, public)
        self.publish_head()

    # -- doors ----------------------------------------------------------------------------
    def on_message(self, topic: str, raw: bytes) -> None:
        rest = topic[len(self.prefix) + 1:]
        if rest.startswith("join/") and raw:
            self._join_request(raw)
        elif rest.startswith("doors/") and rest.endswith("/state") and raw:
            self._door_report(raw)

    def _join_request(self, raw: bytes) -> None:
        try:
            body = flat(raw, "join request", MAX_SMALL_BYTES)
            public = unb64(body.get("public_key"), "door key")
            label = str(body.get("label", ""))[:64]
        except RecordRefused as exc:
            self._ignored(f"a malformed join request: {exc}")
            return
        if len(public) != 32:
            return
        door = door_id(public)
        self.expire_pending()
        known = {d: status for d, _, _, status in self.log.fleet_doors()}
        if door in known or door in self._rejected:
            return
        if sum(1 for s in known.values() if s == "pending") >= MAX_PENDING:
            self._ignored(f"a join request: {MAX_PENDING} doors already wait for approval")
        elif not self._joins.take():
            self._ignored(f"a join request: more than {JOINS_PER_MINUTE} a minute")
        else:
            self.log.fleet_door(door, public, label, "pending")
            self._pending_since[door] = self.clock()
            log.info("door %s asks to join (code shown on the door)", door)

    def expire_pending(self) -> None:
        """Forget join requests older than PENDING_TTL_S (counted from when this kiosk first
        saw them): a squatter's requests do not hold the slots for good."""
        now = self.clock()
        for door, _public, _label, status in self.log.fleet_doors():
            if status != "pending":
                continue
            since = self._pending_since.setdefault(door, now)
            if now - since > PENDING_TTL_S:
                self.log.fleet_forget_door(door, "expired")
                self._pending_since.pop(door, None)

    def reject(self, door: str) -> None:
        """Staff refuse a pending join request: it is forgotten (and audited)."""
        if door not in {d for d, _, _, status in self.log.fleet_doors() if status == "pending"}:
            raise ConsentryError(f"no door {door} waits for approval")
        self.log.fleet_forget_door(door, "rejected")
        self._pending_since.pop(door, None)
        if len(self._rejected) < 10_000:
            self._rejected.add(door)
        self.publish(f"{self.prefix}/join/{door}", b"", True)

    def _door_report(self, raw: bytes) -> None:
        try:
            body = flat(raw, "door report", MAX_SMALL_BYTES)
            mac = body.pop("mac")
            if body.get("site") != self.identity.site or not hmac.compare_digest(
                    str(mac), state_mac(self.identity.data_key, body)):
                raise ValueError("bad MAC")
            report = DoorReport(str(body["door"]), int(body["seq"]), str(body["state"]), bool(body["granting"]),
                                body.get("reason"), float(body["at"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._ignored("a door report that fails its MAC or is malformed")
            return
        with self._lock:
            self.reports[report.door] = report

    def _ignored(self, what: str) -> None:
        if self._logs.take():
            log.warning("ignored %s%s", what, self._logs.note())

    def approve(self, door: str, typed_code: str) -> None:
        """Approve a pending door by the code it shows; publishes its sealed grant."""
        for d, public, label, _status in self.log.fleet_doors():
            if d == door:
                if not same_code(typed_code, join_code(self.identity.public, public)):
                    raise ConsentryError(f"the code does not match door {door}'s: nothing was approved "
                                         "(check the code shown on the door)")
                self.log.fleet_door(door, public, label, "approved")
                self._grant(door, public)
                return
        raise ConsentryError(f"no door {door} has asked to join")

    def _grant(self, door: str, public: bytes) -> None:
        body = {"v": VERSION, "kind": "grant", "site": self.identity.site, "door": door,
                "sealed": b64(self.identity.seal_grant(door, public)), "issued": round(self.clock(), 3)}
        self.publish(f"{self.prefix}/grant/{door}", sign(self.identity.signing_key, body), True)

    def doors(self) -> list[DoorView]:
        current = self.state.hex()
        with self._lock:
            reports = dict(self.reports)
        out = []
        now = self.clock()
        for door, public, label, status in self.log.fleet_doors():
            report = reports.get(door)
            silent = status == "approved" and (report is None or now - report.at > self.report_timeout)
            out.append(DoorView(door, label, status, join_code(self.identity.public, public), report,
                                report is None or report.state != current, not silent))
        return out

    # -- removing a door ------------------------------------------------------------------
    def remove(self, door: str) -> None:
        """The door's grant is withdrawn (its retained grant cleared, the row marked removed
        and audited). It still holds the data key: the caller rotates it (remove_door)."""
        rows = {d: (public, label) for d, public, label, status in self.log.fleet_doors() if status != "pending"}
        if door not in rows:
            raise ConsentryError(f"no door {door} belongs to this site")
        self.log.fleet_door(door, rows[door][0], rows[door][1], "removed")
        self.publish(f"{self.prefix}/grant/{door}", b"", True)
        with self._lock:
            self.reports.pop(door, None)

    def rekey(self, identity: SiteIdentity) -> None:
        """Take the rotated identity and grant it to every remaining (approved) door."""
        with self._lock:
            self.identity = identity
        for door, public, _label, status in self.log.fleet_doors():
            if status == "approved":
                self._grant(door, public)

    def follow(self, identity: SiteIdentity, max_seq: int) -> None:
        """Take an identity rotated by another process, and its sequence numbers."""
        with self._lock:
            self.identity = identity
            self._seq = max(self._seq, max_seq)
            versions = self.log.fleet_versions()
            self._versions = {s: (seq, kind) for s, (seq, kind, _) in versions.items()}
            self.state = StateHash(self._versions)

    def reseal(self, payloads) -> int:
        """Every live subject's record again, sealed under the current data key, with the
        same sequence number (payloads: (subject, Payload, digest)). The site's state does not
        change: a remaining door, which moved its own templates by the renewed transform,
        skips them as versions it holds; a door joining later, or one back from offline after
        taking its new grant, opens them; a removed door opens none. One head after them all."""
        count = 0
        for subject, payload, digest in payloads:
            with self._lock:
                known = self._versions.get(subject)
            if known is None or known[1] != "enrol":
                continue
            record = Record(self.identity.site, known[0], "enrol", subject, round(self.clock(), 3), None)
            record = Record(record.site, record.seq, "enrol", subject, record.issued,
                            payload.seal(self.identity.data_key, record.aad))
            raw = sign(self.identity.signing_key, record.fields())
            self.log.fleet_note(subject, record.seq, "enrol", digest, raw)
            self.publish(f"{self.prefix}/subject/{subject}", raw, True)
            count += 1
        self.publish_head()
        return count


def remove_door(site: Site, vault, model: str, door: str) -> int:
    """Remove a door from the site: its grant is withdrawn; the site data key rotates and the
    site transform is renewed (composed with a fresh random rotation, applied to the stored
    transformed templates: no raw template is needed); every live subject is re-sealed and
    re-issued, and the new key is sealed only to the remaining doors. A removed door keeps what
    it held, but opens nothing issued after, and its templates no longer link to the site's.
    Returns the subjects re-issued. Interrupted, it is safe to run again."""
    from ..vault import crypto
    from .identity import SECRET

    site.remove(door)
    renewed = crypto.random_orthogonal() @ vault.transform
    vault.adopt_transform(renewed)  # the transform first: a rerun then finds the key still old
    identity = site.identity.rekeyed(renewed)
    vault.put_secret(SECRET, identity.secret())
    site.rekey(identity)
    live = [s for s, (_, kind, _) in vault.fleet_versions().items() if kind == "enrol"]
    digests = vault.fleet_digests(model)

    def payloads():
        for subject in live:
            if subject not in digests:
                continue
            exported = vault.export_subject(subject, model)
            try:
                yield subject, Payload(exported.consent, model, exported.vectors, exported.card), digests[subject]
            finally:
                exported.vectors.fill(0)

    count = site.reseal(payloads())
    log.info("door %s removed; %d subjects re-sealed under a new site key", door, count)
    return count


def sync_from_vault(site: Site, vault, model: str) -> tuple[int, int]:
    """Publish what changed in the kiosk's vault since the last sync (enrolments from any
    process, revocations, expiry): revocations first. Returns (revoked, issued)."""
    digests = vault.fleet_digests(model)
    versions = vault.fleet_versions()
    revoked = [s for s, (_, kind, _) in versions.items() if kind == "enrol" and s not in digests]
    for subject in revoked:
        site.revoke(subject)
    issued = 0
    for subject, digest in digests.items():
        known = versions.get(subject)
        if known is not None and (known[1] == "revoke" or known[2] == digest):
            continue
        exported = vault.export_subject(subject, model)
        try:
            site.enrol(subject, Payload(exported.consent, model, exported.vectors, exported.card), digest)
            issued += 1
        finally:
            exported.vectors.fill(0)
    return len(revoked), issued

"""A door's copy of its site: records checked and applied in order, and whether it may grant.

Records arrive on paho's thread and are queued; one applier thread drains the queue in
batches (a start-up sync of thousands of retained records is a few transactions, not
thousands). In every batch revocations are applied first, in their own transaction. A record
is refused — and audited — when its signature fails, its payload does not open, it was issued
in the future (clock skew), it is older than the version already applied for its subject
(replayed or reordered), or its subject was revoked (a revocation wins over everything).
A retained record delivered again after a reconnect is the same version: a no-op.

Fail secure: the door grants only while its state equals that of a signed site head issued
within ``max_staleness`` of its own clock, and — after every reconnect — only once a head
delivered since then confirms it (a revocation missed while offline is applied first).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..bus.site_link import site_prefix
from ..errors import ConsentryError
from ..vault.replica import ReplicaSubject
from .identity import DoorIdentity
from .records import (
    MAX_GRANT_BYTES,
    MAX_RECORD_BYTES,
    MAX_SMALL_BYTES,
    VERSION,
    Budget,
    Head,
    Payload,
    Record,
    RecordRefused,
    StateHash,
    flat,
    unb64,
    verified,
)

log = logging.getLogger(__name__)
AUDIT_PER_MINUTE = 20
LOG_PER_MINUTE = 20
# What may wait for the applier: a flood cannot grow the door's memory beyond about
# (MAX_QUEUED + MAX_BATCH) x MAX_RECORD_BYTES (~26 MB); paho's thread waits for room instead.
MAX_QUEUED = 1000
MAX_BATCH = 500
QUEUE_WAIT_S = 10.0


class ReplicaStore(Protocol):
    def fleet_versions(self) -> dict[str, tuple[int, str, str]]: ...

    def apply_replicas(self, revokes: list[tuple[str, int]], subjects: list[ReplicaSubject]) -> list[str]: ...

    def fleet_refused(self, reason: str, subject: str | None) -> None: ...

    def fleet_head_seq(self) -> int: ...

    def fleet_note_head(self, seq: int) -> None: ...


@dataclass(frozen=True)
class Verdict:
    """May the door grant now? ``reason`` (with False): ``fleet_syncing``, ``fleet_stale``."""

    granting: bool
    reason: str | None = None


OnApplied = Callable[[list[ReplicaSubject], list[str]], None]
OnRekey = Callable[[DoorIdentity, object], None]  # the new identity, the site's renewed transform


def state_mac(data_key: bytes, fields: dict) -> str:
    key = hashlib.sha256(b"consentry:door-state\0" + data_key).digest()
    return hmac.new(key, json.dumps(fields, sort_keys=True).encode(), hashlib.sha256).hexdigest()


class Replica:
    def __init__(self, identity: DoorIdentity, store: ReplicaStore, *, max_staleness: float, max_skew: float,
                 clock: Callable[[], float] = time.time, on_applied: OnApplied | None = None,
                 on_failure: Callable[[], None] | None = None, batch_delay: float = 0.02,
                 on_rekey: OnRekey | None = None) -> None:
        if identity.data_key is None:
            raise ConsentryError("this door has not been approved by its site yet (`consentry fleet join`)")
        self.identity = identity
        self.store = store
        self.max_staleness = max_staleness
        self.max_skew = max_skew
        self.clock = clock
        self.on_applied = on_applied or (lambda added, removed: None)
        self.on_failure = on_failure or (lambda: None)
        self.on_rekey = on_rekey or (lambda identity, transform: None)
        self.batch_delay = batch_delay
        self.prefix = site_prefix(identity.site)
        self._versions = {s: (seq, kind) for s, (seq, kind, _) in store.fleet_versions().items()}
        self.state = StateHash(self._versions)
        self._lock = threading.Lock()
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue(MAX_QUEUED)
        self._head: Head | None = None
        self._highest = store.fleet_head_seq()  # the highest head ever seen, kept across restarts
        self._head_since_link = False
        self._confirmed: float | None = None
        self.refusals = 0
        self.dropped = 0
        self._audits = Budget(AUDIT_PER_MINUTE)
        self._logs = Budget(LOG_PER_MINUTE)
        self.applied = 0
        self._thread: threading.Thread | None = None

    @property
    def _grant_topic(self) -> str:
        return f"{self.prefix}/grant/{self.identity.door}"

    @property
    def topics(self) -> list[str]:
        """In this order: the broker sends retained revocations before anything else."""
        return [f"{self.prefix}/grant/{self.identity.door}", f"{self.prefix}/revoked/+", f"{self.prefix}/subject/+",
                f"{self.prefix}/head"]

    # -- from the link (paho's thread) ----------------------------------------------------
    def offer(self, topic: str, raw: bytes) -> None:
        """Oversized payloads are dropped unread; the rest wait for the applier (bounded: a
        full queue makes paho's thread wait, and one that stays full drops and stops grants)."""
        limit = MAX_SMALL_BYTES if topic == f"{self.prefix}/head" else \
            MAX_GRANT_BYTES if topic == self._grant_topic else MAX_RECORD_BYTES
        if len(raw) > limit:
            self.dropped += 1
            self._refuse(f"a {len(raw)}-byte message on {topic[len(self.prefix) + 1:][:60]} is larger than "
                         f"any site record ({limit} bytes): dropped unread", None)
            return
        try:
            self._inbox.put((topic, raw), timeout=QUEUE_WAIT_S)
        except queue.Full:
            log.warning("the site record queue stayed full for %.0f s: not granting until resynced", QUEUE_WAIT_S)
            with self._lock:
                self._confirmed = None
            self.on_failure()

    def on_link(self, up: bool) -> None:
        with self._lock:
            self._head_since_link = False
            if up:
                self._confirmed = None  # whatever was missed while away is applied before any grant

    # -- the applier ----------------------------------------------------------------------
    def start(self) -> Replica:
        self._thread = threading.Thread(target=self._run, name="fleet-replica", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._inbox.get(timeout=self.batch_delay)
                except queue.Empty:
                    break
                if item is None:
                    self.process(batch)
                    return
                batch.append(item)
            try:
                self.process(batch)
            except Exception:  # noqa: BLE001 - the applier outlives a batch it could not store
                # (a full disk, a locked store): nothing in it is taken as applied, the door stops
                # granting at once — the batch may have held a revocation — and asks for it again.
                log.exception("could not apply a batch of site records; not granting until it is applied")
                with self._lock:
                    self._confirmed = None
                self.on_failure()

    def process(self, batch: list[tuple[str, bytes]]) -> None:
        """Check and apply a batch: a new grant (the site's rotated key), revocations, then
        subjects, then heads."""
        records: dict[str, tuple[Record, bytes]] = {}
        heads: list[bytes] = []
        for topic, raw in batch:
            if raw and topic == self._grant_topic:
                self._take_grant(raw)
        for topic, raw in batch:
            if not raw or topic == self._grant_topic:
                continue  # a retained topic being cleared, or the grant, taken above
            if topic == f"{self.prefix}/head":
                heads.append(raw)
                continue
            try:
                self._take(raw, records)
            except Exception as exc:  # noqa: BLE001 - one bad record never fails the good ones beside it
                self._refuse(f"record could not be checked ({type(exc).__name__})", None)
        revokes = [(r.subject, r.seq) for r, _ in records.values() if r.kind == "revoke"]
        if revokes:
            self._apply(revokes, [])
        subjects = [s for s in (self._open(r) for r, _ in records.values() if r.kind == "enrol") if s is not None]
        if subjects:
            self._apply([], subjects)
        for raw in heads:
            self._take_head(raw)
        self._confirm()

    def _take(self, raw: bytes, records: dict[str, tuple[Record, bytes]]) -> None:
        if self._already_applied(raw):
            return
        try:
            record = Record.parse(verified(self.identity.verify_key, raw), self.identity.site)
            if record.issued > self.clock() + self.max_skew:
                raise RecordRefused(f"record {record.seq} was issued in the future (clock skew or forgery)")
            known = self._versions.get(record.subject)
            if known is not None and known[1] == "revoke":
                raise RecordRefused(f"record {record.seq} names a revoked subject: revocation wins")
            if known is not None and record.seq <= known[0]:
                raise RecordRefused(f"record {record.seq} is older than the applied version {known[0]} "
                                    "(replayed or reordered)")
        except RecordRefused as exc:
            self._refuse(str(exc), None)
            return
        held = records.get(record.subject)
        if held is None or held[0].kind != "revoke" and (record.kind == "revoke" or record.seq > held[0].seq):
            records[record.subject] = (record, raw)

    def _already_applied(self, raw: bytes) -> bool:
        """A retained record delivered again (every reconnect re-sends them all) names a
        version this door already holds: skipped before its signature is checked, which is
        safe — nothing in it is used — and saves a verification per subject per reconnect."""
        try:
            fields = flat(raw)
            return self._versions.get(fields["subject"]) == (fields["seq"], fields["kind"])
        except (ValueError, KeyError, TypeError):
            return False

    def _open(self, record: Record) -> ReplicaSubject | None:
        try:
            payload = Payload.open(self.identity.data_key, record, self.identity.site)
        except ConsentryError as exc:
            self._refuse(str(exc), record.subject)
            return None
        return ReplicaSubject(record.subject, record.seq, "", payload.consent, payload.vectors, payload.model,
                              payload.card)

    def _apply(self, revokes: list[tuple[str, int]], subjects: list[ReplicaSubject]) -> None:
        removed = self.store.apply_replicas(revokes, subjects)
        with self._lock:
            for subject, seq in revokes:
                self.state.replace(subject, self._versions.get(subject), (seq, "revoke"))
                self._versions[subject] = (seq, "revoke")
            for s in subjects:
                self.state.replace(s.subject, self._versions.get(s.subject), (s.seq, "enrol"))
                self._versions[s.subject] = (s.seq, "enrol")
            self.applied += len(revokes) + len(subjects)
        try:
            self.on_applied(subjects, [s for s, _ in revokes] if removed is None else removed)
        finally:
            for s in subjects:
                s.vectors.fill(0)

    def _take_grant(self, raw: bytes) -> None:
        """The site rotated its data key (a door was removed): a grant of a newer epoch,
        signed by the site and sealed to this door, carries the new key and transform. The
        retained grant this door already holds is the same epoch: a no-op."""
        try:
            body = verified(self.identity.verify_key, raw, "grant", MAX_GRANT_BYTES)
            if body.get("door") != self.identity.door or body.get("site") != self.identity.site:
                raise RecordRefused("grant for another door")
            identity, transform = self.identity.open_grant(unb64(body.get("sealed"), "grant"))
        except RecordRefused as exc:
            self._refuse(str(exc), None)
            return
        if identity.epoch <= self.identity.epoch:
            return
        self.on_rekey(identity, transform)  # stored first: a restart resumes with the new key
        with self._lock:
            self.identity = identity
        log.info("the site rotated its data key (epoch %d)", identity.epoch)

    def _take_head(self, raw: bytes) -> None:
        try:
            head = Head.parse(verified(self.identity.verify_key, raw, "head", MAX_SMALL_BYTES), self.identity.site)
            if head.issued > self.clock() + self.max_skew:
                raise RecordRefused("site head was issued in the future (clock skew or forgery)")
            last = self._head
            if last is not None and (head.seq < last.seq or head.issued < last.issued):
                raise RecordRefused(f"site head {head.seq} is older than head {last.seq} (replayed)")
            if head.seq < self._highest:
                raise RecordRefused(f"site head {head.seq} is older than head {self._highest}, seen before "
                                    "(replayed)")
        except RecordRefused as exc:
            self._refuse(str(exc), None)
            return
        if head.seq > self._highest:
            self.store.fleet_note_head(head.seq)
            self._highest = head.seq
        with self._lock:
            self._head = head
            self._head_since_link = True
            if head.state != self.state.hex():
                # A newer signed head this door cannot reach: something was missed (a
                # revocation, perhaps): no grant until it is applied, however fresh the last
                # confirmation was.
                self._confirmed = None

    def _confirm(self) -> None:
        with self._lock:
            head = self._head
            if head is not None and self._head_since_link and head.state == self.state.hex():
                self._confirmed = head.issued

    def _refuse(self, reason: str, subject: str | None) -> None:
        """Audited, at most AUDIT_PER_MINUTE a minute: anyone who may publish on the broker can
        send garbage, and the audit log must not become the way to fill the disk."""
        self.refusals += 1
        if self._logs.take():
            log.warning("refused a site record: %s%s", reason, self._logs.note())
        if self._audits.take():
            self.store.fleet_refused(reason, subject)

    # -- decisions ------------------------------------------------------------------------
    def verdict(self) -> Verdict:
        with self._lock:
            confirmed = self._confirmed
        if confirmed is None:
            return Verdict(False, "fleet_syncing")
        if self.clock() - confirmed > self.max_staleness:
            return Verdict(False, "fleet_stale")
        return Verdict(True)

    def in_step(self) -> bool:
        with self._lock:
            return self._head is not None and self._head.state == self.state.hex()

    def report(self) -> bytes:
        """The door's state for the site (retained at ``doors/<door>/state``), MAC'd with a key
        from the site data key so no one outside the site can forge a door's report."""
        verdict = self.verdict()
        with self._lock:
            seq = max((v[0] for v in self._versions.values()), default=0)
            fields = {"v": VERSION, "site": self.identity.site, "door": self.identity.door, "seq": seq,
                      "state": self.state.hex(), "granting": verdict.granting, "reason": verdict.reason,
                      "at": round(self.clock(), 3)}
        return json.dumps({**fields, "mac": state_mac(self.identity.data_key, fields)}).encode()

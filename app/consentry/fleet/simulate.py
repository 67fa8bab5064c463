"""`consentry fleet simulate`: one kiosk and N doors, in-process, against a real mosquitto on a
loopback port. Doors verify and open every record exactly as a real door does (Ed25519,
AES-GCM, order and freshness checks); only their store is memory instead of SQLite, and it
keeps versions, not templates, so fifty doors fit in memory. Templates are random vectors.

Figures: bytes per enrol record; one door's start-up sync of every subject from the broker's
retained records; all N doors starting at once; then enrolments and revocations one at a
time, each timed from the kiosk's publish to the moment the last door applied it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..bus.broker import LocalMosquitto
from ..bus.site_link import SiteLink
from ..config import MqttConfig
from ..vault.consent import ConsentRecord
from ..vault.replica import ReplicaSubject
from .identity import DoorIdentity, SiteIdentity
from .records import Payload
from .replica import Replica

CONSENT = ConsentRecord("door-access", "1", "0" * 64, "2026-12-01T00:00:00+00:00", "kiosk", "-", 365, "adult",
                        ("door",))


class MemoryLog:
    """A kiosk's record log in memory (the vault's fleet table, for the simulation)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, str, str, bytes]] = {}
        self.doors: dict[str, tuple[bytes, str, str]] = {}

    def fleet_versions(self) -> dict[str, tuple[int, str, str]]:
        return {s: (seq, kind, digest) for s, (seq, kind, digest, _) in self.rows.items()}

    def fleet_note(self, subject: str, seq: int, kind: str, digest: str, record: bytes) -> None:
        self.rows[subject] = (seq, kind, digest, record)

    def fleet_records(self) -> list[tuple[str, int, str, bytes | None]]:
        return sorted(((s, seq, kind, raw) for s, (seq, kind, _, raw) in self.rows.items()), key=lambda r: r[1])

    def fleet_max_seq(self) -> int:
        return max((seq for seq, *_ in self.rows.values()), default=0)

    def fleet_door(self, door: str, public_key: bytes, label: str, status: str) -> None:
        self.doors[door] = (public_key, label, status)

    def fleet_forget_door(self, door: str, why: str) -> None:
        self.doors.pop(door, None)

    def fleet_doors(self) -> list[tuple[str, bytes, str, str]]:
        return [(d, pub, label, status) for d, (pub, label, status) in sorted(self.doors.items())]


class MemoryDoor:
    """A door's store that records when each subject's version arrived (perf_counter);
    ``versions``: what it already holds (a door restarting with its vault intact)."""

    def __init__(self, versions: dict[str, tuple[int, str, str]] | None = None) -> None:
        self.versions: dict[str, tuple[int, str, str]] = dict(versions or {})
        self.arrived: dict[tuple[str, str], float] = {}
        self.refused: list[str] = []
        self.head_seq = 0
        self.rekeyed_at = 0.0
        self.changed = threading.Condition()

    def fleet_versions(self) -> dict[str, tuple[int, str, str]]:
        return dict(self.versions)

    def apply_replicas(self, revokes: list[tuple[str, int]], subjects: list[ReplicaSubject]) -> list[str]:
        now = time.perf_counter()
        with self.changed:
            for subject, seq in revokes:
                self.versions[subject] = (seq, "revoke", "")
                self.arrived[(subject, "revoke")] = now
            for s in subjects:
                self.versions[s.subject] = (s.seq, "enrol", "")
                self.arrived[(s.subject, "enrol")] = now
            self.changed.notify_all()
        return [s for s, _ in revokes]

    def fleet_refused(self, reason: str, subject: str | None) -> None:
        self.refused.append(reason)

    def fleet_head_seq(self) -> int:
        return self.head_seq

    def rekey(self, identity, transform) -> None:
        """A real door re-transforms its stored templates here; this store holds none."""
        self.rekeyed_at = time.perf_counter()

    def fleet_note_head(self, seq: int) -> None:
        self.head_seq = seq


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 4)


class _Sim:
    def __init__(self, port: int, subjects: int) -> None:
        self.mqtt = MqttConfig(host="127.0.0.1", port=port, device_id="sim")
        rng = np.random.default_rng(int.from_bytes(os.urandom(8), "big"))
        self.rng = rng
        q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
        self.identity = SiteIdentity.create("simulation", q.astype(np.float32))
        from .site import Site

        self.log = MemoryLog()
        self.kiosk = SiteLink(self.mqtt, "sim-kiosk", [], lambda t, r: None).start()
        self.kiosk.wait_connected(10)
        self.site = Site(self.identity, self.log, lambda t, p, r: self.kiosk.publish(t, p, r))
        self.sizes: list[int] = []
        self.vectors: dict[str, np.ndarray] = {}
        self.subjects = [self.enrol() for _ in range(subjects)]
        self.doors: list[tuple[Replica, MemoryDoor, SiteLink]] = []
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        """The kiosk's heartbeat (fleet.heartbeat_seconds' default): a fresh head every 10 s."""
        while not self._stop.wait(10.0):
            self.site.publish_head()

    def enrol(self) -> str:
        subject = "s-" + os.urandom(8).hex()
        vectors = (self.rng.standard_normal((5, 128)) * 0.05).astype(np.float32)
        self.vectors[subject] = vectors
        raw = self.site.enrol(subject, Payload(CONSENT, "sim", vectors), subject)
        self.sizes.append(len(raw))
        return subject

    def door(self, warm: MemoryDoor | None = None) -> tuple[Replica, MemoryDoor, SiteLink]:
        ident = DoorIdentity.create(self.identity.site, self.identity.public)
        ident = DoorIdentity(ident.site, ident.site_public, ident.private_key, self.identity.data_key)
        store = MemoryDoor(warm.versions if warm is not None else None)
        self.log.fleet_door(ident.door, ident.public, "sim", "approved")
        replica = Replica(ident, store, max_staleness=120, max_skew=30, on_rekey=store.rekey).start()
        link = SiteLink(self.mqtt, f"sim-{ident.door}", replica.topics, replica.offer, replica.on_link).start()
        self.doors.append((replica, store, link))
        return replica, store, link

    def remove(self, n: int, timeout: float = 120.0) -> dict:
        """Remove the last ``n`` doors as `fleet remove` does; they keep running with all they
        held. ``rotate_to_all_s``: from the rotation's start until each remaining door holds the
        new key and transform (from then on it opens what the site issues); ``reseal_all_s``:
        until every record on the broker is re-sealed under the new key (the kiosk's work, here
        sharing one interpreter with every door). Then tries what a removed door could do with
        what it kept."""
        from ..vault import crypto
        from .records import Record, verified

        gone, staying = self.doors[len(self.doors) - n:], self.doors[:len(self.doors) - n]
        for replica, _, _ in gone:
            self.site.remove(replica.identity.door)
        removal_seq = self.site.head().seq
        change = crypto.random_orthogonal()
        t0 = time.perf_counter()
        identity = self.site.identity.rekeyed(change @ self.site.identity.transform)
        self.site.rekey(identity)  # grants to the remaining doors first
        live = [s for s, (_, kind, _) in self.log.fleet_versions().items() if kind == "enrol"]
        self.vectors = {s: (self.vectors[s] @ change.T).astype(np.float32) for s in live}
        self.site.reseal((s, Payload(CONSENT, "sim", self.vectors[s]), s) for s in live)
        resealed = time.perf_counter()
        if not _wait(lambda: all(r.identity.epoch == identity.epoch for r, _, _ in staying), timeout):
            raise TimeoutError("the rotated key did not reach every remaining door")
        times = [store.rekeyed_at - t0 for _, store, _ in staying]
        late = self.enrol()  # a person enrolled after the removal
        if not _wait(lambda: all((late, "enrol") in st.arrived for _, st, _ in staying), timeout):
            raise TimeoutError("an enrolment after the removal did not reach every remaining door")
        time.sleep(1.0)  # the removed doors have had every chance to take it
        after = [raw for _s, seq, kind, raw in self.log.fleet_records() if kind == "enrol" and raw]
        opened = 0
        for replica, _, _ in gone:
            for raw in after:  # everything on the broker now: re-sealed, or issued after removal
                record = Record.parse(verified(replica.identity.verify_key, raw), self.identity.site)
                try:
                    Payload.open(replica.identity.data_key, record, self.identity.site)
                    opened += 1
                except Exception:  # noqa: BLE001 - not opening is the point
                    pass
        grants = sum(1 for replica, store, _ in gone
                     if late in store.versions and replica.verdict().granting)
        return {"doors": n, "rotate_to_all_s": {"p50": _pct(times, 0.5), "p99": _pct(times, 0.99)},
                "reseal_all_s": round(resealed - t0, 3),
                "records_opened_by_removed": opened, "grants_by_removed": grants,
                "removed_at_seq": removal_seq, "records_resealed": len(live)}

    def synced(self, replica: Replica) -> bool:
        return replica.verdict().granting and replica.state.hex() == self.site.state.hex()

    def start_door(self, timeout: float, warm: MemoryDoor | None = None) -> float:
        """Seconds from connecting to being in step with the site and granting."""
        t0 = time.perf_counter()
        replica = self.door(warm)[0]
        if not _wait(lambda: self.synced(replica), timeout):
            raise TimeoutError(f"a door did not sync within {timeout:.0f} s")
        return round(time.perf_counter() - t0, 3)

    def to_all(self, kind: str, subject: str, t0: float, timeout: float = 30.0) -> float:
        stores = [store for _, store, _ in self.doors]
        if not _wait(lambda: all((subject, kind) in s.arrived for s in stores), timeout):
            raise TimeoutError(f"a {kind} did not reach every door within {timeout:.0f} s")
        return max(s.arrived[(subject, kind)] for s in stores) - t0

    def close(self) -> None:
        self._stop.set()
        for replica, _, link in self.doors:
            link.close()
            replica.close()
        self.kiosk.close()


def simulate(doors: int = 50, subjects: int = 10000, samples: int = 30, out: Callable[[str], None] = print,
             remove: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="consentry-sim-") as work:
        broker = LocalMosquitto(Path(work), "allow_anonymous true\nmax_queued_messages 0\n").start()
        sim = None
        try:
            out(f"mosquitto on 127.0.0.1:{broker.port}; publishing {subjects} subjects")
            sim = _Sim(broker.port, subjects)
            one = sim.start_door(600)
            out(f"one door synced {subjects} subjects in {one} s; starting {doors - 1} more, one after another, "
                "as doors restarting with their vaults intact")
            restarts = [sim.start_door(600, warm=sim.doors[0][1]) for _ in range(doors - 1)]
            out(f"restarts: p50 {_pct(restarts, 0.5) if restarts else 0} s; timing records to all {doors} doors")
            enrol, revoke = [], []
            for _ in range(samples):
                t0 = time.perf_counter()
                enrol.append(sim.to_all("enrol", sim.enrol(), t0))
                victim = sim.subjects.pop(int(sim.rng.integers(len(sim.subjects))))
                t0 = time.perf_counter()
                sim.site.revoke(victim)
                revoke.append(sim.to_all("revoke", victim, t0))
            refused = sum(len(store.refused) for _, store, _ in sim.doors)
            removed = None
            if remove:
                out(f"removing {remove} door(s): rotating the site key for {doors - remove} remaining door(s)")
                removed = sim.remove(remove)
        finally:
            if sim is not None:
                sim.close()
            broker.stop()
    return {"doors": doors, "subjects": subjects,
            "enrol_to_all_s": {"p50": _pct(enrol, 0.5), "p99": _pct(enrol, 0.99)},
            "revoke_to_all_s": {"p50": _pct(revoke, 0.5), "p99": _pct(revoke, 0.99)},
            "bytes_per_record": int(statistics.mean(sim.sizes)), "door_sync_s": one,
            "door_restart_sync_s": {"p50": _pct(restarts, 0.5), "max": _pct(restarts, 1.0)} if restarts else None,
            "samples": samples, "refused": refused, **({"removed": removed} if removed else {}),
            "cpu": _cpu()}


def _cpu() -> str:
    """The CPU's model, core count and vector flags (every speed figure goes with them)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = [f for f in ("avx2", "avx512f") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(vector) or 'no AVX2'}"

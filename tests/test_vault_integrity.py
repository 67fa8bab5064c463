"""Damage that must never be papered over: an audit log whose tail was cut or whose head was
edited refuses the next append (instead of reusing sequence numbers and verifying again), and
a template re-pointed to another subject is an integrity error in identify, the gallery load
and doctor — not a quiet "unknown"."""

from __future__ import annotations

import json
import logging
import sqlite3

import cv2
import pytest
from consentry.cli import main
from consentry.doctor import Doctor
from consentry.errors import AuditChainBroken, ConsentryError
from consentry.match import MatchPolicy, gallery_from_vault
from consentry.vault import KeyFile, Vault
from consentry.vault.store import DB_NAME

from tests.test_doctor import settings as doctor_settings
from tests.test_vault import MODEL, consent, vectors


def edit(home, *statements: str) -> None:
    conn = sqlite3.connect(home / DB_NAME)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    keyfile = KeyFile(home / "master.key")
    keyfile.create()
    with Vault(home, keyfile, create=True) as v:
        v.enroll("A", consent(), vectors(21, 1), MODEL)
        v.enroll("B", consent(), vectors(22, 1), MODEL)
    return home, keyfile


CUTS = {
    "last entry deleted": ["DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)"],
    "a byte of the head changed": ["UPDATE meta SET value=substr(value, 1, length(value) - 1) || "
                                   "CASE WHEN substr(value, -1) = '0' THEN '1' ELSE '0' END WHERE key='audit_head'"],
    "head deleted": ["DELETE FROM meta WHERE key='audit_head'"],
    "last entry edited": ["UPDATE audit SET detail='{}' WHERE seq=(SELECT max(seq) FROM audit)"],
    "every entry deleted": ["DELETE FROM audit"],
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_an_append_after_a_cut_or_an_edited_head_is_refused_and_the_break_stays(home, cut):
    path, keyfile = home
    edit(path, *CUTS[cut])
    with Vault(path, keyfile) as v:
        assert not v.verify_audit().ok
        head = v._conn.execute("SELECT value FROM meta WHERE key='audit_head'").fetchone()
        with pytest.raises(AuditChainBroken, match="audit verify") as refused:
            v.record_access(None, "unknown")
        assert isinstance(refused.value, ConsentryError)
        with pytest.raises(AuditChainBroken):
            v.enroll("C", consent(), vectors(23, 1), MODEL)  # the whole transaction is refused
        assert len(v.subjects()) == 2
        assert v._conn.execute("SELECT value FROM meta WHERE key='audit_head'").fetchone() == head
        assert not v.verify_audit().ok, "the break healed"


def test_a_sound_log_still_appends_and_verifies(home):
    path, keyfile = home
    with Vault(path, keyfile) as v:
        for _ in range(3):
            v.record_access(None, "unknown")
        report = v.verify_audit()
        assert report.ok and report.entries == 6


def test_identify_after_a_cut_tail_fails_clearly_and_does_not_heal_the_chain(home, astronaut, tmp_path, capsys):
    path, _ = home
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), astronaut[..., ::-1])
    edit(path, "DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)")
    assert main(["--home", str(path), "identify", str(image)]) == 2
    assert "audit verify" in capsys.readouterr().err
    assert main(["--home", str(path), "audit", "verify", "--json"]) == 1
    assert not json.loads(capsys.readouterr().out)["ok"]


REPOINT = "UPDATE templates SET subject_id=(SELECT id FROM subjects WHERE rowid=2) WHERE rowid=1"


def test_a_re_pointed_template_is_an_integrity_error_in_the_gallery_identify_and_doctor(home, astronaut, tmp_path,
                                                                                       capsys, caplog):
    path, keyfile = home
    edit(path, REPOINT)
    with Vault(path, keyfile) as v, caplog.at_level(logging.ERROR):
        loaded = gallery_from_vault(v, MODEL, MatchPolicy(0.3))
        assert loaded.damaged
        assert any("integrity error" in r.getMessage() and "doctor" in r.getMessage() for r in caplog.records)
        assert v.damaged()
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), astronaut[..., ::-1])
    assert main(["--home", str(path), "identify", str(image), "--json"]) == 2
    captured = capsys.readouterr()
    assert "integrity error" in captured.err and "unknown" not in captured.out
    for thorough in (True, False):  # `consentry doctor`, and the staff page's quicker pass
        check = Doctor(doctor_settings(), path, thorough=thorough).vault()
        assert check.status == "fail" and "integrity error" in check.detail and "integrity ok" not in check.detail


def test_doctor_passes_a_sound_store(home):
    path, _ = home
    check = Doctor(doctor_settings(), path).vault()
    assert check.status == "pass" and "integrity ok" in check.detail


def test_a_door_with_a_cut_audit_log_says_so_and_its_loop_carries_on(tmp_path, pipeline, astronaut, caplog):
    from consentry.camera.fake import FakeCamera

    from tests.test_appliance import appliance, settings

    path = tmp_path / "door"
    KeyFile(path / "master.key").create()
    vector = pipeline.embed(astronaut, pipeline.faces(astronaut)[0]).vector.copy()
    pipeline.wipe()
    with Vault(path, KeyFile(path / "master.key"), create=True) as v:
        sid = v.enroll("A", consent(), [vector], pipeline.embedder.name)
    edit(path, "DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)")
    app = appliance(settings(), path, FakeCamera([astronaut], fps=30))
    app.start()
    try:
        with caplog.at_level(logging.ERROR):
            app._seen(sid)  # what a grant calls: must not raise into the frame's other decisions
        assert any("not audited" in r.getMessage() and "audit verify" in r.getMessage() for r in caplog.records)
        assert not app.vault.verify_audit().ok
    finally:
        app.stop()

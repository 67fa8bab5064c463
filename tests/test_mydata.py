""""What do you hold about me?": with their revocation code a person sees their own consent
record (the German text they read, its hash, purposes, retention, expiry), their template
count and their own audit entries — and nothing of the other subject; the downloaded receipt
verifies with `consentry audit verify-receipt` and fails once a byte is changed. Also the
consent record's language in the store (schema 7) and `consentry subjects show`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from consentry.cli import main
from consentry.config import Settings
from consentry.vault import ConsentRecord, ConsentText, KeyFile, Vault
from consentry.vault.disclosure import ReceiptInvalid, receipt, subject_record, verify_receipt
from consentry.web.server import WebApp, WebServer
from consentry.web.state import KioskState

from tests.test_vault import MODEL, vectors
from tests.test_web import shot

CONSENT = Path(__file__).resolve().parents[1] / "deploy" / "consent"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def record(text: ConsentText) -> ConsentRecord:
    return ConsentRecord.from_text(text, given_at="2026-12-01T09:30:00+00:00", method="kiosk",
                                   witnessed_by="staff (PIN)", retention_days=365)


@pytest.fixture
def store(tmp_path):
    """Two subjects: A read the German door text, B the English one; each has a code and a grant."""
    home = tmp_path / "home"
    assert main(["--home", str(home), "keys", "init"]) == 0
    vault = Vault(home, KeyFile(home / "master.key"))
    a = vault.enroll("Anna Beispiel", record(ConsentText.load(CONSENT / "door.de.txt")), vectors(1, 3), MODEL)
    b = vault.enroll("Bob Example", record(ConsentText.load(CONSENT / "door.txt")), vectors(2, 2), MODEL)
    codes = {a: vault.issue_revocation_code(a), b: vault.issue_revocation_code(b)}
    vault.record_access(a, "granted")
    vault.record_access(b, "granted")
    vault.record_access(None, "unknown", count=4)
    yield home, vault, a, b, codes
    vault.close()


def test_the_record_keeps_the_language_and_subjects_show_prints_it(store, capsys):
    home, vault, a, b, _ = store
    german = ConsentText.load(CONSENT / "door.de.txt")
    assert german.language == "de" and german.consent_id == ConsentText.load(CONSENT / "door.txt").consent_id
    vault.add_door_template(b, vectors(9, 1)[0], MODEL, keep=3)  # B's, not A's
    mine = subject_record(vault, a)
    assert (mine.consent.language, mine.consent.sha256, mine.templates) == ("de", german.sha256, 3)
    assert [e["kind"] for e in mine.entries] == ["access", "enrol"]  # only A's own, newest first
    assert mine.door_templates == 0 and subject_record(vault, b).door_templates == 1
    assert subject_record(vault, b).consent.language == "en"
    assert main(["--home", str(home), "subjects", "show", a]) == 0
    out = capsys.readouterr().out
    assert "language de" in out and german.sha256 in out and "templates  3" in out


@pytest.mark.parametrize("lang", ["de", "fr", "es"])
def test_every_shipped_consent_text_exists_in_every_language(lang):
    for purpose in ("door", "checkout"):
        english = ConsentText.load(CONSENT / f"{purpose}.txt")
        other = ConsentText.load(CONSENT / f"{purpose}.{lang}.txt")
        assert (other.consent_id, other.version, other.purposes, other.language) == (
            english.consent_id, english.version, english.purposes, lang)
        assert other.sha256 != english.sha256 and "128" in other.text
        assert len(other.text.split("\n\n")) == len(english.text.split("\n\n")), "a paragraph is missing"


def test_a_schema_6_row_migrates_intact_as_english(tmp_path):
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    with Vault(home, KeyFile(home / "master.key"), create=True) as v:
        sid = v.enroll("Old Record", record(ConsentText.load(CONSENT / "door.txt")), vectors(3), MODEL)
        with v._txn():  # what a schema-6 store signed: no language or greeting column
            v._conn.execute("UPDATE subjects SET consent_language=NULL, greeting=NULL WHERE id=?", (sid,))
            v._signer.sign(sid)
    conn = sqlite3.connect(home / "consentry.db")
    conn.executescript("ALTER TABLE subjects DROP COLUMN consent_language; "
                       "ALTER TABLE subjects DROP COLUMN greeting; "
                       "UPDATE meta SET value = 6 WHERE key = 'schema_version';")
    conn.close()
    with Vault(home, KeyFile(home / "master.key")) as v:
        assert [s.intact for s in v.subjects()] == [True]
        assert subject_record(v, sid).consent.language == "en" and not subject_record(v, sid).consent.greeting
        v._conn.execute("UPDATE subjects SET consent_language='de' WHERE id=?", (sid,))  # an edit is noticed
        assert [s.intact for s in v.subjects()] == [False]


def test_the_receipt_verifies_and_a_changed_byte_fails(store, tmp_path, capsys):
    home, vault, a, _, _ = store
    doc = receipt(vault, subject_record(vault, a))
    raw = json.dumps(doc, ensure_ascii=False).encode()
    assert verify_receipt(vault, raw)["subject"] == a
    path = tmp_path / "receipt.json"
    path.write_bytes(raw)
    assert main(["--home", str(home), "audit", "verify-receipt", str(path)]) == 0
    assert "receipt intact" in capsys.readouterr().out
    at = raw.index(b'"templates": 3') + len(b'"templates": ')
    for changed in (raw[:at] + b"4" + raw[at + 1:], raw.replace(b'"language": "de"', b'"language": "en"'), raw[:-2]):
        with pytest.raises(ReceiptInvalid):
            verify_receipt(vault, changed)
        path.write_bytes(changed)
        assert main(["--home", str(home), "audit", "verify-receipt", str(path)]) == 1
    assert "RECEIPT INVALID" in capsys.readouterr().out
    assert vault.audit.entries(1)[0]["kind"] == "data_shown" and vault.verify_audit().ok


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_page_shows_my_record_and_nothing_of_anyone_else(store, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home, vault, a, b, codes = store
    web = WebServer(WebApp(Settings(), KioskState(), vault).wsgi, "127.0.0.1", 0)
    web.start()
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_context(base_url=web.url, locale="de-DE", accept_downloads=True).new_page()
            page.goto("/forget")
            page.click("a[href='/mydata']")  # beside "Forget me"
            sync_api.expect(page.locator("h1")).to_have_text("Was speichern Sie über mich?")
            page.fill("#code", "not-a-code")
            page.click("#show")
            sync_api.expect(page.locator("p.error")).to_have_text("Dieser Code ist nicht gültig.")
            page.fill("#code", codes[a])
            page.click("#show")
            sync_api.expect(page.locator("h1")).to_have_text("Was wir über Sie speichern")
            assert page.inner_text("#r-subject") .endswith(a)
            assert page.inner_text("#r-language").endswith("Deutsch")
            assert page.inner_text("#r-templates").endswith("3")
            assert "365" in page.inner_text("#r-retention") and "2026-12-01" in page.inner_text("#r-given")
            assert ConsentText.load(CONSENT / "door.de.txt").sha256 in page.inner_text("#r-text")
            assert "Gesichtserkennung zum Öffnen dieser Tür" in page.inner_text("#consent-text")
            assert "Tür geöffnet" in page.inner_text("#own-audit")
            html = page.content()
            assert b not in html and "Bob" not in html and "Anna" not in html  # no one else; no name at all
            own = page.inner_text("#own-audit")
            assert len(page.locator("#own-audit tr").all()) == 1 + 2  # a heading, then A's enrolment and grant
            assert "unknown" not in page.inner_text("main") and "Erkannt (Tür geöffnet)" in own
            shot(page, "36-mydata-de")
            with page.expect_download() as download:
                page.click("#receipt-download")
            saved = tmp_path / "from-the-page.json"
            download.value.save_as(saved)
            english = browser.new_context(base_url=web.url, locale="en-US").new_page()
            english.goto("/mydata")
            english.fill("#code", codes[a])
            english.click("#show")
            sync_api.expect(english.locator("h1")).to_have_text("What we hold about you")
            assert b not in english.content()
            shot(english, "37-mydata-en")
            browser.close()
    finally:
        web.close()
    doc = json.loads(saved.read_text())
    assert doc["subject"] == a and doc["consent"]["language"] == "de" and b not in saved.read_text()
    assert main(["--home", str(home), "audit", "verify-receipt", str(saved)]) == 0
    raw = bytearray(saved.read_bytes())
    raw[raw.index(b"de", raw.index(b'"language"'))] = ord("D")
    saved.write_bytes(bytes(raw))
    assert main(["--home", str(home), "audit", "verify-receipt", str(saved)]) == 1


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_by_face_the_checks_of_a_withdrawal_show_the_record_and_never_revoke(store):
    """The loop's part (one track, liveness, the challenge: tests/test_forget_camera.py) is played
    here by setting the session's Withdrawal to found, as forget.py does when the checks pass."""
    import time

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    home, vault, a, b, codes = store
    kiosk = KioskState()
    web = WebServer(WebApp(Settings(), kiosk, vault).wsgi, "127.0.0.1", 0)
    web.start()

    def found(subject):
        with kiosk.lock:
            f = kiosk.forget
            f.state, f.candidate, f.seen_at = "found", subject, time.monotonic()
        return f

    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_context(base_url=web.url, locale="es-ES").new_page()
            page.goto("/mydata")
            page.click("#use-camera")
            sync_api.expect(page.locator("h1")).to_have_text("Mire a la cámara")
            assert kiosk.forget.purpose == "show"
            found(a)
            sync_api.expect(page.locator("#confirm")).to_be_visible(timeout=10000)
            csrf = page.locator("input[name=csrf]").first.get_attribute("value")
            refused = page.request.post("/forget/confirm", form={"csrf": csrf})  # a "show me" is no withdrawal
            assert refused.ok and "receipt" not in refused.text() and len(vault.subjects()) == 2
            page.click("#confirm-button")
            sync_api.expect(page.locator("h1")).to_have_text("Lo que guardamos sobre usted")
            assert page.inner_text("#r-subject").endswith(a) and b not in page.content()
            assert kiosk.forget is None and len(vault.subjects()) == 2
            page.goto("/forget")  # and a withdrawal's checks do not show a record
            page.click("#use-camera")
            found(a)
            shown = page.request.post("/mydata/confirm", form={"csrf": csrf})
            assert a not in shown.text() and "r-subject" not in shown.text()
            browser.close()
    finally:
        web.close()


def test_a_site_record_carries_the_language_and_an_english_one_is_unchanged():
    from types import SimpleNamespace

    import numpy as np
    from consentry.fleet.records import Payload, RecordRefused
    from consentry.vault import crypto

    key, aad = crypto.new_key(), "site:s-1"
    german = record(ConsentText.load(CONSENT / "door.de.txt"))
    english = record(ConsentText.load(CONSENT / "door.txt"))
    vecs = np.stack(vectors(4, 2))

    def reopen(consent):
        sealed = Payload(consent, MODEL, vecs).seal(key, aad)
        head = crypto.unseal(key, sealed, aad, "payload").partition(b"\n")[0]
        return json.loads(head), Payload.open(key, SimpleNamespace(body=sealed, aad=aad, subject="s-1"), "site")

    head, opened = reopen(german)
    assert head["language"] == "de" and opened.consent.language == "de"  # a door's replica keeps it too
    head, opened = reopen(english)
    assert "language" not in head and opened.consent.language == "en"  # as before languages existed
    with pytest.raises(RecordRefused):
        reopen(ConsentRecord(**{**german.__dict__, "language": "<b>"}))

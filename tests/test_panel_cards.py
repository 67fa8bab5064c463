"""Panel credentials in the vault: sealed, bound to their row, unique, destroyed on revocation."""

from __future__ import annotations

import sqlite3

import pytest
from consentry.errors import CardInUse, TemplateIntegrityError, VaultError
from consentry.panel.formats import Card
from consentry.vault import KeyFile, Vault
from consentry.vault.store import DB_NAME

from tests.test_vault import MODEL, consent, store_bytes, vectors


def test_card_sealed_unique_and_destroyed(vault, tmp_path):
    a = vault.enroll("A", consent(), vectors(1), MODEL, card=Card(17, 40961))
    b = vault.enroll("B", consent(), vectors(2), MODEL)
    assert vault.card(a) == Card(17, 40961) and vault.card(b) is None
    with pytest.raises(CardInUse):
        vault.set_card(b, Card(17, 40961))
    with pytest.raises(CardInUse):
        vault.enroll("C", consent(), vectors(3), MODEL, card=Card(17, 40961))
    assert len(vault.subjects()) == 2  # the refused enrolment left nothing behind
    vault.set_card(b, Card(18, 40961))  # another facility is another card
    assert vault.card_in_use(Card(18, 40961)) and not vault.card_in_use(Card(18, 40961), other_than=b)
    needle = b"40961"
    assert needle not in store_bytes(tmp_path / "home")
    assert all("40961" not in str(e) for e in vault.audit_entries())
    vault.revoke(a)
    assert not vault.card_in_use(Card(17, 40961))  # the card can be given to someone else now
    vault.set_card(b, Card(17, 40961))


def test_card_moved_or_cleared_outside_is_refused(vault, tmp_path):
    a = vault.enroll("A", consent(), vectors(1), MODEL, card=Card(1, 100))
    b = vault.enroll("B", consent(), vectors(2), MODEL, card=Card(1, 200))
    db = sqlite3.connect(tmp_path / "home" / DB_NAME)
    old_a = db.execute("SELECT card_ct FROM subjects WHERE id=?", (a,)).fetchone()[0]
    ct_b, tag_b = db.execute("SELECT card_ct, card_tag FROM subjects WHERE id=?", (b,)).fetchone()
    db.execute("UPDATE subjects SET card_tag=NULL WHERE id=?", (b,))  # who holds b's row can take its card?
    db.execute("UPDATE subjects SET card_ct=?, card_tag=? WHERE id=?", (ct_b, tag_b, a))
    db.commit()
    with pytest.raises(VaultError):  # the tag is signed: a's row fails its MAC
        vault.card(a)
    with pytest.raises(VaultError):
        vault.card(b)
    db.execute("UPDATE subjects SET card_ct=?, card_tag=? WHERE id=?", (old_a, None, a))
    db.commit()
    with pytest.raises(VaultError):
        vault.card(a)
    db.close()


def test_older_card_put_back_is_refused(vault, tmp_path):
    a = vault.enroll("A", consent(), vectors(1), MODEL, card=Card(1, 100))
    db = sqlite3.connect(tmp_path / "home" / DB_NAME)
    old = db.execute("SELECT card_ct FROM subjects WHERE id=?", (a,)).fetchone()[0]
    vault.set_card(a, Card(1, 101))
    db.execute("UPDATE subjects SET card_ct=? WHERE id=?", (old, a))
    db.commit()
    with pytest.raises(TemplateIntegrityError, match="does not match its tag"):
        vault.card(a)
    db.close()


def test_rows_signed_before_cards_keep_their_mac(vault):
    a = vault.enroll("A", consent(), vectors(1), MODEL)
    assert vault.subjects()[0].intact and vault.card(a) is None
    vault.set_card(a, Card(3, 4))
    vault.set_card(a, None)
    assert vault.subjects()[0].intact and vault.card(a) is None


def test_cli_subjects_card_and_panel_key(tmp_path, capsys):
    from consentry.cli import main

    home = tmp_path / "cli-home"
    assert main(["--home", str(home), "keys", "init"]) == 0
    with Vault(home, KeyFile(home / "master.key")) as v:
        a = v.enroll("A", consent(), vectors(1), MODEL)
        b = v.enroll("B", consent(), vectors(2), MODEL)
    assert main(["--home", str(home), "subjects", "card", a, "40961"]) == 0
    assert main(["--home", str(home), "subjects", "card", b, "40961"]) == 2  # in use: refused
    assert main(["--home", str(home), "subjects", "card", b, "70000"]) == 2  # too big for h10301
    assert "0-65535" in capsys.readouterr().err
    assert main(["--home", str(home), "subjects", "card", b, "40961", "--facility", "3"]) == 0
    assert main(["--home", str(home), "panel", "key"]) == 0
    assert "not set" in capsys.readouterr().out
    assert main(["--home", str(home), "panel", "key", "--set", "303132333435363738393a3b3c3d3e3f"]) == 2
    assert main(["--home", str(home), "panel", "key", "--set", "8f3a61c2d94be07512aa03f6c8e1b4d7"]) == 0
    assert main(["--home", str(home), "panel", "key"]) == 0
    out = capsys.readouterr().out
    assert "fingerprint" in out and "8f3a61c2" not in out
    with Vault(home, KeyFile(home / "master.key")) as v:
        assert v.card(a) == Card(0, 40961) and v.card(b) == Card(3, 40961)
        assert v.secret("panel-scbk") == bytes.fromhex("8f3a61c2d94be07512aa03f6c8e1b4d7")
    assert main(["--home", str(home), "subjects", "card", a, "--remove"]) == 0
    assert main(["--home", str(home), "revoke", b]) == 0
    with Vault(home, KeyFile(home / "master.key")) as v:
        assert v.card(a) is None and not v.card_in_use(Card(3, 40961))

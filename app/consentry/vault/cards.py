"""The vault's side of panel credentials: one card per subject, sealed and bound to its row.

A mixin of :class:`~consentry.vault.store.Vault` (its connection, lock and keys). The card
(facility and number) is sealed with the subject's data key, the associated data naming the
subject, so it cannot be moved to another row; a keyed hash of it (``card_tag``, covered by the
row's MAC) is unique across subjects, so a card already registered is refused, and an older
sealed card put back in the row no longer matches its tag. Revocation and expiry delete the row,
and the card with it. Audit entries say a card was set, never which.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3

from ..errors import CardInUse, SubjectNotFound, TemplateIntegrityError, VaultError
from ..panel.formats import Card
from . import crypto
from .aad import BLOB_VERSION


def aad_card(subject: str) -> str:
    return f"consentry:card:v{BLOB_VERSION}:{subject}"


class CardRows:
    def _card_tag(self, card: Card) -> str:
        # from the audit key, which a master-key rotation keeps: tags stay comparable across it
        key = crypto.derive(self.audit.key, "panel-card")
        return hmac.new(key, f"{int(card.facility)}:{int(card.number)}".encode(), hashlib.sha256).hexdigest()

    def card_in_use(self, card: Card, other_than: str | None = None) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT id FROM subjects WHERE card_tag=?", (self._card_tag(card),)).fetchone()
        return row is not None and row[0] != other_than

    def _put_card(self, subject: str, card: Card | None) -> None:
        """Inside the caller's transaction; ``None`` removes the subject's card."""
        row = self._conn.execute("SELECT wrapped_key FROM subjects WHERE id=?", (subject,)).fetchone()
        if row is None:
            raise SubjectNotFound(f"no subject {subject}")
        if card is None:
            self._conn.execute("UPDATE subjects SET card_ct=NULL, card_tag=NULL WHERE id=?", (subject,))
        else:
            plain = json.dumps([int(card.facility), int(card.number)]).encode()
            blob = crypto.seal(self._data_key(subject, row[0]), plain, aad_card(subject))
            try:
                self._conn.execute("UPDATE subjects SET card_ct=?, card_tag=? WHERE id=?",
                                   (blob, self._card_tag(card), subject))
            except sqlite3.IntegrityError:
                raise CardInUse("that card is already registered to another subject; nothing was changed") from None
        self._signer.sign(subject)
        self.audit.append(self._now(), "card_set" if card is not None else "card_removed", subject)

    def set_card(self, subject: str, card: Card | None) -> None:
        """Register (or, with None, remove) the subject's panel credential."""
        with self._txn():
            self._put_card(subject, card)
        if card is None:
            self._checkpoint()  # the old sealed card leaves the WAL too
        for callback in self._enrol_callbacks:  # a site republishes the subject's record
            callback(subject)

    def card(self, subject: str) -> Card | None:
        """The subject's credential, or None when it has none. A row failing its MAC, a sealed
        card from another row or an older card put back is a VaultError: nothing is sent."""
        with self._lock:
            row = self._conn.execute("SELECT wrapped_key, card_ct, card_tag, row_mac FROM subjects WHERE id=?",
                                     (subject,)).fetchone()
        if row is None:
            raise SubjectNotFound(f"no subject {subject}")
        wrapped, blob, tag, mac = row
        if not self._signer.intact(subject, mac):
            raise VaultError(f"subject {subject}: its record fails its MAC; its card is not used")
        if blob is None and tag is None:
            return None
        if blob is None or tag is None:
            raise TemplateIntegrityError(f"card of subject {subject} is incomplete")
        raw = crypto.unseal(self._data_key(subject, wrapped), bytes(blob), aad_card(subject),
                            f"card of subject {subject}")
        facility, number = json.loads(raw)
        card = Card(int(facility), int(number))
        if not hmac.compare_digest(self._card_tag(card), str(tag)):
            raise TemplateIntegrityError(f"card of subject {subject} does not match its tag (an older card put back?)")
        return card

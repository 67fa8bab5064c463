"""The written retention schedule, generated from config so it can be published before
anyone is enrolled (BIPA requires a public schedule)."""

from __future__ import annotations

from ..config import Settings
from .consent import MAX_RETENTION_DAYS


def retention_schedule(settings: Settings) -> str:
    v = settings.vault
    return f"""# Retention schedule — Consentry face recognition

What is kept, for each person who enrolled and consented:
- a face template (128 numbers computed from the face, not an image), encrypted with AES-256-GCM
  under a key of its own, and multiplied by this deployment's secret transform;
- the display name, encrypted the same way;
- the consent record: which consent text (id, version, sha256), when, how, witnessed by whom,
  the retention period and the adult/guardian statement;
- the last day the person was recognised.

What is never kept: photos or video of anyone; anything about people who did not enrol
(their faces are decided "unknown" and erased from memory at once).

When it is destroyed — whichever comes first:
1. when the person withdraws consent (kiosk "Forget me", staff, or `consentry revoke`): at once;
2. at the end of the retention period agreed in the consent (default {v.retention_days} days);
3. after {v.inactivity_days} days in which the person was not recognised;
4. never later than {MAX_RETENTION_DAYS} days (three years) after consent.

Expired records are purged automatically every {v.purge_interval_hours} hours. Destruction
deletes the person's key, template, name and consent record, overwrites the deleted database
pages and truncates the write-ahead log; an entry in the tamper-evident audit log records
that it happened (pseudonymous id only).
"""

"""Consent texts and the consent record every subject must have.

A consent text is a file with a small header, a blank line, then the exact text shown to
the person::

    consent-id: door-access
    consent-version: 1
    purposes: door
    language: en

    (the text)

Its sha256 (over the whole file) is stored with the record, so what was agreed to can be
proven later from the published text. One text may be published in several languages
(``door.txt``, ``door.de.txt`` …: the same id and version, each with its own ``language``
header, English when absent); the record says which one the person read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ConsentMissing

PURPOSES = ("door", "checkout")
METHODS = ("kiosk", "admin", "cli")
AGE_STATEMENTS = ("adult", "guardian")
MAX_RETENTION_DAYS = 3 * 365  # BIPA: destroy within three years at the latest


@dataclass(frozen=True)
class ConsentText:
    consent_id: str
    version: str
    purposes: tuple[str, ...]
    sha256: str
    text: str
    language: str = "en"

    @classmethod
    def load(cls, path: Path) -> ConsentText:
        try:
            raw = Path(path).read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"consent text {path} does not exist") from None
        head, sep, body = raw.decode("utf-8").partition("\n\n")
        fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        missing = [k for k in ("consent-id", "consent-version", "purposes") if not fields.get(k)]
        if not sep or missing or not body.strip():
            raise ConfigError(f"consent text {path} needs a header with {', '.join(missing) or 'its fields'}, "
                              "a blank line and the text")
        purposes = tuple(p.strip() for p in fields["purposes"].split(",") if p.strip())
        unknown = set(purposes) - set(PURPOSES)
        if unknown:
            raise ConfigError(f"consent text {path}: unknown purposes {sorted(unknown)}")
        return cls(fields["consent-id"], fields["consent-version"], purposes,
                   hashlib.sha256(raw).hexdigest(), body.strip(), fields.get("language", "en") or "en")


@dataclass(frozen=True)
class ConsentRecord:
    """What the person agreed to, when, how, and who witnessed it.

    given_at: ISO 8601 UTC. method: kiosk | admin | cli. retention_days: at most three years.
    age_statement: ``adult`` (the person declared they are an adult) or ``guardian`` (a
    guardian consented for a minor). identify_opt_in: may this subject be found 1:N at a
    checkout (claim-free); a door always searches 1:N among door subjects. language: the
    language of the text the person read (a two-letter code; records older than schema 7: en).
    greeting: the person asked to be greeted by their first name on the kiosk screen.
    """

    consent_id: str
    version: str
    sha256: str
    given_at: str
    method: str
    witnessed_by: str
    retention_days: int
    age_statement: str
    purposes: tuple[str, ...]
    identify_opt_in: bool = False
    language: str = "en"
    greeting: bool = False

    def validate(self) -> None:
        problems = [name for name in ("consent_id", "version", "sha256", "given_at", "witnessed_by")
                    if not str(getattr(self, name)).strip()]
        if self.method not in METHODS:
            problems.append(f"method must be one of {METHODS}")
        if self.age_statement not in AGE_STATEMENTS:
            problems.append(f"age_statement must be one of {AGE_STATEMENTS}")
        if not 1 <= self.retention_days <= MAX_RETENTION_DAYS:
            problems.append(f"retention_days must be 1..{MAX_RETENTION_DAYS}")
        if not self.purposes or set(self.purposes) - set(PURPOSES):
            problems.append(f"purposes must be a non-empty subset of {PURPOSES}")
        if problems:
            raise ConsentMissing("enrolment refused: the consent record is incomplete (" + "; ".join(problems) + ")")

    @classmethod
    def from_text(cls, text: ConsentText, *, given_at: str, method: str, witnessed_by: str,
                  retention_days: int, age_statement: str = "adult", purposes: tuple[str, ...] | None = None,
                  identify_opt_in: bool = False, greeting: bool = False) -> ConsentRecord:
        chosen = purposes or text.purposes
        if set(chosen) - set(text.purposes):
            raise ConsentMissing(f"consent text {text.consent_id} does not cover purposes {sorted(set(chosen))}")
        return cls(text.consent_id, text.version, text.sha256, given_at, method, witnessed_by, retention_days,
                   age_statement, tuple(chosen), identify_opt_in, text.language, greeting)

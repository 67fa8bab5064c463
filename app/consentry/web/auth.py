"""Staff authentication for the web page: Argon2id hashes, server-side sessions with CSRF
tokens, and login rate limiting. Cookies are HttpOnly and SameSite=Strict."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_COOKIE = "consentry_session"
SESSION_IDLE_S = 15 * 60
ENROL_UNLOCK_S = 10 * 60
MAX_FAILURES, FAILURE_WINDOW_S = 5, 300

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    if len(secret) < 4:
        raise ValueError("too short")
    return _hasher.hash(secret)


def verify_secret(hashed: str | None, secret: str) -> bool:
    if not hashed:
        return False
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class Session:
    token: str
    csrf: str
    admin: bool = False
    enrol_until: float = 0.0
    pending: dict = field(default_factory=dict)  # enrolment details between pages (no images)
    touched: float = field(default_factory=time.monotonic)

    @property
    def enrol_unlocked(self) -> bool:
        return self.admin or time.monotonic() < self.enrol_until


class Sessions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}

    def get(self, token: str | None) -> Session:
        """The caller's session, or a fresh one (every visitor gets a CSRF token)."""
        now = time.monotonic()
        with self._lock:
            for stale in [t for t, s in self._sessions.items() if now - s.touched > SESSION_IDLE_S]:
                del self._sessions[stale]
            session = self._sessions.get(token or "")
            if session is None:
                session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
                self._sessions[session.token] = session
            session.touched = now
            return session

    def rotate(self, session: Session) -> Session:
        """A new token after login (no session fixation)."""
        with self._lock:
            self._sessions.pop(session.token, None)
            session.token = secrets.token_urlsafe(32)
            self._sessions[session.token] = session
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)

    def limited(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW_S]
            self._failures[client] = recent
            return len(recent) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())

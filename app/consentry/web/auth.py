"""Staff authentication for the web page: Argon2id hashes, server-side sessions with CSRF
tokens, and login rate limiting. Cookies are HttpOnly and SameSite=Strict.

A visitor costs no server memory: their cookie is a token the server signed, and their CSRF
token and session key are derived from it (HMAC under a per-process secret). The token carries
its signed issue time: one not renewed by a request for SESSION_IDLE_S counts as absent, as
an idle kept session does (it is renewed, same nonce, after VISITOR_RENEW_S). Only a session
with something worth keeping — a staff login or a PIN-unlocked enrolment, both reached
through :meth:`Sessions.rotate` — takes one of the MAX_SESSIONS slots, so no number of
cookie-less requests can push a signed-in member of staff or an enrolment out.
"""

from __future__ import annotations

import hashlib
import hmac
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
MAX_SESSIONS = 512
VISITOR_RENEW_S = 60  # a visitor's cookie is re-issued (same nonce, new time) at most this often
# Argon2id costs 64 MiB per verification: at most two run at once, whatever arrives.
VERIFY_SLOTS = threading.BoundedSemaphore(2)

_hasher = PasswordHasher()


class Busy(Exception):
    """Every verification slot is taken: answer 429 instead of queueing more Argon2 memory."""


def hash_secret(secret: str) -> str:
    if len(secret) < 4:
        raise ValueError("too short")
    return _hasher.hash(secret)


def verify_secret(hashed: str | None, secret: str) -> bool:
    """Raises :class:`Busy` when no verification slot is free."""
    if not hashed or len(secret) > 1024:
        return False
    if not VERIFY_SLOTS.acquire(blocking=False):
        raise Busy
    try:
        return _hasher.verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False
    finally:
        VERIFY_SLOTS.release()


@dataclass
class Session:
    """``key`` never leaves the server (enrolment and withdrawal flows are bound to it);
    ``token`` (the cookie), ``csrf`` and ``key`` are all replaced when privilege changes."""

    token: str
    csrf: str
    key: str = field(default_factory=lambda: secrets.token_hex(16))
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
        self._sessions: dict[str, Session] = {}  # kept (privileged) sessions only
        self._secret = secrets.token_bytes(32)
        self._failures: dict[str, list[float]] = {}

    def get(self, token: str | None) -> Session:
        """The caller's kept session, or a visitor's, derived from a cookie this server signed
        (a fresh one when the cookie is missing, forged or from before a restart). Nothing is
        stored for a visitor: every visitor still gets a stable CSRF token and session key."""
        now = time.monotonic()
        with self._lock:
            for stale in [t for t, s in self._sessions.items() if now - s.touched > SESSION_IDLE_S]:
                del self._sessions[stale]
            session = self._sessions.get(token or "")
            if session is not None:
                session.touched = now
                return session
        nonce = self._nonce(token) if token else None
        if nonce is None:
            return self._visitor(secrets.token_urlsafe(24), int(now))
        issued = int(token.split(".")[1])
        return self._visitor(nonce, issued if now - issued < VISITOR_RENEW_S else int(now))

    def _mac(self, purpose: str, text: str) -> str:
        return hmac.new(self._secret, f"{purpose}|{text}".encode(), hashlib.sha256).hexdigest()

    def _nonce(self, token: str) -> str | None:
        """The nonce of a token this process signed and issued (or renewed) within
        SESSION_IDLE_S, else None (forged, from before a restart, or lapsed)."""
        nonce, _, rest = token.partition(".")
        issued, _, tag = rest.partition(".")
        if not nonce or not issued.isdigit() or not hmac.compare_digest(
                tag.encode(), self._mac("token", f"{nonce}.{issued}")[:32].encode()):
            return None
        return nonce if 0 <= time.monotonic() - int(issued) < SESSION_IDLE_S else None

    def _mint(self) -> str:
        return self._visitor(secrets.token_urlsafe(24), int(time.monotonic())).token

    def _visitor(self, nonce: str, issued: int) -> Session:
        """A visitor's session: its CSRF token and key follow from the nonce alone, so a
        renewed cookie keeps the page's forms and flows."""
        token = f"{nonce}.{issued}.{self._mac('token', f'{nonce}.{issued}')[:32]}"
        return Session(token, self._mac("csrf", nonce), key=self._mac("key", nonce)[:32])

    def holds(self, key: str) -> bool:
        """Whether a kept session with this key is still alive (not ended, evicted or idle)."""
        now = time.monotonic()
        with self._lock:
            return any(s.key == key and now - s.touched <= SESSION_IDLE_S for s in self._sessions.values())

    def rotate(self, session: Session) -> Session:
        """A new token, CSRF token and key when privilege changes (login, PIN unlock): no
        fixation. The key is new too: a visitor's key follows from its cookie, which still
        passes the signature check after rotation, so a planted cookie would otherwise reach
        the privileged session's enrolment and its code. No flow started before the unlock
        carries over (an enrolment starts after it). The session is kept from then on."""
        with self._lock:
            self._sessions.pop(session.token, None)
            if len(self._sessions) >= MAX_SESSIONS:  # bounded: the least recently used goes
                del self._sessions[min(self._sessions, key=lambda t: self._sessions[t].touched)]
            session.token = self._mint()
            session.csrf = secrets.token_urlsafe(32)
            session.key = secrets.token_hex(16)
            session.touched = time.monotonic()
            self._sessions[session.token] = session
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)

    def attempt(self, client: str, purpose: str) -> bool:
        """Reserve one attempt (``login``, ``pin``, ``code``) for ``client`` before any hashing:
        False when the last window already holds MAX_FAILURES, counting attempts in flight, so
        40 parallel requests get 5 tries, not 40. :meth:`succeeded` gives the slot back."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(f"{purpose}:{client}", []) if now - t < FAILURE_WINDOW_S]
            if len(recent) >= MAX_FAILURES:
                self._failures[f"{purpose}:{client}"] = recent
                return False
            self._failures[f"{purpose}:{client}"] = [*recent, now]
            if len(self._failures) > 4 * MAX_SESSIONS:  # bounded: forget the quietest clients
                for key in sorted(self._failures, key=lambda k: max(self._failures[k], default=0))[:MAX_SESSIONS]:
                    del self._failures[key]
            return True

    def succeeded(self, client: str, purpose: str) -> None:
        with self._lock:
            tries = self._failures.get(f"{purpose}:{client}")
            if tries:
                tries.pop()

"""The web application: routes for the kiosk, enrolment, "forget me" and the staff pages,
on the standard library's threading HTTP server (a kiosk serves one screen; no framework).

Every POST needs the session's CSRF token; staff pages need an Argon2-checked login; login
and PIN attempts are rate limited per client. No route returns a face or a template.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import segno

from ..config import Settings
from ..errors import ConsentryError, SubjectNotFound
from . import pages
from .auth import ENROL_UNLOCK_S, SESSION_COOKIE, Session, Sessions, verify_secret
from .state import Capture, Forget, KioskState

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024


def consent_dir(settings: Settings) -> Path:
    if settings.http.consent_dir:
        return settings.http.consent_dir
    checkout = Path(__file__).resolve().parents[3] / "deploy" / "consent"
    return checkout if checkout.is_dir() else Path("/etc/consentry/consent")


def cpu_temperature() -> str:
    try:
        return f"{int(Path('/sys/class/thermal/thermal_zone0/temp').read_text()) / 1000:.1f} °C"
    except (OSError, ValueError):
        return "not available"


class Response:
    def __init__(self, body: str | dict, status: int = 200, headers: dict | None = None) -> None:
        self.json = isinstance(body, dict)
        self.body = (json.dumps(body) if self.json else body).encode()
        self.status = status
        self.headers = headers or {}


def redirect(location: str) -> Response:
    return Response("", HTTPStatus.SEE_OTHER, {"Location": location})


class WebApp:
    """Route handlers; ``vault`` may be None (no key yet: enrolment and withdrawal say so)."""

    def __init__(self, settings: Settings, kiosk: KioskState, vault, health=lambda: {}) -> None:
        self.settings = settings
        self.kiosk = kiosk
        self.vault = vault
        self.health = health
        self.sessions = Sessions()

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, method: str, path: str, session: Session, form: dict[str, str], client: str) -> Response:
        if method == "POST" and form.get("csrf") != session.csrf:
            return Response(pages.message("Refused", "This form has expired or did not come from this kiosk.",
                                          cls="error"), HTTPStatus.FORBIDDEN)
        route = self.ROUTES.get((method, path))
        if route is None:
            return Response(pages.message("Not found", "There is no such page."), HTTPStatus.NOT_FOUND)
        try:
            return route(self, session, form, client)
        except ConsentryError as exc:
            log.warning("%s %s: %s", method, path, exc)
            return Response(pages.message("Something went wrong", str(exc), cls="error"), HTTPStatus.CONFLICT)

    # -- kiosk ----------------------------------------------------------------------------
    def home(self, session, form, client):
        return Response(pages.kiosk())

    def api_kiosk(self, session, form, client):
        return Response(self.kiosk.kiosk_view())

    # -- enrolment ------------------------------------------------------------------------
    def enroll(self, session, form, client):
        if self.vault is None:
            return Response(pages.message("Enrolment unavailable", "This device has no master key yet."))
        if not session.enrol_unlocked:
            return Response(pages.enroll_unlock(session.csrf))
        return Response(pages.enroll_details(session.csrf))

    def enroll_unlock(self, session, form, client):
        if self.sessions.limited(client):
            return Response(pages.enroll_unlock(session.csrf, "Too many attempts; wait a few minutes."),
                            HTTPStatus.TOO_MANY_REQUESTS)
        pin = form.get("pin", "")
        if self.vault and (verify_secret(self.vault.credential("pin"), pin)
                           or verify_secret(self.vault.credential("admin"), pin)):
            session.enrol_until = time.monotonic() + ENROL_UNLOCK_S
            return redirect("/enroll")
        self.sessions.failed(client)
        return Response(pages.enroll_unlock(session.csrf, "Wrong PIN."), HTTPStatus.UNAUTHORIZED)

    def enroll_start(self, session, form, client):
        if not session.enrol_unlocked:
            return redirect("/enroll")
        name, purpose, age = form.get("name", "").strip(), form.get("purpose"), form.get("age", "adult")
        if not name or purpose not in ("door", "checkout") or age not in ("adult", "guardian"):
            return Response(pages.enroll_details(session.csrf, "Please fill in every field."),
                            HTTPStatus.BAD_REQUEST)
        session.pending = {"name": name[:80], "purpose": purpose, "age": age}
        return redirect("/enroll/consent")

    def _consent_text(self, purpose: str):
        from ..vault import ConsentText

        return ConsentText.load(consent_dir(self.settings) / f"{purpose}.txt")

    def enroll_consent(self, session, form, client):
        if not session.enrol_unlocked or not session.pending:
            return redirect("/enroll")
        text = self._consent_text(session.pending["purpose"])
        return Response(pages.enroll_consent(session.csrf, text.text, self.settings.vault.retention_days))

    def enroll_decline(self, session, form, client):
        session.pending = {}
        return Response(pages.message("Nothing was stored", "You declined. Nothing was captured or stored."))

    def enroll_accept(self, session, form, client):
        from ..vault import ConsentRecord

        if not session.enrol_unlocked or not session.pending:
            return redirect("/enroll")
        p, session.pending = session.pending, {}
        consent = ConsentRecord.from_text(
            self._consent_text(p["purpose"]), given_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            method="kiosk", witnessed_by="staff (admin session)" if session.admin else "staff (PIN)",
            retention_days=self.settings.vault.retention_days, age_statement=p["age"], purposes=(p["purpose"],))
        consent.validate()
        with self.kiosk.lock:
            self.kiosk.capture = Capture(name=p["name"], consent=consent)
        session.enrol_until = 0.0 if not session.admin else session.enrol_until  # one enrolment per unlock
        return redirect("/enroll/capture")

    def enroll_capture(self, session, form, client):
        capture = self.kiosk.capture
        return Response(pages.enroll_capture(capture.needed if capture else 5))

    def api_enroll(self, session, form, client):
        with self.kiosk.lock:
            c = self.kiosk.capture
            if c is None:
                return Response({"state": "none", "hint": "", "collected": 0})
            return Response({"state": c.state, "hint": c.hint, "collected": c.collected, "needed": c.needed})

    def enroll_done(self, session, form, client):
        with self.kiosk.lock:
            c, self.kiosk.capture = self.kiosk.capture, None
        if c is None or c.state != "done" or not c.code:
            reason = c.error if c and c.error else "The enrolment did not finish; nothing was stored."
            return Response(pages.message("Not enrolled", reason))
        # A full QR code (segno.make would pick a Micro QR for so short a text, which phones rarely read).
        svg = segno.make_qr(c.code, error="m").svg_inline(scale=6, title="revocation code")
        return Response(pages.enroll_done(c.code, svg))

    # -- forget me ------------------------------------------------------------------------
    def forget(self, session, form, client):
        return Response(pages.forget(session.csrf))

    def forget_code(self, session, form, client):
        if self.sessions.limited(client):
            return Response(pages.forget(session.csrf, "Too many attempts; wait a few minutes."),
                            HTTPStatus.TOO_MANY_REQUESTS)
        try:
            receipt = self.vault.revoke_by_code(form.get("code", ""))
        except (SubjectNotFound, AttributeError):
            self.sessions.failed(client)
            return Response(pages.forget(session.csrf, "That code is not valid."), HTTPStatus.NOT_FOUND)
        return Response(pages.receipt(receipt.as_json()))

    def forget_camera(self, session, form, client):
        with self.kiosk.lock:
            self.kiosk.forget = Forget()
        return Response(pages.forget_camera(session.csrf))

    def api_forget(self, session, form, client):
        with self.kiosk.lock:
            f = self.kiosk.forget
            if f is not None and f.state == "looking" and time.monotonic() > f.deadline:
                f.state = "timeout"
            return Response({"state": f.state if f else "none"})

    def forget_confirm(self, session, form, client):
        with self.kiosk.lock:
            f, self.kiosk.forget = self.kiosk.forget, None
        if f is None or f.state != "found" or not f.candidate:
            return Response(pages.forget(session.csrf, "You were not recognised; nothing was changed."))
        return Response(pages.receipt(self.vault.revoke(f.candidate, reason="withdrawn at the kiosk").as_json()))

    # -- staff ----------------------------------------------------------------------------
    def admin(self, session, form, client, *, names: bool = False, report: dict | None = None):
        if not session.admin:
            return Response(pages.admin_login(session.csrf))
        from ..vault.schedule import retention_schedule

        subjects = [s.as_json() for s in self.vault.subjects(show_names=names, reason=form.get("reason", ""))] \
            if self.vault else []
        audit = self.vault.audit_entries(30) if self.vault else []
        health = {**self.health(), "CPU temperature": cpu_temperature()}
        return Response(pages.admin_dashboard(session.csrf, subjects, audit, report, health,
                                              retention_schedule(self.settings), names))

    def admin_login(self, session, form, client):
        if self.sessions.limited(client):
            return Response(pages.admin_login(session.csrf, "Too many failed logins; wait a few minutes."),
                            HTTPStatus.TOO_MANY_REQUESTS)
        if self.vault is not None and verify_secret(self.vault.credential("admin"), form.get("password", "")):
            session = self.sessions.rotate(session)
            session.admin = True
            return Response("", HTTPStatus.SEE_OTHER, {"Location": "/admin", "Set-Cookie": cookie(session)})
        self.sessions.failed(client)
        return Response(pages.admin_login(session.csrf, "Wrong password."), HTTPStatus.UNAUTHORIZED)

    def admin_logout(self, session, form, client):
        self.sessions.end(session)
        return redirect("/")

    def admin_names(self, session, form, client):
        if not session.admin or not form.get("reason", "").strip():
            return redirect("/admin")
        return self.admin(session, form, client, names=True)

    def admin_revoke(self, session, form, client):
        if not session.admin:
            return redirect("/admin")
        receipt = self.vault.revoke(form.get("subject", ""), reason="revoked by staff")
        return Response(pages.message("Revoked", f"Subject {receipt.subject} was revoked and destroyed.",
                                      link="/admin", link_text="Back to staff page"))

    def admin_verify(self, session, form, client):
        if not session.admin:
            return redirect("/admin")
        return self.admin(session, {}, client, report=self.vault.verify_audit().as_json())

    ROUTES = {
        ("GET", "/"): home, ("GET", "/api/kiosk"): api_kiosk,
        ("GET", "/enroll"): enroll, ("POST", "/enroll/unlock"): enroll_unlock,
        ("POST", "/enroll/start"): enroll_start, ("GET", "/enroll/consent"): enroll_consent,
        ("POST", "/enroll/accept"): enroll_accept, ("POST", "/enroll/decline"): enroll_decline,
        ("GET", "/enroll/capture"): enroll_capture, ("GET", "/api/enroll"): api_enroll,
        ("GET", "/enroll/done"): enroll_done,
        ("GET", "/forget"): forget, ("POST", "/forget/code"): forget_code,
        ("POST", "/forget/camera"): forget_camera, ("GET", "/api/forget"): api_forget,
        ("POST", "/forget/confirm"): forget_confirm,
        ("GET", "/admin"): admin, ("POST", "/admin/login"): admin_login, ("POST", "/admin/logout"): admin_logout,
        ("POST", "/admin/names"): admin_names, ("POST", "/admin/revoke"): admin_revoke,
        ("POST", "/admin/audit/verify"): admin_verify,
    }


def cookie(session: Session) -> str:
    return f"{SESSION_COOKIE}={session.token}; HttpOnly; SameSite=Strict; Path=/"


class Handler(BaseHTTPRequestHandler):
    server_version = "Consentry"
    sys_version = ""

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("web: " + fmt, *args)

    def _serve(self, method: str) -> None:
        app: WebApp = self.server.app  # type: ignore[attr-defined]
        cookies = SimpleCookie(self.headers.get("Cookie", ""))
        token = cookies[SESSION_COOKIE].value if SESSION_COOKIE in cookies else None
        session = app.sessions.get(token)
        form: dict[str, str] = {}
        if method == "POST":
            length = min(int(self.headers.get("Content-Length", 0) or 0), MAX_BODY)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        response = app.handle(method, urlparse(self.path).path, session, form, self.client_address[0])
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json" if response.json else "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline' 'self'; connect-src 'self'")
        if "Set-Cookie" not in response.headers and token != session.token:
            self.send_header("Set-Cookie", cookie(session))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")


class WebServer:
    """Serves ``WebApp`` on a background thread; ``port`` 0 picks a free port."""

    def __init__(self, app: WebApp, bind: str, port: int) -> None:
        self.httpd = ThreadingHTTPServer((bind, port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = app  # type: ignore[attr-defined]
        self.url = f"http://{bind}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


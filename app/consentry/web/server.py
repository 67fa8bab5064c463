"""The web application: routes for the kiosk, enrolment, "forget me" and the staff pages,
served by waitress through web/http.py (no framework: a kiosk serves one screen).

Every POST needs the session's CSRF token; staff pages need an Argon2-checked login; login,
PIN and revocation-code attempts are rate limited per client and purpose before any hashing.
An enrolment or a withdrawal by face belongs to the session that started it, and an enrolment
is stored only when its revocation code is handed to that session (web/capture.py). No route
returns a face or a template.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from http import HTTPStatus
from pathlib import Path

import segno

from ..config import Settings
from ..errors import ConsentryError, SubjectNotFound
from ..forget import MESSAGES, Withdrawal
from ..panel import card_field
from . import mydata, pages
from .auth import ENROL_UNLOCK_S, SESSION_COOKIE, Busy, Session, Sessions, verify_secret
from .http import Response, WebServer, wsgi_app
from .i18n import N_, _, current
from .state import BUSY, Capture, KioskState

log = logging.getLogger(__name__)
__all__ = ["WebApp", "WebServer"]
# Messages made outside web/ that the pages show (decide/challenge.PROMPTS, forget.MESSAGES and
# the kiosk prompt forget.py composes), marked here so the catalogue has them; they are translated
# when sent. tests/test_i18n.py keeps this list in step with those modules.
ELSEWHERE = (
    N_("Turn your head to your left"), N_("Turn your head to your right"), N_("Blink"),
    N_("Forget me: turn your head to your left to confirm"), N_("Forget me: turn your head to your right to confirm"),
    N_("Forget me: blink to confirm"), N_("Show my data: turn your head to your left to confirm"),
    N_("Show my data: turn your head to your right to confirm"), N_("Show my data: blink to confirm"),
    N_("The camera could not tell a live person from a photo or a screen."),
    N_("The camera saw the edge of a photo or a screen around the face."),
    N_("The face moved like a flat picture, not a head."),
    N_("The camera's picture did not change at all, as with a still image."),
    N_("The movement asked for on the screen was not seen in time."),
    N_("Too many failed attempts for this person: use your revocation code, or ask staff."),
    N_("The camera lost sight of you before it finished."),
    N_("Someone else came into view: one person at a time, please."),
    N_("The camera recognised a different person."),
    N_("You were not recognised. Use your revocation code, or ask staff."),
    N_("The checks did not finish in time."), N_("The withdrawal was not confirmed in time."),
    N_("the card number must be digits only"), N_("that card is already registered to another person"),
)


def forget_message(f) -> str:
    """Why a withdrawal by face ended, in the request's language ("" while it goes on)."""
    f.view()  # brings its state up to date (a deadline may have passed)
    return (_(MESSAGES.get(f.reason, "")) + " " + _("Nothing was changed.")).strip() if f.reason else ""


def consent_dir(settings: Settings) -> Path:
    if settings.http.consent_dir:
        return settings.http.consent_dir
    checkout = Path(__file__).resolve().parents[3] / "deploy" / "consent"
    return checkout if checkout.is_dir() else Path("/etc/consentry/consent")


def cpu_temperature() -> str:
    from ..doctor.host import RealHost, cpu_celsius

    celsius = cpu_celsius(RealHost())
    return "not available" if celsius is None else f"{celsius:.1f} °C"


def redirect(location: str) -> Response:
    return Response("", HTTPStatus.SEE_OTHER, {"Location": location})


def too_many(page: str) -> Response:
    return Response(page, HTTPStatus.TOO_MANY_REQUESTS, {"Retry-After": "60"})


class WebApp:
    """Route handlers; ``vault`` may be None (no key yet: enrolment and withdrawal say so)."""

    def __init__(self, settings: Settings, kiosk: KioskState, vault, health=lambda: {}, checks=lambda: [],
                 fleet=None, enrolment=None) -> None:
        self.settings = settings
        self.enrolment = enrolment  # the loop's KioskEnrolment: stores a capture when its owner collects the code
        self.fleet = fleet  # a site kiosk's FleetService: its doors are listed and approved here
        self.kiosk = kiosk
        self.vault = vault
        self.health = health
        self.checks = checks  # `consentry doctor`'s checks, as the running appliance can make them
        self.sessions = Sessions()
        self.wsgi = wsgi_app(self._serve, lambda title, text: pages.message(title, text, cls="error"))

    def _serve(self, method: str, path: str, token: str | None, form: dict[str, str],
               client: str) -> tuple[Response, str | None]:
        session = self.sessions.get(token)
        response = self.handle(method, path, session, form, client)
        return response, cookie(session) if token != session.token else None

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, method: str, path: str, session: Session, form: dict[str, str], client: str) -> Response:
        if method == "POST" and form.get("csrf") != session.csrf:
            return Response(pages.message(_("Refused"), _("This form has expired or did not come from this kiosk."),
                                          cls="error"), HTTPStatus.FORBIDDEN)
        if method == "GET" and path.startswith("/static/") and path.endswith(".js"):
            script = pages.SCRIPTS.get(path[len("/static/"):-len(".js")])
            if script is not None:
                return Response(script, content_type="text/javascript; charset=utf-8")
        route = self.ROUTES.get((method, path))
        if route is None:
            return Response(pages.message(_("Not found"), _("There is no such page.")), HTTPStatus.NOT_FOUND)
        try:
            return route(self, session, form, client)
        except Busy:
            return too_many(pages.message(_("Busy"), _("Too many sign-ins at once; try again in a minute."),
                                          cls="error"))
        except ConsentryError as exc:
            log.warning("%s %s: %s", method, path, exc)
            return Response(pages.message(_("Something went wrong"), _(str(exc)), cls="error"), HTTPStatus.CONFLICT)

    # -- kiosk ----------------------------------------------------------------------------
    def home(self, session, form, client):
        return Response(pages.kiosk())

    def api_kiosk(self, session, form, client):
        from ..vault.disclosure import greeting_name

        view = self.kiosk.kiosk_view()
        granted = self.kiosk.granted_subject()  # greeted by first name only if they asked at enrolment
        greeting = greeting_name(self.vault, granted) if granted and self.vault is not None else None
        return Response({**view, "prompt": view["prompt"] and _(view["prompt"]),
                         "advice": view["advice"] and _(view["advice"]), "greeting": greeting})

    def privacy(self, session, form, client):
        from .privacy import model_entries, privacy_body

        return Response(pages.layout(_("Privacy"), privacy_body(self.settings.vault.retention_days, model_entries())))

    # -- enrolment ------------------------------------------------------------------------
    def enroll(self, session, form, client):
        if self.vault is None:
            return Response(pages.message(_("Enrolment unavailable"), _("This device has no master key yet.")))
        if not session.enrol_unlocked:
            return Response(pages.enroll_unlock(session.csrf))
        return Response(pages.enroll_details(session.csrf, card=self.settings.panel.kind != "relay"))

    def enroll_unlock(self, session, form, client):
        if not self.sessions.attempt(client, "pin"):
            return too_many(pages.enroll_unlock(session.csrf, _("Too many attempts; wait a few minutes.")))
        pin = form.get("pin", "")
        if self.vault and (verify_secret(self.vault.credential("pin"), pin)
                           or verify_secret(self.vault.credential("admin"), pin)):
            self.sessions.succeeded(client, "pin")
            session = self.sessions.rotate(session)
            session.enrol_until = time.monotonic() + ENROL_UNLOCK_S
            return Response("", HTTPStatus.SEE_OTHER, {"Location": "/enroll", "Set-Cookie": cookie(session)})
        return Response(pages.enroll_unlock(session.csrf, _("Wrong PIN.")), HTTPStatus.UNAUTHORIZED)

    def enroll_start(self, session, form, client):
        if not session.enrol_unlocked:
            return redirect("/enroll")
        name, purpose, age = form.get("name", "").strip(), form.get("purpose"), form.get("age", "adult")
        if not name or purpose not in ("door", "checkout") or age not in ("adult", "guardian"):
            return Response(pages.enroll_details(session.csrf, _("Please fill in every field."),
                                                 card=self.settings.panel.kind != "relay"), HTTPStatus.BAD_REQUEST)
        try:
            card = card_field(form.get("card", ""), self.settings, self.vault)
        except ConsentryError as exc:
            return Response(pages.enroll_details(session.csrf, _(str(exc)), card=True), HTTPStatus.BAD_REQUEST)
        session.pending = {"name": name[:80], "purpose": purpose, "age": age, "card": card,
                           "greet": form.get("greet") == "yes"}
        return redirect("/enroll/consent")

    def _consent_text(self, purpose: str, lang: str = "en"):
        """The purpose's consent text in ``lang`` (``door.de.txt``), else the English one (``door.txt``)."""
        from ..vault import ConsentText

        folder = consent_dir(self.settings)
        localised = folder / f"{purpose}.{lang}.txt"
        return ConsentText.load(localised if lang != "en" and localised.is_file() else folder / f"{purpose}.txt")

    def enroll_consent(self, session, form, client):
        if not session.enrol_unlocked or not session.pending:
            return redirect("/enroll")
        text = self._consent_text(session.pending["purpose"], current())
        session.pending["lang"] = text.language  # the text accepted is the one last shown
        return Response(pages.enroll_consent(session.csrf, text.text, self.settings.vault.retention_days,
                                             text.language))

    def enroll_decline(self, session, form, client):
        session.pending = {}
        return Response(pages.message(_("Nothing was stored"), _("You declined. Nothing was captured or stored.")))

    def enroll_accept(self, session, form, client):
        from ..vault import ConsentRecord

        if not session.enrol_unlocked or not session.pending:
            return redirect("/enroll")
        p, session.pending = session.pending, {}
        consent = ConsentRecord.from_text(
            self._consent_text(p["purpose"], p.get("lang", "en")),
            given_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            method="kiosk", witnessed_by="staff (admin session)" if session.admin else "staff (PIN)",
            retention_days=self.settings.vault.retention_days, age_statement=p["age"], purposes=(p["purpose"],),
            greeting=bool(p.get("greet")))
        consent.validate()
        with self.kiosk.lock:
            if self.kiosk.capture is not None and self.kiosk.capture.state in BUSY:
                return Response(pages.message(_("Busy"), _("Another enrolment is in progress."), cls="error"),
                                HTTPStatus.CONFLICT)
            self.kiosk.capture = Capture(name=p["name"], consent=consent, owner=session.key, card=p.get("card"),
                                         needed=self.settings.http.capture_templates)
        session.enrol_until = 0.0 if not session.admin else session.enrol_until  # one enrolment per unlock
        return redirect("/enroll/capture")

    def _own_capture(self, session) -> Capture | None:
        """The enrolment in progress, only for the session that started it (call under the lock)."""
        c = self.kiosk.capture
        return c if c is not None and c.owner == session.key else None

    def enroll_capture(self, session, form, client):
        with self.kiosk.lock:
            capture = self._own_capture(session)
        return Response(pages.enroll_capture(capture.needed if capture else 5))

    def api_enroll(self, session, form, client):
        with self.kiosk.lock:
            c = self._own_capture(session)
            if c is None:
                return Response({"state": "none", "hint": "", "collected": 0})
            return Response({"state": c.state, "hint": _(c.hint), "collected": c.collected, "needed": c.needed,
                             "restarts": c.restarts, "box": list(c.box) if c.box else None})

    def enroll_done(self, session, form, client):
        with self.kiosk.lock:
            c = self._own_capture(session)
        if c is not None and c.state in ("captured", "storing") and self.enrolment is not None:
            self.enrolment.hand_over(c)  # stored now, on the request that carries its code back (a second
            # request from the same page waits for the first and shows the same code)
        with self.kiosk.lock:
            if c is not None and c.state not in BUSY and self.kiosk.capture is c:
                self.kiosk.capture = None
        if c is None:  # none started here, or its code was already shown (once, as promised)
            return Response(pages.message(_("Nothing to show"), _("No enrolment of this page is waiting for its "
                                                                  "code; a revocation code is shown only once.")))
        if c.state != "done" or not c.code:
            return Response(pages.message(_("Not enrolled"), _(c.error) if c.error
                                          else _("The enrolment did not finish; nothing was stored.")))
        # A full QR code (segno.make would pick a Micro QR for so short a text, which phones rarely read).
        svg = segno.make_qr(c.code, error="m").svg_inline(scale=6, title="revocation code")
        return Response(pages.enroll_done(c.code, svg))

    # -- forget me ------------------------------------------------------------------------
    def forget(self, session, form, client):
        return Response(pages.forget(session.csrf))

    def forget_code(self, session, form, client):
        if not self.sessions.attempt(client, "code"):
            return too_many(pages.forget(session.csrf, _("Too many attempts; wait a few minutes.")))
        try:
            receipt = self.vault.revoke_by_code(form.get("code", "")[:64])
        except (SubjectNotFound, AttributeError):
            return Response(pages.forget(session.csrf, _("That code is not valid.")), HTTPStatus.NOT_FOUND)
        self.sessions.succeeded(client, "code")
        return Response(pages.receipt(receipt.as_json()))

    def forget_camera(self, session, form, client):
        """Start a withdrawal by face for this session; the door keeps deciding meanwhile. One
        at a time: another session's live withdrawal is not replaced."""
        with self.kiosk.lock:
            f = self.kiosk.forget
            if f is not None and f.owner != session.key and f.live():
                return Response(pages.forget(session.csrf, _("Someone else is using the camera; try again soon.")),
                                HTTPStatus.CONFLICT)
            self.kiosk.forget = Withdrawal(owner=session.key)
        return Response(pages.forget_camera(session.csrf))

    def api_forget(self, session, form, client):
        with self.kiosk.lock:
            f = self.kiosk.forget
            if f is None or f.owner != session.key:
                return Response({"state": "none"})
            view = f.view()
            return Response({**view, "prompt": view["prompt"] and _(view["prompt"]), "message": forget_message(f)})

    def forget_confirm(self, session, form, client):
        """Revoke only if this session's withdrawal found one live subject who answered the
        challenge on the kiosk screen, and that same track is still the only face in view."""
        with self.kiosk.lock:
            f = self.kiosk.forget
            if f is None or f.owner != session.key or f.purpose != "forget":  # a "show me" never revokes
                f = None
            else:
                self.kiosk.forget = None
            confirmable = f is not None and f.confirmable()
            why = forget_message(f) if f is not None else ""
            state = f.state if f is not None else "none"
        if not confirmable:
            if not why:
                why = (_("You were no longer in view; nothing was changed.") if state == "found" else
                       _("You were not recognised, or did not yet confirm on the camera; nothing was changed."))
            return Response(pages.forget(session.csrf, why))
        return Response(pages.receipt(self.vault.revoke(f.candidate, reason="withdrawn at the kiosk").as_json()))

    # -- staff ----------------------------------------------------------------------------
    def admin(self, session, form, client, *, names: bool = False, report: dict | None = None, note: str = ""):
        if not session.admin:
            return Response(pages.admin_login(session.csrf))
        from ..vault.schedule import retention_schedule

        subjects = [s.as_json() for s in self.vault.subjects(show_names=names, reason=form.get("reason", ""))] \
            if self.vault else []
        audit = self.vault.audit_entries(30) if self.vault else []
        health = {**self.health(), "CPU temperature": cpu_temperature()}
        site = self.fleet.site if self.fleet is not None else None
        from ..fleet.records import fingerprint

        doors = pages.doors_section(session.csrf, site.doors() if site else None, note,
                                    fingerprint(site.identity.public) if site else "")
        return Response(pages.admin_dashboard(session.csrf, subjects, audit, report, health,
                                              retention_schedule(self.settings), names, self.checks(), doors))

    def admin_approve_door(self, session, form, client):
        if not session.admin or self.fleet is None or self.fleet.site is None:
            return redirect("/admin")
        if not self.sessions.attempt(client, "door-code"):
            return too_many(pages.message(_("Too many attempts"), _("Too many wrong door codes; wait a few minutes."),
                                          link="/admin", link_text=_("Back to staff page"), cls="error"))
        try:
            self.fleet.site.approve(form.get("door", ""), form.get("code", ""))
        except ConsentryError as exc:
            return self.admin(session, {}, client, note=str(exc))
        self.sessions.succeeded(client, "door-code")
        return redirect("/admin")

    def admin_reject_door(self, session, form, client):
        return self._door_action(session, client, lambda door: self.fleet.site.reject(door), form)

    def admin_remove_door(self, session, form, client):
        return self._door_action(session, client, self.fleet.remove_door, form)

    def _door_action(self, session, client, act, form):
        if not session.admin or self.fleet is None or self.fleet.site is None:
            return redirect("/admin")
        try:
            act(form.get("door", ""))
        except ConsentryError as exc:
            return self.admin(session, {}, client, note=str(exc))
        return redirect("/admin")

    def admin_login(self, session, form, client):
        if not self.sessions.attempt(client, "login"):
            return too_many(pages.admin_login(session.csrf, _("Too many failed logins; wait a few minutes.")))
        if self.vault is not None and verify_secret(self.vault.credential("admin"), form.get("password", "")):
            self.sessions.succeeded(client, "login")
            session = self.sessions.rotate(session)
            session.admin = True
            return Response("", HTTPStatus.SEE_OTHER, {"Location": "/admin", "Set-Cookie": cookie(session)})
        return Response(pages.admin_login(session.csrf, _("Wrong password.")), HTTPStatus.UNAUTHORIZED)

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
        return Response(pages.message(_("Revoked"), _("Subject {subject} was revoked and destroyed.").format(
            subject=receipt.subject), link="/admin", link_text=_("Back to staff page")))

    def admin_verify(self, session, form, client):
        if not session.admin:
            return redirect("/admin")
        return self.admin(session, {}, client, report=self.vault.verify_audit().as_json())

    ROUTES = {
        ("GET", "/"): home, ("GET", "/api/kiosk"): api_kiosk, ("GET", "/privacy"): privacy,
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
        ("POST", "/admin/audit/verify"): admin_verify, ("POST", "/admin/doors/approve"): admin_approve_door,
        ("POST", "/admin/doors/reject"): admin_reject_door, ("POST", "/admin/doors/remove"): admin_remove_door,
        **mydata.ROUTES,
    }


def cookie(session: Session) -> str:
    return f"{SESSION_COOKIE}={session.token}; HttpOnly; SameSite=Strict; Path=/"

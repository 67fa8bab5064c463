"""The "What do you hold about me?" page: with their revocation code, or by face (the checks of
a withdrawal by face, forget.py, with ``purpose="show"``: confirming shows, never revokes), a
person sees their own
consent record (the text they read, its language and hash, date, purposes, expiry,
retention), how many templates are held, their own audit entries, and can download a receipt
signed with the device's audit key (``consentry audit verify-receipt FILE``).

Nothing about anyone else is read: the code selects one subject and every query is bound to
it. Code attempts share the "Forget me" page's rate limit. The receipt travels in the page
itself (a data: link), so nothing is kept on the server between the two.
"""

from __future__ import annotations

import base64
import json
import logging
from html import escape
from http import HTTPStatus
from pathlib import Path

from ..errors import ConfigError, SubjectNotFound
from . import pages
from .http import Response
from .i18n import LANGUAGES, N_, _

log = logging.getLogger(__name__)

KINDS = {"enrol": N_("Enrolled"), "access": N_("Recognised"), "data_shown": N_("You viewed this record"),
         "door_template": N_("The door kept templates made at this door"),
         "site_record_refused": N_("A record about you from the site was refused")}
DECISIONS = {"granted": N_("door opened"), "verified": N_("verified at the checkout"), "match": N_("matched")}
AGE = {"adult": N_("an adult, for themselves"), "guardian": N_("a guardian, for a minor")}
PURPOSES = {"door": N_("Opening this door"), "checkout": N_("Verifying me at the checkout")}


def published_text(consent_dir: Path, sha256: str) -> str | None:
    """The published consent text whose file hash is ``sha256`` (the exact one agreed to), or None."""
    from ..vault import ConsentText

    for path in sorted(consent_dir.glob("*.txt")):
        try:
            text = ConsentText.load(path)
        except ConfigError:
            continue
        if text.sha256 == sha256:
            return text.text
    return None


def ask(csrf: str, error: str = "") -> str:
    body = ("<h1>" + _("What do you hold about me?") + "</h1><p>"
            + _("Enter your revocation code to see everything this device holds about you. Nothing is changed.")
            + "</p>" + pages.error_line(error)
            + pages.form("/mydata/code", csrf, "<label>" + _("Revocation code") + " <input name='code' id='code' "
                         "autocomplete='off' required></label><button type='submit' id='show'>"
                         + _("Show what you hold") + "</button>")
            + "<p>" + _("No code? Look at the camera instead:") + "</p>"
            + pages.form("/mydata/camera", csrf, "<button type='submit' class='secondary' id='use-camera'>"
                         + _("Use the camera") + "</button>")
            + "<p><a href='/forget'>" + _("Forget me") + "</a></p>")
    return pages.layout(_("What do you hold about me?"), body)


def _row(label: str, value: str, *, raw: bool = False, ident: str = "") -> str:
    cell = value if raw else escape(value)
    return f"<tr{f' id={ident!r}' if ident else ''}><th scope='row'>{escape(label)}</th><td>{cell}</td></tr>"


def record_page(record: dict, receipt: dict, text: str | None) -> str:
    c = record["consent"]
    purposes = ", ".join(_(PURPOSES.get(p, p)) for p in c["purposes"])
    rows = "".join([
        _row(_("Your pseudonymous id"), f"<code>{escape(record['subject'])}</code>", raw=True, ident="r-subject"),
        _row(_("Consent given"), c["given_at"][:19].replace("T", " ") + " UTC", ident="r-given"),
        _row(_("Language of the text you read"), LANGUAGES.get(c["language"], c["language"]), ident="r-language"),
        _row(_("Text"), f"{escape(c['id'])}, " + escape(_("version {version}").format(version=c["version"]))
             + f"<br><code translate='no'>sha256 {escape(c['sha256'])}</code>", raw=True, ident="r-text"),
        _row(_("Purposes"), purposes, ident="r-purposes"),
        _row(_("Agreed by"), _(AGE.get(c["age_statement"], c["age_statement"]))),
        _row(_("Retention"), _("{days} days at most, or until you withdraw.").format(days=c["retention_days"]),
             ident="r-retention"),
        _row(_("Deleted at the latest on"), record["expires"][:10], ident="r-expires"),
        _row(_("Face templates held"), str(record["templates"]), ident="r-templates"),
        _row(_("Templates learned at this door"), str(record.get("door_templates", 0)), ident="r-door-templates"),
        _row(_("Photos or videos held"), _("None")),
        _row(_("Greeted by first name at the kiosk"), _("Yes") if c.get("greeting") else _("No"), ident="r-greeting"),
    ])
    entries = "".join(
        f"<tr><td>{escape(e['ts'][:19].replace('T', ' '))}</td><td>{escape(_(KINDS.get(e['kind'], e['kind'])))}"
        + (f" ({escape(_(DECISIONS.get(e['detail'].get('decision'), e['detail'].get('decision'))))})"
           if e["kind"] == "access" and e["detail"].get("decision") else "") + "</td></tr>"
        for e in record["audit"])
    blob = base64.b64encode(json.dumps(receipt, ensure_ascii=False, indent=1).encode()).decode()
    agreed = (f"<div class='consent' id='consent-text' lang='{escape(c['language'])}'>{escape(text)}</div>" if text
              else "<p id='consent-text'>" + escape(_("That text is no longer published on this device; its hash "
                                                      "above identifies it.")) + "</p>")
    body = ("<h1>" + _("What we hold about you") + "</h1><table id='record'>" + rows + "</table>"
            "<h2>" + _("The text you agreed to") + "</h2>" + agreed
            + "<h2>" + _("Your last entries in the audit log") + "</h2><table id='own-audit'><tr><th scope='col'>"
            + _("When") + "</th><th scope='col'>" + _("What") + f"</th></tr>{entries}</table>"
            "<p>" + _("Nothing about anyone else is shown. The receipt is signed by this device, so staff can check "
                      "later that it is unchanged.") + "</p>"
            f"<p><a class='button' id='receipt-download' download='consentry-receipt.json' "
            f"href='data:application/json;base64,{blob}'>" + _("Download the receipt (JSON)") + "</a> "
            "<a class='button' href='/forget'>" + _("Forget me") + "</a></p>")
    return pages.layout(_("What we hold about you"), body)


def mydata(app, session, form, client):
    return Response(ask(session.csrf))


def _show(app, subject: str) -> Response:
    from ..vault.disclosure import receipt, subject_record
    from .server import consent_dir

    record = subject_record(app.vault, subject)
    signed = receipt(app.vault, record)
    return Response(record_page(record.as_json(), signed, published_text(consent_dir(app.settings),
                                                                         record.consent.sha256)))


def mydata_camera(app, session, form, client):
    """By face: the same checks as a withdrawal by face (forget.py: one track alone in view, the
    door's liveness, a challenge on the screen, bound to this session), then the record."""
    from ..forget import Withdrawal

    with app.kiosk.lock:
        f = app.kiosk.forget
        if f is not None and f.owner != session.key and f.live():
            return Response(ask(session.csrf, _("Someone else is using the camera; try again soon.")),
                            HTTPStatus.CONFLICT)
        app.kiosk.forget = Withdrawal(owner=session.key, purpose="show")
    return Response(pages.forget_camera(session.csrf, show=True))


def mydata_confirm(app, session, form, client):
    from .server import forget_message

    with app.kiosk.lock:
        f = app.kiosk.forget
        if f is None or f.owner != session.key or f.purpose != "show":
            f = None
        else:
            app.kiosk.forget = None
        found = f is not None and f.confirmable() and app.vault is not None
        why = forget_message(f) if f is not None else ""
    if not found:
        return Response(ask(session.csrf, why or _("You were not recognised, or did not yet confirm on the camera.")))
    return _show(app, f.candidate)


def mydata_code(app, session, form, client):
    from ..vault.disclosure import subject_by_code

    if not app.sessions.attempt(client, "code"):
        return Response(ask(session.csrf, _("Too many attempts; wait a few minutes.")), HTTPStatus.TOO_MANY_REQUESTS,
                        {"Retry-After": "60"})
    if app.vault is None:
        return Response(ask(session.csrf, _("That code is not valid.")), HTTPStatus.NOT_FOUND)
    try:
        subject = subject_by_code(app.vault, form.get("code", "")[:64])
    except SubjectNotFound:
        return Response(ask(session.csrf, _("That code is not valid.")), HTTPStatus.NOT_FOUND)
    app.sessions.succeeded(client, "code")
    return _show(app, subject)


ROUTES = {("GET", "/mydata"): mydata, ("POST", "/mydata/code"): mydata_code, ("POST", "/mydata/camera"): mydata_camera,
          ("POST", "/mydata/confirm"): mydata_confirm}

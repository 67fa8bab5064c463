"""Server-rendered pages. Everything is inline (CSS and a few lines of JavaScript), so the
kiosk never fetches anything from the internet. Every form carries the session's CSRF token.
No page shows a face, a template, or anything about a stranger."""

from __future__ import annotations

from html import escape

from .i18n import N_, _, current, switch
from .privacy import MODEL_NOTICE

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.5rem 1.5rem;display:flex;flex-wrap:wrap;gap:.3rem 1rem;
justify-content:space-between;align-items:center}
header a{color:#cfe0ff;margin-left:1rem;text-decoration:none;display:inline-block;padding:.3rem 0;min-height:24px}
main{max-width:56rem;margin:1.5rem auto;background:#fff;padding:1.5rem 2rem;border-radius:12px}
h1{margin-top:0}.big{font-size:2.4rem;text-align:center;padding:2.5rem 0}
.granted{color:#0a7d32}.unknown{color:#a33}.hint{font-size:1.6rem;text-align:center}
button,.button{font-size:1.2rem;padding:.7rem 1.4rem;border-radius:8px;border:0;background:#2457c5;color:#fff;
cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#6b7280}button.danger{background:#b42318}
input,select{font-size:1.1rem;padding:.4rem;margin:.3rem 0}label{display:block;margin:.6rem 0}
.consent{white-space:pre-wrap;background:#f8f9fb;border:1px solid #d0d5dd;padding:1rem;border-radius:8px}
.code{font-family:monospace;font-size:2rem;letter-spacing:.15rem;text-align:center}
.error{color:#b42318;font-weight:600}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e4e7ec;padding:.35rem;text-align:left;font-size:.95rem}
progress{width:100%;height:1.6rem}.row{display:flex;gap:1rem;align-items:center}
footer{text-align:center;padding:0 1rem 1.5rem}footer a{color:#1d4ed8}
header nav.langs a{margin-left:.6rem}header nav.langs a[aria-current]{text-decoration:underline;color:#fff}
#stage{display:block;width:16rem;max-width:80%;margin:0 auto}.frame{fill:#eef1f6}
.target{fill:none;stroke:#5b6b86;stroke-width:1.5;stroke-dasharray:4 3}.face{fill:none;stroke:#2457c5;stroke-width:2.5}
.ring-bg{fill:none;stroke:#d9dee7;stroke-width:4}.ring{fill:none;stroke:#0a7d32;stroke-width:4}
.big.granted{background:#e3f4e8;border-radius:12px}.big.unknown{background:#f6ecec;border-radius:12px}
.big.prompt{background:#e6eefb;border-radius:12px}.word{text-align:center;font-size:1.3rem;min-height:1.6rem;margin:0}
.seen{text-align:center;color:#4b5563;margin:.2rem}
"""


def layout(title: str, body: str, *, script: str = "", admin: bool = False, texts: dict | None = None) -> str:
    """The page around ``body``. ``texts``: the strings its script shows, already translated, as
    hidden data attributes (a script file is the same for every language)."""
    if admin:
        nav = ("<a href='/admin'>" + _("Admin") + "</a><form method='post' action='/admin/logout' "
               "style='display:inline;margin-left:1rem'>{csrf}<button class='secondary' "
               "style='font-size:.8rem;padding:.2rem .6rem'>" + _("Log out") + "</button></form>")
    else:
        nav = ("<a href='/enroll'>" + _("Enrol") + "</a><a href='/forget'>" + _("Forget me") + "</a>"
               + "<a href='/mydata'>" + _("What do you hold about me?") + "</a>"
               + "<a href='/admin'>" + _("Staff") + "</a>")
    # Scripts are files (/static/NAME.js), never inline: the CSP allows script-src 'self' only.
    tag = f"<script src='/static/{escape(script)}.js'></script>" if script else ""
    data = "".join(f" data-{escape(k)}='{escape(v)}'" for k, v in (texts or {}).items())
    strings = f"<div id='t' hidden{data}></div>" if texts else ""
    footer, pages_label = _("Privacy: what is kept, and what the model was trained on"), _("Pages")
    return (f"<!doctype html><html lang='{current()}'><head><meta charset='utf-8'><title>{escape(title)} · Consentry"
            f"</title><meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body><header><strong>Consentry</strong><nav aria-label='{escape(pages_label)}'><a href='/'>"
            + _("Home") + f"</a>{nav}</nav>{switch()}</header>"
            f"<main>{body}</main><footer><a href='/privacy'>{escape(footer)}</a></footer>{strings}{tag}</body></html>")


def csrf_field(token: str) -> str:
    return f"<input type='hidden' name='csrf' value='{escape(token)}'>"


def form(action: str, csrf: str, inner: str, *, cls: str = "") -> str:
    return f"<form method='post' action='{escape(action)}' class='{cls}'>{csrf_field(csrf)}{inner}</form>"


def error_line(error: str, ident: str = "") -> str:
    return f"<p class='error'{f' id={ident!r}' if ident else ''}>{escape(error)}</p>" if error else ""


POLL = """
async function poll(url, render, ms){try{const r=await fetch(url,{cache:'no-store'});render(await r.json());}
catch(e){}setTimeout(()=>poll(url,render,ms),ms);}
const T=document.getElementById('t').dataset;
"""


def stage(ring: bool = False) -> str:
    """Where the face is against the oval to aim for, drawn from the published box only (mirrored,
    as a person expects of a screen facing them); an enrolment adds a ring that fills as it captures."""
    ring_svg = ("<circle cx='80' cy='60' r='56' class='ring-bg'/><circle id='ring' cx='80' cy='60' r='56' "
                "class='ring' pathLength='100' stroke-dasharray='0 100' transform='rotate(-90 80 60)'/>"
                if ring else "")
    label = escape(_("Where your face is, against the oval to aim for"))
    # The target: a face about a fifth of the frame wide and centred, well above the smallest
    # face the quality gate embeds (40 px of 640), with room to move before it leaves the frame.
    return (f"<svg id='stage' viewBox='0 0 160 120' role='img' aria-label='{label}'>"
            "<rect width='160' height='120' rx='8' class='frame'/>"
            f"{ring_svg}<ellipse id='target' cx='80' cy='56' rx='18' ry='24' class='target'/>"
            "<ellipse id='face' cx='80' cy='58' rx='0' ry='0' class='face' visibility='hidden'/></svg>")


def kiosk() -> str:
    body = ("<h1>" + _("Face recognition, with consent") + "</h1>" + stage()
            + "<p id='word' class='word'></p><div id='status' class='big' role='status'>"
            + _("Look at the camera") + "</div>"
            + "<p id='seen' class='seen' hidden>" + _("A face is seen") + "</p>"
            + "<p style='text-align:center'>" + _("Only people who enrolled and agreed are recognised. Nobody "
                                                  "else's face is stored.") + "</p>")
    texts = {"look": _("Look at the camera"), "enrolling": _("Enrolment in progress"), "granted": _("Welcome"),
             "unknown": _("Not recognised"), "denied": _("Not accepted: please ask staff"),
             "challenge": _("Please look at the screen"), "welcome-name": _("Welcome, {name}")}
    return layout(_("Kiosk"), body, script="kiosk", texts=texts)


# The face's box, when published, is [centre x, centre y, width, height] as fractions of the frame.
DRAW = """
function draw(box){const f=document.getElementById('face');
 if(!box){f.setAttribute('visibility','hidden');return;}
 f.setAttribute('cx',(160*(1-box[0])).toFixed(1));f.setAttribute('cy',(120*box[1]).toFixed(1));
 f.setAttribute('rx',(80*box[2]).toFixed(1));f.setAttribute('ry',(60*box[3]*1.15).toFixed(1));
 f.setAttribute('visibility','visible');}
"""

KIOSK_JS = POLL + DRAW + """
poll('/api/kiosk', s=>{const el=document.getElementById('status');draw(s.box);
 document.getElementById('seen').hidden=!s.face;
 if(s.mode==='enrolling'){el.className='big';el.textContent=T.enrolling;}
 else if(s.prompt){el.className='big prompt';el.textContent=s.prompt;}
 else if(s.decision==='granted'){el.className='big granted';
  el.textContent=s.greeting?T.welcomeName.replace('{name}',s.greeting):T.granted;}
 else if(s.decision==='unknown'){el.className='big unknown';el.textContent=T.unknown;}
 else if(s.decision==='denied'){el.className='big unknown';el.textContent=T.denied;}
 else if(s.advice){el.className='big';el.textContent=s.advice;}
 else {el.className='big';el.textContent=T.look;}
 document.getElementById('word').textContent=s.prompt?T.challenge:'';}, 400);
"""


def enroll_unlock(csrf: str, error: str = "") -> str:
    body = ("<h1>" + _("Enrolment") + "</h1><p>" + _("A member of staff unlocks enrolment.") + "</p>"
            + error_line(error)
            + form("/enroll/unlock", csrf, "<label>" + _("Staff PIN") + " <input type='password' name='pin' id='pin' "
                   "autocomplete='off' required></label><button type='submit'>" + _("Unlock") + "</button>"))
    return layout(_("Enrolment"), body)


def enroll_details(csrf: str, error: str = "", card: bool = False) -> str:
    """``card``: ask for the access-control card the panel knows this person by (docs/panel.md)."""
    inner = ("<label>" + _("Your name (stored encrypted)")
             + " <input name='name' id='name' required maxlength='80'></label>"
             + ("<label>" + _("Access card number (optional; stored encrypted)") + " <input name='card' id='card' "
                "inputmode='numeric' pattern='[0-9]*' maxlength='20' autocomplete='off'></label>" if card else "")
             + "<fieldset><legend>" + _("What for?") + "</legend>"
             "<label><input type='radio' name='purpose' value='door' checked> " + _("Opening this door") + "</label>"
             "<label><input type='radio' name='purpose' value='checkout'> " + _("Verifying me at the checkout")
             + "</label></fieldset><fieldset><legend>" + _("Who is agreeing?") + "</legend>"
             "<label><input type='radio' name='age' value='adult' checked> " + _("I am an adult and agree for myself")
             + "</label><label><input type='radio' name='age' value='guardian'> " + _("I am the guardian of a minor")
             + "</label></fieldset><fieldset><legend>" + _("When I am recognised") + "</legend>"
             "<label><input type='checkbox' name='greet' value='yes' id='greet'> "
             + _("Greet me by my first name on this screen (otherwise it says only “Welcome”)")
             + "</label></fieldset><button type='submit' id='next'>" + _("Next: read what this means") + "</button>")
    body = "<h1>" + _("Enrolment") + "</h1>" + error_line(error) + form("/enroll/start", csrf, inner)
    return layout(_("Enrolment"), body)


def enroll_consent(csrf: str, text: str, retention_days: int, text_lang: str = "") -> str:
    lang = f" lang='{escape(text_lang)}'" if text_lang and text_lang != current() else ""
    retention = _("{days} days at most, or until you withdraw.").format(days=retention_days)
    body = ("<h1>" + _("Please read before you agree") + "</h1>"
            f"<div class='consent' id='consent-text'{lang}>{escape(text)}</div>"
            "<p><strong>" + _("Retention:") + f"</strong> {escape(retention)}</p>"
            f"<p id='model-notice'>{escape(_(MODEL_NOTICE))} <a href='/privacy'>"
            + _("More on the privacy page") + "</a>.</p><div class='row'>"
            + form("/enroll/accept", csrf, "<button type='submit' id='accept'>" + _("I agree — start the camera")
                   + "</button>")
            + form("/enroll/decline", csrf, "<button type='submit' class='secondary' id='decline'>"
                   + _("I do not agree") + "</button>")
            + "</div>")
    return layout(_("Consent"), body)


def enroll_capture(needed: int) -> str:
    captured = _("Templates captured")
    body = ("<h1>" + _("Look at the camera") + "</h1>" + stage(ring=True)
            + "<div id='hint' class='hint' role='status'>" + _("Look at the camera") + "</div>"
            f"<progress id='progress' max='{needed}' value='0' aria-label='{escape(captured)}'>"
            "</progress><p>" + _("Images are used for a moment and erased; only the template is kept.") + "</p>")
    return layout(_("Capturing"), body, script="capture", texts={"look": _("Look at the camera")})


CAPTURE_JS = POLL + DRAW + """
poll('/api/enroll', s=>{document.getElementById('hint').textContent=s.hint||T.look;draw(s.box);
 document.getElementById('progress').value=s.collected;
 const r=document.getElementById('ring');if(r&&s.needed){r.setAttribute('stroke-dasharray',
  (100*s.collected/s.needed).toFixed(1)+' 100');}
 if(s.state!=='capturing'){window.location='/enroll/done';}}, 300);
"""


def enroll_done(code: str, qr_svg: str) -> str:
    body = ("<h1>" + _("You are enrolled") + "</h1><p>"
            + _("Keep this revocation code. With it you can withdraw your consent yourself, any time, at "
                "“Forget me” — no staff needed. It is shown only once.") + "</p>"
            f"<div class='code' id='code'>{escape(code)}</div><div style='text-align:center'>{qr_svg}</div>"
            "<p><a class='button' href='/'>" + _("Done") + "</a></p>")
    return layout(_("Enrolled"), body)


def message(title: str, text: str, *, link: str = "/", link_text: str = "", cls: str = "") -> str:
    """A page with one message (``title`` and ``text`` already translated)."""
    link_text = link_text or _("Back to start")
    body = f"<h1>{escape(title)}</h1><p class='{cls}' id='message'>{escape(text)}</p>" \
           f"<p><a class='button' href='{escape(link)}'>{escape(link_text)}</a></p>"
    return layout(title, body)


def forget(csrf: str, error: str = "") -> str:
    body = ("<h1>" + _("Forget me") + "</h1><p>" + _("Withdraw your consent: your template, name and key are "
                                                    "deleted at once and cannot be recovered.") + "</p>"
            + error_line(error)
            + form("/forget/code", csrf, "<label>" + _("Revocation code") + " <input name='code' id='code' "
                   "autocomplete='off' required></label><button type='submit' class='danger' id='withdraw'>"
                   + _("Withdraw my consent") + "</button>")
            + "<p>" + _("No code? Look at the camera instead:") + "</p>"
            + form("/forget/camera", csrf, "<button type='submit' class='secondary' id='use-camera'>"
                   + _("Use the camera") + "</button>")
            + "<p><a href='/mydata'>" + _("Or first see what we hold about you") + "</a></p>")
    return layout(_("Forget me"), body)


def forget_camera(csrf: str, *, show: bool = False) -> str:
    """Withdrawal by face, or (``show``) the same checks to see one's own record (web/mydata.py)."""
    why = (_("Alone, please. To show that it is you, in person, who wants to see what we hold, the screen will "
             "ask you to blink or to turn your head.") if show else
           _("Alone, please. To show that it is you, in person, who wants to be forgotten, the screen will ask "
             "you to blink or to turn your head."))
    confirm = (form("/mydata/confirm", csrf, "<button type='submit' id='confirm-button'>" + _("Show what you hold")
                    + "</button>") if show else
               form("/forget/confirm", csrf, "<button type='submit' class='danger' id='confirm-button'>"
                    + _("Yes, forget me") + "</button>"))
    question = (_("We recognised you and you confirmed on the camera. See what we hold about you?") if show else
                _("We recognised you and you confirmed on the camera. Withdraw your consent now?"))
    body = ("<h1>" + _("Look at the camera") + f"</h1><p>{escape(why)}</p>"
            "<div id='hint' class='hint' role='status'>" + _("Looking for you…") + "</div>"
            "<p id='why' class='error' hidden></p><p id='again' hidden><a class='button' "
            + ("href='/mydata'>" if show else "href='/forget'>")
            + _("Start again") + f"</a></p><div id='confirm' hidden><p>{escape(question)}</p>{confirm}</div>")
    texts = {"looking": _("Looking for you…"), "checking": _("Hold still…"), "confirm": _("{action} to confirm")}
    return layout(_("What do you hold about me?") if show else _("Forget me"), body, script="forget", texts=texts)


FORGET_JS = POLL + """
const HINTS={looking:T.looking,checking:T.checking,found:''};
poll('/api/forget', s=>{const h=document.getElementById('hint');
 if(s.state==='challenge'){h.textContent=T.confirm.replace('{action}',s.prompt);}
 else if(s.state in HINTS){h.textContent=HINTS[s.state];}
 document.getElementById('confirm').hidden=s.state!=='found';
 if(s.state==='failed'||s.state==='timeout'){h.textContent='';
  const w=document.getElementById('why');w.textContent=s.message;w.hidden=false;
  document.getElementById('again').hidden=false;}}, 400);
"""
SCRIPTS = {"kiosk": KIOSK_JS, "capture": CAPTURE_JS, "forget": FORGET_JS}


RECEIPT_KEYS = {"subject": N_("Subject"), "time": N_("Time"), "reason": N_("Reason"),
                "destroyed": N_("Destroyed"), "audit_hash": N_("Audit entry hash")}


def receipt(doc: dict) -> str:
    rows = "".join(f"<tr><th scope='row'>{escape(_(RECEIPT_KEYS.get(k, k)))}</th>"
                   f"<td translate='no'>{escape(str(v))}</td></tr>" for k, v in doc.items())
    body = ("<h1>" + _("Your consent is withdrawn") + "</h1><p id='message'>"
            + _("Everything we held about you has been destroyed. This is your receipt:") + "</p>"
            f"<table id='receipt'>{rows}</table><p><a class='button' href='/'>" + _("Done") + "</a></p>")
    return layout(_("Receipt"), body)


def admin_login(csrf: str, error: str = "") -> str:
    body = ("<h1>" + _("Staff login") + "</h1>" + error_line(error, "error")
            + form("/admin/login", csrf, "<label>" + _("Password") + " <input type='password' name='password' "
                   "id='password' required></label><button type='submit' id='login'>" + _("Log in") + "</button>"))
    return layout(_("Staff login"), body)


def doors_section(csrf: str, doors: list | None, note: str = "", site_key: str = "") -> str:
    """A site kiosk's doors (fleet.site.DoorView): in step, behind or not reporting; pending
    ones approved by the code each shows, or rejected; approved ones removed (the site key
    rotates). ``site_key``: the signing key's fingerprint a door needs to join."""
    if doors is None:
        return ""
    rows = []
    for d in doors:
        hidden = f"<input type='hidden' name='door' value='{escape(d.door)}'>"
        if d.status == "pending":
            state = (form("/admin/doors/approve", csrf, hidden + "<label>" + _("Code shown on the door")
                          + " <input name='code' inputmode='numeric' required></label><button class='approve'>"
                          + _("Approve") + "</button>")
                     + form("/admin/doors/reject", csrf, hidden + "<button class='reject'>" + _("Reject")
                            + "</button>"))
        elif d.status == "removed":
            state = _("removed")
        elif not d.reporting:
            state = _("not reporting")
        else:
            state = (_("behind") if d.behind else _("in step")) + (
                " — " + _("granting") if d.report.granting
                else " — " + _("not granting") + f" ({escape(str(d.report.reason))})")
        if d.status == "approved":
            state += form("/admin/doors/remove", csrf, hidden + "<button class='remove'>" + _("Remove") + "</button>")
        kind = "silent" if d.status == "approved" and not d.reporting else "behind" if d.behind else "ok"
        rows.append(f"<tr class='door-{kind}'><td class='sid'>{escape(d.door)}</td>"
                    f"<td>{escape(d.label)}</td><td>{escape(_(DOOR_STATUS.get(d.status, d.status)))}</td>"
                    f"<td>{state}</td></tr>")
    message = f"<p class='error' id='doors-note'>{escape(note)}</p>" if note else ""
    key = ("<p id='site-key'>" + _("Site signing key:") + f" <code>{escape(site_key)}</code> ("
           + _("a door joins with {command} and this").format(command="<code>consentry fleet join --site-key</code>")
           + ")</p>") if site_key else ""
    return ("<h2>" + _("Doors ({count})").format(count=len(doors)) + f"</h2>{key}{message}<table id='doors'><tr><th>"
            + _("Door") + "</th><th>" + _("Label") + "</th><th>" + _("Status") + "</th><th>" + _("State")
            + f"</th></tr>{''.join(rows)}</table>")


DOOR_STATUS = {"pending": N_("pending"), "approved": N_("approved"), "rejected": N_("rejected"),
               "removed": N_("removed")}


def admin_dashboard(csrf: str, subjects: list[dict], audit: list[dict], audit_report: dict | None,
                    health: dict, schedule: str, names_shown: bool, checks: list | None = None,
                    doors: str = "") -> str:
    revoke = _("Revoke")
    subject_rows = "".join(
        f"<tr><td class='sid'>{escape(s['id'])}</td>"
        + (f"<td>{escape(s.get('name') or '')}</td>" if names_shown else "")
        + f"<td>{escape(', '.join(s['purposes']))}</td><td>{escape(s['created'][:10])}</td>"
        f"<td>{escape((s['last_seen'] or '—')[:10])}</td><td>{escape(s['expires'][:10])}</td><td>"
        + form("/admin/revoke", csrf, f"<input type='hidden' name='subject' value='{escape(s['id'])}'>"
               f"<button class='danger' style='font-size:.8rem;padding:.25rem .6rem'>{escape(revoke)}</button>")
        + "</td></tr>" for s in subjects)
    name_head = "<th>" + _("Name") + "</th>" if names_shown else ""
    audit_rows = "".join(f"<tr><td>{e['seq']}</td><td>{escape(e['ts'][:19])}</td><td translate='no'>"
                         f"{escape(e['kind'])}</td><td>{escape(e['subject'] or '')}</td></tr>" for e in audit)
    verdict = ""
    if audit_report is not None:
        problems = escape("; ".join(audit_report["problems"]))
        verdict = ("<p class='granted' id='audit-result'>"
                   + _("Audit log intact: {count} entries").format(count=audit_report["entries"]) + "</p>"
                   if audit_report["ok"] else
                   "<p class='error' id='audit-result'>" + _("Audit log damaged:") + f" {problems}</p>")
    # Health figures, check names and the schedule are the operator's technical record: English.
    health_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in health.items())
    check_rows = "".join(f"<tr class='check-{escape(c.status)}'><th>{escape(c.name)}</th><td>{escape(c.status)}</td>"
                         f"<td>{escape(c.detail)}</td><td>{escape(c.hint)}</td></tr>" for c in checks or [])
    body = ("<h1>" + _("Staff") + "</h1><h2>" + _("Subjects ({count})").format(count=len(subjects))
            + "</h2><table id='subjects'><tr><th>" + _("Id") + f"</th>{name_head}<th>" + _("Purposes")
            + "</th><th>" + _("Enrolled") + "</th><th>" + _("Last seen") + "</th><th>" + _("Expires")
            + f"</th><th></th></tr>{subject_rows}</table>"
            + form("/admin/names", csrf, "<label>" + _("Reason for showing names (recorded)")
                   + " <input name='reason' id='reason' required></label><button class='secondary' id='show-names'>"
                   + _("Show names") + "</button>")
            + doors + "<h2>" + _("Device health") + f"</h2><table id='health' lang='en'>{health_rows}</table>"
            + "<h2>" + _("Checks (as {command})").format(command="<code>consentry doctor</code>")
            + f"</h2><table id='checks' lang='en'>{check_rows}</table>"
            + "<h2>" + _("Audit log") + f"</h2>{verdict}"
            + form("/admin/audit/verify", csrf, "<button id='verify'>" + _("Verify the audit log") + "</button>")
            + "<table id='audit'><tr><th>#</th><th>" + _("When") + "</th><th>" + _("What") + "</th><th>"
            + _("Subject") + f"</th></tr>{audit_rows}</table>"
            + "<h2>" + _("Retention schedule") + f"</h2><div class='consent' lang='en'>{escape(schedule)}</div>")
    return layout(_("Staff"), body, admin=True).replace("{csrf}", csrf_field(csrf))

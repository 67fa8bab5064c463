"""Server-rendered pages. Everything is inline (CSS and a few lines of JavaScript), so the
kiosk never fetches anything from the internet. Every form carries the session's CSRF token.
No page shows a face, a template, or anything about a stranger."""

from __future__ import annotations

from html import escape

from .privacy import MODEL_NOTICE
from .state import ADVICE

CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.8rem 1.5rem;display:flex;justify-content:space-between}
header a{color:#cfe0ff;margin-left:1rem;text-decoration:none}
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
"""


def layout(title: str, body: str, *, script: str = "", admin: bool = False) -> str:
    nav = ('<a href="/admin">Admin</a><form method="post" action="/admin/logout" style="display:inline;'
           'margin-left:1rem">'
           '{csrf}<button class="secondary" style="font-size:.8rem;padding:.2rem .6rem">Log out</button></form>'
           if admin else '<a href="/enroll">Enrol</a><a href="/forget">Forget me</a><a href="/admin">Staff</a>')
    # Scripts are files (/static/NAME.js), never inline: the CSP allows script-src 'self' only.
    tag = f"<script src='/static/{escape(script)}.js'></script>" if script else ""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} · Consentry</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body><header><strong>Consentry</strong><nav><a href='/'>Home</a>{nav}</nav></header>"
            f"<main>{body}</main><footer><a href='/privacy'>Privacy: what is kept, and what the model was "
            f"trained on</a></footer>{tag}</body></html>")


def csrf_field(token: str) -> str:
    return f"<input type='hidden' name='csrf' value='{escape(token)}'>"


def form(action: str, csrf: str, inner: str, *, cls: str = "") -> str:
    return f"<form method='post' action='{escape(action)}' class='{cls}'>{csrf_field(csrf)}{inner}</form>"


POLL = """
async function poll(url, render, ms){try{const r=await fetch(url,{cache:'no-store'});render(await r.json());}
catch(e){}setTimeout(()=>poll(url,render,ms),ms);}
"""


def kiosk() -> str:
    body = ("<h1>Welcome</h1><div id='status' class='big'>Look at the camera</div>"
            "<p style='text-align:center'>Only people who enrolled and agreed are recognised. Nobody else's face "
            "is stored.</p>")
    return layout("Kiosk", body, script="kiosk")


KIOSK_JS = POLL + """
poll('/api/kiosk', s=>{const el=document.getElementById('status');
 if(s.mode==='enrolling'){el.className='big';el.textContent='Enrolment in progress';}
 else if(s.prompt){el.className='big prompt';el.textContent=s.prompt;}
 else if(s.decision==='granted'){el.className='big granted';el.textContent='Access granted';}
 else if(s.decision==='unknown'){el.className='big unknown';el.textContent='Not recognised';}
 else if(s.decision==='denied'){el.className='big unknown';el.textContent='Not accepted: please ask staff';}
 else if(s.advice){el.className='big';el.textContent=s.advice;}
 else {el.className='big';el.textContent='Look at the camera';}}, 400);
"""


def enroll_unlock(csrf: str, error: str = "") -> str:
    body = ("<h1>Enrolment</h1><p>A member of staff unlocks enrolment.</p>"
            + (f"<p class='error'>{escape(error)}</p>" if error else "")
            + form("/enroll/unlock", csrf, "<label>Staff PIN <input type='password' name='pin' id='pin' "
                   "autocomplete='off' required></label><button type='submit'>Unlock</button>"))
    return layout("Enrolment", body)


def enroll_details(csrf: str, error: str = "", card: bool = False) -> str:
    """``card``: ask for the access-control card the panel knows this person by (docs/panel.md)."""
    inner = ("<label>Your name (stored encrypted) <input name='name' id='name' required maxlength='80'></label>"
             + ("<label>Access card number (optional; stored encrypted) <input name='card' id='card' "
                "inputmode='numeric' pattern='[0-9]*' maxlength='20' autocomplete='off'></label>" if card else "")
             + "<fieldset><legend>What for?</legend>"
             "<label><input type='radio' name='purpose' value='door' checked> Opening this door</label>"
             "<label><input type='radio' name='purpose' value='checkout'> Verifying me at the checkout</label>"
             "</fieldset><fieldset><legend>Who is agreeing?</legend>"
             "<label><input type='radio' name='age' value='adult' checked> I am an adult and agree for myself</label>"
             "<label><input type='radio' name='age' value='guardian'> I am the guardian of a minor</label>"
             "</fieldset><button type='submit' id='next'>Next: read what this means</button>")
    body = ("<h1>Enrolment</h1>" + (f"<p class='error'>{escape(error)}</p>" if error else "")
            + form("/enroll/start", csrf, inner))
    return layout("Enrolment", body)


def enroll_consent(csrf: str, text: str, retention_days: int) -> str:
    body = ("<h1>Please read before you agree</h1>"
            f"<div class='consent' id='consent-text'>{escape(text)}</div>"
            f"<p><strong>Retention:</strong> {retention_days} days at most, or until you withdraw.</p>"
            f"<p id='model-notice'>{escape(MODEL_NOTICE)} <a href='/privacy'>More on the privacy page</a>.</p>"
            "<div class='row'>"
            + form("/enroll/accept", csrf, "<button type='submit' id='accept'>I agree — start the camera</button>")
            + form("/enroll/decline", csrf, "<button type='submit' class='secondary' id='decline'>I do not agree"
                   "</button>")
            + "</div>")
    return layout("Consent", body)


def enroll_capture(needed: int) -> str:
    advice = "".join(f"<span hidden data-reason='{k}'>{escape(v)}</span>" for k, v in ADVICE.items())
    body = ("<h1>Look at the camera</h1>"
            f"<div id='hint' class='hint'>Look at the camera</div><progress id='progress' max='{needed}' value='0'>"
            f"</progress>{advice}<p>Images are used for a moment and erased; only the template is kept.</p>")
    return layout("Capturing", body, script="capture")


CAPTURE_JS = POLL + """
poll('/api/enroll', s=>{document.getElementById('hint').textContent=s.hint;
 document.getElementById('progress').value=s.collected;
 if(s.state!=='capturing'){window.location='/enroll/done';}}, 300);
"""


def enroll_done(code: str, qr_svg: str) -> str:
    body = ("<h1>You are enrolled</h1><p>Keep this revocation code. With it you can withdraw your consent "
            "yourself, any time, at <em>Forget me</em> — no staff needed. It is shown only once.</p>"
            f"<div class='code' id='code'>{escape(code)}</div><div style='text-align:center'>{qr_svg}</div>"
            "<p><a class='button' href='/'>Done</a></p>")
    return layout("Enrolled", body)


def message(title: str, text: str, *, link: str = "/", link_text: str = "Back to start", cls: str = "") -> str:
    body = f"<h1>{escape(title)}</h1><p class='{cls}' id='message'>{escape(text)}</p>" \
           f"<p><a class='button' href='{escape(link)}'>{escape(link_text)}</a></p>"
    return layout(title, body)


def forget(csrf: str, error: str = "") -> str:
    body = ("<h1>Forget me</h1><p>Withdraw your consent: your template, name and key are deleted at once and "
            "cannot be recovered.</p>" + (f"<p class='error'>{escape(error)}</p>" if error else "")
            + form("/forget/code", csrf, "<label>Revocation code <input name='code' id='code' autocomplete='off' "
                   "required></label><button type='submit' class='danger' id='withdraw'>Withdraw my consent</button>")
            + "<p>No code? Look at the camera instead:</p>"
            + form("/forget/camera", csrf, "<button type='submit' class='secondary' id='use-camera'>Use the camera"
                   "</button>"))
    return layout("Forget me", body)


def forget_camera(csrf: str) -> str:
    body = ("<h1>Look at the camera</h1><p>Alone, please. To show that it is you, in person, who wants to be "
            "forgotten, the screen will ask you to blink or to turn your head.</p>"
            "<div id='hint' class='hint'>Looking for you…</div>"
            "<p id='why' class='error' hidden></p><p id='again' hidden><a class='button' href='/forget'>Start again"
            "</a></p>"
            "<div id='confirm' hidden><p>We recognised you and you confirmed on the camera. Withdraw your consent "
            "now?</p>"
            + form("/forget/confirm", csrf, "<button type='submit' class='danger' id='confirm-button'>Yes, forget me"
                   "</button>") + "</div>")
    return layout("Forget me", body, script="forget")


FORGET_JS = POLL + """
const HINTS={looking:'Looking for you…',checking:'Hold still…',found:''};
poll('/api/forget', s=>{const h=document.getElementById('hint');
 if(s.state==='challenge'){h.textContent=s.prompt+' to confirm';}
 else if(s.state in HINTS){h.textContent=HINTS[s.state];}
 document.getElementById('confirm').hidden=s.state!=='found';
 if(s.state==='failed'||s.state==='timeout'){h.textContent='';
  const w=document.getElementById('why');w.textContent=s.message;w.hidden=false;
  document.getElementById('again').hidden=false;}}, 400);
"""
SCRIPTS = {"kiosk": KIOSK_JS, "capture": CAPTURE_JS, "forget": FORGET_JS}


def receipt(doc: dict) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in doc.items())
    body = (f"<h1>Your consent is withdrawn</h1><p id='message'>Everything we held about you has been destroyed. "
            f"This is your receipt:</p><table id='receipt'>{rows}</table>"
            "<p><a class='button' href='/'>Done</a></p>")
    return layout("Receipt", body)


def admin_login(csrf: str, error: str = "") -> str:
    body = ("<h1>Staff login</h1>" + (f"<p class='error' id='error'>{escape(error)}</p>" if error else "")
            + form("/admin/login", csrf, "<label>Password <input type='password' name='password' id='password' "
                   "required></label><button type='submit' id='login'>Log in</button>"))
    return layout("Staff login", body)


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
            state = (form("/admin/doors/approve", csrf, hidden + "<label>Code shown on the door <input name='code' "
                          "inputmode='numeric' required></label><button class='approve'>Approve</button>")
                     + form("/admin/doors/reject", csrf, hidden + "<button class='reject'>Reject</button>"))
        elif d.status == "removed":
            state = "removed"
        elif not d.reporting:
            state = "not reporting"
        else:
            state = ("behind" if d.behind else "in step") + (" — granting" if d.report.granting else
                                                             f" — not granting ({escape(str(d.report.reason))})")
        if d.status == "approved":
            state += form("/admin/doors/remove", csrf, hidden + "<button class='remove'>Remove</button>")
        kind = "silent" if d.status == "approved" and not d.reporting else "behind" if d.behind else "ok"
        rows.append(f"<tr class='door-{kind}'><td class='sid'>{escape(d.door)}</td>"
                    f"<td>{escape(d.label)}</td><td>{escape(d.status)}</td><td>{state}</td></tr>")
    message = f"<p class='error' id='doors-note'>{escape(note)}</p>" if note else ""
    key = (f"<p id='site-key'>Site signing key: <code>{escape(site_key)}</code> "
           "(a door joins with <code>consentry fleet join --site-key</code> and this)</p>") if site_key else ""
    return (f"<h2>Doors ({len(doors)})</h2>{key}{message}<table id='doors'><tr><th>Door</th><th>Label</th>"
            f"<th>Status</th><th>State</th></tr>{''.join(rows)}</table>")


def admin_dashboard(csrf: str, subjects: list[dict], audit: list[dict], audit_report: dict | None,
                    health: dict, schedule: str, names_shown: bool, checks: list | None = None,
                    doors: str = "") -> str:
    subject_rows = "".join(
        f"<tr><td class='sid'>{escape(s['id'])}</td>"
        + (f"<td>{escape(s.get('name') or '')}</td>" if names_shown else "")
        + f"<td>{escape(', '.join(s['purposes']))}</td><td>{escape(s['created'][:10])}</td>"
        f"<td>{escape((s['last_seen'] or '—')[:10])}</td><td>{escape(s['expires'][:10])}</td><td>"
        + form("/admin/revoke", csrf, f"<input type='hidden' name='subject' value='{escape(s['id'])}'>"
               "<button class='danger' style='font-size:.8rem;padding:.25rem .6rem'>Revoke</button>")
        + "</td></tr>" for s in subjects)
    name_head = "<th>Name</th>" if names_shown else ""
    audit_rows = "".join(f"<tr><td>{e['seq']}</td><td>{escape(e['ts'][:19])}</td><td>{escape(e['kind'])}</td>"
                         f"<td>{escape(e['subject'] or '')}</td></tr>" for e in audit)
    verdict = ""
    if audit_report is not None:
        problems = escape("; ".join(audit_report["problems"]))
        verdict = (f"<p class='granted' id='audit-result'>Audit log intact: {audit_report['entries']} entries</p>"
                   if audit_report["ok"] else f"<p class='error' id='audit-result'>Audit log damaged: {problems}</p>")
    health_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in health.items())
    check_rows = "".join(f"<tr class='check-{escape(c.status)}'><th>{escape(c.name)}</th><td>{escape(c.status)}</td>"
                         f"<td>{escape(c.detail)}</td><td>{escape(c.hint)}</td></tr>" for c in checks or [])
    body = (f"<h1>Staff</h1><h2>Subjects ({len(subjects)})</h2><table id='subjects'><tr><th>Id</th>{name_head}"
            f"<th>Purposes</th><th>Enrolled</th><th>Last seen</th><th>Expires</th><th></th></tr>{subject_rows}</table>"
            + form("/admin/names", csrf, "<label>Reason for showing names (recorded) <input name='reason' "
                   "id='reason' required></label><button class='secondary' id='show-names'>Show names</button>")
            + doors + f"<h2>Device health</h2><table id='health'>{health_rows}</table>"
            + f"<h2>Checks (as <code>consentry doctor</code>)</h2><table id='checks'>{check_rows}</table>"
            + f"<h2>Audit log</h2>{verdict}" + form("/admin/audit/verify", csrf, "<button id='verify'>Verify the "
                                                    "audit log</button>")
            + f"<table id='audit'><tr><th>#</th><th>When</th><th>What</th><th>Subject</th></tr>{audit_rows}</table>"
            + f"<h2>Retention schedule</h2><div class='consent'>{escape(schedule)}</div>")
    return layout("Staff", body, admin=True).replace("{csrf}", csrf_field(csrf))

"""The pages' languages: every string the web code marks is translated in every catalogue, no
English string leaks into a German, French or Spanish page (a string someone forgot to mark
shows up here), the browser's language is honoured, the shipped consent texts exist in each
language, and the consent record keeps the language of the text the person read."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from consentry.decide.challenge import PROMPTS
from consentry.web import i18n, mydata, pages
from consentry.web.privacy import model_entries, privacy_body
from consentry.web.server import ELSEWHERE
from consentry.web.state import ADVICE

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "app" / "consentry" / "web"
OTHERS = ("de", "fr", "es")
# Words that are the same in a translation, and names: not a leak.
SAME = {"Consentry", "English", "Deutsch", "Français", "Español", "·", "#", "—", "Kiosk", "Name", "Status", "Text",
        "Pages", "Personal", "Door", "version 1"}


def source_messages() -> set[str]:
    found = extract_from_dir(str(WEB), method_map=[("**.py", "python")], keywords={"_": None, "N_": None})
    return {m[2] for m in found if isinstance(m[2], str) and m[2]}


@pytest.mark.parametrize("lang", OTHERS)
def test_every_marked_string_is_translated(lang):
    po = WEB / "locale" / lang / "LC_MESSAGES" / "consentry.po"
    catalog = {m.id: m for m in read_po(po.open("rb")) if m.id}
    source = source_messages()
    assert len(source) > 150
    missing = sorted(s for s in source if s not in catalog or not catalog[s].string or catalog[s].fuzzy)
    assert missing == [], f"{lang}: untranslated (run pybabel extract/update, see web/locale/babel.cfg)"
    stale = sorted(set(catalog) - source)
    assert stale == [], f"{lang}: catalogue entries no page uses"
    braces = re.compile(r"\{\w+\}")
    for msgid in source:
        assert sorted(braces.findall(catalog[msgid].string)) == sorted(braces.findall(msgid)), (lang, msgid)


def test_messages_made_elsewhere_are_marked():
    from consentry.forget import MESSAGES

    assert set(PROMPTS.values()) <= set(ELSEWHERE)
    for head in ("Forget me", "Show my data"):  # the prompts forget.py composes
        assert {f"{head}: {a.lower()} to confirm" for a in PROMPTS.values()} <= set(ELSEWHERE)
    assert set(MESSAGES.values()) <= set(ELSEWHERE)
    assert set(ADVICE.values()) <= source_messages()


def test_a_missing_translation_falls_back_to_english():
    i18n.activate("de")
    try:
        assert i18n._("Welcome") == "Willkommen"
        assert i18n._("A sentence no catalogue has") == "A sentence no catalogue has"
        i18n.activate("xx")
        assert i18n.current() == "en" and i18n._("Welcome") == "Welcome"
    finally:
        i18n.activate("en")


@pytest.mark.parametrize(("header", "cookie", "query", "expected"), [
    ("de-DE,de;q=0.9,en;q=0.8", None, "", "de"), ("fr-FR", None, "", "fr"), ("es-ES,es;q=0.9", None, "", "es"),
    ("en-US", None, "", "en"), ("ja-JP,pt;q=0.5", None, "", "en"), ("en;q=0.2,es;q=0.9", None, "", "es"),
    ("de-DE", "fr", "", "fr"), ("de-DE", "fr", "lang=es", "es"), ("", "junk", "lang=zz", "en"),
    ("fr", None, "a&" * 40 + "lang=de", "fr"), ("x;q=abc,,", None, "", "en")])
def test_the_language_comes_from_the_switch_the_cookie_then_the_browser(header, cookie, query, expected):
    lang, set_cookie = i18n.negotiate({"HTTP_ACCEPT_LANGUAGE": header, "QUERY_STRING": query}, cookie)
    assert lang == expected
    asked = query.removeprefix("lang=") in i18n.LANGUAGES
    assert (set_cookie is not None) == asked and (set_cookie is None or "SameSite" in set_cookie)


class Text(HTMLParser):
    """Visible text nodes and attribute texts a person meets, outside parts marked as quoted
    data (``lang='en'`` on a non-English page, ``translate='no'``, code)."""

    VOID = {"input", "meta", "br", "img", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.texts: list[str] = []
        self.lang = ""

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        quoted = tag in ("code", "style", "script") or a.get("translate") == "no" or (
            tag != "html" and a.get("lang", self.lang) != self.lang)
        skip = (self.stack[-1] if self.stack else False) or quoted
        if not skip:
            shown = ["aria-label", "title", "placeholder"] + ([k for k in a if k.startswith("data-")]
                                                             if a.get("id") == "t" else [])  # the scripts' strings
            self.texts += [a[k] for k in shown if a.get(k)]
        if tag not in self.VOID:
            self.stack.append(skip)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if data.strip() and not (self.stack and self.stack[-1]):
            self.texts.append(" ".join(data.split()))


def texts(html: str) -> tuple[str, list[str]]:
    parser = Text()
    parser.feed(html)
    return parser.lang, parser.texts


def every_page() -> dict[str, str]:
    door = SimpleNamespace(door="d-1", label="Front", status="pending", reporting=True, behind=False,
                           report=SimpleNamespace(granting=True, reason=""))
    ok = SimpleNamespace(door="d-2", label="Back", status="approved", reporting=True, behind=True,
                         report=SimpleNamespace(granting=False, reason="stale"))
    subject = {"id": "s-1", "purposes": ["door"], "created": "2026-12-01T00:00:00", "last_seen": None,
               "expires": "2027-12-01T00:00:00", "name": "Ada"}
    audit = [{"seq": 1, "ts": "2026-12-01T00:00:00", "kind": "enrol", "subject": "s-1"}]
    check = SimpleNamespace(status="pass", name="models", detail="8 files", hint="")
    record = {"subject": "s-1", "created": "2026-12-01T00:00:00", "last_seen": None, "expires": "2027-12-01",
              "templates": 3, "audit": [{"seq": 2, "ts": "2026-12-02T10:00:00", "kind": "access",
                                         "detail": {"decision": "granted"}},
                                        {"seq": 1, "ts": "2026-12-01T00:00:00", "kind": "enrol", "detail": {}}],
              "consent": {"id": "consentry-door", "version": "1", "language": "de", "sha256": "ab" * 32,
                          "given_at": "2026-12-01T00:00:00+00:00", "method": "kiosk", "witnessed_by": "staff",
                          "purposes": ["door"], "retention_days": 365, "age_statement": "adult",
                          "identify_opt_in": False}}
    return {
        "kiosk": pages.kiosk(), "unlock": pages.enroll_unlock("c", i18n._("Wrong PIN.")),
        "details": pages.enroll_details("c", i18n._("Please fill in every field."), card=True),
        "consent": pages.enroll_consent("c", "(the consent text)", 365, "en"),
        "capture": pages.enroll_capture(5), "done": pages.enroll_done("ABCD-EFGH", "<svg></svg>"),
        "message": pages.message(i18n._("Busy"), i18n._("Another enrolment is in progress.")),
        "forget": pages.forget("c", i18n._("That code is not valid.")), "forget-camera": pages.forget_camera("c"),
        "mydata-camera": pages.forget_camera("c", show=True),
        "receipt": pages.receipt({"subject": "s-1", "time": "t", "reason": "r", "destroyed": {}, "audit_hash": "h"}),
        "login": pages.admin_login("c", i18n._("Wrong password.")),
        "dashboard": pages.admin_dashboard(
            "c", [subject], audit, {"ok": True, "entries": 3, "problems": []}, {"fps": 9}, "schedule", True,
            [check], pages.doors_section("c", [door, ok], "note", "fp")),
        "privacy": pages.layout(i18n._("Privacy"), privacy_body(365, model_entries())),
        "mydata": mydata.ask("c", i18n._("That code is not valid.")),
        "mydata-record": mydata.record_page(record, {"kind": "x"}, "(the consent text)"),
    }


@pytest.mark.parametrize("lang", OTHERS)
def test_no_english_string_leaks_into_a_translated_page(lang):
    i18n.activate("en")
    english = every_page()
    i18n.activate(lang)
    try:
        translated = every_page()
    finally:
        i18n.activate("en")
    for name, html in translated.items():
        page_lang, shown = texts(html)
        assert page_lang == lang, name
        _, source = texts(english[name])
        figures = re.compile(r"[\d\W_T]*|[a-z]-[\w-]+|.{0,2}")  # dates, ids, punctuation
        leaks = [t for t in shown if t in source and t not in SAME and not figures.fullmatch(t)]
        data = {"s-1", "Ada", "Front", "Back", "(the consent text)", "ABCD-EFGH", "note", "fp", "door", "2026-12-01",
                "2027-12-01", "kiosk", "pass", "models", "8 files", "consentry-door,", "de", "en", "fps", "9",
                "schedule", "(stale)", "d-1", "d-2", "3", "Kiosk · Consentry", "consentry-door, version 1",
                "2026-12-01 00:00:00 UTC"}
        assert [t for t in leaks if t not in data] == [], f"{name} ({lang}) shows English"

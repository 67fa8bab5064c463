"""The public privacy page and the consent screen's model notice, in a real Chromium (Debian's)
with axe-core: every public page links to /privacy, /privacy says what the recognition model
was trained on (the manifest's figures) and that no face seen here trains anything, and no
page has a WCAG 2.2 A/AA violation."""

from __future__ import annotations

import shutil

import pytest
from consentry.config import Settings
from consentry.runtime import Manifest
from consentry.vault import KeyFile, Vault
from consentry.web.auth import hash_secret
from consentry.web.server import WebApp, WebServer
from consentry.web.state import KioskState

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright",
                               reason="axe-playwright-python is not installed (make test installs it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
PIN = "2468"
PUBLIC = ("/", "/enroll", "/forget", "/admin", "/privacy", "/mydata")
LOCALES = {"en-US": "en", "de-DE": "de", "fr-FR": "fr", "es-ES": "es"}
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
        "resultTypes": ["violations"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("privacy") / "home"
    KeyFile(home / "master.key").create()
    vault = Vault(home, KeyFile(home / "master.key"), create=True)
    vault.set_credential("admin", hash_secret("correct horse battery"))
    vault.set_credential("pin", hash_secret(PIN))
    web = WebServer(WebApp(Settings(), KioskState(), vault).wsgi, "127.0.0.1", 0)
    web.start()
    yield web
    web.close()
    vault.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1024, "height": 700})
    yield context.new_page()
    context.close()


def violations(page) -> list[str]:
    result = axe_sync.Axe().run(page, options=WCAG)
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in result.response["violations"]]


@pytest.mark.parametrize("path", PUBLIC)
def test_public_pages_link_to_privacy_and_pass_axe(page, path):
    page.goto(path)
    assert page.locator("footer a[href='/privacy']").count() == 1
    assert violations(page) == []


def test_privacy_page_says_what_the_model_was_trained_on(page):
    page.goto("/")
    page.click("footer a[href='/privacy']")
    sync_api.expect(page.locator("h1")).to_have_text("Privacy")
    notice = page.locator("#model-notice").inner_text()
    assert "3 million photos of 7,485 people" in notice and "not asked" in notice
    assert "No face seen by this device trains" in notice
    assert "Nothing this camera sees is used to train" in page.locator("#no-training").inner_text()
    table = page.locator("#models").inner_text()
    for entry in Manifest.load().entries:  # each network family's provenance, as the manifest has it
        assert entry.training_data["summary"] in table, entry.name


def test_consent_screen_carries_the_model_notice(page):
    page.goto("/enroll")
    page.fill("#pin", PIN)
    page.click("button[type=submit]")
    page.fill("#name", "Ada Example")
    page.click("#next")
    page.wait_for_selector("#consent-text")
    notice = page.locator("#model-notice")
    assert "7,485 people" in notice.inner_text() and "No face seen by this device trains" in notice.inner_text()
    assert notice.locator("a[href='/privacy']").count() == 1
    assert violations(page) == []


def test_every_public_page_in_every_language_passes_axe(browser, server):
    """One browser, one context per language (the browser's own Accept-Language): each public
    page in Chromium has <html lang> right, a translated heading, and no WCAG 2.2 A/AA violation."""
    from consentry.web import i18n

    headings: dict[str, dict[str, str]] = {}
    problems = []
    for locale, lang in LOCALES.items():
        context = browser.new_context(base_url=server.url, locale=locale, viewport={"width": 1024, "height": 700})
        page = context.new_page()
        for path in PUBLIC:
            page.goto(path)
            if page.get_attribute("html", "lang") != lang:
                problems.append(f"{locale} {path}: <html lang={page.get_attribute('html', 'lang')!r}>")
            headings.setdefault(path, {})[lang] = page.inner_text("h1")
            found = violations(page)
            if found:
                problems.append(f"{locale} {path}: {found}")
        context.close()
    assert problems == []
    for path, by_lang in headings.items():
        for lang in ("de", "fr", "es"):
            assert by_lang[lang] != by_lang["en"], f"{path}: heading not translated into {lang}"
            i18n.activate(lang)
            assert by_lang[lang] == i18n._(by_lang["en"]), (path, lang)
    i18n.activate("en")


def test_the_language_switch_needs_no_session_and_sticks(browser, server):
    context = browser.new_context(base_url=server.url, locale="de-DE")
    page = context.new_page()
    page.goto("/privacy")
    sync_api.expect(page.locator("h1")).to_have_text("Datenschutz")
    page.click("nav.langs a[hreflang='es']")
    sync_api.expect(page.locator("h1")).to_have_text("Privacidad")
    assert page.get_attribute("html", "lang") == "es"
    page.click("footer a[href='/privacy']")  # the cookie keeps it, whatever the browser asks for
    sync_api.expect(page.locator("h1")).to_have_text("Privacidad")
    assert page.request.get("/forget").headers["content-language"] == "es"
    cookie = next(c for c in context.cookies() if c["name"] == "consentry_lang")
    assert cookie["value"] == "es" and cookie["sameSite"] == "Strict"
    context.close()

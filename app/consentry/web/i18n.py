"""The pages' languages: gettext catalogues (web/locale/LANG/LC_MESSAGES/consentry.po, edited
with Babel: ``pybabel extract`` / ``update``), the language a request gets, and the switch.

A request's language is, in order: ``?lang=xx`` (the visible switch, which also sets the
``consentry_lang`` cookie), that cookie, the browser's ``Accept-Language``, English. No
server session is involved, so switching costs an anonymous visitor nothing on the server.
The .po sources are compiled in memory on first use (no .mo to build or keep in step); a
message without a translation, or a fuzzy one, falls back to English.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
import io
import logging
from functools import lru_cache
from html import escape
from pathlib import Path
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

LANGUAGES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español"}
DEFAULT = "en"
COOKIE = "consentry_lang"
DOMAIN = "consentry"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"

_lang: contextvars.ContextVar[str] = contextvars.ContextVar("consentry_lang", default=DEFAULT)
_request: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("consentry_request", default=("GET", "/"))


@lru_cache(maxsize=len(LANGUAGES))
def translations(lang: str) -> _gettext.NullTranslations:
    """The compiled catalogue for ``lang`` (English and anything unreadable: the source strings)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT or not po.is_file():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    try:
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang, domain=DOMAIN)
        buf = io.BytesIO()
        write_mo(buf, catalog)  # fuzzy and empty entries are left out: they fall back to English
        buf.seek(0)
        return _gettext.GNUTranslations(buf)
    except Exception as exc:  # noqa: BLE001 - a broken catalogue must not take the kiosk down
        log.error("catalogue %s cannot be read (%s): this language falls back to English", po, exc)
        return _gettext.NullTranslations()


def current() -> str:
    return _lang.get()


def gettext(message: str) -> str:
    return translations(_lang.get()).gettext(message) if message else message


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_lang.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention: marked for extraction, translated later
    return message


_ = gettext


def accept_language(header: str) -> str | None:
    """The best supported language in an ``Accept-Language`` header (q-values honoured)."""
    choices = []
    for i, part in enumerate(header.split(",")[:32]):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, i, primary))
    return min(choices)[2] if choices else None


def negotiate(environ: dict, cookie: str | None) -> tuple[str, str | None]:
    """(language, Set-Cookie value or None) for one request."""
    try:
        asked = parse_qs(environ.get("QUERY_STRING", "")[:256], max_num_fields=8).get("lang", [""])[0]
    except ValueError:  # too many fields: a junk query picks no language
        asked = ""
    if asked in LANGUAGES:
        return asked, f"{COOKIE}={asked}; Path=/; SameSite=Strict; Max-Age=31536000"
    if cookie in LANGUAGES:
        return cookie, None
    return accept_language(environ.get("HTTP_ACCEPT_LANGUAGE", "")) or DEFAULT, None


def activate(lang: str, method: str = "GET", path: str = "/") -> None:
    """Set the language (and the page being answered, for the switch) for this thread's request."""
    _lang.set(lang if lang in LANGUAGES else DEFAULT)
    _request.set((method, path))


def switch() -> str:
    """The language switch: a link per language to this page (or home, after a form) with ?lang=."""
    method, path = _request.get()
    here = path if method == "GET" and not path.startswith("/api/") else "/"
    links = "".join(
        f"<a href='{escape(here)}?lang={code}' hreflang='{code}' lang='{code}'"
        + (" aria-current='true'" if code == current() else "") + f">{escape(name)}</a>"
        for code, name in LANGUAGES.items())
    label = _("Language")
    return f"<nav class='langs' aria-label='{escape(label)}'>{links}</nav>"

"""The web page's transport: a WSGI adapter around the route handlers, served by waitress.

Why waitress and not the standard library's server: http.server has no socket timeout, one
thread per connection without bound, and hands a negative or non-numeric Content-Length to
the application. Waitress (Debian: python3-waitress, pure Python) parses requests itself,
refuses malformed and oversized ones, and runs handlers on a fixed pool of threads — which
also bounds how many Argon2 verifications can run at once. web/guard.py bounds connections
per address and in all, and the time to a complete request, in front of it.
tests/test_hostile_web.py measures all of these.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import parse_qs

from . import i18n
from .i18n import _

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # bytes; a body of exactly this size is read, one byte more is refused
MAX_FIELDS = 32
THREADS = 4
CHANNEL_TIMEOUT_S = 10
HEAD_TIMEOUT_S = 8  # from accept, or from the previous response, to a complete request
CONNECTION_LIMIT = 64  # in all; at the limit the longest-waiting connection makes room
PER_CLIENT = 16  # connections one address may hold (a browser opens at most 6)
SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
                                "script-src 'self'; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
]


class Response:
    def __init__(self, body: str | dict, status: int = 200, headers: dict | None = None,
                 content_type: str | None = None) -> None:
        is_json = isinstance(body, dict)
        self.body = (json.dumps(body) if is_json else body).encode()
        self.status = int(status)
        self.headers = headers or {}
        self.content_type = content_type or ("application/json" if is_json else "text/html; charset=utf-8")


def cookie_value(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header, tolerating any junk around it (http.cookies
    raises on a name with ``<`` and drops the whole header)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()[:128] or None
    return None


def read_form(environ: dict) -> dict[str, str] | None:
    """The urlencoded body as a dict, or None when its length is missing, negative, or too big,
    or it has more than MAX_FIELDS fields."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length < 0 or length > MAX_BODY:
        return None
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=MAX_FIELDS)
    except ValueError:  # too many fields
        return None
    return {k: v[0] for k, v in fields.items()}


Handler = Callable[[str, str, str | None, dict[str, str], str], tuple[Response, str | None]]


def wsgi_app(handle: Handler, plain: Callable[[str, str], str]):
    """``handle(method, path, cookie token, form, client)`` → (response, cookie to set);
    ``plain(title, text)`` renders an error page. Every response carries the security headers."""
    def app(environ: dict, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/") or "/"
        token = cookie_value(environ.get("HTTP_COOKIE", ""), "consentry_session")
        client = environ.get("REMOTE_ADDR", "")
        set_cookie = None
        lang, lang_cookie = i18n.negotiate(environ, cookie_value(environ.get("HTTP_COOKIE", ""), i18n.COOKIE))
        i18n.activate(lang, method, path)
        if method not in ("GET", "POST"):
            response = Response(plain(_("Not allowed"), _("This page only answers GET and POST.")),
                                HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET, POST"})
        else:
            form = read_form(environ) if method == "POST" else {}
            if form is None:
                response = Response(plain(_("Refused"), _("The request body is missing, malformed or too large.")),
                                    HTTPStatus.BAD_REQUEST)
            else:
                try:
                    response, set_cookie = handle(method, path, token, form, client)
                except Exception:  # noqa: BLE001 - one bad request must not take the page down
                    log.exception("%s %s failed", method, path)
                    response = Response(plain(_("Something went wrong"), _("The request could not be handled.")),
                                        HTTPStatus.INTERNAL_SERVER_ERROR)
        headers = [("Content-Type", response.content_type), ("Content-Language", i18n.current()), *SECURITY_HEADERS,
                   *response.headers.items(), ("Content-Length", str(len(response.body)))]
        if set_cookie and "Set-Cookie" not in response.headers:
            headers.append(("Set-Cookie", set_cookie))
        if lang_cookie:
            headers.append(("Set-Cookie", lang_cookie))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]
    return app


class WebServer:
    """Serves a WSGI app with waitress on a background thread; ``port`` 0 picks a free port;
    ``head_timeout_s`` is there for tests (the default is HEAD_TIMEOUT_S)."""

    def __init__(self, app, bind: str, port: int, *, head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
        from waitress.adjustments import Adjustments

        from .guard import GuardedServer

        adj = Adjustments(
            host=bind, port=port, threads=THREADS, channel_timeout=CHANNEL_TIMEOUT_S, cleanup_interval=1,
            # waitress's own limit stops accepting altogether: the guard's comes first and never does
            connection_limit=CONNECTION_LIMIT + 16,
            max_request_body_size=MAX_BODY + 1,  # waitress refuses a body *of* its limit
            max_request_header_size=16384, ident="Consentry", expose_tracebacks=False,
            clear_untrusted_proxy_headers=True)
        self.server = GuardedServer(app, adj=adj, per_client=PER_CLIENT, total=CONNECTION_LIMIT,
                                    head_timeout_s=head_timeout_s, security_headers=SECURITY_HEADERS)
        self.url = f"http://{bind}:{self.server.effective_port}"
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop the worker threads, close every connection and the listener, end the loop."""
        self.server.task_dispatcher.shutdown()
        for channel in list(self.server._map.values()):  # waitress has no public "stop serving"
            if channel is not self.server:
                channel.close()
        self.server.close()
        self._thread.join(timeout=5)

"""Hostile requests against the real web server (waitress on a loopback port) and a real
vault: raw sockets for malformed HTTP, parallel logins for the Argon2 bound, other sessions
for enrolment and withdrawal, and a hypothesis fuzz of raw requests."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from consentry.config import Settings
from consentry.forget import Withdrawal
from consentry.vault import KeyFile, Vault
from consentry.web.auth import hash_secret
from consentry.web.server import WebApp, WebServer
from consentry.web.state import Capture, KioskState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_vault import MODEL, consent, vectors

PASSWORD, PIN = "correct horse battery", "2468"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    home = tmp_path_factory.mktemp("web") / "home"
    KeyFile(home / "master.key").create()
    vault = Vault(home, KeyFile(home / "master.key"), create=True)
    vault.set_credential("admin", hash_secret(PASSWORD))
    vault.set_credential("pin", hash_secret(PIN))
    kiosk = KioskState()
    app = WebApp(Settings(), kiosk, vault)
    server = WebServer(app.wsgi, "127.0.0.1", 0)
    server.start()
    yield server, app, kiosk, vault
    server.close()
    vault.close()


class Client:
    """A cookie-keeping client on the loopback port, as a browser session would be."""

    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, form: dict | None = None):
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        body = "&".join(f"{k}={v}" for k, v in (form or {}).items())
        headers = {"Cookie": self.cookie, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request(method, path, body=body if method == "POST" else None, headers=headers)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        if r.getheader("Set-Cookie"):
            self.cookie = r.getheader("Set-Cookie").split(";")[0]
        found = re.search(r"name='csrf' value='([^']+)'", text)
        if found:
            self.csrf = found.group(1)
        return r, text

    def post(self, path: str, **form):
        return self.request("POST", path, {"csrf": self.csrf, **form})


def raw(server: WebServer, data: bytes, timeout: float = 15.0) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        chunks = []
        try:
            s.sendall(data)
            # end of request: the server answers and closes (or, refusing a header on a loaded
            # machine, it has answered and closed already: what it sent is read all the same)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # a refused request may be cut off; what matters is that the server stays up
        return b"".join(chunks)


def alive(server: WebServer) -> bool:
    r, _ = Client(server.url).request("GET", "/")
    return r.status == 200


def test_parallel_wrong_logins_hash_at_most_five_times(site):
    server, app, *_ = site
    c = Client(server.url)
    c.request("GET", "/admin")
    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: c.post("/admin/login", password="wrong")[0].status, range(40)))
    assert statuses.count(401) <= 5 and statuses.count(429) >= 35, statuses
    # a tripped login lockout does not lock the PIN or the revocation code out
    pin = Client(server.url)
    pin.request("GET", "/enroll")
    r, _ = pin.post("/enroll/unlock", pin=PIN)
    assert r.status == 303


def test_pin_unlock_rotates_the_session_and_login_rotates_the_csrf_token(site):
    server, app, *_ = site
    c = Client(server.url)
    c.request("GET", "/enroll")
    before_cookie, before_csrf = c.cookie, c.csrf
    r, text = c.post("/enroll/unlock", pin=PIN)
    assert r.status == 303 and c.cookie != before_cookie, text
    app.sessions._failures.clear()  # an earlier test tripped this address's login lockout on purpose
    c2 = Client(server.url)
    c2.request("GET", "/admin")
    csrf_before = c2.csrf
    r, _ = c2.post("/admin/login", password=PASSWORD)
    assert r.status == 303
    c2.request("GET", "/admin")
    assert c2.csrf != csrf_before and before_csrf


def test_enrolment_progress_and_code_belong_to_the_session_that_started_it(site):
    server, app, kiosk, _ = site
    owner = Client(server.url)
    owner.request("GET", "/")
    session = app.sessions.get(owner.cookie.split("=", 1)[1])
    with kiosk.lock:
        kiosk.capture = Capture(name="X", consent=None, owner=session.key, state="done", subject="s-1", code="CODE-1")
    thief = Client(server.url)
    _, text = thief.request("GET", "/api/enroll")
    assert '"state": "none"' in text
    _, text = thief.request("GET", "/enroll/done")
    assert "CODE-1" not in text
    _, text = owner.request("GET", "/enroll/done")
    assert "CODE-1" in text


def test_withdrawal_by_face_is_bound_to_its_session_and_to_a_face_still_in_view(site):
    server, app, kiosk, vault = site
    sid = vault.enroll("Forget Me", consent(), [vectors(5)[0]], MODEL)
    person = Client(server.url)
    person.request("GET", "/forget")
    person.post("/forget/camera")
    session = app.sessions.get(person.cookie.split("=", 1)[1])
    other = Client(server.url)
    other.request("GET", "/forget")
    r, _ = other.post("/forget/camera")
    assert r.status == 409, "another session's withdrawal is not replaced"
    with kiosk.lock:
        kiosk.forget = Withdrawal(owner=session.key, state="found", candidate=sid, seen_at=time.monotonic() - 10)
    other.post("/forget/confirm")
    person.post("/forget/confirm")
    assert vault.exists(sid), "a face no longer in view is not withdrawn, nor by another session"
    person.post("/forget/camera")
    with kiosk.lock:
        kiosk.forget = Withdrawal(owner=session.key, state="found", candidate=sid, seen_at=time.monotonic())
    _, text = person.post("/forget/confirm")
    assert "withdrawn" in text and not vault.exists(sid)


@pytest.mark.parametrize("request_bytes", [
    b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\npassword=x",
    b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nCookie: <script>=1; consentry_session=\"\\\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /static/../../etc/passwd.js HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,
])
def test_malformed_requests_get_a_clean_answer_and_the_server_stays_up(site, request_bytes):
    server, *_ = site
    answer = raw(server, request_bytes + b"", timeout=5)
    assert answer == b"" or answer.startswith(b"HTTP/1.")
    head = answer.split(b"\r\n\r\n")[0]
    assert b"Traceback" not in answer
    if b" 200 " in head.split(b"\r\n")[0]:
        assert b"consentry_session=" in head or b"Content-Type" in head
    assert alive(server)


def test_every_response_carries_the_security_headers(site):
    server, *_ = site
    c = Client(server.url)
    for method, path in (("GET", "/"), ("GET", "/nope"), ("POST", "/admin/login"), ("GET", "/static/kiosk.js")):
        r, _ = c.request(method, path)
        assert r.getheader("X-Frame-Options") == "DENY" and r.getheader("X-Content-Type-Options") == "nosniff"
        assert r.getheader("Referrer-Policy") == "no-referrer"
        csp = r.getheader("Content-Security-Policy")
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)
        assert "unsafe-inline" not in script_src, csp
    _, page = c.request("GET", "/")
    assert "<script>" not in page and "/static/kiosk.js" in page


def test_slow_sockets_do_not_hold_the_page(site):
    """50 clients that send half a request and stall: the page still answers, and the stalled
    connections are closed by the idle timeout."""
    server, *_ = site
    host, port = server.url.removeprefix("http://").split(":")
    stalled = []
    for _ in range(50):
        s = socket.create_connection((host, int(port)), timeout=30)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        stalled.append(s)
    try:
        start = time.monotonic()
        assert alive(server)
        assert time.monotonic() - start < 10
    finally:
        for s in stalled:
            s.close()


def test_sessions_are_bounded(site):
    _, app, *_ = site
    for _ in range(2000):
        app.sessions.get(None)
    assert len(app.sessions._sessions) <= 512


methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"G\x00T", b""])
paths = st.sampled_from([b"/", b"/admin/login", b"/enroll/unlock", b"/forget/code", b"/api/enroll", b"/static/x.js",
                         b"/%00", b"//", b"*"]) | st.binary(max_size=30)
headers = st.lists(st.tuples(st.sampled_from([b"Content-Length", b"Cookie", b"Content-Type", b"Host",
                                              b"Transfer-Encoding", b"X"]),
                             st.binary(max_size=40)), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=methods, path=paths, hdrs=headers, body=st.binary(max_size=200))
def test_fuzzed_raw_requests_never_take_the_page_down(site, method, path, hdrs, body):
    server, *_ = site
    request = method + b" " + path + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in hdrs)
    answer = raw(server, request + b"\r\n" + body, timeout=2)
    assert b"Traceback" not in answer


def test_the_page_answers_after_the_fuzz(site):
    assert alive(site[0])

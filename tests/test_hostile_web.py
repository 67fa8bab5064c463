"""Hostile requests against the real web server (waitress on a loopback port) and a real
vault: raw sockets for malformed HTTP, parallel logins for the Argon2 bound, other sessions
for enrolment and withdrawal, and a hypothesis fuzz of raw requests."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from consentry.camera.fake import FakeCamera
from consentry.config import Settings
from consentry.forget import Withdrawal
from consentry.vault import KeyFile, Vault
from consentry.web.auth import hash_secret
from consentry.web.server import WebApp, WebServer
from consentry.web.state import Capture, KioskState
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_appliance import appliance, panned
from tests.test_appliance import settings as door_settings
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

    def attempt(_) -> int | str:
        try:
            return c.post("/admin/login", password="wrong")[0].status
        except OSError:  # over the 16 connections one address may hold: reset before any hashing
            return "reset"

    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(attempt, range(40)))
    assert statuses.count(401) <= 5 and statuses.count(429) + statuses.count("reset") >= 35, statuses
    assert statuses.count(429) >= 5, statuses
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


@pytest.mark.parametrize("unlock", ["pin", "login"])
def test_a_planted_cookie_does_not_follow_the_session_it_unlocked(site, unlock):
    """Session fixation: an attacker's visitor cookie, planted in the kiosk's browser before a
    PIN unlock or a staff login, still passes the signature check afterwards; it must not reach
    the unlocked session's enrolment, its progress or its revocation code."""
    server, app, kiosk, _ = site
    app.sessions._failures.clear()
    attacker = Client(server.url)
    attacker.request("GET", "/enroll")
    victim = Client(server.url)
    victim.cookie = attacker.cookie  # planted
    victim.request("GET", "/enroll" if unlock == "pin" else "/admin")
    if unlock == "pin":
        assert victim.post("/enroll/unlock", pin=PIN)[0].status == 303
    else:
        assert victim.post("/admin/login", password=PASSWORD)[0].status == 303
    assert victim.cookie != attacker.cookie
    victim.request("GET", "/enroll")
    assert victim.post("/enroll/start", name="Victim", purpose="door", age="adult")[0].status == 303
    victim.request("GET", "/enroll/consent")
    assert victim.post("/enroll/accept")[0].status == 303
    with kiosk.lock:
        capture = kiosk.capture
        capture.state, capture.subject, capture.code = "done", "s-victim", "CODE-VICTIM"
    planted = app.sessions.get(attacker.cookie.split("=", 1)[1])
    assert planted.key != capture.owner
    assert '"state": "none"' in attacker.request("GET", "/api/enroll")[1]
    assert "CODE-VICTIM" not in attacker.request("GET", "/enroll/done")[1]
    assert "CODE-VICTIM" in victim.request("GET", "/enroll/done")[1], "the person's own page shows the code"
    app.sessions._sessions.clear()


def test_a_visitor_cookie_lapses_after_the_idle_limit_and_is_renewed_while_used(monkeypatch):
    """A visitor's token carries its signed issue time: unused for the idle limit it counts as
    absent (a fresh token, CSRF token and key); used, it is renewed and keeps its CSRF token."""
    from consentry.web import auth

    now = [time.monotonic()]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    sessions = auth.Sessions()
    first = sessions.get(None)
    token, used = first.token, first.token
    for _ in range(6):  # 30 minutes of use, a request every 5 minutes
        now[0] += 5 * 60
        visit = sessions.get(used)
        assert (visit.csrf, visit.key) == (first.csrf, first.key)
        used = visit.token
    assert used != token, "renewed while used"
    now[0] += auth.SESSION_IDLE_S + 1
    lapsed = sessions.get(used)
    assert lapsed.token != used and lapsed.csrf != first.csrf and lapsed.key != first.key
    nonce, issued, tag = lapsed.token.split(".")
    forged = sessions.get(f"{nonce}.{int(issued) + 600}.{tag}")  # a later issue time is not signed
    assert forged.csrf != lapsed.csrf


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
    """50 clients (10 on each of 5 addresses) that send half a request and stall: the page still
    answers."""
    server, *_ = site
    host, port = server.url.removeprefix("http://").split(":")
    stalled = []
    for i in range(50):
        s = socket.create_connection((host, int(port)), timeout=30, source_address=(f"127.0.0.{2 + i % 5}", 0))
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
        app.sessions.rotate(app.sessions.get(None))
    assert len(app.sessions._sessions) <= 512
    app.sessions._sessions.clear()


def test_a_flood_of_cookie_less_requests_evicts_no_session(site):
    """600 cookie-less requests (more than there are session slots) cost no slot: the staff
    login and a PIN-unlocked enrolment survive them, and the server keeps nothing for them."""
    server, app, *_ = site
    app.sessions._failures.clear()
    staff, enrolment = Client(server.url), Client(server.url)
    staff.request("GET", "/admin")
    assert staff.post("/admin/login", password=PASSWORD)[0].status == 303
    enrolment.request("GET", "/enroll")
    assert enrolment.post("/enroll/unlock", pin=PIN)[0].status == 303
    kept = len(app.sessions._sessions)

    def visit(_):
        return Client(server.url).request("GET", "/")[0].status

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(visit, range(600))) == {200}
    _, text = staff.request("GET", "/admin")
    assert "id='subjects'" in text, "the staff login was lost"
    _, text = enrolment.request("GET", "/enroll")
    assert "id='name'" in text, "the PIN-unlocked enrolment was lost"
    assert len(app.sessions._sessions) == kept
    # a visitor's CSRF token still works without a stored session, and a forged cookie gets a new one
    visitor = Client(server.url)
    visitor.request("GET", "/forget")
    assert visitor.post("/forget/code", code="AAAA-BBBB-CCCC-DDDD")[0].status == 404
    forged = Client(server.url)
    forged.cookie = "consentry_session=made-up.0000"
    forged.request("GET", "/forget")
    assert forged.cookie != "consentry_session=made-up.0000"
    assert len(app.sessions._sessions) == kept


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


@pytest.fixture
def kiosk_app(tmp_path, astronaut):
    """The appliance itself (loop, camera, vault, web page) playing the astronaut."""
    import threading

    from consentry.app import Appliance
    from consentry.bus.fake import RecordingBus
    from consentry.camera.fake import FakeCamera
    from gpiozero.pins.mock import MockFactory

    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        vault.set_credential("pin", hash_secret(PIN))
    data = Settings().model_dump()
    data["http"].update(enabled=True, port=0, capture_templates=3)
    data["liveness"].update(mode="off")  # a photo on a fake camera; liveness is not what this is about
    frames = [np.ascontiguousarray(astronaut[:, dx: 452 + dx]) for dx in range(0, 60, 4)]
    app = Appliance(Settings.model_validate(data), home=home, out=lambda line: None,
                    camera_opener=FakeCamera(frames, fps=20).open, pin_factory=MockFactory(), bus=RecordingBus())
    worker = threading.Thread(target=app.run, kwargs={"handle_signals": False}, daemon=True)
    worker.start()
    wait_for(lambda: getattr(app, "web", None) is not None, 60)
    yield app
    app.request_stop()
    worker.join(timeout=20)


def wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start_capture(url: str) -> Client:
    c = Client(url)
    c.request("GET", "/enroll")
    assert c.post("/enroll/unlock", pin=PIN)[0].status == 303
    c.request("GET", "/enroll")
    assert c.post("/enroll/start", name="Astrid", purpose="door", age="adult")[0].status == 303
    c.request("GET", "/enroll/consent")
    assert c.post("/enroll/accept")[0].status == 303
    return c


@pytest.fixture
def wipes(monkeypatch):
    """Whether the templates each GuidedCapture.wipe released were all zero after it."""
    from consentry.enrolment import GuidedCapture

    seen: list[tuple[int, bool]] = []
    original = GuidedCapture.wipe

    def wipe(self):
        held = list(self.vectors)
        original(self)
        seen.append((len(held), all(not v.any() for v in held)))

    monkeypatch.setattr(GuidedCapture, "wipe", wipe)
    return seen


def test_an_enrolment_whose_session_ends_stores_nothing(kiosk_app, wipes):
    """The owner's session goes (logged out here; evicted or idle alike) while the camera is
    capturing: whatever was captured is zeroed and no one is stored without seeing a code."""
    app = kiosk_app
    owner = start_capture(app.web.url)
    assert wait_for(lambda: app.kiosk.capture.collected >= 1 or app.kiosk.capture.state != "capturing", 60)
    owner.post("/admin/logout")
    capture = app.kiosk.capture
    assert wait_for(lambda: capture.state not in ("capturing", "captured"), 60), capture.state
    assert capture.state == "cancelled" and capture.code is None
    assert app.vault.subjects() == [] and not any(e["kind"] == "enrol" for e in app.vault.audit.entries())
    assert wipes and all(zeroed for _, zeroed in wipes) and max(n for n, _ in wipes) >= 1
    _, text = owner.request("GET", "/enroll/done")  # the same browser, its session gone: nothing to show
    assert "id='code'" not in text and "Nothing to show" in text


def test_an_enrolment_is_stored_only_when_its_code_is_collected(kiosk_app, wipes, monkeypatch):
    """A capture whose page never collects the code stores nothing; the next one, collected,
    is stored on the very request that shows its code."""
    import consentry.web.capture

    app = kiosk_app
    monkeypatch.setattr(consentry.web.capture, "HANDOVER_S", 1.0)
    first = start_capture(app.web.url)
    capture = app.kiosk.capture
    assert wait_for(lambda: capture.state != "capturing", 60), capture.hint
    assert json.loads(first.request("GET", "/api/enroll")[1])["state"] == "captured"
    assert app.vault.subjects() == [], "stored before its code was handed over"
    assert wait_for(lambda: capture.state == "failed", 30), capture.state
    _, text = first.request("GET", "/enroll/done")
    assert "Not enrolled" in text and "id='code'" not in text and app.vault.subjects() == []
    assert wipes and all(zeroed for _, zeroed in wipes)

    monkeypatch.setattr(consentry.web.capture, "HANDOVER_S", 30.0)
    second = start_capture(app.web.url)
    assert wait_for(lambda: app.kiosk.capture.state != "capturing", 60)
    with ThreadPoolExecutor(2) as pool:  # a double-clicked page: one subject, and never two codes
        pages = list(pool.map(lambda _: second.request("GET", "/enroll/done")[1], range(2)))
    codes = {found.group(1) for text in pages if (found := re.search(r"id='code'>([^<]+)<", text))}
    assert all("id='code'" in text or "shown only once" in text for text in pages), pages
    stored = app.vault.subjects()
    assert len(codes) == 1 and len(stored) == 1
    code = codes.pop()
    assert len(code) == 19
    assert app.vault.revoke_by_code(code).subject == stored[0].id


def test_templates_held_at_shutdown_are_zeroed(kiosk_app, wipes, tmp_path):
    """The kiosk stops while a capture waits for its code: the held templates are zeroed and
    nothing is stored."""
    app = kiosk_app
    start_capture(app.web.url)
    capture = app.kiosk.capture
    assert wait_for(lambda: capture.state != "capturing", 60), capture.hint
    assert capture.state == "captured"
    before = len(wipes)  # a restart during capture (the photo read differently) wipes too
    app.request_stop()
    assert wait_for(lambda: len(wipes) > before, 30), "the held templates were never released"
    assert wipes[before:] == [(3, True)] and all(zeroed for _, zeroed in wipes)
    assert capture.state == "cancelled" and capture.code is None
    home = tmp_path / "home"  # the stopping appliance may have closed its own handle already
    with Vault(home, KeyFile(home / "master.key")) as vault:
        assert vault.subjects() == []


@pytest.fixture
def held(tmp_path):
    """A real vault and a KioskEnrolment holding three templates for a capture whose code is
    being collected (the camera's part is played by a stand-in holding the templates)."""
    import types

    from consentry.web.capture import HANDOVER_S, KioskEnrolment

    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    vault = Vault(home, KeyFile(home / "master.key"), create=True)
    kiosk = KioskState()
    enrol = KioskEnrolment(kiosk, vault, types.SimpleNamespace(embedder=types.SimpleNamespace(name=MODEL)),
                           None, threshold=0.4, out=lambda line: None)

    def hold() -> Capture:
        c = Capture(name="P", consent=consent(), owner="k", state="captured")
        wiped: list[bool] = []
        g = types.SimpleNamespace(done=True, vectors=vectors(7), wipe=lambda: wiped.append(True))
        with kiosk.lock:
            kiosk.capture, enrol._guided, enrol._for = c, g, c
            enrol._handover_until = time.monotonic() + HANDOVER_S
        c.wiped = wiped
        return c

    yield enrol, vault, hold
    vault.close()


def test_a_vault_locked_past_its_timeout_fails_the_enrolment_cleanly(held):
    """Another process holds the vault's write lock (a CLI command) past SQLite's busy timeout:
    the hand-over fails, nothing is stored, the templates are zeroed and the kiosk is free."""
    import sqlite3

    enrol, vault, hold = held
    capture = hold()
    other = sqlite3.connect(vault.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        enrol.hand_over(capture)
    finally:
        other.execute("ROLLBACK")
        other.close()
    enrol.tick()
    assert capture.state == "failed" and capture.code is None and capture.error, capture.state
    assert capture.wiped and vault.subjects() == []


def test_a_code_that_cannot_be_issued_leaves_no_subject_stored(held, monkeypatch):
    """Stored, then the code fails with an error that is not ours: the subject is revoked at
    once and the capture fails, whatever the error was."""
    import sqlite3

    enrol, vault, hold = held
    for error in (sqlite3.OperationalError("database is locked"), RuntimeError("a bug")):
        def fail(subject, error=error):
            raise error

        monkeypatch.setattr(vault, "issue_revocation_code", fail)
        capture = hold()
        enrol.hand_over(capture)
        assert capture.state == "failed" and capture.code is None, capture.state
        assert capture.wiped and vault.subjects() == []


def test_a_hand_over_stuck_storing_is_timed_out(held):
    """A hand-over that never returns (a hung disk) must not keep the kiosk busy for good."""
    enrol, vault, hold = held
    capture = hold()
    with enrol.kiosk.lock:
        enrol._release()
        capture.state = "storing"
        enrol._storing_until = time.monotonic() - 1
    enrol.tick()
    assert capture.state == "failed" and enrol.kiosk.kiosk_view()["mode"] == "idle"


# -- small ones (issue 23, item 14) ------------------------------------------------------
def test_a_form_with_too_many_fields_is_a_clean_400(site, caplog):
    server, *_ = site
    c = Client(server.url)
    c.request("GET", "/admin")
    with caplog.at_level("ERROR"):
        r, text = c.post("/admin/login", **{f"f{i}": "x" for i in range(40)})
    assert r.status == 400 and "Traceback" not in text
    assert not [rec for rec in caplog.records if rec.exc_info], "no traceback in the log either"


def test_a_body_of_exactly_16_kib_is_read_and_one_byte_more_refused(site):
    server, *_ = site
    c = Client(server.url)
    c.request("GET", "/admin")
    head = f"csrf={c.csrf}&password=wrong&pad="
    for size, refused in ((16 * 1024, False), (16 * 1024 + 1, True)):
        body = (head + "a" * (size - len(head))).encode()
        conn = http.client.HTTPConnection(c.host, int(c.port), timeout=30)
        conn.request("POST", "/admin/login", body=body, headers={
            "Cookie": c.cookie, "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        conn.close()
        assert (r.status in (400, 413)) == refused, (size, r.status)


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", b"413"),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
])
def test_the_servers_own_error_replies_carry_the_security_headers(site, request_bytes, status):
    from consentry.web.http import SECURITY_HEADERS

    server, *_ = site
    head = raw(server, request_bytes, timeout=10).split(b"\r\n\r\n")[0].decode("latin-1")
    lines = head.split("\r\n")
    assert lines[0].split(" ")[1] == status.decode(), head
    sent = dict(line.split(": ", 1) for line in lines[1:])
    assert {name: sent.get(name) for name, _ in SECURITY_HEADERS} == dict(SECURITY_HEADERS), head


# -- slow and greedy clients (issue 23, item 9) ------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
FRESH = "127.0.0.250"  # an address the floods (127.0.0.2, .3, …) never use


@contextlib.contextmanager
def flood(port: int, *, sockets: int, addresses: int = 1, trickle: float | None = None, first: int = 2):
    """tests/web_flood.py in its own process for as long as the block runs, from 127.0.0.<first>
    onwards; the dict it yields gets the flood's counts when the block ends."""
    args = [sys.executable, "-m", "tests.web_flood", str(port), "--sockets", str(sockets),
            "--addresses", str(addresses), "--first", str(first), "--seconds", "300"]
    child = subprocess.Popen([*args, *(["--trickle", str(trickle)] if trickle else [])], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    counts: dict = {}
    try:
        yield counts
    finally:
        child.terminate()
        out, _ = child.communicate(timeout=30)
        counts.update(json.loads(out.strip().splitlines()[-1]))


def probe(url: str, timeout: float = 10.0, source: str = FRESH, retry_reset: bool = False) -> float | None:
    """Seconds for a GET / from ``source`` (a fresh address) to be answered (None: no answer
    within ``timeout``). ``retry_reset``: one new try when the first gets no answer, as a
    browser retries a GET whose connection was reset."""
    if retry_reset:
        first = probe(url, timeout, source)
        return first if first is not None else probe(url, timeout, source)
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source, 0))
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        r.read()
        return time.monotonic() - start if r.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def channels(server: WebServer) -> int:
    return len(server.server.active_channels)


def eventually(condition, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def bare(request):
    """A web server of its own (the floods must not disturb the shared one), with no vault;
    an indirect parameter sets its head deadline."""
    options = {"head_timeout_s": request.param} if hasattr(request, "param") else {}
    server = WebServer(WebApp(Settings(), KioskState(), None).wsgi, "127.0.0.1", 0, **options)
    server.start()
    yield server
    server.close()


@pytest.mark.parametrize(("attack", "fills"), [
    pytest.param({"sockets": 200, "addresses": 20, "trickle": 4.0}, "total", id="slow-loris-from-20-addresses"),
    pytest.param({"sockets": 150, "addresses": 1}, "per_client", id="idle-reconnecting-from-one-address"),
])
def test_a_fresh_address_is_answered_while_slow_clients_flood_the_server(bare, attack, fills):
    """Before: 20 of 20 probes timed out (every connection slot held by the flood). Probes run
    for longer than the head deadline, so they also meet the moment the whole flood is cut
    and reconnects at once."""
    from consentry.web.http import CONNECTION_LIMIT, HEAD_TIMEOUT_S, PER_CLIENT

    port = int(bare.url.rsplit(":", 1)[1])
    guard = bare.server
    with flood(port, **attack) as counts:
        full = CONNECTION_LIMIT if fills == "total" else PER_CLIENT
        assert eventually(lambda: channels(bare) >= full), f"the flood never filled the server ({channels(bare)})"
        answered, end = [], time.monotonic() + HEAD_TIMEOUT_S + 2
        while time.monotonic() < end:
            answered.append(probe(bare.url))
            time.sleep(0.5)
        held = channels(bare)
    assert None not in answered, answered
    assert counts["opened"] >= attack["sockets"] and held <= CONNECTION_LIMIT, (counts, held)
    assert guard.evicted > 0, (guard.evicted, guard.refused, guard.cut)
    print(f"{fills}: {len(answered)} probes, slowest {max(answered):.3f} s; flood {counts}; "
          f"evicted {guard.evicted}, refused {guard.refused}, cut at the deadline {guard.cut}")


@pytest.mark.parametrize("attack", [
    pytest.param({"sockets": 16, "trickle": 4.0}, id="16-half-requests"),
    pytest.param({"sockets": 150}, id="150-idle"),
])
def test_a_client_sharing_the_floods_address_is_answered(bare, attack):
    """Behind a NAT, or with the shipped bind 127.0.0.1 where the kiosk's own browser shares
    the address of every local process: idle sockets reconnecting from that address make room
    for the newcomer instead of locking it out (before: 2 of 20 probes answered)."""
    from consentry.web.http import PER_CLIENT

    port = int(bare.url.rsplit(":", 1)[1])
    with flood(port, addresses=1, first=7, **attack) as counts:
        assert eventually(lambda: channels(bare) >= PER_CLIENT), f"the flood never filled its share ({channels(bare)})"
        answered = []
        for _ in range(20):
            # sharing the flood's address, a newcomer can still lose a race to the flood's own
            # reconnects while its request is in flight: a browser retries a reset GET once
            answered.append(probe(bare.url, source="127.0.0.7", retry_reset=True))
            time.sleep(0.3)
        held = channels(bare)
    assert None not in answered, answered
    assert held <= PER_CLIENT + 1 and bare.server.evicted >= 20, (held, bare.server.evicted, counts)
    print(f"same address: {len(answered)} probes, slowest {max(answered):.3f} s; flood {counts}; "
          f"evicted {bare.server.evicted}, refused {bare.server.refused}")


@pytest.mark.parametrize("bare", [120], indirect=True)  # no deadline cut while a loaded machine counts
def test_one_address_holds_at_most_its_share_of_connections(bare):
    from consentry.web.http import PER_CLIENT

    host, port = bare.url.removeprefix("http://").split(":")
    socks: list[socket.socket] = []
    gone: set[int] = set()
    for i in range(PER_CLIENT + 10):
        s = socket.socket()
        s.bind(("127.0.0.9", 0))
        socks.append(s)
        try:
            s.connect((host, int(port)))
        except OSError:  # reset so soon that the connect itself reports it
            gone.add(i)

    def ten_gone() -> bool:
        for i, s in enumerate(socks):
            if i in gone:
                continue
            s.settimeout(0.02)
            try:
                if s.recv(1) == b"":
                    gone.add(i)
            except TimeoutError:
                pass  # still open
            except OSError:  # refused with a reset
                gone.add(i)
        return len(gone) >= 10

    try:
        assert eventually(ten_gone), len(gone)
        time.sleep(0.5)
        ten_gone()
        assert len(gone) == 10, "one address keeps exactly its share open"
        assert probe(bare.url) is not None
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("bare", [2], indirect=True)
def test_a_request_head_that_never_ends_is_cut_off(bare):
    """A slow loris sends a header line every half second and never finishes its head: the
    connection is closed at the head deadline (2 s here) although it is never idle."""
    host, port = bare.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        start, cut = time.monotonic(), None
        s.settimeout(0.5)
        while cut is None and time.monotonic() - start < 30:
            try:
                s.sendall(b"X-Slow: 1\r\n")
                if s.recv(1) == b"":
                    cut = time.monotonic() - start
            except TimeoutError:
                continue
            except OSError:
                cut = time.monotonic() - start
    assert cut is not None and 1.5 <= cut < 20, cut
    assert bare.server.cut == 1


def visits(face: np.ndarray) -> list[np.ndarray]:
    """The enrolled face walking past, then nobody for long enough that the track ends: one
    camera loop is one visit, so the door has a new decision to make every loop."""
    walk = panned(face)
    return walk + [np.zeros_like(walk[0])] * 10


@pytest.fixture
def door_home(tmp_path, pipeline, astronaut):
    home = tmp_path / "door"
    KeyFile(home / "master.key").create()
    vector = pipeline.embed(astronaut, pipeline.faces(astronaut)[0]).vector.copy()
    pipeline.wipe()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("Door Person", consent(purposes=("door",)), [vector], pipeline.embedder.name)
    return home, sid


def test_the_door_keeps_deciding_while_its_web_page_is_flooded(door_home, astronaut):
    """The appliance loop (door profile, web page on) with a fake camera showing an enrolled
    person over and over, while both floods hit the page: grants keep coming, because the
    frame loop never waits on the web threads; and the page still answers a newcomer."""
    from consentry.web.http import CONNECTION_LIMIT, HEAD_TIMEOUT_S

    home, sid = door_home
    s = door_settings(http={"enabled": True, "port": 0}, door={"cooldown_seconds": 0.0})
    app = appliance(s, home, FakeCamera(visits(astronaut), fps=30))
    worker = threading.Thread(target=app.run, kwargs={"handle_signals": False}, daemon=True)
    worker.start()
    try:
        assert eventually(lambda: getattr(app, "web", None) is not None, 120), "the appliance never started"
        port = int(app.web.url.rsplit(":", 1)[1])

        def grants() -> int:
            return sum(e["decision"] == "granted" and e["subject"] == sid for e in app.bus.of("event/access"))

        with flood(port, sockets=200, addresses=20, trickle=4.0), \
                flood(port, sockets=150, addresses=1, first=30) as idle:
            assert eventually(lambda: channels(app.web) >= CONNECTION_LIMIT), channels(app.web)
            # for longer than the head deadline: the floods' connections are cut and reopened meanwhile
            before, frames, start = grants(), app.frames, time.monotonic()
            assert eventually(lambda: time.monotonic() - start > HEAD_TIMEOUT_S + 2 and grants() >= before + 3, 120), \
                (grants() - before, app.frames - frames)
            during, elapsed = grants() - before, time.monotonic() - start
            answered = probe(app.web.url, timeout=20)
            frame_rate = (app.frames - frames) / elapsed
        assert answered is not None and idle["opened"] > 150
        print(f"door under flood: {during} grants in {elapsed:.1f} s, {frame_rate:.1f} frames/s; "
              f"page answered in {answered:.3f} s")
    finally:
        app.request_stop()
        worker.join(timeout=30)

"""Withdrawal by face against the running appliance: real models, real vault, the web server on
a loopback port, a scripted camera. A still or a print of an enrolled person withdraws nobody;
a live person who does not answer the challenge on the kiosk screen is not withdrawn; one who
answers is; a second face or a lost track on the way stops it, and the page says why."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
from consentry.camera.fake import FakeCamera
from consentry.evaluate.attacks import attack_frames
from consentry.vault import KeyFile, Vault
from consentry.vision.image_io import read_image
from consentry.vision.pipeline import largest_face

from tests.person_a import SCRIPTS, kiosk_app, person, running, scripted  # noqa: F401 - person is a fixture
from tests.test_hostile_web import Client
from tests.test_vault import consent

END = ("found", "failed", "timeout")


def withdraw(app, camera=None, *, answer: bool = True, interrupt=None, seconds: float = 90.0):
    """Start a withdrawal by face from a fresh session, poll it (answering each challenge action
    on cue when ``answer``; calling ``interrupt(camera)`` once the first action is asked), then
    confirm. (last polled state, actions asked, kiosk prompts seen, confirm page)."""
    c = Client(app.web.url)
    c.request("GET", "/forget")
    r, _ = c.post("/forget/camera")
    assert r.status == 200
    asked, kiosk, state = [], set(), {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = json.loads(c.request("GET", "/api/forget")[1])
        if app.kiosk.kiosk_view()["prompt"]:
            kiosk.add(app.kiosk.kiosk_view()["prompt"])
        if state["state"] in END:
            break
        if state["state"] == "challenge" and (not asked or asked[-1] != state["prompt"]):
            asked.append(state["prompt"])
            if interrupt is not None and len(asked) == 1:
                interrupt(camera)
            elif answer:
                camera.act(state["prompt"])
        time.sleep(0.1)
    _, page = c.post("/forget/confirm")
    return state, asked, kiosk, page


@pytest.fixture
def appliance():
    apps = []

    def start(home, camera, mode: str = "passive", profile: str = "door"):
        app = kiosk_app(home, camera, mode=mode, profile=profile)  # passive: the shipped default
        apps.append((app, running(app)))
        return app

    yield start
    for app, worker in apps:
        app.request_stop()
        worker.join(timeout=20)


@pytest.mark.parametrize("profile", ["door", "checkout"])
def test_a_live_person_who_answers_on_the_kiosk_screen_is_withdrawn(person, appliance, profile):  # noqa: F811
    home, sid, clip = person
    camera = scripted(clip)
    app = appliance(home, camera, profile=profile)
    state, asked, kiosk, page = withdraw(app, camera)
    assert state["state"] == "found", (state, asked)
    assert "Blink" in asked and len(asked) == 2 and set(asked) <= set(SCRIPTS), asked
    assert {f"Forget me: {a.lower()} to confirm" for a in asked} <= kiosk, kiosk  # asked on the kiosk screen
    assert "withdrawn" in page and not app.vault.exists(sid)


def test_a_live_person_who_does_not_answer_is_not_withdrawn(person, appliance):  # noqa: F811
    home, sid, clip = person
    camera = scripted(clip)
    app = appliance(home, camera)
    state, asked, _, page = withdraw(app, camera, answer=False)
    assert app.vault.exists(sid)
    assert state["state"] == "failed" and asked, (state, asked)
    assert "not seen in time" in state["message"] and "Nothing was changed" in state["message"]
    assert "not seen in time" in page


def still(frame: np.ndarray) -> list[np.ndarray]:
    return [frame]


def near_still(frame: np.ndarray) -> list[np.ndarray]:
    """The same photo re-encoded as a webcam would: a grey level of noise, no motion."""
    rng = np.random.default_rng(1)
    return [np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
            for _ in range(4)]


@pytest.mark.parametrize(("present", "why", "mode"), [
    (still, "did not change at all", "passive"), (near_still, "", "passive"),
    (still, "did not change at all", "off"),  # no anti-spoofing model: the other cues and the challenge
    (near_still, "not seen in time", "off")], ids=["identical", "near-identical", "identical-off", "near-off"])
def test_a_still_of_an_enrolled_person_withdraws_nobody(person, appliance, present, why, mode):  # noqa: F811
    home, sid, clip = person
    camera = FakeCamera(present(clip[6]), fps=15)  # frame 6 matches on its own
    app = appliance(home, camera, mode=mode)
    state, asked, _, page = withdraw(app, camera, answer=False)
    assert app.vault.exists(sid)
    assert state["state"] == "failed" and why in state["message"], state  # noise alone: it cannot act
    assert "Nothing was changed" in page


def test_a_printed_photo_of_an_enrolled_person_withdraws_nobody(tmp_path, faces_dir, pipeline, appliance):
    vectors = []
    for name in ("obama.jpg", "obama-480p.jpg"):  # enrolled from the photos the attacker then prints
        image = read_image(faces_dir / "examples" / name)
        vectors.append(pipeline.embed(image, largest_face(pipeline.faces(image))).vector.copy())
        pipeline.wipe()
    home = tmp_path / "home"
    KeyFile(home / "master.key").create()
    with Vault(home, KeyFile(home / "master.key"), create=True) as vault:
        sid = vault.enroll("Photo Victim", consent(), vectors, pipeline.embedder.name)
    photo = read_image(faces_dir / "examples" / "obama.jpg")
    frames = list(attack_frames(photo, "print_flat", frames=30, seed=2))  # a print held up, paper edge in view
    camera = FakeCamera(frames + frames[::-1], fps=15)
    app = appliance(home, camera)
    state, _, _, page = withdraw(app, camera, answer=False)
    assert app.vault.exists(sid)
    assert state["state"] == "failed" and "photo or a screen" in state["message"], state
    assert "Nothing was changed" in page


def second_face(clip: list[np.ndarray], faces_dir, pipeline) -> list[np.ndarray]:
    """person_a idle, and another person's face (160 px) in the empty top right of the picture."""
    other = read_image(faces_dir / "examples" / "biden.jpg")
    x1, y1, x2, y2 = (int(v) for v in largest_face(pipeline.faces(other)).detection.box[:4])
    pad = (x2 - x1) // 2
    head = cv2.resize(other[max(y1 - pad, 0): y2 + pad, max(x1 - pad, 0): x2 + pad], (160, 160),
                      interpolation=cv2.INTER_AREA)  # person_a's face is within x 187-363 of 640
    frames = []
    for frame in clip[slice(*SCRIPTS["idle"])] * 6:
        both = frame.copy()
        both[:160, -160:] = head
        frames.append(both)
    return frames


@pytest.mark.parametrize("interrupt", ["second_face", "away"])
def test_a_second_face_or_a_lost_track_stops_it(person, appliance, faces_dir, pipeline, interrupt):  # noqa: F811
    home, sid, clip = person
    camera = scripted(clip)
    app = appliance(home, camera)
    empty = [np.full_like(clip[0], 90) for _ in range(30)]  # he stepped out of view for two seconds
    frames = second_face(clip, faces_dir, pipeline) if interrupt == "second_face" else empty
    state, asked, _, page = withdraw(app, camera, interrupt=lambda cam: cam.show(frames))
    assert app.vault.exists(sid)
    assert state["state"] == "failed" and asked, (state, asked)
    expected = "Someone else came into view" if interrupt == "second_face" else "lost sight of you"
    assert expected in state["message"] and expected in page


# -- the withdrawal's rules, with a fixed scorer ---------------------------------------------

class Tracker:
    """What FaceWithdrawal reads of the tracker: its live tracks and the observed frame."""

    def __init__(self, *tracks: int) -> None:
        self.tracks, self.observed_frame = set(tracks), None


def rig(p_real: float):
    from consentry.bus.fake import RecordingBus
    from consentry.config import LivenessConfig
    from consentry.decide.liveness import LivenessGate, LivenessJudge, LivenessOptions
    from consentry.forget import FaceWithdrawal, Withdrawal
    from consentry.web.state import KioskState

    from tests.test_liveness import Scores

    bus, kiosk = RecordingBus("t"), KioskState()
    door_gate = LivenessGate(LivenessJudge(LivenessOptions(), Scores(p_real)), bus.publish)
    withdrawal = FaceWithdrawal(kiosk, LivenessConfig(), door_gate, bus.publish)

    def start() -> Withdrawal:
        with kiosk.lock:
            kiosk.forget = Withdrawal(owner="me")
            return kiosk.forget

    return withdrawal, door_gate, kiosk, start


def play(withdrawal, results, tracks=(1,), n: int = 6) -> None:
    from tests.test_liveness import frame

    for _ in range(n):
        withdrawal.observe(results, Tracker(*tracks), frame())


def test_failed_withdrawals_lock_out_withdrawal_by_face_and_never_the_door():
    from tests.test_liveness import result

    withdrawal, door_gate, _, start = rig(0.1)  # a print: the passive networks refuse it
    reasons = []
    for track in range(1, 5):
        f = start()
        play(withdrawal, [result(track, "match", "s-a")], (track,))
        reasons.append(f.reason)
    assert reasons == ["passive_spoof"] * 3 + ["locked_out"]
    assert not door_gate.lockout.locked("s-a"), "someone on the network could lock a person out of the door"


def test_the_door_lockout_refuses_a_withdrawal_too():
    from tests.test_liveness import result

    withdrawal, door_gate, _, start = rig(0.99)
    for _ in range(3):
        door_gate.lockout.fail("s-a")
    f = start()
    play(withdrawal, [result(1, "match", "s-a")])
    assert (f.state, f.reason) == ("failed", "locked_out") and "Too many failed attempts" in f.message


def test_the_door_prompt_wins_and_no_withdrawal_starts_under_it():
    from tests.test_liveness import result

    withdrawal, _, kiosk, start = rig(0.99)
    f = start()
    withdrawal.door_prompt("Blink")
    play(withdrawal, [result(1, "match", "s-a")])
    assert f.state == "looking" and kiosk.kiosk_view()["prompt"] == "Blink"
    withdrawal.door_prompt(None)
    play(withdrawal, [result(1, "match", "s-a")])
    assert f.state == "challenge" and kiosk.kiosk_view()["prompt"].startswith("Forget me: ")
    withdrawal.door_prompt("Blink")  # the door asks someone: its prompt is shown, not the withdrawal's
    assert kiosk.kiosk_view()["prompt"] == "Blink"
    withdrawal.door_prompt(None)
    with kiosk.lock:
        kiosk.forget = None  # the session gave up
    play(withdrawal, [], n=1)
    assert kiosk.kiosk_view()["prompt"] is None and not withdrawal.waiting()


def test_another_subject_on_the_track_ends_it():
    from tests.test_liveness import result

    withdrawal, _, _, start = rig(0.99)
    f = start()
    play(withdrawal, [result(1, "match", "s-a")], n=2)
    play(withdrawal, [result(1, "match", "s-b")], n=1)
    assert (f.state, f.reason) == ("failed", "not_you") and f.candidate == "s-a"


def test_a_withdrawal_replaced_while_it_asks_does_not_stall_the_loop():
    import threading

    from tests.test_liveness import result

    withdrawal, _, kiosk, start = rig(0.99)
    start()
    play(withdrawal, [result(1, "match", "s-a")])
    assert kiosk.kiosk_view()["prompt"].startswith("Forget me: ")
    f = start()  # the session pressed "Use the camera" again
    loop = threading.Thread(target=play, args=(withdrawal, [result(1, "match", "s-a")]), kwargs={"n": 1}, daemon=True)
    loop.start()
    loop.join(timeout=10)
    assert not loop.is_alive(), "the loop is stuck on the kiosk's lock"
    assert f.state == "checking" and f.track == 1 and withdrawal.gate.judge.tracks == 1  # a fresh start

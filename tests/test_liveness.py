"""Liveness: the anti-spoofing networks on real faces, the rigid-plane cue, and the door's
decisions (denied with a reason, presentation_attack and lockout, strangers never scored)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from consentry.bus import messages
from consentry.bus.fake import RecordingBus
from consentry.camera.fake import FakeCamera
from consentry.config import DoorConfig
from consentry.decide.door import DoorPolicy
from consentry.decide.liveness import POINTS, LivenessGate, LivenessJudge, LivenessOptions, Lockout, planar_fit
from consentry.decide.recognizer import TrackResult
from consentry.evaluate.attacks import SPECIES, attack_frames
from consentry.vision.antispoof import AntiSpoof
from consentry.vision.pipeline import largest_face

from tests.conftest import ROOT
from tests.test_appliance import appliance, home, panned, settings  # noqa: F401 - home is a fixture

SAMPLES = ROOT.parent / "shared" / "models" / "minivision-silent-face" / "images" / "sample"


@pytest.fixture(scope="module")
def spoof(manifest):
    with AntiSpoof(manifest) as a:
        yield a


def clip_frames(path, every: int = 3, limit: int = 40) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out, i = [], 0
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        i += 1
    cap.release()
    return out


def judge_clip(pipeline, spoof, frames, options=None, fps: float = 15.0, max_frames: int = 200) -> str:
    """The judge's verdict on a clip played at ``fps`` (looped; a challenge times out on the clip's
    own clock, not the test's)."""
    t = [0.0]
    judge = LivenessJudge(options or LivenessOptions(), lambda f, b: spoof.score(f, b).p_real, clock=lambda: t[0])
    for i in range(max_frames):
        frame = frames[i % len(frames)]
        t[0] = i / fps
        face = largest_face(pipeline.faces(frame))
        if face is None:
            continue
        verdict = judge.observe(1, "s-test", frame, face.detection.box, face.landmarks.mesh)
        if verdict.state != "pending":
            return f"{verdict.state}:{verdict.reason}"
    return "pending"


def test_upstream_samples_are_classified_as_upstream_classifies_them(pipeline, spoof):
    if not SAMPLES.is_dir():
        pytest.skip(f"upstream sample images not found at {SAMPLES}")
    labels = {}
    for name in ("image_T1.jpg", "image_F1.jpg", "image_F2.jpg"):
        rgb = cv2.cvtColor(cv2.imread(str(SAMPLES / name)), cv2.COLOR_BGR2RGB)
        face = largest_face(pipeline.faces(rgb, still=True))
        labels[name] = spoof.score(rgb, face.detection.box).label
    # upstream reports RealFace for class 1 and FakeFace for anything else
    assert {k: v == "real" for k, v in labels.items()} == {"image_T1.jpg": True, "image_F1.jpg": False,
                                                            "image_F2.jpg": False}


def test_crop_buffers_are_zeroed_after_scoring(pipeline, spoof, astronaut):
    face = pipeline.faces(astronaut)[0]
    spoof.score(astronaut, face.detection.box)
    assert not spoof._input.any() and not any(crop.any() for *_, crop in spoof._nets)


def test_bona_fide_webcam_clips_pass(pipeline, spoof, faces_dir):
    for clip in ("webcam_person_a_1.wmv", "webcam_person_a_2.wmv", "webcam_person_a_lighting.wmv"):
        assert judge_clip(pipeline, spoof, clip_frames(faces_dir / "video" / clip)) == "passed:None", clip


@pytest.mark.parametrize("species", SPECIES)
def test_generated_attacks_fail(pipeline, spoof, faces_dir, species):
    photo = cv2.cvtColor(cv2.imread(str(faces_dir / "examples" / "obama.jpg")), cv2.COLOR_BGR2RGB)
    replay = clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", limit=12) if species == "replay" else None
    frames = list(attack_frames(photo, species, frames=16, seed=1, replay=replay))
    assert judge_clip(pipeline, spoof, frames).startswith("failed:"), species


def test_planar_cue_vetoes_a_plane_and_spares_a_turning_head(pipeline, faces_dir):
    frame = clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", limit=1)[0]
    first = largest_face(pipeline.faces(frame)).landmarks.mesh[POINTS, :2].astype(np.float64)
    # the same points on a plane seen in strong perspective: one homography explains them exactly
    h = np.array([[1.1, 0.05, -20.0], [0.02, 0.95, 10.0], [1.2e-3, 3e-4, 1.0]])
    moved = cv2.perspectiveTransform(first[None], h)[0]
    deform, residual = planar_fit(first, moved)
    assert deform >= LivenessOptions().planar_motion and residual < 1e-6
    # a real head turning (person_a_2 has the most head motion): parallax, never a veto
    frames = clip_frames(faces_dir / "video" / "webcam_person_a_2.wmv", every=3, limit=60)
    meshes = [f.landmarks.mesh[POINTS, :2].astype(np.float64) for f in
              (largest_face(pipeline.faces(x)) for x in frames) if f is not None]
    opts = LivenessOptions()
    fits = [planar_fit(meshes[0], m) for m in meshes[1:]]
    assert max(d for d, _ in fits) >= opts.planar_motion  # the head did turn
    assert not any(d >= opts.planar_motion and r <= opts.planar_residual for d, r in fits)


# -- the door's decisions, with a recording scorer ------------------------------------------

class Scores:
    """A scorer that returns fixed P(real) values and records every call."""

    def __init__(self, value: float) -> None:
        self.value, self.calls = value, 0

    def __call__(self, frame, box) -> float:
        self.calls += 1
        return self.value


class Relay:
    def __init__(self) -> None:
        self.pulses = 0

    def unlock(self, seconds: float, subject: str | None = None) -> None:
        self.pulses += 1


def result(track: int, state: str, subject: str | None = None) -> TrackResult:
    mesh = np.zeros((468, 3), np.float32) if state == "match" else None
    return TrackResult(track, (10.0, 10.0, 90.0, 90.0), state, subject, 0.3 if subject else None, (), True, mesh)


def door(value: float, clock=None):
    bus = RecordingBus("t")
    judge = LivenessJudge(LivenessOptions(frames=3, max_failures=2, lockout_s=60.0), Scores(value))
    clock = clock or (lambda: 0.0)
    gate = LivenessGate(judge, bus.publish, clock)
    policy = DoorPolicy(DoorConfig(cooldown_seconds=0.0), Relay(), bus.publish, liveness=gate, clock=clock)
    return policy, bus, judge.scorer


NOISE = np.random.default_rng(0)


def frame() -> np.ndarray:
    """A sensor's frame: never the same pixels twice (identical frames are a frozen source)."""
    return NOISE.integers(0, 256, (100, 100, 3), dtype=np.uint8)


def test_a_stranger_is_never_scored_and_carries_no_liveness_figure():
    policy, bus, scorer = door(0.99)
    for _ in range(5):
        policy.handle([result(7, "unknown")], 10.0, frame())
    assert scorer.calls == 0 and policy.liveness.judge.tracks == 0
    events = bus.of("event/access")
    assert [(e["decision"], e["subject"], e["liveness"], e["reason"]) for e in events] == \
        [("unknown", None, "not_checked", None)]
    with pytest.raises(messages.PayloadRefused):
        messages.access_event("unknown", None, None, 1.0, liveness="failed")


def test_a_live_match_waits_for_its_frames_then_opens():
    policy, bus, scorer = door(0.95)
    for _ in range(3):
        policy.handle([result(1, "match", "s-a")], 10.0, frame())
    assert scorer.calls == 3 and policy.door.pulses == 1
    (event,) = bus.of("event/access")
    assert (event["decision"], event["liveness"], event["reason"]) == ("granted", "passed", None)


def test_a_spoof_is_denied_and_repeated_failures_lock_the_subject_out():
    now = [0.0]
    policy, bus, scorer = door(0.1, clock=lambda: now[0])
    for track in (1, 2):  # two attempts (two tracks) by the same subject
        for _ in range(3):
            policy.handle([result(track, "match", "s-a")], 10.0, frame())
        policy.handle([], 10.0, frame())  # the track leaves
    events = bus.of("event/access")
    assert [(e["decision"], e["liveness"], e["reason"]) for e in events] == \
        [("denied", "failed", "passive_spoof")] * 2
    (alarm,) = bus.of("event/presentation_attack")
    assert alarm["subject"] == "s-a" and alarm["failures"] == 2 and alarm["lockout_seconds"] == 60.0
    calls = scorer.calls
    policy.handle([result(3, "match", "s-a")], 10.0, frame())  # locked out: not even scored
    assert scorer.calls == calls and bus.of("event/access")[-1]["reason"] == "locked_out"
    assert policy.door.pulses == 0
    now[0] = 61.0  # the lockout ends
    assert not policy.liveness.lockout.locked("s-a")


def test_identical_frames_are_a_frozen_source_and_never_open():
    policy, bus, scorer = door(0.99)
    still = frame()
    for _ in range(6):
        policy.handle([result(1, "match", "s-a")], 10.0, still.copy())  # a still fed as a stream
    assert policy.door.pulses == 0
    assert {(e["decision"], e["liveness"], e["reason"]) for e in bus.of("event/access")} == \
        {("denied", "failed", "frozen_source")}


def test_lockout_counts_failures_within_the_window_only():
    now = [0.0]
    lock = Lockout(LivenessOptions(max_failures=2, failure_window_s=10.0, lockout_s=5.0), clock=lambda: now[0])
    assert lock.fail("s") is None
    now[0] = 11.0
    assert lock.fail("s") is None  # the first one aged out
    assert lock.fail("s") == 2 and lock.locked("s")


def test_a_photo_of_an_enrolled_person_never_opens_the_door(home, astronaut):  # noqa: F811
    path, sid = home
    frames = panned(astronaut)
    app = appliance(settings(liveness={"mode": "passive", "challenge_step_s": 1.0}), path,
                    FakeCamera(frames + frames[::-1], fps=30))  # to and fro: one track throughout
    app.run(max_frames=90)
    events = app.bus.of("event/access")
    assert events and not [e for e in events if e["decision"] == "granted"]
    assert {(e["decision"], e["subject"], e["liveness"]) for e in events} == {("denied", sid, "failed")}
    # the astronaut photo scores about 0.5: unclear, so it was asked to act and could not
    assert {e["reason"] for e in events} <= {"challenge_failed", "passive_spoof"}


def test_eval_liveness_reports_iso_figures_on_generated_attacks(tmp_path, pipeline, spoof, faces_dir):
    from consentry.evaluate.liveness import eval_liveness, make_attack_set, pad_metrics

    make_attack_set(faces_dir / "examples", tmp_path, limit=3)
    result = eval_liveness(tmp_path, pipeline, lambda img, box: spoof.score(img, box).p_real, 0.75)
    assert result["images"] == 12 and set(result["apcer"]) == {"print_flat", "print_bent", "screen", "worst"}
    assert {"bpcer", "bpcer20", "bpcer100", "auc", "failures_to_acquire"} <= set(result)
    # the figures themselves, on scores chosen by hand
    m = pad_metrics([0.9, 0.8, 0.2], {"print": [0.1, 0.9], "screen": [0.0]}, 0.5)
    assert m["apcer"] == {"print": 0.5, "screen": 0.0, "worst": 0.5} and m["bpcer"] == round(1 / 3, 4)
    assert m["bpcer20"] == 1.0  # APCER <= 5 % needs a threshold above 0.9: every bona fide fails


def test_a_photo_never_passes_a_checkout_verification(home, astronaut):  # noqa: F811
    path, sid = home
    bus = RecordingBus("till-1")
    s = settings(profile="checkout", liveness={"mode": "passive", "challenge_unclear": False},
                 checkout={"timeout_seconds": 5.0, "frames_needed": 2})
    bus.inbox.put(("checkout/request", {"request_id": "r1", "subject": sid}))
    app = appliance(s, path, FakeCamera(panned(astronaut), fps=30), bus=bus)
    app.run(max_frames=20)
    (response,) = bus.of("checkout/response")
    assert (response["verified"], response["reason"], response["distance"]) == (False, "liveness_failed", None)


def test_eval_liveness_clips_judges_each_clip_through_the_tracker(tmp_path, faces_dir, spoof):
    from consentry.config import Settings
    from consentry.decide.liveness import LivenessJudge
    from consentry.evaluate.liveness import bona_fide_windows, eval_liveness_clips, make_attack_set, threshold_for_bpcer
    from consentry.vision.factory import tracker_from_settings

    make_attack_set(faces_dir / "examples", tmp_path, species=("print_flat", "screen"), limit=1, clips=True)
    with open(tmp_path / "labels.csv", "a") as fh:
        fh.write(f"{(faces_dir / 'video' / 'webcam_person_a_lighting.wmv').resolve()},live,\n")
    tracker = tracker_from_settings(Settings())
    with tracker.pipeline:
        judge = LivenessJudge(LivenessOptions(), lambda f, b: spoof.score(f, b).p_real)
        result = eval_liveness_clips(tmp_path, tracker, judge)
        windows = bona_fide_windows(tmp_path, tracker, judge.scorer, 4, 60.0)
    assert result["clips"] == 3 and result["bona_fide"] == 1 and result["bpcer"] == 0.0
    assert result["apcer"]["worst"] == 0.0 and sum(result["attacks"].values()) == 2
    assert len(windows) > 50 and threshold_for_bpcer(windows, 0.01)["threshold"] >= LivenessOptions().threshold


# -- the active challenge, on real frames -------------------------------------------------------

def run_challenge(pipeline, frames, actions, fps: float = 15.0) -> str:
    from consentry.decide.challenge import Challenge, ChallengeOptions

    ch = Challenge("s-test", list(actions), ChallengeOptions(), 0.0)
    for i, frame in enumerate(frames):
        face = largest_face(pipeline.faces(frame))
        if face is not None and ch.observe(frame, face.landmarks.mesh, i / fps) != "pending":
            break
    return ch.state


def test_a_real_blink_passes_and_a_still_face_cannot_blink(pipeline, faces_dir):
    frames = clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", every=1, limit=100)[60:100]
    assert run_challenge(pipeline, frames, ["blink"]) == "passed"  # person_a blinks at frames 78-79
    assert run_challenge(pipeline, [frames[0]] * 90, ["blink"]) == "failed"  # 6 s of a photo


def test_real_head_turns_pass_only_in_the_asked_direction(pipeline, faces_dir):
    frames = clip_frames(faces_dir / "video" / "webcam_person_a_2.wmv", every=1, limit=90)
    to_left = frames[0:70]  # person_a turns to his own left around frame 68
    assert run_challenge(pipeline, to_left, ["turn_left"]) == "passed"
    assert run_challenge(pipeline, to_left + [to_left[-1]] * 20, ["turn_right"]) == "failed"
    assert run_challenge(pipeline, frames[60:85], ["turn_right"]) == "passed"  # back and to his right


def test_a_challenge_of_two_always_includes_a_blink_in_random_order():
    import random

    from consentry.decide.challenge import ChallengeOptions, choose_actions

    seen = {tuple(choose_actions(ChallengeOptions(), random.Random(seed))) for seed in range(40)}
    assert all("blink" in s and len(s) == 2 and len(set(s)) == 2 for s in seen)
    assert len(seen) == 4  # blink first or second, with either turn


def test_picture_edge_cue_sees_a_held_print_and_not_a_person(pipeline, faces_dir):
    from consentry.decide.frame_edge import framed

    photo = cv2.cvtColor(cv2.imread(str(faces_dir / "examples" / "obama.jpg")), cv2.COLOR_BGR2RGB)
    hits = []
    for frame in attack_frames(photo, "print_flat", frames=10, seed=2):
        face = largest_face(pipeline.faces(frame))
        if face is not None:
            hits.append(framed(frame, face.detection.box))
    assert sum(hits) >= 2, hits
    person = clip_frames(faces_dir / "video" / "webcam_person_a_1.wmv", every=10, limit=25)
    assert not any(framed(f, largest_face(pipeline.faces(f)).detection.box) for f in person)

"""Visit-level decisions: the mean descriptor of a track's good frames, its budget, re-opening,
and the buffer that is the only place a stranger's descriptors outlive a frame."""

from __future__ import annotations

import numpy as np
import pytest
from consentry.decide.recognizer import Recognizer
from consentry.decide.visit import Visit, VisitOptions
from consentry.errors import ConfigError
from consentry.match import Decision, Gallery, MatchPolicy
from consentry.vision.pipeline import largest_face
from consentry.vision.tracking import FaceTracker, TrackingOptions

pytestmark = pytest.mark.pi  # also run on arm64 by `make pi-check`

MODEL = "dlib_resnet_v1_int8"
THRESHOLD = 0.42


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def gallery_of(*subjects: tuple[str, np.ndarray], model: str = MODEL) -> Gallery:
    g = Gallery(model, MatchPolicy(threshold=THRESHOLD))
    g.replace(subjects)
    return g


def test_frames_that_each_miss_can_match_as_a_visit(rng):
    """The held-out failure: every frame a little beyond the per-image threshold, in different
    directions (frame noise); their mean is close to the subject."""
    me = unit(rng) * 1.4
    gallery = gallery_of(("s-me", me), ("s-other", unit(rng) * 1.4))
    frames = [me + 0.45 * unit(rng) for _ in range(4)]
    assert all(not gallery.identify(f, MODEL).matched for f in frames)
    visit = Visit(VisitOptions(min_frames=3, frames=8))
    verdicts = [visit.add(f, MODEL, 80.0, float(t), gallery) for t, f in enumerate(frames[:3])]
    assert [v.state for v in verdicts] == ["pending", "pending", "match"]
    assert verdicts[-1].subject == "s-me" and verdicts[-1].distance < THRESHOLD
    assert not any(np.any(b) for b in visit.buffers()), "a decided visit keeps no descriptors"


def test_a_stranger_visit_ends_unknown_with_no_figures_and_a_zeroed_buffer(rng):
    gallery = gallery_of(("s-me", unit(rng) * 1.4))
    visit = Visit(VisitOptions(min_frames=3, frames=8, budget_s=1.0, stall_frames=100))
    stranger = unit(rng) * 1.4
    states = []
    for t in np.arange(0.0, 1.2, 0.1):
        states.append(visit.add(stranger + 0.1 * unit(rng), MODEL, 80.0 + 10 * t, float(t), gallery))
        if not visit.open:
            break
    last = states[-1]
    assert (last.state, last.subject, last.distance, last.frames) == ("unknown", None, None, 0)
    assert all(s.state == "pending" for s in states[:-1]) and len(states) == 11  # budget: 1.0 s
    assert not any(np.any(b) for b in visit.buffers())


def test_a_face_that_stops_approaching_settles_early_and_reopens_when_it_grows(rng):
    gallery = gallery_of(("s-me", unit(rng) * 1.4))
    visit = Visit(VisitOptions(min_frames=3, frames=8, budget_s=60.0, stall_frames=5, grow=1.25))
    stranger = unit(rng) * 1.4
    for t in range(5):
        verdict = visit.add(stranger, MODEL, 60.0, float(t), gallery)
    assert verdict.state == "unknown"
    assert not visit.grew(70.0) and visit.grew(76.0)
    visit.reopen()
    assert visit.open and visit.verdict.state == "pending"


def test_rechecks_reopen_a_visit_only_for_a_reason():
    visit = Visit(VisitOptions())
    visit.verdict = visit.verdict.__class__("unknown")
    assert not visit.recheck(Decision("unknown"))
    assert visit.recheck(Decision("match", "s-a", 0.3))
    visit.verdict = visit.verdict.__class__("match", "s-a", 0.3)
    assert not visit.recheck(Decision("match", "s-a", 0.35))
    assert visit.recheck(Decision("unknown")) and visit.recheck(Decision("match", "s-b", 0.3))


def test_bad_visit_options_are_refused():
    with pytest.raises(ConfigError):
        VisitOptions(min_frames=4, frames=3)
    with pytest.raises(ConfigError):
        VisitOptions(min_frames=4, frames=8, stall_frames=2)


def test_a_strangers_visit_buffer_is_zeroed_when_the_track_leaves(pipeline, astronaut):
    face = largest_face(pipeline.faces(astronaut))
    her = pipeline.embed(astronaut, face).vector.copy()
    pipeline.wipe()
    far = her + 0.8 * unit(np.random.default_rng(1))
    gallery = gallery_of(("s-far", far), model=pipeline.embedder.name)
    recognizer = Recognizer(FaceTracker(pipeline, TrackingOptions(max_missed=0)), gallery,
                            VisitOptions(min_frames=3, frames=8, budget_s=60.0))
    results = [recognizer.step(astronaut, now=float(t))[0] for t in range(2)]
    assert [r.state for r in results] == ["pending", "pending"]
    (visit,) = recognizer.visits().values()
    buf, _ = visit.buffers()
    assert np.count_nonzero(np.any(buf, axis=1)) == 2  # her two good frames, only here
    recognizer.step(np.zeros_like(astronaut), now=2.0)
    recognizer.step(np.zeros_like(astronaut), now=3.0)
    assert not recognizer.visits() and not np.any(buf), "the track left; its descriptors must be gone"
    her.fill(0)


def test_the_embedding_budget_takes_the_largest_faces_first(pipeline, astronaut):
    import cv2

    head = astronaut[0:320, 96:416]
    small = cv2.resize(head, None, fx=0.75, fy=0.75)
    canvas = np.zeros((320, 640, 3), np.uint8)
    canvas[:, :320] = head
    canvas[:240, 400:] = small
    tracker = FaceTracker(pipeline, TrackingOptions(max_embeds=1))
    observations = tracker.process(canvas)
    tracker.wipe()
    assert len(observations) == 2
    measured = [o for o in observations if o.quality is not None]
    assert len(measured) == 1 and measured[0].face.detection.box[0] < 320  # the large face


def test_the_kiosk_advises_the_largest_waiting_face_and_keeps_only_the_text():
    from consentry.decide.recognizer import TrackResult
    from consentry.web.state import KioskState

    kiosk = KioskState()
    small = TrackResult(1, (0, 0, 30, 30), "pending", None, None, ("too_small",), False)
    blurred = TrackResult(2, (0, 0, 90, 90), "pending", None, None, ("blurry",), False)
    matched = TrackResult(3, (0, 0, 200, 200), "match", "s-a", 0.3, ("pose",), False)
    kiosk.advise([small])
    assert kiosk.kiosk_view()["advice"] == "Come a little closer"
    assert kiosk.kiosk_view()["face"] and kiosk.kiosk_view()["box"] is None  # undecided: no figure
    kiosk.advise([small, blurred, matched], (400, 800, 3))
    assert kiosk.kiosk_view()["advice"] == "Hold still"
    assert kiosk.kiosk_view()["box"] == [0.125, 0.25, 0.25, 0.5]  # only the recognised face's, as fractions
    kiosk.advise([])
    assert kiosk.kiosk_view()["advice"] is None and not kiosk.kiosk_view()["face"]


def test_a_visit_that_gets_no_more_good_frames_is_closed_when_its_budget_runs_out(rng):
    gallery = gallery_of(("s-me", unit(rng) * 1.4))
    visit = Visit(VisitOptions(min_frames=3, frames=8, budget_s=1.0))
    visit.add(unit(rng) * 1.4, MODEL, 80.0, 0.0, gallery)  # one good frame, then the face turns away
    assert visit.expire(0.9).state == "pending" and np.any(visit.buffers()[0])
    assert visit.expire(1.0).state == "unknown" and not np.any(visit.buffers()[0])


def test_a_strangers_whole_visit_writes_nothing_opens_no_socket_and_logs_nothing(pipeline, astronaut, caplog):
    import logging

    from tests.privacy import recorded_writes

    face = largest_face(pipeline.faces(astronaut))
    her = pipeline.embed(astronaut, face).vector.copy()
    pipeline.wipe()
    gallery = gallery_of(("s-far", her + 0.8 * unit(np.random.default_rng(2))), model=pipeline.embedder.name)
    her.fill(0)
    recognizer = Recognizer(FaceTracker(pipeline), gallery, VisitOptions(min_frames=3, frames=8, budget_s=0.5))
    caplog.set_level(logging.DEBUG, logger="consentry")
    with recorded_writes() as events:
        states = [recognizer.step(astronaut, now=t / 10.0)[0].state for t in range(8)]
    assert states[:5] == ["pending"] * 5 and states[-1] == "unknown"
    (visit,) = recognizer.visits().values()
    assert not any(np.any(b) for b in visit.buffers())
    assert events == [], f"a stranger's visit wrote or connected: {events}"
    assert [r for r in caplog.records if r.name.startswith("consentry")] == []


def test_calibration_scores_a_visit_as_the_door_decides_it(rng):
    """The smallest threshold that grants a visit: for the mean rule the closest window mean;
    for the old 3-of-5 vote the third-closest frame among those voting for one subject."""
    from consentry.evaluate.visits import VisitPlan, _Search, _VoteSearch, window_means

    c = np.stack([unit(rng) * 1.4, unit(rng) * 1.4])
    frames = np.stack([c[0] + d * unit(rng) for d in (0.30, 0.50, 0.35, 0.45, 0.40)])
    plan = VisitPlan(min_frames=3, frames=8, votes=(3, 5))
    means = window_means(frames, 3, 8)
    assert means.shape == (3, 128) and np.allclose(means[-1], frames.mean(axis=0))
    mean_score = _Search(c, plan).stranger(frames)
    assert mean_score == pytest.approx(min(np.linalg.norm(m - c[0]) for m in means), abs=1e-6)
    per_frame = np.linalg.norm(frames - c[0], axis=1)
    vote_score = _VoteSearch(c, plan).stranger(frames)
    assert vote_score == pytest.approx(np.sort(per_frame)[2], abs=1e-5)  # the third-closest of the 5
    assert _VoteSearch(c, plan).genuine(frames, 1) == (np.inf, True)  # nobody voted for subject 1
    assert mean_score < vote_score  # averaging brings the visit closer than any third frame


def test_the_budget_holds_for_a_track_that_goes_unseen(pipeline, astronaut):
    """A face the detector misses for a few frames keeps its track (max_missed) but its open
    visit is still closed on time: the bound on a stranger's descriptors is the budget."""
    face = largest_face(pipeline.faces(astronaut))
    her = pipeline.embed(astronaut, face).vector.copy()
    pipeline.wipe()
    gallery = gallery_of(("s-far", her + 0.8 * unit(np.random.default_rng(4))), model=pipeline.embedder.name)
    her.fill(0)
    recognizer = Recognizer(FaceTracker(pipeline, TrackingOptions(max_missed=10)), gallery,
                            VisitOptions(min_frames=3, frames=8, budget_s=1.0))
    recognizer.step(astronaut, now=0.0)
    (visit,) = recognizer.visits().values()
    blank = np.zeros_like(astronaut)
    recognizer.step(blank, now=0.5)
    assert np.any(visit.buffers()[0]) and recognizer.visits()  # unseen, track kept, within budget
    recognizer.step(blank, now=1.0)
    assert recognizer.visits() and not np.any(visit.buffers()[0]), "budget over: zeroed though unseen"


def test_a_match_whose_recheck_misses_stays_a_match_while_it_is_reverified(rng):
    me = unit(rng) * 1.4
    gallery = gallery_of(("s-me", me), ("s-other", unit(rng) * 1.4))
    visit = Visit(VisitOptions(min_frames=3, frames=8, budget_s=1.0, stall_frames=100))
    for t in range(3):
        verdict = visit.add(me + 0.1 * unit(rng), MODEL, 80.0, t * 0.1, gallery)
    assert verdict.state == "match" and not visit.open
    visit.reverify()  # a re-check frame missed (say, mid head turn)
    assert visit.open and visit.verdict.subject == "s-me"
    assert visit.add(me + 0.6 * unit(rng), MODEL, 80.0, 1.0, gallery).state == "match"  # still, meanwhile
    for t in range(2):
        confirmed = visit.add(me + 0.1 * unit(rng), MODEL, 80.0, 1.1 + t * 0.1, gallery)
    assert confirmed.state == "match" and confirmed.subject == "s-me" and not visit.open
    visit.reverify()
    stranger = unit(rng) * 1.4  # someone else stepped into the track
    states = [visit.add(stranger, MODEL, 80.0, 2.0 + t * 0.2, gallery).state for t in range(6)]
    assert states[0] == "match" and states[-1] == "unknown" and not np.any(visit.buffers()[0])


def test_a_track_the_detector_misses_for_a_frame_is_reported_once():
    from consentry.config import DoorConfig
    from consentry.decide.door import DoorPolicy
    from consentry.decide.recognizer import TrackResult

    events: list = []

    class Door:
        def unlock(self, seconds: float, subject: str | None = None) -> None:
            raise AssertionError("a stranger must never unlock")

    policy = DoorPolicy(DoorConfig(), Door(), lambda topic, payload: events.append(payload))
    stranger = TrackResult(7, (0, 0, 80, 80), "unknown", None, None, (), True)
    policy.handle([stranger], 1.0, alive={7})
    policy.handle([], 1.0, alive={7})  # missed by the detector this frame, still tracked
    policy.handle([stranger], 1.0, alive={7})
    assert len(events) == 1 and events[0]["decision"] == "unknown" and events[0]["subject"] is None
    policy.handle([], 1.0, alive=set())  # the track ended; a new visit of the same id would report again
    policy.handle([stranger], 1.0, alive={7})
    assert len(events) == 2

"""Generated approach visits and the windows a stranger gets: the door's own schedule counted."""

from __future__ import annotations

import numpy as np
import pytest
from consentry.decide.visit import Visit, VisitOptions
from consentry.evaluate import approach_check as ac
from consentry.evaluate import video_visits as vv
from consentry.evaluate.approach import ApproachOptions, approach_frames, walk
from consentry.match import Decision
from consentry.vision.pipeline import largest_face


class _Counting:
    """A gallery that never matches and counts what the visit asks it."""

    def __init__(self) -> None:
        self.asked = 0

    def identify(self, vector, model, threshold=None, unit=False) -> Decision:
        self.asked += 1
        return Decision(False, None, None)


@pytest.mark.parametrize("fps", [15.0, 30.0])
def test_the_schedule_counts_the_windows_the_door_decides_on(fps):
    """decide/visit.py, as the recognizer drives it (expire, then add), asks the gallery once
    per window until the budget runs out: as many as Schedule.windows_per_visit."""
    schedule = vv.Schedule(fps=fps)
    visit, gallery = Visit(VisitOptions(min_frames=3, frames=8, budget_s=3.0)), _Counting()
    rng = np.random.default_rng(0)
    for i in range(int(10 * fps)):
        visit.expire(i / fps)
        if not visit.open:
            break
        visit.add(rng.standard_normal(128).astype(np.float32), "m", 80.0, i / fps, gallery)
    assert visit.verdict.state == "unknown"
    assert gallery.asked == schedule.windows_per_visit
    assert vv.Schedule(fps=30.0).frames_per_visit == 2 * vv.Schedule(fps=15.0).frames_per_visit


def _track(n: int, widths, best: float, rng):
    vecs = rng.standard_normal((n, 128)).astype(np.float32)
    return vecs, np.ones(n, bool), np.asarray(widths, float), np.ones(n), np.full(n, best)


def test_a_stranger_gets_every_window_of_every_visit_including_re_opens():
    rng = np.random.default_rng(3)
    s = vv.Schedule(fps=15.0)
    c = rng.standard_normal((4, 128))
    vecs, ok, widths, w, far = _track(75, np.full(75, 80.0), 9.0, rng)
    one = vv.looks(vecs, ok, widths, w, far, c, vv.MeanRule(), s)
    assert (one.visits, len(one.scores)) == (1, s.windows_per_visit)  # 43: frames 0-44
    brute = min(np.linalg.norm(vecs[max(0, e - 8):e].mean(axis=0) - c, axis=1).min() for e in range(3, 46))
    assert one.scores.min() == pytest.approx(brute, abs=1e-6)
    # A re-check frame that matches on its own at settling re-opens: frames 45-74, 28 more windows.
    near = np.full(75, 0.1)
    again = vv.looks(vecs, ok, widths, w, near, c, vv.MeanRule(), s)
    assert (again.visits, len(again.scores)) == (2, 43 + 28)
    # A face that grew by visit_regrow after settling re-opens too (next frame, not due for a re-check).
    grow = np.where(np.arange(75) >= 50, 110.0, 80.0)
    grown = vv.looks(vecs, ok, grow, w, far, c, vv.MeanRule(), s)
    assert grown.visits == 2 and len(grown.scores) == 43 + (75 - 51) - 2
    assert np.all(np.diff(grown.times) > 0)


def test_rules_on_the_same_visit():
    rng = np.random.default_rng(5)
    s = vv.Schedule(fps=15.0)
    c = rng.standard_normal((3, 128))
    f = c[0] + 0.3 * rng.standard_normal((20, 128))
    mean, _ = vv.MeanRule().visit(f, np.ones(20), c, s)
    weighted, _ = vv.WeightedRule().visit(f, np.ones(20), c, s)
    assert np.allclose(mean, weighted)  # equal weights: the plain mean
    far = c[1] + 5.0 * rng.standard_normal((20, 128))
    scores, used = vv.SequentialRule(reference=0.45, reject=1.0).visit(far, np.ones(20), c, s)
    assert used < 20 and len(scores) == used - s.min_frames + 1  # strong evidence against: settled early
    unit = vv.centroids(rng.standard_normal((5, 128)), vv.UnitRule())
    assert np.linalg.norm(unit) == pytest.approx(1.0)
    # On the unit scale and with no early rejection, the budget alone ends the visit.
    seq = vv.SequentialRule(reference=0.4, reject=np.inf, unit=True)
    assert np.linalg.norm(vv.centroids(rng.standard_normal((5, 128)), seq)) == pytest.approx(1.0)
    cu = np.stack([vv.centroids(x[None, :], seq) for x in c])
    scores, used = seq.visit(seq.frame(far), np.ones(20), cu, s)
    assert used == 20 and len(scores) == 20 - s.min_frames + 1
    d = np.linalg.norm(seq.frame(far)[:, None, :] - cu[None], axis=2)
    assert np.allclose(scores, -np.cumsum(0.4 - d, axis=0)[s.min_frames - 1:])


def test_correlation_and_mean_gain_measure_what_averaging_buys():
    rng = np.random.default_rng(8)
    e = np.zeros((200, 128))
    for t in range(1, 200):
        e[t] = 0.8 * e[t - 1] + 0.6 * rng.standard_normal(128)
    assert ac.correlation(e) == pytest.approx(0.8, abs=0.06)
    assert ac.correlation(rng.standard_normal((200, 128))) == pytest.approx(0.0, abs=0.05)
    centre = rng.standard_normal(128)
    same = np.tile(centre + 0.2, (20, 1))
    assert ac.mean_gain(same, centre) == pytest.approx(1.0)  # one error repeated: averaging buys nothing
    assert ac.mean_gain(centre + 0.2 * rng.standard_normal((20, 128)), centre) < 0.7  # independent: a lot


def test_an_approach_clip_is_deterministic_and_walks_up(pipeline, astronaut):
    face = largest_face(pipeline.faces(astronaut, still=True))
    pipeline.wipe()
    box = tuple(float(x) for x in face.detection.box)
    options = walk(ApproachOptions(fps=5.0), seed=1, seconds=2.0)
    first = [f for f, _ in approach_frames(astronaut, box, options, seed=4)]
    again = [f for f, _ in approach_frames(astronaut, box, options, seed=4)]
    assert len(first) == options.frames == 10 and first[0].shape == (480, 640, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    widths = []
    for frame in first:
        faces = pipeline.faces(frame)
        pipeline.wipe()
        assert len(faces) <= 1  # the scene around the photo adds no face
        widths += [float(f.detection.box[2] - f.detection.box[0]) for f in faces]
    assert len(widths) >= 3 and widths[-1] > 1.15 * widths[0]  # walking up (the smallest go undetected)


def test_the_unit_visit_rule_is_the_calibrated_one_and_leaves_no_descriptor_behind():
    """The door's unit scoring (match.visit_scoring = "unit") gives the distance the calibration's
    UnitRule scored, and its buffers are zeroed once decided."""
    from consentry.match import Gallery, MatchPolicy

    rng = np.random.default_rng(21)
    templates = {s: 1.4 * vv._unit(rng.standard_normal((5, 128))) + 0.3 * rng.standard_normal(128) for s in "ab"}
    gallery = Gallery("m", MatchPolicy(threshold=0.4))
    gallery.replace([(s, v) for s, vs in templates.items() for v in vs])
    frames = templates["a"].mean(axis=0) + 0.2 * rng.standard_normal((3, 128))
    c = np.stack([vv.centroids(templates[s], vv.UnitRule()) for s in "ab"])
    expected, _ = vv.UnitRule().visit(vv._unit(frames), np.ones(3), c, vv.Schedule())
    visit = Visit(VisitOptions(min_frames=3, frames=8, threshold=float(expected[0, 0]) + 1e-4, scoring="unit"))
    verdicts = [visit.add(f.astype(np.float32), "m", 80.0, float(t), gallery) for t, f in enumerate(frames)]
    assert verdicts[-1].state == "match" and verdicts[-1].subject == "a"
    assert verdicts[-1].distance == pytest.approx(expected[0, 0], abs=1e-3)
    assert not any(np.any(b) for b in visit.buffers()) and not any(np.any(b) for b in gallery.scratch_buffers())
    with pytest.raises(Exception, match="threshold"):
        VisitOptions(scoring="unit")

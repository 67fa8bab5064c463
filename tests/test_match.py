"""Gallery: open-set 1:N, margin, 1:1, removal, and its own scratch buffers."""

from __future__ import annotations

import numpy as np
import pytest
from consentry.errors import ConfigError
from consentry.match import Decision, Gallery, MatchPolicy, UnknownSubject

pytestmark = pytest.mark.pi  # also run on arm64 by `make pi-check`

MODEL = "dlib_resnet_v1_int8"


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def at_distance(base: np.ndarray, d: float, rng: np.random.Generator) -> np.ndarray:
    """A vector exactly ``d`` (L2) from ``base``, in a random direction."""
    return (base + d * unit(rng)).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_identify_matches_within_threshold_and_says_unknown_beyond(rng):
    alice, bob = unit(rng) * 1.4, unit(rng) * 1.4
    gallery = Gallery(MODEL, MatchPolicy(threshold=0.6, scoring="nearest"))
    gallery.replace([("s-alice", alice), ("s-bob", bob), ("s-alice", at_distance(alice, 0.2, rng))])
    assert gallery.subjects == ("s-alice", "s-bob") and len(gallery) == 3
    hit = gallery.identify(at_distance(alice, 0.3, rng), MODEL)
    assert hit.decision == "match" and hit.subject == "s-alice" and hit.distance <= 0.3 + 1e-4


def test_centroid_scoring_measures_the_distance_to_the_mean_of_a_subjects_templates(rng):
    alice, bob = unit(rng) * 1.4, unit(rng) * 1.4
    spread = [at_distance(alice, 0.5, rng) for _ in range(5)]
    gallery = Gallery(MODEL, MatchPolicy(threshold=0.45))
    gallery.replace([("s-bob", bob), *(("s-alice", t) for t in spread)])
    probe = at_distance(alice, 0.05, rng)
    mean = np.mean(spread, axis=0)
    hit = gallery.identify(probe, MODEL)
    assert hit.subject == "s-alice" and abs(hit.distance - np.linalg.norm(probe - mean)) < 1e-3
    assert abs(gallery.verify(probe, MODEL, "s-alice").distance - hit.distance) < 1e-4
    # No single template is within 0.45 of the probe: nearest scoring refuses what the mean accepts.
    nearest = Gallery(MODEL, MatchPolicy(threshold=0.45, scoring="nearest"))
    nearest.replace([("s-bob", bob), *(("s-alice", t) for t in spread)])
    assert nearest.identify(probe, MODEL) == Decision("unknown")
    # A per-call threshold (a visit's) replaces the policy's, in both directions.
    assert gallery.identify(probe, MODEL, threshold=hit.distance - 0.01) == Decision("unknown")
    with pytest.raises(ConfigError, match="scoring"):
        MatchPolicy(scoring="median")


@pytest.mark.parametrize("delta", [1e-3, 1e-2])
def test_stranger_just_above_threshold_is_unknown_with_no_figures(rng, delta):
    enrolled = unit(rng) * 1.4
    gallery = Gallery(MODEL, MatchPolicy(threshold=0.6))
    gallery.replace([("s-1", enrolled)])
    stranger = at_distance(enrolled, 0.6 + delta, rng)
    assert gallery.identify(stranger, MODEL) == Decision("unknown", None, None)
    inside = gallery.identify(at_distance(enrolled, 0.6 - delta, rng), MODEL)
    assert inside.decision == "match" and inside.subject == "s-1"


def test_margin_turns_an_ambiguous_face_into_unknown(rng):
    a = unit(rng) * 1.4
    b = at_distance(a, 0.1, rng)  # two enrolled people whose templates nearly coincide
    probe = at_distance(a, 0.3, rng)
    loose = Gallery(MODEL, MatchPolicy(threshold=0.6, margin=0.0))
    strict = Gallery(MODEL, MatchPolicy(threshold=0.6, margin=0.2))
    for g in (loose, strict):
        g.replace([("s-a", a), ("s-b", b)])
    assert loose.identify(probe, MODEL).matched
    assert strict.identify(probe, MODEL) == Decision("unknown")


def test_verify_is_one_to_one_and_reports_only_the_claim(rng):
    a, b = unit(rng) * 1.4, unit(rng) * 1.4
    gallery = Gallery(MODEL)
    gallery.replace([("s-a", a), ("s-b", b)])
    yes = gallery.verify(at_distance(a, 0.4, rng), MODEL, "s-a")
    no = gallery.verify(at_distance(a, 0.4, rng), MODEL, "s-b")
    assert yes.matched and yes.subject == "s-a"
    assert not no.matched and no.subject == "s-b" and no.distance > 0.6
    with pytest.raises(UnknownSubject, match="s-zzz"):
        gallery.verify(a, MODEL, "s-zzz")


def test_removed_subject_never_matches_and_its_rows_are_zeroed(rng):
    a = unit(rng) * 1.4
    gallery = Gallery(MODEL)
    gallery.replace([("s-a", a), ("s-b", unit(rng))])
    old_matrix, old_centroids = gallery._matrix, gallery._centroids
    assert gallery.remove("s-a") and not gallery.remove("s-a")
    assert not np.any(old_matrix), "the replaced matrix still holds the removed template"
    assert not np.any(old_centroids), "the replaced centroids still hold the removed subject's mean"
    assert gallery.identify(a, MODEL) == Decision("unknown")


def test_scratch_is_zeroed_after_every_search_and_models_never_mix(rng):
    gallery = Gallery(MODEL)
    gallery.replace([("s-a", unit(rng)), ("s-b", unit(rng))])
    gallery.identify(unit(rng), MODEL)
    assert all(not np.any(buf) for buf in gallery.scratch_buffers())
    with pytest.raises(ConfigError, match="cannot be compared"):
        gallery.identify(unit(rng), "dlib_resnet_v1_float32")
    assert Gallery(MODEL).identify(unit(rng), MODEL) == Decision("unknown")


def test_input_vectors_are_copied_not_zeroed(rng):
    v = unit(rng)
    keep = v.copy()
    Gallery(MODEL).replace([("s", v)])
    assert np.array_equal(v, keep)


def test_bad_policy_and_template_are_refused(rng):
    with pytest.raises(ConfigError):
        MatchPolicy(threshold=0.0)
    with pytest.raises(ValueError, match="finite"):
        Gallery(MODEL).replace([("s", np.full(128, np.nan, np.float32))])


def test_removing_subjects_while_another_thread_searches_is_safe(rng):
    import threading

    gallery = Gallery(MODEL)
    people = [(f"s-{i}", unit(rng)) for i in range(300)]
    gallery.replace(people)
    errors: list[BaseException] = []

    def search() -> None:
        try:
            for i in range(300):
                gallery.identify(people[i][1], MODEL)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    worker = threading.Thread(target=search)
    worker.start()
    for subject, _ in people[::2]:
        gallery.remove(subject)
    worker.join()
    assert errors == [] and len(gallery.subjects) == 150

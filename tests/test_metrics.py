"""Evaluation metrics on hand-made distances whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from consentry.evaluate import metrics


def test_threshold_for_fmr_lets_through_at_most_the_allowed_impostors():
    impostor = np.arange(1000) / 1000.0 + 0.5  # 0.5 .. 1.499
    t = metrics.threshold_for_fmr(impostor, 1e-2)
    assert np.sum(impostor <= t) == 10 and t < impostor[10]
    t0 = metrics.threshold_for_fmr(impostor, 1e-4)  # fewer than one impostor allowed
    assert np.sum(impostor <= t0) == 0
    assert metrics.rule_of_three(3000) == pytest.approx(1e-3)


def test_perfect_separation():
    gen, imp = np.array([0.1, 0.2, 0.3]), np.array([0.7, 0.8, 0.9])
    assert metrics.auc(gen, imp) == 1.0
    assert metrics.eer(gen, imp) == 0.0
    assert metrics.tar_at_far(gen, imp, 1e-2)["tar"] == 1.0
    assert not metrics.tar_at_far(gen, imp, 1e-2)["supported"]


def test_auc_counts_ties_half_and_reversal_zero():
    assert metrics.auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert metrics.auc(np.array([0.9]), np.array([0.1])) == 0.0


def test_best_threshold_and_kfold_count_failures_as_errors():
    d = np.array([0.2, 0.3, 0.4, 0.7, 0.8, 0.9] * 10)
    same = np.array([True, True, True, False, False, False] * 10)
    assert 0.4 < metrics.best_threshold(d, same) < 0.7
    valid = np.ones(d.size, bool)
    folds = np.arange(d.size) % 10
    assert metrics.kfold_accuracy(d, same, valid, folds)["mean"] == 1.0
    valid[:6] = False  # one image failed in six pairs: those pairs are wrong in every reading
    assert metrics.kfold_accuracy(d, same, valid, folds)["mean"] == pytest.approx(54 / 60)
    assert metrics.accuracy(d, same, valid, 0.5) == pytest.approx(54 / 60)


def test_open_set_report():
    mated = [("a", "a", 0.3), ("b", "b", 0.5), ("c", "a", 0.4), ("d", "d", 0.9)]
    nonmated = np.linspace(0.6, 1.2, 400)
    report = metrics.open_set_report(mated, nonmated)
    assert report["rank1"] == 0.75
    assert report["dir_at_fpir"]["1e-2"]["dir"] == 0.5  # a and b are in, c is wrong, d too far
    assert report["dir_at_fpir"]["1e-2"]["supported"] and not report["dir_at_fpir"]["1e-3"]["supported"]


def test_subject_level_scores_take_the_minimum_over_each_subjects_templates():
    from consentry.evaluate.verify import subject_scores

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 128)).astype(np.float32)
    ids = np.repeat(np.array(["a", "b", "c"]), 4)
    vecs = centres[np.repeat(np.arange(3), 4)] + 0.01 * rng.standard_normal((12, 128)).astype(np.float32)
    genuine, impostor = subject_scores(ids, vecs, templates=2)
    assert genuine.size == 3 * 2 and impostor.size == 12 * 2
    assert genuine.max() < 0.5 < impostor.min()

"""`consentry eval`, `calibrate` and `bench` end to end on real models and real faces.

The shared data is read in place; the LFW-layout folder is made of symlinks in a temporary
directory, so nothing of it is copied. Slow full-set runs are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import cv2
import pytest
from consentry.cli import main
from consentry.evaluate.datasets import parse_pairs

from tests.conftest import labelled

KEYS = {"accuracy_10fold", "accuracy_at_threshold", "threshold", "tar_at_far", "eer", "auc",
        "failures_to_acquire", "pairs"}


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def lfw_layout(tmp_path: Path, rows: list[tuple[Path, str]]) -> tuple[Path, Path]:
    """Symlink images as ROOT/name/name_000n.jpg and write a 2-fold pairs file."""
    root = tmp_path / "lfw"
    by_id: dict[str, list[Path]] = {}
    for path, ident in rows:
        by_id.setdefault(ident, []).append(path)
    for ident, paths in by_id.items():
        (root / ident).mkdir(parents=True)
        for n, p in enumerate(paths, 1):
            os.symlink(p, root / ident / f"{ident}_{n:04d}.jpg")
    names = sorted(i for i, p in by_id.items() if len(p) >= 2)
    same = [f"{n} 1 2" for n in names]
    diff = [f"{a} 1 {b} 1" for a, b in zip(names, names[1:] + names[:1], strict=True)]
    half = len(same) // 2
    lines = [f"2 {half}"] + same[:half] + diff[:half] + same[half:2 * half] + diff[half:2 * half]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return pairs, root


def test_pairs_parser_reads_lfw_format(tmp_path):
    f = tmp_path / "pairs.txt"
    f.write_text("2 1\nAl 1 2\nAl 1 Bo 3\nBo 1 3\nAl 2 Bo 1\n")
    pairs = parse_pairs(f, tmp_path)
    assert list(pairs.same) == [True, False, True, False] and list(pairs.fold) == [0, 0, 1, 1]
    assert pairs.paths[0] == tmp_path / "Al" / "Al_0001.jpg"


def test_eval_pairs_on_real_faces_with_an_unreadable_image(faces_dir, tmp_path, capsys):
    pairs, root = lfw_layout(tmp_path, labelled(faces_dir / "celeba")[:200])
    first = sorted(root.iterdir())[0]
    broken = first / f"{first.name}_0001.jpg"
    broken.unlink()
    broken.write_bytes(b"not a jpeg")
    plot = tmp_path / "roc.png"
    result = run_json(capsys, "eval", "--pairs", str(pairs), "--root", str(root), "--json", "--plot", str(plot))
    assert result.keys() >= KEYS
    assert set(result["tar_at_far"]) == {"1e-2", "1e-3"}
    assert result["failures_to_acquire"]["unreadable"] == 1 and result["failed_pairs"] >= 1
    assert result["accuracy_10fold"]["mean"] > 0.7  # 20-odd noisy CelebA pairs: a smoke test
    assert cv2.imread(str(plot)) is not None


def test_eval_dataset_reports_verification_and_open_set(faces_dir, capsys):
    result = run_json(capsys, "eval", "--dataset", str(faces_dir / "deepface"), "--json")
    assert result.keys() >= KEYS
    assert result["accuracy_10fold"]["mean"] >= 0.97
    assert result["failures_to_acquire"]["images"] == 0
    open_set = result["open_set"]
    assert open_set["rank1"] >= 0.95 and open_set["nonmated_probes"] > 0
    assert {"1e-2", "1e-3"} == set(open_set["dir_at_fpir"])


def test_calibrate_writes_threshold_with_provenance(faces_dir, tmp_path, capsys):
    config = tmp_path / "consentry.toml"
    result = run_json(capsys, "calibrate", "--dataset", str(faces_dir / "deepface"), "--fmr", "1e-2",
                      "--json", "--write", str(config))
    assert result["measured_fmr"] <= 1e-2 and result["supported"]
    assert result["min_supported_fmr"] == pytest.approx(3 / result["impostor_comparisons"])
    written = tomllib.loads(config.read_text())["match"]
    assert written["threshold"] == result["threshold"] and written["calibrated_on"] == "deepface"
    assert written["target_fmr"] == 1e-2 and written["calibrated_at"] == result["date"]
    assert main(["config", "check", str(config)]) == 0


def test_calibrate_visits_measures_false_grants_per_stranger_visit_and_writes_the_visit_threshold(
        faces_dir, tmp_path, capsys):
    """ORL (40 people x 10 greyscale images): galleries of 30 in rotation, strangers the rest
    and the bona fide shared clips' frame runs (nobody in them is in ORL)."""
    config = tmp_path / "consentry.toml"
    result = run_json(capsys, "calibrate", "--dataset", str(faces_dir / "orl"), "--visits", "--visit-model", "stills",
                      "--fmr", "1e-2", "--gallery-size", "30", "--templates", "5", "--json", "--write", str(config))
    assert result["measured_false_grant_rate"] <= 1e-2
    assert result["supported"] == (result["min_supported_rate"] <= 1e-2)
    assert result["stranger_visits"]["calibration_set"] > 0 and result["genuine_visits"] > 0
    assert 0 <= result["fnmr_per_visit"] <= 1 and (result["min_frames"], result["frames"]) == (3, 8)
    written = tomllib.loads(config.read_text())["match"]
    assert written["visit_threshold"] == result["threshold"]
    assert main(["config", "check", str(config)]) == 0


def test_calibrate_visits_on_generated_approach_visits_counts_every_window_at_the_frame_rate(
        faces_dir, tmp_path, capsys, monkeypatch):
    """Generated approach clips of 10 ORL people (5 fps keeps it fast), galleries of 6 in
    rotation; the JSON the issue asks for, and --write of the visit threshold."""
    monkeypatch.setenv("CONSENTRY_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "consentry.toml"
    args = ["calibrate", "--dataset", str(faces_dir / "orl"), "--visits", "--identities", "10", "--gallery-size", "6",
            "--templates", "5", "--fps", "5", "--repeats", "2", "--fmr", "1e-1", "--json"]
    result = run_json(capsys, *args, "--write", str(config))
    assert {"stated_rate", "gallery_size", "fps", "windows_per_visit", "threshold", "fnmr_per_visit",
            "visits"} <= set(result)
    assert (result["stated_rate"], result["gallery_size"], result["fps"]) == (0.1, 6, 5.0)
    assert result["windows_per_visit"] == 15 - 3 + 1  # 3 s at 5 fps, from the 3rd good frame
    assert result["visits"]["genuine"] > 0 and result["visits"]["stranger"] > 0
    assert result["measured_false_grant_rate"] <= 0.1 and 0 <= result["fnmr_per_visit"] <= 1
    assert tomllib.loads(config.read_text())["match"]["visit_threshold"] == result["threshold"]
    rules = run_json(capsys, *args, "--compare-rules")["rules"]
    assert set(rules) == {"mean", "weighted", "unit", "sequential"}
    assert len({r["visits"]["stranger"] for r in rules.values()}) == 1  # the same visits for every rule


def test_compare_scoring_reports_every_rule_on_the_same_draws(faces_dir, capsys):
    result = run_json(capsys, "calibrate", "--dataset", str(faces_dir / "orl"), "--compare-scoring",
                      "--templates", "5", "--json")
    rules = result["per_subject_comparison"]
    assert set(rules) == {"nearest", "mean_distance", "centroid"}
    assert len({r["impostor"] for r in rules.values()}) == 1  # the same comparisons for every rule
    assert all(0 <= r["1e-3"]["fnmr"] <= 1 for r in rules.values())


@pytest.mark.slow
def test_celeba_accuracy_matches_the_shared_baseline(faces_dir, capsys):
    result = run_json(capsys, "eval", "--dataset", str(faces_dir / "celeba"), "--json")
    assert result["accuracy_10fold"]["mean"] >= 0.93  # measured 0.9371; dlib's own pipeline 0.8722

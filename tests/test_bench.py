"""`consentry bench` over a folder of frames (package images; timings are printed, not asserted)."""

from __future__ import annotations

import json

import cv2
from consentry.cli import main
from skimage import data


def test_frame_bench_reports_every_stage(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "b.png"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    (tmp_path / "c.jpg").write_bytes(b"corrupt")
    assert main(["bench", "--images", str(tmp_path), "--gallery-size", "1000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 2 and result["faces"] == 1
    assert {"decode", "detect", "landmarks", "quality", "refine", "align", "embed", "match", "frame",
            "detect_no_face"} <= result["stages"].keys()
    assert result["search"]["gallery_size"] == 1000 and result["peak_rss_mb"] > 0
    run = result["run"]  # `consentry run` itself, as a child process with 1000 enrolled
    assert run["enrolled"] == run["loaded"] == 1000 and run["frames"] == 2 and 50 < run["peak_rss_mb"] < 1000
    assert "ratio_vs_face_recognition" not in result
    macs = result["macs"]
    assert 260 < macs["models"]["dlib_resnet_v1_int8"]["mmac"] < 280  # the model card's ~271 M multiply-adds
    assert macs["models"]["dlib_resnet_v1_int8"]["invokes_per_face"] == 2  # chip and mirror
    assert 0 <= macs["pipeline_share"] < 1 and macs["frame_over_models"] >= 1


def test_macs_are_read_from_the_flatbuffer(manifest):
    from consentry.evaluate.macs import model_macs

    detector = model_macs(manifest.get("blazeface_short_range").path)
    assert set(detector["by_op"]) == {"CONV_2D", "DEPTHWISE_CONV_2D"} and 25e6 < detector["macs"] < 40e6


def test_pipeline_comparison_times_both_modes_on_the_same_clip(faces_dir):
    from consentry.config import Settings
    from consentry.evaluate.door_bench import pipeline_comparison

    result = pipeline_comparison(Settings(), faces_dir / "video" / "webcam_person_a_2.wmv", limit=8, gallery_size=10)
    for mode in ("serial", "detect-ahead"):
        assert result[mode]["saturated_fps"] > 0 and result[mode]["arrival_to_decision_ms"]["runs"] >= 7
    assert result["ratio_fps"] > 0 and result["frames"] == 8

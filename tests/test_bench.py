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
    assert "ratio_vs_face_recognition" not in result

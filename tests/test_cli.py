"""The CLI on real models and images: JSON contracts, exit codes and clear errors."""

import json

import cv2
import numpy as np
import pytest
from consentry.cli import main
from consentry.config import Settings


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def astronaut_file(tmp_path, astronaut):
    path = tmp_path / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    return path


def test_detect_json_contract(capsys, astronaut_file):
    code, out, _ = _run(capsys, "detect", str(astronaut_file), "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["width"], doc["height"]) == (512, 512)
    assert len(doc["faces"]) == 1
    face = doc["faces"][0]
    assert len(face["box"]) == 4 and len(face["keypoints"]) == 6 and 0 < face["score"] <= 1


def test_compare_same_image_matches(capsys, astronaut_file):
    code, out, _ = _run(capsys, "compare", str(astronaut_file), str(astronaut_file), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["match"] is True and doc["distance"] < 0.05
    assert doc["model"] == "dlib_resnet_v1_int8+flip" and doc["threshold"] == Settings().match.threshold


def test_compare_without_a_face_fails_clearly(capsys, astronaut_file, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 128, np.uint8))
    code, out, err = _run(capsys, "compare", str(astronaut_file), str(blank), "--json")
    assert code == 2 and out == ""
    assert "no usable face" in err and str(blank) in err


def test_corrupt_and_missing_images_fail_clearly(capsys, tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, _, err = _run(capsys, "detect", str(bad), "--json")
    assert code == 2 and "not a readable image" in err
    code, _, err = _run(capsys, "detect", str(tmp_path / "missing.jpg"))
    assert code == 2 and "cannot read image" in err


def test_compare_on_shared_faces(capsys, faces_dir):
    ex = faces_dir / "examples"
    code, out, _ = _run(capsys, "compare", str(ex / "obama.jpg"), str(ex / "obama2.jpg"), "--json")
    same = json.loads(out)
    code2, out, _ = _run(capsys, "compare", str(ex / "obama.jpg"), str(ex / "biden.jpg"), "--json")
    other = json.loads(out)
    assert code == code2 == 0
    assert same["distance"] < other["distance"]
    assert other["match"] is False
    for doc in (same, other):
        assert doc["match"] == (doc["distance"] <= doc["threshold"])


def test_config_check_refuses_unknown_keys(capsys, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[vision]\ndetector = "blazeface_full_range"\n')
    assert _run(capsys, "config", "check", str(good))[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[vision]\ndetecter = "blazeface_full_range"\n')
    code, _, err = _run(capsys, "config", "check", str(bad))
    assert code == 2 and "detecter" in err


def test_run_demo_source_runs_and_stops(capsys, tmp_path):
    code, out, _ = _run(capsys, "--home", str(tmp_path), "run", "--source", "demo", "--frames", "3")
    assert code == 0 and "profile door" in out and "everyone is unknown" in out and "keys init" in out


def test_unknown_source_is_a_config_error(capsys):
    code, _, err = _run(capsys, "run", "--source", "webcam", "--frames", "1")
    assert code == 2 and "unknown frame source" in err


def test_config_check_explains_every_setting(capsys):
    from pathlib import Path

    shipped = Path(__file__).parents[1] / "deploy" / "consentry.toml"
    code, out, _ = _run(capsys, "config", "check", str(shipped), "--explain")
    assert code == 0 and "[mqtt]" in out and "threshold = 0.3978" in out and "visit_threshold = 0.2356" in out
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith(" "):
            assert lines[i + 1].strip(), f"setting without a description: {line}"

"""`consentry enroll --video`: templates spread over a clip of the person alone, and an
enrolment from photos that says what it lacks. Real models, real vault, the shared clips."""

from __future__ import annotations

import json

import cv2
import numpy as np
from consentry.cli import main

from tests.conftest import ROOT

CONSENT = str(ROOT / "deploy" / "consent" / "door.txt")


def enrol(capsys, home, *argv: str) -> tuple[int, dict | None, str]:
    if not (home / "master.key").exists():
        assert main(["--home", str(home), "keys", "init"]) == 0
        capsys.readouterr()
    code = main(["--home", str(home), "enroll", "--name", "P", "--consent", CONSENT, "--yes", "--json", *argv])
    out = capsys.readouterr()
    return code, json.loads(out.out) if code == 0 else None, out.err


def subjects(capsys, home) -> list:
    main(["--home", str(home), "subjects", "list", "--json"])
    return json.loads(capsys.readouterr().out)


def write_clip(path, stills: list[np.ndarray], frames_each: int = 12) -> None:
    h, w = stills[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (w, h))
    for still in stills:
        for k in range(frames_each):
            shifted = np.roll(cv2.resize(still, (w, h)), k, axis=1)
            writer.write(cv2.cvtColor(shifted, cv2.COLOR_RGB2BGR))
    writer.release()


def test_a_clip_of_one_person_gives_templates_spread_over_it(tmp_path, faces_dir, capsys):
    home = tmp_path / "home"
    code, out, err = enrol(capsys, home, "--video", str(faces_dir / "video" / "webcam_person_a_1.wmv"))
    assert code == 0 and out["source"] == "video" and out["templates"] == 5
    assert out["video"]["usable"] > 200 and "photos only" not in err and "advice" not in out
    assert [s["id"] for s in subjects(capsys, home)] == [out["subject"]]


def test_a_clip_with_other_people_or_two_people_in_turn_is_refused(tmp_path, faces_dir, capsys):
    home = tmp_path / "home"
    code, _, err = enrol(capsys, home, "--video", str(faces_dir / "video" / "multi_face.avi"))
    assert code == 2 and "another face appears" in err
    ex = faces_dir / "examples"
    stills = [cv2.cvtColor(cv2.imread(str(ex / name)), cv2.COLOR_BGR2RGB) for name in ("obama.jpg", "biden.jpg")]
    clip = tmp_path / "two.avi"
    write_clip(clip, stills)
    code, _, err = enrol(capsys, home, "--video", str(clip))
    assert code == 2 and "not all show the same person" in err
    assert subjects(capsys, home) == []


def test_an_enrolment_from_photos_only_says_so_and_recommends_a_kiosk_capture(tmp_path, faces_dir, capsys):
    code, out, err = enrol(capsys, tmp_path / "home", str(faces_dir / "examples" / "obama.jpg"))
    assert code == 0 and out["source"] == "photos" and "kiosk" in out["advice"]
    assert "enrolled from photos only" in err and "kiosk" in err

"""Invariants that need processes, real faces or the whole CLI: power cuts mid-write,
nothing written while identifying a stranger, unlinkable templates across deployments, and
the documented lifecycle walkthrough."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from consentry.cli import main
from consentry.config import Settings
from consentry.enrolment import enrolment_templates, identify_image
from consentry.match import MatchPolicy, gallery_from_vault
from consentry.vault import KeyFile, Vault

from tests.privacy import recorded_writes
from tests.test_vault import consent, vectors

LOOP = textwrap.dedent("""
    import sys, numpy as np
    from consentry.vault import KeyFile, Vault, ConsentRecord
    consent = ConsentRecord("c", "1", "ab" * 32, "2026-11-28T00:00:00+00:00", "cli", "t", 365, "adult", ("door",))
    vault = Vault(sys.argv[1], KeyFile(sys.argv[2]), create=True)
    i = 0
    while True:
        rng = np.random.default_rng(i)
        sid = vault.enroll(f"P{i}", consent, [rng.standard_normal(128).astype(np.float32) for _ in range(3)], "m")
        if i % 3 == 2:
            vault.revoke(sid)
        i += 1
        print(i, flush=True)
""")


def test_sigkill_mid_write_leaves_every_subject_whole_or_absent(tmp_path):
    keyfile = KeyFile(tmp_path / "master.key")
    keyfile.create()
    home = tmp_path / "home"
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    rng = np.random.default_rng(0)
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, str(script), str(home), str(keyfile.path)],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # the vault is open and writing
        time.sleep(float(rng.uniform(0.0, 0.15)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with Vault(home, keyfile, create=True) as vault:
            assert vault.integrity_check() == "ok"
            loaded = vault.load_templates("m")
            counts: dict[str, int] = {}
            for sid, _ in loaded.templates:
                counts[sid] = counts.get(sid, 0) + 1
            assert not loaded.damaged
            assert {s.id for s in vault.subjects()} == set(counts) and set(counts.values()) <= {3}
            assert vault.audit.verify().ok
    assert len(counts) > 5


def test_identifying_a_stranger_writes_nothing(tmp_path, pipeline, astronaut):
    keyfile = KeyFile(tmp_path / "master.key")
    keyfile.create()
    image = tmp_path / "stranger.png"
    cv2.imwrite(str(image), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    with Vault(tmp_path / "home", keyfile, create=True) as vault:
        vault.enroll("Someone Else", consent(), vectors(1), pipeline.embedder.name)
        gallery = gallery_from_vault(vault, pipeline.embedder.name, MatchPolicy(Settings().match.threshold)).gallery
        before = {p: p.read_bytes() for p in (tmp_path / "home").iterdir()}
        with recorded_writes() as writes:
            faces = identify_image(pipeline, gallery, image)
        after = {p: p.read_bytes() for p in (tmp_path / "home").iterdir()}
    assert [f["decision"] for f in faces] == ["unknown"] and faces[0]["distance"] is None
    assert writes == [], f"identifying a stranger wrote: {writes}"
    assert before == after


def cross_home_distances(a: list[tuple[str, np.ndarray]], b: list[tuple[str, np.ndarray]]):
    va, vb = np.stack([v for _, v in a]), np.stack([v for _, v in b])
    d = np.linalg.norm(va[:, None] - vb[None], axis=2)
    same = np.eye(len(va), dtype=bool)
    return d[same], d[~same]


def auc(low: np.ndarray, high: np.ndarray) -> float:
    return float(np.mean(low[:, None] < high[None]))


def enrol_both(tmp_path, items: list[list[np.ndarray]], model: str):
    """Enrol the same vectors on two sites; each site's stored (transformed) first template
    per person, in enrolment order."""
    sites = []
    for name in ("site-a", "site-b"):
        keyfile = KeyFile(tmp_path / f"{name}.key")
        keyfile.create()
        with Vault(tmp_path / name, keyfile, create=True) as vault:
            ids = [vault.enroll(f"P{i}", consent(), vecs, model) for i, vecs in enumerate(items)]
            stored = dict(reversed(vault.load_templates(model).templates))
        sites.append([(sid, stored[sid]) for sid in ids])
    return sites


def test_the_same_face_on_two_deployments_cannot_be_linked_synthetic(tmp_path):
    rng = np.random.default_rng(5)
    common = rng.standard_normal(128).astype(np.float32) * 0.06  # dlib descriptors share a mean direction
    items = [[common + rng.standard_normal(128).astype(np.float32) * 0.05] for _ in range(40)]
    a, b = enrol_both(tmp_path, items, "m")
    same, diff = cross_home_distances(a, b)
    raw = np.stack([v[0] for v in items])
    within = np.linalg.norm(np.stack([v for _, v in a])[0] - np.stack([v for _, v in a])[1])
    assert within == pytest.approx(np.linalg.norm(raw[0] - raw[1]), rel=1e-5)  # matching is unchanged
    assert 0.3 < auc(same, diff) < 0.7, "same-face pairs across sites stand out from different faces"


def test_the_same_face_on_two_deployments_cannot_be_linked_real(tmp_path, faces_dir, pipeline):
    from tests.conftest import labelled

    first: dict[str, object] = {}
    for path, ident in labelled(faces_dir / "celeba"):
        first.setdefault(ident, path)
    items = []
    for path in list(first.values())[:40]:
        vecs, _ = enrolment_templates(pipeline, [path])
        if vecs:
            items.append(vecs)
    a, b = enrol_both(tmp_path, items, pipeline.embedder.name)
    same, diff = cross_home_distances(a, b)
    assert 0.3 < auc(same, diff) < 0.7
    assert same.min() > Settings().match.threshold, "a cross-site pair would pass the match threshold"


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_lifecycle_walkthrough_from_docs_vault_md(tmp_path, faces_dir, capsys):
    ex = faces_dir / "examples"
    home = ["--home", str(tmp_path / "home")]
    consent_file = os.path.join(os.path.dirname(__file__), "..", "deploy", "consent", "door.txt")
    assert run_cli(capsys, *home, "keys", "init")[0] == 0
    code, out = run_cli(capsys, *home, "enroll", "--name", "Barack Obama", "--consent", consent_file, "--yes",
                        "--json", str(ex / "obama.jpg"), str(ex / "obama2.jpg"), str(faces_dir / "noface" /
                                                                                      "skimage_coffee.png"))
    obama = json.loads(out)
    assert code == 0 and obama["templates"] == 2 and obama["rejected"][0]["reason"] == "no_face"
    code, out = run_cli(capsys, *home, "enroll", "--name", "Joe Biden", "--consent", consent_file, "--yes",
                        "--json", str(ex / "biden.jpg"), str(ex / "knn_train__biden__biden2.jpg"))
    biden = json.loads(out)
    listed = json.loads(run_cli(capsys, *home, "subjects", "list", "--json")[1])
    assert {s["id"] for s in listed} == {obama["subject"], biden["subject"]}
    assert all("name" not in s for s in listed) and "Obama" not in json.dumps(listed)
    seen = json.loads(run_cli(capsys, *home, "identify", str(ex / "obama-720p.jpg"), "--json")[1])
    assert [f["subject"] for f in seen["faces"]] == [obama["subject"]]
    stranger = json.loads(run_cli(capsys, *home, "identify", str(ex / "alex-lacamoire.png"), "--json")[1])
    assert [(f["decision"], f["subject"], f["distance"]) for f in stranger["faces"]] == [("unknown", None, None)]
    receipt = json.loads(run_cli(capsys, *home, "revoke", obama["subject"], "--json")[1])
    assert receipt["subject"] == obama["subject"] and receipt["destroyed"]["templates"] == 2
    after = json.loads(run_cli(capsys, *home, "identify", str(ex / "obama-720p.jpg"), "--json")[1])
    assert [f["decision"] for f in after["faces"]] == ["unknown"]
    code, out = run_cli(capsys, *home, "audit", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    assert "three years" in run_cli(capsys, *home, "retention-schedule")[1]

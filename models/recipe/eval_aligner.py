"""Measure our aligner against dlib's: descriptor distance of our chip vs dlib's chip.

For each shared face where dlib and we both find a face, both chips are embedded with
dlib's own network, so only the alignment differs. Prints landmark error per dlib point
(relative to the eye distance) and the mean/median/95th-percentile descriptor distance.
Usage: python models/recipe/eval_aligner.py [--data DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from consentry.runtime import Manifest, Model
from consentry.vision.align import extract_chip
from consentry.vision.detector import BlazeFaceDetector
from consentry.vision.image_io import read_image
from consentry.vision.landmarks import FaceMesh

sys.path.insert(0, str(Path(__file__).parent))
from dlib_reference import DlibReference  # noqa: E402

SETS = ("celeba", "deepface", "examples", "digiface")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "../shared/data/faces")
    ap.add_argument("--limit", type=int, default=60, help="images per set")
    args = ap.parse_args()
    manifest = Manifest.load()
    det = BlazeFaceDetector(Model(manifest.get("blazeface_short_range")))
    mesh = FaceMesh(Model(manifest.get("face_mesh")))
    ref = DlibReference()
    dists, errs = [], []
    for name in SETS:
        with open(args.data / name / "labels.csv") as fh:
            rows = list(csv.DictReader(fh))[: args.limit]
        for row in rows:
            rgb = read_image(args.data / name / row["file"])
            theirs = ref.five_points(rgb)
            ours = [lm for d in det.detect(rgb) if (lm := mesh.landmarks(rgb, d)) is not None]
            if len(theirs) != 1 or not ours:
                continue
            t = theirs[0]
            o = min(ours, key=lambda lm: np.abs(lm.five - t).sum())
            eye = np.linalg.norm(t[0] - t[2])
            errs.append(np.linalg.norm(o.five - t, axis=1) / eye)
            a = ref.descriptor(ref.chip(rgb, t))
            b = ref.descriptor(extract_chip(rgb, o.five))
            c = ref.descriptor(extract_chip(rgb, t))
            dists.append((np.linalg.norm(a - b), np.linalg.norm(a - c)))
    d = np.array(dists)
    e = np.array(errs)
    print(f"faces compared: {len(d)}")
    print("landmark error / eye distance, per dlib point (mean):", np.round(e.mean(axis=0), 4))
    for label, col in (("our landmarks + our chip", 0), ("dlib landmarks + our chip", 1)):
        v = d[:, col]
        print(f"{label}: descriptor L2 to dlib mean {v.mean():.4f} median {np.median(v):.4f} "
              f"p95 {np.percentile(v, 95):.4f} max {v.max():.4f}")


if __name__ == "__main__":
    main()

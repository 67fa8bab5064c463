"""Measure our aligner against dlib's: descriptor distance of our chip vs dlib's chip.

Held-out faces only: the shared images the int8 embedder was not calibrated on (celeba
beyond the first two per identity, deepface, examples). For each image where dlib's HOG
detector finds exactly one face and our detector finds it too, the columns are

- ``pipeline int8``: the appliance's path (mesh, dlib's predictor from the mesh's box, our
  chip, the int8 embedder, no mirror) against dlib's descriptor of dlib's own chip: the
  figure the embedder's fidelity bound is stated in;
- ``pipeline points, dlib net``: our chip from the same points, embedded by dlib: only the
  landmarks and the alignment differ;
- ``dlib points, dlib net``: our chip from dlib's own points: only the warp differs.

Prints landmark error per dlib point (relative to the eye distance) and the mean, median,
95th and 99th percentile and max of each distance.
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
from consentry.vision.embedder import FaceEmbedder
from consentry.vision.pipeline import FacePipeline, VisionOptions

sys.path.insert(0, str(Path(__file__).parent))
from dlib_reference import DlibReference  # noqa: E402

SETS = ("celeba", "deepface", "examples")
# build_embedder.CALIBRATION_SETS (importing it would load TensorFlow).
CALIBRATION_SETS = {"celeba": 2, "digiface": 4, "orl": 1, "yale": 1}
COLUMNS = ("pipeline int8", "pipeline points, dlib net", "dlib points, dlib net")


def held_out(data: Path, name: str, limit: int) -> list[Path]:
    """The set's images in file order, less the ones build_embedder calibrates on."""
    with open(data / name / "labels.csv") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["file"])
    per_id = CALIBRATION_SETS.get(name, 0)
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        seen[row["identity"]] = seen.get(row["identity"], 0) + 1
        if seen[row["identity"]] > per_id:
            out.append(data / name / row["file"])
    return out[:limit]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "../shared/data/faces")
    ap.add_argument("--limit", type=int, default=400, help="images per set")
    args = ap.parse_args()
    from consentry.vision.image_io import read_image

    manifest = Manifest.load()
    pipeline = FacePipeline(VisionOptions(flip=False, still_fallback=None), manifest=manifest)
    int8 = FaceEmbedder(Model(manifest.get("dlib_resnet_v1_int8")))
    ref = DlibReference()
    dists, errs = [], []
    for name in SETS:
        for path in held_out(args.data, name, args.limit):
            rgb = read_image(path)
            theirs = ref.five_points(rgb)
            faces = pipeline.faces(rgb)
            if len(theirs) != 1 or not faces:
                continue
            t = theirs[0]
            face = min(faces, key=lambda f: np.abs(f.landmarks.five - t).sum())
            ours = pipeline.five_points(rgb, face)
            eye = np.linalg.norm(t[0] - t[2])
            errs.append(np.linalg.norm(ours - t, axis=1) / eye)
            target = ref.descriptor(ref.chip(rgb, t))
            chip = extract_chip(rgb, ours).copy()
            row = (int8.embed(chip).vector, ref.descriptor(chip), ref.descriptor(extract_chip(rgb, t)))
            dists.append([np.linalg.norm(v - target) for v in row])
    d = np.array(dists)
    e = np.array(errs)
    print(f"held-out faces compared: {len(d)}")
    print("landmark error / eye distance, per dlib point (mean):", np.round(e.mean(axis=0), 4))
    for col, label in enumerate(COLUMNS):
        v = d[:, col]
        print(f"{label}: descriptor L2 to dlib mean {v.mean():.4f} median {np.median(v):.4f} "
              f"p95 {np.percentile(v, 95):.4f} p99 {np.percentile(v, 99):.4f} max {v.max():.4f}")


if __name__ == "__main__":
    main()

"""Convert dlib's 5-point shape predictor (shape_predictor_5_face_landmarks.dat, public domain)
into models/dlib_shape_predictor_5.npz for app/consentry/vision/shape5.py — no dlib at run time.

dlib's serialisation (shape_predictor.h): version 1; initial_shape (matrix<float,0,1>); forests
(vector of cascade levels, each a vector of regression trees: splits [idx1, idx2, thresh] and
leaf_values [matrix<float,0,1>]); anchor_idx (vector of vector<unsigned long>); deltas (vector
of vector<vector<float,2>>). Matrices store -rows, -cols, then row-major elements; floats are
(mantissa, exponent) integer pairs. The parser must consume every byte.

Usage: python models/recipe/build_shape5.py [--dat PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from dlib_dat import DatFormatError, _Reader  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "dlib_shape_predictor_5.npz"


def column(reader: _Reader) -> np.ndarray:
    rows, cols = -reader.integer(), -reader.integer()
    if cols != 1 or rows < 0:
        raise DatFormatError(f"expected a column vector, got {rows}x{cols}")
    return np.array([reader.real() for _ in range(rows)], np.float32)


def parse(data: bytes) -> dict[str, np.ndarray]:
    r = _Reader(data)
    r.expect_int(1, "shape_predictor version")
    initial = column(r)
    levels = r.integer()
    idx1, idx2, thresh, leaves = [], [], [], []
    for _ in range(levels):
        trees = r.integer()
        l_i1, l_i2, l_th, l_lv = [], [], [], []
        for _ in range(trees):
            n_splits = r.integer()
            splits = [(r.integer(), r.integer(), r.real()) for _ in range(n_splits)]
            n_leaves = r.integer()
            if n_leaves != n_splits + 1:
                raise DatFormatError("a tree must have one more leaf than splits")
            l_lv.append(np.stack([column(r) for _ in range(n_leaves)]))
            l_i1.append([s[0] for s in splits])
            l_i2.append([s[1] for s in splits])
            l_th.append([s[2] for s in splits])
        idx1.append(l_i1)
        idx2.append(l_i2)
        thresh.append(l_th)
        leaves.append(l_lv)
    if r.integer() != levels:
        raise DatFormatError("anchor_idx does not have one entry per cascade level")
    anchors = []
    for _ in range(levels):
        anchors.append([r.integer() for _ in range(r.integer())])
    if r.integer() != levels:
        raise DatFormatError("deltas do not have one entry per cascade level")
    deltas = []
    for _ in range(levels):
        deltas.append([(r.real(), r.real()) for _ in range(r.integer())])
    if r.pos != len(data):
        raise DatFormatError(f"{len(data) - r.pos} bytes left over")
    return {
        "initial_shape": initial.reshape(-1, 2),
        "split_idx1": np.array(idx1, np.int32), "split_idx2": np.array(idx2, np.int32),
        "split_thresh": np.array(thresh, np.float32), "leaves": np.array(leaves, np.float32).reshape(
            levels, len(leaves[0]), -1, initial.size // 2, 2),
        "anchor_idx": np.array(anchors, np.int32), "deltas": np.array(deltas, np.float32),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dat", type=Path, default=None)
    args = ap.parse_args()
    if args.dat is None:
        import face_recognition_models as frm

        args.dat = Path(frm.pose_predictor_five_point_model_location())
    arrays = parse(args.dat.read_bytes())
    np.savez(OUT, **arrays)  # uncompressed: numpy writes zip entries with a fixed date, so the sha256 is stable
    shapes = {k: v.shape for k, v in arrays.items()}
    print(f"wrote {OUT.name}: {shapes}")


if __name__ == "__main__":
    main()

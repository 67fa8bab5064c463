"""Reference descriptors from dlib itself, for the conversion tests (tests/data/dlib_reference.npz).

Inputs are public-domain or package-shipped images only: skimage's astronaut (public
domain) and variants of it, and faces from ``skimage.data.lfw_subset()`` upscaled to
150x150. Astronaut chips are cut by dlib (HOG detector, 5-point predictor, get_face_chip);
the upscaled LFW faces are used as chips directly. Descriptors use ``num_jitters`` 0.
None of these chips is used for int8 calibration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).parent))
from dlib_reference import DlibReference  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "dlib_reference.npz"
LFW_FACES = 24


def astronaut_variants() -> dict[str, np.ndarray]:
    img = data.astronaut()
    h, w = img.shape[:2]
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h))
    return {
        "astronaut": img,
        "astronaut_flipped": np.ascontiguousarray(img[:, ::-1]),
        "astronaut_dark": (img * 0.6).astype(np.uint8),
        "astronaut_bright": np.clip(img.astype(np.int16) + 50, 0, 255).astype(np.uint8),
        "astronaut_rotated": rot,
        "astronaut_half": cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "astronaut_grey": np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2),
    }


def main() -> None:
    ref = DlibReference()
    names, chips = [], []
    for name, img in astronaut_variants().items():
        fives = ref.five_points(img)
        if not fives:
            raise SystemExit(f"dlib found no face in {name}")
        largest = max(fives, key=lambda f: np.linalg.norm(f[0] - f[2]))
        names.append(name)
        chips.append(ref.chip(img, largest))
    lfw = data.lfw_subset()[:LFW_FACES]  # the first 100 of lfw_subset are faces
    for i, face in enumerate(lfw):
        grey = (np.clip(face, 0, 1) * 255).astype(np.uint8)
        up = cv2.resize(grey, (150, 150), interpolation=cv2.INTER_CUBIC)
        names.append(f"lfw_subset_{i:03d}")
        chips.append(np.repeat(up[:, :, None], 3, axis=2))
    chips_arr = np.stack(chips).astype(np.uint8)
    desc = np.stack([ref.descriptor(c) for c in chips_arr]).astype(np.float32)
    np.savez_compressed(OUT, names=np.array(names), chips=chips_arr, descriptors=desc)
    print(f"wrote {OUT}: {len(names)} chips")


if __name__ == "__main__":
    main()

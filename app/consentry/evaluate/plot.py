"""ROC curves (TAR against log FAR) drawn with OpenCV, so plotting needs no extra package."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError
from . import metrics

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]  # RGB


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, size: tuple[int, int] = (800, 600)) -> None:
    """``curves``: name → (genuine distances, impostor distances). Writes a PNG."""
    w, h = size
    left, right, top, bottom = 70, 20, 20, 60
    img = np.full((h, w, 3), 255, np.uint8)
    lo = -4.0  # log10 FAR axis from 1e-4 to 1

    def xy(far: np.ndarray, tar: np.ndarray) -> np.ndarray:
        lx = (np.log10(np.clip(far, 10 ** lo, 1.0)) - lo) / -lo
        return np.stack([left + lx * (w - left - right), top + (1 - tar) * (h - top - bottom)], 1).astype(np.int32)

    for e in range(int(lo), 1):
        x = int(left + (e - lo) / -lo * (w - left - right))
        cv2.line(img, (x, top), (x, h - bottom), (220, 220, 220), 1)
        cv2.putText(img, f"1e{e}", (x - 18, h - bottom + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for t in np.linspace(0, 1, 6):
        y = int(top + (1 - t) * (h - top - bottom))
        cv2.line(img, (left, y), (w - right, y), (220, 220, 220), 1)
        cv2.putText(img, f"{t:.1f}", (left - 35, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(img, "false accept rate", (w // 2 - 60, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "TAR", (10, top + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    for n, (name, (gen, imp)) in enumerate(curves.items()):
        far, tar, _ = metrics.roc_curve(gen, imp)
        colour = _COLOURS[n % len(_COLOURS)]
        cv2.polylines(img, [xy(far, tar)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, name, (left + 15, h - bottom - 20 - 20 * n), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise ImageError(f"could not write plot {path}")


def plot_det(bona: list[float], attacks: list[float], path: Path) -> None:
    """Liveness trade-off from P(real) scores, drawn on the same axes as :func:`plot_roc`:
    1 - BPCER against APCER (log scale); 1 - P(real) plays the role of a distance."""
    plot_roc({"passive anti-spoofing": (1.0 - np.asarray(bona), 1.0 - np.asarray(attacks))}, path)

"""Reading still images into RGB uint8 arrays, with clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageError


def to_rgb(image: np.ndarray, *, what: str = "image") -> np.ndarray:
    """Return an (H, W, 3) uint8 RGB view or copy of an RGB/RGBA/greyscale array."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"{what} must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise ImageError(f"{what} has shape {image.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")


def read_image(path: str | Path) -> np.ndarray:
    """Read a file as (H, W, 3) uint8 RGB with EXIF orientation applied."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if raw.size == 0:
        raise ImageError(f"image {path} is empty")
    # IMREAD_COLOR applies EXIF orientation, drops alpha, expands grey and reduces 16-bit.
    decoded = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ImageError(f"image {path} is not a readable image (corrupt or unsupported format)")
    return np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))

"""Reading still images into RGB uint8 arrays, with clear errors for bad input."""

from __future__ import annotations

import io
import os
import stat
import warnings
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


MAX_PIXELS = 40_000_000  # 40 MP: above every camera we ship for; `vision.max_image_pixels` sets it
MAX_FILE_BYTES = 64 * 1024 * 1024
MIN_SIDE = 16  # smaller than any face the detector can find


def configure(max_pixels: int) -> None:
    """Set the pixel limit from config (``vision.max_image_pixels``) once at start."""
    global MAX_PIXELS
    MAX_PIXELS = int(max_pixels)


def _read_regular(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file of sane size (a FIFO would block
    the reader forever; a device would never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"image {path} is not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageError(f"image {path} is {st.st_size} bytes; the limit is {MAX_FILE_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _check_header(data: bytes, path: Path) -> None:
    """Width and height from the header (Pillow reads no pixels for this), before OpenCV
    allocates anything: a 20000x20000 PNG is refused in microseconds, not decoded in 12 s."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise ImageError(f"image {path} claims more than {MAX_PIXELS} pixels; refused") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(f"image {path} is not a readable image (corrupt or unsupported format)") from None
    if width * height > MAX_PIXELS:
        raise ImageError(f"image {path} is {width}x{height}, over the limit of {MAX_PIXELS} pixels "
                         "(vision.max_image_pixels)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"image {path} is {width}x{height}; too small to hold a face")


def read_image(path: str | Path) -> np.ndarray:
    """Read a file as (H, W, 3) uint8 RGB with EXIF orientation applied; ImageError for a
    file that is not a regular file, is too large (bytes or pixels by its header), too small,
    or does not decode."""
    path = Path(path)
    raw = _read_regular(path)
    if not raw:
        raise ImageError(f"image {path} is empty")
    _check_header(raw, path)
    try:
        # IMREAD_COLOR applies EXIF orientation, drops alpha, expands grey and reduces 16-bit.
        decoded = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise ImageError(f"image {path} could not be decoded: {str(exc).strip()[:200]}") from None
    if decoded is None or decoded.ndim != 3 or min(decoded.shape[:2]) < MIN_SIDE:
        raise ImageError(f"image {path} is not a readable image (corrupt or unsupported format)")
    # in place: a second full-size copy would double a large still's peak memory (a 14 MP photo
    # is 42 MB) and leave a BGR copy of the frame behind
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB, dst=decoded)

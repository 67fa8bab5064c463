"""The face embedder: dlib's ResNet converted to TFLite (float32, float16 or int8)."""

from __future__ import annotations

import numpy as np

from ..runtime import Model
from .align import CHIP_SIZE
from .types import Embedding


class FaceEmbedder:
    """Map an aligned 150x150 RGB uint8 chip to a 128-D descriptor.

    The float models take float32 pixels 0..255, the int8 model uint8 pixels with scale 1.0
    and zero point 0; both get the chip's values unchanged.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        spec = model.inputs[0]
        if spec.shape != (1, CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"{model.entry.name} input {spec.shape} is not a 150x150 RGB chip")
        if spec.dtype == np.uint8 and (spec.scale, spec.zero_point) not in ((1.0, 0), (0.0, 0)):
            raise ValueError(f"{model.entry.name} uint8 input must have scale 1 and zero point 0")
        self._input = np.zeros(spec.shape, dtype=spec.dtype)
        self.name = model.entry.name

    def embed(self, chip: np.ndarray) -> Embedding:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise ValueError(f"chip must be (150, 150, 3) uint8, got {chip.shape} {chip.dtype}")
        np.copyto(self._input[0], chip, casting="unsafe")
        (out,) = self.model.run(self._input)
        self._input.fill(0)
        return Embedding(vector=out.reshape(-1).astype(np.float32), model=self.name)

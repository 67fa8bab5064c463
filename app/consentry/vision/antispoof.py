"""Passive presentation-attack detection: minivision's two MiniFASNets on crops of one face.

The caller (``decide.liveness``) asks only for a face that already matched an enrolled
subject; a stranger's face never reaches this module. Both crops live in buffers this
class owns and are zeroed before :meth:`AntiSpoof.score` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime import Manifest, Model, RuntimeName
from .antispoof_crop import CropRule, take_crop

REAL = 1  # class order: 2D attack, real, 3D attack


@dataclass(frozen=True)
class SpoofScore:
    """Mean over the networks of P(real) (0..1) and the class upstream would report
    (``real``, ``2d_attack`` or ``3d_attack``: argmax of the summed probabilities)."""

    p_real: float
    label: str


class AntiSpoof:
    """The networks named in ``names`` (manifest role ``antispoof``), each with its own crop."""

    def __init__(self, manifest: Manifest, names: tuple[str, ...] = ("minifasnet_v2", "minifasnet_v1se"), *,
                 threads: int = 1, runtime: RuntimeName = "auto") -> None:
        self._nets: list[tuple[Model, float, CropRule, np.ndarray]] = []
        try:
            for name in names:
                entry = manifest.get(name)
                if entry.role != "antispoof":
                    raise ValueError(f"model {name} has role {entry.role}, not antispoof")
                model = Model(entry, threads=threads, runtime=runtime)
                size = int(entry.input["shape"][1])
                rule = CropRule(**entry.input.get("box_rule", {}))
                self._nets.append((model, float(entry.input["crop_scale"]), rule,
                                   np.zeros((size, size, 3), dtype=np.uint8)))
        except Exception:
            self.close()
            raise
        self.classes: list[str] = list(manifest.get(names[0]).output["classes"])
        self._input = np.zeros((1, *self._nets[0][3].shape), dtype=np.float32)

    def score(self, image: np.ndarray, box: tuple[float, float, float, float]) -> SpoofScore:
        """Score the face in ``box`` (x1, y1, x2, y2 pixels) of an RGB frame."""
        total = np.zeros(len(self.classes), dtype=np.float64)
        try:
            for model, scale, rule, crop in self._nets:
                take_crop(image, rule.retina_box(box), scale, crop.shape[0], out=crop)
                self._input[0] = crop[..., ::-1]  # the networks were trained on BGR
                total += model.run(self._input)[0][0]
        finally:
            self.wipe()
        total /= len(self._nets)
        return SpoofScore(round(float(total[REAL]), 4), self.classes[int(np.argmax(total))])

    def wipe(self) -> None:
        for *_, crop in self._nets:
            crop.fill(0)
        self._input.fill(0)

    def close(self) -> None:
        self.wipe()
        for model, *_ in self._nets:
            model.close()
        self._nets.clear()

    def __enter__(self) -> AntiSpoof:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

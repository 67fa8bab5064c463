"""The converted embedders against dlib's own descriptors (made by models/recipe with dlib,
num_jitters 0, from package-shipped images; none of these chips was used for calibration)."""

import numpy as np
import pytest
from consentry.runtime import Model
from consentry.vision.embedder import FaceEmbedder


def _descriptors(manifest, name, chips):
    with Model(manifest.get(name)) as model:
        embedder = FaceEmbedder(model)
        return np.stack([embedder.embed(c).vector for c in chips])


def test_float32_matches_dlib_to_1e5(manifest, reference):
    out = _descriptors(manifest, "dlib_resnet_v1_float32", reference["chips"])
    assert np.abs(out - reference["descriptors"]).max() <= 1e-5


def test_float16_within_5e3_l2(manifest, reference):
    out = _descriptors(manifest, "dlib_resnet_v1_float16", reference["chips"])
    assert np.linalg.norm(out - reference["descriptors"], axis=1).max() <= 5e-3


def test_int8_tolerances(manifest, reference):
    out = _descriptors(manifest, "dlib_resnet_v1_int8", reference["chips"])
    ref = reference["descriptors"]
    dist = np.linalg.norm(out - ref, axis=1)
    cos = (out * ref).sum(axis=1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.995
    assert dist.max() <= 0.15
    assert dist.mean() <= 0.06


def test_descriptor_is_dlib_scale_not_unit_norm(manifest, reference):
    out = _descriptors(manifest, "dlib_resnet_v1_int8", reference["chips"][:3])
    norms = np.linalg.norm(out, axis=1)
    assert np.all((norms > 1.3) & (norms < 1.6))


def test_embedder_rejects_wrong_chip(manifest):
    with Model(manifest.get("dlib_resnet_v1_int8")) as model:
        embedder = FaceEmbedder(model)
        with pytest.raises(ValueError, match="150, 150, 3"):
            embedder.embed(np.zeros((100, 100, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            embedder.embed(np.zeros((150, 150, 3), np.float32))

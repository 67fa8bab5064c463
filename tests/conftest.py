"""Shared fixtures: real models from models/manifest.json, the shared face data (skipped
with a reason when absent), and package-shipped public-domain images."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from consentry.runtime import Manifest
from consentry.vault import KeyFile, Vault
from consentry.vision.pipeline import FacePipeline
from skimage import data

ROOT = Path(__file__).resolve().parents[1]


def face_data_dir() -> Path:
    return Path(os.environ.get("CONSENTRY_FACE_DATA", ROOT.parent / "shared" / "data" / "faces"))


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    path = face_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"shared face data not found at {path} (set CONSENTRY_FACE_DATA)")
    return path


def labelled(folder: Path) -> list[tuple[Path, str]]:
    with open(folder / "labels.csv") as fh:
        return [(folder / row["file"], row["identity"]) for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()


@pytest.fixture(scope="session")
def pipeline(manifest: Manifest):
    with FacePipeline(manifest=manifest) as p:
        yield p


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    with np.load(ROOT / "tests" / "data" / "dlib_reference.npz") as z:
        return {k: z[k] for k in z.files}

@pytest.fixture
def keyfile(tmp_path) -> KeyFile:
    kf = KeyFile(tmp_path / "keys" / "master.key")
    kf.create()
    return kf


@pytest.fixture
def vault(tmp_path, keyfile):
    """A fresh, real vault (SQLite, AES-GCM) under tmp_path, open for the test."""
    with Vault(tmp_path / "home", keyfile, create=True) as v:
        yield v


@pytest.fixture
def broker(tmp_path):
    from tests.broker import real_broker

    server = real_broker(tmp_path).start()
    yield server
    server.stop()

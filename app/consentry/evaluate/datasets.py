"""Labelled folders, LFW-style pairs files, and embedding every image once, in memory.

Embeddings computed here stay in memory for the length of one evaluation; nothing about
the evaluated faces is written anywhere but aggregate figures.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ImageError
from ..vision.image_io import read_image
from ..vision.pipeline import FacePipeline, central_face

Embed = Callable[[np.ndarray], "np.ndarray | None"]


def read_labels(folder: Path) -> list[tuple[Path, str]]:
    """``(image path, identity)`` rows of ``folder/labels.csv`` (columns file, identity)."""
    path = Path(folder) / "labels.csv"
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: a data set folder needs labels.csv with file,identity") from None
    if not rows or not {"file", "identity"} <= set(rows[0]):
        raise ConfigError(f"{path} must have the columns file and identity")
    return [(Path(folder) / r["file"], r["identity"]) for r in rows]


@dataclass(frozen=True)
class PairList:
    """Pairs of image indices into ``paths``; same: genuine pair; fold: 0-based fold."""

    paths: list[Path]
    a: np.ndarray
    b: np.ndarray
    same: np.ndarray
    fold: np.ndarray


def parse_pairs(file: Path, root: Path) -> PairList:
    """LFW's pairs.txt: a header ``folds pairs_per_fold`` (or one count), then per line
    ``name n1 n2`` (same person) or ``name1 n1 name2 n2`` (different people)."""
    lines = [ln.split() for ln in Path(file).read_text().splitlines() if ln.strip()]
    if not lines:
        raise ConfigError(f"pairs file {file} is empty")
    header = [int(x) for x in lines[0]]
    per_fold = header[1] * 2 if len(header) == 2 else max(len(lines) - 1, 1)
    index: dict[Path, int] = {}
    rows: list[tuple[int, int, bool, int]] = []

    def image(name: str, n: str) -> int:
        path = Path(root) / name / f"{name}_{int(n):04d}.jpg"
        return index.setdefault(path, len(index))

    for i, parts in enumerate(lines[1:]):
        if len(parts) == 3:
            rows.append((image(parts[0], parts[1]), image(parts[0], parts[2]), True, i // per_fold))
        elif len(parts) == 4:
            rows.append((image(parts[0], parts[1]), image(parts[2], parts[3]), False, i // per_fold))
        else:
            raise ConfigError(f"pairs file {file} line {i + 2}: expected 3 or 4 fields, got {len(parts)}")
    a, b, same, fold = (np.array(col) for col in zip(*rows, strict=True))
    return PairList(list(index), a, b, same.astype(bool), fold)


class Progress:
    """A one-line progress bar on stderr (kept off stdout so --json output stays clean)."""

    def __init__(self, label: str, total: int, stream=None) -> None:
        self.label, self.total, self.stream = label, total, stream or sys.stderr
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.count == self.total or self.count % 10 == 0:
            width = 30
            filled = int(width * self.count / max(self.total, 1))
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.count}/{self.total}")
            if self.count == self.total:
                self.stream.write("\n")
            self.stream.flush()


@dataclass(frozen=True)
class Embedded:
    """vectors: (N, 128) float32, rows of failed images are zero. ok: (N,) bool.
    failures: counts by reason (``no_face``, ``unreadable``)."""

    vectors: np.ndarray
    ok: np.ndarray
    failures: dict[str, int]


def our_embedder(pipeline: FacePipeline) -> Embed:
    """The appliance's own path; with several faces, the one nearest the image centre."""
    def embed(rgb: np.ndarray) -> np.ndarray | None:
        face = central_face(pipeline.faces(rgb, still=True), rgb.shape[1], rgb.shape[0])
        if face is None:
            return None
        try:
            return pipeline.embed(rgb, face).vector.copy()
        finally:
            pipeline.wipe()
    return embed


def embed_paths(embed: Embed, paths: Sequence[Path], label: str, quiet: bool = False) -> Embedded:
    vectors = np.zeros((len(paths), 128), np.float32)
    ok = np.zeros(len(paths), bool)
    failures = {"no_face": 0, "unreadable": 0}
    progress = None if quiet else Progress(label, len(paths))
    for i, path in enumerate(paths):
        try:
            rgb = read_image(path)
        except ImageError:
            failures["unreadable"] += 1
        else:
            vec = embed(rgb)
            if vec is None:
                failures["no_face"] += 1
            else:
                vectors[i], ok[i] = vec, True
        if progress:
            progress.step()
    return Embedded(vectors, ok, failures)

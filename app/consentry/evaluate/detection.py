"""Detection rates on the shared face sets: misses on single-face sets, false faces on
no-face photos, and face counts on group photos. Prints aggregate numbers only."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import ImageError
from ..vision.image_io import read_image
from ..vision.pipeline import FacePipeline

SINGLE_FACE_SETS = ("celeba", "deepface", "examples", "digiface")


def _files(folder: Path) -> list[Path]:
    labels = folder / "labels.csv"
    if labels.is_file():
        with open(labels) as fh:
            return [folder / row["file"] for row in csv.DictReader(fh)]
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def _counts(pipeline: FacePipeline, files: list[Path]) -> tuple[list[int], int]:
    counts, unreadable = [], 0
    for path in files:
        try:
            rgb = read_image(path)
        except ImageError:
            unreadable += 1
            continue
        counts.append(len(pipeline.faces(rgb)))
    return counts, unreadable


def detection_rates(pipeline: FacePipeline, data: Path) -> dict:
    report: dict[str, dict] = {}
    found = total = 0
    for name in SINGLE_FACE_SETS:
        counts, unreadable = _counts(pipeline, _files(data / name))
        hits = sum(1 for c in counts if c >= 1)
        found += hits
        total += len(counts) + unreadable
        report[name] = {"images": len(counts) + unreadable, "detected": hits,
                        "missed": len(counts) + unreadable - hits, "unreadable": unreadable}
    counts, unreadable = _counts(pipeline, _files(data / "noface"))
    report["noface"] = {"images": len(counts), "false_faces": sum(counts), "unreadable": unreadable}
    counts, unreadable = _counts(pipeline, _files(data / "multi"))
    report["multi"] = {"images": len(counts), "faces_per_image": counts}
    report["overall_single_face_rate"] = round(found / max(total, 1), 4)
    return report

"""`consentry eval` and `consentry calibrate`: our pipeline (and optionally dlib's) on the
same images, verification and open-set identification figures, and thresholds chosen for
a stated false-match rate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import EvaluationError
from ..match import Gallery, MatchPolicy
from . import metrics
from .datasets import Embed, Embedded, PairList, embed_paths, parse_pairs, read_labels


@dataclass(frozen=True)
class Contender:
    """A named pipeline under evaluation with the threshold it runs at."""

    name: str
    embed: Embed
    threshold: float
    model: str


@contextmanager
def contenders(settings: Settings, embedders: Sequence[str] = (), reference: bool = False) -> Iterator[list[Contender]]:
    """Our pipeline for the configured embedder (first) and each extra one, then dlib's own."""
    from ..vision.factory import pipeline_from_config
    from .datasets import our_embedder

    names = [settings.vision.embedder, *[e for e in embedders if e != settings.vision.embedder]]
    with ExitStack() as stack:
        out = []
        for name in names:
            vision = settings.vision.model_copy(update={"embedder": name})
            pipeline = stack.enter_context(pipeline_from_config(vision, settings.quality))
            model = pipeline.embedder.name
            out.append(Contender(f"consentry {model}", our_embedder(pipeline), settings.match.threshold, model))
        if reference:
            from .reference import DlibReference

            ref = DlibReference()
            out.append(Contender(f"dlib {ref.version} via {ref.name}", ref.embedder(), 0.6, "dlib"))
        yield out


@dataclass(frozen=True)
class DatasetOptions:
    """impostors: size of the seeded impostor-pair sample. enrol_fraction / enrol_k: share of
    identities enrolled for open-set identification and images enrolled per identity."""

    seed: int = 0
    impostors: int = 20000
    enrol_fraction: float = 0.5
    enrol_k: int = 3
    margin: float = 0.0


def _pair_distances(emb: Embedded, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(emb.vectors[a] - emb.vectors[b], axis=1).astype(np.float64)
    return d, emb.ok[a] & emb.ok[b]


def _fta(emb: Embedded, valid: np.ndarray) -> dict:
    failed = int((~emb.ok).sum())
    return {"images": failed, **emb.failures, "pairs": int((~valid).sum()), "of_images": int(emb.ok.size)}


def _verification(emb: Embedded, pairs: PairList, threshold: float, balanced: np.ndarray | None = None,
                  curve: list | None = None) -> dict:
    d, valid = _pair_distances(emb, pairs.a, pairs.b)
    if curve is not None:  # kept in memory for --plot only
        curve.extend([d[valid & pairs.same], d[valid & ~pairs.same]])
    subset = np.ones(d.size, bool) if balanced is None else balanced
    try:
        report = metrics.verification_report(d[subset], pairs.same[subset], valid[subset], pairs.fold[subset],
                                             threshold)
    except EvaluationError as exc:
        fta = _fta(emb, valid)
        raise EvaluationError(f"{exc}: of {fta['of_images']} images, {fta['unreadable']} could not be read and "
                              f"{fta['no_face']} had no usable face") from None
    if balanced is not None:  # ROC figures use every sampled impostor, accuracy a balanced subset
        gen, imp = d[valid & pairs.same], d[valid & ~pairs.same]
        report.update(tar_at_far={"1e-2": metrics.tar_at_far(gen, imp, 1e-2),
                                  "1e-3": metrics.tar_at_far(gen, imp, 1e-3)},
                      eer=round(metrics.eer(gen, imp), 4), auc=round(metrics.auc(gen, imp), 5),
                      roc_impostor_pairs=int(imp.size))
    report["failures_to_acquire"] = _fta(emb, valid)
    return report


def _each(contenders: Sequence[Contender], paths: Sequence[Path], quiet: bool,
          report: Callable[[Contender, Embedded], dict]) -> dict:
    """Embed the same images with every contender and report; the first is the headline."""
    results = {}
    for c in contenders:
        emb = embed_paths(c.embed, paths, c.name, quiet=quiet)
        results[c.name] = {"pipeline": c.name, **report(c, emb)}
    first, *rest = results.values()
    return {**first, "compared": {r["pipeline"]: r for r in rest}} if rest else first


def eval_pairs(pairs_file: Path, root: Path, contenders: Sequence[Contender], quiet: bool = False,
               curves: dict | None = None) -> dict:
    """``curves``, when given, receives name → (genuine, impostor) distances for a plot."""
    pairs = parse_pairs(pairs_file, root)

    def report(c: Contender, emb: Embedded) -> dict:
        curve = None if curves is None else curves.setdefault(c.name, [])
        return _verification(emb, pairs, c.threshold, curve=curve)

    return _each(contenders, pairs.paths, quiet, report)


def dataset_pairs(identities: Sequence[str], opts: DatasetOptions) -> tuple[PairList, np.ndarray]:
    """All genuine pairs plus a seeded impostor sample; the mask marks a balanced subset."""
    ids = np.asarray(identities)
    i, j = np.triu_indices(len(ids), k=1)
    same = ids[i] == ids[j]
    rng = np.random.default_rng(opts.seed)
    gen_idx = np.flatnonzero(same)
    imp_idx = rng.permutation(np.flatnonzero(~same))[:opts.impostors]
    chosen = np.concatenate([gen_idx, imp_idx])
    balanced = np.zeros(chosen.size, bool)
    balanced[:gen_idx.size + min(gen_idx.size, imp_idx.size)] = True
    folds = rng.permutation(chosen.size) % 10
    pairs = PairList([], i[chosen], j[chosen], same[chosen], folds)
    return pairs, balanced


def _rate(flags: list[bool]) -> float | None:
    """Share of True, or None when there was nothing to count (JSON has no NaN)."""
    return round(float(np.mean(flags)), 4) if flags else None


def open_set(emb: Embedded, identities: Sequence[str], contender: Contender, opts: DatasetOptions) -> dict:
    """Enrol k images of a seeded share of identities; probe with everything else."""
    ids = np.asarray(identities)
    rng = np.random.default_rng(opts.seed + 1)
    names = sorted(set(ids))
    enrolled = set(rng.permutation(names)[: max(1, int(round(len(names) * opts.enrol_fraction)))])
    gallery = Gallery(contender.model, MatchPolicy(contender.threshold, opts.margin))
    templates, mated_idx = [], []
    for name in sorted(enrolled):
        rows = [r for r in rng.permutation(np.flatnonzero((ids == name) & emb.ok))]
        templates += [(name, emb.vectors[r]) for r in rows[:opts.enrol_k]]
        mated_idx += rows[opts.enrol_k:]
    gallery.replace(templates)
    nonmated_idx = [r for r in np.flatnonzero(emb.ok) if ids[r] not in enrolled]
    subjects = [s for s, _ in templates]
    matrix = np.stack([v for _, v in templates])

    def nearest(r: int) -> tuple[str, float]:
        d = np.linalg.norm(matrix - emb.vectors[r], axis=1)
        k = int(np.argmin(d))
        return subjects[k], float(d[k])

    mated = [(str(ids[r]), *nearest(r)) for r in mated_idx]
    nonmated = np.array([nearest(r)[1] for r in nonmated_idx])
    report = metrics.open_set_report(mated, nonmated)
    decisions_m = [gallery.identify(emb.vectors[r], contender.model) for r in mated_idx]
    decisions_n = [gallery.identify(emb.vectors[r], contender.model) for r in nonmated_idx]
    truth_m = [str(ids[r]) for r in mated_idx]
    report["at_configured_policy"] = {
        "threshold": contender.threshold, "margin": opts.margin,
        "correct_match_rate": _rate([d.subject == t for d, t in zip(decisions_m, truth_m, strict=True)]),
        "wrong_subject_rate": _rate([d.matched and d.subject != t for d, t in zip(decisions_m, truth_m, strict=True)]),
        "stranger_false_match_rate": _rate([d.matched for d in decisions_n]),
    }
    report.update(enrolled_identities=len(enrolled), templates=len(templates),
                  failed_images_excluded=int((~emb.ok).sum()))
    gallery.close()
    return report


def eval_dataset(folder: Path, contenders: Sequence[Contender], opts: DatasetOptions, quiet: bool = False,
                 curves: dict | None = None) -> dict:
    rows = read_labels(folder)
    paths, identities = [p for p, _ in rows], [i for _, i in rows]
    pairs, balanced = dataset_pairs(identities, opts)

    def report(c: Contender, emb: Embedded) -> dict:
        curve = None if curves is None else curves.setdefault(c.name, [])
        return {**_verification(emb, pairs, c.threshold, balanced, curve),
                "open_set": open_set(emb, identities, c, opts)}

    return {"dataset": Path(folder).name, **_each(contenders, paths, quiet, report)}


def pair_scores(ids: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) distances of every pair of images."""
    i, j = np.triu_indices(len(ids), k=1)
    d = np.linalg.norm(vecs[i] - vecs[j], axis=1)
    same = ids[i] == ids[j]
    return d[same], d[~same]


def subject_scores(ids: np.ndarray, vecs: np.ndarray, templates: int, seed: int = 0,
                   scoring: str = "centroid") -> tuple[np.ndarray, np.ndarray]:
    """(genuine, impostor) scores as the appliance sees them when each subject is enrolled
    with ``templates`` images: the distance from a probe to a subject is the distance to the
    mean of that subject's templates (``centroid``), the chord distance of the unit probe to
    the normalised mean of the unit templates (``unit``), or the minimum over them (``nearest``).
    Identities with fewer than templates + 1 images are probes only."""
    rng = np.random.default_rng(seed)
    owner, rows = [], []
    for name in sorted(set(ids)):
        mine = rng.permutation(np.flatnonzero(ids == name))
        if len(mine) > templates:
            owner.append(name)
            rows.append(mine[:templates])
    if not owner:
        raise EvaluationError(f"no identity has more than {templates} images")
    if scoring == "unit":  # visit_scoring "unit": unit probes against normalised means of unit templates
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        centroids = np.stack([vecs[r].mean(axis=0) for r in rows])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        per_subject = np.linalg.norm(vecs[:, None, :] - centroids[None, :, :], axis=2)
    elif scoring == "centroid":
        centroids = np.stack([vecs[r].mean(axis=0) for r in rows])
        per_subject = np.linalg.norm(vecs[:, None, :] - centroids[None, :, :], axis=2)  # (images, subjects)
    else:
        gallery = vecs[np.concatenate(rows)]
        d = np.linalg.norm(vecs[:, None, :] - gallery[None, :, :], axis=2).reshape(len(ids), len(owner), templates)
        per_subject = d.mean(axis=2) if scoring == "mean_distance" else d.min(axis=2)
    is_template = np.zeros((len(ids), len(owner)), bool)
    for s, r in enumerate(rows):
        is_template[r, s] = True
    same = ids[:, None] == np.asarray(owner)[None, :]
    return per_subject[same & ~is_template], per_subject[~same]


def embedded_set(folder: Path, contender: Contender, quiet: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(identities, vectors) of the images of a labelled folder that gave a face."""
    rows = read_labels(folder)
    emb = embed_paths(contender.embed, [p for p, _ in rows], contender.name, quiet=quiet)
    return np.asarray([i for _, i in rows])[emb.ok], emb.vectors[emb.ok]


SCORINGS = ("nearest", "mean_distance", "centroid")


def compare_scoring(ids: np.ndarray, vecs: np.ndarray, templates: int,
                    rates: Sequence[str] = ("1e-2", "1e-3", "1e-4")) -> dict:
    """For each way of scoring a subject's templates: the threshold for each false-match rate
    per subject comparison and the false-non-match rate there (same enrolment draws)."""
    out = {}
    for scoring in SCORINGS:
        gen, imp = subject_scores(ids, vecs, templates, scoring=scoring)
        rows = {}
        for rate in rates:
            t = metrics.threshold_for_fmr(imp, float(rate))
            rows[rate] = {"threshold": round(t, 4), "fnmr": round(1.0 - metrics.rate_at_or_below(gen, t), 4)}
        out[scoring] = {**rows, "genuine": int(gen.size), "impostor": int(imp.size)}
    return out


def calibrate(folder: Path, contender: Contender, fmr: float, gallery_size: int = 1, templates: int = 1,
              quiet: bool = False, scoring: str = "centroid") -> dict:
    """The threshold for ``fmr`` per attempt on a labelled folder.

    A 1:N attempt against ``gallery_size`` subjects gets N chances to false-match, so the
    per-comparison target is ``fmr / gallery_size`` (union bound). With ``templates`` > 1 a
    comparison is a probe against one subject's set of that many templates (the minimum
    distance, as the gallery decides); with 1 it is every pair of images."""
    rows = read_labels(folder)
    emb = embed_paths(contender.embed, [p for p, _ in rows], contender.name, quiet=quiet)
    ids = np.asarray([i for _, i in rows])[emb.ok]
    vecs = emb.vectors[emb.ok]
    gen, imp = pair_scores(ids, vecs) if templates == 1 else subject_scores(ids, vecs, templates, scoring=scoring)
    per_comparison = fmr / gallery_size
    threshold = metrics.threshold_for_fmr(imp, per_comparison)
    min_fmr = metrics.rule_of_three(int(imp.size))
    return {
        "dataset": Path(folder).name, "embedder": contender.model, "date": dt.date.today().isoformat(),
        "fmr": fmr, "gallery_size": gallery_size, "templates_per_subject": templates,
        "scoring": scoring if templates > 1 else "pairs",
        "fmr_per_comparison": per_comparison, "threshold": round(threshold, 4),
        "fnmr": round(1.0 - metrics.rate_at_or_below(gen, threshold), 4),
        "measured_fmr": round(metrics.rate_at_or_below(imp, threshold), 6),
        "genuine_comparisons": int(gen.size), "impostor_comparisons": int(imp.size),
        "identities": int(len(set(ids))), "min_supported_fmr": min_fmr,
        "supported": min_fmr is not None and per_comparison >= min_fmr,
        "failures_to_acquire": {"images": int((~emb.ok).sum()), **emb.failures},
    }

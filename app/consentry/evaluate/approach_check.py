"""`consentry eval --approach`: generated approach clips against the shared real clips.

Two figures decide whether a visit model may stand in for video, each per run of one visit
budget of consecutive good frames (15 fps, ``seconds`` long):

- ``correlation``: the lag-1 correlation of a run's descriptor residuals (each frame's
  descriptor minus the run's mean): sum <r_t, r_t+1> / sum |r_t|^2. 1 is one error repeated;
  0 is independent frames (what the still-based visits assumed).
- ``mean_gain``: the best window mean's distance to the person's own centroid divided by the
  best single frame's. Below 1, averaging beats the luckiest frame; a generator whose ratio is
  lower than real video's makes averaging look better than it is (a defect).

Embeddings of generated frames and real clips are cached (``CONSENTRY_CACHE`` or
/tmp/consentry-approach), never in the repository, and never leave this machine: they are
figures about the shared test faces only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import EvaluationError
from .approach import ApproachOptions, approach_frames, walk

GENERATOR_VERSION = 2
CHECK_FPS = 15.0


def _generator_source() -> str:
    """A change to the generator's code invalidates its cached clips."""
    from . import approach

    return hashlib.sha1(Path(approach.__file__).read_bytes()).hexdigest()[:12]


def cache_dir() -> Path:
    path = Path(os.environ.get("CONSENTRY_CACHE", "/tmp/consentry-approach"))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _key(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


def _file_id(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, int(st.st_mtime))


@dataclass(frozen=True)
class Track:
    """One face followed through a clip. vecs: (L, 128) descriptors (zero where not ok).
    ok: (L,) bool, a good frame (detected, passing the quality gates). widths: (L,) face box
    width px (0 where none). fps: frames a second. sharpness: (L,) Laplacian variance of the
    face and turn: (L,) |yaw| + |pitch| degrees, where measured (else 0), for quality weights."""

    vecs: np.ndarray
    ok: np.ndarray
    widths: np.ndarray
    fps: float
    sharpness: np.ndarray | None = None
    turn: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("sharpness", "turn"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(len(self.ok)))


def _pick(faces, centre: tuple[float, float]):
    def dist(f) -> float:
        cx, cy = f.detection.center
        return (cx - centre[0]) ** 2 + (cy - centre[1]) ** 2
    return min(faces, key=dist, default=None)


def _embed_frame(pipeline, frame: np.ndarray, centre: tuple[float, float]) -> tuple[np.ndarray | None, tuple]:
    """(descriptor or None, (width, sharpness, turn)) of the face nearest ``centre``."""
    try:
        face = _pick(pipeline.faces(frame), centre)
        if face is None:
            return None, (0.0, 0.0, 0.0)
        box = face.detection.box
        q = pipeline.assess(frame, face)
        measured = (float(box[2] - box[0]), float(q.sharpness), abs(float(q.yaw_deg)) + abs(float(q.pitch_deg)))
        if not q.ok:
            return None, measured
        return pipeline.embed(frame, face).vector.copy(), measured
    finally:
        pipeline.wipe()


def still_face(pipeline, rgb: np.ndarray):
    from ..vision.pipeline import central_face

    try:
        face = central_face(pipeline.faces(rgb, still=True), rgb.shape[1], rgb.shape[0])
        return None if face is None else tuple(float(x) for x in face.detection.box)
    finally:
        pipeline.wipe()


def generated_track(pipeline, still: Path, options: ApproachOptions, seed: int) -> Track | None:
    """The descriptors of one generated approach clip of ``still`` (cached per file, options,
    seed and embedder); None when the still has no face."""
    from ..vision.image_io import read_image

    key = _key("approach", GENERATOR_VERSION, _generator_source(), _file_id(still), asdict(options), seed,
               pipeline.embedder.name)
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        z = np.load(path)
        return None if z["none"] else Track(z["vecs"], z["ok"], z["widths"], options.fps, z["sharp"], z["turn"])
    rgb = read_image(still)
    box = still_face(pipeline, rgb)
    if box is None:
        np.savez(path, none=True, vecs=np.zeros((0, 128)), ok=np.zeros(0, bool), widths=np.zeros(0))
        return None
    vecs = np.zeros((options.frames, 128), np.float32)
    ok = np.zeros(options.frames, bool)
    measured = np.zeros((options.frames, 3))
    for i, (frame, centre) in enumerate(approach_frames(rgb, box, options, seed)):
        v, measured[i] = _embed_frame(pipeline, frame, centre)
        if v is not None:
            vecs[i], ok[i] = v, True
        frame.fill(0)
    rgb.fill(0)
    widths, sharp, turn = measured.T
    np.savez(path, none=False, vecs=vecs, ok=ok, widths=widths, sharp=sharp, turn=turn)
    return Track(vecs, ok, widths, options.fps, sharp, turn)


def real_faces(pipeline, video: Path) -> tuple[list[list[tuple[np.ndarray | None, tuple]]], float]:
    """Every face of every frame of a clip: (descriptor or None when gated, (x1, y1, x2, y2,
    sharpness, turn)); cached."""
    from ..camera.sources import OpenCVSource

    key = _key("clip", 2, _file_id(video), pipeline.embedder.name)
    path = cache_dir() / f"{key}.npz"
    if path.is_file():
        z = np.load(path)
        frames: list[list] = [[] for _ in range(int(z["n"]))]
        for f, v, g, b in zip(z["frame"], z["vecs"], z["good"], z["boxes"], strict=True):
            frames[int(f)].append((v if g else None, tuple(b)))
        return frames, float(z["fps"])
    source = OpenCVSource(str(video), finite=True)
    fps = source.fps
    frames = []
    try:
        for frame in source.frames():
            row = []
            for face in pipeline.faces(frame):
                q = pipeline.assess(frame, face)
                good = q.ok
                box = (*(float(x) for x in face.detection.box[:4]), float(q.sharpness),
                       abs(float(q.yaw_deg)) + abs(float(q.pitch_deg)))
                row.append((pipeline.embed(frame, face).vector.copy() if good else None, box))
                pipeline.wipe()
            frames.append(row)
            frame.fill(0)
    finally:
        source.close()
    flat = [(i, v, b) for i, row in enumerate(frames) for v, b in row]
    np.savez(path, n=len(frames), fps=fps, frame=np.array([i for i, _, _ in flat], int),
             vecs=np.array([np.zeros(128) if v is None else v for _, v, _ in flat]).reshape(-1, 128),
             good=np.array([v is not None for _, v, _ in flat], bool),
             boxes=np.array([b for _, _, b in flat]).reshape(-1, 6))
    return frames, fps


def real_track(frames: list[list], fps: float, template: np.ndarray | None, limit: float = 0.6) -> Track:
    """One person's track: with a ``template``, the face nearest it (if within ``limit``),
    else the largest face."""
    n = len(frames)
    vecs, ok, measured = np.zeros((n, 128), np.float32), np.zeros(n, bool), np.zeros((n, 3))
    for i, row in enumerate(frames):
        good = [(v, b) for v, b in row if v is not None]
        pick = None
        if template is not None:
            scored = [(float(np.linalg.norm(v - template)), v, b) for v, b in good]
            best = min(scored, key=lambda x: x[0], default=None)
            if best is not None and best[0] <= limit:
                pick = best[1:]
        elif good:
            pick = max(good, key=lambda x: x[1][2] - x[1][0])
        if pick is not None:
            v, b = pick
            vecs[i], ok[i], measured[i] = v, True, (b[2] - b[0], b[4], b[5])
    widths, sharp, turn = measured.T
    return Track(vecs, ok, widths, fps, sharp, turn)


def at_fps(track: Track, fps: float) -> Track:
    step = max(1, int(round(track.fps / fps)))
    return Track(track.vecs[::step], track.ok[::step], track.widths[::step], track.fps / step,
                 track.sharpness[::step], track.turn[::step])


def runs(track: Track, seconds: float) -> list[np.ndarray]:
    """Good-frame descriptors of consecutive, non-overlapping runs of one visit budget."""
    length = max(1, int(round(seconds * track.fps)))
    out = []
    for a in range(0, len(track.ok) - length + 1, length):
        good = track.ok[a:a + length]
        if good.sum() >= length // 2:
            out.append(track.vecs[a:a + length][good])
    return out


def correlation(run: np.ndarray) -> float:
    r = run - run.mean(axis=0)
    den = float(np.sum(r[:-1] * r[:-1]))
    return float(np.sum(r[:-1] * r[1:]) / den) if den > 0 else 1.0


def mean_gain(run: np.ndarray, centroid: np.ndarray, min_frames: int = 3, frames: int = 8) -> float:
    from .visits import window_means

    best_mean = float(np.linalg.norm(window_means(run, min_frames, frames) - centroid, axis=1).min())
    best_frame = float(np.linalg.norm(run - centroid, axis=1).min())
    return best_mean / best_frame if best_frame > 0 else 1.0


def _summary(values: Sequence[float]) -> dict:
    if not values:
        return {"runs": 0}
    v = np.asarray(values)
    return {"runs": int(v.size), "median": round(float(np.median(v)), 3), "mean": round(float(v.mean()), 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3),
            "p10": round(float(np.percentile(v, 10)), 3), "p90": round(float(np.percentile(v, 90)), 3)}


def figures(pairs: Sequence[tuple[Track, np.ndarray]], seconds: float, min_frames: int, frames: int) -> dict:
    corr, gain = [], []
    for track, centroid in pairs:
        for run in runs(at_fps(track, CHECK_FPS), seconds):
            if len(run) >= frames:
                corr.append(correlation(run))
                gain.append(mean_gain(run, centroid, min_frames, frames))
    return {"correlation": _summary(corr), "mean_gain": _summary(gain)}


def verdict(generated: dict, real: dict) -> dict:
    """Whether the generated medians lie in the real runs' range, and averaging looks no better."""
    out = {}
    for name in ("correlation", "mean_gain"):
        g, r = generated[name], real[name]
        if not g.get("runs") or not r.get("runs"):
            raise EvaluationError(f"no runs to compare for {name}")
        out[name] = bool(r["min"] <= g["median"] <= r["max"])
    out["averaging_no_better_than_real"] = bool(generated["mean_gain"]["median"] >= real["mean_gain"]["median"])
    out["ok"] = all(out.values())
    return out


def still_vector(pipeline, path: Path) -> np.ndarray | None:
    """One still's descriptor as the enrolment path takes it (cached)."""
    from ..vision.image_io import read_image
    from ..vision.pipeline import central_face

    key = _key("still", _file_id(path), pipeline.embedder.name)
    cached = cache_dir() / f"{key}.npy"
    if cached.is_file():
        v = np.load(cached)
        return None if not v.any() else v
    rgb = read_image(path)
    try:
        face = central_face(pipeline.faces(rgb, still=True), rgb.shape[1], rgb.shape[0])
        v = None if face is None else pipeline.embed(rgb, face).vector.copy()
    finally:
        pipeline.wipe()
        rgb.fill(0)
    np.save(cached, np.zeros(128, np.float32) if v is None else v)
    return v


@dataclass(frozen=True)
class Person:
    """A generated visitor: ``clips`` approach clips made from ``stills`` (paths), and the
    centroid of ``templates`` other images of the identity (None if it has too few)."""

    identity: str
    stills: tuple[Path, ...]
    templates: tuple[Path, ...]


def identity_seed(identity: str, seed: int) -> int:
    """A visitor's seed: stable whichever identities a run subsamples."""
    return (int(hashlib.sha1(identity.encode()).hexdigest()[:8], 16) + seed) % 2**31


def visitor_track(pipeline, person: Person, k: int, base: ApproachOptions, seed: int) -> Track | None:
    """The ``k``-th generated approach visit of ``person`` (its ``k``-th still, its own walk)."""
    s = identity_seed(person.identity, seed) + k
    return generated_track(pipeline, person.stills[k], walk(base, s), s)


def people(folder: Path, templates: int, clips: int, limit: int | None, seed: int) -> list[Person]:
    """Identities of a labelled still set, each with ``clips`` source stills and up to
    ``templates`` enrolment images (disjoint), subsampled to ``limit`` identities."""
    from .datasets import read_labels

    by_id: dict[str, list[Path]] = {}
    for path, identity in read_labels(folder):
        by_id.setdefault(identity, []).append(path)
    rng = np.random.default_rng(seed)
    names = sorted(by_id)
    if limit is not None and limit < len(names):
        names = sorted(rng.choice(names, limit, replace=False).tolist())
    out = []
    for name in names:
        own = np.random.default_rng(identity_seed(name, seed))  # the same stills in any subsample
        files = [by_id[name][k] for k in own.permutation(len(by_id[name]))]
        n_clips = min(clips, max(1, len(files) - 1))
        out.append(Person(name, tuple(files[:n_clips]), tuple(files[n_clips:n_clips + templates])))
    return out


def centroid(pipeline, paths: Sequence[Path]) -> np.ndarray | None:
    vecs = [v for v in (still_vector(pipeline, p) for p in paths) if v is not None]
    return np.mean(vecs, axis=0) if vecs else None


def real_pairs(pipeline, faces_root: Path) -> list[tuple[str, Track, np.ndarray]]:
    """(clip, track, own centroid) for the shared clips with one known person: the webcam
    clips (centroid of 5 spread frames of the other webcam clips) and the stage clip (its
    enrolment photo)."""
    video = faces_root / "video"
    webcam = sorted(video.glob("webcam_person_a_*"))
    loaded = {p: real_faces(pipeline, p) for p in webcam}
    out = []
    for p in webcam:
        others = [real_track(*loaded[q], None) for q in webcam if q != p]
        spread = [t.vecs[np.flatnonzero(t.ok)[np.linspace(0, t.ok.sum() - 1, 5).astype(int)]]
                  for t in others if t.ok.sum() >= 5]
        if spread:
            c = np.concatenate(spread).mean(axis=0)
            out.append((p.name, real_track(*loaded[p], None), c))
    stage, photo = video / "short_hamilton_clip.mp4", faces_root / "examples" / "lin-manuel-miranda.png"
    if stage.is_file() and photo.is_file():
        t = still_vector(pipeline, photo)
        if t is not None:
            frames, fps = real_faces(pipeline, stage)
            out.append((stage.name, real_track(frames, fps, t), t))
    return out


def check(pipeline, faces_root: Path, sets: Sequence[str], options: ApproachOptions, per_set: int = 12,
          seed: int = 0, min_frames: int = 3, frames: int = 8, progress=None) -> dict:
    """Figures of generated clips (``per_set`` identities of each still set, one clip each)
    against the shared real clips, and the verdict."""
    real = real_pairs(pipeline, faces_root)
    if not real:
        raise EvaluationError(f"no real clips with a known person under {faces_root / 'video'}")
    gen: list[tuple[Track, np.ndarray]] = []
    for name in sets:
        for person in people(faces_root / name, 5, 1, per_set, seed):
            c = centroid(pipeline, person.templates)
            track = visitor_track(pipeline, person, 0, options, seed)
            if c is not None and track is not None:
                gen.append((track, c))
        if progress:
            progress(f"{name}: {len(gen)} generated clips so far")
    seconds = 3.0  # one visit budget
    real_fig = figures([(t, c) for _, t, c in real], seconds, min_frames, frames)
    gen_fig = figures(gen, seconds, min_frames, frames)
    per_clip = {name: figures([(t, c)], seconds, min_frames, frames) for name, t, c in real}
    return {"generator": {"version": GENERATOR_VERSION, **asdict(options)}, "fps": CHECK_FPS,
            "run_seconds": seconds, "generated_clips": len(gen), "generated": gen_fig, "real": real_fig,
            "real_per_clip": per_clip, "verdict": verdict(gen_fig, real_fig)}

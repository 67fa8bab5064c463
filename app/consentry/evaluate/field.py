"""`consentry bench --field`: a sustained run on the live camera, as a field tester runs it on
a Pi 4 and a Pi 5 — per-minute frame rate, per-stage p50/p90, time from first detection to
decision, CPU temperature and throttle flags, resident memory. No frame is kept: each one is
zeroed after its step, as in the appliance. `--compare A.json B.json` sets two runs side by side.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..doctor.checks import throttle_flags
from ..doctor.host import Host, RealHost, cpu_celsius
from ..errors import ImageError


def _rss_mb(host: Host) -> float | None:
    status = host.read_text("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


class _Minute:
    def __init__(self, index: int) -> None:
        self.index, self.frames = index, 0
        self.stages: dict[str, list[float]] = {}

    def add(self, timings: dict[str, float]) -> None:
        self.frames += 1
        for stage, ms in timings.items():
            self.stages.setdefault(stage, []).append(ms)

    def summary(self, seconds: float, host: Host) -> dict:
        return {"minute": self.index, "frames": self.frames, "fps": round(self.frames / max(seconds, 1e-9), 2),
                "stages_ms": {k: {"p50": _pct(v, 50), "p90": _pct(v, 90)} for k, v in self.stages.items()},
                "cpu_c": cpu_celsius(host), "throttled": throttle_flags(host), "rss_mb": _rss_mb(host)}


def field_run(recognizer, source, seconds: float, host: Host | None = None, bucket_s: float = 60.0,
              clock: Callable[[], float] = time.monotonic, progress: Callable[[str], None] | None = None) -> dict:
    """Step ``recognizer`` on ``source``'s frames for ``seconds``; one summary per ``bucket_s``."""
    host = host or RealHost()
    start = clock()
    minutes, current = [], _Minute(0)
    first_seen: dict[int, float] = {}
    waits: list[float] = []
    decided: set[int] = set()
    shape = None
    for frame in source.frames():
        now = clock()
        if now - start >= seconds:
            frame.fill(0)
            break
        if now - start >= (current.index + 1) * bucket_s:
            minutes.append(current.summary(bucket_s, host))
            if progress:
                progress(f"minute {current.index + 1}: {minutes[-1]['fps']} fps")
            current = _Minute(current.index + 1)
        shape = shape or frame.shape
        step0 = time.perf_counter()
        results = recognizer.step(frame, now=now)
        timings = {**recognizer.tracker.timings, "frame": (time.perf_counter() - step0) * 1000.0}
        frame.fill(0)
        current.add(timings)
        for r in results:
            first_seen.setdefault(r.track_id, now)
            if r.state != "pending" and r.track_id not in decided:
                decided.add(r.track_id)
                waits.append(now - first_seen[r.track_id])
    elapsed = clock() - start
    if current.frames:
        minutes.append(current.summary(max(elapsed - current.index * bucket_s, 1e-9), host))
    recognizer.wipe_visits()
    fps = [m["fps"] for m in minutes]
    return {
        "source": getattr(source, "name", "?"), "frame_size": list(shape[:2][::-1]) if shape else None,
        "seconds": round(elapsed, 1), "frames": sum(m["frames"] for m in minutes), "minutes": minutes,
        "fps": {"median": _pct(fps, 50), "min": min(fps, default=None)},
        "time_to_decision_s": {"p50": _pct(waits, 50), "p90": _pct(waits, 90), "decisions": len(waits)},
        "cpu_c_max": max((m["cpu_c"] for m in minutes if m["cpu_c"] is not None), default=None),
        "throttled_any": any(m["throttled"] for m in minutes if m["throttled"]),
        "rss_mb_max": max((m["rss_mb"] for m in minutes if m["rss_mb"] is not None), default=None),
    }


def compare(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """A table of two field runs: the headline figures and each stage's p50, with B / A."""
    def stage_p50(run: dict, stage: str) -> float | None:
        values = [m["stages_ms"][stage]["p50"] for m in run["minutes"] if stage in m["stages_ms"]]
        return _pct(values, 50)

    rows = [("fps (median of minutes)", a["fps"]["median"], b["fps"]["median"]),
            ("time to decision p50 (s)", a["time_to_decision_s"]["p50"], b["time_to_decision_s"]["p50"]),
            ("CPU max (°C)", a["cpu_c_max"], b["cpu_c_max"]), ("RSS max (MB)", a["rss_mb_max"], b["rss_mb_max"])]
    stages = sorted({s for run in (a, b) for m in run["minutes"] for s in m["stages_ms"]})
    rows += [(f"{s} p50 (ms)", stage_p50(a, s), stage_p50(b, s)) for s in stages]
    lines = [f"{'':32} {names[0][:14]:>14} {names[1][:14]:>14} {'B / A':>8}"]
    for label, x, y in rows:
        ratio = f"{y / x:.2f}" if isinstance(x, int | float) and isinstance(y, int | float) and x else "-"
        lines.append(f"{label:32} {_fmt(x):>14} {_fmt(y):>14} {ratio:>8}")
    lines.append(f"{'throttled at any time':32} {str(a['throttled_any']):>14} {str(b['throttled_any']):>14}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def plot_field(run: dict, path: Path, size: tuple[int, int] = (800, 400)) -> None:
    """fps (blue) and CPU temperature (red, when present) per minute, on OpenCV."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, 60, 20, 40
    minutes = run["minutes"]
    n = max(len(minutes) - 1, 1)

    def series(values: list[float | None], lo: float, hi: float, colour) -> None:
        def y(v: float) -> int:
            return int(top + (1 - (v - lo) / max(hi - lo, 1e-9)) * (h - top - bottom))
        pts = [(int(left + i / n * (w - left - right)), y(v)) for i, v in enumerate(values) if v is not None]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1)

    fps = [m["fps"] for m in minutes]
    series(fps, 0.0, max(fps, default=1.0) * 1.1, (31, 119, 180))
    series([m["cpu_c"] for m in minutes], 20.0, 90.0, (214, 39, 40))
    cv2.putText(img, f"fps (0-{max(fps, default=1.0) * 1.1:.0f}, blue); CPU 20-90 C (red); per minute",
                (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise ImageError(f"could not write plot {path}")


def run_field(settings, home: Path | None, minutes: float, source_spec: str | None,
              out: Callable[[str], None]) -> dict:
    """The configured camera (or ``source_spec``) and the vault's door gallery when there is one
    (otherwise nobody is enrolled and every decision is ``unknown``), for ``minutes``."""
    from ..app import choose_opener
    from ..camera.supervisor import SupervisedSource
    from ..decide.recognizer import recognizer_from_settings
    from ..errors import ConsentryError
    from ..match import gallery_from_vault, policy_from_config
    from ..vault.factory import open_vault

    recognizer = recognizer_from_settings(settings)
    vault = None
    try:
        vault = open_vault(settings.vault, home)
        gallery = gallery_from_vault(vault, recognizer.tracker.pipeline.embedder.name,
                                     policy_from_config(settings.match), "door").gallery
        recognizer.gallery.close()
        recognizer.gallery = gallery
    except ConsentryError as exc:
        out(f"no vault ({exc}): nobody is enrolled, every decision is unknown")
    source = SupervisedSource(choose_opener(source_spec, settings, out), stall_seconds=settings.camera.stall_seconds,
                              reopen_max_seconds=settings.camera.reopen_max_seconds, replay=True)
    try:
        with recognizer:
            return field_run(recognizer, source, minutes * 60.0, progress=out)
    finally:
        source.close()
        if vault is not None:
            vault.close()

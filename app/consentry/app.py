"""The appliance loop, wired top to bottom and stopped in reverse.

Until the decision rooms exist it only reports what it sees: face counts and timings per
frame, nothing about who anyone is.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

from .camera import FrameSource, open_source
from .config import Settings
from .errors import CameraError
from .vision.factory import pipeline_from_config

log = logging.getLogger(__name__)


def choose_source(spec: str | None, announce: Callable[[str], None]) -> FrameSource:
    """The requested source; with none requested, the first camera or else the demo."""
    if spec:
        return open_source(spec)
    try:
        return open_source("opencv:0")
    except CameraError:
        announce("no camera found: running the demo source (a public-domain test image)")
        return open_source("demo")


def run(settings: Settings, source_spec: str | None, *, max_frames: int | None = None,
        out: Callable[[str], None] = print) -> int:
    """Run until the source ends, ``max_frames`` is reached, or SIGINT/SIGTERM."""
    stop = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    pipeline = pipeline_from_config(settings.vision)
    source = choose_source(source_spec, out)
    out(f"consentry: source {source.name}, runtime {pipeline.runtime}, detector {settings.vision.detector}")
    count = 0
    try:
        for frame in source.frames():
            start = time.perf_counter()
            faces = pipeline.faces(frame)
            ms = (time.perf_counter() - start) * 1000.0
            count += 1
            out(f"frame {count}: {len(faces)} face(s), {ms:.1f} ms")
            if stop or (max_frames is not None and count >= max_frames):
                break
    finally:
        source.close()
        pipeline.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return count

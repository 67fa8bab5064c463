"""`tracking.pipeline = "detect-ahead"`: the same observations as the serial tracker, one frame
later, from real models; the frame copies it holds are zeroed."""

from __future__ import annotations

import numpy as np
from consentry.vision.pipeline import FacePipeline
from consentry.vision.tracking import AheadTracker, FaceTracker


def frames(astronaut: np.ndarray, n: int = 6) -> list[np.ndarray]:
    return [np.ascontiguousarray(astronaut[:, dx: astronaut.shape[1] - 40 + dx]) for dx in range(0, 8 * n, 8)][:n]


def summary(observations) -> list[tuple]:
    return [(o.track_id, tuple(round(float(v), 3) for v in o.face.detection.box[:4]),
             None if o.embedding is None else o.embedding.vector.copy()) for o in observations]


def test_detect_ahead_gives_the_serial_observations_one_frame_later_and_keeps_no_frame(pipeline, manifest,
                                                                                      astronaut):
    serial, ahead = FaceTracker(pipeline), AheadTracker(FacePipeline(manifest=manifest))
    by_serial, by_ahead, previous = [], [], None
    try:
        for frame in frames(astronaut):
            by_serial.append(summary(serial.process(frame.copy())))
            serial.wipe()
            mine = frame.copy()
            got = ahead.process(mine)
            mine.fill(0)  # the caller's frame is gone: the tracker works on its own copy
            assert (ahead.observed_frame is None) == (previous is None)
            if previous is not None:
                assert np.array_equal(ahead.observed_frame, previous)
            by_ahead.append(summary(got))
            held = ahead.observed_frame
            ahead.wipe()
            ahead.release()
            assert held is None or not held.any(), "the observed copy is zeroed once released"
            previous = frame
        assert by_ahead[0] == []
        for lagged, expected in zip(by_ahead[1:], by_serial[:-1], strict=True):
            assert [o[:2] for o in lagged] == [o[:2] for o in expected] and lagged
            for (_, _, a), (_, _, b) in zip(lagged, expected, strict=True):
                assert (a is None) == (b is None) and (a is None or np.allclose(a, b, atol=1e-5))
    finally:
        copies = ahead._copies
        ahead.close()
    assert all(c is None or not c.any() for c in copies), "close() zeroes the frame in flight too"

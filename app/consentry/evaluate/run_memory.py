"""Peak memory of the real appliance: `consentry run` with N subjects enrolled.

A temporary home gets a new vault with ``size`` synthetic subjects (one random unit template
each, door consent), then `consentry run --profile door` runs as a child process over a finite
folder of frames (with MQTT off unless a config is given); its peak resident set (VmHWM,
sampled every 20 ms while it runs) is what a device with that many enrolled needs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import EvaluationError

_POLL_S = 0.02
_CONSENT = ("bench", "1", "ab" * 32, "2026-01-01T00:00:00+00:00", "cli", "bench", 365, "adult", ("door",))


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident set so far (kB). Read from /proc while it runs, not from
    wait4: a spawned child's ru_maxrss starts at the size of the process that spawned it
    (the kernel folds the pre-exec image in), which is this bench's own few hundred MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:  # it has just exited
        pass
    return 0


def enrol_synthetic(home: Path, model: str, size: int, seed: int = 0) -> float:
    """A new vault under ``home`` holding ``size`` subjects of one random template each;
    returns the seconds it took."""
    from ..vault import ConsentRecord, KeyFile, Vault

    start = time.perf_counter()
    KeyFile(home / "master.key").create()
    rng = np.random.default_rng(seed)
    vault = Vault(home, KeyFile(home / "master.key"), create=True)
    try:
        consent = ConsentRecord(*_CONSENT)
        for i in range(size):
            v = rng.standard_normal(128).astype(np.float32)
            vault.enroll(f"bench {i}", consent, [v / np.linalg.norm(v)], model)
    finally:
        vault.close()
    return time.perf_counter() - start


def run_peak_rss(images: Path, model: str, size: int, frames: int = 60, config: Path | None = None) -> dict:
    """Peak RSS (MB) of `consentry run` over ``frames`` frames of the folder ``images`` with
    ``size`` enrolled subjects and with none (``gallery_mb``: the difference), and the wall
    time of the run with ``size``. The largest frame weighs in too: detect-ahead holds two
    copies of it, so a folder of large stills peaks well above a camera's frames."""
    with_gallery = _one_run(images, model, size, frames, config)
    empty = _one_run(images, model, 0, frames, config)
    return {**with_gallery, "peak_rss_mb_none_enrolled": empty["peak_rss_mb"],
            "gallery_mb": round(with_gallery["peak_rss_mb"] - empty["peak_rss_mb"], 1)}


def _one_run(images: Path, model: str, size: int, frames: int, config: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="consentry-rss-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        enrol_s = enrol_synthetic(home, model, size)
        cfg = config
        if cfg is None:  # no broker to talk to: the run must not publish bench frames anywhere
            cfg = Path(tmp) / "consentry.toml"
            cfg.write_text("[mqtt]\nenabled = false\n")
        argv = [sys.executable, "-m", "consentry.cli", "--config", str(cfg), "--home", str(home), "run",
                "--profile", "door", "--source", f"dir:{images}", "--exit-at-end", "--frames", str(frames)]
        log = Path(tmp) / "run.log"
        start = time.perf_counter()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
            peak = 0
            while proc.poll() is None:
                peak = max(peak, _vm_hwm_kb(proc.pid))
                time.sleep(_POLL_S)
        code = proc.returncode
        wall = time.perf_counter() - start
        output = log.read_text(errors="replace")
    if code != 0:
        raise EvaluationError(f"consentry run exited with {code}: {output[-500:]}")
    loaded = re.search(r"(\d+) subject\(s\)", output)
    return {"enrolled": size, "loaded": int(loaded.group(1)) if loaded else None, "frames": frames,
            "peak_rss_mb": round(peak / 1024.0, 1), "run_s": round(wall, 2), "enrol_s": round(enrol_s, 2)}

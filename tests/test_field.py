"""`consentry bench --field` on a fake camera and a faked Pi (temperature, throttle flags,
memory), its plot, and `--compare` of two runs."""

from __future__ import annotations

import json

import numpy as np
from consentry.cli import main
from consentry.config import Settings
from consentry.decide.recognizer import recognizer_from_settings
from consentry.doctor.host import FakeHost
from consentry.evaluate.field import compare, field_run, plot_field

PI = FakeHost(files={"/sys/class/thermal/thermal_zone0/temp": "61300", "/proc/self/status": "VmRSS:\t 204800 kB\n"},
              commands={"vcgencmd get_throttled": "throttled=0x20002\n"})


class Ticks:
    """A clock that advances 0.1 s per reading: the run's length does not depend on this machine."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.1
        return self.t


class Handed:
    """A source that hands out its own arrays, so the test can see what became of them."""

    name = "handed"

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.shown = frames

    def frames(self):
        yield from self.shown


def run(astronaut, frames: int = 12) -> tuple[dict, list[np.ndarray]]:
    shown = [astronaut.copy() for _ in range(frames)]
    camera = Handed(shown)
    s = Settings()
    recognizer = recognizer_from_settings(s.model_copy(update={"tracking": s.tracking.model_copy(
        update={"visit_seconds": 0.5})}))  # the stranger's visit ends within the 3 s run
    with recognizer:
        result = field_run(recognizer, camera, seconds=3.0, host=PI, bucket_s=1.0, clock=Ticks())
    return result, shown


def test_a_field_run_reports_each_minute_and_keeps_no_frame(astronaut):
    result, shown = run(astronaut)
    assert result["frames"] >= 10 and len(result["minutes"]) >= 2
    first = result["minutes"][0]
    assert {"detect+landmarks", "align+embed", "frame"} <= set(first["stages_ms"])
    assert first["cpu_c"] == 61.3 and first["throttled"] == 0x20002 and first["rss_mb"] == 200.0
    assert result["throttled_any"] and result["cpu_c_max"] == 61.3
    assert result["time_to_decision_s"]["decisions"] == 1  # the astronaut is nobody: decided unknown
    assert all(not np.any(f) for f in shown[:result["frames"]]), "every frame stepped is zeroed"


def test_two_runs_compare_side_by_side_and_plot(astronaut, tmp_path, capsys):
    a, _ = run(astronaut)
    b = json.loads(json.dumps(a))
    for m in b["minutes"]:
        m["fps"] *= 2
    b["fps"]["median"] *= 2
    table = compare(a, b, ("pi4", "pi5"))
    assert "pi4" in table and "pi5" in table
    fps_line = next(line for line in table.splitlines() if line.startswith("fps"))
    assert fps_line.split()[-1] == "2.00"
    files = []
    for name, r in (("pi4", a), ("pi5", b)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(r))
    assert main(["bench", "--compare", str(files[0]), str(files[1])]) == 0
    assert "time to decision" in capsys.readouterr().out
    plot_field(a, tmp_path / "field.png")
    assert (tmp_path / "field.png").stat().st_size > 1000

"""Human-readable eval output: pipelines side by side, one row per figure."""

from __future__ import annotations

import json

ROWS = (
    ("pairs", lambda r: r["pairs"]),
    ("accuracy 10-fold", lambda r: f"{r['accuracy_10fold']['mean']:.4f} ± {r['accuracy_10fold']['std']:.4f}"),
    ("threshold", lambda r: r["threshold"]),
    ("accuracy at threshold", lambda r: f"{r['accuracy_at_threshold']:.4f}"),
    ("TAR @ FAR 1e-2", lambda r: r["tar_at_far"]["1e-2"]["tar"]),
    ("TAR @ FAR 1e-3", lambda r: r["tar_at_far"]["1e-3"]["tar"]),
    ("EER", lambda r: r["eer"]),
    ("ROC AUC", lambda r: r["auc"]),
    ("failed to acquire (images)", lambda r: r["failures_to_acquire"]["images"]),
    ("open-set rank-1", lambda r: r["open_set"]["rank1"]),
    ("open-set DIR @ FPIR 1e-2", lambda r: r["open_set"]["dir_at_fpir"]["1e-2"]["dir"]),
    ("open-set DIR @ FPIR 1e-3", lambda r: r["open_set"]["dir_at_fpir"]["1e-3"]["dir"]),
    ("strangers matched at config", lambda r: r["open_set"]["at_configured_policy"]["stranger_false_match_rate"]),
)


def side_by_side(result: dict) -> str:
    columns = [result, *result.get("compared", {}).values()]
    names = [c["pipeline"] for c in columns]
    width = max(28, *(len(n) + 2 for n in names))
    lines = [f"{'':30s}" + "".join(f"{n:>{width}s}" for n in names)]
    for label, get in ROWS:
        cells = []
        for c in columns:
            try:
                cells.append(str(get(c)))
            except KeyError:
                cells.append("-")
        if any(cell != "-" for cell in cells):
            lines.append(f"{label:30s}" + "".join(f"{cell:>{width}s}" for cell in cells))
    return "\n".join(lines)


def print_eval(result: dict, as_json: bool) -> None:
    print(json.dumps(result) if as_json else side_by_side(result))

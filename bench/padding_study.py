"""How the causal rule's forward padding moves each F1, on cached bench scores (no refit).

Padding (``event_padding``: rows flagged after each flagged row) lengthens events. Overlap-segment
F1 counts a labelled window as found when any event overlaps it and merges nearby alarms into one,
so it can rise with padding while the events say less about *when* the series misbehaved.
Orion's weighted-segment F1 and point-wise F1 weigh time and show that cost. This script puts the
raw scores kept by ``anomaly bench ... --cache DIR`` through the defaults' rule at several paddings
and prints, per group, the mean over seeds of the three F1s for the LSTM and PCA. Usage (several
caches of one group joined by ``+``, one per seed):

    python bench/padding_study.py NAME=CACHE_DIR::GLOB[+CACHE_DIR::GLOB...] ... [--pads 100,200,400,600]
"""

from __future__ import annotations

import sys

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import load, results  # noqa: E402  (bench/ is not a package)

from anomaly.research.bench import make_detector, pool, post_params  # noqa: E402

RULE = post_params(make_detector())  # the detector's defaults, as the bench applies them; padding varies
METHODS = ("lstm", "pca")
METRICS = ("overlap_segment", "weighted_segment", "pointwise")


def f1s(runs: list[list[dict]], pad: int) -> dict[str, np.ndarray]:
    """Per method, the mean over seeds of (overlap-segment, weighted-segment, point-wise) F1."""
    per_seed = [
        pool(results(series, {**RULE, "pad": pad}, methods=METHODS, benched_span=True), methods=METHODS) for series in runs
    ]
    return {m: np.mean([[p[m][metric]["f1"] for metric in METRICS] for p in per_seed], axis=0) for m in METHODS}


def main(argv: list[str]) -> None:
    pads = [100, 200, 400, 600]
    groups = {}
    for arg in argv:
        if arg.startswith("--pads="):
            pads = [int(p) for p in arg.split("=", 1)[1].split(",")]
        else:
            name, spec = arg.split("=", 1)
            groups[name] = [load(part) for part in spec.split("+")]
    print(
        "| padding | group | LSTM overlap-segment | LSTM weighted-segment | LSTM point-wise | PCA overlap-segment | PCA weighted-segment |"
    )
    print("|---|---|---|---|---|---|---|")
    for pad in pads:
        for name, runs in groups.items():
            f = f1s(runs, pad)
            lstm, pca = f["lstm"], f["pca"]
            print(f"| {pad} | {name} | {lstm[0]:.3f} | {lstm[1]:.3f} | {lstm[2]:.3f} | {pca[0]:.3f} | {pca[1]:.3f} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

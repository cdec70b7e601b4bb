"""Choose the causal (trailing) flagging settings by leave-one-group-out on cached bench scores.

``anomaly bench ... --cache DIR`` keeps every method's raw per-timestamp score and its raw held-out
normal scores. This script puts them through :func:`anomaly.research.bench.flags_for` with ``rule="trailing"``
over a grid, pools TP/FP/FN per group, and for each group picks the setting best on the *other*
groups (mean F1), reporting that group's F1 under it: the honest estimate for unseen data. Usage:

    python bench/trailing_study.py NAME=CACHE_DIR::GLOB[+CACHE_DIR::GLOB...] ... [--methods lstm,pca,zscore] [--grid JSON]

Several caches joined by ``+`` (the same group fitted with other seeds) count by the mean of their
F1 scores, so settings are chosen on the mean of the seeds, as they are reported. The grid around
the product's defaults; ``"smoothing": "benched"`` (the default) smooths each series over the span
the bench used on it, which grows with the fit's stride (a number: that span for every series).
"""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import benched, leave_one_group_out, load  # noqa: E402  (bench/ is not a package)

from anomaly.research.bench import evaluate, expand, flags_for, make_detector, pool, post_params  # noqa: E402

DEFAULTS = post_params(make_detector())  # the product's flagging settings
BENCHED = "benched"  # each series smoothed over the span the bench used on it
GRID = {
    "k": [5.0, 6.0, 7.0, 8.0],
    "trailing": [1000, 2000, 3000, 5000],
    "prune": [0.0, 0.13],
    "cap": [DEFAULTS["cap"]],
    "pad": [DEFAULTS["pad"]],
    "smoothing": [BENCHED],
    "root": [DEFAULTS["root"]],
    "exclude": [DEFAULTS["exclude"]],
}
TOP = 12  # settings printed, best first
BASE = {"rule": "trailing", "window_frac": 0.33, "merge_gap": 0, "min_length": 1}


def group_f1(series: list[dict], post: dict, method: str) -> tuple[float, tuple[int, int, int], float]:
    """Pooled overlap-segment F1, its TP/FP/FN, and the point-wise F1 of ``method`` on a group."""
    rows = []
    for s in series:
        factor = int(s["factor"][0]) if "factor" in s else 1
        # the benched span; caches written before December 6 2026 do not hold it: the default span there
        rule = benched({**post, "smoothing": DEFAULTS["smoothing"]}, s) if post["smoothing"] == BENCHED else post
        flags = expand(flags_for(s[method], rule, normal_raw=s.get(f"{method}_normal_raw")), factor, len(s["index"]))
        rows.append({"methods": {method: {**evaluate(s["index"], flags, s["labels"]), "fit_s": 0.0, "score_s": 0.0}}})
    pooled = pool(rows, (method,))[method]
    seg = pooled["overlap_segment"]
    return seg["f1"], (seg["tp"], seg["fp"], seg["fn"]), pooled["pointwise"]["f1"]


def seeds_f1(runs: list[list[dict]], post: dict, method: str) -> tuple[float, list, float]:
    """:func:`group_f1` averaged over the caches of one group (one per seed): mean F1, counts, mean point-wise F1."""
    each = [group_f1(series, post, method) for series in runs]
    return float(np.mean([e[0] for e in each])), [e[1] for e in each], float(np.mean([e[2] for e in each]))


def main(argv: list[str]) -> None:
    methods, grid = ["lstm"], GRID
    groups = {}
    for arg in argv:
        if arg.startswith("--methods="):
            methods = arg.split("=", 1)[1].split(",")
        elif arg.startswith("--grid="):
            grid = {**GRID, **json.loads(arg.split("=", 1)[1])}
        else:
            name, spec = arg.split("=", 1)
            groups[name] = [load(part) for part in spec.split("+")]
    keys = list(grid)
    configs = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for method in methods:
        table = {}
        for c in configs:
            post = {**BASE, **c}
            table[json.dumps(c)] = {g: seeds_f1(runs, post, method) for g, runs in groups.items()}
        names = list(groups)
        mean = {c: float(np.mean([table[c][g][0] for g in names])) for c in table}
        best = max(mean, key=mean.get)
        print(f"== {method}: best over all groups (mean F1 {mean[best]:.3f}): {best}")
        print("   " + "  ".join(f"{g} {table[best][g][0]:.3f} {table[best][g][1]}" for g in names))
        leave_one_group_out(table, names, indent="   ")
        for c in sorted(mean, key=mean.get, reverse=True)[:TOP]:
            print(
                f"   {mean[c]:.3f} {c} "
                + " ".join(f"{table[c][g][0]:.3f}" for g in names)
                + "  point-wise "
                + " ".join(f"{table[c][g][2]:.3f}" for g in names)
            )


if __name__ == "__main__":
    main(sys.argv[1:])

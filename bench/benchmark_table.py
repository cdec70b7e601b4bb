"""Markdown table of pooled figures from cached raw scores (see ``postprocess_study.py``).

python bench/benchmark_table.py '{"rule": "ksigma", ...}' NAME=CACHE_SPEC ... [--abs-zscore] [--benched-span]

``--benched-span``: each series' score smoothed over the span ``anomaly bench`` used on it (it grows
with the fit's stride), as the bench's own table is; otherwise every series over ``smoothing``.
"""

from __future__ import annotations

import json
import sys

from postprocess_study import DEFAULT_POST, load, results

from anomaly.research.bench import pool


def main(argv: list[str]) -> None:
    abs_z, benched_span = "--abs-zscore" in argv, "--benched-span" in argv
    argv = [a for a in argv if a not in ("--abs-zscore", "--benched-span")]
    post = {**DEFAULT_POST, **json.loads(argv[0])}
    print("| dataset | series | LSTM AE F1 (P / R) | TP/FP/FN | LSTM pw-F1 | LSTM PA-F1* | PCA F1 | z-score F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for item in argv[1:]:
        name, spec = item.split("=", 1)
        series = load(spec)
        p = pool(results(series, post, abs_zscore=abs_z, benched_span=benched_span))
        seg = p["lstm"]["overlap_segment"]
        print(
            f"| {name} | {len(series)} | **{seg['f1']:.3f}** ({seg['precision']:.2f} / {seg['recall']:.2f}) | "
            f"{seg['tp']}/{seg['fp']}/{seg['fn']} | {p['lstm']['pointwise']['f1']:.3f} | "
            f"{p['lstm']['point_adjusted_optimistic']['f1']:.3f} | {p['pca']['overlap_segment']['f1']:.3f} | "
            f"{p['zscore']['overlap_segment']['f1']:.3f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

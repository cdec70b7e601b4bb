"""Markdown table of pooled figures from cached raw scores (see ``postprocess_study.py``).

python bench/benchmark_table.py '{"rule": "ksigma", ...}' NAME=CACHE_SPEC ... [--abs-zscore]
"""

from __future__ import annotations

import json
import sys

from postprocess_study import DEFAULT_POST, load, results

from anomaly.research.bench import pool


def main(argv: list[str]) -> None:
    abs_z = "--abs-zscore" in argv
    argv = [a for a in argv if a != "--abs-zscore"]
    post = {**DEFAULT_POST, **json.loads(argv[0])}
    print("| dataset | series | LSTM AE F1 (P / R) | TP/FP/FN | LSTM pw-F1 | LSTM PA-F1* | PCA F1 | z-score F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for item in argv[1:]:
        name, spec = item.split("=", 1)
        series = load(spec)
        p = pool(results(series, post, abs_zscore=abs_z))
        seg = p["lstm"]["overlap_segment"]
        print(
            f"| {name} | {len(series)} | **{seg['f1']:.3f}** ({seg['precision']:.2f} / {seg['recall']:.2f}) | "
            f"{seg['tp']}/{seg['fp']}/{seg['fn']} | {p['lstm']['pointwise']['f1']:.3f} | "
            f"{p['lstm']['point_adjusted_optimistic']['f1']:.3f} | {p['pca']['overlap_segment']['f1']:.3f} | "
            f"{p['zscore']['overlap_segment']['f1']:.3f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Would an ensemble of the LSTM and PCA scores beat either alone? (issue 14, item 4) From bench caches.

``anomaly bench ... --cache DIR`` keeps each method's raw per-timestamp score (the mean over sensors of
the squared error) and its raw held-out normal scores. Each score is divided by its own normal level
(the mean of its held-out normal scores, fixed beforehand: nothing here is tuned), then the two are
joined per row by their mean or their maximum, and the result goes through the detector's default
flagging (:func:`anomaly.research.bench.flags_for`, the causal trailing rule with the defaults). The
held-out normal scores are joined the same way (the last rows both methods have), to seed the rule.
Usage, one argument per group, seeds joined by ``+`` (F1 reported as the mean over seeds):

    python bench/ensemble_study.py SMAP=/c/s0/train-test::A-*+/c/s1/train-test::A-* NAB_art=... ...
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import benched, load  # noqa: E402  (bench/ is not a package)

from anomaly.detector import LSTMAutoencoderDetector  # noqa: E402
from anomaly.research.bench import evaluate, expand, flags_for, pool, post_params, ranking_auc_pr  # noqa: E402

METHODS = ("lstm", "pca", "mean", "max")


def combined(series: dict, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The joined score of one cached series and its joined held-out normal scores."""
    if how in ("lstm", "pca"):
        return series[how], series[f"{how}_normal_raw"]
    normal = {m: np.asarray(series[f"{m}_normal_raw"], dtype=float) for m in ("lstm", "pca")}
    ref = {m: max(float(np.nanmean(v)), 1e-12) for m, v in normal.items()}
    parts = np.stack([series[m] / ref[m] for m in ("lstm", "pca")])
    n = min(len(v) for v in normal.values())
    normal_parts = np.stack([normal[m][-n:] / ref[m] for m in ("lstm", "pca")])
    join = np.nanmean if how == "mean" else np.nanmax
    with warnings.catch_warnings():  # rows no window covers are NaN in both: "mean of empty slice" is expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return join(parts, axis=0), join(normal_parts, axis=0)


def group_f1(runs: list[list[dict]], how: str, post: dict) -> tuple[float, list[tuple[int, int, int]], float]:
    """Mean over seeds of the pooled overlap-segment F1 of ``how`` on one group, each seed's TP/FP/FN,
    and the mean over seeds and series of the AUC-PR."""
    f1s, counts, areas = [], [], []
    for series in runs:
        rows = []
        for s in series:
            score, normal_raw = combined(s, how)
            factor = int(s["factor"][0]) if "factor" in s else 1
            rule = benched(post, s)  # the span the bench smoothed this series over
            flags = expand(flags_for(score, rule, normal_raw=normal_raw), factor, len(s["index"]))
            rows.append({"methods": {how: {**evaluate(s["index"], flags, s["labels"]), "fit_s": 0.0, "score_s": 0.0}}})
            area = ranking_auc_pr(s["index"], score, rule, factor, s["labels"])
            areas += [] if area is None else [area]
        seg = pool(rows, (how,))[how]["overlap_segment"]
        f1s.append(seg["f1"])
        counts.append((seg["tp"], seg["fp"], seg["fn"]))
    return float(np.mean(f1s)), counts, float(np.mean(areas)) if areas else float("nan")


def main(argv: list[str]) -> None:
    post = post_params(LSTMAutoencoderDetector())  # the product's defaults, as `anomaly bench` applies them
    groups = {name: [load(part) for part in spec.split("+")] for name, spec in (a.split("=", 1) for a in argv)}
    print("group".ljust(14) + "".join(f"{m}: F1 TP/FP/FN AUC-PR".rjust(30) for m in METHODS))
    means = {m: [] for m in METHODS}
    for name, runs in groups.items():
        cells = []
        for how in METHODS:
            f1, counts, area = group_f1(runs, how, post)
            means[how].append(f1)
            cells.append(f"{f1:.3f} {'/'.join(map(str, np.sum(counts, axis=0)))} {area:.3f}".rjust(30))
        print(name.ljust(14) + "".join(cells))
    print("mean F1".ljust(14) + "".join(f"{np.mean(v):.3f}".rjust(30) for v in means.values()))


if __name__ == "__main__":
    main(sys.argv[1:])

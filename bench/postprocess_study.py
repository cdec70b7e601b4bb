"""Study post-processing on cached per-timestamp scores, without refitting any model.

``anomaly bench ... --cache DIR`` writes, per series, the raw scores of every method on the scored
rows and the labelled windows (``.npz``, no pickle). This script applies post-processing settings to
them with the same functions the benchmark uses (``anomaly.research.bench.flags_for``/``evaluate``/``pool``) and
prints pooled figures per method. Usage:

    python bench/postprocess_study.py 'CACHE_DIR[::GLOB]' '{"rule": "ksigma", "k": 4}' ... [--abs-zscore] [--benched-span]

Caches written before the z-score baseline returned squared z hold |z|: pass ``--abs-zscore``.
The cap (``{"cap": 3}``, see ``anomaly.postprocess.normal_cap``) needs each method's scores on
held-out normal rows (``METHOD_normal`` in the cache); a method without them is studied uncapped
(caches written before the cap existed hold them for the LSTM only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly.research.bench import METHODS, evaluate, expand, flags_for, pool

DEFAULT_POST = {
    "rule": "ksigma",
    "smoothing": 0,
    "window_frac": 0.33,
    "k": 4.0,
    "prune": 0.0,
    "pad": 0,
    "merge_gap": 0,
    "min_length": 1,
    "root": False,
    "cap": 0.0,
}


def load(spec: str) -> list[dict]:
    folder, _, glob = spec.partition("::")
    out = []
    for path in sorted(Path(folder).glob(glob or "*.npz")):
        with np.load(path, allow_pickle=False) as d:
            item = {k: d[k] for k in d.files}
        item["name"] = path.stem
        item["index"] = pd.DatetimeIndex(item["index"].astype("datetime64[ns]"))
        item["labels"] = [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in item["labels"]]
        out.append(item)
    return out


def benched(post: dict, s: dict) -> dict:
    """``post`` with the score's span the bench used on series ``s`` (it grows with the fit's stride),
    for studies of the defaults as ``anomaly bench`` applies them. Caches written before December 6
    2026 do not hold it: there ``post`` is returned unchanged, so give it the span of that time (20)."""
    return {**post, "smoothing": int(s["smoothing"][0])} if "smoothing" in s else post


def segment_f1(series: list[dict], flags_of, method: str = "lstm") -> tuple[float, tuple[int, int, int]]:
    """Pooled overlap-segment F1 and TP/FP/FN of ``method`` on one cache of a group, each series ``s``
    flagged by ``flags_of(s)`` at its scored (possibly aggregated) rows."""
    rows = []
    for s in series:
        factor = int(s["factor"][0]) if "factor" in s else 1
        flags = expand(flags_of(s), factor, len(s["index"]))
        rows.append({"methods": {method: {**evaluate(s["index"], flags, s["labels"]), "fit_s": 0.0, "score_s": 0.0}}})
    seg = pool(rows, (method,))[method]["overlap_segment"]
    return seg["f1"], (seg["tp"], seg["fp"], seg["fn"])


def seeds_f1(runs: list[list[dict]], flags_of, method: str = "lstm") -> tuple[float, list[tuple[int, int, int]]]:
    """:func:`segment_f1` over the caches of one group (one per seed): the mean F1 and each seed's TP/FP/FN,
    the ``table[setting][group]`` entry :func:`leave_one_group_out` reads."""
    each = [segment_f1(series, flags_of, method) for series in runs]
    return float(np.mean([e[0] for e in each])), [e[1] for e in each]


def leave_one_group_out(table: dict, names: list[str], indent: str = "") -> float:
    """Score each group with the setting best on the *other* groups (mean F1) and print the picks;
    returns the mean of those held-out F1s, the honest estimate for unseen data. ``table[setting][group]``
    is ``(F1, counts)``."""
    if len(names) < 2:
        print(f"{indent}leave-one-group-out needs two groups or more")
        return float("nan")
    logo = []
    for g in names:
        others = {c: np.mean([table[c][h][0] for h in names if h != g]) for c in table}
        pick = max(others, key=others.get)
        logo.append(table[pick][g][0])
        print(f"{indent}leave out {g}: pick {pick} -> {g} F1 {table[pick][g][0]:.3f} {table[pick][g][1]}")
    print(f"{indent}leave-one-group-out mean F1 {np.mean(logo):.3f}")
    return float(np.mean(logo))


def results(series: list[dict], post: dict, methods=METHODS, abs_zscore: bool = False, benched_span: bool = False) -> list[dict]:
    """Per-series results shaped like ``anomaly.research.bench.run_series`` (without timings);
    ``benched_span``: each series' score smoothed over the span the bench used (:func:`benched`)."""
    out = []
    for s in series:
        factor = int(s["factor"][0]) if "factor" in s else 1
        row = {"series": s["name"], "labels": len(s["labels"]), "methods": {}}
        rule = benched(post, s) if benched_span else post
        for m in methods:
            score = s[m] ** 2 if (m == "zscore" and abs_zscore) else s[m]
            flags = expand(
                flags_for(score, rule, normal=s.get(f"{m}_normal"), normal_raw=s.get(f"{m}_normal_raw")), factor, len(s["index"])
            )
            row["methods"][m] = {**evaluate(s["index"], flags, s["labels"]), "fit_s": 0.0, "score_s": 0.0}
        out.append(row)
    return out


def main(argv: list[str]) -> None:
    abs_z, benched_span = "--abs-zscore" in argv, "--benched-span" in argv  # see benchmark_table.py
    argv = [a for a in argv if a not in ("--abs-zscore", "--benched-span")]
    series = load(argv[0])
    for text in argv[1:] or ["{}"]:
        post = {**DEFAULT_POST, **json.loads(text)}
        pooled = pool(results(series, post, abs_zscore=abs_z, benched_span=benched_span))
        print(
            json.dumps({k: v for k, v in post.items() if DEFAULT_POST.get(k) != v}),
            "  ".join(
                f"{m}: F1 {p['overlap_segment']['f1']:.3f} ({p['overlap_segment']['tp']}/{p['overlap_segment']['fp']}/"
                f"{p['overlap_segment']['fn']}) pw {p['pointwise']['f1']:.3f} PA* {p['point_adjusted_optimistic']['f1']:.3f}"
                for m, p in pooled.items()
            ),
        )


if __name__ == "__main__":
    main(sys.argv[1:])

"""Study post-processing on cached per-timestamp scores, without refitting any model.

Reads the ``.npz`` files that ``anomaly bench ... --cache DIR`` writes (raw scores of every method on
the scored rows, the labelled windows) and reports pooled overlap-segment F1 per method for each
post-processing setting given. Usage:

    python bench/postprocess_study.py /tmp/benchcache/smap/train-test '{"rule": "ksigma", "k": 4}' ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly.bench import evaluate, flags_for
from anomaly.metrics import prf

DEFAULT_POST = {"rule": "ksigma", "smoothing": 0, "window_frac": 0.33, "k": 4.0, "prune": 0.0, "pad": 0,
                "merge_gap": 0, "min_length": 1}


def load(folder: str | Path, glob: str = "*.npz") -> list[dict]:
    out = []
    for path in sorted(Path(folder).glob(glob)):
        with np.load(path, allow_pickle=False) as d:
            item = {k: d[k] for k in d.files}
        item["name"] = path.stem
        item["index"] = pd.DatetimeIndex(item["index"].astype("datetime64[ns]"))
        item["labels"] = [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in item["labels"]]
        out.append(item)
    return out


def pooled(series: list[dict], post: dict, methods=("lstm", "pca", "zscore")) -> dict:
    res = {}
    for m in methods:
        tp = fp = fn = 0
        for s in series:
            if m not in s:
                continue
            r = evaluate(s["index"], flags_for(s[m], post), s["labels"])["overlap_segment"]
            tp, fp, fn = tp + r["tp"], fp + r["fp"], fn + r["fn"]
        res[m] = prf(tp, fp, fn)
    return res


def main(argv: list[str]) -> None:
    series = load(argv[0])
    for text in argv[1:] or ["{}"]:
        post = {**DEFAULT_POST, **json.loads(text)}
        r = pooled(series, post)
        print(json.dumps({k: v for k, v in post.items() if DEFAULT_POST.get(k) != v}),
              "  ".join(f"{m}: F1 {v['f1']:.3f} ({v['tp']}/{v['fp']}/{v['fn']})" for m, v in r.items()))


if __name__ == "__main__":
    main(sys.argv[1:])

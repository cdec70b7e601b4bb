"""Would a second, short-span reading of the score catch what the long span dilutes? Leave-one-group-out.

The default score is smoothed over 30 x sqrt(stride) rows: that calms noisy series but dilutes an
isolated spike (NAB realAdExchange's hourly clicks lose everything past a span of about 33). This
script flags every cached series with the product's rule (``anomaly.flagging`` through
``flags_for``, the span the bench used) plus a second reading of a short span ``span2`` and a high
k ``k2`` (the detector's ``spike_smoothing``, ``spike_k``), whose flags are joined; each reading has
its own trail, seed and cap. ``grow``: ``span2`` grows with the stride as the main span does;
``main_scale``: the main span times this (past the default, where the first reading alone
collapses on realAdExchange). It prints each group's mean-of-seeds F1 and TP/FP/FN per setting and
the leave-one-group-out estimate. Usage:

    python bench/second_reading_study.py [--grid=JSON] NAME=CACHE_DIR::GLOB[+...] ...

e.g. ``adex=C/s0/whole::realAd*+C/s1/whole::realAd*+C/s2/whole::realAd*`` for caches written by
``anomaly bench ... --seed S --cache C/sS``. Its December 6 2026 result (five groups, grid
``{"span2":[null,2,3,5,8],"k2":[16,20,25,40],"grow":[false,true]}``): leave-one-group-out 0.720
against 0.734 without the second reading, so ``spike_k`` stays off by default (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from postprocess_study import leave_one_group_out, load  # noqa: E402  (bench/ is not a package)

from anomaly.research.bench import evaluate, expand, flags_for, make_detector, pool, post_params  # noqa: E402

BASE = post_params(make_detector())  # the product's flagging settings; the spike reading's vary
GRID = {"main_scale": [1.0], "span2": [None, 3, 5, 8], "k2": [12, 16, 20], "grow": [False, True]}
DEFAULT_SMOOTHING = make_detector().smoothing  # the span at stride 1: a benched span over it is sqrt(stride)


def group_f1(series: list[dict], setting: dict) -> tuple[float, tuple[int, int, int]]:
    """Pooled overlap-segment F1 and TP/FP/FN of the LSTM on a group under one setting."""
    rows = []
    for s in series:
        factor = int(s["factor"][0]) if "factor" in s else 1
        span = round(int(s["smoothing"][0]) * setting["main_scale"])
        span2 = setting["span2"] or 0
        if setting["grow"]:  # the short span grows with the stride as the main one does (x benched / stride-1 span)
            span2 = round(span2 * int(s["smoothing"][0]) / DEFAULT_SMOOTHING)
        post = {**BASE, "smoothing": span, "spike_k": setting["k2"] if span2 else 0.0, "spike_smoothing": span2}
        flags = flags_for(s["lstm"], post, normal_raw=s.get("lstm_normal_raw"))
        flags = expand(flags, factor, len(s["index"]))
        rows.append({"methods": {"lstm": {**evaluate(s["index"], flags, s["labels"]), "fit_s": 0.0, "score_s": 0.0}}})
    seg = pool(rows, ("lstm",))["lstm"]["overlap_segment"]
    return seg["f1"], (seg["tp"], seg["fp"], seg["fn"])


def main(argv: list[str]) -> None:
    grid = dict(GRID)
    if argv and argv[0].startswith("--grid="):
        grid.update(json.loads(argv.pop(0).split("=", 1)[1]))
    groups = {}
    for arg in argv:
        name, spec = arg.split("=", 1)
        groups[name] = [load(part) for part in spec.split("+")]
    settings = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    settings = [s for s in settings if s["span2"] is not None or (s["k2"], s["grow"]) == (grid["k2"][0], grid["grow"][0])]
    table = {}
    for setting in settings:
        key = json.dumps(
            {**setting, "k2": setting["k2"] if setting["span2"] else None, "grow": setting["grow"] and bool(setting["span2"])}
        )
        table[key] = {}
        for g, runs in groups.items():
            each = [group_f1(series, setting) for series in runs]
            table[key][g] = (float(np.mean([e[0] for e in each])), [e[1] for e in each])
        print(
            f"{np.mean([v[0] for v in table[key].values()]):.3f} {key} "
            + " ".join(f"{g} {v[0]:.3f} {v[1]}" for g, v in table[key].items()),
            flush=True,
        )
    for scale in grid["main_scale"]:
        print(f"main span x {scale}:")
        leave_one_group_out({k: v for k, v in table.items() if json.loads(k)["main_scale"] == scale}, list(groups), "  ")
    leave_one_group_out(table, list(groups))


if __name__ == "__main__":
    main(sys.argv[1:])

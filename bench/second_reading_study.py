"""Would a second, short-span reading of the score catch what the long span dilutes? Leave-one-group-out.

The default score is smoothed over 30 x sqrt(stride) rows: that calms noisy series but dilutes an
isolated spike (NAB realAdExchange's hourly clicks lose everything past a span of about 33). This
script flags every cached series with the product's rule (``anomaly.flagging`` through
``flags_for``, the span the bench used) and again with the same rule over a short span ``span2``
with k ``k2`` and a cap of ``cap2`` times the largest held-out normal value *of that reading* (0:
no cap; a huge ``k2`` leaves the cap alone), and joins the two readings' flags; each reading has
its own trail and seed. ``grow``: ``span2`` grows with the stride as the main span does;
``main_scale``: the main span times this (past the default, where the first reading alone collapses
on realAdExchange). It prints each group's mean-of-seeds F1 and TP/FP/FN per setting and the
leave-one-group-out estimate. Usage:

    python bench/second_reading_study.py [--grid=JSON] NAME=CACHE_DIR::GLOB[+...] ...

e.g. ``adex=C/s0/whole::realAd*+C/s1/whole::realAd*+C/s2/whole::realAd*`` for caches written by
``anomaly bench ... --seed S --cache C/sS``. Its December 6 2026 result: not adopted
(docs/benchmarks.md, "A second, short-span reading of the score").
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from postprocess_study import leave_one_group_out, load, seeds_f1  # noqa: E402  (bench/ is not a package)

from anomaly.research.bench import flags_for, make_detector, post_params  # noqa: E402

BASE = post_params(make_detector())  # the product's flagging settings
GRID = {"main_scale": [1.0], "span2": [None, 3, 5, 8], "k2": [12, 16, 20], "grow": [False, True], "cap2": [3.0]}
DEFAULT_SMOOTHING = make_detector().smoothing  # the span at stride 1: a benched span over it is sqrt(stride)


def joined_flags(setting: dict):
    """Flags of a cached series' LSTM score: the default rule's (its span times ``main_scale``), joined
    with the second reading's when ``span2`` is set."""

    def flags_of(s: dict) -> np.ndarray:
        span = round(int(s["smoothing"][0]) * setting["main_scale"])
        normal = s.get("lstm_normal_raw")
        flags = flags_for(s["lstm"], {**BASE, "smoothing": span}, normal_raw=normal)
        if setting["span2"]:
            span2 = setting["span2"]
            if setting["grow"]:  # the short span grows with the stride as the main one does (x benched / stride-1 span)
                span2 = round(span2 * int(s["smoothing"][0]) / DEFAULT_SMOOTHING)
            second = {**BASE, "smoothing": span2, "k": setting["k2"], "cap": setting["cap2"]}
            flags = flags | flags_for(s["lstm"], second, normal_raw=normal)
        return flags

    return flags_of


def main(argv: list[str]) -> None:
    grid = dict(GRID)
    if argv and argv[0].startswith("--grid="):
        grid.update(json.loads(argv.pop(0).split("=", 1)[1]))
    groups = {}
    for arg in argv:
        name, spec = arg.split("=", 1)
        groups[name] = [load(part) for part in spec.split("+")]
    settings = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    first = {k: v[0] for k, v in grid.items() if k not in ("main_scale", "span2")}
    settings = [s for s in settings if s["span2"] is not None or all(s[k] == v for k, v in first.items())]
    table = {}
    for setting in settings:
        key = json.dumps(setting if setting["span2"] else {"main_scale": setting["main_scale"], "span2": None})
        table[key] = {}
        for g, runs in groups.items():
            table[key][g] = seeds_f1(runs, joined_flags(setting))
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

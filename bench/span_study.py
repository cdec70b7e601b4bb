"""Does the score's EWMA span want to grow with the fit's stride? Leave-one-group-out on cached bench scores.

With ``stride="auto"`` a long normal period is fitted (and scored) on every ``stride``-th window, so
a row's score averages ``window / stride`` window errors instead of ``window``: the noisier that is,
the longer a smoothing span it may need. This script flags every cached series with a span of
``base * stride ** power`` rows (the stride is recomputed from the fit's length, as the detector
does) and reports each group's mean-of-seeds F1 and the leave-one-group-out estimate. Usage:

    python bench/span_study.py [--grid=JSON] BENCHDATA NAME=PROTOCOL=DATASET=CACHE_DIR::GLOB[+...] ...

``DATASET`` is the benchdata folder the group's series come from (``nab``, ``smap``, ``smd``), e.g.
``adex=whole=nab=C/s0/whole::realAd*+C/s1/whole::realAd*+C/s2/whole::realAd*`` for caches written
by ``anomaly bench ../shared/benchdata/nab --series 'realAdExchange/*' --protocol whole --seed S
--cache C/sS``. Its December 6 result chose the default, 30 x sqrt(stride) (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from postprocess_study import leave_one_group_out, load, seeds_f1  # noqa: E402  (bench/ is not a package)

from anomaly.research.bench import (  # noqa: E402
    discover,
    flags_for,
    load_split,
    make_detector,
    post_params,
)

DETECTOR = make_detector()  # the product's defaults
BASE = post_params(DETECTOR)  # its flagging settings; only the span varies
GRID = {"base": [10, 20, 30], "power": [0.0, 0.5, 1.0], "max_span": [80, 160]}


def strides(benchdata: Path, dataset: str, protocol: str) -> dict[str, int]:
    """Each series' stride under the default detector, by cache file stem."""
    out = {}
    for ref in discover(benchdata / dataset):
        fit, _, _ = load_split(ref, protocol)
        out[ref.name.replace("/", "__")] = DETECTOR.resolve_stride(len(fit))
    return out


def span_flags(stride: dict[str, int], setting: dict):
    """Flags of a cached series' LSTM score under a span setting (``base * stride ** power``, capped)."""

    def flags_of(s: dict) -> np.ndarray:
        span = min(setting["max_span"], round(setting["base"] * stride[s["name"]] ** setting["power"]))
        return flags_for(s["lstm"], {**BASE, "smoothing": int(span)}, normal_raw=s.get("lstm_normal_raw"))

    return flags_of


def main(argv: list[str]) -> None:
    grid = dict(GRID)
    if argv and argv[0].startswith("--grid="):
        grid.update(json.loads(argv.pop(0).split("=", 1)[1]))
    benchdata = Path(argv[0])
    groups, stride = {}, {}
    for arg in argv[1:]:
        name, protocol, dataset, spec = arg.split("=", 3)
        groups[name] = [load(part) for part in spec.split("+")]
        stride.update(strides(benchdata, dataset, protocol))
        seen = sorted({stride[s["name"]] for s in groups[name][0]})
        print(f"{name}: {len(groups[name][0])} series, strides {seen}", flush=True)
    settings = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    settings = [s for s in settings if not (s["power"] == 0 and s["max_span"] != grid["max_span"][0])]
    table = {}
    for setting in settings:
        key = json.dumps(setting)
        table[key] = {}
        for g, runs in groups.items():
            table[key][g] = seeds_f1(runs, span_flags(stride, setting))
        print(
            f"{np.mean([v[0] for v in table[key].values()]):.3f} {key} "
            + " ".join(f"{g} {v[0]:.3f}" for g, v in table[key].items()),
            flush=True,
        )
    leave_one_group_out(table, list(groups))


if __name__ == "__main__":
    main(sys.argv[1:])

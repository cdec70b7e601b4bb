"""How far each labelled window is from being found, on cached bench scores.

A missed window is a near miss when its score came close to the threshold in force (then a
post-processing change could find it, at the price of false alarms elsewhere), or far off when the
model's score hardly moved there (then only another model or input can). This script measures it
for the defaults' causal rule, on the raw scores ``anomaly bench ... --cache DIR`` keeps: for every
labelled window, the peak of score / threshold over its rows (1 or more: a row inside it was over
the threshold), whether a flagged run overlapped it (found), and for every false alarm its
score / threshold where it started. Usage (one cache per seed, joined by ``+``):

    python bench/margin_study.py CACHE_DIR::GLOB[+CACHE_DIR::GLOB...] [--method lstm]

Prints one line per labelled window and false alarm, then per seed how many missed windows peaked
within 10%, 25% and 50% of their threshold.
"""

from __future__ import annotations

import sys

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import benched, load  # noqa: E402  (bench/ is not a package)

from anomaly import flagging  # noqa: E402
from anomaly.research.bench import expand, flagged_runs, make_detector, post_params  # noqa: E402

DEFAULTS = post_params(make_detector())  # the detector's defaults, as the bench applies them
BANDS = (0.9, 0.75, 0.5)  # a missed window's peak ratio at or above these counts as "within 10%, 25%, 50%"


def ratio_and_flags(s: dict, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Score / threshold and the flags of one cached series under the defaults, on its original rows."""
    p = benched(DEFAULTS, s)
    normal_raw = s.get(f"{method}_normal_raw", np.empty(0))
    rule = flagging.make_rule(
        normal_raw,
        k=p["k"],
        trailing=p["trailing"],
        cap_factor=p["cap"],
        prune=p["prune"],
        pad=p["pad"],
        smoothing=p["smoothing"],
        root=p["root"],
        exclude=p["exclude"],
    )
    result = flagging.flag(s[method], rule, flagging.seed(normal_raw, rule))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = result.score / result.threshold
    factor = int(s["factor"][0]) if "factor" in s else 1
    n = len(s["index"])
    return np.repeat(ratio, factor)[:n], expand(result.flags, factor, n)


def margins(s: dict, method: str = "lstm") -> tuple[list[dict], list[dict]]:
    """Each labelled window's peak ratio and whether it was found; each false alarm's starting ratio."""
    ratio, flags = ratio_and_flags(s, method)
    index = s["index"]
    windows, inside = [], np.zeros(len(index), dtype=bool)
    for start, end in s["labels"]:
        rows = (index >= start) & (index <= end)
        inside |= rows
        peak = float(np.nanmax(np.where(rows, ratio, np.nan))) if rows.any() else float("nan")
        windows.append({"start": start, "end": end, "peak": peak, "found": bool(flags[rows].any())})
    alarms = [{"start": index[a], "ratio": float(ratio[a])} for a, b in flagged_runs(flags) if not inside[a : b + 1].any()]
    return windows, alarms


def main(argv: list[str]) -> None:
    method = argv[argv.index("--method") + 1] if "--method" in argv else "lstm"
    specs = [a for i, a in enumerate(argv) if a != "--method" and (i == 0 or argv[i - 1] != "--method")]
    for n, spec in enumerate(specs[0].split("+")):
        missed, found, alarms = [], 0, 0
        print(f"seed cache {n}: {spec}")
        for s in load(spec):
            windows, false_alarms = margins(s, method)
            for w in windows:
                mark = "found " if w["found"] else "missed"
                print(f"  {s['name'][:40]:40s} {mark} {w['start']:%Y-%m-%d %H:%M}..{w['end']:%m-%d %H:%M} peak {w['peak']:.2f}")
                found += w["found"]
                missed += [] if w["found"] else [w["peak"]]
            for a in false_alarms:
                print(f"  {s['name'][:40]:40s} false alarm at {a['start']:%Y-%m-%d %H:%M}, ratio {a['ratio']:.2f}")
            alarms += len(false_alarms)
        near = ", ".join(f"{sum(p >= b for p in missed)} within {round((1 - b) * 100)}%" for b in BANDS)
        print(f"  found {found}, missed {len(missed)} ({near}), false alarms {alarms}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])

"""Would averaging the scores of models fitted with other seeds help? A study on cached bench scores.

``anomaly bench ... --seed S --cache DIR`` keeps the LSTM's raw per-timestamp score and its raw
held-out normal scores. Fitting several models and averaging their scores (a seed ensemble) costs
one fit per member; this script measures what it would give without refitting: the members' raw
scores (and held-out normal scores, the same rows for every seed) are averaged and put through the
product's default flagging (:func:`trailing_study.group_f1`). Usage:

    python bench/seed_ensemble_study.py NAME=CACHE_DIR::GLOB+CACHE_DIR::GLOB[+...] ...

For each group it prints the single fits' mean F1, the mean over every pair of caches (a
two-member ensemble, as many "seeds" as pairs) and the ensemble of all of them, with TP/FP/FN.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import load  # noqa: E402  (bench/ is not a package)
from trailing_study import BASE, BENCHED, DEFAULTS, group_f1  # noqa: E402

METHOD = "lstm"
KEYS = (METHOD, f"{METHOD}_normal_raw")  # the raw score and the held-out normal scores that seed the rule


def ensemble(members: list[list[dict]]) -> list[dict]:
    """One cache whose every series holds the mean of the members' raw scores (series matched by name)."""
    out = []
    for parts in zip(*members, strict=True):
        if len({p["name"] for p in parts}) != 1:
            raise ValueError(f"caches hold other series: {', '.join(p['name'] for p in parts)}")
        merged = dict(parts[0])
        for key in KEYS:
            if key in parts[0]:
                merged[key] = np.mean([p[key] for p in parts], axis=0)
        out.append(merged)
    return out


def describe(results: list[tuple[float, tuple[int, int, int], float]]) -> str:
    counts = " · ".join("/".join(map(str, r[1])) for r in results)
    return f"{np.mean([r[0] for r in results]):.3f} ({counts})"


def main(argv: list[str]) -> None:
    post = {**BASE, **DEFAULTS, "smoothing": BENCHED}
    for arg in argv:
        name, spec = arg.split("=", 1)
        runs = [load(part) for part in spec.split("+")]
        single = [group_f1(run, post, METHOD) for run in runs]
        pairs = [group_f1(ensemble(list(pair)), post, METHOD) for pair in itertools.combinations(runs, 2)]
        whole = group_f1(ensemble(runs), post, METHOD)
        line = f"{name} single {describe(single)}"
        if len(runs) > 2:
            line += f" | pairs {describe(pairs)}"
        print(f"{line} | all {len(runs)} {describe([whole])}")


if __name__ == "__main__":
    main(sys.argv[1:])

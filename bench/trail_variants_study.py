"""Variants of the causal rule's trail and a floor under its threshold, on cached bench scores.

Issue 13 left NAB realKnownCause at 0.306 (24 to 33 false alarms per seed, on noisy series whose
quiet stretches pull the trailing threshold down). This script measures what would change it, on
the raw scores that ``anomaly bench ... --cache DIR`` keeps, without refitting:

- ``floor``: the threshold never drops below a level set from the held-out normal scores:
  ``sigma:F`` = F x (mean + k std), ``max:F`` = F x their largest value, ``q:P`` = their P-quantile;
- ``winsor``: a flagged row enters the trail clipped at its threshold (instead of staying out), so
  frequent exceedances raise the bar; padded rows enter as they are;
- ``padin``: flagged rows stay out, padded rows enter the trail;
- ``persist:N``: an alarm starts only at the N-th consecutive row over the threshold (the rows
  before it are not flagged afterwards: the past is never rewritten).

Why a row-by-row loop instead of :mod:`anomaly.flagging`: the variants change what enters the
trail, which the vectorised rule does not expose. The loop with no variant is the product's rule:
the script checks that its flags equal :func:`anomaly.research.bench.flags_for` on every series
before printing anything. Usage (several caches of one group joined by ``+``, one per seed):

    python bench/trail_variants_study.py NAME=CACHE_DIR::GLOB[+CACHE_DIR::GLOB...] ...

Prints, per variant, the mean over seeds of each group's pooled overlap-segment F1, the TP/FP/FN of
each seed, the mean over groups, and the leave-one-group-out figure (each group scored with the
variant best on the others).
"""

from __future__ import annotations

import sys
from collections import deque

import numpy as np

sys.path.insert(0, ".")
from postprocess_study import benched, load, seeds_f1  # noqa: E402  (bench/ is not a package)

from anomaly import flagging  # noqa: E402
from anomaly.research.bench import flags_for, make_detector, post_params  # noqa: E402

DEFAULTS = post_params(make_detector())  # the detector's defaults, as the bench applies them
VARIANTS = [
    "exclude",
    "sigma:0.5",
    "sigma:0.75",
    "sigma:1",
    "max:0.25",
    "max:0.5",
    "max:0.75",
    "q:0.9",
    "q:0.99",
    "winsor",
    "padin",
    "persist:3",
    "persist:6",
    "persist:12",
]


def floor_of(normal: np.ndarray, variant: str, k: float) -> float:
    """The floor a variant puts under the threshold (0: none), from transformed held-out normal scores."""
    kind, _, value = variant.partition(":")
    if kind == "sigma":
        return float(value) * float(normal.mean() + k * normal.std())
    if kind == "max":
        return float(value) * float(normal.max())
    if kind == "q":
        return float(np.quantile(normal, float(value)))
    return 0.0


def variant_flags(raw: np.ndarray, normal_raw: np.ndarray, variant: str, p: dict = DEFAULTS) -> np.ndarray:
    """Flags of ``raw`` under the defaults' rule changed by ``variant`` (``"exclude"``: unchanged)."""
    rule = flagging.TrailingRule(k=p["k"], trailing=p["trailing"], pad=p["pad"], smoothing=p["smoothing"], root=p["root"])
    normal, num, den = flagging.transform(normal_raw, rule)
    normal = normal[np.isfinite(normal)]
    cap = p["cap"] * float(normal.max()) if len(normal) and p["cap"] else np.inf
    floor = floor_of(normal, variant, p["k"]) if len(normal) else 0.0
    score, _, _ = flagging.transform(raw, rule, num, den)
    trail = deque(normal[len(normal) - min(len(normal), p["trailing"]) :].tolist())
    total, squares = float(np.sum(trail)), float(np.sum(np.square(trail)))
    flags, pad_left, over_run = np.zeros(len(score), dtype=bool), 0, 0
    persist = int(variant.split(":")[1]) if variant.startswith("persist:") else 1

    def enter(v: float) -> None:
        nonlocal total, squares
        trail.append(v)
        total, squares = total + v, squares + v * v
        if len(trail) > p["trailing"]:
            old = trail.popleft()
            total, squares = total - old, squares - old * old

    for i, v in enumerate(score):
        if not np.isfinite(v):
            continue  # gaps: never flagged, never in the trail, no padding counted down
        n = len(trail)
        mean = total / n if n else 0.0
        limit = mean + p["k"] * np.sqrt(max(squares / n - mean * mean, 0.0)) if n >= 2 else np.inf
        limit = min(max(limit, floor), cap)
        over_run = over_run + 1 if v > limit else 0
        if v > limit and (over_run >= persist or pad_left > 0):
            flags[i], pad_left = True, p["pad"]
            if variant == "winsor":
                enter(limit)
        elif v > limit:
            continue  # over, but not yet for long enough: not flagged, kept out of the trail
        elif pad_left > 0:
            flags[i], pad_left = True, pad_left - 1
            if variant in ("winsor", "padin"):
                enter(v)
        else:
            enter(v)
    return flags


def check_reference(series: list[dict]) -> None:
    """Stop unless the loop without a variant flags exactly as the product does."""
    for s in series:
        product = flags_for(s["lstm"], benched(DEFAULTS, s), normal_raw=s["lstm_normal_raw"])
        mine = variant_flags(s["lstm"], s["lstm_normal_raw"], "exclude", benched(DEFAULTS, s))
        if not np.array_equal(product, mine):
            sys.exit(f"{s['name']}: the reference loop differs from anomaly.flagging in {int((product != mine).sum())} rows")


def main(argv: list[str]) -> None:
    groups = {}
    for arg in argv:
        name, spec = arg.split("=", 1)
        groups[name] = [load(part) for part in spec.split("+")]
    for runs in groups.values():
        for series in runs:
            check_reference(series)
    table = {}
    for variant in VARIANTS:
        table[variant] = {}
        for name, runs in groups.items():
            table[variant][name] = seeds_f1(
                runs, lambda s, variant=variant: variant_flags(s["lstm"], s["lstm_normal_raw"], variant, benched(DEFAULTS, s))
            )
        means = np.mean([table[variant][g][0] for g in groups])
        cells = "  ".join(f"{g} {f:.3f} {c}" for g, (f, c) in table[variant].items())
        print(f"{variant:10} mean {means:.3f}  {cells}", flush=True)
    logo = {}
    for held in groups:
        others = [g for g in groups if g != held]
        best = max(VARIANTS, key=lambda v: np.mean([table[v][g][0] for g in others]))
        logo[held] = (best, table[best][held][0])
    print(
        "leave-one-group-out:",
        "  ".join(f"{g} {f:.3f} ({v})" for g, (v, f) in logo.items()),
        f" mean {np.mean([f for _, f in logo.values()]):.3f}",
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""The benchmark runner: fit, score and evaluate every series of a labelled dataset folder.

Two layouts (see ``shared/benchdata/README.md``):
- NAB's own: ``CATEGORY/*.csv`` (``timestamp,value``) with ``combined_windows.json``
  (``{"CATEGORY/FILE.csv": [[start, end], ...]}``) in the folder or its parent;
- ``SERIES.train.parquet`` / ``SERIES.test.parquet`` with ``labels.json`` (``{"SERIES": [[start, end], ...]}``).

Protocols: ``train-test`` fits on the training split (normal operation) and scores the test split;
``whole`` fits on and scores the whole series (train + test where split); ``probation`` fits on the
first 15% and scores the rest. Every method (the LSTM detector and two baselines) sees the same
rows, less the same seasonal profiles (the detector's ``seasonal`` setting), and its score goes
through the same post-processing (the detector's own rules), so the figures compare the models,
not the preprocessing or the thresholds. Counts are summed over series before P/R/F1
(Orion's leaderboard convention).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly import metrics, scoring
from anomaly.errors import ConfigError, DataError
from anomaly.events import flagged_runs

PROTOCOLS = ("train-test", "whole", "probation")
METHODS = ("lstm", "pca", "zscore")
PROBATION = 0.15
CONTEXT_PREFIX = "cmd_"  # SMAP's command flags: context, not sensors to score
CONTEXT = False  # when True, CONTEXT_PREFIX columns are LSTM inputs (context_columns), not dropped
MAX_ROWS = 0  # when > 0, series are averaged over blocks of rows so the scored part has at most this many
MIN_FIT_WINDOWS = 8  # aggregation never leaves the fitting part fewer rows than this many windows

# The benchmark measures the detector's own defaults (LSTMAutoencoderDetector()), which are what
# `anomaly train`, the dashboard and the scheduled scorer use: options given to `anomaly bench` override them.


@dataclass
class SeriesRef:
    """One series of a dataset: its name, files and labelled windows (raw, as in the JSON)."""

    name: str
    files: dict[str, Path]  # "whole" or "train"/"test"
    labels: list = field(default_factory=list)


# -- discovery ---------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f'{path}: expected {{"SERIES": [[start, end], ...]}}')
    return raw


log = logging.getLogger("anomaly")


def discover(root: str | Path, pattern: str | None = None) -> list[SeriesRef]:
    """The series of a dataset folder in either layout, filtered by a glob on their names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    refs: list[SeriesRef] = []
    splits = sorted(root.glob("*.train.parquet"))
    if splits:
        labels_path = root / "labels.json"
        if not labels_path.is_file():
            raise DataError(f"{root}: has *.train.parquet files but no labels.json")
        labels = _read_json(labels_path)
        for train in splits:
            name = train.name[: -len(".train.parquet")]
            test = root / f"{name}.test.parquet"
            if not test.is_file():
                raise DataError(f"{train}: no matching {test.name}")
            refs.append(SeriesRef(name, {"train": train, "test": test}, labels.get(name, [])))
    else:
        windows = next((p for p in (root / "combined_windows.json", root.parent / "combined_windows.json") if p.is_file()), None)
        if windows is None:
            raise DataError(f"{root}: neither *.train.parquet + labels.json nor NAB's combined_windows.json found")
        labels = _read_json(windows)
        base = windows.parent
        unlisted = []
        for csv in sorted(root.rglob("*.csv")):
            name = csv.relative_to(base).as_posix()
            if name in labels:
                refs.append(SeriesRef(name, {"whole": csv}, labels[name]))
            elif not pattern or fnmatch.fnmatch(name, pattern):  # warned of only when asked for
                unlisted.append(name)
        if unlisted:  # NAB lists every series, [] for none: a file it does not list is not a series of it
            log.warning("%s: skipping %d CSV file(s) not in %s: %s", root, len(unlisted), windows.name, ", ".join(unlisted[:5]))
    if pattern:
        refs = [r for r in refs if fnmatch.fnmatch(r.name, pattern)]
    if splits:
        for ref in refs:
            if ref.name not in labels:  # every event of it would count as a false alarm
                log.warning("%s: series '%s' has no entry in labels.json; scored as having no anomaly", root, ref.name)
    if not refs:
        raise DataError(f"{root}: no series found" + (f" matching '{pattern}'" if pattern else ""))
    return refs


# -- loading -----------------------------------------------------------------------------------
def _clean(raw: pd.DataFrame, source: str, context: bool = False) -> pd.DataFrame:
    from anomaly.io import clean_frame

    columns = [c for c in raw.columns if c != "timestamp" and (context or not str(c).startswith(CONTEXT_PREFIX))]
    return clean_frame(raw, source, columns=columns, duplicates="mean", max_gap=3)


def load_split(ref: SeriesRef, protocol: str, context: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """``(fit_frame, score_frame, labels)`` of a series under a protocol (labels inside the scored period).

    ``context``: keep the ``CONTEXT_PREFIX`` columns (dropped by default)."""
    from anomaly.io import read_table

    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, not '{protocol}'")
    if protocol == "train-test":
        if "train" not in ref.files:
            raise ConfigError(f"{ref.name}: the train-test protocol needs a training split; use --protocol whole or probation")
        fit = _clean(read_table(ref.files["train"]), str(ref.files["train"]), context)
        scored = _clean(read_table(ref.files["test"]), str(ref.files["test"]), context)
    else:
        if "whole" in ref.files:
            raw = read_table(ref.files["whole"])
            source = str(ref.files["whole"])
        else:
            raw = pd.concat([read_table(ref.files["train"]), read_table(ref.files["test"])], ignore_index=True)
            source = f"{ref.files['train']} + {ref.files['test']}"
        whole = _clean(raw, source, context)
        if protocol == "whole":
            fit = scored = whole
        else:
            cut = int(len(whole) * PROBATION)
            fit, scored = whole.iloc[:cut], whole.iloc[cut:]
    try:
        labels = metrics.parse_labels(ref.labels, scored.index.tz)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{ref.name}: bad label window ({exc})") from None
    first, last = scored.index[0], scored.index[-1]
    return fit, scored, [(s, e) for s, e in labels if s <= last and e >= first]


# -- aggregation (as Orion's time_segments_aggregate): longer context per window, less CPU ----------
def aggregation_factor(n_scored: int, max_rows: int, n_fit: int | None = None, window: int = 1) -> int:
    """Rows per block so that ``n_scored`` rows become at most ``max_rows`` (1: no aggregation).

    With ``n_fit``, the factor is capped so the fitting part keeps at least ``MIN_FIT_WINDOWS *
    window`` rows: a short training split (SMAP's are often a fraction of the test split) must
    still hold enough windows to fit, at the price of more scored rows than ``max_rows``.
    """
    if max_rows <= 0:
        return 1
    factor = max(1, math.ceil(n_scored / max_rows))
    if n_fit is not None:
        factor = min(factor, max(1, n_fit // (MIN_FIT_WINDOWS * window)))
    return factor


def aggregate(frame: pd.DataFrame, factor: int) -> pd.DataFrame:
    """Mean of consecutive blocks of ``factor`` rows, indexed by each block's first timestamp."""
    if factor <= 1:
        return frame
    blocks = np.arange(len(frame)) // factor
    out = frame.groupby(blocks).mean()
    out.index = frame.index[::factor]
    out.index.freq = None
    return out


def expand(flags: np.ndarray, factor: int, n: int) -> np.ndarray:
    """Block flags back to the ``n`` original rows."""
    return np.repeat(np.asarray(flags, dtype=bool), factor)[:n]


# -- methods -----------------------------------------------------------------------------------
def make_detector(params: dict | None = None):
    """The detector the benchmark fits: the package's defaults, ``params`` overriding them (quietly)."""
    from anomaly.detector import LSTMAutoencoderDetector

    settings = {"verbose": 0, **(params or {})}
    known = set(LSTMAutoencoderDetector.param_names())
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"the detector has no parameter(s) {', '.join(unknown)}")
    detector = LSTMAutoencoderDetector(**settings)
    detector.check_params()  # before any method runs: a baseline-only run uses the settings too
    return detector


def post_params(detector, n_fit: int | None = None) -> dict:
    """The detector's post-processing settings, applied to every method's score alike.

    ``n_fit``: the rows it is fitted on, whose stride sets the score's span (:func:`smoothing_span`);
    without it, the span of a fit at stride 1."""
    from anomaly.detector import smoothing_span

    stride = detector.resolve_stride(n_fit) if n_fit is not None else 1
    return {
        "rule": detector.local_rule,
        "smoothing": smoothing_span(detector.smoothing, stride),
        "window_frac": detector.local_window,
        "k": detector.local_k,
        "prune": detector.prune,
        "pad": detector.event_padding,
        "merge_gap": detector.merge_gap,
        "min_length": detector.min_event_length,
        "root": detector.root_score,
        "cap": detector.local_cap,
        "trailing": detector.local_trailing,
        "exclude": detector.local_exclude,
    }


def flags_for(
    score: np.ndarray,
    post: dict,
    fixed_threshold: float | None = None,
    normal: np.ndarray | None = None,
    normal_raw: np.ndarray | None = None,
) -> np.ndarray:
    """Flags of a raw score under the post-processing ``post`` (see :mod:`anomaly.postprocess`).

    ``normal``: the method's smoothed scores on held-out normal rows, for the cap (``post["cap"]``) of
    a batch-relative rule; ``normal_raw``: its raw held-out scores in time order, which seed the
    causal ``trailing`` rule (:mod:`anomaly.flagging`) and set its cap.
    """
    from anomaly import flagging, postprocess

    post = dict(post)
    factor = post.pop("cap", 0.0)
    trailing = post.pop("trailing", flagging.TrailingRule.trailing)
    exclude = post.pop("exclude", True)
    if post["rule"] == "trailing":
        normal_raw = np.empty(0) if normal_raw is None else normal_raw
        rule = flagging.make_rule(
            normal_raw,
            k=post["k"],
            trailing=trailing,
            cap_factor=factor,
            prune=post["prune"],
            pad=post["pad"],
            smoothing=post["smoothing"],
            root=post["root"],
            exclude=exclude,
        )
        return flagging.flag(score, rule, flagging.seed(normal_raw, rule)).flags
    cap = postprocess.normal_cap(normal, factor, post["root"]) if normal is not None else None
    return postprocess.flag_scores(score, floor=fixed_threshold if post["rule"] is None else None, cap=cap, **post)[2]


def baseline_normal_raw(model, fit: pd.DataFrame, validation_fraction: float) -> np.ndarray:
    """A baseline's raw scores on the last ``validation_fraction`` of its fitting rows, in time order:
    the counterpart of the detector's ``normal_errors_`` (held-out windows), for the same seed and cap."""
    held = fit.iloc[len(fit) - max(1, int(round(len(fit) * validation_fraction))) :]
    return model.score(held)["score"].to_numpy()


def baseline_normal_scores(normal_raw: np.ndarray, smoothing: int) -> np.ndarray:
    """Smoothed finite ``normal_raw``: the counterpart of the detector's ``normal_scores_``, for a
    batch-relative rule's cap."""
    from anomaly import postprocess

    normal = postprocess.ewma(normal_raw, smoothing)
    return normal[np.isfinite(normal)]


def evaluate(index: pd.DatetimeIndex, flags: np.ndarray, labels: list) -> dict:
    """Overlap-segment, point-wise and point-adjusted (optimistic) counts and scores."""
    runs = flagged_runs(flags)
    events = [(index[s], index[e]) for s, e in runs]
    return {
        "events": len(events),
        "overlap_segment": metrics.overlap_segment(events, labels),
        "weighted_segment": metrics.weighted_segment(events, labels, index[0], index[-1]),
        "pointwise": metrics.pointwise(index, flags, labels),
        "point_adjusted_optimistic": metrics.point_adjusted(index, flags, labels),
    }


def ranking_auc_pr(index: pd.DatetimeIndex, raw: np.ndarray, post: dict, factor: int, labels: list) -> float | None:
    """AUC-PR of a method's score as its flags see it (root and EWMA of ``post``), at the original rows."""
    from anomaly import flagging

    score, _, _ = flagging.transform(raw, flagging.TrailingRule(smoothing=post["smoothing"], root=bool(post["root"])))
    return metrics.auc_pr(index, np.repeat(score, factor)[: len(index)], labels)


def _baseline(method: str, window: int):
    from anomaly.research.baselines import PCABaseline, RollingZScoreBaseline

    return PCABaseline(window=window) if method == "pca" else RollingZScoreBaseline(window=window)


def run_series(
    ref: SeriesRef,
    protocol: str,
    methods=METHODS,
    detector_params: dict | None = None,
    cache_dir: str | Path | None = None,
    max_rows: int | None = None,
    context: bool | None = None,
) -> dict:
    """Every method on one series: per-method metrics, fit and score seconds.

    With ``max_rows`` > 0 every method fits and scores block means (see :func:`aggregate`); flags
    go back to the original rows before evaluation, so labels are compared at full resolution.
    With ``context`` (default :data:`CONTEXT`), ``CONTEXT_PREFIX`` columns are the LSTM's
    ``context_columns`` (inputs, not targets); the baselines never see them.
    """
    context = CONTEXT if context is None else context
    fit_full, scored_full, labels = load_split(ref, protocol, context)
    window = make_detector(detector_params).window
    factor = aggregation_factor(len(scored_full), MAX_ROWS if max_rows is None else max_rows, len(fit_full), window)
    fit, scored = aggregate(fit_full, factor), aggregate(scored_full, factor)
    context_columns = tuple(c for c in fit.columns if str(c).startswith(CONTEXT_PREFIX)) if context else ()
    params = {**(detector_params or {}), **({"context_columns": context_columns} if context_columns else {})}
    detector = make_detector(params)
    post = post_params(detector, len(fit))
    out = {
        "series": ref.name,
        "rows_fit": len(fit_full),
        "rows_scored": len(scored_full),
        "aggregation": factor,
        "stride": detector.stride,
        "context_columns": list(context_columns),
        "labels": len(labels),
        "methods": {},
    }
    cache = {}
    for method in methods:
        t0 = time.perf_counter()
        if method == "lstm":
            model = detector.fit(fit)
            fit_s = time.perf_counter() - t0
            out["stride"] = detector.stride_
            t0 = time.perf_counter()
            frame = detector.score(scored)
            flags = frame["is_anomaly"].to_numpy()
            raw = detector.sensor_mean(scoring.errors_of(frame, detector.target_columns_))
            cache[f"{method}_normal"] = detector.normal_scores_
            cache[f"{method}_normal_raw"] = detector.normal_errors_
        else:
            fit_b, scored_b = baseline_inputs(fit, scored, context_columns, detector)
            model = _baseline(method, detector.window).fit(fit_b)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            raw = model.score(scored_b)["score"].to_numpy()
            normal_raw = cache[f"{method}_normal_raw"] = baseline_normal_raw(model, fit_b, detector.validation_fraction)
            fixed = normal = None
            if post["rule"] is None:  # the fixed rule: a threshold from the baseline's scores on its fitting data
                from anomaly import postprocess, thresholds

                normal = postprocess.ewma(model.score(fit_b)["score"].to_numpy(), post["smoothing"])
                fixed = thresholds.fit_thresholds(
                    normal[np.isfinite(normal)], detector.quantile, detector.k_sigma, detector.threshold_rule
                )["values"][detector.threshold_rule]
            elif post["cap"] and post["rule"] != "trailing":
                normal = baseline_normal_scores(normal_raw, post["smoothing"])
                cache[f"{method}_normal"] = normal
            flags = flags_for(raw, post, fixed, normal, normal_raw)
        score_s = time.perf_counter() - t0
        cache[method] = raw
        flags = expand(flags, factor, len(scored_full))
        out["methods"][method] = {
            **evaluate(scored_full.index, flags, labels),
            "auc_pr": ranking_auc_pr(scored_full.index, raw, post, factor, labels),
            "fit_s": round(fit_s, 3),
            "score_s": round(score_s, 3),
        }
    if cache_dir is not None:
        cache["factor"] = np.array([factor])
        cache["smoothing"] = np.array([post["smoothing"]])  # the span every method's score was smoothed over
        _write_cache(Path(cache_dir), protocol, ref.name, scored_full.index, labels, cache)
    return out


def baseline_inputs(fit: pd.DataFrame, scored: pd.DataFrame, context_columns, detector) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a baseline fits and scores: the LSTM's sensors less the seasonal profiles the detector
    learns from the same normal data, so that the table compares models and not preprocessing."""
    from anomaly import seasonal
    from anomaly.io import detect_interval, zone_name

    fit_b, scored_b = fit.drop(columns=list(context_columns)), scored.drop(columns=list(context_columns))
    interval = detect_interval(fit_b.index)  # as the detector's fit reads them
    tz = detector.timezone or (zone_name(fit_b.index.tz) if fit_b.index.tz is not None else None)
    profiles = seasonal.fit_profiles(fit_b, detector.seasonal, interval, tz)
    if not profiles:
        return fit_b, scored_b
    return seasonal.remove(fit_b, profiles, tz), seasonal.remove(scored_b, profiles, tz)


def _write_cache(root: Path, protocol: str, name: str, index: pd.DatetimeIndex, labels: list, arrays: dict) -> None:
    """Per-timestamp raw scores, to study post-processing without refitting (npz, no pickle)."""
    path = root / protocol / (name.replace("/", "__") + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    lab = np.array([[s.value, e.value] for s, e in labels], dtype=np.int64).reshape(-1, 2)
    np.savez(path, index=index.as_unit("ns").asi8, labels=lab, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})


# -- pooling and the whole run -----------------------------------------------------------------
def pool(per_series: list[dict], methods=METHODS) -> dict:
    """Counts summed over series, then precision, recall and F1, per method and metric."""
    pooled = {}
    for method in methods:
        rows = [s["methods"][method] for s in per_series if method in s["methods"]]
        entry = {}
        for metric in ("overlap_segment", "weighted_segment", "pointwise", "point_adjusted_optimistic"):
            tp, fp, fn = (sum(r[metric][k] for r in rows) for k in ("tp", "fp", "fn"))
            entry[metric] = metrics.prf(tp, fp, fn)
        areas = [r["auc_pr"] for r in rows if r.get("auc_pr") is not None]
        entry["auc_pr_mean"] = float(np.mean(areas)) if areas else None  # scores do not pool across series
        entry["fit_s"] = round(sum(r["fit_s"] for r in rows), 3)
        entry["score_s"] = round(sum(r["score_s"] for r in rows), 3)
        entry["series"] = len(rows)
        pooled[method] = entry
    return pooled


def run_bench(
    root: str | Path,
    protocol: str | None = None,
    pattern: str | None = None,
    methods=METHODS,
    detector_params: dict | None = None,
    cache_dir: str | Path | None = None,
    progress=None,
    max_rows: int | None = None,
    context: bool | None = None,
) -> dict:
    """Run every method on every series of ``root``; returns per-series and pooled results."""
    refs = discover(root, pattern)
    if protocol is None:
        protocol = "train-test" if "train" in refs[0].files else "whole"
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {', '.join(unknown)} (choose from {', '.join(METHODS)})")
    per_series = []
    for i, ref in enumerate(refs):
        try:
            per_series.append(run_series(ref, protocol, methods, detector_params, cache_dir, max_rows, context))
        except DataError as exc:  # "too few normal windows", say: which of the series?
            if ref.name in str(exc):
                raise
            raise type(exc)(f"{ref.name}: {exc}") from None
        if progress is not None:
            progress(i + 1, len(refs), per_series[-1])
    return {
        "dataset": str(root),
        "protocol": protocol,
        "series_glob": pattern,
        "methods": list(methods),
        "max_rows": MAX_ROWS if max_rows is None else max_rows,
        "context": CONTEXT if context is None else context,
        "detector_params": {
            k: list(v) if isinstance(v, tuple) else v for k, v in make_detector(detector_params).get_params().items()
        },
        "series": per_series,
        "pooled": pool(per_series, methods),
    }


def _area(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(result: dict) -> str:
    """Per-series and pooled figures as plain text."""
    lines = [f"dataset {result['dataset']}  protocol {result['protocol']}"]
    head = f"{'series':<44}{'method':<8}{'labels':>7}{'events':>7}{'tp':>5}{'fp':>5}{'fn':>5}{'P':>7}{'R':>7}{'F1':>7}{'ws-F1':>7}{'pw-F1':>7}{'PA-F1*':>8}{'AUC-PR':>8}{'fit s':>8}{'score s':>8}"
    lines.append(head)
    for s in result["series"]:
        for method, r in s["methods"].items():
            seg = r["overlap_segment"]
            lines.append(
                f"{s['series'][:43]:<44}{method:<8}{s['labels']:>7}{r['events']:>7}{seg['tp']:>5}{seg['fp']:>5}{seg['fn']:>5}"
                f"{seg['precision']:>7.3f}{seg['recall']:>7.3f}{seg['f1']:>7.3f}{r['weighted_segment']['f1']:>7.3f}"
                f"{r['pointwise']['f1']:>7.3f}"
                f"{r['point_adjusted_optimistic']['f1']:>8.3f}{_area(r.get('auc_pr')):>8}{r['fit_s']:>8.1f}{r['score_s']:>8.1f}"
            )
    lines.append("")
    lines.append("pooled (TP/FP/FN summed over series before P/R/F1):")
    lines.append(
        f"{'method':<8}{'tp':>6}{'fp':>6}{'fn':>6}{'P':>7}{'R':>7}{'F1':>7}{'ws-F1':>7}{'pw-F1':>7}{'PA-F1*':>8}{'AUC-PR':>8}{'fit s':>9}{'score s':>9}"
    )
    for method, p in result["pooled"].items():
        seg = p["overlap_segment"]
        lines.append(
            f"{method:<8}{seg['tp']:>6}{seg['fp']:>6}{seg['fn']:>6}{seg['precision']:>7.3f}{seg['recall']:>7.3f}{seg['f1']:>7.3f}"
            f"{p['weighted_segment']['f1']:>7.3f}{p['pointwise']['f1']:>7.3f}{p['point_adjusted_optimistic']['f1']:>8.3f}"
            f"{_area(p.get('auc_pr_mean')):>8}"
            f"{p['fit_s']:>9.1f}{p['score_s']:>9.1f}"
        )
    lines.append(
        "F1 = overlap-segment F1 (honest); ws-F1 = Orion's weighted-segment F1 (time-weighted); pw-F1 = point-wise; "
        "PA-F1* = point-adjusted, optimistic: never quote alone; AUC-PR = threshold-free, per series (pooled: their mean)."
    )
    return "\n".join(lines)

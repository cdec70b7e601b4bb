"""The ``anomaly`` command: train, score, evaluate.

Thin on purpose: parse options, call the detector, print results. Every error the package raises
on purpose becomes one line on stderr and a documented exit code (see :mod:`anomaly.errors`);
anything unexpected becomes one line too (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere

from anomaly import __version__  # noqa: E402
from anomaly.errors import EXIT_BAD_INPUT, EXIT_ERROR, EXIT_OK, AnomalyError, DataError  # noqa: E402

log = logging.getLogger("anomaly")

TRAIN_EXAMPLES = """examples:
  anomaly train data/machine_temperature_system_failure.csv --model models/demo --normal-end 2013-12-09
  anomaly train sensors.parquet --model models/pump --columns p1,p2,flow --normal-frac 0.3 --window 64
  anomaly train today.csv --model models/m --normal-data last_month_normal.csv --quiet
"""
SCORE_EXAMPLES = """examples:
  anomaly score data/machine_temperature_system_failure.csv --model models/demo --out scores.csv --events events.csv
  anomaly score new.parquet --model models/pump --out scores.parquet --quantile 0.999
"""
EVALUATE_EXAMPLES = """examples:
  anomaly evaluate data/machine_temperature_system_failure.csv --model models/demo --labels data/machine_temperature_labels.json
  anomaly evaluate test.csv --model models/m --labels labels.json --key test.csv --json
"""


# -- shared options ---------------------------------------------------------------------------
def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--timestamp-col", default="timestamp", help="name of the timestamp column (default: timestamp)")
    g.add_argument("--columns", type=_name_list, help="comma-separated sensor columns (default: every numeric column)")
    g.add_argument("--duplicates", choices=["error", "mean"], default="error", help="duplicate timestamps: refuse (default) or average")
    g.add_argument("--max-gap", type=int, default=3, metavar="N", help="interpolate gaps of at most N missing points; longer gaps are breaks (default: 3)")


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


def _int_list(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not '{text}'") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, not '{text}'")
    return units


def _load(path: str, args, interval=None):
    from anomaly.io import load_series

    return load_series(path, timestamp_col=args.timestamp_col, columns=args.columns, duplicates=args.duplicates,
                       max_gap=args.max_gap, interval=interval)


def _load_for_model(path: str, args, detector):
    """Data for a fitted model, resampled to the model's interval and restricted to its columns."""
    from anomaly.io import clean_frame, detect_interval, read_table

    raw = read_table(path)
    columns = args.columns
    if columns is None:
        missing = [c for c in detector.columns_ if c not in raw.columns]
        if missing:
            raise DataError(f"{path}: lacks the model's column(s) {', '.join(map(repr, missing))} (model columns: {', '.join(detector.columns_)})")
        columns = detector.columns_
    frame = clean_frame(raw, path, timestamp_col=args.timestamp_col, columns=columns, duplicates=args.duplicates,
                        max_gap=args.max_gap, interval=detector.interval_)
    if len(frame) > 2:
        try:
            seen = detect_interval(frame.dropna().index)
        except DataError:
            seen = None
        if seen is not None and seen != detector.interval_:
            log.warning("%s: sampling interval %s differs from the model's %s; resampled", path, seen, detector.interval_)
    return frame


# -- train ------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.io import select_period

    data = _load(args.data, args)
    if args.normal_data:
        normal = _load(args.normal_data, args)
        source = args.normal_data
    elif args.normal_start or args.normal_end or args.normal_frac:
        normal = select_period(data, args.normal_start, args.normal_end, args.normal_frac)
        source = f"{args.data} (normal period)"
    else:
        normal, source = data, args.data
    if len(normal) == 0:
        raise DataError(f"{args.data}: the normal period selects no rows")
    decoder = args.decoder_units or tuple(reversed(args.units))
    detector = LSTMAutoencoderDetector(
        window=args.window, stride=args.stride, encoder_units=args.units, decoder_units=decoder,
        latent_dim=args.latent, activation=args.activation, dropout=args.dropout, learning_rate=args.learning_rate,
        batch_size=args.batch_size, epochs=args.epochs, patience=args.patience,
        validation_fraction=args.validation_fraction, seed=args.seed, threshold_rule=args.threshold_rule,
        quantile=args.quantile, k_sigma=args.k_sigma, smoothing=args.smoothing,
        min_event_length=args.min_length, merge_gap=args.merge_gap, on_constant=args.on_constant,
        verbose=0 if args.quiet else 1,
    )
    log.info("training on %d rows of %s (%d sensor(s): %s)", len(normal), source, normal.shape[1], ", ".join(normal.columns))
    detector.fit(normal)
    path = detector.save(args.model)
    t = detector.thresholds_
    print(f"saved model to {path}  (epochs run: {len(detector.history_.get('loss', []))}, "
          f"threshold {t['rule']} = {t['values'][t['rule']]:.6g})")
    return EXIT_OK


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fit a detector on normal data and save it",
                       description="Fit an LSTM autoencoder on the normal period of DATA and write a model directory.",
                       epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file of sensor readings")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory to write (replaced atomically)")
    _add_data_options(p)
    n = p.add_argument_group("normal period (default: all of DATA is normal)")
    n.add_argument("--normal-start", metavar="TS", help="first timestamp of the normal period")
    n.add_argument("--normal-end", metavar="TS", help="last timestamp of the normal period")
    n.add_argument("--normal-frac", type=float, metavar="F", help="the first fraction F of DATA is normal")
    n.add_argument("--normal-data", metavar="FILE", help="a separate file of normal data to fit on")
    m = p.add_argument_group("model")
    m.add_argument("--window", type=int, default=32, help="window length in points (default: 32)")
    m.add_argument("--stride", type=int, default=1, help="step between windows (default: 1)")
    m.add_argument("--units", type=_int_list, default=(64,), help="encoder LSTM units per layer, e.g. 64 or 64,32 (default: 64)")
    m.add_argument("--decoder-units", type=_int_list, help="decoder LSTM units per layer (default: the encoder's, reversed)")
    m.add_argument("--latent", type=int, default=16, help="size of the latent vector (default: 16)")
    m.add_argument("--activation", default="tanh", help="LSTM activation (default: tanh)")
    m.add_argument("--dropout", type=float, default=0.0, help="dropout on LSTM inputs (default: 0)")
    m.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    m.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    m.add_argument("--epochs", type=int, default=30, help="maximum epochs (default: 30)")
    m.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs (default: 5)")
    m.add_argument("--validation-fraction", type=float, default=0.2, help="last fraction of normal windows held out (default: 0.2)")
    m.add_argument("--seed", type=int, default=0, help="random seed: same seed, same model (default: 0)")
    m.add_argument("--on-constant", choices=["error", "keep"], default="error", help="a constant sensor: refuse (default) or keep it")
    t = p.add_argument_group("thresholds and events")
    t.add_argument("--threshold-rule", choices=["quantile", "ksigma"], default="quantile", help="rule in force (default: quantile)")
    t.add_argument("--quantile", type=float, default=0.995, help="quantile of held-out normal scores (default: 0.995)")
    t.add_argument("--k-sigma", type=float, default=4.0, help="k of the mean + k*std rule (default: 4)")
    t.add_argument("--smoothing", type=int, default=0, help="EWMA span of the score in points, 0 = off (default: 0)")
    _add_event_options(t, defaults=True)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)


def _add_event_options(g, defaults: bool) -> None:
    g.add_argument("--min-length", type=int, default=1 if defaults else None, metavar="N",
                   help="drop events shorter than N points" + (" (default: 1)" if defaults else " (default: the model's)"))
    g.add_argument("--merge-gap", type=int, default=0 if defaults else None, metavar="N",
                   help="merge events at most N points apart" + (" (default: 0)" if defaults else " (default: the model's)"))


# -- score ------------------------------------------------------------------------------------
def _load_detector(args):
    from anomaly.detector import LSTMAutoencoderDetector

    detector = LSTMAutoencoderDetector.load(args.model)
    overrides = {k: v for k, v in (("min_event_length", args.min_length), ("merge_gap", args.merge_gap)) if v is not None}
    return detector.set_params(**overrides)


def cmd_score(args) -> int:
    from anomaly.io import write_table

    detector = _load_detector(args)
    data = _load_for_model(args.data, args, detector)
    scores = detector.score(data, threshold=args.threshold, quantile=args.quantile)
    events = detector.events(scores)
    if args.out:
        write_table(scores.reset_index(), args.out)
    if args.events:
        write_table(events, args.events)
    flagged = int(scores["is_anomaly"].sum())
    print(f"scored {len(scores)} rows ({scores.index[0]} .. {scores.index[-1]}); threshold {scores['threshold'].iloc[0]:.6g}; "
          f"{flagged} anomalous rows in {len(events)} event(s)")
    if not args.events and len(events):
        print(events.to_string(index=False))
    return EXIT_OK


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="score a series with a saved model",
                       description="Score every timestamp of DATA with a saved model and find anomaly events.",
                       epilog=SCORE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file of sensor readings")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by 'anomaly train'")
    p.add_argument("--out", metavar="FILE", help="scores file (.csv or .parquet): timestamp, score, threshold, is_anomaly, error_<sensor>")
    p.add_argument("--events", metavar="FILE", help="events file (.csv or .parquet): start, end, peak_score, severity, sensors")
    _add_data_options(p)
    t = p.add_argument_group("thresholds and events")
    t.add_argument("--threshold", type=float, help="use this threshold instead of the model's")
    t.add_argument("--quantile", type=float, help="use this quantile of the model's normal scores as the threshold")
    _add_event_options(t, defaults=False)
    p.set_defaults(func=cmd_score)


# -- evaluate ---------------------------------------------------------------------------------
def _labels_for(path: str, key: str | None, data_path: str, tz) -> list:
    from anomaly.metrics import parse_labels

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected {{\"KEY\": [[start, end], ...]}}")
    if key is None:
        name = Path(data_path).name
        matches = [k for k in raw if k == name or k.endswith("/" + name) or Path(k).stem == Path(name).stem]
        if len(raw) == 1:
            key = next(iter(raw))
        elif len(matches) == 1:
            key = matches[0]
        else:
            raise DataError(f"{path}: cannot tell which key holds the labels of {name}; use --key (keys: {', '.join(list(raw)[:5])}...)")
    if key not in raw:
        raise DataError(f"{path}: no key '{key}'")
    try:
        return parse_labels(raw[key], tz)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: key '{key}': {exc}") from None


def cmd_evaluate(args) -> int:
    from anomaly.metrics import overlap_segment, point_adjusted, pointwise

    detector = _load_detector(args)
    data = _load_for_model(args.data, args, detector)
    labels = _labels_for(args.labels, args.key, args.data, data.index.tz)
    scores = detector.score(data, threshold=args.threshold, quantile=args.quantile)
    events = detector.events(scores)
    flags = scores["is_anomaly"].to_numpy()
    result = {
        "labels": len(labels),
        "events": len(events),
        "overlap_segment": overlap_segment(list(zip(events["start"], events["end"])), labels),
        "pointwise": pointwise(scores.index, flags, labels),
        "point_adjusted_optimistic": point_adjusted(scores.index, flags, labels),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    seg, pw, pa = result["overlap_segment"], result["pointwise"], result["point_adjusted_optimistic"]
    print(f"labelled windows: {len(labels)}   detected events: {len(events)}")
    print(f"{'metric':<28}{'precision':>10}{'recall':>10}{'f1':>10}{'tp':>8}{'fp':>8}{'fn':>8}")
    for name, m in (("overlap-segment (events)", seg), ("point-wise", pw), ("point-adjusted (optimistic)", pa)):
        print(f"{name:<28}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['tp']:>8}{m['fp']:>8}{m['fn']:>8}")
    return EXIT_OK


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="compare detected events with labelled windows",
                       description="Score DATA and compare its events with labelled anomaly windows "
                                   "(LABELS.json: {\"KEY\": [[start, end], ...]}).",
                       epilog=EVALUATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file of sensor readings")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by 'anomaly train'")
    p.add_argument("--labels", required=True, metavar="LABELS.json", help="labelled windows")
    p.add_argument("--key", help="key of DATA in the labels file (default: matched by file name)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_data_options(p)
    t = p.add_argument_group("thresholds and events")
    t.add_argument("--threshold", type=float, help="use this threshold instead of the model's")
    t.add_argument("--quantile", type=float, help="use this quantile of the model's normal scores as the threshold")
    _add_event_options(t, defaults=False)
    p.set_defaults(func=cmd_evaluate)


# -- bench ------------------------------------------------------------------------------------
BENCH_EXAMPLES = """examples:
  anomaly bench ../shared/benchdata/smap --protocol train-test --json smap.json
  anomaly bench ../shared/benchdata/nab --series 'realAdExchange/*' --protocol whole
  anomaly bench ../shared/benchdata/smd --methods pca,zscore
"""


def cmd_bench(args) -> int:
    from anomaly.bench import format_table, run_bench

    params = {}
    if args.model_kind is not None:
        from anomaly.detector import LSTMAutoencoderDetector

        if "model_kind" not in LSTMAutoencoderDetector._param_names():
            from anomaly.errors import ConfigError

            raise ConfigError("--model-kind: this detector has no model kinds")
        params["model_kind"] = args.model_kind
    for name in ("window", "epochs", "smoothing", "local_rule", "local_k", "prune", "event_padding"):
        value = getattr(args, name)
        if value is not None:
            params[name] = None if value == "none" else value

    def progress(i, n, row):
        if not args.quiet:
            seg = {m: r["overlap_segment"] for m, r in row["methods"].items()}
            print(f"[{i}/{n}] {row['series']}: " + "  ".join(f"{m} tp={c['tp']} fp={c['fp']} fn={c['fn']}" for m, c in seg.items()),
                  file=sys.stderr, flush=True)

    result = run_bench(args.dir, args.protocol, args.series, tuple(args.methods), params, args.cache, progress, args.max_rows)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return EXIT_OK


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the detector and two baselines on a labelled dataset folder",
                       description="Fit, score and evaluate every series of DIR (NAB's layout, or SERIES.train/test.parquet "
                                   "+ labels.json) with the LSTM detector and the PCA and rolling z-score baselines; print "
                                   "per-series and pooled overlap-segment, point-wise and point-adjusted (optimistic) figures.",
                       epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="dataset folder")
    p.add_argument("--protocol", choices=["train-test", "whole", "probation"],
                   help="train-test: fit on train, score test; whole: fit and score everything; probation: fit on the "
                        "first 15%% (default: train-test where splits exist, else whole)")
    p.add_argument("--series", metavar="GLOB", help="only series whose name matches GLOB (e.g. 'realAdExchange/*', 'A-*')")
    p.add_argument("--json", metavar="OUT", help="also write every figure as JSON to OUT")
    p.add_argument("--methods", type=_name_list, default=["lstm", "pca", "zscore"], help="comma-separated: lstm,pca,zscore (default: all)")
    p.add_argument("--model-kind", help="detector model kind, passed through when the detector has one")
    p.add_argument("--cache", metavar="DIR", help="save per-timestamp raw scores (npz) under DIR to study post-processing")
    g = p.add_argument_group("detector overrides (default: the benchmark's one set of settings)")
    g.add_argument("--max-rows", type=int, help="average blocks of rows so the scored part has at most this many (0 = off)")
    g.add_argument("--window", type=int)
    g.add_argument("--epochs", type=int)
    g.add_argument("--smoothing", type=int, help="EWMA span of the score")
    g.add_argument("--local-rule", choices=["none", "ksigma", "dynamic", "pot"], help="threshold relative to the scored batch")
    g.add_argument("--local-k", type=float)
    g.add_argument("--prune", type=float, help="telemanom pruning: minimum relative drop between event peaks")
    g.add_argument("--event-padding", type=int, help="rows added on each side of every event")
    p.add_argument("--quiet", action="store_true", help="no per-series progress")
    p.set_defaults(func=cmd_bench)


# -- main -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomaly",
        description="Find anomalies in sensor time series with LSTM autoencoders.",
        epilog="exit codes: 0 success, 1 internal error, 2 bad input (data, option or model), "
               "3 database lock busy, 4 new anomalies found (opt-in)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_score(sub)
    _add_evaluate(sub)
    _add_bench(sub)
    return parser


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    logging.captureWarnings(True)
    try:
        from absl import logging as absl_logging  # TensorFlow's own logger; keep it quiet

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        return args.func(args)
    except AnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment problem: still one line unless --debug
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (rerun with --debug for details)", file=sys.stderr)
        return EXIT_ERROR


__all__ = ["main", "build_parser", "EXIT_BAD_INPUT"]

"""The ``anomaly`` command: train, score, evaluate.

Thin on purpose: parse options, call the detector, print results. Every error the package raises
on purpose becomes one line on stderr and a documented exit code (see :mod:`anomaly.errors`);
anything unexpected becomes one line too (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported anywhere

from anomaly import __version__, params  # noqa: E402
from anomaly.errors import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_OK,
    AnomalyError,
    ConfigError,
    DataError,
    MissingExtraError,
    Terminated,
    first_line,
    interruption,
    stopped_by,
)
from anomaly.loading import ReadOptions, load_data, load_for_model, load_model, naming  # noqa: E402

log = logging.getLogger("anomaly")

TRAIN_EXAMPLES = """examples:
  anomaly train data/machine_temperature_system_failure.csv --model models/demo --duplicates mean --normal-end '2013-12-10 06:20'
  anomaly train sensors.parquet --model models/pump --columns p1,p2,flow --normal-frac 0.3 --window 64
  anomaly train today.csv --model models/m --normal-data last_month_normal.csv --quiet
"""
SCORE_EXAMPLES = """examples:
  anomaly score data/machine_temperature_system_failure.csv --model models/demo --duplicates mean --out scores.csv --events events.csv
  anomaly score new.parquet --model models/pump --out scores.parquet --quantile 0.999
"""
EVALUATE_EXAMPLES = """examples:
  anomaly evaluate data/machine_temperature_system_failure.csv --model models/demo --duplicates mean \\
      --labels data/machine_temperature_labels.json
  anomaly evaluate test.csv --model models/m --labels labels.json --key test.csv --json
"""


# -- shared options ---------------------------------------------------------------------------
def _add_data_options(p: argparse.ArgumentParser, for_model: bool = True) -> None:
    """The data options; unset ones are None (``anomaly.loading.ReadOptions``): ``train`` saves them with
    the model and the commands that run a model (``for_model``) read as it was trained unless told otherwise."""

    def default(value: str) -> str:
        return f"(default: as the model was trained; else {value})" if for_model else f"(default: {value}; saved with the model)"

    g = p.add_argument_group("data")
    g.add_argument("--timestamp-col", help=f"name of the timestamp column {default('timestamp')}")
    g.add_argument(
        "--columns",
        type=_name_list,
        help="comma-separated sensor columns; quote a name that holds a comma: 'temp,\"flow, l/min\"' "
        + ("(default: the model's)" if for_model else "(default: every numeric column)"),
    )
    g.add_argument("--duplicates", choices=["error", "mean"], help=f"duplicate timestamps: refuse or average {default('error')}")
    g.add_argument(
        "--max-gap",
        type=_count,
        metavar="N",
        help=f"interpolate gaps of at most N missing points; longer gaps are breaks {default(3)}",
    )
    g.add_argument(
        "--missing-values",
        type=_missing_value_codes,
        metavar="CODES",
        help="comma-separated numbers the logger writes for no reading, read as missing: -9999,9.9e37; "
        + f"'none' for none {default('none')}",
    )


def _count(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, not '{text}'")
    return value


def _number(text: str, ok, expected: str) -> float:
    """``text`` as a number ``ok`` accepts (for the argparse types below), else an error saying what was expected."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # refused below, as any other number out of range
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, not '{text}'")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds >= 0 (argparse type): NaN would wait forever, a negative time not at all."""
    return _number(text, lambda v: 0 <= v < math.inf, "a number of seconds >= 0")


def _period_bound(text: str) -> str:
    """A timestamp pandas reads (argparse type); kept as text, read on DATA's clock once DATA is loaded."""
    import pandas as pd

    try:
        pd.Timestamp(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"cannot parse timestamp '{text}'") from None
    return text


def _threshold(text: str) -> float:
    """A threshold given by hand (argparse type): the check every way in shares (anomaly.thresholds)."""
    from anomaly.thresholds import fixed_threshold

    try:
        return fixed_threshold(float(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, not '{text}'") from None


def _quantile(text: str) -> float:
    """A number in (0, 1) (argparse type)."""
    return _number(text, lambda v: 0 < v < 1, "a number in (0, 1)")


def _missing_value_codes(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers, one or more, or ``none`` for none (argparse type)."""
    from anomaly.io import missing_value_codes

    try:
        return missing_value_codes(text)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name_list(text: str) -> list[str]:
    from anomaly.io import split_names

    names = split_names(text)
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


# -- train ------------------------------------------------------------------------------------
def _normal_period_options(args) -> str | None:
    """Which way the normal period is given ('data', 'frac', 'range' or None: all of DATA); two ways at once are refused."""
    given = {
        "data": args.normal_data is not None,
        "frac": args.normal_frac is not None,
        "range": args.normal_start is not None or args.normal_end is not None,
    }
    if given["frac"] and not 0 < args.normal_frac <= 1:
        raise ConfigError(f"--normal-frac must be in (0, 1], not {args.normal_frac:g}")
    ways = [way for way, used in given.items() if used]
    if len(ways) > 1:
        flags = {"data": "--normal-data", "frac": "--normal-frac", "range": "--normal-start/--normal-end"}
        raise ConfigError(f"{' and '.join(flags[w] for w in ways)} both give the normal period; use one")
    return ways[0] if ways else None


def cmd_train(args) -> int:
    from anomaly.artifacts import check_model_target
    from anomaly.io import detect_interval, select_period

    way = _normal_period_options(args)
    check_model_target(Path(args.model).resolve())  # before the data is read or a model fitted
    data = load_data(args.data, ReadOptions.of(args))
    if way == "data":  # the model learns this file and will score DATA: the same sensors, at DATA's step
        same = dataclasses.replace(ReadOptions.of(args), columns=list(data.columns))
        normal = load_data(args.normal_data, same, detect_interval(data.index, args.data), interval_of=args.data)
        source = args.normal_data
    elif way is not None:
        normal = select_period(data, args.normal_start, args.normal_end, args.normal_frac)
        source = f"{args.data} (normal period)"
        if len(normal) == len(data):
            log.warning(
                "the normal period covers all %d rows of %s: nothing is held back as possibly abnormal", len(data), args.data
            )
    else:
        normal, source = data, args.data
    if len(normal) == 0:
        raise DataError(f"{args.data}: the normal period selects no rows")
    import anomaly.tfkeras  # noqa: F401 (a missing TensorFlow fails here, before any work)
    from anomaly.detector import LSTMAutoencoderDetector  # after the data checks: bad data fails fast

    values = params.given(args, LSTMAutoencoderDetector)  # every hyperparameter option given
    detector = LSTMAutoencoderDetector(**values, verbose=0 if args.quiet else 1)
    log.info("training on %d rows of %s (%d sensor(s): %s)", len(normal), source, normal.shape[1], ", ".join(normal.columns))
    with naming(source):
        detector.fit(normal)
    path = detector.save(args.model, onnx=args.onnx, reading=ReadOptions.of(args).saved())
    print(f"saved model to {path}  (epochs run: {len(detector.history_.get('loss', []))}; {detector.describe_flagging()})")
    return EXIT_OK


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="fit a detector on normal data and save it",
        description="Fit an LSTM autoencoder on the normal period of DATA and write a model directory.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file of sensor readings")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory to write (replaced atomically)")
    _add_data_options(p, for_model=False)
    n = p.add_argument_group("normal period (default: all of DATA is normal)")
    n.add_argument("--normal-start", type=_period_bound, metavar="TS", help="first timestamp of the normal period")
    n.add_argument(
        "--normal-end",
        type=_period_bound,
        metavar="TS",
        help="last timestamp of the normal period (without an offset: on DATA's clock, UTC for DATA with UTC offsets)",
    )
    n.add_argument("--normal-frac", type=float, metavar="F", help="the first fraction F of DATA is normal")
    n.add_argument("--normal-data", metavar="FILE", help="a separate file of normal data to fit on")
    from anomaly.detector import LSTMAutoencoderDetector as D  # no TensorFlow import

    # Every option below comes from the detector's declaration of its hyperparameters (anomaly.params).
    params.add_options(p.add_argument_group("model (defaults: the configuration 'anomaly bench' measures)"), D, "model")
    params.add_options(p.add_argument_group("model kind (Srivastava et al. 2015)"), D, "kind")
    params.add_options(p.add_argument_group("flagging (see 'How it flags' in the README)"), D, "flagging")
    t = p.add_argument_group("fixed thresholds and events (thresholds in force with --local-rule none, or via score --quantile)")
    params.add_options(t, D, "threshold")
    params.add_options(t, D, "events")
    params.add_options(p.add_argument_group("scoring details"), D, "other")
    p.add_argument(
        "--onnx",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also export model.onnx, which 'anomaly score' runs without TensorFlow: about a second to "
        "start and under half the memory (default: on; --no-onnx to skip)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)


def _add_saved_model_input(p: argparse.ArgumentParser, engine: bool = True) -> None:
    """DATA and --model DIR (and --engine): the inputs of every command that uses a saved model."""
    p.add_argument("data", metavar="DATA", help="CSV or Parquet file of sensor readings")
    p.add_argument("--model", required=True, metavar="DIR", help="model directory written by 'anomaly train'")
    if engine:
        _add_engine_option(p)


def _add_engine_option(p: argparse.ArgumentParser) -> None:
    from anomaly.engine import ENGINES

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="run the model with TensorFlow, or with ONNX Runtime (no TensorFlow import; needs a model "
        "trained with --onnx or exported with 'anomaly export-onnx'); auto: ONNX where the model "
        "has it (default: auto)",
    )


def _add_threshold_overrides(p: argparse.ArgumentParser) -> None:
    """Options that change a saved model's threshold and event rules for one run."""
    t = p.add_argument_group("thresholds and events")
    one = t.add_mutually_exclusive_group()
    plain = "; the score is then the plain one (each row's mean squared error, not smoothed or rooted), in the scores file too"
    one.add_argument(
        "--threshold", type=_threshold, help="flag rows over this one fixed threshold instead of the model's rule" + plain
    )
    one.add_argument(
        "--quantile", type=_quantile, help="flag rows over this quantile of the model's normal scores instead of its rule" + plain
    )
    from anomaly.detector import LSTMAutoencoderDetector

    params.add_options(t, LSTMAutoencoderDetector, "events", show_defaults=False, suffix=" (default: the model's)")


# -- score ------------------------------------------------------------------------------------
def _load_detector(args):
    """The model of ``--model``, with the command's event-rule overrides (embed has no --engine: TensorFlow)."""
    return load_model(args.model, getattr(args, "engine", "tensorflow"), args.min_length, args.merge_gap)


def cmd_score(args) -> int:
    from anomaly.io import check_output, write_tables

    if args.db:
        return cmd_score_db(args)
    _check_no_db_options(args)
    outputs = [check_output(path, args.data) for path in (args.out, args.events) if path]  # before any work or write
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise ConfigError(f"{args.out}: --out and --events name the same file; give each its own")
    detector = _load_detector(args)
    data = load_for_model(args.data, ReadOptions.of(args), detector)
    with naming(args.data):
        scores = detector.score(data, threshold=args.threshold, quantile=args.quantile)
    events = detector.events(scores)
    tables = [(scores.reset_index(), args.out), (events, args.events)]
    write_tables([(table, path) for table, path in tables if path])  # both written before either replaces its file
    flagged = int(scores["is_anomaly"].sum())
    fixed = args.threshold is not None or args.quantile is not None
    rule = f"threshold {scores['threshold'].iloc[0]:.6g}" if fixed else f"the model {detector.describe_flagging()}"
    unscored = int(scores["score"].isna().sum())
    in_gaps = int(data.reindex(scores.index).isna().any(axis=1).sum())  # breaks: gaps longer than --max-gap
    untold = [f"{in_gaps} rows in gaps"] if in_gaps else []
    if unscored > in_gaps:
        untold.append(f"{unscored - in_gaps} rows beside the start, the end or a gap that no decoder estimates")
    print(
        f"scored {len(scores) - unscored} rows ({scores.index[0]} .. {scores.index[-1]}"
        + (f"; {' and '.join(untold)} have no score" if untold else "")
        + f"); {rule}; {flagged} anomalous rows in {len(events)} event(s)"
    )
    if not args.events and len(events):
        print(events.to_string(index=False))
    return EXIT_OK


def _add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="score a series with a saved model",
        description="Score every timestamp of DATA with a saved model and find anomaly events.",
        epilog=SCORE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_saved_model_input(p)
    p.add_argument(
        "--out", metavar="FILE", help="scores file (.csv or .parquet): timestamp, score, threshold, is_anomaly, error_<sensor>"
    )
    p.add_argument("--events", metavar="FILE", help="events file (.csv or .parquet): start, end, peak_score, severity, sensors")
    _add_data_options(p)
    _add_threshold_overrides(p)
    _add_db_options(p)
    p.set_defaults(func=cmd_score)


# -- scheduled scoring into a database (see anomaly.scheduled and anomaly.store) --------------
SCORE_BATCH_EXAMPLES = """examples:
  anomaly score-batch jobs.toml --db results.db
  anomaly score-batch jobs.toml --db postgresql://anomaly@db/results --workers 4
  anomaly score-batch jobs.toml --scheduler tcp://10.0.0.5:8786 --on-event 'logger -t anomaly'

jobs.toml:
  db = "results.db"            # used when --db is not given; relative to jobs.toml
  [[jobs]]
  data = "pump1.csv"           # relative to jobs.toml
  model = "models/pump"
  source = "pump1"             # optional; also: columns, timestamp_col, duplicates, max_gap, missing_values
                               # ([-9999]; reading keys default to the model's), threshold or quantile,
                               # min_length, merge_gap, rescore, engine
"""


def _add_db_options(p: argparse.ArgumentParser, batch: bool = False) -> None:
    g = p.add_argument_group("database (scheduled, incremental scoring)")
    if not batch:
        g.add_argument(
            "--db",
            metavar="TARGET",
            help="write scores, events and the run into a results database: "
            "a file path (SQLite, e.g. results.db) or a URL (postgresql://user:pw@host/db); only new "
            "timestamps are scored",
        )
        g.add_argument("--source", metavar="NAME", help="name of the series in the database (default: DATA's absolute path)")
        g.add_argument("--rescore", action="store_true", help="re-score every timestamp of DATA (upserted), not only new ones")
    g.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait at most this long for another run of the same source; then exit 3 (default: 60)",
    )
    g.add_argument("--on-event", metavar="CMD", help="run the shell command CMD for each new event, the event as JSON on stdin")
    g.add_argument("--exit-code-on-anomaly", action="store_true", help="exit 4 when the run found new events")


def _check_no_db_options(args) -> None:
    from anomaly.errors import ConfigError

    for name in ("on_event", "source"):
        if getattr(args, name, None):
            raise ConfigError(f"--{name.replace('_', '-')} needs --db")
    for name in ("exit_code_on_anomaly", "rescore"):
        if getattr(args, name, False):
            raise ConfigError(f"--{name.replace('_', '-')} needs --db")


def _db_exit(results, args, db: str) -> int:
    """The runs' exit code, after ``--on-event`` took the alerts of their sources (earlier unsent ones too)."""
    from anomaly.scheduled import exit_code, send_alerts
    from anomaly.store import open_store

    failures = 0
    reached = [r.source for r in results if r.run_id is not None or r.status == "locked"]  # the database opened
    if args.on_event and reached:
        with open_store(db) as store:
            failures = send_alerts(store, reached, args.on_event)
    return exit_code(results, args.exit_code_on_anomaly, failures)


def _logfmt_errors(command):
    """With a database, errors before or around the runs are logfmt lines too (one line, the exit code)."""

    def run(args) -> int:
        from anomaly.logfmt import use_logfmt

        use_logfmt(log)
        try:
            return command(args)
        except AnomalyError as exc:
            log.error(str(exc), extra={"fields": {"exit": exc.exit_code}})
            return exc.exit_code
        except BaseException as exc:  # Ctrl-C or SIGTERM (the run is marked failed): a logfmt line too
            stop = interruption(exc)
            if stop is None:
                raise
            log.error(stopped_by(stop), extra={"fields": {"exit": _stop_code(stop)}})
            return _stop_code(stop)

    return run


@_logfmt_errors
def cmd_score_db(args) -> int:
    from anomaly.errors import ConfigError
    from anomaly.scheduled import Job, run_job

    if args.out or args.events:
        raise ConfigError(
            "--out and --events write files; with --db the results go to the database (read them with SQL or the dashboard)"
        )
    job = Job(
        data=args.data,
        model=args.model,
        source=args.source,
        timestamp_col=args.timestamp_col,
        columns=args.columns,
        duplicates=args.duplicates,
        max_gap=args.max_gap,
        missing_values=args.missing_values,
        threshold=args.threshold,
        quantile=args.quantile,
        min_length=args.min_length,
        merge_gap=args.merge_gap,
        rescore=args.rescore,
        engine=args.engine,
        alerts=bool(args.on_event),
    )
    result = run_job(job, args.db, args.lock_timeout, debug=args.debug)
    if result.status == "success":
        print(
            f"run {result.run_id}: wrote {result.rows_scored} rows ({result.rows_new} new) for {result.source}; "
            f"{len(result.new_events)} new event(s)"
        )
    return _db_exit([result], args, args.db)


@_logfmt_errors
def cmd_score_batch(args) -> int:
    from anomaly.errors import ConfigError
    from anomaly.scheduled import load_jobs, run_batch

    jobs, settings = load_jobs(args.jobs)
    db = args.db or settings.get("db")
    if not db:
        raise ConfigError(f'{args.jobs}: no database: give --db TARGET or set db = "..." in the file')
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    timeout = args.lock_timeout if args.lock_timeout is not None else settings.get("lock_timeout", 60.0)
    jobs = [dataclasses.replace(job, alerts=bool(args.on_event)) for job in jobs]
    results = run_batch(jobs, db, timeout, workers=args.workers, scheduler=args.scheduler)
    for r in results:
        state = (
            f"run {r.run_id}: wrote {r.rows_scored} rows ({r.rows_new} new), {len(r.new_events)} new event(s)"
            if r.status == "success"
            else f"{r.status}: {r.error}"
        )
        print(f"{r.source}: {state}")
    return _db_exit(results, args, db)


def _add_score_batch(sub) -> None:
    p = sub.add_parser(
        "score-batch",
        help="score many (data, model) pairs into a database, optionally on Dask",
        description="Score the jobs of JOBS.toml into a results database, one after the other, "
        "on a local Dask cluster (--workers N) or on a Dask scheduler (--scheduler).",
        epilog=SCORE_BATCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("jobs", metavar="JOBS.toml", help="TOML file with [[jobs]] tables (data, model, ...)")
    p.add_argument("--db", metavar="TARGET", help="results database (default: the file's db key)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="run on a local Dask cluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (e.g. tcp://host:8786)")
    _add_db_options(p, batch=True)
    p.set_defaults(func=cmd_score_batch, lock_timeout=None)


# -- evaluate ---------------------------------------------------------------------------------
def _stem(name: str) -> str:
    """A file name without its suffixes and folders: 'A-1.test.parquet' and 'SMAP/A-1' are both 'A-1'."""
    return Path(name).name.split(".")[0]


def _labels_for(path: str, key: str | None, data_path: str, tz) -> list:
    from anomaly.metrics import parse_labels

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f'{path}: expected {{"KEY": [[start, end], ...]}}')
    if key is None:
        name = Path(data_path).name
        matches = [k for k in raw if k == name or k.endswith("/" + name) or _stem(k) == _stem(name)]
        if len(raw) == 1:
            key = next(iter(raw))
            if not matches:  # the labels of another file, most often: said, as --key's help promises a match
                log.warning("%s: its one key '%s' does not name %s; read as its labels (--key chooses)", path, key, name)
        elif len(matches) == 1:
            key = matches[0]
        else:
            raise DataError(
                f"{path}: cannot tell which key holds the labels of {name}; use --key (keys: {', '.join(list(raw)[:5])}...)"
            )
    if key not in raw:
        raise DataError(f"{path}: no key '{key}'")
    try:
        return parse_labels(raw[key], tz)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: key '{key}': {exc}") from None


def cmd_evaluate(args) -> int:
    from anomaly.metrics import overlap_segment, point_adjusted, pointwise, weighted_segment

    detector = _load_detector(args)
    data = load_for_model(args.data, ReadOptions.of(args), detector)
    labels = _labels_for(args.labels, args.key, args.data, data.index.tz)
    outside = [(lo, hi) for lo, hi in labels if hi < data.index[0] or lo > data.index[-1]]
    if outside:  # counted as missed: most often a labels file for another copy or zone of the data
        log.warning(
            "%s: %d of %d labelled window(s) lie outside %s (%s to %s), the first at %s; counted as missed",
            args.labels,
            len(outside),
            len(labels),
            args.data,
            data.index[0],
            data.index[-1],
            outside[0][0],
        )
    with naming(args.data):
        scores = detector.score(data, threshold=args.threshold, quantile=args.quantile)
    events = detector.events(scores)
    flags = scores["is_anomaly"].to_numpy()
    found = list(zip(events["start"], events["end"]))
    result = {
        "labels": len(labels),
        "events": len(events),
        "overlap_segment": overlap_segment(found, labels),
        "weighted_segment": weighted_segment(found, labels, data.index[0], data.index[-1]),
        "pointwise": pointwise(scores.index, flags, labels),
        "point_adjusted_optimistic": point_adjusted(scores.index, flags, labels),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"labelled windows: {len(labels)}   detected events: {len(events)}")
    print(f"{'metric':<30}{'precision':>10}{'recall':>10}{'f1':>10}{'tp':>10}{'fp':>10}{'fn':>10}")
    rows = (
        ("overlap-segment (events)", "overlap_segment"),
        ("weighted-segment (seconds)", "weighted_segment"),
        ("point-wise (rows)", "pointwise"),
        ("point-adjusted (optimistic)", "point_adjusted_optimistic"),
    )
    for name, key in rows:
        m = result[key]
        print(
            f"{name:<30}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}"
            f"{m['tp']:>10.0f}{m['fp']:>10.0f}{m['fn']:>10.0f}"
        )
    return EXIT_OK


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare detected events with labelled windows",
        description="Score DATA and compare its events with labelled anomaly windows "
        '(LABELS.json: {"KEY": [[start, end], ...]}).',
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_saved_model_input(p)
    p.add_argument("--labels", required=True, metavar="LABELS.json", help="labelled windows")
    p.add_argument("--key", help="key of DATA in the labels file (default: matched by file name)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_data_options(p)
    _add_threshold_overrides(p)
    p.set_defaults(func=cmd_evaluate)


# -- embed ------------------------------------------------------------------------------------
EMBED_EXAMPLES = """examples:
  anomaly embed data/machine_temperature_system_failure.csv --model models/demo --duplicates mean --out vectors.parquet
  anomaly embed new.csv --model models/pump --out vectors.csv
"""


def cmd_embed(args) -> int:
    from anomaly.io import check_output, write_table

    check_output(args.out, args.data)  # before any work
    detector = _load_detector(args)
    data = load_for_model(args.data, ReadOptions.of(args), detector)
    with naming(args.data):
        vectors = detector.embed(data)
    write_table(vectors, args.out)
    print(f"wrote {len(vectors)} vectors of {vectors.shape[1] - 2} numbers to {args.out}")
    return EXIT_OK


def _add_embed(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="write the encoder's vector of every window",
        description="Run the encoder of a saved model alone and write one fixed-length vector per "
        "window of DATA (start, end, z0, z1, ...), for plots, clustering or a classifier.",
        epilog=EMBED_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_saved_model_input(p, engine=False)  # the encoder alone runs in TensorFlow
    p.add_argument("--out", required=True, metavar="FILE", help="vectors file (.csv or .parquet)")
    _add_data_options(p)
    p.set_defaults(func=cmd_embed, min_length=None, merge_gap=None)


# -- export-onnx ------------------------------------------------------------------------------
def cmd_export_onnx(args) -> int:
    from anomaly.artifacts import ONNX_FILE, read_metadata, sha256_file
    from anomaly.detector import LSTMAutoencoderDetector

    onnx, digest = Path(args.model) / ONNX_FILE, read_metadata(Path(args.model)).get("onnx_sha256")
    if digest is not None and onnx.is_file() and sha256_file(onnx) == digest:
        # Saving again would give the model a new version (its metadata's time and checksum), and
        # the scheduled scorer would take it for a retrained model. A missing or altered file is exported again.
        print(f"{onnx} exists: the model already runs without TensorFlow; nothing changed")
        return EXIT_OK
    detector = LSTMAutoencoderDetector.load(args.model)
    path = detector.save(args.model, onnx=True)  # the whole directory is rewritten atomically, with model.onnx
    print(f"exported {path / 'model.onnx'}: 'anomaly score --model {args.model}' now runs without TensorFlow")
    return EXIT_OK


EXPORT_ONNX_EXAMPLES = """examples:
  anomaly export-onnx models/demo                    # a model trained with --no-onnx, or by an older version
  anomaly score new.csv --model models/demo --engine onnx
"""


def _add_export_onnx(sub) -> None:
    p = sub.add_parser(
        "export-onnx",
        help="add an ONNX export to a saved model (scoring without TensorFlow)",
        description="Export the model of DIR to DIR/model.onnx, so that 'anomaly score' runs it with "
        "ONNX Runtime: no TensorFlow import, about a second to start, a fraction of the memory.",
        epilog=EXPORT_ONNX_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="DIR", help="model directory written by 'anomaly train'")
    p.set_defaults(func=cmd_export_onnx)


# -- feedback and events ----------------------------------------------------------------------
FEEDBACK_EXAMPLES = """examples:
  anomaly events --db results.db --source pump-7                # stored events and their verdicts, as CSV
  anomaly feedback --db results.db --source pump-7 --start '2024-03-02 10:15' --verdict false --by ana
  anomaly feedback --db results.db --source pump-7 --start '2024-03-02 10:15' --verdict ack --by ana \\
      --mute-until '2024-03-03 08:00' --note 'valve maintenance'
"""


def _timestamp(text: str, option: str):
    import pandas as pd

    try:
        return pd.Timestamp(text)
    except (ValueError, TypeError):
        raise DataError(f"{option}: cannot read '{text}' as a timestamp (e.g. 2024-03-02 10:15)") from None


def cmd_feedback(args) -> int:
    from anomaly.feedback import VERDICT_LABELS
    from anomaly.store import naive_utc, open_store

    start = _timestamp(args.start, "--start")
    mute = None if args.mute_until is None else _timestamp(args.mute_until, "--mute-until")
    with open_store(args.db) as store:
        found = store.events_at(args.source, start)
        if args.model is not None:  # FOLDER@VERSION as stored, or the FOLDER of every version
            folder = str(Path(args.model).expanduser().resolve()) if "@" not in args.model else args.model
            found = found[(found["model"] == args.model) | (found["model"].str.rsplit("@", n=1).str[0] == folder)]
        starting = found["start"] == naive_utc([start])[0]  # stored times are naive UTC
        if starting.any():  # the event starting there, before any it falls inside
            found = found[starting]
        if found.empty:
            raise DataError(
                f"{args.db}: no stored event of source '{args.source}' starts at or spans {start}"
                + (f" for model {args.model}" if args.model else "")
                + " (see 'anomaly events')"
            )
        if len(found) > 1:
            raise DataError(
                f"{args.db}: {len(found)} model versions stored an event of '{args.source}' at {start}; "
                f"choose one with --model ({', '.join(found['model'])})"
            )
        row = store.mark_event(
            args.source, found["model"].iloc[0], found["start"].iloc[0], args.verdict, args.by, args.note, mute
        )
    muted = f", alerts muted until {row['mute_until']}" if row["mute_until"] is not None else ""
    print(f"marked the event of {args.source} at {row['start']} as {VERDICT_LABELS[row['verdict']]}{muted}")
    return EXIT_OK


def _add_feedback(sub) -> None:
    p = sub.add_parser(
        "feedback",
        help="mark a stored event as a true alarm, a false alarm or acknowledged",
        description="Record a verdict on an event of the results database, with who gave it and when. "
        "A false alarm or an acknowledged event also silences the alerts (--on-event, exit "
        "code 4) of new events of the source that overlap it, or start before --mute-until.",
        epilog=FEEDBACK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", required=True, metavar="TARGET", help="results database: an SQLite file or an SQLAlchemy URL")
    p.add_argument("--source", required=True, help="the event's source, as stored (see 'anomaly events')")
    p.add_argument("--start", required=True, metavar="TS", help="the event's start as stored (UTC), or any time within it")
    p.add_argument(
        "--verdict",
        required=True,
        choices=["true", "false", "ack"],
        help="true alarm, false alarm, or acknowledged (seen, being handled)",
    )
    p.add_argument("--by", required=True, metavar="NAME", help="who gives the verdict")
    p.add_argument("--note", default="", help="a short note kept with the verdict")
    p.add_argument("--mute-until", metavar="TS", help="also silence the source's alerts until TS (false or ack only)")
    p.add_argument("--model", metavar="MODEL", help="the model (FOLDER or FOLDER@VERSION) when several found the event")
    p.set_defaults(func=cmd_feedback)


def cmd_events(args) -> int:
    from anomaly.feedback import with_feedback
    from anomaly.io import check_output, iso_timestamps, write_table
    from anomaly.store import open_store

    if args.out and args.drop_pending:
        raise ConfigError("--drop-pending deletes alerts and writes no file; leave out --out")
    if args.out:
        check_output(args.out)
    with open_store(args.db) as store:
        if args.source is not None and args.source not in (known := store.sources()):
            raise DataError(f"{args.db}: no source '{args.source}' (sources: {', '.join(known) or 'none yet'})")
        if args.drop_pending:
            dropped = store.drop_alerts(args.source)
            held = len(store.pending_alerts(args.source))  # claimed by a run sending them now
            print(
                f"dropped {dropped} alert(s) not sent yet"
                + (f" of '{args.source}'" if args.source else "")
                + (f"; kept {held} that a run is sending now" if held else "")
            )
            return EXIT_OK
        if args.pending:  # the outbox: alerts --on-event has not taken yet, with their tries and last error
            table = store.pending_alerts(args.source)
        else:
            table = with_feedback(store.events(args.source), store.feedback(args.source))
    if args.out:
        write_table(table, args.out)
        print(f"wrote {len(table)} {'alert(s) not sent yet' if args.pending else 'event(s)'} to {args.out}")
    else:
        iso_timestamps(table).to_csv(sys.stdout, index=False)  # as the file would hold them (pandas drops 00:00:00)
    return EXIT_OK


def _add_events(sub) -> None:
    p = sub.add_parser(
        "events",
        help="list the events of a results database with their verdicts (CSV), or its unsent alerts",
        description="Print (or write to --out) the stored events and their operators' verdicts, oldest first per source, "
        "as CSV; --pending lists the alerts not sent yet instead, --drop-pending deletes them.",
        epilog=FEEDBACK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", required=True, metavar="TARGET", help="results database: an SQLite file or an SQLAlchemy URL")
    p.add_argument("--source", help="only this source's events")
    outbox = p.add_mutually_exclusive_group()
    outbox.add_argument(
        "--pending",
        action="store_true",
        help="list instead the alerts not sent yet (source, model, start, tries, error, queued): "
        "those a failing --on-event command left, and any not tried yet",
    )
    outbox.add_argument(
        "--drop-pending",
        action="store_true",
        help="delete instead the alerts not sent yet (all, or --source's), so no run sends them; an alert being sent now is kept",
    )
    p.add_argument("--out", metavar="FILE", help="write to FILE (.csv or .parquet) instead of standard output")
    p.set_defaults(func=cmd_events)


# -- dashboard --------------------------------------------------------------------------------
def cmd_dashboard(args) -> int:
    import importlib.util

    missing = [name for name in ("streamlit", "plotly") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"the dashboard needs {' and '.join(missing)}: pip install 'lstm-anomaly[dashboard]'")
    from anomaly import dashboard

    app = Path(dashboard.__file__).parent / "app.py"
    db = args.db if "://" in args.db else str(Path(args.db).expanduser().resolve())
    env = dict(
        os.environ,
        ANOMALY_MODELS_DIR=str(Path(args.models).expanduser().resolve()),
        ANOMALY_DATA_DIR=str(Path(args.data).expanduser().resolve()),
        ANOMALY_DB=db,
    )
    for option, folder in (("--models", env["ANOMALY_MODELS_DIR"]), ("--data", env["ANOMALY_DATA_DIR"])):
        if not Path(folder).is_dir():
            log.warning("%s %s: no such folder yet (the dashboard lists nothing there)", option, folder)
    # The server settings the checkout's .streamlit/config.toml holds, given on the command line so an
    # installed package behaves the same from any working directory.
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(dashboard.MAX_UPLOAD_MB),
        "--browser.gatherUsageStats",
        "false",
        "--client.showErrorDetails",
        "type",
        "--client.toolbarMode",
        "minimal",
        "--global.disableWidgetStateDuplicationWarning",
        "true",
    ]
    print(
        f"serving the dashboard on http://{args.address}:{args.port} (models: {env['ANOMALY_MODELS_DIR']}, "
        f"data: {env['ANOMALY_DATA_DIR']}, database: {dashboard.db_label(db)}); Ctrl+C stops it",
        flush=True,
    )
    return _exec(command, env)


def _exec(command: list[str], env: dict) -> int:
    """Become the Streamlit server (exec, not a child): Ctrl+C and SIGTERM reach it directly."""
    os.execve(command[0], command, env)
    return EXIT_ERROR  # not reached: execve returns only by raising


DASHBOARD_EXAMPLES = """examples:
  anomaly dashboard                                  # ./models, ./data and ./results.db on http://127.0.0.1:8501
  anomaly dashboard --models /srv/models --data /srv/data --db postgresql://viewer@db/results --port 8600
  anomaly dashboard --address 0.0.0.0                # reachable from other machines (no login: a trusted network only)
"""


def _add_dashboard(sub) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the Streamlit dashboard (needs the 'dashboard' extra)",
        description="Serve the dashboard: explore a series and its scores, tune the flagging rule, "
        "train models, and follow the scheduled runs of a results database. It reads and "
        "writes only inside --models, --data and --db.",
        epilog=DASHBOARD_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", default="models", metavar="DIR", help="models folder (default: ./models)")
    p.add_argument("--data", default="data", metavar="DIR", help="data folder (default: ./data)")
    p.add_argument(
        "--db",
        default="results.db",
        metavar="TARGET",
        help="results database: an SQLite file or an SQLAlchemy URL (default: ./results.db)",
    )
    p.add_argument("--address", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8501, help="port (default: 8501)")
    p.set_defaults(func=cmd_dashboard)


# -- bench ------------------------------------------------------------------------------------
BENCH_EXAMPLES = """examples:
  anomaly bench ../shared/benchdata/smap --protocol train-test --json smap.json
  anomaly bench ../shared/benchdata/nab --series 'realAdExchange/*' --protocol whole
  anomaly bench ../shared/benchdata/smd --methods pca,zscore
"""


def cmd_bench(args) -> int:
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.io import check_writable
    from anomaly.research.bench import format_table, run_bench

    overrides = params.given(args, LSTMAutoencoderDetector, ("model", "kind", "flagging", "other"))
    if args.json:  # checked before hours of fitting, not after
        check_writable(args.json, "--json")
    if args.cache and Path(args.cache).exists() and not Path(args.cache).is_dir():
        raise ConfigError(f"{args.cache}: --cache must be a folder (it is created if missing), not a file")
    if args.max_rows is not None and args.max_rows < 0:
        raise ConfigError(f"--max-rows must be >= 0 (0: off), not {args.max_rows}")

    def progress(i, n, row):
        if not args.quiet:
            seg = {m: r["overlap_segment"] for m, r in row["methods"].items()}
            print(
                f"[{i}/{n}] {row['series']}: " + "  ".join(f"{m} tp={c['tp']} fp={c['fp']} fn={c['fn']}" for m, c in seg.items()),
                file=sys.stderr,
                flush=True,
            )

    result = run_bench(
        args.dir, args.protocol, args.series, tuple(args.methods), overrides, args.cache, progress, args.max_rows, args.context
    )
    print(format_table(result))
    if args.json:
        from anomaly.artifacts import write_text_atomic

        write_text_atomic(Path(args.json), json.dumps(result, indent=2, default=str))
    return EXIT_OK


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the detector and two baselines on a labelled dataset folder",
        description="Fit, score and evaluate every series of DIR (NAB's layout, or SERIES.train/test.parquet "
        "+ labels.json) with the LSTM detector and the PCA and rolling z-score baselines; print "
        "per-series and pooled overlap-segment, weighted-segment, point-wise and point-adjusted (optimistic) "
        "figures and AUC-PR.",
        epilog=BENCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="dataset folder")
    p.add_argument(
        "--protocol",
        choices=["train-test", "whole", "probation"],
        help="train-test: fit on train, score test; whole: fit and score everything; probation: fit on the "
        "first 15%% (default: train-test where splits exist, else whole)",
    )
    p.add_argument("--series", metavar="GLOB", help="only series whose name matches GLOB (e.g. 'realAdExchange/*', 'A-*')")
    p.add_argument("--json", metavar="OUT", help="also write every figure as JSON to OUT")
    p.add_argument(
        "--methods", type=_name_list, default=["lstm", "pca", "zscore"], help="comma-separated: lstm,pca,zscore (default: all)"
    )
    p.add_argument("--cache", metavar="DIR", help="save per-timestamp raw scores (npz) under DIR to study post-processing")
    g = p.add_argument_group("detector overrides (default: the detector's defaults, as 'anomaly train' uses them)")
    g.add_argument("--max-rows", type=int, help="average blocks of rows so the scored part has at most this many (0 = off)")
    from anomaly.detector import LSTMAutoencoderDetector

    # Every option of `anomaly train` that shapes the detector, from the same table: a setting is
    # measured exactly as a user would set it (--seed: report the mean of several).
    for group in ("model", "kind", "flagging", "other"):
        params.add_options(g, LSTMAutoencoderDetector, group, show_defaults=False)
    g.add_argument(
        "--context",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use cmd_* columns (SMAP's command flags) as LSTM inputs, not targets (default: the benchmark's)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-series progress")
    p.set_defaults(func=cmd_bench)


# -- main -------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with the package's one-line errors (``error: PROG: MESSAGE (see PROG --help)``, exit 2)
    instead of the usage block argparse prints first; the subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anomaly",
        description="Find anomalies in sensor time series with LSTM autoencoders.",
        epilog="exit codes: 0 success, 1 internal error, 2 bad input (data, option or model), "
        "3 database lock busy, 4 new anomalies found (opt-in), 130 interrupted, 141 output pipe closed, 143 terminated",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(sub)
    _add_score(sub)
    _add_evaluate(sub)
    _add_embed(sub)
    _add_export_onnx(sub)
    _add_score_batch(sub)
    _add_bench(sub)
    _add_events(sub)
    _add_feedback(sub)
    _add_dashboard(sub)
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


EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT (128 + 2)
EXIT_TERMINATED = 143  # and for SIGTERM (128 + 15)
EXIT_BROKEN_PIPE = 141  # and for SIGPIPE (128 + 13): what `tool | head` gives for a tool killed by it


def _terminate_like_interrupt():
    """Make SIGTERM raise :class:`Terminated` in the main thread; returns the previous handler."""

    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. main() called from a worker): leave it alone
        return None


def _close_progress_bars() -> None:
    """Close open tqdm bars now, so their last refresh comes before the error line, not after it."""
    tqdm_module = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm_module, "tqdm", None), "_instances", ()) or ()):
        try:
            bar.close()
        except Exception:  # a bar that cannot close must not hide the interruption
            pass


def _stopped(exc: KeyboardInterrupt) -> int:
    """The one line and exit code of an interrupted (Ctrl-C) or terminated (SIGTERM) command."""
    _close_progress_bars()
    print(f"error: {stopped_by(exc)}", file=sys.stderr)
    return _stop_code(exc)


def _stop_code(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def _joined_negative_values(argv: list[str]) -> list[str]:
    """``--missing-values -9999,9.9e37`` as ``--missing-values=-9999,9.9e37``: argparse takes a value that
    starts with '-' for an option unless it is one plain negative number, so a list of codes led by a
    negative one was refused as "expected one argument"."""
    out: list[str] = []
    for arg in argv:
        named = bool(out) and out[-1].startswith("--mis") and "--missing-values".startswith(out[-1])  # abbreviated too
        if named and re.match(r"-[\d.]", arg):
            out[-1] = f"--missing-values={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_joined_negative_values(sys.argv[1:] if argv is None else list(argv)))
    _setup_logging(getattr(args, "quiet", False))
    previous = _terminate_like_interrupt()
    try:
        return args.func(args)
    except AnomalyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Terminated
        return _stopped(exc)
    except BrokenPipeError:  # the reader of stdout stopped early (`| head`): quiet, as a Unix tool killed by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug or an environment problem: still one line unless --debug
        stop = interruption(exc)
        if stop is not None:
            return _stopped(stop)
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {first_line(exc)} (rerun with --debug for details)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["main", "build_parser", "EXIT_BAD_INPUT"]

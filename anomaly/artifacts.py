"""The model directory: ``model.keras`` (Keras' own zip), ``detector.json`` (everything else) and,
when asked for, ``model.onnx`` (the same inference graph for the ONNX engine, :mod:`anomaly.engine`).

Written atomically: into a hidden temporary directory beside the target, then swapped in by
rename, so an interrupted save never leaves a half-written model and keeps the previous one.
Loaded defensively: every field is checked, the Keras (and ONNX) file must match the checksum recorded in
the JSON, and Keras loads it with ``safe_mode=True`` (no Lambda layers, no arbitrary code).
No pickle or joblib anywhere.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly import __version__, mixture, seasonal
from anomaly.errors import ConfigError, ModelError, first_line
from anomaly.io import DUPLICATE_POLICIES, READ_DEFAULTS
from anomaly.thresholds import fixed_threshold

FORMAT = "lstm-anomaly-model"
# 2: seasonal profiles; 3: the timezone parameter; 4: the smoothing span in force (`smoothing_span`), which
# grows with the stride; 5: how the training data was read (`reading`), which later runs reuse (an older
# package refuses each by name: "upgrade the package")
FORMAT_VERSION = 5
OLDEST_FORMAT = 1  # still loaded: format 1 had no profiles, so its models load with seasonal "off"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
META_FILE = "detector.json"
MODEL_FILES = (MODEL_FILE, ONNX_FILE, META_FILE)  # all a model directory holds: saving replaces it whole
LOADERS = {"series": "LSTMAutoencoderDetector", "sequences": "LSTMSequenceDetector"}  # by detector.json "fitted_on"
MAX_META_BYTES = 64 * 1024 * 1024  # far above any real detector.json; refuses a planted giant file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def metadata(detector) -> dict:
    """The JSON side of a fitted detector: the format, its hyperparameters and its learned state."""
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in detector.get_params().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "fitted_on": detector.FITTED_ON,
        "params": params,
        **detector.fitted_state(),
    }


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON to a temporary name beside ``path`` and rename it over ``path``."""
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=False, default=_plain))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path`` and rename it over ``path``: a reader
    sees the old file or the new one, never part of it."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename never publishes data still in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported.

    Python has no binding for it, hence ctypes: with it, there is no instant at which the model
    directory is missing (two renames leave one, however short).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _recover(directory: Path) -> None:
    """Clean up after a save that was killed: put back a previous model that was moved aside
    (only possible without ``renameat2``), and delete leftover temporary directories."""
    parent = directory.parent
    if not parent.is_dir():
        return
    name = glob.escape(directory.name)
    olds = sorted(parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not directory.exists() and olds and (olds[-1] / META_FILE).exists() and not _owner_alive(olds[-1]):
        os.replace(olds[-1], directory)
        olds = olds[:-1]
    for stale in [*parent.glob(f".{name}.tmp-*"), *olds]:
        if not _owner_alive(stale):  # never pull a directory from under a save still running
            shutil.rmtree(stale, ignore_errors=True)


def _scratch_name(directory: Path, kind: str) -> Path:
    """``.NAME.KIND-PID-XXXXXXXX`` beside ``directory``: hidden, unique, and tells who is writing it."""
    return directory.parent / f".{directory.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _owner_alive(path: Path) -> bool:
    """Whether another live process on this machine wrote ``path`` (named by :func:`_scratch_name`)."""
    try:
        pid = int(path.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def check_model_target(directory: Path) -> None:
    """Refuse to write a model over a file or a directory that holds something else (``anomaly
    train`` checks this before fitting, so a wrong ``--model`` costs no training).

    A model directory is replaced whole, so anything else in it would be deleted with the old
    model: the training data kept beside it, a scores file, a notes folder. Those are refused too."""
    if directory.exists() and not directory.is_dir():
        raise ModelError(f"{directory}: exists and is not a directory; refusing to replace it")
    # The model is written beside its folder and swapped in, the folders above it created first: the
    # nearest one that exists must be a folder this user may write (else the fit was for nothing).
    ancestor = next(p for p in directory.parents if p.exists())
    if not ancestor.is_dir():
        raise ModelError(f"{directory}: cannot save a model there: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ModelError(f"{directory}: cannot save a model there: no permission to write in {ancestor}")
    if not directory.exists():
        return
    if not (directory / META_FILE).exists() and any(directory.iterdir()):
        raise ModelError(f"{directory}: exists and is not a model directory; refusing to replace it")
    others = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir() if p.name not in MODEL_FILES)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ModelError(
            f"{directory}: holds {listed} beside the model, and saving replaces the whole folder; "
            "move them out first, or save the model to another folder"
        )


def _plain(value):
    """A numpy scalar or array as the Python value JSON writes (a hyperparameter taken from np.arange, say)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def checked_reading(reading: dict | None) -> dict | None:
    """``reading`` (how a model's training data was read) as the JSON values ``detector.json`` holds,
    or a ConfigError where loading would refuse it: checked before anything is written."""
    try:
        plain = json.loads(json.dumps(reading, allow_nan=False, default=_plain))  # numpy values and tuples too
    except (TypeError, ValueError):
        plain = False
    if not _valid_reading(plain):
        raise ConfigError(
            "reading must give timestamp_col (a column name), duplicates ('error' or 'mean'), max_gap (an integer >= 0) "
            "and missing_values (a list of finite numbers), and nothing else"
        )
    return plain


def save_detector(detector, directory: Path, onnx: bool = False) -> Path:
    """Write ``directory`` atomically; an existing model there is replaced only once the new one is complete.

    With ``onnx``, the inference graph is also exported as ``model.onnx`` (for the ONNX engine).

    The new model is written into ``.NAME.tmp-XXXX`` beside the target, flushed to disk, then
    swapped in by one atomic exchange (or, where that is unsupported, two renames, undone by
    :func:`_recover` if killed between them). Leftovers of killed saves are removed first.
    """
    directory = directory.resolve()
    check_model_target(directory)
    try:
        _write_swapped(detector, directory, onnx)
    except OSError as exc:  # a full disk, a folder made read-only since the check: one line, not a traceback
        raise ModelError(f"{directory}: cannot save the model ({exc.strerror or first_line(exc)})") from None
    return directory


def _write_swapped(detector, directory: Path, onnx: bool) -> None:
    """The body of :func:`save_detector`: write into a scratch folder, then swap it in."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    _recover(directory)
    tmp = _scratch_name(directory, "tmp")
    old = _scratch_name(directory, "old")
    tmp.mkdir()
    try:
        detector.model_.save(tmp / MODEL_FILE)
        meta = metadata(detector)
        meta["model_sha256"] = sha256_file(tmp / MODEL_FILE)
        files = [tmp / MODEL_FILE, tmp / META_FILE]
        if onnx:
            from anomaly.engine import export_onnx

            export_onnx(detector.model_, tmp / ONNX_FILE)
            meta["onnx_sha256"] = sha256_file(tmp / ONNX_FILE)
            files.append(tmp / ONNX_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False, default=_plain))
        for path in (*files, tmp):
            _fsync(path)
        if directory.exists():
            if not _exchange(tmp, directory):  # tmp now holds the previous model, removed below
                os.replace(directory, old)
                os.replace(tmp, directory)
        else:
            os.replace(tmp, directory)
        _fsync(directory.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def model_version(directory: Path) -> str:
    """The first 12 hex digits of the SHA-256 of ``directory``'s detector.json: it holds the weights'
    checksum, the settings and the thresholds, so a model retrained into the same folder, or given new
    settings, is a new version. ``unreadable`` when the file cannot be read (loading then says why)."""
    try:
        return hashlib.sha256((Path(directory) / META_FILE).read_bytes()).hexdigest()[:12]
    except OSError:
        return "unreadable"


def read_metadata(directory: Path) -> dict:
    """The validated ``detector.json`` of a model directory."""
    if not directory.exists():
        raise ModelError(f"{directory}: model directory not found")
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a directory")
    path = directory / META_FILE
    if not path.is_file():
        raise ModelError(f"{directory}: not a model directory (no {META_FILE})")
    if path.stat().st_size > MAX_META_BYTES:
        raise ModelError(f"{path}: {path.stat().st_size:,} bytes is too large for a model's metadata")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ModelError(f"{path}: corrupt JSON ({first_line(exc, 300)})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelError(f"{path}: not a {FORMAT} file")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelError(f"{path}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: written by a newer version (format {version}, package {meta.get('package_version')}); "
            f"this is {__version__} (format {FORMAT_VERSION}): upgrade the package"
        )
    if version < OLDEST_FORMAT:
        raise ModelError(f"{path}: format {version} is too old for this version ({__version__}); retrain the model")
    _validate(meta, path)
    return meta


def _validate(meta: dict, path: Path) -> None:
    """Types and shapes of every field, so a tampered file fails here and not deep in scoring."""

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ModelError(f"{path}: invalid field {what}")

    def numbers(value, n: int | None = None) -> bool:
        return isinstance(value, list) and all(_finite(v) for v in value) and (n is None or len(value) == n)

    need(isinstance(meta.get("params"), dict), "'params'")
    need(meta.get("fitted_on", "series") in LOADERS, "'fitted_on'")
    cols = meta.get("columns")
    need(isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols) and len(set(cols)) == len(cols), "'columns'")
    n = len(cols)
    scaler = meta.get("scaler")
    need(isinstance(scaler, dict), "'scaler'")
    need(numbers(scaler.get("mean"), n), "'scaler.mean'")
    need(numbers(scaler.get("scale"), n) and all(s > 0 for s in scaler["scale"]), "'scaler.scale'")
    need(numbers(scaler.get("var"), n), "'scaler.var'")
    context = meta["params"].get("context_columns") or []
    need(isinstance(context, list) and all(c in cols for c in context) and len(context) < n, "'params.context_columns'")
    need(numbers(meta.get("error_ref"), n - len(context)) and all(e > 0 for e in meta["error_ref"]), "'error_ref'")
    need(numbers(meta.get("normal_scores")) and len(meta["normal_scores"]) > 0, "'normal_scores'")
    # optional: models saved before causal flagging lack them (see load_detector)
    need("normal_errors" not in meta or (numbers(meta["normal_errors"]) and len(meta["normal_errors"]) > 0), "'normal_errors'")
    ranges = meta.get("part_ranges")  # AER's mixture (combination mult/sum) only; None or absent otherwise
    need(
        (ranges is None) == (meta["params"].get("combination", "mean") == "mean")
        and (
            ranges is None
            or (
                isinstance(ranges, dict)
                and set(ranges) == set(mixture.PARTS)
                and all(
                    isinstance(r, list) and len(r) == 2 and all(numbers(v, n - len(context)) for v in r) for r in ranges.values()
                )
            )
        ),
        "'part_ranges'",
    )
    need(_valid_profiles(meta.get("seasonal", {}), [c for c in cols if c not in context]), "'seasonal'")
    stride = meta.get("stride")
    need(stride is None or (isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1), "'stride'")
    span = meta.get("smoothing_span")  # a series model's since format 4 (before: the span was `smoothing`)
    if meta.get("fitted_on", "series") == "series" and meta.get("format_version", 0) >= 4:
        need(isinstance(span, int) and not isinstance(span, bool) and span >= 0, "'smoothing_span'")
    else:
        need(span is None or (isinstance(span, int) and not isinstance(span, bool) and span >= 0), "'smoothing_span'")
    interval = meta.get("interval_seconds")
    need(_finite(interval) and 1e-9 <= interval <= MAX_INTERVAL_SECONDS, "'interval_seconds'")
    tz = meta.get("timezone")
    need(tz is None or (isinstance(tz, str) and _valid_timezone(tz)), "'timezone'")
    t = meta.get("thresholds")
    need(
        isinstance(t, dict) and isinstance(t.get("values"), dict) and isinstance(t.get("rule"), str) and t["rule"] in t["values"],
        "'thresholds'",
    )
    need(all(_finite(v) and v >= 0 for v in t["values"].values()), "'thresholds.values'")
    need(isinstance(meta.get("history"), dict), "'history'")
    need(_valid_reading(meta.get("reading")), "'reading'")
    fp = meta.get("fingerprint")
    need(isinstance(fp, dict) and (fp.get("rows") is None or (_finite(fp["rows"]) and fp["rows"] >= 0)), "'fingerprint'")
    for key in ("model_sha256", "onnx_sha256"):
        digest = meta.get(key)
        if key == "onnx_sha256" and digest is None:  # optional: only models saved with onnx=True
            continue
        need(isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest), f"'{key}'")


MAX_INTERVAL_SECONDS = 366 * 86400.0


def _valid_reading(reading: object) -> bool:
    """None, or how the training data was read (``anomaly.loading.ReadOptions.saved``), every option set."""
    if reading is None:
        return True
    if not isinstance(reading, dict) or set(reading) != set(READ_DEFAULTS):
        return False
    gap, codes = reading["max_gap"], reading["missing_values"]
    return (
        isinstance(reading["timestamp_col"], str)  # "" too: a Parquet file may name its timestamp column so
        and reading["duplicates"] in DUPLICATE_POLICIES
        and isinstance(gap, int)
        and not isinstance(gap, bool)
        and gap >= 0
        and isinstance(codes, list)
        and all(_finite(c) for c in codes)
    )


def _valid_profiles(profiles: object, sensors: list[str]) -> bool:
    """A dict of sensor -> seasonal profile (:mod:`anomaly.seasonal`): offsets ascending within the period."""
    if not isinstance(profiles, dict) or not set(profiles) <= set(sensors):
        return False
    for p in profiles.values():
        if not (isinstance(p, dict) and isinstance(p.get("period"), str) and p["period"] in seasonal.PERIODS):
            return False
        if "r2" not in p or not (p["r2"] is None or _finite(p["r2"])):
            return False
        offsets, levels = p.get("offsets"), p.get("levels")
        if not (isinstance(offsets, list) and isinstance(levels, list) and 0 < len(offsets) == len(levels)):
            return False
        if not all(_finite(v) for v in offsets + levels):
            return False
        o = np.asarray(offsets, dtype=float)
        if o[0] < 0 or o[-1] >= seasonal.PERIODS[p["period"]] or np.any(np.diff(o) <= 0):
            return False
    return True


def _finite(value) -> bool:
    """A JSON number (not a bool) that is finite as a float; huge integers count as not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return bool(np.isfinite(float(value)))
    except OverflowError:
        return False


def _valid_timezone(name: str) -> bool:
    try:
        pd.Timestamp("2000-01-01", tz=name)
    except Exception:  # pandas raises several types for an unknown zone
        return False
    return True


def _checked_file(directory: Path, name: str, digest: str) -> Path:
    path = directory / name
    if not path.exists():
        raise ModelError(f"{directory}: {name} is missing")
    if sha256_file(path) != digest:
        raise ModelError(f"{path}: checksum does not match {META_FILE}: the file is corrupt or was modified")
    return path


def choose_engine(meta: dict, engine: str, directory: Path) -> str:
    """``tensorflow`` or ``onnx``: ``auto`` takes ONNX where the model has an export and onnxruntime is installed."""
    from anomaly.engine import ENGINES

    if engine not in ENGINES:
        raise ModelError(f"engine must be one of {', '.join(ENGINES)}, not '{engine}'")
    has_onnx = meta.get("onnx_sha256") is not None
    if engine == "onnx" and not has_onnx and meta.get("fitted_on") == "sequences":
        raise ModelError(f"{directory}: a sequence model has no ONNX export; run it with TensorFlow")
    if engine == "onnx" and not has_onnx:
        raise ModelError(
            f"{directory}: has no ONNX export (trained with --no-onnx, or by an older version); "
            f"add one with 'anomaly export-onnx {directory}'"
        )
    if engine == "auto":
        import importlib.util

        if has_onnx and importlib.util.find_spec("onnxruntime") is not None:
            return "onnx"
        if importlib.util.find_spec("tensorflow") is None:
            from anomaly.errors import MissingExtraError

            raise MissingExtraError(
                f"{directory}: has no ONNX export and TensorFlow is not installed: pip install "
                f"'lstm-anomaly[train]', or run 'anomaly export-onnx {directory}' where it is"
            )
        return "tensorflow"
    return engine


def _load_onnx(directory: Path, meta: dict):
    from anomaly.engine import OnnxModel

    return OnnxModel(_checked_file(directory, ONNX_FILE, meta["onnx_sha256"]))


def _load_keras(directory: Path, meta: dict):
    from anomaly.tfkeras import keras

    model_path = _checked_file(directory, MODEL_FILE, meta["model_sha256"])
    try:
        # safe_mode=True: Keras refuses Lambda layers and any code hidden in the file.
        return keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad zip, config or unsafe layer
        raise ModelError(f"{model_path}: cannot load the Keras model ({first_line(exc, 300)})") from None


def load_detector(cls, directory: Path, engine: str = "tensorflow"):
    """Rebuild a fitted detector from ``directory``; any inconsistency is a :class:`ModelError`.

    ``engine="onnx"`` loads ``model.onnx`` into ONNX Runtime instead of the Keras model: TensorFlow
    is never imported, and the detector can score but not be saved, refitted from its weights or embed.
    """
    from anomaly.errors import AnomalyError

    meta = read_metadata(directory)  # before TensorFlow is imported: a bad directory fails fast
    fitted_on = meta.get("fitted_on", "series")  # models saved before the sequence detector: series
    if fitted_on != cls.FITTED_ON:
        raise ModelError(
            f"{directory}: a model fitted on {fitted_on}: load it in Python with {LOADERS[fitted_on]}.load "
            "(the anomaly commands run models fitted on one series)"
        )
    engine = choose_engine(meta, engine, directory)
    params = meta["params"]
    try:
        detector = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        detector.check_params()
    except (TypeError, ValueError, AnomalyError) as exc:
        raise ModelError(f"{directory / META_FILE}: invalid params ({first_line(exc, 300)})") from None
    model_path = directory / (ONNX_FILE if engine == "onnx" else MODEL_FILE)
    model = _load_onnx(directory, meta) if engine == "onnx" else _load_keras(directory, meta)
    n = len(meta["columns"])
    expected = (None, detector.window, n)
    # each decoder's output: the window (reconstruction) and/or the horizon (prediction); see model_kind
    expected_out = detector.output_shapes(n)
    try:
        if engine == "onnx":  # the export leaves time dimensions symbolic: run it once to see them
            probe = model(np.zeros((1, detector.window, n), np.float32))
            out = [(None, *o.shape[1:]) for o in (probe if isinstance(probe, list) else [probe])]
        else:
            out = model.output_shape
            out = [tuple(o) for o in out] if isinstance(out, list) else [tuple(out)]
        shapes = tuple(model.input_shape), out
    except Exception:  # a model with several or no defined inputs is not one of ours
        shapes = None
    if shapes != (expected, expected_out):
        got = "undefined" if shapes is None else f"input {shapes[0]}, output {', '.join(map(str, shapes[1]))}"
        want = f"input {expected}, output {', '.join(map(str, expected_out))}"
        raise ModelError(f"{model_path}: model shapes ({got}) do not match the metadata ({want})")

    return detector.restore(meta, model)


FLAGGING_PARAMS = ("local_k", "local_trailing", "local_exclude", "local_cap", "prune", "event_padding")


def update_params(directory: Path, params: dict) -> None:
    """Replace hyperparameters of an existing model directory (atomic JSON rewrite); the caller has checked
    them (:meth:`anomaly.detector.LSTMAutoencoderDetector.save_flagging`)."""
    meta = read_metadata(directory)
    meta["params"] = {**meta["params"], **params}
    write_json_atomic(directory / META_FILE, meta)


def update_threshold(directory: Path, value: float, rule: str = "manual") -> None:
    """Store a new threshold in force in an existing model directory (atomic JSON rewrite)."""
    value = fixed_threshold(value)
    meta = read_metadata(directory)
    meta["thresholds"]["values"][rule] = value
    meta["thresholds"]["rule"] = rule
    write_json_atomic(directory / META_FILE, meta)

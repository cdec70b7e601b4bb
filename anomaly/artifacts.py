"""The model directory: ``model.keras`` (Keras' own zip) and ``detector.json`` (everything else).

Written atomically: into a hidden temporary directory beside the target, then swapped in by
rename, so an interrupted save never leaves a half-written model and keeps the previous one.
Loaded defensively: every field is checked, the Keras file must match the checksum recorded in
the JSON, and Keras loads it with ``safe_mode=True`` (no Lambda layers, no arbitrary code).
No pickle or joblib anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly import __version__
from anomaly.errors import ModelError

FORMAT = "lstm-anomaly-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
META_FILE = "detector.json"
MAX_NORMAL_SCORES = 20_000  # a sorted sample is enough to recompute any quantile threshold


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sorted_sample(values: np.ndarray, n: int) -> list[float]:
    values = np.sort(np.asarray(values, dtype=float))
    if len(values) > n:
        values = values[np.linspace(0, len(values) - 1, n).round().astype(int)]
    return [float(v) for v in values]


def metadata(detector) -> dict:
    """The JSON side of a fitted detector."""
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in detector.get_params().items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "params": params,
        "columns": detector.columns_,
        "interval_seconds": detector.interval_.total_seconds(),
        "timezone": detector.timezone_,
        "scaler": {"mean": detector.scaler_.mean_.tolist(), "scale": detector.scaler_.scale_.tolist(),
                   "var": detector.scaler_.var_.tolist()},
        "error_ref": detector.error_ref_.tolist(),
        "thresholds": detector.thresholds_,
        "normal_scores": _sorted_sample(detector.normal_scores_, MAX_NORMAL_SCORES),
        "history": detector.history_,
        "fingerprint": detector.fingerprint_,
    }


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write JSON to a temporary name beside ``path`` and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_detector(detector, directory: Path) -> Path:
    """Write ``directory`` atomically; an existing model there is replaced only once the new one is complete."""
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a save that was killed
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        detector.model_.save(tmp / MODEL_FILE)
        meta = metadata(detector)
        meta["model_sha256"] = sha256_file(tmp / MODEL_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False))
        if directory.exists():
            if not (directory / META_FILE).exists() and any(directory.iterdir()):
                raise ModelError(f"{directory}: exists and is not a model directory; refusing to replace it")
            os.replace(directory, old)
        os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return directory


def read_metadata(directory: Path) -> dict:
    """The validated ``detector.json`` of a model directory."""
    if not directory.exists():
        raise ModelError(f"{directory}: model directory not found")
    if not directory.is_dir():
        raise ModelError(f"{directory}: not a directory")
    path = directory / META_FILE
    if not path.exists():
        raise ModelError(f"{directory}: not a model directory (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: corrupt JSON ({exc})") from None
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
    if version < FORMAT_VERSION:
        raise ModelError(f"{path}: format {version} is too old for this version ({__version__}); retrain the model")
    _validate(meta, path)
    return meta


def _validate(meta: dict, path: Path) -> None:
    """Types and shapes of every field, so a tampered file fails here and not deep in scoring."""

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise ModelError(f"{path}: invalid field {what}")

    def numbers(value, n: int | None = None) -> bool:
        return (isinstance(value, list) and all(isinstance(v, (int, float)) and np.isfinite(v) for v in value)
                and (n is None or len(value) == n))

    need(isinstance(meta.get("params"), dict), "'params'")
    cols = meta.get("columns")
    need(isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols) and len(set(cols)) == len(cols), "'columns'")
    n = len(cols)
    scaler = meta.get("scaler")
    need(isinstance(scaler, dict), "'scaler'")
    need(numbers(scaler.get("mean"), n), "'scaler.mean'")
    need(numbers(scaler.get("scale"), n) and all(s > 0 for s in scaler["scale"]), "'scaler.scale'")
    need(numbers(scaler.get("var"), n), "'scaler.var'")
    need(numbers(meta.get("error_ref"), n) and all(e > 0 for e in meta["error_ref"]), "'error_ref'")
    need(numbers(meta.get("normal_scores")) and len(meta["normal_scores"]) > 0, "'normal_scores'")
    interval = meta.get("interval_seconds")
    need(isinstance(interval, (int, float)) and np.isfinite(interval) and interval > 0, "'interval_seconds'")
    need(meta.get("timezone") is None or isinstance(meta.get("timezone"), str), "'timezone'")
    t = meta.get("thresholds")
    need(isinstance(t, dict) and isinstance(t.get("values"), dict) and t.get("rule") in t["values"], "'thresholds'")
    need(all(isinstance(v, (int, float)) and np.isfinite(v) for v in t["values"].values()), "'thresholds.values'")
    need(isinstance(meta.get("history"), dict), "'history'")
    need(isinstance(meta.get("fingerprint"), dict), "'fingerprint'")
    need(isinstance(meta.get("model_sha256"), str), "'model_sha256'")


def load_detector(cls, directory: Path):
    """Rebuild a fitted detector from ``directory``; any inconsistency is a :class:`ModelError`."""
    from sklearn.preprocessing import StandardScaler

    from anomaly._tf import keras

    from anomaly.errors import AnomalyError

    meta = read_metadata(directory)
    model_path = directory / MODEL_FILE
    if not model_path.exists():
        raise ModelError(f"{directory}: {MODEL_FILE} is missing")
    if sha256_file(model_path) != meta["model_sha256"]:
        raise ModelError(f"{model_path}: checksum does not match {META_FILE}: the file is corrupt or was modified")
    params = meta["params"]
    try:
        detector = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        detector._check_params()
    except (TypeError, AnomalyError) as exc:
        raise ModelError(f"{directory / META_FILE}: invalid params ({exc})") from None
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad zip, config or unsafe layer
        raise ModelError(f"{model_path}: cannot load the Keras model ({str(exc).strip().splitlines()[0][:300]})") from None
    n = len(meta["columns"])
    expected = (None, detector.window, n)
    if tuple(model.input_shape) != expected:
        raise ModelError(f"{model_path}: model input {tuple(model.input_shape)} does not match the metadata {expected}")

    detector.model_ = model
    detector.columns_ = list(meta["columns"])
    detector.n_features_in_ = n
    detector.interval_ = pd.Timedelta(seconds=meta["interval_seconds"])
    detector.timezone_ = meta["timezone"]
    scaler = StandardScaler()
    scaler.mean_ = np.array(meta["scaler"]["mean"], dtype=float)
    scaler.scale_ = np.array(meta["scaler"]["scale"], dtype=float)
    scaler.var_ = np.array(meta["scaler"]["var"], dtype=float)
    scaler.n_features_in_ = n
    scaler.n_samples_seen_ = meta["fingerprint"].get("rows", 0)
    detector.scaler_ = scaler
    detector.error_ref_ = np.array(meta["error_ref"], dtype=float)
    detector.thresholds_ = meta["thresholds"]
    detector.normal_scores_ = np.array(meta["normal_scores"], dtype=float)
    detector.history_ = meta["history"]
    detector.fingerprint_ = meta["fingerprint"]
    detector.package_version_ = meta.get("package_version")
    return detector


def update_threshold(directory: Path, value: float, rule: str = "manual") -> None:
    """Store a new threshold in force in an existing model directory (atomic JSON rewrite)."""
    meta = read_metadata(directory)
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
        raise ModelError(f"threshold must be a finite number >= 0, not {value}")
    meta["thresholds"]["values"][rule] = float(value)
    meta["thresholds"]["rule"] = rule
    write_json_atomic(directory / META_FILE, meta)

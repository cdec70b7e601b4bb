"""Shared helpers of the dashboard: folders and the path guard, cached loaders, down-sampling, and
the page widgets whose values outlive a look at another page (:func:`kept`).

The app reads and writes only inside three places, all fixed by the environment, never by what a
user types: the models folder (``ANOMALY_MODELS_DIR``, default ``models/``), the data folder
(``ANOMALY_DATA_DIR``, default ``data/``) and the results database (``ANOMALY_DB``, default
``results.db``); relative ones are relative to the working directory the app was started in
(``anomaly dashboard`` passes absolute ones). Every path built from user input goes through :func:`inside`, which resolves it
(symlinks and ``..`` included) and refuses anything outside its folder.

Pages call the package only (``anomaly.*``), never Keras. Models are cached with
``st.cache_resource`` (one shared object per model directory version, never modified: settings
tried on the Threshold page go to a copy); data, scores, events and embeddings with
``st.cache_data`` keyed by the file's path and modification time, or by the upload's digest, so
nothing is scored twice. Flags and events are re-derived from the scores' error columns under the
rule in force (:class:`Loaded`), so tuning the rule never re-runs the model.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from anomaly import scoring
from anomaly.dashboard import MAX_UPLOAD_MB, db_label  # noqa: F401 (the pages' names for them)
from anomaly.errors import AnomalyError, ConfigError, DataError
from anomaly.io import codes_text

DATA_SUFFIXES = (".csv", ".parquet", ".pq")
DRAW_POINTS = 2000  # min-max buckets per drawn trace: about one per pixel column of a wide screen
DEMO_DATA = "machine_temperature_system_failure.csv"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DB_SOURCE_KIND = "Scoring database"
SOURCE_KINDS = ("Data file", "Upload", DB_SOURCE_KIND)


# -- folders and the path guard ---------------------------------------------------------------
def _folder(env: str, default: str) -> Path:
    value = os.environ.get(env)
    return Path(value or default).resolve()  # a relative path: from the working directory


def models_dir() -> Path:
    return _folder("ANOMALY_MODELS_DIR", "models")


def data_dir() -> Path:
    return _folder("ANOMALY_DATA_DIR", "data")


def db_target() -> str:
    """The results database: an SQLAlchemy URL as given, or a file path resolved from the working directory."""
    value = os.environ.get("ANOMALY_DB", "results.db")
    if "://" in value:
        return value
    return str(Path(value).resolve())


def inside(base: Path, name: str) -> Path:
    """``base / name`` resolved, or a :class:`ConfigError` when it would leave ``base``."""
    base = Path(base).resolve()
    if not isinstance(name, str) or not name.strip() or "\x00" in name:
        raise ConfigError("empty or invalid name")
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise ConfigError(f"'{name}' is outside the allowed folder {base}")
    return path


def check_model_name(name: str) -> str:
    """A new model's name: one plain folder name (letters, digits, ``_ . -``), nothing else."""
    name = (name or "").strip()
    if not MODEL_NAME.match(name) or name in (".", ".."):
        raise ConfigError(f"model name '{name}' is not allowed: use letters, digits, '_', '.', '-' (at most 64)")
    return name


def list_models(base: Path) -> list[str]:
    """Model directories (those holding ``detector.json``) directly under ``base``."""
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "detector.json").is_file())


def list_data_files(base: Path) -> list[str]:
    """CSV and Parquet files directly under ``base``."""
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)


# -- down-sampling for drawing -----------------------------------------------------------------
def minmax_indices(values: np.ndarray, buckets: int) -> np.ndarray:
    """Positions to draw so that a line of ``values`` looks the same with far fewer points.

    The series is cut into ``buckets`` equal runs; from each run the positions of its minimum and
    maximum are kept (so spikes survive, unlike with striding), plus the first missing value of a
    run that has one (so gaps stay gaps), plus the first and last points. Series no longer than
    ``2 * buckets`` come back whole. Written here because it is a few lines of numpy, and the
    libraries that do it (tsdownsample, plotly-resampler) would add a compiled dependency.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    if n <= 2 * buckets:
        return np.arange(n)
    size = -(-n // buckets)
    rows = -(-n // size)
    padded = np.full(rows * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(rows, size)
    missing = np.isnan(grid)
    base = np.arange(rows) * size
    lo = base + np.argmin(np.where(missing, np.inf, grid), axis=1)
    hi = base + np.argmax(np.where(missing, -np.inf, grid), axis=1)
    has_gap = missing.any(axis=1)
    gap = (base + np.argmax(missing, axis=1))[has_gap]
    keep = np.concatenate([lo, hi, gap, [0, n - 1]])
    keep = keep[keep < n]
    return np.unique(keep)


def downsample(series: pd.Series, buckets: int = DRAW_POINTS) -> pd.Series:
    """``series`` reduced by :func:`minmax_indices` for drawing (the index is kept)."""
    return series.iloc[minmax_indices(series.to_numpy(dtype=np.float64), buckets)]


# -- showing errors ----------------------------------------------------------------------------
@contextlib.contextmanager
def user_errors():
    """Show the package's one-line error in the page and stop the page, never a stack trace."""
    try:
        yield
    except AnomalyError as exc:
        st.error(in_app_terms(str(exc)))
        st.stop()


# The package's errors name command-line options; in the app the same remedy is a widget.
_OPTION_HINTS = {
    "use --duplicates mean to average them": "choose “average” under “Duplicate timestamps” (Reading options in the "
    "sidebar), or tick “Average duplicate timestamps” beside the sensor columns on the Train page",
    "choose one with --timestamp-col": "choose it as “Timestamp column” (Reading options in the sidebar, or on the Train page)",
    "drop it with --columns, or refuse it with --on-constant error": "leave it out of “Sensor columns”, or refuse it "
    "with “On constant” under More settings",
    "drop it with --columns or use --on-constant keep": "leave it out of “Sensor columns”, or set “On constant” "
    "(More settings) to keep",
    "read it as missing with --missing-values": "list it under “Missing-value codes” (Reading options in the "
    "sidebar, or on the Train page)",
}


def missing_codes(text: str | None) -> tuple[float, ...]:
    """The numbers typed in a “Missing-value codes” field (``--missing-values``; empty: none), or a
    ConfigError naming it."""
    from anomaly.io import missing_value_codes

    if not (text or "").strip():
        return ()
    try:
        return missing_value_codes(text)
    except DataError as exc:
        raise ConfigError(f"Missing-value codes: {exc}") from None


def describe_reading(reading: dict | None) -> str:
    """A model's saved reading options (``reading_``) in words, for the Model page."""
    if reading is None:
        return (
            "Not recorded (a model from an older version, or fitted in Python): data is read with the "
            "defaults (duplicate timestamps averaged), or as the sidebar's Reading options say."
        )
    codes = codes_text(reading["missing_values"]) or "none"
    duplicates = "averaged" if reading["duplicates"] == "mean" else "refused"
    return (
        f"Timestamp column “{reading['timestamp_col']}”; duplicate timestamps {duplicates}; gaps of up to "
        f"{reading['max_gap']} points interpolated; missing-value codes: {codes}. New data is read the same "
        "way, except where the sidebar's Reading options say otherwise."
    )


def in_app_terms(message: str) -> str:
    """``message`` with the command-line remedies it names replaced by the app's widgets."""
    for option, widget in _OPTION_HINTS.items():
        message = message.replace(option, widget)
    return message


# -- the loaders' warnings ----------------------------------------------------------------------
class _Warnings(logging.Handler):
    """Collects the messages of the warnings logged by one thread (Streamlit runs each session in its own)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def logged_warnings() -> Iterator[list[str]]:
    """The messages of the ``anomaly`` logger's warnings logged in the block (a list, filled as they come).

    The package reports what it fixed in the data (rows sorted, duplicates averaged, readings
    averaged into the model's step, columns skipped) in its log, which only the server sees; the
    cached loaders return these messages with the frame so that every rerun shows them.
    """
    handler = _Warnings()
    logger = logging.getLogger("anomaly")
    # With no handler configured, Python prints warnings to stderr (its last resort); attaching this
    # one would silence them in the server's log, so the last resort is attached beside it.
    handlers = [handler] if logger.hasHandlers() else [handler, logging.lastResort]
    for one in handlers:
        logger.addHandler(one)
    try:
        yield handler.messages
    finally:
        for one in handlers:
            logger.removeHandler(one)


def show_warnings(messages: list[str]) -> None:
    """One ``st.warning`` per message of :func:`logged_warnings`, in the app's terms."""
    for message in messages:
        st.warning(in_app_terms(message))


# -- cached loaders ----------------------------------------------------------------------------
def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns if path.exists() else 0


@st.cache_resource(show_spinner="Loading model…", max_entries=8)
def _load_detector(path: str, version: float):
    from anomaly.detector import LSTMAutoencoderDetector

    return LSTMAutoencoderDetector.load(path)


def load_detector(name: str):
    """The model ``name`` of the models folder, loaded once per version of its ``detector.json``."""
    path = inside(models_dir(), name)
    return _load_detector(str(path), _mtime(path / "detector.json")), f"{path}@{_mtime(path / 'detector.json')}"


def saved_reading(name: str) -> dict | None:
    """How model ``name``'s training data was read (its ``reading``), for the sidebar's hints; None when
    it has none or cannot be read (the page that loads it says why)."""
    path = inside(models_dir(), name)
    return _saved_reading(str(path), _mtime(path / "detector.json"))


@st.cache_data(show_spinner=False, max_entries=64)
def _saved_reading(path: str, version: float) -> dict | None:
    from anomaly.artifacts import read_metadata
    from anomaly.errors import AnomalyError

    try:
        return read_metadata(Path(path)).get("reading")
    except AnomalyError:
        return None


@st.cache_data(show_spinner="Reading data…", max_entries=16)
def _read_file(path: str, version: float) -> pd.DataFrame:
    from anomaly.io import read_table

    return read_table(path)


def read_data_file(name: str) -> tuple[pd.DataFrame, str]:
    """The raw table of a file of the data folder and a cache key for it."""
    path = inside(data_dir(), name)
    version = _mtime(path)
    return _read_file(str(path), version), f"{path}@{version}"


@st.cache_data(show_spinner="Reading upload…", max_entries=8)
def _read_upload(name: str, digest: str, _data: bytes) -> pd.DataFrame:
    from anomaly.io import read_table

    suffix = Path(name).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataError(f"{name}: not a CSV or Parquet file")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name)[:80] or f"upload{suffix}"
    # read_table works on paths: the bytes go to a private temporary folder (name chosen here, not
    # by the user) and the temporary prefix is cut from any error so the message names the upload.
    with tempfile.TemporaryDirectory(prefix="anomaly-upload-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(_data)
        try:
            return read_table(path)
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), name)) from None


def read_upload(uploaded) -> tuple[pd.DataFrame, str]:
    """The raw table of a Streamlit ``UploadedFile`` and a cache key (its name and SHA-256)."""
    data = uploaded.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    return _read_upload(uploaded.name, digest, data), f"upload:{uploaded.name}:{digest}"


@st.cache_data(show_spinner="Cleaning data…", max_entries=16)
def clean(
    key: str, _raw: pd.DataFrame, source: str, timestamp_col: str, columns: tuple, duplicates: str, codes: tuple = ()
) -> tuple[pd.DataFrame, list[str]]:
    """A raw table cleaned for training (``anomaly.io.clean_frame``) and the warnings it gave
    (:func:`show_warnings` shows them), cached by the table's key and the options."""
    from anomaly.io import clean_frame

    with logged_warnings() as messages:
        frame = clean_frame(
            _raw, source, timestamp_col=timestamp_col, columns=list(columns) or None, duplicates=duplicates, missing_values=codes
        )
    return frame, messages


@st.cache_data(show_spinner="Cleaning data…", max_entries=16)
def clean_for_model(
    key: str,
    model_key: str,
    _raw: pd.DataFrame,
    source: str,
    _detector,
    timestamp_col: str | None,
    duplicates: str,
    codes: tuple | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """A raw table read for a model as the CLI and the scheduler read it (``anomaly.loading``) and
    the warnings it gave, cached by the table's key, the model's version and the options (None: the model's)."""
    from anomaly.loading import ReadOptions, frame_for_model

    with logged_warnings() as messages:
        options = ReadOptions(timestamp_col=timestamp_col, duplicates=duplicates, missing_values=codes)
        frame = frame_for_model(_raw, source, options, _detector)
    return frame, messages


@st.cache_data(show_spinner="Scoring…", max_entries=8)
def score(model_key: str, data_key: str, _detector, _frame: pd.DataFrame) -> pd.DataFrame:
    """Scores at the model's own threshold with reconstructions, once per (model version, data)."""
    return _detector.score(_frame, reconstruct=True)


def events_csv(events: pd.DataFrame, reviews: pd.DataFrame | None = None) -> bytes:
    """The Events page's download: the file ``anomaly score --events`` writes (ISO 8601 times, no
    display-only ``duration``), followed by the verdict columns ``reviews`` holds (one row per event,
    as ``anomaly events`` writes them) when the page shows verdicts (events from the database)."""
    from anomaly.io import iso_timestamps

    table = events.drop(columns=["duration"], errors="ignore")
    if reviews is not None:
        table = pd.concat([table.reset_index(drop=True), reviews.reset_index(drop=True)], axis=1)
    return iso_timestamps(table).to_csv(index=False).encode()


def _with_duration(events: pd.DataFrame) -> pd.DataFrame:
    events.insert(2, "duration", events["end"] - events["start"])
    return events


# -- the flagging rule in force ------------------------------------------------------------------
TRAILING, FIXED, BATCH = "trailing", "fixed", "batch"
# The causal rule's settings the Threshold page tunes (a subset of anomaly.artifacts.FLAGGING_PARAMS)
# and their Python types (as written into detector.json).
TUNABLE = {"local_k": float, "local_trailing": int, "local_cap": float, "local_exclude": bool, "event_padding": int}


def rule_kind(detector) -> str:
    """How the model flags rows: ``trailing`` (causal rule, tuned by its settings), ``fixed`` (one
    threshold, ``local_rule=None``) or ``batch`` (ksigma/dynamic/pot: flags as scored, not tuned here)."""
    if detector.local_rule == TRAILING:
        return TRAILING
    return FIXED if detector.local_rule is None else BATCH


def saved_flagging(detector) -> dict:
    """The model's own values of the :data:`TUNABLE` settings, as plain Python values."""
    return {name: kind(getattr(detector, name)) for name, kind in TUNABLE.items()}


def trailing_rule(detector, settings: dict):
    """The :class:`anomaly.flagging.TrailingRule` ``detector`` would use with ``settings`` (its cap absolute)."""
    return copy.copy(detector).set_params(**settings).flag_rule()


@st.cache_data(show_spinner="Flagging…", max_entries=64)
def reflag(model_key: str, data_key: str, settings: tuple, _detector, _scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores re-flagged by the causal rule with ``settings`` (``(name, value)`` pairs) and their
    events, from the error columns (no model run). A copy of the shared detector takes the settings."""
    alt = copy.copy(_detector).set_params(**dict(settings))
    flagged = alt.reflag(_scores)
    return flagged, _with_duration(alt.events(flagged))


@st.cache_data(show_spinner="Flagging…", max_entries=64)
def fixed_flags(
    model_key: str, data_key: str, threshold: float, _detector, _scores: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores flagged by a fixed-threshold model's own rule at ``threshold`` (the units of
    ``threshold_for``) instead of its fitted value, and their events (``LSTMAutoencoderDetector.reflag``)."""
    flagged = _detector.reflag(_scores, threshold=threshold)
    return flagged, _with_duration(_detector.events(flagged))


@st.cache_data(max_entries=16)
def batch_flags(model_key: str, data_key: str, _detector, _scores: pd.DataFrame) -> pd.DataFrame:
    """Events of a batch-rule model (ksigma, dynamic, pot) from its flags as scored."""
    return _with_duration(_detector.events(_scores))


@st.cache_data(show_spinner="Encoding windows…", max_entries=4)
def embed(model_key: str, data_key: str, _detector, _frame: pd.DataFrame) -> pd.DataFrame:
    return _detector.embed(_frame)


def db_exists(target: str) -> bool:
    """False when the results database is a file that does not exist yet (a URL is assumed to exist)."""
    return "://" in target or Path(target).is_file()


@contextlib.contextmanager
def _open_store(target: str):
    from anomaly.store import open_store

    store = open_store(target)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


DB_TTL = 30  # seconds the database readers keep an answer (refresh_db forgets them at once)


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_sources(target: str) -> list[str]:
    with _open_store(target) as store:
        return list(store.sources())


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_scores(target: str, source: str) -> pd.DataFrame:
    with _open_store(target) as store:
        frame = store.scores(source)
    if "timestamp" in frame.columns:
        frame = frame.set_index(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]), name="timestamp")).drop(columns="timestamp")
    return frame.sort_index()


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_scores_model(target: str, source: str) -> str | None:
    """``FOLDER@VERSION`` of the model that wrote the stored scores :func:`db_scores` reads."""
    with _open_store(target) as store:
        return store.latest_model(source)


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_runs(target: str) -> pd.DataFrame:
    with _open_store(target) as store:
        return store.runs()


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_events(target: str, source: str | None) -> pd.DataFrame:
    with _open_store(target) as store:
        return store.events(source=source)


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_pending_alerts(target: str, source: str | None) -> pd.DataFrame:
    """Alerts the scheduled scorer has not sent yet (the outbox): failed or not yet tried."""
    with _open_store(target) as store:
        return store.pending_alerts(source=source)


@st.cache_data(ttl=DB_TTL, show_spinner="Reading the results database…")
def db_feedback(target: str, source: str | None) -> pd.DataFrame:
    with _open_store(target) as store:
        return store.feedback(source=source)


def refresh_db() -> None:
    """Forget every answer of the database readers, so the next ones read the database again."""
    for reader in (db_sources, db_scores, db_scores_model, db_runs, db_events, db_feedback):
        reader.clear()


def reviewed_events(target: str, source: str | None) -> pd.DataFrame:
    """The stored events of ``source`` (or all) with their verdicts (:func:`anomaly.feedback.with_feedback`)."""
    from anomaly.feedback import with_feedback

    return with_feedback(db_events(target, source), db_feedback(target, source))


def matched_reviews(stored: pd.DataFrame, matches: list[int | None]) -> pd.DataFrame:
    """The verdict columns of the stored event at each of ``matches`` (:func:`stored_match`), empty where None."""
    from anomaly.feedback import REVIEW_COLUMNS

    reviews = stored[REVIEW_COLUMNS].reset_index(drop=True)
    return reviews.reindex([-1 if m is None else m for m in matches]).reset_index(drop=True)


def stored_match(stored: pd.DataFrame, start, end) -> int | None:
    """Position of the stored event that overlaps ``[start, end]`` the most (the latest on a tie), or None."""
    if stored.empty:
        return None
    lo = np.maximum(pd.to_datetime(stored["start"]).to_numpy(), np.datetime64(pd.Timestamp(start)))
    hi = np.minimum(pd.to_datetime(stored["end"]).to_numpy(), np.datetime64(pd.Timestamp(end)))
    overlap = (hi - lo).astype("timedelta64[ns]").astype(np.int64)
    if overlap.max() < 0:
        return None
    return int(len(overlap) - 1 - np.argmax(overlap[::-1]))


def event_label(event) -> str:
    """One stored event, as the review pickers list it (its verdict is shown beside, not in the label:
    Streamlit's browser side keeps showing a keyed selectbox's old label when only the label changes)."""
    return f"{event['source']}: {fmt_time(event['start'])} → {fmt_time(event['end'])} (severity {event['severity']:.2f})"


def review_form(target: str, event, key: str) -> None:
    """Mark one stored ``event`` as a true alarm, a false alarm or acknowledged.

    ``event`` is a row of :func:`reviewed_events`, read by item (``event.at`` is pandas' indexer).

    The verdict goes to the results database with the reviewer's name and the time. A false alarm or
    an acknowledged event also silences the scorer's alerts for new events that overlap it, or that
    start before the optional mute time (:mod:`anomaly.feedback`).
    """
    from anomaly.feedback import VERDICT_LABELS, VERDICTS

    current = event.get("verdict")
    current = current if isinstance(current, str) else None
    if current:
        note = event["note"] if isinstance(event["note"], str) else ""
        st.caption(
            f"Marked **{VERDICT_LABELS[current]}** by {event['author']} on {fmt_time(event['at'])}"
            + (f": “{note}”" if note else "")
        )
    else:
        st.caption("Not reviewed yet.")
    with st.form(f"{key}_form", clear_on_submit=False, border=True):
        verdict = st.radio(
            "Verdict",
            VERDICTS,
            index=VERDICTS.index(current) if current else 0,
            format_func=VERDICT_LABELS.get,
            horizontal=True,
            key=f"{key}_verdict",
        )
        author = st.text_input("Your name", key="reviewer", help="Kept with the verdict: who said so, and when.")
        note = st.text_input("Note (optional)", key=f"{key}_note")
        mute = st.checkbox(
            "Also mute this source's alerts until…",
            key=f"{key}_mute",
            help="False alarms and acknowledged events always silence new events that overlap them.",
        )
        c1, c2 = st.columns(2)
        day = c1.date_input("Mute until (day)", value=pd.Timestamp(event["end"]).date(), key=f"{key}_mute_day")
        hour = c2.time_input("time", value=pd.Timestamp(event["end"]).time(), key=f"{key}_mute_time")
        sent = st.form_submit_button("Save verdict", type="primary")
    if not sent:
        return
    mute_until = pd.Timestamp.combine(day, hour) if mute else None
    if mute_until is not None and verdict == "true_alarm":
        st.error("A true alarm silences nothing: mark it a false alarm or acknowledged to mute the source.")
        return
    try:
        with _open_store(target) as store:
            store.mark_event(event["source"], event["model"], event["start"], verdict, author, note=note, mute_until=mute_until)
    except AnomalyError as exc:
        st.error(str(exc))
        return
    db_feedback.clear()
    st.session_state["_review_saved"] = f"Saved: {VERDICT_LABELS[verdict]} ({event['source']}, {fmt_time(event['start'])})."
    st.rerun()


def review_saved_message() -> None:
    """Show, once, the confirmation of the verdict saved before the last rerun."""
    message = st.session_state.pop("_review_saved", None)
    if message:
        st.success(message)


# -- page widgets whose values outlive the page -----------------------------------------------------
_KEPT = "_kept_keys"  # the keys registered by kept(), in Session State


def kept(key: str, default=None) -> str:
    """``key``, registered as that of a page's widget whose value must outlive the page's absence.

    Streamlit drops a widget's value at the end of a run that does not draw it (another page is
    shown), and a browser that stopped drawing a widget (its page stopped on an error before it)
    draws it again at its default: the Train page lost its form after a look at another page, the
    Series page's Sensors box came back empty. The remedy Streamlit documents ("Interrupt the widget
    clean-up process", in *Working with widgets in multipage apps*): write each such value back into
    Session State in every run before the page runs, which :func:`keep_widget_values` (called by
    app.py) does for every key registered here; a value so written is also sent to the browser.

    A widget whose value comes from Session State must not be given a default as well (Streamlit
    warns): ``default`` (None: the widget's own) is written into Session State the first time, and
    the widget is called without one.
    """
    state = st.session_state
    if _KEPT not in state:
        state[_KEPT] = set()
    state[_KEPT].add(key)
    if default is not None and key not in state:
        state[key] = default
    return key


def keep_widget_values() -> None:
    """Write the value of every key registered by :func:`kept` back into Session State (see there)."""
    state = st.session_state
    for key in tuple(state.get(_KEPT, ())):
        if key in state:
            state[key] = state[key]


# -- hyperparameters, from their declaration (anomaly.params) -----------------------------------
def param_input(name: str, spec, default, key: str, container=st):
    """A form widget for one hyperparameter, built from its :class:`anomaly.params.Spec`; returns its value.

    Text fields (stride, units) are parsed here; a value the detector refuses is reported by its
    own check when the form is used, in one line. The value outlives the page's absence (:func:`kept`).
    """
    label = spec.label or name.replace("_", " ").capitalize()
    if spec.kind == "bool":
        return container.checkbox(label, key=kept(key, bool(default)), help=spec.help)
    if spec.kind == "choice":
        options = [*spec.choices, *([None] if spec.none else [])]
        return container.selectbox(  # the default by its index, as None may be one of the choices
            label,
            options,
            **({} if key in st.session_state else {"index": options.index(default)}),
            key=kept(key),
            help=spec.help,
            format_func=lambda v: "none" if v is None else str(v),
        )
    if spec.kind == "int":
        low = None if spec.low is None else int(spec.low)
        return int(container.number_input(label, min_value=low, step=1, key=kept(key, int(default)), help=spec.help))
    if spec.kind == "float":
        low, high = (None if b is None else float(b) for b in (spec.low, spec.high))  # Streamlit wants one type
        return float(
            container.number_input(
                label, min_value=low, max_value=high, format="%g", key=kept(key, float(default)), help=spec.help
            )
        )
    if spec.kind == "zone":  # checked with the other hyperparameters when the form is used
        return (
            container.text_input(label, key=kept(key, default or ""), help=spec.help, placeholder="the timestamps' own").strip()
            or None
        )
    text = ",".join(map(str, default)) if spec.kind in ("units", "names") else str(default)
    text = container.text_input(label, key=kept(key, text), help=spec.help).strip()
    if spec.kind == "stride" and text == "auto":
        return text
    if spec.kind == "names":
        return tuple(t.strip() for t in text.split(",") if t.strip())
    try:
        numbers = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{name}: '{text}' is not {spec.describe()}") from None
    return numbers if spec.kind == "units" else (numbers[0] if len(numbers) == 1 else text)


# The hyperparameters the Train page lays out itself; the others come from their declaration (more_settings).
TRAIN_PLACED = frozenset(
    {
        "window",
        "encoder_units",
        "decoder_units",
        "latent_dim",
        "epochs",
        "batch_size",
        "learning_rate",
        "patience",
        "validation_fraction",
        "model_kind",
        "horizon",
        "reverse",
        "conditional",
        "bidirectional",
        "local_rule",
        "local_k",
        "local_trailing",
        "local_cap",
        "local_exclude",
        "event_padding",
        "smoothing",
        "root_score",
        "threshold_rule",
        "quantile",
        "k_sigma",
        "min_event_length",
        "merge_gap",
    }
)


def more_settings(cls, placed: set[str], key: str) -> dict:
    """Every hyperparameter a page does not place itself, in rows of four under an expander: a new
    one declared in the detector appears here without any change to the page."""
    from anomaly.params import defaults, form_fields

    fields, values = form_fields(cls, placed), defaults(cls)
    out = {}
    with st.expander(f"More settings ({len(fields)})"):
        names = list(fields)
        for row in range(0, len(names), 4):
            columns = st.columns(4)
            for column, name in zip(columns, names[row : row + 4]):
                out[name] = param_input(name, fields[name], values[name], f"{key}_{name}", column)
    return out


# -- the selection made in the sidebar ---------------------------------------------------------
@dataclass
class Loaded:
    """What the analysis pages work on: a model, its data (None for database scores) and scores.

    ``flagged`` and ``events()`` follow the rule in force for this model version, including what
    was tuned, not yet saved, on the Threshold page (kept in ``st.session_state`` per model version):
    the causal rule's settings (``flagging``), or a fixed model's one ``threshold``.
    """

    model_name: str
    detector: object
    model_key: str
    data_key: str
    source: str
    frame: pd.DataFrame | None
    scores: pd.DataFrame
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def rule(self) -> str:
        """``trailing``, ``fixed`` or ``batch`` (see :func:`rule_kind`)."""
        return rule_kind(self.detector)

    # -- fixed threshold (local_rule None) -------------------------------------------------------
    @property
    def default_threshold(self) -> float:
        return float(self.detector.threshold_for())

    @property
    def threshold(self) -> float:
        """A fixed model's threshold chosen on the Threshold page for this model version, else the model's."""
        return float(st.session_state.get(threshold_key(self.model_key), self.default_threshold))

    # -- causal rule (local_rule "trailing") ------------------------------------------------------
    @property
    def saved_flagging(self) -> dict:
        return saved_flagging(self.detector)

    @property
    def flagging(self) -> dict:
        """The causal rule's settings in force: the model's, with those tuned on the Threshold page."""
        return {**self.saved_flagging, **st.session_state.get(flagging_key(self.model_key), {})}

    @property
    def tuned(self) -> bool:
        """Whether the rule in force differs from the one saved in the model."""
        if self.rule == TRAILING:
            return self.flagging != self.saved_flagging
        return self.rule == FIXED and self.threshold != self.default_threshold

    def cap(self, settings: dict | None = None) -> float | None:
        """The causal rule's cap as an absolute score (None when off)."""
        return trailing_rule(self.detector, self.flagging if settings is None else settings).cap

    # -- flags and events ---------------------------------------------------------------------------
    def flag(self, settings: dict | None = None, threshold: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(scores, events)`` under the rule in force, or under other causal ``settings`` / another
        fixed ``threshold``: the scores with ``score, threshold, is_anomaly`` as that rule sets them."""
        rule = self.rule
        if rule == TRAILING:
            chosen = self.flagging if settings is None else {**self.saved_flagging, **settings}
            key = (TRAILING, tuple(sorted(chosen.items())))
            if key not in self._memo:
                self._memo[key] = reflag(self.model_key, self.data_key, key[1], self.detector, self.scores)
        elif rule == FIXED:
            t = self.threshold if threshold is None else float(threshold)
            key = (FIXED, t)
            if key not in self._memo:
                self._memo[key] = fixed_flags(self.model_key, self.data_key, t, self.detector, self.scores)
        else:
            key = (BATCH,)
            if key not in self._memo:
                self._memo[key] = (self.scores, batch_flags(self.model_key, self.data_key, self.detector, self.scores))
        return self._memo[key]

    @property
    def flagged(self) -> pd.DataFrame:
        """The scores with the per-row ``threshold`` and the ``is_anomaly`` flags of the rule in force."""
        return self.flag()[0]

    def events(self, threshold: float | None = None) -> pd.DataFrame:
        """Events under the rule in force (a fixed model: at ``threshold`` when given)."""
        return self.flag(threshold=threshold)[1]

    def rule_summary(self, settings: dict | None = None) -> str:
        """The rule in force in a few words, for captions: ``threshold 0.123`` or ``mean + 7 std of ...``."""
        if self.rule == FIXED:
            if self.detector.root_score:  # the scores shown are roots: so is the value they are compared with
                return f"threshold {np.sqrt(self.threshold):.4g} = √{self.threshold:.4g}"
            return f"threshold {self.threshold:.4g}"
        if self.rule == BATCH:
            return f"batch rule {self.detector.local_rule}"
        s = self.flagging if settings is None else settings
        cap = self.cap(s)
        return (
            f"mean + {s['local_k']:g} std of the last {s['local_trailing']:,} scores"
            + (f", capped at {cap:.4g}" if cap is not None else "")
            + (f", {s['event_padding']:,} points padding" if s["event_padding"] else "")
        )


def threshold_key(model_key: str) -> str:
    return f"threshold::{model_key}"


def flagging_key(model_key: str) -> str:
    """Session key of the causal-rule settings tuned on the Threshold page (only those that differ)."""
    return f"flagging::{model_key}"


def db_source_problem(target: str) -> str | None:
    """Why the results database offers no source to pick, or None when it offers some; an unreadable
    database raises its one-line error (the sidebar and the page both show it alone)."""
    if not db_exists(target):
        return f"No results database yet at {db_label(target)}."
    if not db_sources(target):
        return "The results database holds no scored source yet."
    return None


def _db_source_picker(sb) -> None:
    """The Source picker of the results database, or the one message that says why there is none."""
    target = db_target()
    try:
        problem = db_source_problem(target)
    except AnomalyError as exc:  # not a database, unreadable: the error alone, not also "no source"
        sb.error(str(exc))
        return
    if problem:
        sb.info(problem)
    else:
        sb.selectbox("Source", db_sources(target), key="db_source")


def sidebar() -> None:
    """Model and data pickers, shared by every page (rendered by ``app.py`` so they persist)."""
    sb = st.sidebar
    models = list_models(models_dir())
    pending = st.session_state.pop("_select_model", None)  # a model just trained on the Train page
    if pending in models:
        st.session_state["model"] = pending
    if models:
        if st.session_state.get("model") not in models:
            st.session_state["model"] = "demo" if "demo" in models else models[0]
        sb.selectbox("Model", models, key="model", help=f"Model folders under {models_dir()}")
    else:
        sb.info("No model yet: train one on the Train page, or run `make run` for the demo model.")
    kind = sb.radio("Data", SOURCE_KINDS, key="source_kind", horizontal=False)
    if kind == "Data file":
        files = list_data_files(data_dir())
        if files:
            if st.session_state.get("data_file") not in files:
                st.session_state["data_file"] = DEMO_DATA if DEMO_DATA in files else files[0]
            sb.selectbox("File", files, key="data_file", help=f"CSV and Parquet files under {data_dir()}")
        else:
            sb.info(f"No CSV or Parquet file in {data_dir()}.")
    elif kind == "Upload":
        sb.file_uploader("CSV or Parquet file", type=["csv", "parquet"], key="upload", max_upload_size=MAX_UPLOAD_MB)
    else:
        _db_source_picker(sb)
    saved = saved_reading(st.session_state["model"]) if models else None
    with sb.expander("Reading options"):
        st.text_input(
            "Timestamp column",
            key="ts_col",
            placeholder=f"{saved['timestamp_col']} (the model's)" if saved else "timestamp",
            help="Empty: the model's, as its training data was read (timestamp for a model trained without one).",
        )
        policy = saved["duplicates"] if saved else "mean"  # see sidebar_duplicates
        st.selectbox(
            "Duplicate timestamps",
            list(DUPLICATE_CHOICES),
            key="duplicates",
            format_func=lambda c: f"as the model: {'average' if policy == 'mean' else 'refuse'}" if c == "model" else c,
            help="Average the readings of a repeated timestamp, or refuse the file. The bundled NAB file repeats some.",
        )
        st.text_input(
            "Missing-value codes",
            key="missing_codes",
            placeholder=f"{codes_text(saved['missing_values']) or 'none'} (the model's)" if saved else "-9999, 9.9e37",
            help="Comma-separated numbers the logger writes for no reading, read as missing (the CLI's "
            "--missing-values). Empty: the model's, as its training data was read; none for none.",
        )


# The sidebar's “Duplicate timestamps” choices and the policy each gives (None: the model's).
DUPLICATE_CHOICES = {"model": None, "average": "mean", "refuse": "error"}


def sidebar_duplicates(choice: str, reading: dict | None) -> str:
    """The duplicates policy of the sidebar's choice: the model's, as its training data was read; a
    model saved without its reading (before format 5, or from Python) averages, as the app always did."""
    return DUPLICATE_CHOICES[choice] or (reading or {}).get("duplicates", "mean")


def load_selected(need_frame: bool = False) -> Loaded:
    """Load the sidebar's model and data and score them (all cached); shows a message and stops
    the page when something is missing or wrong."""
    state = st.session_state
    name = state.get("model")
    if not name:
        st.info("Pick a model in the sidebar (or train one on the Train page).")
        st.stop()
    with user_errors():
        detector, model_key = load_detector(name)
        kind = state.get("source_kind", SOURCE_KINDS[0])
        timestamp_col = (state.get("ts_col") or "").strip() or None  # None: the model's
        duplicates = sidebar_duplicates(state.get("duplicates", "model"), detector.reading_)
        if kind == DB_SOURCE_KIND:
            if need_frame:
                st.info("This page needs the sensor values: pick a data file or an upload in the sidebar.")
                st.stop()
            source = state.get("db_source")
            if not source:  # say why: no database, an unreadable one (its error), none scored yet, or none picked
                st.info(db_source_problem(db_target()) or "Pick a scored source of the results database in the sidebar.")
                st.stop()
            scores = db_scores(db_target(), source)
            if scores.empty:  # before the columns: an empty frame has no sensor's column either
                st.warning(
                    f"No scores stored yet for '{source}': its scoring runs wrote none (the History page lists "
                    "them, with the error of each failed one)."
                )
                st.stop()
            missing = [c for c in scoring.frame_columns(detector.columns_) if c not in scores.columns]
            if missing:
                raise DataError(f"database source '{source}' lacks column(s) {', '.join(missing)} for model '{name}'")
            written_by = (db_scores_model(db_target(), source) or "").rsplit("@", 1)[0]  # FOLDER of FOLDER@VERSION
            writer = Path(written_by).name
            if written_by and writer != name:
                st.warning(
                    f"The stored scores of '{source}' were written by model '{writer}' ({written_by}), not by "
                    f"'{name}': they are flagged here with '{name}''s rule. Pick '{writer}' in the sidebar to see "
                    "them as they were judged."
                )
            return Loaded(name, detector, model_key, f"db:{source}", source, None, scores)
        if kind == "Upload":
            uploaded = state.get("upload")
            if uploaded is None:
                st.info("Upload a CSV or Parquet file in the sidebar.")
                st.stop()
            raw, data_key = read_upload(uploaded)
            source = uploaded.name
        else:
            file = state.get("data_file")
            if not file:
                st.info("Pick a data file in the sidebar.")
                st.stop()
            raw, data_key = read_data_file(file)
            source = file
        text = (state.get("missing_codes") or "").strip()
        codes = missing_codes(text) if text else None  # None: the model's
        key = f"{data_key}|{timestamp_col}|{duplicates}|{codes}"
        frame, warnings = clean_for_model(key, model_key, raw, source, detector, timestamp_col, duplicates, codes)
        show_warnings(warnings)
        scores = score(model_key, key, detector, frame)
        return Loaded(name, detector, model_key, key, source, frame, scores)


def fmt_time(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M")


def fmt_interval(step) -> str:
    """A sampling interval as pandas writes frequencies: ``5min``, ``1h``, ``30s``."""
    from pandas.tseries.frequencies import to_offset

    try:
        text = to_offset(pd.Timedelta(step)).freqstr
    except ValueError:
        return str(pd.Timedelta(step))
    return text if text[:1].isdigit() else f"1{text}"


def fmt_duration(value) -> str:
    """An event's length for a table: ``2d 04:30``, ``03:40`` (hours:minutes), ``45s``."""
    seconds = int(pd.Timedelta(value).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}"
    if hours or minutes:
        return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
    return f"{secs}s"

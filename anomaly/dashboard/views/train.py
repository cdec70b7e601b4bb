"""Train: data, sensors, normal period and hyperparameters in; a saved model out, with live progress."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from anomaly.artifacts import check_model_target
from anomaly.dashboard import common, figures
from anomaly.detector import LSTMAutoencoderDetector  # no TensorFlow import: fitting imports it
from anomaly.errors import AnomalyError, ConfigError
from anomaly.io import guess_timestamp_column, select_columns, select_period
from anomaly.loading import ReadOptions

st.title("Train a model")
state = st.session_state
# Every widget of the form but the uploader (which Streamlit does not let a program set) takes its key
# from common.kept, so that what was entered here outlives a look at another page.

done = st.session_state.pop("train_done", None)
if done:
    st.success(done["message"])
    common.show_warnings(done["warnings"])
    st.plotly_chart(figures.loss_figure(done["history"]), key="train_done_loss", config={"displaylogo": False})

# -- data ---------------------------------------------------------------------------------------
st.subheader("1. Data")
origin = st.radio("Training data", ["Upload a file", "File of the data folder"], horizontal=True, key=common.kept("train_origin"))
with common.user_errors():
    if origin == "Upload a file":
        uploaded = st.file_uploader(
            "CSV or Parquet file", type=["csv", "parquet"], key="train_upload", max_upload_size=common.MAX_UPLOAD_MB
        )
        if uploaded is None:
            st.info("Upload a file of sensor readings: a timestamp column and one numeric column per sensor.")
            st.stop()
        raw, raw_key = common.read_upload(uploaded)
        source = uploaded.name
    else:
        files = common.list_data_files(common.data_dir())
        if not files:
            st.info(f"No CSV or Parquet file in {common.data_dir()}.")
            st.stop()
        if state.get("train_file") not in files:  # a first visit, or the file is gone
            state["train_file"] = common.DEMO_DATA if common.DEMO_DATA in files else files[0]
        source = st.selectbox("File", files, key=common.kept("train_file"))
        raw, raw_key = common.read_data_file(source)

columns = [str(c) for c in raw.columns]


def sensor_columns(ts_col: str) -> list[str]:
    """The columns that can be sensors: all but the timestamp."""
    return [c for c in columns if c != ts_col]


def numeric_columns(ts_col: str) -> list[str]:
    """The sensor columns offered by default: those `anomaly train` would use (mostly numbers, so a
    stray 'ERR' is reported, not the column dropped; no blank header or empty column), else all."""
    try:
        return [str(c) for c in select_columns(raw, source, ts_col, None)]
    except AnomalyError:
        return sensor_columns(ts_col)


default_ts = guess_timestamp_column(raw)
if state.get("train_columns_for") != (source, tuple(columns)):
    # Another file (not the same one grown since): its own columns. Written into the widgets' state,
    # not dropped from it, or the browser keeps the last file's choice (not among the options: none).
    state["train_columns_for"] = (source, tuple(columns))
    state["train_ts"], state["train_sensors"] = default_ts, numeric_columns(default_ts)
    state["train_sensors_ts"] = default_ts
c1, c2, c3 = st.columns([1, 2, 1])
ts_col = c1.selectbox(
    "Timestamp column",
    columns,
    **({} if "train_ts" in state else {"index": columns.index(default_ts)}),
    key=common.kept("train_ts"),
)
if state.get("train_sensors_ts") != ts_col:  # another timestamp column: the old one may be a sensor now
    state["train_sensors"], state["train_sensors_ts"] = numeric_columns(ts_col), ts_col
sensors = c2.multiselect(
    "Sensor columns",
    sensor_columns(ts_col),
    **({} if "train_sensors" in state else {"default": numeric_columns(ts_col)}),
    key=common.kept("train_sensors"),
)
duplicates = "mean" if c3.checkbox("Average duplicate timestamps", key=common.kept("train_dup", True)) else "error"
codes_text = c3.text_input(
    "Missing-value codes",
    key=common.kept("train_missing"),
    placeholder="-9999, 9.9e37",
    help="Comma-separated numbers the logger writes for no reading, read as missing (the CLI's --missing-values). "
    "Saved with the model, with the timestamp column and the duplicates choice: data scored with it is read the same way.",
)
if not sensors:
    st.info("Pick at least one sensor column.")
    st.stop()
with common.user_errors():
    codes = common.missing_codes(codes_text)
    key = f"{raw_key}|{ts_col}|{sensors}|{duplicates}|{codes}"
    frame, warnings = common.clean(key, raw, source, ts_col, tuple(sensors), duplicates, codes)
common.show_warnings(warnings)

# -- normal period ------------------------------------------------------------------------------
st.subheader("2. Normal period")
start, end = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
default_end = frame.index[int(len(frame) * 0.6)].to_pydatetime()
step = frame.index[1] - frame.index[0] if len(frame) > 1 else pd.Timedelta(minutes=1)
span = (start, end, step.to_pytimedelta())
if state.get("train_period_for") != span:  # other data (or a first visit): its default period, as a new slider
    state["train_period_for"], state["train_period"] = span, (start, default_end)
period = st.slider(
    "Rows between these times are normal operation: the model learns them",
    min_value=start,
    max_value=end,
    step=step.to_pytimedelta(),
    format="YYYY-MM-DD HH:mm",
    key=common.kept("train_period"),
)
normal = select_period(frame, str(pd.Timestamp(period[0])), str(pd.Timestamp(period[1])))
st.caption(
    f"{len(frame):,} rows of {', '.join(sensors)} every {common.fmt_interval(step)}; {len(normal):,} in the normal period."
)

# -- hyperparameters ----------------------------------------------------------------------------
# Every default is the detector's own: the configuration `anomaly train` and `anomaly bench` use.
d = LSTMAutoencoderDetector().get_params()
st.subheader("3. Model")
h = st.columns(4)
window = h[0].number_input("Window (points)", 2, 1024, key=common.kept("train_window", d["window"]))
units = h[1].number_input("LSTM units", 1, 512, key=common.kept("train_units", d["encoder_units"][0]))
latent = h[2].number_input("Latent size", 1, 256, key=common.kept("train_latent", d["latent_dim"]))
epochs = h[3].number_input("Epochs (max)", 1, 500, key=common.kept("train_epochs", d["epochs"]))
h = st.columns(4)
batch = h[0].number_input("Batch size", 1, 4096, key=common.kept("train_batch", d["batch_size"]))
lr = h[1].number_input("Learning rate", 1e-5, 1.0, format="%.5f", key=common.kept("train_lr", d["learning_rate"]))
patience = h[2].number_input("Early-stopping patience", 0, 100, key=common.kept("train_patience", d["patience"]))
val_frac = h[3].number_input("Held-out fraction", 0.0, 0.9, step=0.05, key=common.kept("train_val", d["validation_fraction"]))
h = st.columns(5)
kind = h[0].selectbox(
    "Model kind",
    ["reconstruction", "prediction", "composite"],
    key=common.kept("train_kind"),
    help="reconstruction: the decoder recreates the window; prediction: it predicts the next "
    "points; composite: both decoders, trained together",
)
horizon = h[1].number_input(
    "Horizon (points predicted)", 1, 1024, key=common.kept("train_horizon", 1), disabled=kind == "reconstruction"
)
reverse = h[2].checkbox(
    "Reversed target",
    key=common.kept("train_reverse", False),
    disabled=kind == "prediction",
    help="reconstruct the window in reverse order (Srivastava et al. 2015)",
)
conditional = h[3].checkbox(
    "Conditional decoder",
    key=common.kept("train_conditional", False),
    help="the decoder is fed its previous output (teacher forcing in training)",
)
bidirectional = h[4].checkbox(
    "Bidirectional layers",
    key=common.kept("train_bidirectional", False),
    disabled=conditional,
    help="every LSTM layer reads the window forwards and backwards (twice the work; not with a conditional decoder)",
)
st.subheader("4. Flagging")
h = st.columns(4)
causal = h[0].selectbox(
    "Rule",
    ["trailing", "fixed"],
    key=common.kept("train_flagging"),
    help="trailing: each point against the scores before it (mean + k std of the trailing "
    "scores, or the cap); fixed: one threshold learned on the normal period",
)
local_k = h[1].number_input(
    "k (trailing std)", 0.5, 50.0, key=common.kept("train_local_k", float(d["local_k"])), disabled=causal != "trailing"
)
trailing = h[2].number_input(
    "Trailing scores", 2, 1_000_000, key=common.kept("train_trailing", d["local_trailing"]), disabled=causal != "trailing"
)
cap = h[3].number_input(
    "Cap (x largest normal score, 0 = off)",
    0.0,
    100.0,
    key=common.kept("train_cap", float(d["local_cap"])),
    disabled=causal != "trailing",
)
h = st.columns(4)
exclude = h[0].checkbox(
    "Exclude flagged points",
    key=common.kept("train_exclude", d["local_exclude"]),
    disabled=causal != "trailing",
    help="keep flagged points out of the trailing scores, so a long anomaly stays flagged",
)
padding = h[1].number_input(
    "Padding (points)",
    0,
    100_000,
    key=common.kept("train_padding", d["event_padding"]),
    help="Points flagged after each flagged point (with a fixed threshold: on both sides of it), so an event "
    "stays whole while its score dips for a moment.",
)
smoothing = h[2].number_input(
    "Score smoothing (EWMA span)",
    0,
    1000,
    key=common.kept("train_smooth", d["smoothing"]),
    help="in points at stride 1; a fit at stride s smooths over this times the square root of s",
)
root = h[3].checkbox("Root of the squared error", key=common.kept("train_root", d["root_score"]))
h = st.columns(4)
rule = h[0].selectbox(
    "Fixed threshold rule", ["quantile", "ksigma", "max"], key=common.kept("train_rule"), disabled=causal != "fixed"
)
quantile = h[1].number_input(
    "Quantile",
    0.5,
    0.99999,
    step=0.001,
    format="%.4f",
    key=common.kept("train_q", d["quantile"]),
    disabled=causal != "fixed",
)
k_sigma = h[2].number_input("k (sigma)", 0.1, 50.0, key=common.kept("train_k", d["k_sigma"]), disabled=causal != "fixed")
# The page's own layout above; every other hyperparameter, generated from its declaration.
with common.user_errors():
    extra = common.more_settings(LSTMAutoencoderDetector, common.TRAIN_PLACED, "train_more")
h = st.columns(4)
min_len = h[0].number_input("Min event length (points)", 1, 10_000, key=common.kept("train_minlen", 1))
merge_gap = h[1].number_input("Merge events closer than (points)", 0, 10_000, key=common.kept("train_gap", 0))
name = h[2].text_input(
    "Model name",
    key=common.kept("train_name", "my-model"),
    max_chars=64,
    help=f"Saved as a folder under {common.models_dir()}",
)
replace = h[3].checkbox("Replace if it exists", key=common.kept("train_replace", False))

if not st.button("Train and save", type="primary", key="train_go"):
    st.stop()

# -- training -----------------------------------------------------------------------------------
try:
    target = common.inside(common.models_dir(), common.check_model_name(name))
    if target.exists() and not replace:
        raise ConfigError(f"a model named '{name}' exists; tick 'Replace if it exists' or pick another name")
    check_model_target(target)  # a folder that cannot take the model: said before the fit, not after
    detector = LSTMAutoencoderDetector(
        window=int(window),
        encoder_units=(int(units),),
        decoder_units=(int(units),),
        latent_dim=int(latent),
        epochs=int(epochs),
        batch_size=int(batch),
        learning_rate=float(lr),
        patience=int(patience),
        validation_fraction=float(val_frac),
        threshold_rule=rule,
        quantile=float(quantile),
        k_sigma=float(k_sigma),
        smoothing=int(smoothing),
        min_event_length=int(min_len),
        merge_gap=int(merge_gap),
        verbose=0,
        model_kind=kind,
        horizon=int(horizon),
        reverse=bool(reverse) and kind != "prediction",
        conditional=bool(conditional),
        bidirectional=bool(bidirectional) and not conditional,
        local_rule="trailing" if causal == "trailing" else None,
        local_k=float(local_k),
        local_trailing=int(trailing),
        local_cap=float(cap),
        local_exclude=bool(exclude),
        event_padding=int(padding),
        root_score=bool(root),
        **extra,
    )
    bar = st.progress(0.0, text="Starting…")
    curve = st.empty()
    seen: dict[str, list[float]] = {"loss": [], "val_loss": []}

    fits = [0]  # with trim the detector fits twice: the curve restarts with the second fit

    def on_epoch(epoch: int, logs: dict) -> None:
        if epoch == 0:
            fits[0] += 1
            for k in seen:
                seen[k].clear()
        for k in seen:
            if k in logs:
                seen[k].append(logs[k])
        text = f"Epoch {epoch + 1} of at most {int(epochs)}: loss {logs.get('loss', float('nan')):.5f}"
        if detector.trim > 0:
            text = f"Fit {fits[0]} of 2 (trim {detector.trim:g}) · " + text
        if "val_loss" in logs:
            text += f", validation {logs['val_loss']:.5f}"
        bar.progress(min((epoch + 1) / int(epochs), 1.0), text=text)
        curve.line_chart(
            pd.DataFrame({k: v for k, v in seen.items() if v}, index=range(1, len(seen["loss"]) + 1)),
            x_label="epoch",
            y_label="loss (MSE)",
            height=260,
        )

    with st.spinner("Training…"), common.logged_warnings() as fit_warnings:  # a constant sensor kept, say
        detector.fit(normal, on_epoch=on_epoch)
        reading = ReadOptions(timestamp_col=ts_col, duplicates=duplicates, missing_values=codes)
        path = detector.save(target, reading=reading.saved())  # scored later as it was read here
except AnomalyError as exc:
    st.error(common.in_app_terms(str(exc)))
    st.stop()

bar.progress(1.0, text="Done")
st.session_state["_select_model"] = target.name
st.session_state["train_done"] = {
    "message": f"Saved model '{target.name}' to {path} after {len(detector.history_.get('loss', []))} epoch(s); "
    f"it {detector.describe_flagging()}. It is now selected in the sidebar.",
    "history": detector.history_,
    "warnings": fit_warnings,
}
st.rerun()

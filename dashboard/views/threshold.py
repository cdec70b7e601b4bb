"""Threshold: move it, see the events change live, and save it into the model when it is right."""

from __future__ import annotations

import numpy as np
import streamlit as st

from anomaly.artifacts import update_threshold
from anomaly.errors import AnomalyError
from dashboard import common, figures

st.title("Threshold")
ld = common.load_selected()
detector = ld.detector
normal = np.asarray(detector.normal_scores_, dtype=float)
key = common.threshold_key(ld.model_key)
current = ld.threshold


def _set_absolute() -> None:
    st.session_state[key] = float(st.session_state["thr_abs"])


def _set_quantile() -> None:
    st.session_state[key] = float(np.quantile(normal, st.session_state["thr_q"]))


# The threshold changes only when a slider is moved (callbacks), so merely visiting this page
# never shifts it by the sliders' rounding.
mode = st.radio("Set the threshold as", ["absolute value", "quantile of normal scores"], horizontal=True, key="thr_mode")
if mode == "absolute value":
    finite = ld.scores["score"].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    # The range reaches above the highest score (so every event can be dismissed) in 2000 steps,
    # fine enough near the threshold; the quantile mode gives finer control still.
    top = float(max(finite.max() if len(finite) else 0.0, normal.max(), current) * 1.05) or 1.0
    step = float(f"{top / 2000:.2g}")
    top = float(np.ceil(top / step) * step)
    value = float(np.clip(round(current / step) * step, 0.0, top))
    st.slider("Threshold (anomaly score)", min_value=0.0, max_value=top, value=value, step=step,
              key="thr_abs", format="%.4g", on_change=_set_absolute)
else:
    # Where the current threshold sits among the normal scores, as the starting quantile.
    q0 = float(np.clip(np.searchsorted(normal, current, side="right") / len(normal), 0.5, 0.9999))
    st.slider("Quantile of the held-out normal scores", min_value=0.5, max_value=0.9999, value=round(q0, 4),
              step=0.0001, key="thr_q", format="%.4f", on_change=_set_quantile,
              help="0.995 = the score that 99.5% of held-out normal points stay below.")
threshold = ld.threshold
if st.button("Reset to the model's threshold", key="thr_reset", disabled=threshold == ld.default_threshold):
    st.session_state.pop(key, None)
    for widget in ("thr_abs", "thr_q"):
        st.session_state.pop(widget, None)
    st.rerun()

with common.user_errors():
    events = ld.events(threshold)
    base = ld.events(ld.default_threshold)
m1, m2, m3 = st.columns(3)
m1.metric("Events", len(events), delta=(len(events) - len(base)) or None, delta_color="inverse",
          help="Change against the threshold saved in the model.")
m2.metric("Threshold", f"{threshold:.4g}", delta=f"model: {ld.default_threshold:.4g}", delta_color="off", delta_arrow="off")
share = float((normal > threshold).mean())
m3.metric("Normal points above", f"{share:.2%}", help="Share of held-out normal points the threshold would flag.")

st.plotly_chart(figures.histogram_figure(normal, threshold, ld.default_threshold, ld.scores["score"].to_numpy()),
                key="thr_hist", config={"displaylogo": False})

c1, c2 = st.columns([1, 3])
if c1.button("Save threshold into the model", type="primary", key="thr_save",
             disabled=bool(np.isclose(threshold, ld.default_threshold, rtol=1e-9, atol=0))):
    try:
        update_threshold(common.inside(common.models_dir(), ld.model_name), float(threshold))
    except AnomalyError as exc:
        st.error(str(exc))
    else:
        st.session_state.pop(key, None)
        st.toast(f"Saved threshold {threshold:.6g} into model '{ld.model_name}'.")
        st.session_state["thr_saved"] = f"Saved threshold {threshold:.6g} into model '{ld.model_name}' (rule 'manual')."
        st.rerun()
if st.session_state.get("thr_saved"):
    c2.success(st.session_state.pop("thr_saved"))
c2.caption(f"The model's rule is **{detector.thresholds_['rule']}**; saving writes the value as rule 'manual' "
           "into detector.json, used from then on by every scorer of this model.")

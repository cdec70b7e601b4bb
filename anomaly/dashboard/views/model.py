"""Model: the model card (configuration, loss curves, thresholds, columns, interval, fingerprint)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from anomaly import seasonal
from anomaly.dashboard import common, figures

st.title("Model")
name = st.session_state.get("model")
if not name:
    st.info("Pick a model in the sidebar (or train one on the Train page).")
    st.stop()
with common.user_errors():
    detector, _ = common.load_detector(name)

t = detector.thresholds_
history = detector.history_
st.subheader(f"Model card: {name}")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Sensors", len(detector.columns_))
m2.metric("Sampling interval", common.fmt_interval(detector.interval_))
m3.metric("Epochs run", len(history.get("loss", [])))
kind = common.rule_kind(detector)
if kind == common.TRAILING:
    m4.metric(
        "Threshold",
        f"trailing, k = {detector.local_k:g}",
        help=f"Each point's own threshold: mean + {detector.local_k:g} std of the last "
        f"{detector.local_trailing:,} scores before it (see the Threshold page).",
    )
elif kind == common.FIXED:
    m4.metric(f"Threshold ({t['rule']})", f"{t['values'][t['rule']]:.4g}")
else:
    m4.metric("Threshold", f"batch rule {detector.local_rule}")

left, right = st.columns(2)
with left:
    st.markdown("**Training and validation loss**")
    st.plotly_chart(figures.loss_figure(history), key="model_loss", config={"displaylogo": False})
    st.markdown(
        "**Thresholds** (fitted on held-out normal scores"
        + ("; in force only with local_rule none)" if kind != common.FIXED else ")")
    )
    st.dataframe(
        pd.DataFrame(
            {
                "rule": list(t["values"]),
                "value": list(t["values"].values()),
                "in force": [kind == common.FIXED and r == t["rule"] for r in t["values"]],
            }
        ),
        hide_index=True,
    )
    settings = {k: v for k, v in t.items() if k not in ("rule", "values", "n_normal_scores")}
    st.caption(
        ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in settings.items())
        + f"; {t.get('n_normal_scores', len(detector.normal_scores_))} normal scores"
    )
with right:
    st.markdown("**Configuration**")
    params = {k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)) for k, v in detector.get_params().items()}
    if detector.decoder_units is None:  # the default: say what it stands for
        params["decoder_units"] = ", ".join(map(str, detector.decoder_layers())) + " (the encoder's, reversed)"
    st.dataframe(
        pd.DataFrame({"parameter": list(params), "value": list(params.values())}),
        hide_index=True,
        height=35 * (len(params) + 1) + 3,
    )
st.markdown(
    "**Columns**: "
    + ", ".join(f"`{c}`" for c in detector.columns_)
    + (f"  ·  **time zone**: {detector.timezone_}" if getattr(detector, "timezone_", None) else "")
    + (
        f"  ·  **stride**: {detector.stride_}  ·  **score smoothed over**: {detector.smoothing_} points"
        if hasattr(detector, "smoothing_")
        else ""
    )
)
profiles = getattr(detector, "seasonal_", {})
if profiles:
    st.markdown(
        "**Seasonal profiles** (subtracted before scaling, so a day without its usual shape stands out): "
        + ", ".join(
            f"`{c}` ({p.period}" + ("" if p.r2 is None else f", R² {p.r2:.2f} on held-out periods") + ")"
            for c, p in profiles.items()
        )
    )
    st.plotly_chart(figures.profile_figure(profiles), key="model_profiles", config={"displaylogo": False})
elif hasattr(detector, "seasonal_"):
    st.caption(
        f"No seasonal profile (seasonal {detector.seasonal}): "
        + (
            "none learned."
            if detector.seasonal == "off"
            else "no sensor's daily or weekly shape predicted held-out normal days, or the normal period "
            f"covered fewer than {seasonal.MIN_PERIODS} days."
        )
    )
fp = detector.fingerprint_
st.markdown("**Training data fingerprint**")
st.dataframe(pd.DataFrame({"field": list(fp), "value": [str(v) for v in fp.values()]}), hide_index=True)
st.markdown("**How its data is read**")
st.caption(common.describe_reading(detector.reading_))
version = getattr(detector, "package_version_", None)
st.caption(f"Folder {common.inside(common.models_dir(), name)}" + (f", written by lstm-anomaly {version}" if version else ""))

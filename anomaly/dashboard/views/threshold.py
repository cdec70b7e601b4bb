"""Threshold: the flagging rule in force, explained with the model's numbers; tune it, see the events
change live, and save it into the model when it is right.

Three cases, by the model's ``local_rule``: ``trailing`` (the causal rule: each point has its own
threshold, tuned by k, trailing length, cap, padding), ``None`` (one fixed threshold, tuned as a
number or a quantile of the held-out normal scores) and the batch rules (shown, not tuned here).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from anomaly.artifacts import update_threshold
from anomaly.dashboard import common, figures
from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import AnomalyError
from anomaly.thresholds import quantile_threshold

# Widget keys of the causal rule's settings, by detector parameter, and their names in the text.
WIDGETS = {
    "local_k": "flag_k",
    "local_trailing": "flag_trailing",
    "local_cap": "flag_cap",
    "event_padding": "flag_pad",
    "local_exclude": "flag_exclude",
}
NAMES = {
    "local_k": "k",
    "local_trailing": "trailing length",
    "local_cap": "cap factor",
    "event_padding": "padding",
    "local_exclude": "leave flagged points out",
}


def _set_widgets(settings: dict) -> None:
    """Put ``settings`` into the rule's widgets. Written into session state, not dropped from it: a
    dropped key leaves the browser's widget at its old value, which it sends back at the next move.
    (The widgets still get ``value=``: one whose range changes is a new widget and starts from it.)"""
    for name, widget in WIDGETS.items():
        st.session_state[widget] = settings[name]


def _absolute_range(series: np.ndarray, normal: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """``(top, step, value)`` of the absolute threshold slider: up to above the highest score (so every
    event can be dismissed) in 2000 steps, fine enough near the threshold (the quantile mode is finer still)."""
    finite = series[np.isfinite(series)]
    top = float(max(finite.max() if len(finite) else 0.0, normal.max(), threshold) * 1.05) or 1.0
    step = float(f"{top / 2000:.2g}")
    top = float(np.ceil(top / step) * step)
    return top, step, float(np.clip(round(threshold / step) * step, 0.0, top))


def _quantile_of(normal: np.ndarray, threshold: float) -> float:
    """The quantile slider's value for ``threshold``: the ``q`` with ``np.quantile(normal, q) == threshold``
    (the inverse of the linear interpolation :func:`_set_quantile` applies, so a threshold set as the 0.995
    quantile shows as 0.995, and a step right never lowers it), within the slider's range."""
    ranked = np.sort(normal[np.isfinite(normal)])
    if len(ranked) < 2:
        return 0.9999
    position = np.interp(threshold, ranked, np.arange(len(ranked), dtype=float))
    return round(float(np.clip(position / (len(ranked) - 1), 0.5, 0.9999)), 4)


def _trailing_page(ld: common.Loaded) -> None:
    """The causal rule: explanation, settings, live metrics, score against threshold, reset and save."""
    state = st.session_state
    key = common.flagging_key(ld.model_key)
    saved = ld.saved_flagging
    current = ld.flagging
    if state.get("flag_for") != ld.model_key:  # another model (version): its widgets start from its settings
        _set_widgets(current)
        state["flag_for"] = ld.model_key

    def _tune() -> None:
        # Only a moved widget changes the settings (callbacks), and only differences from the model are kept.
        values = {name: kind(state[WIDGETS[name]]) for name, kind in common.TUNABLE.items()}
        for name in ("local_k", "local_cap"):  # slider steps of 0.1 in binary floating point
            values[name] = round(values[name], 6)
        changed = {name: value for name, value in values.items() if value != saved[name]}
        if changed:
            state[key] = changed
        else:
            state.pop(key, None)

    normal_peak = ld.cap({**current, "local_cap": 1.0})  # the largest held-out normal score, in score units
    cap = ld.cap()
    st.markdown(_explain(ld.detector, current, cap, normal_peak))

    c1, c2, c3 = st.columns(3)
    k = current["local_k"]
    c1.slider(
        "k: standard deviations above the trailing mean",
        min_value=min(2.0, k),
        max_value=max(12.0, k),
        value=k,
        step=0.1,
        format="%.1f",
        key="flag_k",
        on_change=_tune,
        help="Higher: only points further above what came before are flagged (fewer events).",
    )
    trailing = current["local_trailing"]
    c2.slider(
        "Trailing length (points before each point)",
        min_value=min(100, trailing),
        max_value=max(20_000, trailing),
        value=trailing,
        step=10,
        key="flag_trailing",
        on_change=_tune,
        help="How far back the mean and std reach: longer is steadier, shorter adapts faster to a new level.",
    )
    factor = current["local_cap"]
    c3.slider(
        "Cap (× the largest normal score; 0 = off)",
        min_value=0.0,
        max_value=max(10.0, factor),
        value=factor,
        step=0.1,
        format="%.1f",
        key="flag_cap",
        on_change=_tune,
        help=f"A point above the cap is flagged whatever came before it. The largest held-out normal score is {normal_peak:.4g}."
        if normal_peak
        else None,
    )
    c4, c5, c6 = st.columns(3)
    pad = current["event_padding"]
    c4.number_input(
        "Padding (points flagged after each flagged point)",
        min_value=0,
        max_value=max(10_000, pad),
        value=pad,
        step=10,
        key="flag_pad",
        on_change=_tune,
        help="Keeps one event whole while its score dips below the threshold for a moment.",
    )
    c5.toggle(
        "Leave flagged points out of the trail",
        value=current["local_exclude"],
        key="flag_exclude",
        on_change=_tune,
        help="On: a long anomaly cannot raise its own threshold and stays flagged. "
        "Off: every point enters the trail, so the threshold climbs during a long anomaly.",
    )

    def _reset() -> None:
        state.pop(key, None)
        _set_widgets(saved)

    c6.button("Reset to the model's settings", key="flag_reset", disabled=not ld.tuned, on_click=_reset)

    with common.user_errors():
        flagged, events = ld.flag()
        base_flagged, base = ld.flag(saved)
    flags, base_flags = int(flagged["is_anomaly"].sum()), int(base_flagged["is_anomaly"].sum())
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Events",
        len(events),
        delta=(len(events) - len(base)) or None,
        delta_color="inverse",
        help="Change against the settings saved in the model.",
    )
    m2.metric(
        "Flagged points",
        f"{flags:,}",
        delta=(flags - base_flags) or None,
        delta_color="inverse",
        help="Change against the settings saved in the model.",
    )
    m3.metric(
        "Cap",
        f"{cap:.4g}" if cap is not None else "off",
        delta=f"{current['local_cap']:g} × normal max" if cap is not None else None,
        delta_color="off",
        delta_arrow="off",
        help="The highest the threshold can be, as a score.",
    )
    limit = flagged["threshold"].to_numpy(dtype=float)
    limit = limit[np.isfinite(limit)]
    m4.metric(
        "Threshold at the last point",
        f"{limit[-1]:.4g}" if len(limit) else "none",
        help="Each point has its own threshold; this is the latest, the one the next point will face "
        "(frozen while an event lasts).",
    )

    st.plotly_chart(
        figures.rule_figure(flagged, events, cap, base_flagged["threshold"] if ld.tuned else None),
        key="flag_chart",
        config={"scrollZoom": True, "displaylogo": False},
    )

    s1, s2 = st.columns([1, 3])
    if s1.button("Save these settings into the model", type="primary", key="flag_save", disabled=not ld.tuned):
        try:
            LSTMAutoencoderDetector.save_flagging(common.inside(common.models_dir(), ld.model_name), **current)
        except AnomalyError as exc:
            st.error(str(exc))
        else:
            state.pop(key, None)
            for widget in WIDGETS.values():
                state.pop(widget, None)
            text = f"Saved {ld.rule_summary(current)} into model '{ld.model_name}'."
            st.toast(text)
            state["flag_saved"] = text
            st.rerun()
    if state.get("flag_saved"):
        s2.success(state.pop("flag_saved"))
    tuned = ", ".join(
        f"{NAMES[name]} {saved[name]:g} → {current[name]:g}"
        if not isinstance(saved[name], bool)
        else f"{NAMES[name]} {'on' if saved[name] else 'off'} → {'on' if current[name] else 'off'}"
        for name in WIDGETS
        if current[name] != saved[name]
    )
    s2.caption(
        (f"Tried here, not saved: {tuned}. " if tuned else "")
        + "Saving writes these settings into the model's detector.json; every scorer of the model "
        "(`anomaly score`, scheduled scoring) flags with them from then on. The model is not retrained."
    )


def _explain(detector, s: dict, cap: float | None, normal_peak: float | None) -> str:
    """The causal rule in plain words, with the numbers in force."""
    score = "root of the mean squared reconstruction error" if detector.root_score else "mean squared reconstruction error"
    smooth = f", smoothed over about {detector.smoothing_} points" if detector.smoothing_ > 1 else ""
    trail = (
        "flagged points left out, so a long anomaly cannot raise its own bar"
        if s["local_exclude"]
        else "flagged points included, so the bar rises during a long anomaly"
    )
    lines = [
        f"**How points are flagged.** Each point's anomaly score (the {score}{smooth}) is compared with a "
        "threshold of its own, made only from the points **before** it, so flags never change when later data arrives:",
        f"- **mean + {s['local_k']:g} × std** of the last **{s['local_trailing']:,}** scores ({trail});",
    ]
    if detector.prune > 0:
        lines.append(f"- and at least **{1 + detector.prune:g} ×** the highest of those scores;")
    if cap is not None:
        lines.append(
            f"- but never above the **cap**: {s['local_cap']:g} × the largest held-out normal score "
            f"({normal_peak:.4g}) = **{cap:.4g}**; a score that high is anomalous whatever came before;"
        )
    else:
        lines.append("- with **no cap**: however high a score, it is judged against the points before it only;")
    if s["event_padding"]:
        lines.append(
            f"- once a point is flagged, the next **{s['event_padding']:,}** points are flagged too, "
            "so an event is not cut into pieces."
        )
    else:
        lines.append("- no padding: only the points above their threshold are flagged.")
    lines.append("\nA series starts from the model's held-out normal scores, as if it followed them.")
    return "\n".join(lines)


def _fixed_page(ld: common.Loaded) -> None:
    """One fixed threshold: an absolute value or a quantile of the held-out normal scores."""
    detector = ld.detector
    normal = np.asarray(detector.normal_scores_, dtype=float)
    key = common.threshold_key(ld.model_key)
    current = ld.threshold
    # The slider and the histogram are in the model's units (those of threshold_for and the normal
    # scores); a model with a root score compares roots, so its series' scores are squared back.
    series = ld.flagged["score"].to_numpy(dtype=float) ** (2 if detector.root_score else 1)

    def _set_absolute() -> None:
        st.session_state[key] = float(st.session_state["thr_abs"])

    def _set_quantile() -> None:
        st.session_state[key] = quantile_threshold(normal, st.session_state["thr_q"])

    also = []
    if detector.root_score:
        also.append("compared as square roots (the Series page draws the roots)")
    if detector.event_padding:
        also.append(f"each event widened by **{detector.event_padding:,}** points on both sides")
    if detector.prune > 0:
        also.append(f"events pruned unless their peak stands {detector.prune:.0%} above the next")
    st.markdown(
        f"**How points are flagged.** This model compares every point's anomaly score with one fixed "
        f"threshold, learned from its held-out normal scores (rule **{detector.thresholds_['rule']}**)"
        + (f": {'; '.join(also)}." if also else ".")
    )
    # The threshold changes only when a slider is moved (callbacks), so merely visiting this page
    # never shifts it by the sliders' rounding.
    state = st.session_state
    if state.get("thr_for") != ld.model_key:  # another model (version): its sliders start from its threshold
        state["thr_abs"], state["thr_q"] = _absolute_range(series, normal, current)[2], _quantile_of(normal, current)
        state["thr_for"] = ld.model_key

    def _mode_changed() -> None:  # the slider now shown starts from the threshold in force, not from its last use
        for widget in ("thr_abs", "thr_q"):
            state.pop(widget, None)

    mode = st.radio(
        "Set the threshold as",
        ["absolute value", "quantile of normal scores"],
        horizontal=True,
        key="thr_mode",
        on_change=_mode_changed,
    )
    if mode == "absolute value":
        top, step, value = _absolute_range(series, normal, current)
        st.slider(
            "Threshold (anomaly score)",
            min_value=0.0,
            max_value=top,
            value=value,
            step=step,
            key="thr_abs",
            format="%.4g",
            on_change=_set_absolute,
        )
    else:
        st.slider(
            "Quantile of the held-out normal scores",
            min_value=0.5,
            max_value=0.9999,
            value=_quantile_of(normal, current),
            step=0.0001,
            key="thr_q",
            format="%.4f",
            on_change=_set_quantile,
            help="0.995 = the score that 99.5% of held-out normal points stay below.",
        )
    threshold = ld.threshold

    def _reset() -> None:
        # The shown slider is set to the model's threshold (see _set_widgets); the other starts from it when shown.
        st.session_state.pop(key, None)
        st.session_state.pop("thr_q" if mode == "absolute value" else "thr_abs", None)
        if mode == "absolute value":
            st.session_state["thr_abs"] = _absolute_range(series, normal, ld.default_threshold)[2]
        else:
            st.session_state["thr_q"] = _quantile_of(normal, ld.default_threshold)

    st.button("Reset to the model's threshold", key="thr_reset", disabled=threshold == ld.default_threshold, on_click=_reset)

    with common.user_errors():
        events = ld.events(threshold)
        base = ld.events(ld.default_threshold)
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Events",
        len(events),
        delta=(len(events) - len(base)) or None,
        delta_color="inverse",
        help="Change against the threshold saved in the model.",
    )
    m2.metric("Threshold", f"{threshold:.4g}", delta=f"model: {ld.default_threshold:.4g}", delta_color="off", delta_arrow="off")
    share = float((normal > threshold).mean())
    m3.metric("Normal points above", f"{share:.2%}", help="Share of held-out normal points the threshold would flag.")

    st.plotly_chart(
        figures.histogram_figure(normal, threshold, ld.default_threshold, series), key="thr_hist", config={"displaylogo": False}
    )

    c1, c2 = st.columns([1, 3])
    if c1.button(
        "Save threshold into the model",
        type="primary",
        key="thr_save",
        disabled=bool(np.isclose(threshold, ld.default_threshold, rtol=1e-9, atol=0)),
    ):
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
    c2.caption(
        f"The model's rule is **{detector.thresholds_['rule']}**; saving writes the value as rule 'manual' "
        "into detector.json, used from then on by every scorer of this model."
    )


def _batch_page(ld: common.Loaded) -> None:
    """A batch rule (ksigma, dynamic, pot): explained and drawn, not tuned here."""
    rule = ld.detector.local_rule
    st.markdown(
        f"**How points are flagged.** This model judges each point against the whole scored batch "
        f"(rule **{rule}**, mean + {ld.detector.local_k:g} std over windows of "
        f"{ld.detector.local_window:.0%} of it): its flags depend on how much is scored at once, so "
        "this page does not tune them. Train with the trailing rule (the default) to tune it here."
    )
    flagged, events = ld.flag()
    m1, m2 = st.columns(2)
    m1.metric("Events", len(events))
    m2.metric("Flagged points", f"{int(flagged['is_anomaly'].sum()):,}")
    st.plotly_chart(figures.rule_figure(flagged, events, None), key="flag_chart", config={"displaylogo": False})


st.title("Threshold")
loaded = common.load_selected()
if loaded.rule == common.TRAILING:
    _trailing_page(loaded)
elif loaded.rule == common.FIXED:
    _fixed_page(loaded)
else:
    _batch_page(loaded)

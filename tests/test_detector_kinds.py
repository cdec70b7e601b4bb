"""Every model kind through the detector: fit, score, embed, save/load, CLI, and padded sequences."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from anomaly import sequences as sequences_mod
from anomaly.detector import LSTMAutoencoderDetector
from anomaly.errors import ConfigError, DataError, ModelError
from anomaly.sequences import LSTMSequenceDetector

W, H = 8, 2
TINY = dict(window=W, encoder_units=(8,), decoder_units=(8,), latent_dim=4, epochs=3, batch_size=32, verbose=0, seed=0)
CONFIGS = {
    "prediction": dict(model_kind="prediction", horizon=H),
    "composite": dict(model_kind="composite", horizon=H, reverse=True, conditional=True, prediction_weight=0.5),
    "reconstruction-conditional": dict(model_kind="reconstruction", reverse=True, conditional=True),
    "reconstruction-stacked": dict(encoder_units=(8, 4), decoder_units=(4, 8), dropout=0.1),
    "composite-bidirectional": dict(model_kind="composite", horizon=H, bidirectional=True),
    "aer": dict(model_kind="aer", horizon=H),
    "aer-mult": dict(model_kind="aer", horizon=H, combination="mult"),
    "composite-sum": dict(model_kind="composite", horizon=H, combination="sum"),
}


def sensors(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "temp": np.sin(2 * np.pi * t / 25) + 0.05 * rng.standard_normal(n),
            "flow": np.cos(2 * np.pi * t / 40) + 0.05 * rng.standard_normal(n),
        },
        index=pd.date_range("2024-01-01", periods=n, freq="min"),
    )


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return sensors()


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    """One fitted detector per configuration, its scores, and the detector loaded back from disk."""
    out = {}
    for name, params in CONFIGS.items():
        det = LSTMAutoencoderDetector(**{**TINY, **params}).fit(data)
        path = det.save(tmp_path_factory.mktemp(name) / "model")
        out[name] = (det, LSTMAutoencoderDetector.load(path), path)
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_kind_learns(fitted, name):
    loss = fitted[name][0].history_["loss"]
    assert len(loss) == 3 and loss[-1] < loss[0]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_engine_scores_every_kind_as_tensorflow_does(fitted, data, name):
    """The fixture's saves export model.onnx, which the CLI scores with by default: same scores, same flags."""
    det, _, path = fitted[name]
    onnx = LSTMAutoencoderDetector.load(path, engine="onnx")
    assert type(onnx.model_).__name__ == "OnnxModel"
    spiked = data.copy()
    spiked.iloc[300, 0] += 6.0
    a, b = det.score(spiked), onnx.score(spiked)
    pd.testing.assert_index_equal(a.columns, b.columns)
    np.testing.assert_allclose(b["score"], a["score"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(b["is_anomaly"], a["is_anomaly"])
    assert a["is_anomaly"].iloc[300:310].any()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_save_load_round_trip_scores_and_embeds_identically(fitted, data, name):
    det, loaded, _ = fitted[name]
    assert loaded.get_params() == det.get_params()
    a, b = det.score(data, reconstruct=True), loaded.score(data, reconstruct=True)
    assert list(a.columns) == ["score", "threshold", "is_anomaly", "error_temp", "error_flow", "recon_temp", "recon_flow"]
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)
    ea, eb = det.embed(data), loaded.embed(data)
    assert list(ea.columns) == ["start", "end", "z0", "z1", "z2", "z3"]
    assert len(ea) == len(data) - W + 1  # every kind embeds windows of `window` rows, no horizon
    pd.testing.assert_frame_equal(ea, eb, check_exact=False, rtol=1e-6)


def test_prediction_scores_rows_from_the_windows_before_them(fitted, data):
    det = fitted["prediction"][0]
    s = det.score(data)
    assert s["score"].iloc[:W].isna().all()  # never predicted: nothing before them
    assert s["score"].iloc[W:].notna().all()
    assert not s["is_anomaly"].iloc[:W].any()


def test_composite_scores_every_row_of_a_stretch(fitted, data):
    s = fitted["composite"][0].score(data)
    assert s["score"].notna().all()


def test_aer_predicts_both_sides_of_each_window_and_scores_every_row(fitted, data):
    """AER (Wong et al. 2022): bidirectional layers; the H rows before each window, the window and the
    H rows after, weighted 0.25 / 0.5 / 0.25 in the loss; so even the first H rows get estimates."""
    det = fitted["aer"][0]
    assert [layer.name for layer in det.model_.layers if layer.name in ("backward", "reconstruction", "prediction")] == [
        "backward",
        "reconstruction",
        "prediction",
    ]
    assert det.model_.get_layer("encoder_0").__class__.__name__ == "Bidirectional"  # without bidirectional=True
    assert {"backward_loss", "reconstruction_loss", "prediction_loss"} <= set(det.history_)
    h = det.history_
    np.testing.assert_allclose(
        h["loss"][-1],
        0.25 * h["backward_loss"][-1] + 0.5 * h["reconstruction_loss"][-1] + 0.25 * h["prediction_loss"][-1],
        rtol=2e-2,  # Keras averages each epoch's losses over batches separately: equal up to that
    )
    s = det.score(data)
    assert s["score"].notna().all()
    # a spike is estimated by the windows after it (backward), over it (reconstruction) and before it
    spiked = data.copy()
    spiked.iloc[200, 0] += 8.0
    assert det.score(spiked)["score"].idxmax() == spiked.index[200]
    with pytest.raises(DataError, match=f"one window plus the horizon on each side \\({W + 2 * H} rows\\)"):
        det.score(data.iloc[: W + 2 * H - 1])


def test_prediction_flags_an_injected_spike_and_only_from_it_on(fitted, data):
    det = fitted["prediction"][0]
    spiked = data.copy()
    at = 300
    spiked.iloc[at, 0] += 8.0
    clean, s = det.score(data), det.score(spiked)
    assert s["is_anomaly"].iloc[at]
    assert s["score"].idxmax() == spiked.index[at]
    # a row's score comes from predictions made before it: rows before the spike are untouched
    np.testing.assert_array_equal(s["score"].iloc[:at].to_numpy(), clean["score"].iloc[:at].to_numpy())
    np.testing.assert_array_equal(s["is_anomaly"].iloc[:at].to_numpy(), clean["is_anomaly"].iloc[:at].to_numpy())
    assert not clean["is_anomaly"].iloc[at]


def test_old_model_without_kind_params_loads_as_reconstruction(fitted, data, tmp_path):
    import shutil

    det, _, path = fitted["reconstruction-stacked"]
    old = tmp_path / "old"
    shutil.copytree(path, old)
    meta = json.loads((old / "detector.json").read_text())
    for key in ("model_kind", "horizon", "prediction_weight", "reverse", "conditional"):
        del meta["params"][key]
    (old / "detector.json").write_text(json.dumps(meta))
    loaded = LSTMAutoencoderDetector.load(old)
    assert loaded.model_kind == "reconstruction" and loaded.reverse is False
    pd.testing.assert_frame_equal(loaded.score(data), det.score(data), check_exact=False, rtol=1e-6)


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(model_kind="forecast"), "model_kind must be one of"),
        (dict(model_kind="prediction", reverse=True), "reverse applies to the reconstruction decoder"),
        (dict(model_kind="prediction", horizon=0), "horizon must be an integer >= 1"),
        (dict(model_kind="prediction", horizon=2, stride=3), "must not exceed horizon"),
        (dict(model_kind="composite", prediction_weight=0), "prediction_weight must be a positive number"),
        (dict(conditional="yes"), "conditional must be true or false"),
        (dict(bidirectional=True, conditional=True), "bidirectional does not work with a conditional decoder"),
        (dict(model_kind="aer", conditional=True), "'aer' reads both ways"),
        (dict(combination="mult"), "model_kind 'reconstruction' has only one of them"),
        (dict(model_kind="prediction", combination="sum"), "model_kind 'prediction' has only one of them"),
        (dict(model_kind="aer", combination="mult", overlap="median"), "use overlap 'mean'"),
        (dict(model_kind="aer", horizon=2, stride=3, combination="mult"), "rows go without a regression error"),
        (dict(model_kind="aer", combination="max"), "combination must be one of"),
    ],
)
def test_bad_kind_params_are_refused_before_training(data, params, message):
    with pytest.raises(ConfigError, match=message):
        LSTMAutoencoderDetector(**{**TINY, **params}).fit(data)


def test_mixture_joins_the_parts_scaled_by_their_held_out_normal_ranges(fitted, data):
    """combination mult/sum (AER's): per row and sensor, the reconstruction and regression errors,
    each scaled by its [min, max] on the held-out normal rows of the fit, then joined; the ranges are
    saved with the model, and a spike still scores highest on its own row."""
    from anomaly import mixture

    for name, how in (("aer-mult", "mult"), ("composite-sum", "sum")):
        det, loaded, path = fitted[name]
        assert det.stride_ <= H  # every row has a regression estimate
        ranges = det.part_ranges_
        assert set(ranges) == {"reconstruction", "regression"}
        assert json.loads((path / "detector.json").read_text())["part_ranges"] == ranges == loaded.part_ranges_
        for low, high in ranges.values():
            assert np.all(np.asarray(low) >= 0) and np.all(np.asarray(high) > np.asarray(low))
        # the joined error of a row: mult (1 + rec)(1 + reg) - 1, sum their mean, of the scaled parts
        rec, reg = np.array([[0.0, 1.0]]), np.array([[2.0, np.nan]])
        scaled = {p: mixture.scaled(v, ranges[p]) for p, v in (("reconstruction", rec), ("regression", reg))}
        expected = (
            (1 + scaled["reconstruction"]) * (1 + np.nan_to_num(scaled["regression"])) - 1
            if how == "mult"
            else np.array([[(scaled["reconstruction"][0, 0] + scaled["regression"][0, 0]) / 2, scaled["reconstruction"][0, 1]]])
        )
        np.testing.assert_allclose(mixture.join({"reconstruction": rec, "regression": reg}, ranges, how), expected)
        # held-out normal rows join to at most the worst normal row: 3 (mult) or 1 (sum) per sensor
        assert det.normal_errors_.max() <= (3.0 if how == "mult" else 1.0) + 1e-9
        spiked = data.copy()
        spiked.iloc[200, 0] += 8.0
        assert det.score(spiked)["score"].idxmax() == spiked.index[200]


def test_prediction_needs_window_plus_horizon_rows(fitted, data):
    with pytest.raises(DataError, match="one window plus the horizon"):
        fitted["prediction"][0].score(data.iloc[: W + H - 1])
    assert len(fitted["prediction"][0].embed(data.iloc[:W])) == 1  # the encoder needs the window only


# -- CLI --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,extra,suffix",
    [
        ("prediction", ["--horizon", "2", "--bidirectional"], "parquet"),
        ("composite", ["--horizon", "2", "--reverse", "--conditional", "--prediction-weight", "0.5"], "csv"),
        ("aer", ["--horizon", "2", "--combination", "mult"], "csv"),
    ],
)
def test_cli_trains_scores_and_embeds_every_kind(tmp_path, data, kind, extra, suffix):
    csv = tmp_path / "data.csv"
    data.rename_axis("timestamp").reset_index().to_csv(csv, index=False)
    model = tmp_path / "model"
    common = ["--window", str(W), "--units", "8", "--latent", "4", "--epochs", "2", "--batch-size", "32"]
    r = run_cli("train", str(csv), "--model", str(model), "--model-kind", kind, *extra, *common, "--quiet")
    assert r.returncode == 0, r.stderr
    det = LSTMAutoencoderDetector.load(model)
    assert det.model_kind == kind and det.horizon == 2 and det.bidirectional == ("--bidirectional" in extra)
    assert len(det.history_["loss"]) == 2

    r = run_cli("score", str(csv), "--model", str(model), "--out", str(tmp_path / "scores.csv"))
    assert r.returncode == 0, r.stderr
    cli_scores = pd.read_csv(tmp_path / "scores.csv")
    api_scores = det.score(data)
    np.testing.assert_allclose(cli_scores["score"].to_numpy(), api_scores["score"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(cli_scores["is_anomaly"].to_numpy(), api_scores["is_anomaly"].to_numpy())
    unscored = int(api_scores["score"].isna().sum())  # a prediction's first window; the aer's first and last steps
    said = f"; {unscored} rows beside the start, the end or a gap that no decoder estimates have no score)"
    assert f"scored {len(data) - unscored} rows" in r.stdout and (said in r.stdout) == (unscored > 0), r.stdout

    # into a database, in two runs: the rows stored are the rows with a score, flagged as in one call
    db = tmp_path / "results.db"
    data.iloc[:250].rename_axis("timestamp").reset_index().to_csv(tmp_path / "live.csv", index=False)
    r = run_cli("score", str(tmp_path / "live.csv"), "--model", str(model), "--db", str(db), "--source", "live")
    assert r.returncode == 0, r.stderr
    data.rename_axis("timestamp").reset_index().to_csv(tmp_path / "live.csv", index=False)
    r = run_cli("score", str(tmp_path / "live.csv"), "--model", str(model), "--db", str(db), "--source", "live")
    assert r.returncode == 0, r.stderr
    from anomaly.store import open_store

    with open_store(db) as store:
        stored = store.scores("live").set_index("timestamp")
    expected = api_scores[api_scores["score"].notna()]
    assert stored.index.equals(expected.index)
    np.testing.assert_array_equal(stored["is_anomaly"].to_numpy(), expected["is_anomaly"].to_numpy())
    np.testing.assert_allclose(stored["score"].to_numpy(), expected["score"].to_numpy(), rtol=1e-6)

    out = tmp_path / f"vectors.{suffix}"
    r = run_cli("embed", str(csv), "--model", str(model), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(data) - W + 1} vectors of 4 numbers" in r.stdout
    vectors = pd.read_parquet(out) if suffix == "parquet" else pd.read_csv(out)
    api = det.embed(data)
    assert list(vectors.columns) == ["start", "end", "z0", "z1", "z2", "z3"]
    np.testing.assert_allclose(
        vectors[["z0", "z1", "z2", "z3"]].to_numpy(), api[["z0", "z1", "z2", "z3"]].to_numpy(), rtol=1e-5, atol=1e-6
    )
    assert pd.to_datetime(vectors["start"]).tolist() == api["start"].tolist()


def test_cli_refuses_a_bad_kind_option_in_one_line(tmp_path, data):
    csv = tmp_path / "data.csv"
    data.rename_axis("timestamp").reset_index().to_csv(csv, index=False)
    r = run_cli("train", str(csv), "--model", str(tmp_path / "m"), "--model-kind", "prediction", "--reverse", "--quiet")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "reverse applies to the reconstruction decoder" in r.stderr
    assert not (tmp_path / "m").exists()


# -- collections of separate sequences --------------------------------------------------------
def recordings(n: int = 24, seed: int = 0) -> list[np.ndarray]:
    """Short recordings of different lengths (6 to 12 steps) of two sensors."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        steps, phase = int(rng.integers(6, 13)), rng.uniform(0, 2 * np.pi)
        t = np.arange(steps) / 3 + phase
        out.append(np.column_stack([np.sin(t), np.cos(t)]) + 0.02 * rng.standard_normal((steps, 2)))
    return out


SEQ = dict(
    window=12,
    encoder_units=(8,),
    decoder_units=(8,),
    latent_dim=4,
    epochs=3,
    batch_size=8,
    verbose=0,
    model_kind="composite",
    horizon=1,
    reverse=True,
    conditional=True,
)


@pytest.fixture(scope="module")
def seq_fitted():
    return LSTMSequenceDetector(**SEQ).fit(recordings())


def test_sequences_train_and_score_one_frame_per_recording(seq_fitted):
    loss = seq_fitted.history_["loss"]
    assert loss[-1] < loss[0]
    seqs = recordings(5, seed=1)
    frames = seq_fitted.score(seqs)
    assert [len(f) for f in frames] == [len(s) for s in seqs]
    assert all(f["score"].notna().all() for f in frames)  # composite: every real step is estimated
    assert list(frames[0].columns) == ["score", "threshold", "is_anomaly", "error_x0", "error_x1"]
    vectors = seq_fitted.embed(seqs)
    assert list(vectors.columns) == ["sequence", "steps", "z0", "z1", "z2", "z3"]
    assert vectors["steps"].tolist() == [len(s) for s in seqs]


def test_padded_values_change_nothing(seq_fitted, monkeypatch):
    """Refit with another padding value: same training, same weights, same scores."""
    seqs = recordings()
    monkeypatch.setattr(sequences_mod, "PAD_VALUE", 7.5)
    other = LSTMSequenceDetector(**SEQ).fit(seqs)
    assert other.history_ == seq_fitted.history_
    for a, b in zip(other.model_.get_weights(), seq_fitted.model_.get_weights()):
        np.testing.assert_array_equal(a, b)
    for fa, fb in zip(other.score(seqs[:6]), seq_fitted.score(seqs[:6])):
        pd.testing.assert_frame_equal(fa, fb)


def test_a_recording_scores_the_same_alone_or_with_longer_ones(seq_fitted):
    seqs = recordings(6, seed=2)
    together = seq_fitted.score(seqs)
    for seq, frame in zip(seqs, together):
        pd.testing.assert_frame_equal(seq_fitted.score([seq])[0], frame, check_exact=False, rtol=1e-6)


def test_sequence_model_round_trip_and_flags_a_bad_recording(seq_fitted, tmp_path):
    loaded = LSTMSequenceDetector.load(seq_fitted.save(tmp_path / "seq"))
    seqs = recordings(4, seed=3)
    bad = seqs[0].copy()
    bad[3, 0] += 6.0
    for fa, fb in zip(loaded.score([bad, *seqs]), seq_fitted.score([bad, *seqs])):
        pd.testing.assert_frame_equal(fa, fb, check_exact=False, rtol=1e-6)
    first = loaded.score([bad])[0]
    assert first["is_anomaly"].iloc[3]
    assert first["score"].idxmax() == 3


def test_sequence_and_series_models_load_only_as_their_own_detector(seq_fitted, fitted, tmp_path):
    seq_dir = seq_fitted.save(tmp_path / "seq")
    with pytest.raises(ModelError, match="a model fitted on sequences: load it in Python with LSTMSequenceDetector.load"):
        LSTMAutoencoderDetector.load(seq_dir)
    with pytest.raises(ModelError, match="a sequence model has no ONNX export; run it with TensorFlow"):
        LSTMSequenceDetector.load(seq_dir, engine="onnx")  # it said "add one with 'anomaly export-onnx'", which cannot
    series_dir = fitted["prediction"][0].save(tmp_path / "series", onnx=False)
    with pytest.raises(ModelError, match="a model fitted on series: load it in Python with LSTMAutoencoderDetector.load"):
        LSTMSequenceDetector.load(series_dir)


def test_sequence_detector_refuses_aer():
    with pytest.raises(ConfigError, match="'aer' predicts rows before each window"):
        LSTMSequenceDetector(**{**SEQ, "model_kind": "aer", "conditional": False}).fit(recordings())


def test_sequence_detector_takes_only_the_shared_hyperparameters():
    """The series' own settings (stride, flagging, events, context) are not the sequence detector's."""
    names = set(LSTMSequenceDetector.param_names())
    assert names < set(LSTMAutoencoderDetector.param_names())
    assert not names & {"stride", "local_rule", "smoothing", "event_padding", "context_columns", "overlap"}
    with pytest.raises(TypeError):
        LSTMSequenceDetector(smoothing=20)


def test_sequence_scores_are_compared_with_thresholds_of_the_same_scores(seq_fitted):
    """The held-out normal scores and a new recording's scores are the same quantity (no smoothing on
    one side only): scoring the held-out recordings again gives back the fitted normal scores."""
    seqs = recordings()
    held = seqs[len(seqs) - round(len(seqs) * seq_fitted.validation_fraction) :]
    scores = np.concatenate([f["score"].to_numpy() for f in seq_fitted.score(held)])
    np.testing.assert_allclose(np.sort(scores[np.isfinite(scores)]), seq_fitted.normal_scores_, rtol=1e-5)


@pytest.mark.parametrize(
    "seqs,message",
    [
        ([np.ones((20, 2))], "sequence 0: 20 steps; this model takes 3 to 13"),
        ([np.ones((6, 3))], "sequence 0: 3 column"),
        ([pd.DataFrame({"x0": np.ones(6), "y": np.ones(6)})], "sequence 0: lacks column"),
        ([np.array([[0.0, 1.0], [np.nan, 1.0], [0.0, 1.0]])], "sequence 0 row 1 column 'x0': missing"),
        ([], "non-empty list of sequences"),
    ],
)
def test_bad_sequences_are_refused_with_one_line(seq_fitted, seqs, message):
    with pytest.raises(DataError, match=message):
        seq_fitted.score(seqs)


def test_fixed_threshold_incremental_scoring_refuses_kinds_it_cannot_reproduce(fitted, data):
    from anomaly.incremental import score_rows

    with pytest.raises(ConfigError, match="fixed threshold supports reconstruction models only, not model_kind 'prediction'"):
        score_rows(fitted["prediction"][0], data, np.ones(len(data), dtype=bool))


def test_prediction_on_sequences_scores_the_last_horizon_steps():
    det = LSTMSequenceDetector(
        **{**SEQ, "model_kind": "prediction", "horizon": 2, "reverse": False, "conditional": False, "epochs": 2}
    ).fit(recordings())
    seqs = recordings(3, seed=4)
    for seq, frame in zip(seqs, det.score(seqs)):
        assert frame["score"].iloc[:-2].isna().all() and frame["score"].iloc[-2:].notna().all()
        assert len(frame) == len(seq)


def test_embed_refuses_an_unknown_output_format_before_any_work(tmp_path):
    proc = run_cli("embed", tmp_path / "missing.csv", "--model", tmp_path / "none", "--out", tmp_path / "v.txt")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "v.txt: output must end in .csv or .parquet" in proc.stderr
    assert not (tmp_path / "v.txt").exists()


def test_a_model_whose_params_name_another_kind_is_refused(fitted, tmp_path):
    import shutil

    from anomaly.errors import ModelError

    copy = tmp_path / "edited"
    shutil.copytree(fitted["composite"][2], copy)
    meta = json.loads((copy / "detector.json").read_text())
    meta["params"].update(model_kind="prediction", reverse=False)
    (copy / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"do not match the metadata \(input \(None, 8, 2\), output \(None, 2, 2\)\)"):
        LSTMAutoencoderDetector.load(copy)

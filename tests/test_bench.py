"""The benchmark runner on tiny generated datasets in both layouts (tiny model, two series each)."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from anomaly.errors import ConfigError, DataError
from anomaly.research.bench import METHODS, aggregate, aggregation_factor, discover, expand, load_split, run_bench

TINY = dict(window=8, encoder_units=(4,), decoder_units=(4,), latent_dim=2, epochs=1, batch_size=64, stride=2)
START = pd.Timestamp("2024-01-01")


def _signal(n: int, seed: int, spike: tuple[int, int] | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) * 2 * np.pi / 24) + 0.05 * rng.standard_normal(n)
    if spike:
        x[spike[0] : spike[1]] += 6.0
    return x


@pytest.fixture(scope="module")
def nab_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nab")
    (root / "cat").mkdir()
    windows = {}
    for i, name in enumerate(["a.csv", "b.csv"]):
        idx = pd.date_range(START, periods=400, freq="5min")
        pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d %H:%M:%S"), "value": _signal(400, i, (300, 306))}).to_csv(
            root / "cat" / name, index=False
        )
        windows[f"cat/{name}"] = [[str(idx[296]), str(idx[310])]]
    (root / "combined_windows.json").write_text(json.dumps(windows))
    return root


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("split")
    labels = {}
    for i, name in enumerate(["s1", "s2"]):
        idx = pd.date_range(START, periods=600, freq="min")
        x = _signal(600, 10 + i, (450, 456))
        frame = pd.DataFrame({"timestamp": idx, "telemetry": x, "cmd_1": (np.arange(600) % 50 == 0).astype(float)})
        frame.iloc[:300].to_parquet(root / f"{name}.train.parquet", index=False)
        frame.iloc[300:].to_parquet(root / f"{name}.test.parquet", index=False)
        labels[name] = [[str(idx[445]), str(idx[460])]]
    labels["s2"].append([str(idx[100]), str(idx[110])])  # inside training: not scored in train-test
    (root / "labels.json").write_text(json.dumps(labels))
    return root


def test_discover_both_layouts_and_glob(nab_dir, split_dir):
    assert [r.name for r in discover(nab_dir)] == ["cat/a.csv", "cat/b.csv"]
    assert [r.name for r in discover(nab_dir / "cat")] == ["cat/a.csv", "cat/b.csv"]  # windows file in the parent
    assert [r.name for r in discover(split_dir, "*2")] == ["s2"]
    with pytest.raises(DataError, match="no series found matching 'zzz'"):
        discover(split_dir, "zzz")


def test_discover_warns_of_series_without_labels(nab_dir, split_dir, tmp_path, caplog):
    """A CSV NAB's windows file does not list was skipped, and a split series missing from labels.json
    scored as having no anomaly, both without a word."""
    nab, split = tmp_path / "nab", tmp_path / "split"
    shutil.copytree(nab_dir, nab)
    shutil.copytree(split_dir, split)
    shutil.copy(nab / "cat" / "a.csv", nab / "cat" / "extra.csv")
    for part in ("train", "test"):
        shutil.copy(split / f"s1.{part}.parquet", split / f"s9.{part}.parquet")
    with caplog.at_level(logging.WARNING, logger="anomaly"):
        assert [r.name for r in discover(nab)] == ["cat/a.csv", "cat/b.csv"]
        assert [(r.name, r.labels) for r in discover(split, "s9")] == [("s9", [])]
    assert f"{nab}: skipping 1 CSV file(s) not in combined_windows.json: cat/extra.csv" in caplog.text
    assert f"{split}: series 's9' has no entry in labels.json; scored as having no anomaly" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anomaly"):  # filtered out by --series: not a word of them
        assert [r.name for r in discover(nab, "cat/a*")] == ["cat/a.csv"]
        assert [r.name for r in discover(split, "s2")] == ["s2"]
    assert caplog.text == ""


def test_protocols_split_rows_and_keep_labels_of_the_scored_period(nab_dir, split_dir):
    ref = discover(split_dir, "s2")[0]
    fit, scored, labels = load_split(ref, "train-test")
    assert list(fit.columns) == ["telemetry"]  # cmd_* are context flags, not scored sensors
    assert (len(fit), len(scored), len(labels)) == (300, 300, 1)
    fit, scored, labels = load_split(ref, "whole")
    assert len(fit) == len(scored) == 600 and len(labels) == 2
    fit, scored, labels = load_split(ref, "probation")
    assert (len(fit), len(scored), len(labels)) == (90, 510, 2)  # rows 90.. hold both windows
    with pytest.raises(ConfigError, match="train-test protocol needs a training split"):
        load_split(discover(nab_dir)[0], "train-test")


@pytest.fixture(scope="module")
def split_result(split_dir):
    # Unsmoothed scores: on 300 scored rows an EWMA of span 20 spreads a 6-row spike below mean + 4 std.
    return run_bench(
        split_dir,
        None,
        None,
        METHODS,
        {**TINY, "local_rule": "ksigma", "local_k": 4.0, "smoothing": 0, "prune": 0.0, "event_padding": 2, "root_score": True},
    )


def test_result_structure_and_pooling_arithmetic(split_result):
    r = split_result
    assert r["protocol"] == "train-test" and [s["series"] for s in r["series"]] == ["s1", "s2"]
    for s in r["series"]:
        assert set(s["methods"]) == set(METHODS) and s["labels"] == 1
        for m in s["methods"].values():
            assert {"overlap_segment", "pointwise", "point_adjusted_optimistic", "fit_s", "score_s", "events"} <= set(m)
            seg = m["overlap_segment"]
            assert seg["tp"] + seg["fn"] == 1
    for method, pooled in r["pooled"].items():
        for metric in ("overlap_segment", "pointwise", "point_adjusted_optimistic"):
            for k in ("tp", "fp", "fn"):
                assert pooled[metric][k] == sum(s["methods"][method][metric][k] for s in r["series"])
            p = pooled[metric]
            expected = 2 * p["tp"] / (2 * p["tp"] + p["fp"] + p["fn"]) if p["tp"] else 0.0
            assert p["f1"] == pytest.approx(expected)
    assert r["detector_params"]["window"] == 8


def test_a_six_sigma_spike_is_found_by_the_baselines(split_result):
    # The spike is obvious; the cheap baselines (no training noise) must find both.
    for method in ("pca", "zscore"):
        assert split_result["pooled"][method]["overlap_segment"]["tp"] == 2


def test_cli_bench_nab_layout_writes_json(nab_dir, tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli(
        "bench", nab_dir, "--series", "cat/*", "--json", out, "--window", "8", "--epochs", "1",
        "--local-rule", "ksigma", "--quiet", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pooled (TP/FP/FN summed over series" in proc.stdout and "optimistic" in proc.stdout
    result = json.loads(out.read_text())
    assert result["protocol"] == "whole" and len(result["series"]) == 2
    assert result["detector_params"]["local_rule"] == "ksigma"
    for method, pooled in result["pooled"].items():  # AUC-PR: per series, pooled as their mean
        areas = [s["methods"][method]["auc_pr"] for s in result["series"]]
        assert all(a is None or 0 < a <= 1 for a in areas), areas
        known = [a for a in areas if a is not None]
        assert pooled["auc_pr_mean"] == (pytest.approx(np.mean(known)) if known else None)
    assert "AUC-PR" in proc.stdout


def test_cli_bench_bad_folder_is_one_line_error(tmp_path):
    proc = run_cli("bench", tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "combined_windows.json" in proc.stderr


def test_cli_bench_refuses_bad_outputs_before_any_fit_and_names_a_failing_series(nab_dir, tmp_path):
    """A --json in a missing folder or a --cache that is a file failed as an "unexpected" error after
    every series was fitted; a series too short to fit failed without its name."""
    stray = tmp_path / "file"
    stray.write_text("")
    for option, value, said in (
        (
            "--json",
            tmp_path / "no" / "r.json",
            f"{tmp_path / 'no' / 'r.json'}: --json: directory {tmp_path / 'no'} does not exist",
        ),
        ("--cache", stray, f"{stray}: --cache must be a folder"),
        ("--max-rows", "-5", "--max-rows must be >= 0 (0: off), not -5"),
    ):
        proc = run_cli("bench", nab_dir, option, value, "--quiet", timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {said}"), proc.stderr
        assert "[1/2]" not in proc.stderr
    short = tmp_path / "short"
    shutil.copytree(nab_dir, short)
    pd.read_csv(short / "cat" / "b.csv").iloc[:40].to_csv(short / "cat" / "b.csv", index=False)
    proc = run_cli("bench", short, "--series", "cat/b.csv", "--epochs", "1", "--methods", "lstm", "--quiet", timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: cat/b.csv: too few normal windows"), proc.stderr


def test_detector_post_processing_matches_the_pure_module(split_dir, tmp_path):
    from anomaly import postprocess
    from anomaly.detector import LSTMAutoencoderDetector

    fit, scored, _ = load_split(discover(split_dir, "s1")[0], "train-test")
    post = dict(local_rule="ksigma", local_k=3.0, local_cap=2.0, prune=0.1, event_padding=3, smoothing=4, root_score=True)
    det = LSTMAutoencoderDetector(**{**TINY, **post}, verbose=0).fit(fit)
    out = det.score(scored)
    raw = out[[c for c in out.columns if c.startswith("error_")]].to_numpy().mean(axis=1)
    cap = postprocess.normal_cap(det.normal_scores_, 2.0, root=True)
    assert (det.stride_, det.smoothing_) == (2, 6)  # the span grows with the stride: 4 x sqrt(2), rounded
    smooth, limit, flags = postprocess.flag_scores(raw, rule="ksigma", k=3.0, cap=cap, prune=0.1, pad=3, smoothing=6, root=True)
    assert np.array_equal(out["is_anomaly"].to_numpy(), flags)
    np.testing.assert_allclose(out["threshold"].to_numpy(), limit)
    events = det.events(out)
    runs = [(s, e) for s, e in zip(events["start"], events["end"])]
    expected = [(scored.index[s], scored.index[e]) for s, e in postprocess.flagged_runs(flags)]
    assert runs == expected and len(runs) >= 1
    det.save(tmp_path / "m")
    again = LSTMAutoencoderDetector.load(tmp_path / "m")
    assert {k: again.get_params()[k] for k in post} == post
    assert np.array_equal(again.score(scored)["is_anomaly"].to_numpy(), flags)


def test_bench_fits_the_detector_defaults_with_overrides():
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.research.bench import make_detector

    defaults = LSTMAutoencoderDetector().get_params()
    assert make_detector().get_params() == {**defaults, "verbose": 0}
    assert make_detector({"window": 16, "local_k": 5.0}).get_params() == {**defaults, "verbose": 0, "window": 16, "local_k": 5.0}
    with pytest.raises(ConfigError, match="no parameter"):
        make_detector({"nope": 1})
    with pytest.raises(ConfigError, match="^timezone must be an IANA time zone name"):
        make_detector({"timezone": "Mars/Base"})  # checked before any method runs, the baselines' too


def test_auto_stride_grows_on_long_normal_periods_and_stays_under_a_prediction_horizon():
    from anomaly.detector import LSTMAutoencoderDetector

    det = LSTMAutoencoderDetector()  # window 32
    assert [det.resolve_stride(n) for n in (100, 2500, 2501, 10_000, 50_000)] == [1, 1, 2, 4, 8]
    assert LSTMAutoencoderDetector(model_kind="prediction", horizon=3).resolve_stride(50_000) == 3
    assert LSTMAutoencoderDetector(stride=5).resolve_stride(50_000) == 5


def test_context_flags_feed_the_lstm_only(split_dir, tmp_path):
    from anomaly.research.bench import run_series

    ref = discover(split_dir, "s1")[0]
    fit, _, _ = load_split(ref, "train-test", context=True)
    assert list(fit.columns) == ["telemetry", "cmd_1"]
    params = {**TINY, "smoothing": 0, "event_padding": 2}
    with_ctx = run_series(ref, "train-test", ("lstm", "pca"), params, tmp_path / "a", context=True)
    without = run_series(ref, "train-test", ("lstm", "pca"), params, tmp_path / "b", context=False)
    assert with_ctx["context_columns"] == ["cmd_1"] and without["context_columns"] == []
    a = np.load(tmp_path / "a" / "train-test" / "s1.npz")
    b = np.load(tmp_path / "b" / "train-test" / "s1.npz")
    np.testing.assert_array_equal(a["pca"], b["pca"])  # the baselines never see the flags
    assert a["lstm"].shape == b["lstm"].shape and not np.allclose(a["lstm"], b["lstm"])  # the LSTM reads them


def test_cli_bench_passes_model_options_overlap_reverse_context_and_cap(monkeypatch, split_dir):
    import anomaly.research.bench
    from anomaly.cli import build_parser

    seen = {}

    def fake_run_bench(root, protocol, pattern, methods, params, cache, progress, max_rows, context):
        seen.update(params=params, context=context)
        return {"dataset": str(root), "protocol": "train-test", "series": [], "pooled": {}}

    monkeypatch.setattr(anomaly.research.bench, "run_bench", fake_run_bench)
    args = build_parser().parse_args(
        ["bench", str(split_dir), "--overlap", "median", "--reverse", "--context", "--local-cap", "0", "--quiet"]
    )
    assert args.func(args) == 0
    assert seen == {"params": {"overlap": "median", "reverse": True, "local_cap": 0.0}, "context": True}
    # every model option of `anomaly train` overrides the defaults the same way
    args = build_parser().parse_args(
        ["bench", str(split_dir), "--dropout", "0.2", "--latent", "8", "--units", "16,8", "--stride", "auto", "--quiet"]
    )
    args.func(args)
    assert seen["params"] == {"dropout": 0.2, "latent_dim": 8, "encoder_units": (16, 8), "stride": "auto"}
    args = build_parser().parse_args(["bench", str(split_dir), "--no-context", "--quiet"])
    args.func(args)
    assert seen == {"params": {}, "context": False}


def test_aggregation_blocks_rows_and_keeps_enough_to_fit():
    assert aggregation_factor(1000, 0) == 1  # off
    assert aggregation_factor(1000, 100) == 10
    assert aggregation_factor(1001, 100) == 11  # at most max_rows blocks
    # A short training split caps the factor: 300 rows keep 8 windows of 8 rows -> at most 4 per block.
    assert aggregation_factor(3000, 100, n_fit=300, window=8) == 4
    assert aggregation_factor(3000, 100, n_fit=10, window=8) == 1
    idx = pd.date_range(START, periods=7, freq="min")
    frame = pd.DataFrame({"x": np.arange(7.0)}, index=idx)
    blocks = aggregate(frame, 3)
    assert blocks["x"].tolist() == [1.0, 4.0, 6.0] and list(blocks.index) == [idx[0], idx[3], idx[6]]
    assert expand(np.array([False, True, False]), 3, 7).tolist() == [False, False, False, True, True, True, False]


def test_max_rows_on_a_short_training_split_still_fits(split_dir):
    # 300 training rows against max_rows=20: a factor of 15 would leave 20 rows, too few windows of 8.
    result = run_bench(split_dir, "train-test", "s1", ("lstm", "zscore"), TINY, max_rows=20)
    series = result["series"][0]
    assert series["aggregation"] == 4 and series["rows_scored"] == 300
    assert series["methods"]["lstm"]["overlap_segment"]["tp"] + series["methods"]["lstm"]["overlap_segment"]["fn"] == 1


def test_baselines_get_the_cap_from_their_own_held_out_scores(split_dir):
    from anomaly import flagging, postprocess
    from anomaly.research.baselines import PCABaseline
    from anomaly.research.bench import baseline_normal_raw, baseline_normal_scores, flags_for

    fit, scored, _ = load_split(discover(split_dir, "s1")[0], "train-test")
    model = PCABaseline(window=8).fit(fit)
    normal_raw = baseline_normal_raw(model, fit, validation_fraction=0.2)
    np.testing.assert_array_equal(normal_raw, model.score(fit.iloc[240:])["score"].to_numpy())  # the last 20% of 300 rows
    normal = baseline_normal_scores(normal_raw, smoothing=4)
    expected = postprocess.ewma(normal_raw, 4)
    np.testing.assert_allclose(normal, expected[np.isfinite(expected)])
    post = {
        "rule": "ksigma",
        "smoothing": 4,
        "window_frac": 0.33,
        "k": 4.0,
        "prune": 0.0,
        "pad": 0,
        "merge_gap": 0,
        "min_length": 1,
        "root": True,
    }
    score = model.score(scored)["score"].to_numpy()
    tiny_cap = {**post, "cap": 1e-9}  # below every score: every scored row is flagged
    assert flags_for(score, tiny_cap, normal=normal)[np.isfinite(score)].all()
    assert np.array_equal(flags_for(score, {**post, "cap": 0.0}, normal=normal), flags_for(score, {**post, "cap": 0.0}))
    # the causal rule: seeded and capped by the same held-out scores, in time order
    trailing = {**post, "rule": "trailing", "k": 7.0, "pad": 5, "cap": 3.0, "trailing": 50}
    rule = flagging.make_rule(normal_raw, k=7.0, trailing=50, cap_factor=3.0, prune=0.0, pad=5, smoothing=4, root=True)
    expected = flagging.flag(score, rule, flagging.seed(normal_raw, rule)).flags
    assert np.array_equal(flags_for(score, trailing, normal_raw=normal_raw), expected)
    assert rule.cap == pytest.approx(3.0 * np.sqrt(np.nanmax(normal_raw)), rel=0.5)  # near 3x the largest RMS


def test_bench_figures_equal_train_then_evaluate_through_the_cli(tmp_path):
    """`anomaly bench` measures what a user gets: the same defaults through `anomaly train` + `evaluate`."""
    from anomaly.research.bench import run_series

    idx = pd.date_range(START, periods=900, freq="min")
    x = _signal(900, 5, (700, 706))
    x[830:890] += 2.0  # and a long shift (beyond the spike's padding of 100 rows)
    frame = pd.DataFrame({"timestamp": idx, "value": x})
    frame.iloc[:500].to_parquet(tmp_path / "m.train.parquet", index=False)
    frame.iloc[500:].to_parquet(tmp_path / "m.test.parquet", index=False)
    labels = {"m": [[str(idx[695]), str(idx[712])], [str(idx[830]), str(idx[889])], [str(idx[550]), str(idx[560])]]}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    small = dict(window=8, encoder_units=(4,), decoder_units=(4,), latent_dim=2, epochs=2)
    bench = run_series(discover(tmp_path)[0], "train-test", ("lstm",), small)["methods"]["lstm"]

    model = tmp_path / "model"
    train = run_cli(
        "train", tmp_path / "m.train.parquet", "--model", model, "--window", "8", "--units", "4", "--latent", "2",
        "--epochs", "2", "--quiet", timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    proc = run_cli(
        "evaluate", tmp_path / "m.test.parquet", "--model", model, "--labels", tmp_path / "labels.json",
        "--key", "m", "--json", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["events"] == bench["events"] >= 2
    for metric in ("overlap_segment", "pointwise"):
        assert got[metric] == bench[metric], metric


def test_bench_offers_every_model_kind_of_the_detector():
    """The bench's --model-kind choices come from the detector's parameter table, not a copy of it."""
    from anomaly.base import MODEL_KINDS

    result = run_cli("bench", "--help")
    assert result.returncode == 0
    assert "{" + ",".join(MODEL_KINDS) + "}" in result.stdout.replace("\n", "").replace(" ", "")
    assert "aer" in MODEL_KINDS


def test_baselines_read_the_series_less_the_detectors_seasonal_profiles():
    """A fair table: the baselines see what the LSTM sees, the profiles taken off (none with seasonal off)."""
    from anomaly import seasonal
    from anomaly.research.bench import baseline_inputs, make_detector

    index = pd.date_range("2024-01-01", periods=10 * 144, freq="10min", name="timestamp")
    hours = index.hour + index.minute / 60
    noise = np.random.default_rng(0).normal(0, 0.05, (len(index), 2))
    frame = pd.DataFrame({"day": ((hours >= 9) & (hours < 17)) + noise[:, 0], "ctx_flag": noise[:, 1]}, index=index)
    fit, scored = frame.iloc[:1000], frame.iloc[1000:]
    detector = make_detector()
    fit_b, scored_b = baseline_inputs(fit, scored, ("ctx_flag",), detector)
    profile = seasonal.fit_profiles(fit[["day"]], "auto", pd.Timedelta("10min"))["day"]
    assert list(fit_b.columns) == ["day"]
    np.testing.assert_allclose(fit_b["day"], fit["day"] - profile.at(fit.index))
    np.testing.assert_allclose(scored_b["day"], scored["day"] - profile.at(scored.index))
    fit_r, scored_r = baseline_inputs(fit, scored, ("ctx_flag",), make_detector({"seasonal": "off"}))
    pd.testing.assert_frame_equal(fit_r, fit[["day"]])
    pd.testing.assert_frame_equal(scored_r, scored[["day"]])
    # the detector itself learns the very same profile from these rows
    assert (
        make_detector(dict(epochs=1, window=8, encoder_units=(4,), decoder_units=(4,), latent_dim=2))
        .fit(fit[["day"]])
        .seasonal_["day"]
        .levels.tolist()
        == profile.levels.tolist()
    )


def test_every_method_is_smoothed_over_the_span_of_the_detectors_stride():
    from anomaly.research.bench import make_detector, post_params

    det = make_detector()  # smoothing 30, window 32
    assert [post_params(det, n)["smoothing"] for n in (2000, 5000, 10_000, 50_000)] == [30, 42, 60, 85]
    assert post_params(det)["smoothing"] == 30  # no fit length: stride 1

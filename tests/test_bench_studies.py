"""The study scripts of ``bench/`` on a tiny bench cache: each gives the bench's own figures for the defaults.

They choose the product's defaults (docs/benchmarks.md), so a script that drifts from the bench (another
span, another rule, a key it no longer reads) would mislead the next study: here each one's row for the
defaults must equal what ``anomaly bench`` measured on the same cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomaly.research.bench import make_detector, post_params, run_bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/ is scripts, not a package
import benchmark_table  # noqa: E402
import ensemble_study  # noqa: E402
import margin_study  # noqa: E402
import padding_study  # noqa: E402
import second_reading_study  # noqa: E402
import seed_ensemble_study  # noqa: E402
import span_study  # noqa: E402
import trail_variants_study  # noqa: E402
import trailing_study  # noqa: E402

# A tiny model; every flagging setting stays the product's default, as the studies assume.
TINY = dict(window=8, encoder_units=(4,), decoder_units=(4,), latent_dim=2, epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """Two NAB-layout series with a spike and a level shift, benched with ``--cache``: (root, cache spec, pooled LSTM)."""
    root = tmp_path_factory.mktemp("data") / "nab"
    (root / "cat").mkdir(parents=True)
    windows = {}
    for i, name in enumerate(["a.csv", "b.csv"]):
        rng = np.random.default_rng(i)
        idx = pd.date_range("2024-01-01", periods=900, freq="5min")
        x = np.sin(np.arange(900) * 2 * np.pi / 48) + 0.05 * rng.standard_normal(900)
        x[150:154] += 5.0  # a spike
        x[280:340] += 1.5  # a level shift (both before the held-out last fifth, whose scores seed the rule)
        x[560:590] += 0.3  # a faint bump: the defaults miss it, a looser rule would not
        pd.DataFrame({"timestamp": idx.strftime("%Y-%m-%d %H:%M:%S"), "value": x}).to_csv(root / "cat" / name, index=False)
        windows[f"cat/{name}"] = [[str(idx[145]), str(idx[160])], [str(idx[275]), str(idx[345])], [str(idx[555]), str(idx[595])]]
    (root / "combined_windows.json").write_text(json.dumps(windows))
    cache = tmp_path_factory.mktemp("cache")
    result = run_bench(root, "whole", "cat/*", detector_params=TINY, cache_dir=cache)
    seg = result["pooled"]["lstm"]["overlap_segment"]
    assert seg["tp"] >= 1 and seg["fn"] >= 1  # found and missed windows: another rule would change the counts
    return root, f"{cache}/whole::cat*", seg


def printed(capsys, main, argv: list[str]) -> str:
    main(argv)
    return capsys.readouterr().out


def test_benchmark_table_reproduces_the_bench(cached, capsys):
    _, spec, seg = cached
    post = json.dumps(post_params(make_detector()))
    out = printed(capsys, benchmark_table.main, [post, f"g={spec}", "--benched-span"])
    assert f"| g | 2 | **{seg['f1']:.3f}**" in out and f"| {seg['tp']}/{seg['fp']}/{seg['fn']} |" in out


def test_span_study_at_the_default_span_reproduces_the_bench(cached, capsys):
    root, spec, seg = cached
    grid = json.dumps({"base": [make_detector().smoothing, 5], "power": [0.5], "max_span": [1000]})
    group = f"whole={root.name}={spec}"
    out = printed(capsys, span_study.main, [f"--grid={grid}", str(root.parent), f"g={group}", f"h={group}"])
    default = next(line for line in out.splitlines() if '"base": 30,' in line)
    assert f"g {seg['f1']:.3f} h {seg['f1']:.3f}" in default
    assert "leave out g: pick" in out and "leave-one-group-out mean F1" in out


def test_second_reading_study_without_a_second_reading_reproduces_the_bench(cached, capsys):
    _, spec, seg = cached
    grid = json.dumps({"span2": [None, 3], "k2": [20], "grow": [False], "cap2": [3.0]})
    out = printed(capsys, second_reading_study.main, [f"--grid={grid}", f"g={spec}"])
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 2 and "needs two groups or more" in out  # none, and one second reading; one group
    assert f"g {seg['f1']:.3f} [({seg['tp']}, {seg['fp']}, {seg['fn']})]" in rows[0] and '"span2": null' in rows[0]


def counts(seg: dict) -> str:
    return f"{seg['f1']:.3f} [({seg['tp']}, {seg['fp']}, {seg['fn']})]"


def test_trailing_study_at_the_defaults_reproduces_the_bench(cached, capsys):
    _, spec, seg = cached
    grid = json.dumps({"k": [6.0, 1.0], "trailing": [3000], "prune": [0.0]})  # k 1 flags far more: another F1
    out = printed(capsys, trailing_study.main, [f"g={spec}", f"h={spec}", f"--grid={grid}"])
    rows = {
        line.split("{")[1].split(",")[0]: line
        for line in out.splitlines()
        if line.startswith("   0.") or line.startswith("   1.")
    }
    assert f"{seg['f1']:.3f} {seg['f1']:.3f}  point-wise" in rows['"k": 6.0'] and '"pad": 100' in rows['"k": 6.0']
    assert f"{seg['f1']:.3f} {seg['f1']:.3f}  point-wise" not in rows['"k": 1.0']


def test_padding_ensemble_and_trail_variant_studies_at_the_defaults_reproduce_the_bench(cached, capsys):
    _, spec, seg = cached
    out = printed(capsys, padding_study.main, [f"g={spec}", "--pads=100"])
    assert f"| 100 | g | {seg['f1']:.3f} |" in out
    out = printed(capsys, ensemble_study.main, [f"g={spec}"])
    assert next(line for line in out.splitlines() if line.startswith("g ")).split()[1:3] == [
        f"{seg['f1']:.3f}",
        f"{seg['tp']}/{seg['fp']}/{seg['fn']}",
    ]
    out = printed(capsys, trail_variants_study.main, [f"g={spec}", f"h={spec}"])
    assert f"g {counts(seg)}" in next(line for line in out.splitlines() if line.startswith("exclude"))


def test_seed_ensemble_of_one_cache_reproduces_the_bench_and_averages_scores(cached, capsys):
    _, spec, seg = cached
    out = printed(capsys, seed_ensemble_study.main, [f"g={spec}+{spec}"])
    # two copies of one fit: their mean is that fit, so single and ensemble both give the bench's counts
    f1, tpfpfn = f"{seg['f1']:.3f}", f"{seg['tp']}/{seg['fp']}/{seg['fn']}"
    assert out.split() == ["g", "single", f1, f"({tpfpfn}", "·", f"{tpfpfn})", "|", "all", "2", f1, f"({tpfpfn})"]
    run = seed_ensemble_study.load(spec)
    doubled = [{**s, "lstm": 3 * s["lstm"], "lstm_normal_raw": 3 * s["lstm_normal_raw"]} for s in run]
    merged = seed_ensemble_study.ensemble([run, doubled])
    assert all(
        np.allclose(m["lstm"], 2 * s["lstm"]) and np.allclose(m["lstm_normal_raw"], 2 * s["lstm_normal_raw"])
        for m, s in zip(merged, run)
    )
    with pytest.raises(ValueError, match="caches hold other series"):
        seed_ensemble_study.ensemble([run, run[::-1]])


def test_margin_study_counts_the_bench_and_a_missed_window_peaks_under_its_threshold(cached, capsys):
    _, spec, seg = cached
    out = printed(capsys, margin_study.main, [spec])
    assert f"found {seg['tp']}, missed {seg['fn']} (" in out and out.rstrip().endswith(f"false alarms {seg['fp']}")
    windows = [w for s in margin_study.load(spec) for w in margin_study.margins(s)[0]]
    assert sum(w["found"] for w in windows) == seg["tp"] and len(windows) == seg["tp"] + seg["fn"]
    # a row over its threshold is flagged, so a window never reached the threshold exactly when it was missed
    # (a found one may peak under it when padding from an earlier run covers it)
    assert all(w["peak"] < 1 for w in windows if not w["found"]) and any(w["peak"] >= 1 for w in windows)
    faint = [w["peak"] for w in windows if w["start"] == pd.Timestamp("2024-01-02 22:15")]  # idx[555]: the faint bump
    assert faint and all(0 < p < 1 for p in faint)

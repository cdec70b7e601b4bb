"""Speed and memory of training and scoring, beside the classic-tutorial baseline (``make bench``).

For generated series of each size (default 1e4, 1e5, 1e6 points) and sensor count (1 and 8) it
measures in one run:

- training throughput (windows/s) of our pipeline (``WindowBatches`` -> ``model.fit``, tanh LSTMs)
  and of the naive baseline of the classic tutorial (all windows materialised with numpy, ReLU
  LSTMs, ``TimeDistributed(Dense)``, ``model.fit`` with the default batch of 32); same window, units
  and latent size. Epochs of the two alternate; the first (tracing) is excluded, the fastest kept;
- scoring throughput (points/s) of ``LSTMAutoencoderDetector.score`` with each engine (TensorFlow,
  and ONNX Runtime on the model's ONNX export) and of the baseline (``model.predict`` with its
  default batch on all windows + per-window error, the faster of two runs: our ratios are
  conservative), each in a fresh subprocess that also reports its peak resident memory (VmHWM),
  plus one scoring run per engine on a long univariate series (default 1e7 points), and one with a
  model trained and saved with the defaults, loaded as ``anomaly score`` loads it (engine ``auto``:
  its ONNX export) — the memory a user gets (target: under 1 GiB);
- achieved GFLOP/s of our scoring (LSTM and Dense multiply-adds, 2 FLOPs each) against the
  machine's float32 matrix-multiply GFLOP/s (2048x2048, numpy and TensorFlow) measured in the same run;
- how scoring time grows from the second-largest to the largest size;
- the start-up cost of ``anomaly score`` on a small incremental batch (200 rows), with each engine.

Prints one table and writes JSON (``bench/results/perf.json``). ``--quick`` runs small sizes only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FIT_POINTS = 3000  # points the scoring model is fitted on (its weights do not change the speed)


# -- data and models --------------------------------------------------------------------------
def make_values(n: int, n_sensors: int, seed: int = 0) -> np.ndarray:
    """``n`` points of ``n_sensors`` noisy sines of different periods (float64)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    out = np.empty((n, n_sensors))
    for i in range(n_sensors):
        out[:, i] = np.sin(2 * np.pi * t / (50 + 13 * i)) + 0.1 * rng.standard_normal(n)
    return out


def make_frame(n: int, n_sensors: int):
    import pandas as pd

    index = pd.date_range("2020-01-01", periods=n, freq="1s")
    return pd.DataFrame(make_values(n, n_sensors), index=index, columns=[f"s{i}" for i in range(n_sensors)])


def naive_windows(values: np.ndarray, window: int) -> np.ndarray:
    """The classic tutorial's ``create_dataset``: a Python loop appending every window, then np.array."""
    xs = []
    for i in range(len(values) - window + 1):
        xs.append(values[i : i + window])
    return np.array(xs, dtype=np.float32)


def naive_model(window: int, n_sensors: int, units: int, latent: int):
    """The classic tutorial's model: ReLU LSTMs, TimeDistributed(Dense); our layer sizes."""
    from anomaly.tfkeras import keras

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(window, n_sensors)),
            L.LSTM(units, activation="relu"),
            L.Dense(latent),
            L.RepeatVector(window),
            L.LSTM(units, activation="relu", return_sequences=True),
            L.TimeDistributed(L.Dense(n_sensors)),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def flops_per_window(window: int, n_sensors: int, units: int, latent: int) -> int:
    """FLOPs (2 per multiply-add) of one forward pass: LSTM 4*(in+units)*units per step, plus Dense."""
    macs = window * 4 * (n_sensors + units) * units  # encoder LSTM
    macs += units * latent  # latent Dense
    macs += window * 4 * (latent + units) * units  # decoder LSTM (its input is the repeated latent vector)
    macs += window * units * n_sensors  # reconstruction Dense at every step
    return 2 * macs


# -- measurements -----------------------------------------------------------------------------
def matmul_gflops(size: int = 2048, repeats: int = 5) -> dict:
    """Best-of-``repeats`` float32 matrix-multiply GFLOP/s with numpy and with TensorFlow."""
    from anomaly.tfkeras import tf

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = a.T.copy()
    flops = 2 * size**3

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return flops / min(times) / 1e9

    ta, tb = tf.constant(a), tf.constant(b)
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    out = {"numpy": best(lambda: a @ b), "tensorflow": best(lambda: mm(ta, tb).numpy())}
    out["best"] = max(out.values())
    return out


class _EpochTimes:
    def __init__(self):
        from anomaly.tfkeras import keras

        class CB(keras.callbacks.Callback):
            def on_epoch_begin(cb, epoch, logs=None):
                cb.t = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                self.times.append(time.perf_counter() - cb.t)

        self.times: list[float] = []
        self.callback = CB()

    def rate(self, n_windows: int) -> float:
        """Windows/s of the fastest epoch after the first (the first one traces the graph).

        The fastest, not the mean: on a shared machine a neighbour's burst slows some epochs, and the
        best one is the closest to what the code can do (as for the matmul reference, best of 5).
        """
        steady = self.times[1:] or self.times
        return n_windows / min(steady)


def train_pair(values: np.ndarray, cfg) -> dict:
    """Training windows/s of ours and of the naive baseline, their epochs interleaved.

    One epoch of each in turn (``cfg.epochs`` rounds; the first round traces the graphs and is
    excluded), so that a burst from a neighbour on a shared machine hits both alike; the rate of
    each is its fastest epoch.
    """
    from anomaly.model import WindowBatches, build_autoencoder
    from anomaly.tfkeras import keras
    from anomaly.windows import window_starts

    keras.utils.set_random_seed(0)
    x = values.astype(np.float32)
    starts = window_starts(np.ones(len(x), bool), cfg.window)
    ours = build_autoencoder(
        window=cfg.window, n_features=x.shape[1], encoder_units=(cfg.units,), decoder_units=(cfg.units,), latent_dim=cfg.latent
    )
    batches = WindowBatches(x, starts, cfg.window, cfg.train_batch, shuffle=True, seed=0)
    t = time.perf_counter()
    windows = naive_windows(values, cfg.window)
    materialise_s = time.perf_counter() - t
    naive = naive_model(cfg.window, values.shape[1], cfg.units, cfg.latent)
    timers = {"ours": _EpochTimes(), "naive": _EpochTimes()}
    for _ in range(cfg.epochs):
        ours.fit(batches, epochs=1, verbose=0, callbacks=[timers["ours"].callback])
        naive.fit(windows, windows, epochs=1, verbose=0, callbacks=[timers["naive"].callback])  # default batch (32)
    return {
        "ours": {"windows": int(len(starts)), "windows_per_s": timers["ours"].rate(len(starts)), "epoch_s": timers["ours"].times},
        "naive": {
            "windows": int(len(windows)),
            "windows_per_s": timers["naive"].rate(len(windows)),
            "epoch_s": timers["naive"].times,
            "materialise_s": materialise_s,
        },
    }


def _peak_rss_mib() -> float:
    """Peak resident set size of this process (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_score(model_dir: str, n: int, n_sensors: int, engine: str = "tensorflow") -> dict:
    """Run in a fresh process: load the detector, score ``n`` generated points, report time and memory."""
    t0 = time.perf_counter()
    from anomaly.detector import LSTMAutoencoderDetector

    t1 = time.perf_counter()
    det = LSTMAutoencoderDetector.load(model_dir, engine=engine)
    t2 = time.perf_counter()
    frame = make_frame(n, n_sensors)
    rss_before = _peak_rss_mib()
    t3 = time.perf_counter()
    scores = det.score(frame)
    t4 = time.perf_counter()
    assert len(scores) == n and np.isfinite(scores["score"].to_numpy()[det.window :]).all()
    predictor = det._predictor()  # the one score used (cached)
    engine = "onnx" if type(det.model_).__name__ == "OnnxModel" else "tensorflow"  # what "auto" chose
    return {
        "engine": engine,
        "import_s": t1 - t0,
        "load_s": t2 - t1,
        "score_s": t4 - t3,
        "points_per_s": n / (t4 - t3),
        "xla": bool(predictor.use_xla),
        "batch": predictor.batch_size,
        "tensorflow_imported": "tensorflow" in sys.modules,
        "peak_rss_mib": _peak_rss_mib(),
        "rss_before_score_mib": rss_before,
    }


def worker_naive_score(n: int, n_sensors: int, window: int, units: int, latent: int) -> dict:
    """Run in a fresh process: the tutorial's scoring of ``n`` points (windows, predict, window error)."""
    from anomaly.tfkeras import keras

    keras.utils.set_random_seed(0)
    model = naive_model(window, n_sensors, units, latent)
    values = make_values(n, n_sensors)
    rss_before = _peak_rss_mib()
    t = time.perf_counter()
    x = naive_windows(values, window)
    pred = model.predict(x, verbose=0)  # default batch size (32)
    mae = np.mean(np.abs(pred - x), axis=(1, 2))
    elapsed = time.perf_counter() - t
    assert len(mae) == n - window + 1
    return {"score_s": elapsed, "points_per_s": n / elapsed, "peak_rss_mib": _peak_rss_mib(), "rss_before_score_mib": rss_before}


def run_worker(args: list[str], timeout: float | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", *args, "--worker-out", out],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"worker {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def fit_scoring_model(n_sensors: int, cfg, directory: Path, units: int | None = None) -> Path:
    from anomaly.detector import LSTMAutoencoderDetector

    units = units or cfg.units
    det = LSTMAutoencoderDetector(
        window=cfg.window,
        encoder_units=(units,),
        decoder_units=(units,),
        latent_dim=cfg.latent,
        epochs=1,
        batch_size=256,
        verbose=0,
    )
    det.fit(make_frame(FIT_POINTS, n_sensors))
    return det.save(directory / f"model_{n_sensors}_{units}", onnx=True)


def fit_default_model(directory: Path) -> Path:
    """A model as ``anomaly train`` makes it: every default (one epoch: weights do not change the cost), saved by default."""
    from anomaly.detector import LSTMAutoencoderDetector

    det = LSTMAutoencoderDetector(epochs=1, verbose=0).fit(make_frame(FIT_POINTS, 1))
    return det.save(directory / "model_default")


def startup(model_dir: Path, rows: int = 200) -> dict:
    """Wall time of ``anomaly score`` on ``rows`` rows, and of its parts, each in a fresh process."""
    frame = make_frame(rows, 1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batch.csv"
        frame.rename_axis("timestamp").to_csv(data)
        env = dict(os.environ, PYTHONPATH=str(ROOT))

        def wall(cmd: list[str]) -> float:
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
                best = min(best, time.perf_counter() - t)
            return best

        py = sys.executable
        score = [py, "-m", "anomaly", "score", str(data), "--model", str(model_dir), "--out", str(Path(tmp) / "out.parquet")]
        return {
            "rows": rows,
            "python_s": wall([py, "-c", "pass"]),
            "import_tf_s": wall([py, "-c", "import anomaly.tfkeras"]),
            "import_and_load_s": wall(
                [py, "-c", f"from anomaly.detector import LSTMAutoencoderDetector as D; D.load({str(model_dir)!r})"]
            ),
            "cli_score_s": wall([*score, "--engine", "tensorflow"]),
            "cli_score_onnx_s": wall([*score, "--engine", "onnx"]),
        }


def device_info() -> dict:
    from anomaly.tfkeras import tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    for dev in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(dev)
        gpus.append(details.get("device_name", dev.name))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = f"{os.cpu_count()} cores" + (f", this run pinned to {usable}" if usable != os.cpu_count() else "")
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "device": f"GPU ({', '.join(gpus)})" if gpus else f"CPU ({cpu}, {cores})",
        "loadavg_start": os.getloadavg(),
    }


# -- the run ----------------------------------------------------------------------------------
def _sizes(text: str) -> list[int]:
    return [int(float(t)) for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run (a few minutes on 2 idle cores)")
    p.add_argument("--sizes", type=_sizes, help="series lengths (default 1e4,1e5,1e6; quick: 2e3,1e4)")
    p.add_argument("--sensors", type=_sizes, default=[1, 8], help="sensor counts (default 1,8)")
    p.add_argument(
        "--big", type=lambda t: int(float(t)), help="univariate length of the memory run (default 1e7; quick: 1e5; 0 = skip)"
    )
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--latent", type=int, default=16)
    p.add_argument(
        "--big-units",
        type=int,
        default=8,
        help="LSTM units of the model in the long memory run (default 8; "
        "memory grows with the series, not the model, and a smaller model finishes in minutes, not an hour, on 2 cores)",
    )
    p.add_argument("--epochs", type=int, help="training epochs; the rate is the fastest epoch after the first (default 4)")
    p.add_argument("--train-batch", type=int, default=256, help="our training batch size (default 256)")
    p.add_argument(
        "--train-cap", type=lambda t: int(float(t)), help="train on at most this many points (default 1e4; quick: 3e3)"
    )
    p.add_argument(
        "--naive-cap",
        type=lambda t: int(float(t)),
        help="score the baseline on at most this many points; larger sizes are extrapolated, and labelled so (default 5e4; quick: 1e4)",
    )
    p.add_argument("--no-startup", action="store_true", help="skip the start-up measurement of 'anomaly score'")
    p.add_argument("--only-big", action="store_true", help="only the long memory runs (no table rows, no start-up)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "perf.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--f", type=int, help=argparse.SUPPRESS)
    p.add_argument("--engine", default="tensorflow", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([2000, 10_000] if quick else [10_000, 100_000, 1_000_000])
    args.big = (100_000 if quick else 10_000_000) if args.big is None else args.big
    args.epochs = args.epochs or 4
    args.train_cap = args.train_cap or (3000 if quick else 10_000)
    args.naive_cap = args.naive_cap or (10_000 if quick else 50_000)
    return args


def run(cfg) -> dict:
    from anomaly.tfkeras import tf

    started = time.perf_counter()
    result = {
        "config": {k: v for k, v in vars(cfg).items() if not k.startswith("worker") and k not in ("model", "n", "f", "engine")},
        "device": device_info(),
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
    }
    print(f"device: {result['device']['device']}; TensorFlow {result['device']['tensorflow']}", flush=True)
    result["matmul_gflops"] = mm = matmul_gflops()
    print(f"float32 matmul 2048x2048: numpy {mm['numpy']:.1f}, TensorFlow {mm['tensorflow']:.1f} GFLOP/s", flush=True)
    rows, trained, naive = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {f: fit_scoring_model(f, cfg, Path(tmp)) for f in sorted(set(cfg.sensors) | {1})}
        for f in [] if cfg.only_big else cfg.sensors:
            for n in cfg.sizes:
                row = {"points": n, "sensors": f}
                n_train = min(n, cfg.train_cap)
                if (n_train, f) not in trained:
                    values = make_values(n_train, f)
                    trained[(n_train, f)] = train_pair(values, cfg)
                row["train_points"] = n_train
                row["train"] = trained[(n_train, f)]
                row["train_ratio"] = row["train"]["ours"]["windows_per_s"] / row["train"]["naive"]["windows_per_s"]
                row["score"] = run_worker(["score", "--model", str(models[f]), "--n", str(n), "--f", str(f)])
                row["score_onnx"] = run_worker(
                    ["score", "--model", str(models[f]), "--n", str(n), "--f", str(f), "--engine", "onnx"]
                )
                n_naive = min(n, cfg.naive_cap)
                if (n_naive, f) not in naive:  # the same points for every longer size: measured once, best of 2
                    runs = [
                        run_worker(
                            [
                                "naive",
                                "--n",
                                str(n_naive),
                                "--f",
                                str(f),
                                "--window",
                                str(cfg.window),
                                "--units",
                                str(cfg.units),
                                "--latent",
                                str(cfg.latent),
                            ]
                        )
                        for _ in range(2)
                    ]
                    naive[(n_naive, f)] = max(runs, key=lambda r: r["points_per_s"])
                row["naive_score"] = dict(naive[(n_naive, f)], points=n_naive, extrapolated=n_naive < n)
                row["score_ratio"] = row["score"]["points_per_s"] / row["naive_score"]["points_per_s"]
                row["score_onnx_ratio"] = row["score_onnx"]["points_per_s"] / row["naive_score"]["points_per_s"]
                windows = n - cfg.window + 1
                fastest = min(row["score"]["score_s"], row["score_onnx"]["score_s"])
                row["gflops"] = windows * flops_per_window(cfg.window, f, cfg.units, cfg.latent) / fastest / 1e9
                row["gflops_share"] = row["gflops"] / mm["best"]
                rows.append(row)
                print(_row_line(row), flush=True)
                _save_partial(cfg, result, rows)
        if cfg.big:
            big_model = models[1] if cfg.big_units == cfg.units else fit_scoring_model(1, cfg, Path(tmp), cfg.big_units)
            result["big"] = {}
            for engine in ("tensorflow", "onnx"):
                big = run_worker(["score", "--model", str(big_model), "--n", str(cfg.big), "--f", "1", "--engine", engine])
                big["points"], big["units"] = cfg.big, cfg.big_units
                result["big"][engine] = big
                _save_partial(cfg, result, rows)
                print(
                    f"scoring {cfg.big:.0e} univariate points ({engine}): {big['score_s']:.1f} s, "
                    f"peak RSS {big['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
            from anomaly.detector import LSTMAutoencoderDetector

            big = run_worker(
                ["score", "--model", str(fit_default_model(Path(tmp))), "--n", str(cfg.big), "--f", "1", "--engine", "auto"]
            )
            big["points"], big["units"] = cfg.big, LSTMAutoencoderDetector().encoder_units[0]
            result["big"]["default"] = big
            _save_partial(cfg, result, rows)
            print(
                f"scoring {cfg.big:.0e} univariate points with a default-trained model ({big['engine']}, TensorFlow "
                f"imported: {big['tensorflow_imported']}): {big['score_s']:.1f} s, peak RSS {big['peak_rss_mib']:.0f} MiB "
                f"(target < 1024 MiB)",
                flush=True,
            )
        if not cfg.no_startup and not cfg.only_big:
            result["startup"] = startup(models[1])
    result["rows"] = rows
    if len(cfg.sizes) >= 2 and rows:
        small, large = sorted(cfg.sizes)[-2:]
        result["growth"] = {}
        for f in cfg.sensors:
            t = {r["points"]: r["score"]["score_s"] for r in rows if r["sensors"] == f}
            result["growth"][str(f)] = {
                "from": small,
                "to": large,
                "time_ratio": t[large] / t[small],
                "size_ratio": large / small,
            }
    result["device"]["loadavg_end"] = os.getloadavg()
    result["total_s"] = time.perf_counter() - started
    return result


def _save_partial(cfg, result: dict, rows: list) -> None:
    """Write what is measured so far (``<out>.partial.json``): a long run stopped early still tells something."""
    out = Path(cfg.out).with_suffix(".partial.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(result, rows=rows), indent=2))


def _row_line(r: dict) -> str:
    return (
        f"{r['points']:.0e} x{r['sensors']}: train {r['train']['ours']['windows_per_s']:,.0f} vs {r['train']['naive']['windows_per_s']:,.0f} w/s "
        f"({r['train_ratio']:.1f}x); score TF {r['score']['points_per_s']:,.0f}, ONNX {r['score_onnx']['points_per_s']:,.0f} "
        f"vs {r['naive_score']['points_per_s']:,.0f} pts/s ({r['score_ratio']:.1f}x, {r['score_onnx_ratio']:.1f}x); "
        f"RSS TF {r['score']['peak_rss_mib']:.0f}, ONNX {r['score_onnx']['peak_rss_mib']:.0f} vs {r['naive_score']['peak_rss_mib']:.0f} MiB; "
        f"{r['gflops']:.1f} GFLOP/s"
    )


def table(result: dict) -> str:
    """The Markdown table of a result (also pasted into the README)."""
    mm = result["matmul_gflops"]["best"]
    lines = [
        "| points | sensors | train ours w/s | train naive w/s | ratio | score TF pts/s | score ONNX pts/s "
        "| score naive pts/s | ratio TF / ONNX | peak RSS TF / ONNX / naive MiB | GFLOP/s | % of matmul |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        naive = r["naive_score"]
        star = "*" if naive["extrapolated"] else ""
        naive_rss = f"{naive['peak_rss_mib']:.0f}{star}"
        lines.append(
            f"| {r['points']:.0e} | {r['sensors']} | {r['train']['ours']['windows_per_s']:,.0f} | {r['train']['naive']['windows_per_s']:,.0f} "
            f"| {r['train_ratio']:.1f}x | {r['score']['points_per_s']:,.0f}{' (XLA)' if r['score']['xla'] else ''} "
            f"| {r['score_onnx']['points_per_s']:,.0f} | {naive['points_per_s']:,.0f}{star} "
            f"| {r['score_ratio']:.1f}x / {r['score_onnx_ratio']:.1f}x{star} "
            f"| {r['score']['peak_rss_mib']:.0f} / {r['score_onnx']['peak_rss_mib']:.0f} / {naive_rss} "
            f"| {r['gflops']:.1f} | {100 * r['gflops_share']:.0f}% |"
        )
    notes = [
        f"Device: {result['device']['device']}, TensorFlow {result['device']['tensorflow']}; "
        f"float32 matmul {mm:.1f} GFLOP/s (numpy {result['matmul_gflops']['numpy']:.1f}, TensorFlow "
        f"{result['matmul_gflops']['tensorflow']:.1f}); load average {result['device']['loadavg_start'][0]:.1f} at start, "
        f"{result['device']['loadavg_end'][0]:.1f} at end; total {result['total_s'] / 60:.1f} min."
    ]
    cfg = result["config"]
    notes.append(
        f"Model: window {cfg['window']}, LSTM {cfg['units']} -> Dense {cfg['latent']} -> LSTM {cfg['units']} -> Dense; "
        f"training on the first {cfg['train_cap']:,} points at most, epochs of ours and naive interleaved, the fastest of epochs 2-{cfg['epochs']}, "
        f"ours at batch {cfg['train_batch']}, naive at Keras' default 32."
    )
    if any(r["naive_score"]["extrapolated"] for r in result["rows"]):
        notes.append(
            f"\\* naive scoring measured on the first {cfg['naive_cap']:,} points only (its rate per point is "
            f"assumed constant beyond them; its memory would grow with the length)."
        )
    notes.append("Naive scoring: the faster of two runs.")
    for f, g in result.get("growth", {}).items():
        notes.append(
            f"Scoring time {g['from']:.0e} -> {g['to']:.0e} points, {f} sensor(s): x{g['time_ratio']:.1f} for x{g['size_ratio']:.0f} points."
        )
    for engine, b in result.get("big", {}).items():
        if engine == "default":
            notes.append(
                f"Scoring {b['points']:.0e} univariate points with a model trained and saved with the defaults "
                f"(LSTM {b['units']} units; loaded as `anomaly score` loads it: the {b['engine']} engine, TensorFlow "
                f"{'imported' if b['tensorflow_imported'] else 'never imported'}): {b['score_s']:.0f} s "
                f"({b['points_per_s']:,.0f} pts/s), peak RSS {b['peak_rss_mib']:.0f} MiB "
                f"({'under' if b['peak_rss_mib'] < 1024 else 'over'} the 1 GiB target)."
            )
            continue
        model = (
            ""
            if b["units"] == cfg["units"]
            else f" with a smaller model (LSTM {b['units']} units; memory depends on the length, not the model)"
        )
        notes.append(
            f"Scoring {b['points']:.0e} univariate points with {engine}{model}: {b['score_s']:.0f} s ({b['points_per_s']:,.0f} pts/s), "
            f"peak RSS {b['peak_rss_mib']:.0f} MiB ({b['rss_before_score_mib']:.0f} MiB before scoring: Python, "
            f"{'TensorFlow' if engine == 'tensorflow' else 'ONNX Runtime'}, model and the input frame)."
        )
    if "startup" in result:
        s = result["startup"]
        notes.append(
            f"Start-up of `anomaly score` on {s['rows']} rows: {s['cli_score_s']:.1f} s in all with TensorFlow "
            f"(Python {s['python_s']:.1f} s, + import TensorFlow {s['import_tf_s']:.1f} s, + load the model "
            f"{s['import_and_load_s']:.1f} s, cumulative); {s['cli_score_onnx_s']:.1f} s with `--engine onnx`."
        )
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def main(argv=None) -> int:
    cfg = parse_args(argv)
    if cfg.worker:
        if cfg.worker == "score":
            out = worker_score(cfg.model, cfg.n, cfg.f, cfg.engine)
        else:
            out = worker_naive_score(cfg.n, cfg.f, cfg.window, cfg.units, cfg.latent)
        Path(cfg.worker_out).write_text(json.dumps(out))
        return 0
    result = run(cfg)
    text = table(result)
    print()
    print(text)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result["table_markdown"] = text
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

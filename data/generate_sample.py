"""Generate the bundled multivariate sample: five sensors with five kinds of injected anomaly.

Run from the repository root: ``python data/generate_sample.py`` rewrites
``data/sample_multivariate.csv``, ``data/sample_labels.json`` (the ``{"KEY": [[start, end], ...]}``
form that ``anomaly evaluate`` reads) and ``data/sample_anomalies.json`` (each anomaly's kind and
sensor). Deterministic: the same seed gives the same files.

The first half (rows before ``NORMAL_END``) is normal operation; the anomalies are in the second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 7
ROWS = 4000
START = pd.Timestamp("2024-01-01 00:00:00")
INTERVAL = pd.Timedelta(minutes=1)
NORMAL_END = START + INTERVAL * 1999  # last normal timestamp

# (kind, sensor, first row, last row)
ANOMALIES = [
    ("spike", "temperature", 2300, 2302),
    ("level_shift", "humidity", 2600, 2719),
    ("frequency_change", "vibration", 2900, 3019),
    ("flatline", "pressure", 3200, 3319),
    ("broken_correlation", "flow", 3500, 3619),
]


def generate(seed: int = SEED) -> tuple[pd.DataFrame, list[dict]]:
    """The sample frame (``timestamp`` + five sensors) and the list of injected anomalies."""
    rng = np.random.default_rng(seed)
    t = np.arange(ROWS, dtype=float)
    wave50 = np.sin(2 * np.pi * t / 50)
    frame = pd.DataFrame(
        {
            "timestamp": START + INTERVAL * np.arange(ROWS),
            "temperature": 20 + 3 * np.sin(2 * np.pi * t / 240) + rng.normal(0, 0.2, ROWS),
            "pressure": 5 + wave50 + rng.normal(0, 0.05, ROWS),
            "flow": 10 + 2 * wave50 + rng.normal(0, 0.1, ROWS),  # follows pressure
            "vibration": 0.5 * np.sin(2 * np.pi * t / 16) + rng.normal(0, 0.05, ROWS),
            "humidity": 40 + 5 * np.sin(2 * np.pi * t / 400 + 1) + rng.normal(0, 0.3, ROWS),
        }
    )
    for kind, sensor, lo, hi in ANOMALIES:
        rows = slice(lo, hi + 1)
        values = frame[sensor].to_numpy(copy=True)
        if kind == "spike":
            values[rows] += 8.0
        elif kind == "level_shift":
            values[rows] += 12.0
        elif kind == "frequency_change":
            values[rows] = 0.5 * np.sin(2 * np.pi * t[rows] / 5) + rng.normal(0, 0.05, hi - lo + 1)
        elif kind == "flatline":
            values[rows] = values[lo]
        elif kind == "broken_correlation":  # flow runs against pressure instead of with it
            values[rows] = 10 - 2 * wave50[rows] + rng.normal(0, 0.1, hi - lo + 1)
        frame[sensor] = values
    anomalies = [
        {"kind": kind, "sensor": sensor, "start": frame.timestamp[lo].isoformat(), "end": frame.timestamp[hi].isoformat()}
        for kind, sensor, lo, hi in ANOMALIES
    ]
    return frame, anomalies


def main(out_dir: Path = Path(__file__).parent) -> None:
    frame, anomalies = generate()
    frame.to_csv(out_dir / "sample_multivariate.csv", index=False, float_format="%.5f")
    labels = {"sample_multivariate.csv": [[a["start"], a["end"]] for a in anomalies]}
    (out_dir / "sample_labels.json").write_text(json.dumps(labels, indent=2) + "\n")
    meta = {"normal_end": NORMAL_END.isoformat(), "seed": SEED, "anomalies": anomalies}
    (out_dir / "sample_anomalies.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()

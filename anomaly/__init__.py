"""Find anomalies in sensor time series with LSTM autoencoders.

>>> from anomaly import LSTMAutoencoderDetector, load_series
>>> df = load_series("data/machine_temperature_system_failure.csv", duplicates="mean")
>>> detector = LSTMAutoencoderDetector(window=48).fit(df.loc[:"2013-12-09"])
>>> events = detector.detect(df)

TensorFlow is imported only when a detector is used, so the pure parts load fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "LSTMAutoencoderDetector",
    "LSTMSequenceDetector",
    "load_series",
    "AnomalyError",
    "DataError",
    "ModelError",
    "ConfigError",
    "__version__",
]

from anomaly.errors import AnomalyError, ConfigError, DataError, ModelError  # noqa: E402
from anomaly.io import load_series  # noqa: E402


def __getattr__(name: str):
    if name == "LSTMAutoencoderDetector":
        from anomaly.detector import LSTMAutoencoderDetector

        return LSTMAutoencoderDetector
    if name == "LSTMSequenceDetector":
        from anomaly.sequences import LSTMSequenceDetector

        return LSTMSequenceDetector
    raise AttributeError(f"module 'anomaly' has no attribute {name!r}")

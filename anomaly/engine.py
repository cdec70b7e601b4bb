"""The ONNX engine: score with ONNX Runtime, without importing TensorFlow.

A scheduled scorer runs often on small batches, and importing TensorFlow costs most of its time
(about 10 s) and memory (about 700 MiB resident) before a single window is scored. A model saved
with ``onnx=True`` (``anomaly train --onnx``, ``anomaly export-onnx``) also holds ``model.onnx``:
the same inference graph, exported by Keras (``model.export(format="onnx")``, tf2onnx), which
ONNX Runtime loads in well under a second. An ONNX file is a protobuf graph of standard
operators: loading it runs no code from the file (no custom operators are registered).

:class:`OnnxModel` has the interface of :class:`anomaly.model.Predictor` (``plan``,
``batch_size``, call on windows), so the detector's scoring code is the same for both engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from anomaly.errors import ModelError, first_line

ENGINES = ("auto", "tensorflow", "onnx")


@runtime_checkable
class Engine(Protocol):
    """What the detector's scoring needs of a model runner: TensorFlow's :class:`anomaly.model.Predictor`
    and :class:`OnnxModel` both are one (``tests/test_engine.py`` checks it)."""

    batch_size: int  # windows per call
    use_xla: bool  # whether the last plan() chose XLA (always False for ONNX)

    def plan(self, n_windows: int) -> Engine:
        """Prepare for ``n_windows`` windows about to be scored; returns the runner to call."""
        ...

    def __call__(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """The model's output(s) for windows ``x`` (``(n, window, features)``), in the Keras output order."""
        ...


# Windows per ONNX Runtime call: 256 ran 19.4k windows/s, 1024 17.1k, 4096 16.0k on one core (window 32,
# LSTM 64, bench/perf.py's model); larger batches only cost memory.
ONNX_BATCH = 256


def export_onnx(model, path: Path) -> None:
    """Write the Keras inference ``model`` to ``path`` as ONNX (opset chosen by tf2onnx)."""
    import logging
    import warnings

    # tf2onnx's notes on the graph ("rnn ... following Reverse op isn't the part of bi-rnn" for a
    # bidirectional model) are not the user's business either: errors only, while it converts.
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)
    try:
        model(np.zeros((1, *model.input_shape[1:]), np.float32))  # Keras exports only a model that has been called
        with warnings.catch_warnings():  # tf2onnx's numpy-2 FutureWarning is not the user's business
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(path), format="onnx", verbose=False)
    except ImportError as exc:
        raise ModelError(f"ONNX export needs the 'tf2onnx' and 'onnx' packages ({exc})") from None
    except Exception as exc:  # tf2onnx raises many types for a graph it cannot convert
        raise ModelError(f"cannot export the model to ONNX ({first_line(exc, 300)})") from None
    finally:
        converter_log.setLevel(level)


class OnnxModel:
    """An ONNX Runtime session over ``model.onnx``, called like :class:`anomaly.model.Predictor`.

    Returns one array, or a list of arrays in the Keras model's output order (a composite).
    """

    def __init__(self, path: Path, batch_size: int = ONNX_BATCH):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ModelError(f"the ONNX engine needs the 'onnxruntime' package ({exc})") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings would go to the user's stderr
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own types for a corrupt or foreign file
            raise ModelError(f"{path}: cannot load the ONNX model ({first_line(exc, 300)})") from None
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self.use_xla = False  # Predictor's interface; XLA is a TensorFlow matter
        self.input_name = self.session.get_inputs()[0].name

    @property
    def input_shape(self) -> tuple:
        """``(None, window, n_features)``: symbolic dimensions as None, as Keras reports them."""
        return _shape(self.session.get_inputs()[0].shape)

    def plan(self, n_windows: int) -> OnnxModel:
        return self

    def __call__(self, x: np.ndarray):
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        if n == 0:  # ONNX Runtime needs one row to know the output shapes; keep none of it
            x = np.zeros((1,) + x.shape[1:], np.float32)
        parts = [self.session.run(None, {self.input_name: x[i : i + self.batch_size]}) for i in range(0, len(x), self.batch_size)]
        merged = [p[0][:n] if len(parts) == 1 else np.concatenate(p) for p in zip(*parts)]
        return merged if len(merged) > 1 else merged[0]


def _shape(dims) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in dims)

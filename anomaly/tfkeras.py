"""Import TensorFlow and Keras once, without TensorFlow's start-up chatter on stderr.

TensorFlow 2.21 prints C++ log lines (oneDNN, CUDA probing) during import that ignore
``TF_CPP_MIN_LOG_LEVEL``; a user of the CLI should see only our own messages, so stderr's file
descriptor points at /dev/null for the duration of the import and nothing longer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _stderr_silenced():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # no real stderr (e.g. captured): nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


try:
    with _stderr_silenced() if "tensorflow" not in sys.modules else contextlib.nullcontext():
        import keras
        import tensorflow as tf
except ImportError as exc:  # the core install scores ONNX exports only
    from anomaly.errors import MissingExtraError

    raise MissingExtraError(
        f"this needs TensorFlow, which is not installed ({exc.name or exc}): pip install "
        "'lstm-anomaly[train]'; scoring a model saved with its ONNX export (the default) does not"
    ) from None


class _DropRetracingWarning(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" warning.

    Every :class:`anomaly.model.Predictor` wraps its own model in its own ``tf.function``, built
    from the same line of code. TensorFlow's detector keys on that code, so scoring many models in
    one process (``anomaly bench``, ``score-batch``) reads to it as one function traced again and
    again; each trace is in fact the first of a new model, and the warning would only alarm users.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_DropRetracingWarning())

__all__ = ["keras", "tf"]

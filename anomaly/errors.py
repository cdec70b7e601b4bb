"""The package's error types and the CLI exit codes they map to.

Every problem a user can cause (a bad file, a bad option, a broken model directory) raises a
subclass of :class:`AnomalyError` with a one-line message that names the file, column or row.
The CLI turns these into that line on stderr and the exit code below, never a traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected internal error
EXIT_BAD_INPUT = 2  # bad data, bad option, bad model directory
EXIT_LOCKED = 3  # another run holds the lock for this database and source
EXIT_ANOMALIES = 4  # opt-in: the run found new anomalies


class AnomalyError(Exception):
    """Base class of every error the package raises on purpose."""

    exit_code = EXIT_BAD_INPUT


class DataError(AnomalyError, ValueError):
    """A data file or frame cannot be used: unreadable, malformed, too short, ..."""


class TooFewRowsError(DataError):
    """Too few rows to score yet (a header only, or less than a window): bad input for a one-off score,
    a wait for more rows for the scheduled scorer."""


class ConfigError(AnomalyError, ValueError):
    """A hyperparameter or option has an invalid value."""


class ModelError(AnomalyError):
    """A model directory is missing, corrupt, tampered with or incompatible."""


class MissingExtraError(AnomalyError, ImportError):
    """An optional dependency is not installed (TensorFlow for training, Streamlit for the dashboard).

    Also an ImportError, which is what a notebook user expects of a missing package.
    """

    exit_code = EXIT_ERROR  # the environment, not the input


class NotFittedError(AnomalyError, AttributeError):
    """A detector was used before ``fit`` or ``load``."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's timeout, ``kill``), raised by the CLI's handler: unwound like Ctrl-C, so
    temporary files are removed and a scheduled run is marked failed."""


def interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM behind ``exc``, if any: a library's clean-up can raise its own error while
    the interrupt unwinds it (TensorFlow: "Exiting device scope without proper scope nesting")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def stopped_by(exc: KeyboardInterrupt) -> str:
    """``terminated`` (SIGTERM) or ``interrupted`` (Ctrl-C): the word the one-line error uses."""
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of ``exc``'s message (its type's name if empty), cut at ``limit`` characters:
    what a one-line error quotes of a library's multi-line exception."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]

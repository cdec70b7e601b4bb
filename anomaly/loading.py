"""Loading what a run needs: a saved model, and a data file read for it.

One path for every face of the tool (``anomaly score``/``evaluate``/``embed``, the scheduled scorer,
the bench's CLI check, the dashboard), so a scheduled run, a one-off score and the dashboard read
identical frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from anomaly.errors import DataError

if TYPE_CHECKING:  # pandas is imported by the functions that need it: `anomaly --help` stays fast
    import pandas as pd

log = logging.getLogger("anomaly")


@dataclass(frozen=True)
class ReadOptions:
    """How a data file is read (the CLI's data options; a scheduled job's fields).

    None is "not given": a file read for a saved model is then read as its training data was (the
    model's ``reading_``), any other file with :data:`anomaly.io.READ_DEFAULTS`; :meth:`resolved` decides.
    """

    timestamp_col: str | None = None
    columns: list[str] | None = None  # None: every numeric column, or the model's columns
    duplicates: str | None = None  # "error" or "mean"
    max_gap: int | None = None
    missing_values: tuple[float, ...] | None = None  # a logger's codes for "no reading" (-9999), read as missing

    @classmethod
    def of(cls, options) -> ReadOptions:
        """The options of anything with these five attributes (argparse's namespace, a job)."""
        codes = None if options.missing_values is None else tuple(options.missing_values)
        return cls(options.timestamp_col, options.columns, options.duplicates, options.max_gap, codes)

    def resolved(self, saved: dict | None = None) -> ReadOptions:
        """Every option set: as given here, else as ``saved`` (a model's ``reading_``) has it, else the default."""
        from anomaly.io import READ_DEFAULTS

        saved = saved or {}
        values = {
            key: saved.get(key, default) if getattr(self, key) is None else getattr(self, key)
            for key, default in READ_DEFAULTS.items()
        }
        return dataclasses.replace(self, **{**values, "missing_values": tuple(values["missing_values"])})

    def saved(self) -> dict:
        """What a model keeps of how its training data was read (its ``reading_``; JSON values)."""
        from anomaly.io import READ_DEFAULTS

        options = dataclasses.asdict(self.resolved())
        return {key: list(value) if isinstance(value, tuple) else value for key, value in options.items() if key in READ_DEFAULTS}


def load_data(path: str | Path, options: ReadOptions, interval=None, interval_of: str | None = None) -> pd.DataFrame:
    """``path`` read and cleaned (:func:`anomaly.io.load_series`); given an ``interval`` (that of
    ``interval_of``, another file), readings further apart are refused and closer ones averaged."""
    from anomaly.io import load_series

    options = options.resolved()
    return load_series(
        path,
        timestamp_col=options.timestamp_col,
        columns=options.columns,
        duplicates=options.duplicates,
        max_gap=options.max_gap,
        interval=interval,
        interval_of=interval_of,
        missing_values=options.missing_values,
    )


def load_for_model(
    path: str | Path, options: ReadOptions, detector, *, complete_lines: bool = False, marking_filled: bool = False
):
    """Data for a fitted model: ``path`` read (``complete_lines``: see :func:`anomaly.io.read_table`),
    then :func:`frame_for_model` (``marking_filled``: ``(frame, filled)``)."""
    from anomaly.io import read_table

    return frame_for_model(
        read_table(path, complete_lines=complete_lines), str(path), options, detector, marking_filled=marking_filled
    )


def frame_for_model(raw: pd.DataFrame, source: str, options: ReadOptions, detector, *, marking_filled: bool = False):
    """A raw table cleaned for a fitted model: its columns (unless ``options.columns``), resampled to
    its interval. The CLI, the scheduler and the dashboard (which reads uploads itself) share it.

    A table sampled more finely than the model is averaged into its step with a warning; one sampled
    more coarsely, or that lacks a model column, is refused, naming ``source``. ``marking_filled``:
    ``(frame, filled)``, as :func:`anomaly.io.clean_frame` gives them. Options not given are the
    model's, as its training data was read (``reading_``), so a logger's codes stay codes.
    """
    from anomaly.io import clean_frame, codes_text

    saved = detector.reading_ or {}
    dropped = [c for c in saved.get("missing_values", []) if c not in (options.missing_values or (c,))]
    if dropped:  # codes given replace the model's; "none" (no codes) is a deliberate choice, said nothing of
        log.warning(
            "%s: the codes given replace the model's: %s read as a reading again (give it too to keep it missing)",
            source,
            codes_text(dropped),
        )
    options = options.resolved(saved)
    columns = detector.columns_ if options.columns is None else options.columns
    for present, what in ((raw.columns, "lacks"), (columns, "the columns given leave out")):  # before any parsing
        missing = [c for c in detector.columns_ if c not in present]
        if missing:
            raise DataError(
                f"{source}: {what} the model's column(s) {', '.join(map(repr, missing))} "
                f"(model columns: {', '.join(detector.columns_)})"
            )
    frame = clean_frame(
        raw,
        source,
        timestamp_col=options.timestamp_col,
        columns=columns,
        duplicates=options.duplicates,
        max_gap=options.max_gap,
        interval=detector.interval_,
        interval_of="the model",
        marking_filled=marking_filled,
        missing_values=options.missing_values,
    )
    return frame


def load_model(directory: str | Path, engine: str = "auto", min_length: int | None = None, merge_gap: int | None = None):
    """A saved detector (``engine`` as in :meth:`~anomaly.detector.LSTMAutoencoderDetector.load`), with
    its event rules overridden where given."""
    from anomaly.detector import LSTMAutoencoderDetector

    detector = LSTMAutoencoderDetector.load(directory, engine=engine)
    overrides = {k: v for k, v in (("min_event_length", min_length), ("merge_gap", merge_gap)) if v is not None}
    detector.set_params(**overrides)
    detector.check_params()  # a bad --min-length or --merge-gap is refused as `anomaly train` refuses it
    return detector


@contextlib.contextmanager
def naming(source: str | Path):
    """Prefix the data file's name to a DataError raised by the detector (which sees only a frame)."""
    try:
        yield
    except DataError as exc:
        if str(exc).startswith(str(source)):
            raise
        raise type(exc)(f"{source}: {exc}") from None  # the same kind of error (TooFewRowsError too)

"""Reading sensor series from CSV or Parquet into a clean, regular, time-indexed frame.

Two steps, each usable alone: :func:`read_table` turns a file into a raw frame (or a one-line
:class:`~anomaly.errors.DataError` naming the file), and :func:`clean_frame` validates and cleans
it: timestamps parsed, rows sorted, duplicates resolved by policy, the sampling interval
detected, the series resampled to it, short gaps interpolated and long gaps left as NaN rows.
Those NaN rows are *breaks*: :mod:`anomaly.windows` never lets a window span one.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import logging
import numbers
import re
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from pandas.tseries.frequencies import to_offset

from anomaly.errors import DataError, TooFewRowsError, first_line

log = logging.getLogger("anomaly")

PARQUET_SUFFIXES = {".parquet", ".pq"}
READ_FROM = "read_from"  # the attrs key of a frame read from a CSV file: that file's path
DUPLICATE_POLICIES = ("error", "mean")
# How a file is read when nothing says otherwise (anomaly.loading.ReadOptions); a model saves these keys.
READ_DEFAULTS = {"timestamp_col": "timestamp", "duplicates": "error", "max_gap": 3, "missing_values": ()}
_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
MAX_GRID_ROWS = 5_000_000  # a regular grid may hold long gaps, but not unbounded ones (see _check_grid)
MAX_GRID_FACTOR = 100


def read_table(path: str | Path, *, complete_lines: bool = False) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by suffix) into a raw frame of strings and numbers.

    ``complete_lines``: a CSV's last line without a line end is left out, with a warning: the
    scheduled scorer reads files a logger is still appending to, and a half-written line
    (``...,9`` of ``...,97.5``) would be stored as a reading. The next run reads it whole.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if path.stat().st_size == 0:  # to the scheduled scorer, a file just rotated or truncated: wait for rows
        raise (TooFewRowsError if complete_lines else DataError)(f"{path}: file is empty")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
        if any(name is not None for name in frame.index.names):  # pandas stored its index: make it columns
            frame = frame.reset_index()
        elif isinstance(frame.index, pd.DatetimeIndex) and "timestamp" not in frame.columns:  # an unnamed time index
            frame = frame.rename_axis("timestamp").reset_index()
        _check_names(frame.columns, path)  # a CSV's header is checked as it is read
    else:
        frame = _read_csv(path, complete_lines)
        frame.attrs[READ_FROM] = str(path)  # for the error path's line numbers (_line_of), carried by its columns
    if frame.shape[1] == 0:
        raise DataError(f"{path}: no columns")
    if len(frame) == 0:
        raise TooFewRowsError(f"{path}: has a header but no data rows")
    return frame


def _check_names(columns, path: Path) -> None:
    """Refuse two columns of one name (spaces around names ignored): which one would be the sensor?
    Blank names are not compared: such columns are skipped later, with a warning."""
    names = pd.Index([name for name in (str(c).strip() for c in columns) if name])
    if names.has_duplicates:
        raise DataError(f"{path}: two columns are named '{names[names.duplicated()][0]}' (spaces around names ignored)")


def _read_csv(path: Path, complete_lines: bool = False) -> pd.DataFrame:
    if complete_lines:  # one read, cut after the last line end: the logger may be writing right now
        data = path.read_bytes()
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if 0 < end < len(data):
            log.warning(
                "%s: the last line has no line end (still being written?); left for the next run "
                "(end the file with a line break if it is complete)",
                path,
            )
            data = data[:end]
        source, head = BytesIO(data), data[:_SNIFF_BYTES]
    else:
        source = path
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: UTF-16 text; save it as UTF-8 CSV")
    if b"\x00" in head:
        raise DataError(f"{path}: binary content, not a CSV text file")
    text = head.decode("utf-8-sig", errors="replace")
    header, *rows = text.splitlines() if text.strip() else [""]
    if not header.strip():
        raise DataError(f"{path}: first line is empty, expected a header row")
    sep = _sniff_delimiter(header)
    _check_names(next(csv.reader([header], delimiter=sep), []), path)  # before pandas renames a twin `temp.1`
    lines = [line for line in rows[:-1] if line.strip()]  # the sample's last line may be cut short
    # A delimiter ending every data line but not the header is an empty last field, dropped; any other
    # line longer than the header would lose data, so pandas' warning of it is an error here.
    trailing = bool(lines) and not header.rstrip().endswith(sep) and all(line.rstrip().endswith(sep) for line in lines)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if trailing else "error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                source,
                sep=sep,
                decimal=_sniff_decimal(rows, sep),
                encoding="utf-8-sig",  # spreadsheets often start UTF-8 files with a byte-order mark
                skipinitialspace=True,
                index_col=False,  # never the first column as an index: lines longer than the header are not shifted
            )
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: some lines hold more fields than the header; each line needs one field per column") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed CSV ({first_line(exc)})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _sniff_delimiter(header: str) -> str:
    """The one of , ; TAB | that cuts the header line into the most fields, quotes respected (the csv
    module), so semicolon files from spreadsheets load, names like "Druck, bar" included."""

    def fit(delimiter: str) -> tuple[int, bool]:  # more fields, then no quote left in one (quotes read as quotes)
        row = next(csv.reader([header], delimiter=delimiter), [])
        return len(row), not any('"' in field for field in row)

    best = max(_DELIMITERS, key=fit)
    return best if fit(best)[0] > 1 else ","


_COMMA_DECIMAL = re.compile(r"[+-]?(\d+),(\d+)(?:[eE][+-]?\d+)?")
_POINT_DECIMAL = re.compile(r"[+-]?\d*\.\d+(?:[eE][+-]?\d+)?")


def _sniff_decimal(lines: list[str], sep: str) -> str:
    """',' where a file not separated by commas writes its numbers with decimal commas (20,5), as
    spreadsheets in much of Europe save semicolon CSVs, and no number with a decimal point; else '.'."""
    if sep == ",":
        return "."
    fields = [f.strip().strip('"') for line in lines[:200] for f in line.split(sep)]
    commas = [m for m in map(_COMMA_DECIMAL.fullmatch, fields) if m]
    if any(_decimal_comma(m) for m in commas) and not any(_POINT_DECIMAL.fullmatch(f) for f in fields):
        return ","
    return "."


def _decimal_comma(number: re.Match) -> bool:
    """Whether a number written ``D,F`` cannot be a thousands separator: 1,000 alone may be a thousand,
    but not 1,5 (F not three digits), 0,125 (a thousands group never follows 0) or 1013,250 (nor four digits)."""
    whole, fraction = number.group(1), number.group(2)
    return len(fraction) != 3 or int(whole) == 0 or len(whole) > 3


def _line_of(path: str | None, position: int) -> int:
    """File line where data row ``position`` of the CSV file ``path`` starts (line 1 is the header).

    Counted with the csv module as pandas reads the rows: blank lines skipped, a quoted field may
    span lines. It reads the file once more, which only the error path does. Without the file (a
    frame :func:`read_table` did not read, a file gone since), the plain count: ``position`` + 2."""
    if path is None:
        return int(position) + 2
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=_sniff_delimiter(fh.readline()), skipinitialspace=True)
            row, end = 0, 1  # the header is line 1
            for record in reader:
                start, end = end + 1, reader.line_num + 1
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue  # a blank line: pandas skips it
                if row == position:
                    return start
                row += 1
    except (OSError, csv.Error):
        pass
    return int(position) + 2


def _where(source: str, position: int, of: pd.Series) -> str:
    """'row N' of a Parquet file, else 'line N' of a CSV file (counting the header line); ``of``: the
    column being read, whose ``attrs`` name the file :func:`read_table` read it from, if it did."""
    if str(source).lower().endswith(tuple(PARQUET_SUFFIXES)):
        return f"row {int(position) + 1}"
    return f"line {_line_of(of.attrs.get(READ_FROM), position)}"


# The markers pandas' read_csv reads as missing by default (its ``na_values`` docs). Kept here so the same
# cells count as missing with spaces around them ("NA ") and in Parquet text columns, which read_csv never sees.
MISSING_MARKERS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA"]
    + ["NULL", "NaN", "None", "n/a", "nan", "null"]
)


def _cell_text(raw: pd.Series) -> pd.Series:
    """A text column's cells stripped, the missing markers (``MISSING_MARKERS``) turned into missing."""
    text = raw.astype("string").str.strip()
    return text.mask(text.isin(MISSING_MARKERS))


# Unix times by unit, each accepted for 1990-2100 only: the four ranges do not overlap, so the size
# of the numbers names the unit (pandas needs it given). Other numbers (20240101) are read as text.
_UNIX_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_UNIX_RANGE = (631_152_000, 4_102_444_800)  # 1990-01-01 and 2100-01-01, in seconds


def _unix_times(raw: pd.Series, source: str, column: str) -> pd.Series | None:
    """A column of numbers read as Unix times (UTC), the unit told by their size; None when not numbers."""
    if pd.api.types.is_bool_dtype(raw):
        return None
    if not pd.api.types.is_numeric_dtype(raw):  # text: a first cell that is no number settles it cheaply
        first = raw.dropna().astype("string").str.strip().head(1)
        if first.empty or pd.isna(pd.to_numeric(first, errors="coerce").iloc[0]):
            return None
    values = raw if pd.api.types.is_numeric_dtype(raw) else pd.to_numeric(raw.astype("string").str.strip(), errors="coerce")
    given = raw.notna() & (raw.astype("string").str.strip() != "")
    if not given.any() or values[given].isna().any():
        return None
    numbers = values[given].to_numpy(dtype="float64")
    for unit, per_second in _UNIX_UNITS.items():
        low, high = (bound * per_second for bound in _UNIX_RANGE)
        if ((numbers >= low) & (numbers <= high)).all():
            log.info("%s: column '%s' read as Unix times in %s (UTC)", source, column, unit)
            return pd.to_datetime(values, unit=unit, utc=True)
    if (numbers < 10**7).any() or (numbers > 10**8).any():  # not a date written as digits (20240101)
        raise DataError(
            f"{source}: column '{column}' holds numbers ({numbers[0]:g}...), not times: give dates "
            "(2024-01-31 13:00) or Unix times of 1990-2100 (seconds, ms, us or ns since 1970)"
        )
    return None


# A UTC offset ending a timestamp: Z, +01:00, +0100, or hours alone (+01, PostgreSQL's text form) after a time
OFFSET = r"(?:Z|[+-]\d\d:?\d\d|(?<=:\d\d)[+-]\d\d|(?<=\.\d{3})[+-]\d\d|(?<=\.\d{6})[+-]\d\d)$"


def parse_timestamps(raw: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    """Parse a timestamp column; offsets are converted to UTC so DST and mixed zones order correctly.

    A column of numbers is read as Unix times (UTC) when every number falls in 1990-2100 in one unit.
    """
    unix = None if pd.api.types.is_datetime64_any_dtype(raw) else _unix_times(raw, source, column)
    if unix is not None:
        parsed = unix
    elif pd.api.types.is_datetime64_any_dtype(raw):
        parsed = pd.Series(pd.DatetimeIndex(raw), index=raw.index)
        if parsed.dt.tz is not None:
            parsed = parsed.dt.tz_convert("UTC")
    else:
        text = raw.astype("string").str.strip()
        has_offset = text.str.contains(OFFSET, regex=True, na=False)
        if has_offset.any() and not has_offset[text.notna() & (text != "")].all():
            pos = int(np.flatnonzero(~has_offset & text.notna().to_numpy())[0])
            raise DataError(
                f"{source}: {_where(source, pos, raw)}: timestamp '{raw.iloc[pos]}' in column '{column}' has no "
                "time zone while others do; use one convention for the whole file"
            )
        dayfirst, utc = _day_first(text, source, column), bool(has_offset.any())
        try:
            parsed = _one_format(text, utc, dayfirst)
            if parsed is None:
                parsed = pd.to_datetime(text, errors="coerce", utc=utc, format="mixed", dayfirst=dayfirst)
        except ValueError:  # a zone the pattern above misses (e.g. '+02:00;') beside naive timestamps
            pos = _first_zoned(text)
            raise DataError(
                f"{source}: {_where(source, pos, raw)}: timestamp '{raw.iloc[pos]}' in column '{column}' has a "
                "time zone while others do not; use one convention for the whole file"
            ) from None
    missing = parsed.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        value = raw.iloc[pos]
        what = "missing timestamp" if pd.isna(value) or str(value).strip() == "" else f"cannot parse timestamp '{value}'"
        raise DataError(f"{source}: {_where(source, pos, raw)}: {what} in column '{column}'")
    return pd.DatetimeIndex(parsed, name="timestamp")


# A date written with its year last (01/02/2024, 1.2.24): the order of day and month is not in the
# text. pandas' "mixed" parsing decides it cell by cell, so 30/01 and 01/02 in one column become
# 30 January and 2 January; it is decided here once for the whole column instead.
_YEAR_LAST = r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{2}(?:\d{2})?(?:$|[ T])"


def _day_first(text: pd.Series, source: str, column: str) -> bool:
    """Whether year-last dates put the day first: from a day over 12, else the order that keeps the
    rows in time order with no step far longer than the typical one (month first when both do equally)."""
    written = text.dropna()
    if written.empty or not re.match(_YEAR_LAST, str(written.iloc[0])):
        return False
    fields = text.str.extract(_YEAR_LAST)
    present = fields[0].notna().to_numpy()
    if not present.any():
        return False
    first, second = fields[0].astype("float").to_numpy(), fields[1].astype("float").to_numpy()
    day_first, month_first = np.flatnonzero(first > 12), np.flatnonzero(second > 12)
    if len(day_first) and len(month_first):
        d, m = int(day_first[0]), int(month_first[0])
        raise DataError(
            f"{source}: column '{column}' writes dates day first ({_where(source, d, text)}: '{text.iloc[d]}') and "
            f"month first ({_where(source, m, text)}: '{text.iloc[m]}'); use one order for the whole file"
        )
    if len(day_first) or len(month_first):
        return bool(len(day_first))

    def disorder(dayfirst: bool) -> tuple[int, float]:
        # Rows out of order, then the longest step against the typical one: read in the wrong order,
        # daily rows jump a month every few rows and monthly rows crowd into a few days of one month.
        stamps = pd.to_datetime(text[present], errors="coerce", format="mixed", dayfirst=dayfirst)
        steps = np.diff(stamps.dropna().to_numpy().astype("datetime64[s]").astype(np.int64))
        forward = steps[steps > 0]
        return int((steps < 0).sum()), float(forward.max() / np.median(forward)) if len(forward) else 1.0

    return disorder(True) < disorder(False)


def _one_format(text: pd.Series, utc: bool, dayfirst: bool) -> pd.Series | None:
    """The column parsed in the format of its first timestamp; None when another cell needs another.

    pandas' "mixed" parsing goes cell by cell, about 40 times slower on dates like 25/01/2024 13:00."""
    written = text.notna() & (text != "")
    if not written.any():
        return None
    fmt = guess_datetime_format(str(text[written].iloc[0]), dayfirst=dayfirst)
    if fmt is None:
        return None
    parsed = pd.to_datetime(text, errors="coerce", utc=utc, format=fmt)
    return None if (parsed.isna() & written).any() else parsed


def _first_zoned(text: pd.Series) -> int:
    """Position of the first timestamp that parses with a time zone (only on the error path: one by one)."""
    for pos, value in enumerate(text):
        try:
            if not pd.isna(value) and pd.Timestamp(value).tz is not None:
                return pos
        except ValueError:
            continue
    return 0


def _numeric_column(raw: pd.Series, source: str, name: str) -> pd.Series:
    """Convert one sensor column to float; a non-empty cell that is not a number is an error."""
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype("float64")
    if pd.api.types.is_numeric_dtype(raw):
        return raw.astype("float64")
    text = _cell_text(raw)
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & text.notna() & ~text.str.lower().isin(["nan", "inf", "-inf", "+inf"])
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        value = str(raw.iloc[pos]).strip()
        hint = (
            " (if that comma is a decimal mark, write the numbers with a decimal point)"
            if _COMMA_DECIMAL.fullmatch(value)
            else ""
        )
        raise DataError(f"{source}: column '{name}', {_where(source, pos, raw)}: non-numeric value '{raw.iloc[pos]}'{hint}")
    return values.astype("float64")


def _looks_numeric(raw: pd.Series) -> bool:
    """True when most non-empty cells parse as numbers (such a column is a sensor; its odd cells are errors)."""
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        return True
    text = _cell_text(raw).dropna()
    return len(text) > 0 and pd.to_numeric(text, errors="coerce").notna().mean() > 0.5


def select_columns(raw: pd.DataFrame, source: str, timestamp_col: str, columns: list[str] | None) -> list[str]:
    """The sensor columns to use: those asked for, or every numeric column but the timestamp."""
    if columns:
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise DataError(
                f"{source}: no column {', '.join(repr(c) for c in missing)} (columns: {', '.join(map(str, raw.columns))})"
            )
        if timestamp_col in columns:
            raise DataError(f"{source}: column '{timestamp_col}' is the timestamp, not a sensor")
        return list(columns)
    candidates = [c for c in raw.columns if c != timestamp_col]
    # pandas names a column with a blank header "Unnamed: N"; it is nearly always a saved row index
    # (DataFrame.to_csv writes one by default), whose row numbers would be learned as a sensor.
    unnamed = [c for c in candidates if _UNNAMED.fullmatch(str(c))]
    empty = [c for c in candidates if c not in unnamed and not _has_values(raw[c])]
    chosen = [c for c in candidates if c not in unnamed and c not in empty and _looks_numeric(raw[c])]
    skipped = {
        "without a header (a saved row index?)": unnamed,
        "with no values": empty,
        "non-numeric": [c for c in candidates if c not in unnamed + empty + chosen],
    }
    skipped = {why: names for why, names in skipped.items() if names}
    said = "; ".join(f"{why}: {', '.join(repr(str(c)) for c in names)}" for why, names in skipped.items())
    if not chosen:  # one line, no warning before it: the error names the columns it skipped
        raise DataError(f"{source}: no numeric sensor column besides '{timestamp_col}'" + (f" ({said})" if said else ""))
    if skipped:
        log.warning("%s: skipping column(s) %s", source, said)
    return chosen


_UNNAMED = re.compile(r"Unnamed: \d+(?:_level_\d+)?")


def _has_values(raw: pd.Series) -> bool:
    """True when some cell holds something (a column of blanks is a sensor never read)."""
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        return bool(raw.notna().any())
    return bool(_cell_text(raw).notna().any())


def guess_timestamp_column(raw: pd.DataFrame) -> str:
    """The column most likely to hold the timestamps, for a form's default: the first whose first
    rows parse as times, those named like one (timestamp, time, date...) tried first; else the first.

    A name alone does not decide it: server metrics have sensors named response_time or uptime."""
    names = [str(c) for c in raw.columns]
    named = [i for i, name in enumerate(names) if re.search(r"time|date|^ts$|^t$", name, re.IGNORECASE)]
    head = raw.head(20)
    for i in named + [i for i in range(len(names)) if i not in named]:
        try:
            parse_timestamps(head.iloc[:, i], "data", names[i])
        except DataError:
            continue
        return names[i]
    return names[0]


def detect_interval(index: pd.DatetimeIndex, source: str = "data") -> pd.Timedelta:
    """The sampling interval: the median step between consecutive distinct timestamps.

    With jittered timestamps (a reading "every minute", give or take some seconds) the median may
    be 59 s; then the mean of the typical steps (within half the median of it), rounded to two
    significant digits, gives the intended 60 s. Regular data keep their exact step, and so does
    data whose steps are mostly one exact value (daily readings across daylight saving: 23 h, 25 h).
    Calendar months, quarters and years have no fixed step, so such data are refused rather than
    averaged onto a 30-day grid that would move every timestamp and blend neighbouring readings.
    """
    steps = np.diff(np.unique(index.as_unit("ns").asi8))
    if len(steps) == 0:
        raise DataError(f"{source}: cannot detect the sampling interval from a single timestamp")
    median = int(np.median(steps))
    typical = steps[(steps >= median * 0.5) & (steps <= median * 1.5)]  # not the multiples left by gaps
    if len(typical) == 0 or typical.min() == typical.max():
        return pd.Timedelta(median, unit="ns")
    _refuse_calendar_steps(typical, source)  # before the next rule: 31 days is most months' step
    values, counts = np.unique(typical, return_counts=True)
    if counts.max() * 2 >= len(typical):  # one exact step for most rows: daily data across DST (23 h, 25 h)
        return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")
    mean = float(typical.mean())
    unit = 10 ** max(int(np.floor(np.log10(mean))) - 1, 0)
    return pd.Timedelta(max(int(round(mean / unit)) * unit, 1), unit="ns")


# Steps, in days, of timestamps one calendar month, quarter or year apart (an hour either way for a
# daylight-saving change in a local time zone).
CALENDAR_STEPS = {"month": (28, 31, 30), "quarter": (89, 92, 91), "year": (365, 366, 365)}  # and a fixed step to offer


def _refuse_calendar_steps(steps: np.ndarray, source: str) -> None:
    days = steps / pd.Timedelta(days=1).value
    for unit, (lo, hi, fixed) in CALENDAR_STEPS.items():
        if days.min() >= lo - 1 / 24 and days.max() <= hi + 1 / 24:
            raise DataError(
                f"{source}: the timestamps are a calendar {unit} apart ({days.min():.3g} to {days.max():.3g} days); "
                f"a {unit} has no fixed length and the model needs a fixed sampling interval: give the readings "
                f"a fixed step (every {fixed} days, say)"
            )


def on_grid(frame: pd.DataFrame, step: pd.Timedelta, source: str = "data", max_gap: int = 3) -> pd.DataFrame:
    """``frame`` with the timestamps missing from its grid of ``step`` put back, as :func:`clean_frame`
    leaves a file: runs of at most ``max_gap`` missing points interpolated, longer ones NaN rows
    (breaks no window crosses).

    For frames built in Python: ``df.dropna()`` leaves a hole that windows would otherwise run
    straight across. Rows of another sampling rate (none one step apart, or most a fraction of a
    step apart) are a :class:`DataError`. Timestamps off the grid (jittered clocks, a daily reading that follows
    daylight saving) are read as they are, one row per step, as they always were.
    """
    ns = frame.index.as_unit("ns").asi8
    if len(frame) < 2 or (np.diff(ns) == step.value).all():
        return frame
    seen, order = _step_against(frame.index, step, source)
    if order > 0:
        raise DataError(
            f"{source}: rows are {_step_text(seen)} apart, but the model's step is {_step_text(step)}; filling in "
            f"between them would invent rows: give rows every {_step_text(step)}, or fit a model on this data"
        )
    if order < 0:  # the CLI averages a file into the model's step; a frame is the caller's to average
        raise DataError(
            f"{source}: rows are {_step_text(seen)} apart, but the model's step is {_step_text(step)}; average "
            f"them into it first: frame.resample('{_step_text(step)}').mean()"
        )
    if ((ns - ns[0]) % step.value).any():
        return frame
    _check_grid(frame.index, step, source)
    return fill_short_gaps(frame.asfreq(step), max_gap)


def _step_text(step: pd.Timedelta) -> str:
    """A step as pandas writes a frequency: 1min, 30s, 7D."""
    text = to_offset(step).freqstr
    return text if text[0].isdigit() else f"1{text}"


def zone_name(tz) -> str:
    """The name of a time zone object saved with a model: IANA for zoneinfo, pytz and dateutil
    zones, ``UTC`` or ``UTC+01:00`` for fixed offsets. A zone with no name (dateutil's tzlocal) is
    a :class:`DataError`: a model read on another machine would use another clock."""
    for attribute in ("key", "zone"):  # zoneinfo, pytz
        if isinstance(getattr(tz, attribute, None), str):
            return getattr(tz, attribute)
    text = repr(tz)
    dateutil = re.fullmatch(r"tzfile\('(?:.*zoneinfo/)?([^']+)'\)", text)  # tzfile('/usr/share/zoneinfo/Europe/Berlin')
    if dateutil:
        return dateutil.group(1)
    if text.startswith(("tzutc(", "tzoffset(")):  # dateutil's fixed offsets
        return str(dt.timezone(tz.utcoffset(None)))
    if text.startswith("tzlocal("):
        raise DataError(
            "the index's time zone is the machine's local zone (tzlocal), which has no name; tz_convert it to a named zone"
        )
    return str(tz)  # datetime.timezone: UTC, UTC+01:00


def _resample(frame: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """``frame`` on the grid of ``step`` from its first timestamp: each grid row the mean of its bin.

    Readings about ``step`` apart are put in bins centred on the grid points: pandas' own bins
    start at them (``origin="start"``), so a reading a second early (a jittered clock) or an hour
    early (a daily reading on a local clock after a daylight-saving change, read in UTC) fell into
    the previous bin: two readings averaged, the next bin empty. Finer readings (half a step apart
    or less, aggregated to a coarser interval) keep pandas' bins: each row the mean of the readings
    from its timestamp to the next.
    """
    if len(frame) < 2 or np.median(np.diff(frame.index.as_unit("ns").asi8)) <= step.value / 2:
        return frame.resample(step, origin="start").mean()
    half = step / 2
    out = frame.resample(step, origin=frame.index[0] - half).mean()
    out.index = out.index + half
    return out


def infinite_as_missing(frame: pd.DataFrame, source: str = "data") -> pd.DataFrame:
    """``frame`` with every infinite value NaN, with a warning: a logger's overflow code, not a reading."""
    n_inf = int(np.isinf(frame.to_numpy()).sum())
    if n_inf:
        log.warning("%s: %d infinite value(s) treated as missing", source, n_inf)
        frame = frame.replace([np.inf, -np.inf], np.nan)
    return frame


def codes_as_missing(frame: pd.DataFrame, source: str, codes: tuple[float, ...]) -> pd.DataFrame:
    """``frame`` with every cell equal to one of ``codes`` NaN, with a warning counting them: a
    logger's code for "no reading" is not a reading (scaled, 9.9e37 could not even be scored)."""
    if not len(codes):
        return frame
    bad = [c for c in codes if isinstance(c, bool) or not isinstance(c, numbers.Real) or not np.isfinite(c)]
    if bad:
        raise DataError(f"missing values must be finite numbers, not {bad[0]!r}")
    # A float32 column (Parquet from a logger) holds float32(9.9e37), which is not float64 9.9e37.
    with np.errstate(over="ignore"):  # a code beyond float32's range has no float32 twin
        targets = np.concatenate([np.asarray(codes, dtype=np.float64), np.asarray(codes, dtype=np.float32)])
    hits = np.isin(frame.to_numpy(), targets[np.isfinite(targets)])
    if hits.any():
        counts = ", ".join(f"{name} {n}" for name, n in zip(frame.columns, hits.sum(axis=0), strict=True) if n)
        log.warning("%s: %d cell(s) equal to a missing-value code treated as missing (%s)", source, int(hits.sum()), counts)
        frame = frame.mask(hits)
    return frame


def fill_short_gaps(frame: pd.DataFrame, max_gap: int) -> pd.DataFrame:
    """Interpolate (in time) runs of at most ``max_gap`` missing points; longer runs stay NaN.

    pandas' ``interpolate(limit=...)`` would fill the first points of a long gap too, so the runs
    are measured here and only the short ones are kept from the interpolated copy.
    """
    if max_gap <= 0 or not frame.isna().any().any():
        return frame
    filled = frame.interpolate(method="time", limit_area="inside")
    out = frame.copy()
    for col in frame.columns:
        missing = frame[col].isna()
        run_id = (missing != missing.shift()).cumsum()
        run_len = missing.groupby(run_id).transform("size")
        short = missing & (run_len <= max_gap)
        out.loc[short, col] = filled.loc[short, col]
    return out


def _step_against(index: pd.DatetimeIndex, step: pd.Timedelta, source: str) -> tuple[pd.Timedelta, int]:
    """The readings' own step, and whether it is coarser (1), finer (-1) than ``step`` or about it (0).

    Coarser means no two readings one ``step`` apart, not a long median step: a short file with a
    gap (the tail a scheduled run reads) has a long median step but is on the grid."""
    try:
        seen = detect_interval(index, source)
    except DataError:  # no single step to name (calendar months...): the grid check that follows says why
        return step, 0
    steps = np.diff(np.unique(index.as_unit("ns").asi8))
    one_step = (steps >= step.value * 0.5) & (steps < step.value * 1.5)
    if seen >= 1.5 * step and not one_step.any():
        return seen, 1
    return seen, -1 if seen * 1.5 <= step else 0


def _match_interval(index: pd.DatetimeIndex, step: pd.Timedelta, source: str, step_of: str) -> None:
    """Refuse readings a coarser step apart than ``step`` (``step_of``'s: a model's, another file's);
    warn that finer ones are averaged into it."""
    seen, order = _step_against(index, step, source)
    if order > 0:
        raise DataError(
            f"{source}: readings are {_step_text(seen)} apart, {step_of}'s step is {_step_text(step)}; filling in "
            f"between them would invent readings: give readings every {_step_text(step)}"
            + (", or train a model on this data" if step_of == "the model" else "")
        )
    if order < 0:
        log.warning(
            "%s: readings are %s apart; averaged into %s's step of %s", source, _step_text(seen), step_of, _step_text(step)
        )


def _check_grid(index: pd.DatetimeIndex, step: pd.Timedelta, source: str) -> None:
    """Refuse a regular grid far larger than the data: one stray timestamp (a wrong year, say)
    would otherwise resample a few hundred rows into hundreds of millions and exhaust memory."""
    span = int(index.as_unit("ns").asi8[-1]) - int(index.as_unit("ns").asi8[0])
    rows = span // max(int(step.value), 1) + 1
    limit = max(MAX_GRID_FACTOR * len(index), MAX_GRID_ROWS)
    if rows > limit:
        steps = np.diff(index.as_unit("ns").asi8)
        at = int(np.argmax(steps))
        raise DataError(
            f"{source}: timestamps from {index[0]} to {index[-1]} at a {step} interval would make {rows:,} rows "
            f"(largest jump: {index[at]} -> {index[at + 1]}); is a timestamp wrong?"
        )


def clean_frame(
    raw: pd.DataFrame,
    source: str = "data",
    *,
    timestamp_col: str = "timestamp",
    columns: list[str] | None = None,
    duplicates: str = "error",
    max_gap: int = 3,
    interval: pd.Timedelta | str | None = None,
    interval_of: str | None = None,
    marking_filled: bool = False,
    missing_values: tuple[float, ...] = (),
) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
    """Validate and clean a raw frame into a regular float frame indexed by timestamp.

    ``interval`` forces the sampling interval (a model's, at scoring time); otherwise it is detected.
    With ``interval_of``, what that interval is of ("the model", another file), readings spaced wider
    than ``interval`` are refused (filling in between them would invent readings) and finer ones are
    averaged into it with a warning.
    Rows of the result that still hold NaN are breaks (gaps longer than ``max_gap`` points).
    ``marking_filled``: return ``(frame, filled)`` instead, ``filled`` true at the rows that hold an
    interpolated value (the scheduled scorer scores them again when their readings arrive).
    ``missing_values``: numbers a logger writes for "no reading" (-9999, an overload 9.9e37), read as missing.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise DataError(f"duplicates policy must be one of {', '.join(DUPLICATE_POLICIES)}, not '{duplicates}'")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise DataError(f"max_gap must be an integer >= 0 (points to interpolate), not {max_gap!r}")
    if timestamp_col not in raw.columns:
        raise DataError(
            f"{source}: no timestamp column '{timestamp_col}' (columns: {', '.join(map(str, raw.columns))}); choose one with --timestamp-col"
        )
    if len(raw) == 0:
        raise TooFewRowsError(f"{source}: has a header but no data rows")
    raw = raw.reset_index(drop=True)
    index = parse_timestamps(raw[timestamp_col], source, timestamp_col)
    sensors = select_columns(raw, source, timestamp_col, columns)
    frame = pd.DataFrame({str(c): _numeric_column(raw[c], source, str(c)) for c in sensors})
    frame.index = index
    frame = codes_as_missing(frame, source, missing_values)

    non_finite = ~np.isfinite(frame.to_numpy())
    if non_finite.all(axis=0).any():
        col = frame.columns[int(np.flatnonzero(non_finite.all(axis=0))[0])]
        raise DataError(f"{source}: column '{col}' has no values")
    frame = infinite_as_missing(frame, source)

    if not frame.index.is_monotonic_increasing:
        log.warning("%s: rows are not in time order; sorted them", source)
        frame = frame.iloc[np.argsort(frame.index.as_unit("ns").asi8, kind="stable")]
    dup = frame.index.duplicated()
    if dup.any():
        if duplicates == "error":
            pos = int(np.flatnonzero(dup)[0])
            hint = (
                ", all within an hour, as when a clock is set back at the end of daylight saving: write the "
                "times with their UTC offset, or"
                if _repeated_hour(frame.index, dup)
                else ";"
            )
            raise DataError(
                f"{source}: duplicate timestamp {frame.index[pos]} ({int(dup.sum())} in all){hint} use --duplicates mean to average them"
            )
        log.warning("%s: averaged %d duplicate timestamp(s)", source, int(dup.sum()))
        frame = frame.groupby(level=0).mean()

    if interval is None and len(frame.index) < 2:
        raise DataError(f"{source}: one timestamp only; the sampling interval needs two or more")
    step = pd.Timedelta(interval) if interval is not None else detect_interval(frame.index, source)
    if step <= pd.Timedelta(0):
        raise DataError(f"{source}: sampling interval must be positive, not {step}")
    if interval_of is not None and len(frame.index) > 2:
        _match_interval(frame.index, step, source, interval_of)
    _check_grid(frame.index, step, source)
    frame = _resample(frame, step)
    frame.index.name = "timestamp"
    read_rows = np.isfinite(frame.to_numpy()).all(axis=1)
    frame = fill_short_gaps(frame, max_gap)
    finite_rows = np.isfinite(frame.to_numpy()).all(axis=1)
    if not finite_rows.any():
        raise DataError(f"{source}: no row has a value for every sensor")
    first, last = np.flatnonzero(finite_rows)[[0, -1]]
    if first > 0 or last < len(frame) - 1:  # a sensor that starts reporting late or stops early
        edges = np.r_[0:first, last + 1 : len(frame)]
        blank = [str(c) for c in frame.columns if frame[c].iloc[edges].isna().any()]
        log.warning(
            "%s: left out the first %d and the last %d row(s), where %s %s no value (every sensor needs one)",
            source,
            first,
            len(frame) - 1 - last,
            ", ".join(f"'{c}'" for c in blank),
            "has" if len(blank) == 1 else "have",
        )
    frame = frame.iloc[first : last + 1]
    return (frame, (finite_rows & ~read_rows)[first : last + 1]) if marking_filled else frame


def _repeated_hour(index: pd.DatetimeIndex, dup: np.ndarray) -> bool:
    """Whether the repeated times are one hour of readings written twice, as a local clock set back at the
    end of daylight saving writes them (02:00 to 02:59, then 02:00 to 02:59 again): naive times, each
    repeated once, evenly spaced, an hour in all. Two repeated minutes in January are not that."""
    repeated = index[dup]
    if index.tz is not None or len(repeated) < 2 or repeated.has_duplicates:
        return False
    steps = np.diff(repeated.as_unit("ns").asi8)
    return bool((steps == steps[0]).all()) and repeated[-1] - repeated[0] + pd.Timedelta(int(steps[0])) == pd.Timedelta(hours=1)


def load_series(
    path: str | Path,
    *,
    timestamp_col: str = "timestamp",
    columns: list[str] | None = None,
    duplicates: str = "error",
    max_gap: int = 3,
    interval: pd.Timedelta | str | None = None,
    interval_of: str | None = None,
    missing_values: tuple[float, ...] = (),
) -> pd.DataFrame:
    """Read and clean a CSV or Parquet file of sensor readings (see :func:`clean_frame`)."""
    return clean_frame(
        read_table(path),
        str(path),
        timestamp_col=timestamp_col,
        columns=columns,
        duplicates=duplicates,
        max_gap=max_gap,
        interval=interval,
        interval_of=interval_of,
        missing_values=missing_values,
    )


def select_period(
    frame: pd.DataFrame, start: str | None = None, end: str | None = None, frac: float | None = None
) -> pd.DataFrame:
    """The normal period: rows between ``start`` and ``end`` (inclusive), or the first ``frac`` of rows."""
    if frac is not None:
        if not 0 < frac <= 1:
            raise DataError(f"normal fraction must be in (0, 1], not {frac}")
        return frame.iloc[: max(1, int(round(len(frame) * frac)))]
    tz = frame.index.tz
    lo = _as_time(start, tz, "normal start") if start else None
    hi = _as_time(end, tz, "normal end") if end else None
    return frame.loc[lo:hi]


def _as_time(value: str, tz, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"{what}: cannot parse timestamp '{value}'") from None
    if tz is not None and ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    elif tz is None and ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def check_output(path: str | Path, reads: str | Path | None = None) -> Path:
    """``path`` as a table file :func:`write_table` can write, or a DataError; commands check their
    outputs before any work, so a bad one is refused before anything is written. ``reads``: the
    command's input file, which the output must not replace."""
    path = Path(path)
    if reads is not None and path.exists() and Path(reads).exists() and path.samefile(reads):
        raise DataError(f"{path}: is the input data file; write the output to another file")
    if path.suffix.lower() not in PARQUET_SUFFIXES | {".csv"}:
        raise DataError(f"{path}: output must end in .csv or .parquet")
    return check_writable(path)


def split_names(text: str) -> list[str]:
    """Column names from one comma-separated text, read as a CSV row (the csv module's quoting):
    a name that holds a comma is written in double quotes, ``temp,"flow, l/min"``. Blank names are dropped."""
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [name.strip() for name in row if name.strip()]


def codes_text(codes) -> str:
    """Missing-value codes as a person reads them: ``-9999, 9.9e+37``."""
    return ", ".join(f"{c:g}" for c in codes)


def split_numbers(text: str) -> tuple[float, ...]:
    """Finite numbers from one comma-separated text (``--missing-values``, the app's field); blanks dropped."""
    try:
        numbers = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise DataError(f"expected comma-separated numbers, not '{text}'") from None
    if not all(np.isfinite(numbers)):
        raise DataError(f"expected comma-separated finite numbers, not '{text}'")
    return numbers


def missing_value_codes(text: str) -> tuple[float, ...]:
    """The codes of ``--missing-values`` and the app's “Missing-value codes”: one or more numbers, or
    ``none`` for none (it clears the codes a model was trained with)."""
    if text.strip().lower() == "none":
        return ()
    codes = split_numbers(text)
    if not codes:  # "," or "" is no list
        raise DataError(f"expected comma-separated numbers or none, not '{text.strip()}'")
    return codes


def check_writable(path: str | Path, option: str = "") -> Path:
    """``path`` as a file that can be written (its folder exists, it is no folder), or a DataError
    naming ``option`` where given."""
    path = Path(path)
    said = f"{path}: {option}: " if option else f"{path}: "
    if not path.parent.is_dir():
        raise DataError(f"{said}directory {path.parent} does not exist")
    if path.is_dir():
        raise DataError(f"{said}is a directory, not a file to write")
    return path


def iso_timestamps(frame: pd.DataFrame, index: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` with its timestamp columns (and its index, with ``index``) as ISO 8601
    text: how every CSV the tool writes, and the dashboard's downloads, give times."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].map(lambda t: t.isoformat() if pd.notna(t) else "")
    if index and isinstance(out.index, pd.DatetimeIndex):
        out.index = out.index.map(lambda t: t.isoformat())
    return out


def write_table(frame: pd.DataFrame, path: str | Path, *, index: bool = False) -> Path:
    """Write CSV or Parquet (by suffix) atomically: a temporary name beside ``path``, then rename.

    Timestamps are written in ISO 8601. An interrupted write leaves any previous file untouched;
    the hidden ``.NAME.tmp-*`` file of a write that was killed outright is removed by the next one.
    """
    return write_tables([(frame, path)], index=index)[0]


def write_tables(outputs: list[tuple[pd.DataFrame, str | Path]], *, index: bool = False) -> list[Path]:
    """Write several tables as :func:`write_table` does, every one to its temporary name before any
    is renamed: a failing write (a full disk, a name too long) leaves every previous file in place
    rather than a new file beside an old one. Only a rename refused after the writes succeeded (rare:
    same folder, checked writable) could leave the outputs renamed before it replaced."""
    import glob
    import os
    import uuid

    paths = [check_output(path) for _, path in outputs]
    for path in paths:
        for stale in path.parent.glob(f".{glob.escape(path.name)}.tmp-*"):
            stale.unlink(missing_ok=True)
    tmps = [path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}") for path in paths]
    path = None  # the output being written, for the error
    try:
        for (frame, _), path, tmp in zip(outputs, paths, tmps, strict=True):
            if path.suffix.lower() in PARQUET_SUFFIXES:
                frame.to_parquet(tmp, index=index)
            else:
                iso_timestamps(frame, index).to_csv(tmp, index=index)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before the name points at it
            finally:
                os.close(fd)
        for path, tmp in zip(paths, tmps, strict=True):
            os.replace(tmp, path)
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or first_line(exc)})") from None
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):  # a name too long to write is too long to remove: keep the error above
                tmp.unlink(missing_ok=True)
    return paths

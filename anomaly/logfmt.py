"""logfmt: one ``key=value`` line per log record, the format log collectors (Loki, Vector...) parse.

The scheduled scorer (``anomaly score --db``, ``score-batch``) logs this way, so a journal or a
collector reads each run's outcome as fields; see the README's "Scheduled scoring".
"""

from __future__ import annotations

import datetime as dt
import logging
import sys

import pandas as pd


def _logfmt_value(value) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (pd.Timestamp, dt.datetime)):
        text = value.isoformat()
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
    return text


def logfmt(**fields) -> str:
    """``key=value`` pairs, values quoted when needed: the format log collectors (Loki, Vector...) parse."""
    return " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items() if v is not None)


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=... msg="..."`` plus the record's ``fields`` extra (a dict)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        ts = ts.replace("+00:00", "Z")
        line = logfmt(ts=ts, level=record.levelname.lower(), msg=record.getMessage(), **getattr(record, "fields", {}))
        if record.exc_info:
            line += " " + logfmt(exc=self.formatException(record.exc_info).strip().splitlines()[-1])
        return line


def use_logfmt(logger: logging.Logger | None = None) -> None:
    """Send ``logger`` (default: ``anomaly``) to stderr in logfmt, one line per record."""
    logger = logger or logging.getLogger("anomaly")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    logger.handlers[:] = [handler]
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False

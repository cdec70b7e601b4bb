"""Scheduled scoring: one run of (data, model) into the results database, alerts, and batches on Dask.

A run (:func:`run_job`) takes the lock of its source, records itself in ``runs``, loads the model
and the data exactly as ``anomaly score`` does, scores only what changed (see
:mod:`anomaly.incremental`), recomputes the events near the new rows, and writes everything in one
transaction (:meth:`anomaly.store.Store.commit_run`). Problems become a ``failed`` run, a logfmt
line on stderr and an exit code; nothing is half-written.

A batch (:func:`run_batch`) is a list of jobs read from a TOML file; it runs them one after the
other, or on a Dask cluster (``dask.distributed``: a ``LocalCluster`` of N worker processes, or
an existing scheduler) with the same function on each worker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from anomaly.errors import (
    EXIT_ANOMALIES,
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_OK,
    AnomalyError,
    ConfigError,
    DataError,
    TooFewRowsError,
    first_line,
    interruption,
    stopped_by,
)
from anomaly.feedback import split_silenced
from anomaly.flagging import TRAILING
from anomaly.io import DUPLICATE_POLICIES, split_names
from anomaly.loading import ReadOptions, load_for_model, load_model, naming
from anomaly.logfmt import use_logfmt
from anomaly.store import LockedError, Store, naive_utc, open_store
from anomaly.thresholds import fixed_threshold

log = logging.getLogger("anomaly")

DEFAULT_LOCK_TIMEOUT = 60.0
ON_EVENT_TIMEOUT_S = 120
PAUSE_ENV = "ANOMALY_TEST_PAUSE_BEFORE_COMMIT"  # test seam: see _pause_before_commit
_NO_ROWS = pd.DataFrame(index=pd.DatetimeIndex([]))  # what a run that scores nothing commits


class ClusterError(AnomalyError):
    """The Dask scheduler cannot be reached."""

    exit_code = EXIT_ERROR


class ModelChangedError(AnomalyError):
    """The model was saved again while a run was loading it; the next run scores with the new one."""

    exit_code = EXIT_ERROR


@dataclass
class Job:
    """One (data, model) pair to score into the database, with the options of ``anomaly score``."""

    data: str
    model: str
    source: str | None = None
    # How the data is read (anomaly.loading.ReadOptions): None, as the model's training data was read.
    timestamp_col: str | None = None
    columns: list[str] | None = None
    duplicates: str | None = None
    max_gap: int | None = None
    missing_values: tuple[float, ...] | None = None  # read as missing (a jobs file gives a list)
    threshold: float | None = None
    quantile: float | None = None
    min_length: int | None = None
    merge_gap: int | None = None
    rescore: bool = False
    engine: str = "auto"  # see anomaly score --engine
    alerts: bool = False  # queue new events for --on-event (set by the command line, not a jobs-file key)

    @property
    def source_name(self) -> str:
        """``source`` if given, else the data file's absolute path (the same from cron and a shell)."""
        return self.source or str(Path(self.data).expanduser().resolve())

    @property
    def model_name(self) -> str:
        """``FOLDER@VERSION``: the model folder's absolute path and :func:`anomaly.artifacts.model_version`,
        so the scores of a model retrained into the same folder are kept apart (a new model in the store)."""
        from anomaly.artifacts import model_version

        folder = Path(self.model).expanduser().resolve()
        return f"{folder}@{model_version(folder)}"


@dataclass
class JobResult:
    source: str
    model: str
    status: str  # success, failed, locked
    exit_code: int
    run_id: int | None = None
    rows_scored: int = 0
    rows_new: int = 0
    new_events: list[dict] = field(default_factory=list)  # the new events to alert on
    silenced: list[dict] = field(default_factory=list)  # new events an operator's verdict silenced
    reported: list[dict] = field(default_factory=list)  # new events in time an earlier model version scored
    error: str | None = None
    seconds: float = 0.0


def _pause_before_commit() -> None:
    """Test seam: with ``ANOMALY_TEST_PAUSE_BEFORE_COMMIT=FILE`` set, create FILE and sleep inside the
    run's write transaction, so a test can SIGKILL a run midway at a known point."""
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        Path(marker).touch()
        time.sleep(600)


def load_job(job: Job):
    """``(detector, data)`` of ``job``, loaded as ``anomaly score`` loads them (so both read identical frames),
    less a last line still being written."""
    detector, data, _ = load_job_marking_filled(job)
    return detector, data


def load_job_marking_filled(job: Job):
    """:func:`load_job` and which rows of ``data`` hold a value filled in (a short gap interpolated),
    not read: their readings may arrive later, and then those rows must be scored again."""
    detector = load_model(job.model, job.engine, job.min_length, job.merge_gap)
    data, filled = load_for_model(job.data, ReadOptions.of(job), detector, complete_lines=True, marking_filled=True)
    return detector, data, filled


def _score_run(store: Store, run_id: int, job: Job, model: str, fields: dict) -> JobResult:
    """Load and score ``job``; ``model``: the model's name (version) when the run began.

    Too few rows to score yet (a new sensor, a file just rotated to its header or to nothing) is a successful run
    that writes nothing, with a warning: under a scheduler the rows come, and an error each time
    would page someone until they do.
    """
    try:
        detector, data, filled = load_job_marking_filled(job)
        if job.model_name != model:  # retrained between the run's start and the load: whose scores are these?
            raise ModelChangedError(f"{job.model}: the model was saved again during the run; run again to score with it")
        with naming(job.data):  # the detector's DataErrors name the data file, as `anomaly score` does
            return _score_loaded(store, run_id, job, model, fields, detector, data, filled)
    except TooFewRowsError as exc:
        log.warning("%s; waiting for more rows", exc, extra={"fields": {"source": job.source_name}})
        store.commit_run(run_id, job.source_name, model, _NO_ROWS, before_commit=_pause_before_commit)
        return JobResult(job.source_name, model, "success", EXIT_OK, run_id)


def _score_loaded(store: Store, run_id: int, job: Job, model: str, fields: dict, detector, data, filled) -> JobResult:
    """Score the rows of ``data`` a run writes (``filled``: its rows holding an interpolated value)."""
    from anomaly.incremental import rows_to_write, score_rows

    source = job.source_name
    if detector.local_rule == TRAILING and job.threshold is None and job.quantile is None:
        return _score_run_causal(store, run_id, job, model, fields, detector, data, filled)
    stamps = naive_utc(data.index)
    finite = np.isfinite(data[detector.columns_].to_numpy()).all(axis=1)
    known = store.stored_timestamps(source, model, stamps[0], stamps[-1])
    stored = np.isin(stamps.asi8, known.asi8)
    plan = np.zeros(len(data), dtype=bool) if job.rescore else stored
    rows = rows_to_write(finite, plan, detector.window, detector.stride_, detector.smoothing_)
    if not rows.any():
        store.commit_run(run_id, source, model, data.iloc[:0], before_commit=_pause_before_commit)
        return JobResult(source, model, "success", EXIT_OK, run_id)
    _warn_short_context(store, job, model, detector, rows, stamps)
    new = score_rows(detector, data, rows, threshold=job.threshold, quantile=job.quantile)
    new.index = naive_utc(new.index)
    return _commit(store, run_id, job, model, fields, detector, new, known, float(new["threshold"].iloc[0]))


def _score_run_causal(store: Store, run_id: int, job: Job, model: str, fields: dict, detector, data, filled) -> JobResult:
    """A run of a model with causal flagging: the rows after the stored checkpoint, flagged from its state.

    The state also keeps the clock of DATA's times and which final rows were filled in (a short gap
    interpolated): when their readings arrive, they are late rows like any other."""
    from anomaly.incremental import score_causal

    source = job.source_name
    stamps = naive_utc(data.index)  # the database's clock: naive UTC
    utc = data.index.tz is not None  # stored in UTC when DATA's times carry offsets, as written otherwise
    saved = store.flag_state(source, model)
    _check_same_clock(job, saved, utc)
    saved = None if job.rescore else saved
    context = sum(detector.reach()) - 1  # rows before a row whose windows' estimates reach it
    if saved is not None and saved[0] < stamps[0] + context * detector.interval_:
        log.warning(
            "DATA starts only %d rows before the first row to write (the model needs %d for full context); "
            "keep older rows in DATA for scores equal to a full re-score",
            max(0, int((saved[0] - stamps[0]) / detector.interval_)),
            context,
            extra={"fields": {"source": source}},
        )
    known = store.stored_timestamps(source, model, stamps[0], stamps[-1])
    if saved is not None:
        finite = np.isfinite(data[detector.columns_].to_numpy()).all(axis=1)
        scorable = detector.estimated_rows(finite)
        arrived = stamps.isin(pd.DatetimeIndex(saved[1].get("filled", []))) & ~filled  # read now, filled in before
        waiting = scorable & (~stamps.isin(known) | arrived)
        if not waiting.any():  # nothing new: the rows after the state's row are stored as this DATA gives them
            store.commit_run(run_id, source, model, data.iloc[:0], before_commit=_pause_before_commit)
            return JobResult(source, model, "success", EXIT_OK, run_id)
        late = int((waiting & (stamps <= saved[0])).sum())
        if late:  # a hole filled before the state's row: flags after it may change, so start again
            refilled = int((arrived & (stamps <= saved[0])).sum())
            log.warning(
                "%d late row(s) at or before the last final row (%s)%s: scoring and flagging DATA from its start",
                late,
                saved[0],
                f", {refilled} of them filled in by interpolation before their readings came" if refilled else "",
                extra={"fields": {"source": source}},
            )
            saved = None
    at = None if saved is None else saved[0]
    if at is not None and data.index.tz is not None:
        at = at.tz_localize("UTC").tz_convert(data.index.tz)
    new, checkpoint = score_causal(detector, data, None if saved is None else (at, saved[1]))
    new.index = naive_utc(new.index)
    if not len(new):
        store.commit_run(run_id, source, model, new, before_commit=_pause_before_commit)
        return JobResult(source, model, "success", EXIT_OK, run_id)
    if checkpoint is not None:  # None: no row is final yet (a first run shorter than the model's reach)
        final = filled & (stamps <= naive_utc([checkpoint[0]])[0])
        checkpoint = (checkpoint[0], {**checkpoint[1], "utc": utc, "filled": [str(t) for t in stamps[final]]})
    return _commit(store, run_id, job, model, fields, detector, new, known, None, checkpoint)


def _check_same_clock(job: Job, saved: tuple | None, utc: bool) -> None:
    """Refuse DATA whose times switched between UTC offsets and none since the last run: the new rows
    would be stored on another clock than the old ones, an hour or more apart, interleaved."""
    if saved is None or saved[1].get("utc", utc) == utc:  # states written before this check carry no "utc"
        return
    now, before = ("carry UTC offsets", "had none (local times)") if utc else ("have no UTC offset", "carried offsets")
    raise DataError(
        f"{job.data}: its timestamps {now}, but when source '{job.source_name}' was last scored they {before}; "
        "the stored and the new rows would be on two clocks: write the times as before, or score into a new --source"
    )


def _commit(
    store: Store,
    run_id: int,
    job: Job,
    model: str,
    fields: dict,
    detector,
    new,
    known,
    limit: float | None,
    state: tuple | None = None,
) -> JobResult:
    """Recompute the events near the ``new`` rows from the stored scores, and write it all in one transaction.

    ``limit``: a fixed threshold for every row; None: each row's own threshold and flag (causal flagging).
    """
    from anomaly.incremental import event_cutoff, event_frame

    source, interval = job.source_name, detector.interval_
    lookback = new.index[0] - (detector.min_event_length + detector.merge_gap + 2) * interval
    cutoff = event_cutoff(
        new.index[0], store.events_touching(source, model, lookback), interval, detector.min_event_length, detector.merge_gap
    )
    region = event_frame(store.scores(source, model, since=cutoff), new, interval, limit)
    found = detector.events(region, threshold=limit)  # a fixed threshold whatever the model's rule; None: its flags
    split: list[list[dict]] = [[], [], []]

    def to_send(added: list[dict]) -> list[dict]:  # in the run's transaction: a run that commits has queued its alerts
        alert, reported = split_reported(added, model, store.last_scored(source), store.events(source))
        alert, silenced = split_silenced(alert, store.feedback(source)) if alert else ([], [])
        split[:] = [alert, silenced, reported]
        return alert if job.alerts else []

    store.commit_run(run_id, source, model, new, found, cutoff, before_commit=_pause_before_commit, state=state, alerts=to_send)
    alert, silenced, reported = split
    for event in reported:
        log.info("alert skipped: an earlier version of the model scored this time", extra={"fields": _about(event)})
    for event in silenced:
        log.info("alert silenced by feedback", extra={"fields": _about(event)})
    rows_new = int(len(new) - np.isin(new.index.asi8, known.asi8).sum())
    fields.update(threshold=float(new["threshold"].iloc[-1]) if limit is None else limit, events_found=len(found))
    return JobResult(source, model, "success", EXIT_OK, run_id, len(new), rows_new, alert, silenced, reported)


def _about(event: dict) -> dict:
    return {"source": event["source"], "start": event["start"]}


def _warn_short_context(store: Store, job: Job, model: str, detector, rows: np.ndarray, stamps) -> None:
    """Warn when DATA (e.g. a rotated file) starts too close to the rows to write while older scores exist:
    those rows then lack windows or EWMA history that a full re-score would have."""
    from anomaly.incremental import ewm_horizon

    need = detector.window - 1 + ewm_horizon(detector.smoothing_)
    first = int(np.flatnonzero(rows)[0])
    if first < need and store.has_scores_before(job.source_name, model, stamps[0]):
        log.warning(
            "DATA starts only %d rows before the first row to write (the model needs %d for full context); "
            "keep older rows in DATA for scores equal to a full re-score",
            first,
            need,
            extra={"fields": {"source": job.source_name}},
        )


def run_job(job: Job, db: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, debug: bool = False) -> JobResult:
    """Score ``job`` into the database ``db``; every outcome is a :class:`JobResult` and logfmt lines."""
    if not log.handlers:  # a fresh Dask worker process
        use_logfmt(log)
    began = time.monotonic()
    source, model = job.source_name, job.model_name
    fields: dict = {"source": source, "model": model}
    if not job.source and Path(job.data).expanduser().is_symlink():  # e.g. latest.csv re-pointed each day
        log.warning(
            "DATA is a symbolic link: the source is named after the file it points to, so a link re-pointed "
            "to another file starts a new source; give --source to keep one name",
            extra={"fields": fields},
        )

    def done(result: JobResult) -> JobResult:
        result.seconds = round(time.monotonic() - began, 3)
        extra = {
            "run": result.run_id,
            **fields,
            "status": result.status,
            "rows": result.rows_scored,
            "new": result.rows_new,
            "events_new": len(result.new_events),
            "events_silenced": len(result.silenced),
            "events_reported": len(result.reported),
            "exit": result.exit_code if result.status != "success" else None,
            "duration_s": result.seconds,
        }
        if result.status == "success":
            log.info("run finished", extra={"fields": extra})
        else:
            log.error(result.error, extra={"fields": extra})
        return result

    try:
        store = open_store(db, create=True)
    except AnomalyError as exc:
        return done(JobResult(source, model, "failed", exc.exit_code, error=str(exc)))
    try:
        with store.lock(source, lock_timeout):
            run_id = None
            try:
                model = fields["model"] = job.model_name  # again: a retrain may have landed while the lock was busy
                run_id = store.begin_run(source, model)
                log.info("run started", extra={"fields": {"run": run_id, **fields}})
                return done(_score_run(store, run_id, job, model, fields))
            except AnomalyError as exc:
                _fail_run(store, run_id, str(exc))
                return done(JobResult(source, model, "failed", exc.exit_code, run_id, error=str(exc)))
            except BaseException as exc:  # a database that cannot be written (read-only, disk full) included
                stop = interruption(exc)
                if stop is not None:  # Ctrl-C or SIGTERM: the transaction rolled back; the runs row says so
                    _fail_run(store, run_id, f"{stopped_by(stop)} during the run")
                    raise
                if not isinstance(exc, Exception):
                    raise
                message = f"unexpected {type(exc).__name__}: {first_line(exc)}"
                _fail_run(store, run_id, message)
                if debug:
                    raise
                return done(JobResult(source, model, "failed", EXIT_ERROR, run_id, error=message))
    except LockedError as exc:
        return done(JobResult(source, model, "locked", EXIT_LOCKED, error=str(exc)))
    except AnomalyError as exc:  # the lock could not be taken: a lost connection, an unwritable lock folder
        return done(JobResult(source, model, "failed", exc.exit_code, error=str(exc)))
    except Exception as exc:  # the same, unforeseen
        if debug:
            raise
        return done(JobResult(source, model, "failed", EXIT_ERROR, error=f"unexpected {type(exc).__name__}: {first_line(exc)}"))
    finally:
        store.close()


def _fail_run(store: Store, run_id: int | None, message: str) -> None:
    """Mark the run failed, if it began; a database that refuses even that leaves it 'running', and the
    next run of the source marks it interrupted."""
    if run_id is None:
        return
    try:
        store.fail_run(run_id, message)
    except Exception as exc:  # the error being reported matters more than this one
        log.warning("could not mark run %s failed: %s", run_id, first_line(exc))


# -- alerts ------------------------------------------------------------------------------------
def split_reported(
    new_events: list[dict], model: str, last_scored: dict[str, pd.Timestamp], stored: pd.DataFrame
) -> tuple[list[dict], list[dict]]:
    """``(alert, reported)``: the new events of ``model`` (``FOLDER@VERSION``) split by what earlier
    versions of the same folder have scored of the source.

    A model retrained into its folder is a new version that scores DATA from its start: it finds
    again the incidents its predecessor alerted on, and may find old ones it missed. Neither is news,
    and a retrain must not page anyone about last month. Reported (stored, not alerted): an event
    that overlaps an event an earlier version stored, or that ends at or before the last row an
    earlier version scored (``last_scored``: :meth:`anomaly.store.Store.last_scored`; ``stored``:
    the source's events, :meth:`anomaly.store.Store.events`). An event still going on after that
    row, overlapping none of theirs, is alerted.
    """
    folder = model.rpartition("@")[0]
    earlier = [m for m in last_scored if m != model and m.rpartition("@")[0] == folder]
    if not earlier or not new_events:
        return list(new_events), []
    horizon = max(last_scored[m] for m in earlier)
    theirs = stored[stored["model"].isin(earlier)]
    starts, ends = pd.to_datetime(theirs["start"]), pd.to_datetime(theirs["end"])
    alert, reported = [], []
    for event in new_events:
        start, end = pd.Timestamp(event["start"]), pd.Timestamp(event["end"])
        seen = end <= horizon or bool(((starts <= end) & (ends >= start)).any())
        (reported if seen else alert).append(event)
    return alert, reported


def send_alerts(store: Store, sources: list[str], command: str) -> int:
    """Send the outbox's alerts of ``sources`` with ``command``: this run's and any an earlier run
    could not send. Returns how many failed; each failure is logged and stays queued.

    At least once: an alert is deleted only after ``command`` took it, and one whose sending was
    stopped (SIGTERM, a lost connection) is sent again by the next run of its source. The first
    failure ends a source's sending: a command that is down (or hangs until its time limit) is not
    tried once per queued alert on every run; the rest wait for the next run, which tries the alerts
    that failed least first (:meth:`~anomaly.store.Store.claim_alerts`), so one alert its receiver
    always refuses does not hold back the others. A verdict given while an alert waited silences it.
    """
    failures = 0
    for source in dict.fromkeys(sources):
        claim, pending = store.claim_alerts(source, ON_EVENT_TIMEOUT_S)
        try:
            verdicts = store.feedback(source) if pending else None
            for done, alert in enumerate(pending):
                fields = {"source": source, "start": alert["start"].isoformat(), "command": command}
                if alert["tries"]:
                    fields["tries"] = alert["tries"]
                if split_silenced([json.loads(alert["event"])], verdicts)[1]:  # reviewed while it waited
                    log.info("alert silenced by feedback", extra={"fields": fields})
                    store.alert_done(source, alert, claim)
                    continue
                error = send(command, alert["event"], fields)
                store.alert_done(source, alert, claim, error)
                if error is not None:
                    failures += 1
                    if done + 1 < len(pending):
                        log.warning(
                            "%d more alert(s) left queued for the next run",
                            len(pending) - done - 1,
                            extra={"fields": {"source": source}},
                        )
                    break
        finally:
            store.release_alerts(claim)  # those not tried (a failure, an interruption): the next run sends them
    return failures


def send(command: str, line: str, fields: dict) -> str | None:
    """Run ``command`` (a shell command line) with ``line`` (an event's JSON) on its stdin; None when it
    succeeded, else why not (logged with ``fields``)."""
    try:
        done = subprocess.run(command, shell=True, input=line + "\n", text=True, capture_output=True, timeout=ON_EVENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        error = f"--on-event command timed out after {ON_EVENT_TIMEOUT_S} s"
        log.error(error, extra={"fields": fields})
        return error
    if done.returncode != 0:
        error = f"--on-event command exited with {done.returncode}"
        tail = (done.stderr or "").strip().splitlines()
        log.error(error, extra={"fields": {**fields, "stderr": tail[-1] if tail else ""}})
        return error
    log.info("event sent", extra={"fields": fields})
    return None


def exit_code(results: list[JobResult], on_anomaly: bool, alert_failures: int = 0) -> int:
    """One exit code for runs: 1 (error) > 2 (bad input) > 3 (locked) > 4 (new anomalies, opt-in) > 0."""
    codes = {r.exit_code for r in results}
    for code in (EXIT_ERROR, EXIT_BAD_INPUT, EXIT_LOCKED):
        if code in codes:
            return code
    if alert_failures:
        return EXIT_ERROR
    if on_anomaly and any(r.new_events for r in results):
        return EXIT_ANOMALIES
    return EXIT_OK


# -- batches -----------------------------------------------------------------------------------
_JOB_FIELDS = {f.name: f for f in dataclasses.fields(Job) if f.name != "alerts"}
_BATCH_KEYS = {"db", "lock_timeout", "jobs"}


def load_jobs(path: str | Path) -> tuple[list[Job], dict]:
    """Jobs and settings (``db``, ``lock_timeout``) from a TOML file; relative paths are relative to it.

    ```toml
    db = "results.db"
    [[jobs]]
    data = "pump1.csv"
    model = "models/pump"
    source = "pump1"        # optional; other optional keys: columns, timestamp_col, duplicates, max_gap,
    ```                     # missing_values, threshold or quantile, min_length, merge_gap, rescore, engine
    """
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give the jobs file (TOML)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid TOML ({exc})") from None
    unknown = set(spec) - _BATCH_KEYS
    if unknown:
        raise DataError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_BATCH_KEYS))})")
    entries = spec.get("jobs")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DataError(f"{path}: no jobs; add one or more [[jobs]] tables with data and model")
    base = path.resolve().parent
    jobs = []
    for i, entry in enumerate(entries, 1):
        where = f"{path}: job {i}"
        bad = set(entry) - set(_JOB_FIELDS)
        if bad:
            raise DataError(f"{where}: unknown key(s) {', '.join(sorted(bad))} (allowed: {', '.join(_JOB_FIELDS)})")
        for key in ("data", "model"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise DataError(f"{where}: '{key}' is required (a path)")
        values = dict(entry)
        for key in ("data", "model"):
            values[key] = str(base / Path(entry[key]).expanduser())
        if isinstance(values.get("columns"), str):
            values["columns"] = split_names(values["columns"])  # or a TOML list of names
        _check_types(values, where)
        if "missing_values" in values:
            values["missing_values"] = tuple(float(c) for c in values["missing_values"])
        job = Job(**values)
        twin = next((j for j, other in enumerate(jobs, 1) if _same_series(other, job)), None)
        if twin is not None:  # the second would read as more rows of the first, or as nothing new
            raise DataError(
                f"{where}: writes the same source '{job.source_name}' with the same model as job {twin}; "
                "give each series its own 'source'"
            )
        jobs.append(job)
    settings = {k: spec[k] for k in ("db", "lock_timeout") if k in spec}
    if "db" in settings and not isinstance(settings["db"], str):
        raise DataError(f"{path}: 'db' must be a string (a path or a URL)")
    if "db" in settings and "://" not in settings["db"]:
        settings["db"] = str(base / Path(settings["db"]).expanduser())
    timeout = settings.get("lock_timeout", 0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout < math.inf:
        raise DataError(f"{path}: 'lock_timeout' must be a number of seconds >= 0, not {timeout!r}")
    return jobs, settings


def _same_series(a: Job, b: Job) -> bool:
    """Whether two jobs would write the same rows of the database: one source, one model folder."""
    folder = lambda job: Path(job.model).expanduser().resolve()  # noqa: E731
    return a.source_name == b.source_name and folder(a) == folder(b)


# Job keys that override a detector hyperparameter: checked by that hyperparameter's own rule (anomaly.params).
_OVERRIDES = {"quantile": "quantile", "min_length": "min_event_length", "merge_gap": "merge_gap"}


def _check_types(values: dict, where: str) -> None:
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.params import specs

    kinds = {
        "source": str,
        "timestamp_col": str,
        "duplicates": str,
        "max_gap": int,
        "quantile": (int, float),
        "min_length": int,
        "merge_gap": int,
        "rescore": bool,
        "engine": str,
    }
    for key, kind in kinds.items():
        if key in values and (not isinstance(values[key], kind) or (kind is int and isinstance(values[key], bool))):
            raise DataError(f"{where}: '{key}' has the wrong type ({type(values[key]).__name__})")
    codes = values.get("missing_values", [])
    if not isinstance(codes, list) or not all(
        isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in codes
    ):
        raise DataError(f"{where}: 'missing_values' must be a list of finite numbers, such as [-9999, 9.9e37]")
    if values.get("max_gap", 0) < 0:
        raise DataError(f"{where}: 'max_gap' must be an integer >= 0, not {values['max_gap']!r}")
    if "source" in values and not values["source"].strip():
        raise DataError(f"{where}: 'source' must name the series, not be empty")
    if "threshold" in values and "quantile" in values:  # as --threshold and --quantile are exclusive
        raise DataError(f"{where}: 'threshold' and 'quantile' both set the threshold; give one")
    if "threshold" in values:
        try:
            fixed_threshold(values["threshold"], "'threshold'")
        except ConfigError as exc:
            raise DataError(f"{where}: {exc}") from None
    if values.get("duplicates", "error") not in DUPLICATE_POLICIES:
        raise DataError(f"{where}: 'duplicates' must be {' or '.join(DUPLICATE_POLICIES)}, not {values['duplicates']!r}")
    rules = specs(LSTMAutoencoderDetector)
    for key, name in _OVERRIDES.items():
        if key in values and not rules[name].valid(values[key]):
            raise DataError(f"{where}: '{key}' must be {rules[name].describe()}, not {values[key]!r}")
    from anomaly.engine import ENGINES

    if values.get("engine", "auto") not in ENGINES:
        raise DataError(f"{where}: 'engine' must be {', '.join(ENGINES[:-1])} or {ENGINES[-1]}, not '{values['engine']}'")
    cols = values.get("columns")
    if cols is not None and not (isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols)):
        raise DataError(f"{where}: 'columns' must be a list of names or a comma-separated string")


def run_batch(
    jobs: list[Job],
    db: str,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
) -> list[JobResult]:
    """Run ``jobs`` one after the other, or on Dask: a local cluster of ``workers`` processes or ``scheduler``."""
    if workers is None and scheduler is None:
        return [run_job(job, db, lock_timeout) for job in jobs]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--workers and --scheduler need Dask: pip install 'lstm-anomaly[dask]'") from None

    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="10s")
            except ValueError as exc:  # no port, an unknown scheme: a mistyped option, not a cluster down
                raise ConfigError(f"--scheduler: {first_line(exc)}; give an address such as tcp://host:8786") from None
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        else:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
            )
            client = Client(cluster)
        with client:
            log.info(
                "dask cluster ready",
                extra={"fields": {"scheduler": client.scheduler.address, "workers": len(client.scheduler_info()["workers"])}},
            )
            futures = client.map(run_job, jobs, db=db, lock_timeout=lock_timeout, pure=False)
            return client.gather(futures)
    finally:
        if cluster is not None:
            cluster.close()

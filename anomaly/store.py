"""The results database: schema, versioning, locks, runs, upserts and the read API.

One module for everything that touches the database, written with SQLAlchemy 2 Core so the same
code serves an embedded SQLite file (the default: ``results.db``) and a PostgreSQL server (a
URL such as ``postgresql://user:pw@host/db``). No Keras here.

Tables (schema version :data:`SCHEMA_VERSION`, created and checked by :func:`open_store`):

- ``schema_version(version, applied)``: one row per applied version.
- ``runs(id, started, finished, model, source, rows_scored, status, error)``: one row per run;
  ``status`` is ``running``, ``success`` or ``failed``.
- ``scores(source, model, timestamp, score, threshold, is_anomaly, errors, run_id)``: one row per
  scored timestamp, unique on ``(source, model, timestamp)``. ``errors`` is a JSON object text
  ``{"sensor": squared_error, ...}`` (the detector's ``error_<sensor>`` columns; JSON floats
  round-trip exactly). ``run_id`` is the run that last wrote the row.
- ``events(source, model, start, end, peak_score, severity, sensors, run_id)``: unique on
  ``(source, model, start)``; ``sensors`` is ``;``-separated; ``run_id`` is the run that first
  found the event (later runs may extend it without changing ``run_id``).
- ``flag_state(source, model, at, state, run_id)`` (version 2): one row per ``(source, model)``
  scored with causal flagging (:mod:`anomaly.flagging`): the state after the last row whose score
  is final (``at``), as JSON, from which the next run flags the rows after it.
- ``feedback(source, model, start, end, verdict, author, at, note, mute_until)`` (version 3):
  operators' verdicts on events (:mod:`anomaly.feedback`), kept when events are recomputed.
- ``outbox(source, model, start, event, run_id, queued, tries, error, claim, claimed_until)``
  (version 4): alerts not yet sent, keyed like the event. A run that sends alerts queues its new
  events in its own transaction; a row is deleted once ``--on-event`` took it, and stays with
  ``tries`` and ``error`` when it failed, for the next run to send again (at least once). A sender
  claims rows first (``claim``, until ``claimed_until``), so two runs never send one alert together.

Timestamps are stored without time zone: in UTC when the data had one, as read otherwise.

Writes are upserts (``INSERT ... ON CONFLICT DO UPDATE`` through the SQLite and PostgreSQL
dialects), so nothing is ever duplicated. A run is written in one transaction
(:meth:`Store.commit_run`); its ``runs`` row is inserted as ``running`` in a transaction of its
own before scoring starts, and a later run for the same source, holding the lock, marks any row
still ``running`` as ``failed`` (its process is gone: it could not hold the lock otherwise).

Locks (:meth:`Store.lock`): one per database and source. SQLite: ``fcntl.flock`` on a file in
``<database>.locks/`` beside the database file. PostgreSQL: a session-level
``pg_try_advisory_lock`` held on a dedicated connection. Either is released by the operating
system or the server when the process dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from anomaly import scoring
from anomaly.errors import EXIT_ERROR, EXIT_LOCKED, AnomalyError, ConfigError, DataError, first_line

SCHEMA_VERSION = 4
RUN_COLUMNS = ["id", "started", "finished", "model", "source", "rows_scored", "status", "error"]
EVENT_COLUMNS = ["source", "model", "start", "end", "peak_score", "severity", "sensors"]
LOCK_POLL_S = 0.1
WRITE_CHUNK = 5000
INTERRUPTED = "interrupted: the process ended before the run finished (found by run {run})"
_SCHEMA_LOCK_KEY = 0x616E6F6D616C79  # "anomaly": PostgreSQL advisory key serialising schema creation

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied", sa.DateTime, nullable=False),
)
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", sa.DateTime, nullable=False),
    sa.Column("finished", sa.DateTime),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("rows_scored", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_runs_source_status", "source", "status"),
)
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("is_anomaly", sa.Boolean, nullable=False),
    sa.Column("errors", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("source", "model", "timestamp", name="pk_scores"),
)
events = sa.Table(
    "events",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("start", sa.DateTime, nullable=False),
    sa.Column("end", sa.DateTime, nullable=False),
    sa.Column("peak_score", sa.Double, nullable=False),
    sa.Column("severity", sa.Double, nullable=False),
    sa.Column("sensors", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("source", "model", "start", name="pk_events"),
)

flag_state = sa.Table(
    "flag_state",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("source", "model", name="pk_flag_state"),
)

feedback = sa.Table(  # operators' verdicts on events (anomaly.feedback); kept when events are recomputed
    "feedback",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("start", sa.DateTime, nullable=False),
    sa.Column("end", sa.DateTime, nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("mute_until", sa.DateTime),
    sa.PrimaryKeyConstraint("source", "model", "start", name="pk_feedback"),
)

outbox = sa.Table(  # alerts not yet sent (see the module's docstring); sent ones are deleted
    "outbox",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("start", sa.DateTime, nullable=False),
    sa.Column("event", sa.Text, nullable=False),  # the JSON line --on-event reads (event_json)
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("queued", sa.DateTime, nullable=False),
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("claim", sa.String(32)),
    sa.Column("claimed_until", sa.DateTime),
    sa.PrimaryKeyConstraint("source", "model", "start", name="pk_outbox"),
)

# Migrations from version N-1 to N, applied in order inside the schema transaction (SQL that both
# SQLite and PostgreSQL accept).
MIGRATIONS: dict[int, list[str]] = {
    2: [
        "CREATE TABLE flag_state (source TEXT NOT NULL, model TEXT NOT NULL, at TIMESTAMP NOT NULL, "
        "state TEXT NOT NULL, run_id INTEGER NOT NULL, CONSTRAINT pk_flag_state PRIMARY KEY (source, model))"
    ],
    3: [
        "CREATE TABLE feedback (source TEXT NOT NULL, model TEXT NOT NULL, start TIMESTAMP NOT NULL, "
        '"end" TIMESTAMP NOT NULL, verdict VARCHAR(16) NOT NULL, author TEXT NOT NULL, at TIMESTAMP NOT NULL, '
        "note TEXT NOT NULL, mute_until TIMESTAMP, CONSTRAINT pk_feedback PRIMARY KEY (source, model, start))"
    ],
    4: [
        "CREATE TABLE outbox (source TEXT NOT NULL, model TEXT NOT NULL, start TIMESTAMP NOT NULL, event TEXT NOT NULL, "
        "run_id INTEGER NOT NULL, queued TIMESTAMP NOT NULL, tries INTEGER NOT NULL, error TEXT, claim VARCHAR(32), "
        "claimed_until TIMESTAMP, CONSTRAINT pk_outbox PRIMARY KEY (source, model, start))"
    ],
}


class StoreError(AnomalyError):
    """The database cannot be reached or used (an environment problem, not bad input)."""

    exit_code = EXIT_ERROR


class LockedError(AnomalyError):
    """Another run holds the lock for this database and source."""

    exit_code = EXIT_LOCKED


# -- targets and engines -----------------------------------------------------------------------
def make_url(target: str | os.PathLike) -> sa.engine.URL:
    """A path means an SQLite file; anything with ``://`` is a SQLAlchemy URL (``postgresql://`` uses psycopg 3)."""
    text = str(target)
    if "://" not in text:
        if not text.strip():
            raise DataError("database target is empty")
        path = Path(text).expanduser().resolve()
        if path.is_dir():
            raise DataError(f"{target}: is a directory, not a database file")
        if not path.parent.exists():
            raise DataError(f"{target}: directory {path.parent} does not exist")
        return sa.engine.URL.create("sqlite", database=str(path))
    try:
        url = sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise DataError(f"cannot parse database URL '{text}'") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise DataError(f"{text}: an in-memory SQLite database cannot be shared between runs; give a file")
        return make_url(url.database)
    if url.get_backend_name() != "postgresql":
        raise DataError(f"{text}: unsupported database '{url.get_backend_name()}' (use an SQLite file or postgresql://)")
    return url


def _sqlite_engine(url: sa.engine.URL, busy_timeout: float) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})

    # pysqlite's own transaction handling is off, so SQLAlchemy's BEGIN is the real one and a
    # writer can ask for BEGIN IMMEDIATE (the SQLAlchemy documentation's recipe for SQLite).
    @sa_event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers (the dashboard) never block the writer
        cur.close()

    @sa_event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")

    return engine


def _display(url: sa.engine.URL) -> str:
    return url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def open_store(target: str | os.PathLike, *, create: bool = False, busy_timeout: float = 60.0) -> Store:
    """Open the results database at ``target`` (a path or a URL).

    With ``create=True`` (what ``anomaly score --db`` does) a missing SQLite file and the schema are
    created; otherwise a missing file or schema is a one-line :class:`DataError`, so a reader such
    as the dashboard never creates databases by accident.
    """
    url = make_url(target)
    if url.get_backend_name() == "sqlite":
        if not create and not Path(url.database).exists():
            raise DataError(f"{target}: no such database file")
        engine = _sqlite_engine(url, busy_timeout)
    else:
        try:
            engine = sa.create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{_display(url)}: needs the {exc.name} driver: pip install 'lstm-anomaly[postgres]'") from None
    store = Store(engine, str(target), url)
    try:
        _check_schema_patiently(store, create, busy_timeout)
    except AnomalyError:
        engine.dispose()
        raise
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise _user_error(exc, url, target) from None
    return store


def _user_error(exc: sa.exc.SQLAlchemyError, url: sa.engine.URL, target) -> AnomalyError:
    """A driver's error as the package's one line, naming the database."""
    reason = first_line(getattr(exc, "orig", None) or exc)
    if url.get_backend_name() == "sqlite" and "file is not a database" in reason:  # a CSV given as --db, say
        return DataError(f"{target}: not an SQLite database file")
    if url.get_backend_name() == "sqlite" and "database is locked" in reason:  # busy past the busy timeout
        return LockedError(f"database {_display(url)}: {reason} (another run is writing to it); try again later")
    return StoreError(f"database {_display(url)}: {reason}")


def _one_line_errors(method):
    """Decorates a :class:`Store` method so a driver error mid-query (a dropped connection, a table
    removed by hand) reaches the dashboard and the CLI as a :class:`StoreError`, not a traceback."""

    @functools.wraps(method)
    def wrapper(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            raise _user_error(exc, self.url, self.target) from exc

    return wrapper


def _check_schema_patiently(store: Store, create: bool, busy_timeout: float) -> None:
    """``store._check_schema``, retried while SQLite answers "database is locked" (up to ``busy_timeout`` s).

    SQLite waits out its busy timeout for ordinary locks, but can answer at once while another
    process is creating the file or switching it to WAL: two scheduled runs (or two Dask workers)
    opening a new database together must not fail for that.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.01
    while True:
        try:
            store._check_schema(create)
            return
        except sa.exc.OperationalError as exc:
            if store.dialect != "sqlite" or "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, 0.5)


def naive_utc(values) -> pd.DatetimeIndex:
    """Timestamps as the database stores them: converted to UTC and made naive when they have a zone."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("us")


def _py(ts) -> dt.datetime:
    return pd.Timestamp(ts).to_pydatetime()


def _unclaimed(now: dt.datetime):
    """Outbox rows no sender holds at ``now``: never claimed, or their claim lapsed (a killed sender's)."""
    return outbox.c.claim.is_(None) | (outbox.c.claimed_until < now)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def event_json(event: dict) -> str:
    """``event`` as one line of strict JSON: a number JSON cannot hold (a severity of ``inf``, where the
    threshold at the peak is 0: a sensor constant in the normal period moved) is ``null``, not the
    ``Infinity`` that JavaScript, Go and strict parsers refuse."""
    plain = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in event.items()}
    return json.dumps(plain, allow_nan=False)


class Store:
    """A results database: the read API the dashboard uses and the write steps of a scoring run."""

    def __init__(self, engine: sa.Engine, target: str, url: sa.engine.URL):
        self.engine = engine
        self.target = target
        self.url = url
        self.dialect = url.get_backend_name()

    def __repr__(self) -> str:
        return f"Store({_display(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite: the write lock is taken up front)."""
        with self.engine.connect().execution_options(immediate=True) as conn, conn.begin():
            yield conn

    def _check_schema(self, create: bool) -> None:
        with self.engine.connect() as conn:
            present = sa.inspect(conn).has_table("schema_version")
            version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() if present else None
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise DataError(
                f"{self.target}: results database has schema version {version}, newer than this "
                f"package's {SCHEMA_VERSION}: upgrade the package"
            )
        if not create:
            if version is None:
                raise DataError(
                    f"{self.target}: not a results database (no schema_version table); "
                    "create it with 'anomaly score DATA --model DIR --db TARGET'"
                )
            raise DataError(
                f"{self.target}: results database has schema version {version}; "
                "open it once with 'anomaly score --db' to upgrade it"
            )
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
            if not sa.inspect(conn).has_table("schema_version"):
                metadata.create_all(conn)
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied=_now()))
                return
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS.get(v, []):
                    conn.exec_driver_sql(statement)
                conn.execute(schema_version.insert().values(version=v, applied=_now()))

    @_one_line_errors
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar())

    # -- locks ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, source: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the lock of ``source`` in this database; :class:`LockedError` after ``timeout`` seconds."""
        digest = hashlib.sha256(source.encode()).digest()
        deadline = time.monotonic() + max(timeout, 0.0)
        busy = f"{self.target}: source {source} is locked by another run (waited {timeout:g} s); try again later"
        if self.dialect == "sqlite":
            import fcntl

            lock_dir = Path(self.url.database + ".locks")
            try:
                lock_dir.mkdir(exist_ok=True)
                fd = os.open(lock_dir / f"{digest.hex()[:24]}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:  # a read-only folder, say: one line, as the database's own errors
                raise StoreError(
                    f"database {_display(self.url)}: cannot create its lock file in {lock_dir} ({exc.strerror})"
                ) from None
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise LockedError(busy) from None
                        time.sleep(LOCK_POLL_S)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            return
        key = int.from_bytes(digest[:8], "big", signed=True)
        try:  # a dropped connection while locking or unlocking is one line, as in every query
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    if time.monotonic() >= deadline:
                        raise LockedError(busy)
                    time.sleep(LOCK_POLL_S)
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        except sa.exc.SQLAlchemyError as exc:
            raise _user_error(exc, self.url, self.target) from exc

    # -- run bookkeeping ------------------------------------------------------------------------
    @_one_line_errors
    def begin_run(self, source: str, model: str) -> int:
        """Insert a ``running`` row (own transaction); earlier ``running`` rows of ``source`` become ``failed``.

        Call it holding :meth:`lock`: then no other live process can be running for ``source``.
        """
        with self._write() as conn:
            run_id = conn.execute(
                runs.insert().values(started=_now(), model=model, source=source, rows_scored=0, status="running")
            ).inserted_primary_key[0]
            conn.execute(
                runs.update()
                .where(runs.c.source == source, runs.c.status == "running", runs.c.id != run_id)
                .values(status="failed", error=INTERRUPTED.format(run=run_id))
            )
        return int(run_id)

    @_one_line_errors
    def fail_run(self, run_id: int, error: str) -> None:
        """Mark a ``running`` run failed; a run already committed (an interruption after its commit, say)
        keeps its ``success``: its rows are written."""
        with self._write() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(status="failed", error=error, finished=_now())
            )

    @_one_line_errors
    def commit_run(
        self,
        run_id: int,
        source: str,
        model: str,
        new_scores: pd.DataFrame,
        new_events: pd.DataFrame | None = None,
        events_since=None,
        before_commit=None,
        state: tuple | None = None,
        alerts=None,
    ) -> list[dict]:
        """Write a run in one transaction: scores and events upserted, the run marked ``success``.

        ``new_scores`` is indexed by timestamp with ``score, threshold, is_anomaly, error_<sensor>``.
        ``new_events`` (``start, end, peak_score, severity, sensors``) replaces the stored events of
        ``(source, model)`` starting at or after ``events_since``. ``state`` (``(at, dict)``) replaces
        the flagging state of ``(source, model)``. Returns the events that overlap no event stored
        before (the new ones), as JSON-ready dicts. ``alerts`` (the new events -> those to send) picks
        what enters the outbox in the same transaction, so a run that commits has queued its alerts.
        """
        rows = _score_rows(new_scores, source, model, run_id)
        with self._write() as conn:
            for i in range(0, len(rows), WRITE_CHUNK):
                conn.execute(self._upsert(scores, ["source", "model", "timestamp"]), rows[i : i + WRITE_CHUNK])
            if state is not None:
                conn.execute(
                    self._upsert(flag_state, ["source", "model"]),
                    [
                        {
                            "source": source,
                            "model": model,
                            "at": _py(naive_utc([state[0]])[0]),
                            "state": json.dumps(state[1], allow_nan=False),
                            "run_id": run_id,
                        }
                    ],
                )
            added: list[dict] = []
            if new_events is not None and events_since is not None:
                added = self._replace_events(conn, run_id, source, model, new_events, events_since)
            if alerts is not None and added:
                self._queue_alerts(conn, alerts(added))
            if before_commit is not None:
                before_commit()
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(status="success", finished=_now(), rows_scored=len(rows), error=None)
            )
        return added

    def _upsert(self, table: sa.Table, keys: list[str], keep: tuple[str, ...] = ()):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys and c.name not in keep}
        return stmt.on_conflict_do_update(index_elements=keys, set_=update)

    def _queue_alerts(self, conn, chosen: list[dict]) -> None:
        """Add ``chosen`` events to the outbox; an alert of the same event still there stays as it is."""
        if not chosen:
            return
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        now = _now()
        rows = [
            {
                "source": e["source"],
                "model": e["model"],
                "start": _py(pd.Timestamp(e["start"])),
                "event": event_json(e),
                "run_id": e["run_id"],
                "queued": now,
                "tries": 0,
            }
            for e in chosen
        ]
        conn.execute(insert(outbox).on_conflict_do_nothing(index_elements=["source", "model", "start"]), rows)

    # -- the outbox -----------------------------------------------------------------------------
    @_one_line_errors
    def claim_alerts(self, source: str, seconds_each: float) -> tuple[str, list[dict]]:
        """``(claim, alerts)``: the unsent alerts of ``source`` no other sender holds, claimed by this
        caller for ``seconds_each`` per alert (plus a minute; a claim left by a killed sender lapses
        then), those that failed least first, then oldest first. Each alert: ``model, start, event``
        (the JSON line) and ``tries`` (failed sends so far)."""
        claim = uuid.uuid4().hex
        with self._write() as conn:  # SQLite: BEGIN IMMEDIATE; PostgreSQL: the rows locked
            now = _now()  # once the write lock is held: waiting for it does not shorten the claim
            free = (outbox.c.source == source) & _unclaimed(now)
            keys = conn.execute(sa.select(outbox.c.model, outbox.c.start).where(free).with_for_update()).all()
            until = now + dt.timedelta(seconds=len(keys) * seconds_each + 60)
            for model, start in keys:
                conn.execute(
                    outbox.update()
                    .where(outbox.c.source == source, outbox.c.model == model, outbox.c.start == start)
                    .values(claim=claim, claimed_until=until)
                )
        query = (
            sa.select(outbox.c.model, outbox.c.start, outbox.c.event, outbox.c.tries)
            .where(outbox.c.claim == claim)
            .order_by(outbox.c.tries, outbox.c.queued, outbox.c.start)
        )
        with self.engine.connect() as conn:
            return claim, [dict(row) for row in conn.execute(query).mappings()]

    @_one_line_errors
    def alert_done(self, source: str, alert: dict, claim: str, error: str | None = None) -> None:
        """Settle a claimed alert: sent (``error`` None) deletes it; failed keeps it for the next run,
        unclaimed, with one more try and the error."""
        key = (outbox.c.source == source, outbox.c.model == alert["model"], outbox.c.start == alert["start"])
        with self._write() as conn:
            if error is None:
                conn.execute(outbox.delete().where(*key, outbox.c.claim == claim))
            else:
                conn.execute(
                    outbox.update()
                    .where(*key, outbox.c.claim == claim)
                    .values(tries=outbox.c.tries + 1, error=error, claim=None, claimed_until=None)
                )

    @_one_line_errors
    def release_alerts(self, claim: str) -> None:
        """Give back the alerts of ``claim`` not settled (a sender stopped midway): the next run sends them."""
        with self._write() as conn:
            conn.execute(outbox.update().where(outbox.c.claim == claim).values(claim=None, claimed_until=None))

    @_one_line_errors
    def drop_alerts(self, source: str | None = None) -> int:
        """Delete the unsent alerts (of one source or all) that no sender holds now, so they are never
        sent; returns how many. For alerts no longer worth sending: a command down for days, a source
        retired. An alert being sent stays (its claim decides it)."""
        with self._write() as conn:
            free = _unclaimed(_now())
            query = outbox.delete().where(free if source is None else free & (outbox.c.source == source))
            return conn.execute(query).rowcount

    @_one_line_errors
    def pending_alerts(self, source: str | None = None) -> pd.DataFrame:
        """Unsent alerts (of one source or all), oldest first: ``source, model, start, tries, error, queued``."""
        columns = ["source", "model", "start", "tries", "error", "queued"]
        query = sa.select(*[outbox.c[c] for c in columns]).order_by(outbox.c.queued, outbox.c.start)
        if source is not None:
            query = query.where(outbox.c.source == source)
        return self._frame(query, columns)

    def _replace_events(self, conn, run_id, source, model, found: pd.DataFrame, since) -> list[dict]:
        since = _py(naive_utc([since])[0])
        where = (events.c.source == source, events.c.model == model, events.c.start >= since)
        spans = [
            (pd.Timestamp(a), pd.Timestamp(b)) for a, b in conn.execute(sa.select(events.c.start, events.c.end).where(*where))
        ]
        before = {a for a, _ in spans}
        rows = []
        for ev in found.itertuples(index=False):
            start, end = naive_utc([ev.start])[0], naive_utc([ev.end])[0]
            rows.append(
                {
                    "source": source,
                    "model": model,
                    "start": _py(start),
                    "end": _py(end),
                    "peak_score": float(ev.peak_score),
                    "severity": float(ev.severity),
                    "sensors": str(ev.sensors),
                    "run_id": run_id,
                }
            )
        keep = {pd.Timestamp(r["start"]) for r in rows}
        stale = [_py(t) for t in before - keep]
        if stale:
            conn.execute(events.delete().where(*where, events.c.start.in_(stale)))
        if rows:
            conn.execute(self._upsert(events, ["source", "model", "start"], keep=("run_id",)), rows)
        # New: overlapping no event stored before. One that grew, or starts earlier now that provisional
        # scores are final, is the same incident: alerting it again would page someone twice.
        added = [r for r in rows if not any(a <= r["end"] and r["start"] <= b for a, b in spans)]
        return [
            {
                "source": r["source"],
                "model": r["model"],
                "start": r["start"].isoformat(),
                "end": r["end"].isoformat(),
                "peak_score": r["peak_score"],
                "severity": r["severity"],
                "sensors": [s for s in r["sensors"].split(";") if s],
                "run_id": run_id,
            }
            for r in added
        ]

    # -- reads for a run ------------------------------------------------------------------------
    @_one_line_errors
    def stored_timestamps(self, source: str, model: str, start=None, end=None) -> pd.DatetimeIndex:
        """Timestamps already scored for ``(source, model)``, optionally between ``start`` and ``end``."""
        query = sa.select(scores.c.timestamp).where(scores.c.source == source, scores.c.model == model)
        if start is not None:
            query = query.where(scores.c.timestamp >= _py(naive_utc([start])[0]))
        if end is not None:
            query = query.where(scores.c.timestamp <= _py(naive_utc([end])[0]))
        with self.engine.connect() as conn:
            values = conn.execute(query.order_by(scores.c.timestamp)).scalars().all()
        return naive_utc(values)

    @_one_line_errors
    def flag_state(self, source: str, model: str) -> tuple[pd.Timestamp, dict] | None:
        """``(at, state)``: the causal flagging state after the last final row ``at``, or None."""
        query = sa.select(flag_state.c.at, flag_state.c.state).where(flag_state.c.source == source, flag_state.c.model == model)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else (pd.Timestamp(row[0]), json.loads(row[1]))

    @_one_line_errors
    def has_scores_before(self, source: str, model: str, when) -> bool:
        """Whether ``(source, model)`` has a stored score earlier than ``when``."""
        query = (
            sa.select(scores.c.timestamp)
            .where(scores.c.source == source, scores.c.model == model, scores.c.timestamp < _py(naive_utc([when])[0]))
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    @_one_line_errors
    def last_scored(self, source: str) -> dict[str, pd.Timestamp]:
        """The last scored timestamp of ``source`` per model: how far each model version has read it."""
        query = (
            sa.select(scores.c.model, sa.func.max(scores.c.timestamp)).where(scores.c.source == source).group_by(scores.c.model)
        )
        with self.engine.connect() as conn:
            return {model: pd.Timestamp(last) for model, last in conn.execute(query).all()}

    @_one_line_errors
    def events_touching(self, source: str, model: str, since) -> pd.DataFrame:
        """Stored events of ``(source, model)`` that end at or after ``since``."""
        query = (
            sa.select(events.c.start, events.c.end)
            .where(events.c.source == source, events.c.model == model, events.c.end >= _py(naive_utc([since])[0]))
            .order_by(events.c.start)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return pd.DataFrame({"start": naive_utc([r[0] for r in rows]), "end": naive_utc([r[1] for r in rows])})

    # -- feedback -------------------------------------------------------------------------------
    @_one_line_errors
    def mark_event(self, source: str, model: str, start, verdict: str, author: str, note: str = "", mute_until=None) -> dict:
        """Record a verdict on the stored event of ``(source, model)`` that starts at ``start``.

        ``verdict``: see :func:`anomaly.feedback.parse_verdict`. A new verdict on the same event
        replaces the previous one. ``mute_until`` (false alarms and acknowledged events only) also
        silences alerts of the source until then. Returns the row written.
        """
        from anomaly.feedback import SILENCING, parse_verdict

        verdict = parse_verdict(verdict)
        author = str(author or "").strip()
        if not author:
            raise ConfigError("a verdict needs the name of who gives it")
        mute = None if mute_until is None or pd.isna(mute_until) else _py(naive_utc([mute_until])[0])
        if mute is not None and verdict not in SILENCING:
            raise ConfigError("only a false alarm or an acknowledged event can mute a source")
        at = _py(naive_utc([start])[0])
        with self._write() as conn:
            end = conn.execute(
                sa.select(events.c.end).where(events.c.source == source, events.c.model == model, events.c.start == at)
            ).scalar()
            if end is None:
                raise DataError(f"no stored event of source '{source}' and model '{model}' starts at {at}")
            row = {
                "source": source,
                "model": model,
                "start": at,
                "end": end,
                "verdict": verdict,
                "author": author,
                "at": _now(),
                "note": str(note or "").strip(),
                "mute_until": mute,
            }
            conn.execute(self._upsert(feedback, ["source", "model", "start"]), [row])
        return row

    @_one_line_errors
    def events_at(self, source: str, at) -> pd.DataFrame:
        """Stored events of ``source`` under way at ``at`` (start <= at <= end), of every model version:
        an alert's start still finds its event after the event grew earlier."""
        at = _py(naive_utc([at])[0])
        return self._frame(
            sa.select(*[events.c[c] for c in EVENT_COLUMNS])
            .where(events.c.source == source, events.c.start <= at, events.c.end >= at)
            .order_by(events.c.model, events.c.start),
            EVENT_COLUMNS,
        )

    @_one_line_errors
    def feedback(self, source: str | None = None) -> pd.DataFrame:
        """Verdicts (of one source or all), by source and start, in :data:`anomaly.feedback.FEEDBACK_COLUMNS`."""
        from anomaly.feedback import FEEDBACK_COLUMNS

        query = sa.select(*[feedback.c[c] for c in FEEDBACK_COLUMNS]).order_by(feedback.c.source, feedback.c.start)
        if source is not None:
            query = query.where(feedback.c.source == source)
        return self._frame(query, FEEDBACK_COLUMNS)

    def _frame(self, query, columns: list[str]) -> pd.DataFrame:
        """Rows of ``query`` as a frame with datetime and float columns typed (also when empty)."""
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        for col in ("start", "end", "at", "mute_until", "queued"):
            if col in frame.columns:
                frame[col] = pd.to_datetime(frame[col])
        for col in ("peak_score", "severity"):
            if col in frame.columns:
                frame[col] = frame[col].astype("float64")
        if frame.empty:  # no values to infer from: each column typed by its SQL type, so Parquet gets no null columns
            kinds = {sa.DateTime: "datetime64[us]", sa.Integer: "int64", sa.Boolean: "bool", sa.String: "string"}
            for col, selected in zip(columns, query.selected_columns, strict=True):
                kind = next((k for base, k in kinds.items() if isinstance(selected.type, base)), None)
                if kind is not None:
                    frame[col] = frame[col].astype(kind)
        return frame

    # -- the read API (the dashboard's) ---------------------------------------------------------
    @_one_line_errors
    def runs(self) -> pd.DataFrame:
        """Every run, oldest first: ``id, started, finished, model, source, rows_scored, status, error``."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*[runs.c[c] for c in RUN_COLUMNS]).order_by(runs.c.id)).all()
        frame = pd.DataFrame([tuple(r) for r in rows], columns=RUN_COLUMNS)
        for col in ("started", "finished"):
            frame[col] = pd.to_datetime(frame[col])
        frame["id"] = frame["id"].astype("int64")
        frame["rows_scored"] = frame["rows_scored"].astype("int64")
        return frame

    @_one_line_errors
    def events(self, source: str | None = None) -> pd.DataFrame:
        """Stored events (of one source or all), by start: ``source, model, start, end, peak_score, severity, sensors``."""
        query = sa.select(*[events.c[c] for c in EVENT_COLUMNS]).order_by(events.c.source, events.c.start)
        if source is not None:
            query = query.where(events.c.source == source)
        return self._frame(query, EVENT_COLUMNS)

    @_one_line_errors
    def scores(self, source: str, model: str | None = None, since=None) -> pd.DataFrame:
        """Scores of ``source`` by time: ``timestamp, score, threshold, is_anomaly, error_<sensor>...``.

        ``model=None`` picks the model of the source's most recent run that wrote scores.
        """
        if model is None:
            model = self.latest_model(source)
            if model is None:
                return pd.DataFrame(columns=["timestamp", "score", "threshold", "is_anomaly"])
        query = (
            sa.select(scores.c.timestamp, scores.c.score, scores.c.threshold, scores.c.is_anomaly, scores.c.errors)
            .where(scores.c.source == source, scores.c.model == model)
            .order_by(scores.c.timestamp)
        )
        if since is not None:
            query = query.where(scores.c.timestamp >= _py(naive_utc([since])[0]))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime([r[0] for r in rows]),
                "score": np.array([r[1] for r in rows], dtype=np.float64),
                "threshold": np.array([r[2] for r in rows], dtype=np.float64),
                "is_anomaly": np.array([bool(r[3]) for r in rows], dtype=bool),
            }
        )
        errors = pd.DataFrame([json.loads(r[4]) for r in rows], dtype=np.float64)
        return scoring.add_sensor_columns(frame, list(errors.columns), errors.to_numpy())

    @_one_line_errors
    def latest_model(self, source: str) -> str | None:
        """``FOLDER@VERSION`` of the model whose run last wrote scores of ``source`` (None: none has)."""
        query = (
            sa.select(scores.c.model)
            .join(runs, runs.c.id == scores.c.run_id)
            .where(scores.c.source == source)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    @_one_line_errors
    def sources(self) -> list[str]:
        """Every source that has a run or scores, sorted."""
        with self.engine.connect() as conn:
            names = set(conn.execute(sa.select(runs.c.source).distinct()).scalars())
            names |= set(conn.execute(sa.select(scores.c.source).distinct()).scalars())
        return sorted(names)


def _score_rows(frame: pd.DataFrame, source: str, model: str, run_id: int) -> list[dict]:
    """Rows for the ``scores`` table from a detector score frame (NaN scores are not stored)."""
    if len(frame) == 0:
        return []
    frame = frame[np.isfinite(frame["score"].to_numpy())]
    sensors = scoring.sensors_of(frame)
    errors = scoring.errors_of(frame, sensors).tolist()
    stamps = naive_utc(frame.index).to_pydatetime()
    score = frame["score"].to_numpy(dtype=np.float64).tolist()
    limit = frame["threshold"].to_numpy(dtype=np.float64).tolist()
    flags = frame["is_anomaly"].to_numpy(dtype=bool).tolist()
    return [
        {
            "source": source,
            "model": model,
            "timestamp": stamps[i],
            "score": score[i],
            "threshold": limit[i],
            "is_anomaly": flags[i],
            "errors": json.dumps(dict(zip(sensors, errors[i]))),
            "run_id": run_id,
        }
        for i in range(len(score))
    ]

"""The results database on real backends: an SQLite file and a PostgreSQL server (no Keras here).

PostgreSQL: ``.ci/run`` starts a server on loopback and exports ``ANOMALY_TEST_PG_URL``. Under CI
(``CI`` set) a missing URL fails the tests; elsewhere they are skipped with how to start one.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from anomaly.errors import ConfigError, DataError
from anomaly.logfmt import LogfmtFormatter, logfmt
from anomaly.store import LockedError, Store, StoreError, make_url, open_store, schema_version


def score_frame(stamps, score, threshold=1.0, sensors=("a", "b")) -> pd.DataFrame:
    score = np.asarray(score, dtype=float)
    frame = pd.DataFrame(
        {"score": score, "threshold": threshold, "is_anomaly": score > threshold}, index=pd.DatetimeIndex(stamps)
    )
    for i, s in enumerate(sensors):
        frame[f"error_{s}"] = score * (i + 1) / 3
    return frame


T = pd.date_range("2024-03-01", periods=10, freq="5min")


def test_open_store_creates_schema_only_when_asked(tmp_path):
    path = tmp_path / "r.db"
    with pytest.raises(DataError, match="no such database file"):
        open_store(path)
    assert not path.exists()
    with open_store(path, create=True) as store:
        assert store.schema_version() == 4
        assert store.runs().columns.tolist() == ["id", "started", "finished", "model", "source", "rows_scored", "status", "error"]
    with open_store(path) as store:  # a reader opens it without create
        assert store.sources() == []


# The tables each schema version added (anomaly.store.MIGRATIONS), newest first.
ADDED = {4: "outbox", 3: "feedback", 2: "flag_state"}


def back_to_version(target, version: int) -> None:
    """Make the database at ``target`` what schema ``version`` created, then check that opening it
    without ``create`` asks for the upgrade."""
    engine = sa.create_engine(make_url(target))
    with engine.begin() as conn:
        for table in [name for v, name in ADDED.items() if v > version]:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        conn.exec_driver_sql(f"UPDATE schema_version SET version = {version}")
    engine.dispose()
    with pytest.raises(DataError, match=f"schema version {version}; open it once with 'anomaly score --db' to upgrade it"):
        open_store(target)


def test_a_version_1_database_is_upgraded_with_the_flag_state_table(tmp_path):
    path = tmp_path / "r.db"
    with open_store(path, create=True):
        pass
    back_to_version(path, 1)
    with open_store(path, create=True) as store:
        assert store.schema_version() == 4 and store.flag_state("s", "m") is None
        run = store.begin_run("s", "m")
        store.commit_run(
            run,
            "s",
            "m",
            pd.DataFrame(columns=["score", "threshold", "is_anomaly"]),
            state=(pd.Timestamp("2024-03-01 00:05"), {"ewm_num": 1.5, "trail": [0.25]}),
        )
        assert store.flag_state("s", "m") == (pd.Timestamp("2024-03-01 00:05"), {"ewm_num": 1.5, "trail": [0.25]})


def test_a_version_2_database_gets_the_feedback_table_and_keeps_its_events(target):
    with open_store(target, create=True) as store:
        run = store.begin_run("s", "m")
        store.commit_run(run, "s", "m", score_frame(T[:3], [1, 3, 1]), pd.DataFrame([event(1, 1)]), T[0])
    back_to_version(target, 2)
    with open_store(target, create=True) as store:
        assert store.schema_version() == 4 and store.feedback().empty
        assert store.events("s")["start"].tolist() == [T[1]]
        store.mark_event("s", "m", T[1], "false", "ana")
        assert store.feedback()["verdict"].tolist() == ["false_alarm"]


def test_a_version_3_database_gets_the_outbox_and_keeps_its_events(target):
    with open_store(target, create=True) as store:
        store.commit_run(store.begin_run("s", "m"), "s", "m", score_frame(T[:3], [1, 3, 1]), pd.DataFrame([event(1, 1)]), T[0])
    back_to_version(target, 3)
    with open_store(target, create=True) as store:
        assert store.schema_version() == 4 and store.pending_alerts().empty
        assert store.events("s")["start"].tolist() == [T[1]]


def test_alerts_are_queued_with_their_run_claimed_once_and_kept_until_sent(target):
    with open_store(target, create=True) as store, open_store(target) as other:
        found = pd.DataFrame([event(1, 1, peak=9.0), event(4, 4), event(7, 7)])
        chosen = lambda added: [e for e in added if e["peak_score"] < 9]  # noqa: E731 (the caller picks what to send)
        with pytest.raises(RuntimeError):  # a run that does not commit queues nothing
            store.commit_run(
                store.begin_run("s", "m"), "s", "m", score_frame(T, np.ones(10)), found, T[0], before_commit=stop, alerts=chosen
            )
        assert store.pending_alerts().empty
        added = store.commit_run(store.begin_run("s", "m"), "s", "m", score_frame(T, np.ones(10)), found, T[0], alerts=chosen)
        assert [e["start"] for e in added] == [T[1].isoformat(), T[4].isoformat(), T[7].isoformat()]
        assert store.pending_alerts("s")["start"].tolist() == [T[4], T[7]] and store.pending_alerts("other").empty
        claim, pending = store.claim_alerts("s", 120)
        assert [a["start"] for a in pending] == [T[4], T[7]] and [a["tries"] for a in pending] == [0, 0]
        assert json.loads(pending[0]["event"]) == {**added[1], "severity": 1.5}
        assert other.claim_alerts("s", 120)[1] == []  # claimed: another run sends nothing of them
        store.alert_done("s", pending[0], claim)  # sent: gone
        store.alert_done("s", pending[1], claim, "--on-event command exited with 1")  # failed: kept for the next run
        left = store.pending_alerts("s")
        assert left["start"].tolist() == [T[7]] and left["tries"].tolist() == [1]
        assert left["error"].tolist() == ["--on-event command exited with 1"]
        claim, pending = other.claim_alerts("s", 120)
        assert [(a["start"], a["tries"]) for a in pending] == [(T[7], 1)]
        other.release_alerts(claim)  # a sender stopped before settling it: free again at once
        claim, pending = store.claim_alerts("s", 120)
        assert [a["start"] for a in pending] == [T[7]]
        engine = sa.create_engine(make_url(target))
        with engine.begin() as conn:  # the claim of a sender killed outright lapses
            conn.exec_driver_sql("UPDATE outbox SET claimed_until = '2000-01-01 00:00:00'")
        engine.dispose()
        late, pending = other.claim_alerts("s", 120)
        assert [a["start"] for a in pending] == [T[7]]
        store.alert_done("s", pending[0], claim)  # the lapsed claim no longer settles it
        other.alert_done("s", pending[0], late)
        assert store.pending_alerts().empty


def test_empty_tables_are_typed_so_their_parquet_files_join_full_ones(target, tmp_path):
    import pyarrow.dataset as ds

    from anomaly.io import write_table

    with open_store(target, create=True) as store:
        empty = store.pending_alerts()
        assert empty.empty and dict(empty.dtypes.astype(str)) == {
            "source": "string",
            "model": "string",
            "start": "datetime64[us]",
            "tries": "int64",
            "error": "string",
            "queued": "datetime64[us]",  # as pandas reads stored times
        }
        write_table(empty, tmp_path / "none.parquet")  # null columns before: no other file's types could join them
        write_table(store.events(), tmp_path / "no_events.parquet")
        store.commit_run(store.begin_run("s", "m"), "s", "m", score_frame(T, np.ones(10)), pd.DataFrame([event(4, 4)]), T[0])
        write_table(store.events(), tmp_path / "events.parquet")
    assert not any(str(f.type) == "null" for f in ds.dataset(str(tmp_path / "none.parquet")).schema)
    files = [str(tmp_path / "no_events.parquet"), str(tmp_path / "events.parquet")]
    assert ds.dataset(files).to_table().num_rows == 1


def test_dropped_alerts_are_never_sent_but_one_being_sent_stays(target):
    with open_store(target, create=True) as store:
        for source in ("s", "t"):
            found = pd.DataFrame([event(1, 1), event(4, 4)])
            store.commit_run(store.begin_run(source, "m"), source, "m", score_frame(T, np.ones(10)), found, T[0], alerts=list)
        claim, held = store.claim_alerts("t", 120)  # a sender is sending t's alerts now
        assert store.drop_alerts("s") == 2 and store.pending_alerts("s").empty
        assert store.drop_alerts() == 0 and len(store.pending_alerts("t")) == 2  # held: its sender decides them
        store.alert_done("t", held[0], claim, "exit 1")  # failed: free again, so it can be dropped
        assert store.drop_alerts() == 1 and store.pending_alerts()["start"].tolist() == [T[4]]
        engine = sa.create_engine(make_url(target))
        with engine.begin() as conn:  # the sender was killed: its claim lapses, and the alert can be dropped
            conn.exec_driver_sql("UPDATE outbox SET claimed_until = '2000-01-01 00:00:00'")
        engine.dispose()
        assert store.drop_alerts("t") == 1 and store.pending_alerts().empty
        assert store.events("s")["start"].tolist() == [T[1], T[4]]  # the events themselves stay


def stop():
    raise RuntimeError("stopped before the commit")


def event(s: int, e: int, peak: float = 3.0) -> dict:
    return {"start": T[s], "end": T[e], "peak_score": peak, "severity": peak / 2, "sensors": "a;b"}


def test_verdicts_are_kept_with_who_and_when_and_replaced_not_duplicated(target):
    with open_store(target, create=True) as store:
        run = store.begin_run("src", "m@1")
        store.commit_run(
            run, "src", "m@1", score_frame(T[:6], [1, 3, 1, 1, 3, 1]), pd.DataFrame([event(1, 2), event(4, 4)]), T[0]
        )
        before = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
        row = store.mark_event("src", "m@1", T[1], "true", " ana ", note=" pump was off ")
        assert (row["verdict"], row["author"], row["note"], row["end"]) == ("true_alarm", "ana", "pump was off", T[2])
        store.mark_event("src", "m@1", T[4], "ack", "bo", mute_until=T[9])
        store.mark_event("src", "m@1", T[1], "false", "cy")  # a second opinion replaces the first
        got = store.feedback("src")
        assert got.columns.tolist() == ["source", "model", "start", "end", "verdict", "author", "at", "note", "mute_until"]
        assert got["start"].tolist() == [T[1], T[4]]
        assert got["verdict"].tolist() == ["false_alarm", "acknowledged"] and got["author"].tolist() == ["cy", "bo"]
        assert got["mute_until"].tolist()[1] == T[9] and pd.isna(got["mute_until"].tolist()[0])
        assert (got["at"] >= before).all()
        assert store.feedback("other").empty
        assert store.events_at("src", T[4])["model"].tolist() == ["m@1"]
        for args, kwargs, message in [
            (("src", "m@1", T[0], "true", "ana"), {}, "no stored event of source 'src' and model 'm@1' starts at"),
            (("src", "m@2", T[1], "true", "ana"), {}, "no stored event"),
            (("src", "m@1", T[1], "maybe", "ana"), {}, "verdict must be one of"),
            (("src", "m@1", T[1], "true", "  "), {}, "needs the name of who gives it"),
            (("src", "m@1", T[1], "true", "ana"), {"mute_until": T[9]}, "only a false alarm or an acknowledged"),
        ]:
            with pytest.raises((DataError, ConfigError), match=message):
                store.mark_event(*args, **kwargs)
        assert len(store.feedback()) == 2


def test_other_sqlite_file_and_newer_schema_are_refused(tmp_path):
    other = tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with pytest.raises(DataError, match="not a results database"):
        open_store(other)
    path = tmp_path / "r.db"
    open_store(path, create=True).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(schema_version.insert().values(version=99, applied=pd.Timestamp("2030-01-01").to_pydatetime()))
    engine.dispose()
    with pytest.raises(DataError, match="schema version 99, newer"):
        open_store(path, create=True)


def test_targets(tmp_path):
    assert make_url(tmp_path / "x.db").get_backend_name() == "sqlite"
    assert make_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(DataError, match="does not exist"):
        make_url(tmp_path / "nope" / "x.db")
    with pytest.raises(DataError, match="in-memory"):
        make_url("sqlite://")
    with pytest.raises(DataError, match="unsupported database"):
        make_url("mysql://u@h/db")


def test_commit_run_upserts_and_never_duplicates(target):
    with open_store(target, create=True) as store:
        run1 = store.begin_run("src", "m")
        store.commit_run(run1, "src", "m", score_frame(T[:6], [0.1, 0.2, 0.3, 2.0, 0.4, 0.5]))
        run2 = store.begin_run("src", "m")
        store.commit_run(run2, "src", "m", score_frame(T[4:], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]))
        got = store.scores("src")
        assert got["timestamp"].tolist() == list(T)
        assert np.allclose(got["score"], [0.1, 0.2, 0.3, 2.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], rtol=0, atol=0)
        assert got["is_anomaly"].tolist() == [False, False, False, True] + [False] * 6
        assert got.columns.tolist() == ["timestamp", "score", "threshold", "is_anomaly", "error_a", "error_b"]
        assert np.array_equal(got["error_b"], got["score"] * 2 / 3)
        runs = store.runs()
        assert runs["status"].tolist() == ["success", "success"] and runs["rows_scored"].tolist() == [6, 6]
        with store.engine.connect() as conn:
            by_run = dict(conn.exec_driver_sql("SELECT run_id, count(*) FROM scores GROUP BY run_id").all())
        assert by_run == {run1: 4, run2: 6}


def test_events_are_replaced_from_the_cutoff_and_new_ones_reported(target):
    with open_store(target, create=True) as store:
        r1 = store.begin_run("src", "m")
        added = store.commit_run(
            r1, "src", "m", score_frame(T[:3], [1, 1, 1]), pd.DataFrame([event(0, 0, 3.0), event(2, 2, 4.0)]), T[0]
        )
        assert [a["start"] for a in added] == [T[0].isoformat(), T[2].isoformat()]
        assert added[0]["sensors"] == ["a", "b"] and added[0]["run_id"] == r1
        json.dumps(added)  # ready for --on-event
        r2 = store.begin_run("src", "m")
        # the event at T[2] grows, a new one appears, the event before the cutoff is untouched
        added = store.commit_run(
            r2, "src", "m", score_frame(T[3:6], [1, 1, 1]), pd.DataFrame([event(2, 3, 5.0), event(5, 5, 6.0)]), T[1]
        )
        assert [a["start"] for a in added] == [T[5].isoformat()]
        got = store.events("src")
        assert got.columns.tolist() == ["source", "model", "start", "end", "peak_score", "severity", "sensors"]
        assert got["start"].tolist() == [T[0], T[2], T[5]]
        assert got["end"].tolist() == [T[0], T[3], T[5]] and got["peak_score"].tolist() == [3.0, 5.0, 6.0]
        with store.engine.connect() as conn:
            run_ids = conn.exec_driver_sql("SELECT run_id FROM events ORDER BY start").scalars().all()
        assert run_ids == [r1, r1, r2]  # the run that first found each event
        r3 = store.begin_run("src", "m")
        store.commit_run(r3, "src", "m", score_frame(T[6:7], [1]), pd.DataFrame([event(0, 0, 3.0)]), T[1])
        assert store.events("src")["start"].tolist() == [T[0]]  # events gone from the recomputed range
        assert store.events("other").empty


def test_an_event_that_starts_earlier_once_scores_are_final_is_the_same_incident(target):
    """With a fixed threshold the last window - 1 scores are provisional: an event found at T[5] may
    start at T[4] a run later. It replaces the stored one, is not alerted again, and the alerted start
    still finds it (``anomaly feedback --start``)."""
    with open_store(target, create=True) as store:
        r1 = store.begin_run("src", "m")
        added = store.commit_run(r1, "src", "m", score_frame(T[:6], [1] * 6), pd.DataFrame([event(5, 5)]), T[0])
        assert [a["start"] for a in added] == [T[5].isoformat()]
        r2 = store.begin_run("src", "m")
        added = store.commit_run(r2, "src", "m", score_frame(T[3:8], [1] * 5), pd.DataFrame([event(4, 6), event(8, 8)]), T[0])
        assert [a["start"] for a in added] == [T[8].isoformat()]  # the one that overlaps nothing stored
        assert store.events("src")["start"].tolist() == [T[4], T[8]]
        assert store.events_at("src", T[5])["start"].tolist() == [T[4]]  # the alerted start, inside it
        assert store.events_at("src", T[8])["start"].tolist() == [T[8]]
        assert store.events_at("src", T[7]).empty


def test_a_failed_commit_leaves_nothing(target):
    with open_store(target, create=True) as store:
        run = store.begin_run("src", "m")

        def boom():
            raise RuntimeError("killed")

        with pytest.raises(RuntimeError):
            store.commit_run(
                run,
                "src",
                "m",
                score_frame(T, np.ones(10)),
                pd.DataFrame([{"start": T[0], "end": T[1], "peak_score": 2.0, "severity": 2.0, "sensors": "a"}]),
                T[0],
                before_commit=boom,
            )
        assert store.scores("src", "m").empty and store.events().empty
        assert store.runs()["status"].tolist() == ["running"]
        store.fail_run(run, "data.csv: file not found")
        runs = store.runs()
        assert runs["status"].tolist() == ["failed"] and runs["error"].tolist() == ["data.csv: file not found"]


def test_a_committed_run_is_not_marked_failed_afterwards(tmp_path):
    # An interruption after the commit (while alerts are read or sent) must not relabel written rows.
    with open_store(tmp_path / "r.db", create=True) as store:
        run = store.begin_run("pump", "m")
        store.commit_run(run, "pump", "m", score_frame(T, np.arange(10.0)), pd.DataFrame())
        store.fail_run(run, "terminated during the run")
        failing = store.begin_run("pump", "m")
        store.fail_run(failing, "pump.csv: file not found")
        runs = store.runs()
    assert runs["status"].tolist() == ["success", "failed"]
    assert pd.isna(runs["error"].iloc[0]) and runs["error"].iloc[1] == "pump.csv: file not found"


def test_next_run_marks_an_abandoned_running_row_failed(target):
    with open_store(target, create=True) as store:
        dead = store.begin_run("src", "m")
        other = store.begin_run("elsewhere", "m")
        fresh = store.begin_run("src", "m")
        runs = store.runs().set_index("id")
        assert runs.loc[dead, "status"] == "failed"
        assert runs.loc[dead, "error"] == f"interrupted: the process ended before the run finished (found by run {fresh})"
        assert runs.loc[other, "status"] == "running" and runs.loc[fresh, "status"] == "running"
        assert store.sources() == ["elsewhere", "src"]


def test_lock_is_per_source_and_times_out(target):
    with open_store(target, create=True) as a, open_store(target) as b:
        with a.lock("src", 0):
            with pytest.raises(LockedError, match="locked by another run"):
                with b.lock("src", 0.3):
                    pass
            with b.lock("another source", 0):
                pass
        with b.lock("src", 0):  # released
            pass


def test_scores_picks_the_latest_model_by_default(target):
    with open_store(target, create=True) as store:
        r1 = store.begin_run("src", "old")
        store.commit_run(r1, "src", "old", score_frame(T[:2], [1, 2]))
        r2 = store.begin_run("src", "new")
        store.commit_run(r2, "src", "new", score_frame(T[:3], [3, 4, 5], sensors=("x",)))
        assert store.scores("src")["score"].tolist() == [3, 4, 5]
        assert store.scores("src", "old")["score"].tolist() == [1, 2]
        assert store.scores("nothing").empty


def test_time_zones_are_stored_in_utc(tmp_path):
    stamps = pd.date_range("2024-03-31 00:00", periods=4, freq="h", tz="Europe/Berlin")
    with open_store(tmp_path / "r.db", create=True) as store:
        run = store.begin_run("src", "m")
        store.commit_run(run, "src", "m", score_frame(stamps, [1, 2, 3, 4]))
        got = store.scores("src")["timestamp"]
        assert got.tolist() == list(stamps.tz_convert("UTC").tz_localize(None))
        assert store.stored_timestamps("src", "m", stamps[1], stamps[2]).tolist() == got.tolist()[1:3]


def test_logfmt_lines_parse():
    line = logfmt(ts="2024-01-01T00:00:00Z", level="error", msg='data.csv: bad "value" = 3', run=4, rows=12, dur=0.5)
    assert line == 'ts=2024-01-01T00:00:00Z level=error msg="data.csv: bad \\"value\\" = 3" run=4 rows=12 dur=0.5'
    pairs = re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)
    assert [k for k, _ in pairs] == ["ts", "level", "msg", "run", "rows", "dur"]
    import logging

    record = logging.LogRecord("anomaly", logging.INFO, __file__, 1, "run finished", None, None)
    record.fields = {"run": 3, "source": "/data/pump 1.csv"}
    text = LogfmtFormatter().format(record)
    assert re.fullmatch(r'ts=\S+Z level=info msg="run finished" run=3 source="/data/pump 1.csv"', text)


def test_store_repr_hides_password():
    store = Store(None, "x", make_url("postgresql://user:secret@localhost/db"))
    assert "secret" not in repr(store)


def test_unreachable_server_is_one_line_exit_1():
    with pytest.raises(StoreError, match=r"^database postgresql\+psycopg://anomaly:\*\*\*@127\.0\.0\.1:1/x: ") as err:
        open_store("postgresql://anomaly:secret@127.0.0.1:1/x", create=True)
    assert err.value.exit_code == 1 and "\n" not in str(err.value) and "secret" not in str(err.value)


def test_a_lock_that_cannot_be_taken_is_one_line(tmp_path):
    path = tmp_path / "r.db"
    with open_store(path, create=True) as store:
        (tmp_path / "r.db.locks").write_text("not a folder")  # SQLite's locks live in a folder beside the file
        with pytest.raises(StoreError, match=f"^database {re.escape(str(path))}: cannot create its lock file in .*r.db.locks"):
            with store.lock("src"):
                pass
    url = make_url("postgresql://anomaly:secret@127.0.0.1:1/x")  # a server gone after opening: the lock's query fails
    server = Store(sa.create_engine(url), "postgresql://anomaly:secret@127.0.0.1:1/x", url)
    with pytest.raises(StoreError, match=r"^database postgresql\+psycopg://anomaly:\*\*\*@127\.0\.0\.1:1/x: ") as err:
        with server.lock("src"):
            pass
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


def test_a_driver_error_mid_query_is_one_line_naming_the_database(tmp_path):
    # The database opened fine, then something under it went wrong (here a table dropped by hand;
    # on a server, a dropped connection): every read says so in one line, as opening does.
    path = tmp_path / "r.db"
    with open_store(path, create=True) as store:
        store.commit_run(store.begin_run("pump", "m"), "pump", "m", score_frame(T, np.arange(10.0)), pd.DataFrame())
        engine = sa.create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE scores")
        engine.dispose()
        reads = (
            lambda: store.scores("pump"),
            store.sources,
            lambda: store.latest_model("pump"),
            lambda: store.last_scored("pump"),
            lambda: store.stored_timestamps("pump", "m"),
        )
        for read in reads:
            with pytest.raises(StoreError, match=f"^database {re.escape(str(path))}: no such table: scores$"):
                read()
        assert store.runs()["source"].tolist() == ["pump"]  # what does not touch the table still reads


def test_opening_retries_while_sqlite_says_locked_then_gives_up(tmp_path, monkeypatch):
    # Another process creating the file or switching it to WAL makes SQLite answer "database is
    # locked" at once, without waiting: opening retries for up to the busy timeout.
    real = Store._check_schema
    calls = []

    def flaky(self, create):
        calls.append(create)
        if len(calls) <= 2:
            raise sa.exc.OperationalError("PRAGMA journal_mode=WAL", {}, Exception("database is locked"))
        return real(self, create)

    monkeypatch.setattr(Store, "_check_schema", flaky)
    store = open_store(tmp_path / "r.db", create=True, busy_timeout=5.0)
    assert len(calls) == 3 and store.schema_version() >= 1
    store.close()

    def always_locked(self, create):
        raise sa.exc.OperationalError("BEGIN", {}, Exception("database is locked"))

    monkeypatch.setattr(Store, "_check_schema", always_locked)
    with pytest.raises(LockedError, match="r.db: database is locked") as err:  # one line, after the busy timeout
        open_store(tmp_path / "r.db", busy_timeout=0.05)
    assert err.value.exit_code == 3


def test_sending_stops_at_the_first_failure_and_the_next_run_sends_the_rest_in_order(target, tmp_path):
    from anomaly.scheduled import send_alerts

    sent = tmp_path / "alerts.jsonl"
    with open_store(target, create=True) as store:
        found = pd.DataFrame([event(1, 1), event(4, 4), event(7, 7)])
        store.commit_run(store.begin_run("s", "m"), "s", "m", score_frame(T, np.ones(10)), found, T[0], alerts=list)
        assert send_alerts(store, ["s"], "exit 3") == 1  # a command that is down is tried once, not once per alert
        assert store.pending_alerts("s")["tries"].tolist() == [1, 0, 0]
        refuses_first = f"line=$(cat); case \"$line\" in *'{T[1].isoformat()}'*) exit 1;; esac; echo \"$line\" >> '{sent}'"
        assert send_alerts(store, ["s"], refuses_first) == 1  # the alerts that failed least go first: T1 waits behind
        starts = lambda: [json.loads(line)["start"] for line in sent.read_text().splitlines()]  # noqa: E731
        assert starts() == [T[4].isoformat(), T[7].isoformat()]
        assert store.pending_alerts("s")["tries"].tolist() == [2]
        store.commit_run(
            store.begin_run("s", "m"), "s", "m", score_frame(T, np.ones(10)), pd.DataFrame([event(9, 9)]), T[8], alerts=list
        )
        store.mark_event("s", "m", T[9], "false", "ana")  # reviewed while its alert waited: silenced, not sent
        assert send_alerts(store, ["s", "s"], f"cat >> '{sent}'") == 0
        assert starts() == [T[i].isoformat() for i in (4, 7, 1)]
        assert store.pending_alerts().empty

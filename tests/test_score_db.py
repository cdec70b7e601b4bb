"""Scheduled scoring into real databases: ``anomaly score --db``, ``score-batch`` and their guarantees.

One tiny model (window 8, 8 units, 2 epochs, EWMA smoothing 5) is trained once for the module.
Runs happen in this process (``run_job``, or the CLI through ``conftest.run_cli``) where the process
does not matter, and as ``python -m anomaly`` subprocesses where it does: a SIGKILL midway, two
concurrent runs, Dask.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import TINY, cli_env, run_cli, run_cli_process

from anomaly.errors import EXIT_ANOMALIES, EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_OK, DataError
from anomaly.scheduled import PAUSE_ENV, Job, JobResult, exit_code, load_jobs, run_batch, run_job, split_reported
from anomaly.store import make_url, open_store

ROOT = Path(__file__).resolve().parents[1]
N, PART, WINDOW = 700, 550, 8
LOGFMT = re.compile(r'ts=\S+ level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S+)( \w+=("(?:[^"\\]|\\.)*"|\S*))*')


def make_data(n: int = N) -> pd.DataFrame:
    """Two noisy sine sensors at 1 minute; sensor ``a`` jumps by 3 for 15 minutes at row 600."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="min"),
            "a": np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(n),
            "b": np.cos(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(n),
        }
    )
    frame.loc[600:614, "a"] += 3.0
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """full.csv (700 rows), part.csv (first 550), holed.csv (rows 300..349 missing), model/."""
    from anomaly.detector import LSTMAutoencoderDetector

    base = tmp_path_factory.mktemp("scoredb")
    data = make_data()
    data.to_csv(base / "full.csv", index=False)
    data.iloc[:PART].to_csv(base / "part.csv", index=False)
    data.drop(index=range(300, 350)).to_csv(base / "holed.csv", index=False)
    normal = data.iloc[:400].set_index("timestamp")
    detector = LSTMAutoencoderDetector(**{**TINY, "window": WINDOW, "smoothing": 5, "merge_gap": 1})
    detector.fit(normal).save(base / "model")
    return base


@pytest.fixture(scope="module")
def full_rescore(files):
    """What `anomaly score full.csv` computes: every score and event of the full file."""
    from anomaly.scheduled import load_job

    detector, data = load_job(Job(str(files / "full.csv"), str(files / "model")))
    scores = detector.score(data)
    return scores[np.isfinite(scores["score"])], detector.events(scores)


@pytest.fixture
def warned():
    """The messages of the warnings the ``anomaly`` logger records during a test (run_job's logfmt
    handler does not propagate them to pytest's caplog)."""
    import logging

    handler = logging.Handler(logging.WARNING)
    messages: list[str] = []
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("anomaly").addHandler(handler)
    yield messages
    logging.getLogger("anomaly").removeHandler(handler)


def job(files, name: str, source: str = "pump") -> Job:
    return Job(str(files / name), str(files / "model"), source=source)


def table(target: str, name: str) -> pd.DataFrame:
    engine = sa.create_engine(make_url(target))
    order = "start" if name in ("events", "outbox") else "timestamp" if name == "scores" else "id"
    with engine.connect() as conn:
        frame = pd.read_sql(
            sa.text(
                f'SELECT * FROM {name} ORDER BY source, model, "{order}"' if name != "runs" else "SELECT * FROM runs ORDER BY id"
            ),
            conn,
        )
    engine.dispose()
    return frame


def assert_equals_full_rescore(target: str, full_rescore, source: str = "pump") -> None:
    expected, expected_events = full_rescore
    with open_store(target) as store:
        got = store.scores(source)
        events = store.events(source)
    assert got["timestamp"].tolist() == expected.index.tolist()
    for col in ["score", "error_a", "error_b"]:
        assert np.allclose(got[col], expected[col], rtol=1e-6, atol=1e-12), col
    assert (got["is_anomaly"].to_numpy() == expected["is_anomaly"].to_numpy()).all()
    assert events["start"].tolist() == expected_events["start"].tolist()
    assert events["end"].tolist() == expected_events["end"].tolist()
    assert np.allclose(events["peak_score"], expected_events["peak_score"], rtol=1e-6)
    assert events["sensors"].tolist() == expected_events["sensors"].tolist()


# -- idempotence and incrementality (SQLite file and PostgreSQL server) ------------------------
def test_second_run_on_same_data_adds_nothing(files, target, full_rescore):
    first = run_job(job(files, "full.csv"), target)
    assert (first.status, first.exit_code, first.rows_scored, first.rows_new) == ("success", 0, N, N)
    scores, events = table(target, "scores"), table(target, "events")
    assert len(scores) == N and len(events) > 0
    assert table(target, "outbox").empty  # no --on-event: no alert is queued
    second = run_job(job(files, "full.csv"), target)
    assert (second.status, second.rows_scored, second.rows_new, second.new_events) == ("success", 0, 0, [])
    pd.testing.assert_frame_equal(table(target, "scores"), scores)  # same rows, same run_id: nothing rewritten
    pd.testing.assert_frame_equal(table(target, "events"), events)
    runs = table(target, "runs")
    assert runs["status"].tolist() == ["success", "success"] and runs["rows_scored"].tolist() == [N, 0]
    assert_equals_full_rescore(target, full_rescore)
    forced = run_job(dataclasses.replace(job(files, "full.csv"), rescore=True), target)
    assert (forced.rows_scored, forced.rows_new, forced.new_events) == (N, 0, [])
    assert len(table(target, "scores")) == N and (table(target, "scores")["run_id"] == forced.run_id).all()
    assert_equals_full_rescore(target, full_rescore)


def test_appended_rows_only_are_scored_and_equal_a_full_rescore(files, target, full_rescore):
    first = run_job(job(files, "part.csv"), target)
    assert first.rows_new == PART
    with open_store(target) as store:
        starts_before = set(store.events("pump")["start"])
    second = run_job(job(files, "full.csv"), target)
    assert (second.rows_new, second.rows_scored) == (N - PART, N - PART + WINDOW - 1)
    scores = table(target, "scores")
    written = pd.DatetimeIndex(scores.loc[scores["run_id"] == second.run_id, "timestamp"])
    # the new timestamps, and the last window-1 old ones whose covering windows changed; nothing else
    assert written.tolist() == make_data()["timestamp"].iloc[PART - WINDOW + 1 :].tolist()
    assert len(scores) == N and not scores.duplicated(["source", "model", "timestamp"]).any()
    assert_equals_full_rescore(target, full_rescore)
    assert second.new_events and [e["start"] for e in second.new_events] == [
        t.isoformat() for t in full_rescore[1]["start"] if t not in starts_before
    ]


def test_late_data_filling_a_hole_equals_a_full_rescore(files, tmp_path, full_rescore):
    db = str(tmp_path / "r.db")
    first = run_job(job(files, "holed.csv"), db)
    assert first.rows_new == N - 50
    second = run_job(job(files, "full.csv"), db)
    assert second.rows_new == 50
    # the hole lies before the flagging state's row: flags after it may change, so DATA is flagged from its start
    assert second.rows_scored == N
    assert_equals_full_rescore(db, full_rescore)


def test_rotated_file_with_enough_overlap_equals_a_full_rescore(files, tmp_path, full_rescore):
    import logging

    data = make_data()
    data.iloc[400:].to_csv(tmp_path / "rotated.csv", index=False)  # 150 already-scored rows of context
    data.iloc[545:].to_csv(tmp_path / "too_short.csv", index=False)  # only 5
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("anomaly").addHandler(handler)
    try:
        db = str(tmp_path / "r.db")
        run_job(job(files, "part.csv"), db)
        rotated = run_job(Job(str(tmp_path / "rotated.csv"), str(files / "model"), source="pump"), db)
        assert rotated.rows_new == N - PART and not [r for r in records if r.levelname == "WARNING"]
        assert_equals_full_rescore(db, full_rescore)
        other = str(tmp_path / "other.db")
        run_job(job(files, "part.csv"), other)
        run_job(Job(str(tmp_path / "too_short.csv"), str(files / "model"), source="pump"), other)
        warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "DATA starts only 0 rows before the first row to write" in warnings[0]
    finally:
        logging.getLogger("anomaly").removeHandler(handler)


# -- failures, kills, concurrency ---------------------------------------------------------------
def test_bad_input_is_a_failed_run_and_exit_2(files, tmp_path):
    db = str(tmp_path / "r.db")
    (tmp_path / "bad.csv").write_text("timestamp,a\n2024-01-01 00:00,1\n2024-01-01 00:01,2\n")
    result = run_job(Job(str(tmp_path / "bad.csv"), str(files / "model"), source="pump"), db)
    assert (result.status, result.exit_code) == ("failed", EXIT_BAD_INPUT)
    assert "bad.csv" in result.error and "'b'" in result.error
    with open_store(db) as store:
        runs = store.runs()
        assert runs["status"].tolist() == ["failed"] and runs["error"].tolist() == [result.error]
        assert store.scores("pump", job(files, "full.csv").model_name).empty


def test_columns_that_leave_out_a_model_column_fail_the_run_with_exit_2_on_a_scored_source_too(files, tmp_path):
    db = str(tmp_path / "r.db")
    assert run_job(job(files, "part.csv"), db).exit_code == EXIT_OK  # the source has a checkpoint: the causal path
    for _ in range(2):  # a first run and one after it: the same failure
        result = run_job(dataclasses.replace(job(files, "full.csv"), columns=["a"]), db)
        assert (result.status, result.exit_code) == ("failed", EXIT_BAD_INPUT)
        assert (
            result.error == f"{files / 'full.csv'}: the columns given leave out the model's column(s) 'b' (model columns: a, b)"
        )
    with open_store(db) as store:
        assert store.runs()["status"].tolist() == ["success", "failed", "failed"]


def test_a_logger_code_for_no_reading_stops_a_source_unless_read_as_missing(files, tmp_path, warned):
    db = str(tmp_path / "r.db")
    data = make_data()
    data.loc[500, "b"] = 9.9e37  # an overload code, the file as a logger writes it
    data.to_csv(tmp_path / "coded.csv", index=False)
    refused = run_job(Job(str(tmp_path / "coded.csv"), str(files / "model"), source="pump"), db)
    assert (refused.status, refused.exit_code) == ("failed", EXIT_BAD_INPUT) and "value 9.9e+37 is too large" in refused.error
    read = run_job(Job(str(tmp_path / "coded.csv"), str(files / "model"), source="pump", missing_values=(-9999.0, 9.9e37)), db)
    assert (read.status, read.rows_new) == ("success", N)
    assert any(w.endswith("coded.csv: 1 cell(s) equal to a missing-value code treated as missing (b 1)") for w in warned)
    with open_store(db) as store:  # the cell was filled in from its neighbours, as an empty one would be
        stored = store.scores("pump").set_index("timestamp")
    assert np.isfinite(stored.loc[pd.Timestamp("2024-01-01 08:20"), "score"])


def test_a_job_reads_its_data_as_the_models_training_data_was_read(files, tmp_path, warned):
    model = Path(shutil.copytree(files / "model", tmp_path / "model"))
    meta = json.loads((model / "detector.json").read_text())
    meta["reading"] = {"timestamp_col": "time", "duplicates": "error", "max_gap": 3, "missing_values": [9.9e37]}
    (model / "detector.json").write_text(
        json.dumps(meta)
    )  # as `anomaly train --timestamp-col time --missing-values 9.9e37` saves it
    data = make_data().rename(columns={"timestamp": "time"})
    data.loc[500, "b"] = 9.9e37
    data.to_csv(tmp_path / "coded.csv", index=False)
    db = str(tmp_path / "r.db")
    read = run_job(Job(str(tmp_path / "coded.csv"), str(model), source="pump"), db)  # no reading option given
    assert (read.status, read.rows_new) == ("success", N)
    assert any(w.endswith("coded.csv: 1 cell(s) equal to a missing-value code treated as missing (b 1)") for w in warned)
    told = run_job(Job(str(tmp_path / "coded.csv"), str(model), source="other", missing_values=()), db)  # [] in a jobs file
    assert told.status == "failed" and "value 9.9e+37 is too large" in told.error


@pytest.mark.parametrize("first_utc", [False, True])
def test_times_that_switch_between_offsets_and_none_are_refused(files, tmp_path, first_utc):
    """Naive times are stored as written, times with offsets in UTC: a file that starts or stops writing
    offsets would put the new rows on another clock, an hour from the stored ones, interleaved."""
    data = make_data()
    local = data.assign(timestamp=data["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    zoned = data.assign(timestamp=data["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+01:00"))
    first, then = (zoned, local) if first_utc else (local, zoned)
    first.iloc[:PART].to_csv(tmp_path / "a.csv", index=False)
    db = str(tmp_path / "r.db")
    assert run_job(Job(str(tmp_path / "a.csv"), str(files / "model"), source="pump"), db).status == "success"
    then.to_csv(tmp_path / "a.csv", index=False)
    for rescore in (False, True):
        result = run_job(Job(str(tmp_path / "a.csv"), str(files / "model"), source="pump", rescore=rescore), db)
        assert (result.status, result.exit_code) == ("failed", EXIT_BAD_INPUT)
        now, before = (
            ("carry UTC offsets", "had none (local times)") if not first_utc else ("have no UTC offset", "carried offsets")
        )
        assert result.error == (
            f"{tmp_path / 'a.csv'}: its timestamps {now}, but when source 'pump' was last scored they {before}; the "
            "stored and the new rows would be on two clocks: write the times as before, or score into a new --source"
        )
    assert len(table(db, "scores")) == PART  # nothing written on the other clock
    first.to_csv(tmp_path / "a.csv", index=False)  # written as before again: scored on
    assert run_job(Job(str(tmp_path / "a.csv"), str(files / "model"), source="pump"), db).rows_new == N - PART


def test_run_killed_midway_leaves_the_database_as_it_was(files, tmp_path, full_rescore):
    db = tmp_path / "r.db"
    run_job(job(files, "part.csv"), str(db))
    before = table(str(db), "scores"), table(str(db), "events")
    marker = tmp_path / "in-transaction"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anomaly",
            "score",
            files / "full.csv",
            "--model",
            files / "model",
            "--db",
            db,
            "--source",
            "pump",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=cli_env(**{PAUSE_ENV: str(marker)}),
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, "the run ended before reaching its transaction"
            assert time.monotonic() < deadline, "the run never reached its transaction"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    pd.testing.assert_frame_equal(table(str(db), "scores"), before[0])
    pd.testing.assert_frame_equal(table(str(db), "events"), before[1])
    assert table(str(db), "runs")["status"].tolist() == ["success", "running"]  # the killed run

    third = run_job(job(files, "full.csv"), str(db))
    assert third.status == "success" and third.rows_new == N - PART
    runs = table(str(db), "runs")
    assert runs["status"].tolist() == ["success", "failed", "success"]
    assert runs["error"][1].startswith("interrupted: the process ended before the run finished")
    assert not (table(str(db), "scores")["run_id"] == runs["id"][1]).any()
    assert_equals_full_rescore(str(db), full_rescore)


def terminated_at(marker: Path, args: list, env: dict | None = None) -> str:
    """Run ``python -m anomaly ARGS``, send it SIGTERM once ``marker`` exists; its stderr (exit 143 checked)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomaly", *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**(env or {})),
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run never reached {marker.name}: {proc.communicate()[1]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    return err


def test_a_run_terminated_midway_is_marked_failed_and_logs_one_logfmt_line(files, tmp_path, full_rescore):
    """SIGTERM (a scheduler's timeout) inside the run's transaction: nothing written, the runs row says
    'terminated' at once (not 'running' until the next run), exit 143, stderr logfmt to the end."""
    db = tmp_path / "r.db"
    run_job(job(files, "part.csv"), str(db))
    before = table(str(db), "scores"), table(str(db), "events")
    marker = tmp_path / "in-transaction"
    args = ["score", files / "full.csv", "--model", files / "model", "--db", db, "--source", "pump"]
    err = terminated_at(marker, args, {PAUSE_ENV: str(marker)})
    lines = err.strip().splitlines()
    assert all(LOGFMT.fullmatch(line) for line in lines), err
    assert "level=error msg=terminated exit=143" in lines[-1]
    pd.testing.assert_frame_equal(table(str(db), "scores"), before[0])
    pd.testing.assert_frame_equal(table(str(db), "events"), before[1])
    runs = table(str(db), "runs")
    assert runs["status"].tolist() == ["success", "failed"] and runs["error"][1] == "terminated during the run"
    assert run_job(job(files, "full.csv"), str(db)).rows_new == N - PART
    assert_equals_full_rescore(str(db), full_rescore)


def test_two_concurrent_runs_write_once_and_alert_once(files, tmp_path, full_rescore):
    db, alerts = tmp_path / "r.db", tmp_path / "alerts.jsonl"
    args = [
        "score",
        files / "full.csv",
        "--model",
        files / "model",
        "--db",
        db,
        "--source",
        "pump",
        "--lock-timeout",
        "300",
        "--exit-code-on-anomaly",
        "--on-event",
        f"cat >> '{alerts}'",
    ]
    env = cli_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "anomaly", *map(str, args)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [EXIT_OK, EXIT_ANOMALIES], outs
    scores = table(str(db), "scores")
    assert len(scores) == N and not scores.duplicated(["source", "model", "timestamp"]).any()
    runs = table(str(db), "runs")
    assert sorted(runs["rows_scored"]) == [0, N] and set(runs["status"]) == {"success"}
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    expected_events = full_rescore[1]
    assert [e["start"] for e in sent] == [t.isoformat() for t in expected_events["start"]]
    assert set(sent[0]) == {"source", "model", "start", "end", "peak_score", "severity", "sensors", "run_id"}
    for _, err in outs:  # every stderr line is logfmt
        assert err.strip() and all(LOGFMT.fullmatch(line) for line in err.strip().splitlines()), err
    assert_equals_full_rescore(str(db), full_rescore)


def test_a_run_that_sends_alerts_queues_its_new_events_in_its_transaction(files, target, full_rescore):
    first = run_job(dataclasses.replace(job(files, "full.csv"), alerts=True), target)
    queued = table(target, "outbox")
    assert pd.to_datetime(queued["start"]).tolist() == full_rescore[1]["start"].tolist() and len(queued) == len(first.new_events)
    assert [json.loads(line) for line in queued["event"]] == first.new_events
    assert (queued["run_id"] == first.run_id).all() and (queued["tries"] == 0).all() and queued["claim"].isna().all()


def test_a_failed_alert_is_sent_by_the_next_run_and_one_stopped_midway_by_the_run_after(files, tmp_path, full_rescore):
    """At least once: an alert leaves the outbox only when --on-event took it."""
    db, alerts, sending = tmp_path / "r.db", tmp_path / "alerts.jsonl", tmp_path / "sending"
    args = ["score", files / "full.csv", "--model", files / "model", "--db", db, "--source", "pump", "--on-event"]
    starts = [t.isoformat() for t in full_rescore[1]["start"]]

    failing = run_cli(*args, "echo 'pager down' >&2; exit 7")
    assert failing.returncode == 1 and failing.stderr.count('msg="--on-event command exited with 7"') == len(starts)
    assert 'stderr="pager down"' in failing.stderr
    queued = table(str(db), "outbox")
    assert (queued["tries"] == 1).all() and len(queued) == len(starts)
    listed = pd.read_csv(io.StringIO(run_cli("events", "--db", db, "--source", "pump", "--pending").stdout))
    assert listed["start"].tolist() == starts and listed["error"].tolist() == ["--on-event command exited with 7"] * len(starts)

    terminated_at(sending, [*args, f"touch '{sending}' && exec sleep 60"])  # no new rows: stopped sending the first
    queued = table(str(db), "outbox")  # all still there, none claimed: the next run may send them at once
    assert len(queued) == len(starts) and queued["claim"].isna().all() and (queued["tries"] == 1).all()

    sent = run_cli(*args, f"cat >> '{alerts}'")
    assert sent.returncode == EXIT_OK, sent.stderr
    assert [json.loads(line)["start"] for line in alerts.read_text().splitlines()] == starts
    assert sent.stderr.count('msg="event sent"') == len(starts) and "tries=1" in sent.stderr
    assert table(str(db), "outbox").empty
    assert run_cli("events", "--db", db, "--pending").stdout == "source,model,start,tries,error,queued\n"


def test_events_drop_pending_deletes_the_alerts_not_sent_yet(files, tmp_path):
    db = str(tmp_path / "r.db")
    queued = run_job(dataclasses.replace(job(files, "full.csv"), alerts=True), db).new_events
    assert queued and len(table(db, "outbox")) == len(queued)
    both = run_cli("events", "--db", db, "--pending", "--drop-pending")
    assert both.returncode == 2 and "not allowed with argument --pending" in both.stderr
    to_file = run_cli("events", "--db", db, "--drop-pending", "--out", tmp_path / "x.csv")
    assert (
        to_file.returncode == 2
        and to_file.stderr.strip() == "error: --drop-pending deletes alerts and writes no file; leave out --out"
    )
    with open_store(db) as store:
        claim, _ = store.claim_alerts("pump", 120)  # a run sending them now
        held = run_cli("events", "--db", db, "--drop-pending")
        assert held.stdout == f"dropped 0 alert(s) not sent yet; kept {len(queued)} that a run is sending now\n"
        store.release_alerts(claim)
    dropped = run_cli("events", "--db", db, "--drop-pending", "--source", "pump")
    assert dropped.returncode == EXIT_OK and dropped.stdout == f"dropped {len(queued)} alert(s) not sent yet of 'pump'\n"
    assert table(db, "outbox").empty and len(table(db, "events")) == len(queued)  # the events stay


def test_verdicts_silence_the_same_incident_found_again_and_are_listed_with_the_events(files, tmp_path):
    db, alerts = tmp_path / "r.db", tmp_path / "alerts.jsonl"

    def score(model):
        return run_cli(
            "score",
            files / "full.csv",
            "--model",
            model,
            "--db",
            db,
            "--source",
            "pump",
            "--exit-code-on-anomaly",
            "--on-event",
            f"cat >> '{alerts}'",
        )

    first = score(files / "model")
    assert first.returncode == EXIT_ANOMALIES, first.stderr
    sent = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert sent
    for i, event in enumerate(sent):  # an operator reviews every alert
        marked = run_cli(
            "feedback",
            "--db",
            db,
            "--source",
            "pump",
            "--start",
            event["start"],
            "--verdict",
            "false" if i == 0 else "ack",
            "--by",
            "ana",
            "--note",
            "valve test",
        )
        assert marked.returncode == 0, marked.stderr
        assert marked.stdout.startswith("marked the event of pump at ")
    listed = run_cli("events", "--db", db, "--source", "pump")
    assert listed.returncode == 0, listed.stderr
    table = pd.read_csv(io.StringIO(listed.stdout))
    assert table["verdict"].tolist() == ["false_alarm"] + ["acknowledged"] * (len(sent) - 1)
    assert set(table["author"]) == {"ana"} and set(table["note"]) == {"valve test"}
    # The same model in another folder is another model: its events are new, and they overlap the reviewed ones.
    again = score(shutil.copytree(files / "model", tmp_path / "model-copy"))
    assert again.returncode == EXIT_OK, again.stderr
    assert len(alerts.read_text().splitlines()) == len(sent)  # nothing more was sent
    assert again.stderr.count('msg="alert silenced by feedback"') == len(sent)
    assert f"events_new=0 events_silenced={len(sent)}" in again.stderr
    with open_store(db) as store:
        assert len(store.events("pump")) == 2 * len(sent)  # silenced events are still stored
    wrong = run_cli("feedback", "--db", db, "--source", "pump", "--start", sent[0]["start"], "--verdict", "true", "--by", "ana")
    assert wrong.returncode == EXIT_BAD_INPUT  # two model versions stored an event there
    assert "choose one with --model" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    start, end = pd.Timestamp(sent[0]["start"]), pd.Timestamp(sent[0]["end"])
    assert end > start
    inside = (start + (end - start) / 2).floor("min")  # any time within the event names it
    chosen = run_cli(
        "feedback",
        "--db",
        db,
        "--source",
        "pump",
        "--start",
        inside,
        "--verdict",
        "true",
        "--by",
        "ana",
        "--model",
        str(files / "model"),
    )
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.startswith(f"marked the event of pump at {start} as true alarm")
    for args, message in [
        (("--start", "2023-01-01", "--verdict", "true"), "no stored event of source 'pump' starts at or spans 2023-01-01"),
        (("--start", "soon", "--verdict", "true"), "--start: cannot read 'soon' as a timestamp"),
        (
            ("--start", sent[0]["start"], "--verdict", "true", "--mute-until", "2030-01-01", "--model", str(files / "model")),
            "only a false alarm or an acknowledged event can mute a source",
        ),
    ]:
        bad = run_cli("feedback", "--db", db, "--source", "pump", "--by", "ana", *args)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == EXIT_BAD_INPUT and len(lines) == 1 and message in lines[0], bad.stderr


def test_a_retrained_model_alerts_only_on_what_its_predecessor_never_scored(files, tmp_path, full_rescore):
    """A model retrained into its folder rescores DATA from its start: the incident its earlier version
    alerted on is stored again but not sent again; an incident in rows no version had scored is sent."""
    shutil.copytree(files / "model", tmp_path / "model")
    db, model = str(tmp_path / "r.db"), str(tmp_path / "model")
    first = run_job(Job(str(files / "full.csv"), model, source="pump"), db)
    expected = [t.isoformat() for t in full_rescore[1]["start"]]
    assert [e["start"] for e in first.new_events] == expected and expected
    meta = tmp_path / "model" / "detector.json"
    meta.write_text(json.dumps(json.loads(meta.read_text()), indent=1))  # retrained: a new version
    longer = make_data(N + 200)
    longer.loc[N + 100 : N + 114, "a"] += 3.0  # a second incident, in rows only the new version reads
    longer.to_csv(tmp_path / "longer.csv", index=False)
    second = run_job(Job(str(tmp_path / "longer.csv"), model, source="pump"), db)
    assert second.model != first.model and second.status == "success"
    assert [e["start"] for e in second.reported] == expected
    assert [pd.Timestamp(e["start"]) for e in second.new_events] == [pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=N + 100)]
    with open_store(db) as store:
        stored = store.events("pump")
    assert stored.groupby("model").size().to_dict() == {first.model: len(expected), second.model: len(expected) + 1}


def test_split_reported_keeps_to_earlier_versions_of_the_same_folder():
    def event(start, end):
        return {"source": "s", "model": "/m@new", "start": start, "end": end}

    last = {"/m@old": pd.Timestamp("2024-01-02"), "/m@new": pd.Timestamp("2024-01-05"), "/other@x": pd.Timestamp("2024-01-09")}
    stored = pd.DataFrame(
        {"model": ["/m@old", "/other@x"], "start": ["2024-01-01 23:00", "2024-01-03"], "end": ["2024-01-02 01:00", "2024-01-04"]}
    )
    new = [
        event("2024-01-01T05:00:00", "2024-01-01T06:00:00"),  # before the old version's last row: history
        event("2024-01-02T00:30:00", "2024-01-02T03:00:00"),  # overlaps the old version's event: the same incident
        event("2024-01-02T00:00:00", "2024-01-02T00:00:00"),  # ends at its last row: history
        event("2024-01-02T00:10:00", "2024-01-02T00:20:00"),  # (inside the old event too)
        event("2024-01-03T12:00:00", "2024-01-03T13:00:00"),  # another folder's event does not count
    ]
    alert, reported = split_reported(new, "/m@new", last, stored)
    assert [e["start"][:13] for e in reported] == ["2024-01-01T05", "2024-01-02T00", "2024-01-02T00", "2024-01-02T00"]
    assert [e["start"][:13] for e in alert] == ["2024-01-03T12"]
    assert split_reported(new, "/m@new", {"/m@new": last["/m@new"]}, stored) == (new, [])  # a first version alerts all


def test_a_lock_that_cannot_be_taken_fails_the_run_in_one_line(files, tmp_path):
    db = tmp_path / "r.db"
    (tmp_path / "r.db.locks").write_text("not a folder")
    result = run_job(job(files, "full.csv"), str(db))
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.error.startswith(f"database {db}: cannot create its lock file")  # not "unexpected StoreError"
    gone = run_cli("score", files / "full.csv", "--model", files / "model", "--db", tmp_path / "no" / "r.db", "--on-event", "cat")
    lines = gone.stderr.strip().splitlines()
    assert gone.returncode == 2 and len(lines) == 1 and "does not exist" in lines[0]  # said once, not again by the alerts


def test_busy_lock_exits_3_with_one_line(files, tmp_path):
    db = tmp_path / "r.db"
    with open_store(db, create=True) as store, store.lock("pump"):
        done = run_cli(
            "score", files / "full.csv", "--model", files / "model", "--db", db, "--source", "pump", "--lock-timeout", "0.5"
        )
    assert done.returncode == EXIT_LOCKED
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and LOGFMT.fullmatch(lines[0]) and "level=error" in lines[0]
    assert "locked by another run" in lines[0] and "exit=3" in lines[0]
    with open_store(db) as store:
        assert store.runs().empty  # a run that never got the lock leaves no trace


# -- batches on Dask ----------------------------------------------------------------------------
def test_score_batch_on_two_dask_workers_equals_serial(files, tmp_path):
    (tmp_path / "jobs.toml").write_text(
        'db = "dask.db"\n'
        f'[[jobs]]\ndata = "{files / "full.csv"}"\nmodel = "{files / "model"}"\nsource = "full"\n'
        f'[[jobs]]\ndata = "{files / "holed.csv"}"\nmodel = "{files / "model"}"\nsource = "holed"\n'
        f'[[jobs]]\ndata = "{files / "part.csv"}"\nmodel = "{files / "model"}"\nsource = "part"\n'
    )
    done = run_cli_process("score-batch", tmp_path / "jobs.toml", "--workers", "2")  # Dask spawns processes
    assert done.returncode == 0, done.stderr
    assert "dask cluster ready" in done.stderr and "workers=2" in done.stderr
    jobs, settings = load_jobs(tmp_path / "jobs.toml")
    assert settings["db"] == str(tmp_path / "dask.db")
    serial = run_batch(jobs, str(tmp_path / "serial.db"))
    assert [r.status for r in serial] == ["success"] * 3
    with open_store(tmp_path / "dask.db") as dask_store, open_store(tmp_path / "serial.db") as serial_store:
        assert dask_store.sources() == serial_store.sources() == ["full", "holed", "part"]
        for source in ["full", "holed", "part"]:
            a, b = dask_store.scores(source), serial_store.scores(source)
            assert a["timestamp"].tolist() == b["timestamp"].tolist() and len(a) > 0
            assert np.allclose(a["score"], b["score"], rtol=1e-6, atol=1e-12)
            assert (a["is_anomaly"] == b["is_anomaly"]).all()
            pd.testing.assert_frame_equal(
                dask_store.events(source)[["start", "end", "sensors"]], serial_store.events(source)[["start", "end", "sensors"]]
            )
        assert dask_store.runs()["status"].tolist() == ["success"] * 3


# -- options and files (no model needed) --------------------------------------------------------
def test_jobs_file_errors_name_the_file_and_job(tmp_path):
    path = tmp_path / "jobs.toml"
    for text, message in [
        ("[[jobs]]\ndata = 'a.csv'\n", "job 1: 'model' is required"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\ncolour = 'red'\n", "job 1: unknown key"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmax_gap = 'x'\n", "'max_gap' has the wrong type"),
        ("dbb = 'x'\n", "unknown key(s) dbb"),
        ("db = 'x'\n", "no jobs"),
        ("[[jobs]\n", "invalid TOML"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmin_length = 0\n", "job 1: 'min_length' must be an integer >= 1, not 0"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nquantile = 1.5\n", "'quantile' must be a number in (0, 1), not 1.5"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nthreshold = -1\n", "job 1: 'threshold' must be a finite number >= 0, not -1"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nthreshold = nan\n", "'threshold' must be a finite number >= 0, not nan"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nduplicates = 'first'\n", "'duplicates' must be error or mean, not 'first'"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nsource = ' '\n", "job 1: 'source' must name the series"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmissing_values = -9999\n", "job 1: 'missing_values' must be a list of finite"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmissing_values = [-9999, inf]\n", "'missing_values' must be a list"),
        ("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmissing_values = ['NA']\n", "'missing_values' must be a list"),
        ("lock_timeout = -5\n[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\n", "'lock_timeout' must be a number of seconds >= 0, not -5"),
        (  # one would be ignored, as --threshold and --quantile are refused together
            "[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nthreshold = 100.0\nquantile = 0.5\n",
            "job 1: 'threshold' and 'quantile' both set the threshold; give one",
        ),
        (
            "[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nsource = 'pump'\n[[jobs]]\ndata = 'b.csv'\nmodel = './m'\nsource = 'pump'\n",
            "job 2: writes the same source 'pump' with the same model as job 1; give each series its own 'source'",
        ),
    ]:
        path.write_text(text)
        with pytest.raises(DataError, match=re.escape(message)):
            load_jobs(path)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: is a folder; give the jobs file (TOML)")):
        load_jobs(tmp_path)
    path.write_text(
        "[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nsource = 'p1'\n[[jobs]]\ndata = 'b.csv'\nmodel = 'm'\nsource = 'p2'\n"
    )
    assert [j.source for j in load_jobs(path)[0]] == ["p1", "p2"]  # one model for two series is fine
    path.write_text("[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\nmissing_values = [-9999, 9.9e37]\n")
    assert load_jobs(path)[0][0].missing_values == (-9999.0, 9.9e37)
    path.write_text("lock_timeout = 5\n[[jobs]]\ndata = 'd/a.csv'\nmodel = 'm'\ncolumns = 'x, \"y, z\"'\n")
    jobs, settings = load_jobs(path)
    assert jobs[0].data == str(tmp_path / "d" / "a.csv") and jobs[0].columns == ["x", "y, z"]
    assert settings == {"lock_timeout": 5}


def test_alerts_are_strict_json_even_for_an_infinite_severity(tmp_path):
    """A threshold of 0 at the peak (a sensor constant in the normal period moved) gives severity inf:
    the alert says null, which every JSON parser reads, not Python's Infinity."""
    from anomaly.scheduled import send
    from anomaly.store import event_json

    sent = tmp_path / "alerts.jsonl"
    event = {"source": "s", "start": "2024-01-01T00:00:00", "peak_score": 2.0, "severity": float("inf"), "sensors": ["a"]}
    for each in (event, {**event, "severity": 3.5}):
        assert send(f"cat >> '{sent}'", event_json(each), {}) is None

    def refuse(constant):
        raise AssertionError(f"not JSON: {constant}")

    lines = [json.loads(line, parse_constant=refuse) for line in sent.read_text().splitlines()]
    assert [line["severity"] for line in lines] == [None, 3.5] and lines[0]["peak_score"] == 2.0


def test_events_command_prints_every_time_with_its_clock(tmp_path):
    """`anomaly events` wrote a midnight start as a bare date (pandas' CSV shortens an all-midnight
    column); it prints ISO 8601 times, as the file it writes holds them."""
    db = str(tmp_path / "r.db")
    found = pd.DataFrame(
        {
            "start": [pd.Timestamp("2020-01-03")],
            "end": [pd.Timestamp("2020-01-08 23:59")],
            "peak_score": [2.0],
            "severity": [float("inf")],
            "sensors": ["telemetry"],
        }
    )
    with open_store(db, create=True) as store:
        run = store.begin_run("s", "m@1")
        store.commit_run(run, "s", "m@1", pd.DataFrame(index=pd.DatetimeIndex([])), found, events_since=found["start"][0])
    listed = run_cli("events", "--db", db)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split(",")
    assert row[2:4] == ["2020-01-03T00:00:00", "2020-01-08T23:59:00"], listed.stdout
    mistyped = run_cli("events", "--db", db, "--source", "S")  # printed the header alone, as if all were quiet
    assert (mistyped.returncode, mistyped.stdout) == (2, "")
    assert mistyped.stderr.strip() == f"error: {db}: no source 'S' (sources: s)"


def test_exit_code_priorities():
    ok = JobResult("s", "m", "success", 0, 1, new_events=[{"start": "x"}])
    quiet = JobResult("s", "m", "success", 0, 2)
    assert exit_code([quiet], on_anomaly=True) == EXIT_OK
    assert exit_code([ok], on_anomaly=False) == EXIT_OK
    assert exit_code([ok, quiet], on_anomaly=True) == EXIT_ANOMALIES
    assert exit_code([ok, JobResult("s", "m", "locked", 3)], on_anomaly=True) == EXIT_LOCKED
    assert exit_code([JobResult("s", "m", "locked", 3), JobResult("s", "m", "failed", 2)], True) == EXIT_BAD_INPUT
    assert exit_code([ok], on_anomaly=True, alert_failures=1) == 1


def test_db_only_options_need_db(tmp_path):
    def err(*args) -> str:
        proc = run_cli(*args)
        assert proc.returncode == EXIT_BAD_INPUT, proc.stderr
        return proc.stderr

    assert "--on-event needs --db" in err("score", "x.csv", "--model", "m", "--on-event", "cat")
    assert "--out and --events" in err("score", "x.csv", "--model", "m", "--db", tmp_path / "r.db", "--out", "s.csv")
    err("score-batch", tmp_path / "missing.toml", "--db", tmp_path / "r.db")
    for bad in ("nan", "-5", "soon"):  # NaN waited forever, a negative time not at all
        said = err("score", "x.csv", "--model", "m", "--db", tmp_path / "r.db", "--lock-timeout", bad)
        assert f"argument --lock-timeout: expected a number of seconds >= 0, not '{bad}'" in said


def test_a_mistyped_scheduler_address_is_a_one_line_option_error(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text(f"db = '{tmp_path / 'r.db'}'\n[[jobs]]\ndata = 'a.csv'\nmodel = 'm'\n")
    for address, reason in [("127.0.0.1", "missing port number"), ("http://h:8786", "unknown address scheme 'http'")]:
        proc = run_cli("score-batch", path, "--scheduler", address)
        assert proc.returncode == EXIT_BAD_INPUT  # was 1, "unexpected ValueError"
        assert f'msg="--scheduler: {reason}' in proc.stderr and "give an address such as tcp://host:8786" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_documented_cron_line_works_as_written(files, tmp_path):
    text = (ROOT / "docs" / "scheduled-scoring.md").read_text(encoding="utf-8")
    line = re.search(r"```cron\n(.*?)\n```", text, re.S).group(1).strip()
    fields = line.split(None, 5)
    assert len(fields) == 6 and "%" not in line  # five schedule fields, then the command; % is special to cron
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    # ~/lstm-anomaly after `make demo-model`: a venv with the `anomaly` script, the demo data and model
    home = tmp_path / "home"
    repo = home / "lstm-anomaly"
    for sub in (".venv/bin", "data", "models"):
        (repo / sub).mkdir(parents=True)
    shutil.copy(files / "full.csv", repo / "data" / "machine_temperature_system_failure.csv")
    shutil.copytree(files / "model", repo / "models" / "demo")
    script = repo / ".venv" / "bin" / "anomaly"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m anomaly "$@"\n')
    script.chmod(0o755)
    cron_env = {"HOME": str(home), "LOGNAME": "user", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    done = subprocess.run(["/bin/sh", "-c", fields[5]], cwd="/", env=cron_env, capture_output=True, text=True, timeout=600)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # nothing for cron to mail
    with open_store(repo / "results.db") as store:
        assert store.sources() == ["machine_temperature"]
        assert len(store.scores("machine_temperature")) == N
        assert store.runs()["status"].tolist() == ["success"]
    log = (repo / "results.log").read_text().splitlines()
    assert len(log) == 2 and all(LOGFMT.fullmatch(x) for x in log) and 'msg="run finished"' in log[1]


def test_a_fixed_threshold_scores_only_new_rows_and_equals_a_full_rescore(files, tmp_path):
    """`--threshold` (or a `--local-rule none` model) takes the fixed-threshold incremental path."""
    from anomaly.scheduled import load_job

    db = str(tmp_path / "r.db")
    part = dataclasses.replace(job(files, "part.csv"), threshold=0.05)
    full = dataclasses.replace(job(files, "full.csv"), threshold=0.05)
    assert run_job(part, db).rows_new == PART
    second = run_job(full, db)
    assert second.rows_new == N - PART and second.rows_scored < N - PART + 2 * WINDOW
    detector, data = load_job(full)
    expected = detector.score(data, threshold=0.05)
    with open_store(db) as store:
        got = store.scores("pump")
        assert store.flag_state("pump", full.model_name) is None
    assert got["timestamp"].tolist() == expected.index.tolist()
    assert np.allclose(got["score"], expected["score"], rtol=1e-6, atol=1e-12)
    assert (got["is_anomaly"].to_numpy() == expected["is_anomaly"].to_numpy()).all() and got["is_anomaly"].any()
    assert (got["threshold"] == 0.05).all()


def test_a_half_written_last_line_waits_for_the_next_run(files, tmp_path, full_rescore, warned):
    """A logger appending to DATA may be mid-line when the scorer reads it: `...,9` of `...,97.5`."""
    db, data = str(tmp_path / "r.db"), make_data()
    text = data.iloc[: PART + 1].to_csv(index=False)
    torn = text[: text.rstrip("\n").rfind(",") + 2]  # the last row cut inside its last value, no line end
    (tmp_path / "log.csv").write_text(torn)
    first = run_job(Job(str(tmp_path / "log.csv"), str(files / "model"), source="pump"), db)
    assert any("the last line has no line end (still being written?); left for the next run" in m for m in warned)
    assert (first.status, first.rows_new) == ("success", PART)
    data.to_csv(tmp_path / "log.csv", index=False)
    assert run_job(Job(str(tmp_path / "log.csv"), str(files / "model"), source="pump"), db).rows_new == N - PART
    assert_equals_full_rescore(db, full_rescore)


def test_a_model_saved_again_during_a_run_stores_nothing_under_either_version(files, tmp_path, monkeypatch):
    """The run's model version is read when it starts: a retrain landing while it loads fails the run
    rather than store the old model's scores under the new version."""
    import anomaly.scheduled as scheduled

    shutil.copytree(files / "model", tmp_path / "model")
    meta = tmp_path / "model" / "detector.json"
    load = scheduled.load_job_marking_filled

    def retrained_meanwhile(job):
        loaded = load(job)
        meta.write_text(json.dumps(json.loads(meta.read_text()), indent=1))  # new bytes: a new version
        return loaded

    monkeypatch.setattr(scheduled, "load_job_marking_filled", retrained_meanwhile)
    db = str(tmp_path / "r.db")
    result = run_job(Job(str(files / "full.csv"), str(tmp_path / "model"), source="pump"), db)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert "the model was saved again during the run; run again" in result.error
    with open_store(db) as store:
        assert store.scores("pump").empty and store.runs()["status"].tolist() == ["failed"]


def test_a_database_that_cannot_be_written_is_a_failed_job_not_a_crash(files, tmp_path, monkeypatch):
    """begin_run failing (a read-only file, a full disk) ends the job with a logfmt error and exit 1,
    and a batch goes on to its other jobs."""
    from anomaly.store import Store

    def refuse(self):
        raise sa.exc.OperationalError("INSERT INTO runs", {}, Exception(reason))

    db = tmp_path / "r.db"
    open_store(db, create=True).close()  # the schema is there: begin_run is the first write
    monkeypatch.setattr(Store, "_write", refuse)
    reason = "attempt to write a readonly database"
    results = run_batch([job(files, "full.csv"), job(files, "part.csv", source="other")], str(db))
    assert [(r.status, r.exit_code, r.run_id) for r in results] == [("failed", 1, None)] * 2
    assert results[0].error == f"database {db}: attempt to write a readonly database"
    reason = "database is locked"  # SQLite's write lock held by another source's run past the busy timeout
    results = run_batch([job(files, "full.csv")], str(db))
    assert [(r.status, r.exit_code) for r in results] == [("failed", EXIT_LOCKED)]
    assert results[0].error == f"database {db}: database is locked (another run is writing to it); try again later"


def test_too_few_rows_yet_is_a_quiet_success_that_waits(files, tmp_path, warned, full_rescore):
    """A new sensor with fewer rows than a window, or a file just rotated to its header: exit 0 with a
    warning each run, until the rows come; `anomaly score` without --db still calls it bad input."""
    db, data = str(tmp_path / "r.db"), make_data()
    path = tmp_path / "new.csv"
    for rows in (None, 0, WINDOW - 3):  # None: a file just rotated or truncated to nothing
        if rows is None:
            path.write_bytes(b"")
        else:
            data.iloc[:rows].to_csv(path, index=False)
        result = run_job(Job(str(path), str(files / "model"), source="pump"), db)
        assert (result.status, result.exit_code, result.rows_scored) == ("success", EXIT_OK, 0)
        assert warned[-1].endswith("; waiting for more rows")
    with open_store(db) as store:
        assert store.scores("pump").empty and store.runs()["status"].tolist() == ["success"] * 3
    assert run_cli("score", path, "--model", files / "model", "--out", tmp_path / "s.csv").returncode == EXIT_BAD_INPUT
    patchy = data[np.arange(N) % 10 < 5]  # plenty of rows, never a window without a gap: bad data, not early days
    patchy.to_csv(tmp_path / "patchy.csv", index=False)
    broken = run_job(Job(str(tmp_path / "patchy.csv"), str(files / "model"), source="other"), db)
    assert (broken.status, broken.exit_code) == ("failed", EXIT_BAD_INPUT) and "no complete window" in broken.error
    data.to_csv(path, index=False)
    assert run_job(Job(str(path), str(files / "model"), source="pump"), db).rows_new == N
    assert_equals_full_rescore(db, full_rescore)


def test_a_first_run_with_no_final_row_yet_stores_its_rows_and_the_next_goes_on(tmp_path):
    """At stride 2 a first run of one window has rows to write but none final yet (no checkpoint to
    save): it is a success, and the next run scores on to what one `anomaly score` gives."""
    from anomaly.detector import LSTMAutoencoderDetector
    from anomaly.scheduled import load_job

    data = make_data()
    detector = LSTMAutoencoderDetector(**{**TINY, "window": WINDOW, "smoothing": 5, "stride": 2})
    detector.fit(data.iloc[:400].set_index("timestamp")).save(tmp_path / "m")
    path, db = tmp_path / "new.csv", str(tmp_path / "r.db")
    data.iloc[:WINDOW].to_csv(path, index=False)
    first = run_job(Job(str(path), str(tmp_path / "m"), source="pump"), db)
    assert (first.status, first.rows_new) == ("success", WINDOW), first.error
    data.to_csv(path, index=False)
    assert run_job(Job(str(path), str(tmp_path / "m"), source="pump"), db).status == "success"
    loaded, frame = load_job(Job(str(path), str(tmp_path / "m")))
    expected = loaded.score(frame)
    with open_store(db) as store:
        got = store.scores("pump")
    assert got["timestamp"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-6)
    np.testing.assert_array_equal(got["is_anomaly"], expected["is_anomaly"])


def test_a_symbolic_link_as_data_warns_that_it_names_the_source_by_its_target(files, tmp_path, warned):
    (tmp_path / "latest.csv").symlink_to(files / "part.csv")
    result = run_job(Job(str(tmp_path / "latest.csv"), str(files / "model")), str(tmp_path / "r.db"))
    assert result.status == "success" and result.source == str(files / "part.csv")
    assert warned == [
        "DATA is a symbolic link: the source is named after the file it points to, so a link re-pointed to another "
        "file starts a new source; give --source to keep one name"
    ]
    warned.clear()
    assert (
        run_job(Job(str(tmp_path / "latest.csv"), str(files / "model"), source="pump"), str(tmp_path / "r.db")).status
        == "success"
    )
    assert warned == []  # a name given: nothing to warn of


def test_readings_that_arrive_for_rows_filled_in_earlier_are_scored(files, tmp_path, warned):
    """A short gap is interpolated and its rows stored; when the logger backfills the real readings
    (here an incident), they are late rows: DATA is flagged from its start again, as one score of it."""
    from anomaly.scheduled import load_job

    data = make_data()
    data.loc[300:302, "a"] += 4.0  # the incident inside the gap
    path, db = tmp_path / "live.csv", str(tmp_path / "r.db")
    data.iloc[:PART].drop(index=[300, 301, 302]).to_csv(path, index=False)  # three rows missed, filled in
    for _ in range(2):  # the gap still filled in: nothing late, nothing new
        run_job(Job(str(path), str(files / "model"), source="pump"), db)
    assert not [w for w in warned if "late row" in w]
    data.to_csv(path, index=False)  # the readings came, and more rows
    second = run_job(Job(str(path), str(files / "model"), source="pump"), db)
    assert second.rows_scored == N and warned[-1] == (
        "3 late row(s) at or before the last final row (2024-01-01 09:02:00), 3 of them filled in by interpolation "
        "before their readings came: scoring and flagging DATA from its start"
    )
    detector, frame = load_job(Job(str(path), str(files / "model")))
    expected = detector.score(frame)
    events = detector.events(expected)
    with open_store(db) as store:
        got, stored = store.scores("pump"), store.events("pump")
    np.testing.assert_allclose(got["score"], expected["score"].dropna(), rtol=1e-6)
    np.testing.assert_array_equal(got["is_anomaly"], expected["is_anomaly"][expected["score"].notna()])
    assert stored["start"].tolist() == events["start"].tolist() and stored["start"].iloc[0] == pd.Timestamp("2024-01-01 05:00")
    assert run_job(Job(str(path), str(files / "model"), source="pump"), db).rows_new == 0  # and then nothing more

"""Real processes killed mid-run: the previous model and output files survive whole, nothing partial
appears, and SIGINT ends with exit code 130 and one line."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from reliability_support import entries, popen_cli, series, train_tiny, write_csv

from anomaly.artifacts import read_metadata
from anomaly.errors import Terminated
from anomaly.io import write_table

SENTINEL = "previous,output\n1,2\n"


class Reader:
    """Collects a pipe's bytes in a thread, so the test can wait for some output without blocking."""

    def __init__(self, pipe):
        self.data = b""
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe):
        while chunk := os.read(pipe.fileno(), 4096):
            self.data += chunk

    def text(self) -> str:
        self._thread.join(timeout=30)
        return self.data.decode("utf-8", "replace")


def wait_until(condition, proc, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def digests(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def last_line(stderr: str) -> str:
    return [line for line in stderr.replace("\r", "\n").split("\n") if line.strip()][-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("shared") / "model")


# -- training ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killing_train_keeps_the_previous_model(model, tmp_path, sig):
    import shutil

    from anomaly.detector import LSTMAutoencoderDetector

    target = Path(shutil.copytree(model, tmp_path / "model"))
    before = digests(target)
    data = write_csv(series(2000, seed=7), tmp_path / "big.csv")
    proc = popen_cli(
        "train",
        data,
        "--model",
        target,
        "--window",
        "16",
        "--units",
        "16",
        "--latent",
        "4",
        "--epochs",
        "1000",
        "--patience",
        "1000",
    )
    err = Reader(proc.stderr)
    # tqdm's bar shows "N/1000 [..., ?epoch/s]" once training has started: kill after two epochs
    wait_until(lambda: "2/1000" in err.data.decode("utf-8", "replace"), proc, 600, "the progress output")
    proc.send_signal(sig)
    proc.wait(timeout=120)
    stderr = err.text()
    proc.stdout.close()

    if sig in (signal.SIGINT, signal.SIGTERM):  # training stops at a batch boundary, then exits
        code, word = (130, "interrupted") if sig == signal.SIGINT else (143, "terminated")
        assert proc.returncode == code, stderr
        assert last_line(stderr) == f"error: {word}"
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert digests(target) == before, "the previous model changed"
    assert entries(tmp_path) == {"model", "big.csv"}, "a partial model directory was left"
    read_metadata(target)
    assert LSTMAutoencoderDetector.load(target).columns_ == ["a", "b"]


# -- scoring -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_data(tmp_path_factory) -> Path:
    """A long series, so that writing its scores takes long enough to be interrupted."""
    return write_csv(series(100_000, seed=3), tmp_path_factory.mktemp("big") / "big.csv")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_killing_score_while_it_writes_leaves_no_partial_output(model, big_data, tmp_path, sig):
    out = tmp_path / "scores.csv"
    out.write_text(SENTINEL)
    proc = popen_cli("score", big_data, "--model", model, "--out", out)
    err = Reader(proc.stderr)
    wait_until(lambda: any(tmp_path.glob(".scores.csv.tmp-*")), proc, 600, "the temporary output file")
    proc.send_signal(sig)
    proc.wait(timeout=120)
    stderr = err.text()
    proc.stdout.close()

    text = out.read_text()
    if text != SENTINEL:  # the signal came after the rename: then the file must be complete
        assert len(pd.read_csv(out)) == 100_000
    leftovers = entries(tmp_path) - {"scores.csv"}
    if sig in (signal.SIGINT, signal.SIGTERM):
        code, word = (130, "interrupted") if sig == signal.SIGINT else (143, "terminated")
        assert proc.returncode == code, stderr
        assert last_line(stderr) == f"error: {word}" and "Traceback" not in stderr
        assert leftovers == set(), "the temporary file was not removed"
    else:
        assert proc.returncode == -signal.SIGKILL
        assert all(name.startswith(".scores.csv.tmp-") for name in leftovers)
        write_table(pd.DataFrame({"x": [1]}), out)  # the next write removes what the killed one left
        assert entries(tmp_path) == {"scores.csv"}


@pytest.mark.parametrize("stop, code, line", [(KeyboardInterrupt, 130, "error: interrupted"),
                                              ("terminated", 143, "error: terminated")])  # fmt: skip
def test_an_error_raised_while_an_interrupt_unwinds_is_still_the_interrupt(monkeypatch, stop, code, line):
    """TensorFlow's clean-up can raise its own RuntimeError while Ctrl-C unwinds a fit (seen in CI):
    the user still gets the interrupt's one line and exit code, not "unexpected RuntimeError"."""
    from anomaly import cli

    def command(args):
        try:
            raise Terminated() if stop == "terminated" else stop()
        finally:
            raise RuntimeError("Exiting device scope without proper scope nesting")

    monkeypatch.setattr(cli, "cmd_events", command)
    proc = run_cli("events", "--db", "unused.db")
    assert proc.returncode == code and proc.stderr.strip().splitlines() == [line]

    def bug(args):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(cli, "cmd_events", bug)  # without an interrupt behind it, an error stays an error
    proc = run_cli("events", "--db", "unused.db")
    assert proc.returncode == 1 and "unexpected RuntimeError: a real bug" in proc.stderr

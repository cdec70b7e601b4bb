"""End to end: `anomaly dashboard` on a free localhost port, driven by Playwright in headless Chromium.

Needs /usr/bin/chromium (`.ci/run` installs Debian's package). Screenshots of every page go to
tests/artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import copy
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dash_support import ROOT, csv_bytes, dash_dirs, fill_store, make_series  # noqa: F401 (fixture)
from playwright.sync_api import Page, expect, sync_playwright

from anomaly import load_series
from anomaly.detector import LSTMAutoencoderDetector

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SLOW = 120_000  # ms: the first page load scores the series on a shared 2-core machine
expect.set_options(timeout=SLOW)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(dash_dirs):
    """The dashboard served on 127.0.0.1 with the temp models/data folders; stopped afterwards."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), STREAMLIT_SERVER_FILE_WATCHER_TYPE="none")
    log = open(dash_dirs["base"] / "streamlit.log", "wb")
    proc = subprocess.Popen(  # the command a user runs; it execs the Streamlit server in this same process
        [
            sys.executable,
            "-m",
            "anomaly",
            "dashboard",
            "--port",
            str(port),
            "--models",
            str(dash_dirs["models"]),
            "--data",
            str(dash_dirs["data"]),
            "--db",
            str(dash_dirs["db"]),
        ],
        cwd=dash_dirs["base"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start: {(dash_dirs['base'] / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    text = (dash_dirs["base"] / "streamlit.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def browser_page(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1500})
        page.set_default_timeout(SLOW)
        yield page
        browser.close()


def idle(page: Page) -> None:
    """Wait until the app is connected and no script run is in progress."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']")
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    expect(page.locator("[data-testid='stSkeleton']")).to_have_count(0)


def go(page: Page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", name=title, exact=False).first).to_be_visible()
    idle(page)


def metric_value(page: Page, label: str):
    box = page.locator("[data-testid='stMetric']", has=page.locator("[data-testid='stMetricLabel']", has_text=label))
    return box.first.locator("[data-testid='stMetricValue']")


def metric(page: Page, label: str) -> str:
    return metric_value(page, label).inner_text().strip()


def shot(page: Page, name: str) -> None:
    page.wait_for_timeout(600)  # let Plotly finish its transition
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_dashboard_in_a_real_browser(browser_page: Page, server, dash_dirs, tmp_path):
    detector = LSTMAutoencoderDetector.load(dash_dirs["models"] / "tiny")
    scores = detector.score(load_series(dash_dirs["data"] / "series.csv"))
    fill_store(dash_dirs["db"], detector, scores)  # what the scheduled scorer would have written
    try:
        _walk_through(browser_page, server, tmp_path, dash_dirs, detector, scores)
    except BaseException:
        browser_page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)  # what the browser showed
        raise


def _walk_through(page: Page, server: str, tmp_path: Path, dash_dirs: dict, detector, scores) -> None:
    page.goto(server)
    idle(page)
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    assert page.get_by_text("Traceback").count() == 0
    assert metric(page, "Points scored") == "800"
    shot(page, "1_series")

    # Threshold: the causal rule explained with the model's numbers; Home on the k slider (k = 2)
    # re-flags the series, exactly as the package re-flags it.
    go(page, "Threshold")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(page.get_by_text("How points are flagged")).to_be_visible()
    expect(page.get_by_text(f"of the last {detector.local_trailing:,} scores", exact=False)).to_be_visible()
    before = metric(page, "Events")
    assert int(before) == len(detector.events(scores))
    assert metric(page, "Cap") == f"{detector.flag_rule().cap:.4g}"
    shot(page, "2_threshold")
    thumb = page.get_by_role("slider").first  # k, the first setting
    assert float(thumb.input_value()) == detector.local_k
    thumb.focus()
    page.keyboard.press("Home")  # the slider's minimum
    expect(thumb).to_have_value(re.compile(r"^2(\.0*)?$"))
    alt = copy.copy(detector).set_params(local_k=2.0)
    flagged = alt.reflag(scores)
    changed = str(len(alt.events(flagged)))
    assert changed != before
    box = page.locator("[data-testid='stMetric']", has=page.locator("[data-testid='stMetricLabel']", has_text="Events"))
    expect(box.first.locator("[data-testid='stMetricValue']")).to_have_text(changed)
    idle(page)
    assert metric(page, "Flagged points") == f"{int(flagged['is_anomaly'].sum()):,}"
    expect(page.get_by_text("threshold (saved)")).to_be_visible()  # the saved rule's line, in the legend
    shot(page, "2b_threshold_tuned")

    go(page, "Events")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    assert (
        page.get_by_text(
            re.compile(
                rf"mean \+ 2 std of the last [0-9,]+ scores.*\(set on the Threshold page\): "
                rf"{changed} event"
            )
        ).count()
        == 1
    )
    shot(page, "3_events")

    go(page, "Embeddings")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    shot(page, "4_embeddings")

    go(page, "Model")
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    assert metric(page, "Epochs run") == "2"
    shot(page, "5_model")

    go(page, "Train")
    expect(page.get_by_text("Upload a file of sensor readings")).to_be_visible()
    page.get_by_text("File of the data folder").click()  # the whole form, model options included
    expect(page.get_by_text("Bidirectional layers")).to_be_visible()
    shot(page, "6_train")

    go(page, "History")
    expect(page.locator(".js-plotly-plot")).to_have_count(2)
    assert metric(page, "Runs") == "2" and metric(page, "Failed runs") == "1"
    assert metric(page, "Precision (feedback)") == "–"
    shot(page, "7_history")
    # Review the latest stored event: a false alarm, with a name; the verdict lands in the database.
    page.get_by_text("false alarm", exact=True).click()
    page.get_by_role("textbox", name="Your name").fill("ana")
    page.get_by_role("textbox", name="Note (optional)").fill("sensor swap")
    page.get_by_role("button", name="Save verdict").click()
    expect(page.get_by_text("Saved: false alarm (series.csv,", exact=False)).to_be_visible()
    idle(page)
    assert metric(page, "Precision (feedback)") == "0%"
    from anomaly.store import open_store

    with open_store(dash_dirs["db"]) as store:
        fb = store.feedback()
    assert fb[["verdict", "author", "note"]].values.tolist() == [["false_alarm", "ana", "sensor swap"]]
    shot(page, "7b_history_review")

    # Back to the model's settings; then a fixed-threshold model's Threshold page; then upload on the
    # Series page: a broken file first (an error, no traceback), then a good one.
    go(page, "Threshold")
    page.get_by_role("button", name="Reset to the model's settings").click()
    idle(page)
    expect(page.locator("[data-testid='stMetric']", has_text="Events").locator("[data-testid='stMetricValue']")).to_have_text(
        before
    )
    # The sliders show the model's settings again, and moving another one keeps them (the browser
    # once kept k = 2 and sent it back with the next move).
    thumb = page.get_by_role("slider").first
    expect(thumb).to_have_value(re.compile(rf"^{detector.local_k:g}(\.0*)?$"))
    page.get_by_role("slider").nth(1).focus()  # the trailing length
    page.keyboard.press("ArrowRight")
    longer = copy.copy(detector).set_params(local_trailing=detector.local_trailing + 10)
    expect(metric_value(page, "Flagged points")).to_have_text(f"{int(longer.reflag(scores)['is_anomaly'].sum()):,}")
    idle(page)
    expect(thumb).to_have_value(re.compile(rf"^{detector.local_k:g}(\.0*)?$"))
    page.get_by_role("button", name="Reset to the model's settings").click()
    idle(page)
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="tiny_fixed", exact=True).click()
    idle(page)
    expect(page.get_by_text("one fixed threshold", exact=False)).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    fixed = LSTMAutoencoderDetector.load(dash_dirs["models"] / "tiny_fixed")
    # waits for the new model's run: the script state can read "not running" before the rerun starts
    expect(metric_value(page, "Threshold")).to_have_text(f"{fixed.threshold_for():.4g}")
    idle(page)
    assert metric(page, "Events") == str(len(fixed.events(fixed.score(load_series(dash_dirs["data"] / "series.csv")))))
    shot(page, "2c_threshold_fixed")
    go(page, "Series")
    page.locator("[data-testid='stSidebar'] label", has_text="Upload").first.click()
    idle(page)
    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\x00\x01 binary")
    page.locator("[data-testid='stSidebar'] input[type=file]").set_input_files(str(bad))
    expect(page.get_by_text("broken.csv: binary content, not a CSV text file")).to_be_visible()
    idle(page)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "8_bad_upload")
    good = tmp_path / "uploaded.csv"
    good.write_bytes(csv_bytes(make_series(400, seed=5)))
    page.locator("[data-testid='stSidebar'] input[type=file]").set_input_files(str(good))
    expect(page.get_by_text("uploaded.csv", exact=False).last).to_be_visible()
    idle(page)
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    expect(
        page.locator("[data-testid='stMetric']", has_text="Points scored").locator("[data-testid='stMetricValue']")
    ).to_have_text("400")
    # The page stopped before its Sensors box (no file yet, then a broken one): the box comes back with
    # the sensors the chart draws (it once came back empty, and the next move drew one sensor only).
    tags = page.locator("[data-testid='stMain'] [data-testid='stMultiSelectTagsContainer'] span[data-tag]")
    expect(tags).to_have_count(2)
    page.get_by_text("Show reconstruction").click()  # the next move draws what the box shows
    # The chart is drawn anew while the page reruns: there may be no plot for a moment (a predicate
    # that read .data of null failed the wait at once, with the right chart on screen, three times).
    page.wait_for_function("() => (document.querySelector('.js-plotly-plot')?.data ?? []).some(t => t.name === 'reconstruction')")
    idle(page)
    assert [t.get_attribute("aria-label") for t in tags.all()] == ["a", "b"]
    names = page.locator(".js-plotly-plot").first.evaluate("el => el.data.map(t => t.name)")
    assert names.count("original") == 2 and names.count("reconstruction") == 2
    shot(page, "9_series_upload")
    for name in (
        "1_series",
        "2_threshold",
        "2b_threshold_tuned",
        "2c_threshold_fixed",
        "3_events",
        "4_embeddings",
        "5_model",
        "6_train",
        "7_history",
        "7b_history_review",
        "8_bad_upload",
        "9_series_upload",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000

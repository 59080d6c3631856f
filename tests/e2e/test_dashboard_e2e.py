"""The dashboard in a real browser: every page renders, sidebar picks drive the Compare chart, and a
training job launched from Experiment setup is followed, survives a reload and is cancelled."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from e2e_helpers import (
    CHART,
    curve,
    legend_label,
    no_errors,
    open_page,
    pick,
    screenshot,
    stopwatch,
    wait_idle,
)

pytestmark = pytest.mark.e2e

PAGES = [
    ("", "Data"),
    ("setup", "Experiment setup"),
    ("jobs", "Training jobs"),
    ("teacher-forcing", "Teacher forcing"),
    ("diagnostic", "Generation diagnostic"),
    ("compare", "Compare curves"),
]


def demo_runs(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.glob("demo_*") if (p / "model.safetensors").is_file())


def test_every_page_renders(base, page):
    for path, title in PAGES:
        open_page(page, base, path, title)
        no_errors(page)
        # The sidebar (built by app.py) is on every page.
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Checkpoint", exact=True).first.wait_for(timeout=30_000)


def test_pick_checkpoint_then_compare_chart(base, page, e2e_runs, tmp_path):
    names = demo_runs(e2e_runs)
    assert len(names) >= 2, "the demo checkpoints are missing"
    open_page(page, base, "compare", "Compare curves")
    sidebar = page.locator('[data-testid="stSidebar"]')
    target = names[-1]
    pick(page, sidebar, "Checkpoint", re.compile(rf"^{re.escape(target)}\b"))
    page.wait_for_url(re.compile(rf"run={re.escape(target)}"), timeout=30_000)
    chart = page.locator(CHART).first
    chart.wait_for(timeout=60_000)
    legend_label(page, target).first.wait_for(timeout=60_000)
    assert legend_label(page, "real").count() >= 1
    assert curve(page, target)["n"] > 100 and curve(page, "real")["n"] > 100  # drawn, not only listed
    no_errors(page)
    # Add a comparison checkpoint for the README screenshot.
    sidebar.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(names[0])}\b")).first.click()
    page.keyboard.press("Escape")
    wait_idle(page)
    legend_label(page, names[0]).first.wait_for(timeout=60_000)
    shot = screenshot(page, "screenshot.png", tmp_path)
    assert shot.stat().st_size > 10_000
    # PNG export (after the screenshot: hovering scrolls the chart into view): Streamlit's chart
    # toolbar, shown on hover, downloads the drawn chart.
    chart.hover()
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("button", name="Download as PNG").first.click()
    assert download.value.suggested_filename.endswith(".png")


def test_launch_job_follow_reload_and_cancel(base, page, e2e_runs):
    from roastcore.jobs import JobRunner

    mark = stopwatch()

    open_page(page, base, "setup", "Experiment setup")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("micro_model").first.wait_for(timeout=30_000)  # the default preset
    # Tiny settings: 5 s steps and many epochs, so the job is surely still running when cancelled.
    step = main.locator('[data-testid="stSlider"]').filter(has_text="Time step").get_by_role("slider")
    step.focus()
    step.press("ArrowRight")
    wait_idle(page)
    step.press("ArrowRight")
    wait_idle(page)
    epochs = main.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input")
    epochs.fill("200")
    epochs.press("Enter")
    wait_idle(page)
    diff = main.locator('[data-testid="stDataFrame"]')
    diff.first.wait_for(timeout=30_000)  # step_s and epochs differ from the preset
    page.get_by_role("button", name="Launch", exact=True).click()  # not "Launch sweep…"
    done = page.get_by_text(re.compile(r"Job \w+ \(micro_model\) is (running|queued)"))
    done.wait_for(timeout=60_000)
    mark("launched")
    job_id = re.search(r"Job (\w+) \(", done.inner_text()).group(1)
    runner = JobRunner(e2e_runs)
    assert runner.get(job_id).overrides.get("step_s") == 5.0 and runner.get(job_id).epochs == 200

    open_page(page, base, "jobs", "Training jobs")
    line = page.get_by_text(re.compile(rf"micro_model · {job_id} · running · epoch [1-9]"))
    line.first.wait_for(timeout=90_000)  # it progresses (live fragment, no manual refresh)
    mark("progress seen")
    page.reload()
    page.get_by_role("heading", name="Training jobs").first.wait_for(timeout=60_000)
    page.get_by_text(re.compile(rf"micro_model · {job_id} · running")).first.wait_for(timeout=60_000)

    mark("seen after reload")
    page.get_by_role("button", name=re.compile("Cancel")).click()
    page.get_by_text(re.compile(rf"micro_model · {job_id} · cancelled")).first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 30
    while runner.get(job_id).state != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert runner.get(job_id).state == "cancelled"
    mark("cancelled")
    no_errors(page)

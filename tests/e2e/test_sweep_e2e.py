"""A sweep launched from the dashboard in a real browser: Experiment setup's "Launch sweep…"
opens the Sweeps form with its settings, two one-epoch micro_model runs are launched, the page
shows their jobs, and, once each has trained and scored itself, the results table and charts."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import no_errors, open_page, stopwatch, wait_idle

pytestmark = pytest.mark.e2e


def test_a_sweep_launched_from_the_dashboard_shows_jobs_then_results(base, page, e2e_runs):
    from roastcore.jobs import JobRunner, get_sweep, sweep_runs

    mark = stopwatch()

    open_page(page, base, "setup", "Experiment setup")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("micro_model").first.wait_for(timeout=30_000)  # the default preset
    # 5 s steps: short sequences, so the one-epoch runs and their scoring are quick.
    step = main.locator('[data-testid="stSlider"]').filter(has_text="Time step")
    step = step.get_by_role("slider")
    step.focus()
    for _ in range(2):
        step.press("ArrowRight")
        wait_idle(page)
    page.get_by_role("button", name="Launch sweep…").click()
    page.get_by_role("heading", name="Sweeps").first.wait_for(timeout=60_000)
    wait_idle(page)
    main.get_by_text("Fixed from Experiment setup: step_s=5.0").wait_for(timeout=30_000)
    for label, value in (("Seeds", "2"), ("Epochs", "1")):
        box = main.locator('[data-testid="stNumberInput"]').filter(has_text=label).locator("input")
        box.fill(value)
        box.press("Enter")
        wait_idle(page)
    main.get_by_text(re.compile(r"^2 jobs on ")).wait_for(timeout=30_000)
    page.get_by_role("button", name="Launch sweep", exact=True).click()
    queued = page.get_by_text(re.compile(r"Sweep s[0-9a-f]+ queued: 2 jobs"))
    queued.wait_for(timeout=60_000)
    sweep_id = re.search(r"Sweep (s[0-9a-f]+)", queued.inner_text()).group(1)
    mark(f"launched {sweep_id}")

    sweep = get_sweep(JobRunner(e2e_runs), sweep_id, refresh=False)
    assert sorted((j.preset, j.seed, j.epochs, j.overrides.get("step_s")) for j in sweep.jobs) == [
        ("micro_model", 0, 1, 5.0), ("micro_model", 1, 1, 5.0)]
    assert sweep.name == "micro_model x 2 seeds (step_s=5.0)"
    # Its jobs and their states, followed live (no reload). A table's cells are read from the
    # data grid's accessibility table (attached, drawn on a canvas: never "visible").
    tables = main.locator('[data-testid="stDataFrame"]')

    def cell(table, text: str | re.Pattern):
        return table.locator('[role="gridcell"]').filter(
            has_text=re.compile(rf"^{re.escape(text)}$") if isinstance(text, str) else text)

    jobs = tables.first
    for job in sweep.jobs:
        cell(jobs, job.id).wait_for(state="attached", timeout=30_000)
    mark("jobs shown")
    page.get_by_text("2 of 2 jobs finished").first.wait_for(timeout=150_000)
    cell(jobs, "succeeded").nth(1).wait_for(state="attached", timeout=30_000)
    picker = main.locator('[data-testid="stSelectbox"]').filter(has_text="Sweep")
    picker = picker.get_by_role("combobox")
    assert picker.input_value().endswith(f"{sweep_id} · finished (2 succeeded)")
    mark("jobs finished")
    # Then the results: the table (mean ± std over the two seeds), the suite chart and the
    # learning curves (Altair; one setting, so no parallel coordinates).
    results = tables.nth(1)
    cell(results, "2/2").wait_for(state="attached", timeout=60_000)
    assert cell(results, re.compile(r"^\d+\.\d\d ± \d+\.\d\d$")).count() >= 4
    charts = main.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(1).wait_for(timeout=60_000)
    assert charts.count() == 2
    assert page.get_by_text("Not scored yet", exact=False).count() == 0
    runs = sweep_runs(get_sweep(JobRunner(e2e_runs), sweep_id, refresh=False))
    assert all(r["scored"] and r["state"] == "succeeded" for r in runs), runs
    no_errors(page)
    mark("results shown")

    # Clicking a run's point (Vega's SVG marks carry their data as aria-labels) selects it: the
    # selected run's table appears and its learning curve stays bold while the other fades.
    point = charts.first.locator('[aria-roledescription="circle"][aria-label*="seed: 1"]').first
    job = re.search(r"job: (\w+)", point.get_attribute("aria-label")).group(1)
    other = next(j.id for j in sweep.jobs if j.id != job)
    point.click(force=True)  # the baseline's point may overlap it
    page.get_by_text(f"1 selected run(s): {job}").wait_for(timeout=30_000)
    wait_idle(page)
    chosen = tables.nth(2)
    cell(chosen, job).wait_for(state="attached", timeout=30_000)
    assert cell(chosen, other).count() == 0
    assert charts.last.locator(f'[aria-roledescription="line mark"][aria-label*="job: {job}"]'
                               ).get_attribute("opacity") == "1"
    assert charts.last.locator(f'[aria-roledescription="line mark"][aria-label*="job: {other}"]'
                               ).get_attribute("opacity") == "0.15"
    no_errors(page)
    mark("selection followed")

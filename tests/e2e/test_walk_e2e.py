"""Defects a browser walk found (issue 14), each checked in a real browser: the real curve in the
light and dark themes, switching imported datasets on the Data page, band labels of the
teacher-forcing chart, and job states and new runs reaching an open page without a reload."""

from __future__ import annotations

import re
import time

import pytest
from e2e_helpers import CHART, legend_label, no_errors, open_page, pick, wait_idle

pytestmark = pytest.mark.e2e
expect = pytest.importorskip("playwright.sync_api").expect

# The chart as the browser drew it: the real curve's stroke, the legend text colour and the
# backgrounds behind them (the chart's own, then the app's).
FIGURE_COLOURS_JS = """
() => {
  const app = getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor;
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const real = Array.from(chart.querySelectorAll('g.mark-line path'))
      .find(p => p.__data__ && p.__data__.datum && p.__data__.datum.series === 'real');
    if (!real) continue;
    const svg = chart.querySelector('svg');
    const legendText = chart.querySelector('g.role-legend-label text');
    return {line: real.getAttribute('stroke'), plot: getComputedStyle(svg).backgroundColor,
            paper: getComputedStyle(chart).backgroundColor, app: app,
            legend: legendText ? getComputedStyle(legendText).fill : null};
  }
  return null;
}
"""


def _rgba(text: str) -> tuple[float, float, float, float]:
    text = text.strip().lower()
    if text.startswith("#"):
        h = text[1:]
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 1.0
    nums = [float(x) for x in re.findall(r"[\d.]+", text)]
    return nums[0], nums[1], nums[2], nums[3] if len(nums) > 3 else 1.0


def _luminance(rgb) -> float:
    def channel(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    a, b = _luminance(_rgba(fg)), _luminance(_rgba(bg))
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def background(colours: dict) -> str:
    """What is behind the plot: the first opaque one of plot, paper and app background."""
    for key in ("plot", "paper", "app"):
        if colours.get(key) and _rgba(colours[key])[3] > 0.5:
            return colours[key]
    return colours["app"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_real_curve_and_its_legend_follow_the_theme(base, browser, e2e_runs, scheme):
    context = browser.new_context(viewport={"width": 1400, "height": 950}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        for path, title in (("compare?run=demo_teacher_forced", "Compare curves"),
                            ("diagnostic?run=demo_teacher_forced", "Generation diagnostic")):
            open_page(page, base, path, title)
            legend_label(page, "real").first.wait_for(timeout=90_000)
            colours = page.evaluate(FIGURE_COLOURS_JS)
            assert colours, f"no 'real' trace on {title}"
            app_dark = _luminance(_rgba(colours["app"])) < 0.2
            assert app_dark == (scheme == "dark"), colours  # the browser's scheme reached Streamlit
            behind = background(colours)
            # The real curve (and so its legend swatch) and the legend text stand out in both themes.
            assert contrast(colours["line"], behind) >= 3.0, (title, colours)
            assert colours["legend"] and contrast(colours["legend"], behind) >= 3.0, (title, colours)
            no_errors(page)
    finally:
        context.close()


def test_data_page_switches_imported_datasets_without_errors(base, page, e2e_runs):
    """The walk: artisan_ten -> hypersprite -> built-in showed 'Could not render the dataset
    browser: bad argument type for built-in operation' (the browser sent back the previous
    dataset's roast labels)."""
    from roastcore.io import registry
    from roastcore.simulate import generate_dataset

    registry.save_dataset(e2e_runs, "walk_ten", generate_dataset(n=10, seed=21), "generated")
    registry.save_dataset(e2e_runs, "walk_four", generate_dataset(n=4, seed=22), "generated")
    open_page(page, base, "", "Data")
    sidebar = page.locator('[data-testid="stSidebar"]')
    roasts = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Roasts to draw")
    for option in (re.compile(r"^walk_ten"), re.compile(r"^walk_four"), re.compile(r"^Built-in"),
                   re.compile(r"^walk_ten")):
        pick(page, sidebar, "Dataset", option)
        roasts.first.wait_for(timeout=60_000)
        no_errors(page)
        assert roasts.first.locator("[data-tag]").count() == 3


def test_tf_band_labels_do_not_overlap(base, page):
    open_page(page, base, "teacher-forcing?run=demo_collapsed&cmp=demo_teacher_forced,demo_recommended",
              "Teacher forcing")
    chart = page.locator(CHART).first
    labels = chart.locator("g.mark-text text").filter(has_text=re.compile(r"^(excellent|good|moderate|poor)$"))
    labels.first.wait_for(timeout=120_000)
    boxes = [b for b in (a.bounding_box() for a in labels.all()) if b]
    assert len(boxes) >= 2
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
            overlap_y = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
            assert overlap_x <= 0 or overlap_y <= 0, (a, b)
    no_errors(page)


@pytest.mark.timeout(600)
def test_a_finished_job_reaches_the_open_page_without_a_reload(base, page, e2e_runs):
    """The walk: the Job selector still read '· running' after the job had succeeded, and the
    finished run was not offered in the sidebar while another job kept the page polling."""
    from roastcore.jobs import JobRunner

    runner = JobRunner(e2e_runs)
    try:
        # Long enough to be seen running (two jobs now run side by side), short enough to finish.
        quick = runner.submit("micro_model", {"step_s": 5.0, "patience": 0}, "synthetic:60", epochs=30,
                              name="e2e-quick")
        runner.submit("micro_model", {"step_s": 5.0}, "synthetic:30", epochs=500, name="e2e-long")
        open_page(page, base, "jobs", "Training jobs")
        main = page.locator('[data-testid="stMain"]')
        pick(page, main, "Job", re.compile(rf"^e2e-quick · {quick.id}"))
        job_box = main.locator('[data-testid="stSelectbox"]').filter(has_text="Job").first
        expect(job_box.get_by_role("combobox")).to_have_value(re.compile(rf"^e2e-quick · {quick.id} · running"),
                                                             timeout=60_000)
        # No reload from here on: only the page's own polling.
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and runner.get(quick.id).is_active:
            time.sleep(1.0)
        assert runner.get(quick.id).state == "succeeded", runner.logs(quick.id)
        expect(job_box.get_by_role("combobox")).to_have_value(re.compile(rf"^e2e-quick · {quick.id} · succeeded"),
                                                             timeout=30_000)
        wait_idle(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Checkpoint").first.click()
        page.get_by_role("option", name=re.compile(r"^e2e-quick\b")).first.wait_for(timeout=10_000)
        page.keyboard.press("Escape")
        no_errors(page)
    finally:
        for job in runner.list():
            if job.is_active:
                runner.cancel(job.id, grace_s=2.0)

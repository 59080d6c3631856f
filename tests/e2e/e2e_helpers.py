"""Browser helpers shared by the e2e tests: wait for Streamlit, open a page, pick an option."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished the current script run (as Streamlit's own e2e tests do)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)


def open_page(page, base: str, path: str, title: str) -> None:
    page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    wait_idle(page)


def no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
    assert not [a for a in alerts if "Could not render" in a], alerts


def pick(page, container, label: str, option: str | re.Pattern, attempts: int = 6) -> None:
    """Choose `option` in the selectbox labelled `label` inside `container`. A rerun (a job
    starting or ending reruns the Jobs page) redraws the selectbox and closes its open list, so
    the list is opened again until the option can be clicked."""
    box = container.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    for attempt in range(attempts):
        box.click()
        choice = page.get_by_role("option", name=option).first
        try:
            choice.wait_for(timeout=10_000)
            choice.click(timeout=5_000)
            break
        except PlaywrightTimeout:  # the list closed under us, or the option is not there
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
            wait_idle(page)
    wait_idle(page)


def screenshot(page, docs_name: str, tmp_path: Path) -> Path:
    """Screenshot the page into docs/, refreshing the README's pictures on every e2e run (the
    issue asks for it); ROASTLAB_KEEP_SCREENSHOTS=1 writes to tmp_path instead, leaving the
    checkout untouched."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    keep = os.environ.get("ROASTLAB_KEEP_SCREENSHOTS") == "1"
    target = (tmp_path if keep else docs) / docs_name
    page.mouse.move(0, 0)
    page.screenshot(path=str(target), full_page=False)
    return target


def stopwatch():
    """A `mark(what)` that prints the seconds since it was made: where a long browser test spends
    its time, in the output of a failed run."""
    t0 = time.monotonic()

    def mark(what: str) -> None:
        print(f"{time.monotonic() - t0:6.1f}s {what}")

    return mark


# roastcore.plotting's charts render as SVG (Vega's renderer): legend labels are text in the page
# and each drawn line's path holds its Vega scenegraph item (`__data__`), whose mark lists the
# points drawn with their data rows.
CHART = '[data-testid="stVegaLiteChart"]'
LEGEND_LABEL = f"{CHART} g.role-legend-label text"
CURVE_JS = """
(name) => {
  for (const path of document.querySelectorAll('[data-testid="stVegaLiteChart"] g.mark-line path')) {
    const item = path.__data__;
    if (!item || !item.datum || item.datum.series !== name) continue;
    const rows = item.mark.items.map(i => i.datum);
    return {x0: rows[0].t, n: rows.length, y: rows.slice(0, 400).map(r => r.y), stroke: path.getAttribute('stroke')};
  }
  return null;
}
"""


def legend_label(page, text: str | re.Pattern):
    """The legend entries of the page's charts reading `text`."""
    return page.locator(LEGEND_LABEL, has_text=text)


def curve(page, name: str) -> dict | None:
    """A drawn curve by its legend name: its first time (x0), point count, first 400 values and
    stroke colour, as the browser drew it; None when not drawn."""
    return page.evaluate(CURVE_JS, name)

"""Roast in progress in a real browser: a roast is replayed by moving the time slider and by
pressing play, and the drawn forecast follows; the page's screenshot for the README is refreshed."""

from __future__ import annotations

import re

import pytest
from e2e_helpers import CURVE_JS, curve, legend_label, no_errors, open_page, screenshot, wait_idle

pytestmark = pytest.mark.e2e


def forecast(page, method: str = "prefix_knn"):
    """The method's forecast as drawn: where it starts (the moment after the cut) and its values."""
    return curve(page, method)


def wait_forecast(page, method: str = "prefix_knn", timeout_ms: int = 300_000):
    """The method's forecast once drawn (its fit runs beside the page the first time: seconds
    on an idle machine, minutes on a loaded one)."""
    legend_label(page, re.compile(rf"^{method}$")).first.wait_for(timeout=timeout_ms)
    wait_idle(page)
    return forecast(page, method)


def mmss(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def moment_slider(page):
    main = page.locator('[data-testid="stMain"]')
    return main.locator('[data-testid="stSlider"]').filter(has_text="Moment").get_by_role("slider")


def test_replay_a_roast_by_slider_and_play(base, page):
    open_page(page, base, "roast", "Roast in progress")
    before = wait_forecast(page)
    assert before and before["n"] > 10
    assert legend_label(page, "observed").count() == 1
    assert legend_label(page, "real rest").count() == 1
    no_errors(page)

    # Scrub: three steps of 5 s later, the forecast starts 15 s later and differs.
    slider = moment_slider(page)
    assert slider.get_attribute("aria-valuetext") == mmss(before["x0"] - 1)  # the cut, in m:ss
    slider.focus()
    for _ in range(3):
        slider.press("ArrowRight")
        wait_idle(page)
    assert moment_slider(page).get_attribute("aria-valuetext") == mmss(before["x0"] - 1 + 15)
    page.wait_for_function(f"() => ({CURVE_JS})('prefix_knn').x0 === {before['x0'] + 15}", timeout=30_000)
    moved = forecast(page)
    assert moved["y"][:50] != before["y"][:50]

    # Play: the moment advances on its own and the forecast follows; pause stops it.
    page.get_by_role("button", name=re.compile("Play")).click()
    page.wait_for_function(f"() => ({CURVE_JS})('prefix_knn').x0 > {moved['x0'] + 20}", timeout=30_000)
    page.get_by_role("button", name=re.compile("Pause")).click()
    wait_idle(page)
    paused = forecast(page)
    assert paused["x0"] > moved["x0"] and paused["y"][:50] != moved["y"][:50]
    page.wait_for_timeout(1500)
    assert forecast(page)["x0"] == paused["x0"]  # paused: no more frames
    no_errors(page)


def test_screenshot_of_the_page_with_the_model(base, browser, tmp_path):
    """The README's picture: prefix kNN, Artisan's line and the checkpoint's model at 4:00."""
    context = browser.new_context(viewport={"width": 1400, "height": 1180})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        _screenshot(base, page, tmp_path)
    finally:
        context.close()


def _screenshot(base, page, tmp_path) -> None:
    open_page(page, base, "roast", "Roast in progress")
    wait_forecast(page)
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stMultiSelect"]').filter(has_text="Methods").first.click()
    page.get_by_role("option", name="model", exact=True).first.click()
    page.keyboard.press("Escape")
    wait_idle(page)
    wait_forecast(page, "model")
    no_errors(page)
    shot = screenshot(page, "roast_in_progress.png", tmp_path)
    assert shot.stat().st_size > 10_000

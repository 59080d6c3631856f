"""The browser's floor for a Plotly chart in a new tab: a bare Streamlit page with no chart, one
with a 2-point st.plotly_chart, and one with a 2-point st.line_chart (Vega), each opened in a new
tab of a browser that has the app's static files cached (as the dashboard benchmark's deep
links are), alternately in a plain tab (on-disk profile, and in an incognito context: a Chromium driven over the DevTools protocol without the
Runtime domain, see bench_dashboard_browser.READY_SCRIPT) and in a Playwright tab, on this
machine as loaded now.

    python benchmarks/probe_plotly_floor.py [--repeat 4]

The dashboard no longer uses Plotly (its charts are Vega-Lite since issue 14's "no waiting"):
the plotly page is probed only where plotly is installed (`pip install plotly`).

Prints, per page and kind of tab, the median time from opening the tab until the page is idle
and the chart drawn, split into before / server / after as the dashboard benchmark does.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dashboard_browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    STATE_RECORDER,
    PlainChromium,
    free_port,
    plain_split,
    split,
    stop_server,
)

APP = '''
import streamlit as st
mode = st.query_params.get("mode", "none")
st.title("probe " + mode)
if mode == "plotly":
    import plotly.graph_objects as go
    st.plotly_chart(go.Figure(go.Scatter(x=[0, 1], y=[0, 1], name="probe-trace", showlegend=True)), key="p")
elif mode == "vega":
    st.line_chart({"y": [0, 1]})
'''
CHART = {"none": None, "plotly": ".js-plotly-plot .legendtext",
         "vega": "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"}
if importlib.util.find_spec("plotly") is None:  # no longer a requirement of the dashboard
    del CHART["plotly"]


def start(app: Path):
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.25)
    raise SystemExit("server did not start")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="probe_plotly_"))
    app = tmp / "probe_app.py"
    app.write_text(APP)
    proc, url = start(app)
    out: dict = {(m, t): [] for m in CHART for t in ("plain", "plain incog", "playwright")}
    plain = incog = None
    try:
        plain = PlainChromium(tmp / "profile")
        incog = PlainChromium(tmp / "profile2", incognito=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            ctx = browser.new_context(viewport={"width": 1400, "height": 950})
            ctx.add_init_script(STATE_RECORDER)
            warm = ctx.new_page()  # every chunk fetched once by each browser (its cache)
            for mode in CHART:
                warm.goto(f"{url}/?mode={mode}")
                warm.wait_for_selector(IDLE)
                if CHART[mode]:
                    warm.wait_for_selector(CHART[mode], state="attached")
                plain.open(f"{url}/?mode={mode}", "probe " + mode, None, [], selector=CHART[mode])
                incog.open(f"{url}/?mode={mode}", "probe " + mode, None, [], selector=CHART[mode])
            for _ in range(args.repeat):
                for mode in CHART:  # alternate: the same load for each
                    got = plain.open(f"{url}/?mode={mode}", "probe " + mode, None, [], selector=CHART[mode])
                    out[(mode, "plain")].append((got["ready ms"] / 1000, plain_split(got)))
                    got = incog.open(f"{url}/?mode={mode}", "probe " + mode, None, [], selector=CHART[mode])
                    out[(mode, "plain incog")].append((got["ready ms"] / 1000, plain_split(got)))
                    tab = ctx.new_page()
                    t0 = time.monotonic()
                    tab.goto(f"{url}/?mode={mode}")
                    tab.get_by_role("heading", name="probe " + mode).first.wait_for()
                    tab.wait_for_timeout(50)
                    tab.wait_for_selector(IDLE)
                    if CHART[mode]:
                        tab.wait_for_selector(CHART[mode], state="attached", timeout=60_000)
                    out[(mode, "playwright")].append((time.monotonic() - t0, split(tab, 0.0)))
                    tab.close()
            ctx.close()
    finally:
        for b in (plain, incog):
            if b is not None:
                b.close()
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; median of {args.repeat}")
    for (mode, tab), rows in out.items():
        med = statistics.median(s for s, _ in rows)
        parts = [statistics.median(p[i] for _, p in rows) for i in range(3)]
        print(f"{mode:<7} {tab:<11} {med:5.2f} s (max {max(s for s, _ in rows):.2f})  before / server / after "
              f"{parts[0]:.2f} / {parts[1]:.2f} / {parts[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

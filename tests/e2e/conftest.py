"""End-to-end fixtures: a real `streamlit run app.py` server and Debian's Chromium via Playwright.

The server runs with a temporary runs directory (the shipped demo checkpoints copied in) and the
small built-in dataset (ROASTCORE_DEFAULT_DATA=synthetic:30), in its own process group, which
teardown kills. Training jobs started by a test are cancelled at teardown. Everything is skipped
when /usr/bin/chromium is absent; Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SERVER_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"streamlit did not become healthy within {timeout:.0f}s")


@pytest.fixture(scope="session")
def e2e_runs(tmp_path_factory) -> Path:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    runs = tmp_path_factory.mktemp("e2e_runs")
    for demo in sorted((REPO / "checkpoints").glob("demo_*")):
        if demo.is_dir():
            shutil.copytree(demo, runs / demo.name, ignore=shutil.ignore_patterns("eval_cache"))
    return runs


@pytest.fixture(scope="session")
def server(e2e_runs, tmp_path_factory):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("e2e_logs") / "streamlit.log"
    env = dict(os.environ, ROASTCORE_RUNS=str(e2e_runs), ROASTCORE_DEFAULT_DATA="synthetic:30",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
           "--server.headless", "true", "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_healthy(url, proc, SERVER_START_TIMEOUT_S)
        yield url
    finally:
        _cancel_jobs(e2e_runs)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _cancel_jobs(runs: Path) -> None:
    """Stop any training job a test left running (they live in their own sessions)."""
    if not (runs / "jobs.sqlite3").exists():
        return
    try:
        from roastcore.jobs import JobRunner

        runner = JobRunner(runs)
        for job in runner.list():
            if job.is_active:
                runner.cancel(job.id, grace_s=2.0)
    except Exception:  # noqa: BLE001 - teardown must not mask the test result
        pass


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def base(server, browser):
    """The server URL, after one session opened the root page: the first session of a fresh
    server still runs in Streamlit's legacy pages/ mode, which cannot resolve deep links."""
    context = browser.new_context()
    warm = context.new_page()
    warm.goto(server + "/")
    warm.get_by_role("heading", name="Data").first.wait_for(timeout=90_000)
    context.close()
    return server

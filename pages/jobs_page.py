"""Training jobs: live table, loss curves, cancel / delete / log tail, the recovery suite."""

from __future__ import annotations

import streamlit as st

from pages import _job_tables as jt
from pages import _jobs_panel as panel
from pages import _ui

POLL_S = 2.0

st.header("Training jobs")
c = _ui.ctx()


def runner():
    from roastcore.jobs import JobRunner

    return JobRunner(c.runs_dir)


with _ui.guard("the jobs page"):
    jobs_now = runner().list()
    active_at_start = any(j.is_active for j in jobs_now)
    signature = jt.job_signature(jobs_now)

    top = st.columns([3, 2])
    with top[0]:
        st.caption(f"Jobs run in the background (one process each) and survive a browser refresh. "
                   f"Dataset for new jobs: **{c.data_label}**.")
    panel.suite_buttons(c, runner, top)

    @st.fragment(run_every=POLL_S if active_at_start else None)
    def live():
        r = runner()
        jobs = r.list()
        if jt.job_signature(jobs) != signature:
            # A job started, ended or appeared: rerun the whole page so the sidebar lists the new
            # run, the Job selector shows the new state and polling starts or stops.
            st.rerun(scope="app")
        panel.jobs_view(c, r, jobs)

    live()

    @st.fragment(run_every=POLL_S if active_at_start else None)
    def log_tail(job_id: str) -> None:
        """The job's last log lines; refreshed with the table while jobs run."""
        text = runner().logs(job_id, tail=40)
        st.code(text or "(no log output yet)", language=None)

    if jobs_now:
        panel.manage(c, runner, jobs_now, log_tail)

"""Training jobs: live table, loss curves, cancel / delete / log tail, the recovery suite."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._job_tables import RECOVERY_SUITE, history_frame, job_fraction, job_line, jobs_table
from roastcore.plotting import loss_figure

POLL_S = 2.0

st.header("Training jobs")
c = _ui.ctx()


def runner():
    from roastcore.jobs import JobRunner

    return JobRunner(c.runs_dir)


with _ui.guard("the jobs page"):
    jobs_now = runner().list()
    active_at_start = any(j.is_active for j in jobs_now)

    top = st.columns([3, 2])
    with top[0]:
        st.caption(f"Jobs run in the background (one process each) and survive a browser refresh. "
                   f"Dataset for new jobs: **{c.data_label}**.")
    def queue_suite() -> None:
        r = runner()
        queued = [r.submit(p, {}, c.data_spec) for p in RECOVERY_SUITE]
        st.session_state["jobs_suite_msg"] = "Queued: " + ", ".join(f"{j.preset} ({j.id})" for j in queued)

    with top[1]:
        _ui.submit_button("Launch the recovery suite", "jobs_suite", queue_suite, icon=":material/rocket_launch:",
                          help="Queues " + ", ".join(RECOVERY_SUITE) + f" on {c.data_label}.")
    if st.session_state.get("jobs_suite_msg"):
        st.success(st.session_state["jobs_suite_msg"])

    @st.fragment(run_every=POLL_S if active_at_start else None)
    def live():
        r = runner()
        jobs = r.list()
        if not jobs:
            _ui.empty_state("No training jobs yet: launch one on Experiment setup, or queue the "
                            "recovery suite above.", "pages/setup_page.py", "Experiment setup")
            return
        progress = {j.id: r.progress(j.id) for j in jobs}
        for job in sorted((j for j in jobs if j.is_active), key=lambda j: j.created_at or 0):
            st.progress(job_fraction(progress[job.id]), text=job_line(job, progress[job.id]))
        st.dataframe(jobs_table(jobs, progress), hide_index=True, width="stretch", key="jobs_table")
        ids = [j.id for j in sorted(jobs, key=lambda j: -(j.created_at or 0))]
        default = [j for j in ids if next(x for x in jobs if x.id == j).is_active][:4] or ids[:1]
        if "jobs_plot" not in st.session_state:
            st.session_state["jobs_plot"] = default
        st.session_state["jobs_plot"] = [i for i in st.session_state["jobs_plot"] if i in ids]
        names = {j.id: f"{j.preset} · {j.id}" for j in jobs}
        chosen = st.multiselect("Loss curves for", ids, key="jobs_plot", format_func=lambda i: names[i])
        history = history_frame({names[i]: r.metrics(i) for i in chosen})
        if history.empty:
            st.info("No epochs recorded yet for the chosen jobs; curves appear after the first epoch.")
        else:
            st.plotly_chart(loss_figure(history), key="jobs_loss")
        still_active = any(j.is_active for j in jobs)
        if active_at_start and not still_active:
            st.rerun(scope="app")  # stop polling: the fragment is rebuilt with run_every=None
        if still_active and not active_at_start:
            st.rerun(scope="app")  # something started elsewhere: start polling

    live()

    @st.fragment(run_every=POLL_S if active_at_start else None)
    def log_tail(job_id: str) -> None:
        """The job's last log lines; refreshed with the table while jobs run."""
        text = runner().logs(job_id, tail=40)
        st.code(text or "(no log output yet)", language=None)

    jobs = runner().list()
    if jobs:
        st.subheader("Manage a job")
        by_id = {j.id: j for j in jobs}
        ids = [j.id for j in sorted(jobs, key=lambda j: -(j.created_at or 0))]
        if st.session_state.get("jobs_pick") not in ids:
            st.session_state["jobs_pick"] = ids[0]
        pick = st.selectbox("Job", ids, key="jobs_pick",
                            format_func=lambda i: f"{by_id[i].preset} · {i} · {by_id[i].state}")
        job = by_id[pick]
        st.markdown(job_line(job, runner().progress(pick)))
        cols = st.columns(3)
        if cols[0].button("Cancel", key="jobs_cancel", disabled=not job.is_active, icon=":material/stop_circle:"):
            with st.spinner("Cancelling…"):
                runner().cancel(pick, grace_s=5.0)
            st.toast(f"Job {pick} cancelled")
            st.rerun()
        if cols[1].button("Delete", key="jobs_delete", disabled=job.is_active, icon=":material/delete:",
                          help="Deletes the job and its run directory (finished jobs only)."):
            runner().delete(pick)
            st.toast(f"Job {pick} deleted")
            st.rerun()
        if job.reason:
            st.caption(f"Reason: {job.reason.splitlines()[0]}")
        with st.expander("Log tail", expanded=job.is_active or job.state == "failed"):
            log_tail(pick)

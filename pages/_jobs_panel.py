"""The Training jobs page's widgets: the recovery-suite buttons, the live table with its loss
curves, and the manage-a-job controls.

Streamlit glue only: lines, tables and selections are `pages._job_tables` (no streamlit); the
jobs themselves are `roastcore.jobs.JobRunner`.
"""

from __future__ import annotations

import streamlit as st

from pages import _job_tables as jt
from pages import _sweep_form as sweep_form
from pages import _ui
from pages._setup_form import readable_run_name, taken_run_names
from roastcore.jobs.tasks import job_kind, read_task_progress
from roastcore.score_charts import loss_figure


def suite_buttons(c: _ui.Ctx, runner, top) -> None:
    """Queue the recovery suite, or sweep it over seeds; the slot line and the outcome."""

    def queue_suite() -> None:
        r = runner()
        queued = []
        for preset in jt.RECOVERY_SUITE:
            name = readable_run_name(preset, taken_run_names(c.runs_dir, r.list()))
            queued.append(r.submit(preset, {}, c.data_spec, name=name))
        st.session_state["jobs_suite_msg"] = "Queued: " + ", ".join(f"{j.run_name} ({j.id})" for j in queued)

    with top[1]:
        _ui.submit_button("Launch the recovery suite", "jobs_suite", queue_suite, icon=":material/rocket_launch:",
                          help="Queues " + ", ".join(jt.RECOVERY_SUITE) + f" on {c.data_label}.")
    if st.session_state.get("jobs_suite_msg"):
        st.success(st.session_state["jobs_suite_msg"])
    # Slots in use and free, and the recovery suite x seeds as one sweep (compared on Sweeps).
    st.caption(sweep_form.slots_text(runner().slot_usage()))

    def sweep_suite() -> None:
        st.session_state["jobs_sweep_msg"] = sweep_form.launch_suite(runner(), jt.RECOVERY_SUITE,
                                                                     c.data_spec)

    with top[1]:
        _ui.submit_button(f"Sweep the recovery suite × {sweep_form.SUITE_SEEDS} seeds",
                          "jobs_sweep", sweep_suite, icon=":material/grid_view:")
    sweep_ok, sweep_msg = st.session_state.get("jobs_sweep_msg") or (False, "")
    if sweep_msg:
        (st.success if sweep_ok else st.error)(sweep_msg)
        st.page_link("pages/sweeps_page.py", label="Follow and compare it on Sweeps",
                     icon=":material/arrow_forward:")


def jobs_view(c: _ui.Ctx, r, jobs) -> None:
    """Progress bars of the active jobs, the jobs table and the chosen jobs' loss curves."""
    if not jobs:
        _ui.empty_state("No training jobs yet: launch one on Experiment setup, or queue the "
                        "recovery suite above.", "pages/setup_page.py", "Experiment setup")
        return
    # Task jobs (scoring a run, a study) have stages instead of epochs and no loss curves.
    tasks = {j.id: read_task_progress(j) for j in jobs if job_kind(j) != "train"}
    trains = [j for j in jobs if j.id not in tasks]
    progress = {j.id: r.progress(j.id) for j in trains}
    metrics = {j.id: r.metrics(j.id) for j in trains}
    for job in sorted((j for j in jobs if j.is_active), key=lambda j: j.created_at or 0):
        if job.id in tasks:
            st.progress(tasks[job.id].fraction, text=jt.job_line(job, task=tasks[job.id]))
        else:
            st.progress(jt.job_fraction(progress[job.id]), text=jt.job_line(job, progress[job.id]))
    last = {i: rows[-1] for i, rows in metrics.items() if rows}
    st.dataframe(jt.jobs_table(jobs, progress, last_metrics=last, tasks=tasks), hide_index=True,
                 width="stretch", key="jobs_table",
                 column_config=_ui.column_help(jt.JOB_COLUMN_HELP, wide=("best", "run")))
    if not trains:
        return
    ids = [j.id for j in sorted(trains, key=lambda j: -(j.created_at or 0))]
    st.session_state["jobs_plot"], st.session_state["jobs_plot_seen"] = jt.plot_selection(
        trains, st.session_state.get("jobs_plot"), st.session_state.get("jobs_plot_seen"))
    names = {j.id: f"{j.run_name} · {j.id}" for j in trains}
    chosen = st.multiselect("Loss curves for", ids, key="jobs_plot", format_func=lambda i: names.get(i, i))
    history = jt.history_frame({names[i]: metrics[i] for i in chosen if i in metrics})
    if history.empty:
        st.info("No epochs finished yet for the chosen jobs; curves appear after the first epoch (the "
                "progress bar above follows its batches).")
    else:
        _ui.chart(loss_figure(history, colors=c.colors), "jobs_loss")
        st.caption("Losses are in model units. The train objective adds rollout and scheduled-sampling "
                   "terms when a preset uses them, so it can sit far above the validation loss; compare "
                   "runs by val TF MAE (°F) in the table.")


def manage(c: _ui.Ctx, runner, jobs_now, log_tail) -> None:
    """Pick a job: its line, Cancel / Delete / Select its run, its reason and log tail."""
    st.subheader("Manage a job")
    by_id = {j.id: j for j in jobs_now}
    ids = [j.id for j in sorted(jobs_now, key=lambda j: -(j.created_at or 0))]
    _ui.keep_choice("jobs_pick", ids, ids[0])  # its labels carry the live state
    pick = st.selectbox("Job", ids, key="jobs_pick",
                        format_func=lambda i: f"{by_id[i].run_name} · {i} · {by_id[i].state}"
                        if i in by_id else str(i))
    job = by_id[pick]
    if job_kind(job) == "train":
        st.markdown(jt.job_line(job, runner().progress(pick)))
    else:
        st.markdown(jt.job_line(job, task=read_task_progress(job)))
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
    chosen = c.run(job.run_name)
    usable = chosen is not None and chosen.usable  # the sidebar lists it and it holds weights
    if cols[2].button("Select its run", key="jobs_select", disabled=not usable, icon=":material/check_circle:",
                      help=f"Make {job.run_name} the sidebar's checkpoint (once it has saved an epoch)."):
        _ui.select_run(job.run_name)
        st.rerun()
    if job.reason:
        st.caption(f"Reason: {job.reason.splitlines()[0]}")
    with st.expander("Log tail", expanded=job.is_active or job.state == "failed"):
        log_tail(pick)

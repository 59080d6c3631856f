"""Study: launch a grouped k-fold study as a background job, follow it, and read its table."""

from __future__ import annotations

import streamlit as st

from pages import _study_panel as panel
from pages import _ui
from pages._runs import discover_studies
from roastcore.study import list_studies, load_study, study_rows

POLL_S = 2.0

st.header("Study")
st.caption("Grouped k-fold cross-validation of presets against the baselines (persistence, mean curve, kNN, "
           "aligned kNN), every model on the same folds. Launch one below as a background job, or from the CLI "
           "(`python -m roastcore study`). The shipped `demo` study is rebuilt by `python -m roastcore demos`.")
c = _ui.ctx()


def runner():
    from roastcore.jobs import JobRunner

    return JobRunner(c.runs_dir)


with st.expander("Launch a study", expanded=False), _ui.guard("the study form"):
    panel.launch_form(c, runner)

with _ui.guard("the study jobs"):
    from roastcore.jobs import job_kind, read_task_progress

    study_jobs = [j for j in runner().list() if job_kind(j) == "study"]
    active = [j for j in study_jobs if j.is_active]
    def signature(jobs) -> tuple:
        return tuple(sorted((j.id, j.state, read_task_progress(j).done) for j in jobs))

    seen = signature(study_jobs)

    @st.fragment(run_every=POLL_S if active else None)
    def live() -> None:
        jobs = [j for j in runner().list() if job_kind(j) == "study"]
        if signature(jobs) != seen:
            # A study started, ended or finished a fold (results.json rewritten): the picker and
            # the table below change with it.
            st.rerun(scope="app")
        for job in sorted(jobs, key=lambda j: -(j.created_at or 0)):
            prog = read_task_progress(job)
            if job.is_active:
                where = "queued behind another job" if job.state == "queued" else (prog.stage or "starting")
                st.progress(prog.fraction, text=f"Study **{job.run_name}** (job {job.id}): {prog.done}/"
                                                f"{prog.total or '?'} · {where}")
            elif job.id == st.session_state.get("study_job") and job.state != "succeeded":
                st.error(f"Study **{job.run_name}** {job.state}: {(job.reason or '').splitlines()[0] if job.reason else ''}")

    live()

with _ui.guard("the study page"):
    studies = discover_studies(c.runs_dir)
    if not studies:
        _ui.empty_state(f"No study found under `{c.runs_dir}` (looked for results.json in it and in its "
                        "studies/ folder). Launch one above.")
        st.stop()

    own = {p.resolve() for p in list_studies(c.runs_dir)}
    running = {j.run_name for j in active}

    def where(p) -> str:
        if p.resolve() not in own:
            return f"{p.name} (shipped demo)"
        return p.name + (" (running: partial results)" if p.name in running else "")

    # A study just launched is picked once its first results are written (after its first fold).
    wanted = st.session_state.get("study_pick_next")
    match = next((p for p in studies if p.name == wanted and p.resolve() in own), None)
    if match is not None:
        st.session_state["study_pick"] = match
        del st.session_state["study_pick_next"]
    _ui.keep_choice("study_pick", studies, studies[0])
    choice = st.selectbox("Study", studies, format_func=where, key="study_pick")
    results = load_study(choice)
    st.write(f"Data `{results.get('data_source')}`: {results.get('n_profiles')} roasts, "
             f"{results.get('folds')} folds grouped by product; mean ± std over folds.")
    st.dataframe(study_rows(results), width="stretch", hide_index=True, key="study_table")
    if results.get("extrapolation"):
        st.subheader("Extrapolation (hottest-charged roasts held out)")
        st.dataframe([{"model": k, **v} for k, v in results["extrapolation"].get("rows", {}).items()],
                     width="stretch", key="study_extra")
    if results.get("note"):
        st.warning(results["note"])

"""Study: launch a grouped k-fold study as a background job, follow it, and read its table."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._runs import discover_studies
from pages._setup_form import readable_run_name, taken_run_names
from roastcore.study import list_studies, load_study, study_rows

POLL_S = 2.0
DEFAULT_PRESETS = ["recommended"]

st.header("Study")
st.caption("Grouped k-fold cross-validation of presets against the baselines (persistence, mean curve, kNN, "
           "aligned kNN), every model on the same folds. Launch one below as a background job, or from the CLI "
           "(`python -m roastcore study`). The shipped `demo` study is rebuilt by `python -m roastcore demos`.")
c = _ui.ctx()


def runner():
    from roastcore.jobs import JobRunner

    return JobRunner(c.runs_dir)


with st.expander("Launch a study", expanded=False), _ui.guard("the study form"):
    from roastcore.experiments import PRESETS

    st.caption(f"On the sidebar's dataset, **{c.data_label}**. Each preset trains once per fold; a time budget "
               "stops starting new folds and lists what it skipped.")
    with st.form("study_form"):
        cols = st.columns([3, 1, 1])
        presets = cols[0].multiselect("Presets", list(PRESETS), default=DEFAULT_PRESETS, key="study_presets")
        folds = cols[1].number_input("Folds", min_value=2, max_value=10, value=3, step=1, key="study_folds")
        budget = cols[2].number_input("Budget (min)", min_value=0.0, max_value=1440.0, value=0.0, step=5.0,
                                      key="study_budget", help="0: no limit.")
        cols = st.columns([3, 1, 1])
        name = cols[0].text_input("Study name", value=readable_run_name("study", taken_run_names(c.runs_dir)),
                                  key="study_name", max_chars=80)
        epochs = cols[1].number_input("Epochs (0: the presets')", min_value=0, max_value=5000, value=0, step=10,
                                      key="study_epochs")
        extrapolation = cols[2].checkbox("Extrapolation check", value=True, key="study_extra",
                                         help="Also train without the hottest-charged 10% of roasts and test on them.")
        go = st.form_submit_button("Launch the study", type="primary", icon=":material/rocket_launch:")
    if go:
        from roastcore.jobs import JobError, submit_study

        try:
            job = submit_study(runner(), name.strip(), c.data_spec, presets, folds=int(folds),
                               budget_min=float(budget) or None,
                               overrides={"epochs": int(epochs)} if epochs else None, extrapolation=extrapolation)
            st.session_state["study_job"] = job.id
            st.session_state["study_pick_next"] = job.run_name
            st.rerun()
        except JobError as exc:
            st.error(_ui.plain_message(exc))

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

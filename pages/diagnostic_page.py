"""Generation diagnostic: the step trace (raw vs clamped vs real), variance verdict, diagnosis."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from roastcore import views

st.header("Generation diagnostic")
st.caption("Free-running generation step by step: what the model said (raw), what was fed back after "
           "the clamp, and the real roast.")
c = _ui.ctx()


@st.cache_data(show_spinner=False, max_entries=64)
def trace_cached(run_path: str, run_mtime: float, spec: str, profile_id: str, steps: int) -> dict:
    from roastcore.diagnose import step_trace

    loaded = _ui._load_run_cached(run_path, run_mtime)
    profile = next(p for p in _ui.load_profiles(spec) if p.id == profile_id)
    return step_trace(loaded.model, profile, steps=steps).to_dict()


with _ui.guard("the diagnostic page"):
    if not c.runs:
        _ui.empty_state("No checkpoints yet: launch one on Experiment setup.", "pages/setup_page.py",
                        "Experiment setup")
        st.stop()
    names = [r.name for r in c.runs]
    primary = c.selection.run if c.selection.run in names else names[0]
    # Keyed on the sidebar's choice: picking another primary checkpoint resets this picker.
    run_name = st.selectbox("Checkpoint", names, index=names.index(primary), key=f"diag_run_{primary}",
                            format_func=lambda n: c.run(n).label)
    run = c.run(run_name)
    loaded = _ui.load_run(run)
    val, split_label = _ui.validation_profiles(run, c.data_spec)
    if not val:
        _ui.empty_state("The selected dataset holds no roasts: import some on the Data page.", "pages/data_page.py", "Data")
        st.stop()
    labels = {p.id: views.profile_label(p, i) for i, p in enumerate(val)}
    cols = st.columns([3, 2])
    pid = cols[0].selectbox(f"Validation roast ({split_label})", list(labels), key="diag_profile",
                            format_func=labels.get)
    profile = next(p for p in val if p.id == pid)
    step_s = float(loaded.model.config.step_s)
    full = min(int(round(profile.duration_s / step_s)) + 1, int(loaded.model.config.max_len))
    steps = cols[1].slider(f"Steps (of {full} at {step_s:g} s)", min_value=10, max_value=max(full, 11),
                           value=min(60, full), key="diag_steps")
    with st.spinner("Generating…"):
        trace = trace_cached(str(run.path), views.path_mtime(run.path), c.data_spec, pid, int(steps))
    t, raw, clamped, real = views.step_trace_arrays(trace)
    _ui.plotly(views.step_trace_figure(t, raw, clamped, real, name=run_name), "diag_chart", f"trace_{run_name}")

    m = st.columns(3)
    m[0].metric("Variance of the generated values", f"{trace['variance_f2']:.1f} °F²")
    m[1].metric("Variance verdict", trace["variance_verdict"])
    m[2].metric("Clamp active", f"{len(trace['clamp_steps'])} of {len(trace['rows'])} steps")
    with st.expander("Step table", expanded=False):
        st.dataframe(views.step_table(trace), hide_index=True, width="stretch", key="diag_table")

    st.subheader("Automatic diagnosis")
    report = _ui.report_if_ready(run, c.data_spec)
    if report is None:
        st.info("The diagnosis scores this checkpoint free-running on every validation roast, next to the "
                "baselines (mean curve, kNN, aligned kNN). It takes a while once; the result is cached.")
        if st.button("Run the diagnosis", key="diag_eval", type="primary", icon=":material/troubleshoot:"):
            _ui.run_evaluations([run], c.data_spec)
            st.rerun()
        st.stop()
    d = report["diagnosis"]
    style = views.VERDICT_STYLE.get(d["verdict"], "info")
    getattr(st, style if style != "error" else "warning")(f"Verdict: **{d['verdict']}**")
    for line in d.get("evidence") or []:
        st.markdown(f"- {line}")
    suggestion = d.get("suggestion")
    if suggestion:
        st.markdown(f"Suggested next experiment: **`{suggestion}`**: {d.get('suggestion_reason', '')}.")
        def launch() -> None:
            from roastcore.jobs import JobRunner

            job = JobRunner(c.runs_dir).submit(suggestion, {}, c.data_spec)
            st.session_state["diag_job"] = f"Job {job.id} ({job.preset}) is {job.state}."

        _ui.submit_button(f"Launch {suggestion}", "diag_launch", launch, type="primary",
                          icon=":material/rocket_launch:")
        if st.session_state.get("diag_job"):
            st.success(st.session_state["diag_job"])
            st.page_link("pages/jobs_page.py", label="Watch it on Training jobs", icon=":material/arrow_forward:")
    else:
        st.caption(d.get("suggestion_reason", ""))

"""Generation diagnostic: the step trace (raw vs clamped vs real), variance verdict, diagnosis."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._data_tables import profile_label
from pages._eval_tables import VERDICT_STYLE, scores_caption, step_table
from pages._setup_form import readable_run_name, taken_run_names
from roastcore.diagnose import DEFAULT_TRACE_STEPS
from roastcore.plotting import step_trace_arrays, step_trace_figure

st.header("Generation diagnostic")
st.caption("Free-running generation step by step: what the model said (raw), what was fed back after "
           "the clamp, and the real roast.")
c = _ui.ctx()

with _ui.guard("the diagnostic page"):
    if not c.runs:
        _ui.empty_state("No checkpoints yet: launch one on Experiment setup.", "pages/setup_page.py",
                        "Experiment setup")
        st.stop()
    run = c.primary or c.runs[0]  # the sidebar's checkpoint: this page has no picker of its own
    run_name = run.name
    st.caption(f"Checkpoint: **{run_name}** (change it in the sidebar).")
    if not run.usable:
        st.warning(f"**{run_name}** is not usable ({run.unusable_reason}): there is nothing to diagnose. "
                   "Pick another checkpoint in the sidebar.", icon=":material/block:")
        st.stop()
    val, split_label = _ui.validation_profiles(run, c.data_spec)
    if not val:
        _ui.empty_state("The selected dataset holds no roasts: import some on the Data page.",
                        "pages/data_page.py", "Data")
        st.stop()
    labels = {p.id: profile_label(p, i) for i, p in enumerate(val)}
    cols = st.columns([3, 2])
    # Keyed on dataset and run: another choice gets a fresh picker, never stale labels.
    pid = cols[0].selectbox(f"Validation roast ({split_label})", list(labels), key=f"diag_profile:{c.data_key}:{run_name}",
                            format_func=lambda i: labels.get(i, str(i)))
    profile = next(p for p in val if p.id == pid)
    full, step_s = _ui.trace_length(run, profile)  # from config.json: the model is loaded only to generate
    steps = cols[1].slider(f"Steps (of {full} at {step_s:g} s)", min_value=10, max_value=max(full, 11),
                           value=min(DEFAULT_TRACE_STEPS, full), key="diag_steps")
    with st.spinner("Generating…"):
        trace = _ui.step_trace(run, c.data_spec, pid, int(steps))
    t, raw, clamped, real = step_trace_arrays(trace)
    _ui.chart(step_trace_figure(t, raw, clamped, real, name=run_name), "diag_chart")

    m = st.columns(3)
    m[0].metric("Variance of the generated values", f"{trace['variance_f2']:.1f} °F²")
    # Markdown, not st.metric: a metric cuts a long verdict ("constant output (collapsed)").
    m[1].markdown(f"Variance verdict  \n**{trace['variance_verdict']}**")
    m[2].metric("Clamp active", f"{len(trace['clamp_steps'])} of {len(trace['rows'])} steps")
    with st.expander("Step table", expanded=False):
        st.dataframe(step_table(trace), hide_index=True, width="stretch", key="diag_table")

    st.subheader("Automatic diagnosis")
    report = _ui.scores(run)
    if report is None:
        st.info("The diagnosis comes from the run's stored scores: free running on every validation roast next "
                "to the baselines (mean curve, kNN, aligned kNN). This run has none yet, so it is being scored "
                "in the background; the verdict appears here when that is done.")
        _ui.scoring_panel([run], c, "diag_score")
        st.stop()
    d = report["diagnosis"]
    style = VERDICT_STYLE.get(d["verdict"], "info")
    getattr(st, style if style != "error" else "warning")(f"Verdict: **{d['verdict']}**")
    for line in d.get("evidence") or []:
        st.markdown(f"- {line}")
    suggestion = d.get("suggestion")
    if suggestion:
        st.markdown(f"Suggested next experiment: **`{suggestion}`**: {d.get('suggestion_reason', '')}.")
        def launch() -> None:
            from roastcore.jobs import JobRunner

            r = JobRunner(c.runs_dir)
            job = r.submit(suggestion, {}, c.data_spec,
                           name=readable_run_name(suggestion, taken_run_names(c.runs_dir, r.list())))
            st.session_state["diag_job"] = f"Job {job.id} ({job.preset}) is {job.state}: run **{job.run_name}**."

        _ui.submit_button(f"Launch {suggestion}", "diag_launch", launch, type="primary",
                          icon=":material/rocket_launch:")
        if st.session_state.get("diag_job"):
            st.success(st.session_state["diag_job"])
            st.page_link("pages/jobs_page.py", label="Watch it on Training jobs", icon=":material/arrow_forward:")
    else:
        st.caption(d.get("suggestion_reason", ""))
    st.caption(scores_caption({run_name: report}))

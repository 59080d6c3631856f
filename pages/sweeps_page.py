"""Sweeps: launch presets x a small grid x seeds, follow their jobs, compare them (Altair)."""

from __future__ import annotations

import streamlit as st

from pages import _sweep_form as sf
from pages import _sweep_panel as panel
from pages import _ui

POLL_S = 2.0
ACTIVE = ("queued", "running")
st.header("Sweeps")
st.caption("A sweep is presets x a grid of settings x seeds, run as background jobs and compared "
           "as one: each run scores itself when it finishes (mean ± std over seeds below).")
c = _ui.ctx()


def runner():
    from roastcore.jobs import JobRunner

    return JobRunner(c.runs_dir)


with _ui.guard("the sweeps page"):
    from roastcore.jobs import cancel_sweep, list_sweeps, sweep_runs

    r = runner()
    sweeps = {s.id: s for s in reversed(list_sweeps(r))}  # newest first
    panel.launch_form(c, r, open_=not sweeps)
    if not sweeps:
        _ui.empty_state("No sweeps yet: launch one above, or sweep the recovery suite on "
                        "Training jobs.", "pages/jobs_page.py", "Training jobs")
        st.stop()
    _ui.keep_choice("sw_pick", list(sweeps), next(iter(sweeps)))  # its label carries the state
    pick = st.selectbox("Sweep", list(sweeps), key="sw_pick",
                        format_func=lambda i: sf.sweep_label(sweeps[i]))
    sweep = sweeps[pick]
    cols = st.columns([4, 1])
    cols[0].caption(sf.sweep_caption(sweep))
    if cols[1].button("Cancel sweep", key="sw_cancel", disabled=sweep.state not in ACTIVE,
                      icon=":material/stop_circle:",
                      help="Cancels its queued and running jobs; finished runs stay."):
        with st.spinner("Cancelling…"):
            cancel_sweep(r, pick, grace_s=5.0)
        st.rerun()

    @st.fragment(run_every=POLL_S if sweep.state in ACTIVE else None)
    def jobs_view() -> None:
        from roastcore.jobs import get_sweep

        now = get_sweep(runner(), pick)
        if sf.sweep_signature(now) != sf.sweep_signature(sweep):
            st.rerun(scope="app")  # a job started or ended: the results and charts follow
        done = sum(j.is_finished for j in now.jobs)
        st.progress(done / max(len(now.jobs), 1), text=f"{done} of {len(now.jobs)} jobs finished")
        st.dataframe(sf.runs_frame(sweep_runs(now)), hide_index=True, width="stretch")

    st.subheader("Jobs")
    jobs_view()

    st.subheader("Results")
    panel.results(sweep, pick)

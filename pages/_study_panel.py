"""The Study page's launch form: presets, folds, budget, name, epochs and the extrapolation check.

Streamlit glue only: the study itself is `roastcore.study`, launched as a job by
`roastcore.jobs.submit_study`.
"""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._setup_form import readable_run_name, taken_run_names

DEFAULT_PRESETS = ["recommended"]


def launch_form(c: _ui.Ctx, runner) -> None:
    """The form; a launched study is followed (and picked once it has results) by the page."""
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

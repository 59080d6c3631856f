"""Study: the grouped k-fold comparison table of a study directory (roastcore.study)."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._runs import discover_studies
from roastcore.study import list_studies, load_study, study_rows

st.header("Study")
st.caption("Grouped k-fold cross-validation of presets against the baselines. Run one with "
           "`python -m roastcore study --data SOURCE --folds 5 --out RUNS/studies/NAME`; the shipped "
           "`demo` study is rebuilt by `python -m roastcore demos`.")
c = _ui.ctx()

with _ui.guard("the study page"):
    studies = discover_studies(c.runs_dir)
    if not studies:
        _ui.empty_state(f"No study found under `{c.runs_dir}` (looked for results.json in it and in its "
                        "studies/ folder).")
        st.stop()

    own = {p.resolve() for p in list_studies(c.runs_dir)}

    def where(p) -> str:
        return p.name if p.resolve() in own else f"{p.name} (shipped demo)"

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

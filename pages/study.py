"""Study page: the grouped k-fold comparison table of a study directory (roastcore.study)."""

import os
from pathlib import Path

import streamlit as st

from roastcore.study import list_studies, load_study, study_rows

st.title("Study")
st.caption("Grouped k-fold CV of presets against baselines. Run one with "
           "`python -m roastcore study --data SOURCE --folds 5 --out RUNS/studies/NAME`.")
runs_dir = Path(st.text_input("Runs directory", os.environ.get("ROASTCORE_RUNS", "runs")))
studies = list_studies(runs_dir)
if not studies:
    st.info(f"No study found under {runs_dir} (looked for results.json in it and in its studies/ folder).")
    st.stop()
choice = st.selectbox("Study", studies, format_func=lambda p: p.name)
try:
    results = load_study(choice)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
st.write(f"Data `{results.get('data_source')}`: {results.get('n_profiles')} profiles, "
         f"{results.get('folds')} folds grouped by product; mean ± std over folds.")
st.dataframe(study_rows(results), use_container_width=True)
if results.get("extrapolation"):
    st.subheader("Extrapolation (hottest-charged roasts held out)")
    st.dataframe([{"model": k, **v} for k, v in results["extrapolation"].get("rows", {}).items()],
                 use_container_width=True)
if results.get("note"):
    st.warning(results["note"])

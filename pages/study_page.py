"""Study page: the grouped k-fold comparison table of a study directory (roastcore.study)."""

from pathlib import Path

import streamlit as st

from pages._state import runs_dir_from_env
from roastcore.study import list_studies, load_study, study_rows

st.title("Study")
st.caption("Grouped k-fold CV of presets against baselines. Run one with "
           "`python -m roastcore study --data SOURCE --folds 5 --out RUNS/studies/NAME`.")
runs_dir = Path(st.text_input("Runs directory", str(runs_dir_from_env())))
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
st.dataframe(study_rows(results), width="stretch")
if results.get("extrapolation"):
    st.subheader("Extrapolation (hottest-charged roasts held out)")
    st.dataframe([{"model": k, **v} for k, v in results["extrapolation"].get("rows", {}).items()],
                 width="stretch")
if results.get("note"):
    st.warning(results["note"])

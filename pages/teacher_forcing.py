"""Teacher forcing: next-step MAE from real history, per checkpoint, against persistence."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from roastcore import views

st.header("Teacher forcing")
st.caption("Each checkpoint predicts the next temperature from the real history (teacher forcing) on its "
           "validation roasts. Persistence (next = current) is the bar to beat.")
c = _ui.ctx()

with _ui.guard("the teacher-forcing page"):
    if not c.runs:
        _ui.empty_state("No checkpoints yet: launch one on Experiment setup.", "pages/setup.py",
                        "Experiment setup")
        st.stop()
    use_all = st.toggle("All checkpoints in the runs directory", value=False, key="tf_all",
                        help="Off: the sidebar's primary and comparison checkpoints.")
    runs = c.runs if use_all else c.selected
    if not runs:
        _ui.empty_state("Pick a checkpoint in the sidebar (and comparison checkpoints to rank them).")
        st.stop()
    reports = _ui.evaluate_many(runs, c.data_spec, label="Scoring")
    if not reports:
        st.stop()
    entries = []
    for run in runs:
        if run.name in reports:
            r = reports[run.name]
            entries.append({"run": run.name, "teacher_forcing": r["teacher_forcing"], "free_run": r["free_run"],
                            **views.run_model_info(_ui.load_run(run))})
    table = views.tf_table(entries)
    primary = reports.get(c.selection.run) or next(iter(reports.values()))
    persistence = primary["teacher_forcing"].get("persistence_mae_f")
    st.plotly_chart(views.tf_comparison_figure(table, persistence, colors=c.colors), key="tf_chart")

    kind, text = views.tf_conclusion(table)
    {"scheduled_sampling": st.warning, "struggles": st.error, "ok": st.success}.get(kind, st.info)(text)

    shown = table.rename(columns={"tf_mae_f": "TF MAE °F", "persistence_mae_f": "persistence MAE °F",
                                  "skill_ratio": "MAE / persistence", "free_run_mae_f": "free-run MAE °F"})
    styled = shown.style.apply(
        lambda row: ["background-color: #d4edda; font-weight: 600" if row["best"] else "" for _ in row], axis=1
    ).format(precision=2, na_rep="–")
    st.dataframe(styled, hide_index=True, width="stretch", key="tf_table",
                 column_config={"params": st.column_config.NumberColumn("params", format="compact")})
    st.caption("Bands: < 10 °F excellent · < 50 good · < 150 moderate · otherwise poor. "
               f"Persistence at the model's step: {views.fmt_float(persistence, 2)} °F. Split: "
               f"{primary.get('split', 'val')} ({primary.get('n_profiles', '?')} roasts).")
    for note in primary.get("notes") or []:
        st.caption(f"Note: {note}")

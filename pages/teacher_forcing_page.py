"""Teacher forcing: next-step MAE from real history, per checkpoint, against persistence."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._eval_tables import (
    TF_COLUMN_HELP,
    persistence_by_step,
    scores_caption,
    tf_conclusion,
    tf_table,
)
from roastcore.score_charts import tf_comparison_figure

st.header("Teacher forcing")
st.caption("Each checkpoint predicts the next temperature from the real history (teacher forcing) on its own "
           "validation roasts. Persistence (next = current) is the bar to beat.")
c = _ui.ctx()

with _ui.guard("the teacher-forcing page"):
    if not c.runs:
        _ui.empty_state("No checkpoints yet: launch one on Experiment setup.", "pages/setup_page.py",
                        "Experiment setup")
        st.stop()
    use_all = st.toggle("All checkpoints in the runs directory", value=False, key="tf_all",
                        help="Off: the sidebar's primary and comparison checkpoints.")
    runs = c.runs if use_all else c.selected
    if not runs:
        _ui.empty_state("Pick a checkpoint in the sidebar (and comparison checkpoints to rank them).")
        st.stop()
    unusable = [r for r in runs if not r.usable]
    if unusable:
        st.caption("Not usable, so not scored: " + "; ".join(f"**{r.name}** ({r.unusable_reason})" for r in unusable))
    # The stored scores only (RUN/scores.json): nothing is evaluated in the page.
    reports = {r.name: _ui.scores(r) for r in runs if r.usable}
    pending = [r for r in runs if r.usable and reports[r.name] is None]
    _ui.scoring_panel(pending, c, "tf_score")
    entries = [{"run": name, "teacher_forcing": rep["teacher_forcing"], "free_run": rep["free_run"],
                **_ui.model_facts(c.run(name))} for name, rep in reports.items() if rep is not None]
    if not entries:
        if not pending:
            st.info("None of the chosen checkpoints can be scored.")
        st.stop()
    table = tf_table(entries)
    _ui.chart(tf_comparison_figure(table, colors=c.colors), "tf_chart")

    kind, text = tf_conclusion(table)
    style = {"scheduled_sampling": st.warning, "struggles": st.warning, "no_skill": st.warning, "ok": st.success}
    style.get(kind, st.info)(text)

    shown = table.rename(columns={"tf_mae_f": "TF MAE °F", "persistence_mae_f": "persistence MAE °F",
                                  "skill_ratio": "MAE / persistence", "step_s": "step s",
                                  "free_run_mae_f": "free-run MAE °F"})
    # Translucent green: readable under the light and the dark theme's text colour.
    styled = shown.style.apply(
        lambda row: ["background-color: rgba(40,167,69,0.25); font-weight: 600" if row["best"] else ""
                     for _ in row], axis=1,
    ).format(precision=2, na_rep="–")
    config = _ui.column_help(TF_COLUMN_HELP, wide=("run",))
    config["params"] = st.column_config.NumberColumn("params", format="compact", help=TF_COLUMN_HELP["params"])
    st.dataframe(styled, hide_index=True, width="stretch", key="tf_table", column_config=config)
    st.caption("Bands: < 10 °F excellent · < 50 good · < 150 moderate · otherwise poor. "
               f"Persistence at each model's step: {persistence_by_step(table)}. ★ marks the lowest MAE "
               "that beats its own persistence. " + scores_caption(
                   {name: rep for name, rep in reports.items() if rep is not None}))

"""Teacher forcing: next-step MAE from real history, per checkpoint, against persistence."""

from __future__ import annotations

import streamlit as st

from pages import _ui
from pages._eval_tables import TF_COLUMN_HELP, persistence_by_step, tf_conclusion, tf_table
from roastcore.inspect_run import run_model_info
from roastcore.plotting import tf_comparison_figure

st.header("Teacher forcing")
st.caption("Each checkpoint predicts the next temperature from the real history (teacher forcing) on its "
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
    results, entries = {}, []
    bar = st.progress(0.0, text="Teacher forcing…") if len(runs) > 1 else None
    for i, run in enumerate(runs):
        if bar is not None:
            bar.progress(i / len(runs), text=f"Teacher forcing {run.name} ({i + 1}/{len(runs)})…")
        try:
            with st.spinner(f"Teacher forcing {run.name}…"):
                results[run.name] = _ui.teacher_forcing(run, c.data_spec)
        except Exception as exc:  # noqa: BLE001 - one broken run must not hide the others
            st.error(f"{run.name}: {_ui.plain_message(exc)}")
            continue
        report = _ui.report_if_ready(run, c.data_spec)
        entries.append({"run": run.name, "teacher_forcing": results[run.name],
                        "free_run": report["free_run"] if report else None,
                        **run_model_info(_ui.load_run(run))})
    if bar is not None:
        bar.empty()
    if not entries:
        st.stop()
    table = tf_table(entries)
    primary = results.get(c.selection.run) or next(iter(results.values()))
    _ui.plotly(tf_comparison_figure(table, colors=c.colors), "tf_chart", "teacher_forcing")

    kind, text = tf_conclusion(table)
    style = {"scheduled_sampling": st.warning, "struggles": st.warning, "no_skill": st.warning, "ok": st.success}
    style.get(kind, st.info)(text)
    if kind == "needs_free_run":
        starred = table.loc[table["best"] == "★", "run"]
        best = c.run(starred.iloc[0] if len(starred) else table.iloc[0]["run"])
        if st.button(f"Score {best.name} free-running (and its baselines)", key="tf_score", type="primary"):
            _ui.run_evaluations([best], c.data_spec)
            st.rerun()

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
               "that beats its own persistence. Split: "
               f"{primary.get('split', 'val')} ({primary.get('n_val', '?')} roasts).")

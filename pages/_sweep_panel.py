"""The Sweeps page's widgets: the launch form and the results (charts, tables, learning curves).

Streamlit glue only: requests, names, tables and selections are `pages._sweep_form` (no
streamlit); the charts are `roastcore.sweep_charts`; launching is `roastcore.jobs.launch_sweep`.
"""

from __future__ import annotations

import streamlit as st

from pages import _sweep_form as sf
from pages import _ui
from pages._job_tables import RECOVERY_SUITE
from pages._setup_form import DEVICE_CHOICES, choices_with
from roastcore import sweep_charts as charts

ss = st.session_state


def launch_form(c: _ui.Ctx, r, open_: bool) -> None:
    """Presets, 2–3 values of a few settings, seeds; prefilled by Experiment setup's button."""
    from roastcore.experiments import PRESETS
    from roastcore.jobs import JobError, SweepTooLarge, launch_sweep

    draft = ss.get(sf.DRAFT)
    fresh = draft is not None and draft.get("token") != ss.get("sw_token")
    if fresh or "sw_presets" not in ss:
        start = sf.form_defaults(draft, RECOVERY_SUITE)
        ss.update(sw_presets=start["presets"], sw_base=start["base"], sw_epochs=start["epochs"],
                  sw_device=start["device"], sw_token=(draft or {}).get("token"),
                  **{f"sw_grid_{k}": v for k, v in start["grid"].items()})
    with st.expander("Launch a sweep", expanded=open_ or fresh):
        presets = st.multiselect("Presets", list(PRESETS), key="sw_presets")
        cols = st.columns(len(sf.GRID_CHOICES))
        grid = {key: col.multiselect(
                    sf.GRID_LABELS[key], choices_with(options, *ss[f"sw_grid_{key}"]),
                    key=f"sw_grid_{key}", placeholder="the preset's own",
                    help="Pick 2–3 values to try each; none keeps each preset's.")
                for col, (key, options) in zip(cols, sf.GRID_CHOICES.items(), strict=True)}
        cols = st.columns(3)
        seeds = cols[0].number_input("Seeds", 1, 20, value=sf.SUITE_SEEDS, key="sw_seeds")
        epochs = cols[1].number_input("Epochs", 1, 1000, key="sw_epochs",
                                      placeholder="each preset's own")
        device = cols[2].segmented_control("Device", list(DEVICE_CHOICES), key="sw_device")
        base = ss.get("sw_base") or {}
        if base:
            st.caption(sf.fixed_text(base))
        request = sf.sweep_request(presets, base, grid, seeds, epochs, device or "auto")
        n_jobs, limit = sf.job_count(request), r.limits.max_sweep_jobs
        force = n_jobs > limit and st.checkbox(
            f"Launch anyway: {n_jobs} jobs is over the limit of {limit}", key="sw_force")
        st.caption(f"{n_jobs} jobs on {c.data_label}; they start as slots free up.")

        def launch() -> None:
            try:
                sweep = launch_sweep(r, data=c.data_spec, force=bool(force),
                                     name=sf.sweep_name(request), **request)
            except SweepTooLarge as exc:
                ss["sw_msg"] = ("error", f"{exc}. Tick 'Launch anyway' to queue it.")
                return
            except JobError as exc:
                ss["sw_msg"] = ("error", str(exc))
                return
            ss["sw_msg"], ss["sw_pick"] = ("success", sf.launch_message(sweep)), sweep.id

        _ui.submit_button("Launch sweep", "sw_launch", launch, disabled=not presets,
                          type="primary", icon=":material/rocket_launch:")
    kind, text = ss.get("sw_msg") or (None, None)
    if kind:
        (st.success if kind == "success" else st.error)(text)


def clicked(chart: str) -> None:
    ss["sw_last_chart"] = chart  # the chart clicked last leads the selection


def results(sweep, pick: str) -> None:
    """The sweep's scored runs: the suite and parallel-coordinates charts (click to select), the
    mean ± std table, the selected runs and their learning curves."""
    from roastcore.checkpoints import read_metrics
    from roastcore.jobs import chart_records, sweep_runs, sweep_table

    runs = sweep_runs(sweep)
    records = chart_records(runs, metrics=charts.CHART_METRICS)
    names = dict(sf.METRICS)
    keys = {"suite": f"sw_suite_{pick}", "grid": f"sw_par_{pick}"}
    presets = sweep.spec.get("presets", ())  # the launch order, kept in charts and table
    chosen = sf.chart_selection(ss, keys, ss.get("sw_last_chart"), charts.SELECTION)
    if not records:
        st.info("Not scored yet: each run scores itself when it finishes; charts appear here.")
    else:
        metric = st.segmented_control("Figure", list(charts.SUITE_METRICS), key="sw_metric",
                                      default="tf_mae_f", format_func=names.get) or "tf_mae_f"
        st.altair_chart(charts.suite_chart(records, metric, names, presets), key=keys["suite"],
                        on_select=lambda: clicked("suite"), width="stretch")
        if charts.varying_keys(records):
            st.altair_chart(charts.parallel_chart(records, presets=presets), key=keys["grid"],
                            on_select=lambda: clicked("grid"), width="stretch")
        st.caption("Click a run's point to select it (shift-click adds more, double-click "
                   "clears): the table keeps its settings and the curves below highlight it.")
    st.dataframe(sf.results_frame(sweep_table(runs), runs, chosen, presets), hide_index=True,
                 width="stretch")
    if chosen:
        st.caption(f"{len(chosen)} selected run(s): " + ", ".join(chosen))
        st.dataframe(sf.runs_frame(runs, chosen), hide_index=True, width="stretch")
    history = sf.history_records(runs, read_metrics)
    if history:
        st.markdown("**Learning curves** (validation teacher-forcing MAE per epoch)")
        st.altair_chart(charts.curves_chart(history, chosen, "val TF MAE °F (log)", presets),
                        key="sw_curves", width="stretch")

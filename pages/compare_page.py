"""Compare curves: real vs generated per checkpoint, RoR and events, physics, metrics, export."""

from __future__ import annotations

import streamlit as st

from pages import _compare_panel as panel
from pages import _ui
from pages._data_tables import profile_label
from pages._eval_tables import PHYSICS_HELP, physics_checks
from roastcore.generate import Provenance
from roastcore.inspect_run import curve_profile
from roastcore.plotting import grid_figure, overlay_figure

st.header("Compare curves")
c = _ui.ctx()

with _ui.guard("the comparison page"):
    if not c.runs:
        _ui.empty_state("No checkpoints yet: launch one on Experiment setup.", "pages/setup_page.py",
                        "Experiment setup")
        st.stop()
    unusable = [r for r in c.selected if not r.usable]
    if unusable:
        st.caption("Not usable, so not drawn: " + "; ".join(f"**{r.name}** ({r.unusable_reason})" for r in unusable))
    runs = [r for r in c.selected if r.usable]
    if not runs:
        _ui.empty_state("Pick a usable checkpoint (and comparison checkpoints) in the sidebar.")
        st.stop()
    if not _ui.load_profiles(c.data_spec):
        _ui.empty_state("The selected dataset holds no roasts: import some on the Data page.", "pages/data_page.py",
                        "Data")
        st.stop()
    val, split_label = _ui.validation_profiles(runs[0], c.data_spec)
    st.caption(f"Curves generated free-running from CHARGE by {', '.join(r.name for r in runs)} for "
               f"{len(val)} roasts of **{c.data_label}** (split: {split_label}).")
    by_id = {p.id: p for p in val}
    labels = {p.id: profile_label(p, i) for i, p in enumerate(val)}
    mode = st.segmented_control("View", ["One roast", "Grid"], default="One roast", key="cmp_mode")

    if mode == "Grid":
        n = st.select_slider("Roasts in the grid", options=[2, 4, 6, 9], value=4, key="cmp_grid_n")
        ids = [p.id for p in val[:n]]
        with st.spinner("Generating…"):
            per_run = {r.name: _ui.generated(r, c.data_spec, ids) for r in runs}
        panels = [(i, by_id[i], {name: curves[k] for name, curves in per_run.items()}) for k, i in enumerate(ids)]
        _ui.chart(grid_figure(panels, 1.0, colors=c.colors, cols=3 if n == 9 else 2), "cmp_grid")
    else:
        # Keyed on dataset and primary run: another choice gets a fresh picker, never stale labels.
        pid = st.selectbox("Validation roast", list(labels), key=f"cmp_profile:{c.data_key}:{runs[0].name}",
                           format_func=lambda i: labels.get(i, str(i)))
        real = by_id[pid]
        with st.spinner("Generating…"):
            curves = {r.name: _ui.generated(r, c.data_spec, [pid])[0] for r in runs}
        opts = st.columns(2)
        show_ror = opts[0].toggle("Rate of rise", value=True, key="cmp_ror")
        show_events = opts[1].toggle("Events", value=True, key="cmp_events")
        # Each run's 80% band from its stored scores: its errors on the roasts it was evaluated on.
        bands = {r.name: b for r in runs if (b := ((_ui.scores(r) or {}).get("free_run") or {}).get("band"))}
        fig = overlay_figure(real, curves, 1.0, colors=c.colors, show_ror=show_ror, show_events=show_events,
                             bands=bands)
        _ui.chart(fig, "cmp_chart")
        if bands:
            st.caption("Shaded: the 80% band of " + ", ".join(bands) + ", from its errors on the roasts its "
                       "stored scores were taken on (its validation roasts when it was scored after training).")
        st.subheader("Physics checks")
        st.dataframe(physics_checks(real, curves), hide_index=True, width="stretch", key="cmp_physics",
                     column_config=_ui.column_help(PHYSICS_HELP, wide=("why",)))
        st.subheader("Download a generated curve")
        _ui.keep_choice("cmp_dl_run", list(curves), runs[0].name)
        which = st.selectbox("Curve", list(curves), key="cmp_dl_run")
        panel.downloads(curve_profile(curves[which], f"{which}_{pid}", like=real), f"{which}_{pid}", "cmp_dl",
                        Provenance.for_roast(which, real))

    panel.free_run_metrics(c, runs)

with st.expander("Generate for a new coffee", expanded=False), _ui.guard("the generation form"):
    if c.primary is None or not c.primary.usable:
        st.info("Pick a usable checkpoint in the sidebar first.")
        st.stop()
    panel.new_coffee(c)

"""Compare curves: real vs generated per checkpoint, RoR and events, physics, metrics, export."""

from __future__ import annotations

import streamlit as st

from pages import _coffee_form as form
from pages import _ui
from pages._data_tables import profile_label
from pages._eval_tables import (
    FREE_RUN_HELP,
    PHYSICS_HELP,
    free_run_table,
    physics_checks,
    scores_caption,
)
from pages._format import fmt_mmss
from roastcore.generate import Provenance
from roastcore.inspect_run import curve_profile, export_bytes, request_choices
from roastcore.plotting import grid_figure, overlay_figure

st.header("Compare curves")
c = _ui.ctx()


def downloads(profile, stem: str, key: str, provenance: Provenance) -> None:
    """.alog and .csv of a generated curve, marked as generated (by which run, for which request)."""
    cols = st.columns(4)
    # Written when clicked (a callable), not on every render of the page.
    cols[0].download_button("Artisan .alog", lambda: export_bytes(profile, ".alog", provenance=provenance),
                            f"{stem}.alog", mime="application/octet-stream", key=f"{key}_alog",
                            icon=":material/download:")
    cols[1].download_button("CSV", lambda: export_bytes(profile, ".csv", provenance=provenance), f"{stem}.csv",
                            mime="text/csv", key=f"{key}_csv", icon=":material/download:")
    cols[2].caption("PNG: the camera button in the chart's toolbar.")


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
        _ui.plotly(grid_figure(panels, 1.0, colors=c.colors, cols=3 if n == 9 else 2), "cmp_grid", "roast_grid")
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
        fig = overlay_figure(real, curves, 1.0, colors=c.colors, show_ror=show_ror, show_events=show_events)
        _ui.plotly(fig, "cmp_chart", f"roast_{pid}")
        st.subheader("Physics checks")
        st.dataframe(physics_checks(real, curves), hide_index=True, width="stretch", key="cmp_physics",
                     column_config=_ui.column_help(PHYSICS_HELP, wide=("why",)))
        st.subheader("Download a generated curve")
        _ui.keep_choice("cmp_dl_run", list(curves), runs[0].name)
        which = st.selectbox("Curve", list(curves), key="cmp_dl_run")
        downloads(curve_profile(curves[which], f"{which}_{pid}", like=real), f"{which}_{pid}", "cmp_dl",
                  Provenance.for_roast(which, real))

    st.subheader("Free-running metrics")
    ready = {r.name: _ui.scores(r) for r in runs}  # stored with each run: nothing is scored here
    _ui.scoring_panel([r for r in runs if ready[r.name] is None], c, "cmp_score")
    reports = {n: r for n, r in ready.items() if r is not None}
    if reports:
        primary = reports.get(runs[0].name) or next(iter(reports.values()))
        table = free_run_table({n: r["free_run"] for n, r in reports.items()}, primary.get("baselines"))
        st.dataframe(table, hide_index=True, width="stretch", key="cmp_metrics_table",
                     column_config=_ui.column_help(FREE_RUN_HELP, wide=("curve from",)))
        fit = (primary.get("baseline_fit") or {}).get("description")
        st.caption((f"Baselines of {next(n for n, r in reports.items() if r is primary)}: {fit}. " if fit else
                    "Baselines are fitted on the run's training roasts. ") + "Lower is better except "
                   "'physics valid %'; 'curve std' near 0 means the model collapsed to a constant. "
                   + scores_caption(reports))

with st.expander("Generate for a new coffee", expanded=False), _ui.guard("the generation form"):
    if c.primary is None or not c.primary.usable:
        st.info("Pick a usable checkpoint in the sidebar first.")
        st.stop()
    loaded = _ui.load_run(c.primary)
    options, choices = form.field_options(loaded), request_choices(loaded)
    with st.form("new_coffee"):
        v, rows = {}, [st.columns(3), st.columns(3)]
        for k, (label, field) in enumerate(form.FIELD_LABELS):
            v[field] = rows[k // 3][k % 3].selectbox(label, options[field], key=f"new_{field}")
        v["charge_f"] = rows[1][2].number_input("Charge °F", 32.0, 550.0, choices.default_charge_f, step=5.0,
                                             key="new_charge")
        v["flavors"] = st.multiselect("Flavours", choices.flavors, key="new_flavors")
        cols = st.columns(2)
        v["by"] = cols[0].radio("End the roast by", [form.BY_LENGTH, form.BY_DROP], horizontal=True, key="new_by")
        v["length_s"] = cols[1].slider("Length (s)", 360, 1200, 660, step=15, key="new_len",
                                       help="Used when ending by length.")
        v["drop_f"] = cols[1].number_input("Drop °F", 300.0, 500.0, 410.0, step=1.0, key="new_drop",
                                           help="Used when ending by drop temperature.")
        submitted = st.form_submit_button("Generate", type="primary")
    if submitted:
        with st.spinner("Generating…"):
            request = form.roast_request(v)
            st.session_state["new_profile"] = (c.primary.name, form.new_coffee_profile(loaded, v),
                                               Provenance.for_request(c.primary.name, request))
    if st.session_state.get("new_profile"):
        run_name, prof, provenance = st.session_state["new_profile"]
        _ui.plotly(overlay_figure(None, {f"{run_name} (new coffee)": prof.bt}, 1.0, colors=c.colors),
                   "new_chart", "new_coffee")
        st.caption(f"{fmt_mmss(prof.duration_s)} · charge {prof.charge_f:.0f} °F · drop {prof.finish_f:.0f} °F")
        downloads(prof, f"new_coffee_{run_name}", "new_dl", provenance)

"""The Compare curves page's widgets: downloads of a generated curve, the free-running metrics
and the new-coffee form.

Streamlit glue only: the tables are `pages._eval_tables`, the form's values `pages._coffee_form`
(no streamlit); curves and exports are `roastcore.inspect_run` and `roastcore.generate`.
"""

from __future__ import annotations

import streamlit as st

from pages import _coffee_form as form
from pages import _ui
from pages._eval_tables import FREE_RUN_HELP, free_run_table, scores_caption
from pages._format import fmt_mmss
from roastcore.generate import Provenance
from roastcore.inspect_run import export_bytes, request_choices
from roastcore.plotting import overlay_figure


def downloads(profile, stem: str, key: str, provenance: Provenance) -> None:
    """.alog and .csv of a generated curve, marked as generated (by which run, for which request)."""
    cols = st.columns(4)
    # Written when clicked (a callable), not on every render of the page.
    cols[0].download_button("Artisan .alog", lambda: export_bytes(profile, ".alog", provenance=provenance),
                            f"{stem}.alog", mime="application/octet-stream", key=f"{key}_alog",
                            icon=":material/download:")
    cols[1].download_button("CSV", lambda: export_bytes(profile, ".csv", provenance=provenance), f"{stem}.csv",
                            mime="text/csv", key=f"{key}_csv", icon=":material/download:")
    cols[2].caption("PNG: 'Download as PNG' in the chart's toolbar (top right, on hover).")


def free_run_metrics(c: _ui.Ctx, runs) -> None:
    """The runs' stored free-running scores beside the baselines (nothing is scored here)."""
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


def new_coffee(c: _ui.Ctx) -> None:
    """Generate a curve for a request (origin, process, charge, flavours, end) from the primary run."""
    encoder = _ui.run_encoder(c.primary)  # the choices need no model: it is loaded when a curve is asked for
    options, choices = form.field_options(encoder), request_choices(encoder)
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
            st.session_state["new_profile"] = (c.primary.name, form.new_coffee_profile(_ui.load_run(c.primary), v),
                                               Provenance.for_request(c.primary.name, request))
    if st.session_state.get("new_profile"):
        run_name, prof, provenance = st.session_state["new_profile"]
        _ui.chart(overlay_figure(None, {f"{run_name} (new coffee)": prof.bt}, 1.0, colors=c.colors), "new_chart")
        st.caption(f"{fmt_mmss(prof.duration_s)} · charge {prof.charge_f:.0f} °F · drop {prof.finish_f:.0f} °F")
        downloads(prof, f"new_coffee_{run_name}", "new_dl", provenance)

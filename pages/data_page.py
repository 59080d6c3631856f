"""Data: import roast logs, browse curves, summary statistics, generate a synthetic dataset."""

from __future__ import annotations

import streamlit as st

from pages import _data_panel as panel
from pages import _data_tables as tables
from pages import _ui
from roastcore.io import registry
from roastcore.plotting import curves_figure

st.header("Data")
c = _ui.ctx()

tab_browse, tab_import, tab_pt, tab_gen = st.tabs(["Browse", "Import", "RoastFormer checkpoints",
                                                   "Generate synthetic"])

with tab_import, _ui.guard("the import form"):
    panel.logs_tab(c)

with tab_pt, _ui.guard("the checkpoint import"):
    panel.checkpoints_tab(c)

with tab_gen, _ui.guard("the generator"):
    st.caption("Simulated drum roasts from the built-in physics simulator; deterministic for a seed.")
    cols = st.columns(3)
    n = cols[0].number_input("Roasts", min_value=10, max_value=2000, value=200, step=10, key="gen_n")
    seed = cols[1].number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="gen_seed")
    if cols[2].button("Generate and save", key="gen_go", type="primary"):
        from roastcore.simulate import generate_dataset

        with st.spinner(f"Simulating {int(n)} roasts…"):
            profiles = generate_dataset(n=int(n), seed=int(seed))
            entry = registry.save_dataset(c.runs_dir, f"synthetic_n{int(n)}_seed{int(seed)}", profiles, "generated")
        st.session_state["gen_last"] = (f"Saved **{entry.name}** ({len(profiles)} roasts) and selected it in "
                                        "the sidebar.")
        _ui.select_dataset(entry.key)
        st.rerun()
    if st.session_state.get("gen_last"):
        st.success(st.session_state["gen_last"])

with tab_browse, _ui.guard("the dataset browser"):
    with st.spinner("Loading the dataset…"):
        report = _ui.load_report(c.data_spec)
    profiles = list(report.profiles)
    st.caption(f"Dataset: **{c.data_label}** · spec `{c.data_spec}`")
    if not profiles:
        _ui.empty_state("This dataset holds no roasts: import some on the Import tab or pick another "
                        "dataset in the sidebar.")
        st.stop()
    if getattr(report, "rejected", None):
        st.warning(f"{len(report.rejected)} files of this dataset were rejected on load.")
    by_id = {p.id: p for p in profiles}
    labels = {p.id: tables.profile_label(p, i) for i, p in enumerate(profiles)}
    ids = list(labels)
    # Keyed on the dataset: another dataset gets a fresh picker (its own roasts, 3 by default)
    # rather than the previous dataset's labels, which the browser would send back.
    picked = st.multiselect("Roasts to draw", ids, default=[ids[i] for i in tables.spread_indices(len(ids), 3)],
                            key=f"data_pick:{c.data_key}", format_func=lambda i: labels.get(i, str(i)),
                            max_selections=10)
    picked = [i for i in picked if i in by_id]
    opts = st.columns(2)
    show_ror = opts[0].toggle("Rate of rise", value=True, key="data_ror")
    show_events = opts[1].toggle("Events", value=True, key="data_events")
    if picked:
        _ui.chart(curves_figure([by_id[i] for i in picked], show_ror=show_ror, show_events=show_events),
                  "data_curves")
    else:
        st.info("Pick one or more roasts to draw their curves.")
    st.subheader("Summary statistics")
    left, right = st.columns([3, 2])
    left.dataframe(tables.summary_stats(profiles), hide_index=True, width="stretch", key="data_stats")
    field_name = right.selectbox("Count by", ["roast_level", "origin", "process", "roaster", "variety"],
                                 key="data_countby")
    right.dataframe(tables.categorical_counts(profiles, field_name), hide_index=True, width="stretch",
                    key="data_counts")
    with st.expander(f"All {len(profiles)} roasts"):
        st.dataframe(tables.profiles_table(profiles), hide_index=True, width="stretch", key="data_table")

"""Data: import roast logs, browse curves, summary statistics, generate a synthetic dataset."""

from __future__ import annotations

import streamlit as st

from pages import _data_tables as tables
from pages import _ui
from roastcore.io import registry
from roastcore.plotting import curves_figure

st.header("Data")
c = _ui.ctx()


def show_report(summary: dict) -> None:
    """Draw an import report summary (kept in session state so it survives the rerun)."""
    cols = st.columns(3)
    cols[0].metric("Imported", summary["n_ok"])
    cols[1].metric("Rejected", len(summary["rejected"]))
    cols[2].metric("Duplicates skipped", len(summary["duplicates"]))
    if len(summary["rejected"]):
        st.caption("Rejected files and why")
        st.dataframe(summary["rejected"], hide_index=True, width="stretch", key="imp_rejected")
    if len(summary["duplicates"]):
        st.caption("Duplicates (same curve as an earlier file)")
        st.dataframe(summary["duplicates"], hide_index=True, width="stretch", key="imp_dups")
    if summary.get("message"):
        (st.success if summary["n_ok"] else st.error)(summary["message"])


def finish_import(report, entry, done: str, verb: str) -> None:
    """Keep the report for display; select the new dataset in the sidebar on the next run."""
    message = (f"Dataset **{entry.name}** {verb} ({done}) and selected in the sidebar." if entry else
               f"No file could be imported; nothing was {verb}.")
    st.session_state["imp_last"] = tables.import_summary(report, message)
    if entry is not None:
        _ui.select_dataset(entry.key)
        st.rerun()


tab_browse, tab_import, tab_gen = st.tabs(["Browse", "Import", "Generate synthetic"])

with tab_import, _ui.guard("the import form"):
    st.caption("Artisan .alog, Onyx-style .json and .csv logs, or a .zip of them. Imported datasets are "
               f"kept under `{registry.datasets_dir(c.runs_dir)}` so training jobs can read them.")
    how = st.radio("Source", ["Upload files", "Folder on the server"], horizontal=True, key="imp_how")
    name = st.text_input("Dataset name", value="my_roasts", key="imp_name", max_chars=60)
    if how == "Upload files":
        limit = tables.upload_limit_text(st.get_option("server.maxUploadSize"), registry.MAX_UPLOAD_TOTAL_BYTES)
        files = st.file_uploader(f"Roast logs (.alog, .csv, .json or .zip; {limit})", type=["alog", "csv", "json", "zip"],
                                 accept_multiple_files=True, key="imp_files",
                                 help=f"{limit[0].upper()}{limit[1:]}. A larger file is refused by the browser "
                                      "(shown in red); zip a folder or import it from the server instead.")
        if st.button("Import uploaded files", key="imp_upload_go", disabled=not files, type="primary") and files:
            try:
                with st.spinner("Importing…"):
                    report, entry = registry.import_uploads(c.runs_dir, name, [(f.name, f.getvalue()) for f in files])
                finish_import(report, entry, f"{len(report.profiles)} roasts", "saved")
            except registry.UploadError as exc:
                st.error(str(exc))
    else:
        folder = st.text_input("Folder, .zip or file path on the server", key="imp_path",
                               placeholder="/data/artisan_logs")
        if st.button("Import folder", key="imp_path_go", disabled=not folder.strip(), type="primary"):
            try:
                with st.spinner(f"Importing {folder.strip()}…"):
                    report, entry = registry.import_path(c.runs_dir, name, folder.strip())
                where = entry.spec if entry else folder
                finish_import(report, entry, f"{len(report.profiles)} roasts, read from `{where}`", "registered")
            except registry.UploadError as exc:
                st.error(str(exc))
    if st.session_state.get("imp_last"):
        show_report(st.session_state["imp_last"])

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
        _ui.plotly(curves_figure([by_id[i] for i in picked], show_ror=show_ror, show_events=show_events),
                   "data_curves", "roasts")
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

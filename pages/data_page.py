"""Data: import roast logs, browse curves, summary statistics, generate a synthetic dataset."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import streamlit as st

from pages import _ui
from roastcore import views
from roastcore.io import import_folder

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


def finish_import(report, message: str, entry=None) -> None:
    """Keep the report for display; select the new dataset in the sidebar on the next run."""
    st.session_state["imp_last"] = {
        "n_ok": len(report.profiles), "rejected": views.rejected_table(report),
        "duplicates": views.duplicates_table(report), "message": message,
    }
    if entry is not None:
        _ui.select_dataset(entry.key)
        st.rerun()


tab_browse, tab_import, tab_gen = st.tabs(["Browse", "Import", "Generate synthetic"])

with tab_import, _ui.guard("the import form"):
    st.caption("Artisan .alog, Onyx-style .json and .csv logs, or a .zip of them. Imported datasets are "
               f"kept under `{views.datasets_dir(c.runs_dir)}` so training jobs can read them.")
    how = st.radio("Source", ["Upload files", "Folder on the server"], horizontal=True, key="imp_how")
    name = st.text_input("Dataset name", value="my_roasts", key="imp_name", max_chars=60)
    if how == "Upload files":
        files = st.file_uploader("Roast logs", type=["alog", "csv", "json", "zip"], accept_multiple_files=True,
                                 key="imp_files", help=f"At most {views.MAX_UPLOAD_TOTAL_BYTES // 2**20} MB in all.")
        go = st.button("Import uploaded files", key="imp_upload_go", disabled=not files, type="primary")
        if go and files:
            ds_name = views.unique_dataset_name(c.runs_dir, name)
            dest = views.datasets_dir(c.runs_dir) / ds_name
            staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=c.runs_dir))
            try:
                with st.spinner("Importing…"):
                    views.stage_uploads([(f.name, f.getvalue()) for f in files], staging)
                    report = import_folder(staging)
                if report.profiles:
                    views.save_profiles_json(report.profiles, dest)
                    entry = views.register_dataset(c.runs_dir, ds_name, str(dest.resolve()), "upload",
                                                   len(report.profiles))
                    finish_import(report, f"Dataset **{entry.name}** saved ({len(report.profiles)} roasts) "
                                  "and selected in the sidebar.", entry)
                else:
                    finish_import(report, "No file could be imported; nothing was saved.")
            except views.UploadError as exc:
                st.error(str(exc))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    else:
        folder = st.text_input("Folder, .zip or file path on the server", key="imp_path",
                               placeholder="/data/artisan_logs")
        go = st.button("Import folder", key="imp_path_go", disabled=not folder.strip(), type="primary")
        if go and folder.strip():
            from roastcore.io import load_source

            path = Path(folder.strip()).expanduser()
            if not path.exists():
                st.error(f"{path} does not exist on the server.")
            else:
                with st.spinner(f"Importing {path}…"):
                    report = load_source(str(path))
                if report.profiles:
                    entry = views.register_dataset(c.runs_dir, views.unique_dataset_name(c.runs_dir, name),
                                                   str(path.resolve()), "path", len(report.profiles))
                    finish_import(report, f"Dataset **{entry.name}** registered ({len(report.profiles)} roasts, "
                                  f"read from `{path}`) and selected in the sidebar.", entry)
                else:
                    finish_import(report, "No file could be imported; nothing was registered.")

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
            ds_name = views.unique_dataset_name(c.runs_dir, f"synthetic_n{int(n)}_seed{int(seed)}")
            dest = views.save_profiles_json(profiles, views.datasets_dir(c.runs_dir) / ds_name)
            entry = views.register_dataset(c.runs_dir, ds_name, str(dest.resolve()), "generated", len(profiles))
        st.session_state["gen_last"] = f"Saved **{entry.name}** ({len(profiles)} roasts) and selected it in the sidebar."
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
    else:
        if getattr(report, "rejected", None):
            st.warning(f"{len(report.rejected)} files of this dataset were rejected on load.")
        labels = {i: views.profile_label(p, i) for i, p in enumerate(profiles)}
        default = views.spread_indices(len(profiles), 3)
        picked = st.multiselect("Roasts to draw", list(labels), default=default, key="data_pick",
                                format_func=labels.get, max_selections=10)
        opts = st.columns(2)
        show_ror = opts[0].toggle("Rate of rise", value=True, key="data_ror")
        show_events = opts[1].toggle("Events", value=True, key="data_events")
        if picked:
            st.plotly_chart(views.curves_figure([profiles[i] for i in picked], show_ror=show_ror,
                                                show_events=show_events), key="data_curves")
        else:
            st.info("Pick one or more roasts to draw their curves.")
        st.subheader("Summary statistics")
        left, right = st.columns([3, 2])
        left.dataframe(views.summary_stats(profiles), hide_index=True, width="stretch", key="data_stats")
        field_name = right.selectbox("Count by", ["roast_level", "origin", "process", "roaster", "variety"],
                                     key="data_countby")
        right.dataframe(views.categorical_counts(profiles, field_name), hide_index=True, width="stretch",
                        key="data_counts")
        with st.expander(f"All {len(profiles)} roasts"):
            st.dataframe(views.profiles_table(profiles), hide_index=True, width="stretch", key="data_table")

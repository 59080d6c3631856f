"""The Data page's two import tabs (roast logs; RoastFormer checkpoints): widgets and messages.

Streamlit glue only: the imports themselves are `roastcore.io.registry` (logs) and
`pages._pt_import.import_checkpoints` (checkpoints); the report shaping is `pages._data_tables`.
"""

from __future__ import annotations

import shutil

import streamlit as st

from pages import _data_tables as tables
from pages import _pt_import, _ui
from pages._pt_import import UPLOAD_PACKAGE
from roastcore.io import registry


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


def upload_limit() -> str:
    return tables.upload_limit_text(st.get_option("server.maxUploadSize"), registry.MAX_UPLOAD_TOTAL_BYTES)


def logs_tab(c: _ui.Ctx) -> None:
    """Import roast logs: uploaded files or a folder on the server, saved as a dataset."""
    st.caption("Artisan .alog, Onyx-style .json and .csv logs, or a .zip of them. Imported datasets are "
               f"kept under `{registry.datasets_dir(c.runs_dir)}` so training jobs can read them.")
    how = st.radio("Source", ["Upload files", "Folder on the server"], horizontal=True, key="imp_how")
    name = st.text_input("Dataset name", value="my_roasts", key="imp_name", max_chars=60)
    if how == "Upload files":
        limit = upload_limit()
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


def import_pt(c: _ui.Ctx, paths_and_names, package_key: str, package_files=None) -> None:
    """Import `.pt` files (pages._pt_import.import_checkpoints), then select the first new run
    and its package in the sidebar."""
    files = [(f.name, f.getvalue()) for f in package_files] if package_files else None
    done = _pt_import.import_checkpoints(c.runs_dir, paths_and_names, package_key, files,
                                         taken=[r.name for r in c.runs])
    if done.warning:
        st.session_state["pt_warn"] = done.warning
    st.session_state["pt_last"] = done.message
    _ui.select_run(done.run_names[0])
    _ui.select_dataset(done.entry.key)
    st.rerun()


def checkpoints_tab(c: _ui.Ctx) -> None:
    """Import the original research code's `.pt` checkpoints: uploaded, or found in the runs directory."""
    st.caption("Checkpoints written by the original RoastFormer research code (`best_transformer_model.pt`, one "
               "per experiment) become runs here. They store no encoders, so each needs the dataset package "
               "(`preprocessed_data/`, or its zip) it was trained on. Only tensors are read from a .pt, never code.")
    packages = {e.key: f"{e.name} ({e.n_profiles} roasts)" for e in registry.list_datasets(c.runs_dir)
                if _ui.is_package(e.spec)}
    pt_files = st.file_uploader(f"Checkpoints (.pt; up to {_pt_import.MAX_PT_UPLOAD_MB} MB each)", type=["pt", "pth"],
                                accept_multiple_files=True, key="pt_files",
                                max_upload_size=_pt_import.MAX_PT_UPLOAD_MB)
    options = list(packages) + [UPLOAD_PACKAGE]
    _ui.keep_choice("pt_package", options, options[0])
    package_key = st.selectbox("Trained on the package", options, key="pt_package",
                               format_func=lambda k: packages.get(k, "Upload the package with them"),
                               help="An imported dataset that is a RoastFormer package, or upload it here.")
    pkg_files = None
    if package_key == UPLOAD_PACKAGE:
        pkg_files = st.file_uploader(f"The package (its .zip, or its .json and .csv files; {upload_limit()})",
                                     type=["zip", "json", "csv"], accept_multiple_files=True, key="pt_pkg_files")
    ready = bool(pt_files) and (package_key != UPLOAD_PACKAGE or bool(pkg_files))
    if st.button("Import checkpoints", key="pt_go", type="primary", disabled=not ready) and ready:
        staging = None
        try:
            with st.spinner("Importing…"):
                staging, staged = _pt_import.stage_checkpoints(c.runs_dir, [(f.name, f.getvalue()) for f in pt_files])
                import_pt(c, staged, package_key, pkg_files)
        except ValueError as exc:  # CheckpointImportError, ImportFailure and UploadError are ValueErrors
            st.error(_ui.plain_message(exc))
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    if st.session_state.get("pt_last"):
        st.success(st.session_state["pt_last"])
    if st.session_state.get("pt_warn"):
        st.warning(st.session_state["pt_warn"])

    st.subheader("Found in the runs directory")
    pending = _pt_import.pending_pt_files(c.runs_dir, [r.path for r in c.runs])
    if not pending:
        st.caption(f"No .pt file in `{c.runs_dir}` (or one folder down) waits to be imported.")
    for path in pending:
        status = _ui.pt_status(path, packages)
        where = path.relative_to(c.runs_dir) if path.is_relative_to(c.runs_dir) else path
        if not status.importable:
            st.warning(f"`{where}`: {status.problem}", icon=":material/warning:")
            continue
        cols = st.columns([3, 2, 1])
        cols[0].markdown(f"`{where}` → run **{status.name}** ({_pt_import.dims_text(status.dims)})")
        key = cols[1].selectbox("Package", status.matches, key=f"pt_found_pkg_{where}", label_visibility="collapsed",
                                format_func=lambda k: packages.get(k, k))
        if cols[2].button("Import", key=f"pt_found_go_{where}", type="primary", icon=":material/download:"):
            try:
                with st.spinner(f"Importing {path.name}…"):
                    import_pt(c, [(path, "")], key)
            except ValueError as exc:
                st.error(_ui.plain_message(exc))

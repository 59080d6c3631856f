"""Data: import roast logs, browse curves, summary statistics, generate a synthetic dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import streamlit as st

from pages import _data_tables as tables
from pages import _pt_import, _ui
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


tab_browse, tab_import, tab_pt, tab_gen = st.tabs(["Browse", "Import", "RoastFormer checkpoints",
                                                   "Generate synthetic"])

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

UPLOAD_PACKAGE = "_upload"


def package_choices() -> dict[str, str]:
    """Imported datasets that are RoastFormer packages: key -> label."""
    return {e.key: f"{e.name} ({e.n_profiles} roasts)" for e in registry.list_datasets(c.runs_dir)
            if _ui.is_package(e.spec)}


def import_pt(paths_and_names, package_key: str, package_files=None) -> None:
    """Import the staged or found .pt files against a package dataset (or the package uploaded
    with them, registered first and kept as uploaded), queue their scoring, select the first
    new run and the package in the sidebar."""
    from roastcore.jobs import JobError, JobRunner, submit_score

    if package_key == UPLOAD_PACKAGE:
        stem = Path(package_files[0].name).stem if len(package_files) == 1 else "roastformer_package"
        report, entry = registry.import_uploads(c.runs_dir, stem, [(f.name, f.getvalue()) for f in package_files])
        if entry is None or not _ui.is_package(entry.spec):
            raise registry.UploadError("the uploaded files hold no RoastFormer package (train_profiles.json, "
                                       "val_profiles.json and the metadata CSVs, or the zip holding them)")
    else:
        entry = next(e for e in registry.list_datasets(c.runs_dir) if e.key == package_key)
    paths = [p for p, _ in paths_and_names]
    uploaded = [n for _, n in paths_and_names] if all(n for _, n in paths_and_names) else None
    results = _pt_import.import_into_runs(paths, entry.spec, c.runs_dir, taken=[r.name for r in c.runs],
                                          uploaded_names=uploaded)
    names = [Path(r.run_dir).name for r in results]
    queued = []
    runner = JobRunner(c.runs_dir)
    for r in results:
        try:
            queued.append(submit_score(runner, r.run_dir).id)
        except JobError as exc:
            st.session_state["pt_warn"] = f"Scoring could not be queued: {exc}"
    units = ", ".join(f"**{Path(r.run_dir).name}** ({r.units} temperatures)" for r in results)
    st.session_state["pt_last"] = (f"Imported {units} against **{entry.name}**; selected in the sidebar. "
                                   f"Each is being scored in the background (jobs {', '.join(queued) or '–'}).")
    _ui.select_run(names[0])
    _ui.select_dataset(entry.key)
    st.rerun()


with tab_pt, _ui.guard("the checkpoint import"):
    st.caption("Checkpoints written by the original RoastFormer research code (`best_transformer_model.pt`, one "
               "per experiment) become runs here. They store no encoders, so each needs the dataset package "
               "(`preprocessed_data/`, or its zip) it was trained on. Only tensors are read from a .pt, never code.")
    packages = package_choices()
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
        limit = tables.upload_limit_text(st.get_option("server.maxUploadSize"), registry.MAX_UPLOAD_TOTAL_BYTES)
        pkg_files = st.file_uploader(f"The package (its .zip, or its .json and .csv files; {limit})",
                                     type=["zip", "json", "csv"], accept_multiple_files=True, key="pt_pkg_files")
    ready = bool(pt_files) and (package_key != UPLOAD_PACKAGE or bool(pkg_files))
    if st.button("Import checkpoints", key="pt_go", type="primary", disabled=not ready) and ready:
        staging = None
        try:
            with st.spinner("Importing…"):
                staging, staged = _pt_import.stage_checkpoints(c.runs_dir, [(f.name, f.getvalue()) for f in pt_files])
                import_pt(staged, package_key, pkg_files)
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
                    import_pt([(path, "")], key)
            except ValueError as exc:
                st.error(_ui.plain_message(exc))

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

"""Roast Lab dashboard entry point: `streamlit run app.py`.

Builds the sidebar (dataset and checkpoint pickers, synced to the URL's query parameters) and
the navigation; the selected page then runs below. Environment:

- ROASTCORE_RUNS: the runs directory (default: ./checkpoints). Imported datasets are kept under
  RUNS/datasets/. The shipped demo runs (checkpoints/demo_*) are always listed.
- ROASTCORE_DEFAULT_DATA: the built-in dataset spec, e.g. `synthetic:30` for quick tests
  (default `synthetic`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pages import _pt_import, _runs, _state, _ui  # noqa: E402
from roastcore.io import list_datasets  # noqa: E402
from roastcore.plotting import color_map  # noqa: E402

st.set_page_config(page_title="Roast Lab", page_icon=":material/coffee:", layout="wide")

PAGES = [
    ("pages/data_page.py", "Data", ":material/database:", "data"),
    ("pages/setup_page.py", "Experiment setup", ":material/tune:", "setup"),
    ("pages/jobs_page.py", "Training jobs", ":material/model_training:", "jobs"),
    ("pages/sweeps_page.py", "Sweeps", ":material/grid_view:", "sweeps"),
    ("pages/teacher_forcing_page.py", "Teacher forcing", ":material/school:", "teacher-forcing"),
    ("pages/diagnostic_page.py", "Generation diagnostic", ":material/troubleshoot:", "diagnostic"),
    ("pages/compare_page.py", "Compare curves", ":material/stacked_line_chart:", "compare"),
    ("pages/roast_page.py", "Roast in progress", ":material/local_fire_department:", "roast"),
    ("pages/study_page.py", "Study", ":material/table_chart:", "study"),
]
# Page files are named <x>_page.py on purpose: a file whose stem equals another page's url_path
# makes Streamlit's legacy pages/ discovery shadow that page (it would run without app.py's
# sidebar, e.g. in AppTest.switch_page).


def build_navigation():
    pages = []
    for i, (path, title, icon, url) in enumerate(PAGES):
        pages.append(st.Page(str(ROOT / path), title=title, icon=icon, url_path=url, default=i == 0))
    return st.navigation(pages, position="sidebar")


LINK_NOTICE = "_link_notice"


def _picked(ss) -> tuple:
    return ss.get("sb_data"), ss.get("sb_run"), tuple(ss.get("sb_cmp") or ())


def sidebar() -> _ui.Ctx:
    runs_dir = _state.runs_dir_from_env()
    _ui.clean_leftovers_once(str(runs_dir))
    _ui.warm_up_once()
    default_spec = _state.default_data_spec()
    datasets = list_datasets(runs_dir)
    data_options = {default_spec: _state.builtin_data_label(default_spec)}
    for entry in datasets:
        data_options[entry.key] = f"{entry.name} ({entry.n_profiles} roasts, imported)"
    runs = _ui.discover_runs(runs_dir)
    names = [r.name for r in runs]
    first = next((r.name for r in runs if r.usable), names[0] if names else None)  # the default pick

    ss = st.session_state
    if not ss.get("_sel_init"):
        params = st.query_params.to_dict()
        sel = _state.decode_selection(params, known_runs=names, known_data=data_options)
        ss["sb_data"] = sel.data or default_spec
        ss["sb_run"] = sel.run or first
        ss["sb_cmp"] = list(sel.compare)
        ss["_sel_init"] = True
        # Said until the user picks something else: a bad or stale link is not silently replaced.
        notice = _state.link_notice(params, sel)
        ss[LINK_NOTICE] = (notice, _picked(ss)) if notice else None
    # A page asked for a selection (a dataset was just imported, a run just launched).
    pending = ss.pop(_ui.PENDING_DATA, None)
    if pending in data_options:
        ss["sb_data"] = pending
    pending = ss.pop(_ui.PENDING_RUN, None)
    if pending in names:
        ss["sb_run"] = pending
    # Options change (a run was deleted, a dataset imported): drop stale choices. Every choice is
    # also set again (pinned) before its widget is drawn: a label may have changed since the browser
    # saw it (a run finished, a new TF MAE), and Streamlit matches the browser's value by label, so
    # the picker would otherwise jump to its first option.
    _ui.keep_choice("sb_data", list(data_options), default_spec)
    _ui.keep_choice("sb_run", names, first)
    ss["sb_cmp"] = [c for c in ss.get("sb_cmp", []) if c in names and c != ss["sb_run"]]

    labels = {r.name: r.label for r in runs}
    notice = ss.get(LINK_NOTICE)
    with st.sidebar:
        st.markdown("### :material/coffee: Roast Lab")
        if notice and notice[1] == _picked(ss):
            st.warning(notice[0], icon=":material/link_off:")
        # The full labels are in each help tooltip: the sidebar is narrow and cuts long ones.
        data_key = st.selectbox("Dataset", list(data_options), key="sb_data",
                                format_func=lambda k: data_options.get(k, k),
                                help="The built-in simulator set, or a dataset imported on the Data page. "
                                     f"Selected: {data_options.get(ss['sb_data'], ss['sb_data'])}.")
        if names:
            run = st.selectbox("Checkpoint", names, key="sb_run", format_func=lambda n: labels.get(n, n),
                               help="The primary checkpoint used by every page. "
                                    f"Selected: {labels.get(ss['sb_run'], ss['sb_run'])}.")
            compare = st.multiselect("Compare with", [n for n in names if n != run], key="sb_cmp",
                                     format_func=lambda n: labels.get(n, n),
                                     help="Extra checkpoints drawn beside the primary one."
                                          + "".join(f"\n- {labels.get(n, n)}" for n in ss["sb_cmp"]))
            primary = next(r for r in runs if r.name == run)
            st.caption(_runs.run_caption(primary))
        else:
            run, compare = None, []
            st.caption("No checkpoints yet: launch one on Experiment setup.")
        pending = _pt_import.pending_pt_files(runs_dir, [r.path for r in runs])
        if pending:  # never ignored silently: each is listed on the Data page with what it needs
            st.info(f"{len(pending)} RoastFormer checkpoint{'s' if len(pending) > 1 else ''} (.pt) in the runs "
                    "directory not imported yet: " + ", ".join(f"`{p.name}`" for p in pending[:3])
                    + (" …" if len(pending) > 3 else ""), icon=":material/upload_file:")
            st.page_link("pages/data_page.py", label="Import them on the Data page (RoastFormer checkpoints tab)",
                         icon=":material/arrow_forward:")
        st.caption(f"Runs directory: `{runs_dir}`")

    sel = _state.Selection(data=data_key, run=run or "", compare=tuple(compare))
    wanted = _state.encode_selection(sel)
    current = {k: st.query_params.get(k) for k in ("data", "run", "cmp")}
    if {k: v for k, v in current.items() if v} != wanted:
        for key in ("data", "run", "cmp"):
            if key in wanted:
                st.query_params[key] = wanted[key]
            elif key in st.query_params:
                del st.query_params[key]

    spec = data_key
    if data_key.startswith("ds:"):
        spec = next(e.spec for e in datasets if e.key == data_key)
    return _ui.Ctx(runs_dir=runs_dir, data_key=data_key, data_spec=spec,
                   data_label=data_options[data_key], runs=runs, selection=sel,
                   colors=color_map(names))


_ui.script_started()
try:
    nav = build_navigation()
    with _ui.guard("the sidebar"):
        st.session_state[_ui.CTX_KEY] = sidebar()
        _ui.prefetch(st.session_state[_ui.CTX_KEY])  # a new pick: its first curves, when idle
    nav.run()
finally:
    _ui.script_finished()

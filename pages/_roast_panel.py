"""The Roast in progress page's widgets: the forecast controls, the cached fits, the progress
notes and the methods table.

Streamlit glue only: what to fit on, a frame and the table's rows are `pages._roast_view` (no
streamlit); the forecasts are `roastcore.forecast`.
"""

from __future__ import annotations

import time
from functools import partial

import streamlit as st

from pages import _roast_view as view
from pages import _ui
from pages._format import fmt_duration
from pages._state import default_data_spec, path_mtime
from roastcore.forecast_eval import library_profiles

ss = st.session_state


def mtime(spec: str) -> float:
    return 0.0 if not spec or spec.startswith("synthetic") else path_mtime(spec)


@st.cache_resource(show_spinner=False, max_entries=24)
def fit_task(method: str, source: str, spec: str, spec_mtime: float, run_path: str, run_mtime: float, _run):
    model = _ui.load_run(_run).model if _run is not None else None
    train = library_profiles(model.prior_library) if source == "run" else _ui.load_profiles(spec)
    return view.Task(partial(view.fit_forecaster, method, train, model if method in view.SLOW_METHODS else None),
                     f"fitting {method} on {len(train)} roasts")


@st.cache_resource(show_spinner=False, max_entries=8)
def sample_task(spec: str, spec_mtime: float, methods: tuple, run_path: str, run_mtime: float, _run):
    model = _ui.load_run(_run).model if _run is not None else None
    return view.Task(partial(view.run_sample, methods, _ui.load_profiles(spec), model, run_path), "scoring a sample")


def horizon_and_source(c: _ui.Ctx, profiles, profile, pid: str, run, has_lib: bool) -> tuple:
    """The row under the pickers: where forecasts end (kind, value) and what the methods fit on."""
    row = st.columns([3, 2, 3])
    kind = row[0].radio("Drop at", list(view.HORIZONS), format_func=view.HORIZONS.get, key="rp_hz", horizontal=True,
                        help="Where each forecast ends: a drop temperature (the page says when it is reached), "
                             "a DROP time, or each method's own expected end.")
    value = None
    if kind == "target":
        value = row[1].number_input("Drop temperature °F", 150.0, 500.0, view.default_drop_f(profile), step=1.0,
                                    key=f"rp_drop_f:{c.data_key}:{pid}",
                                    help="Default: the roast's target drop temperature, else its real one.")
    elif kind == "drop_time":
        value = row[1].number_input("DROP time (s from CHARGE)", view.MIN_AT_S + 1.0, 1800.0,
                                    float(round(profile.duration_s)), step=5.0, key=f"rp_drop_s:{c.data_key}:{pid}")
    sources = view.training_sources(len({p.group for p in profiles}), has_lib, c.data_spec == default_data_spec())
    source = row[2].selectbox("Fit the methods on", sources, format_func=view.SOURCES.get,
                              key=f"rp_src:{c.data_key}:{run.name if run else ''}")
    return kind, value, source


def fit_tasks(c: _ui.Ctx, methods, source: str, run, run_key: tuple) -> dict:
    """One cached fit per method (a background Task), waited for up to 3 s: the fast methods are
    ready at once; slow fits appear when done."""
    train_spec = {"dataset": c.data_spec, "builtin": default_data_spec(), "run": ""}[source]

    def needs_run(m: str) -> bool:  # in the key only then: other fits are shared by every run
        return m in view.SLOW_METHODS or source == "run"

    tasks = {m: fit_task(m, source, train_spec, mtime(train_spec), *(run_key if needs_run(m) else ("", 0.0)),
                         run if needs_run(m) else None) for m in methods}
    deadline = time.monotonic() + 3.0
    for task in tasks.values():
        task.wait(deadline - time.monotonic())
    return tasks


def progress_notes(c: _ui.Ctx, tasks: dict, sample_key: str, sample, stem: str) -> None:
    """What is still being computed: fits, the sample, the background table."""
    for m, t in tasks.items():
        if t.error is not None:
            st.error(f"{m} could not be fitted: {_ui.plain_message(t.error)}")
        elif not t.done:
            st.info(f"{t.label}: {fmt_duration(t.elapsed_s)} so far (once per dataset and checkpoint).",
                    icon=":material/hourglass_top:")
    if ss.get(sample_key) and not sample().done:
        st.info(f"Scoring a sample of {view.SAMPLE_ROASTS} roasts for the table below: "
                f"{fmt_duration(sample().elapsed_s)} so far.", icon=":material/hourglass_top:")
    job = view.eval_job_status(c.runs_dir, stem)
    if job and job["state"] == "running":
        st.caption(f"The full methods table is being computed in the background ({fmt_duration(job['elapsed_s'])} "
                   f"so far; log `{job['log']}`).")


def methods_table(c: _ui.Ctx, run, avail, stem: str, sample_key: str, sample, at: int) -> None:
    """The methods over the dataset: a stored table, a scored sample, or buttons to compute one."""
    st.subheader("The methods over the dataset")
    stored = view.stored_tables(c.runs_dir, c.data_spec, run.path if run else None)
    done = sample() if ss.get(sample_key) and sample().done else None
    if stored or (done and done.result):
        path, result = stored[0] if stored else (None, done.result)
        cut, rows = view.methods_table(result, at)
        st.dataframe(rows, hide_index=True, width="stretch", key="rp_methods_table",
                     column_config=_ui.column_help(view.TABLE_HELP))
        st.caption(view.table_caption(path.name if path else "sample", result, cut, at))
    elif done and done.error:
        st.error(f"The sample could not be scored: {_ui.plain_message(done.error)}")
    elif not ss.get(sample_key):
        st.info("No stored table for this dataset yet: scoring every roast at every cut takes CPU-minutes.")
    cols = st.columns(2)
    if not stored and not ss.get(sample_key):
        if cols[0].button(f"Score a sample of {view.SAMPLE_ROASTS} roasts now", key="rp_sample_go"):
            ss[sample_key] = True
            st.rerun()
    job = view.eval_job_status(c.runs_dir, stem)
    out = view.eval_dir(c.runs_dir) / f"{stem}.json"
    run_path = run.path if run else None
    if job and job["state"] == "failed":
        st.warning(f"The last background table failed: {job['reason']}")
    if not (job and job["state"] == "running") and cols[1].button(
            "Compute the full table in the background", key="rp_job_go",
            help=f"Runs `{view.eval_command(c.data_spec, out, avail, run_path)}`"):
        view.start_eval_job(c.runs_dir, stem, c.data_spec, avail, run_path)
        st.rerun()

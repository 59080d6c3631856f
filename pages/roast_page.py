"""Roast in progress: replay a roast and forecast the rest at each moment (roastcore.forecast)."""

from __future__ import annotations

import time
from functools import partial

import streamlit as st

from pages import _roast_view as view
from pages import _ui
from pages._data_tables import profile_label
from pages._format import fmt_duration, fmt_mmss
from pages._state import default_data_spec, path_mtime
from roastcore.forecast import library_profiles
from roastcore.plotting import forecast_figure

st.header("Roast in progress")
st.caption("Scrub through a roast (or press play): at each moment the methods forecast the rest from what "
           "was seen so far, with an 80% band, the predicted first crack and DROP; the real rest is greyed "
           "in. Each method is fitted once per dataset and checkpoint; a frame only forecasts.")
c = _ui.ctx()
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


with _ui.guard("the roast-in-progress page"):
    profiles = [p for p in _ui.load_profiles(c.data_spec) if view.slider_times(p.duration_s)]
    if not profiles:
        _ui.empty_state("The selected dataset holds no roast long enough to replay: import some on the Data page.",
                        "pages/data_page.py", "Data")
        st.stop()
    run = c.primary
    model = _ui.load_run(run).model if run is not None else None
    has_lib = getattr(model, "prior_library", None) is not None
    avail = view.available_methods(run is not None, has_lib)
    ss["rp_methods"] = [m for m in ss.get("rp_methods", view.DEFAULT_METHODS) if m in avail]
    by_id = {p.id: p for p in profiles}
    top = st.columns([2, 3])
    pid = top[0].selectbox("Roast", list(by_id), key=f"rp_roast:{c.data_key}",
                           format_func=lambda i: profile_label(by_id[i]))
    methods = top[1].multiselect("Methods", avail, key="rp_methods",
                                 help="\n".join(f"- **{m}**: {view.METHOD_HELP[m]}" for m in avail))
    profile, times = by_id[pid], view.slider_times(by_id[pid].duration_s)
    row = st.columns([3, 2, 3])
    kind = row[0].radio("Horizon", list(view.HORIZONS), format_func=view.HORIZONS.get, key="rp_hz",
                        horizontal=True)
    value = None
    if kind == "target":
        value = row[1].number_input("Drop at °F", 150.0, 500.0, view.default_drop_f(profile), step=1.0,
                                    key=f"rp_drop_f:{c.data_key}:{pid}",
                                    help="Default: the roast's target drop temperature, else its real one.")
    elif kind == "drop_time":
        value = row[1].number_input("Drop at (s from CHARGE)", view.MIN_AT_S + 1.0, 1800.0,
                                    float(round(profile.duration_s)), step=5.0, key=f"rp_drop_s:{c.data_key}:{pid}")
    is_builtin = c.data_spec == default_data_spec()
    sources = view.training_sources(len({p.group for p in profiles}), has_lib, is_builtin)
    source = row[2].selectbox("Fit the methods on", sources, format_func=view.SOURCES.get,
                              key=f"rp_src:{c.data_key}:{run.name if run else ''}")
    train_spec = {"dataset": c.data_spec, "builtin": default_data_spec(), "run": ""}[source]
    if any(m in view.SLOW_METHODS for m in methods):
        st.caption(":material/speed: The model methods generate every frame (about 200 ms each on a CPU): "
                   "the replay slows down with them. prefix_knn alone takes milliseconds.")
    play = st.columns([1, 2, 5])
    t_key = f"rp_t:{c.data_key}:{pid}"
    if ss.get(t_key) not in times:
        ss[t_key] = view.default_time(times)

    def toggle_play() -> None:
        ss["rp_playing"] = not ss.get("rp_playing", False)
        if ss["rp_playing"] and ss[t_key] >= times[-1]:
            ss[t_key] = times[0]

    playing = ss.get("rp_playing", False)
    play[0].button("Pause" if playing else "Play", key="rp_play", on_click=toggle_play,
                   icon=":material/pause:" if playing else ":material/play_arrow:")
    speed = play[1].select_slider("Speed", view.SPEEDS, value=30, key="rp_speed", format_func=lambda s: f"{s}x",
                                  label_visibility="collapsed")
    run_key = (str(run.path), path_mtime(run.path)) if run is not None else ("", 0.0)

    def needs_run(m: str) -> bool:  # the key: non-model methods on a dataset are shared by all runs
        return m in view.SLOW_METHODS or source == "run"

    tasks = {m: fit_task(m, source, train_spec, mtime(train_spec), *(run_key if needs_run(m) else ("", 0.0)),
                         run if needs_run(m) else None) for m in methods}
    deadline = time.monotonic() + 3.0  # fast methods are ready at once; slow fits show up when done
    for task in tasks.values():
        task.wait(deadline - time.monotonic())
    stem = view.table_stem(c.data_key, run.name if run else None)
    sample_key = f"rp_sample:{stem}:{','.join(methods)}"

    def sample():
        return sample_task(c.data_spec, mtime(c.data_spec), tuple(methods), *run_key, run)

    def pending() -> bool:
        """Work the page waits for: a fit, a sample, the background table."""
        job = view.eval_job_status(c.runs_dir, stem)
        return (any(not t.done for t in tasks.values()) or (bool(ss.get(sample_key)) and not sample().done)
                or (job is not None and job["state"] == "running"))

    polling = pending()

    @st.fragment(run_every=view.TICK_S if playing else (1.0 if polling else None))
    def replay() -> None:
        with _ui.guard("the replay"):
            if ss.get("rp_playing"):
                ss[t_key], finished = view.advance(ss[t_key], times, speed)
                if finished:
                    ss["rp_playing"] = False
            at = st.select_slider("Moment (m:ss from CHARGE)", times, key=t_key, format_func=fmt_mmss)
            for m, t in tasks.items():
                if t.error is not None:
                    st.error(f"{m} could not be fitted: {_ui.plain_message(t.error)}")
                elif not t.done:
                    st.info(f"{t.label}: {fmt_duration(t.elapsed_s)} so far (once per dataset and checkpoint).",
                            icon=":material/hourglass_top:")
            fitted = {m: t.result for m, t in tasks.items() if t.done and t.error is None}
            fr = view.frame(fitted, profile, at, view.horizon(kind, value))
            x_max, y_range = view.axes(profile)
            _ui.plotly(forecast_figure(profile, at, fr.forecasts, x_max=x_max, y_range=y_range), "rp_chart",
                       f"roast_{pid}_at_{at}")
            st.dataframe(view.frame_rows(fr, profile), hide_index=True, width="stretch", key="rp_frame",
                         column_config=_ui.column_help(view.FRAME_HELP))
            methods_table(at)
            if not ss.get("rp_playing") and (playing or (polling and not pending())):
                st.rerun()  # playback ended or the awaited work finished: stop polling

    def methods_table(at: int) -> None:
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
        elif ss.get(sample_key):
            st.info(f"Scoring a sample of {view.SAMPLE_ROASTS} roasts: {fmt_duration(sample().elapsed_s)} so far.")
        else:
            st.info("No stored table for this dataset yet: scoring every roast at every cut takes CPU-minutes.")
        cols = st.columns(2)
        if not stored and not ss.get(sample_key):
            if cols[0].button(f"Score a sample of {view.SAMPLE_ROASTS} roasts now", key="rp_sample_go"):
                ss[sample_key] = True
                st.rerun()
        status = view.eval_job_status(c.runs_dir, stem)
        if status and status["state"] == "running":
            cols[1].caption(f"The full table is being computed in the background "
                            f"({fmt_duration(status['elapsed_s'])} so far; log `{status['log']}`).")
        elif cols[1].button("Compute the full table in the background", key="rp_job_go"):
            view.start_eval_job(c.runs_dir, stem, c.data_spec, avail, run.path if run else None)
            st.rerun()
        if status and status["state"] == "failed":
            st.warning(f"The last background table failed: {status['reason']}")

    replay()

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
from roastcore.forecast_eval import library_profiles
from roastcore.plotting import forecast_figure

st.header("Roast in progress")
st.caption("Scrub through a roast or press play: at each moment every method forecasts the rest from what was "
           "seen so far, with its 80% band (shaded), first crack (▲) and DROP (■) with their bands (bars); the "
           "real rest is greyed in. Methods are fitted once per dataset and checkpoint; a frame only forecasts.")
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
    train_spec = {"dataset": c.data_spec, "builtin": default_data_spec(), "run": ""}[source]
    run_key = (str(run.path), path_mtime(run.path)) if run is not None else ("", 0.0)

    def needs_run(m: str) -> bool:  # in the key only then: other fits are shared by every run
        return m in view.SLOW_METHODS or source == "run"

    tasks = {m: fit_task(m, source, train_spec, mtime(train_spec), *(run_key if needs_run(m) else ("", 0.0)),
                         run if needs_run(m) else None) for m in methods}
    deadline = time.monotonic() + 3.0  # the fast methods are ready at once; slow fits appear when done
    for task in tasks.values():
        task.wait(deadline - time.monotonic())
    t_key, stem = f"rp_t:{c.data_key}:{pid}", view.table_stem(c.data_key, run.name if run else None)
    if ss.get(t_key) not in times:
        ss[t_key] = view.default_time(times)
    sample_key = f"rp_sample:{stem}:{','.join(methods)}"

    def sample():
        return sample_task(c.data_spec, mtime(c.data_spec), tuple(methods), *run_key, run)

    def pending() -> bool:
        """Work the page waits for: a fit, a sample, the background table."""
        job = view.eval_job_status(c.runs_dir, stem)
        return (any(not t.done for t in tasks.values()) or (bool(ss.get(sample_key)) and not sample().done)
                or (job is not None and job["state"] == "running"))

    def toggle_play() -> None:
        ss["rp_playing"] = not ss.get("rp_playing", False)
        if ss["rp_playing"] and ss[t_key] >= times[-1]:
            ss[t_key] = times[0]

    playing, polling = ss.get("rp_playing", False), pending()

    @st.fragment(run_every=view.POLL_S if polling else None)
    def progress() -> None:
        """Cheap polling while fits, a sample or the background table run: the replay is redrawn
        (one full rerun) only when they finish."""
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
        if polling and not pending():
            st.rerun()

    @st.fragment(run_every=view.TICK_S if playing else None)
    def replay() -> None:
        with _ui.guard("the replay"):
            if ss.get("rp_playing"):
                ss[t_key], finished = view.advance(ss[t_key], times, ss.get("rp_speed", 30))
                ss["rp_playing"] = not finished
            cols = st.columns([1.1, 1.4, 7], vertical_alignment="bottom")
            on = ss.get("rp_playing", False)
            if cols[0].button("Pause" if on else "Play", key="rp_play", on_click=toggle_play,
                              icon=":material/pause:" if on else ":material/play_arrow:"):
                st.rerun()  # the whole page: how often this part reruns follows play/pause
            cols[1].select_slider("Speed", view.SPEEDS, value=30, key="rp_speed", format_func=lambda s: f"{s}x")
            at = cols[2].select_slider("Moment (m:ss from CHARGE)", times, key=t_key, format_func=fmt_mmss)
            fitted = {m: t.result for m, t in tasks.items() if t.done and t.error is None}
            fr = view.frame(fitted, profile, at, view.horizon(kind, value))
            x_max, y_range = view.axes(profile)
            _ui.plotly(forecast_figure(profile, at, fr.forecasts, x_max=x_max, y_range=y_range), "rp_chart",
                       f"roast_{pid}_at_{at}")
            st.dataframe(view.frame_rows(fr, profile), hide_index=True, width="stretch", key="rp_frame",
                         column_config=_ui.column_help(view.FRAME_HELP))
            if any(m in view.SLOW_METHODS for m in methods):
                st.caption(":material/speed: A model generates the rest every frame, about 200 ms on a CPU "
                           "('ms' above): the replay slows down with it. prefix_knn takes milliseconds.")
            methods_table(at)
            if playing and not ss.get("rp_playing"):
                st.rerun()  # playback ended: stop the frames

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

    progress()
    replay()

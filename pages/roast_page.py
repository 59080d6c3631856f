"""Roast in progress: replay a roast and forecast the rest at each moment (roastcore.forecast)."""

from __future__ import annotations

import streamlit as st

from pages import _roast_panel as panel
from pages import _roast_view as view
from pages import _ui
from pages._data_tables import profile_label
from pages._format import fmt_mmss
from pages._state import path_mtime
from roastcore.plotting import forecast_figure

st.header("Roast in progress")
st.caption("Scrub through a roast or press play: at each moment every method forecasts the rest from what was "
           "seen so far, with its 80% band (shaded), first crack (▲) and DROP (■) with their bands (bars); the "
           "real rest is greyed in. Methods are fitted once per dataset and checkpoint; a frame only forecasts.")
c = _ui.ctx()
ss = st.session_state

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
    kind, value, source = panel.horizon_and_source(c, profiles, profile, pid, run, has_lib)
    run_key = (str(run.path), path_mtime(run.path)) if run is not None else ("", 0.0)
    tasks = panel.fit_tasks(c, methods, source, run, run_key)
    t_key, stem = f"rp_t:{c.data_key}:{pid}", view.table_stem(c.data_key, run.name if run else None)
    if ss.get(t_key) not in times:
        ss[t_key] = view.default_time(times)
    sample_key = f"rp_sample:{stem}:{','.join(methods)}"

    def sample():
        return panel.sample_task(c.data_spec, panel.mtime(c.data_spec), tuple(methods), *run_key, run)

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
        panel.progress_notes(c, tasks, sample_key, sample, stem)
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
            _ui.chart(forecast_figure(profile, at, fr.forecasts, x_max=x_max, y_range=y_range), "rp_chart")
            st.dataframe(view.frame_rows(fr, profile), hide_index=True, width="stretch", key="rp_frame",
                         column_config=_ui.column_help(view.FRAME_HELP))
            if any(m in view.SLOW_METHODS for m in methods):
                st.caption(":material/speed: A model generates the rest every frame, about 200 ms on a CPU "
                           "('ms' above): the replay slows down with it. prefix_knn takes milliseconds.")
            panel.methods_table(c, run, avail, stem, sample_key, sample, at)
            if playing and not ss.get("rp_playing"):
                st.rerun()  # playback ended: stop the frames

    progress()
    replay()

"""Experiment setup: a preset, live-edited; parameter count and health band; launch a job."""

from __future__ import annotations

import streamlit as st

from pages import _setup_form as form
from pages import _setup_panel as panel
from pages import _ui

st.header("Experiment setup")
c = _ui.ctx()


def run_name_taken() -> set:
    from roastcore.jobs import JobRunner

    return form.taken_run_names(c.runs_dir, JobRunner(c.runs_dir).list())


with _ui.guard("the experiment setup"):
    from roastcore.experiments import PRESETS

    name = panel.pick_preset(PRESETS)
    preset = PRESETS[name]
    st.caption(f"**{preset.tier}** · {preset.rationale}")
    base = preset.experiment

    overrides, experiment, invalid = form.apply_values(base, panel.settings(base))

    st.markdown("**Run**")
    taken = run_name_taken()
    if not st.session_state.get("set_run_name"):  # a new preset, or the last name was just used
        st.session_state["set_run_name"] = form.readable_run_name(name, taken)
    if "set_seed" not in st.session_state:
        st.session_state["set_seed"] = int(base.train.seed)
    run_cols = st.columns([2, 1, 1])
    run_name = run_cols[0].text_input("Run name", key="set_run_name", max_chars=80,
                                      help="The run directory and the checkpoint's name in the sidebar.").strip()
    device = run_cols[1].segmented_control("Device", list(form.DEVICE_CHOICES), key="set_device",
                                           default="auto", help=form.device_help()) or "auto"
    seed = run_cols[2].number_input("Seed", 0, 2**31 - 1, step=1, key="set_seed",
                                    help="Seeds the weights, the batches and the train/validation split.")
    name_error = form.check_run_name(run_name, taken)
    if name_error:
        st.error(name_error)

    st.divider()
    panel.health(c, experiment, invalid)
    panel.changes(name, base, experiment)
    panel.launch_buttons(c, name, overrides, experiment, run_name, device, seed, name_error)

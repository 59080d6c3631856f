"""Experiment setup: a preset, live-edited; parameter count and health band; launch a job."""

from __future__ import annotations

import json

import streamlit as st

from pages import _setup_form as form
from pages import _sweep_form as sweep_form
from pages import _ui
from pages._format import fmt_count
from roastcore.plotting import health_band_figure

st.header("Experiment setup")
c = _ui.ctx()


@st.cache_data(show_spinner=False, max_entries=256)
def param_count(experiment_json: str) -> int:
    """experiments.preset_parameter_count, cached on the experiment's JSON."""
    from roastcore.experiments import ExperimentConfig, preset_parameter_count

    return preset_parameter_count(ExperimentConfig.from_dict(json.loads(experiment_json)))


def apply_preset() -> None:
    """Load the chosen preset's values (and seed, and a fresh run name) into the widgets."""
    from roastcore.experiments import get_preset

    experiment = get_preset(st.session_state["set_preset"]).experiment
    for key, value in form.preset_values(experiment).items():
        st.session_state[f"set_{key}"] = value
    st.session_state["set_seed"] = int(experiment.train.seed)
    st.session_state.pop("set_run_name", None)


def run_name_taken() -> set:
    from roastcore.jobs import JobRunner

    return form.taken_run_names(c.runs_dir, JobRunner(c.runs_dir).list())


with _ui.guard("the experiment setup"):
    from roastcore import experiments as ex
    from roastcore.batch import STEP_CHOICES_S
    from roastcore.model import MODEL_TYPES, POS_ENCODINGS, TARGET_MODES

    presets = ex.PRESETS
    names = list(presets)
    tiers = {"original": "original", "recovery": "recovery", "added": "fix"}
    if st.session_state.get("set_preset") not in presets:
        st.session_state["set_preset"] = "micro_model" if "micro_model" in presets else names[0]
        apply_preset()
    name = st.selectbox("Preset", names, key="set_preset", on_change=apply_preset,
                        format_func=lambda n: f"{tiers.get(presets[n].tier, presets[n].tier)} · {n}")
    preset = presets[name]
    st.caption(f"**{preset.tier}** · {preset.rationale}")
    base = preset.experiment

    left, right = st.columns(2)
    with left:
        st.markdown("**Model**")
        v = {}
        v["model_type"] = (st.segmented_control("Model type", list(MODEL_TYPES), key="set_model_type")
                           or base.model.model_type)
        v["d_model"] = st.select_slider("d_model", form.slider_options("d_model"), key="set_d_model")
        v["n_layers"] = st.slider("Layers", 1, 12, key="set_n_layers")
        v["n_heads"] = st.select_slider("Attention heads", form.slider_options("n_heads"), key="set_n_heads",
                                        disabled=v["model_type"] == "gru",
                                        help="Transformer only; must divide d_model.")
        v["d_ff"] = st.select_slider("Feed-forward width", form.slider_options("d_ff"), key="set_d_ff",
                                     disabled=v["model_type"] == "gru")
        v["dropout"] = st.slider("Dropout", 0.0, 0.6, step=0.05, key="set_dropout")
        v["pos_encoding"] = st.selectbox("Positional encoding", list(POS_ENCODINGS), key="set_pos_encoding",
                                         disabled=v["model_type"] == "gru")
        v["target_mode"] = st.radio("Target", list(TARGET_MODES), key="set_target_mode", horizontal=True,
                                    help="absolute °F, or the per-step change (residual)")
        v["step_s"] = st.select_slider("Time step (s)", list(STEP_CHOICES_S), key="set_step_s",
                                       help="Coarser steps make shorter sequences: faster training.")
        t1, t2 = st.columns(2)
        v["use_flavors"] = t1.toggle("Flavour conditioning", key="set_use_flavors")
        v["normalize"] = t2.toggle("Normalise temperatures", key="set_normalize",
                                   help="Off feeds raw °F: reproduces the collapse to a constant.")
    with right:
        st.markdown("**Training**")
        v["lr"] = st.select_slider("Learning rate (log scale)", form.slider_options("lr"), key="set_lr",
                                   format_func=lambda x: f"{x:.0e}")
        v["weight_decay"] = st.slider("Weight decay", 0.0, 0.2, step=0.005, key="set_weight_decay", format="%.3f")
        v["epochs"] = st.number_input("Epochs", 1, 1000, step=1, key="set_epochs")
        v["batch_size"] = st.select_slider("Batch size", form.slider_options("batch_size"),
                                           key="set_batch_size")
        v["scheduled_sampling"] = st.selectbox("Scheduled sampling", list(ex.SCHEDULED_SAMPLING),
                                               key="set_scheduled_sampling",
                                               help="Train partly on the model's own predictions (exposure bias).")
        v["ss_max_ratio"] = st.slider("Largest share of own predictions", 0.0, 1.0, step=0.05, key="set_ss_max_ratio",
                                      disabled=v["scheduled_sampling"] == "none")

    overrides, experiment, invalid = form.apply_values(base, v)

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
    cols = st.columns([1, 1, 1, 2])
    if invalid:
        st.error(f"Invalid setting: {invalid}")
    else:
        with st.spinner("Counting parameters…"):
            n_params = param_count(json.dumps(experiment.to_dict(), sort_keys=True))
        n_train, per_sample, band = form.training_health(n_params, len(_ui.load_profiles(c.data_spec)),
                                                         experiment.train.val_frac)
        cols[0].metric("Parameters", fmt_count(n_params))
        cols[1].metric("Training roasts", n_train, help=f"{c.data_label}, {experiment.train.val_frac:.0%} held out")
        cols[2].metric("Params per roast", f"{per_sample:,.0f}", band, delta_color="off")
        with cols[3]:
            st.plotly_chart(health_band_figure(per_sample, ex.HEALTH_BANDS), key="set_health")
        {"healthy": st.success, "high": st.info, "severe": st.warning}.get(band, st.error)(
            f"Health: **{band}**. The prior work's 6.4M-parameter model on ~120 roasts sat near 53,000 "
            "parameters per roast (severe), and collapsed.")

    st.subheader(f"Changes from {name}")
    diff = form.diff_table(base.to_dict(), experiment.to_dict()) if experiment else None
    if diff is None or diff.empty:
        st.caption("None: the preset as is.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch", key="set_diff")

    def launch() -> None:
        from roastcore.jobs import JobError, JobRunner

        # epochs, seed and device travel as submit's own arguments (refused as overrides)
        job_overrides = {k: val for k, val in overrides.items() if k not in ("epochs", "seed")}
        try:
            job = JobRunner(c.runs_dir).submit(name, job_overrides, c.data_spec, epochs=int(experiment.train.epochs),
                                               seed=int(seed), device=device, name=run_name)
        except JobError as exc:
            st.session_state["set_last_job"] = None
            st.session_state["set_launch_error"] = str(exc)
            return
        st.session_state["set_last_job"] = (job.id, job.preset, job.state, job.run_name)
        st.session_state.pop("set_launch_error", None)
        st.session_state.pop("set_run_name", None)  # the next launch gets the next free name

    _ui.submit_button("Launch", "set_launch", launch, disabled=experiment is None or bool(name_error),
                      type="primary",
                      icon=":material/rocket_launch:", help=f"Queue a background training job on {c.data_label}.")
    # Sweep: these settings open the Sweeps page's form, to add a small grid and seeds there.
    if st.button("Launch sweep…", key="set_sweep", disabled=experiment is None,
                 icon=":material/grid_view:", help="Try 2–3 values of d_model, learning rate or "
                 "dropout over several seeds, on the Sweeps page."):
        st.session_state[sweep_form.DRAFT] = sweep_form.draft_from_setup(name, overrides,
                                                                          experiment, device)
        st.switch_page("pages/sweeps_page.py")
    if st.session_state.get("set_launch_error"):
        st.error(st.session_state["set_launch_error"])
    if st.session_state.get("set_last_job"):
        job_id, job_preset, state, job_run = st.session_state["set_last_job"]
        st.success(f"Job **{job_id}** ({job_preset}) is {state}: run **{job_run}**.")
        st.page_link("pages/jobs_page.py", label="Watch it on Training jobs", icon=":material/arrow_forward:")

"""The Experiment setup page's widgets: the settings columns, the health panel, the changes
table and the launch buttons.

Streamlit glue only: values, overrides, names and bands are `pages._setup_form` (no streamlit);
the parameter count is `roastcore.experiments.preset_parameter_count`.
"""

from __future__ import annotations

import json

import streamlit as st

from pages import _setup_form as form
from pages import _sweep_form as sweep_form
from pages import _ui
from pages._format import fmt_count
from roastcore.score_charts import health_band_figure

TIERS = {"original": "original", "recovery": "recovery", "added": "fix"}


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


def pick_preset(presets) -> str:
    """The preset picker (micro_model first time), loading its values into the widgets on change."""
    names = list(presets)
    if st.session_state.get("set_preset") not in presets:
        st.session_state["set_preset"] = "micro_model" if "micro_model" in presets else names[0]
        apply_preset()
    return st.selectbox("Preset", names, key="set_preset", on_change=apply_preset,
                        format_func=lambda n: f"{TIERS.get(presets[n].tier, presets[n].tier)} · {n}")


def settings(base) -> dict:
    """The model and training widgets, two columns; their values by ModelConfig/TrainConfig key."""
    from roastcore import experiments as ex
    from roastcore.batch import STEP_CHOICES_S
    from roastcore.model import MODEL_TYPES, POS_ENCODINGS, TARGET_MODES

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
    return v


def health(c: _ui.Ctx, experiment, invalid: str | None) -> None:
    """Parameters, training roasts, params per roast and its band (or why the settings are invalid)."""
    from roastcore.experiments import HEALTH_BANDS

    cols = st.columns([1, 1, 1, 2])
    if invalid:
        st.error(f"Invalid setting: {invalid}")
        return
    with st.spinner("Counting parameters…"):
        n_params = param_count(json.dumps(experiment.to_dict(), sort_keys=True))
    n_train, per_sample, band = form.training_health(n_params, len(_ui.load_profiles(c.data_spec)),
                                                     experiment.train.val_frac)
    cols[0].metric("Parameters", fmt_count(n_params))
    cols[1].metric("Training roasts", n_train, help=f"{c.data_label}, {experiment.train.val_frac:.0%} held out")
    cols[2].metric("Params per roast", f"{per_sample:,.0f}", band, delta_color="off")
    with cols[3]:
        _ui.chart(health_band_figure(per_sample, HEALTH_BANDS), "set_health")
    {"healthy": st.success, "high": st.info, "severe": st.warning}.get(band, st.error)(
        f"Health: **{band}**. The prior work's 6.4M-parameter model on ~120 roasts sat near 53,000 "
        "parameters per roast (severe), and collapsed.")


def changes(name: str, base, experiment) -> None:
    """What differs from the preset, as a table."""
    st.subheader(f"Changes from {name}")
    diff = form.diff_table(base.to_dict(), experiment.to_dict()) if experiment else None
    if diff is None or diff.empty:
        st.caption("None: the preset as is.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch", key="set_diff")


def launch_buttons(c: _ui.Ctx, name: str, overrides: dict, experiment, run_name: str, device: str,
                   seed: int, name_error: str | None) -> None:
    """Launch (a training job), Launch sweep… (the Sweeps page's form, prefilled) and the outcome."""

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

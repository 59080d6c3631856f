"""Experiment setup: a preset, live-edited; parameter count and health band; launch a job."""

from __future__ import annotations

import json

import streamlit as st

from pages import _ui
from roastcore import views

st.header("Experiment setup")
c = _ui.ctx()

MODEL_KEYS = ("model_type", "d_model", "n_layers", "n_heads", "d_ff", "dropout", "pos_encoding", "use_flavors",
              "normalize", "target_mode", "step_s")
TRAIN_KEYS = ("lr", "weight_decay", "epochs", "batch_size", "scheduled_sampling", "ss_max_ratio")


@st.cache_data(show_spinner=False, max_entries=256)
def param_count(experiment_json: str) -> int:
    """experiments.preset_parameter_count, cached on the experiment's JSON."""
    from roastcore.experiments import ExperimentConfig, preset_parameter_count

    return preset_parameter_count(ExperimentConfig.from_dict(json.loads(experiment_json)))


def apply_preset() -> None:
    """Load the chosen preset's values into the widgets."""
    from roastcore.experiments import get_preset

    exp = get_preset(st.session_state["set_preset"]).experiment
    for key in MODEL_KEYS:
        st.session_state[f"set_{key}"] = getattr(exp.model, key)
    for key in TRAIN_KEYS:
        st.session_state[f"set_{key}"] = getattr(exp.train, key)


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

    every = [p.experiment for p in presets.values()]
    left, right = st.columns(2)
    with left:
        st.markdown("**Model**")
        v = {}
        v["model_type"] = st.segmented_control("Model type", list(MODEL_TYPES), key="set_model_type") or base.model.model_type
        v["d_model"] = st.select_slider("d_model", views.choices_with(
            [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512], *[e.model.d_model for e in every]), key="set_d_model")
        v["n_layers"] = st.slider("Layers", 1, 12, key="set_n_layers")
        v["n_heads"] = st.select_slider("Attention heads", views.choices_with(
            [1, 2, 3, 4, 6, 8, 12, 16], *[e.model.n_heads for e in every]), key="set_n_heads",
            disabled=v["model_type"] == "gru", help="Transformer only; must divide d_model.")
        v["d_ff"] = st.select_slider("Feed-forward width", views.choices_with(
            [32, 64, 128, 256, 512, 1024, 2048], *[e.model.d_ff for e in every]), key="set_d_ff",
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
        v["lr"] = st.select_slider("Learning rate (log scale)", views.choices_with(
            views.LR_CHOICES, *[e.train.lr for e in every]), key="set_lr", format_func=lambda x: f"{x:.0e}")
        v["weight_decay"] = st.slider("Weight decay", 0.0, 0.2, step=0.005, key="set_weight_decay", format="%.3f")
        v["epochs"] = st.number_input("Epochs", 1, 1000, step=1, key="set_epochs")
        v["batch_size"] = st.select_slider("Batch size", views.choices_with(
            [1, 2, 4, 8, 16, 32, 64, 128], *[e.train.batch_size for e in every]), key="set_batch_size")
        v["scheduled_sampling"] = st.selectbox("Scheduled sampling", list(ex.SCHEDULED_SAMPLING),
                                               key="set_scheduled_sampling",
                                               help="Train partly on the model's own predictions (exposure bias).")
        v["ss_max_ratio"] = st.slider("Largest share of own predictions", 0.0, 1.0, step=0.05, key="set_ss_max_ratio",
                                      disabled=v["scheduled_sampling"] == "none")

    overrides = views.overrides_from(base.to_dict(), v)
    try:
        experiment = base.with_overrides(overrides)
        invalid = None
    except ValueError as exc:
        experiment, invalid = None, str(exc)

    st.divider()
    cols = st.columns([1, 1, 1, 2])
    if invalid:
        st.error(f"Invalid setting: {invalid}")
    else:
        with st.spinner("Counting parameters…"):
            n_params = param_count(json.dumps(experiment.to_dict(), sort_keys=True))
        profiles = _ui.load_profiles(c.data_spec)
        n_train = max(1, int(round(len(profiles) * (1 - experiment.train.val_frac))))
        per_sample = n_params / n_train
        band = ex.health_band(per_sample)
        cols[0].metric("Parameters", views.fmt_count(n_params))
        cols[1].metric("Training roasts", n_train, help=f"{c.data_label}, {experiment.train.val_frac:.0%} held out")
        cols[2].metric("Params per roast", f"{per_sample:,.0f}", band, delta_color="off")
        with cols[3]:
            st.plotly_chart(views.health_band_figure(per_sample, ex.HEALTH_BANDS), key="set_health")
        {"healthy": st.success, "high": st.info, "severe": st.warning}.get(band, st.error)(
            f"Health: **{band}**. The prior work's 6.4M-parameter model on ~120 roasts sat near 53,000 "
            "parameters per roast (severe), and collapsed.")

    st.subheader(f"Changes from {name}")
    diff = views.diff_table(base.to_dict(), experiment.to_dict()) if experiment else None
    if diff is None or diff.empty:
        st.caption("None: the preset as is.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch", key="set_diff")

    def launch() -> None:
        from roastcore.jobs import JobRunner

        # epochs travel as submit's own argument (JobRunner refuses them as an override)
        job_overrides = {k: val for k, val in overrides.items() if k != "epochs"}
        job = JobRunner(c.runs_dir).submit(name, job_overrides, c.data_spec, epochs=int(experiment.train.epochs))
        st.session_state["set_last_job"] = (job.id, job.preset, job.state)

    _ui.submit_button("Launch", "set_launch", launch, disabled=experiment is None, type="primary",
                      icon=":material/rocket_launch:", help=f"Queue a background training job on {c.data_label}.")
    if st.session_state.get("set_last_job"):
        job_id, job_preset, state = st.session_state["set_last_job"]
        st.success(f"Job **{job_id}** ({job_preset}) is {state}.")
        st.page_link("pages/jobs_page.py", label="Watch it on Training jobs", icon=":material/arrow_forward:")

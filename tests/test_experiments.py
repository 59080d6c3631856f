"""Experiment configs, --set overrides and the preset registry."""

from __future__ import annotations

import pytest

from roastcore.experiments import (
    PRESETS,
    ExperimentConfig,
    TrainConfig,
    add_preset,
    get_preset,
    health_band,
    preset_table,
)
from roastcore.model import ModelConfig

REQUIRED = {"baseline_sinusoidal", "learned_pe", "rope_pe", "no_flavors", "small_model", "tiny_model",
            "micro_model", "low_lr", "high_dropout", "combined_fix", "no_normalization", "scheduled_sampling",
            "residual_tiny", "gru_baseline"}


def test_required_presets_exist_with_the_prior_settings():
    assert REQUIRED <= set(PRESETS)
    base = get_preset("baseline_sinusoidal").experiment
    assert (base.model.d_model, base.model.n_layers, base.model.n_heads, base.model.d_ff) == (256, 6, 8, 1024)
    assert (base.model.embed_dim, base.model.dropout, base.model.max_len, base.model.step_s) == (32, 0.1, 800, 1.0)
    assert (base.train.lr, base.train.weight_decay, base.train.batch_size, base.train.grad_clip) == (1e-4, 0.01, 8, 1.0)
    assert get_preset("rope_pe").experiment.model.pos_encoding == "rope"
    assert get_preset("no_flavors").experiment.model.use_flavors is False
    assert get_preset("small_model").experiment.model.d_model == 128
    tiny = get_preset("tiny_model").experiment.model
    assert (tiny.d_model, tiny.n_layers, tiny.n_heads, tiny.d_ff) == (64, 3, 4, 256)
    micro = get_preset("micro_model").experiment.model
    assert (micro.d_model, micro.n_layers, micro.n_heads, micro.d_ff) == (32, 2, 2, 128)
    assert get_preset("low_lr").experiment.train.lr == 1e-5
    assert get_preset("high_dropout").experiment.model.dropout == 0.3
    fix = get_preset("combined_fix").experiment
    assert (fix.train.lr, fix.model.dropout, fix.train.weight_decay) == (5e-5, 0.25, 0.05)
    assert get_preset("no_normalization").experiment.model.normalize is False
    assert get_preset("scheduled_sampling").experiment.train.scheduled_sampling != "none"
    assert get_preset("residual_tiny").experiment.model.target_mode == "residual"
    assert get_preset("gru_baseline").experiment.model.model_type == "gru"
    for preset in PRESETS.values():
        assert preset.tier in ("original", "recovery", "added") and preset.rationale
        assert preset.experiment.name == preset.name


def test_unknown_preset_lists_names():
    with pytest.raises(ValueError, match="tiny_model"):
        get_preset("huge_model")


def test_preset_table_counts_and_bands():
    rows = {r["name"]: r for r in preset_table(100)}
    assert set(rows) == set(PRESETS)
    assert rows["baseline_sinusoidal"]["params"] > rows["small_model"]["params"] > rows["tiny_model"]["params"]
    assert rows["tiny_model"]["params"] > rows["micro_model"]["params"]
    assert rows["micro_model"]["params_per_sample"] == pytest.approx(rows["micro_model"]["params"] / 100, abs=0.1)
    assert rows["baseline_sinusoidal"]["health"] in ("severe", "extreme")
    assert health_band(500) == "healthy" and health_band(5_000) == "high" and health_band(60_000) == "extreme"
    with pytest.raises(ValueError):
        preset_table(0)


def test_overrides_parse_by_field_type():
    exp = get_preset("tiny_model").experiment.with_overrides(
        {"d_model": "128", "lr": "1e-3", "normalize": "false", "pos_encoding": "rope", "train.epochs": 7,
         "step_s": "5", "name": "mine"})
    assert exp.model.d_model == 128 and exp.train.lr == 1e-3 and exp.model.normalize is False
    assert exp.model.pos_encoding == "rope" and exp.train.epochs == 7 and exp.model.step_s == 5.0
    assert exp.name == "mine"
    assert get_preset("tiny_model").experiment.model.d_model == 64  # presets are not mutated


@pytest.mark.parametrize("overrides, message", [
    ({"wings": 3}, "unknown setting 'wings'.*d_model.*lr"),
    ({"d_model": "big"}, "d_model.*int"),
    ({"normalize": "maybe"}, "normalize.*bool"),
    ({"n_heads": 3}, "must divide d_model"),
    ({"loss": "huber"}, "TrainConfig.loss"),
    ({"model.lr": 1e-3}, "unknown setting 'model.lr'"),
])
def test_bad_overrides_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_preset("tiny_model").experiment.with_overrides(overrides)


@pytest.mark.parametrize("changes, field", [
    ({"lr": 0}, "lr"), ({"batch_size": 0}, "batch_size"), ({"epochs": 0}, "epochs"), ({"val_frac": 1.0}, "val_frac"),
    ({"scheduled_sampling": "sometimes"}, "scheduled_sampling"), ({"device": "tpu"}, "device"),
    ({"ss_max_ratio": 2.0}, "ss_max_ratio"), ({"rollout_weight": -1.0}, "rollout_weight"), ({"amp": "yes"}, "amp"),
])
def test_train_config_validation(changes, field):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
        TrainConfig(**changes)


def test_experiment_round_trip():
    exp = get_preset("scheduled_sampling").experiment
    assert ExperimentConfig.from_dict(exp.to_dict()) == exp
    with pytest.raises(ValueError, match="unknown keys"):
        ExperimentConfig.from_dict({**exp.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="TrainConfig: unknown keys"):
        ExperimentConfig.from_dict({"name": "x", "model": {}, "train": {"learning_rate": 1}})


def test_adding_a_preset_is_one_line():
    try:
        preset = add_preset("recommended_test", "added", "GRU at 5 s predicting ΔT", model_type="gru",
                            d_model=64, n_layers=2, step_s=5, target_mode="residual", time_conditioning=True,
                            loss="l1", rollout_weight=1.0)
        assert get_preset("recommended_test") is preset
        assert isinstance(preset.experiment.model, ModelConfig) and preset.experiment.model.step_s == 5.0
        assert preset.experiment.train.loss == "l1"
    finally:
        PRESETS.pop("recommended_test", None)

"""Experiment configs and the preset registry.

An `ExperimentConfig` is a name, a `ModelConfig` and a `TrainConfig`; `with_overrides` applies
flat `--set key=value` overrides. Presets reproduce the prior work's tiers (original, recovery)
plus the fixes we add; each carries a tier and a one-line rationale. Adding one is one line:

    add_preset("recommended", "added", "why it exists", model_type="gru", d_model=64, step_s=5)

Params-per-sample health bands (parameters per training profile; a profile is one curve, and
its ~700 steps are strongly correlated, so profiles, not steps, are the independent samples):

    <= 1,000   healthy      the model cannot memorise each curve outright
    <= 10,000  high         usable with dropout / weight decay / early stopping; watch val loss
    <= 50,000  severe       expect memorisation; the prior work's 6.4M on ~120 sat at ~53,000
    >  50,000  extreme
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields

import torch

from roastcore.architectures import build_model
from roastcore.features import CATEGORICAL_FIELDS, FeatureEncoder, TemperatureScaler
from roastcore.fsutil import dataclass_from_dict
from roastcore.model import ModelConfig, count_parameters

LOSSES = ("mse", "l1")
SCHEDULED_SAMPLING = ("none", "linear", "inverse_sigmoid")
DEVICES = ("auto", "cpu", "cuda", "mps")
SELECT_ON = ("val_loss", "val_free_mae")
HEALTH_BANDS = ((1_000, "healthy"), (10_000, "high"), (50_000, "severe"), (float("inf"), "extreme"))


@dataclass
class TrainConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 8
    grad_clip: float = 1.0
    epochs: int = 50
    warmup_frac: float = 0.05
    patience: int = 10  # epochs without val-loss improvement before stopping; 0 = never stop early
    seed: int = 0
    val_frac: float = 0.2
    grouped_split: bool = True
    loss: str = "mse"
    scheduled_sampling: str = "none"
    ss_max_ratio: float = 0.5  # largest share of inputs taken from the model's own predictions
    ss_k: float = 5.0  # inverse-sigmoid steepness, in epochs (Bengio et al. 2015)
    rollout_weight: float = 0.0  # weight of the full free-run loss; 0 = off
    input_noise_f: float = 0.0  # std of Gaussian noise added to input temperatures, °F
    # Which validation number picks the best epoch: the teacher-forced loss, or the MAE of a
    # full free run from the charge (what users get; scored before training too, so a prior
    # model keeps the plain aligned kNN when no epoch beats it).
    select_on: str = "val_loss"
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA; ignored elsewhere
    # A second stage for forecasting a roast in progress (preset `forecast`): epochs of rollouts
    # from random cut points against prefix-kNN priors, run by roastcore.forecast_train after the
    # training from the charge; 0 = none (a charge model). Its epoch 0 is the model as trained.
    forecast_epochs: int = 0
    forecast_lr: float = 3e-4

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"TrainConfig.{name}: {getattr(self, name)!r} {why}")

        for name in ("batch_size", "epochs", "patience", "seed", "forecast_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                bad(name, "must be an integer")
        for name in ("lr", "weight_decay", "grad_clip", "warmup_frac", "val_frac", "ss_max_ratio",
                     "ss_k", "rollout_weight", "input_noise_f", "forecast_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bad(name, "must be a number")
            setattr(self, name, float(value))
        if not 0 < self.lr <= 100:
            bad("lr", "must be in (0, 100]")
        if not 0 <= self.weight_decay <= 10:
            bad("weight_decay", "must be in [0, 10]")
        if not 1 <= self.batch_size <= 4096:
            bad("batch_size", "must be in 1..4096")
        if not self.grad_clip >= 0:
            bad("grad_clip", "must be >= 0 (0 disables clipping)")
        if not 1 <= self.epochs <= 10_000:
            bad("epochs", "must be in 1..10000")
        if not 0 <= self.warmup_frac < 1:
            bad("warmup_frac", "must be in [0, 1)")
        if self.patience < 0:
            bad("patience", "must be >= 0")
        if not 0 < self.val_frac < 1:
            bad("val_frac", "must be in (0, 1)")
        if self.loss not in LOSSES:
            bad("loss", f"is not one of {LOSSES}")
        if self.scheduled_sampling not in SCHEDULED_SAMPLING:
            bad("scheduled_sampling", f"is not one of {SCHEDULED_SAMPLING}")
        if not 0 <= self.ss_max_ratio <= 1:
            bad("ss_max_ratio", "must be in [0, 1]")
        if not self.ss_k >= 1:
            bad("ss_k", "must be >= 1")
        if not 0 <= self.rollout_weight <= 1000:
            bad("rollout_weight", "must be in [0, 1000]")
        if not 0 <= self.input_noise_f <= 100:
            bad("input_noise_f", "must be in [0, 100] °F")
        if not 0 <= self.forecast_epochs <= 1000:
            bad("forecast_epochs", "must be in 0..1000 (0: no forecast stage)")
        if not 0 < self.forecast_lr <= 100:
            bad("forecast_lr", "must be in (0, 100]")
        if self.device not in DEVICES:
            bad("device", f"is not one of {DEVICES}")
        if self.select_on not in SELECT_ON:
            bad("select_on", f"is not one of {SELECT_ON}")
        for name in ("grouped_split", "amp"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return dataclass_from_dict(cls, d, "train")


_MODEL_KEYS = {f.name: f for f in fields(ModelConfig)}
_TRAIN_KEYS = {f.name: f for f in fields(TrainConfig)}
assert not set(_MODEL_KEYS) & set(_TRAIN_KEYS), "flat --set keys must be unambiguous"


@dataclass
class ExperimentConfig:
    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"ExperimentConfig.name: {self.name!r} must be a non-empty string")
        if self.train.forecast_epochs and self.model.prior == "none":
            # The stage corrects prefix-kNN neighbours: only a prior model has a prior input.
            raise ValueError(f"ExperimentConfig {self.name!r}: train.forecast_epochs "
                             f"{self.train.forecast_epochs} needs a prior model (model.prior 'aligned_knn')")

    @property
    def forecasting(self) -> bool:
        """Trained for forecasting a roast in progress (a forecast stage after the charge training)."""
        return self.train.forecast_epochs > 0

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ExperimentConfig:
        if not isinstance(d, dict) or "name" not in d:
            raise ValueError("experiment config must be an object with 'name', 'model' and 'train'")
        unknown = sorted(set(d) - {"name", "model", "train"})
        if unknown:
            raise ValueError(f"experiment config: unknown keys {unknown}")
        try:
            return cls(name=d["name"], model=ModelConfig.from_dict(d.get("model", {})),
                       train=TrainConfig.from_dict(d.get("train", {})))
        except TypeError as exc:  # a value of the wrong JSON type compared or converted
            raise ValueError(f"experiment config: a value has the wrong type ({exc})") from None

    def with_overrides(self, overrides: dict) -> ExperimentConfig:
        """A copy with flat overrides {"d_model": 64, "lr": "1e-3", "model.dropout": 0.2, "name": "x"}.

        String values are parsed by the field's type (CLI `--set key=value`).
        """
        model_changes, train_changes, name = {}, {}, self.name
        for raw_key, value in overrides.items():
            key = raw_key.split(".", 1)[1] if raw_key.startswith(("model.", "train.")) else raw_key
            if key == "name":
                name = str(value)
            elif key in _MODEL_KEYS and not raw_key.startswith("train."):
                model_changes[key] = parse_value(_MODEL_KEYS[key], value)
            elif key in _TRAIN_KEYS and not raw_key.startswith("model."):
                train_changes[key] = parse_value(_TRAIN_KEYS[key], value)
            else:
                raise ValueError(f"unknown setting {raw_key!r}; valid keys: {', '.join(valid_override_keys())}")
        return ExperimentConfig(name=name, model=dataclasses.replace(self.model, **model_changes),
                                train=dataclasses.replace(self.train, **train_changes))


def valid_override_keys() -> list[str]:
    return ["name", *sorted(_MODEL_KEYS), *sorted(_TRAIN_KEYS)]


def parse_value(f: dataclasses.Field, value):
    """Coerce a --set value to the field's declared type (annotations are strings here)."""
    kind = str(f.type).split("|")[0].strip()
    if not isinstance(value, str):
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        if kind == "bool":
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            number = float(text)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"setting {f.name!r}: cannot read {value!r} as {kind}") from None
    return text


# ----------------------------------------------------------------------------- presets
@dataclass
class Preset:
    name: str
    tier: str  # original | recovery | added
    rationale: str
    experiment: ExperimentConfig


# The prior work's base: 6.4M-parameter transformer, raw settings otherwise as published.
BASE = ExperimentConfig(
    name="base",
    model=ModelConfig(model_type="transformer", d_model=256, n_layers=6, n_heads=8, d_ff=1024, embed_dim=32,
                      dropout=0.1, pos_encoding="sinusoidal", use_flavors=True, normalize=True,
                      target_mode="absolute", step_s=1.0, max_len=800),
    train=TrainConfig(lr=1e-4, weight_decay=0.01, batch_size=8, grad_clip=1.0),
)

PRESETS: dict[str, Preset] = {}


def add_preset(name: str, tier: str, rationale: str, base: str | ExperimentConfig = BASE, **overrides) -> Preset:
    """Register a preset: `base` (a preset name or config) plus flat overrides."""
    parent = PRESETS[base].experiment if isinstance(base, str) else base
    experiment = parent.with_overrides({"name": name, **overrides})
    PRESETS[name] = Preset(name=name, tier=tier, rationale=rationale, experiment=experiment)
    return PRESETS[name]


TINY = dict(d_model=64, n_layers=3, n_heads=4, d_ff=256)

add_preset("baseline_sinusoidal", "original", "the prior work's d256 x 6 transformer (6.4M params there, ~4.9M here) with sinusoidal positions")
add_preset("learned_pe", "original", "baseline with learned position embeddings", pos_encoding="learned")
add_preset("rope_pe", "original", "baseline with rotary position embeddings", pos_encoding="rope")
add_preset("no_flavors", "original", "baseline without the flavour projection (does taste text help?)",
           use_flavors=False)
add_preset("small_model", "original", "baseline at d_model 128 (first attempt to shrink)", d_model=128)
add_preset("tiny_model", "recovery", "d64 x 3 layers: ~30x fewer parameters than the baseline", **TINY)
add_preset("micro_model", "recovery", "d32 x 2 layers: the smallest transformer worth training",
           d_model=32, n_layers=2, n_heads=2, d_ff=128)
add_preset("low_lr", "recovery", "d128 x 4 layers with a 10x lower learning rate", d_model=128, n_layers=4, lr=1e-5)
add_preset("high_dropout", "recovery", "d128 x 4 layers with dropout 0.3 against memorisation",
           d_model=128, n_layers=4, dropout=0.3)
add_preset("combined_fix", "recovery", "tiny model with lower lr, more dropout and weight decay",
           **TINY, lr=5e-5, dropout=0.25, weight_decay=0.05)
add_preset("no_normalization", "added", "tiny model fed raw °F: reproduces the collapse to a constant",
           **TINY, normalize=False)
add_preset("scheduled_sampling", "added", "tiny model trained partly on its own predictions (exposure bias fix)",
           **TINY, scheduled_sampling="inverse_sigmoid", ss_max_ratio=0.5)
add_preset("residual_tiny", "added", "tiny model predicting per-step change (ΔT) instead of absolute °F",
           **TINY, target_mode="residual")
add_preset("gru_baseline", "added", "small GRU (d64 x 2) with the same conditioning, a recurrent baseline",
           model_type="gru", d_model=64, n_layers=2, lr=1e-3)

# The recipe that holds up free-running on real data (see RESULTS.md): normalised temperatures,
# residual targets at 5 s steps, the fraction of the roast elapsed, an L1 loss on teacher-forced
# AND full free-run rollouts, the best epoch picked by free-running MAE on a grouped inner
# split, and a correction of the aligned-kNN prior rather than a curve from scratch.
RECIPE = dict(normalize=True, target_mode="residual", step_s=5, max_len=400, time_conditioning=True,
              loss="l1", rollout_weight=3.0, select_on="val_free_mae", batch_size=16, epochs=30, patience=8,
              warmup_frac=0.0, grad_clip=1.0)
add_preset("gru_rollout", "added", "the feasibility study's GRU: d32, residual 5 s steps, time-in-roast, "
           "TF + free-run rollout L1, no prior", model_type="gru", d_model=32, n_layers=1, dropout=0.0,
           embed_dim=4, use_flavors=False, lr=2e-3, weight_decay=0.01, **RECIPE)
add_preset("recommended", "added", "small GRU (d16) correcting the aligned-kNN prior: residual 5 s steps, "
           "time-in-roast, TF + rollout L1, best epoch by free-running MAE", model_type="gru", d_model=16,
           n_layers=1, dropout=0.0, embed_dim=4, use_flavors=False, use_categoricals=False,
           prior="aligned_knn", lr=5e-4, weight_decay=0.05, **{**RECIPE, "epochs": 40})
add_preset("recommended_transformer", "added", "the recommended recipe with a small transformer (d16 x 2) "
           "instead of the GRU", base="recommended", model_type="transformer", d_model=16, n_layers=2,
           n_heads=2, d_ff=64)
# Issue 16: the recommended model trained from the charge, then fine-tuned in the same job on
# rollouts from random cut points, each correcting the prefix kNN's neighbours for that cut
# (roastcore/forecast_train.py). Its run serves `forecast` / the Roast in progress page with the
# prefix-kNN prior; the stage's epoch is picked by the forecast MAE on the run's validation roasts.
add_preset("forecast", "added", "the recommended GRU, then fine-tuned on rollouts from random cut points "
           "against prefix-kNN priors: a model for forecasting a roast in progress", base="recommended",
           forecast_epochs=12, forecast_lr=3e-4)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def health_band(params_per_sample: float) -> str:
    for limit, label in HEALTH_BANDS:
        if params_per_sample <= limit:
            return label
    return HEALTH_BANDS[-1][1]


def reference_encoder():
    """A stand-in encoder (8 values per categorical, 24 flavours) for counting parameters
    before any data is chosen; conditioning is a small share of every preset's size."""
    return FeatureEncoder(vocabs={f: [f"{f}{i}" for i in range(8)] for f in CATEGORICAL_FIELDS},
                          flavor_vocab=[f"flavor{i}" for i in range(24)])


def preset_parameter_count(preset: Preset | ExperimentConfig, encoder=None) -> int:
    experiment = preset.experiment if isinstance(preset, Preset) else preset
    encoder = encoder or reference_encoder()
    with torch.device("meta"):
        model = build_model(experiment.model, encoder, TemperatureScaler(enabled=experiment.model.normalize))
    return count_parameters(model)


def preset_table(n_train_profiles: int, encoder=None) -> list[dict]:
    """One row per preset: name, tier, rationale, params, params per training profile, band."""
    if n_train_profiles < 1:
        raise ValueError(f"n_train_profiles must be >= 1, got {n_train_profiles}")
    rows = []
    for preset in PRESETS.values():
        n = preset_parameter_count(preset, encoder)
        per_sample = n / n_train_profiles
        m = preset.experiment.model
        rows.append({"name": preset.name, "tier": preset.tier, "model_type": m.model_type,
                     "d_model": m.d_model, "n_layers": m.n_layers, "params": n,
                     "params_per_sample": round(per_sample, 1), "health": health_band(per_sample),
                     "rationale": preset.rationale})
    return rows

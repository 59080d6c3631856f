"""Every model architecture by name: build one, and fit the inputs it reads.

`model.py` holds RoastFormer and RoastGRU; `roastformer_v1.py` the original research code's
architecture, with its own encoder and temperature convention. Callers that build or load a
model by its ModelConfig go through here, so no module below needs to know them all.
"""

from __future__ import annotations

import torch

from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.model import (
    MAX_PARAMS,
    ModelConfig,
    RoastFormer,
    RoastGRU,
    RoastModel,
    count_parameters,
)
from roastcore.roastformer_v1 import RoastFormerV1, V1Encoder
from roastcore.roastformer_v1 import fit_inputs as fit_v1_inputs

ARCHITECTURES: dict[str, type[RoastModel]] = {
    "transformer": RoastFormer, "gru": RoastGRU, "roastformer_v1": RoastFormerV1}


def param_bound(cfg: ModelConfig) -> int:
    """A generous bound on the parameter count from the widths alone: every layer at most
    6·d² + 3·d·d_ff + 8·(d + d_ff) weights (attention 4·d² and a feed-forward 2·d·d_ff, or a
    GRU's 6·d²), positions and embeddings at most 2·(max_len + 4096)·max(d, embed_dim)."""
    d, f = cfg.d_model, cfg.d_ff
    return cfg.n_layers * (6 * d * d + 3 * d * f + 8 * (d + f)) + 2 * (cfg.max_len + 4096) * max(d, cfg.embed_dim)


def _refuse_over_cap(n_params: int) -> None:
    if n_params > MAX_PARAMS:
        raise ValueError(f"ModelConfig gives {n_params:,} parameters, over the cap of {MAX_PARAMS:,}; "
                         "reduce d_model, n_layers or d_ff")


def build_model(cfg: ModelConfig, encoder, scaler: TemperatureScaler) -> RoastModel:
    """Build the model for `cfg`; refuses configs over MAX_PARAMS before allocating anything.

    A config that is surely small is built directly; any other is counted on the meta device
    first (exact and allocation-free, but torch's meta kernels import torch._dynamo, ~2 CPU-s
    the first time in a process, which every job, page and test would otherwise pay)."""
    cls = ARCHITECTURES[cfg.model_type]
    if param_bound(cfg) > MAX_PARAMS // 2:  # maybe large: count on the meta device first
        with torch.device("meta"):
            _refuse_over_cap(count_parameters(cls(cfg, encoder, scaler)))
    model = cls(cfg, encoder, scaler)
    _refuse_over_cap(count_parameters(model))
    return model


def fit_inputs(cfg: ModelConfig, train_profiles) -> tuple[FeatureEncoder | V1Encoder, TemperatureScaler]:
    """The encoder and temperature scaler for `cfg`, fitted on the training profiles only."""
    if cfg.model_type == "roastformer_v1":  # the research loaders' inputs and units
        return fit_v1_inputs(cfg, train_profiles)
    return (FeatureEncoder.fit(train_profiles),
            TemperatureScaler.fit(train_profiles, cfg.step_s, enabled=cfg.normalize))


def encoder_from_dict(cfg: ModelConfig, d: dict) -> FeatureEncoder | V1Encoder:
    """A run's encoder.json, read as the encoder type its architecture uses."""
    return (V1Encoder if cfg.model_type == "roastformer_v1" else FeatureEncoder).from_dict(d)

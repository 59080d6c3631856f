"""Model config, shapes, masking, causality, and KV-cached generation == naive re-forward."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from roastcore.architectures import build_model
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.model import (
    MAX_PARAMS,
    ModelConfig,
    RoastFormer,
    RoastGRU,
    count_parameters,
)
from roastcore.prior import PriorLibrary

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = dict(d_model=32, n_layers=2, n_heads=4, d_ff=64, embed_dim=8, dropout=0.0, step_s=10.0, max_len=120)


@pytest.fixture(scope="module")
def fitted(synthetic_profiles):
    profiles = synthetic_profiles[:8]
    return profiles, FeatureEncoder.fit(profiles), TemperatureScaler.fit(profiles, step_s=10.0)


def make_model(fitted, seed=0, weight_std=0.15, **overrides):
    """A small model whose weights are large enough that every output depends on the context
    (default init gives near-constant outputs, which would hide a broken cache)."""
    profiles, encoder, scaler = fitted
    cfg = ModelConfig(**{**SMALL, **overrides})
    if not cfg.normalize:
        scaler = TemperatureScaler(enabled=False)
    torch.manual_seed(seed)
    model = build_model(cfg, encoder, scaler).eval()
    if cfg.prior != "none":
        model.prior_library = PriorLibrary.fit(profiles, tune=False)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, weight_std)
    return model, model.make_batch(profiles)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("changes, message", [
    (dict(d_model=30, n_heads=4), "must divide d_model"),
    (dict(d_model=2048), "d_model"),
    (dict(n_layers=25), "n_layers"),
    (dict(max_len=5000), "max_len"),
    (dict(model_type="lstm"), "model_type"),
    (dict(pos_encoding="alibi"), "pos_encoding"),
    (dict(target_mode="delta"), "target_mode"),
    (dict(step_s=3), "step_s"),
    (dict(dropout=1.0), "dropout"),
    (dict(d_model=12, n_heads=4, pos_encoding="rope"), "RoPE"),
    (dict(normalize="yes"), "normalize"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**changes)


def test_gru_ignores_head_divisibility():
    ModelConfig(model_type="gru", d_model=30, n_heads=4)


def test_parameter_cap_checked_before_allocating(fitted):
    _, encoder, scaler = fitted
    cfg = ModelConfig(d_model=1024, n_layers=6, n_heads=16, d_ff=8192)  # ~120M
    with pytest.raises(ValueError, match=f"{MAX_PARAMS:,}"):
        build_model(cfg, encoder, scaler)


@pytest.mark.parametrize("model_type", ["transformer", "gru", "roastformer_v1"])
@pytest.mark.parametrize("dims", [(8, 1, 32, 20), (64, 3, 96, 200), (128, 4, 512, 800)])
def test_the_fast_build_bound_holds(synthetic_profiles, model_type, dims):
    """build_model skips the meta-device count below a bound from the widths; it must bound."""
    from roastcore.architectures import fit_inputs, param_bound
    from roastcore.model import count_parameters

    d, layers, ff, max_len = dims
    cfg = ModelConfig(model_type=model_type, d_model=d, n_layers=layers, n_heads=4, d_ff=ff, max_len=max_len,
                      use_flavors=True)
    encoder, scaler = fit_inputs(cfg, synthetic_profiles[:8])
    n = count_parameters(build_model(cfg, encoder, scaler))
    assert n <= param_bound(cfg) <= MAX_PARAMS // 2  # built directly, and truly under the cap


def test_config_round_trip_and_unknown_key():
    cfg = ModelConfig(**SMALL)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys.*nhead"):
        ModelConfig.from_dict({**cfg.to_dict(), "nhead": 4})


def test_build_picks_class_and_counts(fitted):
    model, _ = make_model(fitted)
    gru, _ = make_model(fitted, model_type="gru")
    assert isinstance(model, RoastFormer) and isinstance(gru, RoastGRU)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters()) > 0


def test_scaler_must_match_normalize(fitted):
    _, encoder, scaler = fitted
    with pytest.raises(ValueError, match="normalize"):
        build_model(ModelConfig(**SMALL, normalize=False), encoder, scaler)


# ----------------------------------------------------------------------------- teacher forcing
def test_forward_shapes_and_units(fitted):
    model, batch = make_model(fitted)
    B, L = batch.temps_f.shape
    assert model(batch).shape == (B, L - 1)
    pred = model.predict_next_f(batch)
    assert pred.shape == (B, L - 1)
    expected = model.scaler.decode(model(batch))
    torch.testing.assert_close(pred, expected)


def test_residual_prediction_is_input_plus_delta(fitted):
    model, batch = make_model(fitted, target_mode="residual")
    delta_f = model.scaler.decode_delta(model(batch))
    torch.testing.assert_close(model.predict_next_f(batch), batch.temps_f[:, :-1] + delta_f)


def test_loss_ignores_padding(fitted):
    model, batch = make_model(fitted)
    assert not bool(batch.mask.all()), "the fixture batch must be ragged"
    before = model.loss(batch)
    changed = dataclasses.replace(batch, temps_f=torch.where(batch.mask, batch.temps_f, torch.tensor(999.0)))
    after = model.loss(changed)
    torch.testing.assert_close(before, after)
    assert model.loss(batch, kind="l1") > 0


@pytest.mark.parametrize("pe", ["sinusoidal", "learned", "rope"])
def test_transformer_is_causal(fitted, pe):
    model, batch = make_model(fitted, pos_encoding=pe)
    t = 20
    changed = batch.temps_f.clone()
    changed[:, t] += 50.0
    a = model(batch)
    b = model(batch, inputs_f=changed)
    torch.testing.assert_close(a[:, :t], b[:, :t])
    assert (a[:, t] - b[:, t]).abs().max() > 1e-3


def test_unnormalized_model_sees_raw_fahrenheit(fitted):
    model, batch = make_model(fitted, normalize=False)
    assert model.scaler.encode(400.0) == 400.0 and model.scaler.decode(3.0) == 3.0


# ----------------------------------------------------------------------------- generation
CACHE_CASES = [
    dict(pos_encoding="sinusoidal"),
    dict(pos_encoding="learned", target_mode="residual"),
    dict(pos_encoding="rope", time_conditioning=True),
    dict(model_type="gru", target_mode="residual", time_conditioning=True),
    # Prior models: the fused steps fold the prior's gap feature into the token weights.
    dict(model_type="gru", target_mode="residual", time_conditioning=True, prior="aligned_knn"),
    dict(pos_encoding="sinusoidal", target_mode="residual", prior="aligned_knn"),
]


@pytest.mark.parametrize("case", CACHE_CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
@pytest.mark.parametrize("prefix", [1, 4])
def test_kv_cache_matches_naive_reforward(fitted, case, prefix):
    model, batch = make_model(fitted, **case)
    assert len(set(batch.lengths.tolist())) > 1, "rows of different lengths"
    cached = model.generate(batch, prefix_steps=prefix, use_cache=True)
    naive = model.generate(batch, prefix_steps=prefix, use_cache=False)
    assert (cached.raw_f - naive.raw_f).abs().max() < 1e-4
    assert (cached.clamped_f - naive.clamped_f).abs().max() < 1e-4
    assert torch.equal(cached.clamp_active, naive.clamp_active)
    # The generated part moves (a constant curve would make this comparison vacuous).
    assert float(cached.clamped_f[:, prefix:].std()) > 1.0


def test_generation_contract(fitted):
    model, batch = make_model(fitted)
    gen = model.generate(batch, prefix_steps=3, clamp=(250.0, 300.0))
    B, l_max = batch.temps_f.shape
    assert gen.raw_f.shape == gen.clamped_f.shape == gen.clamp_active.shape == (B, l_max)
    torch.testing.assert_close(gen.clamped_f[:, :3], batch.temps_f[:, :3])  # the real prefix
    assert not gen.clamp_active[:, :3].any()
    body = gen.clamped_f[:, 3:][batch.mask[:, 3:]]
    assert float(body.min()) >= 250.0 and float(body.max()) <= 300.0
    outside = (gen.raw_f < 250.0) | (gen.raw_f > 300.0)
    assert torch.equal(gen.clamp_active[:, 3:] & batch.mask[:, 3:], (outside & batch.mask)[:, 3:])
    for row, n in enumerate(batch.lengths.tolist()):  # padding repeats the row's last value
        assert torch.all(gen.clamped_f[row, n:] == gen.clamped_f[row, n - 1])
        assert not gen.clamp_active[row, n:].any()


def test_generation_rows_are_independent_of_batch_mates(fitted):
    model, batch = make_model(fitted, pos_encoding="rope")
    full = model.generate(batch)
    one = model.make_batch(fitted[0][2:3])
    alone = model.generate(one)
    n = int(one.lengths[0])
    assert (full.clamped_f[2, :n] - alone.clamped_f[0, :n]).abs().max() < 1e-3


def test_generate_rejects_bad_arguments(fitted):
    model, batch = make_model(fitted)
    with pytest.raises(ValueError, match="prefix_steps"):
        model.generate(batch, prefix_steps=0)
    with pytest.raises(ValueError, match="clamp"):
        model.generate(batch, clamp=(300.0, 200.0))
    short = make_model(fitted, max_len=40)[0]
    with pytest.raises(ValueError, match="max_len"):
        short.generate(batch)


# ----------------------------------------------------------------------------- rollout
@pytest.mark.parametrize("case", [dict(pos_encoding="rope"), dict(model_type="gru", target_mode="residual")])
def test_rollout_equals_generation_and_teacher_forcing(fitted, case):
    model, batch = make_model(fitted, **case)
    with torch.no_grad():
        ro = model.rollout(batch, prefix_steps=2)
        gen = model.generate(batch, prefix_steps=2)
        forced = model.rollout(batch, feed_real=torch.ones_like(batch.mask))
    mask = batch.mask
    assert ((ro.pred_f - gen.raw_f).abs() * mask).max() < 1e-3
    assert (forced.units - model(batch)).abs().max() < 1e-4


def test_rollout_is_differentiable(fitted):
    model, batch = make_model(fitted, weight_std=0.02)
    model.train()
    ro = model.rollout(batch, prefix_steps=1)
    loss = model.loss(batch, ro.inputs_f, kind="l1", units=ro.units)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    assert ro.inputs_f.requires_grad  # fed-back values carry gradients (full BPTT)

"""The aligned-kNN prior: leave-own-group-out, persistence, and prior models reproducing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roastcore.baselines import AlignedKNN, AlignedKNNParams, curve_1s
from roastcore.dataset import RoastDataset
from roastcore.features import FeatureEncoder
from roastcore.prior import PriorLibrary, profile_prior_steps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def library(synthetic_profiles):
    return PriorLibrary.fit(synthetic_profiles[:30], tune=False)


def test_prior_is_the_aligned_knn_curve(library, synthetic_profiles):
    p = synthetic_profiles[35]
    real = curve_1s(p)
    expected = AlignedKNN(params=library.params).fit(synthetic_profiles[:30]).generate(
        p.meta, float(real[0]), float(real.size - 1))
    np.testing.assert_allclose(library.for_profile(p), expected)


def test_excluding_a_group_equals_a_library_without_it(library, synthetic_profiles):
    p = synthetic_profiles[0]
    others = [q for q in synthetic_profiles[:30] if q.group != p.group]
    assert 0 < len(others) < 30
    without = AlignedKNN(params=AlignedKNNParams(**library.params.__dict__)).fit(others)
    real = curve_1s(p)
    np.testing.assert_allclose(library.for_profile(p, exclude_own_group=True),
                               without.generate(p.meta, float(real[0]), float(real.size - 1)))
    # and it differs from the leaky prior, which has the profile's own curve among its neighbours
    assert np.abs(library.for_profile(p) - library.for_profile(p, exclude_own_group=True)).max() > 0.1


def test_save_load_roundtrip(library, synthetic_profiles, tmp_path):
    library.save(tmp_path)
    assert {f.name for f in tmp_path.iterdir()} == {"prior.safetensors", "prior.json"}
    loaded = PriorLibrary.load(tmp_path)
    assert loaded.params == library.params and loaded.size == library.size
    for p in synthetic_profiles[30:33]:
        np.testing.assert_allclose(loaded.for_profile(p), library.for_profile(p), atol=1e-3)


def test_load_names_missing_file(tmp_path):
    with pytest.raises(ValueError, match="prior"):
        PriorLibrary.load(tmp_path)


def test_dataset_prior_on_the_step_grid(library, synthetic_profiles):
    ps = synthetic_profiles[30:34]
    ds = RoastDataset(ps, FeatureEncoder.fit(ps), step_s=5.0, prior=library)
    batch = ds.full_batch()
    assert batch.prior_f is not None and batch.prior_f.shape == batch.temps_f.shape
    for row, p in enumerate(ps):
        n = int(batch.lengths[row])
        np.testing.assert_allclose(batch.prior_f[row, :n].numpy(), profile_prior_steps(library, p, n), rtol=1e-5)
        assert batch.prior_f[row, 0] == pytest.approx(float(batch.temps_f[row, 0]), abs=1e-3)  # starts at the charge


# ------------------------------------------------------------------ prior models
def _prior_model(profiles, library, model_type="gru"):
    from roastcore.architectures import build_model
    from roastcore.experiments import get_preset
    from roastcore.features import TemperatureScaler

    overrides = {"model_type": model_type, "d_model": 16, "n_layers": 1 if model_type == "gru" else 2, "n_heads": 2}
    cfg = get_preset("recommended").experiment.with_overrides(overrides).model
    model = build_model(cfg, FeatureEncoder.fit(profiles), TemperatureScaler.fit(profiles, cfg.step_s)).eval()
    model.prior_library = library
    return model


@pytest.mark.parametrize("model_type", ["gru", "transformer"])
def test_untrained_prior_model_is_the_aligned_knn(library, synthetic_profiles, model_type):
    from roastcore.generate import ModelGenerator

    train, val = synthetic_profiles[:30], synthetic_profiles[30:36]
    model = _prior_model(train, library, model_type)
    knn = AlignedKNN(params=library.params).fit(train)
    for got, want in zip(ModelGenerator(model).generate_many(val), knn.generate_many(val), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-3)
    # teacher forcing: the prior's own step from the real value
    batch = model.make_batch(val)
    expected = batch.temps_f[:, :-1] + batch.prior_f[:, 1:] - batch.prior_f[:, :-1]
    torch.testing.assert_close(model.predict_next_f(batch), expected)


@pytest.mark.parametrize("model_type", ["gru", "transformer"])
def test_prior_model_cached_generation_matches_full_reforward(library, synthetic_profiles, model_type):
    """With random (non-zero) weights every input column matters, the prior gap included."""
    model = _prior_model(synthetic_profiles[:30], library, model_type)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    batch = model.make_batch(synthetic_profiles[30:34])
    cached = model.generate(batch, prefix_steps=2)
    naive = model.generate(batch, prefix_steps=2, use_cache=False)
    assert (cached.raw_f - naive.raw_f).abs().max() < 1e-4
    assert (cached.raw_f[:, 2:] - batch.prior_f[:, 2:]).abs().max() > 1.0  # it does correct the prior


def test_prior_model_refuses_a_batch_without_prior(library, synthetic_profiles):
    model = _prior_model(synthetic_profiles[:30], library)
    batch = RoastDataset(synthetic_profiles[30:32], model.encoder, 5.0).full_batch()
    with pytest.raises(ValueError, match="prior"):
        model.predict_next_f(batch)


def test_prior_needs_residual_targets():
    from roastcore.model import ModelConfig

    with pytest.raises(ValueError, match="residual"):
        ModelConfig(prior="aligned_knn", target_mode="absolute")


@pytest.mark.slow
def test_trained_run_keeps_its_prior(synthetic_profiles, tmp_path):
    from roastcore.checkpoints import load_run
    from roastcore.evaluate import evaluate_run
    from roastcore.experiments import get_preset
    from roastcore.generate import ModelGenerator, RoastRequest, generate_profile
    from roastcore.train import run_experiment

    exp = get_preset("recommended").experiment.with_overrides({"epochs": 2, "max_len": 200, "device": "cpu"})
    result = run_experiment(exp, synthetic_profiles, run_dir=tmp_path / "run")
    assert result.status == "succeeded" and result.best_epoch is not None  # 0 = the prior itself won
    assert (tmp_path / "run" / "prior.safetensors").is_file()
    loaded = load_run(tmp_path / "run")
    assert loaded.model.prior_library is not None
    # the served library holds every training-side profile (inner validation included)
    assert loaded.model.prior_library.size == len(synthetic_profiles)
    val = synthetic_profiles[:3]
    for a, b in zip(ModelGenerator(loaded.model).generate_many(val), ModelGenerator(result.model).generate_many(val),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    profile = generate_profile(loaded.model, RoastRequest(roast_level="medium", duration_s=660))
    assert profile.duration_s == pytest.approx(660) and profile.finish_f > 350
    report = evaluate_run(tmp_path / "run", synthetic_profiles, use_cache=False)
    assert report.free_run["mae_f"] < 20 and report.teacher_forcing["skill_ratio"] < 1.0


def test_scoring_a_prior_model_on_its_own_library_leaves_the_product_out(library, synthetic_profiles):
    """The served library holds the run's validation roasts; scoring them must not let a
    roast's own curve be its neighbour (that would report the answer as a prediction)."""
    from roastcore.evaluate import teacher_forcing
    from roastcore.generate import ModelGenerator
    from roastcore.metrics import free_run_metrics

    model = _prior_model(synthetic_profiles[:30], library)  # untrained: the model IS its prior
    inside = synthetic_profiles[:6]  # in the library
    curves = ModelGenerator(model).generate_many(inside)
    for p, curve in zip(inside, curves, strict=True):
        np.testing.assert_allclose(curve, library.for_profile(p, exclude_own_group=True), atol=1e-3)
    leaky = [library.for_profile(p) for p in inside]
    assert free_run_metrics(inside, curves, physics=False).mae_f > free_run_metrics(inside, leaky, physics=False).mae_f
    outside = synthetic_profiles[30:33]  # not in the library: nothing to leave out
    assert [library.scoring_exclusion(p) for p in inside] == [p.group for p in inside]
    assert [library.scoring_exclusion(p) for p in outside] == [None] * 3
    for p, curve in zip(outside, ModelGenerator(model).generate_many(outside), strict=True):
        np.testing.assert_allclose(curve, library.for_profile(p), atol=1e-3)
    tf = teacher_forcing(model, inside, model.encoder, 5.0, max_len=model.config.max_len)
    batch = RoastDataset(inside, model.encoder, 5.0, model.config.max_len, prior=library, exclude_own_group=True).full_batch()
    expected = batch.temps_f[:, :-1] + batch.prior_f[:, 1:] - batch.prior_f[:, :-1]
    mask = batch.mask[:, 1:]
    assert tf.mae_f == pytest.approx(float(((expected - batch.temps_f[:, 1:]).abs() * mask).sum() / mask.sum()), rel=1e-4)

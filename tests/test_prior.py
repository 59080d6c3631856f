"""The aligned-kNN prior: leave-own-group-out, persistence, and prior models reproducing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roastcore.baselines import AlignedKNN, AlignedKNNParams, curve_1s
from roastcore.dataset import RoastDataset
from roastcore.features import FeatureEncoder
from roastcore.prior import PriorLibrary, profile_prior_steps


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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

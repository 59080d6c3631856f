import numpy as np
import pytest
import torch

from roastcore.batch import collate
from roastcore.dataset import RoastDataset
from roastcore.features import FeatureEncoder
from roastcore.profile import Profile, ProfileMeta
from roastcore.splits import group_kfold, train_val_split


def _profiles(n=12, per_product=3):
    out = []
    for i in range(n):
        length = 540 + 30 * i
        t = np.arange(length, dtype=float)
        bt = 400.0 - 240.0 * (1 - np.exp(-t / 15.0)) + 0.4 * t
        out.append(Profile(bt=bt, meta=ProfileMeta(product=f"coffee-{i // per_product}", origin="x")))
    return out


def test_collate_pads_with_last_value_and_masks():
    profiles = _profiles(3)
    ds = RoastDataset(profiles, FeatureEncoder.fit(profiles), step_s=5.0)
    batch = collate([ds[0], ds[2]])
    assert batch.temps_f.shape == (2, max(len(ds[0]["temps_f"]), len(ds[2]["temps_f"])))
    n0 = int(batch.lengths[0])
    assert n0 == len(ds[0]["temps_f"]) == int(round(profiles[0].duration_s / 5.0)) + 1
    assert batch.mask[0, :n0].all() and not batch.mask[0, n0:].any()
    assert torch.all(batch.temps_f[0, n0:] == batch.temps_f[0, n0 - 1])
    assert batch.temps_f[0, 0] == pytest.approx(profiles[0].bt[0])


def test_max_len_truncates():
    profiles = _profiles(2)
    ds = RoastDataset(profiles, FeatureEncoder.fit(profiles), step_s=1.0, max_len=100)
    assert ds.full_batch().temps_f.shape == (2, 100)


def test_grouped_split_never_leaks_a_product_and_is_seeded():
    profiles = _profiles(12)
    train, val = train_val_split(profiles, val_frac=0.25, seed=3)
    assert {p.group for p in train}.isdisjoint({p.group for p in val})
    assert len(train) + len(val) == 12 and val
    again = train_val_split(profiles, val_frac=0.25, seed=3)[1]
    assert [p.id for p in val] == [p.id for p in again]


def test_group_kfold_covers_everyone_once_without_leakage():
    profiles = _profiles(12)
    folds = group_kfold(profiles, k=4, seed=0)
    seen = sorted(i for _, val in folds for i in val)
    assert seen == list(range(12))
    for train_idx, val_idx in folds:
        assert {profiles[i].group for i in train_idx}.isdisjoint({profiles[i].group for i in val_idx})
    with pytest.raises(ValueError, match="folds"):
        group_kfold(profiles, k=5)  # only 4 products

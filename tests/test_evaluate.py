"""Evaluation metrics against hand-computed values, on real evaluation code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from roastcore.baselines import CurveGenerator, Persistence
from roastcore.evaluate import (
    free_run_metrics,
    mae_band,
    masked_errors,
    select_split,
    teacher_forcing,
)
from roastcore.features import FeatureEncoder
from roastcore.profile import Profile, ProfileMeta


def drum_curve(charge=425.0, tp_s=80, tp_f=160.0, duration=660, finish=410.0, tau=400.0, noise=0.1, seed=0):
    t = np.arange(duration + 1, dtype=float)
    fall = tp_f + (charge - tp_f) * ((tp_s - t) / tp_s) ** 2
    norm = 1 - np.exp(-(duration - tp_s) / tau)
    rise = tp_f + (finish - tp_f) * (1 - np.exp(-(t - tp_s) / tau)) / norm
    return np.where(t <= tp_s, fall, rise) + np.random.default_rng(seed).normal(0, noise, t.size)


@pytest.fixture(scope="module")
def profiles():
    out = []
    for i in range(6):
        bt = drum_curve(charge=400 + 5 * i, tp_s=70 + 3 * i, duration=600 + 20 * i, seed=i)
        out.append(Profile(bt=bt, meta=ProfileMeta(roast_level="light", product=f"p{i}"), id=f"r{i}"))
    return out


@pytest.fixture(scope="module")
def encoder(profiles):
    return FeatureEncoder.fit(profiles)


def test_masked_errors_match_hand_computed_values():
    pred = [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
    target = [[1.0, 4.0, 3.0], [1.0, 1.0, 9.0]]
    mask = [[True, True, True], [True, True, False]]
    mae, rmse, row_mae, row_rmse = masked_errors(pred, target, mask)
    assert mae == pytest.approx(4 / 5)
    assert rmse == pytest.approx(math.sqrt(6 / 5))
    np.testing.assert_allclose(row_mae, [2 / 3, 1.0])
    np.testing.assert_allclose(row_rmse, [math.sqrt(4 / 3), 1.0])
    with pytest.raises(ValueError, match="shapes differ"):
        masked_errors([[1.0]], [[1.0, 2.0]], [[True, True]])
    with pytest.raises(ValueError, match="no position"):
        masked_errors([[1.0]], [[1.0]], [[False]])


def test_bands():
    assert [mae_band(x) for x in (3, 20, 100, 400)] == ["excellent", "good", "moderate", "poor"]


class Offset:
    """Predicts the real next value plus a constant: MAE and RMSE equal the offset."""

    def __init__(self, offset):
        self.offset = offset

    def predict_next_f(self, batch):
        return batch.temps_f[:, 1:] + self.offset


def test_teacher_forcing_scores_every_masked_position(profiles, encoder):
    result = teacher_forcing(Offset(2.0), profiles, encoder, step_s=1.0)
    assert result.mae_f == pytest.approx(2.0, abs=1e-4)
    assert result.rmse_f == pytest.approx(2.0, abs=1e-4)
    assert result.n_positions == sum(p.n - 1 for p in profiles)  # padding excluded
    assert len(result.per_profile) == len(profiles)
    by_hand = np.mean(np.concatenate([np.abs(np.diff(p.bt)) for p in profiles]))
    assert result.persistence_mae_f == pytest.approx(by_hand, rel=1e-4)
    assert result.persistence_1s_mae_f == pytest.approx(by_hand, rel=1e-6)
    assert result.skill_ratio == pytest.approx(2.0 / by_hand, rel=1e-3)


def test_persistence_is_scored_at_the_model_step(profiles, encoder):
    """At 5 s the persistence error is ~5x larger: the ratio must use the same step."""
    one = teacher_forcing(Persistence(1.0), profiles, encoder, step_s=1.0)
    five = teacher_forcing(Persistence(5.0), profiles, encoder, step_s=5.0)
    assert one.skill_ratio == pytest.approx(1.0)
    assert five.skill_ratio == pytest.approx(1.0)
    assert five.persistence_mae_f > 3 * one.persistence_mae_f
    assert five.persistence_1s_mae_f == pytest.approx(one.persistence_mae_f, rel=1e-4)
    assert five.step_s == 5.0


def test_teacher_forcing_rejects_a_wrong_shape(profiles, encoder):
    class Bad:
        def predict_next_f(self, batch):
            return batch.temps_f

    with pytest.raises(ValueError, match="shape"):
        teacher_forcing(Bad(), profiles, encoder, step_s=1.0)


def test_free_run_metrics_on_an_offset_curve(profiles):
    curves = [p.bt + 5.0 for p in profiles]
    r = free_run_metrics(profiles, curves)
    assert r.mae_f == pytest.approx(5.0)
    assert r.rmse_f == pytest.approx(5.0)
    assert r.finish_mae_f == pytest.approx(5.0)
    assert r.finish_within_10_pct == 100.0
    assert r.tp_time_mae_s == pytest.approx(0.0)
    assert r.tp_temp_mae_f == pytest.approx(5.0)
    assert r.tp_found_pct == 100.0
    assert r.ror_mae_f_per_min == pytest.approx(0.0, abs=1e-9)
    assert r.physics_valid_pct == 100.0
    assert r.error_growth == pytest.approx(1.0)
    assert len(r.error_by_time_f) == 10


def test_free_run_time_shift_finish_and_fcs():
    real = drum_curve(seed=1)
    p = Profile(bt=real, events={"FCs": 600.0}, meta=ProfileMeta(product="x"), id="fc")
    late = np.concatenate([np.full(10, real[0]), real[:-10]])  # the same roast 10 s later
    r = free_run_metrics([p], [late])
    assert r.tp_time_mae_s == pytest.approx(10.0, abs=1)
    assert r.fcs_time_mae_s == pytest.approx(10.0, abs=1)
    row = r.per_profile[0]
    assert row["fcs_time_error_s"] > 0
    assert row["dtr_error_pct"] == pytest.approx(-100 * row["fcs_time_error_s"] / p.duration_s)
    cold = real - 30.0  # never reaches FCs temperature
    r = free_run_metrics([p], [cold])
    assert r.fcs_missed == 1 and r.fcs_time_mae_s is None
    assert r.finish_within_10_pct == 0.0


def test_free_run_excludes_the_real_prefix(profiles):
    p = profiles[0]
    gen = p.bt.copy()
    gen[61:] += 10.0
    r = free_run_metrics([p], [gen], prefix_s=60)
    assert r.mae_f == pytest.approx(10.0)


def test_free_run_rejects_mismatched_lengths(profiles):
    with pytest.raises(ValueError, match="generated"):
        free_run_metrics(profiles[:1], [profiles[0].bt[:-5]])


def test_a_flat_generator_is_far_from_the_data(profiles):
    class Flat(CurveGenerator):
        def generate(self, meta, charge_f, duration_s, prefix=None):
            return np.full(int(round(duration_s)) + 1, 300.0)

    r = free_run_metrics(profiles, Flat().generate_many(profiles))
    assert r.gen_std_f == 0.0 and r.real_std_f > 50
    assert r.mae_f > 50
    assert r.physics_valid_pct == 0.0
    assert all(row["physics_failures"] for row in r.per_profile)


def test_select_split_uses_the_manifest_ids(profiles):
    val, train, label, notes = select_split(profiles, {"val_ids": ["r1", "r4"]}, "val")
    assert [p.id for p in val] == ["r1", "r4"] and len(train) == 4 and label == "val"
    val, train, label, notes = select_split(profiles, {"val_ids": ["elsewhere"]}, "val")
    assert train is None and len(val) == len(profiles) and "differs" in label
    val, train, label, _ = select_split(profiles, {}, "all")
    assert train is None and label == "all"
    with pytest.raises(ValueError, match="no validation ids"):
        select_split(profiles, {}, "val")
    with pytest.raises(ValueError, match="split"):
        select_split(profiles, {}, "test")


def test_teacher_forcing_accepts_a_torch_module(profiles, encoder):
    class Module(torch.nn.Module):
        def predict_next_f(self, batch):
            assert not self.training  # evaluation runs in eval mode
            return batch.temps_f[:, :-1]

    m = Module()
    m.train()
    teacher_forcing(m, profiles, encoder, step_s=2.0)
    assert m.training  # restored

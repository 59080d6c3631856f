"""Baselines: shapes, no leakage from the real curve, alignment, and the ranking on data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from roastcore.baselines import (
    AlignedKNN,
    AlignedKNNParams,
    MeanCurve,
    Persistence,
    PlainKNN,
    apply_start,
    warp_curve,
)
from roastcore.metrics import score_baselines
from roastcore.profile import Profile, ProfileMeta, find_turning_point

LEVELS = {"light": (400.0, 0.9), "medium": (415.0, 1.0), "dark": (430.0, 1.1)}


def drum_curve(charge, tp_s, tp_f, duration, finish, tau, noise=0.1, seed=0):
    t = np.arange(duration + 1, dtype=float)
    fall = tp_f + (charge - tp_f) * ((tp_s - t) / tp_s) ** 2
    norm = 1 - np.exp(-(duration - tp_s) / tau)
    rise = tp_f + (finish - tp_f) * (1 - np.exp(-(t - tp_s) / tau)) / norm
    return np.where(t <= tp_s, fall, rise) + np.random.default_rng(seed).normal(0, noise, t.size)


def roast_set(n=48, seed=0) -> list[Profile]:
    """Drum roasts whose shape follows metadata and length; two batches per product."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = ["light", "medium", "dark"][i % 3]
        finish, stretch = LEVELS[level]
        charge = float(rng.uniform(380, 440))
        duration = int(rng.uniform(540, 840) * stretch)
        tp_s = int(55 + (440 - charge) * 0.6 + rng.normal(0, 4))
        bt = drum_curve(charge, tp_s, 150 + (charge - 380) * 0.3, duration, finish + rng.normal(0, 3),
                        tau=duration * 0.6, seed=seed * 1000 + i)
        meta = ProfileMeta(roast_level=level, process=["washed", "natural"][i % 2], roaster="Drum A",
                           target_finish_f=finish, product=f"coffee-{i // 2}")
        out.append(Profile(bt=bt, meta=meta, id=f"r{i}"))
    return out


@pytest.fixture(scope="module")
def roasts():
    return roast_set()


def test_apply_start_begins_at_charge_and_fades_by_tp():
    curve = np.linspace(400, 200, 101)
    out = apply_start(curve, 420.0, fade_until_s=50)
    assert out[0] == pytest.approx(420.0)
    assert out[25] - curve[25] == pytest.approx(10.0)  # half the 20 °F offset halfway to TP
    np.testing.assert_allclose(out[50:], curve[50:])
    prefix = np.array([430.0, 425.0, 418.0])
    out = apply_start(curve, 430.0, fade_until_s=50, prefix=prefix)
    np.testing.assert_allclose(out[:3], prefix)


def test_warp_lines_up_turning_point_and_end():
    curve = drum_curve(420, 60, 160, 600, 410, 360, noise=0.0)
    warped = warp_curve(curve, 60.0, 801, 90.0)
    assert warped.size == 801
    assert find_turning_point(warped, 1.0)[0] == pytest.approx(90, abs=1)
    assert warped[-1] == pytest.approx(curve[-1])
    np.testing.assert_allclose(warp_curve(curve, 60.0, 601, 60.0), curve, atol=1e-9)


def test_partial_end_warp_continues_the_final_rate_of_rise_or_cuts():
    curve = drum_curve(420, 60, 160, 600, 410, 360, noise=0.0)  # 601 samples
    ror = (curve[-1] - curve[-31]) / 30
    assert 0.05 < ror < 0.5
    longer = warp_curve(curve, 60.0, 801, 90.0, end_warp=0.5)  # stretched to 701, then +100 s of RoR
    assert longer.size == 801
    np.testing.assert_allclose(longer[:701], warp_curve(curve, 60.0, 701, 90.0))
    np.testing.assert_allclose(np.diff(longer[700:]), ror, rtol=0.05)
    assert longer[-1] > curve[-1] + 90 * ror  # a longer roast ends hotter than a stretched one
    shorter = warp_curve(curve, 60.0, 401, 60.0, end_warp=0.5)  # warped to 501 samples, cut at 401
    np.testing.assert_allclose(shorter, warp_curve(curve, 60.0, 501, 60.0)[:401])
    assert shorter[-1] < curve[-1]


def test_end_warp_is_tuned_only_when_the_grid_names_it(roasts):
    from roastcore.prior import PRIOR_GRID

    assert AlignedKNN().fit(roasts[:36]).params.end_warp == 1.0  # the baseline lines up the ends
    tuned = AlignedKNN(grid=PRIOR_GRID).fit(roasts[:36])
    assert tuned.params.end_warp in PRIOR_GRID["end_warp"]
    again = AlignedKNN(grid={**PRIOR_GRID, "end_warp": (1.0,)}).fit(roasts[:36])
    assert tuned.tuning_["cv_mae_f"] <= again.tuning_["cv_mae_f"] + 1e-9


@pytest.mark.parametrize("make", [MeanCurve, lambda: PlainKNN(k=3), lambda: AlignedKNN(AlignedKNNParams(k=3))])
def test_generators_return_the_requested_length(roasts, make):
    gen = make().fit(roasts[:30])
    meta = ProfileMeta(roast_level="dark", process="washed", roaster="Drum A")
    curve = gen.generate(meta, 410.0, 700.4)
    assert curve.shape == (701,)
    assert np.all(np.isfinite(curve))
    if not isinstance(gen, PlainKNN):  # plain kNN is the neighbours' raw average by definition
        assert curve[0] == pytest.approx(410.0)


def test_generation_sees_only_charge_length_and_metadata(roasts):
    """Two requests that agree on charge, length and metadata get the same curve, whatever the real tail."""
    gen = AlignedKNN(AlignedKNNParams(k=3)).fit(roasts[:30])
    a = roasts[40]
    tail_changed = Profile(bt=np.concatenate([a.bt[:1], a.bt[1:] + 25.0]), meta=a.meta, id="other")
    first, second = gen.generate_many([a, tail_changed])
    np.testing.assert_array_equal(first, second)
    with_prefix = gen.generate_many([a], prefix_s=30)[0]
    np.testing.assert_allclose(with_prefix[:31], a.bt[:31])


def test_plain_knn_prefers_matching_metadata_and_charge(roasts):
    gen = PlainKNN(k=1).fit(roasts)
    target = roasts[7]
    curve = gen.generate(target.meta, target.charge_f, target.duration_s)
    np.testing.assert_allclose(curve, target.bt)  # its own curve is the nearest (distance 0)


def test_aligned_knn_tunes_on_training_data_only(roasts):
    gen = AlignedKNN().fit(roasts[:36])
    assert gen.params.k in (3, 4, 5, 8)
    assert gen.tuning_["cv_mae_f"] > 0
    fixed = AlignedKNN(AlignedKNNParams(k=4))
    fixed.fit(roasts[:36])
    assert fixed.params.k == 4 and not hasattr(fixed, "tuning_")


def test_persistence_predicts_the_previous_value(roasts):
    class B:
        temps_f = torch.tensor([[1.0, 2.0, 4.0], [5.0, 5.0, 5.0]])

    np.testing.assert_array_equal(Persistence().predict_next_f(B).numpy(), [[1.0, 2.0], [5.0, 5.0]])


@pytest.mark.slow
def test_aligned_knn_beats_plain_knn_and_mean_curve_on_synthetic_roasts(roasts):
    result = score_baselines(None, roasts, folds=4, seed=0, physics=False)
    assert set(result) == {"mean_curve", "knn", "aligned_knn"}
    assert result["aligned_knn"]["mae_f"] < result["knn"]["mae_f"]
    assert result["aligned_knn"]["mae_f"] < result["mean_curve"]["mae_f"]
    assert len(result["knn"]["fold_mae_f"]) == 4
    assert result["knn"]["rmse_f"] >= result["knn"]["mae_f"]


@pytest.mark.slow
def test_aligned_knn_beats_plain_on_the_simulator(synthetic_profiles):
    result = score_baselines(None, synthetic_profiles, folds=4, seed=0, physics=False)
    assert result["aligned_knn"]["mae_f"] < result["knn"]["mae_f"]


def _onyx(folder):
    try:
        from roastcore.io import read_onyx

        return [read_onyx(p) for p in sorted(folder.glob("*.json"))]
    except ImportError:
        pass
    out = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        m = doc["metadata"]
        meta = ProfileMeta(roast_level=m.get("roast_level"), process=m.get("process"),
                           roaster=m.get("roaster_machine"), target_finish_f=m.get("target_finish_temp"),
                           product=m.get("product_name"))
        out.append(Profile(bt=[p["value"] for p in doc["roast_profile"]["bean_temp"]], meta=meta, id=path.stem))
    return out


@pytest.mark.slow  # five-fold CV over the real onyx-dev roasts
def test_onyx_grouped_cv_figures(onyx_dir):
    """The documented figures (docs/evaluation.md): plain kNN ~7.2 °F, aligned kNN well below."""
    result = score_baselines(None, _onyx(onyx_dir), folds=5, seed=0, physics=False)
    assert 6.0 < result["knn"]["mae_f"] < 8.5
    assert result["aligned_knn"]["mae_f"] < 5.0
    assert result["aligned_knn"]["mae_f"] < result["knn"]["mae_f"] < result["mean_curve"]["mae_f"]

"""The built-in simulator: determinism, physical ranges, feature effects, calibration on onyx-dev."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from roastcore.profile import Profile, rate_of_rise
from roastcore.simulate import (
    CALIBRATION_METRICS,
    FLAVOR_NOTES,
    MACHINES,
    ROAST_LEVELS,
    RoastParams,
    calibration_markdown,
    calibration_table,
    dataset_params,
    generate_dataset,
    roast_stats,
    sample_params,
    simulate_batch,
    simulate_profile,
)


def _nominal(**changes) -> RoastParams:
    return dataclasses.replace(RoastParams(), **changes)


def _run(variants: list[dict], seed: int = 7) -> list[Profile]:
    """The nominal roast with one thing changed per variant, all with the same noise seed."""
    return simulate_batch([_nominal(**v) for v in variants], [seed] * len(variants))


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"machine": "Probat P12"}, "machine"),
        ({"roast_level": "City+"}, "roast_level"),
        ({"moisture_pct": 25.0}, "moisture_pct"),
        ({"density_g_l": float("nan")}, "density_g_l"),
        ({"charge_temp_f": "hot"}, "charge_temp_f"),
        ({"batch_kg": 40.0}, "batch_kg"),
        ({"drop_temp_f": 380.0, "first_crack_f": 400.0}, "drop_temp_f"),
        ({"flavors": "fruity"}, "flavors"),
        ({"product": ""}, "product"),
    ],
)
def test_bad_params_name_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        _nominal(**changes)


def test_sample_params_is_valid_and_seeded():
    a = [sample_params(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    drawn = [sample_params(np.random.default_rng(s)) for s in range(30)]
    assert all(isinstance(p, RoastParams) for p in drawn)
    assert len({p.machine for p in drawn}) > 1 and len({p.roast_level for p in drawn}) > 2


def test_generate_dataset_rejects_bad_n():
    with pytest.raises(ValueError, match="n"):
        generate_dataset(n=0)


# ------------------------------------------------------------------ determinism
def test_same_seed_same_arrays_other_seed_other_arrays(synthetic_profiles):
    again = generate_dataset(n=40, seed=0)
    for a, b in zip(synthetic_profiles, again, strict=True):
        np.testing.assert_array_equal(a.bt, b.bt)
        np.testing.assert_array_equal(a.et, b.et)
        assert a.events == b.events and a.meta == b.meta and a.id == b.id
    other = generate_dataset(n=5, seed=1)
    assert not any(np.array_equal(o.bt[:200], s.bt[:200]) for o in other for s in synthetic_profiles)


def test_a_roast_does_not_depend_on_its_batch_mates():
    params, seeds = dataset_params(12, seed=4)
    together = simulate_batch(params, seeds)
    for i in (0, 5, 11):
        alone = simulate_profile(params[i], seeds[i])
        assert abs(alone.n - together[i].n) <= 1
        m = min(alone.n, together[i].n)
        np.testing.assert_allclose(alone.bt[:m], together[i].bt[:m], atol=0.11)


def test_a_roast_that_never_gets_there_stops_at_the_cap_with_a_warning(caplog):
    stalled = _nominal(machine="Diedrich CR-70", batch_kg=36.0, charge_gas=0.6, roast_level="dark",
                       drop_temp_f=440.0, density_g_l=800.0, moisture_pct=13.5, bean_temp_f=40.0,
                       charge_temp_f=380.0)
    with caplog.at_level("WARNING", logger="roastcore.simulate"):
        p = simulate_profile(stalled, seed=0)
    assert "never reached 440" in caplog.text
    assert p.duration_s == 1200.0 and p.finish_f < 440.0 and "FCs" not in p.events


# ------------------------------------------------------------------ ranges and plausibility
def test_profiles_fall_in_domain_ranges(synthetic_profiles):
    for p in synthetic_profiles:
        ev = p.events
        assert p.interval_s == 1.0 and p.et is not None and p.et.shape == p.bt.shape
        assert 350 <= p.charge_f <= 475
        tp_t, tp_f = p.turning_point()
        assert 130 <= tp_f <= 178 and 35 <= tp_t <= 110, (tp_t, tp_f)
        assert ev["TP"] < ev["DRY_END"] < ev["FCs"] < ev["DROP"] == p.duration_s
        assert ev.get("FCe", ev["FCs"]) >= ev["FCs"] and ev.get("FCe", 0) <= ev["DROP"]
        assert 280 <= p.bt[int(ev["DRY_END"])] <= 345
        assert 383 <= p.bt[int(ev["FCs"])] <= 400
        assert 7.5 * 60 <= p.duration_s <= 17.5 * 60
        # DROP is when BT reaches the intended finish (noise may trip it a few tenths early).
        assert p.meta.target_finish_f - 1.0 <= p.finish_f <= p.meta.target_finish_f + 15.0
        assert 390 <= p.finish_f <= 432
        assert p.duration_s - ev["FCs"] >= ROAST_LEVELS[p.meta.roast_level].min_development_s


def test_curves_are_plausible(synthetic_profiles):
    for p in synthetic_profiles:
        tp = int(p.events["TP"])
        after = p.bt[tp:]
        # Monotone after TP within logger noise, and no jumps.
        assert (np.maximum.accumulate(after) - after).max() <= 1.5
        assert np.abs(np.diff(after)).max() <= 3.0
        ror = rate_of_rise(p.bt, p.interval_s)
        peak = tp + int(np.argmax(ror[tp:]))
        tail = ror[peak:]
        # RoR declines broadly after its peak: no rebound of more than a few °F/min.
        assert (tail - np.minimum.accumulate(tail)).max() <= 4.0
        assert 25 <= ror[peak] <= 75 and 3 <= ror[-1] <= 18
        assert ror[-1] < ror[peak] / 2
        assert peak < p.events["DRY_END"]


def test_metadata_is_filled_and_batches_share_products(synthetic_profiles):
    for p in synthetic_profiles:
        m = p.meta
        for name in ("origin", "process", "variety", "roast_level", "roaster", "altitude_m",
                     "density", "charge_temp_f", "target_finish_f", "product", "batch_id", "weight_g"):
            assert getattr(m, name) is not None, name
        assert m.roaster in MACHINES and m.roast_level in ROAST_LEVELS
        assert 2 <= len(m.flavors) <= 4
        assert m.charge_temp_f == pytest.approx(p.charge_f, abs=2.0)
    per_product = Counter(p.meta.product for p in synthetic_profiles)
    assert 8 <= len(per_product) <= 20 and max(per_product.values()) >= 2
    # Everything a coffee is, its batches share.
    by_product = {}
    for p in synthetic_profiles:
        key = (p.meta.origin, p.meta.process, p.meta.roast_level, p.meta.roaster, p.meta.target_finish_f)
        assert by_product.setdefault(p.meta.product, key) == key
    assert len({p.meta.batch_id for p in synthetic_profiles}) == len(synthetic_profiles)


def test_flavors_follow_roast_level_and_process():
    params, _ = dataset_params(1500, seed=11)  # parameters only: no simulation, fast
    category = {note: cat for cat, notes in FLAVOR_NOTES.items() for note in notes}

    def share(cat, keep):
        chosen = [p for p in params if keep(p)]
        return sum(any(category[f] == cat for f in p.flavors) for p in chosen) / len(chosen)

    light = lambda p: p.roast_level in ("expressive light", "light")  # noqa: E731
    dark = lambda p: p.roast_level in ("expressive dark", "dark")  # noqa: E731
    assert share("fruity", light) > share("fruity", dark) + 0.15
    assert share("chocolate", dark) > share("chocolate", light) + 0.25
    assert share("smoky", light) == 0.0 < share("smoky", dark)
    assert share("fruity", lambda p: "natural" in p.process) > share("fruity", lambda p: p.process == "washed") + 0.1


def test_names_are_canonical_like_the_importers():
    p = _nominal(roast_level="Expressive  Dark", process="Anaerobic Natural", machine="loring s70 peregrine",
                 batch_kg=12.0)
    assert (p.roast_level, p.process, p.machine) == ("expressive dark", "anaerobic natural", "Loring S70 Peregrine")


# ------------------------------------------------------------------ learnable feature effects
def test_darker_levels_drop_hotter_and_later():
    for machine in MACHINES:
        variants = [dict(machine=machine, roast_level=name, drop_temp_f=lv.drop_temp_f,
                         charge_gas=lv.charge_gas, batch_kg=0.9 * MACHINES[machine].nominal_batch_kg,
                         charge_temp_f=MACHINES[machine].charge_temp_f[0] + lv.charge_offset_f)
                    for name, lv in ROAST_LEVELS.items()]
        runs = _run(variants)
        finish = [p.finish_f for p in runs]
        duration = [p.duration_s for p in runs]
        development = [p.duration_s - p.events["FCs"] for p in runs]
        assert np.all(np.diff(finish) > 0), (machine, finish)
        assert np.all(np.diff(duration) > 0), (machine, duration)
        assert development[-1] > 2 * development[0]


def test_denser_beans_dry_slower():
    light, dense = _run([dict(density_g_l=650.0), dict(density_g_l=760.0)])
    assert dense.events["DRY_END"] > light.events["DRY_END"] + 20
    assert dense.bt[300] < light.bt[300] - 3
    assert dense.duration_s > light.duration_s


def test_wetter_beans_dry_slower():
    dry, wet = _run([dict(moisture_pct=9.5), dict(moisture_pct=12.0)])
    assert wet.events["DRY_END"] > dry.events["DRY_END"]
    assert wet.events["FCs"] > dry.events["FCs"] + 30


def test_hotter_charge_gives_higher_turning_point():
    cool, hot = _run([dict(charge_temp_f=390.0), dict(charge_temp_f=440.0)])
    assert hot.charge_f > cool.charge_f + 45
    assert hot.turning_point()[1] > cool.turning_point()[1] + 2
    assert hot.events["FCs"] <= cool.events["FCs"]


def test_machine_sets_probe_lag_and_turning_point():
    runs = _run([dict(machine=m, batch_kg=0.9 * MACHINES[m].nominal_batch_kg,
                      charge_temp_f=MACHINES[m].charge_temp_f[0]) for m in MACHINES])
    tp = {m: p.turning_point() for m, p in zip(MACHINES, runs, strict=True)}
    # The convection roaster's quick probe turns first and lowest; the big drum turns last.
    assert tp["Loring S70 Peregrine"][0] < tp["Diedrich CR-35"][0] < tp["Diedrich CR-70"][0]
    assert tp["Loring S70 Peregrine"][1] < tp["Diedrich CR-35"][1]


def test_heavier_batch_roasts_slower():
    small, big = _run([dict(batch_kg=10.0), dict(batch_kg=15.0)])
    assert big.events["FCs"] > small.events["FCs"] + 30
    assert big.turning_point()[1] < small.turning_point()[1]


# ------------------------------------------------------------------ calibration
def test_calibration_table_shape(synthetic_profiles):
    table = calibration_table(synthetic_profiles[:20], synthetic_profiles[20:])
    assert list(table.index) == list(CALIBRATION_METRICS)
    assert (table["reference"] == "real").all()
    no_marks = [Profile(bt=p.bt) for p in synthetic_profiles[20:]]
    table = calibration_table(synthetic_profiles[:20], no_marks)
    assert table.loc["fcs_temp_f", "reference"] == "domain range"
    assert table.loc["fcs_temp_f", "real_min"] == 385.0
    assert "| fcs_temp_f |" in calibration_markdown(table)
    stats = roast_stats(synthetic_profiles[0])
    assert stats["tp_time_s"] == synthetic_profiles[0].events["TP"]


def test_calibrated_against_onyx(onyx_dir):
    from roastcore.io import read_onyx

    real = [read_onyx(path) for path in sorted(onyx_dir.glob("*.json"))]
    assert len(real) > 50
    synthetic = generate_dataset(n=120, seed=0)
    table = calibration_table(synthetic, real)
    for metric, row in table.iterrows():
        width = row["real_max"] - row["real_min"]
        lo, hi = row["real_min"] - 0.1 * width, row["real_max"] + 0.1 * width
        assert lo <= row["syn_p5"] and row["syn_p95"] <= hi, (metric, row.to_dict())
        if row["reference"] == "real":
            assert row["real_p5"] <= row["syn_p50"] <= row["real_p95"], (metric, row.to_dict())

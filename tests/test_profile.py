"""Profile: validation names the field, unit conversions, derived curves and events."""

from __future__ import annotations

import numpy as np
import pytest

from roastcore.profile import (
    DRY_END_DEFAULT_F,
    Profile,
    ProfileError,
    ProfileMeta,
    c_to_f,
    f_to_c,
    find_turning_point,
    rate_of_rise,
)


def drum_curve(duration_s: int = 600, charge_f: float = 420.0, tp_f: float = 160.0, drop_f: float = 410.0,
               interval_s: float = 1.0) -> np.ndarray:
    """A smooth drum-roast BT: falls from charge to a turning point, then rises to drop."""
    t = np.arange(0.0, duration_s + interval_s / 2, interval_s)
    fall = (charge_f - tp_f) * np.exp(-t / 25.0)
    rise = (drop_f - tp_f) * (1.0 - (1.0 - t / duration_s) ** 1.6)
    return tp_f + fall + rise


def air_curve(duration_s: int = 600) -> np.ndarray:
    """An air roaster: charged near room temperature, rising all the way (no turning point)."""
    t = np.arange(duration_s + 1.0)
    return 75.0 + 350.0 * (1.0 - np.exp(-t / 250.0)) / (1.0 - np.exp(-duration_s / 250.0))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(bt=[400.0]), "bt"),
        (dict(bt=np.r_[drum_curve()[:300], np.nan, drum_curve()[301:]]), "bt"),
        (dict(bt=drum_curve() + 400.0), "bt"),
        (dict(bt=drum_curve(duration_s=60)), "duration"),
        (dict(bt=np.full(4000, 300.0)), "duration"),
        (dict(bt=drum_curve(), interval_s=0.0), "interval_s"),
        (dict(bt=drum_curve(), et=np.full(10, 450.0)), "et"),
        (dict(bt=drum_curve(), et=np.full(601, 2000.0)), "et"),
        (dict(bt=drum_curve(), events={"CRACK": 100.0}), "events"),
        (dict(bt=drum_curve(), events={"FCs": 900.0}), "events"),
        (dict(bt=drum_curve(), events={"FCs": -5.0}), "events"),
    ],
)
def test_validation_error_names_the_field(kwargs, field):
    with pytest.raises(ProfileError, match=field):
        Profile(**kwargs)


def test_profile_error_is_a_value_error():
    assert issubclass(ProfileError, ValueError)


@pytest.mark.parametrize("name", ["charge_temp_f", "target_finish_f", "altitude_m", "density", "weight_g"])
def test_meta_number_fields_reject_text_and_infinity(name):
    with pytest.raises(ProfileError, match=name):
        ProfileMeta(**{name: "hot"})
    with pytest.raises(ProfileError, match=name):
        ProfileMeta(**{name: float("inf")})
    assert getattr(ProfileMeta(**{name: "410.5"}), name) == 410.5


def test_meta_round_trips_through_dict_and_ignores_unknown_keys():
    meta = ProfileMeta(origin="Kenya", flavors=["plum", "tea"], weight_g=200, product="Kenya AA")
    d = meta.to_dict()
    assert d["flavors"] == ["plum", "tea"]
    assert ProfileMeta.from_dict({**d, "not_a_field": 1}) == meta


def test_charge_temp_defaults_to_first_sample():
    p = Profile(bt=drum_curve(charge_f=431.0))
    assert p.meta.charge_temp_f == pytest.approx(431.0)
    assert Profile(bt=drum_curve(), meta=ProfileMeta(charge_temp_f=400.0)).meta.charge_temp_f == 400.0


# ------------------------------------------------------------------ units
def test_unit_conversions_known_points_and_round_trip():
    assert c_to_f(100) == pytest.approx(212.0)
    assert f_to_c(32) == pytest.approx(0.0)
    assert c_to_f(-40) == pytest.approx(-40.0)
    assert isinstance(c_to_f(20), float)
    temps_c = np.linspace(-20, 260, 57)
    assert np.allclose(f_to_c(c_to_f(temps_c)), temps_c)
    assert np.allclose(c_to_f(f_to_c([350.0, 400.0])), [350.0, 400.0])


# ------------------------------------------------------------------ derived curves
def test_ror_of_a_straight_line_is_its_slope():
    t = np.arange(601.0)
    bt = 150.0 + 0.5 * t  # 0.5 °F/s = 30 °F/min
    assert np.allclose(Profile(bt=bt).ror(), 30.0)
    assert np.allclose(rate_of_rise(bt[::2], 2.0, window_s=20, smooth_s=6), 30.0)


def test_ror_has_the_curve_length_and_sign():
    bt = drum_curve()
    ror = rate_of_rise(bt, 1.0)
    assert ror.shape == bt.shape
    assert ror[5] < 0 < ror[400]  # falling after charge, rising mid-roast


def test_turning_point_found_on_a_dip():
    bt = drum_curve(tp_f=160.0)
    found = Profile(bt=bt).turning_point()
    assert found is not None
    t_s, temp_f = found
    assert t_s == float(np.argmin(bt))
    assert temp_f == pytest.approx(bt.min())
    assert 30 < t_s < 150


def test_no_turning_point_for_an_air_roaster():
    assert Profile(bt=air_curve()).turning_point() is None
    assert find_turning_point(air_curve(), 1.0) is None


def test_shallow_dip_is_not_a_turning_point():
    bt = air_curve() + 0.0
    bt[:30] = np.linspace(85.0, 75.0, 30)  # 10 °F sag only
    assert find_turning_point(bt, 1.0) is None


def test_marked_tp_wins_over_detection():
    p = Profile(bt=drum_curve(), events={"TP": 90.0})
    assert p.turning_point()[0] == 90.0
    assert p.event_time("TP") == 90.0


def test_resample_keeps_duration_endpoints_and_events():
    bt = 150.0 + 0.4 * np.arange(601.0)
    p = Profile(bt=bt, et=bt + 60, events={"FCs": 480.0})
    q = p.resample(2.0)
    assert q.interval_s == 2.0 and q.n == 301
    assert q.duration_s == p.duration_s
    assert q.bt[0] == p.bt[0] and q.bt[-1] == p.bt[-1]
    assert np.allclose(q.bt, 150.0 + 0.4 * q.times_s)
    assert np.allclose(q.et - q.bt, 60.0)
    assert q.events == p.events and q.id == p.id
    assert p.resample(1.0) is p


def test_dtr_and_phases():
    p = Profile(bt=drum_curve(), events={"DRY_END": 240.0, "FCs": 480.0})
    assert p.dtr() == pytest.approx(0.2)
    assert p.phases() == {"drying_s": 240.0, "maillard_s": 240.0, "development_s": 120.0}
    assert Profile(bt=drum_curve()).dtr() is None


def test_dry_end_falls_back_to_the_default_temperature():
    p = Profile(bt=drum_curve())
    dry = p.event_time("DRY_END")
    i = int(dry)
    assert p.bt[i] >= DRY_END_DEFAULT_F > p.bt[i - 1]
    assert p.event_time("DROP") == p.duration_s
    assert p.event_time("FCs") is None


def test_fingerprint_identifies_the_curve():
    a, b = Profile(bt=drum_curve()), Profile(bt=drum_curve(), meta=ProfileMeta(origin="Peru"))
    assert a.fingerprint() == b.fingerprint()  # metadata does not change the curve
    assert a.id == a.fingerprint()[:12]
    assert Profile(bt=drum_curve(drop_f=415.0)).fingerprint() != a.fingerprint()
    assert Profile(bt=drum_curve(), interval_s=2.0).fingerprint() != a.fingerprint()

import json

import numpy as np
import pytest
import torch

from roastcore.features import CONTINUOUS_FIELDS, FeatureEncoder, TemperatureScaler
from roastcore.profile import Profile, ProfileMeta


def _curve(charge=420.0, n=600):
    """Starts at the charge temperature, dips to a turning point, then rises."""
    t = np.arange(n, dtype=float)
    return charge - (charge - 150.0) * (1 - np.exp(-t / 15.0)) + 0.45 * t


def _profile(origin="Ethiopia", process="washed", level="light", flavors=("berry",), charge=420.0, **meta):
    return Profile(bt=_curve(charge), meta=ProfileMeta(origin=origin, process=process, roast_level=level,
                                                       flavors=flavors, **meta))


def test_scaler_round_trip_floats_arrays_tensors():
    profiles = [_profile(charge=c) for c in (380.0, 420.0, 460.0)]
    scaler = TemperatureScaler.fit(profiles, step_s=5.0)
    assert 200 < scaler.center < 420 and scaler.scale > 10
    x = np.array([100.0, 250.0, 431.5])
    np.testing.assert_allclose(scaler.decode(scaler.encode(x)), x, atol=1e-9)
    t = torch.tensor([100.0, 250.0, 431.5], dtype=torch.float64)
    torch.testing.assert_close(scaler.decode(scaler.encode(t)), t)
    assert scaler.decode_delta(scaler.encode_delta(3.25)) == pytest.approx(3.25)
    # Normalised units are O(1): that is the whole point.
    assert np.abs(scaler.encode(x)).max() < 5


def test_scaler_disabled_is_identity_and_serialises():
    scaler = TemperatureScaler.fit([_profile()], enabled=False)
    assert scaler.encode(400.0) == 400.0 and scaler.encode_delta(2.0) == 2.0
    again = TemperatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again == scaler


def test_scaler_rejects_bad_values():
    with pytest.raises(ValueError, match="scale"):
        TemperatureScaler(center=0.0, scale=0.0)
    with pytest.raises(ValueError, match="malformed"):
        TemperatureScaler.from_dict({"center": 1})


def test_encoder_unknown_slot_flavors_and_missing_indicators():
    train = [_profile(origin="Ethiopia", altitude_m=1900.0), _profile(origin="Colombia", flavors=("cocoa",))]
    enc = FeatureEncoder.fit(train)
    seen = enc.encode(ProfileMeta(origin="  ethiopia ", flavors=("Berry",), charge_temp_f=420.0), 600.0)
    unseen = enc.encode(ProfileMeta(origin="Mars", flavors=("glitter",)), 600.0)
    assert seen.cat[0] == enc.vocabs["origin"].index("ethiopia") + 1
    assert unseen.cat[0] == 0  # unknown slot, not a crash
    assert seen.flavors.sum() == 1 and unseen.flavors.sum() == 0
    k = len(CONTINUOUS_FIELDS)
    alt = CONTINUOUS_FIELDS.index("altitude_m")
    assert seen.cont[k + alt] == 1.0  # altitude missing -> indicator set, value 0
    assert seen.cont[alt] == 0.0
    assert enc.cat_sizes[0] == 3 and enc.n_cont == 2 * k


def test_encoder_json_round_trip():
    enc = FeatureEncoder.fit([_profile(), _profile(origin="Kenya", process="natural")])
    again = FeatureEncoder.from_dict(json.loads(json.dumps(enc.to_dict())))
    meta = ProfileMeta(origin="Kenya", process="natural", flavors=("berry",))
    a, b = enc.encode(meta, 700.0), again.encode(meta, 700.0)
    np.testing.assert_array_equal(a.cat, b.cat)
    np.testing.assert_allclose(a.cont, b.cont)
    with pytest.raises(ValueError, match="malformed"):
        FeatureEncoder.from_dict({"vocabs": {}})

"""User-facing generation: requests -> Profile -> .alog/.csv/.json, read back by our importers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.generate import ModelGenerator, RoastRequest, export_profile, generate_profile
from roastcore.model import Generation
from roastcore.profile import Profile, ProfileMeta


def _profiles(n=6):
    out = []
    for i in range(n):
        t = np.arange(601, dtype=float)
        bt = np.where(t < 80, 160 + (420 - 160) * ((80 - t) / 80) ** 2, 160 + 0.4 * (t - 80))
        out.append(Profile(bt=bt, meta=ProfileMeta(origin="Kenya", process="washed", roast_level="light",
                                                   product=f"p{i}"), id=f"g{i}"))
    return out


class RampModel(torch.nn.Module):
    """A stand-in with the model's generation interface: dip to 160 °F at 80 s, then +0.4 °F/s."""

    def __init__(self, step_s=5.0, max_len=400):
        super().__init__()
        self.config = SimpleNamespace(step_s=step_s, max_len=max_len)
        self.encoder = FeatureEncoder.fit(_profiles())

    def generate(self, batch, prefix_steps=1, clamp=(100.0, 500.0), use_cache=True):
        n = batch.temps_f.shape[1]
        t = torch.arange(n, dtype=torch.float32) * self.config.step_s
        charge = batch.temps_f[:, :1]
        dip = 160 + (charge - 160) * ((80 - t).clamp(min=0) / 80) ** 2
        curve = torch.where(t < 80, dip, 160 + 0.4 * (t - 80))
        curve[:, :prefix_steps] = batch.temps_f[:, :prefix_steps]
        clamped = curve.clamp(*clamp)
        return Generation(raw_f=curve, clamped_f=clamped, clamp_active=clamped != curve, lengths=batch.lengths)


def test_duration_request_gives_that_length_at_one_second():
    profile = generate_profile(RampModel(), RoastRequest(roast_level="light", charge_temp_f=430, duration_s=600))
    assert profile.interval_s == 1.0 and profile.duration_s == 600
    assert profile.charge_f == pytest.approx(430)
    assert profile.finish_f == pytest.approx(160 + 0.4 * 520, abs=0.5)
    assert profile.meta.roast_level == "light" and profile.meta.charge_temp_f == 430


def test_drop_temperature_searches_the_length_and_cuts_at_the_crossing():
    profile = generate_profile(RampModel(), RoastRequest(charge_temp_f=420, drop_temp_f=380))
    # 160 + 0.4 (t - 80) = 380 at t = 630 s
    assert profile.duration_s == pytest.approx(630, abs=2)
    assert profile.finish_f == pytest.approx(380, abs=1.0)
    assert profile.meta.target_finish_f == 380  # the model is conditioned on the drop target


def test_request_validation_names_the_problem():
    with pytest.raises(ValueError, match="exactly one"):
        RoastRequest(duration_s=600, drop_temp_f=400).validate()
    with pytest.raises(ValueError, match="duration_s"):
        RoastRequest(duration_s=30).validate()
    with pytest.raises(ValueError, match="charge_temp_f"):
        generate_profile(RampModel(), RoastRequest(duration_s=600, charge_temp_f=900))


def test_prefix_is_kept_and_nothing_past_it_reaches_the_model():
    seen = {}

    class Spy(RampModel):
        def generate(self, batch, prefix_steps=1, clamp=(100.0, 500.0), use_cache=True):
            seen["temps"], seen["k"] = batch.temps_f.clone(), prefix_steps
            return super().generate(batch, prefix_steps, clamp, use_cache)

    p = _profiles(1)[0]
    curve = ModelGenerator(Spy()).generate_many([p], prefix_s=30)[0]
    np.testing.assert_allclose(curve[:31], p.bt[:31])
    assert seen["k"] == 7  # 0, 5, ..., 30 s at a 5 s step
    assert torch.all(seen["temps"][0, 7:] == seen["temps"][0, 6])  # the real tail never leaks


@pytest.mark.parametrize("suffix", [".alog", ".csv", ".json"])
def test_generated_profile_round_trips_through_our_importers(tmp_path, suffix):
    from roastcore.io import read_profile

    request = RoastRequest(origin="Kenya", process="washed", roast_level="light", flavors=("berry", "citrus"),
                           charge_temp_f=425, duration_s=660)
    profile = generate_profile(RampModel(), request)
    path = export_profile(profile, tmp_path / f"gen{suffix}")
    back = read_profile(path)
    assert back.duration_s == pytest.approx(profile.duration_s, abs=1.0)
    back_1s = back.resample(1.0).bt
    np.testing.assert_allclose(back_1s[:: 60], profile.bt[:: 60][: back_1s[::60].size], atol=0.6)
    if suffix in (".alog", ".json"):
        assert (back.meta.origin or "").lower() == "kenya"


def test_a_request_in_words():
    request = RoastRequest(origin="Kenya", process="washed", flavors=("berry", "citrus"), duration_s=660)
    assert request.describe() == ("origin Kenya, process washed, flavours berry/citrus, charge training mean, "
                                  "duration 660 s")
    assert RoastRequest(charge_temp_f=420, drop_temp_f=410).describe() == "charge 420 °F, drop at 410 °F"


@pytest.mark.parametrize("suffix", [".alog", ".csv", ".json"])
def test_an_export_of_a_generated_curve_says_so_and_names_model_and_request(tmp_path, suffix):
    import ast
    import dataclasses
    import json

    from roastcore.generate import Provenance
    from roastcore.io import read_profile

    real = _profiles(1)[0]
    real = dataclasses.replace(real, meta=dataclasses.replace(real.meta, product="Ethiopia Guji Natural #7"))
    curve = generate_profile(RampModel(), RoastRequest(duration_s=real.duration_s, charge_temp_f=real.charge_f))
    # What the Compare page exports: a generated curve carrying the real roast's metadata.
    like_real = dataclasses.replace(curve, meta=real.meta)
    provenance = Provenance.for_roast("demo_recommended", real)
    assert "Ethiopia Guji Natural #7" in provenance.request and real.id in provenance.request
    path = export_profile(like_real, tmp_path / f"gen{suffix}", provenance=provenance)
    text = path.read_text(encoding="utf-8")
    if suffix == ".alog":
        doc = ast.literal_eval(text)
        assert doc["title"].startswith("GENERATED by demo_recommended: ")
        for key in ("roastingnotes", "cuppingnotes"):
            notes = doc[key].encode().decode("unicode_escape")
            assert "GENERATED curve, not a real roast: model demo_recommended; request: the metadata" in notes
    elif suffix == ".csv":
        lines = text.splitlines()
        assert lines[0] == "# roastcore GENERATED profile (not a real roast)"
        assert lines[1] == '# generated_model: "demo_recommended"'
        assert lines[2].startswith("# generated_request: ") and real.id in lines[2]
    else:
        doc = json.loads(text)
        assert doc["generated"] == provenance.to_dict()
    back = read_profile(path)  # still a readable profile, no longer the real product
    assert back.meta.product == "generated by demo_recommended"
    assert back.duration_s == pytest.approx(real.duration_s, abs=1.0)
    # Without provenance nothing changes: a real roast's export is a plain profile.
    plain = export_profile(real, tmp_path / f"real{suffix}").read_text(encoding="utf-8")
    assert "GENERATED" not in plain


def test_export_rejects_an_unknown_suffix(tmp_path):
    profile = generate_profile(RampModel(), RoastRequest(duration_s=600))
    with pytest.raises(ValueError, match="suffix"):
        export_profile(profile, tmp_path / "x.txt")


def test_a_real_model_generates_a_valid_profile():
    from roastcore.architectures import build_model
    from roastcore.model import ModelConfig

    profiles = _profiles()
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, embed_dim=4, dropout=0.0, step_s=5.0, max_len=300)
    torch.manual_seed(0)
    model = build_model(cfg, FeatureEncoder.fit(profiles), TemperatureScaler.fit(profiles, 5.0))
    profile = generate_profile(model, RoastRequest(origin="Kenya", charge_temp_f=420, duration_s=700))
    assert profile.duration_s == 700 and profile.charge_f == pytest.approx(420)
    assert np.all((profile.bt >= 100) & (profile.bt <= 500))  # the clamp holds

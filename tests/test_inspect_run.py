"""roastcore.inspect_run against a shipped demo checkpoint: what the dashboard asks of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from roastcore import inspect_run
from roastcore.diagnose import trace_length

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "checkpoints" / "demo_teacher_forced"


@pytest.fixture(scope="module")
def loaded(one_torch_thread):
    if not (DEMO / "model.safetensors").is_file():
        pytest.skip("the shipped demo checkpoint is absent")
    from roastcore.checkpoints import load_run

    return load_run(DEMO)


@pytest.fixture(scope="module")
def profiles():
    from roastcore.io import load_source

    return list(load_source("synthetic").profiles)  # the demos' own data: their val roasts are in it


def test_model_info_and_validation_roasts(loaded, profiles):
    info = inspect_run.run_model_info(loaded)
    assert info["n_params"] == loaded.manifest["param_count"] and info["model"]["d_model"] > 0
    val, label = inspect_run.manifest_validation_profiles(loaded.manifest, profiles)
    assert 0 < len(val) < len(profiles) and label == "val"
    assert {p.id for p in val} <= set(loaded.manifest["split"]["val_ids"])
    # A dataset without the run's roasts: all of it, labelled so.
    others = [p for p in profiles if p.id not in {v.id for v in val}][:3]
    got, label = inspect_run.manifest_validation_profiles(loaded.manifest, others)
    assert got == others and label.startswith("all")


def test_generation_and_export(loaded, profiles):
    val, _ = inspect_run.manifest_validation_profiles(loaded.manifest, profiles)
    [curve] = inspect_run.generate_curves(loaded, val[:1])
    assert curve.shape[0] >= 2 and np.isfinite(curve).all()
    full, step_s = trace_length(loaded.model.config, val[0])
    assert step_s == float(loaded.model.config.step_s) and 1 < full <= loaded.model.config.max_len
    prof = inspect_run.curve_profile(curve, "../run a", like=val[0])
    assert prof.id == "run_a" and prof.meta.origin == val[0].meta.origin and prof.meta.source_file is None
    assert b"," in inspect_run.export_bytes(prof, ".csv")
    assert b"timex" in inspect_run.export_bytes(prof, ".alog")


def test_request_choices_come_from_the_encoder(loaded):
    choices = inspect_run.request_choices(loaded)
    assert set(choices.vocabs) == set(inspect_run.REQUEST_FIELDS)
    assert choices.default_charge_f > 300 and isinstance(choices.flavors, list)


def test_a_short_step_trace_equals_the_full_traces_first_steps(loaded, profiles):
    """The diagnostic page traces only the steps it shows (diagnose.step_trace generates N
    steps): they must equal a full generation's first N steps."""
    from roastcore.diagnose import step_trace, variance_verdict

    val, _ = inspect_run.manifest_validation_profiles(loaded.manifest, profiles)
    full = step_trace(loaded.model, val[0], steps=None).to_dict()
    for n in (10, 37):
        short = step_trace(loaded.model, val[0], steps=n).to_dict()
        assert len(short["rows"]) == n and short["rows"] == full["rows"][:n]
        assert short["clamp_steps"] == [s for s in full["clamp_steps"] if s < n]
        generated = np.array([r["clamped_f"] for r in full["rows"][short["prefix_steps"]:n]])
        assert short["variance_f2"] == pytest.approx(float(np.var(generated)), rel=1e-9)
        assert short["variance_verdict"] == variance_verdict(short["variance_f2"])
    assert len(full["rows"]) > 300  # the whole roast, against the 37 steps above

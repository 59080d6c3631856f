"""Verdicts on deliberately built predictors, fed through the real evaluation code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from roastcore.baselines import CurveGenerator, Persistence, curve_1s
from roastcore.diagnose import (
    DEFAULT_DIAGNOSIS_THRESHOLDS,
    DiagnosisThresholds,
    diagnose_metrics,
    step_trace,
    suggest_preset,
    variance_verdict,
)
from roastcore.evaluate import evaluate_predictor
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.metrics import score_baselines
from roastcore.profile import Profile, ProfileMeta


def drum_curve(charge, tp_s, tp_f, duration, finish, tau, noise=0.1, seed=0):
    t = np.arange(duration + 1, dtype=float)
    fall = tp_f + (charge - tp_f) * ((tp_s - t) / tp_s) ** 2
    norm = 1 - np.exp(-(duration - tp_s) / tau)
    rise = tp_f + (finish - tp_f) * (1 - np.exp(-(t - tp_s) / tau)) / norm
    return np.where(t <= tp_s, fall, rise) + np.random.default_rng(seed).normal(0, noise, t.size)


def roast_set(n=36, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level, finish = [("light", 400.0), ("medium", 415.0), ("dark", 430.0)][i % 3]
        charge = float(rng.uniform(380, 440))
        duration = int(rng.uniform(540, 840))
        bt = drum_curve(charge, int(55 + (440 - charge) * 0.6), 150 + (charge - 380) * 0.3, duration,
                        finish + rng.normal(0, 3), tau=duration * 0.6, seed=i)
        meta = ProfileMeta(roast_level=level, process="washed", roaster="Drum A", target_finish_f=finish,
                           product=f"coffee-{i // 2}")
        out.append(Profile(bt=bt, meta=meta, id=f"r{i}"))
    return out


@pytest.fixture(scope="module")
def setup():
    profiles = roast_set()
    train, val = profiles[:28], profiles[28:]
    encoder = FeatureEncoder.fit(train)
    return train, val, encoder, score_baselines(train, val)


# ---- hand-built predictors: each implements the interface the verdict code consumes ----
class Constant:
    """The raw-°F collapse: the same temperature whatever it is fed."""

    def predict_next_f(self, batch):
        return torch.full_like(batch.temps_f[:, 1:], 300.0)


class ConstantCurve(CurveGenerator):
    def generate(self, meta, charge_f, duration_s, prefix=None):
        return np.full(int(round(duration_s)) + 1, 300.0)


class FlatFromCharge(CurveGenerator):
    """Persistence run free: it never moves from the charge temperature."""

    def generate(self, meta, charge_f, duration_s, prefix=None):
        return np.full(int(round(duration_s)) + 1, charge_f)


class NearTruth:
    """Teacher forcing close to the real next value (well below persistence's error)."""

    def __init__(self, noise_f=0.05, seed=0):
        self.noise_f, self.gen = noise_f, torch.Generator().manual_seed(seed)

    def predict_next_f(self, batch):
        real = batch.temps_f[:, 1:]
        return real + self.noise_f * torch.randn(real.shape, generator=self.gen)


class RealPlus(CurveGenerator):
    """The real curve plus a function of time: drift, or small smooth noise."""

    def __init__(self, extra):
        self.extra = extra

    def generate_many(self, profiles, prefix_s=0.0, progress=None):
        out = []
        for p in profiles:
            real = curve_1s(p)
            curve = real + self.extra(np.arange(real.size, dtype=float))
            curve[0] = real[0]
            out.append(curve)
        return out


def run(setup, predictor, generator):
    train, val, encoder, baselines = setup
    return evaluate_predictor(predictor, generator, val, train, encoder, step_s=1.0, baselines=baselines)


def test_constant_predictor_is_collapsed(setup):
    result = run(setup, Constant(), ConstantCurve())
    d = result["diagnosis"]
    assert d["verdict"] == "collapsed", d
    assert any("near-constant" in e for e in d["evidence"])
    assert d["suggestion"] in ("tiny_model", "micro_model")


def test_persistence_copies_its_input_so_free_running_fails(setup):
    result = run(setup, Persistence(), FlatFromCharge())
    assert result["teacher_forcing"]["skill_ratio"] == pytest.approx(1.0)
    assert result["diagnosis"]["verdict"] == "exposure bias", result["diagnosis"]


def test_drifting_model_is_exposure_bias(setup):
    result = run(setup, NearTruth(), RealPlus(lambda t: 0.08 * t))  # +50 °F by the end
    d = result["diagnosis"]
    assert result["teacher_forcing"]["skill_ratio"] < 1.0
    assert result["free_run"]["error_growth"] > 2.0
    assert d["verdict"] == "exposure bias", d
    assert d["suggestion"] in ("recommended", "scheduled_sampling", "residual_tiny")


def test_good_model_is_healthy(setup):
    wobble = lambda t: 1.0 * np.sin(t / 40.0)  # noqa: E731 - a smooth 1 °F error
    result = run(setup, NearTruth(), RealPlus(wobble))
    d = result["diagnosis"]
    assert result["free_run"]["mae_f"] < result["baselines"]["aligned_knn"]["mae_f"]
    assert d["verdict"] == "healthy", d
    assert d["suggestion"] is None


def test_noisy_teacher_forcing_did_not_learn(setup):
    result = run(setup, NearTruth(noise_f=5.0), RealPlus(lambda t: 0.0 * t))
    assert result["teacher_forcing"]["skill_ratio"] > 2.0
    assert result["diagnosis"]["verdict"] == "did not learn"


def test_thresholds_are_one_table_and_drive_the_verdict():
    tf = {"mae_f": 1.5, "persistence_mae_f": 1.0, "step_s": 1.0}
    free = {"mae_f": 4.0, "gen_std_f": 80.0, "real_std_f": 80.0, "error_growth": 1.0, "physics_valid_pct": 100.0}
    assert diagnose_metrics(tf, free, 4.2).verdict == "healthy"
    strict = DiagnosisThresholds(tf_skill_max=1.2)
    assert diagnose_metrics(tf, free, 4.2, thresholds=strict).verdict == "did not learn"
    assert diagnose_metrics(tf, dict(free, mae_f=5.0), 4.2).verdict == "below baseline"
    assert DEFAULT_DIAGNOSIS_THRESHOLDS.collapse_std_f ** 2 == 100.0  # the prior work's line


TF_FINE = {"mae_f": 1.5, "persistence_mae_f": 1.0, "step_s": 1.0}
FREE_OK = {"mae_f": 4.0, "gen_std_f": 80.0, "real_std_f": 80.0, "error_growth": 1.0, "physics_valid_pct": 100.0}


def test_a_model_that_does_not_beat_the_strongest_baseline_is_not_healthy():
    # The walk's case: 11.3 °F vs aligned kNN 10.8 °F read "healthy", "none needed".
    d = diagnose_metrics(TF_FINE, dict(FREE_OK, mae_f=11.3), 10.8)
    assert d.verdict == "below baseline"
    assert any("not healthy" in e and "0.50 °F worse" in e for e in d.evidence), d.evidence
    assert d.suggestion == "recommended" and "none needed" not in d.suggestion_reason
    # Level with the baseline does not beat it either.
    assert diagnose_metrics(TF_FINE, dict(FREE_OK, mae_f=10.8), 10.8).verdict == "below baseline"
    # The strongest baseline is whichever scores best, not always the aligned kNN.
    d = diagnose_metrics(TF_FINE, FREE_OK, 4.2, baseline_maes={"knn": 3.5, "mean_curve": 9.0})
    assert d.verdict == "below baseline" and d.metrics["strongest_baseline"] == "knn"
    assert "plain kNN 3.5" in d.evidence[0]
    d = diagnose_metrics(TF_FINE, FREE_OK, 4.2, baseline_maes={"knn": 7.0, "mean_curve": 9.0})
    assert d.verdict == "healthy" and "beats the strongest baseline by 0.20 °F" in d.evidence[0]


def test_the_advice_never_repeats_the_run_own_preset():
    d = diagnose_metrics(TF_FINE, dict(FREE_OK, mae_f=11.3), 10.8, preset="recommended")
    assert d.suggestion is None
    assert "already uses recommended" in d.suggestion_reason and "study" in d.suggestion_reason
    drift = dict(FREE_OK, mae_f=30.0, error_growth=3.0)
    assert diagnose_metrics(TF_FINE, drift, 4.0, preset="recommended").suggestion == "scheduled_sampling"
    assert diagnose_metrics(TF_FINE, drift, 4.0).suggestion == "recommended"


@pytest.mark.parametrize("growth, words", [(2.34, "grows 2.3x"), (0.8, "shrinks to 0.8x"),
                                           (1.04, "stays level (1.0x)")])
def test_error_growth_is_worded_by_its_direction(growth, words):
    free = dict(FREE_OK, mae_f=30.0, error_growth=growth)  # exposure bias: the growth line is shown
    d = diagnose_metrics(TF_FINE, free, 4.0)
    assert d.verdict == "exposure bias"
    assert f"free-running error {words} from early-mid roast to the end" in d.evidence


def test_variance_verdict_lines():
    assert variance_verdict(0.5) == "constant output (collapsed)"
    assert variance_verdict(50.0) == "low variation"
    assert variance_verdict(5000.0) == "varying"


def test_suggestions_come_from_the_presets_when_they_exist():
    try:
        from roastcore.experiments import PRESETS
    except ImportError:
        PRESETS = {}
    name = suggest_preset("exposure bias")
    assert name in ("recommended", "scheduled_sampling", "residual_tiny")
    if PRESETS:
        assert name in PRESETS


def _tiny_model(profiles, step_s=5.0, normalize=True):
    from roastcore.architectures import build_model
    from roastcore.model import ModelConfig

    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, embed_dim=4, dropout=0.0,
                      step_s=step_s, max_len=400, normalize=normalize)
    torch.manual_seed(0)
    return build_model(cfg, FeatureEncoder.fit(profiles), TemperatureScaler.fit(profiles, step_s, enabled=normalize))


def test_step_trace_table_of_an_untrained_model():
    profiles = roast_set(6)
    model = _tiny_model(profiles)
    trace = step_trace(model, profiles[0], steps=20)
    assert len(trace.rows) == 20
    row = trace.rows[5]
    assert set(row) == {"step", "time_s", "raw_f", "clamped_f", "real_f", "error_f", "clamped"}
    assert row["time_s"] == pytest.approx(25.0, abs=0.1)
    assert row["real_f"] == pytest.approx(np.interp(row["time_s"], profiles[0].times_s, profiles[0].bt))
    assert row["error_f"] == pytest.approx(row["clamped_f"] - row["real_f"])
    assert trace.rows[0]["clamped_f"] == pytest.approx(profiles[0].bt[0])
    for r in trace.rows:
        assert 100.0 <= r["clamped_f"] <= 500.0
        assert r["clamped"] == (r["raw_f"] != r["clamped_f"])
    assert trace.clamp_steps == [r["step"] for r in trace.rows if r["clamped"]]
    assert trace.variance_verdict == variance_verdict(trace.variance_f2)
    assert "clamped_f" in trace.format_table()
    assert list(trace.to_dataframe().columns)[:3] == ["step", "time_s", "raw_f"]
    with pytest.raises(ValueError, match="at least 10"):
        step_trace(model, profiles[0], steps=5)


def test_step_trace_of_a_raw_degrees_model_shows_the_clamp():
    """Un-normalised: outputs near 0 °F get clamped to 100 °F, a flat (collapsed) sequence."""
    profiles = roast_set(6)
    model = _tiny_model(profiles, normalize=False)
    trace = step_trace(model, profiles[0], steps=30)
    assert trace.clamp_steps  # the clamp held the output up
    assert trace.variance_verdict == "constant output (collapsed)"


def test_step_trace_from_a_real_prefix():
    profiles = roast_set(6)
    model = _tiny_model(profiles)
    trace = step_trace(model, profiles[1], steps=12, prefix_steps=4)
    assert trace.prefix_steps == 4
    for r in trace.rows[:4]:  # the prefix is the real curve, fed as is
        assert r["clamped_f"] == pytest.approx(r["real_f"], abs=1e-3)


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


# The shipped demos and the verdicts (and free-running MAE, °F) checkpoints/README.md documents:
# the same after any refactor of the model, evaluation or diagnosis code.
DEMO_VERDICTS = [
    ("demo_collapsed", "collapsed", 202.9),
    ("demo_teacher_forced", "exposure bias", 93.6),
    ("demo_scheduled_sampling", "exposure bias", 91.9),
    ("demo_recommended", "healthy", 2.59),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, expected, free_mae_f", DEMO_VERDICTS)
def test_demo_checkpoints_get_the_documented_verdict(name, expected, free_mae_f):
    import json

    from roastcore.evaluate import evaluate_run
    from roastcore.io import load_source

    run = REPO / "checkpoints" / name
    if not (run / "model.safetensors").is_file():
        pytest.skip(f"checkpoints/{name} has not been built")
    source = json.loads((run / "manifest.json").read_text()).get("data_source") or "synthetic"
    try:
        profiles = load_source(source).profiles
    except FileNotFoundError:
        pytest.skip(f"{name} was trained on {source}, which is absent here")
    report = evaluate_run(run, profiles, split="val", use_cache=False)  # never write into the repo
    assert report.split == "val" and report.n_profiles == 41
    assert report.diagnosis["verdict"] == expected, report.diagnosis
    assert report.free_run["mae_f"] == pytest.approx(free_mae_f, abs=0.05)

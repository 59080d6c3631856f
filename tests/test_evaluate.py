"""Evaluation metrics against hand-computed values, on real evaluation code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from roastcore.baselines import CurveGenerator, Persistence
from roastcore.evaluate import select_split, teacher_forcing
from roastcore.features import FeatureEncoder
from roastcore.metrics import free_run_metrics, mae_band, masked_errors
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


def test_charge_band_holds_eighty_percent_of_the_errors_and_grows_with_the_time(profiles):
    """The band drawn on Compare curves: per bucket of seconds after the start, the 10th..90th
    percentile of real - generated over the evaluated roasts (the forecast band's rule)."""
    from roastcore.evaluate import charge_band
    from roastcore.forecast_bands import ConformalBands

    rng = np.random.default_rng(0)
    many = [Profile(bt=drum_curve(seed=s), id=f"b{s}") for s in range(40)]
    # Errors that grow with the time since the charge: a roast-wise offset times t / 600.
    offsets = rng.normal(0, 4.0, len(many))
    curves = [p.bt - o * np.arange(p.n) / 600.0 for p, o in zip(many, offsets, strict=True)]
    band = ConformalBands(**charge_band(many, curves))
    assert band.cuts_s == [0.0] and band.n_roasts == [40]
    lo_early, hi_early = band.offsets(0, np.array([20.0]))
    lo_late, hi_late = band.offsets(0, np.array([600.0]))
    assert hi_late[0] - lo_late[0] > 5 * (hi_early[0] - lo_early[0])  # wider as errors grow
    assert lo_late[0] == pytest.approx(np.quantile(offsets, 0.1), abs=0.8)
    assert hi_late[0] == pytest.approx(np.quantile(offsets, 0.9), abs=0.8)
    inside = [lo_late[0] <= o <= hi_late[0] for o in offsets]
    assert 0.7 <= np.mean(inside) <= 0.9
    assert charge_band([], []) is None


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


# ---------------------------------------------------------------- evaluate_run, cache and CLI
def _save_run(run_dir, profiles, val_ids, seed=0):
    from roastcore.architectures import build_model
    from roastcore.checkpoints import save_checkpoint
    from roastcore.experiments import ExperimentConfig
    from roastcore.features import TemperatureScaler
    from roastcore.io import dataset_fingerprint
    from roastcore.model import ModelConfig

    # A 10 s step keeps generation to ~80 steps: these tests check plumbing, not skill.
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, embed_dim=4, dropout=0.0, step_s=10.0, max_len=200)
    train = [p for p in profiles if p.id not in set(val_ids)]
    torch.manual_seed(seed)
    model = build_model(cfg, FeatureEncoder.fit(train), TemperatureScaler.fit(train, cfg.step_s))
    manifest = {"data_source": "synthetic:40", "dataset_fingerprint": dataset_fingerprint(profiles),
                "split": {"val_ids": list(val_ids)}}
    return save_checkpoint(run_dir, model, ExperimentConfig(name="eval-test", model=cfg), manifest=manifest)


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory, synthetic_profiles):
    from roastcore.splits import train_val_split

    _, val = train_val_split(synthetic_profiles, 0.2, seed=0, grouped=True)
    run = _save_run(tmp_path_factory.mktemp("runs") / "tiny", synthetic_profiles, [p.id for p in val])
    return run, synthetic_profiles, val


def test_evaluate_run_reports_every_section_and_caches(run_and_data):
    from roastcore.evaluate import evaluate_run, to_json

    run, profiles, val = run_and_data
    stages = []
    report = evaluate_run(run, profiles, split="val", progress=lambda d, t, s: stages.append((d, t, s)))
    assert report.split == "val" and report.n_profiles == len(val)
    assert report.n_train_profiles == len(profiles) - len(val)
    assert stages[-1][0] == stages[-1][1] == 5
    doc = __import__("json").loads(to_json(report))
    for key in ("mae_f", "rmse_f", "persistence_mae_f"):
        assert doc["teacher_forcing"][key] > 0
    for key in ("mae_f", "rmse_f", "finish_mae_f", "tp_time_mae_s", "physics_valid_pct"):
        assert key in doc["free_run"]
    assert doc["free_run"]["band"]["n_roasts"] == [len(val)]  # the Compare band, from these roasts
    assert doc["baselines"]["aligned_knn"]["k"] >= 1 and doc["baselines"]["knn"]["k"] == 5
    assert doc["baselines"]["mean_curve"]["mae_f"] > 0
    assert doc["diagnosis"]["verdict"] in ("collapsed", "did not learn", "exposure bias", "healthy", "below baseline")
    assert doc["diagnosis"]["evidence"]
    assert doc["teacher_forcing"]["step_s"] == 10.0
    # The same checkpoint, data and options: read back from RUN_DIR/eval_cache.
    again = evaluate_run(run, profiles, split="val")
    assert again.from_cache and again.cache_key == report.cache_key
    assert again.free_run["mae_f"] == pytest.approx(report.free_run["mae_f"])
    assert list((run / "eval_cache").glob("*.json"))
    # Other options or data are other entries.
    from roastcore.evaluate import cache_key

    assert cache_key(run, profiles, "val", 60) != report.cache_key
    assert cache_key(run, profiles[:-1], "val", 0) != report.cache_key


def test_cache_is_invalidated_when_the_checkpoint_changes(run_and_data, tmp_path):
    import shutil

    from roastcore.evaluate import cache_key, evaluate_run

    run, profiles, val = run_and_data
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval_cache"))
    first = evaluate_run(copy, profiles, split="val")
    key_before = cache_key(copy, profiles, "val", 0)
    retrained = _save_run(tmp_path / "retrained", profiles, [p.id for p in val], seed=1)
    shutil.copy(retrained / "model.safetensors", copy / "model.safetensors")
    assert cache_key(copy, profiles, "val", 0) != key_before
    second = evaluate_run(copy, profiles, split="val")
    assert not second.from_cache
    assert second.teacher_forcing["mae_f"] != pytest.approx(first.teacher_forcing["mae_f"])


def test_evaluate_all_on_part_of_the_run_data_fits_baselines_on_the_rest_of_its_training(run_and_data):
    from roastcore.evaluate import evaluate_run
    from roastcore.splits import train_val_split

    run, profiles, val = run_and_data
    train, _ = train_val_split(profiles, 0.2, seed=0, grouped=True)
    report = evaluate_run(run, profiles[:12], split="all", use_cache=False)
    assert report.split == "all" and report.n_profiles == 12
    evaluated = {p.id for p in profiles[:12]}
    seen = sum(p.id in evaluated for p in train)
    # The run's training roasts minus the evaluated ones: no baseline is scored on a roast it holds.
    assert report.baseline_fit["kind"] == "run_training"
    assert report.n_train_profiles == len(train) - seen
    assert f"{seen} of the evaluated roasts are among the model's training roasts" in report.baseline_fit["description"]


def test_evaluate_all_on_the_whole_run_data_says_the_baselines_are_cross_validated(run_and_data):
    from roastcore.evaluate import evaluate_run

    run, profiles, _ = run_and_data
    report = evaluate_run(run, profiles, split="all", use_cache=False)
    assert report.n_train_profiles == 0 and report.baseline_fit["kind"] == "cross_validated"
    text = report.baseline_fit["description"]
    assert "cross-validated" in text and "not like for like" in text and "include" in text
    assert text in report.diagnosis["evidence"] and text in report.notes


# ---------------------------------------------------------------- two disjoint datasets
def _write_folder(folder, profiles):
    from roastcore.io import write_csv

    folder.mkdir(parents=True)
    for p in profiles:
        write_csv(p, folder / f"{p.id}.csv")
    return folder


@pytest.fixture(scope="module")
def disjoint(tmp_path_factory):
    """A run trained (recorded) on folder A, and a second synthetic set B that shares no roast."""
    from roastcore.io import load_source
    from roastcore.simulate import generate_dataset
    from roastcore.splits import train_val_split

    root = tmp_path_factory.mktemp("disjoint")
    folder = _write_folder(root / "A", generate_dataset(n=30, seed=0))
    data_a = load_source(str(folder)).profiles
    other = generate_dataset(n=14, seed=5)
    assert not {p.fingerprint() for p in data_a} & {p.fingerprint() for p in other}
    train_a, val_a = train_val_split(data_a, 0.2, seed=0, grouped=True)
    run = _save_run(root / "run", data_a, [p.id for p in val_a])
    manifest_path = run / "manifest.json"
    manifest = __import__("json").loads(manifest_path.read_text())
    manifest["data_source"] = str(folder)
    manifest_path.write_text(__import__("json").dumps(manifest))
    return run, folder, train_a, other


def test_evaluate_on_other_data_fits_the_baselines_on_the_run_training_data(disjoint):
    from roastcore.evaluate import evaluate_run
    from roastcore.metrics import score_baselines

    run, folder, train_a, other = disjoint
    report = evaluate_run(run, other, split="all", use_cache=False)
    assert report.split == "all" and report.n_profiles == len(other)
    assert report.baseline_fit["kind"] == "run_training"
    assert report.n_train_profiles == report.baseline_fit["n_profiles"] == len(train_a)
    assert report.baseline_fit["source"] == str(folder)
    text = report.baseline_fit["description"]
    assert "fitted on the run's training data" in text and str(folder) in text
    assert text in report.diagnosis["evidence"]
    # Exactly the baselines fitted on the run's training split, not cross-validated inside `other`.
    fair = score_baselines(train_a, other)
    assert report.baselines["aligned_knn"]["mae_f"] == pytest.approx(fair["aligned_knn"]["mae_f"], rel=1e-9)
    assert report.baselines["mean_curve"]["mae_f"] == pytest.approx(fair["mean_curve"]["mae_f"], rel=1e-9)
    cv = score_baselines(None, other)
    assert report.baselines["aligned_knn"]["mae_f"] != pytest.approx(cv["aligned_knn"]["mae_f"], rel=1e-6)


def test_cli_evaluate_on_other_data_says_where_the_baselines_were_fitted(disjoint, tmp_path, capsys):
    from roastcore.cli import main

    run, folder, train_a, other = disjoint
    data_b = _write_folder(tmp_path / "B", other)
    assert main(["evaluate", "--checkpoint", str(run), "--data", str(data_b), "--split", "all", "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert f"baselines fitted on the run's training data ({len(train_a)} roasts of {folder})" in text


def test_val_split_on_other_data_also_uses_the_run_training_data(disjoint):
    from roastcore.evaluate import evaluate_run

    run, _, train_a, other = disjoint
    report = evaluate_run(run, other, split="val", use_cache=False)  # no validation id is in `other`
    assert report.split == "all (data differs from the run's)"
    assert report.baseline_fit["kind"] == "run_training" and report.n_train_profiles == len(train_a)


def test_when_the_training_data_is_gone_the_evidence_says_which_comparison_was_made(disjoint, tmp_path):
    import shutil

    from roastcore.evaluate import evaluate_run

    run, folder, train_a, other = disjoint
    moved = tmp_path / "A-elsewhere"
    shutil.move(str(folder), str(moved))
    try:
        report = evaluate_run(run, other, split="all", use_cache=False)
    finally:
        shutil.move(str(moved), str(folder))
    fit = report.baseline_fit
    assert fit["kind"] == "cross_validated" and report.n_train_profiles == 0
    assert "not fitted on the run's training data" in fit["description"]
    assert "cannot be read" in fit["description"] and str(folder) in fit["description"]
    assert fit["description"] in report.diagnosis["evidence"]


def test_a_changed_data_source_is_not_taken_for_the_training_data(disjoint):
    from roastcore.evaluate import evaluate_run
    from roastcore.io import write_csv

    run, folder, _, other = disjoint
    extra = folder / "extra.csv"
    write_csv(other[0], extra)
    try:
        report = evaluate_run(run, other[1:], split="all", use_cache=False)
    finally:
        extra.unlink()
    assert report.baseline_fit["kind"] == "cross_validated"
    assert "no longer holds the roasts it trained on" in report.baseline_fit["description"]


def test_a_prior_model_falls_back_to_its_library(tmp_path):
    from roastcore.architectures import build_model
    from roastcore.checkpoints import save_checkpoint
    from roastcore.evaluate import evaluate_run, library_profiles
    from roastcore.experiments import ExperimentConfig
    from roastcore.features import TemperatureScaler
    from roastcore.io import dataset_fingerprint
    from roastcore.model import ModelConfig
    from roastcore.prior import PriorLibrary
    from roastcore.simulate import generate_dataset

    data = generate_dataset(n=20, seed=0)
    other = generate_dataset(n=10, seed=5)
    cfg = ModelConfig(model_type="gru", d_model=8, n_layers=1, embed_dim=4, dropout=0.0, step_s=10.0,
                      max_len=200, target_mode="residual", prior="aligned_knn")
    torch.manual_seed(0)
    model = build_model(cfg, FeatureEncoder.fit(data), TemperatureScaler.fit(data, cfg.step_s))
    model.prior_library = PriorLibrary.fit(data, tune=False)
    manifest = {"data_source": str(tmp_path / "gone"), "dataset_fingerprint": dataset_fingerprint(data),
                "split": {"val_ids": [data[0].id]}}
    run = save_checkpoint(tmp_path / "prior-run", model, ExperimentConfig(name="prior-test", model=cfg),
                          manifest=manifest)
    lib = library_profiles(model.prior_library)
    assert [p.fingerprint() for p in lib] == [p.fingerprint() for p in data]  # the curves, exactly
    report = evaluate_run(run, other, split="all", use_cache=False)
    assert report.baseline_fit["kind"] == "prior_library" and report.n_train_profiles == len(data)
    assert "prior library" in report.baseline_fit["description"]
    assert "cannot be read" in report.baseline_fit["description"]


# ---------------------------------------------------------------- stored scores
@pytest.fixture
def run_copy(run_and_data, tmp_path):
    """A private copy of the module's run (scoring writes into it)."""
    import shutil

    run, profiles, val = run_and_data
    copy = tmp_path / "runs" / "scored"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval_cache", "scores.json"))
    with open(copy / "metrics.jsonl", "a") as fh:  # a last epoch whose TF MAE differs from the evaluation's
        fh.write('{"epoch": 1, "val_loss": 1.0, "val_tf_mae_f": 99.0}\n')
    return copy, profiles, val


def test_score_stores_the_run_report_and_the_pages_only_read_it(run_copy, capsys):
    from roastcore.checkpoints import list_runs
    from roastcore.cli import main
    from roastcore.evaluate import evaluate_run, needs_scoring, stored_report

    run, profiles, val = run_copy
    assert stored_report(run) is None and needs_scoring(run)
    before = list_runs(run.parent)[0]
    assert (before.tf_mae_f, before.tf_mae_from) == (99.0, "last epoch")

    # No --data: the run's recorded data source (synthetic:40), verified by its fingerprint.
    assert main(["score", "--checkpoint", str(run)]) == 0
    captured = capsys.readouterr()
    assert "stored in" in captured.out and "[5/5]" in captured.err
    doc = __import__("json").loads((run / "scores.json").read_text())
    assert doc["cost_s"] > 0 and doc["data_source"] == "synthetic:40" and doc["summary"]["split"] == "val"
    stored = stored_report(run)
    assert stored is not None and stored.from_cache and not needs_scoring(run)
    assert stored.split == "val" and stored.n_profiles == len(val)
    assert stored.baseline_fit["kind"] == "run_training"
    assert stored.n_train_profiles == len(profiles) - len(val)

    # The sidebar's number is the evaluation's, and says so.
    after = list_runs(run.parent)[0]
    assert after.tf_mae_f == pytest.approx(stored.teacher_forcing["mae_f"]) and after.tf_mae_from == "evaluation"
    assert after.verdict == stored.diagnosis["verdict"]

    # evaluate_run answers from the stored scores for the same data and options: nothing recomputed.
    again = evaluate_run(run, profiles, split="val")
    assert again.from_cache and again.cache_key == stored.cache_key and not (run / "eval_cache").exists()
    assert main(["score", "--checkpoint", str(run), "--if-needed"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_stored_scores_go_stale_with_other_weights_or_another_eval_version(run_copy, tmp_path):
    import json
    import shutil

    from roastcore.evaluate import score_run, stored_report

    run, profiles, val = run_copy
    score_run(run, profiles)
    assert stored_report(run) is not None
    doc = json.loads((run / "scores.json").read_text())
    (run / "scores.json").write_text(json.dumps(dict(doc, eval_version=doc["eval_version"] - 1)))
    assert stored_report(run) is None
    (run / "scores.json").write_text(json.dumps(doc))
    assert stored_report(run) is not None
    retrained = _save_run(tmp_path / "retrained", profiles, [p.id for p in val], seed=1)
    shutil.copy(retrained / "model.safetensors", run / "model.safetensors")
    assert stored_report(run) is None
    (run / "scores.json").write_text("{not json")
    assert stored_report(run) is None


def test_score_stores_the_curve_and_trace_the_pages_would_generate(run_copy, tmp_path):
    """score_run also stores (RUN_DIR/generated.json) the free-running curve of the first
    validation roast and its step trace, exactly as Compare and the diagnostic generate them;
    retrained weights make them stale."""
    import shutil

    from roastcore.checkpoints import load_run
    from roastcore.diagnose import default_trace_steps, step_trace
    from roastcore.evaluate import evaluated_set, score_run
    from roastcore.inspect_run import generate_curves
    from roastcore.run_generated import load_generated

    run, profiles, val = run_copy
    assert load_generated(run) is None
    score_run(run, profiles)
    views = load_generated(run)
    assert views is not None
    loaded = load_run(run)
    first, second = evaluated_set(profiles, loaded.manifest, "val")[0][:2]
    expected = generate_curves(loaded, [first])[0]  # what the Compare page generates
    assert np.allclose(views.curve(first), expected, atol=1e-9)
    steps = default_trace_steps(loaded.model.config, first)
    trace = views.trace(first, steps)
    assert trace == step_trace(loaded.model, first, steps=steps).to_dict()
    assert views.curve(second) is None and views.trace(first, steps + 1) is None  # only what is drawn first
    # A run scored before generated.json existed gets it from `score --if-needed`, its scores kept.
    from roastcore.cli import main
    from roastcore.run_generated import GENERATED

    scores_before = (run / "scores.json").read_bytes()
    (run / GENERATED).unlink()
    assert main(["score", "--checkpoint", str(run), "--if-needed"]) == 0
    assert (run / "scores.json").read_bytes() == scores_before
    assert np.allclose(load_generated(run).curve(first), expected, atol=1e-9)
    retrained = _save_run(tmp_path / "retrained", profiles, [p.id for p in val], seed=1)
    shutil.copy(retrained / "model.safetensors", run / "model.safetensors")
    assert load_generated(run) is None


def test_the_stored_views_are_of_the_roast_the_manifest_makes_first(run_copy):
    """store_generated evaluates what scoring does: the validation roasts the manifest names
    (the first of them, wherever it is in the data), or every roast when it names none."""
    import json

    from roastcore.evaluate import store_generated
    from roastcore.run_generated import load_generated

    run, profiles, val = run_copy
    val_ids = {p.id for p in val}
    trained = [p for p in profiles if p.id not in val_ids]
    data = trained[:1] + list(val) + trained[1:]  # a training roast first: not what is drawn
    assert store_generated(run, data)
    views = load_generated(run)
    assert views.curve(val[0]) is not None and views.curve(data[0]) is None
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["split"] = {}  # a run that records no validation ids is scored on every roast
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert store_generated(run, data)
    assert load_generated(run).curve(data[0]) is not None


def test_an_unusable_run_is_neither_evaluated_nor_scored(run_copy, capsys):
    import json

    from roastcore.checkpoints import RunError
    from roastcore.cli import main
    from roastcore.evaluate import evaluate_run, needs_scoring

    run, profiles, _ = run_copy
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(usable=False, unusable_reason="cancelled before its first epoch finished: the weights are untrained")
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="not usable: cancelled before its first epoch"):
        evaluate_run(run, profiles, use_cache=False)
    assert not needs_scoring(run)
    assert main(["score", "--checkpoint", str(run)]) == 2
    assert "not usable" in capsys.readouterr().err
    assert not (run / "scores.json").exists()


@pytest.mark.slow
def test_cli_evaluate_json_diagnose_and_generate(run_and_data, capsys, tmp_path):
    import json

    from roastcore.cli import main

    run, profiles, val = run_and_data
    assert main(["evaluate", "--checkpoint", str(run), "--data", "synthetic:40", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"teacher_forcing", "free_run", "baselines", "diagnosis"} <= set(doc)
    assert doc["split"] == "val"

    assert main(["evaluate", "--checkpoint", str(run), "--data", "synthetic:40"]) == 0
    text = capsys.readouterr().out
    assert "persistence" in text and "aligned_knn" in text and "Diagnosis" in text

    assert main(["diagnose", "--checkpoint", str(run), "--data", "synthetic:40", "--steps", "12"]) == 0
    text = capsys.readouterr().out
    assert "raw_f" in text and "clamped_f" in text and "variance of the generated sequence" in text
    assert len([line for line in text.splitlines() if line.strip()[:1].isdigit()]) == 12

    assert main(["diagnose", "--checkpoint", str(run), "--data", "synthetic:40", "--profile", "nope"]) == 2
    assert "no profile with that id" in capsys.readouterr().err

    # An untrained model's curve is not a plausible roast, so our importer may refuse it; the
    # .alog round trip of a plausible generated curve is tested in test_generate.py.
    out = tmp_path / "gen.json"
    assert main(["generate", "--checkpoint", str(run), "--origin", "Ethiopia", "--process", "natural",
                 "--roast-level", "light", "--flavors", "berry,jasmine", "--charge-temp", "415",
                 "--duration", "600", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    temps = doc["roast_profile"]["bean_temp"]
    assert len(temps) == 601 and temps[0]["value"] == pytest.approx(415, abs=0.2)
    assert doc["generated"]["model"] == run.name and "origin Ethiopia" in doc["generated"]["request"]
    assert doc["metadata"]["product_name"] == f"generated by {run.name}"
    assert main(["generate", "--checkpoint", str(run), "--duration", "600", "--out", str(tmp_path / "x.txt")]) == 2

"""Training: the raw-°F collapse, learning when normalised, divergence, cancel, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from roastcore.checkpoints import load_run, read_json
from roastcore.cli import main as cli_main
from roastcore.experiments import TrainConfig, get_preset
from roastcore.splits import train_val_split
from roastcore.train import Callback, lr_factor, run_experiment, teacher_forcing_ratio, train

REPO_ROOT = Path(__file__).resolve().parents[1]
# 5 s steps keep every run to a second or two; the mechanisms are the same at 1 s.
FAST = {"step_s": 5, "max_len": 200, "epochs": 4, "batch_size": 8, "patience": 0, "device": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def experiment(preset, **overrides):
    return get_preset(preset).experiment.with_overrides({**FAST, **overrides})


class Recorder(Callback):
    def __init__(self):
        self.epochs, self.batches, self.saved = [], [], []

    def on_epoch_end(self, metrics):
        self.epochs.append(metrics)

    def on_batch_end(self, progress):
        self.batches.append(progress)

    def on_checkpoint_saved(self, path):
        self.saved.append(path)


@pytest.fixture(scope="module")
def collapsed(synthetic_profiles):
    return run_experiment(experiment("no_normalization"), synthetic_profiles)


@pytest.fixture(scope="module")
def learned(synthetic_profiles):
    rec = Recorder()
    result = run_experiment(experiment("tiny_model", lr=3e-3), synthetic_profiles, callbacks=[rec])
    return result, rec


def _val_batch(result, profiles):
    exp = experiment("tiny_model")
    _, val = train_val_split(profiles, exp.train.val_frac, exp.train.seed, exp.train.grouped_split)
    return result.model.make_batch(val)


@pytest.mark.slow
def test_unnormalized_model_collapses_to_a_constant(collapsed, synthetic_profiles):
    assert collapsed.status == "succeeded", collapsed.reason  # huge but finite loss is not divergence
    batch = _val_batch(collapsed, synthetic_profiles)
    gen = collapsed.model.generate(batch)
    mask = batch.mask[:, 1:]
    generated = gen.raw_f[:, 1:]
    assert float(generated[mask].var()) < 1.0
    with torch.no_grad():
        err = (collapsed.model.predict_next_f(batch) - batch.temps_f[:, 1:]).abs()[mask]
    assert float(err.mean()) > 100.0


@pytest.mark.slow
def test_normalized_tiny_model_learns(learned, collapsed, synthetic_profiles):
    result, rec = learned
    assert result.status == "succeeded", result.reason
    batch = _val_batch(result, synthetic_profiles)
    mask = batch.mask[:, 1:]
    with torch.no_grad():
        mae = float((result.model.predict_next_f(batch) - batch.temps_f[:, 1:]).abs()[mask].mean())
    collapsed_mae = collapsed.history[-1]["val_tf_mae_f"]
    assert mae < 25.0 and mae < collapsed_mae / 5
    assert rec.epochs[-1]["val_loss"] < rec.epochs[0]["val_loss"]


@pytest.mark.slow
def test_epoch_metrics_and_callbacks(learned):
    result, rec = learned
    assert [m["epoch"] for m in rec.epochs] == [1, 2, 3, 4] == [m["epoch"] for m in result.history]
    for m in rec.epochs:
        assert {"epoch", "train_loss", "val_loss", "lr", "tf_ratio", "elapsed_s", "eta_s", "val_tf_mae_f"} <= set(m)
        assert m["tf_ratio"] == 1.0
    assert rec.epochs[-1]["eta_s"] == 0
    assert rec.batches and rec.batches[-1]["batch"] == rec.batches[-1]["n_batches"]
    assert rec.saved == []  # no run dir, nothing written
    assert result.best_epoch == min(result.history, key=lambda m: m["val_loss"])["epoch"]


@pytest.mark.slow
def test_same_seed_same_result(synthetic_profiles):
    exp = experiment("micro_model", epochs=2, lr=1e-3)
    train_p, val_p = synthetic_profiles[:20], synthetic_profiles[30:36]
    a = train(exp, train_p, val_p)
    b = train(exp, train_p, val_p)
    assert a.best_val_loss == b.best_val_loss


@pytest.mark.slow
def test_huge_learning_rate_diverges(synthetic_profiles):
    result = train(experiment("micro_model", lr=10.0, warmup_frac=0.0), synthetic_profiles[:24], synthetic_profiles[30:36])
    assert result.status == "diverged"
    assert "loss" in result.reason or "gradient" in result.reason


@pytest.mark.slow
def test_cancel_keeps_a_loadable_best_checkpoint(synthetic_profiles, tmp_path):
    cancel = threading.Event()

    class CancelAfterFirstEpoch(Callback):
        def on_epoch_end(self, metrics):
            cancel.set()

    run_dir = tmp_path / "run"
    result = run_experiment(experiment("micro_model", epochs=5, lr=1e-3), synthetic_profiles[:24], run_dir=run_dir,
                            data_source="synthetic:24", callbacks=[CancelAfterFirstEpoch()], cancel=cancel)
    assert result.status == "cancelled" and result.best_epoch == 1
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["status"] == "cancelled" and manifest["best_epoch"] == 1
    loaded = load_run(run_dir)
    batch = loaded.model.make_batch(synthetic_profiles[:2])
    torch.testing.assert_close(loaded.model(batch), result.model(batch))


@pytest.mark.slow
def test_cancel_before_any_epoch_still_saves(synthetic_profiles, tmp_path):
    result = run_experiment(experiment("micro_model"), synthetic_profiles[:12], run_dir=tmp_path / "r",
                            cancel=lambda: True)
    assert result.status == "cancelled"
    assert load_run(tmp_path / "r").model is not None
    # ... but it is the untrained initialisation: marked not usable, never scored or evaluated.
    manifest = read_json(tmp_path / "r" / "manifest.json")
    assert manifest["usable"] is False and "before its first epoch finished" in manifest["unusable_reason"]
    from roastcore.checkpoints import list_runs

    assert [r.usable for r in list_runs(tmp_path)] == [False]


@pytest.mark.slow
def test_a_failed_scoring_never_fails_the_training(synthetic_profiles, tmp_path, caplog):
    import logging

    from roastcore.evaluate import ScoreOnFinish

    scorer = ScoreOnFinish([])  # no profiles to score on: scoring raises inside the callback
    with caplog.at_level(logging.INFO, logger="roastcore.evaluate"):
        result = run_experiment(experiment("micro_model", epochs=1, step_s=10, max_len=100), synthetic_profiles[:12],
                                run_dir=tmp_path / "r", data_source="synthetic:12", callbacks=[scorer])
    assert result.status == "succeeded" and scorer.report is None
    assert not (tmp_path / "r" / "scores.json").exists()
    assert "scoring r failed" in caplog.text and "roastcore score --checkpoint" in caplog.text
    assert read_json(tmp_path / "r" / "manifest.json")["status"] == "succeeded"


def test_a_relative_data_path_is_recorded_absolute(tmp_path, monkeypatch):
    from roastcore.train import data_source_record

    (tmp_path / "roasts").mkdir()
    monkeypatch.chdir(tmp_path)
    assert data_source_record("roasts") == str(tmp_path / "roasts")
    assert data_source_record("synthetic:40") == "synthetic:40"
    assert data_source_record("missing/folder") == "missing/folder"
    # Several sources: each part on its own terms; a real path with a comma in its name is one source.
    assert data_source_record("roasts,synthetic:4") == f"{tmp_path / 'roasts'},synthetic:4"
    assert data_source_record("synthetic:4,roasts") == f"synthetic:4,{tmp_path / 'roasts'}"  # synthetic first
    (tmp_path / "a,b").mkdir()
    assert data_source_record("a,b") == str(tmp_path / "a,b")


@pytest.mark.parametrize("overrides", [
    dict(preset="scheduled_sampling", scheduled_sampling="linear", input_noise_f=2.0, loss="l1"),
    dict(preset="gru_baseline", scheduled_sampling="inverse_sigmoid", ss_k=1.0, rollout_weight=0.5,
         target_mode="residual", time_conditioning=True),
    dict(preset="micro_model", rollout_weight=0.2, step_s=10, max_len=100),
])
@pytest.mark.slow
def test_exposure_bias_fixes_train(synthetic_profiles, overrides):
    overrides = dict(overrides)
    exp = experiment(overrides.pop("preset"), epochs=3, lr=1e-3, **overrides)
    rec = Recorder()
    result = train(exp, synthetic_profiles[:16], synthetic_profiles[30:34], callbacks=[rec])
    assert result.status == "succeeded", result.reason
    ratios = [m["tf_ratio"] for m in rec.epochs]
    if exp.train.scheduled_sampling != "none":
        assert ratios[0] == 1.0 and ratios[-1] < ratios[0]
    assert all(m["train_loss"] > 0 for m in rec.epochs)


def test_teacher_forcing_schedules():
    linear = TrainConfig(scheduled_sampling="linear", ss_max_ratio=0.4, epochs=5)
    assert [round(teacher_forcing_ratio(linear, e), 3) for e in range(5)] == [1.0, 0.9, 0.8, 0.7, 0.6]
    inv = TrainConfig(scheduled_sampling="inverse_sigmoid", ss_max_ratio=0.5, ss_k=3.0)
    values = [teacher_forcing_ratio(inv, e) for e in range(30)]
    assert values[0] == 1.0 and all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert min(values) == pytest.approx(0.5)
    assert teacher_forcing_ratio(TrainConfig(), 7) == 1.0


def test_lr_schedule_warms_up_then_decays():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[50] < 1.0 and factors[-1] == pytest.approx(0.1, abs=0.01)


# ----------------------------------------------------------------------------- CLI
def _cli(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "roastcore", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_train_cli_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", "--preset", "micro_model", "--set", "step_s=10", "--set", "max_len=100",
                "--set", "lr=1e-3", "--data", "synthetic:12", "--out", str(out), "--epochs", "2",
                "--device", "cpu", "--seed", "3")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    final = json.loads(stdout.strip().splitlines()[-1])
    assert final["status"] == "succeeded" and final["run_dir"] == str(out) and final["device"] == "cpu"
    assert {"best_epoch", "best_val_loss", "reason"} <= set(final)
    assert "epoch 2/2" in stderr
    for name in ("config.json", "model.safetensors", "encoder.json", "scaler.json", "metrics.jsonl",
                 "manifest.json", "progress.json"):
        assert (out / name).is_file(), name
    manifest = read_json(out / "manifest.json")
    assert manifest["data_source"] == "synthetic:12" and manifest["split"]["seed"] == 3
    assert manifest["split"]["val_ids"] and manifest["dataset_fingerprint"]
    assert len(manifest["split"]["train_ids"]) + len(manifest["split"]["val_ids"]) == 12
    assert manifest["usable"] is True
    assert read_json(out / "config.json")["model"]["step_s"] == 10.0
    # The training process scored its own run before printing its result.
    from roastcore.evaluate import stored_report

    report = stored_report(out)
    assert report is not None and report.split == "val"
    assert report.n_profiles == len(manifest["split"]["val_ids"])
    assert report.baseline_fit["kind"] == "run_training"
    assert "scored run" in stderr


@pytest.mark.slow
def test_train_cli_sigterm_cancels(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", "--preset", "micro_model", "--set", "step_s=5", "--set", "max_len=200",
                "--data", "synthetic:40", "--out", str(out), "--epochs", "200", "--device", "cpu")
    deadline = time.monotonic() + 90
    while not (out / "model.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for the first best checkpoint
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    final = json.loads(stdout.strip().splitlines()[-1])
    assert final["status"] == "cancelled", final
    assert load_run(out).manifest["status"] == "cancelled"


def test_train_cli_rejects_bad_input(tmp_path, capsys):
    assert cli_main(["train", "--preset", "nope", "--data", "synthetic:4", "--out", str(tmp_path / "x")]) == 2
    assert "tiny_model" in capsys.readouterr().err
    assert cli_main(["train", "--preset", "tiny_model", "--set", "wings=3", "--data", "synthetic:4",
                     "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "wings" in err and "d_model" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # builds every preset's model
def test_presets_cli_lists_counts(capsys):
    assert cli_main(["presets"]) == 0
    assert "baseline_sinusoidal" in capsys.readouterr().out
    assert cli_main(["presets", "--data", "synthetic:10", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny_model"]["params"] > rows["micro_model"]["params"] > 0
    assert rows["tiny_model"]["params_per_sample"] == pytest.approx(rows["tiny_model"]["params"] / 8, rel=1e-3)


@pytest.mark.slow
def test_demos_cli_rebuilds_only_what_is_named_and_never_loses_a_demo(tmp_path, capsys):
    old = tmp_path / "demo_collapsed"
    old.mkdir()
    (old / "marker").write_text("the shipped demo")
    # A rebuild that fails (bad data) leaves the shipped demo as it was.
    assert cli_main(["demos", "--out", str(tmp_path), "--only", "demo_collapsed", "--data", str(tmp_path / "nope")]) != 0
    assert (old / "marker").read_text() == "the shipped demo"
    assert cli_main(["demos", "--out", str(tmp_path), "--only", "demo_teacher_forced,nope"]) == 2
    assert "demo_recommended" in capsys.readouterr().err
    # A successful one replaces it whole; nothing else is built and no temporary folder is left.
    assert cli_main(["demos", "--out", str(tmp_path), "--only", "demo_collapsed", "--data", "synthetic:12"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "succeeded"
    assert not (old / "marker").exists() and load_run(old).config.model.normalize is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_collapsed"]

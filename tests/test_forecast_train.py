"""The `forecast` preset: training from the charge, then the forecast stage, as one job (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load

from roastcore.checkpoints import load_run, read_json, read_metrics
from roastcore.experiments import ExperimentConfig, TrainConfig, get_preset
from roastcore.forecast_eval import forecast_eval, make_forecaster
from roastcore.forecast_train import ForecastStage, run_experiment, stages_for
from roastcore.train import Callback, train

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tiny: 10 s steps, 2 epochs from the charge, 2 forecast epochs; the mechanisms are the preset's.
TINY = {"step_s": 10, "max_len": 100, "epochs": 2, "patience": 0, "device": "cpu", "forecast_epochs": 2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**overrides) -> ExperimentConfig:
    return get_preset("forecast").experiment.with_overrides({**TINY, **overrides})


class Recorder(Callback):
    """Records the stage's reports, and the weights it hands over at each new best."""

    def __init__(self, cancel_on_stage_batch: threading.Event | None = None):
        self.batches, self.epochs, self.saved, self.bests, self.ends, self.on_disk = [], [], [], [], [], []
        self.cancel = cancel_on_stage_batch

    def on_batch_end(self, p):
        self.batches.append(p)
        if self.cancel is not None and p.get("stage") == "forecast":
            self.cancel.set()

    def on_epoch_end(self, m):
        self.epochs.append(m)

    def on_checkpoint_saved(self, path):
        # An atomic save replaces the file: a new inode each time, even when the bytes are the same.
        inode = Path(path).stat().st_ino
        if self.bests and len(self.on_disk) < len(self.bests):  # the stage's best, read back at once
            written = bool(self.saved) and inode != self.saved[-1][1]
            self.on_disk.append(written and _same_weights(st_load(Path(path).read_bytes()), self.bests[-1][2]))
        self.saved.append((Path(path), inode))

    def on_stage_best(self, model, stage, record):
        self.bests.append((stage, record["best_epoch"], {k: v.clone() for k, v in model.state_dict().items()}))

    def on_stage_end(self, stage, record):
        self.ends.append((stage, record))


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


# ------------------------------------------------------------------ configuration
def test_the_preset_is_the_recommended_model_with_a_forecast_stage():
    forecast, recommended = get_preset("forecast").experiment, get_preset("recommended").experiment
    assert forecast.forecasting and not recommended.forecasting
    assert forecast.model == recommended.model  # same network: the stage is what differs
    assert forecast.train.forecast_epochs > 0 and forecast.model.prior == "aligned_knn"
    again = ExperimentConfig.from_dict(json.loads(json.dumps(forecast.to_dict())))
    assert again.train.forecast_epochs == forecast.train.forecast_epochs and again.forecasting
    stage, = stages_for(forecast)
    assert isinstance(stage, ForecastStage)
    assert stage.config.epochs == forecast.train.forecast_epochs and stage.config.lr == forecast.train.forecast_lr
    assert stages_for(recommended) == []


@pytest.mark.parametrize("overrides, field", [
    ({"forecast_epochs": -1}, "forecast_epochs"),
    ({"forecast_epochs": 2.5}, "forecast_epochs"),
    ({"forecast_lr": 0}, "forecast_lr"),
])
def test_bad_forecast_settings_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**overrides)


def test_a_forecast_stage_needs_a_prior_model():
    with pytest.raises(ValueError, match="forecast_epochs.*prior"):
        get_preset("forecast").experiment.with_overrides({"prior": "none"})
    assert get_preset("forecast").experiment.with_overrides({"forecast_epochs": "3"}).train.forecast_epochs == 3


def test_plain_train_refuses_to_skip_the_stage(synthetic_profiles):
    with pytest.raises(ValueError, match="forecast_train.run_experiment"):
        train(tiny(), synthetic_profiles[:8], synthetic_profiles[8:10])


# ------------------------------------------------------------------ training
@pytest.mark.slow
def test_one_job_trains_then_fine_tunes_and_records_a_forecasting_run(synthetic_profiles, tmp_path):
    rec = Recorder()
    run_dir = tmp_path / "run"
    result = run_experiment(tiny(), synthetic_profiles[:24], run_dir=run_dir, data_source="synthetic:24",
                            callbacks=[rec])
    assert result.status == "succeeded", result.reason
    record = result.stages["forecast"]
    assert record["status"] == "succeeded" and record["prior"] == "prefix_knn"
    assert len(record["val_mae_f_by_epoch"]) == 3  # epoch 0 (the charge-trained model) + 2
    assert record["best_val_mae_f"] == min(record["val_mae_f_by_epoch"])

    # Progress: stage 1's epochs, then the stage's, numbered on, through the same callbacks.
    stage_epochs = [m for m in rec.epochs if m.get("stage") == "forecast"]
    assert [m["epoch"] for m in stage_epochs] == [result.epochs_run + 1, result.epochs_run + 2]
    assert all(m["epochs"] == result.epochs_run + 2 and m["val_forecast_mae_f"] > 0 for m in stage_epochs)
    assert any(b.get("stage") == "forecast" for b in rec.batches)
    assert [m.get("stage") for m in read_metrics(run_dir)][-2:] == ["forecast", "forecast"]
    # Every new best of the stage was saved (epoch 0 first), as the run's weights.
    assert [b[1] for b in rec.bests][0] == 0 and rec.bests[-1][1] == record["best_epoch"]
    assert {p for p, _ in rec.saved} == {run_dir / "model.safetensors"}
    assert rec.on_disk == [True] * len(rec.bests)  # each written when it came, not at the end
    assert rec.ends == [("forecast", record)]

    loaded = load_run(run_dir)
    manifest = read_json(run_dir / "manifest.json")
    assert manifest["forecast"]["best_epoch"] == record["best_epoch"] and manifest["status"] == "succeeded"
    assert _same_weights(loaded.model.state_dict(), rec.bests[-1][2])
    assert _same_weights(loaded.model.state_dict(), result.model.state_dict())
    assert not (run_dir / "run.lock").exists()
    # The loaded run forecasts with the prior it was tuned for.
    assert loaded.model.forecast_prior == "prefix_knn" and result.model.forecast_prior == "prefix_knn"
    fc = make_forecaster("model", loaded.model)
    assert fc.prior == "prefix_knn" and fc.name == "model"
    f = fc.fit(synthetic_profiles[24:34]).forecast(synthetic_profiles[35], at_s=240)
    assert f.bt_f.size > 0 and (f.lo_f <= f.bt_f + 1e-9).all()


@pytest.mark.slow
def test_a_cancel_during_the_stage_keeps_the_earlier_checkpoint(synthetic_profiles, tmp_path):
    cancel = threading.Event()
    rec = Recorder(cancel_on_stage_batch=cancel)
    run_dir = tmp_path / "run"
    result = run_experiment(tiny(), synthetic_profiles[:24], run_dir=run_dir, callbacks=[rec], cancel=cancel)
    assert result.status == "cancelled" and "forecast stage" in result.reason
    assert result.stages["forecast"]["status"] == "cancelled" and result.stages["forecast"]["best_epoch"] == 0
    # No stage epoch finished; the weights on disk are the charge-trained model's (stage epoch 0).
    assert not [m for m in read_metrics(run_dir) if m.get("stage") == "forecast"]
    assert [b[1] for b in rec.bests] == [0] and rec.on_disk == [True]
    loaded = load_run(run_dir)
    assert loaded.manifest["status"] == "cancelled" and loaded.manifest["usable"] is True
    assert _same_weights(loaded.model.state_dict(), rec.bests[0][2])
    assert loaded.model.forecast_prior == "prefix_knn"


@pytest.mark.slow
def test_forecast_eval_trains_the_preset_per_fold(synthetic_profiles):
    trained = []

    def model_fn(profiles, fold):
        result = run_experiment(tiny(forecast_epochs=1), profiles)
        trained.append(result)
        return result.model

    out = forecast_eval(["model"], synthetic_profiles[:20], cuts=[240], folds=2, model_fn=model_fn)
    assert len(trained) == 2 and all(r.stages["forecast"]["status"] == "succeeded" for r in trained)
    assert [p["prior"] for p in out["params"]["model"]] == ["prefix_knn", "prefix_knn"]
    row, = out["results"]
    assert row["method"] == "model" and row["n_profiles"] == 20 and 0 < row["mae_f"] < 50


@pytest.mark.slow
def test_train_cli_runs_the_forecast_preset(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    sets = [a for k, v in TINY.items() if k not in ("epochs", "device") for a in ("--set", f"{k}={v}")]
    proc = subprocess.run([sys.executable, "-m", "roastcore", "train", "--preset", "forecast", *sets,
                           "--data", "synthetic:16", "--out", str(out), "--epochs", "1", "--device", "cpu"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    assert "(forecast stage)" in proc.stderr
    manifest = read_json(out / "manifest.json")
    assert manifest["forecast"]["prior"] == "prefix_knn" and manifest["forecast"]["status"] == "succeeded"
    assert read_json(out / "config.json")["train"]["forecast_epochs"] == 2


@pytest.mark.slow
def test_forecast_eval_train_preset_follows_the_method_seed(synthetic_profiles):
    from roastcore.cli.forecast import _fold_trainer

    def weights(seed: int) -> dict:
        notes: list[str] = []
        model = _fold_trainer("micro_model", notes, seed)(synthetic_profiles[:8], 0)
        assert notes == [f"model methods: preset 'micro_model' trained on each fold's training roasts (seed {seed})"]
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, other = weights(0), weights(1)
    assert any(not torch.equal(first[k], other[k]) for k in first)  # seeds give a spread

"""Training a run for forecasting a roast in progress: the `forecast` preset (issue 16).

A run whose `TrainConfig.forecast_epochs` is above 0 trains in two stages, as one job:

1. the usual training from the charge (`train.train`: a prior model correcting the aligned kNN,
   best epoch and correction scale picked on the run's validation roasts);
2. `ForecastStage`: rollouts from random cut points of the training roasts (60-480 s), each
   correcting the prefix kNN's neighbours for that cut with the roast's own product left out
   (`forecast_model.finetune_in_place`). Its epoch (0 = the stage-1 model) is the one with the
   lowest forecast MAE at 120/240/360 s on the run's validation roasts.

The stage reports through the trainer's callbacks: `on_batch_end` / `on_epoch_end` with
`stage: "forecast"` and epochs numbered on from stage 1's, and `on_stage_best` with the weights of
each new best (`checkpoints.RunWriter` saves them atomically and records `forecast` in
manifest.json, which is how a loaded run knows to use the prefix-kNN prior). A cancel during the
stage keeps its best epoch so far (at worst the stage-1 model, saved at the stage's start).

`run_experiment` here is `train.run_experiment` with the stages the config asks for: use it (CLI,
studies, forecast-eval's per-fold training) for any preset.
"""

from __future__ import annotations

import logging
import time

from roastcore.experiments import ExperimentConfig
from roastcore.forecast_model import FORECAST_PRIOR, FinetuneConfig, finetune_in_place
from roastcore.train import Trainer, TrainResult, is_cancelled
from roastcore.train import run_experiment as _run_experiment

log = logging.getLogger(__name__)

STAGE = "forecast"


class ForecastStage:
    """The forecast fine-tune as a stage of `train.train` (called after stage 1 succeeded)."""

    name = STAGE

    def __init__(self, config: FinetuneConfig):
        self.config = config

    @classmethod
    def from_experiment(cls, experiment: ExperimentConfig) -> ForecastStage:
        t = experiment.train
        return cls(FinetuneConfig(epochs=t.forecast_epochs, lr=t.forecast_lr, seed=t.seed))

    def __call__(self, trainer: Trainer, result: TrainResult, train_profiles, val_profiles) -> None:
        cfg, model = self.config, trainer.model
        offset = result.epochs_run  # stage epochs continue stage 1's numbering in metrics.jsonl
        total = offset + cfg.epochs
        started = time.monotonic()
        record = {"prior": FORECAST_PRIOR, "status": "running", "epochs": cfg.epochs, "lr": cfg.lr,
                  "cuts_s": list(cfg.cuts_s), "first_epoch": offset + 1}
        model.to("cpu")  # the rollouts and the prefix kNN's generations run on the CPU

        def on_batch(p: dict) -> None:
            trainer.emit("on_batch_end", {**p, "epoch": offset + p["epoch"], "epochs": total, "stage": STAGE,
                                          "elapsed_s": time.monotonic() - started})

        def on_epoch(m: dict) -> None:
            elapsed = time.monotonic() - started
            trainer.emit("on_epoch_end", {**m, "epoch": offset + m["epoch"], "epochs": total, "stage": STAGE,
                                          "lr": cfg.lr, "elapsed_s": round(elapsed, 3),
                                          "eta_s": round(elapsed / m["epoch"] * (cfg.epochs - m["epoch"]), 3)})

        def on_best(epoch: int, mae: float) -> None:
            record.update(best_epoch=epoch, best_val_mae_f=round(mae, 3))
            for path in trainer.emit("on_stage_best", model, STAGE, dict(record)):
                if path is not None:
                    trainer.emit("on_checkpoint_saved", path)

        try:
            info = finetune_in_place(model, train_profiles, val_profiles, cfg, on_batch=on_batch,
                                     on_epoch=on_epoch, on_best=on_best,
                                     cancel=lambda: is_cancelled(trainer.cancel))
        finally:
            model.to(trainer.device)
        model.forecast_prior = FORECAST_PRIOR
        record.update(info)
        result.stages[STAGE] = record
        if info["status"] == "cancelled":
            result.status = "cancelled"
            result.reason = (f"cancelled during the forecast stage; its best epoch so far "
                             f"({info['best_epoch']}, 0 = the model trained from the charge) is kept")
        trainer.emit("on_stage_end", STAGE, dict(record))


def stages_for(experiment: ExperimentConfig) -> list:
    """The stages after the training from the charge that `experiment` asks for."""
    return [ForecastStage.from_experiment(experiment)] if experiment.forecasting else []


def run_experiment(experiment: ExperimentConfig, profiles, **kwargs) -> TrainResult:
    """`train.run_experiment` with the experiment's stages (the forecast fine-tune when asked)."""
    return _run_experiment(experiment, profiles, stages=stages_for(experiment), **kwargs)

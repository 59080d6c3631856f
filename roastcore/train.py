"""Training: a model-agnostic loop (Trainer) and the one place that builds what it trains.

`Trainer` knows only the loop: AdamW + warm-up/cosine, clipping, early stopping, divergence
detection, cooperative cancel, scheduled sampling, rollout loss and input noise. It reports
through callbacks (minGPT style); `checkpoints.RunWriter` is one of them. Everything specific to a
model is a method of the model (`sampled_loss`, `steps_sequentially`, `scale_correction`).

`train` / `run_experiment` build the inputs (encoder, scaler, prior), the datasets and the model
from an ExperimentConfig, run the Trainer, and finish a prior model (correction scale, library).

Exposure-bias fixes:
- scheduled sampling (Bengio et al. 2015): a decaying share of inputs comes from the model's
  own predictions (`model.sampled_loss`: two passes for the transformer, a true step-by-step
  rollout for the GRU).
- rollout loss (rollout_weight > 0): a full free run from the charge temperature with
  gradients, scored against the real curve (memory grows with L^2 for the transformer:
  prefer step_s 5 or 10 there).
- input noise (input_noise_f): Gaussian °F noise on the inputs; residual targets are measured
  from the noisy input, so the model learns to steer back.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from roastcore.architectures import build_model, fit_inputs
from roastcore.batch import collate
from roastcore.checkpoints import RunWriter
from roastcore.dataset import RoastDataset
from roastcore.experiments import ExperimentConfig, TrainConfig
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.io import dataset_fingerprint, is_multi_source
from roastcore.model import RoastModel, count_parameters
from roastcore.prior import PriorLibrary
from roastcore.splits import train_val_split
from roastcore.threads import single_thread

log = logging.getLogger(__name__)

# Exploding loss: a batch loss this many times the first batch's (measured before any update)
# counts as divergence. The raw-°F collapse has a huge loss from the start, so it never trips
# this; a runaway learning rate does within a few steps.
DIVERGENCE_FACTOR = 1e3
VAL_BATCH_ROWS = 32
SINGLE_THREAD_MAX_D_MODEL = 64  # CPU training of models this small runs on one torch thread
SHRINK_SCALES = (0.25, 0.5, 0.75)  # tried against 1.0 for a prior model's correction


class Callback:
    """Override any of these; the trainer calls them if present."""

    def on_batch_end(self, progress: dict) -> None: ...

    def on_epoch_end(self, metrics: dict) -> None: ...

    def on_best(self, model: RoastModel, epoch: int | None, score: float) -> Path | None:
        """New best weights; a callback that saves them returns the path."""

    def on_checkpoint_saved(self, path: Path) -> None: ...

    def on_stage_best(self, model: RoastModel, stage: str, record: dict) -> Path | None:
        """A stage after the training from the charge (forecast_train.ForecastStage) has new best
        weights; `record` describes the stage so far. A callback that saves them returns the path."""

    def on_stage_end(self, stage: str, record: dict) -> None: ...

    def on_train_end(self, result: TrainResult) -> None: ...

    def on_run_finished(self, result: TrainResult) -> None:
        """After every callback's on_train_end: the run directory is complete (final weights,
        prior, manifest). `train.train` calls it; evaluate.ScoreOnFinish scores the run here."""


@dataclass
class TrainResult:
    status: str  # succeeded | diverged | cancelled | failed
    best_epoch: int | None
    best_val_loss: float | None
    reason: str
    device: str
    epochs_run: int = 0
    history: list[dict] = field(default_factory=list)
    model: RoastModel | None = None  # best weights, on the training device, eval mode
    run_dir: Path | None = None
    correction_scale: float | None = None  # prior models: the factor chosen for the correction
    corrected_score: float | None = None  # val free-run MAE with that factor
    stages: dict = field(default_factory=dict)  # per stage after the charge training, its record

    def summary(self) -> dict:
        return {"status": self.status, "best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "run_dir": str(self.run_dir) if self.run_dir else None, "device": self.device,
                "reason": self.reason}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable explicit choice is an error."""
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if name == "mps" and not mps_ok:
        raise ValueError("device 'mps' requested but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, mps")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def teacher_forcing_ratio(train_cfg: TrainConfig, epoch: int) -> float:
    """Share of inputs that are real temperatures in `epoch` (0-based); 1.0 = pure teacher forcing."""
    kind, floor = train_cfg.scheduled_sampling, 1.0 - train_cfg.ss_max_ratio
    if kind == "none":
        return 1.0
    if kind == "linear":
        return 1.0 - train_cfg.ss_max_ratio * min(1.0, epoch / max(1, train_cfg.epochs - 1))
    k = train_cfg.ss_k  # inverse sigmoid k/(k+exp(i/k)), rescaled to start at 1
    eps = (k / (k + math.exp(epoch / k))) / (k / (k + 1.0))
    return max(floor, min(1.0, eps))


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


# ----------------------------------------------------------------------------- the loop
class Trainer:
    """Trains a built model on two datasets. Knows the loop, not the model."""

    def __init__(self, model: RoastModel, train_ds: RoastDataset, val_ds: RoastDataset, config: TrainConfig,
                 *, callbacks=(), cancel: threading.Event | Callable[[], bool] | None = None,
                 device: str | torch.device | None = None, name: str = "run"):
        if len(train_ds) == 0:
            raise ValueError("train: no training profiles")
        if len(val_ds) == 0:
            raise ValueError("train: no validation profiles (early stopping needs them)")
        self.model, self.train_ds, self.val_ds, self.tcfg = model, train_ds, val_ds, config
        self.callbacks = list(callbacks)
        self.cancel = cancel
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.name = name

    def emit(self, hook: str, *args) -> list:
        """Call `hook` on every callback that has it; their return values, in order."""
        return [fn(*args) for fn in (getattr(cb, hook, None) for cb in self.callbacks) if fn is not None]

    def _autocast(self):
        if self.device.type == "cuda" and self.tcfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _batch_loss(self, batch, tf_ratio: float, gen: torch.Generator) -> torch.Tensor:
        model, tcfg, kind = self.model, self.tcfg, self.tcfg.loss
        real = batch.temps_f
        inputs = real
        if tcfg.input_noise_f > 0:
            noise = torch.randn(real.shape, generator=gen, device="cpu").to(real.device) * tcfg.input_noise_f
            noise[:, 0] = 0.0  # generation always starts from the real charge temperature
            inputs = real + noise
        if tf_ratio < 1.0:
            use_own = torch.rand(real.shape, generator=gen, device="cpu").to(real.device) >= tf_ratio
            use_own[:, 0] = False
            loss = model.sampled_loss(batch, inputs, use_own, kind)
        else:
            loss = model.loss(batch, inputs if inputs is not real else None, kind=kind)
        if tcfg.rollout_weight > 0:
            ro = model.rollout(batch, prefix_steps=1)
            loss = loss + tcfg.rollout_weight * model.loss(batch, ro.inputs_f, kind=kind, units=ro.units)
        return loss

    def _batches(self, dataset: RoastDataset):
        for start in range(0, len(dataset), VAL_BATCH_ROWS):
            yield collate([dataset[i] for i in range(start, min(len(dataset), start + VAL_BATCH_ROWS))]).to(self.device)

    @torch.no_grad()
    def evaluate(self, dataset: RoastDataset) -> tuple[float, float]:
        """(teacher-forced val loss, teacher-forced MAE °F) over the whole set."""
        model = self.model
        model.eval()
        loss_sum = weight_sum = abs_sum = 0.0
        for batch in self._batches(dataset):
            with self._autocast():
                units = model(batch)
            n = float(batch.mask[:, 1:].sum())
            loss_sum += float(model.loss(batch, kind=self.tcfg.loss, units=units)) * n
            pred_f = model.units_to_f(units, batch.temps_f[:, :-1], model.prior_delta(batch))
            abs_sum += float(((pred_f - batch.temps_f[:, 1:]).abs() * batch.mask[:, 1:]).sum())
            weight_sum += n
        return loss_sum / max(weight_sum, 1.0), abs_sum / max(weight_sum, 1.0)

    @torch.no_grad()
    def free_run_mae(self, dataset: RoastDataset) -> float:
        """MAE °F of full free runs from each profile's charge, pooled over generated steps."""
        self.model.eval()
        abs_sum = count = 0.0
        for batch in self._batches(dataset):
            gen = self.model.generate(batch, prefix_steps=1, use_cache=True)
            mask = batch.mask.clone()
            mask[:, 0] = False  # the charge is given
            abs_sum += float(((gen.clamped_f - batch.temps_f).abs() * mask).sum())
            count += float(mask.sum())
        return abs_sum / max(count, 1.0)

    def run(self) -> TrainResult:
        model, tcfg = self.model, self.tcfg
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.lr)
        loader_gen = torch.Generator().manual_seed(tcfg.seed)
        noise_gen = torch.Generator().manual_seed(tcfg.seed + 1)
        loader = torch.utils.data.DataLoader(self.train_ds, batch_size=tcfg.batch_size, shuffle=True,
                                             collate_fn=collate, generator=loader_gen)
        n_batches = len(loader)
        total_steps = tcfg.epochs * n_batches
        warmup = int(tcfg.warmup_frac * total_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, warmup))

        history: list[dict] = []
        best_val, best_epoch, best_state = math.inf, None, None
        first_loss = None
        status, reason = "succeeded", ""
        started = time.monotonic()
        epochs_since_best = 0

        def save_best(ep: int | None, val: float):
            nonlocal best_val, best_epoch, best_state
            best_val, best_epoch = val, ep
            best_state = copy.deepcopy(model.state_dict())
            for path in self.emit("on_best", model, ep, val):
                if path is not None:
                    self.emit("on_checkpoint_saved", path)

        by_free = tcfg.select_on == "val_free_mae"
        try:
            if by_free:  # epoch 0: the untrained model (a prior model's is the aligned kNN itself)
                score = self.free_run_mae(self.val_ds)
                log.info("%s: before training, val free-run MAE %.3f °F", self.name, score)
                save_best(0, score)
            for epoch in range(1, tcfg.epochs + 1):
                model.train()
                tf_ratio = teacher_forcing_ratio(tcfg, epoch - 1)
                loss_sum, seen = 0.0, 0
                for batch_idx, batch in enumerate(loader, start=1):
                    if is_cancelled(self.cancel):
                        status, reason = "cancelled", f"cancelled during epoch {epoch}"
                        break
                    batch = batch.to(self.device)
                    with self._autocast():
                        loss = self._batch_loss(batch, tf_ratio, noise_gen)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        status, reason = "diverged", f"non-finite training loss ({value}) at epoch {epoch}, batch {batch_idx}"
                        break
                    if first_loss is None:
                        first_loss = max(value, 1e-8)
                    elif value > DIVERGENCE_FACTOR * first_loss:
                        status = "diverged"
                        reason = (f"training loss exploded to {value:.3g} at epoch {epoch}, batch {batch_idx} "
                                  f"(> {DIVERGENCE_FACTOR:g} x the first batch's {first_loss:.3g}); lower lr")
                        break
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if tcfg.grad_clip > 0:
                        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
                        if not torch.isfinite(grad_norm):
                            status, reason = "diverged", f"non-finite gradient at epoch {epoch}, batch {batch_idx}"
                            break
                    optimizer.step()
                    scheduler.step()
                    loss_sum += value * batch.batch_size
                    seen += batch.batch_size
                    self.emit("on_batch_end", {"epoch": epoch, "epochs": tcfg.epochs, "batch": batch_idx,
                                               "n_batches": n_batches, "loss": value,
                                               "lr": optimizer.param_groups[0]["lr"],
                                               "elapsed_s": time.monotonic() - started})
                if status != "succeeded":
                    break

                val_loss, val_mae = self.evaluate(self.val_ds)
                score = val_loss
                elapsed = time.monotonic() - started
                metrics = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "val_loss": val_loss,
                           "val_tf_mae_f": val_mae, "lr": optimizer.param_groups[0]["lr"], "tf_ratio": tf_ratio,
                           "elapsed_s": round(elapsed, 3),
                           "eta_s": round(elapsed / epoch * (tcfg.epochs - epoch), 3)}
                if by_free:
                    score = metrics["val_free_mae_f"] = self.free_run_mae(self.val_ds)
                history.append(metrics)
                if not math.isfinite(val_loss):
                    status, reason = "diverged", f"non-finite validation loss at epoch {epoch}"
                    self.emit("on_epoch_end", metrics)
                    break
                if score < best_val:  # the selection number (val loss, or free-run MAE)
                    save_best(epoch, score)
                    epochs_since_best = 0
                else:
                    epochs_since_best += 1
                self.emit("on_epoch_end", metrics)
                if tcfg.patience and epochs_since_best >= tcfg.patience:
                    reason = f"early stop: no {tcfg.select_on} improvement for {tcfg.patience} epochs"
                    break
                if is_cancelled(self.cancel):
                    status, reason = "cancelled", f"cancelled after epoch {epoch}"
                    break
        except Exception as exc:  # report, don't crash the runner; the traceback goes to the log
            log.exception("training failed")
            status, reason = "failed", f"{type(exc).__name__}: {exc}"

        if status == "cancelled" and best_state is None:
            # Keep the run loadable: the current weights stand in for a best that never came.
            val_loss, _ = self.evaluate(self.val_ds)
            if math.isfinite(val_loss):
                save_best(None, val_loss)
                reason += "; no epoch finished, saved the current weights"
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return TrainResult(status=status, best_epoch=best_epoch,
                           best_val_loss=None if best_state is None else best_val, reason=reason,
                           device=str(self.device), epochs_run=len(history), history=history,
                           model=model if best_state is not None else None)


# ----------------------------------------------------------------------------- building and finishing
@dataclass
class TrainingParts:
    """What `build_parts` makes from an experiment and its training profiles."""

    encoder: FeatureEncoder
    scaler: TemperatureScaler
    prior: PriorLibrary | None
    train_ds: RoastDataset
    val_ds: RoastDataset
    model: RoastModel


def build_parts(experiment: ExperimentConfig, train_profiles, val_profiles, device: torch.device) -> TrainingParts:
    """Fit the encoder, scaler and prior on the training split only (no leakage), then build the
    datasets and the model. Seeds first, so a seed gives the same initial weights."""
    cfg = experiment.model
    seed_everything(experiment.train.seed)
    encoder, scaler = fit_inputs(cfg, train_profiles)
    prior = PriorLibrary.fit(train_profiles) if cfg.prior != "none" else None
    # A training profile's prior leaves its own product out, or it would hold the answer.
    train_ds = RoastDataset(train_profiles, encoder, cfg.step_s, cfg.max_len, prior=prior, exclude_own_group=True)
    val_ds = RoastDataset(val_profiles, encoder, cfg.step_s, cfg.max_len, prior=prior)
    model = build_model(cfg, encoder, scaler).to(device)
    model.prior_library = prior
    return TrainingParts(encoder, scaler, prior, train_ds, val_ds, model)


def tune_correction_scale(trainer: Trainer, best: float) -> tuple[float, float]:
    """Scale a prior model's correction by the factor in SHRINK_SCALES with the lowest validation
    free-run MAE: a cheap blend of the trained model with the plain aligned kNN, which the
    correction's noise on ~100 roasts needs. Returns (scale, its score); the model keeps it."""
    model = trainer.model
    best_scale = 1.0
    for scale in SHRINK_SCALES:
        model.scale_correction(scale)
        score = trainer.free_run_mae(trainer.val_ds)
        if score < best:
            best, best_scale = score, scale
    model.scale_correction(best_scale)
    log.info("%s: correction scale %.2f (val free-run MAE %.3f °F)", trainer.name, best_scale, best)
    return best_scale, best


def _threads(model: RoastModel, tcfg: TrainConfig, device: torch.device):
    sequential = model.steps_sequentially or tcfg.rollout_weight > 0 or tcfg.scheduled_sampling != "none"
    if device.type == "cpu" and model.config.d_model <= SINGLE_THREAD_MAX_D_MODEL and sequential:
        # Small models stepping through hundreds of tiny sequential ops (GRU, rollouts):
        # thread hand-offs cost more than they give (onyx recommended: ~5 s/epoch on one
        # thread, 100-240 s/epoch on two threads of a busy 2-core machine, measured).
        # Teacher-forced transformers are one big batched pass: they keep every thread
        # (tiny_model, 120 x 700 steps: ~4.2 s/epoch on 2 threads, ~6.9 s on 1, from 5 batches).
        return single_thread()
    return contextlib.nullcontext()


def data_source_record(spec) -> str:
    """What a run records as its data source: `synthetic[:N]` as given, a path made absolute (a
    relative one would name other data from another working directory)."""
    text = str(spec or "").strip()
    if is_multi_source(text):  # each part recorded on its own terms, as io.load_source reads them
        return ",".join(data_source_record(part) for part in text.split(","))
    if not text or text.partition(":")[0].lower() == "synthetic" or text.startswith("legacy:"):
        return text
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def train(experiment: ExperimentConfig, train_profiles, val_profiles, callbacks=(), cancel=None,
          device: str | None = None, run_dir=None, data_source: str = "", split: dict | None = None,
          stages=()) -> TrainResult:
    """Build everything for `experiment`, train it on a given split and finish it; with `run_dir`
    a RunWriter records the run. `stages`: callables (trainer, result, train_profiles,
    val_profiles) run in order after a prior model's training succeeded, before the run is
    finished (forecast_train.ForecastStage; forecast_train.stages_for gives an experiment's)."""
    if experiment.forecasting and not stages:
        # The stage lives above this layer (it needs the forecasters): refuse rather than skip it.
        raise ValueError(f"experiment {experiment.name!r}: train.forecast_epochs "
                         f"{experiment.train.forecast_epochs} needs its forecast stage; train it with "
                         "roastcore.forecast_train.run_experiment (or pass stages=stages_for(experiment))")
    train_profiles, val_profiles = list(train_profiles), list(val_profiles)
    if not train_profiles:
        raise ValueError("train: no training profiles")
    if not val_profiles:
        raise ValueError("train: no validation profiles (early stopping needs them)")
    tcfg = experiment.train
    device = resolve_device(device or tcfg.device)
    parts = build_parts(experiment, train_profiles, val_profiles, device)
    model = parts.model
    n_params = count_parameters(model)
    callbacks = list(callbacks)
    if run_dir is not None:
        # The split names both sides, so the training split can be rebuilt exactly from the data
        # source even when the run trained on part of it (evaluate.run_split checks the fingerprint).
        split = {**(split or {}), "val_ids": [p.id for p in val_profiles],
                 "train_ids": [p.id for p in train_profiles]}
        callbacks.append(RunWriter(run_dir, experiment, parts.encoder, parts.scaler, param_count=n_params,
                                   device=str(device), data_source=data_source_record(data_source),
                                   dataset_fingerprint=dataset_fingerprint(train_profiles + val_profiles),
                                   split=split, prior=parts.prior))
    log.info("training %s: %d params on %s, %d train / %d val profiles", experiment.name, n_params,
             device, len(parts.train_ds), len(parts.val_ds))
    trainer = Trainer(model, parts.train_ds, parts.val_ds, tcfg, callbacks=callbacks, cancel=cancel,
                      device=device, name=experiment.name)
    with _threads(model, tcfg, device):
        result = trainer.run()
        if parts.prior is not None and result.status == "succeeded":
            if tcfg.select_on == "val_free_mae" and result.best_epoch:
                result.correction_scale, result.corrected_score = tune_correction_scale(trainer, result.best_val_loss)
            for stage in stages:
                stage(trainer, result, train_profiles, val_profiles)
                if result.status != "succeeded":
                    break
            # Serve with every training-side profile as a neighbour (the inner validation
            # products too): more neighbours, same recipe as the aligned kNN it corrects.
            model.prior_library = PriorLibrary.fit(train_profiles + val_profiles)
    result.run_dir = Path(run_dir) if run_dir is not None else None
    trainer.emit("on_train_end", result)
    log.info("%s: %s (best epoch %s, val loss %s) %s", experiment.name, result.status, result.best_epoch,
             result.best_val_loss, result.reason)
    trainer.emit("on_run_finished", result)
    return result


def run_experiment(experiment: ExperimentConfig, profiles, run_dir=None, data_source: str = "",
                   callbacks=(), cancel=None, device: str | None = None, stages=()) -> TrainResult:
    """Split `profiles` by the TrainConfig (seed, val_frac, grouped), record the split, train."""
    t = experiment.train
    train_profiles, val_profiles = train_val_split(profiles, t.val_frac, t.seed, t.grouped_split)
    split = {"seed": t.seed, "val_frac": t.val_frac, "grouped": t.grouped_split,
             "n_train": len(train_profiles), "n_val": len(val_profiles),
             "val_ids": [p.id for p in val_profiles]}
    return train(experiment, train_profiles, val_profiles, callbacks=callbacks, cancel=cancel, device=device,
                 run_dir=run_dir, data_source=data_source, split=split, stages=stages)

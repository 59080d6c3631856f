"""Forecasting with a trained model: the run's model from the real prefix, and its fine-tune (issue 16).

- `model`: a run's own model generating from the real prefix (`generate.ModelGenerator`; for a
  prior model the prior is its charge-only aligned kNN). Its expected end comes from a prefix
  kNN fitted on the same training roasts.
- `model_prefix_prior`: the same network correcting the prefix kNN's neighbours instead.
- `finetune_on_prefixes`: a copy of a prior model fine-tuned with rollouts from random cut
  points against prefix-kNN priors (method `forecast` in roastcore/forecast_eval.py).

The model is not refitted by `fit`, so its band comes straight from training roasts the run
never saw (`PriorLibrary.holds`).
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roastcore.baselines import curve_1s
from roastcore.batch import collate, steps_grid
from roastcore.forecast import EVAL_CUTS_S, MIN_AT_S, MIN_REST_S, Forecaster, Request, residuals_on
from roastcore.forecast_bands import ConformalBands
from roastcore.forecast_methods import PrefixKNN
from roastcore.generate import ModelGenerator
from roastcore.profile import Profile, ProfileMeta
from roastcore.splits import train_val_split
from roastcore.threads import single_thread

log = logging.getLogger(__name__)

# What a run trained for forecasting (preset `forecast`) corrects, recorded in its manifest.json.
FORECAST_PRIOR = "prefix_knn"


# ------------------------------------------------------------------ a run's model
class ModelForecaster(Forecaster):
    """A trained model generating the rest from the real prefix (generate.ModelGenerator).

    `prior="prefix_knn"` (method `model_prefix_prior`, prior models only): the model corrects
    the prefix kNN's neighbours (`PrefixKNN.neighbour_curve`) instead of its charge-only prior.
    """

    name = "model"
    MIN_UNSEEN = 10  # fewer unseen calibration roasts than this: calibrate on seen ones, say so

    def __init__(self, model, prior: str = "run"):
        super().__init__()
        if prior not in ("run", "prefix_knn"):
            raise ValueError(f"ModelForecaster prior {prior!r}: expected 'run' or 'prefix_knn'")
        if prior == "prefix_knn":
            if getattr(model, "prior_library", None) is None:
                raise ValueError("prior 'prefix_knn' needs a prior model (config prior='aligned_knn')")
            self.name = "model_prefix_prior"
        self.prior = prior
        self.model = model
        self.generator = ModelGenerator(model)
        self.ender = PrefixKNN()  # the expected end: the model is told the length, it cannot pick one
        self.calibration_note = ""
        self._memo: dict[tuple, np.ndarray] = {}

    def spawn(self):
        return self  # nothing to refit

    @property
    def library(self):
        return getattr(self.model, "prior_library", None)

    def _fit_point(self, profiles):
        self.ender._fit_common(profiles)
        self.ender._fit_point(profiles)
        if self.prior == "prefix_knn":
            self._memo.clear()  # its generations depend on the kNN's library, new with every fit

    def exclusion(self, profile: Profile) -> str | None:
        """A roast the run's prior library holds must not be its own neighbour (the prefix kNN
        prior's library holds only the roasts it was fitted on; scoring keeps those apart)."""
        if self.prior == "prefix_knn":
            return None
        return self.library.scoring_exclusion(profile) if self.library is not None else None

    def replay_exclusion(self, profile: Profile, own: str | None) -> str | None:
        # The prefix kNN prior leaves out the product like every kNN; the run's own prior knows
        # which roasts it holds.
        return own if self.prior == "prefix_knn" else self.exclusion(profile)

    def _calibrate(self, profiles, folds, seed):
        unseen = [p for p in profiles if self.library is None or not self.library.holds(p)]
        if len(unseen) < self.MIN_UNSEEN:
            self.calibration_note = (f"only {len(unseen)} calibration roasts unseen by the run; the band "
                                     f"uses {len(profiles)} it may have trained on and can be too narrow")
            log.warning("model forecaster: %s", self.calibration_note)
            unseen = profiles
        # The prefix kNN prior was fitted on these very roasts: each must leave its own product out.
        return ConformalBands.from_residuals(residuals_on(self, unseen,
                                                          exclude=lambda p: self.replay_exclusion(p, p.group)))

    def expected_length(self, req):
        return self.ender.expected_length(req)

    def continue_many(self, reqs, ns):
        keys = [(hashlib.sha1(np.ascontiguousarray(r.prefix).tobytes()).hexdigest(), int(n),
                 repr(r.meta), r.exclude_group) for r, n in zip(reqs, ns, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            priors = ([self.ender.neighbour_curve(reqs[i], ns[i]) for i in todo]
                      if self.prior == "prefix_knn" else None)
            curves = self.generator.generate_requests(
                [reqs[i].meta for i in todo], [float(reqs[i].prefix[0]) for i in todo],
                [float(ns[i] - 1) for i in todo], [reqs[i].prefix for i in todo],
                exclude_groups=[reqs[i].exclude_group for i in todo], priors=priors)
            for i, curve in zip(todo, curves, strict=True):
                self._memo[keys[i]] = curve
        return [self._memo[k].copy() for k in keys]

    def describe(self):
        return {**super().describe(), "step_s": self.generator.step_s, "prior": self.prior,
                "calibration_note": self.calibration_note}


# ------------------------------------------------------------------ the `forecast` recipe
@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a prior model to forecast: rollouts from random cut points, each correcting
    the prefix kNN's neighbours for that cut (`PrefixKNN.neighbour_curve`, own product left out)."""

    epochs: int = 12
    lr: float = 3e-4
    weight_decay: float = 0.05
    batch_size: int = 16
    grad_clip: float = 1.0
    cuts_s: tuple[int, ...] = tuple(range(60, 481, 30))  # where a training rollout may start
    val_frac: float = 0.2  # grouped inner split that picks the epoch (epoch 0: the model as given)
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1 or not 0 < self.val_frac < 1:
            raise ValueError(f"FinetuneConfig: invalid {self}")
        if not self.cuts_s or min(self.cuts_s) < MIN_AT_S:
            raise ValueError(f"FinetuneConfig: cuts_s must be >= {MIN_AT_S} s")


def _rollout_item(model, real: np.ndarray, meta: ProfileMeta, cut: int, prior_1s: np.ndarray) -> dict | None:
    """One training row on the model's step grid: real temperatures, the prior, the prefix length."""
    n1 = real.size
    n_steps = int(round((n1 - 1) / model.config.step_s)) + 1
    if n_steps > model.config.max_len:
        return None
    grid = steps_grid(n1, n_steps)
    feats = model.encoder.encode(meta, float(n1 - 1))
    return {"temps_f": torch.tensor(np.interp(grid, np.arange(n1), real), dtype=torch.float32),
            "prior_f": torch.tensor(np.interp(grid, np.arange(n1), prior_1s), dtype=torch.float32),
            "cat": torch.from_numpy(feats.cat), "flavors": torch.from_numpy(feats.flavors),
            "cont": torch.from_numpy(feats.cont), "index": 0,
            "k": int(np.sum(grid <= cut + 1e-9))}


def _rollout_rows(model, inner: Sequence[Profile], knn: PrefixKNN, cuts_s) -> list[list[dict]]:
    """Per training roast, one item per cut: the prefix kNN's neighbours for that cut (its own
    product left out) as the prior the model corrects."""
    rows: list[list[dict]] = []
    for p in inner:
        real = curve_1s(p)
        items = []
        for c in cuts_s:
            if c + MIN_REST_S > real.size - 1:
                continue
            req = Request(real[: c + 1].copy(), p.meta, exclude_group=p.group)
            item = _rollout_item(model, real, p.meta, c, knn.neighbour_curve(req, real.size))
            if item is not None:
                items.append(item)
        if items:
            rows.append(items)
    return rows


def finetune_in_place(model, inner: Sequence[Profile], val: Sequence[Profile], cfg: FinetuneConfig, *,
                      on_batch: Callable[[dict], None] | None = None,
                      on_epoch: Callable[[dict], None] | None = None,
                      on_best: Callable[[int, float], None] | None = None,
                      cancel: Callable[[], bool] | None = None) -> dict:
    """Fine-tune the prior `model` itself (CPU) on rollouts from random cut points of `inner`,
    keeping the epoch with the lowest forecast MAE at 120/240/360 s on `val` (epoch 0: as given).

    The callbacks see every batch ({epoch, epochs, batch, n_batches, loss, lr}), every epoch
    ({epoch, train_loss, val_forecast_mae_f}) and every new best (epoch, MAE; epoch 0 first) while
    the model holds those weights, so a caller can save them. `cancel()` true stops at the next
    batch. Returns info: status (succeeded | cancelled), best_epoch, val_mae_f_by_epoch, sizes.
    The model ends in eval mode with the best weights.
    """
    if getattr(model, "prior_library", None) is None:
        raise ValueError("forecast fine-tune: the model must be a prior model (config prior='aligned_knn')")
    if not inner or not val:
        raise ValueError(f"forecast fine-tune: needs training and validation roasts "
                         f"(got {len(inner)} and {len(val)})")
    knn = PrefixKNN()
    knn._fit_common(list(inner))
    knn._fit_point(list(inner))
    rows = _rollout_rows(model, inner, knn, cfg.cuts_s)
    if not rows:
        raise ValueError("forecast fine-tune: no training roast is long enough for a cut in "
                         f"FinetuneConfig.cuts_s {cfg.cuts_s}")
    model._trained_head = None  # scale_correction must scale what fine-tuning leaves
    scorer = ModelForecaster(model, prior="prefix_knn")
    scorer.ender = knn

    def val_mae() -> float:
        scorer._memo.clear()
        # A product on both sides (an ungrouped split) must not be its own neighbour.
        res = residuals_on(scorer, val, EVAL_CUTS_S, exclude=lambda p: p.group)
        return float(np.mean([np.mean(np.abs(r)) for _, _, r in res]))

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_batches = -(-len(rows) // cfg.batch_size)
    history = [val_mae()]
    best = (history[0], 0, copy.deepcopy(model.state_dict()))
    if on_best:
        on_best(0, history[0])
    status = "succeeded"
    with single_thread():
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            picks = [items[rng.integers(len(items))] for items in rows]
            order = rng.permutation(len(picks))
            loss_sum = 0.0
            for b, start in enumerate(range(0, len(order), cfg.batch_size), start=1):
                if cancel is not None and cancel():
                    status = "cancelled"
                    break
                chunk = [picks[i] for i in order[start:start + cfg.batch_size]]
                batch = collate(chunk)
                k = min(it["k"] for it in chunk)  # one prefix length per batch: the shortest
                ro = model.rollout(batch, prefix_steps=k)
                mask = batch.mask[:, k:].to(torch.float32)
                loss = ((ro.pred_f[:, k:] - batch.temps_f[:, k:]).abs() * mask).sum() / mask.sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                loss_sum += float(loss.detach()) * len(chunk)
                if on_batch:
                    on_batch({"epoch": epoch, "epochs": cfg.epochs, "batch": b, "n_batches": n_batches,
                              "loss": float(loss.detach()), "lr": cfg.lr})
            if status == "cancelled":
                break
            model.eval()
            history.append(val_mae())
            if on_epoch:
                on_epoch({"epoch": epoch, "train_loss": loss_sum / len(picks), "val_forecast_mae_f": history[-1]})
            if history[-1] < best[0]:
                best = (history[-1], epoch, copy.deepcopy(model.state_dict()))
                if on_best:
                    on_best(epoch, history[-1])
    model.load_state_dict(best[2])
    model.eval()
    info = {"status": status, "best_epoch": best[1], "best_val_mae_f": round(best[0], 3),
            "val_mae_f_by_epoch": [round(h, 3) for h in history],
            "n_inner_train": len(inner), "n_val": len(val)}
    log.info("forecast fine-tune: %s, best epoch %d, val MAE by epoch %s", status, best[1],
             info["val_mae_f_by_epoch"])
    return info


def finetune_on_prefixes(model, profiles: Sequence[Profile], config: FinetuneConfig | None = None):
    """A copy of a prior `model` fine-tuned to correct the prefix kNN from random cut points.

    Returns (model, info). The epoch (0 = unchanged) is picked by the forecast MAE of the rest at
    cuts 120/240/360 s on a grouped inner split, so fine-tuning can only be kept when it helps there.
    """
    cfg = config or FinetuneConfig()
    inner, val = train_val_split(list(profiles), cfg.val_frac, cfg.seed, grouped=True)
    tuned = copy.deepcopy(model)
    info = finetune_in_place(tuned, inner, val, cfg)
    return tuned, info

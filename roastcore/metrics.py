"""Scoring generated curves against real roasts, and the baselines scored the same way.

- `masked_errors`: MAE / RMSE over masked positions, overall and per row.
- `free_run_metrics(profiles, curves)`: scores 1 s generated curves (from a model or a
  baseline) against the real ones: MAE/RMSE, finish, TP, FCs, DTR, RoR shape, physics.
- `score_baselines(train, val)`: the one place baselines are fitted and scored: on `train`, or
  by grouped k-fold cross-validation inside `val` when there is no training set.
- `MAE_BANDS` / `mae_band`: the one interpretation of an MAE in °F.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from roastcore.baselines import AlignedKNN, CurveGenerator, MeanCurve, PlainKNN, curve_1s
from roastcore.physics import DEFAULT_THRESHOLDS, PhysicsThresholds, check_curve, summarize
from roastcore.profile import Profile, find_turning_point, rate_of_rise
from roastcore.splits import group_kfold

FINISH_TOLERANCE_F = 10.0
ERROR_BINS = 10  # free-running error by tenth of the roast (normalised time)

# Interpretation bands for an MAE in °F (shown, never the headline verdict).
MAE_BANDS = ((10.0, "excellent"), (50.0, "good"), (150.0, "moderate"))


def mae_band(mae_f: float) -> str:
    for limit, label in MAE_BANDS:
        if mae_f < limit:
            return label
    return "poor"


def _nanmean(values) -> float | None:
    xs = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(xs)) if xs else None



def masked_errors(pred, target, mask) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(MAE, RMSE) pooled over masked positions, then per-row MAE and RMSE (NaN for empty rows)."""
    pred = torch.as_tensor(pred, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if pred.shape != target.shape or pred.shape != mask.shape:
        raise ValueError(f"masked_errors: shapes differ: pred {tuple(pred.shape)}, target "
                         f"{tuple(target.shape)}, mask {tuple(mask.shape)}")
    if pred.ndim == 1:
        pred, target, mask = pred[None], target[None], mask[None]
    w = mask.to(torch.float64)
    err = (pred - target) * w
    count = w.sum(dim=-1)
    total = float(count.sum())
    if total == 0:
        raise ValueError("masked_errors: the mask selects no position")
    mae = float(err.abs().sum() / total)
    rmse = math.sqrt(float(err.square().sum() / total))
    with np.errstate(invalid="ignore", divide="ignore"):
        row_mae = (err.abs().sum(-1) / count).numpy()
        row_rmse = np.sqrt((err.square().sum(-1) / count).numpy())
    return mae, rmse, row_mae, row_rmse


# ------------------------------------------------------------------ free running
@dataclass
class FreeRunResult:
    mae_f: float  # mean over profiles of each curve's MAE (every profile weighs the same)
    rmse_f: float  # sqrt of the mean per-profile MSE
    finish_mae_f: float
    finish_within_10_pct: float
    tp_temp_mae_f: float | None
    tp_time_mae_s: float | None
    tp_found_pct: float | None  # of profiles with a real TP, share whose generated curve dips too
    fcs_time_mae_s: float | None
    fcs_missed: int  # real FCs known but the generated curve never reaches its temperature
    dtr_mae_pct: float | None  # development-time ratio error, percentage points
    ror_mae_f_per_min: float | None
    physics_valid_pct: float | None
    physics_pass_pct: dict | None
    error_by_time_f: list[float]  # MAE per tenth of the roast
    error_growth: float  # late MAE (last 30%) / mid MAE (10-40%): > 1 means error grows
    gen_std_f: float  # median over profiles of the generated curve's std (collapse sign)
    real_std_f: float
    n_profiles: int
    prefix_s: float
    per_profile: list[dict] = field(default_factory=list)

    def to_dict(self, include_profiles: bool = True) -> dict:
        d = dataclasses.asdict(self)
        if not include_profiles:
            d.pop("per_profile")
        return d


def _curve_metrics(real: np.ndarray, gen: np.ndarray, start: int, real_fcs_s: float | None) -> dict:
    """Metrics for one 1 s curve pair; positions before `start` (charge or prefix) are given."""
    n = real.size
    err = gen[start:] - real[start:]
    row = {"mae_f": float(np.mean(np.abs(err))), "rmse_f": float(np.sqrt(np.mean(err ** 2))),
           "finish_error_f": float(gen[-1] - real[-1])}
    # TP: the generated TP is its minimum in the same search window, so a curve that never
    # dips still gets a (large) time error; `tp_found` says whether it dipped like a real TP.
    real_tp = find_turning_point(real, 1.0)
    if real_tp is not None:
        window = gen[: max(3, int(n * 0.4))]
        gi = int(np.argmin(window))
        row.update(tp_time_error_s=float(gi - real_tp[0]), tp_temp_error_f=float(window[gi] - real_tp[1]),
                   tp_found=find_turning_point(gen, 1.0) is not None)
    # FCs on the generated curve: when BT first crosses the real FCs temperature after its TP.
    if real_fcs_s is not None:
        fcs_temp = float(np.interp(real_fcs_s, np.arange(n), real))
        gtp = find_turning_point(gen, 1.0)
        g0 = 0 if gtp is None else int(gtp[0])
        cross = np.flatnonzero(gen[g0:] >= fcs_temp)
        if cross.size:
            g_fcs = float(g0 + cross[0])
            duration = float(n - 1)
            row.update(fcs_time_error_s=g_fcs - real_fcs_s,
                       dtr_error_pct=100.0 * ((duration - g_fcs) - (duration - real_fcs_s)) / duration)
        else:
            row["fcs_missed"] = True
    # RoR shape from the real TP (or 60 s) on, where RoR is what a roaster watches.
    ror_from = int(real_tp[0]) if real_tp is not None else 60
    ror_from = max(ror_from, start)
    if ror_from < n - 1:
        row["ror_mae_f_per_min"] = float(np.mean(np.abs(rate_of_rise(gen, 1.0) - rate_of_rise(real, 1.0))[ror_from:]))
    bins = np.minimum((np.arange(n) / max(n - 1, 1) * ERROR_BINS).astype(int), ERROR_BINS - 1)
    abs_err = np.abs(gen - real)
    abs_err[:start] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row["error_by_time_f"] = [float(np.nanmean(abs_err[bins == b])) if np.any(~np.isnan(abs_err[bins == b]))
                                  else float("nan") for b in range(ERROR_BINS)]
    # Spread of what was generated (the given charge/prefix would make a flat output look varied).
    row["gen_std_f"] = float(np.std(gen[start:]))
    row["real_std_f"] = float(np.std(real[start:]))
    return row


def free_run_metrics(profiles: Sequence[Profile], curves: Sequence[np.ndarray], prefix_s: float = 0.0,
                     physics: bool = True, thresholds: PhysicsThresholds = DEFAULT_THRESHOLDS) -> FreeRunResult:
    """Score generated 1 s curves against the real profiles (same order, same lengths)."""
    if len(profiles) != len(curves) or not profiles:
        raise ValueError(f"free-run metrics: {len(profiles)} profiles but {len(curves)} curves")
    rows, phys = [], []
    start = max(1, int(prefix_s) + 1)  # index 0 (charge) and a real prefix are given, not generated
    for p, gen in zip(profiles, curves, strict=True):
        real = curve_1s(p)
        gen = np.asarray(gen, dtype=float)
        if gen.shape != real.shape:
            raise ValueError(f"free-run metrics: profile {p.id}: generated {gen.size} samples, real {real.size}")
        scale = (real.size - 1) / p.duration_s if p.duration_s > 0 else 1.0
        fcs = p.events.get("FCs")
        row = _curve_metrics(real, gen, min(start, real.size - 1), None if fcs is None else fcs * scale)
        row["profile_id"] = p.id
        if physics:
            result = check_curve(gen, 1.0, thresholds, profile_id=p.id)
            phys.append(result)
            row["physics_passed"] = result.passed
            row["physics_failures"] = result.failures
        rows.append(row)
    by_time = np.array([r["error_by_time_f"] for r in rows], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins (a prefix covers them)
        error_by_time = [float(x) for x in np.nanmean(by_time, axis=0)]
    mid = _nanmean(error_by_time[1:4]) or 0.0
    late = _nanmean(error_by_time[7:]) or 0.0
    tp_rows = [r for r in rows if "tp_time_error_s" in r]
    summary = summarize(phys) if physics else None
    return FreeRunResult(
        mae_f=float(np.mean([r["mae_f"] for r in rows])),
        rmse_f=float(np.sqrt(np.mean([r["rmse_f"] ** 2 for r in rows]))),
        finish_mae_f=float(np.mean([abs(r["finish_error_f"]) for r in rows])),
        finish_within_10_pct=100.0 * float(np.mean([abs(r["finish_error_f"]) <= FINISH_TOLERANCE_F for r in rows])),
        tp_temp_mae_f=_nanmean(abs(r["tp_temp_error_f"]) for r in tp_rows),
        tp_time_mae_s=_nanmean(abs(r["tp_time_error_s"]) for r in tp_rows),
        tp_found_pct=100.0 * float(np.mean([r["tp_found"] for r in tp_rows])) if tp_rows else None,
        fcs_time_mae_s=_nanmean(abs(r["fcs_time_error_s"]) for r in rows if "fcs_time_error_s" in r),
        fcs_missed=sum(1 for r in rows if r.get("fcs_missed")),
        dtr_mae_pct=_nanmean(abs(r["dtr_error_pct"]) for r in rows if "dtr_error_pct" in r),
        ror_mae_f_per_min=_nanmean(r.get("ror_mae_f_per_min") for r in rows),
        physics_valid_pct=None if summary is None else summary.valid_pct,
        physics_pass_pct=None if summary is None else dict(summary.pass_pct),
        error_by_time_f=error_by_time,
        error_growth=float(late / max(mid, 1.0)),
        gen_std_f=float(np.median([r["gen_std_f"] for r in rows])),
        real_std_f=float(np.median([r["real_std_f"] for r in rows])),
        n_profiles=len(rows), prefix_s=float(prefix_s), per_profile=rows)


def evaluate_generator(generator: CurveGenerator, profiles: Sequence[Profile], prefix_s: float = 0.0,
                       physics: bool = True, progress: Callable[[int, int], None] | None = None) -> FreeRunResult:
    curves = generator.generate_many(list(profiles), prefix_s=prefix_s, progress=progress)
    return free_run_metrics(profiles, curves, prefix_s=prefix_s, physics=physics)


# ------------------------------------------------------------------ baselines
BASELINE_FACTORIES: dict[str, Callable[[], CurveGenerator]] = {
    "mean_curve": MeanCurve, "knn": lambda: PlainKNN(k=5), "aligned_knn": AlignedKNN}


def score_baselines(train: Sequence[Profile] | None, val: Sequence[Profile], prefix_s: float = 0.0,
                    folds: int = 5, seed: int = 0, physics: bool = True,
                    factories: dict[str, Callable[[], CurveGenerator]] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """Free-running baselines on `val`, fitted on `train`: {name: FreeRunResult fields, "k",
    "fit_s", "fold_mae_f"}.

    With `train=None` (evaluating on everything) each profile is generated by baselines fitted
    on the other folds of a grouped k-fold split, so no baseline ever sees its own product;
    "fold_mae_f" then lists each fold's MAE.
    """
    factories = factories or BASELINE_FACTORIES
    val = list(val)
    if train is not None:
        if not train:
            raise ValueError("baselines: no training profiles to fit on")
        plan = [(list(train), list(range(len(val))))]
    else:
        n_groups = len({p.group for p in val})
        if n_groups < 2:
            raise ValueError("baselines: evaluating on all profiles needs at least 2 product groups")
        plan = [([val[i] for i in tr], va) for tr, va in group_kfold(val, min(folds, n_groups), seed)]
    out = {}
    total, done = len(plan) * len(factories), 0
    for name, make in factories.items():
        curves: list = [None] * len(val)
        ks = []
        started = time.monotonic()
        for fit_on, idx in plan:
            gen = make().fit(fit_on)
            ks.append(gen.describe().get("k"))
            for i, c in zip(idx, gen.generate_many([val[i] for i in idx], prefix_s=prefix_s), strict=True):
                curves[i] = c
            done += 1
            if progress:
                progress(done, total)
        fit_s = time.monotonic() - started
        result = free_run_metrics(val, curves, prefix_s=prefix_s, physics=physics)
        entry = result.to_dict(include_profiles=False)
        entry["fit_s"] = fit_s
        entry["k"] = ks[0] if len(set(ks)) == 1 else max(set(ks), key=ks.count)
        maes = np.array([r["mae_f"] for r in result.per_profile])
        entry["fold_mae_f"] = [float(maes[idx].mean()) for _, idx in plan]
        out[name] = entry
    return out

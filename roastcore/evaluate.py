"""Evaluation: teacher forcing, free running, physics and baselines, one code path for all.

- `masked_errors`: MAE / RMSE over masked positions, overall and per row.
- `teacher_forcing(predictor, profiles, encoder, step_s)`: the whole set in padded, masked
  batches; any object with `predict_next_f(batch) -> [B, L-1] °F` (the model, `Persistence`,
  a test's hand-built predictor). Persistence is always scored on the same positions at the
  same step, plus at 1 s for reference (see docs/evaluation.md).
- `free_run_metrics(profiles, curves)`: scores 1 s generated curves (from the model adapter or
  a baseline) against the real ones: MAE/RMSE, finish, TP, FCs, DTR, RoR shape, physics.
- `evaluate_generator(generator, profiles)`: generate + score.
- `evaluate_run(run_dir, profiles, ...) -> EvaluationReport`: what the CLI and the dashboard
  call; cached per (checkpoint content, dataset, options) in RUN_DIR/eval_cache/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from roastcore.baselines import (
    AlignedKNN,
    CurveGenerator,
    MeanCurve,
    Persistence,
    PlainKNN,
    curve_1s,
)
from roastcore.dataset import RoastDataset, collate, group_kfold
from roastcore.fsutil import atomic_write_text
from roastcore.physics import DEFAULT_THRESHOLDS, PhysicsThresholds, check_curve, summarize
from roastcore.profile import Profile, find_turning_point, rate_of_rise

log = logging.getLogger(__name__)

# Bump when a metric's definition changes: old cached reports then stop matching.
EVAL_VERSION = 2  # 2: a prior model's neighbours leave the scored roast's product out
TF_BATCH_SIZE = 256  # rows per teacher-forcing forward pass (the set is scored in few batches)
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


# ------------------------------------------------------------------ metrics
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


@dataclass
class TeacherForcingResult:
    mae_f: float
    rmse_f: float
    persistence_mae_f: float  # at the model's step, same positions: the fair reference
    persistence_rmse_f: float
    persistence_1s_mae_f: float  # at 1 s on the raw curves, for reference
    skill_ratio: float  # model MAE / persistence MAE (same step); < 1 beats persistence
    band: str
    step_s: float
    n_profiles: int
    n_positions: int
    per_profile: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def teacher_forcing(predictor, profiles: Sequence[Profile], encoder, step_s: float,
                    max_len: int | None = None, batch_size: int = TF_BATCH_SIZE,
                    progress: Callable[[int, int], None] | None = None) -> TeacherForcingResult:
    """Score next-step predictions from real history on every position of every profile.

    Profiles are resampled to `step_s` (the predictor's step) and scored in padded, masked
    batches; persistence (T[t] = T[t-1]) is scored on exactly the same positions.
    """
    if not profiles:
        raise ValueError("teacher forcing: no profiles to evaluate")
    # A prior model (model.prior_library) gets its aligned-kNN prior on the same grid; a roast
    # its library holds (the run's validation roasts) gets it from the other products.
    dataset = RoastDataset(list(profiles), encoder, step_s, max_len, prior=getattr(predictor, "prior_library", None),
                           exclude_own_group="held")
    preds, perss, targets, masks = [], [], [], []
    was_training = getattr(predictor, "training", False)
    if hasattr(predictor, "eval"):
        predictor.eval()
    try:
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            with torch.no_grad():
                pred = predictor.predict_next_f(batch)
            target = batch.temps_f[:, 1:]
            if tuple(pred.shape) != tuple(target.shape):
                raise ValueError(f"predict_next_f returned shape {tuple(pred.shape)}, expected {tuple(target.shape)}")
            preds.append(pred.detach().double())
            perss.append(Persistence(step_s).predict_next_f(batch).double())
            targets.append(target.double())
            masks.append(batch.mask[:, 1:])
            if progress:
                progress(min(start + batch_size, len(dataset)), len(dataset))
    finally:
        if hasattr(predictor, "train") and was_training:
            predictor.train(True)
    width = max(t.shape[1] for t in targets)

    def cat(parts, fill):
        return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1]), value=fill) for p in parts])

    pred, pers, target = cat(preds, 0.0), cat(perss, 0.0), cat(targets, 0.0)
    mask = torch.cat([torch.nn.functional.pad(m, (0, width - m.shape[1]), value=False) for m in masks])
    mae, rmse, row_mae, row_rmse = masked_errors(pred, target, mask)
    p_mae, p_rmse, p_row_mae, _ = masked_errors(pers, target, mask)
    diffs = [np.abs(np.diff(curve_1s(p))) for p in profiles]
    p1_mae = float(np.concatenate(diffs).mean())
    per_profile = [
        {"profile_id": p.id, "mae_f": float(row_mae[i]), "rmse_f": float(row_rmse[i]),
         "persistence_mae_f": float(p_row_mae[i])}
        for i, p in enumerate(profiles)
    ]
    return TeacherForcingResult(
        mae_f=mae, rmse_f=rmse, persistence_mae_f=p_mae, persistence_rmse_f=p_rmse,
        persistence_1s_mae_f=p1_mae, skill_ratio=mae / p_mae if p_mae > 0 else float("inf"),
        band=mae_band(mae), step_s=float(step_s), n_profiles=len(profiles),
        n_positions=int(mask.sum()), per_profile=per_profile)


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


def baseline_results(train: Sequence[Profile] | None, val: Sequence[Profile], prefix_s: float = 0.0,
                     folds: int = 5, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, dict]:
    """Free-running baselines on `val`, fitted on `train`.

    With `train=None` (evaluating on everything) each profile is generated by baselines fitted
    on the other folds of a grouped k-fold split, so no baseline ever sees its own product.
    """
    factories = {"mean_curve": MeanCurve, "knn": lambda: PlainKNN(k=5), "aligned_knn": AlignedKNN}
    if train is not None:
        if not train:
            raise ValueError("baselines: no training profiles to fit on")
        plan = [(list(train), list(range(len(val))))]
    else:
        n_groups = len({p.group for p in val})
        if n_groups < 2:
            raise ValueError("baselines: evaluating on all profiles needs at least 2 product groups")
        plan = [([val[i] for i in tr], va) for tr, va in group_kfold(list(val), min(folds, n_groups), seed)]
    out = {}
    total, done = len(plan) * len(factories), 0
    for name, make in factories.items():
        curves: list = [None] * len(val)
        ks = []
        for fit_on, idx in plan:
            gen = make().fit(fit_on)
            ks.append(gen.describe().get("k"))
            for i, c in zip(idx, gen.generate_many([val[i] for i in idx], prefix_s=prefix_s), strict=True):
                curves[i] = c
            done += 1
            if progress:
                progress(done, total)
        result = free_run_metrics(val, curves, prefix_s=prefix_s)
        entry = result.to_dict(include_profiles=False)
        if ks[0] is not None:
            entry["k"] = ks[0] if len(set(ks)) == 1 else max(set(ks), key=ks.count)
        out[name] = entry
    return out


def evaluate_predictor(predictor, generator: CurveGenerator, val: Sequence[Profile],
                       train: Sequence[Profile] | None, encoder, step_s: float, prefix_s: float = 0.0,
                       max_len: int | None = None, baselines: dict | None = None,
                       progress: Callable[[int, str], None] | None = None) -> dict:
    """Teacher forcing + free running + baselines + diagnosis for any predictor/generator pair.

    `predictor` has `predict_next_f(batch)`; `generator` is a CurveGenerator (the model adapter
    or a test's hand-built one). Pass precomputed `baselines` to skip refitting them. Returns
    the report sections as dicts: teacher_forcing, free_run, baselines, diagnosis, notes.
    """
    from roastcore.diagnose import diagnose_metrics

    notes: list[str] = []
    tf = teacher_forcing(predictor, val, encoder, step_s, max_len=max_len)
    if progress:
        progress(1, "teacher forcing")
    curves = generator.generate_many(list(val), prefix_s=prefix_s)
    free = free_run_metrics(val, curves, prefix_s=prefix_s)
    free_dict = free.to_dict()
    steps = [s for s in getattr(generator, "last_steps", []) or [] if s is not None]
    raw_std = clamp_pct = None
    if steps:
        raw_std = float(np.median([np.std(s.raw_f[s.prefix_steps:]) for s in steps]))
        # What the model fed itself after the prefix, at its own step: the variance verdict's
        # sequence (the 1 s curve's interpolated fall from the charge would hide a flat output).
        free_dict["fed_std_f"] = float(np.median([np.std(s.clamped_f[s.prefix_steps:]) for s in steps]))
        clamp_pct = 100.0 * float(np.mean([s.clamp_active.any() for s in steps]))
        truncated = sum(1 for s in steps if s.truncated)
        if truncated:
            notes.append(f"{truncated} roasts exceed the model's max_len ({max_len} steps at {step_s:g} s); "
                         "their generated tail holds the last value")
    free_dict["raw_std_f"], free_dict["clamp_active_pct"] = raw_std, clamp_pct
    if progress:
        progress(2, "free running")
    if baselines is None:
        baselines = baseline_results(train, val, prefix_s=prefix_s)
    if progress:
        progress(3, "baselines")
    diagnosis = diagnose_metrics(tf, free, baselines["aligned_knn"]["mae_f"], raw_std_f=raw_std,
                                 clamp_active_pct=clamp_pct, fed_std_f=free_dict.get("fed_std_f"))
    diagnosis.evidence.extend(n for n in notes if "max_len" in n)  # a truncated run explains a flat tail
    if progress:
        progress(4, "diagnosis")
    return {"teacher_forcing": tf.to_dict(), "free_run": free_dict, "baselines": baselines,
            "diagnosis": diagnosis.to_dict(), "notes": notes}


# ------------------------------------------------------------------ report
@dataclass
class EvaluationReport:
    run_dir: str
    split: str  # what was evaluated: "val", "all", or "all (data differs from the run's)"
    prefix_s: float
    step_s: float
    n_profiles: int
    n_train_profiles: int
    teacher_forcing: dict
    free_run: dict
    baselines: dict
    diagnosis: dict
    cache_key: str = ""
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EvaluationReport:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dataset_fingerprint(profiles: Sequence[Profile]) -> str:
    from roastcore.io import dataset_fingerprint

    return dataset_fingerprint(list(profiles))


def cache_key(run_dir: Path, profiles: Sequence[Profile], split: str, prefix_s: float) -> str:
    """Hash of the checkpoint's weights (content), the dataset and the options."""
    weights = Path(run_dir) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint {run_dir}: model.safetensors is missing")
    parts = [f"v{EVAL_VERSION}", _file_digest(weights), _dataset_fingerprint(profiles), split, f"{float(prefix_s):g}"]
    for name in ("config.json", "scaler.json", "encoder.json", "prior.json"):
        if (Path(run_dir) / name).is_file():
            parts.append(_file_digest(Path(run_dir) / name))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _val_ids(manifest: dict) -> list[str] | None:
    """The validation profile ids recorded by the trainer, under whichever key it used."""
    for key in ("val_ids", "val_profile_ids", "validation_ids"):
        if isinstance(manifest.get(key), list):
            return [str(x) for x in manifest[key]]
    split = manifest.get("split")
    if isinstance(split, dict):
        for key in ("val_ids", "val"):
            if isinstance(split.get(key), list):
                return [str(x) for x in split[key]]
    return None


def select_split(profiles: Sequence[Profile], manifest: dict, split: str) -> tuple[list[Profile], list[Profile] | None, str, list[str]]:
    """(evaluate on, fit baselines on or None for grouped CV, split label, notes)."""
    notes: list[str] = []
    if split not in ("val", "all"):
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    profiles = list(profiles)
    if split == "all":
        return profiles, None, "all", ["baselines scored by grouped 5-fold CV (no product on both sides)"]
    ids = _val_ids(manifest)
    if not ids:
        raise ValueError("checkpoint manifest.json records no validation ids; use --split all")
    wanted = set(ids)
    val = [p for p in profiles if p.id in wanted]
    if not val:
        notes.append("none of the run's validation ids are in this data: every profile is unseen, "
                     "evaluated as 'all' with cross-validated baselines")
        return profiles, None, "all (data differs from the run's)", notes
    if len(val) < len(wanted):
        notes.append(f"{len(wanted) - len(val)} of the run's {len(wanted)} validation profiles are not in this data")
    train = [p for p in profiles if p.id not in wanted]
    if not train:
        return val, None, "val", notes + ["no training profiles in this data; baselines cross-validated on val"]
    return val, train, "val", notes


def evaluate_run(run_dir, profiles: Sequence[Profile], split: str = "val", prefix_s: float = 0,
                 use_cache: bool = True, progress: Callable[[int, int, str], None] | None = None,
                 device: str = "cpu") -> EvaluationReport:
    """Teacher forcing, free running, physics, baselines and the diagnosis for one checkpoint.

    `progress(done, total, stage)` is called as each of the stages finishes. Results are cached
    as JSON in RUN_DIR/eval_cache/<key>.json (see `cache_key`); `use_cache=False` recomputes.
    """
    from roastcore.checkpoints import load_run
    from roastcore.generate import ModelGenerator

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"checkpoint directory {run_dir} does not exist")
    if prefix_s < 0:
        raise ValueError(f"prefix_s must be >= 0, got {prefix_s}")
    profiles = list(profiles)
    if not profiles:
        raise ValueError("evaluate: the dataset holds no profiles")
    stages = 5

    def report_progress(done, stage):
        log.info("evaluate %s: %s", run_dir.name, stage)
        if progress:
            progress(done, stages, stage)

    key = cache_key(run_dir, profiles, split, prefix_s)
    cache_file = run_dir / "eval_cache" / f"{key}.json"
    if use_cache and cache_file.is_file():
        try:
            report = EvaluationReport.from_dict(json.loads(cache_file.read_text()))
            report.from_cache = True
            report_progress(stages, "cached")
            return report
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable evaluation cache %s: %s", cache_file, exc)

    loaded = load_run(run_dir, device)
    model = loaded.model
    val, train, split_label, notes = select_split(profiles, loaded.manifest or {}, split)
    report_progress(1, "split")
    parts = evaluate_predictor(model, ModelGenerator(model), val, train, model.encoder,
                               float(model.config.step_s), prefix_s=prefix_s, max_len=model.config.max_len,
                               progress=lambda done, stage: report_progress(1 + done, stage))
    if parts["diagnosis"]["verdict"] == "collapsed" and not model.config.normalize:
        parts["diagnosis"]["evidence"].append("the run feeds raw °F to the network (normalize=false), "
                                              "the known cause of this collapse")
    report = EvaluationReport(
        run_dir=str(run_dir), split=split_label, prefix_s=float(prefix_s), step_s=float(model.config.step_s),
        n_profiles=len(val), n_train_profiles=0 if train is None else len(train),
        teacher_forcing=parts["teacher_forcing"], free_run=parts["free_run"], baselines=parts["baselines"],
        diagnosis=parts["diagnosis"], cache_key=key, notes=notes + parts["notes"])
    if use_cache:
        _write_cache(cache_file, report)
    return report


def _write_cache(path: Path, report: EvaluationReport) -> None:
    # atomic: a dashboard reading the cache never sees half a report
    atomic_write_text(path, json.dumps(_jsonable(report.to_dict())))


def _jsonable(obj):
    """NaN/inf -> None so the cache and --json output are strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def to_json(report: EvaluationReport) -> str:
    return json.dumps(_jsonable(report.to_dict()))

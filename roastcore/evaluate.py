"""Evaluating a checkpoint: teacher forcing, free running, physics, baselines and the diagnosis.

- `teacher_forcing(predictor, profiles, encoder, step_s)`: the whole set in padded, masked
  batches; any object with `predict_next_f(batch) -> [B, L-1] °F` (the model, `Persistence`,
  a test's hand-built predictor). Persistence is always scored on the same positions at the
  same step, plus at 1 s for reference (see docs/evaluation.md).
- `evaluate_predictor(...)`: teacher forcing + free running (metrics.free_run_metrics) +
  baselines (metrics.score_baselines) + the diagnosis (diagnose.diagnose_metrics).
- `evaluate_run(run_dir, profiles, ...) -> EvaluationReport`: what the CLI and the dashboard
  call; cached per (checkpoint content, dataset, options) in RUN_DIR/eval_cache/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from roastcore import fsutil
from roastcore.baselines import CurveGenerator, Persistence, curve_1s
from roastcore.batch import collate
from roastcore.checkpoints import load_run
from roastcore.dataset import RoastDataset
from roastcore.diagnose import diagnose_metrics
from roastcore.generate import ModelGenerator
from roastcore.io import dataset_fingerprint
from roastcore.metrics import free_run_metrics, mae_band, masked_errors, score_baselines
from roastcore.profile import Profile

log = logging.getLogger(__name__)

# Bump when a metric's definition changes: old cached reports then stop matching.
EVAL_VERSION = 2  # 2: a prior model's neighbours leave the scored roast's product out
TF_BATCH_SIZE = 256  # rows per teacher-forcing forward pass (the set is scored in few batches)


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


def evaluate_predictor(predictor, generator: CurveGenerator, val: Sequence[Profile],
                       train: Sequence[Profile] | None, encoder, step_s: float, prefix_s: float = 0.0,
                       max_len: int | None = None, baselines: dict | None = None,
                       progress: Callable[[int, str], None] | None = None) -> dict:
    """Teacher forcing + free running + baselines + diagnosis for any predictor/generator pair.

    `predictor` has `predict_next_f(batch)`; `generator` is a CurveGenerator (the model adapter
    or a test's hand-built one). Pass precomputed `baselines` to skip refitting them. Returns
    the report sections as dicts: teacher_forcing, free_run, baselines, diagnosis, notes.
    """
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
        baselines = score_baselines(train, val, prefix_s=prefix_s)
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
    fsutil.atomic_write_text(path, fsutil.to_json(report.to_dict()))


def to_json(report: EvaluationReport) -> str:
    return fsutil.to_json(report.to_dict())

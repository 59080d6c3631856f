"""Evaluating a checkpoint: teacher forcing, free running, physics, baselines and the diagnosis.

- `teacher_forcing(predictor, profiles, encoder, step_s)`: the whole set in padded, masked
  batches; any object with `predict_next_f(batch) -> [B, L-1] °F` (the model, `Persistence`,
  a test's hand-built predictor). Persistence is always scored on the same positions at the
  same step, plus at 1 s for reference (see docs/evaluation.md).
- `evaluate_predictor(...)`: teacher forcing + free running (metrics.free_run_metrics) +
  baselines (metrics.score_baselines) + the diagnosis (diagnose.diagnose_metrics).
- `evaluate_run(run_dir, profiles, ...) -> EvaluationReport`: what the CLI and the dashboard
  call; cached per (checkpoint content, dataset, options) in RUN_DIR/eval_cache/.
- `baseline_fit(...)`: where the baselines are fitted. The model learned from its run's training
  split, so the baselines are fitted on that same split whenever it can be had (the evaluated
  data itself when it is the run's, else the run's recorded data source, verified by its
  fingerprint, else a prior model's library); otherwise the report says in words which
  comparison was made instead.
- `score_run(run_dir)`: the run scored on its own validation roasts, stored atomically as
  RUN_DIR/scores.json (`ScoreOnFinish` does it at the end of training, `python -m roastcore
  score` for older or imported runs); `stored_report(run_dir)` reads it back (None if absent
  or stale), so pages only read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from roastcore import fsutil, run_generated
from roastcore.baselines import CurveGenerator, Persistence, curve_1s
from roastcore.batch import collate
from roastcore.checkpoints import RunError, load_run, now_iso, read_json, run_usability
from roastcore.dataset import RoastDataset
from roastcore.diagnose import default_trace_steps, diagnose_metrics, step_trace
from roastcore.forecast_bands import ConformalBands
from roastcore.generate import ModelGenerator
from roastcore.io import dataset_fingerprint, load_source
from roastcore.metrics import free_run_metrics, mae_band, masked_errors, score_baselines
from roastcore.profile import Profile, ProfileError, ProfileMeta
from roastcore.run_scores import SCORES, read_scores_doc

log = logging.getLogger(__name__)

# Bump when a metric's definition changes: old cached reports then stop matching.
EVAL_VERSION = 3  # 3: baselines fitted on the run's own training data; verdict vs the strongest baseline
SCORES_VERSION = 1  # the layout of RUN_DIR/scores.json
MIN_FIT_PROFILES = 2  # fewer training roasts than this (after removing evaluated ones): cross-validate
CV_FOLDS = 5
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
                       progress: Callable[[int, str], None] | None = None, preset: str | None = None,
                       comparison: str | None = None) -> dict:
    """Teacher forcing + free running + baselines + diagnosis for any predictor/generator pair.

    `predictor` has `predict_next_f(batch)`; `generator` is a CurveGenerator (the model adapter
    or a test's hand-built one). Baselines are fitted on `train` (None: grouped k-fold CV inside
    `val`); pass precomputed `baselines` to skip refitting them. `preset` (the run's own) and
    `comparison` (how the baselines were fitted, in words) go to the diagnosis. Returns the
    report sections as dicts: teacher_forcing, free_run, baselines, diagnosis, notes.
    """
    notes: list[str] = []
    tf = teacher_forcing(predictor, val, encoder, step_s, max_len=max_len)
    if progress:
        progress(1, "teacher forcing")
    curves = generator.generate_many(list(val), prefix_s=prefix_s)
    free = free_run_metrics(val, curves, prefix_s=prefix_s)
    free_dict = free.to_dict()
    free_dict["band"] = charge_band(val, curves, prefix_s)
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
        baselines = score_baselines(train, val, prefix_s=prefix_s, folds=CV_FOLDS)
    if progress:
        progress(3, "baselines")
    diagnosis = diagnose_metrics(tf, free, baselines["aligned_knn"]["mae_f"], raw_std_f=raw_std,
                                 clamp_active_pct=clamp_pct, fed_std_f=free_dict.get("fed_std_f"),
                                 baseline_maes={k: v["mae_f"] for k, v in baselines.items()},
                                 preset=preset, comparison=comparison)
    diagnosis.evidence.extend(n for n in notes if "max_len" in n)  # a truncated run explains a flat tail
    if progress:
        progress(4, "diagnosis")
    return {"teacher_forcing": tf.to_dict(), "free_run": free_dict, "baselines": baselines,
            "diagnosis": diagnosis.to_dict(), "notes": notes}


def charge_band(profiles: Sequence[Profile], curves: Sequence[np.ndarray], prefix_s: float = 0.0) -> dict | None:
    """The 80% band of curves generated from the charge (or a prefix): split-conformal quantiles of
    the signed errors (real - generated) of the evaluated roasts by seconds after the start, the
    same rule as a forecast's band (roastcore.forecast_bands). Drawn on Compare curves; it
    covers roasts the run never saw when they are its validation roasts."""
    cut = int(prefix_s)
    start = max(1, cut + 1)  # as free_run_metrics: the charge and a real prefix are given
    residuals = []
    for p, gen in zip(profiles, curves, strict=True):
        real, gen = curve_1s(p), np.asarray(gen, dtype=float)
        if gen.shape != real.shape or real.size <= start:
            continue
        h = np.arange(start, real.size, dtype=float) - cut
        residuals.append((cut, h, real[start:] - gen[start:]))
    if not residuals:
        return None
    return ConformalBands.from_residuals(residuals).to_dict()


# ------------------------------------------------------------------ report
@dataclass
class EvaluationReport:
    run_dir: str
    split: str  # what was evaluated: "val", "all", or "all (data differs from the run's)"
    prefix_s: float
    step_s: float
    n_profiles: int
    n_train_profiles: int  # roasts the baselines were fitted on (0: cross-validated)
    teacher_forcing: dict
    free_run: dict
    baselines: dict
    diagnosis: dict
    cache_key: str = ""
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)
    baseline_fit: dict = field(default_factory=dict)  # BaselineFit.to_dict(): kind, n_profiles, source, description

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EvaluationReport:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _file_digest(path: Path) -> str:
    return fsutil.hash_file(hashlib.sha256(), path).hexdigest()


def _dataset_fingerprint(profiles: Sequence[Profile]) -> str:
    return dataset_fingerprint(list(profiles))


def cache_key(run_dir: Path, profiles: Sequence[Profile], split: str, prefix_s: float) -> str:
    """Hash of the checkpoint's weights (content), the dataset and the options.

    The baselines' fit set is not in the key: it is the run's own training data, fixed by the
    run (or, when that is unavailable, derived from the evaluated data and the run)."""
    weights = Path(run_dir) / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint {run_dir}: model.safetensors is missing")
    parts = [f"v{EVAL_VERSION}", _file_digest(weights), _dataset_fingerprint(profiles), split, f"{float(prefix_s):g}"]
    for name in ("config.json", "scaler.json", "encoder.json", "prior.json"):
        if (Path(run_dir) / name).is_file():
            parts.append(_file_digest(Path(run_dir) / name))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _split_record(manifest: dict) -> dict:
    split = manifest.get("split")
    return split if isinstance(split, dict) else {}


def _val_ids(manifest: dict) -> list[str] | None:
    """The validation profile ids recorded by the trainer, under whichever key it used."""
    for key in ("val_ids", "val_profile_ids", "validation_ids"):
        if isinstance(manifest.get(key), list):
            return [str(x) for x in manifest[key]]
    split = _split_record(manifest)
    for key in ("val_ids", "val"):
        if isinstance(split.get(key), list):
            return [str(x) for x in split[key]]
    return None


def scoring_split(manifest: dict) -> str:
    """The split a run is scored on: 'val' when it records validation ids, else 'all'."""
    return "val" if _val_ids(manifest) else "all"


# ------------------------------------------------------------------ where the baselines are fitted
@dataclass
class BaselineFit:
    """The roasts the baselines are fitted on, what they are, and the sentence that says so.

    kind: "run_training" (the run's own training split: the fair comparison), "prior_library"
    (a prior model's library, when the data source is gone), "evaluated_data" (the rest of the
    evaluated data, not the run's) or "cross_validated" (grouped k-fold inside the evaluated
    roasts; `profiles` is None)."""

    kind: str
    profiles: list[Profile] | None
    description: str
    source: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "n_profiles": 0 if self.profiles is None else len(self.profiles),
                "source": self.source, "description": self.description}


def run_split(profiles: Sequence[Profile], manifest: dict) -> list[Profile] | None:
    """The run's training split picked out of `profiles` when they hold the run's data (the
    recorded `dataset_fingerprint` matches), i.e. everything but its validation ids; else None."""
    expected = str(manifest.get("dataset_fingerprint") or "")
    if not expected or not profiles:
        return None
    val_ids = set(_val_ids(manifest) or [])
    train_ids = _split_record(manifest).get("train_ids")
    chosen = list(profiles)
    if isinstance(train_ids, list) and train_ids:  # the run trained on part of its source
        wanted = {str(x) for x in train_ids} | val_ids
        chosen = [p for p in profiles if p.id in wanted]
    if not chosen or dataset_fingerprint(chosen) != expected:
        return None
    return [p for p in chosen if p.id not in val_ids]


def run_training_profiles(manifest: dict) -> tuple[list[Profile] | None, str]:
    """The run's training split loaded from its recorded data source and verified against its
    recorded fingerprint: (profiles, "") or (None, why it is not available)."""
    source = str(manifest.get("data_source") or "").strip()
    if not source:
        return None, "the run records no data source"
    if source.startswith("legacy:"):
        return None, f"the run was imported ({source}) and records no training data"
    expected = str(manifest.get("dataset_fingerprint") or "")
    if not expected:
        return None, f"the run records no dataset fingerprint to check {source} against"
    try:
        report = load_source(source)
    except (OSError, ValueError) as exc:
        return None, f"its data source {source} cannot be read ({exc})"
    train = run_split(report.profiles, manifest)
    if train is None:
        return None, (f"its data source {source} no longer holds the roasts it trained on "
                      f"(fingerprint {dataset_fingerprint(report.profiles)}, recorded {expected})")
    return train, ""


def library_profiles(library) -> list[Profile]:
    """A prior library's curves as 1 s profiles with the metadata it keeps (roast level, process,
    roaster, target finish, product): the training-side roasts a prior model carries."""
    lib = library.knn.lib_  # the fitted AlignedKNN's library (prior.PriorLibrary wraps one)
    out = []
    for i, curve in enumerate(lib.curves):
        level, process, roaster = lib.cats[i]
        finish = float(lib.finish_target[i])
        meta = ProfileMeta(roast_level=level, process=process, roaster=roaster, product=str(lib.groups[i]),
                           target_finish_f=finish if np.isfinite(finish) else None)
        try:
            out.append(Profile(bt=np.asarray(curve, dtype=float), interval_s=1.0, meta=meta, id=f"prior-library-{i}"))
        except ProfileError as exc:
            log.warning("prior library curve %d is not a valid profile (%s); skipped", i, exc)
    return out


def _without(fit: Sequence[Profile], evaluated: Sequence[Profile]) -> tuple[list[Profile], int]:
    """`fit` minus the roasts that are also evaluated (same 1 s curve within 0.01 °F), and how
    many were removed: a baseline must never be scored on a roast it holds."""
    by_size: dict[int, list[np.ndarray]] = {}
    for p in evaluated:
        c = curve_1s(p)
        by_size.setdefault(c.size, []).append(c)
    kept = []
    for p in fit:
        c = curve_1s(p)
        if not any(float(np.max(np.abs(c - e))) < 0.01 for e in by_size.get(c.size, ())):
            kept.append(p)
    return kept, len(fit) - len(kept)


def baseline_fit(val: Sequence[Profile], profiles: Sequence[Profile], manifest: dict, split: str = "val",
                 library=None, load: bool = True) -> BaselineFit:
    """Where to fit the baselines when evaluating `val` (picked from `profiles`) for a run.

    The model learned from its run's training split, so the baselines are fitted on that split
    whenever it can be had: from `profiles` when they are the run's data, else (`load`) from the
    run's recorded data source, verified by its fingerprint, else from a prior model's `library`.
    Evaluated roasts are always left out of the fit set. Otherwise: the rest of `profiles` (split
    'val'), or grouped k-fold CV inside `val`, and the description says so and why."""
    val = list(val)
    source = str(manifest.get("data_source") or "") or "the evaluated data"
    train, why, kind = run_split(profiles, manifest), "", "run_training"
    if train is None:
        train, why = run_training_profiles(manifest) if load else (None, "its data source was not read")
    if train is None and library is not None:
        train, kind = library_profiles(library), "prior_library"
    if train is not None:
        fit, seen = _without(train, val)
        if len(fit) >= MIN_FIT_PROFILES:
            if kind == "run_training":
                text = (f"baselines fitted on the run's training data ({len(fit)} roasts of {source}), "
                        "the roasts the model learned from")
            else:
                text = (f"baselines fitted on the {len(fit)} training-side roasts the run's prior library "
                        f"carries, since the run's training data is not available ({why})")
            if seen:
                text += (f"; {seen} of the evaluated roasts are among the model's training roasts "
                         "(the baselines never saw them), so the model's figures on them are optimistic")
            return BaselineFit(kind, fit, text, "prior library" if kind == "prior_library" else source)
        why = (f"the evaluated roasts include {seen} of the run's {len(train)} training roasts, "
               "leaving too few to fit on")
    why = why or "the run records no training data to compare on"
    rest = [p for p in profiles if p.id not in {v.id for v in val}]
    if split == "val" and len(rest) >= MIN_FIT_PROFILES:
        return BaselineFit("evaluated_data", rest, (
            f"baselines fitted on the other {len(rest)} roasts of the evaluated data, not on the "
            f"run's training data ({why})"), "the evaluated data")
    return BaselineFit("cross_validated", None, (
        f"baselines cross-validated inside the {len(val)} evaluated roasts (grouped {CV_FOLDS}-fold, "
        f"no product on both sides), not fitted on the run's training data ({why}); the model learned "
        "from its own training set, so the comparison is not like for like"), "the evaluated data")


def evaluated_set(profiles: Sequence[Profile], manifest: dict, split: str) -> tuple[list[Profile], str, list[str]]:
    """(the roasts to evaluate, split label, notes) for `split` 'val' or 'all'; cheap (no
    baseline fit set), for callers that only need the run's validation roasts."""
    if split not in ("val", "all"):
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    profiles = list(profiles)
    if split == "all":
        return profiles, "all", []
    ids = _val_ids(manifest)
    if not ids:
        raise ValueError("checkpoint manifest.json records no validation ids; use --split all")
    wanted = set(ids)
    val = [p for p in profiles if p.id in wanted]
    if not val:
        return profiles, "all (data differs from the run's)", [
            "none of the run's validation ids are in this data: every profile is unseen, evaluated as 'all'"]
    notes = []
    if len(val) < len(wanted):
        notes.append(f"{len(wanted) - len(val)} of the run's {len(wanted)} validation profiles are not in this data")
    return val, "val", notes


def select_split(profiles: Sequence[Profile], manifest: dict, split: str, library=None,
                 load: bool = False) -> tuple[list[Profile], list[Profile] | None, str, list[str]]:
    """(evaluate on, fit baselines on or None for grouped CV, split label, notes); the last note
    says where the baselines are fitted (see `baseline_fit`; `load` reads the run's data source)."""
    val, label, notes = evaluated_set(profiles, manifest, split)
    fit = baseline_fit(val, profiles, manifest, split, library=library, load=load)
    return val, fit.profiles, label, notes + [fit.description]


def evaluate_run(run_dir, profiles: Sequence[Profile], split: str = "val", prefix_s: float = 0,
                 use_cache: bool = True, progress: Callable[[int, int, str], None] | None = None,
                 device: str = "cpu") -> EvaluationReport:
    """Teacher forcing, free running, physics, baselines and the diagnosis for one checkpoint.

    `progress(done, total, stage)` is called as each of the stages finishes. Results are cached
    as JSON in RUN_DIR/eval_cache/<key>.json (see `cache_key`), and the run's stored scores
    (`score_run`) answer when their key matches; `use_cache=False` recomputes. A run that is
    not usable (checkpoints.run_usability, e.g. cancelled before its first epoch) is refused.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"checkpoint directory {run_dir} does not exist")
    if prefix_s < 0:
        raise ValueError(f"prefix_s must be >= 0, got {prefix_s}")
    profiles = list(profiles)
    if not profiles:
        raise ValueError("evaluate: the dataset holds no profiles")
    usable, why = run_usability(run_dir)
    if not usable:
        raise RunError(f"{run_dir}: not usable: {why}")
    stages = 5

    def report_progress(done, stage):
        log.info("evaluate %s: %s", run_dir.name, stage)
        if progress:
            progress(done, stages, stage)

    key = cache_key(run_dir, profiles, split, prefix_s)
    cache_file = run_dir / "eval_cache" / f"{key}.json"
    if use_cache:
        stored = stored_report(run_dir)
        if stored is not None and stored.cache_key == key:
            report_progress(stages, "stored scores")
            return stored
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
    manifest = loaded.manifest or {}
    val, split_label, notes = evaluated_set(profiles, manifest, split)
    fit = baseline_fit(val, profiles, manifest, split, library=getattr(model, "prior_library", None))
    report_progress(1, "split")
    parts = evaluate_predictor(model, ModelGenerator(model), val, fit.profiles, model.encoder,
                               float(model.config.step_s), prefix_s=prefix_s, max_len=model.config.max_len,
                               progress=lambda done, stage: report_progress(1 + done, stage),
                               preset=loaded.config.name or None, comparison=fit.description)
    if parts["diagnosis"]["verdict"] == "collapsed" and not model.config.normalize:
        parts["diagnosis"]["evidence"].append("the run feeds raw °F to the network (normalize=false), "
                                              "the known cause of this collapse")
    report = EvaluationReport(
        run_dir=str(run_dir), split=split_label, prefix_s=float(prefix_s), step_s=float(model.config.step_s),
        n_profiles=len(val), n_train_profiles=0 if fit.profiles is None else len(fit.profiles),
        teacher_forcing=parts["teacher_forcing"], free_run=parts["free_run"], baselines=parts["baselines"],
        diagnosis=parts["diagnosis"], cache_key=key, notes=notes + [fit.description] + parts["notes"],
        baseline_fit=fit.to_dict())
    if use_cache:
        _write_cache(cache_file, report)
    return report


def _write_cache(path: Path, report: EvaluationReport) -> None:
    # atomic: a dashboard reading the cache never sees half a report
    fsutil.atomic_write_text(path, fsutil.to_json(report.to_dict()))


def to_json(report: EvaluationReport) -> str:
    return fsutil.to_json(report.to_dict())


# ------------------------------------------------------------------ stored scores (RUN_DIR/scores.json)
def _summary(report: EvaluationReport) -> dict:
    """The few figures `checkpoints.list_runs` shows without reading the whole report."""
    dg = report.diagnosis
    return {"tf_mae_f": report.teacher_forcing.get("mae_f"), "free_mae_f": report.free_run.get("mae_f"),
            "verdict": dg.get("verdict"), "split": report.split, "n_profiles": report.n_profiles,
            "strongest_baseline": dg.get("metrics", {}).get("strongest_baseline"),
            "strongest_baseline_mae_f": dg.get("metrics", {}).get("strongest_baseline_mae_f"),
            "baseline_fit": report.baseline_fit.get("kind")}


def run_profiles(run_dir, manifest: dict | None = None) -> list[Profile]:
    """The roasts of the run's recorded data source (what it is scored on by default)."""
    manifest = read_json(Path(run_dir) / "manifest.json") if manifest is None else manifest
    source = str(manifest.get("data_source") or "").strip()
    if not source or source.startswith("legacy:"):
        raise ValueError(f"{run_dir}: the run records no data source to score it on; give the data")
    return list(load_source(source).profiles)


def score_run(run_dir, profiles: Sequence[Profile] | None = None, device: str = "cpu",
              progress: Callable[[int, int, str], None] | None = None) -> EvaluationReport:
    """Score a run on its own validation roasts (every roast when it records none) and store the
    report atomically in RUN_DIR/scores.json with its cost. `profiles`: the run's data (default:
    loaded from its recorded data source). Returns the report."""
    run_dir = Path(run_dir)
    manifest = read_json(run_dir / "manifest.json")
    profiles = run_profiles(run_dir, manifest) if profiles is None else profiles
    started = time.monotonic()
    report = evaluate_run(run_dir, profiles, split=scoring_split(manifest), use_cache=False, progress=progress,
                          device=device)
    cost = time.monotonic() - started
    report.from_cache = False
    doc = {"version": SCORES_VERSION, "eval_version": EVAL_VERSION, "scored_at": now_iso(),
           "cost_s": round(cost, 2), "weights_sha256": _file_digest(run_dir / "model.safetensors"),
           "data_source": str(manifest.get("data_source") or ""),
           "dataset_fingerprint": _dataset_fingerprint(profiles), "summary": _summary(report),
           "report": report.to_dict()}
    store_generated(run_dir, profiles)  # first: scores.json appearing is what pages wait for
    fsutil.atomic_write_text(run_dir / SCORES, fsutil.to_json(doc))
    log.info("scored run %s in %.1f s on %d %s roasts: %s", run_dir.name, cost, report.n_profiles, report.split,
             report.diagnosis.get("verdict"))
    return report


def store_generated(run_dir, profiles: Sequence[Profile]) -> bool:
    """Generate what the dashboard draws first for the run and store it (RUN_DIR/generated.json,
    roastcore.run_generated): the free-running curve of its first evaluated roast (Compare
    curves) and that roast's step trace (Generation diagnostic), each exactly as the page would
    generate it (one roast, on the CPU). The evaluated roasts are the run's validation roasts in
    `profiles` (every roast when the manifest records none: `scoring_split`). Never raises:
    without the file a page generates, as before. Returns whether it was written."""
    run_dir = Path(run_dir)
    try:
        loaded = load_run(run_dir, "cpu")  # the dashboard generates on the CPU: store what it would draw
        manifest = loaded.manifest or {}
        val, _, _ = evaluated_set(list(profiles), manifest, scoring_split(manifest))
        if not val:
            return False
        first, model = val[0], loaded.model
        curve = ModelGenerator(model).generate_many([first])[0]
        steps = default_trace_steps(model.config, first)
        trace = step_trace(model, first, steps=steps).to_dict()
        run_generated.write_generated(run_dir, run_generated.run_digest(run_dir),
                                      [run_generated.curve_entry(first, curve)],
                                      [run_generated.trace_entry(first, steps, trace)])
        return True
    except Exception:  # noqa: BLE001 - an optional speed-up: its failure must not fail scoring
        log.exception("%s: could not store the generated curve and trace; the pages will generate them",
                      run_dir.name)
        return False


def stored_report(run_dir) -> EvaluationReport | None:
    """The run's stored scores (RUN_DIR/scores.json) as a report, or None when there are none or
    they are stale (other weights, or an older EVAL_VERSION): what the pages read."""
    run_dir = Path(run_dir)
    path = run_dir / SCORES
    doc = read_scores_doc(run_dir)
    if doc is None:
        return None
    try:
        if doc.get("eval_version") != EVAL_VERSION:
            log.info("%s: scored by evaluation version %s, now %s; stale", path, doc.get("eval_version"), EVAL_VERSION)
            return None
        weights = run_dir / "model.safetensors"
        if not weights.is_file() or doc.get("weights_sha256") != _file_digest(weights):
            log.info("%s: the weights changed since scoring; stale", path)
            return None
        report = EvaluationReport.from_dict(doc["report"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("ignoring unreadable scores %s: %s", path, exc)
        return None
    report.run_dir, report.from_cache = str(run_dir), True  # the run may have moved since (demos)
    return report


def needs_scoring(run_dir) -> bool:
    """True for a usable run without current stored scores (what a background scoring job does)."""
    return run_usability(run_dir)[0] and stored_report(run_dir) is None


# Statuses a finished training is scored in: a cancelled run stops at once (its job may be
# killed after a short grace) and is scored later by `python -m roastcore score`.
SCORE_ON_FINISH = ("succeeded", "diverged")


class ScoreOnFinish:
    """Trainer callback: scores the finished run once, in the training process (`train.train`
    calls `on_run_finished` after every `on_train_end`, when the run directory is complete).
    Never raises: a failed scoring is logged and the run stays as trained."""

    def __init__(self, profiles: Sequence[Profile], device: str = "cpu"):
        self.profiles, self.device = list(profiles), device
        self.report: EvaluationReport | None = None

    def on_run_finished(self, result) -> None:
        run_dir = getattr(result, "run_dir", None)
        if run_dir is None or result.status not in SCORE_ON_FINISH:
            return
        log.info("scoring %s on its validation roasts (teacher forcing, free running, physics, "
                 "baselines, diagnosis)", Path(run_dir).name)
        started = time.monotonic()
        try:
            self.report = score_run(run_dir, self.profiles, device=self.device)
        except RunError as exc:  # e.g. no epoch finished: nothing worth scoring
            log.info("not scoring %s: %s", Path(run_dir).name, exc)
        except Exception:  # scoring must never fail a finished training; the traceback goes to the log
            log.exception("scoring %s failed after %.1f s; run `python -m roastcore score --checkpoint %s`",
                          Path(run_dir).name, time.monotonic() - started, run_dir)

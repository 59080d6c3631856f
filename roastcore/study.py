"""Grouped k-fold study: presets and baselines on the same folds, teacher forcing and free running.

`run_study(profiles, presets, folds=5, ...)` splits once with `splits.group_kfold` (grouped by
`Profile.group`, so no product is on both sides) and, on every fold, fits the baselines
(persistence for teacher forcing; mean curve, plain kNN, aligned kNN free-running) and trains
each preset on the training folds only (its own inner grouped split picks the best epoch).
Each model is scored with `evaluate.teacher_forcing` (persistence on the same positions at the
model's step) and `metrics.free_run_metrics` (the same scorer the baselines get).

The extrapolation check trains on every roast except the hottest-charged `extrapolation_frac`
and tests on those: a model that only interpolates drifts there.

With `forecast_methods`, the same folds also score forecasting a roast in progress
(`forecast_eval.forecast_eval`: each fold's roasts cut at `forecast_cuts_s`, the rest forecast by
methods fitted on the other folds), the table next to the charge-only one.

A time budget (`budget_min`) is checked before each unit of work (a preset on one fold); what
did not fit is listed in `skipped` and in the markdown, never silently dropped.

Results: `results.json` (everything, per fold) and `results.md` (the tables) in `out_dir`.
`load_study(dir)`, `list_studies(runs_dir)` and `study_rows(results)` serve the dashboard.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from roastcore.baselines import AlignedKNN, Persistence, curve_1s
from roastcore.evaluate import teacher_forcing
from roastcore.experiments import get_preset
from roastcore.features import FeatureEncoder
from roastcore.forecast_eval import METHODS as FORECAST_METHODS
from roastcore.forecast_eval import MODEL_METHODS as FORECAST_MODEL_METHODS
from roastcore.forecast_eval import forecast_eval
from roastcore.forecast_train import run_experiment
from roastcore.fsutil import atomic_write_text, to_json
from roastcore.generate import ModelGenerator
from roastcore.io import dataset_fingerprint
from roastcore.metrics import free_run_metrics, score_baselines
from roastcore.profile import Profile
from roastcore.splits import group_kfold
from roastcore.threads import torch_threads
from roastcore.train import data_source_record

log = logging.getLogger(__name__)

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
STUDY_VERSION = 1
BASELINES = ("persistence", "mean_curve", "knn", "aligned_knn")
# Free-running metrics summarised per fold (mean and spread over folds).
FREE_KEYS = ("mae_f", "rmse_f", "finish_mae_f", "finish_within_10_pct", "tp_time_mae_s", "ror_mae_f_per_min",
             "physics_valid_pct")
TF_KEYS = ("tf_mae_f", "persistence_mae_f", "skill_ratio")


@dataclass
class StudyConfig:
    presets: tuple[str, ...] = ("recommended",)
    folds: int = 5
    seed: int = 0
    budget_min: float | None = None
    extrapolation: bool = True
    extrapolation_frac: float = 0.1
    overrides: dict = field(default_factory=dict)  # applied to every preset (--set)
    threads: int = 1  # small sequential models run fastest on one torch thread
    # Forecasting from a prefix on the same folds (CPU-minutes; the CLI asks for it by default).
    forecast_methods: tuple[str, ...] = ()
    forecast_cuts_s: tuple[int, ...] = (120, 240, 360)

    def __post_init__(self):
        self.presets = tuple(self.presets)
        for name in self.presets:
            get_preset(name)  # raises with the list of valid names
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"StudyConfig.folds: {self.folds!r} must be an integer >= 2")
        if self.budget_min is not None and not float(self.budget_min) > 0:
            raise ValueError(f"StudyConfig.budget_min: {self.budget_min!r} must be > 0 minutes")
        if not 0 < float(self.extrapolation_frac) < 0.5:
            raise ValueError(f"StudyConfig.extrapolation_frac: {self.extrapolation_frac!r} must be in (0, 0.5)")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"StudyConfig.threads: {self.threads!r} must be an integer >= 1")
        self.forecast_methods = tuple(self.forecast_methods)
        bad = [m for m in self.forecast_methods if m not in FORECAST_METHODS or m in FORECAST_MODEL_METHODS]
        if bad:
            raise ValueError(f"StudyConfig.forecast_methods: {bad} not among the methods that need no "
                             f"checkpoint {[m for m in FORECAST_METHODS if m not in FORECAST_MODEL_METHODS]}")
        self.forecast_cuts_s = tuple(int(c) for c in self.forecast_cuts_s)
        if self.forecast_methods and (not self.forecast_cuts_s or min(self.forecast_cuts_s) < 30):
            raise ValueError(f"StudyConfig.forecast_cuts_s: {self.forecast_cuts_s!r} must be cut points >= 30 s")


def _summary(per_fold: list[dict], keys: Sequence[str]) -> dict:
    out = {}
    for key in keys:
        xs = [f[key] for f in per_fold if f.get(key) is not None and np.isfinite(f[key])]
        out[key] = float(np.mean(xs)) if xs else None
        out[key + "_std"] = float(np.std(xs)) if len(xs) > 1 else (0.0 if xs else None)
    return out


def _free_dict(free) -> dict:
    return {k: getattr(free, k) for k in FREE_KEYS}


def _score_baselines(train: list[Profile], val: list[Profile], step_s: float) -> dict[str, dict]:
    out: dict[str, dict] = {}
    tf = teacher_forcing(Persistence(step_s), val, FeatureEncoder.fit(train), step_s)
    out["persistence"] = {"tf_mae_f": tf.mae_f, "persistence_mae_f": tf.persistence_mae_f, "skill_ratio": 1.0,
                          "tf_step_s": step_s, "persistence_1s_mae_f": tf.persistence_1s_mae_f}
    for name, entry in score_baselines(train, val).items():
        out[name] = {**{k: entry[k] for k in FREE_KEYS}, "fit_s": entry["fit_s"], "k": entry["k"]}
    return out


def _score_model(model, val: list[Profile]) -> dict:
    cfg = model.config
    tf = teacher_forcing(model, val, model.encoder, float(cfg.step_s), max_len=cfg.max_len)
    free = free_run_metrics(val, ModelGenerator(model).generate_many(val))
    return {"tf_mae_f": tf.mae_f, "persistence_mae_f": tf.persistence_mae_f, "skill_ratio": tf.skill_ratio,
            "tf_step_s": float(cfg.step_s), **_free_dict(free)}


def _train_and_score(experiment, train: list[Profile], val: list[Profile]) -> dict:
    started = time.monotonic()
    result = run_experiment(experiment, train)
    train_s = time.monotonic() - started
    if result.model is None:
        return {"status": result.status, "reason": result.reason, "train_s": train_s}
    scores = _score_model(result.model.cpu(), val)  # trained on cuda maybe; scoring batches are CPU tensors
    return {"status": result.status, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "train_s": train_s, **scores}


def extrapolation_split(profiles: Sequence[Profile], frac: float = 0.1) -> tuple[list[Profile], list[Profile], float]:
    """(train, test, threshold °F): test = the hottest-charged `frac` of the roasts (at least 1)."""
    charges = np.array([float(curve_1s(p)[0]) for p in profiles])
    n_test = max(1, int(round(frac * len(profiles))))
    order = np.argsort(-charges, kind="stable")
    test_idx = set(order[:n_test].tolist())
    threshold = float(charges[order[n_test - 1]])
    train = [p for i, p in enumerate(profiles) if i not in test_idx]
    test = [p for i, p in enumerate(profiles) if i in test_idx]
    return train, test, threshold


def run_study(profiles: Sequence[Profile], config: StudyConfig, out_dir=None, data_source: str = "",
              progress: Callable[[str], None] | None = None) -> dict:
    """Run the study; write results.json and results.md into `out_dir` (when given)."""
    profiles = list(profiles)
    cfg = config
    n_groups = len({p.group for p in profiles})
    if n_groups < cfg.folds:
        raise ValueError(f"study: {cfg.folds} folds need at least {cfg.folds} product groups; the data has {n_groups}")
    started = time.monotonic()
    budget_s = None if cfg.budget_min is None else 60.0 * float(cfg.budget_min)
    splits = group_kfold(profiles, cfg.folds, seed=cfg.seed)
    experiments = {name: get_preset(name).experiment.with_overrides(cfg.overrides) for name in cfg.presets}
    step_s = min((e.model.step_s for e in experiments.values()), default=5.0)
    skipped: list[str] = []

    def say(msg: str):
        if progress:
            progress(msg)
        else:
            log.info("study: %s", msg)

    def checkpoint():  # partial results on disk after every unit: a killed study still shows them
        if out_dir is not None:
            write_study(out_dir, {k: v for k, v in results.items() if k != "extrapolation"}
                        | {"extrapolation": _public(results.get("extrapolation"))})

    def out_of_time() -> bool:
        return budget_s is not None and time.monotonic() - started > budget_s

    results: dict = {"version": STUDY_VERSION, "data_source": data_source_record(data_source),
                     "dataset_fingerprint": dataset_fingerprint(profiles), "n_profiles": len(profiles),
                     "n_groups": n_groups, "folds": cfg.folds, "seed": cfg.seed, "presets": list(cfg.presets),
                     "overrides": {k: str(v) for k, v in cfg.overrides.items()}, "budget_min": cfg.budget_min,
                     "fold_sizes": [[len(tr), len(va)] for tr, va in splits],
                     "baselines": {}, "models": {}, "extrapolation": None, "forecast": None, "skipped": skipped}
    with torch_threads(cfg.threads):
        # Baselines first: they are fast and every preset is compared with them.
        per_fold_bl: dict[str, list[dict]] = {name: [] for name in BASELINES}
        for fi, (tr, va) in enumerate(splits):
            if out_of_time():
                skipped.append(f"baselines fold {fi}")
                continue
            scores = _score_baselines([profiles[i] for i in tr], [profiles[i] for i in va], step_s)
            for name in BASELINES:
                per_fold_bl[name].append({"fold": fi, **scores[name]})
            say(f"baselines fold {fi}: aligned kNN {scores['aligned_knn']['mae_f']:.2f} °F")
        for name, rows in per_fold_bl.items():
            keys = TF_KEYS if name == "persistence" else FREE_KEYS
            results["baselines"][name] = {"per_fold": rows, **_summary(rows, keys)}
        checkpoint()
        if cfg.forecast_methods:
            if out_of_time():
                skipped.append("forecast")
            else:
                fc_started = time.monotonic()
                # The study's own folds, so the forecast table pairs fold by fold with the others.
                fc = forecast_eval(cfg.forecast_methods, profiles, cuts=cfg.forecast_cuts_s, plan=splits,
                                   seed=cfg.seed, progress=say)
                results["forecast"] = {"methods": list(cfg.forecast_methods), "cuts_s": list(cfg.forecast_cuts_s),
                                       "results": fc["results"], "folds": fc["folds"],
                                       "wall_s": time.monotonic() - fc_started}
                checkpoint()

        extra = _extrapolation_setup(profiles, cfg, out_of_time, skipped) if cfg.extrapolation else None
        results["extrapolation"] = extra
        for name, experiment in experiments.items():
            rows = []
            preset_started = time.monotonic()
            for fi, (tr, va) in enumerate(splits):
                if out_of_time():
                    skipped.append(f"{name} fold {fi}")
                    continue
                row = _train_and_score(experiment, [profiles[i] for i in tr], [profiles[i] for i in va])
                rows.append({"fold": fi, **row})
                say(f"{name} fold {fi}: free MAE {row.get('mae_f', float('nan')):.2f} °F, "
                    f"TF {row.get('tf_mae_f', float('nan')):.2f} °F ({row['train_s']:.0f} s)")
                scored = [r for r in rows if "mae_f" in r]
                results["models"][name] = {"per_fold": rows, "wall_s": time.monotonic() - preset_started,
                                           "folds_done": len(scored), "experiment": experiment.to_dict(),
                                           **_summary(scored, FREE_KEYS + TF_KEYS)}
                checkpoint()
            scored = [r for r in rows if "mae_f" in r]
            results["models"][name] = {"per_fold": rows, "wall_s": time.monotonic() - preset_started,
                                       "folds_done": len(scored), "experiment": experiment.to_dict(),
                                       **_summary(scored, FREE_KEYS + TF_KEYS)}
            # Right after its folds, so a tight budget drops whole presets rather than this check.
            if extra is not None:
                if out_of_time():
                    skipped.append(f"extrapolation {name}")
                else:
                    train, test = extra.pop("_train"), extra.pop("_test")
                    extra["rows"][name] = _train_and_score(experiment, train, test)
                    extra["_train"], extra["_test"] = train, test
                    say(f"extrapolation {name}: free MAE {extra['rows'][name].get('mae_f', float('nan')):.2f} °F")
                    checkpoint()
        if extra is not None:
            results["extrapolation"] = _public(extra)
    results["wall_s"] = time.monotonic() - started
    if skipped:
        results["note"] = (f"time budget of {cfg.budget_min:g} min reached: skipped " + ", ".join(skipped))
        log.warning("study: %s", results["note"])
    if out_dir is not None:
        write_study(out_dir, results)
    return results


def _public(extra: dict | None) -> dict | None:
    return None if extra is None else {k: v for k, v in extra.items() if not k.startswith("_")}


def _extrapolation_setup(profiles, cfg: StudyConfig, out_of_time, skipped) -> dict:
    """The hottest-charge split and the aligned kNN's row; presets add theirs as they finish."""
    train, test, threshold = extrapolation_split(profiles, cfg.extrapolation_frac)
    # Their products' other roasts stay in training: the check is about charge temperature.
    out = {"threshold_charge_f": threshold, "n_train": len(train), "n_test": len(test),
           "max_train_charge_f": float(max(curve_1s(p)[0] for p in train)), "rows": {},
           "_train": train, "_test": test}
    if out_of_time():
        skipped.append("extrapolation aligned_knn")
    else:
        gen = AlignedKNN().fit(train)
        out["rows"]["aligned_knn"] = _free_dict(free_run_metrics(test, gen.generate_many(test)))
    return out


# ------------------------------------------------------------------ output
def _fmt(value, std=None, spec=".2f", unit="") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{value:{spec}}{unit}"
    if std is not None and std > 0:
        text += f" ± {std:{spec}}"
    return text


def study_rows(results: dict) -> list[dict]:
    """One row per baseline and preset: the table the markdown and the dashboard show."""
    rows = []
    bl = results.get("baselines", {})
    pers = bl.get("persistence", {})
    if pers:
        rows.append({"model": "persistence", "kind": "baseline", "folds": len(pers.get("per_fold", [])),
                     "tf_mae_f": pers.get("tf_mae_f"), "tf_mae_f_std": pers.get("tf_mae_f_std"),
                     "tf_step_s": (pers.get("per_fold") or [{}])[0].get("tf_step_s")})
    for name in ("mean_curve", "knn", "aligned_knn"):
        if name in bl:
            rows.append({"model": name, "kind": "baseline", "folds": len(bl[name].get("per_fold", [])),
                         **{k: bl[name].get(k) for k in bl[name] if k != "per_fold"}})
    for name, m in results.get("models", {}).items():
        step = next((r.get("tf_step_s") for r in m.get("per_fold", []) if r.get("tf_step_s")), None)
        rows.append({"model": name, "kind": "preset", "folds": m.get("folds_done", 0), "tf_step_s": step,
                     "wall_s": m.get("wall_s"), **{k: m.get(k) for k in m
                                                   if k not in ("per_fold", "experiment", "wall_s", "folds_done")}})
    return rows


def format_markdown(results: dict) -> str:
    lines = [f"Study on `{results.get('data_source') or '?'}`: {results['n_profiles']} profiles, "
             f"{results['n_groups']} product groups, {results['folds']}-fold CV grouped by product "
             f"(seed {results['seed']}); mean ± std over folds. Wall time {results.get('wall_s', 0):.0f} s.", ""]
    lines += ["| model | folds | TF MAE °F (step) | persistence TF MAE °F (same step) | free MAE °F | RMSE °F "
              "| finish MAE °F | finish ±10 °F | TP time MAE s | RoR MAE °F/min | physics valid | time |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in study_rows(results):
        step = f" ({r['tf_step_s']:g} s)" if r.get("tf_step_s") else ""
        tf = _fmt(r.get("tf_mae_f"), r.get("tf_mae_f_std")) + (step if r.get("tf_mae_f") is not None else "")
        time_s = r.get("wall_s")
        lines.append(
            f"| {r['model']} | {r['folds']} | {tf} | {_fmt(r.get('persistence_mae_f'))} "
            f"| {_fmt(r.get('mae_f'), r.get('mae_f_std'))} | {_fmt(r.get('rmse_f'))} "
            f"| {_fmt(r.get('finish_mae_f'), r.get('finish_mae_f_std'))} | {_fmt(r.get('finish_within_10_pct'), spec='.0f', unit='%')} "
            f"| {_fmt(r.get('tp_time_mae_s'), spec='.1f')} | {_fmt(r.get('ror_mae_f_per_min'), spec='.1f')} "
            f"| {_fmt(r.get('physics_valid_pct'), spec='.0f', unit='%')} | {'' if time_s is None else f'{time_s:.0f} s'} |")
    ex = results.get("extrapolation")
    if ex:
        lines += ["", f"Extrapolation: trained without the {ex['n_test']} hottest-charged roasts "
                      f"(charge ≥ {ex['threshold_charge_f']:.0f} °F; training max {ex['max_train_charge_f']:.0f} °F), "
                      "tested on them. Ratio = extrapolation MAE / the same model's CV MAE above.", "",
                  "| model | free MAE °F | finish MAE °F | physics valid | ratio to CV MAE |", "|---|---|---|---|---|"]
        cv = {r["model"]: r.get("mae_f") for r in study_rows(results)}
        for name, r in ex.get("rows", {}).items():
            ratio = r.get("mae_f") / cv[name] if r.get("mae_f") is not None and cv.get(name) else None
            lines.append(f"| {name} | {_fmt(r.get('mae_f'))} | {_fmt(r.get('finish_mae_f'))} "
                         f"| {_fmt(r.get('physics_valid_pct'), spec='.0f', unit='%')} | {_fmt(ratio)} |")
    fc = results.get("forecast")
    if fc and fc.get("results"):
        lines += ["", "Forecasting a roast in progress on the same folds (docs/forecasting.md): each fold's "
                      "roasts cut at each point, the rest forecast by methods fitted on the other folds; "
                      "MAE over the rest and finish with the real DROP time, coverage of the 80% band. "
                      f"Wall time {fc.get('wall_s', 0):.0f} s.", "",
                  "| method | cut s | roasts | MAE °F | per fold | finish MAE °F | per fold | drop time MAE s "
                  "| coverage % | band °F | physics valid |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fc["results"]:
            per = "/".join(f"{x:.2f}" for x in r.get("fold_mae_f", []))
            per_fin = "/".join(f"{x:.2f}" for x in r.get("fold_finish_mae_f", []))
            lines.append(f"| {r['method']} | {r['cut_s']} | {r['n_profiles']} | {_fmt(r.get('mae_f'))} | {per} "
                         f"| {_fmt(r.get('finish_mae_f'))} | {per_fin} | {_fmt(r.get('drop_time_mae_s'), spec='.1f')} "
                         f"| {_fmt(r.get('coverage_pct'), spec='.1f')} | {_fmt(r.get('band_width_f'), spec='.1f')} "
                         f"| {_fmt(r.get('physics_valid_pct'), spec='.0f', unit='%')} |")
    if results.get("note"):
        lines += ["", f"**{results['note']}**"]
    return "\n".join(lines) + "\n"


def write_study(out_dir, results: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RESULTS_JSON, to_json(results, indent=1) + "\n")
    atomic_write_text(out / RESULTS_MD, format_markdown(results))
    return out


def load_study(study_dir) -> dict:
    """results.json of a study directory (ValueError naming the file when unreadable)."""
    path = Path(study_dir) / RESULTS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; run `python -m roastcore study --out {study_dir}` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None


def list_studies(runs_dir) -> list[Path]:
    """Study directories (holding results.json) directly under `runs_dir` or in runs_dir/studies."""
    runs_dir = Path(runs_dir)
    found = []
    for base in (runs_dir, runs_dir / "studies"):
        if base.is_dir():
            found += [p for p in sorted(base.iterdir()) if (p / RESULTS_JSON).is_file()]
    if (runs_dir / RESULTS_JSON).is_file():
        found.insert(0, runs_dir)
    return found

"""Forecasting methods by name, and their scoring by grouped k-fold CV (`forecast_eval`, issue 16).

`make_forecaster(name, model)` builds any method of `METHODS`; `library_profiles` turns a prior
model's library into training roasts for the others; `forecast_eval` fits and calibrates each
method on the other folds and scores it at cut points (docs/forecasting.md, "Scoring").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from roastcore.baselines import curve_1s
from roastcore.forecast import (
    EVAL_CUTS_S,
    MIN_REST_S,
    Forecast,
    Forecaster,
    Horizon,
    Request,
    events_before,
)
from roastcore.forecast_methods import LinearProjection, PrefixKNN, RoRDecay
from roastcore.forecast_model import FinetuneConfig, ModelForecaster, finetune_on_prefixes
from roastcore.forecast_residual import ResidualConfig, ResidualKNN
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.profile import Profile, ProfileMeta
from roastcore.splits import group_kfold, stratified_group_kfold

METHODS = ("linear_projection", "ror_decay", "prefix_knn", "knn_residual", "model", "model_prefix_prior",
           "forecast")
# Methods built on a trained sequence model (--checkpoint or a per-fold preset).
MODEL_METHODS = ("model", "model_prefix_prior", "forecast")
DROP_MISS_CAP_S = 120.0  # drop-time error when the forecast never reaches the drop temperature


FACTORIES: dict[str, Callable[[], Forecaster]] = {
    "linear_projection": LinearProjection, "ror_decay": RoRDecay, "prefix_knn": PrefixKNN,
    "knn_residual": ResidualKNN}


def make_forecaster(name: str, model=None, seed: int = 0) -> Forecaster:
    """A fresh forecaster by method name; `model` is required for the model methods.
    'model' corrects the run's own prior, the prefix kNN for a run of preset `forecast`
    (`model.forecast_prior`). 'forecast' wraps a model already fine-tuned by
    `finetune_on_prefixes`. `seed`: the learned correction's random training cuts
    ('knn_residual'); the others here are deterministic."""
    if name in MODEL_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs a trained model (--checkpoint)")
        # 'model' uses the prior the run was trained to correct: a forecast run's is the prefix kNN.
        own = getattr(model, "forecast_prior", "run")
        fc = ModelForecaster(model, prior=own if name == "model" else "prefix_knn")
        fc.name = name
        return fc
    if name not in FACTORIES:
        raise ValueError(f"unknown forecast method {name!r}; expected one of {METHODS}")
    if name == "knn_residual":
        return ResidualKNN(ResidualConfig(seed=seed))
    return FACTORIES[name]()


def library_profiles(library) -> list[Profile]:
    """The training roasts a prior model carries (`model.prior_library`) as Profiles: curves plus
    the metadata the kNN distances use. Lets a checkpoint alone fit the other methods."""
    lib = library.knn.lib_
    out = []
    for j, curve in enumerate(lib.curves):
        level, process, roaster = lib.cats[j]
        target = None if not np.isfinite(lib.finish_target[j]) else float(lib.finish_target[j])
        meta = ProfileMeta(roast_level=level, process=process, roaster=roaster, target_finish_f=target,
                           product=lib.groups[j])
        out.append(Profile(bt=np.asarray(curve, dtype=float), meta=meta, id=f"library-{j}"))
    return out


# ------------------------------------------------------------------ evaluation
ROW_KEYS = ("method", "cut_s", "n_profiles", "mae_f", "finish_mae_f", "drop_time_mae_s",
            "fcs_time_mae_s", "coverage_pct", "band_width_f")


def _score(f_drop: Forecast, f_target: Forecast, real: np.ndarray, c: int,
           real_fcs: float | None) -> dict:
    """Per-roast scores at one cut (see forecast_eval)."""
    rest = real[c + 1:]
    err = f_drop.bt_f - rest
    inside = (rest >= f_drop.lo_f - 1e-9) & (rest <= f_drop.hi_f + 1e-9)
    drop_s = real.size - 1
    hit = None if f_target.time_to_target_s is None else c + f_target.time_to_target_s
    row = {"mae_f": float(np.mean(np.abs(err))), "finish_err_f": float(err[-1]),
           "drop_time_err_s": DROP_MISS_CAP_S if hit is None else min(abs(hit - drop_s), DROP_MISS_CAP_S),
           "inside": int(inside.sum()), "points": int(rest.size),
           "width_f": float(np.mean(f_drop.hi_f - f_drop.lo_f)),
           "physics_ok": not f_drop.physics_failures}
    if real_fcs is not None and real_fcs > c and not f_drop.fcs_happened:
        row["fcs_err_s"] = (DROP_MISS_CAP_S if f_drop.fcs_s is None
                            else min(abs(f_drop.fcs_s - real_fcs), DROP_MISS_CAP_S))
    return row


def forecast_eval(methods: Sequence[str], profiles: Sequence[Profile], cuts: Sequence[int] = EVAL_CUTS_S,
                  folds: int = 5, seed: int = 0, model=None, extra_train: Sequence[Profile] | None = None,
                  progress: Callable[[str], None] | None = None,
                  model_fn: Callable[[list[Profile], int], object] | None = None,
                  finetune: FinetuneConfig | None = None, method_seed: int = 0,
                  strata: Callable[[Profile], str] | None = None,
                  plan: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None) -> dict:
    """Score forecasting methods by grouped k-fold CV over `profiles`.

    Each fold's roasts are forecast at every cut by methods fitted (and calibrated) on the other
    folds plus `extra_train`; `model`'s weights are fixed, only its band is calibrated there.
    `model_fn(train_profiles, fold)`, instead of `model`, trains one model per fold on its
    training roasts (the model methods are then cross-validated like the others). Method
    'forecast' fine-tunes that model on the fold's training roasts first (`finetune_on_prefixes`).
    Per method and cut, over the roasts with at least MIN_REST_S left after the cut:
    - mae_f: MAE of the forecast over the unseen rest, DROP time given (1 s points, per roast, averaged);
    - finish_mae_f: |forecast at the real DROP time - real drop temperature|;
    - drop_time_mae_s: |first time the forecast (horizon: the real drop temperature) reaches the
      real drop temperature - real DROP time|, capped at DROP_MISS_CAP_S (also when it never does);
    - fcs_time_mae_s: |predicted FCs - real FCs| on roasts whose FCs is marked and after the cut
      (same cap), else None;
    - coverage_pct: share of the unseen 1 s points inside the band; band_width_f: mean hi - lo;
    - physics_valid_pct: share of forecasts (prefix + rest) passing physics.check_curve.
    `seed` fixes the folds (and the bands' inner folds); `method_seed` the learned methods' own
    randomness ('knn_residual''s training cuts, 'forecast''s fine-tuning), so seeds can vary with the same folds.
    `strata(profile)` (e.g. its data source): folds made within each stratum and merged
    (`splits.stratified_group_kfold`, so a stratum's test folds are those of a study of it alone),
    and the rows again per stratum under "by_stratum" (training always uses every stratum).
    `plan`: the folds as (train indices, test indices) into `profiles`, used as given instead of
    computing them from `folds`, `seed` and `strata` (a study passes its own, so both tables are
    scored on the very same folds).
    Returns {"results": rows, "folds": per-fold rows, "params": fitted settings per fold}.
    """
    profiles = list(profiles)
    extra = list(extra_train or [])
    n_groups = len({p.group for p in profiles})
    if n_groups < 2:
        raise ValueError("forecast-eval: need at least 2 product groups for grouped folds")
    labels = [str(strata(p)) for p in profiles] if strata is not None else None
    if labels is not None and plan is None:  # each stratum must fill every fold
        n_groups = min(len({p.group for p, lab in zip(profiles, labels, strict=True) if lab == s})
                       for s in set(labels))
        if n_groups < 2:
            raise ValueError("forecast-eval: every stratum needs at least 2 product groups")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown forecast method {m!r}; expected one of {METHODS}")
    if set(methods) & set(MODEL_METHODS) and model is None and model_fn is None:
        raise ValueError(f"forecast-eval: {sorted(set(methods) & set(MODEL_METHODS))} need a model or model_fn")
    if plan is not None:
        plan = [(list(tr), list(va)) for tr, va in plan]
    elif strata is None:
        plan = group_kfold(profiles, min(folds, n_groups), seed)
    else:
        plan = stratified_group_kfold(profiles, min(folds, n_groups), strata, seed)
    per: dict[tuple[str, int], list[list[dict]]] = {(m, c): [[] for _ in plan] for m in methods for c in cuts}
    params: dict[str, list] = {m: [] for m in methods}
    # A fixed model keeps its generations memoised across folds; a per-fold model is new each fold.
    shared = {m: make_forecaster(m, model) for m in methods
              if m in MODEL_METHODS and m != "forecast" and model_fn is None}
    for fi, (tr, va) in enumerate(plan):
        train = [profiles[i] for i in tr] + extra
        test = [profiles[i] for i in va]
        test_labels = [labels[i] for i in va] if labels is not None else [None] * len(va)
        fold_model = model_fn(train, fi) if model_fn is not None and set(methods) & set(MODEL_METHODS) else None
        for m in methods:
            started = time.monotonic()
            if m == "forecast":  # the recipe: fine-tune this fold's (or the given) model first
                tuned, info = finetune_on_prefixes(fold_model if model_fn is not None else model, train, finetune)
                fc = make_forecaster(m, tuned)
                params.setdefault("forecast_finetune", []).append(info)
            elif m in MODEL_METHODS:
                fc = shared[m] if model_fn is None else make_forecaster(m, fold_model)
            else:
                fc = make_forecaster(m, seed=method_seed)
            fc.fit(train, seed=seed)
            params[m].append({**fc.describe(), "fit_s": round(time.monotonic() - started, 2)})
            exclude = fc.exclusion if isinstance(fc, ModelForecaster) else None
            for c in cuts:
                reqs, drop_h, tgt_h, reals, fcs, kept = [], [], [], [], [], []
                for p, label in zip(test, test_labels, strict=True):
                    real = curve_1s(p)
                    if c + MIN_REST_S > real.size - 1:
                        continue
                    kept.append(label)
                    reqs.append(Request(real[: c + 1].copy(), p.meta, events_before(p, c),
                                        exclude(p) if exclude else None))
                    drop_h.append(Horizon.drop_at(real.size - 1))
                    tgt_h.append(Horizon.target(float(np.clip(real[-1], 150.0, DEFAULT_CLAMP_F[1]))))
                    reals.append(real)
                    ev = events_before(p, real.size)
                    fcs.append(ev.get("FCs"))
                if not reqs:
                    continue
                f_drop = fc.forecast_requests(reqs, drop_h)
                f_tgt = fc.forecast_requests(reqs, tgt_h)
                per[(m, c)][fi] = [{**_score(a, b, r, c, s), "stratum": label} for a, b, r, s, label
                                   in zip(f_drop, f_tgt, reals, fcs, kept, strict=True)]
            if progress:
                progress(f"fold {fi + 1}/{len(plan)}: {m} ({time.monotonic() - started:.1f} s)")
    results, fold_rows = _summarise(methods, cuts, per)
    out = {"results": results, "folds": fold_rows, "params": params, "n_folds": len(plan), "cuts_s": list(cuts)}
    if labels is not None:
        out["by_stratum"] = {}
        for s in dict.fromkeys(labels):
            only = {key: [[r for r in fr if r["stratum"] == s] for fr in folds_rows]
                    for key, folds_rows in per.items()}
            res, frs = _summarise(methods, cuts, only)
            out["by_stratum"][s] = {"results": res, "folds": frs,
                                    "n_profiles": sum(lab == s for lab in labels)}
    return out


def _summarise(methods, cuts, per) -> tuple[list[dict], list[dict]]:
    """(pooled rows per method and cut, with per-fold MAEs; per-fold rows) from per-roast scores."""
    results, fold_rows = [], []
    for m in methods:
        for c in cuts:
            folds_rows = per[(m, c)]
            for fi, rows in enumerate(folds_rows):
                if rows:
                    fold_rows.append({"fold": fi, **_aggregate(m, c, rows)})
            rows = [r for fr in folds_rows for r in fr]
            if rows:
                agg = _aggregate(m, c, rows)
                agg["fold_mae_f"] = [round(_aggregate(m, c, fr)["mae_f"], 3) for fr in folds_rows if fr]
                agg["fold_finish_mae_f"] = [round(_aggregate(m, c, fr)["finish_mae_f"], 3)
                                            for fr in folds_rows if fr]
                results.append(agg)
    return results, fold_rows


def _aggregate(method: str, cut: int, rows: list[dict]) -> dict:
    fcs = [r["fcs_err_s"] for r in rows if "fcs_err_s" in r]
    return {"method": method, "cut_s": int(cut), "n_profiles": len(rows),
            "mae_f": float(np.mean([r["mae_f"] for r in rows])),
            "finish_mae_f": float(np.mean([abs(r["finish_err_f"]) for r in rows])),
            "drop_time_mae_s": float(np.mean([r["drop_time_err_s"] for r in rows])),
            "fcs_time_mae_s": float(np.mean(fcs)) if fcs else None,
            "coverage_pct": 100.0 * sum(r["inside"] for r in rows) / max(sum(r["points"] for r in rows), 1),
            "band_width_f": float(np.mean([r["width_f"] for r in rows])),
            "physics_valid_pct": 100.0 * float(np.mean([r["physics_ok"] for r in rows]))}

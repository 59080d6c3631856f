"""Tables and verdict wording of model scores: teacher forcing, free running, physics, step traces.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. Built from what evaluate.py,
physics.py and diagnose.py return; nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from pages._format import finite_or_none, fmt_mmss, tf_band
from roastcore.physics import check_curve, check_profile
from roastcore.profile import Profile

# A model "fails autoregressively" when free running is this much worse than teacher forcing
# and worse than the moderate band; see tf_conclusion.
AUTOREGRESSIVE_GAP = 3.0

FREE_RUN_COLUMNS = (
    ("mae_f", "MAE °F"), ("rmse_f", "RMSE °F"), ("finish_mae_f", "finish MAE °F"),
    ("tp_time_mae_s", "TP time MAE s"), ("fcs_time_mae_s", "FCs time MAE s"),
    ("dtr_mae_pct", "DTR MAE pp"), ("ror_mae_f_per_min", "RoR MAE °F/min"),
    ("physics_valid_pct", "physics valid %"), ("gen_std_f", "curve std °F"),
)
FREE_RUN_HELP = {
    "curve from": "A checkpoint, or a baseline fitted on the run's training roasts.",
    "MAE °F": "Mean absolute error of the free-running curve against the real one, °F.",
    "RMSE °F": "Root mean square error, °F (punishes large misses).",
    "finish MAE °F": "Error of the final (drop) temperature, °F.",
    "TP time MAE s": "Error of the turning-point time, seconds.",
    "FCs time MAE s": "Error of the first-crack time, seconds.",
    "DTR MAE pp": "Error of the development time ratio, percentage points.",
    "RoR MAE °F/min": "Error of the rate of rise, °F per minute.",
    "physics valid %": "Share of curves passing every physics check (higher is better).",
    "curve std °F": "Spread of the generated curve; near 0 means a collapse to a constant.",
}
PHYSICS_HELP = {"curve": "The real roast, or a checkpoint's generated curve.",
                "all pass": "✓ when every physics check passes.",
                "why": "The checks that failed, and by how much."}
BASELINE_LABELS = {"mean_curve": "baseline: mean curve", "knn": "baseline: kNN",
                   "aligned_knn": "baseline: aligned kNN"}
# Column tooltips of the teacher-forcing table (full text where a narrow column cuts its name).
TF_COLUMN_HELP = {
    "run": "Checkpoint (run directory name).",
    "best": "★: the lowest teacher-forcing MAE among the runs that beat their own persistence.",
    "TF MAE °F": "Teacher-forcing MAE: next-step error from the real history, °F.",
    "band": "Interpretation band of the TF MAE: excellent < 10 °F, good < 50, moderate < 150, else poor.",
    "persistence MAE °F": "MAE of 'next = current' at this run's step size, on the same positions.",
    "MAE / persistence": "TF MAE divided by persistence MAE; below 1 beats persistence.",
    "step s": "The model's time step in seconds (persistence is scored at the same step).",
    "free-run MAE °F": "Free-running MAE from CHARGE, from the run's stored scores, °F.",
    "model_type": "transformer or gru.",
    "d_model": "Model width.",
    "layers": "Number of layers.",
    "params": "Trainable parameters.",
}
# diagnose verdict -> the alert style it is shown in
VERDICT_STYLE = {"healthy": "success", "below baseline": "info", "exposure bias": "warning",
                 "did not learn": "error", "collapsed": "error"}


def _num(d: Mapping | None, key: str):
    if not d:
        return None
    return finite_or_none(d.get(key))


# ---------------------------------------------------------------------------- teacher forcing
def tf_table(entries: Sequence[Mapping]) -> pd.DataFrame:
    """Teacher-forcing comparison rows, best first.

    Each entry: run (name), teacher_forcing (EvaluationReport.teacher_forcing dict), free_run
    (dict, optional), model (ModelConfig dict, optional), n_params (optional).
    """
    rows = []
    for e in entries:
        tf = e.get("teacher_forcing") or {}
        model = e.get("model") or {}
        mae = _num(tf, "mae_f")
        rows.append({
            "run": e["run"],
            "tf_mae_f": mae,
            "band": tf.get("band") or tf_band(mae),
            "persistence_mae_f": _num(tf, "persistence_mae_f"),
            "skill_ratio": _num(tf, "skill_ratio"),
            "step_s": _num(tf, "step_s"),
            "free_run_mae_f": _num(e.get("free_run"), "mae_f"),
            "model_type": model.get("model_type"),
            "d_model": model.get("d_model"),
            "layers": model.get("n_layers"),
            "params": e.get("n_params"),
        })
    df = pd.DataFrame(rows, columns=["run", "tf_mae_f", "band", "persistence_mae_f", "skill_ratio", "step_s",
                                     "free_run_mae_f", "model_type", "d_model", "layers", "params"])
    for col in ("tf_mae_f", "persistence_mae_f", "skill_ratio", "step_s", "free_run_mae_f", "d_model", "layers",
                "params"):
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN, shown as a dash
    df = df.sort_values("tf_mae_f", na_position="last").reset_index(drop=True)
    # Only a run that beats its own persistence (same step size) can be the best one.
    beats = df["tf_mae_f"] < df["persistence_mae_f"]
    first = beats.idxmax() if beats.any() else None
    df.insert(1, "best", ["★" if i == first else "" for i in df.index])
    return df


def persistence_by_step(table: pd.DataFrame) -> str:
    """'0.83 °F at 1 s, 4.1 °F at 5 s': persistence MAE per step size in a tf_table."""
    if table is None or table.empty:
        return "–"
    parts = []
    for step, part in table.dropna(subset=["persistence_mae_f"]).groupby("step_s", dropna=False, sort=True):
        value = float(part["persistence_mae_f"].mean())  # same step and roasts: the same figure
        parts.append(f"{value:.2f} °F" + (f" at {step:g} s" if pd.notna(step) else ""))
    return ", ".join(parts) or "–"


def tf_conclusion(table: pd.DataFrame) -> tuple[str, str]:
    """(kind, text) about the best checkpoint (the starred row of tf_table): 'no_skill' when no
    run beats its persistence; 'struggles' when even teacher forcing is moderate/poor;
    'scheduled_sampling' when it learns with teacher forcing but its free-running MAE is
    AUTOREGRESSIVE_GAP times worse (and above 50 °F); 'needs_free_run' when that is not scored
    yet; 'ok' otherwise. kind drives the colour; text is shown as is."""
    if table is None or table.empty or pd.isna(table.iloc[0]["tf_mae_f"]):
        return "none", "No teacher-forcing result yet."
    starred = table[table["best"] == "★"] if "best" in table else table.iloc[:0]
    best = starred.iloc[0] if len(starred) else table.iloc[0]
    tf, free = float(best["tf_mae_f"]), best.get("free_run_mae_f")
    band = tf_band(tf)
    persistence = best.get("persistence_mae_f")
    if "best" in table and not (table["best"] == "★").any() and pd.notna(persistence):
        return "no_skill", (f"No checkpoint beats persistence (next = current) at its own step size: the lowest "
                            f"teacher-forcing MAE, **{best['run']}** at {tf:.2f} °F, is no better than its "
                            f"persistence ({float(persistence):.2f} °F). The model has not learned the "
                            "dynamics yet: check normalisation, targets (residual) and learning rate.")
    if band in ("moderate", "poor"):
        return "struggles", (f"**{best['run']}** struggles even with teacher forcing (MAE {tf:.1f} °F, {band}): "
                             "the problem is the setup, not exposure bias. Check normalisation, model size "
                             "(params per sample) and learning rate before anything else.")
    if free is not None and pd.notna(free) and float(free) > max(AUTOREGRESSIVE_GAP * tf, 50.0):
        return "scheduled_sampling", (
            f"**{best['run']}** can learn (teacher-forcing MAE {tf:.1f} °F, {band}) but fails "
            f"autoregressively (free-running MAE {float(free):.1f} °F) → train with scheduled sampling.")
    if free is None or pd.isna(free):
        return "needs_free_run", (f"**{best['run']}** learns from real history (teacher-forcing MAE {tf:.1f} °F, "
                                  f"{band}). Whether it also holds up free-running is not scored yet.")
    return "ok", (f"**{best['run']}** learns the dynamics (teacher-forcing MAE {tf:.1f} °F, {band}) and holds "
                  f"up free-running (MAE {float(free):.1f} °F).")


def scores_caption(reports: Mapping[str, Mapping]) -> str:
    """Where the figures come from: each run's stored scores, on which roasts."""
    if not reports:
        return ""
    shapes = {(r.get("split", "val"), r.get("n_profiles")) for r in reports.values()}
    head = ("Scores stored with each run (RUN/scores.json, written when its training finished or by a "
            "scoring job) on its own ")
    if len(shapes) == 1:
        split, n = next(iter(shapes))
        return head + f"{'validation roasts' if split == 'val' else 'roasts'} (split {split}, {n} roasts)."
    return head + "roasts: " + "; ".join(f"{name} {r.get('split', 'val')} ({r.get('n_profiles')} roasts)"
                                         for name, r in reports.items()) + "."


# ---------------------------------------------------------------------------- free running
def free_run_table(models: Mapping[str, Mapping], baselines: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Free-running metrics per checkpoint, then the baselines, sorted by MAE within each kind."""
    rows = []
    for name, fr in models.items():
        row = {"curve from": name, "kind": "model"}
        row.update({label: _num(fr, key) for key, label in FREE_RUN_COLUMNS})
        rows.append(row)
    for name, fr in (baselines or {}).items():
        row = {"curve from": BASELINE_LABELS.get(name, f"baseline: {name}"), "kind": "baseline"}
        row.update({label: _num(fr, key) for key, label in FREE_RUN_COLUMNS})
        rows.append(row)
    cols = ["curve from", "kind"] + [label for _, label in FREE_RUN_COLUMNS]
    df = pd.DataFrame(rows, columns=cols)
    if not df.empty:
        df = df.sort_values(["kind", "MAE °F"], ascending=[False, True], na_position="last").reset_index(drop=True)
    return df.round(2)


def physics_table(results: Mapping[str, object]) -> pd.DataFrame:
    """physics.PhysicsResult per curve -> one row per curve, ✓/✗ per check, failures spelled out."""
    rows = []
    for name, res in results.items():
        checks = getattr(res, "checks", {}) or {}
        row = {"curve": name, "all pass": "✓" if getattr(res, "passed", False) else "✗"}
        for check, cr in checks.items():
            row[check] = "✓" if cr.passed else "✗"
        row["why"] = "; ".join(getattr(res, "failures", []) or []) or "–"
        rows.append(row)
    return pd.DataFrame(rows)


def physics_checks(real: Profile, curves: Mapping[str, np.ndarray], step_s: float = 1.0) -> pd.DataFrame:
    """physics_table of the real roast (first row, 'real') and each generated curve."""
    results = {"real": check_profile(real)}
    results.update({name: check_curve(curve, step_s, profile_id=name) for name, curve in curves.items()})
    return physics_table(results)


# ---------------------------------------------------------------------------- step trace
def step_table(trace: Mapping) -> pd.DataFrame:
    """diagnose.StepTrace.to_dict() rows -> display table (time as m:ss)."""
    rows = trace.get("rows") or []
    df = pd.DataFrame(rows, columns=["step", "time_s", "raw_f", "clamped_f", "real_f", "error_f", "clamped"])
    df.insert(2, "time", [fmt_mmss(t) for t in df["time_s"]])
    df = df.drop(columns=["time_s"]).rename(columns={
        "raw_f": "raw °F", "clamped_f": "fed back °F", "real_f": "real °F", "error_f": "error °F",
        "clamped": "clamp active"})
    return df.round(2)

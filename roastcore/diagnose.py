"""Diagnosis: the step-by-step generation trace and the automatic verdict with a next experiment.

`step_trace(model, profile, steps)` shows what the model said (raw), what was fed back
(clamped), the real value and the error at each of the first N steps, the variance of the
generated sequence with the prior work's verdict, and where the clamp was active.

`diagnose_metrics(tf, free, aligned_knn_mae_f)` turns evaluation results into ONE verdict with
evidence and a suggested preset. Every threshold lives in `DiagnosisThresholds`; the verdicts
are checked in this order (the first that applies wins):

1. collapsed       the generated curves are near-constant (std < 10 °F, i.e. variance < 100)
                   and far from the data, and teacher forcing is poor too (the output ignores
                   its input): the classic raw-°F collapse.
2. did not learn   teacher-forcing MAE is far above persistence's at the same step.
3. healthy         free-running MAE below the strongest baseline's (the lowest of aligned kNN,
                   plain kNN and mean curve) and the generated curves pass the physics checks.
                   A model that does not beat the strongest baseline is never healthy.
4. exposure bias   teacher forcing is fine but free running is far worse than the strongest
                   baseline, its error grows through the roast, most curves fail physics, or it
                   is flat (a model that learned to copy its last input).
5. below baseline  none of the above: close to, but not better than, the strongest baseline
                   (or better, but too many curves fail physics).

The advice never suggests the preset the run already uses (`preset=`): it then says what to
try with that preset instead.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from roastcore.baselines import curve_1s
from roastcore.experiments import PRESETS
from roastcore.generate import ModelGenerator
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.profile import Profile

log = logging.getLogger(__name__)

# The prior work's variance verdict on a generated sequence (°F²).
VARIANCE_COLLAPSED = 1.0
VARIANCE_LOW = 100.0


def variance_verdict(variance: float) -> str:
    if variance < VARIANCE_COLLAPSED:
        return "constant output (collapsed)"
    if variance < VARIANCE_LOW:
        return "low variation"
    return "varying"


@dataclass(frozen=True)
class DiagnosisThresholds:
    """Every verdict threshold in one place (documented in docs/evaluation.md)."""

    # collapsed: generated std below this (variance < 100 °F², the "low variation" line) ...
    collapse_std_f: float = 10.0
    # ... while the free-running MAE is this far from the data (a flat line near the data's
    # mean misses a real roast by ~60-80 °F; a good baseline by ~4 °F).
    collapse_min_mae_f: float = 25.0
    # did not learn: teacher-forcing MAE above this multiple of persistence's (same step).
    tf_skill_max: float = 2.0
    # healthy: free-running MAE < strongest baseline * factor + margin, and physics valid >= min.
    # No margin: a model that does not beat the strongest baseline is not healthy (issue 14).
    healthy_factor: float = 1.0
    healthy_margin_f: float = 0.0
    healthy_physics_min_pct: float = 90.0
    # exposure bias: free MAE above this multiple of the strongest baseline, or error growth above this.
    exposure_mae_factor: float = 1.5
    exposure_growth: float = 2.0
    exposure_physics_max_pct: float = 50.0  # most generated curves fail physics


DEFAULT_DIAGNOSIS_THRESHOLDS = DiagnosisThresholds()

# Suggested next experiment per verdict: the first preset that exists in experiments.PRESETS.
SUGGESTIONS = {
    "collapsed": (("tiny_model", "micro_model"),
                  "normalised temperatures (the presets' default) and a smaller model stop the collapse"),
    "did not learn": (("micro_model", "low_lr", "tiny_model"),
                      "a smaller model, a lower learning rate or more epochs"),
    "exposure bias": (("recommended", "scheduled_sampling", "residual_tiny"),
                      "train on its own outputs (scheduled sampling / rollout) or predict residuals"),
    "below baseline": (("recommended", "residual_tiny", "scheduled_sampling"),
                       "the recommended recipe corrects the aligned kNN (its untrained state is the "
                       "baseline itself); more roasts or epochs help any preset"),
    "healthy": ((), "none needed; compare presets with a grouped k-fold study"),
}
# When the run already uses every suggested preset worth trying (e.g. `recommended` below baseline).
ALREADY_TRIED = ("it already uses {preset}: train longer (more epochs, more patience) or on more roasts, "
                 "and run a grouped k-fold study (`python -m roastcore study --presets {preset}`) to see "
                 "whether the gap to the baseline is within fold-to-fold noise")
GROWTH_LEVEL = 0.1  # error_growth within 1 +- this reads "stays level" (wording only)


def suggest_preset(verdict: str, exclude: str | None = None) -> str | None:
    """The first suggested preset for `verdict` that exists and is not `exclude` (the run's own)."""
    candidates, _ = SUGGESTIONS[verdict]
    candidates = tuple(c for c in candidates if c != exclude)
    if not candidates:
        return None
    for name in candidates:
        if name in PRESETS:
            return name
    return candidates[0]


def advice(verdict: str, preset: str | None = None) -> tuple[str | None, str]:
    """(suggested preset or None, why) for `verdict`, never re-suggesting the run's `preset`.

    Below baseline with the recommended recipe already in use, a weaker preset is no advice:
    the reason then says what to try with the same preset."""
    candidates, reason = SUGGESTIONS[verdict]
    if verdict == "below baseline" and preset and candidates and preset == candidates[0]:
        return None, ALREADY_TRIED.format(preset=preset)
    return suggest_preset(verdict, exclude=preset), reason


def growth_phrase(growth: float) -> str:
    """'grows 2.3x' / 'shrinks to 0.8x' / 'stays level (1.0x)': the late/mid error ratio in words."""
    if growth >= 1.0 + GROWTH_LEVEL:
        return f"grows {growth:.1f}x"
    if growth <= 1.0 - GROWTH_LEVEL:
        return f"shrinks to {growth:.1f}x"
    return f"stays level ({growth:.1f}x)"


BASELINE_LABELS = {"aligned_knn": "aligned kNN", "knn": "plain kNN", "mean_curve": "mean curve"}


@dataclass
class Diagnosis:
    verdict: str
    evidence: list[str]
    suggestion: str | None
    suggestion_reason: str
    metrics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _get(obj, name):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def diagnose_metrics(tf, free, aligned_knn_mae_f: float, raw_std_f: float | None = None,
                     clamp_active_pct: float | None = None, fed_std_f: float | None = None,
                     thresholds: DiagnosisThresholds = DEFAULT_DIAGNOSIS_THRESHOLDS,
                     baseline_maes: dict[str, float] | None = None, preset: str | None = None,
                     comparison: str | None = None) -> Diagnosis:
    """One verdict from teacher-forcing and free-running results (objects or their dicts).

    `fed_std_f` (median std of what a model fed itself after the prefix, at its own step) is
    the flatness measure when given; otherwise the 1 s curves' `gen_std_f`. `baseline_maes`
    ({name: free-running MAE}) adds the other baselines: the model is held to the strongest.
    `preset` is the run's own (never suggested again); `comparison` says in words how the
    baselines were fitted and joins the evidence.
    """
    th = thresholds
    tf_mae, pers = _get(tf, "mae_f"), _get(tf, "persistence_mae_f")
    skill = tf_mae / pers if pers > 0 else float("inf")
    step_s = _get(tf, "step_s")
    free_mae, gen_std, real_std = _get(free, "mae_f"), _get(free, "gen_std_f"), _get(free, "real_std_f")
    growth, physics = _get(free, "error_growth"), _get(free, "physics_valid_pct")
    physics = 0.0 if physics is None else physics
    spread = gen_std if fed_std_f is None else min(gen_std, fed_std_f)
    maes = {"aligned_knn": float(aligned_knn_mae_f)}
    maes.update({k: float(v) for k, v in (baseline_maes or {}).items() if v is not None and np.isfinite(v)})
    best_name = min(maes, key=lambda k: (maes[k], k != "aligned_knn"))
    best_mae, best_label = maes[best_name], BASELINE_LABELS.get(best_name, best_name)
    metrics = {"tf_mae_f": tf_mae, "persistence_mae_f": pers, "skill_ratio": skill, "step_s": step_s,
               "free_mae_f": free_mae, "aligned_knn_mae_f": aligned_knn_mae_f, "gen_std_f": gen_std,
               "real_std_f": real_std, "fed_std_f": fed_std_f, "error_growth": growth, "physics_valid_pct": physics,
               "raw_std_f": raw_std_f, "clamp_active_pct": clamp_active_pct,
               "strongest_baseline": best_name, "strongest_baseline_mae_f": best_mae}
    tf_line = (f"teacher forcing MAE {tf_mae:.2f} °F vs persistence {pers:.2f} °F at {step_s:g} s "
               f"(ratio {skill:.2f})")
    free_line = f"free-running MAE {free_mae:.1f} °F vs {best_label} {best_mae:.1f} °F"
    if best_name != "aligned_knn":
        free_line += f" (the strongest baseline here; aligned kNN {aligned_knn_mae_f:.1f} °F)"
    growth_line = f"free-running error {growth_phrase(growth)} from early-mid roast to the end"
    physics_line = f"{physics:.0f}% of generated curves pass every physics check"
    evidence: list[str]

    flat = spread < th.collapse_std_f and free_mae > th.collapse_min_mae_f
    beats = free_mae < best_mae * th.healthy_factor + th.healthy_margin_f
    if flat and skill > th.tf_skill_max:
        verdict = "collapsed"
        evidence = [f"generated output is near-constant: median std {spread:.1f} °F "
                    f"(variance {spread ** 2:.0f} °F²) vs {real_std:.0f} °F for real roasts", free_line, tf_line]
        if clamp_active_pct:
            evidence.append(f"the clamp was active in {clamp_active_pct:.0f}% of generated roasts")
    elif skill > th.tf_skill_max:
        verdict = "did not learn"
        evidence = [tf_line + f": more than {th.tf_skill_max:g}x persistence", free_line]
    elif beats and physics >= th.healthy_physics_min_pct:
        verdict = "healthy"
        evidence = [free_line + f": beats the strongest baseline by {best_mae - free_mae:.2f} °F",
                    physics_line, tf_line]
    elif (flat or free_mae > best_mae * th.exposure_mae_factor or growth >= th.exposure_growth
          or physics < th.exposure_physics_max_pct):
        verdict = "exposure bias"
        evidence = [tf_line + " (fine from real history)",
                    free_line + (f" (> {th.exposure_mae_factor:g}x)" if free_mae > best_mae * th.exposure_mae_factor else ""),
                    growth_line, physics_line]
        if flat:
            evidence.append(f"free-running output is near-constant (median std {spread:.1f} °F) although "
                            "teacher forcing is fine: the model copies its last input")
    else:
        verdict = "below baseline"
        if beats:
            evidence = [free_line, f"only {physics:.0f}% of generated curves pass every physics check "
                        f"(healthy needs {th.healthy_physics_min_pct:g}%)", tf_line]
        else:
            evidence = [free_line + f": {free_mae - best_mae:.2f} °F worse; a model that does not beat the "
                        "strongest baseline is not healthy", tf_line, physics_line]
    if comparison:
        evidence.append(comparison)
    suggestion, reason = advice(verdict, preset)
    return Diagnosis(verdict, evidence, suggestion, reason, metrics)


# ------------------------------------------------------------------ step trace
DEFAULT_TRACE_STEPS = 60  # the steps the diagnostic page traces first (and score_run stores)


def trace_length(model_config, profile: Profile) -> tuple[int, float]:
    """(steps that cover `profile` at the model's step, capped at its max_len; the step in s),
    from a ModelConfig alone: no model needs to be built to size a trace."""
    step_s = float(model_config.step_s)
    full = min(int(round(profile.duration_s / step_s)) + 1, int(model_config.max_len))
    return full, step_s


def default_trace_steps(model_config, profile: Profile) -> int:
    """The steps a trace of `profile` shows first: DEFAULT_TRACE_STEPS, or fewer for a short roast."""
    return min(DEFAULT_TRACE_STEPS, trace_length(model_config, profile)[0])


@dataclass
class StepTrace:
    profile_id: str
    step_s: float
    rows: list[dict]  # step, time_s, raw_f, clamped_f, real_f, error_f, clamped
    variance_f2: float  # of the generated (fed-back) values after the prefix
    variance_verdict: str
    clamp_steps: list[int]
    prefix_steps: int

    def to_dict(self) -> dict:
        return asdict(self)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def format_table(self) -> str:
        lines = [f"{'step':>5} {'time_s':>7} {'raw_f':>9} {'clamped_f':>9} {'real_f':>8} {'error_f':>8} clamp"]
        for r in self.rows:
            lines.append(f"{r['step']:>5d} {r['time_s']:>7.1f} {r['raw_f']:>9.2f} {r['clamped_f']:>9.2f} "
                         f"{r['real_f']:>8.2f} {r['error_f']:>+8.2f} {'yes' if r['clamped'] else ''}")
        return "\n".join(lines)


def step_trace(model, profile: Profile, steps: int | None = None, prefix_steps: int = 1,
               clamp: tuple[float, float] = DEFAULT_CLAMP_F) -> StepTrace:
    """Generate `profile` from its charge (or first `prefix_steps` real steps) and trace N steps.

    N (`steps`) runs from 10 to the profile's full length at the model's step; None = full.
    """
    real_1s = curve_1s(profile)
    step_s = float(model.config.step_s)
    gen = ModelGenerator(model, clamp=clamp)
    full_steps = int(round((real_1s.size - 1) / step_s)) + 1
    if prefix_steps < 1 or prefix_steps >= full_steps:
        raise ValueError(f"prefix_steps={prefix_steps} must be in 1..{full_steps - 1}")
    prefix = None
    if prefix_steps > 1:
        prefix = real_1s[: int(round((prefix_steps - 1) * step_s)) + 1]
    library = getattr(model, "prior_library", None)  # traced against the real roast: no self-neighbours
    # Only the steps shown are generated: the first N equal a full generation's (causal models).
    gen.generate_requests([profile.meta], [float(real_1s[0])], [float(real_1s.size - 1)], [prefix],
                          exclude_groups=[library.scoring_exclusion(profile) if library is not None else None],
                          max_steps=None if steps is None else max(int(steps), 10))
    out = gen.last_steps[0]
    available = out.clamped_f.size
    n = available if steps is None else int(steps)
    if n < 10:
        raise ValueError(f"steps={n}: the trace shows at least 10 steps")
    n = min(n, available)
    real = np.interp(out.step_times_s[:n], np.arange(real_1s.size), real_1s)
    rows = [{"step": i, "time_s": float(out.step_times_s[i]), "raw_f": float(out.raw_f[i]),
             "clamped_f": float(out.clamped_f[i]), "real_f": float(real[i]),
             "error_f": float(out.clamped_f[i] - real[i]), "clamped": bool(out.clamp_active[i])}
            for i in range(n)]
    generated = out.clamped_f[out.prefix_steps:n]
    variance = float(np.var(generated)) if generated.size else 0.0
    return StepTrace(profile_id=profile.id, step_s=step_s, rows=rows, variance_f2=variance,
                     variance_verdict=variance_verdict(variance),
                     clamp_steps=[i for i in range(n) if out.clamp_active[i]], prefix_steps=out.prefix_steps)

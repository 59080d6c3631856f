"""Physics checks for any 1-D bean-temperature curve, real or generated.

Every threshold lives in `PhysicsThresholds` (documented, with the reason for each value, in
docs/evaluation.md). The checks are calibrated so that real roasts pass: the prior work's strict
monotonicity on noisy 1 s data failed every real curve, which made the checks useless as a
signal. Each check returns pass/fail plus a reason a person can read.

Checks (names are stable; reports and the dashboard key on them):
- ``monotone``: after the turning point BT never falls more than a noise tolerance below its
  running maximum.
- ``ror_bounds``: the rate of rise (Artisan-style, °F/min) stays within bounds once it settles
  after the turning point.
- ``no_jumps``: no sample-to-sample step faster than a physical probe can move, except the
  charge drop before the turning point, which really is that fast.
- ``turning_point``: drum-style charges (hot drum) show a plausible TP; air roasters charged
  near room temperature pass without one.
- ``finish``: the DROP temperature is within a plausible range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from roastcore.profile import Profile, find_turning_point, rate_of_rise

CHECK_NAMES = ("monotone", "ror_bounds", "no_jumps", "turning_point", "finish")


@dataclass(frozen=True)
class PhysicsThresholds:
    """Every physics threshold in one place. See docs/evaluation.md for why each value."""

    # monotone: allowed fall below the running maximum after TP (probe noise, the post-FC
    # "crash" and small flicks on real logs; onyx-dev's worst is 1.2 °F).
    monotone_tolerance_f: float = 6.0
    # ror_bounds: Artisan RoR (30 s delta, 10 s smoothing) in °F/min, checked from TP + settle.
    ror_min_f_per_min: float = -15.0
    ror_max_f_per_min: float = 100.0
    # Small air and electric roasters really climb at 100-220 °F/min in their first minutes
    # (Artisan logs); the tight bound applies from ror_early_s on.
    ror_max_early_f_per_min: float = 250.0
    ror_early_s: float = 180.0
    ror_window_s: float = 30.0
    ror_smooth_s: float = 10.0
    ror_settle_s: float = 30.0  # the RoR window still straddles the dip right after TP
    # no_jumps: max |dBT/dt| in °F/s outside the charge drop (onyx-dev's worst after TP: 3.7).
    max_jump_f_per_s: float = 10.0
    # turning_point: a TP is required when charge >= this (a hot drum), optional below.
    tp_required_charge_f: float = 250.0
    tp_min_dip_f: float = 15.0
    tp_temp_min_f: float = 100.0
    tp_temp_max_f: float = 320.0  # small electric roasters' probes turn at 250-305 °F
    tp_time_min_s: float = 8.0  # low-charge small roasters turn at 12-14 s
    tp_time_max_s: float = 180.0
    # An air roaster "charge" is room temperature; above this with no TP it is neither style.
    room_charge_max_f: float = 150.0
    # finish: DROP temperature range (light air roasts ~350 °F, very dark ~480 °F).
    finish_min_f: float = 350.0
    finish_max_f: float = 490.0

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_THRESHOLDS = PhysicsThresholds()


@dataclass
class CheckResult:
    passed: bool
    reason: str


@dataclass
class PhysicsResult:
    """All checks for one curve. `passed` is True only when every check passed."""

    checks: dict[str, CheckResult]
    profile_id: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {c.reason}" for name, c in self.checks.items() if not c.passed]

    def to_dict(self) -> dict:
        return {
            "profile_id": self.profile_id,
            "passed": self.passed,
            "checks": {name: {"passed": c.passed, "reason": c.reason} for name, c in self.checks.items()},
        }


@dataclass
class PhysicsSummary:
    """Pass rates over many curves (percent) plus each curve's result."""

    n: int
    valid_pct: float  # share of curves that pass EVERY check
    pass_pct: dict[str, float]
    results: list[PhysicsResult] = field(default_factory=list)

    def to_dict(self, include_profiles: bool = True) -> dict:
        d = {"n": self.n, "valid_pct": self.valid_pct, "pass_pct": dict(self.pass_pct)}
        if include_profiles:
            d["profiles"] = [r.to_dict() for r in self.results]
        return d


def _tp_index(bt: np.ndarray, interval_s: float, th: PhysicsThresholds) -> int | None:
    tp = find_turning_point(bt, interval_s, min_dip_f=th.tp_min_dip_f)
    return None if tp is None else int(round(tp[0] / interval_s))


def _settled_start(bt: np.ndarray, interval_s: float, th: PhysicsThresholds) -> int:
    """Index after which the curve should rise: the TP, else the end of an initial dip if any."""
    tp = _tp_index(bt, interval_s, th)
    if tp is not None:
        return tp
    # No dip worth a TP: a small probe settle at charge (a few °F) may still precede the rise.
    search = bt[: max(2, int(bt.size * 0.4))]
    return int(np.argmin(search))


def check_curve(bt, interval_s: float = 1.0, thresholds: PhysicsThresholds = DEFAULT_THRESHOLDS,
                profile_id: str = "") -> PhysicsResult:
    """Run every physics check on one BT curve (°F, samples `interval_s` apart from CHARGE)."""
    th = thresholds
    bt = np.asarray(bt, dtype=float).reshape(-1)
    if bt.size < 3:
        raise ValueError(f"physics check: curve {profile_id or ''} has {bt.size} samples; need at least 3")
    if not np.all(np.isfinite(bt)):
        bad = {name: CheckResult(False, "curve contains non-finite values") for name in CHECK_NAMES}
        return PhysicsResult(bad, profile_id)
    if interval_s <= 0:
        raise ValueError(f"physics check: interval_s must be > 0, got {interval_s}")
    checks: dict[str, CheckResult] = {}
    start = _settled_start(bt, interval_s, th)

    # monotone after TP, within tolerance
    after = bt[start:]
    drawdown = np.maximum.accumulate(after) - after
    worst = int(np.argmax(drawdown))
    if drawdown[worst] > th.monotone_tolerance_f:
        checks["monotone"] = CheckResult(False, (
            f"falls {drawdown[worst]:.1f} °F below its running maximum at "
            f"{(start + worst) * interval_s:.0f} s (tolerance {th.monotone_tolerance_f:g} °F)"))
    else:
        checks["monotone"] = CheckResult(True, f"max fall after TP {drawdown[worst]:.1f} °F")

    # RoR bounds once settled
    ror = rate_of_rise(bt, interval_s, window_s=th.ror_window_s, smooth_s=th.ror_smooth_s)
    ror_from = start + int(round(th.ror_settle_s / interval_s))
    tail = ror[ror_from:]
    if tail.size == 0:
        checks["ror_bounds"] = CheckResult(False, "curve ends before RoR settles after TP")
    else:
        lo_i = int(np.argmin(tail))
        lo = float(tail[lo_i])
        times = (ror_from + np.arange(tail.size)) * interval_s
        limit = np.where(times < th.ror_early_s, th.ror_max_early_f_per_min, th.ror_max_f_per_min)
        hi_i = int(np.argmax(tail - limit))
        hi = float(tail[hi_i])
        if lo < th.ror_min_f_per_min:
            checks["ror_bounds"] = CheckResult(False, (
                f"RoR {lo:.1f} °F/min at {(ror_from + lo_i) * interval_s:.0f} s is below "
                f"{th.ror_min_f_per_min:g}"))
        elif hi > limit[hi_i]:
            checks["ror_bounds"] = CheckResult(False, (
                f"RoR {hi:.1f} °F/min at {times[hi_i]:.0f} s is above {limit[hi_i]:g}"))
        else:
            checks["ror_bounds"] = CheckResult(True, f"RoR {lo:.1f}..{float(tail.max()):.1f} °F/min after TP")

    # jumps: the charge drop (before TP) may fall fast, but nothing may rise that fast
    rate = np.diff(bt) / interval_s
    limited = np.abs(rate)
    limited[:start] = np.maximum(rate[:start], 0.0)
    j = int(np.argmax(limited))
    if limited[j] > th.max_jump_f_per_s:
        checks["no_jumps"] = CheckResult(False, (
            f"jump of {rate[j] * interval_s:+.1f} °F at {(j + 1) * interval_s:.0f} s "
            f"({abs(rate[j]):.1f} °F/s > {th.max_jump_f_per_s:g})"))
    else:
        checks["no_jumps"] = CheckResult(True, f"max step {limited[j]:.1f} °F/s outside the charge drop")

    # turning point
    charge = float(bt[0])
    tp = find_turning_point(bt, interval_s, min_dip_f=th.tp_min_dip_f)
    if tp is None:
        if charge >= th.tp_required_charge_f:
            checks["turning_point"] = CheckResult(False, (
                f"charge {charge:.0f} °F (drum) but no turning point (no dip of "
                f"{th.tp_min_dip_f:g} °F in the first 40%)"))
        elif charge <= th.room_charge_max_f:
            checks["turning_point"] = CheckResult(True, f"charge {charge:.0f} °F near room temperature; no TP expected")
        else:
            checks["turning_point"] = CheckResult(True, f"charge {charge:.0f} °F; no TP (optional at this charge)")
    else:
        t, temp = tp
        problems = []
        if not th.tp_temp_min_f <= temp <= th.tp_temp_max_f:
            problems.append(f"TP {temp:.0f} °F outside {th.tp_temp_min_f:g}..{th.tp_temp_max_f:g} °F")
        if not th.tp_time_min_s <= t <= th.tp_time_max_s:
            problems.append(f"TP at {t:.0f} s outside {th.tp_time_min_s:g}..{th.tp_time_max_s:g} s")
        checks["turning_point"] = (CheckResult(False, "; ".join(problems)) if problems
                                   else CheckResult(True, f"TP {temp:.0f} °F at {t:.0f} s"))

    finish = float(bt[-1])
    if th.finish_min_f <= finish <= th.finish_max_f:
        checks["finish"] = CheckResult(True, f"finish {finish:.0f} °F")
    else:
        checks["finish"] = CheckResult(False, (
            f"finish {finish:.0f} °F outside {th.finish_min_f:g}..{th.finish_max_f:g} °F"))
    return PhysicsResult(checks, profile_id)


def check_profile(profile: Profile, thresholds: PhysicsThresholds = DEFAULT_THRESHOLDS) -> PhysicsResult:
    return check_curve(profile.bt, profile.interval_s, thresholds, profile_id=profile.id)


def summarize(results: Sequence[PhysicsResult]) -> PhysicsSummary:
    n = len(results)
    if n == 0:
        return PhysicsSummary(0, float("nan"), {name: float("nan") for name in CHECK_NAMES}, [])
    pass_pct = {name: 100.0 * sum(r.checks[name].passed for r in results) / n for name in CHECK_NAMES}
    valid = 100.0 * sum(r.passed for r in results) / n
    return PhysicsSummary(n, valid, pass_pct, list(results))


def check_curves(curves: Iterable, interval_s: float = 1.0, ids: Sequence[str] | None = None,
                 thresholds: PhysicsThresholds = DEFAULT_THRESHOLDS,
                 progress: Callable[[int, int], None] | None = None) -> PhysicsSummary:
    """Check many curves: Profiles (their own interval) or arrays sampled `interval_s` apart."""
    curves = list(curves)
    results = []
    for i, c in enumerate(curves):
        if isinstance(c, Profile):
            results.append(check_profile(c, thresholds))
        else:
            results.append(check_curve(c, interval_s, thresholds, profile_id=ids[i] if ids else str(i)))
        if progress:
            progress(i + 1, len(curves))
    return summarize(results)

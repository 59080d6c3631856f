"""Baselines a model must beat, scored by the same metric code as the model (metrics.py).

Each free-running baseline is a `CurveGenerator`: `fit(train_profiles)` then
`generate(meta, charge_f, duration_s, prefix=None) -> 1 s curve` with `round(duration_s) + 1`
samples. Like the model, a generator receives only the requested roast length, the charge
temperature and the metadata (plus an optional real prefix), never the rest of the real curve.

- `MeanCurve`: the average training curve on a normalised time axis (0 = CHARGE, 1 = DROP),
  stretched to the requested length; the charge offset fades out by the turning point.
- `PlainKNN`: the plain average of the k nearest training curves in absolute time (truncated
  or padded with the last value). Distance: mismatches on roast level, process and roaster
  plus |charge difference| / 10 °F.
- `AlignedKNN` (the strong baseline): neighbours are warped piecewise-linearly so their turning
  points meet at the neighbours' mean TP time and their ends at the requested length, then
  averaged; the charge offset fades out by the TP. The distance also weighs roast length and the
  target finish temperature; k and the weights are chosen by leave-one-group-out validation on
  the training profiles only.
- `Persistence`: T[t] = T[t-1], the teacher-forcing reference (see evaluate.py).

`metrics.score_baselines` fits and scores them (on a training set, or by grouped k-fold CV).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from roastcore.profile import Profile, ProfileMeta, find_turning_point

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None] | None

# The charge offset of an air roaster (no TP) fades out over this many seconds.
NO_TP_FADE_S = 60.0
# After a real prefix, the generator's offset to the last real value fades over this span.
PREFIX_FADE_S = 60.0


def curve_1s(profile: Profile) -> np.ndarray:
    """The profile's BT on a 1 s grid from CHARGE to DROP (what every generator is scored on)."""
    return profile.resample(1.0).bt if abs(profile.interval_s - 1.0) > 1e-9 else profile.bt


def n_samples(duration_s: float) -> int:
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    return int(round(float(duration_s))) + 1


def _norm(value) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split()).lower()
    return text or None


def _mismatch(a: str | None, b: str | None) -> float:
    """0 same, 1 different, 0.5 when either is unknown (no evidence either way)."""
    if a is None or b is None:
        return 0.5
    return 0.0 if a == b else 1.0


def apply_start(curve: np.ndarray, charge_f: float, fade_until_s: float,
                prefix: np.ndarray | None = None) -> np.ndarray:
    """Make `curve` start at the requested charge (or continue a real prefix), fading the offset.

    The charge only matters until the probe meets the beans (the TP), so the offset fades to 0
    linearly by `fade_until_s`. With a prefix, the prefix is copied and the offset to its last
    value fades over the following PREFIX_FADE_S seconds (or until the TP, when later).
    """
    out = np.array(curve, dtype=float)
    t = np.arange(out.size, dtype=float)
    if prefix is not None and len(prefix) > 1:
        prefix = np.asarray(prefix, dtype=float)[: out.size]
        k = prefix.size - 1
        offset = prefix[-1] - out[k]
        end = max(fade_until_s, k + PREFIX_FADE_S)
        fade = np.clip((end - t) / max(end - k, 1.0), 0.0, 1.0)
        out = out + offset * fade
        out[: k + 1] = prefix
        return out
    offset = charge_f - out[0]
    fade = np.clip(1.0 - t / max(fade_until_s, 1.0), 0.0, 1.0)
    return out + offset * fade


# ------------------------------------------------------------------ generator interface
class CurveGenerator:
    """Base for free-running generators (baselines; the model goes through an adapter)."""

    name = "generator"

    def fit(self, profiles: Sequence[Profile]) -> CurveGenerator:
        raise NotImplementedError

    def generate(self, meta: ProfileMeta, charge_f: float, duration_s: float,
                 prefix: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def generate_many(self, profiles: Sequence[Profile], prefix_s: float = 0.0,
                      progress: Progress = None) -> list[np.ndarray]:
        """One 1 s curve per profile, from its charge, length, metadata and optional prefix."""
        out = []
        for i, p in enumerate(profiles):
            real = curve_1s(p)
            prefix = real[: int(prefix_s) + 1] if prefix_s >= 1 else None
            out.append(self.generate(p.meta, float(real[0]), float(real.size - 1), prefix))
            if progress:
                progress(i + 1, len(profiles))
        return out

    def describe(self) -> dict:
        return {"name": self.name}


@dataclass
class _Library:
    """Training curves at 1 s plus what the distances need."""

    curves: list[np.ndarray]
    durations: np.ndarray
    tp_s: np.ndarray  # NaN where a curve has no TP
    charge: np.ndarray
    finish_target: np.ndarray  # NaN when unknown
    cats: list[tuple[str | None, str | None, str | None]]
    groups: list[str]

    @classmethod
    def build(cls, profiles: Sequence[Profile]) -> _Library:
        if not profiles:
            raise ValueError("baseline fit: no training profiles")
        curves = [curve_1s(p) for p in profiles]
        tps = []
        for c in curves:
            tp = find_turning_point(c, 1.0)
            tps.append(np.nan if tp is None else tp[0])
        return cls(
            curves=curves,
            durations=np.array([c.size - 1 for c in curves], dtype=float),
            tp_s=np.array(tps, dtype=float),
            charge=np.array([c[0] for c in curves], dtype=float),
            finish_target=np.array([np.nan if p.meta.target_finish_f is None else p.meta.target_finish_f
                                    for p in profiles], dtype=float),
            cats=[_cat_key(p.meta) for p in profiles],
            groups=[p.group for p in profiles],
        )

    def cat_mismatch(self, meta: ProfileMeta) -> np.ndarray:
        q = _cat_key(meta)
        return np.array([sum(_mismatch(a, b) for a, b in zip(q, c, strict=True)) for c in self.cats])


def _cat_key(meta: ProfileMeta) -> tuple[str | None, str | None, str | None]:
    return (_norm(meta.roast_level), _norm(meta.process), _norm(meta.roaster))


# ------------------------------------------------------------------ mean curve
class MeanCurve(CurveGenerator):
    """Average training curve on normalised time, stretched to the length, charge offset faded."""

    name = "mean_curve"
    GRID = 1001

    def fit(self, profiles):
        u = np.linspace(0.0, 1.0, self.GRID)
        stack = []
        for p in profiles:
            c = curve_1s(p)
            stack.append(np.interp(u * (c.size - 1), np.arange(c.size), c))
        if not stack:
            raise ValueError("MeanCurve.fit: no training profiles")
        self.mean_ = np.mean(stack, axis=0)
        tp = find_turning_point(self.mean_, 1.0 / (self.GRID - 1))
        self.tp_frac_ = None if tp is None else tp[0]  # as a fraction of the roast
        return self

    def generate(self, meta, charge_f, duration_s, prefix=None):
        n = n_samples(duration_s)
        u = np.linspace(0.0, 1.0, n)
        curve = np.interp(u, np.linspace(0.0, 1.0, self.GRID), self.mean_)
        fade = NO_TP_FADE_S if self.tp_frac_ is None else self.tp_frac_ * (n - 1)
        return apply_start(curve, charge_f, fade, prefix)

    def describe(self):
        return {"name": self.name}


# ------------------------------------------------------------------ plain kNN
class PlainKNN(CurveGenerator):
    """Average of the k nearest curves in absolute time; no alignment, no charge offset."""

    name = "knn"

    def __init__(self, k: int = 5):
        if k < 1:
            raise ValueError(f"PlainKNN: k must be >= 1, got {k}")
        self.k = k

    def fit(self, profiles):
        self.lib_ = _Library.build(profiles)
        return self

    def distances(self, meta: ProfileMeta, charge_f: float) -> np.ndarray:
        return self.lib_.cat_mismatch(meta) + np.abs(self.lib_.charge - charge_f) / 10.0

    def generate(self, meta, charge_f, duration_s, prefix=None):
        n = n_samples(duration_s)
        d = self.distances(meta, charge_f)
        idx = np.argsort(d, kind="stable")[: self.k]
        rows = []
        for j in idx:
            c = self.lib_.curves[j][:n]
            rows.append(np.concatenate([c, np.full(n - c.size, c[-1])]) if c.size < n else c)
        curve = np.mean(rows, axis=0)
        if prefix is not None and len(prefix) > 1:
            curve = apply_start(curve, charge_f, 0.0, prefix)
        return curve

    def describe(self):
        return {"name": self.name, "k": self.k}


# ------------------------------------------------------------------ aligned kNN
@dataclass(frozen=True)
class AlignedKNNParams:
    k: int = 5
    w_cat: float = 1.0  # per mismatching field (roast level, process, roaster)
    w_charge: float = 1.0  # per 10 °F of charge difference
    w_length: float = 1.0  # per minute of roast-length difference
    w_finish: float = 0.5  # per 10 °F of target-finish difference (when both known)
    # Share of a neighbour's length difference absorbed by stretching its curve; the rest
    # continues its final rate of rise (or cuts its end). 1 lines up the ends (the baseline).
    end_warp: float = 1.0


TUNE_MAX_QUERIES = 100

# Small on purpose: leave-one-group-out over ~100 curves stays around a second.
ALIGNED_GRID = {
    "k": (3, 4, 5, 8),
    "w_length": (0.5, 1.0, 1.5, 2.0, 3.0),
    "w_finish": (0.0, 0.5, 1.0),
}


END_ROR_WINDOW_S = 30  # the final rate of rise that a partly warped curve continues with
END_ROR_MAX_F_PER_S = 0.5  # 30 °F/min: a steeper "end" is a logging artefact, not a roast


def warp_curve(curve: np.ndarray, curve_tp_s: float, n: int, target_tp_s: float | None,
               end_warp: float = 1.0) -> np.ndarray:
    """Piecewise-linear time warp of a 1 s curve onto n samples: TP -> target TP, end -> end.

    With end_warp < 1 only that share of the length difference is stretched: a neighbour
    shorter than the request is warped to m + end_warp * (n - m) samples and then continues
    at its final rate of rise (a longer roast ends hotter); a longer one is warped likewise
    and cut at n samples.
    """
    if end_warp < 1.0:
        m = curve.size
        n_warp = max(int(round(m + end_warp * (n - m))), 2)
        tp = target_tp_s if target_tp_s is not None and target_tp_s < n_warp - 1 else None
        warped = warp_curve(curve, curve_tp_s, n_warp, tp)
        if n_warp >= n:
            return warped[:n]
        window = min(END_ROR_WINDOW_S, m - 1)  # the neighbour's own (unstretched) final RoR
        ror = np.clip((curve[-1] - curve[-1 - window]) / window, 0.0, END_ROR_MAX_F_PER_S)
        return np.concatenate([warped, warped[-1] + ror * np.arange(1, n - n_warp + 1)])
    t = np.arange(n, dtype=float)
    src_end = curve.size - 1
    dst_end = max(n - 1, 1)
    if target_tp_s is not None and np.isfinite(curve_tp_s) and 0 < target_tp_s < dst_end:
        src = np.where(
            t <= target_tp_s,
            t * curve_tp_s / target_tp_s,
            curve_tp_s + (t - target_tp_s) * (src_end - curve_tp_s) / (dst_end - target_tp_s),
        )
    else:
        src = t * src_end / dst_end
    return np.interp(src, np.arange(curve.size), curve)


class AlignedKNN(CurveGenerator):
    name = "aligned_knn"

    def __init__(self, params: AlignedKNNParams | None = None, tune: bool = True,
                 grid: dict | None = None):
        self.params = params or AlignedKNNParams()
        self.tune = tune and params is None
        self.grid = grid or ALIGNED_GRID

    # distance components against the library, shape (n_lib,)
    def _components(self, meta, charge_f, duration_s, lib: _Library):
        finish = np.nan if meta.target_finish_f is None else float(meta.target_finish_f)
        finish_diff = np.abs(lib.finish_target - finish) / 10.0
        return (lib.cat_mismatch(meta), np.abs(lib.charge - charge_f) / 10.0,
                np.abs(lib.durations - duration_s) / 60.0, np.nan_to_num(finish_diff, nan=0.0))

    @staticmethod
    def _distance(comp, p: AlignedKNNParams) -> np.ndarray:
        cat, charge, length, finish = comp
        return p.w_cat * cat + p.w_charge * charge + p.w_length * length + p.w_finish * finish

    @staticmethod
    def _blend(lib: _Library, idx: np.ndarray, n: int, charge_f: float, prefix,
               end_warp: float = 1.0) -> np.ndarray:
        tps = lib.tp_s[idx]
        have = np.isfinite(tps)
        # Align TPs only when most neighbours have one (a drum); air roasts warp just the ends.
        target_tp = float(np.mean(tps[have])) if have.sum() * 2 >= len(idx) else None
        if target_tp is not None and target_tp >= 0.5 * (n - 1):
            target_tp = None
        rows = [warp_curve(lib.curves[j], lib.tp_s[j] if target_tp is not None else np.nan, n, target_tp,
                           end_warp) for j in idx]
        curve = np.mean(rows, axis=0)
        fade = NO_TP_FADE_S if target_tp is None else target_tp
        return apply_start(curve, charge_f, fade, prefix)

    def fit(self, profiles):
        self.lib_ = _Library.build(profiles)
        if self.tune:
            self.params, self.tuning_ = _tune_aligned(self.lib_, self.grid, self)
        return self

    def generate(self, meta, charge_f, duration_s, prefix=None):
        n = n_samples(duration_s)
        d = self._distance(self._components(meta, charge_f, n - 1, self.lib_), self.params)
        idx = np.argsort(d, kind="stable")[: self.params.k]
        return self._blend(self.lib_, idx, n, charge_f, prefix, self.params.end_warp)

    def describe(self):
        return {"name": self.name, "k": self.params.k, "params": self.params.__dict__.copy()}


def _tune_aligned(lib: _Library, grid: dict, gen: AlignedKNN) -> tuple[AlignedKNNParams, dict]:
    """Leave-one-group-out MAE over the grid, on the training library only."""
    n_lib = len(lib.curves)
    groups = np.array(lib.groups)
    if len(set(lib.groups)) < 3:
        log.info("aligned kNN: %d groups are too few to tune; using defaults", len(set(lib.groups)))
        return AlignedKNNParams(), {}
    ks = sorted(grid["k"])
    weight_combos = list(itertools.product(grid["w_length"], grid["w_finish"]))
    errors = np.zeros((len(weight_combos), len(ks)))
    # Held-out queries are capped (seeded) so tuning stays ~1-2 s on big libraries; every
    # training curve can still be a neighbour.
    queries = np.arange(n_lib)
    if n_lib > TUNE_MAX_QUERIES:
        queries = np.sort(np.random.default_rng(0).choice(n_lib, TUNE_MAX_QUERIES, replace=False))
    held_out = []  # (real curve, candidate neighbours, their distance components) per query
    for i in queries:
        others = np.flatnonzero(groups != groups[i])
        if others.size == 0:
            continue
        real = lib.curves[i]
        meta = ProfileMeta(roast_level=lib.cats[i][0], process=lib.cats[i][1], roaster=lib.cats[i][2],
                           target_finish_f=None if np.isnan(lib.finish_target[i]) else lib.finish_target[i])
        comp_all = gen._components(meta, float(real[0]), float(real.size - 1), lib)
        held_out.append((real, others, tuple(c[others] for c in comp_all)))
    counts = len(held_out)
    for real, others, comp in held_out:
        seen: dict[tuple, float] = {}  # many weightings pick the same neighbours
        for wi, (w_len, w_fin) in enumerate(weight_combos):
            p = AlignedKNNParams(w_length=w_len, w_finish=w_fin)
            order = others[np.argsort(gen._distance(comp, p), kind="stable")]
            for ki, k in enumerate(ks):
                key = tuple(sorted(order[:k].tolist()))
                if key not in seen:
                    curve = gen._blend(lib, order[:k], real.size, float(real[0]), None)
                    seen[key] = float(np.mean(np.abs(curve[1:] - real[1:])))
                errors[wi, ki] += seen[key]
    errors /= max(counts, 1)
    wi, ki = np.unravel_index(int(np.argmin(errors)), errors.shape)
    w_len, w_fin = weight_combos[wi]
    best = AlignedKNNParams(k=ks[ki], w_length=w_len, w_finish=w_fin)
    best_mae = float(errors[wi, ki])
    # Then the end warp, with the neighbours fixed (it does not change who they are).
    neighbours = [others[np.argsort(gen._distance(comp, best), kind="stable")[:best.k]]
                  for _, others, comp in held_out]
    for end_warp in grid.get("end_warp", ()):
        if end_warp == best.end_warp:
            continue
        mae = sum(float(np.mean(np.abs(gen._blend(lib, idx, real.size, float(real[0]), None, end_warp)[1:] - real[1:])))
                  for (real, _, _), idx in zip(held_out, neighbours, strict=True)) / max(counts, 1)
        if mae < best_mae:
            best, best_mae = dataclasses.replace(best, end_warp=float(end_warp)), mae
    log.debug("aligned kNN tuned: %s (LOGO MAE %.2f °F)", best, best_mae)
    return best, {"cv_mae_f": best_mae, "grid": {k: list(v) for k, v in grid.items()}}


# ------------------------------------------------------------------ persistence (teacher forcing)
class Persistence:
    """Teacher-forcing reference: predicts the next sample equals the current one."""

    name = "persistence"

    def __init__(self, step_s: float = 1.0):
        self.step_s = float(step_s)

    def predict_next_f(self, batch) -> torch.Tensor:
        return batch.temps_f[:, :-1]

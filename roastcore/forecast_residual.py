"""A learned correction of the prefix kNN, method `knn_residual`: a ridge model of its residuals (issue 16).

The prefix kNN (roastcore/forecast_methods.py) continues a roast with its neighbours' rest. What
it cannot do is read how this roast differs from them: it is hotter or cooler than they were at
the matched moment, rising faster or slower, aimed at a different finish (`target_finish_f`),
on another roaster. The correction learns that from the training roasts:

    BT(c + h) = kNN(c + h) + sum_j phi_j(u) * (w_j . x),    phi = (u, u^2)

with u = h / (DROP - c) the share of the rest elapsed, so the correction is 0 at the cut and
reaches its full size at DROP (where the target finish speaks), and x the features known at the
cut (`FEATURES`, one-hot roasters, and each feature times the elapsed time; standardised). The weights are fitted by ridge on
cross-fitted residuals (real - kNN) of the training roasts at random cut points, each roast's
kNN forecast made with its own product left out (the kNN's library is the training roasts), and
the penalty is picked by grouped inner CV (product groups) from `ResidualConfig.alphas`; a large
penalty switches the correction off when it does not help. The band is calibrated like every
other method (cross-fitted: each copy re-tunes its kNN and refits its ridge without the roast's
product).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from roastcore.baselines import curve_1s
from roastcore.forecast import MIN_AT_S, MIN_REST_S, Forecaster, Request
from roastcore.forecast_methods import PrefixKNN, PrefixKNNParams
from roastcore.profile import Profile
from roastcore.splits import group_kfold

log = logging.getLogger(__name__)

FEATURES = ("offset_f", "ror30_diff", "ror60_diff", "ror30", "finish_gap_f", "has_target",
            "target_diff_f", "elapsed_min", "remaining_min", "nb_finish_sd_f", "lag_min", "charge_diff_f")
ELAPSED_MID_MIN, ELAPSED_SCALE_MIN = 4.5, 2.5  # the training cuts span 1-9 min
HUBER_PASSES = 6
CORRECTION_MAX_F = 40.0  # a correction larger than this is an extrapolation: clip it


@dataclass(frozen=True)
class ResidualConfig:
    """Training rows: `cuts_per_roast` random cuts per roast from `cut_range_s`, the rest sampled
    at `u_points` equally spaced shares (so every roast weighs the same, as in `mae_f`)."""

    cut_range_s: tuple[int, int] = (60, 540)
    cuts_per_roast: int = 16
    u_points: int = 20
    alphas: tuple[float, ...] = (3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4)
    inner_folds: int = 5
    roasters: bool = True  # one-hot roaster features (those with 3+ training roasts)
    # Feature sets the inner CV may choose from (`ResidualKNN._candidates`); one set: only the penalty.
    feature_sets: tuple[str, ...] = ("timed",)
    huber_f: float | None = None  # residuals beyond this (°F) count linearly (None: plain ridge)
    seed: int = 0

    def __post_init__(self):
        lo, hi = self.cut_range_s
        if lo < MIN_AT_S or hi < lo:
            raise ValueError(f"ResidualConfig: cut_range_s {self.cut_range_s} must be >= {MIN_AT_S} s and ordered")
        if self.cuts_per_roast < 1 or self.u_points < 2 or self.inner_folds < 2 or not self.alphas:
            raise ValueError(f"ResidualConfig: invalid {self}")


def _ror(curve: np.ndarray, i: int, w: int) -> float:
    """°F/min over the last w seconds up to index i (shorter when the curve starts later)."""
    s = max(i - w, 0)
    return 60.0 * float(curve[i] - curve[s]) / max(i - s, 1)


def _ridge(design: np.ndarray, y: np.ndarray, wt: np.ndarray, alpha: float, huber_f: float | None) -> np.ndarray:
    """Weighted ridge; with `huber_f`, a few reweighting passes turn it into a Huber fit so that
    a handful of far-off roasts (a dark decaf on its own machine) cannot pull the correction."""
    eye = alpha * np.eye(design.shape[1])
    w_rows = wt
    for _ in range(HUBER_PASSES if huber_f else 1):
        dw = design * w_rows[:, None]
        coef = np.linalg.solve(dw.T @ design + eye, dw.T @ y)
        if huber_f:
            w_rows = wt * np.minimum(1.0, huber_f / np.maximum(np.abs(y - design @ coef), 1e-9))
    return coef


def _basis(h: np.ndarray, rest: int) -> np.ndarray:
    """(len(h), 2): the horizon shapes of the correction, each 0 at the cut."""
    u = h / max(rest, 1)
    return np.stack([u, u * u], axis=1)


class ResidualKNN(Forecaster):
    """The prefix kNN with a ridge correction of its residuals (see the module docstring)."""

    name = "knn_residual"

    def __init__(self, config: ResidualConfig | None = None, knn_params: PrefixKNNParams | None = None):
        super().__init__()
        self.config = config or ResidualConfig()
        self.knn_params = knn_params  # None: tuned on the training roasts like `prefix_knn`
        self.knn = PrefixKNN(knn_params)
        self.roasters_: list[str] = []
        self.mu_ = self.sd_ = self.w_ = None
        self.cols_: list[int] = []
        self.alpha_: float | None = None
        self.cv_: dict = {}

    def spawn(self):
        return type(self)(self.config, self.knn_params)

    # features ---------------------------------------------------------------------------
    def _point(self, req: Request, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(the kNN's full curve of n samples, the raw feature vector at the cut)."""
        knn, p = self.knn, self.knn.params
        idx, lags = knn._neighbours(req, n, p)
        curve = knn._blend(req.prefix, idx, lags, n, p)
        q, c = req.prefix, req.at
        levels, r30, r60, finals, charges, targets = [], [], [], [], [], []
        for j, lag in zip(idx, lags, strict=True):
            nb = knn.lib_.curves[int(j)]
            s = knn._start(int(j), c, lag)
            levels.append(nb[s])
            r30.append(_ror(nb, s, 30))
            r60.append(_ror(nb, s, 60))
            finals.append(nb[-1])
            charges.append(nb[0])
            t = knn.lib_.finish_target[int(j)]
            if np.isfinite(t):
                targets.append(t)
        target = req.meta.target_finish_f
        has_target = target is not None and np.isfinite(target)
        x = [q[c] - np.mean(levels), _ror(q, c, 30) - np.mean(r30), _ror(q, c, 60) - np.mean(r60),
             _ror(q, c, 30),
             (target - curve[-1]) if has_target else 0.0, float(has_target),
             (target - np.mean(targets)) if has_target and targets else 0.0,
             c / 60.0, (n - 1 - c) / 60.0, float(np.std(finals)), float(np.mean(lags)) / 60.0,
             q[0] - np.mean(charges)]
        # How a difference plays out depends on when it is seen (a lead at 2 min is not one at
        # 6 min): each feature also enters times the elapsed time, centred on the cuts' middle.
        e = (c / 60.0 - ELAPSED_MID_MIN) / ELAPSED_SCALE_MIN
        base = np.asarray(x, dtype=float)
        return curve, np.concatenate([base, [float(req.meta.roaster == r) for r in self.roasters_], base * e])

    def _design(self, x: np.ndarray, h: np.ndarray, rest: int, cols=None) -> np.ndarray:
        cols = self.cols_ if cols is None else cols
        z = np.append(((x - self.mu_) / self.sd_)[cols], 1.0)
        return np.einsum("hb,f->hbf", _basis(h, rest), z).reshape(h.size, -1)

    def _candidates(self) -> dict[str, list[int]]:
        """Feature sets the inner CV chooses from (column indices of the raw feature vector)."""
        idx = {f: i for i, f in enumerate(FEATURES)}
        n = len(FEATURES) + len(self.roasters_)
        sets = {"end": [idx["finish_gap_f"], idx["has_target"]],  # the roaster's target alone
                "all": list(range(n)),  # every feature, one effect whatever the cut
                "timed": list(range(n + len(FEATURES)))}  # ... and each times the elapsed time
        return {k: sets[k] for k in self.config.feature_sets}

    # fitting ------------------------------------------------------------------------------
    def _fit_point(self, profiles: Sequence[Profile]) -> None:
        cfg = self.config
        profiles = list(profiles)
        self.knn._fit_common(profiles)
        self.knn._fit_point(profiles)
        counts: dict[str, int] = {}
        for p in profiles:
            if p.meta.roaster:
                counts[p.meta.roaster] = counts.get(p.meta.roaster, 0) + 1
        self.roasters_ = sorted(r for r, k in counts.items() if k >= 3) if cfg.roasters else []
        self.w_ = None
        rng = np.random.default_rng(cfg.seed)
        rows = []  # (roast index, x, h, residual at h, rest)
        for i, p in enumerate(profiles):
            real = curve_1s(p)
            hi = min(cfg.cut_range_s[1], real.size - 1 - MIN_REST_S)
            if hi < cfg.cut_range_s[0]:
                continue
            for c in np.sort(rng.integers(cfg.cut_range_s[0], hi + 1, size=cfg.cuts_per_roast)):
                # Cross-fitted: the roast's own product is not among its neighbours.
                req = Request(real[: c + 1].copy(), p.meta, exclude_group=p.group)
                curve, x = self._point(req, real.size)
                rest = real.size - 1 - int(c)
                h = np.unique(np.round(np.linspace(1, rest, cfg.u_points)).astype(int))
                rows.append((i, x, h.astype(float), real[c + h] - curve[c + h], rest))
        used = sorted({r[0] for r in rows})
        if len(rows) < 10 or len({profiles[i].group for i in used}) < 3:
            log.warning("knn_residual: %d training rows; the correction is off (the prefix kNN alone)", len(rows))
            return
        xs = np.array([r[1] for r in rows])
        self.mu_ = xs.mean(axis=0)
        self.sd_ = np.where(xs.std(axis=0) > 1e-9, xs.std(axis=0), 1.0)
        y = np.concatenate([r[3] for r in rows])
        owner = np.concatenate([np.full(h.size, i) for i, _, h, _, _ in rows])
        # Weights: the rest's points share one unit and the finish (the last point) another, so
        # the fit and the choice below weigh the curve MAE and the finish MAE alike.
        wt = np.concatenate([np.append(np.full(h.size - 1, 1.0 / max(h.size - 1, 1)), 1.0) for _, _, h, _, _ in rows])
        k = min(cfg.inner_folds, len({profiles[i].group for i in used}))
        plan = group_kfold([profiles[i] for i in used], k, cfg.seed)
        masks = [(np.isin(owner, [used[j] for j in tr]), np.isin(owner, [used[j] for j in va])) for tr, va in plan]
        base = float(np.sum(wt * np.abs(y)))
        scores = {}  # (feature set, alpha) -> weighted inner MAE; the choice is made on held-out products
        for set_name, cols in self._candidates().items():
            design = np.concatenate([self._design(x, h, rest, cols) for _, x, h, _, rest in rows])
            for tr_m, va_m in masks:
                for alpha in cfg.alphas:
                    w = _ridge(design[tr_m], y[tr_m], wt[tr_m], alpha, cfg.huber_f)
                    pred = np.clip(design[va_m] @ w, -CORRECTION_MAX_F, CORRECTION_MAX_F)
                    key = (set_name, float(alpha))
                    scores[key] = scores.get(key, 0.0) + float(np.sum(wt[va_m] * np.abs(y[va_m] - pred)))
        (set_name, alpha), err = min(scores.items(), key=lambda kv: kv[1])
        total = float(np.sum(wt))
        self.cv_ = {"inner_mae_f": round(err / total, 3), "knn_inner_mae_f": round(base / total, 3),
                    "features": set_name, "n_rows": len(rows)}
        log.info("knn_residual: features %s, ridge alpha %g, inner weighted MAE %.2f vs kNN %.2f °F on %d rows",
                 set_name, alpha, err / total, base / total, len(rows))
        if err >= base:  # the correction does not help on held-out products: leave it off
            self.alpha_ = None
            return
        self.alpha_, self.cols_ = alpha, self._candidates()[set_name]
        design = np.concatenate([self._design(x, h, rest) for _, x, h, _, rest in rows])
        self.w_ = _ridge(design, y, wt, alpha, cfg.huber_f)

    # interface ----------------------------------------------------------------------------
    def expected_length(self, req):
        return self.knn.expected_length(req)

    def continue_many(self, reqs, ns):
        out = []
        for req, n in zip(reqs, ns, strict=True):
            curve, x = self._point(req, n)
            if self.w_ is not None:
                rest = n - 1 - req.at
                h = np.arange(1, rest + 1, dtype=float)
                corr = np.clip(self._design(x, h, rest) @ self.w_, -CORRECTION_MAX_F, CORRECTION_MAX_F)
                curve = curve.copy()
                curve[req.at + 1:] += corr
            out.append(curve)
        return out

    def describe(self):
        return {**super().describe(), "knn_params": dataclasses.asdict(self.knn.params),
                "alpha": self.alpha_, "roasters": self.roasters_, "cv": self.cv_,
                "config": dataclasses.asdict(self.config)}

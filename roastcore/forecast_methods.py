"""The non-learned forecasters: Artisan's linear projection, RoR decay and the prefix kNN (issue 16).

- `linear_projection` (Artisan's projection): RoR = (BT[t] - BT[t-30 s]) / 30 s, the rate of
  the last 30 s (the whole prefix when shorter); BT(t+h) = BT[t] + RoR * h, a straight line.
- `ror_decay`: the RoR trend extrapolated. The 30 s-delta RoR over the last `window_s` (after
  the TP) is fitted as RoR(t) = RoR0 * exp(-k (t - now)) by least squares on log RoR; BT
  integrates it: BT(t+h) = BT[t] + RoR0 / k * (1 - exp(-k h)). A RoR still rising (just after
  the TP) or too short a window falls back to the training roasts' median k.
- `prefix_knn`: neighbours chosen on the observed prefix (RMSE over its last `window_s`,
  allowing the neighbour to run up to `max_lag_s` ahead or behind) plus the request
  (`baselines.AlignedKNN`'s distance: roast level, process, roaster, charge, target finish, and
  the length when the DROP time is given); each neighbour's rest from its matched moment is
  offset to the current temperature, stretched to the known (or its own expected) length
  (`baselines.warp_curve`) and averaged. k, window, lag, the request weight and the end warp
  are tuned by leave-one-group-out on the training roasts.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from roastcore.baselines import AlignedKNN, AlignedKNNParams, _Library, curve_1s, warp_curve
from roastcore.forecast import EVAL_CUTS_S, MIN_REST_S, Forecaster, Request, residuals_on
from roastcore.profile import ProfileMeta, find_turning_point

log = logging.getLogger(__name__)

PROJECTION_WINDOW_S = 30  # Artisan's projection: the RoR of the last 30 s


# ------------------------------------------------------------------ linear projection
class LinearProjection(Forecaster):
    """Artisan's projection: BT extended with the rate of the last 30 s (see the module docstring)."""

    name = "linear_projection"
    length_aware = False

    def continue_many(self, reqs, ns):
        out = []
        for req, n in zip(reqs, ns, strict=True):
            q, c = req.prefix, req.at
            w = min(PROJECTION_WINDOW_S, c)
            ror = (q[c] - q[c - w]) / w
            out.append(np.concatenate([q, q[c] + ror * np.arange(1, n - c)]))
        return out


# ------------------------------------------------------------------ RoR decay
K_MIN, K_MAX = 1.0 / 3000.0, 1.0 / 60.0  # RoR decay rates (1/s) a fit may take
ROR_WINDOWS_S = (60, 120, 180)


def _ror_trend(q: np.ndarray, window_s: int) -> tuple[float, float | None]:
    """(RoR now in °F/s, decay rate k or None when the trend is not a decay) from the last window."""
    c = q.size - 1
    ror_now = max((q[c] - q[c - 30]) / 30.0, 0.0) if c >= 30 else max((q[c] - q[0]) / max(c, 1), 0.0)
    tp = find_turning_point(q, 1.0)
    start = max(c - window_s, 30 + (0 if tp is None else int(tp[0])))
    if c - start < 10:
        return ror_now, None
    i = np.arange(start, c + 1)
    r = (q[i] - q[i - 30]) / 30.0
    if np.any(r <= 0.01):
        return ror_now, None
    t = i - 15.0 - c  # a 30 s delta describes the middle of its span
    slope, intercept = np.polyfit(t, np.log(r), 1)
    if -slope < K_MIN:  # not decaying (still rising after the TP)
        return ror_now, None
    return float(np.exp(intercept)), float(min(-slope, K_MAX))


class RoRDecay(Forecaster):
    """The RoR trend of the last `window_s` extrapolated as an exponential decay."""

    name = "ror_decay"
    length_aware = False

    def __init__(self, window_s: int | None = None):
        super().__init__()
        self.window_s = window_s
        self.k_default = 1.0 / 400.0

    def spawn(self):
        return type(self)(self.window_s)

    def _fit_point(self, profiles):
        # k_default: the median decay fitted on training roasts; the window: best training MAE
        # (no neighbours are involved, so scoring on the training roasts cannot leak).
        ks = []
        for p in profiles:
            real = curve_1s(p)
            for c in (240, 360, 480):
                if c + MIN_REST_S <= real.size - 1:
                    _, k = _ror_trend(real[: c + 1], 120)
                    if k is not None:
                        ks.append(k)
        if ks:
            self.k_default = float(np.median(ks))
        if self.window_s is None:
            best = None
            for w in ROR_WINDOWS_S:
                self.window_s = w
                res = residuals_on(self, profiles, EVAL_CUTS_S)
                mae = float(np.mean([np.mean(np.abs(r)) for _, _, r in res])) if res else 0.0
                if best is None or mae < best[0]:
                    best = (mae, w)
            self.window_s = best[1]

    def continue_many(self, reqs, ns):
        out = []
        for req, n in zip(reqs, ns, strict=True):
            q, c = req.prefix, req.at
            ror0, k = _ror_trend(q, self.window_s or 120)
            k = self.k_default if k is None else k
            h = np.arange(1, n - c, dtype=float)
            out.append(np.concatenate([q, q[c] + ror0 / k * (1.0 - np.exp(-k * h))]))
        return out

    def describe(self):
        return {**super().describe(), "window_s": self.window_s, "k_default": self.k_default}


# ------------------------------------------------------------------ prefix kNN
@dataclass(frozen=True)
class PrefixKNNParams:
    k: int = 3
    window_s: int = 180  # the last seconds of the prefix compared with each neighbour
    max_lag_s: int = 60  # a neighbour may be matched this far ahead of or behind the roast
    w_meta: float = 0.5  # weight of the request distance (AlignedKNN's) against the prefix RMSE (°F)
    end_warp: float = 1.0  # baselines.warp_curve: share of the length difference taken by stretching
    # Share of the offset to the current temperature kept at DROP (linear from 1 at the cut):
    # 1 keeps the roast's lead over its neighbours, 0 lands on the neighbours' own finish.
    end_offset: float = 1.0

    def __post_init__(self):
        if self.k < 1 or self.window_s < 10 or self.max_lag_s < 0 or self.w_meta < 0:
            raise ValueError(f"PrefixKNNParams: invalid {self}")
        if not 0.0 <= self.end_warp <= 1.0:
            raise ValueError(f"PrefixKNNParams: end_warp {self.end_warp} is outside 0..1")
        if not 0.0 <= self.end_offset <= 1.0:
            raise ValueError(f"PrefixKNNParams: end_offset {self.end_offset} is outside 0..1")


PREFIX_KNN_GRID = {"k": (3, 5, 8), "window_s": (60, 180), "max_lag_s": (0, 60),
                   "w_meta": (0.0, 0.5, 2.0), "end_warp": (1.0, 0.5), "end_offset": (1.0, 0.5, 0.0)}
LAG_STEP_S = 2
LAG_PENALTY_F_PER_MIN = 1.0  # prefix mismatch added per minute of lag: prefer neighbours in step
TUNE_QUERIES = 40


class PrefixKNN(Forecaster):
    """Neighbours matched on the prefix and the request, offset to now, stretched and averaged."""

    name = "prefix_knn"

    def __init__(self, params: PrefixKNNParams | None = None, tune: bool = True):
        super().__init__()
        self.params = params or PrefixKNNParams()
        self.tune = tune and params is None
        self._ak = AlignedKNN(params=AlignedKNNParams())

    def spawn(self):
        return type(self)(None if self.tune else self.params, self.tune)

    def _fit_point(self, profiles):
        self.lib_ = _Library.build(profiles)
        lens = np.array([c.size for c in self.lib_.curves])
        # Zero-padded curves and running sums of squares: the prefix RMSE at every lag is then
        # one strided dot product per curve (sum L^2 - 2 L.q + sum q^2).
        self._pad = np.zeros((len(lens), int(lens.max()) + 1))
        for j, c in enumerate(self.lib_.curves):
            self._pad[j, : c.size] = c
        self._cum2 = np.concatenate([np.zeros((len(lens), 1)), np.cumsum(self._pad ** 2, axis=1)], axis=1)
        self._lens = lens
        if self.tune and len(set(self.lib_.groups)) >= 3:
            self.params, self.tuning_ = self._tune()

    # distances ---------------------------------------------------------------------------
    def _prefix_match(self, q: np.ndarray, window_s: int, max_lag_s: int):
        """(score, lag) per library curve: the prefix RMSE at the best lag, plus a lag penalty."""
        c = q.size - 1
        s = max(c - window_s, 0)
        seg = q[s:c + 1]
        m = seg.size
        lags = np.arange(-max_lag_s, max_lag_s + 1, LAG_STEP_S) if max_lag_s else np.zeros(1, dtype=int)
        width = self._pad.shape[1]
        starts = s + lags
        # A lag is usable when the window starts inside the curve and the neighbour still has
        # MIN_REST_S to go after the matched moment (which also keeps the window inside it).
        ok = (starts[None, :] >= 0) & ((c + lags)[None, :] <= (self._lens[:, None] - 1 - MIN_REST_S))
        st = np.clip(starts, 0, width - m)
        windows = np.lib.stride_tricks.sliding_window_view(self._pad, m, axis=1)
        dots = np.einsum("ijk,k->ij", windows[:, st[0]:st[-1] + 1, :], seg)[:, st - st[0]]
        sq = self._cum2[:, st + m] - self._cum2[:, st]
        mse = np.maximum(sq - 2.0 * dots + float(seg @ seg), 0.0) / m
        score = np.where(ok, np.sqrt(mse), np.inf) + LAG_PENALTY_F_PER_MIN * np.abs(lags)[None, :] / 60.0
        best = np.argmin(score, axis=1)
        return score[np.arange(score.shape[0]), best], lags[best]

    def _meta_dist(self, req: Request, n: int | None) -> np.ndarray:
        cat, charge, length, finish = self._ak._components(req.meta, float(req.prefix[0]),
                                                           float(n - 1) if n else 0.0, self.lib_)
        p = self._ak.params
        d = p.w_cat * cat + p.w_charge * charge + p.w_finish * finish
        return d + (p.w_length * length if n else 0.0)

    def _neighbours(self, req: Request, n: int | None, params: PrefixKNNParams):
        score, lags = self._prefix_match(req.prefix, params.window_s, params.max_lag_s)
        d = score + params.w_meta * self._meta_dist(req, n)
        if req.exclude_group is not None:
            d = np.where(np.array(self.lib_.groups) == req.exclude_group, np.inf, d)
        order = np.argsort(d, kind="stable")
        idx = order[np.isfinite(d[order])][: params.k]
        if idx.size == 0:  # nothing long enough to continue: the closest by request alone
            idx = np.argsort(self._meta_dist(req, n), kind="stable")[: params.k]
            lags = np.zeros_like(lags)
        return idx, lags[idx]

    def _piece(self, j: int, start: int, n_rest: int, end_warp: float) -> np.ndarray:
        """Neighbour j's rest from `start`, warped to n_rest samples, starting at 0 °F."""
        curve = self.lib_.curves[j]
        rest = warp_curve(curve[start:], np.nan, n_rest, None, end_warp)
        return rest - rest[0]

    def _start(self, j: int, c: int, lag: int) -> int:
        return min(max(c + int(lag), 0), int(self._lens[j]) - 2)

    def _rest_parts(self, q: np.ndarray, idx, lags, n: int, end_warp: float, cache: dict | None = None):
        """(mean rise of the neighbours' rests from their matched moments, their mean level there)."""
        c = q.size - 1
        pieces, levels = [], []
        for j, lag in zip(idx, lags, strict=True):
            key = (int(j), self._start(int(j), c, lag), end_warp)
            piece = cache.get(key) if cache is not None else None
            if piece is None:
                piece = self._piece(key[0], key[1], n - c, end_warp)
                if cache is not None:
                    cache[key] = piece
            pieces.append(piece)
            levels.append(self.lib_.curves[key[0]][key[1]])
        # np.mean(pieces, axis=0)'s own additions (row by row), without stacking the rows: the
        # tuning calls this tens of thousands of times.
        rise = pieces[0].copy()
        for piece in pieces[1:]:
            rise += piece
        return rise / len(pieces), float(np.mean(levels))

    @staticmethod
    def _rest(now: float, rise: np.ndarray, level: float, end_offset: float, ramp: np.ndarray) -> np.ndarray:
        """The neighbours' rise from the current temperature `now`, with the offset to their level
        fading linearly (`ramp`: 0..1 over the rest) to `end_offset` of itself at DROP."""
        return level + rise + (now - level) * (1.0 - (1.0 - end_offset) * ramp)

    @classmethod
    def _join(cls, q: np.ndarray, rise: np.ndarray, level: float, end_offset: float) -> np.ndarray:
        """Prefix + rest (`_rest` from the prefix's last temperature)."""
        rest = cls._rest(q[-1], rise, level, end_offset, np.linspace(0.0, 1.0, rise.size))
        return np.concatenate([q, rest[1:]])

    def _blend(self, q: np.ndarray, idx, lags, n: int, params: PrefixKNNParams) -> np.ndarray:
        rise, level = self._rest_parts(q, idx, lags, n, params.end_warp)
        return self._join(q, rise, level, params.end_offset)

    def _rest_len(self, q: np.ndarray, idx, lags) -> float:
        c = q.size - 1
        return float(np.mean([self._lens[j] - 1 - self._start(int(j), c, lag)
                              for j, lag in zip(idx, lags, strict=True)]))

    def neighbour_curve(self, req: Request, n: int) -> np.ndarray:
        """The neighbours' own curves (not offset to this roast), n samples: their prefix
        time-warped onto this one's (a lag moves their matched moment to now), their rest
        stretched as in `continue_many`. A prior for a model: the gap to it over the prefix
        says how this roast differs from its neighbours."""
        idx, lags = self._neighbours(req, n, self.params)
        c = req.at
        rows = []
        for j, lag in zip(idx, lags, strict=True):
            curve = self.lib_.curves[j]
            start = self._start(int(j), c, lag)
            pre = np.interp(np.arange(c + 1) * start / c, np.arange(curve.size), curve)
            post = warp_curve(curve[start:], np.nan, n - c, None, self.params.end_warp)
            rows.append(np.concatenate([pre, post[1:]]))
        return np.mean(rows, axis=0)

    # interface ------------------------------------------------------------------------------
    def expected_length(self, req):
        idx, lags = self._neighbours(req, None, self.params)
        return req.at + 1 + max(int(round(self._rest_len(req.prefix, idx, lags))), 1)

    def continue_many(self, reqs, ns):
        out = []
        for req, n in zip(reqs, ns, strict=True):
            idx, lags = self._neighbours(req, n, self.params)
            out.append(self._blend(req.prefix, idx, lags, n, self.params))
        return out

    def describe(self):
        return {**super().describe(), "params": dataclasses.asdict(self.params)}

    def _tune(self) -> tuple[PrefixKNNParams, dict]:
        """Leave-one-group-out MAE of the rest at cuts 120/240/360 over the grid (training only)."""
        lib, grid = self.lib_, PREFIX_KNN_GRID
        groups = np.array(lib.groups)
        queries = np.arange(len(lib.curves))
        if queries.size > TUNE_QUERIES:
            queries = np.sort(np.random.default_rng(0).choice(queries, TUNE_QUERIES, replace=False))
        combos = [PrefixKNNParams(k=k, window_s=w, max_lag_s=lag, w_meta=wm, end_warp=ew, end_offset=eo)
                  for k in grid["k"] for w in grid["window_s"] for lag in grid["max_lag_s"]
                  for wm in grid["w_meta"] for ew in grid["end_warp"] for eo in grid["end_offset"]]
        errors = np.zeros(len(combos))
        count = 0
        for i in queries:
            real = lib.curves[i]
            meta = ProfileMeta(roast_level=lib.cats[i][0], process=lib.cats[i][1], roaster=lib.cats[i][2],
                               target_finish_f=None if np.isnan(lib.finish_target[i]) else lib.finish_target[i])
            for c in EVAL_CUTS_S:
                if c + MIN_REST_S > real.size - 1:
                    continue
                req = Request(real[: c + 1], meta, exclude_group=str(groups[i]))
                matches = {(w, lag): self._prefix_match(req.prefix, w, lag)
                           for w in grid["window_s"] for lag in grid["max_lag_s"]}
                meta_d = self._meta_dist(req, real.size)
                excluded = groups == groups[i]
                real_rest = real[c + 1:]
                ramp = np.linspace(0.0, 1.0, real.size - c)  # the rest's fade, as _join makes it
                seen: dict[tuple, float] = {}
                parts: dict[tuple, tuple] = {}
                pieces: dict[tuple, np.ndarray] = {}
                # The neighbour order depends on (window, lag, w_meta) only: sorted once for the
                # k, end_warp and end_offset that share it (the grid's 216 combinations, 12 sorts).
                orders: dict[tuple, tuple] = {}
                for ci, p in enumerate(combos):
                    by = (p.window_s, p.max_lag_s, p.w_meta)
                    if by not in orders:
                        score, lags = matches[(p.window_s, p.max_lag_s)]
                        d = np.where(excluded, np.inf, score + p.w_meta * meta_d)
                        order = np.argsort(d, kind="stable")
                        orders[by] = (order[np.isfinite(d[order])], lags)
                    finite, lags = orders[by]
                    idx = finite[: p.k]
                    if idx.size == 0:
                        errors[ci] += 1e3
                        continue
                    base = (tuple(idx), tuple(lags[idx]), p.end_warp)
                    key = base + (p.end_offset,)
                    if key not in seen:
                        if base not in parts:
                            parts[base] = self._rest_parts(req.prefix, idx, lags[idx], real.size, p.end_warp, pieces)
                        # The rest `_join` appends, without building the curve.
                        rest = self._rest(req.prefix[c], *parts[base], p.end_offset, ramp)[1:]
                        seen[key] = float(np.mean(np.abs(rest - real_rest)))
                    errors[ci] += seen[key]
                count += 1
        best = int(np.argmin(errors))
        log.debug("prefix kNN tuned: %s (LOGO MAE %.2f °F over %d cuts)", combos[best],
                  errors[best] / max(count, 1), count)
        return combos[best], {"logo_mae_f": float(errors[best] / max(count, 1)), "n_cuts": count}

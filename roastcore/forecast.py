"""Forecasting the rest of a roast in progress, with a calibrated 80% band (issue 16).

Given a roast's first `at_s` seconds of BT (1 s samples from CHARGE), its metadata and the
events marked so far, a `Forecaster` returns the rest of the curve to a horizon:

- `Horizon.drop_at(s)`: a given DROP time (the roaster knows when they will drop);
- `Horizon.target(f)`: until BT reaches a target drop temperature;
- `Horizon.expected_end()` (the default): the method's own expected DROP time.

plus an 80% band (lower and upper curves), the predicted first-crack time when FCs has not
happened yet, and the time to reach the target (the horizon's, else `meta.target_finish_f`),
each with its band. ET is accepted with a Profile but no method uses it yet (onyx-dev logs none).

Methods, one interface (`fit(train_profiles)`, `forecast(...)`), scored by `forecast_eval`:

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
- `model`: a run's own model generating from the real prefix (`generate.ModelGenerator`; for
  a prior model the prior is its charge-only aligned kNN). Its expected end comes from a
  prefix kNN fitted on the same training roasts.

Bands (split conformal, cross-fitted). `fit` collects residuals (real - forecast) of training
roasts forecast by copies of the method fitted without their product group (grouped k-fold),
at the cuts `CAL_CUTS_S` with the real DROP time as horizon; `model` is not refitted, so its
residuals come straight from training roasts the run never saw. For each cut and horizon
bucket (seconds after the cut) the band is the 10th..90th percentile of the signed residuals,
widened to contain 0 so that lo <= forecast <= hi; it is interpolated between cuts and bucket
centres. Times (FCs, reaching the target) take their band from where the upper and lower curves
cross the temperature. All forecasts are clamped to `model.DEFAULT_CLAMP_F` and the curve
(prefix + forecast) is run through `physics.check_curve`; failures ride along (docs/forecasting.md).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from roastcore.baselines import AlignedKNN, AlignedKNNParams, _Library, curve_1s, warp_curve
from roastcore.batch import collate, steps_grid
from roastcore.generate import ModelGenerator
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.physics import check_curve
from roastcore.profile import Profile, ProfileMeta, find_turning_point
from roastcore.splits import group_kfold, train_val_split
from roastcore.threads import single_thread

log = logging.getLogger(__name__)

LEVEL = 0.8  # the band's nominal coverage
CAL_CUTS_S = (60, 120, 180, 240, 300, 360, 420, 480, 600)  # calibration cut points
# Horizon buckets (seconds after the cut) for the conformal quantiles.
H_EDGES_S = (0, 15, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 3600)
MIN_BUCKET_ROASTS = 8  # a horizon bucket needs residuals from this many roasts
MIN_AT_S = 30  # a forecast needs this much of the roast (one RoR window)
MIN_REST_S = 30  # a roast is scored at a cut only when at least this much is left
MAX_LENGTH_S = 1800  # a target-temperature forecast searches this far from CHARGE
DROP_MISS_CAP_S = 120.0  # drop-time error when the forecast never reaches the drop temperature
DEFAULT_FCS_F = 390.0  # first crack when the training roasts mark none (~199 °C)
PROJECTION_WINDOW_S = 30  # Artisan's projection: the RoR of the last 30 s
END_ROR_MAX_F_PER_S = 0.5  # extending a curve past its end: at most 30 °F/min
METHODS = ("linear_projection", "ror_decay", "prefix_knn", "model", "model_prefix_prior", "forecast")
MODEL_METHODS = ("model", "model_prefix_prior", "forecast")
EVAL_CUTS_S = (120, 240, 360)
HORIZON_KINDS = ("drop_time", "target", "expected_end")


# ------------------------------------------------------------------ requests and results
@dataclass(frozen=True)
class Horizon:
    """Where a forecast ends: a DROP time (s from CHARGE), a target BT (°F), or the method's own end."""

    kind: str = "expected_end"
    value: float | None = None

    def __post_init__(self):
        if self.kind not in HORIZON_KINDS:
            raise ValueError(f"horizon kind {self.kind!r}: expected one of {HORIZON_KINDS}")
        if self.kind == "expected_end":
            if self.value is not None:
                raise ValueError("horizon expected_end takes no value")
            return
        if self.value is None or not math.isfinite(float(self.value)):
            raise ValueError(f"horizon {self.kind}: value must be a finite number, got {self.value!r}")
        if self.kind == "drop_time" and not MIN_AT_S < float(self.value) <= MAX_LENGTH_S:
            raise ValueError(f"horizon drop_time {self.value} s is outside {MIN_AT_S}..{MAX_LENGTH_S} s")
        if self.kind == "target" and not 150.0 <= float(self.value) <= DEFAULT_CLAMP_F[1]:
            raise ValueError(f"horizon target {self.value} °F is outside 150..{DEFAULT_CLAMP_F[1]:g} °F")

    @classmethod
    def drop_at(cls, seconds: float) -> Horizon:
        return cls("drop_time", float(seconds))

    @classmethod
    def target(cls, temp_f: float) -> Horizon:
        return cls("target", float(temp_f))

    @classmethod
    def expected_end(cls) -> Horizon:
        return cls("expected_end")


@dataclass
class Request:
    """What a forecaster may see: the prefix (BT at 1 s from CHARGE to now), metadata, events so far."""

    prefix: np.ndarray
    meta: ProfileMeta
    events: dict[str, float] = field(default_factory=dict)
    exclude_group: str | None = None  # a product the method's library may not use (scoring a held roast)

    @property
    def at(self) -> int:
        return int(self.prefix.size - 1)


def make_request(observed, meta: ProfileMeta | None = None, at_s: float | None = None,
                 exclude_group: str | None = None) -> Request:
    """A `Request` from a Profile (cut at `at_s`) or a 1-D BT array at 1 s (the prefix itself)."""
    events: dict[str, float] = {}
    if isinstance(observed, Profile):
        bt = curve_1s(observed)
        meta = meta if meta is not None else observed.meta
        events = dict(observed.events)
    else:
        bt = np.asarray(observed, dtype=float).reshape(-1)
        if not np.all(np.isfinite(bt)):
            raise ValueError("forecast prefix: BT contains non-finite values")
    at = bt.size - 1 if at_s is None else int(math.floor(float(at_s) + 1e-9))
    if at < MIN_AT_S:
        raise ValueError(f"forecast at_s={at_s}: need at least {MIN_AT_S} s of the roast")
    if at > bt.size - 1:
        raise ValueError(f"forecast at_s={at_s}: the roast has only {bt.size - 1} s")
    events = {k: v for k, v in events.items() if v <= at and k != "DROP"}
    return Request(prefix=bt[: at + 1].copy(), meta=meta or ProfileMeta(), events=events,
                   exclude_group=exclude_group)


@dataclass
class Forecast:
    """The rest of a roast from `at_s` (exclusive) to `end_s`, in °F on a 1 s grid, with its band.

    Times are seconds from CHARGE except `time_to_target*`, which count from `at_s`. A None
    time means "not reached within the horizon"; `fcs_happened` says FCs is already behind.
    """

    method: str
    at_s: float
    horizon: str
    times_s: np.ndarray
    bt_f: np.ndarray
    lo_f: np.ndarray
    hi_f: np.ndarray
    end_s: float
    fcs_happened: bool = False
    fcs_s: float | None = None
    fcs_lo_s: float | None = None  # the earliest (upper curve crosses first)
    fcs_hi_s: float | None = None
    target_f: float | None = None
    time_to_target_s: float | None = None
    time_to_target_lo_s: float | None = None
    time_to_target_hi_s: float | None = None
    physics_failures: list[str] = field(default_factory=list)
    calibrated: bool = True

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("times_s", "bt_f", "lo_f", "hi_f"):
            d[key] = [round(float(x), 2) for x in getattr(self, key)]
        return d


# ------------------------------------------------------------------ conformal bands
def _band_quantiles(r: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """(lo, hi) offsets holding `level` of the signed residuals r and containing 0."""
    tail = (1.0 - level) / 2.0
    below = float(np.mean(r < 0))
    a, b = tail, 1.0 - tail
    if below < a:  # nearly all residuals positive: the band starts at the forecast
        a, b = below, below + level
    elif below > b:
        a, b = below - level, below
    lo, hi = np.quantile(r, [a, b])
    return min(float(lo), 0.0), max(float(hi), 0.0)


@dataclass
class ConformalBands:
    """Residual quantiles by cut (rows, `cuts_s`) and horizon bucket (columns, centres `h_s`)."""

    cuts_s: list[float]
    h_s: list[float]
    lo: list[list[float]]
    hi: list[list[float]]
    n_roasts: list[int]
    level: float = LEVEL

    @classmethod
    def from_residuals(cls, residuals: Sequence[tuple[int, np.ndarray, np.ndarray]],
                       level: float = LEVEL) -> ConformalBands:
        """`residuals`: (cut_s, horizons_s, real - forecast) per roast and cut."""
        if not residuals:
            raise ValueError("conformal bands: no calibration residuals")
        edges = np.asarray(H_EDGES_S, dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2.0
        cuts = sorted({int(c) for c, _, _ in residuals})
        lo_rows, hi_rows, counts = [], [], []
        for c in cuts:
            rows = [(h, r) for cc, h, r in residuals if cc == c]
            r_all = np.concatenate([r for _, r in rows])
            buckets = [np.clip(np.searchsorted(edges, h, side="left") - 1, 0, len(centres) - 1)
                       for h, _ in rows]
            lo_row, hi_row = [], []
            for b in range(len(centres)):
                parts = [r[k == b] for (_, r), k in zip(rows, buckets, strict=True) if np.any(k == b)]
                if len(parts) >= MIN_BUCKET_ROASTS:
                    lo_b, hi_b = _band_quantiles(np.concatenate(parts), level)
                elif lo_row:  # too few roasts last this long: keep the previous bucket's band
                    lo_b, hi_b = lo_row[-1], hi_row[-1]
                else:
                    lo_b, hi_b = _band_quantiles(r_all, level)
                lo_row.append(lo_b)
                hi_row.append(hi_b)
            # Errors of a forecast grow with the horizon; a thin far bucket must not narrow the band.
            lo_rows.append(np.minimum.accumulate(lo_row).tolist())
            hi_rows.append(np.maximum.accumulate(hi_row).tolist())
            counts.append(len(rows))
        return cls(cuts_s=[float(c) for c in cuts], h_s=[float(x) for x in centres], lo=lo_rows,
                   hi=hi_rows, n_roasts=counts, level=level)

    def offsets(self, at_s: float, h_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper offsets (°F) for points `h_s` seconds after a cut at `at_s`."""
        cuts = np.asarray(self.cuts_s)
        lo_tab, hi_tab = np.asarray(self.lo), np.asarray(self.hi)
        h = np.asarray(h_s, dtype=float)

        def row(table, i):
            return np.interp(h, self.h_s, table[i])

        if at_s <= cuts[0] or cuts.size == 1:
            return row(lo_tab, 0), row(hi_tab, 0)
        if at_s >= cuts[-1]:
            return row(lo_tab, -1), row(hi_tab, -1)
        j = int(np.searchsorted(cuts, at_s))
        w = (at_s - cuts[j - 1]) / (cuts[j] - cuts[j - 1])
        return ((1 - w) * row(lo_tab, j - 1) + w * row(lo_tab, j),
                (1 - w) * row(hi_tab, j - 1) + w * row(hi_tab, j))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def residuals_on(forecaster: Forecaster, profiles: Sequence[Profile], cuts: Sequence[int] = CAL_CUTS_S,
                 exclude: Callable[[Profile], str | None] | None = None
                 ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(cut, horizons, real - forecast) for every roast and cut with a rest, DROP time given."""
    reqs, ns, meta = [], [], []
    for p in profiles:
        real = curve_1s(p)
        for c in cuts:
            if c + MIN_REST_S <= real.size - 1:
                reqs.append(Request(real[: c + 1].copy(), p.meta, _events_before(p, c),
                                    exclude(p) if exclude else None))
                ns.append(real.size)
                meta.append((c, real))
    curves = [np.clip(c, *DEFAULT_CLAMP_F) for c in forecaster.continue_many(reqs, ns)]
    out = []
    for (c, real), curve in zip(meta, curves, strict=True):
        h = np.arange(1, real.size - c, dtype=float)
        out.append((c, h, real[c + 1:] - curve[c + 1:]))
    return out


def _events_before(p: Profile, at: float) -> dict[str, float]:
    scale = 1.0 if abs(p.interval_s - 1.0) < 1e-9 else (round(p.duration_s) / p.duration_s)
    return {k: v * scale for k, v in p.events.items() if v * scale <= at and k != "DROP"}


# ------------------------------------------------------------------ the interface
def _crossing(curve: np.ndarray, temp: float, start: int) -> float | None:
    """Seconds (from index 0) when `curve` first reaches `temp` at or after index `start`."""
    if curve[start] >= temp:
        return float(start)
    above = np.flatnonzero(curve[start:] >= temp)
    if above.size == 0:
        return None
    i = start + int(above[0])
    a, b = curve[i - 1], curve[i]
    return float(i - 1 + (temp - a) / (b - a)) if b > a else float(i)


def _extend(curve: np.ndarray, n: int) -> np.ndarray:
    """Continue a curve to n samples with its final 30 s rate of rise (0..30 °F/min)."""
    if curve.size >= n:
        return curve[:n]
    w = min(30, curve.size - 1)
    ror = float(np.clip((curve[-1] - curve[-1 - w]) / max(w, 1), 0.0, END_ROR_MAX_F_PER_S))
    return np.concatenate([curve, curve[-1] + ror * np.arange(1, n - curve.size + 1)])


class Forecaster:
    """Base class. Subclasses implement `continue_many` (and `expected_length`, `_fit_point`)."""

    name = "forecaster"
    # Whether the curve depends on the horizon length (kNN and model stretch to it); a method
    # that does not is simply run to the search cap for a target temperature.
    length_aware = True

    def __init__(self):
        self.bands: ConformalBands | None = None
        self.fcs_temp_f = DEFAULT_FCS_F
        self.median_length_s = 720.0
        self.fit_s = 0.0

    # -- fitting ------------------------------------------------------------------------
    def fit(self, profiles: Sequence[Profile], calibrate: bool = True, folds: int = 5,
            seed: int = 0) -> Forecaster:
        started = time.monotonic()
        profiles = list(profiles)
        if not profiles:
            raise ValueError(f"{self.name}.fit: no training profiles")
        self._fit_common(profiles)
        self._fit_point(profiles)
        if calibrate:
            self.bands = self._calibrate(profiles, folds, seed)
        self.fit_s = time.monotonic() - started
        return self

    def _fit_common(self, profiles: Sequence[Profile]) -> None:
        fcs = []
        for p in profiles:
            if "FCs" in p.events:
                fcs.append(float(np.interp(p.events["FCs"], p.times_s, p.bt)))
        self.fcs_temp_f = float(np.median(fcs)) if fcs else DEFAULT_FCS_F
        self.median_length_s = float(np.median([p.duration_s for p in profiles]))

    def _fit_point(self, profiles: Sequence[Profile]) -> None:
        pass

    def spawn(self) -> Forecaster:
        """An unfitted copy with the same settings (for cross-fitted calibration)."""
        return type(self)()

    def _calibrate(self, profiles: list[Profile], folds: int, seed: int) -> ConformalBands:
        """Cross-conformal: each roast's residuals come from a copy fitted without its group."""
        n_groups = len({p.group for p in profiles})
        if n_groups < 2:
            log.warning("%s: one product group; the band comes from in-sample residuals (too narrow)",
                        self.name)
            return ConformalBands.from_residuals(residuals_on(self, profiles))
        res = []
        for tr, va in group_kfold(profiles, min(folds, n_groups), seed):
            inner = self.spawn()
            inner._fit_common([profiles[i] for i in tr])
            inner._fit_point([profiles[i] for i in tr])
            res += residuals_on(inner, [profiles[i] for i in va])
        return ConformalBands.from_residuals(res)

    # -- what subclasses provide --------------------------------------------------------
    def continue_many(self, reqs: Sequence[Request], ns: Sequence[int]) -> list[np.ndarray]:
        """Full curves of ns[i] samples (the prefix copied) for each request."""
        raise NotImplementedError

    def expected_length(self, req: Request) -> int:
        """The method's own expected number of samples (CHARGE..DROP) for a request."""
        n = int(round(self.median_length_s)) + 1
        return max(n, req.at + 1 + 60)

    # -- forecasting --------------------------------------------------------------------
    def forecast(self, observed, meta: ProfileMeta | None = None, at_s: float | None = None,
                 horizon: Horizon | None = None) -> Forecast:
        """Forecast one roast: `observed` is a Profile (cut at `at_s`) or a BT array at 1 s."""
        return self.forecast_requests([make_request(observed, meta, at_s)], [horizon])[0]

    def forecast_requests(self, reqs: Sequence[Request],
                          horizons: Sequence[Horizon | None]) -> list[Forecast]:
        horizons = [h or Horizon.expected_end() for h in horizons]
        if len(horizons) != len(reqs):
            raise ValueError("forecast: one horizon per request")
        ns = []
        for req, hz in zip(reqs, horizons, strict=True):
            if hz.kind == "drop_time":
                n = int(round(float(hz.value))) + 1
                if n <= req.at + 1:
                    raise ValueError(f"horizon drop_time {hz.value} s is not after at_s={req.at} s")
            elif hz.kind == "target" and not self.length_aware:
                n = MAX_LENGTH_S + 1
            else:
                n = min(self.expected_length(req), MAX_LENGTH_S + 1)
            ns.append(max(n, req.at + 2))
        curves = self.continue_many(reqs, ns)
        return [self._package(req, hz, np.clip(curve, *DEFAULT_CLAMP_F))
                for req, hz, curve in zip(reqs, horizons, curves, strict=True)]

    def _band(self, at: int, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.arange(1, curve.size - at, dtype=float)
        if self.bands is None:
            return curve[at + 1:].copy(), curve[at + 1:].copy()
        lo_off, hi_off = self.bands.offsets(float(at), h)
        fc = curve[at + 1:]
        return np.clip(fc + lo_off, *DEFAULT_CLAMP_F), np.clip(fc + hi_off, *DEFAULT_CLAMP_F)

    def _package(self, req: Request, hz: Horizon, curve: np.ndarray) -> Forecast:
        at = req.at
        target = float(hz.value) if hz.kind == "target" else req.meta.target_finish_f
        # A target may lie past the method's own end: continue with the final rate of rise.
        full = _extend(curve, MAX_LENGTH_S + 1) if hz.kind == "target" else curve
        lo, hi = self._band(at, full)
        lo_full = np.concatenate([full[: at + 1], lo])
        hi_full = np.concatenate([full[: at + 1], hi])
        f = Forecast(method=self.name, at_s=float(at), horizon=hz.kind, times_s=np.empty(0),
                     bt_f=np.empty(0), lo_f=np.empty(0), hi_f=np.empty(0), end_s=0.0,
                     calibrated=self.bands is not None)
        # First crack: the training roasts' median BT at FCs, crossed after the cut.
        tp = find_turning_point(req.prefix, 1.0)
        past_tp = tp is not None and at > tp[0]
        if "FCs" in req.events or (past_tp and req.prefix[at] >= self.fcs_temp_f):
            f.fcs_happened = True
        else:
            f.fcs_s = _crossing(full, self.fcs_temp_f, at)
            f.fcs_lo_s = _crossing(hi_full, self.fcs_temp_f, at)
            f.fcs_hi_s = _crossing(lo_full, self.fcs_temp_f, at)
        end = full.size - 1
        if target is not None:
            f.target_f = float(target)
            hit = _crossing(full, target, at)
            f.time_to_target_s = None if hit is None else hit - at
            early, late = _crossing(hi_full, target, at), _crossing(lo_full, target, at)
            f.time_to_target_lo_s = None if early is None else early - at
            f.time_to_target_hi_s = None if late is None else late - at
            if hz.kind == "target":
                end = max(at + 1, int(math.ceil(hit))) if hit is not None else full.size - 1
        f.end_s = float(end)
        f.times_s = np.arange(at + 1, end + 1, dtype=float)
        f.bt_f, f.lo_f, f.hi_f = full[at + 1:end + 1], lo[: end - at], hi[: end - at]
        f.physics_failures = check_curve(full[: end + 1], 1.0).failures
        return f

    def describe(self) -> dict:
        return {"name": self.name, "fcs_temp_f": self.fcs_temp_f,
                "median_length_s": self.median_length_s}


# ------------------------------------------------------------------ linear projection
class LinearProjection(Forecaster):
    """Artisan's projection: BT extended with the rate of the last 30 s (see module docstring)."""

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
        return np.mean(pieces, axis=0), float(np.mean(levels))

    @staticmethod
    def _join(q: np.ndarray, rise: np.ndarray, level: float, end_offset: float) -> np.ndarray:
        """Prefix + rest: the neighbours' rise from the current temperature, with the offset to
        their level fading linearly to `end_offset` of itself at DROP."""
        c = q.size - 1
        fade = 1.0 - (1.0 - end_offset) * np.linspace(0.0, 1.0, rise.size)
        offset = q[c] - level
        return np.concatenate([q, (level + rise + offset * fade)[1:]])

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
                seen: dict[tuple, float] = {}
                parts: dict[tuple, tuple] = {}
                pieces: dict[tuple, np.ndarray] = {}
                for ci, p in enumerate(combos):
                    score, lags = matches[(p.window_s, p.max_lag_s)]
                    d = np.where(excluded, np.inf, score + p.w_meta * meta_d)
                    order = np.argsort(d, kind="stable")
                    idx = order[np.isfinite(d[order])][: p.k]
                    if idx.size == 0:
                        errors[ci] += 1e3
                        continue
                    base = (tuple(idx), tuple(lags[idx]), p.end_warp)
                    key = base + (p.end_offset,)
                    if key not in seen:
                        if base not in parts:
                            parts[base] = self._rest_parts(req.prefix, idx, lags[idx], real.size, p.end_warp, pieces)
                        curve = self._join(req.prefix, *parts[base], p.end_offset)
                        seen[key] = float(np.mean(np.abs(curve[c + 1:] - real[c + 1:])))
                    errors[ci] += seen[key]
                count += 1
        best = int(np.argmin(errors))
        log.debug("prefix kNN tuned: %s (LOGO MAE %.2f °F over %d cuts)", combos[best],
                  errors[best] / max(count, 1), count)
        return combos[best], {"logo_mae_f": float(errors[best] / max(count, 1)), "n_cuts": count}


# ------------------------------------------------------------------ a run's model
class ModelForecaster(Forecaster):
    """A trained model generating the rest from the real prefix (generate.ModelGenerator).

    `prior="prefix_knn"` (method `model_prefix_prior`, prior models only): the model corrects
    the prefix kNN's neighbours (`PrefixKNN.neighbour_curve`) instead of its charge-only prior.
    """

    name = "model"
    MIN_UNSEEN = 10  # fewer unseen calibration roasts than this: calibrate on seen ones, say so

    def __init__(self, model, prior: str = "run"):
        super().__init__()
        if prior not in ("run", "prefix_knn"):
            raise ValueError(f"ModelForecaster prior {prior!r}: expected 'run' or 'prefix_knn'")
        if prior == "prefix_knn":
            if getattr(model, "prior_library", None) is None:
                raise ValueError("prior 'prefix_knn' needs a prior model (config prior='aligned_knn')")
            self.name = "model_prefix_prior"
        self.prior = prior
        self.model = model
        self.generator = ModelGenerator(model)
        self.ender = PrefixKNN()  # the expected end: the model is told the length, it cannot pick one
        self.calibration_note = ""
        self._memo: dict[tuple, np.ndarray] = {}

    def spawn(self):
        return self  # nothing to refit

    @property
    def library(self):
        return getattr(self.model, "prior_library", None)

    def _fit_point(self, profiles):
        self.ender._fit_common(profiles)
        self.ender._fit_point(profiles)
        if self.prior == "prefix_knn":
            self._memo.clear()  # its generations depend on the kNN's library, new with every fit

    def exclusion(self, profile: Profile) -> str | None:
        """A roast the run's prior library holds must not be its own neighbour (the prefix kNN
        prior's library holds only the roasts it was fitted on; scoring keeps those apart)."""
        if self.prior == "prefix_knn":
            return None
        return self.library.scoring_exclusion(profile) if self.library is not None else None

    def _calibrate(self, profiles, folds, seed):
        unseen = [p for p in profiles if self.library is None or not self.library.holds(p)]
        if len(unseen) < self.MIN_UNSEEN:
            self.calibration_note = (f"only {len(unseen)} calibration roasts unseen by the run; the band "
                                     f"uses {len(profiles)} it may have trained on and can be too narrow")
            log.warning("model forecaster: %s", self.calibration_note)
            unseen = profiles
        # The prefix kNN prior was fitted on these very roasts: each must leave its own product out.
        exclude = (lambda p: p.group) if self.prior == "prefix_knn" else self.exclusion
        return ConformalBands.from_residuals(residuals_on(self, unseen, exclude=exclude))

    def expected_length(self, req):
        return self.ender.expected_length(req)

    def continue_many(self, reqs, ns):
        keys = [(hashlib.sha1(np.ascontiguousarray(r.prefix).tobytes()).hexdigest(), int(n),
                 repr(r.meta), r.exclude_group) for r, n in zip(reqs, ns, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            priors = ([self.ender.neighbour_curve(reqs[i], ns[i]) for i in todo]
                      if self.prior == "prefix_knn" else None)
            curves = self.generator.generate_requests(
                [reqs[i].meta for i in todo], [float(reqs[i].prefix[0]) for i in todo],
                [float(ns[i] - 1) for i in todo], [reqs[i].prefix for i in todo],
                exclude_groups=[reqs[i].exclude_group for i in todo], priors=priors)
            for i, curve in zip(todo, curves, strict=True):
                self._memo[keys[i]] = curve
        return [self._memo[k].copy() for k in keys]

    def describe(self):
        return {**super().describe(), "step_s": self.generator.step_s,
                "calibration_note": self.calibration_note}


# ------------------------------------------------------------------ the `forecast` recipe
@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning a prior model to forecast: rollouts from random cut points, each correcting
    the prefix kNN's neighbours for that cut (`PrefixKNN.neighbour_curve`, own product left out)."""

    epochs: int = 12
    lr: float = 3e-4
    weight_decay: float = 0.05
    batch_size: int = 16
    grad_clip: float = 1.0
    cuts_s: tuple[int, ...] = tuple(range(60, 481, 30))  # where a training rollout may start
    val_frac: float = 0.2  # grouped inner split that picks the epoch (epoch 0: the model as given)
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1 or not 0 < self.val_frac < 1:
            raise ValueError(f"FinetuneConfig: invalid {self}")
        if not self.cuts_s or min(self.cuts_s) < MIN_AT_S:
            raise ValueError(f"FinetuneConfig: cuts_s must be >= {MIN_AT_S} s")


def _rollout_item(model, real: np.ndarray, meta: ProfileMeta, cut: int, prior_1s: np.ndarray) -> dict | None:
    """One training row on the model's step grid: real temperatures, the prior, the prefix length."""
    n1 = real.size
    n_steps = int(round((n1 - 1) / model.config.step_s)) + 1
    if n_steps > model.config.max_len:
        return None
    grid = steps_grid(n1, n_steps)
    feats = model.encoder.encode(meta, float(n1 - 1))
    return {"temps_f": torch.tensor(np.interp(grid, np.arange(n1), real), dtype=torch.float32),
            "prior_f": torch.tensor(np.interp(grid, np.arange(n1), prior_1s), dtype=torch.float32),
            "cat": torch.from_numpy(feats.cat), "flavors": torch.from_numpy(feats.flavors),
            "cont": torch.from_numpy(feats.cont), "index": 0,
            "k": int(np.sum(grid <= cut + 1e-9))}


def finetune_on_prefixes(model, profiles: Sequence[Profile], config: FinetuneConfig | None = None):
    """A copy of a prior `model` fine-tuned to correct the prefix kNN from random cut points.

    Returns (model, info). The epoch (0 = unchanged) is picked by the forecast MAE of the rest at
    cuts 120/240/360 s on a grouped inner split, so fine-tuning can only be kept when it helps there.
    """
    cfg = config or FinetuneConfig()
    if getattr(model, "prior_library", None) is None:
        raise ValueError("finetune_on_prefixes: the model must be a prior model (config prior='aligned_knn')")
    inner, val = train_val_split(list(profiles), cfg.val_frac, cfg.seed, grouped=True)
    knn = PrefixKNN()
    knn._fit_common(inner)
    knn._fit_point(inner)
    rows: list[list[dict]] = []  # per training roast, one item per cut
    for p in inner:
        real = curve_1s(p)
        items = []
        for c in cfg.cuts_s:
            if c + MIN_REST_S > real.size - 1:
                continue
            req = Request(real[: c + 1].copy(), p.meta, exclude_group=p.group)
            item = _rollout_item(model, real, p.meta, c, knn.neighbour_curve(req, real.size))
            if item is not None:
                items.append(item)
        if items:
            rows.append(items)
    tuned = copy.deepcopy(model)
    tuned._trained_head = None  # scale_correction must scale what fine-tuning leaves
    scorer = ModelForecaster(tuned, prior="prefix_knn")
    scorer.ender = knn

    def val_mae() -> float:
        scorer._memo.clear()
        res = residuals_on(scorer, val, EVAL_CUTS_S)
        return float(np.mean([np.mean(np.abs(r)) for _, _, r in res]))

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(tuned.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history = [val_mae()]
    best = (history[0], 0, copy.deepcopy(tuned.state_dict()))
    with single_thread():
        for epoch in range(1, cfg.epochs + 1):
            tuned.train()
            picks = [items[rng.integers(len(items))] for items in rows]
            order = rng.permutation(len(picks))
            for start in range(0, len(order), cfg.batch_size):
                chunk = [picks[i] for i in order[start:start + cfg.batch_size]]
                batch = collate(chunk)
                k = min(it["k"] for it in chunk)  # one prefix length per batch: the shortest
                ro = tuned.rollout(batch, prefix_steps=k)
                mask = batch.mask[:, k:].to(torch.float32)
                loss = ((ro.pred_f[:, k:] - batch.temps_f[:, k:]).abs() * mask).sum() / mask.sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(tuned.parameters(), cfg.grad_clip)
                opt.step()
            tuned.eval()
            history.append(val_mae())
            if history[-1] < best[0]:
                best = (history[-1], epoch, copy.deepcopy(tuned.state_dict()))
    tuned.load_state_dict(best[2])
    tuned.eval()
    info = {"best_epoch": best[1], "val_mae_f_by_epoch": [round(h, 3) for h in history],
            "n_inner_train": len(inner), "n_val": len(val)}
    log.info("forecast fine-tune: best epoch %d, inner val MAE %s", best[1], info["val_mae_f_by_epoch"])
    return tuned, info


FACTORIES: dict[str, Callable[[], Forecaster]] = {
    "linear_projection": LinearProjection, "ror_decay": RoRDecay, "prefix_knn": PrefixKNN}


def make_forecaster(name: str, model=None) -> Forecaster:
    """A fresh forecaster by method name; `model` is required for the model methods.
    'forecast' wraps a model already fine-tuned by `finetune_on_prefixes`."""
    if name in MODEL_METHODS:
        if model is None:
            raise ValueError(f"method {name!r} needs a trained model (--checkpoint)")
        fc = ModelForecaster(model, prior="run" if name == "model" else "prefix_knn")
        fc.name = name
        return fc
    if name not in FACTORIES:
        raise ValueError(f"unknown forecast method {name!r}; expected one of {METHODS}")
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
                  finetune: FinetuneConfig | None = None) -> dict:
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
    Returns {"results": rows, "folds": per-fold rows, "params": fitted settings per fold}.
    """
    profiles = list(profiles)
    extra = list(extra_train or [])
    n_groups = len({p.group for p in profiles})
    if n_groups < 2:
        raise ValueError("forecast-eval: need at least 2 product groups for grouped folds")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown forecast method {m!r}; expected one of {METHODS}")
    if set(methods) & set(MODEL_METHODS) and model is None and model_fn is None:
        raise ValueError(f"forecast-eval: {sorted(set(methods) & set(MODEL_METHODS))} need a model or model_fn")
    plan = group_kfold(profiles, min(folds, n_groups), seed)
    per: dict[tuple[str, int], list[list[dict]]] = {(m, c): [[] for _ in plan] for m in methods for c in cuts}
    params: dict[str, list] = {m: [] for m in methods}
    # A fixed model keeps its generations memoised across folds; a per-fold model is new each fold.
    shared = {m: make_forecaster(m, model) for m in methods
              if m in MODEL_METHODS and m != "forecast" and model_fn is None}
    for fi, (tr, va) in enumerate(plan):
        train = [profiles[i] for i in tr] + extra
        test = [profiles[i] for i in va]
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
                fc = make_forecaster(m)
            fc.fit(train, seed=seed)
            params[m].append({**fc.describe(), "fit_s": round(time.monotonic() - started, 2)})
            exclude = fc.exclusion if isinstance(fc, ModelForecaster) else None
            for c in cuts:
                reqs, drop_h, tgt_h, reals, fcs = [], [], [], [], []
                for p in test:
                    real = curve_1s(p)
                    if c + MIN_REST_S > real.size - 1:
                        continue
                    reqs.append(Request(real[: c + 1].copy(), p.meta, _events_before(p, c),
                                        exclude(p) if exclude else None))
                    drop_h.append(Horizon.drop_at(real.size - 1))
                    tgt_h.append(Horizon.target(float(np.clip(real[-1], 150.0, DEFAULT_CLAMP_F[1]))))
                    reals.append(real)
                    ev = _events_before(p, real.size)
                    fcs.append(ev.get("FCs"))
                if not reqs:
                    continue
                f_drop = fc.forecast_requests(reqs, drop_h)
                f_tgt = fc.forecast_requests(reqs, tgt_h)
                per[(m, c)][fi] = [_score(a, b, r, c, s) for a, b, r, s
                                   in zip(f_drop, f_tgt, reals, fcs, strict=True)]
            if progress:
                progress(f"fold {fi + 1}/{len(plan)}: {m} ({time.monotonic() - started:.1f} s)")
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
    return {"results": results, "folds": fold_rows, "params": params,
            "n_folds": len(plan), "cuts_s": list(cuts)}


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

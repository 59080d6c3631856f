"""The forecasting interface: requests, horizons, forecasts and the `Forecaster` base (issue 16).

Given a roast's first `at_s` seconds of BT (1 s samples from CHARGE), its metadata and the
events marked so far, a `Forecaster` returns the rest of the curve to a horizon:

- `Horizon.drop_at(s)`: a given DROP time (the roaster knows when they will drop);
- `Horizon.target(f)`: until BT reaches a target drop temperature;
- `Horizon.expected_end()` (the default): the method's own expected DROP time.

plus an 80% band (lower and upper curves, roastcore/forecast_bands.py), the predicted
first-crack time when FCs has not happened yet, and the time to reach the target (the
horizon's, else `meta.target_finish_f`), each with its band. ET is accepted with a Profile but
no method uses it yet (onyx-dev logs none). Subclasses provide `continue_many` (full curves for
requests) and, when they learn anything, `_fit_point`; `fit` then calibrates the band by
cross-fitting (`residuals_on` on copies fitted without each roast's product group).

Times (FCs, reaching the target) take their band from where the upper and lower curves cross
the temperature. All forecasts are clamped to `model.DEFAULT_CLAMP_F` and the curve (prefix +
forecast) is run through `physics.check_curve`; failures ride along (docs/forecasting.md).

The methods: roastcore/forecast_methods.py (linear projection, RoR decay, prefix kNN),
roastcore/forecast_model.py (a run's model from the prefix, the fine-tune),
roastcore/forecast_eval.py (methods by name, grouped-CV scoring).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from roastcore.baselines import curve_1s
from roastcore.forecast_bands import ConformalBands
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.physics import check_curve
from roastcore.profile import Profile, ProfileMeta, find_turning_point
from roastcore.splits import group_kfold

log = logging.getLogger(__name__)

CAL_CUTS_S = (60, 120, 180, 240, 300, 360, 420, 480, 600)  # calibration cut points
MIN_AT_S = 30  # a forecast needs this much of the roast (one RoR window)
MIN_REST_S = 30  # a roast is scored at a cut only when at least this much is left
MAX_LENGTH_S = 1800  # a target-temperature forecast searches this far from CHARGE
DEFAULT_FCS_F = 390.0  # first crack when the training roasts mark none (~199 °C)
END_ROR_MAX_F_PER_S = 0.5  # extending a curve past its end: at most 30 °F/min
EVAL_CUTS_S = (120, 240, 360)  # the cuts scored (and tuned on) by default
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


def residuals_on(forecaster: Forecaster, profiles: Sequence[Profile], cuts: Sequence[int] = CAL_CUTS_S,
                 exclude: Callable[[Profile], str | None] | None = None
                 ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(cut, horizons, real - forecast) for every roast and cut with a rest, DROP time given."""
    reqs, ns, meta = [], [], []
    for p in profiles:
        real = curve_1s(p)
        for c in cuts:
            if c + MIN_REST_S <= real.size - 1:
                reqs.append(Request(real[: c + 1].copy(), p.meta, events_before(p, c),
                                    exclude(p) if exclude else None))
                ns.append(real.size)
                meta.append((c, real))
    curves = [np.clip(c, *DEFAULT_CLAMP_F) for c in forecaster.continue_many(reqs, ns)]
    out = []
    for (c, real), curve in zip(meta, curves, strict=True):
        h = np.arange(1, real.size - c, dtype=float)
        out.append((c, h, real[c + 1:] - curve[c + 1:]))
    return out


def events_before(p: Profile, at: float) -> dict[str, float]:
    """The events of `p` marked at or before `at` seconds (on its 1 s grid), DROP excluded."""
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

    def replay_exclusion(self, profile: Profile, own: str | None) -> str | None:
        """The group a forecast of `profile` leaves out of the library, when `profile` may be
        among the fitted roasts: `own` (its product), unless the method knows better."""
        return own

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

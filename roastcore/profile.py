"""The roast profile: bean temperature from CHARGE to DROP, events and bean metadata.

Everything in roastcore speaks °F and seconds from CHARGE. Importers convert on the way in;
`c_to_f` / `f_to_c` are the only unit conversions in the package.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import numpy as np

# Artisan's event order (timeindex), minus SCs/SCe/COOL which a roast curve never needs.
EVENT_NAMES = ("TP", "DRY_END", "FCs", "FCe", "DROP")

# Plausibility limits for a logged bean probe. Air roasters charge near room temperature and
# dark roasts finish near 480 °F, so these are wide on purpose: they reject garbage, not style.
BT_MIN_F = 0.0
BT_MAX_F = 650.0
ET_MIN_F = -40.0
ET_MAX_F = 1000.0
MIN_DURATION_S = 120.0  # shorter "roasts" are aborted recordings or test files
MAX_DURATION_S = 3600.0

# Artisan's default phase boundary for DRY END when it is not marked (150 °C).
DRY_END_DEFAULT_F = 302.0


class ProfileError(ValueError):
    """A profile that is not a plausible roast. The message says which field and why."""


def c_to_f(celsius):
    """°C -> °F, for a float or an array."""
    if np.ndim(celsius):
        return np.asarray(celsius, dtype=float) * 1.8 + 32.0
    return float(celsius) * 1.8 + 32.0


def f_to_c(fahrenheit):
    """°F -> °C, for a float or an array."""
    if np.ndim(fahrenheit):
        return (np.asarray(fahrenheit, dtype=float) - 32.0) / 1.8
    return (float(fahrenheit) - 32.0) / 1.8


@dataclass
class ProfileMeta:
    """What is known about the coffee and the roast before it starts.

    Every field is optional: Artisan logs often carry none of it. Strings are normalised by the
    importers (trimmed, canonical spellings); `product` groups batches of the same coffee so that
    splits never put one coffee on both sides.
    """

    origin: str | None = None
    process: str | None = None
    variety: str | None = None
    roast_level: str | None = None
    flavors: tuple[str, ...] = ()
    roaster: str | None = None
    charge_temp_f: float | None = None
    target_finish_f: float | None = None
    altitude_m: float | None = None
    density: float | None = None  # g/l
    weight_g: float | None = None  # green batch weight
    batch_id: str | None = None
    product: str | None = None
    source_file: str | None = None

    def __post_init__(self):
        self.flavors = tuple(str(f) for f in (self.flavors or ()))
        for name in ("charge_temp_f", "target_finish_f", "altitude_m", "density", "weight_g"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ProfileError(f"metadata field {name!r}: {value!r} is not a number") from None
            if not np.isfinite(value):
                raise ProfileError(f"metadata field {name!r}: {value!r} is not finite")
            setattr(self, name, value)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["flavors"] = list(self.flavors)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ProfileMeta:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Profile:
    """One roast: BT (°F) sampled every `interval_s` seconds from CHARGE (index 0) to DROP (last).

    `events` holds seconds from CHARGE for any of EVENT_NAMES that were marked. `et` is the
    environment temperature on the same time grid, when logged.
    """

    bt: np.ndarray
    interval_s: float = 1.0
    et: np.ndarray | None = None
    events: dict[str, float] = field(default_factory=dict)
    meta: ProfileMeta = field(default_factory=ProfileMeta)
    id: str = ""

    def __post_init__(self):
        self.bt = np.asarray(self.bt, dtype=np.float64).reshape(-1)
        if self.et is not None:
            self.et = np.asarray(self.et, dtype=np.float64).reshape(-1)
        self.events = {str(k): float(v) for k, v in (self.events or {}).items()}
        if self.meta.charge_temp_f is None and self.bt.size:
            # A copy: callers may share one meta object between profiles.
            self.meta = dataclasses.replace(self.meta, charge_temp_f=float(self.bt[0]))
        self.validate()
        if not self.id:
            self.id = self.fingerprint()[:12]

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ProfileError naming the field and the problem; return None when plausible."""
        if not (np.isfinite(self.interval_s) and 0.1 <= self.interval_s <= 60):
            raise ProfileError(f"interval_s: {self.interval_s!r} s is outside 0.1-60 s")
        if self.bt.size < 2:
            raise ProfileError(f"bt: {self.bt.size} samples; a roast needs at least two")
        if not np.all(np.isfinite(self.bt)):
            bad = int(np.flatnonzero(~np.isfinite(self.bt))[0])
            raise ProfileError(f"bt: sample {bad} is not finite ({self.bt[bad]!r})")
        lo, hi = float(self.bt.min()), float(self.bt.max())
        if lo < BT_MIN_F or hi > BT_MAX_F:
            raise ProfileError(
                f"bt: values {lo:.1f}..{hi:.1f} °F fall outside the plausible {BT_MIN_F:.0f}..{BT_MAX_F:.0f} °F"
            )
        if not MIN_DURATION_S <= self.duration_s <= MAX_DURATION_S:
            raise ProfileError(
                f"bt: duration {self.duration_s:.0f} s is outside {MIN_DURATION_S:.0f}..{MAX_DURATION_S:.0f} s"
            )
        if self.et is not None:
            if self.et.shape != self.bt.shape:
                raise ProfileError(f"et: {self.et.size} samples but bt has {self.bt.size}")
            if not np.all(np.isfinite(self.et)):
                raise ProfileError("et: contains non-finite values")
            if self.et.min() < ET_MIN_F or self.et.max() > ET_MAX_F:
                raise ProfileError(
                    f"et: values {self.et.min():.1f}..{self.et.max():.1f} °F fall outside {ET_MIN_F:.0f}..{ET_MAX_F:.0f} °F"
                )
        for name, t in self.events.items():
            if name not in EVENT_NAMES:
                raise ProfileError(f"events: unknown event {name!r}; expected one of {EVENT_NAMES}")
            if not (np.isfinite(t) and 0 <= t <= self.duration_s + 1e-6):
                raise ProfileError(f"events: {name} at {t!r} s lies outside the roast (0..{self.duration_s:.0f} s)")

    # ------------------------------------------------------------------ basic views
    @property
    def n(self) -> int:
        return int(self.bt.size)

    @property
    def duration_s(self) -> float:
        return (self.bt.size - 1) * self.interval_s

    @property
    def times_s(self) -> np.ndarray:
        return np.arange(self.bt.size) * self.interval_s

    @property
    def charge_f(self) -> float:
        return float(self.bt[0])

    @property
    def finish_f(self) -> float:
        return float(self.bt[-1])

    @property
    def group(self) -> str:
        """Key for grouped splits: the product when known, else the batch, else the id."""
        return self.meta.product or self.meta.batch_id or self.id

    def fingerprint(self) -> str:
        """Content hash of the curve (rounded to 0.01 °F); equal curves share it."""
        h = hashlib.sha256()
        h.update(np.round(self.bt, 2).astype(np.float32).tobytes())
        h.update(str(round(self.interval_s, 4)).encode())
        return h.hexdigest()

    def resample(self, interval_s: float) -> Profile:
        """The same roast on another time grid (linear interpolation; DROP stays the last sample)."""
        if abs(interval_s - self.interval_s) < 1e-9:
            return self
        n_new = int(round(self.duration_s / interval_s)) + 1
        t_new = np.linspace(0.0, self.duration_s, n_new)
        bt = np.interp(t_new, self.times_s, self.bt)
        et = None if self.et is None else np.interp(t_new, self.times_s, self.et)
        step = self.duration_s / max(n_new - 1, 1)
        return Profile(bt=bt, interval_s=step, et=et, events=dict(self.events),
                       meta=dataclasses.replace(self.meta), id=self.id)

    # ------------------------------------------------------------------ derived curves
    def ror(self, window_s: float = 30.0, smooth_s: float = 10.0) -> np.ndarray:
        """Rate of rise in °F/min, as Artisan draws it: a delta over a span, then smoothed."""
        return rate_of_rise(self.bt, self.interval_s, window_s=window_s, smooth_s=smooth_s)

    def turning_point(self) -> tuple[float, float] | None:
        """(time_s, temp_f) of the BT minimum after CHARGE, or None for a roast without one.

        Air roasters charge near room temperature and never dip, so a TP needs a real dip
        (at least 15 °F below charge) within the first 40% of the roast, as Artisan's findTPint
        looks for the minimum before first crack.
        """
        if "TP" in self.events:
            t = self.events["TP"]
            return t, float(np.interp(t, self.times_s, self.bt))
        return find_turning_point(self.bt, self.interval_s)

    def event_time(self, name: str) -> float | None:
        """Seconds from CHARGE of an event; TP and DRY_END fall back to detection; DROP is the end."""
        if name in self.events:
            return self.events[name]
        if name == "TP":
            tp = self.turning_point()
            return None if tp is None else tp[0]
        if name == "DRY_END":
            start = 0
            tp = self.turning_point()
            if tp is not None:
                start = int(round(tp[0] / self.interval_s))
            above = np.flatnonzero(self.bt[start:] >= DRY_END_DEFAULT_F)
            return None if above.size == 0 else float((start + above[0]) * self.interval_s)
        if name == "DROP":
            return self.duration_s
        return None

    def phases(self) -> dict[str, float | None]:
        """Seconds spent drying (CHARGE->DRY_END), in Maillard (DRY_END->FCs) and developing (FCs->DROP)."""
        dry, fcs, end = self.event_time("DRY_END"), self.event_time("FCs"), self.duration_s
        return {
            "drying_s": dry,
            "maillard_s": None if dry is None or fcs is None else fcs - dry,
            "development_s": None if fcs is None else end - fcs,
        }

    def dtr(self) -> float | None:
        """Development-time ratio: (DROP - FCs) / DROP, or None when FCs is unknown."""
        fcs = self.event_time("FCs")
        return None if fcs is None or self.duration_s <= 0 else (self.duration_s - fcs) / self.duration_s


def find_turning_point(bt: np.ndarray, interval_s: float, min_dip_f: float = 15.0) -> tuple[float, float] | None:
    """Detect the turning point on a BT curve (see Profile.turning_point)."""
    bt = np.asarray(bt, dtype=float)
    if bt.size < 3:
        return None
    search = bt[: max(3, int(bt.size * 0.4))]
    i = int(np.argmin(search))
    if i == 0 or bt[0] - search[i] < min_dip_f:
        return None
    return i * interval_s, float(search[i])


def rate_of_rise(bt: np.ndarray, interval_s: float, window_s: float = 30.0, smooth_s: float = 10.0) -> np.ndarray:
    """°F/min from a delta over `window_s`, then a centred moving average over `smooth_s`.

    The first `window_s` use the widest span available so the array has the curve's length.
    Works on any 1-D temperature array, real or generated.
    """
    bt = np.asarray(bt, dtype=float)
    n = bt.size
    if n < 2:
        return np.zeros(n)
    span = max(1, int(round(window_s / interval_s)))
    idx = np.arange(n)
    back = np.maximum(idx - span, 0)
    dt = (idx - back) * interval_s
    ror = np.zeros(n)
    ok = dt > 0
    ror[ok] = (bt[idx[ok]] - bt[back[ok]]) / dt[ok] * 60.0
    if n > 1:
        ror[0] = ror[1]
    k = max(1, int(round(smooth_s / interval_s)))
    if k > 1:
        kernel = np.ones(k) / k
        padded = np.pad(ror, (k // 2, k - 1 - k // 2), mode="edge")
        ror = np.convolve(padded, kernel, mode="valid")
    return ror

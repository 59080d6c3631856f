"""What a model sees: bean features as tensors-to-be, and temperatures in model units.

`FeatureEncoder` turns ProfileMeta into categorical ids, a multi-hot flavour vector and
standardised continuous values with missing indicators. `TemperatureScaler` is the one
reversible map between °F and model units; switching it off reproduces the classic collapse
(raw-°F targets).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from roastcore.profile import Profile, ProfileMeta

CATEGORICAL_FIELDS = ("origin", "process", "variety", "roast_level", "roaster")
# duration_s is the target roast length asked for at generation time, not a metadata field.
CONTINUOUS_FIELDS = ("charge_temp_f", "duration_s", "target_finish_f", "altitude_m", "density", "weight_g")
MAX_FLAVORS = 64
UNKNOWN = 0  # index of the unknown slot in every vocabulary


@dataclass
class EncodedFeatures:
    cat: np.ndarray  # (n_cat,) int64, 0 = unknown
    flavors: np.ndarray  # (n_flavors,) float32 multi-hot
    cont: np.ndarray  # (2 * n_cont,) float32: standardised values, then missing indicators


@dataclass
class FeatureEncoder:
    vocabs: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in CATEGORICAL_FIELDS})
    flavor_vocab: list[str] = field(default_factory=list)
    cont_mean: dict[str, float] = field(default_factory=dict)
    cont_std: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, profiles: list[Profile]) -> FeatureEncoder:
        """Vocabularies and statistics from training profiles only (no leakage from validation)."""
        if not profiles:
            raise ValueError("FeatureEncoder.fit: no profiles to fit on")
        vocabs = {}
        for name in CATEGORICAL_FIELDS:
            values = {_norm(getattr(p.meta, name)) for p in profiles} - {None}
            vocabs[name] = sorted(values)
        counts = Counter(_norm(f) for p in profiles for f in p.meta.flavors)
        flavor_vocab = sorted(f for f, _ in counts.most_common(MAX_FLAVORS) if f)
        mean, std = {}, {}
        for name in CONTINUOUS_FIELDS:
            xs = np.array([v for p in profiles if (v := _continuous(p.meta, p.duration_s, name)) is not None])
            mean[name] = float(xs.mean()) if xs.size else 0.0
            std[name] = float(xs.std()) if xs.size > 1 and xs.std() > 1e-6 else 1.0
        return cls(vocabs=vocabs, flavor_vocab=flavor_vocab, cont_mean=mean, cont_std=std)

    @property
    def cat_sizes(self) -> list[int]:
        return [len(self.vocabs[name]) + 1 for name in CATEGORICAL_FIELDS]

    @property
    def n_flavors(self) -> int:
        return len(self.flavor_vocab)

    @property
    def n_cont(self) -> int:
        return 2 * len(CONTINUOUS_FIELDS)

    def encode(self, meta: ProfileMeta, duration_s: float) -> EncodedFeatures:
        """Encode one roast request. Unseen categories map to the unknown slot, never an error."""
        cat = np.zeros(len(CATEGORICAL_FIELDS), dtype=np.int64)
        for i, name in enumerate(CATEGORICAL_FIELDS):
            value = _norm(getattr(meta, name))
            vocab = self.vocabs.get(name, [])
            cat[i] = vocab.index(value) + 1 if value in vocab else UNKNOWN
        flavors = np.zeros(self.n_flavors, dtype=np.float32)
        for f in meta.flavors:
            f = _norm(f)
            if f in self.flavor_vocab:
                flavors[self.flavor_vocab.index(f)] = 1.0
        k = len(CONTINUOUS_FIELDS)
        cont = np.zeros(2 * k, dtype=np.float32)
        for i, name in enumerate(CONTINUOUS_FIELDS):
            value = _continuous(meta, duration_s, name)
            if value is None:
                cont[k + i] = 1.0
            else:
                cont[i] = (value - self.cont_mean.get(name, 0.0)) / self.cont_std.get(name, 1.0)
        return EncodedFeatures(cat=cat, flavors=flavors, cont=cont)

    def encode_profile(self, profile: Profile) -> EncodedFeatures:
        return self.encode(profile.meta, profile.duration_s)

    def to_dict(self) -> dict:
        return {
            "vocabs": self.vocabs,
            "flavor_vocab": self.flavor_vocab,
            "cont_mean": self.cont_mean,
            "cont_std": self.cont_std,
        }

    @classmethod
    def from_dict(cls, d: dict) -> FeatureEncoder:
        try:
            vocabs = {name: list(d["vocabs"].get(name, [])) for name in CATEGORICAL_FIELDS}
            return cls(vocabs=vocabs, flavor_vocab=list(d["flavor_vocab"]),
                       cont_mean={k: float(v) for k, v in d["cont_mean"].items()},
                       cont_std={k: float(v) for k, v in d["cont_std"].items()})
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"feature encoder JSON is malformed: {exc!r}") from None


@dataclass
class TemperatureScaler:
    """°F <-> model units: z = (T - center) / scale, and per-step changes d = dT / delta_scale.

    Works on floats, numpy arrays and torch tensors alike. `enabled=False` is the identity, which
    feeds raw °F to the network and reproduces the prior work's collapse to a constant.
    """

    enabled: bool = True
    center: float = 0.0
    scale: float = 1.0
    delta_scale: float = 1.0

    def __post_init__(self):
        if not self.enabled:
            self.center, self.scale, self.delta_scale = 0.0, 1.0, 1.0
        for name in ("center", "scale", "delta_scale"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise ValueError(f"TemperatureScaler.{name} must be finite, got {value!r}")
            setattr(self, name, value)
        if self.scale <= 0 or self.delta_scale <= 0:
            raise ValueError(f"TemperatureScaler: scale {self.scale} and delta_scale {self.delta_scale} must be > 0")

    @classmethod
    def fit(cls, profiles: list[Profile], step_s: float = 1.0, enabled: bool = True) -> TemperatureScaler:
        if not enabled:
            return cls(enabled=False)
        if not profiles:
            raise ValueError("TemperatureScaler.fit: no profiles to fit on")
        temps = np.concatenate([p.bt for p in profiles])
        deltas = np.concatenate([np.diff(p.resample(step_s).bt) for p in profiles])
        return cls(
            enabled=True,
            center=float(temps.mean()),
            scale=float(max(temps.std(), 1e-3)),
            delta_scale=float(max(np.abs(deltas).mean(), 1e-3)),
        )

    def encode(self, temp_f):
        return (temp_f - self.center) / self.scale

    def decode(self, z):
        return z * self.scale + self.center

    def encode_delta(self, delta_f):
        return delta_f / self.delta_scale

    def decode_delta(self, d):
        return d * self.delta_scale

    def to_dict(self) -> dict:
        return {"enabled": self.enabled, "center": self.center, "scale": self.scale, "delta_scale": self.delta_scale}

    @classmethod
    def from_dict(cls, d: dict) -> TemperatureScaler:
        try:
            return cls(enabled=bool(d["enabled"]), center=float(d["center"]), scale=float(d["scale"]),
                       delta_scale=float(d["delta_scale"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"temperature scaler JSON is malformed: {exc!r}") from None


def _norm(value) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split()).lower()
    return text or None


def _continuous(meta: ProfileMeta, duration_s: float, name: str) -> float | None:
    value = duration_s if name == "duration_s" else getattr(meta, name)
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None

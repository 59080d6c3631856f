"""Generation with a trained model: the evaluation adapter and profiles built from chosen features.

`ModelGenerator` wraps a model as a `CurveGenerator` (the interface the baselines share), so
free-running evaluation scores model and baselines with one code path. It generates many
requests in one batched call at the model's `step_s` and interpolates back to the 1 s grid.
A request carries only metadata, charge temperature, roast length and an optional real prefix:
the batch it builds holds no real temperature beyond the prefix, so nothing can leak.

`generate_profile` turns a `RoastRequest` (origin, process, variety, roast level, flavours,
charge, and a duration OR a drop temperature) into a `Profile`; `export_profile` writes it as
.alog (an Artisan background profile), .csv or .json through roastcore.io. Given a
`Provenance` (the model's run name and the request in words) an export says in its title,
notes and header that it is a generated curve, so it never passes for a real roast.

Drop temperature: the model is conditioned on roast length, so we search the length. Candidate
lengths (every 15 s over 6-20 min, within the model's max_len) are generated in ONE batch with
`target_finish_f` set to the drop temperature; the candidate whose finish is closest wins, and
if that curve reaches the drop temperature earlier (after its turning point) it is cut there.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from roastcore.baselines import CurveGenerator, curve_1s, n_samples
from roastcore.batch import collate, steps_grid
from roastcore.fsutil import atomic_write_text
from roastcore.io import write_alog, write_csv, write_json
from roastcore.io.onyx import to_onyx_dict
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.physics import check_profile
from roastcore.profile import Profile, ProfileMeta, find_turning_point
from roastcore.threads import single_thread

log = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".alog", ".csv", ".json")
DROP_SEARCH_S = (360.0, 1200.0, 15.0)  # min, max, step of candidate roast lengths


@dataclass
class StepOutput:
    """One generated roast at the model's step: what the model said and what was fed back."""

    raw_f: np.ndarray
    clamped_f: np.ndarray
    clamp_active: np.ndarray  # bool per step
    step_times_s: np.ndarray
    prefix_steps: int
    truncated: bool  # the roast is longer than the model's max_len; the tail holds the last value


@dataclass
class ModelGenerator(CurveGenerator):
    """A trained model as a free-running generator (batched, no real data past the prefix)."""

    model: torch.nn.Module
    clamp: tuple[float, float] = DEFAULT_CLAMP_F
    batch_size: int = 128
    name: str = "model"
    last_steps: list[StepOutput] = field(default_factory=list)

    @property
    def step_s(self) -> float:
        return float(self.model.config.step_s)

    def fit(self, profiles):
        return self  # already trained

    def describe(self):
        return {"name": self.name, "step_s": self.step_s}

    def generate(self, meta, charge_f, duration_s, prefix=None):
        return self.generate_requests([meta], [charge_f], [duration_s], [prefix])[0]

    def generate_many(self, profiles: Sequence[Profile], prefix_s: float = 0.0, progress=None):
        prefixes, charges, durations = [], [], []
        for p in profiles:
            real = curve_1s(p)
            prefixes.append(real[: int(prefix_s) + 1] if prefix_s >= 1 else None)
            charges.append(float(real[0]))
            durations.append(float(real.size - 1))
        # Scoring against real roasts: a prior model's served library also holds the run's
        # validation roasts, and such a roast must not be its own neighbour.
        library = getattr(self.model, "prior_library", None)
        exclude = [library.scoring_exclusion(p) if library is not None else None for p in profiles]
        return self.generate_requests([p.meta for p in profiles], charges, durations, prefixes, progress,
                                      exclude_groups=exclude)

    def generate_requests(self, metas: Sequence[ProfileMeta], charges: Sequence[float],
                          durations: Sequence[float], prefixes: Sequence[np.ndarray | None] | None = None,
                          progress: Callable[[int, int], None] | None = None,
                          exclude_groups: Sequence[str | None] | None = None,
                          priors: Sequence[np.ndarray | None] | None = None,
                          max_steps: int | None = None) -> list[np.ndarray]:
        """1 s curves for many requests; the step-level outputs land in `last_steps`.
        `exclude_groups[i]`: a product whose curves request i's prior may not use.
        `priors[i]`: a 1 s prior curve to use instead of the library's (forecast_methods.py's prefix kNN).
        `max_steps`: generate only the first steps (a step trace); they equal a full generation's
        first steps (the models are causal, conditioned on the whole roast's length either way)."""
        n = len(metas)
        prefixes = list(prefixes) if prefixes is not None else [None] * n
        exclude_groups = list(exclude_groups) if exclude_groups is not None else [None] * n
        if not (len(charges) == len(durations) == len(prefixes) == len(exclude_groups) == n):
            raise ValueError("generate_requests: metas, charges, durations, prefixes and exclude_groups "
                             "differ in length")
        step = self.step_s
        max_len = int(self.model.config.max_len)
        items, plans, priors_1s = [], [], []
        for i in range(n):
            n1 = n_samples(durations[i])
            dur = float(n1 - 1)
            n_steps = int(round(dur / step)) + 1
            truncated = n_steps > max_len
            steps_used = min(n_steps, max_len, max_steps or n_steps)
            t_steps = np.linspace(0.0, dur, n_steps)[:steps_used]
            prefix = prefixes[i]
            if prefix is not None and len(prefix) > 1:
                prefix = np.asarray(prefix, dtype=float)
                k = int(np.sum(t_steps <= len(prefix) - 1 + 1e-9))
                seed = np.interp(t_steps[:k], np.arange(len(prefix)), prefix)
            else:
                k, seed = 1, np.array([float(charges[i])])
            # Everything past the prefix is the last known value: the model never sees the real curve.
            temps = np.concatenate([seed, np.full(steps_used - k, seed[-1])])
            feats = self.model.encoder.encode(metas[i], dur)
            item = {"temps_f": torch.tensor(temps, dtype=torch.float32),
                    "cat": torch.from_numpy(feats.cat), "flavors": torch.from_numpy(feats.flavors),
                    "cont": torch.from_numpy(feats.cont), "index": i}
            library = getattr(self.model, "prior_library", None)
            prior_1s = None
            if library is not None:  # the aligned-kNN prior for this request, from its charge
                prior_1s = (library.curve(metas[i], float(seed[0]), dur, exclude_group=exclude_groups[i])
                            if priors is None or priors[i] is None else np.asarray(priors[i], dtype=float)[:n1])
                prior = np.interp(steps_grid(prior_1s.size, n_steps), np.arange(prior_1s.size), prior_1s)
                item["prior_f"] = torch.tensor(prior[:steps_used], dtype=torch.float32)
            items.append(item)
            plans.append((n1, dur, t_steps, k, truncated))
            priors_1s.append(prior_1s)
        if any(p[4] for p in plans):
            log.warning("%d of %d roasts are longer than the model's max_len=%d steps at %g s; their "
                        "tails hold the last generated value", sum(p[4] for p in plans), n, max_len, step)
        curves: list[np.ndarray | None] = [None] * n
        steps_out: list[StepOutput | None] = [None] * n
        # Rows sharing a prefix length go in one batch (generate takes one prefix_steps).
        by_k: dict[int, list[int]] = {}
        for i, plan in enumerate(plans):
            by_k.setdefault(plan[3], []).append(i)
        done = 0
        was_training = self.model.training
        self.model.eval()
        try:
            for k, rows in sorted(by_k.items()):
                for start in range(0, len(rows), self.batch_size):
                    chunk = rows[start:start + self.batch_size]
                    batch = collate([items[i] for i in chunk])
                    with torch.no_grad(), single_thread():
                        gen = self.model.generate(batch, prefix_steps=k, clamp=self.clamp)
                    for row, i in enumerate(chunk):
                        n1, dur, t_steps, _, truncated = plans[i]
                        m = t_steps.size
                        clamped = gen.clamped_f[row, :m].double().numpy()
                        steps_out[i] = StepOutput(
                            raw_f=gen.raw_f[row, :m].double().numpy(), clamped_f=clamped,
                            clamp_active=gen.clamp_active[row, :m].numpy().astype(bool),
                            step_times_s=t_steps, prefix_steps=k, truncated=truncated)
                        t_1s = np.linspace(0.0, dur, n1)
                        if priors_1s[i] is None:
                            curves[i] = np.interp(t_1s, t_steps, clamped)
                        else:
                            # A prior model's output is prior + correction: interpolate the smooth
                            # correction, keep the prior's 1 s detail (the sharp turning point).
                            prior_1s = priors_1s[i]
                            on_steps = np.interp(t_steps, t_1s, prior_1s)
                            curves[i] = np.clip(prior_1s + np.interp(t_1s, t_steps, clamped - on_steps), *self.clamp)
                        if prefixes[i] is not None and len(prefixes[i]) > 1:
                            p = np.asarray(prefixes[i], dtype=float)[:n1]
                            curves[i][: p.size] = p  # the prefix is real at 1 s, not interpolated
                    done += len(chunk)
                    if progress:
                        progress(done, n)
        finally:
            self.model.train(was_training)
        self.last_steps = steps_out  # type: ignore[assignment]
        return curves  # type: ignore[return-value]


# ------------------------------------------------------------------ user-facing generation
@dataclass
class RoastRequest:
    """What a user chooses. Give `duration_s` OR `drop_temp_f`; charge defaults to the training mean."""

    origin: str | None = None
    process: str | None = None
    variety: str | None = None
    roast_level: str | None = None
    flavors: tuple[str, ...] = ()
    roaster: str | None = None
    charge_temp_f: float | None = None
    duration_s: float | None = None
    drop_temp_f: float | None = None
    altitude_m: float | None = None
    density: float | None = None

    def validate(self) -> None:
        if (self.duration_s is None) == (self.drop_temp_f is None):
            raise ValueError("roast request: give exactly one of duration_s or drop_temp_f")
        if self.duration_s is not None and not 120 <= float(self.duration_s) <= 3600:
            raise ValueError(f"roast request: duration_s {self.duration_s} is outside 120..3600 s")
        if self.drop_temp_f is not None and not 300 <= float(self.drop_temp_f) <= 500:
            raise ValueError(f"roast request: drop_temp_f {self.drop_temp_f} is outside 300..500 °F")
        if self.charge_temp_f is not None and not 32 <= float(self.charge_temp_f) <= 550:
            raise ValueError(f"roast request: charge_temp_f {self.charge_temp_f} is outside 32..550 °F")

    def describe(self) -> str:
        """The request in words, as exports state it."""
        parts = [f"{label} {value}" for label, value in (
            ("origin", self.origin), ("process", self.process), ("variety", self.variety),
            ("roast level", self.roast_level), ("roaster", self.roaster)) if value]
        if self.flavors:
            parts.append("flavours " + "/".join(self.flavors))
        parts.append("charge training mean" if self.charge_temp_f is None else f"charge {float(self.charge_temp_f):g} °F")
        parts.append(f"duration {float(self.duration_s):g} s" if self.duration_s is not None
                     else f"drop at {float(self.drop_temp_f):g} °F")
        return ", ".join(parts)

    def meta(self, charge_f: float) -> ProfileMeta:
        return ProfileMeta(origin=self.origin, process=self.process, variety=self.variety,
                           roast_level=self.roast_level, flavors=tuple(self.flavors), roaster=self.roaster,
                           charge_temp_f=charge_f, target_finish_f=self.drop_temp_f,
                           altitude_m=self.altitude_m, density=self.density)


def _default_charge(model) -> float:
    mean = getattr(model.encoder, "cont_mean", {}).get("charge_temp_f")
    return float(mean) if mean else 420.0


def generate_profile(model, request: RoastRequest, clamp: tuple[float, float] = DEFAULT_CLAMP_F,
                     progress: Callable[[int, int], None] | None = None) -> Profile:
    """A generated roast as a Profile (1 s samples, CHARGE to DROP), from the request's features."""
    request.validate()
    charge = float(request.charge_temp_f) if request.charge_temp_f is not None else _default_charge(model)
    meta = request.meta(charge)
    gen = ModelGenerator(model, clamp=clamp)
    if request.duration_s is not None:
        curve = gen.generate_requests([meta], [charge], [float(request.duration_s)], progress=progress)[0]
    else:
        curve = _generate_to_drop(gen, meta, charge, float(request.drop_temp_f), progress)
    meta = replace(meta, source_file=None, product="generated")
    profile = Profile(bt=curve, interval_s=1.0, meta=meta, id="generated")
    physics = check_profile(profile)
    if not physics.passed:  # still returned: the user asked for it, but should know
        log.warning("generated profile fails physics checks: %s", "; ".join(physics.failures))
    return profile


def _generate_to_drop(gen: ModelGenerator, meta: ProfileMeta, charge: float, drop_f: float,
                      progress) -> np.ndarray:
    lo, hi, step = DROP_SEARCH_S
    hi = min(hi, (gen.model.config.max_len - 1) * gen.step_s)
    lengths = np.arange(lo, hi + 1e-9, step)
    if lengths.size == 0:
        raise ValueError(f"model max_len {gen.model.config.max_len} at {gen.step_s} s is too short to search a drop")
    curves = gen.generate_requests([meta] * lengths.size, [charge] * lengths.size, list(lengths), progress=progress)
    best = int(np.argmin([abs(c[-1] - drop_f) for c in curves]))
    curve = curves[best]
    tp = find_turning_point(curve, 1.0)
    start = 0 if tp is None else int(tp[0])
    cross = np.flatnonzero(curve[start:] >= drop_f)
    if cross.size and start + cross[0] + 1 < curve.size and start + cross[0] >= 120:
        curve = curve[: start + cross[0] + 1]
    log.info("drop %.0f °F: chose %.0f s (finish %.1f °F)", drop_f, curve.size - 1, curve[-1])
    return curve


@dataclass(frozen=True)
class Provenance:
    """What made a generated curve, written into its exports: the model (its run's name), the
    request in words, and when."""

    model: str
    request: str
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def for_request(cls, model: str, request: RoastRequest) -> Provenance:
        return cls(model=model, request=request.describe())

    @classmethod
    def for_roast(cls, model: str, roast: Profile, prefix_s: float = 0.0) -> Provenance:
        """A curve generated for a real roast's request (its metadata, charge and length)."""
        name = roast.meta.product or roast.id
        text = (f"the metadata, charge {roast.charge_f:.0f} °F and length {roast.duration_s:.0f} s of real "
                f"roast {name} ({roast.id})")
        if prefix_s > 0:
            text += f", from its first {prefix_s:g} s"
        return cls(model=model, request=text)

    def to_dict(self) -> dict[str, str]:
        return {"model": self.model, "request": self.request, "created": self.created}


def export_profile(profile: Profile, path: str | Path, provenance: Provenance | None = None) -> Path:
    """Write .alog (Artisan background profile), .csv or .json via roastcore.io's writers.

    With `provenance` the file is marked generated wherever it carries text (the .alog title and
    notes, the CSV header, a "generated" object in the JSON) and its product becomes "generated
    by <model>": a generated curve must never pass for, or be grouped with, a real roast."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise ValueError(f"output file {path}: suffix {suffix or '(none)'} is not one of {EXPORT_SUFFIXES}")
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = provenance.to_dict() if provenance is not None else None
    if generated:
        profile = replace(profile, meta=replace(profile.meta, product=f"generated by {provenance.model}",
                                                source_file=None))
    if suffix == ".alog":
        write_alog(profile, path, generated=generated)
    elif suffix == ".csv":
        write_csv(profile, path, generated=generated)
    elif generated:  # the Onyx-shaped document plus who made it (read_onyx ignores the extra key)
        doc = {**to_onyx_dict(profile), "generated": generated}
        atomic_write_text(path, json.dumps(doc, ensure_ascii=False, allow_nan=False))
    else:
        write_json(profile, path)
    return path

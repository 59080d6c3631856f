"""The aligned-kNN prior: a reference curve the `prior='aligned_knn'` models correct.

A model with a prior predicts T_{t+1} = T_t + (P_{t+1} - P_t) + correction, where P is the
aligned-kNN curve (baselines.AlignedKNN) for the same request (metadata, charge, length). An
untrained model (zero last layer) therefore reproduces the aligned kNN exactly; training only
has to learn where the neighbours' average is wrong.

`PriorLibrary` holds the training curves plus what the distance needs and the tuned
parameters. It is saved next to a run as `prior.safetensors` (the curves, never a pickle) and
`prior.json` (everything else), so a loaded run computes priors for new requests the same way
it did in training.

Leakage: a TRAINING profile's prior must come from the other products only
(`exclude_group=profile.group`), or the prior would contain the very curve it is asked to
predict and the model would learn to trust it blindly.

Every batch a prior model sees is built by `prior_steps` here (through `RoastDataset` and
`generate.ModelGenerator`), so training, evaluation and generation share one code path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from roastcore.baselines import (
    ALIGNED_GRID,
    AlignedKNN,
    AlignedKNNParams,
    _Library,
    curve_1s,
    n_samples,
)
from roastcore.batch import steps_grid
from roastcore.fsutil import atomic_write_bytes, atomic_write_text
from roastcore.profile import Profile, ProfileMeta

log = logging.getLogger(__name__)

PRIOR_WEIGHTS, PRIOR_JSON = "prior.safetensors", "prior.json"
_FAR = 1e9  # distance added to excluded neighbours
# The prior also tunes the end warp (baselines.warp_curve): on onyx-dev stretching only part of
# a neighbour's length difference and continuing its final RoR beat lining up the ends
# (RESULTS.md). The aligned-kNN baseline keeps the ends lined up, as specified.
PRIOR_GRID = {**ALIGNED_GRID, "end_warp": (1.0, 0.75, 0.5)}


class PriorLibrary:
    """A fitted aligned kNN that can also leave a group out (for training profiles)."""

    kind = "aligned_knn"

    def __init__(self, knn: AlignedKNN):
        if not hasattr(knn, "lib_"):
            raise ValueError("PriorLibrary needs a fitted AlignedKNN")
        self.knn = knn

    @classmethod
    def fit(cls, profiles: Sequence[Profile], tune: bool = True) -> PriorLibrary:
        knn = AlignedKNN(grid=PRIOR_GRID) if tune else AlignedKNN(params=AlignedKNNParams())
        return cls(knn.fit(list(profiles)))

    @property
    def params(self) -> AlignedKNNParams:
        return self.knn.params

    @property
    def size(self) -> int:
        return len(self.knn.lib_.curves)

    def curve(self, meta: ProfileMeta, charge_f: float, duration_s: float,
              exclude_group: str | None = None) -> np.ndarray:
        """The prior as a 1 s curve of n_samples(duration_s) points (as AlignedKNN.generate)."""
        lib, p = self.knn.lib_, self.knn.params
        n = n_samples(duration_s)
        d = self.knn._distance(self.knn._components(meta, float(charge_f), n - 1, lib), p)
        if exclude_group is not None:
            excluded = np.array([g == exclude_group for g in lib.groups])
            if excluded.all():
                log.debug("prior: group %s holds the whole library; not excluding it", exclude_group)
            else:
                d = d + _FAR * excluded
        idx = np.argsort(d, kind="stable")[: p.k]
        return self.knn._blend(lib, idx, n, float(charge_f), None, p.end_warp)

    def holds(self, profile: Profile) -> bool:
        """Whether this very roast is one of the library's curves. Scoring such a roast must
        leave its product out, or its own curve would be among its neighbours."""
        real = curve_1s(profile)
        return any(c.size == real.size and float(np.max(np.abs(c - real))) < 0.01 for c in self.knn.lib_.curves)

    def scoring_exclusion(self, profile: Profile) -> str | None:
        """The group to leave out when scoring `profile`: its own, if the library holds it."""
        return profile.group if self.holds(profile) else None

    def for_profile(self, profile: Profile, exclude_own_group: bool = False) -> np.ndarray:
        real = curve_1s(profile)
        return self.curve(profile.meta, float(real[0]), float(real.size - 1),
                          profile.group if exclude_own_group else None)

    # -- persistence ---------------------------------------------------------------------
    def save(self, run_dir) -> None:
        lib = self.knn.lib_
        run_dir = Path(run_dir)
        offsets = np.cumsum([0] + [c.size for c in lib.curves]).astype(np.int64)
        tensors = {"curves": torch.from_numpy(np.concatenate(lib.curves).astype(np.float32)),
                   "offsets": torch.from_numpy(offsets)}
        atomic_write_bytes(run_dir / PRIOR_WEIGHTS, st_save(tensors))
        meta = {"kind": self.kind, "params": self.params.__dict__.copy(),
                "tp_s": [None if not np.isfinite(v) else float(v) for v in lib.tp_s],
                "finish_target": [None if not np.isfinite(v) else float(v) for v in lib.finish_target],
                "cats": [list(c) for c in lib.cats], "groups": list(lib.groups)}
        atomic_write_text(run_dir / PRIOR_JSON, json.dumps(meta) + "\n")

    @classmethod
    def load(cls, run_dir) -> PriorLibrary:
        run_dir = Path(run_dir)
        try:
            meta = json.loads((run_dir / PRIOR_JSON).read_text(encoding="utf-8"))
            tensors = st_load((run_dir / PRIOR_WEIGHTS).read_bytes())
            flat, offsets = tensors["curves"].double().numpy(), tensors["offsets"].numpy()
            curves = [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
            n = len(curves)
            if not (len(meta["tp_s"]) == len(meta["finish_target"]) == len(meta["cats"]) == len(meta["groups"]) == n):
                raise ValueError("prior.json lists do not match the number of curves")
            nan = float("nan")
            lib = _Library(
                curves=curves, durations=np.array([c.size - 1 for c in curves], dtype=float),
                tp_s=np.array([nan if v is None else v for v in meta["tp_s"]], dtype=float),
                charge=np.array([c[0] for c in curves], dtype=float),
                finish_target=np.array([nan if v is None else v for v in meta["finish_target"]], dtype=float),
                cats=[tuple(c) for c in meta["cats"]], groups=[str(g) for g in meta["groups"]])
            knn = AlignedKNN(params=AlignedKNNParams(**meta["params"]))
        except FileNotFoundError as exc:
            raise ValueError(f"{run_dir}: the run's model needs its prior library but {exc.filename} is missing") from None
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{run_dir}: prior library is malformed ({exc})") from None
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{run_dir}/{PRIOR_WEIGHTS}: unreadable ({exc})") from None
        knn.lib_ = lib
        return cls(knn)


def prior_steps(library: PriorLibrary, meta: ProfileMeta, charge_f: float, duration_s: float,
                n_steps: int, exclude_group: str | None = None) -> np.ndarray:
    """The prior on the model's step grid ([n_steps] °F) for one request."""
    c = library.curve(meta, charge_f, duration_s, exclude_group)
    return np.interp(steps_grid(c.size, n_steps), np.arange(c.size), c)


def profile_prior_steps(library: PriorLibrary, profile: Profile, n_steps: int,
                        exclude_own_group: bool = False) -> np.ndarray:
    """The prior for a real profile on its own step grid (same grid as Profile.resample)."""
    real = curve_1s(profile)
    return prior_steps(library, profile.meta, float(real[0]), float(real.size - 1), n_steps,
                       profile.group if exclude_own_group else None)

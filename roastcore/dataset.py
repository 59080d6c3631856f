"""Profiles -> the items of a torch dataset at a chosen time step (collate them with batch.collate)."""

from __future__ import annotations

import torch

from roastcore.batch import Batch, collate
from roastcore.features import FeatureEncoder
from roastcore.prior import profile_prior_steps
from roastcore.profile import Profile


class RoastDataset(torch.utils.data.Dataset):
    """Profiles resampled to `step_s`, with their encoded features. Truncated to `max_len` steps.

    With a `prior` (prior.PriorLibrary) each item also holds the aligned-kNN prior on the same
    grid; `exclude_own_group=True` builds it from the other products only (training profiles,
    whose own curve is in the library); `"held"` does so only for roasts the library holds
    (scoring: a run's library also serves its validation roasts).
    """

    def __init__(self, profiles: list[Profile], encoder: FeatureEncoder, step_s: float = 1.0,
                 max_len: int | None = None, prior=None, exclude_own_group: bool | str = False):
        if exclude_own_group not in (True, False, "held"):
            raise ValueError(f"exclude_own_group must be True, False or 'held', got {exclude_own_group!r}")
        if step_s <= 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        self.profiles = list(profiles)
        self.step_s = float(step_s)
        self.max_len = max_len
        self._items = []
        for i, p in enumerate(self.profiles):
            temps = p.resample(step_s).bt
            if max_len is not None:
                temps = temps[:max_len]
            feats = encoder.encode_profile(p)
            item = {
                "temps_f": torch.tensor(temps, dtype=torch.float32),
                "cat": torch.from_numpy(feats.cat),
                "flavors": torch.from_numpy(feats.flavors),
                "cont": torch.from_numpy(feats.cont),
                "index": i,
            }
            if prior is not None:
                full = len(p.resample(step_s).bt)
                exclude = exclude_own_group is True or (exclude_own_group == "held" and prior.holds(p))
                item["prior_f"] = torch.tensor(profile_prior_steps(prior, p, full, exclude)[: len(temps)],
                                               dtype=torch.float32)
            self._items.append(item)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> dict:
        return self._items[i]

    def full_batch(self, device="cpu") -> Batch:
        """Every profile in one padded batch (evaluation runs the whole set at once)."""
        return collate(self._items).to(device)

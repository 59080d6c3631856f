"""Profiles -> padded, masked torch batches at a chosen time step, and leakage-free splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from roastcore.features import FeatureEncoder
from roastcore.profile import Profile

STEP_CHOICES_S = (1.0, 2.0, 5.0, 10.0)


@dataclass
class Batch:
    temps_f: torch.Tensor  # (B, L) °F at step_s, padded with each row's last value
    mask: torch.Tensor  # (B, L) bool, True on real samples
    lengths: torch.Tensor  # (B,) int64, real samples per row
    cat: torch.Tensor  # (B, n_cat) int64
    flavors: torch.Tensor  # (B, n_flavors) float32
    cont: torch.Tensor  # (B, n_cont) float32
    index: torch.Tensor  # (B,) int64, position of each row in the dataset's profile list
    prior_f: torch.Tensor | None = None  # (B, L) °F aligned-kNN prior at step_s (prior models only)

    def to(self, device) -> Batch:
        return Batch(**{k: None if v is None else v.to(device) for k, v in self.__dict__.items()})

    @property
    def batch_size(self) -> int:
        return int(self.temps_f.shape[0])


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
                from roastcore.prior import profile_prior_steps

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


def collate(items: list[dict]) -> Batch:
    lengths = torch.tensor([len(it["temps_f"]) for it in items], dtype=torch.int64)
    width = int(lengths.max())
    temps = torch.empty(len(items), width, dtype=torch.float32)
    for row, it in enumerate(items):
        n = len(it["temps_f"])
        temps[row, :n] = it["temps_f"]
        temps[row, n:] = it["temps_f"][-1]  # repeat the last value so padding is harmless as input
    mask = torch.arange(width)[None, :] < lengths[:, None]
    prior = None
    if all("prior_f" in it for it in items):
        prior = torch.empty(len(items), width, dtype=torch.float32)
        for row, it in enumerate(items):
            n = len(it["prior_f"])
            prior[row, :n] = it["prior_f"]
            prior[row, n:] = it["prior_f"][-1]
    return Batch(
        temps_f=temps,
        mask=mask,
        lengths=lengths,
        cat=torch.stack([it["cat"] for it in items]),
        flavors=torch.stack([it["flavors"] for it in items]),
        cont=torch.stack([it["cont"] for it in items]),
        index=torch.tensor([it["index"] for it in items], dtype=torch.int64),
        prior_f=prior,
    )


def train_val_split(profiles: list[Profile], val_frac: float = 0.2, seed: int = 0,
                    grouped: bool = True) -> tuple[list[Profile], list[Profile]]:
    """Seeded split. Grouped keeps every batch of a product on one side (no leakage)."""
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    if len(profiles) < 2:
        raise ValueError(f"need at least 2 profiles to split, got {len(profiles)}")
    rng = np.random.default_rng(seed)
    keys = [p.group if grouped else str(i) for i, p in enumerate(profiles)]
    groups = sorted(set(keys))
    rng.shuffle(groups)
    target = max(1, int(round(val_frac * len(profiles))))
    val_groups, n_val = set(), 0
    for g in groups:
        if n_val >= target:
            break
        size = keys.count(g)
        if n_val + size >= len(profiles):
            continue  # never empty the training side
        val_groups.add(g)
        n_val += size
    if not val_groups:
        raise ValueError("cannot split: a single group holds every profile; use grouped=False")
    train = [p for p, k in zip(profiles, keys, strict=True) if k not in val_groups]
    val = [p for p, k in zip(profiles, keys, strict=True) if k in val_groups]
    return train, val


def group_kfold(profiles: list[Profile], k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """k folds of (train indices, validation indices), grouped by Profile.group and size-balanced."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(profiles):
        groups.setdefault(p.group, []).append(i)
    if k < 2 or k > len(groups):
        raise ValueError(f"k={k} folds need 2 <= k <= number of groups ({len(groups)})")
    rng = np.random.default_rng(seed)
    names = sorted(groups)
    rng.shuffle(names)
    # Largest groups first into the currently smallest fold keeps folds balanced.
    names.sort(key=lambda g: -len(groups[g]))
    folds: list[list[int]] = [[] for _ in range(k)]
    for g in names:
        min(folds, key=len).extend(groups[g])
    everyone = set(range(len(profiles)))
    return [(sorted(everyone - set(f)), sorted(f)) for f in folds]

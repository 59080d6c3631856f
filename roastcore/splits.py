"""Seeded, leakage-free splits of profiles: train/validation and grouped k-fold."""

from __future__ import annotations

import numpy as np

from roastcore.profile import Profile


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


def stratified_group_kfold(profiles: list[Profile], k: int, stratum, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """`group_kfold` within each stratum (`stratum(profile)` -> label, e.g. its data source),
    fold i the union of every stratum's fold i: each stratum's test folds are exactly those of
    `group_kfold` on its profiles alone (in their order), so per-stratum figures pair with a
    study of that stratum alone. A product group in two strata is refused (it would leak)."""
    labels = [str(stratum(p)) for p in profiles]
    owner: dict[str, str] = {}
    for p, label in zip(profiles, labels, strict=True):
        if owner.setdefault(p.group, label) != label:
            raise ValueError(f"product group {p.group!r} is in strata {owner[p.group]!r} and {label!r}")
    test: list[list[int]] = [[] for _ in range(k)]
    for label in dict.fromkeys(labels):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        for f, (_, va) in enumerate(group_kfold([profiles[i] for i in idx], k, seed)):
            test[f].extend(idx[j] for j in va)
    everyone = set(range(len(profiles)))
    return [(sorted(everyone - set(f)), sorted(f)) for f in test]

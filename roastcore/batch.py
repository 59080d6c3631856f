"""One padded, masked batch of roasts on a model's time grid: the tensors every model reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

STEP_CHOICES_S = (1.0, 2.0, 5.0, 10.0)


def steps_grid(n_1s: int, n_steps: int) -> np.ndarray:
    """Positions (in 1 s samples) of the model's steps: the grid RoastDataset and the
    generator both use (linspace from CHARGE to DROP)."""
    return np.linspace(0.0, n_1s - 1, n_steps)


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

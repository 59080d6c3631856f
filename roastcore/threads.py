"""Torch's intra-op thread count, set for a block of work and restored after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on `n` torch threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_thread():
    """One intra-op thread for sequential work on tiny tensors (generation, small rollouts).

    Generation is hundreds of sequential steps on tiny tensors; with two or more threads each
    op waits on a thread hand-off, and on a busy 2-core machine that made a 800-step run take
    87 s instead of 1.4 s (measured). Restored afterwards so big batched work keeps its threads.
    """
    return torch_threads(1)

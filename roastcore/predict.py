"""One roast through a run, step by step: the real curve, the teacher-forced next-step
predictions and a free run from its charge (raw and clamped), at the run's step_s.

`find_profile(profiles, key)` finds a roast by profile id, batch id or source file name;
`predictions(model, profile)` returns the object `python -m roastcore predict --json` prints:
{"profile_id", "step_s", "real_f", "teacher_forced_f", "free_run_raw_f", "free_run_clamped_f"},
where teacher_forced_f[i] predicts real_f[i+1] from real_f[0..i].
"""

from __future__ import annotations

import math
from pathlib import PurePosixPath

import torch

from roastcore.dataset import RoastDataset
from roastcore.model import DEFAULT_CLAMP_F
from roastcore.threads import single_thread


def find_profile(profiles, key: str):
    """The one profile whose id, batch id or source file name (full, base name, or base name
    without suffix) is `key`; ValueError when none or several match."""
    key = key.strip()

    def names(p):
        source = p.meta.source_file or ""
        base = PurePosixPath(source.replace("\\", "/")).name
        return {p.id, p.meta.batch_id, source, base, PurePosixPath(base).stem} - {None, ""}

    matches = [p for p in profiles if key in names(p)]
    if not profiles:
        raise ValueError(f"--profile {key}: the data holds no profiles")
    if not matches:
        example = profiles[0]
        raise ValueError(f"--profile {key}: no profile with that id, batch id or file name (e.g. id "
                       f"{example.id!r}, batch {example.meta.batch_id!r}, file {example.meta.source_file!r})")
    if len(matches) > 1:
        raise ValueError(f"--profile {key}: {len(matches)} profiles match ({', '.join(p.id for p in matches[:5])}); "
                       "give a profile id")
    return matches[0]


def predictions(model, profile) -> dict:
    """The predict object for one profile (see the module docstring)."""
    cfg = model.config
    # As evaluation builds it: a prior model's own library must not serve a roast it holds.
    dataset = RoastDataset([profile], model.encoder, cfg.step_s, cfg.max_len,
                           prior=getattr(model, "prior_library", None), exclude_own_group="held")
    batch = dataset.full_batch()
    model.eval()
    with torch.no_grad(), single_thread():
        tf = model.predict_next_f(batch)[0]
        gen = model.generate(batch, prefix_steps=1, clamp=DEFAULT_CLAMP_F)

    def floats(t):
        return [round(v, 4) if math.isfinite(v) else None for v in t.double().tolist()]

    return {"profile_id": profile.id, "step_s": float(cfg.step_s), "real_f": floats(batch.temps_f[0]),
            "teacher_forced_f": floats(tf), "free_run_raw_f": floats(gen.raw_f[0]),
            "free_run_clamped_f": floats(gen.clamped_f[0])}

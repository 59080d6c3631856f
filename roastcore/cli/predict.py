"""`python -m roastcore predict`: one roast through a run, step by step, for checking by hand.

    predict --checkpoint RUN_DIR --data SOURCE --profile ID [--json] [--steps N]

ID is a profile id, a batch id or a source file name. `--json` prints one object:
{"profile_id", "step_s", "real_f", "teacher_forced_f", "free_run_raw_f", "free_run_clamped_f"},
where teacher_forced_f[i] predicts real_f[i+1] from real_f[0..i], and the free run starts from
real_f[0] (raw: what the model said, clamped: what was fed back). All at the run's step_s.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

from roastcore.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="teacher-forced and free-running predictions for one roast (any run)",
        description="Run one roast through a checkpoint: the teacher-forced next-step predictions and "
                    "a free run from its charge, beside the real curve, at the run's time step.")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="SOURCE", help="synthetic[:N], or a file/folder/zip")
    p.add_argument("--profile", required=True, metavar="ID", help="profile id, batch id or source file name")
    p.add_argument("--json", action="store_true", help="print one JSON object with every step")
    p.add_argument("--steps", type=int, default=30, help="rows in the text table (default 30; 0 = all)")
    p.set_defaults(handler=_predict)


def find_profile(profiles, key: str):
    """The one profile whose id, batch id or source file name (full, base name, or base name
    without suffix) is `key`; CliError when none or several match."""
    key = key.strip()

    def names(p):
        source = p.meta.source_file or ""
        base = PurePosixPath(source.replace("\\", "/")).name
        return {p.id, p.meta.batch_id, source, base, PurePosixPath(base).stem} - {None, ""}

    matches = [p for p in profiles if key in names(p)]
    if not matches:
        example = profiles[0]
        raise CliError(f"--profile {key}: no profile with that id, batch id or file name (e.g. id "
                       f"{example.id!r}, batch {example.meta.batch_id!r}, file {example.meta.source_file!r})")
    if len(matches) > 1:
        raise CliError(f"--profile {key}: {len(matches)} profiles match ({', '.join(p.id for p in matches[:5])}); "
                       "give a profile id")
    return matches[0]


def predictions(model, profile) -> dict:
    """The predict object for one profile (see the module docstring)."""
    import torch

    from roastcore.dataset import RoastDataset
    from roastcore.generate import DEFAULT_CLAMP_F, single_thread

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


def _predict(args) -> int:
    from roastcore.checkpoints import load_run
    from roastcore.io import load_source

    run_dir = Path(args.checkpoint)
    if not (run_dir / "model.safetensors").is_file():
        raise CliError(f"--checkpoint {args.checkpoint}: not a run directory (no model.safetensors); "
                       "a research-code .pt goes through `import-checkpoint` first")
    profiles = load_source(args.data).profiles
    if not profiles:
        raise CliError(f"--data {args.data}: no usable profiles")
    profile = find_profile(profiles, args.profile)
    loaded = load_run(run_dir, "cpu")
    out = predictions(loaded.model, profile)
    if args.json:
        print(json.dumps(out))
        return 0
    real, tf, raw, fed = out["real_f"], out["teacher_forced_f"], out["free_run_raw_f"], out["free_run_clamped_f"]
    n = len(real) if args.steps <= 0 else min(args.steps, len(real))
    print(f"profile {out['profile_id']} (batch {profile.meta.batch_id or '-'})  step {out['step_s']:g} s  "
          f"{len(real)} steps; teacher forced = next step from the real past")
    print(f"{'step':>5} {'time_s':>7} {'real_f':>8} {'teacher_f':>10} {'free_raw_f':>11} {'free_fed_f':>11}")

    def cell(v, width):
        return f"{'-':>{width}}" if v is None else f"{v:>{width}.2f}"

    for i in range(n):
        tf_i = tf[i - 1] if i >= 1 else None  # the prediction OF step i
        print(f"{i:>5d} {i * out['step_s']:>7.1f} {cell(real[i], 8)} {cell(tf_i, 10)} {cell(raw[i], 11)} "
              f"{cell(fed[i], 11)}")
    return 0

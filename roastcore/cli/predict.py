"""`python -m roastcore predict`: one roast through a run, step by step, for checking by hand.

    predict --checkpoint RUN_DIR --data SOURCE --profile ID [--json] [--steps N]

ID is a profile id, a batch id or a source file name. `--json` prints one object:
{"profile_id", "step_s", "real_f", "teacher_forced_f", "free_run_raw_f", "free_run_clamped_f"},
where teacher_forced_f[i] predicts real_f[i+1] from real_f[0..i], and the free run starts from
real_f[0] (raw: what the model said, clamped: what was fed back). All at the run's step_s.
"""

from __future__ import annotations

import json
from pathlib import Path

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


def _predict(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.checkpoints import load_run
    from roastcore.io import load_source
    from roastcore.predict import find_profile, predictions

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

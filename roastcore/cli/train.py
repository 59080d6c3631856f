"""`python -m roastcore presets | train | demos`.

`train` prints a text progress bar on stderr and, as its LAST stdout line, one JSON object:
{"status", "best_epoch", "best_val_loss", "run_dir", "device", "reason"}. SIGTERM (and Ctrl-C)
cancel cooperatively between batches; the best checkpoint so far is kept.

Exit codes: 0 succeeded or cancelled, 3 diverged, 4 failed (the JSON line is printed in all
three cases), 2 bad input (roastcore.cli), 1 an unexpected crash.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from roastcore.cli import CliError

EXIT_CODES = {"succeeded": 0, "cancelled": 0, "diverged": 3, "failed": 4}

# The three shipped demo runs: (run name, preset, overrides). One command rebuilds them.
DEMO_DATA = "synthetic"
DEMO_COMMON = {"epochs": 3, "max_len": 800, "lr": 3e-3, "batch_size": 16, "patience": 0, "device": "cpu"}
DEMOS = (
    ("demo_collapsed", "no_normalization", {}),
    # Residual targets at 1 s: one-step error beats persistence, free running drifts away.
    ("demo_teacher_forced", "residual_tiny", {}),
    ("demo_scheduled_sampling", "scheduled_sampling",
     {"target_mode": "residual", "scheduled_sampling": "linear", "ss_max_ratio": 0.75}),
    # The recommended recipe with its own settings (5 s steps, best epoch by free-running MAE).
    ("demo_recommended", "recommended", {"epochs": 40, "max_len": 400, "lr": 5e-4, "patience": 8}),
)
# The shipped study (OUT/studies/demo), so the Study page shows a table on a fresh install: the
# recommended recipe against the baselines, 3 grouped folds of the 200 simulated roasts, a few
# epochs each (about 2 CPU-minutes). Rebuilt with the runs, or alone with --only demo_study.
DEMO_STUDY = "demo_study"
DEMO_STUDY_DATA = "synthetic"
DEMO_STUDY_SETTINGS = {"presets": ("recommended",), "folds": 3, "extrapolation": False,
                       "overrides": {"epochs": 6, "max_len": 400, "lr": 1e-3, "patience": 0, "device": "cpu"}}


def register(subparsers) -> None:
    presets = subparsers.add_parser("presets", help="list experiment presets with parameter counts")
    presets.add_argument("--data", help="data source; params per sample are computed for its training split")
    presets.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    presets.set_defaults(handler=cmd_presets)

    train = subparsers.add_parser("train", help="train one preset into a run directory",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--preset", required=True, help="preset name (see `roastcore presets`)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a model or train field, e.g. --set d_model=64 --set lr=1e-3")
    train.add_argument("--data", required=True, help="'synthetic', 'synthetic:N', a file, a folder or a .zip")
    train.add_argument("--out", required=True, help="run directory to create")
    train.add_argument("--epochs", type=int, help="override TrainConfig.epochs")
    train.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="override TrainConfig.device")
    train.add_argument("--seed", type=int, help="override TrainConfig.seed (also the split seed)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train)

    demos = subparsers.add_parser("demos", help="(re)build the shipped demo runs from the built-in data")
    demos.add_argument("--out", default="checkpoints", help="folder to write demo_* runs into")
    demos.add_argument("--data", default=DEMO_DATA, help="data source (default: synthetic = 200 simulated roasts)")
    demos.add_argument("--only", metavar="NAMES",
                       help=f"comma-separated demo names to rebuild (default: all; the study is {DEMO_STUDY})")
    demos.set_defaults(handler=cmd_demos)


def parse_overrides(pairs: list[str]) -> dict:

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def build_experiment(preset: str, overrides: dict):
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.experiments import get_preset

    return get_preset(preset).experiment.with_overrides(overrides)


def cmd_presets(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.experiments import (
        PRESETS,
        preset_table,
    )

    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.features import FeatureEncoder

    encoder, n_train, note = None, 96, "for 96 training profiles (120 at val_frac 0.2); reference vocabularies"
    if args.data:
        # deferred: torch-heavy, and `roastcore --help` stays fast
        from roastcore.io import load_source

        profiles = load_source(args.data).profiles
        if len(profiles) < 2:
            raise ValueError(f"data source {args.data!r} holds {len(profiles)} profiles; need at least 2")
        encoder = FeatureEncoder.fit(profiles)
        n_train = max(1, round(len(profiles) * (1 - PRESETS["tiny_model"].experiment.train.val_frac)))
        note = f"for {n_train} training profiles of {args.data} ({len(profiles)} in all)"
    rows = preset_table(n_train, encoder)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"params per sample {note}")
    print(f"{'preset':<22}{'tier':<10}{'type':<12}{'params':>11}{'per sample':>12}  {'health':<9} rationale")
    for r in rows:
        print(f"{r['name']:<22}{r['tier']:<10}{r['model_type']:<12}{r['params']:>11,}{r['params_per_sample']:>12,.0f}"
              f"  {r['health']:<9} {r['rationale']}")
    print("health bands (params per training profile): <=1k healthy, <=10k high, <=50k severe, >50k extreme")
    return 0


class ProgressBar:
    """One updating stderr line per epoch; plain text, no tqdm."""

    def __init__(self, stream=None, width: int = 24):
        # Looked up per bar, not at import: sys.stderr may be swapped (tests, log redirection).
        self.stream, self.width = stream or sys.stderr, width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def on_batch_end(self, p: dict) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < 5.0 and p["batch"] != p["n_batches"]:
            return  # log files get a line every few seconds, not every batch
        self._last = now
        done = int(self.width * p["batch"] / max(p["n_batches"], 1))
        line = (f"epoch {p['epoch']}/{p['epochs']} [{'#' * done}{'.' * (self.width - done)}] "
                f"{p['batch']}/{p['n_batches']} loss {p['loss']:.4g} lr {p['lr']:.2e}")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def on_epoch_end(self, m: dict) -> None:
        if self.tty:
            self.stream.write("\n")
        if m.get("stage") == "forecast":  # forecast_train's stage: rollouts from cut points
            self.stream.write(f"epoch {m['epoch']} (forecast stage): train L1 {m['train_loss']:.4g}  "
                              f"val forecast MAE {m['val_forecast_mae_f']:.2f} °F  "
                              f"{m['elapsed_s']:.0f}s elapsed, eta {m['eta_s']:.0f}s\n")
            self.stream.flush()
            return
        self.stream.write(f"epoch {m['epoch']}: train {m['train_loss']:.4g}  val {m['val_loss']:.4g}  "
                          f"val TF MAE {m['val_tf_mae_f']:.2f} °F  tf_ratio {m['tf_ratio']:.2f}  "
                          f"{m['elapsed_s']:.0f}s elapsed, eta {m['eta_s']:.0f}s\n")
        self.stream.flush()


def run_training(experiment, data: str, out: str, device: str | None = None, progress: bool = True):
    """Load `data`, split, train into `out` with SIGTERM/SIGINT as cooperative cancel."""
    # deferred: torch-heavy, and `roastcore --help` stays fast; forecast_train's run_experiment
    # is train.run_experiment with the preset's stages (the `forecast` fine-tune)
    from roastcore.evaluate import ScoreOnFinish
    from roastcore.forecast_train import run_experiment
    from roastcore.io import load_source

    report = load_source(data)
    if len(report.profiles) < 2:
        raise ValueError(f"data source {data!r} holds {len(report.profiles)} usable profiles; need at least 2")
    cancel = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: cancel.set())
    try:
        # The finished run scores itself here, once, for CLI, jobs and dashboard runs alike.
        callbacks = ([ProgressBar()] if progress else []) + [ScoreOnFinish(report.profiles)]
        return run_experiment(experiment, report.profiles, run_dir=out, data_source=str(data),
                              callbacks=callbacks, cancel=cancel, device=device)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_train(args) -> int:

    overrides = parse_overrides(args.overrides)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["device"] = args.device
    experiment = build_experiment(args.preset, overrides)
    out = Path(args.out)
    if (out / "model.safetensors").exists() or (out / "metrics.jsonl").exists():
        raise CliError(f"--out {out}: already holds a run; choose a new directory")
    result = run_training(experiment, args.data, str(out), progress=not args.quiet)
    sys.stdout.flush()
    print(json.dumps(result.summary()), flush=True)
    return EXIT_CODES.get(result.status, 4)


def cmd_demos(args) -> int:
    """Train the shipped demo runs and the demo study (about 14 CPU-minutes on 2 cores; --only
    rebuilds some)."""
    import shutil

    known = [name for name, _, _ in DEMOS] + [DEMO_STUDY]
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else known
    unknown = sorted(set(only) - set(known))
    if unknown:
        raise CliError(f"--only: unknown demo {', '.join(unknown)}; choose from {', '.join(known)}")
    out = Path(args.out)
    summaries = []
    for name, preset, extra in DEMOS:
        if name not in only:
            continue
        run_dir, fresh = out / name, out / f".{name}.building"
        if fresh.exists():
            shutil.rmtree(fresh)  # a build that died half-way
        experiment = build_experiment(preset, {**DEMO_COMMON, **extra})
        print(f"training {name} ({preset})", file=sys.stderr, flush=True)
        result = run_training(experiment, args.data, str(fresh), progress=True)
        summaries.append({**result.summary(), "run_dir": str(run_dir)})
        if result.status != "succeeded":  # the shipped demo stays as it was
            shutil.rmtree(fresh, ignore_errors=True)
            print(json.dumps(summaries[-1]), flush=True)
            return EXIT_CODES.get(result.status, 4) or 4
        # Swap in the new run only once it is complete: a failed rebuild never loses a demo.
        old = out / f".{name}.old"
        if run_dir.exists():
            run_dir.rename(old)
        fresh.rename(run_dir)
        shutil.rmtree(old, ignore_errors=True)
    if DEMO_STUDY in only:
        summaries.append(build_demo_study(out / "studies" / "demo"))
    print(json.dumps({"status": "succeeded", "runs": summaries}), flush=True)
    return 0


def build_demo_study(study_dir: Path, data: str = DEMO_STUDY_DATA) -> dict:
    """Run the demo study into `study_dir`; like the runs, swapped in only once complete."""
    import shutil

    # Imported here, not at the top: `roastcore --help` stays fast (no torch).
    from roastcore.io import load_source
    from roastcore.study import StudyConfig, run_study

    fresh, old = study_dir.with_name(f".{study_dir.name}.building"), study_dir.with_name(f".{study_dir.name}.old")
    if fresh.exists():
        shutil.rmtree(fresh)  # a build that died half-way
    print(f"building the demo study ({data})", file=sys.stderr, flush=True)
    started = time.monotonic()
    results = run_study(load_source(data).profiles, StudyConfig(**DEMO_STUDY_SETTINGS), out_dir=fresh,
                        data_source=data, progress=lambda msg: print(f"  {msg}", file=sys.stderr, flush=True))
    if study_dir.exists():
        study_dir.rename(old)
    fresh.rename(study_dir)
    shutil.rmtree(old, ignore_errors=True)
    return {"status": "succeeded", "study_dir": str(study_dir), "wall_s": round(time.monotonic() - started, 1),
            "models": sorted(results.get("models", {}))}

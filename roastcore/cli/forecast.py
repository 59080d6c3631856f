"""`python -m roastcore forecast | forecast-eval`: the rest of a roast in progress, with an 80% band.

    forecast --checkpoint RUN --roast FILE --at SECONDS [--target-drop F | --drop-time S]
             [--methods a,b] [--data SOURCE] [--json]
    forecast-eval --checkpoint RUN --data SOURCE [--split val|all] [--cuts 120,240,360]
                  [--folds 5] [--methods a,b] [--method-seed N] [--min-charge F] [--json] [--out FILE]

The non-model methods (`knn_residual` included: its learned part is fitted on the training
roasts, roastcore/forecast_residual.py) need training roasts: `--data` (forecast-eval's data minus each fold),
else the roasts a prior model carries in its run (`prior.*`). See docs/forecasting.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from roastcore.cli import CliError

log = logging.getLogger(__name__)

ALL_METHODS = ("model", "linear_projection", "ror_decay", "prefix_knn")
# The run's model correcting the prefix kNN (prior models); 'forecast' fine-tunes it per fold
# first (forecast-eval only; the preset `forecast` trains and saves such a model: 'model' of its run); 'knn_residual' is the prefix kNN
# with a learned ridge correction (roastcore/forecast_residual.py; no checkpoint needed).
EXTRA_METHODS = ("model_prefix_prior", "forecast", "knn_residual")
MODEL_METHODS = ("model", "model_prefix_prior", "forecast")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "forecast", help="forecast the rest of one roast from its first seconds, with an 80%% band",
        description="Cut a roast at --at seconds and forecast the rest with each method: to a given "
                    "DROP time (--drop-time), to a target drop temperature (--target-drop), or to "
                    "the method's own expected end.")
    p.add_argument("--checkpoint", default=None, metavar="RUN_DIR",
                   help="a run directory (its model is the 'model' method; a prior model also "
                        "brings its training roasts for the other methods)")
    p.add_argument("--roast", required=True, metavar="FILE", help=".alog, Onyx .json or .csv")
    p.add_argument("--at", required=True, type=float, metavar="SECONDS", help="seconds from CHARGE observed")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--target-drop", type=float, default=None, metavar="F",
                     help="forecast until BT reaches this °F (and report when)")
    end.add_argument("--drop-time", type=float, default=None, metavar="S", help="forecast to this DROP time")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated (default: all four)")
    p.add_argument("--data", default=None, metavar="SOURCE",
                   help="training roasts for the methods and bands (default: the run's prior library)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_forecast)

    p = subparsers.add_parser(
        "forecast-eval", help="score forecasting methods by grouped k-fold CV at cut points",
        description="Each fold's roasts are cut at each --cuts second and forecast by methods "
                    "fitted and calibrated on the other folds. --split val scores the run's "
                    "validation roasts (the rest always train); --split all scores every roast.")
    p.add_argument("--checkpoint", default=None, metavar="RUN_DIR",
                   help="run whose model is the 'model' method (without it 'model' is skipped)")
    p.add_argument("--data", required=True, metavar="SOURCE",
                   help="synthetic[:N], or a file/folder/zip; several separated by commas are scored "
                        "together, with folds and tables per source")
    p.add_argument("--split", choices=("val", "all"), default=None,
                   help="default: val with --checkpoint (all when the data is not the run's), else all")
    p.add_argument("--cuts", default="120,240,360", help="cut points in seconds (default 120,240,360)")
    p.add_argument("--folds", type=int, default=5, help="grouped folds (default 5)")
    p.add_argument("--min-charge", type=float, default=None, metavar="F",
                   help="score only roasts charged at or above F °F (drum roasters: air roasters "
                        "charge near room temperature)")
    p.add_argument("--seed", type=int, default=0, help="fold split seed")
    p.add_argument("--method-seed", type=int, default=0, metavar="N",
                   help="seed of the learned methods ('knn_residual''s random training cuts, 'forecast''s "
                        "fine-tuning, the --train-preset training); the folds keep --seed")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated (default: all four)")
    p.add_argument("--train-preset", default=None, metavar="PRESET",
                   help="train this preset on each fold's training roasts for the model methods "
                        "(cross-validated like the others) instead of using --checkpoint's model")
    p.add_argument("--finetune-epochs", type=int, default=12, metavar="N",
                   help="method 'forecast': epochs of fine-tuning on each fold (default 12)")
    p.add_argument("--json", action="store_true", help="print one JSON object {\"results\": [...], ...}")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the JSON here")
    p.set_defaults(handler=_forecast_eval)


def parse_methods(text: str, flag: str = "--methods") -> list[str]:
    """Comma-separated forecast method names (also `study --forecast-methods`)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in ALL_METHODS + EXTRA_METHODS]
    if bad or not names:
        raise CliError(f"{flag}: {', '.join(bad) or '(none)'} not among "
                       f"{', '.join(ALL_METHODS + EXTRA_METHODS)}")
    return names


def parse_cuts(text: str, flag: str = "--cuts") -> list[int]:
    """Comma-separated cut points in seconds, sorted and distinct (also `study --forecast-cuts`)."""
    try:
        cuts = sorted({int(float(c)) for c in text.split(",") if c.strip()})
    except ValueError:
        raise CliError(f"{flag} {text!r}: give seconds like 120,240,360") from None
    if not cuts or cuts[0] < 30:
        raise CliError(f"{flag} {text!r}: give cut points of at least 30 s")
    return cuts


def _load_model(run_dir: str | None):
    if run_dir is None:
        return None
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.checkpoints import RunError, load_run

    path = Path(run_dir)
    if not (path / "model.safetensors").is_file():
        raise CliError(f"--checkpoint {run_dir}: not a run directory (no model.safetensors)")
    try:
        return load_run(path).model
    except RunError as exc:
        raise CliError(f"--checkpoint {run_dir}: {exc}") from None


def _load_profiles(spec: str):
    return _load_report(spec).profiles


def _load_report(spec: str):
    # deferred: importers pull numpy-heavy modules; `roastcore --help` stays fast
    from roastcore.io import load_source

    try:
        report = load_source(spec)
    except (OSError, ValueError) as exc:
        raise CliError(f"--data {spec}: {exc}") from None
    if report.rejected:
        log.warning("%d files in %s were rejected (first: %s)", len(report.rejected), spec, report.rejected[0])
    if not report.profiles:
        raise CliError(f"--data {spec}: no usable profiles")
    return report


def _forecast(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.forecast import Horizon, make_request
    from roastcore.forecast_eval import library_profiles, make_forecaster
    from roastcore.fsutil import to_json
    from roastcore.io import ImportFailure, read_profile

    methods = parse_methods(args.methods)
    if "forecast" in methods:
        raise CliError("method 'forecast' fine-tunes per fold: score it with forecast-eval")
    model = _load_model(args.checkpoint)
    if set(methods) & set(MODEL_METHODS) and model is None:
        raise CliError("the model methods need --checkpoint (or pass --methods without them)")
    try:
        roast = read_profile(args.roast)
    except (ImportFailure, OSError) as exc:
        raise CliError(f"--roast {args.roast}: {exc}") from None
    if args.data:
        train = _load_profiles(args.data)
    elif model is not None and getattr(model, "prior_library", None) is not None:
        train = library_profiles(model.prior_library)
    else:
        raise CliError("no training roasts: give --data SOURCE (or a --checkpoint of a prior model)")
    if args.at >= roast.duration_s:
        raise CliError(f"--at {args.at:g}: the roast ends at {roast.duration_s:.0f} s")
    if args.target_drop is not None:
        horizon = Horizon.target(args.target_drop)
    elif args.drop_time is not None:
        horizon = Horizon.drop_at(args.drop_time)
    else:
        horizon = Horizon.expected_end()
    # A roast replayed from the training roasts must not be its own neighbour.
    twins = {p.fingerprint(): p.group for p in train}
    own = twins.get(roast.fingerprint())
    results = []
    for name in methods:
        fc = make_forecaster(name, model).fit(train)
        # The run's own aligned kNN knows which roasts it holds; every prefix kNN leaves out `own`.
        exclude = fc.replay_exclusion(roast, own)
        req = make_request(roast, at_s=args.at, exclude_group=exclude)
        results.append(fc.forecast_requests([req], [horizon])[0])
    if args.json:
        print(to_json({"roast": str(args.roast), "at_s": float(args.at), "horizon": horizon.kind,
                       "horizon_value": horizon.value, "real_drop_s": roast.duration_s,
                       "forecasts": [f.to_dict() for f in results]}))
        return 0
    print(f"{args.roast}: cut at {args.at:g} s (real DROP {roast.duration_s:.0f} s, "
          f"{roast.finish_f:.1f} °F); horizon {horizon.kind}"
          + ("" if horizon.value is None else f" {horizon.value:g}"))
    for f in results:
        print(_line(f))
    return 0


def _fmt_time(value, lo, hi) -> str:
    if value is None:
        return "not reached"
    band = f" [{'?' if lo is None else f'{lo:.0f}'}..{'>horizon' if hi is None else f'{hi:.0f}'}]"
    return f"{value:.0f} s{band}"


def _line(f) -> str:
    end = (f"end {f.end_s:.0f} s: {f.bt_f[-1]:.1f} °F [{f.lo_f[-1]:.1f}..{f.hi_f[-1]:.1f}]"
           if f.bt_f.size else f"end {f.end_s:.0f} s")
    fcs = "FCs happened" if f.fcs_happened else f"FCs {_fmt_time(f.fcs_s, f.fcs_lo_s, f.fcs_hi_s)}"
    target = "" if f.target_f is None else (
        f"  {f.target_f:.0f} °F in {_fmt_time(f.time_to_target_s, f.time_to_target_lo_s, f.time_to_target_hi_s)}")
    physics = "" if not f.physics_failures else f"  physics: {'; '.join(f.physics_failures)}"
    return f"  {f.method:<18} {end}  {fcs}{target}{physics}"


def _forecast_eval(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.evaluate import select_split
    from roastcore.forecast_eval import forecast_eval
    from roastcore.forecast_model import FinetuneConfig
    from roastcore.fsutil import atomic_write_text, to_json

    methods = parse_methods(args.methods)
    cuts = parse_cuts(args.cuts)
    model = _load_model(args.checkpoint)
    notes = []
    model_fn = None
    if args.train_preset:
        model_fn = _fold_trainer(args.train_preset, notes, args.method_seed)
    elif model is None and set(methods) & set(MODEL_METHODS):
        skipped = [m for m in methods if m in MODEL_METHODS]
        methods = [m for m in methods if m not in MODEL_METHODS]
        notes.append(f"no --checkpoint: {', '.join(repr(m) for m in skipped)} skipped")
        if not methods:
            raise CliError("no method left to score: give --checkpoint or other --methods")
    report = _load_report(args.data)
    profiles = report.profiles
    if args.min_charge is not None:
        kept = [p for p in profiles if p.charge_f >= args.min_charge]
        notes.append(f"--min-charge {args.min_charge:g}: {len(kept)} of {len(profiles)} roasts kept")
        if not kept:
            raise CliError(f"--min-charge {args.min_charge:g}: no roast of {args.data} is charged that hot")
        profiles = kept
    manifest = {}
    if args.checkpoint:
        manifest_path = Path(args.checkpoint) / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    split = args.split or ("val" if args.checkpoint else "all")
    if split == "val" and not args.checkpoint:
        raise CliError("--split val needs --checkpoint (the run's validation roasts)")
    try:
        val, train, label, split_notes = select_split(profiles, manifest, split)
    except ValueError as exc:
        raise CliError(f"--split {split}: {exc}") from None
    # select_split speaks of baselines; here every method is fitted on the other folds.
    notes += [n for n in split_notes if "baselines" not in n]
    notes.append(f"{args.folds}-fold CV grouped by product over the {len(val)} scored roasts"
                 + (f" (+{len(train)} training roasts in every fold)" if train else ""))
    if model is not None and manifest.get("data_source") not in (None, args.data):
        notes.append(f"the run was trained on {manifest.get('data_source')!r}, scored here on {args.data!r}")
    strata = None
    if len(set(report.origins.values())) > 1:  # several sources: folds and tables per source
        strata = lambda p: report.origins[p.id]  # noqa: E731 (the source a roast came from)
        counts = {s: sum(report.origins[p.id] == s for p in val) for s in dict.fromkeys(report.origins.values())}
        notes.append("several sources: folds made within each source and merged (each source's test folds "
                     "are those of a study of it alone), training on every source; scored roasts by source: "
                     + ", ".join(f"{s} {n}" for s, n in counts.items()))
    out = forecast_eval(methods, val, cuts=cuts, folds=args.folds, seed=args.seed, model=model, strata=strata,
                        extra_train=train, model_fn=model_fn,
                        finetune=FinetuneConfig(epochs=args.finetune_epochs, seed=args.method_seed),
                        method_seed=args.method_seed,
                        progress=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    out.update(split=label, notes=notes, data=args.data, checkpoint=args.checkpoint)
    text = to_json(out)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    if args.json:
        print(text)
    else:
        print(format_table(out["results"]))
        for source, part in out.get("by_stratum", {}).items():
            print(f"\n{source} ({part['n_profiles']} roasts):")
            print(format_table(part["results"]))
        for note in notes:
            print(f"note: {note}")
    return 0


def _fold_trainer(preset: str, notes: list[str], seed: int = 0):
    # deferred: training pulls torch and the trainer; `roastcore --help` stays fast
    from roastcore.experiments import get_preset
    from roastcore.forecast_train import run_experiment  # with the preset's stages (`forecast`)

    try:
        # --method-seed seeds the training too (its inner split, initialisation, batches and the
        # forecast stage's cuts), so that seeds give a spread.
        experiment = get_preset(preset).experiment.with_overrides({"seed": seed})
    except (KeyError, ValueError) as exc:
        raise CliError(f"--train-preset {preset}: {exc}") from None
    notes.append(f"model methods: preset {preset!r} trained on each fold's training roasts (seed {seed})")

    def train_fold(profiles, fold):
        log.info("training %s for fold %d on %d roasts", preset, fold + 1, len(profiles))
        result = run_experiment(experiment, profiles)
        if result.model is None:
            raise CliError(f"--train-preset {preset}: fold {fold + 1} training {result.status}: {result.reason}")
        return result.model

    return train_fold


def format_table(rows: list[dict]) -> str:
    head = ("| method | cut s | roasts | MAE °F | finish MAE °F | drop time MAE s | FCs time MAE s "
            "| coverage % | band width °F |")
    lines = [head, "|" + "---|" * 9]

    def f(v, spec):
        return "–" if v is None else format(v, spec)

    for r in rows:
        lines.append(f"| {r['method']} | {r['cut_s']} | {r['n_profiles']} | {f(r['mae_f'], '.2f')} | "
                     f"{f(r['finish_mae_f'], '.2f')} | {f(r['drop_time_mae_s'], '.1f')} | "
                     f"{f(r['fcs_time_mae_s'], '.1f')} | {f(r['coverage_pct'], '.1f')} | "
                     f"{f(r['band_width_f'], '.1f')} |")
    return "\n".join(lines)

"""`python -m roastcore evaluate | score | diagnose | generate`: score, explain and use a checkpoint.

    evaluate --checkpoint RUN_DIR --data SOURCE [--split val|all] [--prefix-s K] [--json] [--no-cache]
    score    --checkpoint RUN_DIR [--data SOURCE] [--if-needed] [--json]
    diagnose --checkpoint RUN_DIR --data SOURCE [--profile ID] [--steps N]
    generate --checkpoint RUN_DIR [--origin ... --process ... --variety ... --roast-level ...
             --flavors a,b --roaster ... --charge-temp F] (--duration S | --drop-temp F) --out FILE
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from roastcore.cli import CliError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="teacher forcing, free running, physics, baselines and a verdict",
        description="Evaluate a checkpoint on a dataset. --split val rebuilds the run's validation "
                    "set from its manifest and fits the baselines on the rest; --split all scores "
                    "every profile (baselines by grouped 5-fold CV).")
    _common(p)
    p.add_argument("--split", choices=("val", "all"), default="val")
    p.add_argument("--prefix-s", type=float, default=0.0, metavar="K",
                   help="start free running from the first K real seconds (default: charge only)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-cache", action="store_true", help="recompute even if a cached result exists")
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "score", help="score a run on its validation roasts and store it (RUN_DIR/scores.json)",
        description="What every training does when it finishes, for runs that predate it and imported "
                    "ones: teacher forcing, free running, physics, baselines fitted on the run's training "
                    "data and the diagnosis, on the run's validation roasts, stored atomically in "
                    "RUN_DIR/scores.json for the dashboard to read. Progress goes to stderr.")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR")
    p.add_argument("--data", default=None, metavar="SOURCE",
                   help="the run's data (default: the data source its manifest records)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    p.add_argument("--if-needed", action="store_true",
                   help="do nothing when current scores are stored (but store generated.json if it is missing)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_score)

    p = subparsers.add_parser(
        "diagnose", help="step-by-step generation trace (raw / clamped / real) for one profile")
    _common(p)
    p.add_argument("--profile", default=None,
                   help="profile id, batch id or file name (default: the first validation profile)")
    p.add_argument("--steps", type=int, default=30, help="steps to show, 10 to the full length (default 30)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_diagnose)

    p = subparsers.add_parser("generate", help="generate a roast profile from chosen features")
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR")
    for name in ("origin", "process", "variety", "roast-level", "roaster"):
        p.add_argument(f"--{name}", default=None)
    p.add_argument("--flavors", default="", help="comma-separated, e.g. cocoa,cherry")
    p.add_argument("--charge-temp", type=float, default=None, metavar="F",
                   help="charge temperature °F (default: the training data's mean)")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--duration", type=float, metavar="S", help="roast length in seconds")
    length.add_argument("--drop-temp", type=float, metavar="F", help="generate until BT reaches this °F")
    p.add_argument("--out", required=True, metavar="FILE", help=".alog, .csv or .json")
    p.set_defaults(handler=_generate)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="SOURCE", help="synthetic[:N], or a file/folder/zip")


def _load_profiles(spec: str):
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.io import load_source

    report = load_source(spec)
    if report.rejected:
        log.warning("%d files in %s were rejected (first: %s)", len(report.rejected), spec,
                    report.rejected[0])
    if not report.profiles:
        raise CliError(f"--data {spec}: no usable profiles")
    return report.profiles


def _check_run(run_dir: str) -> Path:
    path = Path(run_dir)
    if not (path / "model.safetensors").is_file():
        raise CliError(f"--checkpoint {run_dir}: not a run directory (no model.safetensors)")
    return path


def _progress(done: int, total: int, stage: str) -> None:
    print(f"[{done}/{total}] {stage}", file=sys.stderr, flush=True)


def _evaluate(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.evaluate import evaluate_run, to_json

    run_dir = _check_run(args.checkpoint)
    if args.prefix_s < 0:
        raise CliError(f"--prefix-s must be >= 0, got {args.prefix_s}")
    profiles = _load_profiles(args.data)
    report = evaluate_run(run_dir, profiles, split=args.split, prefix_s=args.prefix_s,
                          use_cache=not args.no_cache, progress=None if args.json else _progress)
    if args.json:
        print(to_json(report))
    else:
        print(format_report(report))
    return 0


def _score(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.evaluate import (
        needs_scoring,
        run_profiles,
        score_run,
        store_generated,
        stored_report,
        to_json,
    )
    from roastcore.run_generated import load_generated

    run_dir = _check_run(args.checkpoint)
    if args.if_needed and not needs_scoring(run_dir):
        report = stored_report(run_dir)
        if report is None:  # current scores absent but not needed: the run is not usable
            raise CliError(f"--checkpoint {run_dir}: not usable, nothing to score")
        if load_generated(run_dir) is None:  # scored before generated.json existed: only that is stored
            profiles = _load_profiles(args.data) if args.data else run_profiles(run_dir)
            store_generated(run_dir, profiles)
        print(to_json(report) if args.json else f"{run_dir}: scores are current; nothing to do")
        return 0
    profiles = _load_profiles(args.data) if args.data else None
    report = score_run(run_dir, profiles, device=args.device, progress=None if args.json else _progress)
    if args.json:
        print(to_json(report))
    else:
        print(format_report(report))
        print(f"stored in {run_dir / 'scores.json'}")
    return 0


def _fmt(value, spec=".2f", unit="") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}}{unit}"


def format_report(report) -> str:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.diagnose import growth_phrase

    tf, fr, bl, dg = report.teacher_forcing, report.free_run, report.baselines, report.diagnosis
    lines = [
        f"checkpoint {report.run_dir}  split {report.split}  profiles {report.n_profiles}"
        f"  step {report.step_s:g} s" + ("  (cached)" if report.from_cache else ""),
        "",
        "Teacher forcing (next step from real history)",
        f"  model MAE {tf['mae_f']:.3f} °F  RMSE {tf['rmse_f']:.3f} °F  ({tf['band']})",
        f"  persistence MAE {tf['persistence_mae_f']:.3f} °F at {tf['step_s']:g} s, "
        f"{tf['persistence_1s_mae_f']:.3f} °F at 1 s",
        f"  skill ratio (model / persistence, same step) {tf['skill_ratio']:.2f}",
        "",
        f"Free running (from charge{'' if not report.prefix_s else f' + {report.prefix_s:g} s prefix'})",
        f"  {'':14}{'MAE °F':>9}{'RMSE °F':>9}{'finish':>9}{'±10 °F':>8}{'TP s':>7}{'RoR':>7}{'physics':>9}",
    ]

    def row(name, r):
        return (f"  {name:14}{_fmt(r['mae_f']):>9}{_fmt(r['rmse_f']):>9}{_fmt(r['finish_mae_f'], '.1f'):>9}"
                f"{_fmt(r['finish_within_10_pct'], '.0f', '%'):>8}{_fmt(r['tp_time_mae_s'], '.0f'):>7}"
                f"{_fmt(r['ror_mae_f_per_min'], '.1f'):>7}{_fmt(r['physics_valid_pct'], '.0f', '%'):>9}")

    lines.append(row("model", fr))
    for name in ("aligned_knn", "knn", "mean_curve"):
        label = name + (f" k={bl[name]['k']}" if bl[name].get("k") else "")
        lines.append(row(label, bl[name]))
    lines.append(f"  model TP temp MAE {_fmt(fr['tp_temp_mae_f'], '.1f')} °F, FCs time MAE "
                 f"{_fmt(fr['fcs_time_mae_s'], '.0f')} s ({fr['fcs_missed']} never reach FCs), DTR MAE {_fmt(fr['dtr_mae_pct'], '.1f')} pts, "
                 f"error {growth_phrase(fr['error_growth'])} late vs early-mid")
    if report.baseline_fit.get("description"):
        lines.append(f"  {report.baseline_fit['description']}")
    if fr.get("physics_pass_pct"):
        lines.append("  physics pass: " + ", ".join(f"{k} {v:.0f}%" for k, v in fr["physics_pass_pct"].items()))
    lines += ["", f"Diagnosis: {dg['verdict'].upper()}"]
    lines += [f"  - {e}" for e in dg["evidence"]]
    if dg.get("suggestion"):
        lines.append(f"  next: preset '{dg['suggestion']}' ({dg['suggestion_reason']})")
    elif dg["verdict"] != "healthy" and dg.get("suggestion_reason"):
        lines.append(f"  next: {dg['suggestion_reason']}")
    for note in report.notes:
        if note != report.baseline_fit.get("description"):  # shown with the baselines above
            lines.append(f"note: {note}")
    return "\n".join(lines)


def _diagnose(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.checkpoints import load_run
    from roastcore.diagnose import step_trace
    from roastcore.evaluate import evaluated_set
    from roastcore.predict import find_profile

    run_dir = _check_run(args.checkpoint)
    profiles = _load_profiles(args.data)
    loaded = load_run(run_dir, "cpu")
    if args.profile:
        profile = find_profile(profiles, args.profile)  # profile id, batch id or file name
    else:
        try:
            val, _, _ = evaluated_set(profiles, loaded.manifest or {}, "val")
        except ValueError:
            val = profiles
        profile = val[0]
    try:
        trace = step_trace(loaded.model, profile, steps=args.steps)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(trace.to_dict()))
        return 0
    print(f"profile {trace.profile_id}  step {trace.step_s:g} s  (first {len(trace.rows)} steps)")
    print(trace.format_table())
    print(f"variance of the generated sequence: {trace.variance_f2:.1f} °F² -> {trace.variance_verdict}")
    if trace.clamp_steps:
        shown = ", ".join(str(s) for s in trace.clamp_steps[:20])
        more = "" if len(trace.clamp_steps) <= 20 else f" (+{len(trace.clamp_steps) - 20} more)"
        print(f"clamp active at steps: {shown}{more}")
    else:
        print("clamp never active")
    return 0


def _generate(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.checkpoints import load_run
    from roastcore.generate import (
        EXPORT_SUFFIXES,
        Provenance,
        RoastRequest,
        export_profile,
        generate_profile,
    )

    run_dir = _check_run(args.checkpoint)
    if Path(args.out).suffix.lower() not in EXPORT_SUFFIXES:
        raise CliError(f"--out {args.out}: use one of {', '.join(EXPORT_SUFFIXES)}")
    request = RoastRequest(
        origin=args.origin, process=args.process, variety=args.variety, roast_level=args.roast_level,
        roaster=args.roaster, flavors=tuple(f.strip() for f in args.flavors.split(",") if f.strip()),
        charge_temp_f=args.charge_temp, duration_s=args.duration, drop_temp_f=args.drop_temp)
    try:
        request.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    loaded = load_run(run_dir, "cpu")
    profile = generate_profile(loaded.model, request)
    path = export_profile(profile, args.out, provenance=Provenance.for_request(run_dir.resolve().name, request))
    print(f"wrote {path}: {profile.duration_s:.0f} s, charge {profile.charge_f:.0f} °F, "
          f"drop {profile.finish_f:.0f} °F")
    return 0

"""`python -m roastcore study --data SOURCE --folds 5 --out DIR [--presets a,b] [--budget-min M]`.

Grouped k-fold study of presets against the baselines (roastcore.study), and the forecast table
(forecasting from 2, 4 and 6 minutes on the same folds; `--forecast-methods none` skips it).
Prints the markdown tables at the end and writes results.json + results.md into --out.
"""

from __future__ import annotations

import sys

from roastcore.cli import CliError


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="grouped k-fold study of presets vs baselines (results.json + .md)")
    p.add_argument("--data", required=True, help="'synthetic', 'synthetic:N', a file, a folder or a .zip")
    p.add_argument("--folds", type=int, default=5, help="grouped folds (default 5)")
    p.add_argument("--out", required=True, help="directory for results.json and results.md")
    p.add_argument("--presets", default="recommended", help="comma-separated preset names (default: recommended)")
    p.add_argument("--budget-min", type=float, default=None, metavar="M",
                   help="stop starting new work after M minutes; what is skipped is listed")
    p.add_argument("--seed", type=int, default=0, help="fold split seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every preset, e.g. --set epochs=5")
    p.add_argument("--no-extrapolation", action="store_true",
                   help="skip the hottest-charge extrapolation check (on by default)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small models)")
    p.add_argument("--forecast-methods", default="linear_projection,ror_decay,prefix_knn", metavar="a,b",
                   help="forecasting methods scored on the same folds (the forecast table); 'none' skips it")
    p.add_argument("--forecast-cuts", default="120,240,360", metavar="S,S",
                   help="cut points in seconds for the forecast table (default 120,240,360)")
    p.set_defaults(handler=cmd_study)


def cmd_study(args) -> int:
    # deferred: torch-heavy, and `roastcore --help` stays fast
    from roastcore.cli.forecast import parse_cuts, parse_methods
    from roastcore.cli.train import parse_overrides
    from roastcore.io import load_source
    from roastcore.study import (
        StudyConfig,
        format_markdown,
        run_study,
    )

    presets = tuple(x.strip() for x in args.presets.split(",") if x.strip())
    if not presets:
        raise CliError("--presets: give at least one preset name")
    fc_methods = () if args.forecast_methods.strip() == "none" else tuple(
        parse_methods(args.forecast_methods, "--forecast-methods"))
    fc_cuts = tuple(parse_cuts(args.forecast_cuts, "--forecast-cuts"))
    try:
        config = StudyConfig(presets=presets, folds=args.folds, seed=args.seed, budget_min=args.budget_min,
                             extrapolation=not args.no_extrapolation, overrides=parse_overrides(args.overrides),
                             threads=args.threads, forecast_methods=fc_methods, forecast_cuts_s=fc_cuts)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    report = load_source(args.data)
    if report.rejected:
        print(f"{len(report.rejected)} files rejected by the importer (first: {report.rejected[0]})",
              file=sys.stderr)
    if len(report.profiles) < 2:
        raise CliError(f"--data {args.data}: {len(report.profiles)} usable profiles; need more")
    results = run_study(report.profiles, config, out_dir=args.out, data_source=args.data,
                        progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_markdown(results))
    print(f"wrote {args.out}/results.json and results.md", file=sys.stderr)
    return 0

"""`python -m roastcore sweep ...`: presets x a grid x seeds as one set of jobs (roastcore/jobs/sweep.py).

    roastcore sweep --presets tiny_model,micro_model --seeds 3 --data synthetic --epochs 20
    roastcore sweep --presets micro_model --grid lr=1e-3,3e-3 --grid d_model=16,32 --data DIR
    roastcore sweep list | show ID [--json] | cancel ID

Launching prints the sweep id (nothing else on stdout); `--backend ray` sends the jobs to the
Ray cluster at $RAY_ADDRESS (docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from roastcore.cli import CliError
from roastcore.cli.jobs import _fmt_duration, _fmt_time, _guard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="launch, follow, compare and cancel sweeps of training jobs",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", help="comma-separated preset names (launch)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="a setting and its values to sweep over (repeatable)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per setting (default 1)")
    parser.add_argument("--data", help="synthetic, synthetic:N, or a file/folder/zip (launch)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per CPU job (default: 1 for small models)")
    parser.add_argument("--name", help="a name for the sweep (default: from its presets)")
    parser.add_argument("--backend", choices=("local", "ray"), default=None,
                        help="where the jobs run (default: $ROASTCORE_BACKEND, else local)")
    parser.add_argument("--ray-address", default=None,
                        help="the Ray dashboard address (default: $RAY_ADDRESS)")
    parser.add_argument("--force", action="store_true",
                        help="launch a grid over the job limit, or one identical to an active sweep")
    parser.add_argument("--json", action="store_true", help="print the sweep as JSON")
    _add_runs(parser, default=None)
    sub = parser.add_subparsers(dest="sweep_command")
    parser.set_defaults(handler=_launch)

    p = sub.add_parser("list", help="list sweeps")
    p.add_argument("--json", action="store_true")
    _add_runs(p)
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="a sweep's jobs and its results table (mean ± std over seeds)")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    _add_runs(p)
    p.set_defaults(handler=_show)

    p = sub.add_parser("cancel", help="cancel a sweep's queued and running jobs")
    p.add_argument("id")
    p.add_argument("--grace", type=float, default=None,
                   help="seconds between SIGTERM and SIGKILL for local jobs (default 10)")
    _add_runs(p)
    p.set_defaults(handler=_cancel)


def _add_runs(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    parser.add_argument("--runs", default=default, metavar="DIR",
                        help="runs directory (default: $ROASTCORE_RUNS or checkpoints/)")


def _runner(args: argparse.Namespace, backend_name: str | None = "local"):
    # Imported here: every other command starts without loading the job system.
    from roastcore.jobs import JobRunner, default_runs_dir, make_backend

    # Reading needs no backend of its own: each job is followed through the one that runs it.
    backend = make_backend(backend_name, address=getattr(args, "ray_address", None))
    return JobRunner(args.runs or default_runs_dir(), backend=backend)


@_guard
def _launch(args: argparse.Namespace) -> int:
    from roastcore.jobs import launch_sweep  # here: see _runner

    if not args.presets or not args.data:
        raise CliError("launching a sweep needs --presets and --data "
                       "(or use: sweep list | show ID | cancel ID)")
    runner = _runner(args, args.backend)
    presets = [p.strip() for p in args.presets.split(",")]
    sweep = launch_sweep(runner, presets, args.data, grid=args.grid, seeds=args.seeds,
                         epochs=args.epochs, device=args.device, name=args.name,
                         threads=args.threads, force=args.force)
    if args.json:
        print(json.dumps(sweep.to_dict(), indent=2))
    else:
        print(sweep.id)  # the only stdout output: scripts capture it
        print(f"sweep {sweep.id} ({sweep.name}): {len(sweep.jobs)} jobs on {sweep.backend}; "
              f"follow with `roastcore sweep show {sweep.id}`", file=sys.stderr)
    return 0


@_guard
def _list(args: argparse.Namespace) -> int:
    from roastcore.jobs import list_sweeps  # here: see _runner

    sweeps = list_sweeps(_runner(args))
    if args.json:
        print(json.dumps([s.to_dict(with_jobs=False) for s in sweeps], indent=2))
        return 0
    if not sweeps:
        print("no sweeps")
        return 0
    rows = [("ID", "STATE", "JOBS", "BACKEND", "CREATED", "NAME")]
    for s in sweeps:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(s.counts.items()))
        rows.append((s.id, s.state, counts, s.backend, _fmt_time(s.created_at), s.name))
    _print_table(rows)
    return 0


def _num(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + ("" if std is None else f"±{std:.{digits}f}")


@_guard
def _show(args: argparse.Namespace) -> int:
    from roastcore.jobs import NOT_SCORED, get_sweep, sweep_runs, sweep_table  # here: see _runner

    sweep = get_sweep(_runner(args), args.id)
    runs = sweep_runs(sweep)
    table = sweep_table(runs)
    if args.json:
        print(json.dumps({"sweep": sweep.to_dict(), "table": table, "runs": runs}, indent=2))
        return 0
    counts = ", ".join(f"{n} {state}" for state, n in sorted(sweep.counts.items()))
    print(f"sweep {sweep.id}  {sweep.name}")
    print(f"state {sweep.state} ({counts}); backend {sweep.backend}; "
          f"created {_fmt_time(sweep.created_at)}")
    print()
    header = ("PRESET / SETTING", "SCORED", "TF MAE", "PERSIST", "FREE MAE", "ALIGNED kNN",
              "FINISH", "PHYSICS %", "TIME s")
    rows: list[tuple[str, ...]] = [header]
    for r in table:
        scored = f"{r['n_scored']}/{r['n_runs']}"
        time_s = _num(r["time_s_mean"], r["time_s_std"], 0)
        if r["status"] == NOT_SCORED:
            rows.append((r["label"], scored, NOT_SCORED, "", "", "", "", "", time_s))
            continue
        rows.append((r["label"], scored, _num(r["tf_mae_f_mean"], r["tf_mae_f_std"]),
                     _num(r["persistence_mae_f_mean"], None),
                     _num(r["free_mae_f_mean"], r["free_mae_f_std"]),
                     _num(r["aligned_knn_mae_f_mean"], None),
                     _num(r["finish_mae_f_mean"], r["finish_mae_f_std"]),
                     _num(r["physics_valid_pct_mean"], r["physics_valid_pct_std"], 0), time_s))
    _print_table(rows)
    print("(mean ± std over seeds, °F; persistence and the aligned kNN are scored on the same "
          "validation roasts as each run)")
    print()
    rows = [("JOB", "STATE", "PRESET / SETTING", "SEED", "DURATION", "VERDICT / REASON")]
    for run, job in zip(runs, sweep.jobs, strict=True):
        note = run["verdict"] or (run["reason"] or "").split("\n")[0][:60] or (
            NOT_SCORED if job.is_finished else "")
        rows.append((job.id, job.state, run["label"], str(job.seed), _fmt_duration(job.duration_s),
                     note))
    _print_table(rows)
    return 0


@_guard
def _cancel(args: argparse.Namespace) -> int:
    from roastcore.jobs import cancel_sweep  # here: see _runner

    sweep = cancel_sweep(_runner(args), args.id, grace_s=args.grace)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(sweep.counts.items()))
    print(f"{sweep.id} {sweep.state} ({counts})")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


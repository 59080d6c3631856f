"""`python -m roastcore jobs ...`: background training jobs (see roastcore/jobs/)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from roastcore.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jobs", help="submit, watch and cancel background training jobs",
        description="Background training jobs, stored in RUNS/jobs.sqlite3. RUNS defaults to "
                    "checkpoints/ (env ROASTCORE_RUNS or --runs override it).",
    )
    _add_runs(parser, default=None)
    sub = parser.add_subparsers(dest="jobs_command", required=True)

    p = sub.add_parser("submit", help="queue a training job; prints its id")
    p.add_argument("--preset", required=True, help="experiment preset, e.g. micro_model")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--data", required=True, help="synthetic, synthetic:N, or a file/folder/zip")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for a CPU job (default: 1 for small models)")
    p.add_argument("--backend", choices=("local", "ray"), default=None,
                   help="where it runs (default: $ROASTCORE_BACKEND, else local)")
    p.add_argument("--force", action="store_true",
                   help="submit even if an identical job is queued or running")
    _add_runs(p)
    p.set_defaults(handler=_submit)

    p = sub.add_parser("list", help="list jobs")
    p.add_argument("--json", action="store_true", help="print a JSON array of jobs")
    _add_runs(p)
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="show one job and its progress")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    _add_runs(p)
    p.set_defaults(handler=_show)

    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("id")
    p.add_argument("--grace", type=float, default=None,
                   help="seconds between SIGTERM and SIGKILL (default 10)")
    _add_runs(p)
    p.set_defaults(handler=_cancel)

    p = sub.add_parser("logs", help="print the end of a job's log")
    p.add_argument("id")
    p.add_argument("--tail", type=int, default=50, help="lines to print (0 = all)")
    _add_runs(p)
    p.set_defaults(handler=_logs)

    p = sub.add_parser("delete", help="delete a finished job and its run directory")
    p.add_argument("id")
    _add_runs(p)
    p.set_defaults(handler=_delete)

    # Internal: the per-job supervisor and the runs directory's watchdog (not for users).
    p = sub.add_parser("_supervise")
    p.add_argument("id")
    _add_limits(p)
    p.set_defaults(handler=_supervise)

    p = sub.add_parser("_watchdog")
    _add_limits(p)
    p.set_defaults(handler=_watchdog)

    # Internal: the Ray backend's storage check, run as a Ray job on the cluster.
    p = sub.add_parser("_ray_check")
    p.add_argument("expect", help="JSON {path: expected text or ''}")
    p.set_defaults(handler=_ray_check)


def _add_limits(parser: argparse.ArgumentParser) -> None:
    """The limits a runner hands to the processes that start jobs after it (Limits.to_args)."""
    parser.add_argument("--grace", type=float, default=10.0)
    for name in ("cpu-threads", "gpus", "jobs-per-gpu", "max-cpu-jobs", "max-gpu-jobs",
                 "max-sweep-jobs"):
        parser.add_argument(f"--{name}", type=int, default=None)
    parser.add_argument("--gpu-mem-mb", type=float, default=None)
    _add_runs(parser)


def _limits(args: argparse.Namespace):
    from roastcore.jobs import Limits, default_runs_dir  # here: see _runner

    names = ("cpu_threads", "gpus", "jobs_per_gpu", "gpu_mem_mb", "max_cpu_jobs",
             "max_gpu_jobs", "max_sweep_jobs")
    return Limits.resolve(args.runs or default_runs_dir(), **{n: getattr(args, n) for n in names})


def _add_runs(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    # On both the `jobs` parser and each subcommand: SUPPRESS keeps a value given before the
    # subcommand from being reset by the subparser's default.
    parser.add_argument("--runs", default=default, metavar="DIR",
                        help="runs directory (default: $ROASTCORE_RUNS or checkpoints/)")


def _runner(args: argparse.Namespace, backend: str | None = "local"):
    # Imported here, as below: every other command starts without loading the job system.
    from roastcore.jobs import JobError, JobRunner, default_runs_dir, make_backend

    try:
        # Reading needs no backend of its own: each job is followed through the one running it.
        return JobRunner(args.runs or default_runs_dir(), backend=make_backend(backend))
    except JobError as exc:
        raise CliError(str(exc)) from exc


def _guard(func):
    """Turn JobError into CliError (a message, exit code 2)."""

    def wrapper(args: argparse.Namespace) -> int:
        from roastcore.jobs import JobError  # here: see _runner

        try:
            return func(args)
        except JobError as exc:
            raise CliError(str(exc)) from exc

    wrapper.__name__ = func.__name__
    return wrapper


def _fmt_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@_guard
def _submit(args: argparse.Namespace) -> int:
    runner = _runner(args, args.backend)
    job = runner.submit(args.preset, args.overrides, args.data, device=args.device,
                        epochs=args.epochs, seed=args.seed, force=args.force,
                        threads=args.threads)
    print(job.id)  # the only stdout output: scripts capture it
    return 0


@_guard
def _list(args: argparse.Namespace) -> int:
    jobs = _runner(args).list()
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    header = ("ID", "STATE", "PRESET", "DATA", "DEVICE", "STARTED", "DURATION", "BEST VAL",
              "SWEEP")
    rows = [header]
    for j in jobs:
        best = "-" if j.best_val_loss is None else f"{j.best_val_loss:.4g} @{j.best_epoch}"
        rows.append((j.id, j.state, j.preset, j.data if len(j.data) < 30 else "…" + j.data[-29:],
                     j.device_used or j.device_assigned or j.device_requested,
                     _fmt_time(j.started_at), _fmt_duration(j.duration_s), best,
                     j.sweep_id or "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


@_guard
def _show(args: argparse.Namespace) -> int:
    runner = _runner(args)
    job = runner.get(args.id)
    progress = runner.progress(job.id)
    if args.json:
        print(json.dumps({"job": job.to_dict(), "progress": progress.to_dict()}, indent=2))
        return 0
    info = job.to_dict()
    for key in ("started_at", "ended_at", "created_at", "heartbeat_at", "cancel_requested_at"):
        info[key] = _fmt_time(info[key])
    info["duration_s"] = _fmt_duration(info["duration_s"])
    info["overrides"] = json.dumps(info["overrides"])
    info["result"] = json.dumps(info["result"]) if info["result"] else None
    reason = info.pop("reason")
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.ljust(width)}  {'-' if value is None else value}")
    p = progress
    print(f"{'progress'.ljust(width)}  epoch {p.epoch if p.epoch is not None else '-'}"
          f"/{p.epochs or '?'}  train {_num(p.train_loss)}  val {_num(p.val_loss)}  "
          f"lr {_num(p.lr)}  tf {_num(p.tf_ratio)}  elapsed {_fmt_duration(p.elapsed_s)}  "
          f"eta {_fmt_duration(p.eta_s)}{'  STALLED' if p.stalled else ''}")
    if reason:
        print(f"{'reason'.ljust(width)}  {reason}")
    return 0


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@_guard
def _cancel(args: argparse.Namespace) -> int:
    job = _runner(args).cancel(args.id, grace_s=args.grace)
    print(f"{job.id} {job.state}")
    return 0


@_guard
def _logs(args: argparse.Namespace) -> int:
    text = _runner(args).logs(args.id, tail=args.tail)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


@_guard
def _delete(args: argparse.Namespace) -> int:
    runner = _runner(args)
    job = runner.get(args.id)
    runner.delete(job.id)
    print(f"deleted {job.id} ({job.run_dir})")
    return 0


@_guard
def _supervise(args: argparse.Namespace) -> int:
    from roastcore.jobs import default_runs_dir, supervise  # here: see _runner

    return supervise(args.runs or default_runs_dir(), args.id, grace_s=args.grace,
                     limits=_limits(args))


@_guard
def _watchdog(args: argparse.Namespace) -> int:
    from roastcore.jobs import default_runs_dir, watch  # here: see _runner

    return watch(args.runs or default_runs_dir(), grace_s=args.grace, limits=_limits(args))


def _ray_check(args: argparse.Namespace) -> int:
    from roastcore.jobs.ray_backend import check_here  # here: imports ray, on the cluster only

    print("ROASTCORE_CHECK " + json.dumps(check_here(json.loads(args.expect))), flush=True)
    return 0

"""The recovery suite as one sweep: one job at a time, packed on this machine, and on Ray.

    python benchmarks/bench_sweep.py [--seeds 2] [--epochs 2] [--data synthetic:60]
                                     [--modes sequential,packed,ray]

The five recovery presets (tiny_model, micro_model, low_lr, high_dropout, combined_fix) x seeds,
short epochs, launched with `launch_sweep` and timed from launch until the store says every job
ended, in three modes measured in one run:
  sequential  one slot (max_cpu_jobs=1), each job on every core's threads: the old behaviour
  packed      slots sized by resources: each small job declares one thread, cpu_count at once
  ray         a local Ray head (LocalRayCluster, num_cpus=cpu_count) and RayJobsBackend; the
              head's start-up is timed apart, the storage check is inside the wall time
Prints a Markdown table for BENCHMARKS.md with the machine and its load average.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from roastcore.jobs import (
    SUCCEEDED,
    JobRunner,
    Limits,
    RayJobsBackend,
    get_sweep,
    launch_sweep,
)
from roastcore.jobs.ray_local import LocalRayCluster, ray_available

SUITE = ["tiny_model", "micro_model", "low_lr", "high_dropout", "combined_fix"]
REPO_ROOT = Path(__file__).resolve().parents[1]


def run_sweep(runner: JobRunner, args: argparse.Namespace, threads: int | None) -> dict:
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    sweep = launch_sweep(runner, SUITE, args.data, seeds=args.seeds, epochs=args.epochs,
                         device="cpu", threads=threads, force=True, name="bench")
    launched = time.perf_counter() - start
    while (sweep := get_sweep(runner, sweep.id)).state != "finished":
        time.sleep(0.5)
    wall = time.perf_counter() - start
    durations = [j.duration_s for j in sweep.jobs if j.duration_s is not None]
    return {"wall_s": wall, "launch_s": launched, "jobs": len(sweep.jobs),
            "succeeded": sum(j.state == SUCCEEDED for j in sweep.jobs),
            "job_s_mean": statistics.fmean(durations), "job_s_sum": sum(durations),
            "threads": sorted({j.threads for j in sweep.jobs}),
            "load": (load0 + os.getloadavg()[0]) / 2,
            "reasons": [j.reason for j in sweep.jobs if j.state != SUCCEEDED]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data", default="synthetic:60")
    parser.add_argument("--modes", default="sequential,packed,ray")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for mode in modes:
            runs = Path(tmp) / mode
            print(f"{mode} ...", file=sys.stderr, flush=True)
            if mode == "sequential":
                runner = JobRunner(runs, limits=Limits(cpu_threads=cores, max_cpu_jobs=1))
                results[mode] = run_sweep(runner, args, threads=cores)
            elif mode == "packed":
                runner = JobRunner(runs, limits=Limits(cpu_threads=cores))
                results[mode] = run_sweep(runner, args, threads=None)
            elif mode == "ray":
                if not ray_available():
                    print("ray is not installed; skipping", file=sys.stderr)
                    continue
                started = time.perf_counter()
                path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH"))
                                       if p)
                os.environ.setdefault("ROASTCORE_RAY_PYTHON", sys.executable)
                with LocalRayCluster(num_cpus=cores, env={"PYTHONPATH": path}) as cluster:
                    head_s = time.perf_counter() - started
                    runner = JobRunner(runs, backend=RayJobsBackend(cluster.address))
                    results[mode] = {**run_sweep(runner, args, threads=None), "head_s": head_s}
            else:
                parser.error(f"unknown mode {mode!r}")
            r = results[mode]
            print(f"  {r['wall_s']:.1f} s, {r['succeeded']}/{r['jobs']} succeeded, "
                  f"load {r['load']:.1f}", file=sys.stderr, flush=True)

    base = results.get("sequential", {}).get("wall_s")
    print(f"\nMachine: {platform.machine()}, {cores} cores, Python {platform.python_version()}; "
          f"{len(SUITE)} presets x {args.seeds} seeds, {args.epochs} epochs on {args.data}.\n")
    print("| mode | threads per job | wall | launch | mean job | speed-up over sequential "
          "| load avg | succeeded |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, r in results.items():
        ratio = "-" if not base else f"{base / r['wall_s']:.2f}x"
        extra = f" (+ {r['head_s']:.0f} s head start)" if "head_s" in r else ""
        print(f"| {mode} | {','.join(map(str, r['threads']))} | {r['wall_s']:.1f} s{extra} "
              f"| {r['launch_s']:.1f} s | {r['job_s_mean']:.1f} s | {ratio} | {r['load']:.1f} "
              f"| {r['succeeded']}/{r['jobs']} |")
    for mode, r in results.items():
        for reason in r["reasons"]:
            print(f"{mode}: {reason}", file=sys.stderr)
    target = 0.8 * cores
    if base and "packed" in results:
        ok = base / results["packed"]["wall_s"] >= target
        print(f"\npacked over sequential: target >= {target:.1f}x: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

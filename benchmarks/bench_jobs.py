"""Overhead of a background job over a direct `roastcore train` run (same tiny config).

    python benchmarks/bench_jobs.py [--repeats 5] [--epochs 2] [--data synthetic:12]

Measures, alternating the two so machine noise hits both alike:
  direct  wall time of `python -m roastcore train ...` as a plain subprocess
  job     wall time from JobRunner.submit() until the store says `succeeded`
          (polling the store's SQLite file every 50 ms)
CPU time (user+sys of the whole process tree, which machine load does not inflate the way it
inflates wall time) for both, and the store's own costs: submit() with nothing to launch, list() over 200 jobs.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roastcore.jobs import FINAL_STATES, SUCCEEDED, JobRunner

PRESET = "micro_model"
OVERRIDES = {"d_model": 16, "n_layers": 1, "d_ff": 32, "step_s": 5}  # as in tests/test_jobs.py


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def direct_run(out: Path, data: str, epochs: int, seed: int) -> tuple[float, float]:
    argv = [sys.executable, "-m", "roastcore", "train", "--preset", PRESET]
    for key, value in OVERRIDES.items():
        argv += ["--set", f"{key}={value}"]
    argv += ["--data", data, "--out", str(out), "--epochs", str(epochs), "--device", "cpu",
             "--seed", str(seed)]
    cpu0, start = children_cpu_s(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, children_cpu_s() - cpu0


def job_run(runs: Path, data: str, epochs: int, seed: int) -> tuple[float, float]:
    runner = JobRunner(runs)
    cpu0, start = children_cpu_s(), time.perf_counter()
    job = runner.submit(PRESET, OVERRIDES, data, device="cpu", epochs=epochs, seed=seed, force=True)
    # Poll the store itself (cheap) rather than get(), whose refresh would compete for the CPU.
    conn = sqlite3.connect(runs / "jobs.sqlite3", timeout=30)
    while conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()[0] not in FINAL_STATES:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    conn.close()
    job = runner.get(job.id)
    if job.state != SUCCEEDED:
        raise SystemExit(f"job {job.id} ended {job.state}: {job.reason}")
    # The supervisor (our child; train is its child) exits right after recording the result;
    # reap it so its CPU time, and its train's, is counted.
    for proc in list(runner.backend._children.values()):
        proc.wait()
    return elapsed, children_cpu_s() - cpu0


def supervisor_startup(runs: Path) -> tuple[float, float]:
    """Wall and CPU seconds for a supervisor to start, open the store and exit (unknown job)."""
    JobRunner(runs, max_cpu_jobs=0)
    walls, cpus = [], []
    for _ in range(3):
        cpu0, start = children_cpu_s(), time.perf_counter()
        subprocess.run([sys.executable, "-m", "roastcore", "jobs", "--runs", str(runs), "_supervise", "none"],
                       check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        cpus.append(children_cpu_s() - cpu0)
    return statistics.median(walls), statistics.median(cpus)


def store_costs(runs: Path, data: str) -> tuple[float, float]:
    runner = JobRunner(runs, max_cpu_jobs=0)  # nothing launches: the store alone
    start = time.perf_counter()
    for seed in range(200):
        runner.submit(PRESET, OVERRIDES, data, device="cpu", epochs=1, seed=1000 + seed)
    submit_ms = (time.perf_counter() - start) / 200 * 1000
    start = time.perf_counter()
    for _ in range(20):
        runner.list()
    list_ms = (time.perf_counter() - start) / 20 * 1000
    for job in runner.list():
        runner.cancel(job.id)
    return submit_ms, list_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data", default="synthetic:12")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        direct_run(tmp_path / "warmup", args.data, args.epochs, 0)  # page cache for torch
        direct, job, direct_cpu, job_cpu = [], [], [], []
        for i in range(args.repeats):
            wall, cpu = direct_run(tmp_path / f"direct{i}", args.data, args.epochs, i)
            direct.append(wall)
            direct_cpu.append(cpu)
            wall, cpu = job_run(tmp_path / "runs", args.data, args.epochs, i)
            job.append(wall)
            job_cpu.append(cpu)
            print(f"repeat {i}: direct {direct[-1]:.2f}s ({direct_cpu[-1]:.2f}s CPU)  "
                  f"job {job[-1]:.2f}s ({job_cpu[-1]:.2f}s CPU)", file=sys.stderr)
        submit_ms, list_ms = store_costs(tmp_path / "store", args.data)
        sup_wall, sup_cpu = supervisor_startup(tmp_path / "store")

    d_med, j_med = statistics.median(direct), statistics.median(job)
    dc_med, jc_med = statistics.median(direct_cpu), statistics.median(job_cpu)
    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    print(f"Machine: {os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, "
          f"config {PRESET} {OVERRIDES}, {args.data}, {args.epochs} epochs, cpu, "
          f"{args.repeats} alternating repeats (median, min-max); load average {load:.1f} at the end.\n")
    print("| measure | time |")
    print("|---|---|")
    print(f"| direct `roastcore train` | {d_med:.2f} s ({min(direct):.2f}-{max(direct):.2f}) |")
    print(f"| job submit -> succeeded | {j_med:.2f} s ({min(job):.2f}-{max(job):.2f}) |")
    print(f"| overhead per job, wall | {j_med - d_med:+.2f} s ({(j_med / d_med - 1) * 100:+.0f}%) |")
    print(f"| direct, CPU (user+sys) | {dc_med:.2f} s |")
    print(f"| job, CPU (train + supervisor) | {jc_med:.2f} s |")
    print(f"| overhead per job, CPU | {jc_med - dc_med:+.2f} s ({(jc_med / dc_med - 1) * 100:+.0f}%) |")
    print(f"| supervisor start-up + exit (the fixed part of the overhead) | {sup_wall:.2f} s wall, {sup_cpu:.2f} s CPU |")
    print(f"| submit() (store only, no launch) | {submit_ms:.1f} ms |")
    print(f"| list() with 200 jobs (incl. refresh) | {list_ms:.1f} ms |")


if __name__ == "__main__":
    main()

"""Sweeps and resource-sized slots: packing, grid expansion, the --force limit, the store's
migration, the results table, and (slow) a packed local sweep of real tiny jobs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from roastcore.jobs import (
    CANCELLED,
    FINAL_STATES,
    NOT_SCORED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobError,
    JobRunner,
    Limits,
    SweepTooLarge,
    cancel_sweep,
    chart_records,
    expand_grid,
    get_sweep,
    launch_sweep,
    list_sweeps,
    plan_starts,
    read_scores,
    sweep_runs,
    sweep_table,
)
from roastcore.jobs.resources import default_threads, demand_for, estimate_gpu_mem_mb

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = {"d_model": 16, "n_layers": 1, "d_ff": 32, "step_s": 5}
DATA = "synthetic:12"


def _job(slot="cpu", threads=1, mem=0.0, requested="auto", assigned=None, name=""):
    return SimpleNamespace(slot=slot, threads=threads, gpu_mem_mb=mem, device_requested=requested,
                           device_assigned=assigned, name=name)


# ---------------------------------------------------------------------------------------------
# Packing (resources.plan_starts)


def test_cpu_jobs_pack_by_their_threads():
    two_cores = Limits(cpu_threads=2)
    queued = [_job(name=str(i)) for i in range(3)]
    assert [j.name for j, _ in plan_starts([], queued, two_cores)] == ["0", "1"]
    box = Limits(cpu_threads=16)
    assert len(plan_starts([], [_job() for _ in range(20)], box)) == 16
    # Beside one running 1-thread job, only one more fits on two cores.
    assert len(plan_starts([_job(assigned="cpu")], queued, two_cores)) == 1
    # A job wanting more threads than exist still runs, alone; nothing starts beside it.
    big = _job(threads=8, name="big")
    assert [(j.name, d) for j, d in plan_starts([], [big, _job()], two_cores)] == [("big", "cpu")]
    assert plan_starts([_job(threads=8, assigned="cpu")], [_job()], two_cores) == []
    # First come, first served: a 2-thread job waiting for room holds back younger small ones.
    assert plan_starts([_job(assigned="cpu")], [_job(threads=2), _job()], two_cores) == []
    # The optional count cap and the "nothing starts" setting.
    assert len(plan_starts([], [_job() for _ in range(5)], Limits(16, max_cpu_jobs=3))) == 3
    assert plan_starts([], [_job()], Limits(16, max_cpu_jobs=0)) == []


def test_gpu_jobs_share_a_gpu_by_memory_and_count():
    limits = Limits(cpu_threads=16, gpus=2, jobs_per_gpu=3, gpu_mem_mb=10_000)
    # 4 GB each: two fit in 90% of 10 GB per GPU, so four of six start, spread over both GPUs.
    starts = plan_starts([], [_job("cuda", mem=4000) for _ in range(6)], limits)
    assert [d for _, d in starts] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    # Small jobs are bounded by the count per GPU instead.
    starts = plan_starts([], [_job("cuda", mem=600) for _ in range(10)], limits)
    assert sorted(d for _, d in starts) == ["cuda:0"] * 3 + ["cuda:1"] * 3
    # Running jobs count; a pinned job waits for its own GPU.
    running = [_job("cuda", mem=4000, assigned="cuda:1") for _ in range(2)]
    assert plan_starts(running, [_job("cuda", mem=1500, requested="cuda:1")], limits) == []
    assert [d for _, d in plan_starts(running, [_job("cuda", mem=600)], limits)] == ["cuda:0"]
    # The first job on an empty GPU always starts, even when its estimate is pessimistic.
    assert len(plan_starts([], [_job("cuda", mem=50_000)], limits)) == 1
    # Unknown GPU memory: only the count bounds a GPU. GPU jobs also hold a CPU thread each.
    unknown = Limits(cpu_threads=16, gpus=1, jobs_per_gpu=4)
    assert len(plan_starts([], [_job("cuda", mem=9e9) for _ in range(6)], unknown)) == 4
    assert len(plan_starts([], [_job("cuda") for _ in range(6)], Limits(2, gpus=1))) == 2
    # GPU and CPU pools queue independently: a waiting GPU job does not block CPU jobs.
    full = [_job("cuda", assigned="cuda:0") for _ in range(3)]
    starts = plan_starts(full, [_job("cuda"), _job()], Limits(16, gpus=1, jobs_per_gpu=3))
    assert [d for _, d in starts] == ["cpu"]


def test_what_a_job_declares():
    from roastcore.experiments import PRESETS

    tiny, big = PRESETS["tiny_model"].experiment, PRESETS["baseline_sinusoidal"].experiment
    gru = PRESETS["recommended"].experiment
    assert default_threads(tiny) == 1 and default_threads(gru) == 1
    assert default_threads(big, Limits(cpu_threads=2)) == 2
    assert default_threads(big, Limits(cpu_threads=16)) == 4
    # GPU memory grows with parameters, batch and length, over the CUDA context.
    base = estimate_gpu_mem_mb(tiny)
    assert 500 < base < estimate_gpu_mem_mb(big)
    wider = tiny.with_overrides({"batch_size": 64})
    longer = tiny.with_overrides({"max_len": 1600})
    assert estimate_gpu_mem_mb(wider) > base and estimate_gpu_mem_mb(longer) > base
    assert demand_for(tiny, "cuda").threads == 1 and demand_for(tiny, "cpu").gpu_mem_mb == 0
    assert demand_for(big, "cpu", threads=3).threads == 3
    with pytest.raises(JobError, match="threads"):
        demand_for(tiny, "cpu", threads=0)


def test_limits_from_defaults_env_and_config_file(tmp_path, monkeypatch):
    for name in ("CPU_THREADS", "GPUS", "JOBS_PER_GPU", "GPU_MEM_MB", "MAX_CPU_JOBS",
                 "MAX_GPU_JOBS", "MAX_SWEEP_JOBS", "JOBS_CONFIG"):
        monkeypatch.delenv(f"ROASTCORE_{name}", raising=False)
    monkeypatch.setenv("ROASTCORE_GPUS", "0")
    default = Limits.resolve(tmp_path)
    assert default.cpu_threads == os.cpu_count() and default.max_sweep_jobs == 200
    (tmp_path / "jobs.config.json").write_text(json.dumps(
        {"cpu_threads": 6, "max_sweep_jobs": 12, "jobs_per_gpu": 2}))
    from_file = Limits.resolve(tmp_path)
    assert (from_file.cpu_threads, from_file.max_sweep_jobs, from_file.jobs_per_gpu) == (6, 12, 2)
    monkeypatch.setenv("ROASTCORE_CPU_THREADS", "3")
    assert Limits.resolve(tmp_path).cpu_threads == 3  # the environment beats the file
    assert Limits.resolve(tmp_path, cpu_threads=5).cpu_threads == 5  # arguments beat both
    monkeypatch.setenv("ROASTCORE_CPU_THREADS", "many")
    with pytest.raises(JobError, match="ROASTCORE_CPU_THREADS"):
        Limits.resolve(tmp_path)
    monkeypatch.delenv("ROASTCORE_CPU_THREADS")
    (tmp_path / "jobs.config.json").write_text(json.dumps({"cpu_thread": 6}))
    with pytest.raises(JobError, match=r"jobs\.config\.json.*cpu_thread"):
        Limits.resolve(tmp_path)
    (tmp_path / "jobs.config.json").write_text("{not json")
    with pytest.raises(JobError, match=r"jobs\.config\.json"):
        Limits.resolve(tmp_path)
    with pytest.raises(JobError, match="jobs_per_gpu"):
        Limits(cpu_threads=2, jobs_per_gpu=0)


# ---------------------------------------------------------------------------------------------
# Grids and the job limit


def test_grid_expansion_and_bad_grids():
    combos = expand_grid(["tiny_model", "micro_model"], ["lr=1e-3,3e-3", "d_model=16,32"], seeds=2)
    assert len(combos) == 2 * 2 * 2 * 2
    # Seeds innermost-last: the first jobs cover every setting once.
    assert [c["seed"] for c in combos[:8]] == [0] * 8 and combos[8]["seed"] == 1
    assert combos[0] == {"preset": "tiny_model", "overrides": {"d_model": 16, "lr": 0.001},
                         "seed": 0}
    assert expand_grid(["micro_model"], None, seeds=[7, 9]) == [
        {"preset": "micro_model", "overrides": {}, "seed": 7},
        {"preset": "micro_model", "overrides": {}, "seed": 9}]
    for presets, grid, seeds, match in (
            ([], None, 1, "presets"), (["a", "a"], None, 1, "twice"),
            (["a"], ["lr"], 1, "key=v1"), (["a"], ["lr=1,"], 1, "empty value"),
            (["a"], ["lr=1", "lr=2"], 1, "given twice"), (["a"], ["lr=1,1"], 1, "value twice"),
            (["a"], ["seed=1,2"], 1, "sweep's own option"), (["a"], None, 0, "seeds")):
        with pytest.raises(JobError, match=match):
            expand_grid(presets, grid, seeds)


def test_a_grid_over_the_limit_needs_force(tmp_path):
    runs = tmp_path / "runs"
    runner = JobRunner(runs, max_cpu_jobs=0)  # nothing starts: the store alone
    grid = ["lr=1e-3,2e-3,3e-3", "dropout=0,0.1,0.2"]
    with pytest.raises(SweepTooLarge, match="27 jobs is more than the limit of 20.*--force"):
        launch_sweep(runner, ["micro_model", "tiny_model", "combined_fix"], DATA, grid=grid,
                     max_jobs=20)
    assert runner.list() == [] and list_sweeps(runner) == []
    sweep = launch_sweep(runner, ["micro_model", "tiny_model", "combined_fix"], DATA, grid=grid,
                         max_jobs=20, force=True)
    assert len(sweep.jobs) == 27 and {j.state for j in sweep.jobs} == {QUEUED}
    assert {j.sweep_id for j in runner.list()} == {sweep.id}

    # The configured default (max_sweep_jobs, here from RUNS/jobs.config.json).
    (runs / "jobs.config.json").write_text(json.dumps({"max_sweep_jobs": 4}))
    configured = JobRunner(runs, max_cpu_jobs=0)
    with pytest.raises(SweepTooLarge, match="6 jobs is more than the limit of 4"):
        launch_sweep(configured, ["micro_model"], DATA, grid=["lr=1e-3,2e-3,3e-3"], seeds=2)


def test_an_identical_active_sweep_is_reused_and_cancel_keeps_finished_runs(tmp_path):
    runner = JobRunner(tmp_path / "runs", max_cpu_jobs=0)
    first = launch_sweep(runner, ["micro_model"], DATA, grid={"lr": [1e-3, 2e-3]}, seeds=2,
                         epochs=2)
    again = launch_sweep(runner, ["micro_model"], DATA, grid={"lr": ["1e-3", "2e-3"]}, seeds=2,
                         epochs=2)
    assert again.id == first.id and len(list_sweeps(runner)) == 1
    other = launch_sweep(runner, ["micro_model"], DATA, grid={"lr": [1e-3, 2e-3]}, seeds=2,
                         epochs=2, force=True)
    assert other.id != first.id

    # One job finished (recorded straight in SQLite), the rest queued: cancel keeps the first.
    done = first.jobs[0]
    conn = sqlite3.connect(runner.db_path)
    with conn:
        conn.execute("UPDATE jobs SET state = 'succeeded', started_at = ?, ended_at = ? "
                     "WHERE id = ?", (time.time() - 5, time.time(), done.id))
    conn.close()
    cancelled = cancel_sweep(runner, first.id[:5])
    assert cancelled.state == CANCELLED and cancelled.cancel_requested_at is not None
    states = {j.id: j.state for j in cancelled.jobs}
    assert states.pop(done.id) == SUCCEEDED and set(states.values()) == {CANCELLED}
    assert {j.state for j in get_sweep(runner, other.id).jobs} == {QUEUED}  # untouched
    with pytest.raises(JobError, match="no sweep"):
        get_sweep(runner, "nope")


def test_an_old_store_is_migrated_in_place(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    old_columns = (
        "id TEXT PRIMARY KEY, state TEXT NOT NULL, preset TEXT NOT NULL, overrides TEXT NOT NULL, "
        "data TEXT NOT NULL, data_fingerprint TEXT NOT NULL, config_key TEXT NOT NULL, "
        "epochs INTEGER, seed INTEGER, device_requested TEXT NOT NULL, slot TEXT NOT NULL, "
        "device_assigned TEXT, device_used TEXT, run_name TEXT NOT NULL, run_dir TEXT NOT NULL, "
        "log_path TEXT NOT NULL, backend TEXT NOT NULL, handle TEXT, pid INTEGER, "
        "pid_start INTEGER, worker_pid INTEGER, created_at REAL NOT NULL, started_at REAL, "
        "ended_at REAL, heartbeat_at REAL, cancel_requested_at REAL, exit_code INTEGER, "
        "best_epoch INTEGER, best_val_loss REAL, reason TEXT, result TEXT")
    conn = sqlite3.connect(runs / "jobs.sqlite3")
    with conn:
        conn.execute(f"CREATE TABLE jobs ({old_columns})")
        conn.execute("INSERT INTO jobs (id, state, preset, overrides, data, data_fingerprint, "
                     "config_key, device_requested, slot, run_name, run_dir, log_path, backend, "
                     "created_at, ended_at) VALUES ('old1', 'succeeded', 'micro_model', '{}', "
                     "'synthetic', 'synthetic', 'k', 'cpu', 'cpu', 'r', ?, ?, 'local', 1, 2)",
                     (str(runs / "r"), str(runs / "r" / "train.log")))
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    runner = JobRunner(runs, max_cpu_jobs=0)
    [old] = runner.list()
    assert old.id == "old1" and old.sweep_id is None and old.threads is None
    sweep = launch_sweep(runner, ["micro_model"], DATA)
    assert [j.sweep_id for j in runner.list()] == [None, sweep.id]
    conn = sqlite3.connect(runs / "jobs.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
    JobRunner(runs, max_cpu_jobs=0)  # opening a migrated store again changes nothing


# ---------------------------------------------------------------------------------------------
# The results table


def _scores(tf, free, persistence=4.0, aligned=3.0, finish=1.5, physics=100.0):
    """RUN_DIR/scores.json as evaluate.score_run writes it (the fields the sweep view reads)."""
    return {"version": 1, "scored_at": "2026-01-01T00:00:00+00:00",
            "summary": {"tf_mae_f": tf, "free_mae_f": free, "verdict": "healthy", "split": "val",
                        "n_profiles": 3},
            "report": {"teacher_forcing": {"mae_f": tf, "persistence_mae_f": persistence},
                       "free_run": {"mae_f": free, "finish_mae_f": finish,
                                    "physics_valid_pct": physics},
                       "baselines": {"aligned_knn": {"mae_f": aligned}}}}


def _capture(capsys, main, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


def test_sweep_table_is_mean_and_std_over_seeds_beside_the_baselines(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("ROASTCORE_MAX_CPU_JOBS", "0")  # the CLI's runner starts nothing either
    runner = JobRunner(tmp_path / "runs", max_cpu_jobs=0)
    sweep = launch_sweep(runner, ["micro_model", "tiny_model"], DATA, seeds=3, epochs=2)
    by = {(j.preset, j.seed): j for j in sweep.jobs}
    figures = {("micro_model", 0): (1.0, 5.0), ("micro_model", 1): (2.0, 7.0),
               ("micro_model", 2): (3.0, 9.0)}
    conn = sqlite3.connect(runner.db_path)
    with conn:
        for (preset, seed), job in by.items():
            state = SUCCEEDED if preset == "micro_model" else (CANCELLED if seed == 0 else QUEUED)
            if state == QUEUED:
                continue
            conn.execute("UPDATE jobs SET state = ?, started_at = ?, ended_at = ? WHERE id = ?",
                         (state, 100.0, 100.0 + 10 * (seed + 1), job.id))
            Path(job.run_dir).mkdir(parents=True)
            if (preset, seed) in figures:
                tf, free = figures[(preset, seed)]
                (Path(job.run_dir) / "scores.json").write_text(json.dumps(_scores(tf, free)))
    conn.close()
    (Path(by[("tiny_model", 0)].run_dir) / "scores.json").write_text("{broken")

    runs = sweep_runs(get_sweep(runner, sweep.id))
    rows = {r["preset"]: r for r in sweep_table(runs)}
    micro = rows["micro_model"]
    assert micro["n_runs"] == 3 and micro["n_scored"] == 3 and micro["status"] is None
    assert micro["tf_mae_f_mean"] == pytest.approx(2.0) and micro["tf_mae_f_std"] == pytest.approx(1.0)
    assert micro["free_mae_f_mean"] == pytest.approx(7.0) and micro["free_mae_f_std"] == pytest.approx(2.0)
    assert micro["persistence_mae_f_mean"] == 4.0 and micro["aligned_knn_mae_f_mean"] == 3.0
    assert micro["finish_mae_f_mean"] == 1.5 and micro["physics_valid_pct_mean"] == 100.0
    assert micro["time_s_mean"] == pytest.approx(20.0) and micro["verdicts"] == ["healthy"]
    tiny = rows["tiny_model"]  # cancelled (unreadable scores) and queued: nothing to average
    assert tiny["status"] == NOT_SCORED and tiny["n_scored"] == 0 and tiny["tf_mae_f_mean"] is None
    assert tiny["states"] == {CANCELLED: 1, QUEUED: 2}
    assert read_scores(by[("tiny_model", 1)].run_dir) is None  # no run directory at all

    records = chart_records(runs)
    assert {r["job_id"] for r in records} == {by[("micro_model", s)].id for s in range(3)}
    assert {r["metric"] for r in records} == {"tf_mae_f", "free_mae_f", "finish_mae_f",
                                              "physics_valid_pct", "time_s"}

    # The CLI prints the same table: mean ± std over seeds, or "not scored yet".
    from roastcore.cli import main

    shown = _capture(capsys, main, ["sweep", "show", sweep.id, "--runs", str(runner.runs_dir)])
    assert "2.00±1.00" in shown and "7.00±2.00" in shown and NOT_SCORED in shown


@pytest.mark.slow  # starts CLI processes (nothing trains: max_cpu_jobs 0)
def test_the_sweep_cli_launches_lists_shows_and_cancels(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "jobs.config.json").write_text(json.dumps({"max_sweep_jobs": 4, "max_cpu_jobs": 0}))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "roastcore", "sweep", *args, "--runs",
                               str(runs)], capture_output=True, text=True, timeout=120,
                              cwd=REPO_ROOT)

    launch = ["--presets", "micro_model", "--grid", "lr=1e-3,2e-3,3e-3", "--seeds", "2",
              "--data", DATA, "--epochs", "2", "--name", "lr scan"]
    refused = cli(*launch)
    assert refused.returncode == 2 and refused.stdout == "" and "Traceback" not in refused.stderr
    assert "6 jobs is more than the limit of 4" in refused.stderr and "--force" in refused.stderr
    forced = cli(*launch, "--force")
    assert forced.returncode == 0, forced.stderr
    sweep_id = forced.stdout.strip()
    assert forced.stdout == sweep_id + "\n"  # nothing but the id on stdout

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["id"] == sweep_id and entry["name"] == "lr scan"
    assert entry["counts"] == {QUEUED: 6} and entry["spec"]["grid"] == {"lr": [1e-3, 2e-3, 3e-3]}
    shown = cli("show", sweep_id[:6])
    assert shown.returncode == 0 and "PRESET / SETTING" in shown.stdout
    assert "micro_model lr=0.001" in shown.stdout and NOT_SCORED in shown.stdout
    cancelled = cli("cancel", sweep_id)
    assert cancelled.returncode == 0 and cancelled.stdout.startswith(f"{sweep_id} cancelled")
    missing = cli("show", "nope")
    assert missing.returncode == 2 and "no sweep" in missing.stderr
    bare = cli("--presets", "micro_model")
    assert bare.returncode == 2 and "--data" in bare.stderr


# ---------------------------------------------------------------------------------------------
# A real packed sweep on this machine


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.mark.slow
def test_two_cores_run_two_tiny_jobs_at_once_on_one_thread_each(tmp_path):
    runner = JobRunner(tmp_path / "runs", limits=Limits(cpu_threads=2))
    sweep = launch_sweep(runner, ["micro_model"], DATA, grid={"d_model": [16]}, seeds=3,
                         epochs=3, device="cpu")
    assert [j.threads for j in sweep.jobs] == [1, 1, 1]
    assert [j.state for j in sweep.jobs] == [RUNNING, RUNNING, QUEUED]
    usage = runner.slot_usage()
    assert usage["cpu"]["threads_used"] == 2 and usage["cpu"]["threads_free"] == 0
    assert usage["queued"] == 1
    # Each train process runs on the one thread its job declared.
    worker = _wait(lambda: runner.get(sweep.jobs[0].id).worker_pid, 60, "a train process")
    assert _environ(worker)["OMP_NUM_THREADS"] == "1"

    done = _wait(lambda: (s := get_sweep(runner, sweep.id)).state == "finished" and s, 240,
                 "the sweep")
    assert [j.state for j in done.jobs] == [SUCCEEDED] * 3, [j.reason for j in done.jobs]
    first, second, third = sorted(done.jobs, key=lambda j: j.started_at)
    assert second.started_at < first.ended_at, "two jobs should have run at once"
    assert third.started_at >= min(first.ended_at, second.ended_at) - 0.5
    rows = sweep_table(sweep_runs(done))
    assert len(rows) == 1 and rows[0]["n_runs"] == 3 and rows[0]["time_s_mean"] > 0
    assert all(j.state in FINAL_STATES for j in runner.list())

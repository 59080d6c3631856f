"""RayJobsBackend against a real local Ray cluster (no mocks): a head with its job server on
127.0.0.1 and 2 CPUs (ray_local.LocalRayCluster), started once for this module and stopped
after it. Skipped when ray is not installed. The cluster tests take about two minutes together on
an idle 2-core machine."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roastcore.jobs import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobError,
    JobRunner,
    RayJobsBackend,
    cancel_sweep,
    get_sweep,
    launch_sweep,
    sweep_runs,
)
from roastcore.jobs.ray_local import LocalRayCluster, free_port, ray_available

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESET = "micro_model"
TINY = {"d_model": 16, "n_layers": 1, "d_ff": 32, "step_s": 5}
DATA = "synthetic:12"
LONG_DATA, LONG_EPOCHS = "synthetic:24", 400  # long enough to cancel mid-run


# Module scope: only this module uses the head, and an idle head still takes CPU from the
# tests that follow it in a full run.
@pytest.fixture(scope="module")
def ray_cluster():
    if not ray_available():
        pytest.skip("ray is not installed (pip install 'ray[default]')")
    # The cluster's jobs import this checkout's roastcore, as a cluster's nodes would theirs.
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    cluster = LocalRayCluster(num_cpus=2, env={"PYTHONPATH": path})
    # Jobs run this interpreter (a cluster's nodes would name theirs the same way).
    before = os.environ.get("ROASTCORE_RAY_PYTHON")
    os.environ["ROASTCORE_RAY_PYTHON"] = sys.executable
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        if before is None:
            os.environ.pop("ROASTCORE_RAY_PYTHON", None)
        else:
            os.environ["ROASTCORE_RAY_PYTHON"] = before


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    # One runs directory for the module: the storage check runs once, then is cached.
    return tmp_path_factory.mktemp("ray") / "runs"


def _runner(runs: Path, cluster: LocalRayCluster) -> JobRunner:
    return JobRunner(runs, backend=RayJobsBackend(cluster.address))


def _wait(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _ray_statuses(cluster: LocalRayCluster) -> dict[str, str]:
    """What the cluster itself says, straight from the Jobs API (no runner involved)."""
    from ray.job_submission import JobSubmissionClient

    jobs = JobSubmissionClient(cluster.address).list_jobs()
    return {j.submission_id: str(j.status.value) for j in jobs if j.submission_id}


def _cli(*args: str, runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "roastcore", *args, "--runs", str(runs)],
                          capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)


# ---------------------------------------------------------------------------------------------
# No cluster needed (nor ray itself: the address is refused before ray is imported)


@pytest.mark.slow  # the CLI part starts a process
def test_an_unreachable_ray_address_is_a_clear_error_and_nothing_is_queued(tmp_path):
    runs = tmp_path / "runs"
    dead = f"http://127.0.0.1:{free_port()}"
    runner = JobRunner(runs, backend=RayJobsBackend(dead))
    with pytest.raises(JobError, match=f"cannot reach the Ray cluster at {dead}"):
        launch_sweep(runner, [PRESET], DATA, seeds=2, epochs=1, device="cpu")
    with pytest.raises(JobError, match="cannot reach"):
        runner.submit(PRESET, TINY, DATA, device="cpu")
    assert runner.list() == []
    conn = sqlite3.connect(runs / "jobs.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 0
    conn.close()

    result = _cli("sweep", "--presets", PRESET, "--data", DATA, "--backend", "ray",
                  "--ray-address", dead, runs=runs)
    assert result.returncode == 2 and result.stdout == ""
    assert "cannot reach the Ray cluster" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(JobError, match="dashboard"):
        RayJobsBackend("ray://head:10001")
    with pytest.raises(JobError, match="RAY_ADDRESS"):
        RayJobsBackend("")


# ---------------------------------------------------------------------------------------------
# A real cluster


@pytest.mark.slow
def test_the_test_cluster_listens_on_loopback_only(ray_cluster):
    ports = ray_cluster.listening()
    # GCS, raylet, object manager, agents and the Jobs API at least; all of them on 127.0.0.1.
    assert len(ports) >= 5, ports
    assert {addr for addr, _ in ports} == {"127.0.0.1"}, sorted(ports)
    assert ("127.0.0.1", int(ray_cluster.address.rsplit(":", 1)[1])) in ports


@pytest.mark.slow
def test_a_sweep_of_three_tiny_jobs_succeeds_on_ray(ray_cluster, runs):
    runner = _runner(runs, ray_cluster)
    sweep = launch_sweep(runner, [PRESET], DATA, grid={"d_model": [16]}, seeds=3, epochs=1,
                         device="cpu")
    assert len(sweep.jobs) == 3 and {j.backend for j in sweep.jobs} == {"ray"}
    assert all(j.handle and j.handle.endswith(f"roastcore-{j.id}") for j in sweep.jobs)
    assert {j.state for j in sweep.jobs} <= {QUEUED, RUNNING}
    # Two CPUs, one per job: Ray runs two and holds the third pending (our `queued`).
    usage = runner.slot_usage()["cluster"]
    assert usage["cpus"] == 2 and usage["running"] + usage["pending"] == 3

    done = _wait(lambda: (s := get_sweep(runner, sweep.id)).state == "finished" and s, 240,
                 "the sweep to finish")
    assert [j.state for j in done.jobs] == [SUCCEEDED] * 3, [j.reason for j in done.jobs]
    for job in done.jobs:
        run_dir = Path(job.run_dir)
        assert (run_dir / "model.safetensors").is_file()
        assert job.result["status"] == SUCCEEDED and job.exit_code == 0
        assert job.device_used == "cpu" and job.device_assigned.startswith("ray@")
        assert job.started_at <= job.ended_at and job.threads == 1
        # Ray's copy of the output is kept in the run directory, result line included.
        assert '"status": "succeeded"' in (run_dir / "train.log").read_text()
    assert {r["state"] for r in sweep_runs(done)} == {SUCCEEDED}
    assert set(_ray_statuses(ray_cluster).values()) >= {"SUCCEEDED"}


@pytest.mark.slow
def test_cancelling_a_ray_sweep_stops_running_and_pending_jobs(ray_cluster, runs):
    runner = _runner(runs, ray_cluster)
    sweep = launch_sweep(runner, [PRESET], LONG_DATA, grid={"d_model": [16]}, seeds=3,
                         epochs=LONG_EPOCHS, device="cpu")
    _wait(lambda: sum(j.state == RUNNING for j in get_sweep(runner, sweep.id).jobs) == 2, 120,
          "two jobs running")
    running = [j for j in get_sweep(runner, sweep.id).jobs if j.state == RUNNING]
    _wait(lambda: all((Path(j.run_dir) / "metrics.jsonl").is_file() for j in running), 120,
          "a first epoch")
    # Logs come live from Ray while the job runs (the entrypoint line names the command).
    assert f"roastcore train --preset {PRESET}" in runner.logs(running[0].id, tail=0)
    cancelled = cancel_sweep(runner, sweep.id)
    assert [j.state for j in cancelled.jobs] == [CANCELLED] * 3, [j.reason for j in cancelled.jobs]
    for job in cancelled.jobs:
        status = _ray_statuses(ray_cluster)[f"roastcore-{job.id}"]
        assert status == "STOPPED"
    for job in running:  # stopped cooperatively: the train command reported, its best kept
        job = runner.get(job.id)
        assert job.result is not None and job.result["status"] == CANCELLED
        assert (Path(job.run_dir) / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_failing_job_and_a_lost_job_end_failed_with_the_reason(ray_cluster, runs, tmp_path):
    runner = _runner(runs, ray_cluster)
    bad = runner.submit(PRESET, TINY, "synthetic:1", device="cpu", epochs=1)  # too few roasts
    lost = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=5)

    # Lose a job the way a dead node loses it: its Ray job supervisor and its process, killed.
    worker = _wait(lambda: _process_with(lost.run_dir), 120, "the lost job's train process")
    supervisor = _parent(worker)
    os.kill(worker, 9)
    os.kill(supervisor, 9)

    failed = _wait(lambda: (j := runner.get(bad.id)).is_finished and j, 120, "the bad job")
    assert failed.state == FAILED and failed.exit_code == 2
    assert "exit code 2" in failed.reason and "need at least 2" in failed.reason
    gone = _wait(lambda: (j := runner.get(lost.id)).is_finished and j, 120, "the lost job")
    assert gone.state == FAILED and "Ray job FAILED" in gone.reason, gone.reason

    # Storage no node sees is named before anything is queued.
    with pytest.raises(JobError, match=r"storage every Ray node sees.*/nowhere/roasts"):
        runner.backend.check_storage(runner.runs_dir, [Path("/nowhere/roasts")])


def _process_with(text: str) -> int | None:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if text.encode() in cmd and b"roastcore train" in cmd:
                return int(entry.name)
    return None


def _parent(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2:].split()[1])


@pytest.mark.slow
def test_the_store_catches_up_after_the_runner_restarts(ray_cluster, runs):
    # The CLI submits and exits: no runner of ours lives while Ray runs the jobs.
    launched = _cli("sweep", "--presets", PRESET, "--grid", "d_model=16", "--seeds", "2",
                    "--epochs", "1", "--data", DATA, "--device", "cpu", "--backend", "ray",
                    "--ray-address", ray_cluster.address, "--name", "restart", runs=runs)
    assert launched.returncode == 0, launched.stderr
    sweep_id = launched.stdout.strip()
    conn = sqlite3.connect(runs / "jobs.sqlite3")
    ids = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE sweep_id = ?", (sweep_id,))]
    conn.close()
    assert len(ids) == 2
    _wait(lambda: all(_ray_statuses(ray_cluster).get(f"roastcore-{i}") == "SUCCEEDED"
                      for i in ids), 180, "Ray to finish both jobs")
    conn = sqlite3.connect(runs / "jobs.sqlite3")
    stale = {r[0] for r in conn.execute("SELECT state FROM jobs WHERE sweep_id = ?", (sweep_id,))}
    conn.close()
    assert stale <= {QUEUED, RUNNING}  # nobody has looked since

    # A new process (with no backend of its own) reads the store and catches up from Ray.
    shown = _cli("sweep", "show", sweep_id, "--json", runs=runs)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["sweep"]["name"] == "restart" and data["sweep"]["state"] == "finished"
    assert [j["state"] for j in data["sweep"]["jobs"]] == [SUCCEEDED, SUCCEEDED]
    assert all(j["ended_at"] >= j["started_at"] for j in data["sweep"]["jobs"])

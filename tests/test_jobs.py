"""Background jobs, end to end: real `roastcore train` processes on tiny synthetic data."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from roastcore import liveness
from roastcore.jobs import (
    CANCELLED,
    DIVERGED,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobError,
    JobNotFound,
    JobRunner,
    data_fingerprint,
    group_members,
    pid_alive,
    process_start_time,
)
from roastcore.jobs.supervisor import DEFAULT_JOB_NICENESS, job_niceness

REPO_ROOT = Path(__file__).resolve().parents[1]

# The smallest model that still trains: a few seconds per job on 2 CPU cores (mostly the
# import of torch).
PRESET = "micro_model"
TINY = {"d_model": 16, "n_layers": 1, "d_ff": 32, "step_s": 5}
TINY_SET = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
DATA = "synthetic:12"
# Long enough to cancel or kill mid-run; the tests never wait for it to finish.
LONG_DATA = "synthetic:24"
LONG_EPOCHS = 400


def _processes_mentioning(text: str) -> list[tuple[int, int, str]]:
    """(pid, pgid, cmdline) of live, non-zombie processes whose command line contains text."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if text in cmdline and fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[2]), cmdline))
    return found


@pytest.fixture
def runs(tmp_path):
    """A runs directory; at teardown no job process may be left behind (killed, then failed)."""
    runs_dir = tmp_path / "runs"
    yield runs_dir
    # Supervisors exit a moment after recording the final state: give them that moment.
    deadline = time.monotonic() + 15
    while _processes_mentioning(str(runs_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = _processes_mentioning(str(runs_dir))
    for _pid, pgid, _cmd in leftovers:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"orphan job processes left behind: {leftovers}"


def _store_state(runs_dir: Path, job_id: str) -> str:
    """Read the state straight from SQLite: no runner refresh, so nothing but the supervisors
    can have advanced the queue."""
    conn = sqlite3.connect(runs_dir / "jobs.sqlite3", timeout=30)
    try:
        return conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    finally:
        conn.close()


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _wait_final(runner: JobRunner, job_id: str, timeout: float = 120.0):
    return _wait(lambda: (j := runner.get(job_id)).is_finished and j, timeout, f"job {job_id} to finish")


def _cli(*args: str, runs_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "roastcore", "jobs", *args, "--runs", str(runs_dir)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )


# ---------------------------------------------------------------------------------------------
# Real training processes


@pytest.mark.slow
def test_three_jobs_run_one_after_another_and_a_fresh_runner_agrees(runs):
    runner = JobRunner(runs, max_cpu_jobs=1)
    jobs = [runner.submit(PRESET, TINY, DATA, device="cpu", epochs=2, seed=seed) for seed in (1, 2, 3)]
    assert [j.state for j in jobs] == [RUNNING, QUEUED, QUEUED]

    # Idempotent: the same config + data while queued/running is the same job...
    assert runner.submit(PRESET, TINY, DATA, device="cpu", epochs=2, seed=1).id == jobs[0].id
    assert runner.submit(PRESET, {k: str(v) for k, v in TINY.items()}, DATA, device="cpu", epochs=2, seed=3).id == jobs[2].id
    # ...unless forced; a queued job is cancelled without ever starting.
    forced = runner.submit(PRESET, TINY, DATA, device="cpu", epochs=2, seed=3, force=True)
    assert forced.id not in {j.id for j in jobs}
    cancelled = runner.cancel(forced.id)
    assert cancelled.state == CANCELLED and cancelled.started_at is None and cancelled.pid is None

    # No runner polls here: the supervisors alone must advance the queue.
    _wait(lambda: all(_store_state(runs, j.id) in FINAL_STATES for j in jobs), 240, "all three jobs")
    done = [runner.get(j.id) for j in jobs]
    assert [j.state for j in done] == [SUCCEEDED] * 3, [j.reason for j in done]
    done.sort(key=lambda j: j.started_at)
    for earlier, later in zip(done, done[1:], strict=False):
        assert earlier.ended_at <= later.started_at, "jobs overlapped with max_cpu_jobs=1"
    for job in done:
        assert job.device_requested == "cpu" and job.device_used == "cpu"
        assert job.best_epoch is not None and job.best_val_loss is not None
        assert job.exit_code == 0 and job.result["status"] == "succeeded"
        run_dir = Path(job.run_dir)
        assert run_dir.parent == runs and (run_dir / "model.safetensors").is_file()
        assert (run_dir / "train.log").is_file()
        rows = runner.metrics(job.id)
        assert len(rows) == 2 and {"epoch", "train_loss", "val_loss", "lr"} <= set(rows[-1])
        progress = runner.progress(job.id)
        assert progress.state == SUCCEEDED and progress.val_loss == pytest.approx(rows[-1]["val_loss"])
        assert progress.train_loss is not None and progress.lr is not None

    # A fresh runner (and the CLI, another process) over the same store sees the same jobs.
    expected = {j.id: j.to_dict() for j in runner.list()}
    for d in expected.values():
        d.pop("duration_s")
    fresh = {j.id: j.to_dict() for j in JobRunner(runs).list()}
    for d in fresh.values():
        d.pop("duration_s")
    assert fresh == expected
    listed = _cli("list", "--json", runs_dir=runs)
    assert listed.returncode == 0, listed.stderr
    assert {d["id"]: d["state"] for d in json.loads(listed.stdout)} == {
        **{j.id: SUCCEEDED for j in jobs}, forced.id: CANCELLED}


@pytest.mark.slow
def test_cancel_keeps_best_checkpoint_and_kills_the_group_and_delete_needs_it_finished(runs, monkeypatch):
    monkeypatch.delenv("ROASTCORE_JOB_NICE")  # the default niceness (tests/conftest.py sets 0)
    runner = JobRunner(runs, grace_s=10)
    job = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=0)
    run_dir = Path(job.run_dir)
    _wait(lambda: (run_dir / "model.safetensors").is_file() and runner.metrics(job.id), 120,
          "the first checkpoint")
    running = runner.get(job.id)
    assert running.state == RUNNING and pid_alive(running.pid) and running.worker_pid
    # The train process runs below the starter's priority, leaving the dashboard responsive.
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, running.worker_pid) == max(mine, DEFAULT_JOB_NICENESS)
    progress = runner.progress(job.id)
    assert progress.state == RUNNING and progress.epoch is not None and not progress.stalled

    with pytest.raises(JobError, match="running; cancel it"):
        runner.delete(job.id)
    assert run_dir.is_dir()

    started = time.monotonic()
    cancelled = runner.cancel(job.id)
    assert cancelled.state == CANCELLED
    assert time.monotonic() - started < 10, "train did not stop cooperatively within the grace"
    assert cancelled.result is not None and cancelled.result["status"] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.killpg(running.pid, 0)  # the whole process group is gone (and reaped)
    assert not pid_alive(running.worker_pid)

    from roastcore.checkpoints import load_run

    loaded = load_run(run_dir, "cpu")
    assert loaded.model is not None

    runner.delete(job.id)
    assert not run_dir.exists()
    with pytest.raises(JobNotFound):
        runner.get(job.id)


@pytest.mark.slow
def test_kill_9_of_worker_or_whole_group_gives_failed_with_log_tail(runs):
    runner = JobRunner(runs, max_cpu_jobs=1)
    first = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=1)
    second = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=2)

    # kill -9 of the train process: its supervisor records the failure and starts the next job.
    worker = _wait(lambda: runner.get(first.id).worker_pid, 60, "the first worker")
    os.kill(worker, signal.SIGKILL)
    failed = _wait_final(runner, first.id)
    assert failed.state == FAILED
    assert "SIGKILL" in failed.reason and "last log lines" in failed.reason
    assert "roastcore train" in failed.reason  # the supervisor's command line, from the log

    # kill -9 of the supervisor and the train process together: nobody reports; the runner
    # notices the dead (zombie or reaped) group when it next reads the store.
    job = _wait(lambda: (j := runner.get(second.id)).worker_pid and j, 60, "the second worker")
    assert job.state == RUNNING
    os.killpg(job.pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(job.worker_pid) and not group_members(job.pid), 10, "the group to die")
    fresh = JobRunner(runs)  # a fresh runner detects it at start (and starts the third job)
    failed = fresh.get(second.id)
    assert failed.state == FAILED
    assert "died without reporting" in failed.reason and "last log lines" in failed.reason

    # SIGTERM to the supervisor alone (not via cancel): it passes it on; the job is cancelled.
    third = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=3)
    job = _wait(lambda: (j := runner.get(third.id)).worker_pid and j, 60, "the third worker")
    os.kill(job.pid, signal.SIGTERM)
    cancelled = _wait_final(runner, third.id)
    assert cancelled.state == CANCELLED and cancelled.cancel_requested_at is not None
    _wait(lambda: not group_members(job.pid), 10, "the third group to exit")


@pytest.mark.slow
def test_diverging_config_via_the_cli(runs):
    submitted = _cli("submit", "--preset", PRESET, *TINY_SET, "--set", "lr=10",
                     "--data", DATA, "--epochs", "5", "--device", "cpu", "--seed", "0", runs_dir=runs)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert submitted.stdout == job_id + "\n"  # nothing but the id on stdout

    job = _wait_final(JobRunner(runs), job_id)
    assert job.state == DIVERGED, job.reason
    assert job.overrides == {**TINY, "lr": 10}
    assert "lower lr" in job.reason or "non-finite" in job.reason  # the trainer's own reason

    shown = _cli("show", job_id, runs_dir=runs)
    assert shown.returncode == 0 and "diverged" in shown.stdout
    logs = _cli("logs", job_id, "--tail", "3", runs_dir=runs)
    assert logs.returncode == 0 and 0 < len(logs.stdout.splitlines()) <= 3
    assert '"diverged"' in _cli("logs", job_id, "--tail", "0", runs_dir=runs).stdout
    deleted = _cli("delete", job_id, runs_dir=runs)
    assert deleted.returncode == 0 and not Path(job.run_dir).exists()
    missing = _cli("show", job_id, runs_dir=runs)
    assert missing.returncode == 2 and "no job" in missing.stderr


# ---------------------------------------------------------------------------------------------
# The store and its guards (no training; max_cpu_jobs=0 keeps jobs queued)


def test_double_submit_from_many_sessions_creates_one_job(runs):
    JobRunner(runs, max_cpu_jobs=0)
    barrier = threading.Barrier(8)
    ids, errors = [], []

    def tab():
        try:
            runner = JobRunner(runs, max_cpu_jobs=0)  # one per "browser tab"
            barrier.wait()
            ids.append(runner.submit(PRESET, TINY, DATA, epochs=2, seed=0).id)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=tab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(ids) == 8 and len(set(ids)) == 1
    runner = JobRunner(runs, max_cpu_jobs=0)
    assert [j.state for j in runner.list()] == [QUEUED]
    with pytest.raises(JobError, match="queued; cancel it"):
        runner.delete(ids[0])
    assert runner.cancel(ids[0]).state == CANCELLED
    assert runner.cancel(ids[0]).state == CANCELLED  # cancelling twice is harmless
    runner.delete(ids[0])
    assert runner.list() == []


def test_bad_input_names_the_field(runs):
    runner = JobRunner(runs, max_cpu_jobs=0)
    with pytest.raises(JobError, match="preset"):
        runner.submit("", {}, DATA)
    with pytest.raises(JobError, match="data"):
        runner.submit(PRESET, {}, "synthetic:zero")
    with pytest.raises(JobError, match="data"):
        runner.submit(PRESET, {}, str(runs / "no-such-folder"))
    with pytest.raises(JobError, match="epochs"):
        runner.submit(PRESET, {}, DATA, epochs=0)
    with pytest.raises(JobError, match="device"):
        runner.submit(PRESET, {}, DATA, device="tpu")
    with pytest.raises(JobError, match="overrides"):
        runner.submit(PRESET, ["lr"], DATA)
    with pytest.raises(JobNotFound):
        runner.get("nope")
    assert runner.list() == []


def test_unwritable_or_full_runs_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(JobError, match="runs directory .* cannot be created"):
        JobRunner(blocker / "runs")
    with pytest.raises(JobError, match="not a directory"):
        JobRunner(blocker)

    runner = JobRunner(tmp_path / "runs", max_cpu_jobs=0, min_free_bytes=1 << 62)
    with pytest.raises(JobError, match="MiB free"):
        runner.submit(PRESET, TINY, DATA)
    assert runner.list() == []

    # The CLI: exit code 2, the reason on stderr, nothing on stdout.
    result = subprocess.run(
        [sys.executable, "-m", "roastcore", "jobs", "--runs", str(blocker / "runs"), "submit",
         "--preset", PRESET, "--data", DATA],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "runs directory" in result.stderr and "Traceback" not in result.stderr


def test_zombies_and_reused_pids_are_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start_time(child.pid)
        assert pid_alive(child.pid, start)
        assert not pid_alive(child.pid, start + 1)  # same pid, different process: reused
        os.kill(child.pid, signal.SIGKILL)
        # Not reaped yet: a zombie, which must count as dead.
        _wait(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z", 5, "zombie")
        assert not pid_alive(child.pid, start) and not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)


def test_data_fingerprint_follows_file_changes(tmp_path):
    folder = tmp_path / "roasts"
    folder.mkdir()
    (folder / "a.alog").write_text("one")
    first = data_fingerprint(str(folder))
    assert data_fingerprint(str(folder)) == first
    (folder / "b.alog").write_text("two")
    second = data_fingerprint(str(folder))
    assert second != first
    os.utime(folder / "b.alog", ns=(1, 1))
    assert data_fingerprint(str(folder)) != second
    assert data_fingerprint("synthetic:12") == "synthetic:12"


def test_cli_runs_option_works_before_or_after_the_subcommand_and_from_env(tmp_path):
    runs_dir = tmp_path / "runs"
    before = subprocess.run([sys.executable, "-m", "roastcore", "jobs", "--runs", str(runs_dir), "list"],
                            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert before.returncode == 0 and (runs_dir / "jobs.sqlite3").is_file()
    env_dir = tmp_path / "env-runs"
    from_env = subprocess.run([sys.executable, "-m", "roastcore", "jobs", "list", "--json"],
                              capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                              env={**os.environ, "ROASTCORE_RUNS": str(env_dir)})
    assert from_env.returncode == 0 and json.loads(from_env.stdout) == []
    assert (env_dir / "jobs.sqlite3").is_file()


def test_refresh_fails_jobs_whose_process_is_gone_reused_or_silent(runs):
    """Crash recovery without training: point running jobs at processes that are not theirs."""
    runner = JobRunner(runs, max_cpu_jobs=0)
    jobs = [runner.submit(PRESET, TINY, DATA, seed=seed) for seed in range(4)]
    me, my_start = os.getpid(), process_start_time(os.getpid())
    backend = runner.backend
    now = time.time()
    handles = {
        # Our own pid but another start time: the pid was reused by an unrelated process.
        jobs[0].id: (backend.make_handle(me, my_start + 1), now),
        # Same host, another boot: everything from before the reboot is gone.
        jobs[1].id: (backend.make_handle(me, my_start).replace(
            f"|{backend._boot}|", "|0ldb00t|"), now),
        # Another host with a fresh heartbeat: cannot check the pid, so it stays running.
        jobs[2].id: ("elsewhere|0ldb00t|1|1", now),
        # Another host, silent for 10 minutes: failed.
        jobs[3].id: ("elsewhere|0ldb00t|1|1", now - 600),
    }
    conn = sqlite3.connect(runs / "jobs.sqlite3", timeout=30)
    with conn:
        for job_id, (handle, beat) in handles.items():
            conn.execute("UPDATE jobs SET state = 'running', started_at = ?, heartbeat_at = ?, "
                         "handle = ? WHERE id = ?", (beat, beat, handle, job_id))
    conn.close()
    Path(jobs[0].run_dir).mkdir()
    Path(jobs[0].log_path).write_text("epoch 1 ...\nCUDA out of memory\n")

    states = {j.id: j for j in JobRunner(runs, max_cpu_jobs=0).list()}
    assert states[jobs[0].id].state == FAILED
    assert "died without reporting" in states[jobs[0].id].reason
    assert "CUDA out of memory" in states[jobs[0].id].reason
    assert states[jobs[1].id].state == FAILED
    assert states[jobs[2].id].state == RUNNING
    assert states[jobs[3].id].state == FAILED and "no heartbeat" in states[jobs[3].id].reason


# ---------------------------------------------------------------------------------------------
# Whatever dies, the queue advances (issue 13, item 5). No runner reads the store in these
# tests once the processes are killed: the surviving processes alone must recover.


def _store_job(runs_dir: Path, job_id: str) -> dict:
    conn = sqlite3.connect(runs_dir / "jobs.sqlite3", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    finally:
        conn.close()


def _watchdog_pid(runs_dir: Path) -> int | None:
    """The pid of the watchdog on duty (it holds the lock file and writes its pid into it)."""
    lock = runs_dir / "jobs.watchdog.lock"
    if not liveness.is_held(lock):
        return None
    text = lock.read_text().split()
    return int(text[0]) if text else None


@pytest.mark.slow
def test_killed_supervisor_leaves_its_train_adopted_and_the_queue_advances(runs):
    runner = JobRunner(runs, max_cpu_jobs=1)
    jobs = [runner.submit(PRESET, TINY, DATA, device="cpu", epochs=3, seed=seed) for seed in (1, 2, 3)]
    first = _wait(lambda: (j := runner.get(jobs[0].id)).worker_pid and j, 60, "the first worker")
    os.kill(first.pid, signal.SIGKILL)  # the supervisor alone; its train process lives on

    # Nobody reads through a runner from here on.
    _wait(lambda: all(_store_state(runs, j.id) in FINAL_STATES for j in jobs), 240,
          "all three jobs to finish with their first supervisor dead")
    done = [_store_job(runs, j.id) for j in jobs]
    assert [d["state"] for d in done] == [SUCCEEDED] * 3, [d["reason"] for d in done]
    adopted = done[0]
    assert json.loads(adopted["result"])["status"] == SUCCEEDED  # recorded from the train's log
    # It ended when its train process wrote its result, not when someone looked.
    assert abs(adopted["ended_at"] - Path(adopted["log_path"]).stat().st_mtime) < 3
    for earlier, later in zip(done, done[1:], strict=False):
        assert earlier["ended_at"] <= later["started_at"], "jobs overlapped with max_cpu_jobs=1"


@pytest.mark.slow
def test_killed_group_fails_within_heartbeats_and_its_duration_stops_at_death(runs):
    runner = JobRunner(runs, max_cpu_jobs=1)
    first = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=1)
    second = runner.submit(PRESET, TINY, DATA, device="cpu", epochs=2, seed=2)
    job = _wait(lambda: (j := runner.get(first.id)).worker_pid and j, 60, "the first worker")
    time.sleep(2.5)  # a heartbeat or so, for the processes to settle

    # kill -9 of the whole group (supervisor and train): nobody reports, the watchdog notices.
    killed_at = time.time()
    os.killpg(job.pid, signal.SIGKILL)
    _wait(lambda: _store_state(runs, first.id) == FAILED, 15, "the dead job to be failed")
    noticed = time.time() - killed_at
    failed = _store_job(runs, first.id)
    assert "died without reporting" in failed["reason"]
    assert failed["started_at"] <= failed["ended_at"] <= killed_at + 0.5, \
        "the duration must stop at the death, not at the moment it was noticed"
    assert noticed < 4 * 2.0 + 5, f"noticed only after {noticed:.1f}s"

    # The queue moved on with no reader, and the dead job's duration no longer grows.
    _wait(lambda: _store_state(runs, second.id) in FINAL_STATES, 120, "the queued job")
    assert _store_state(runs, second.id) == SUCCEEDED
    later = runner.get(first.id)
    assert later.duration_s == pytest.approx(failed["ended_at"] - failed["started_at"])


@pytest.mark.slow
def test_a_killed_watchdog_is_replaced_while_jobs_run(runs):
    runner = JobRunner(runs, max_cpu_jobs=1)
    job = runner.submit(PRESET, TINY, LONG_DATA, device="cpu", epochs=LONG_EPOCHS, seed=1)
    watchdog = _wait(lambda: _watchdog_pid(runs), 30, "a watchdog on duty")
    assert _processes_mentioning("_watchdog")  # a process of its own, not a thread
    os.kill(watchdog, signal.SIGKILL)
    # The job's supervisor starts another within a heartbeat or two (no runner reads here).
    _wait(lambda: _watchdog_pid(runs) not in (None, watchdog), 30, "a new watchdog")
    assert runner.cancel(job.id).state == CANCELLED
    # With no job running, the watchdog goes off duty and exits.
    _wait(lambda: _watchdog_pid(runs) is None, 30, "the watchdog to exit")


# ---------------------------------------------------------------------------------------------
# One clear line instead of a traceback (issue 13, item 8)


def _damage(store: Path, keep_header: bool) -> None:
    """Random bytes over the store: all of it, or everything after SQLite's file header."""
    conn = sqlite3.connect(store)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(store.read_bytes())
    start = 100 if keep_header else 0
    data[start:] = random.Random(0).randbytes(len(data) - start)
    store.write_bytes(bytes(data))


def test_a_damaged_store_is_one_error_naming_the_file(tmp_path):
    for keep_header in (False, True):
        runs_dir = tmp_path / f"runs-{keep_header}"
        JobRunner(runs_dir, max_cpu_jobs=0)
        store = runs_dir / "jobs.sqlite3"
        _damage(store, keep_header)
        with pytest.raises(JobError) as caught:
            JobRunner(runs_dir, max_cpu_jobs=0).list()
        message = str(caught.value)
        assert str(store) in message and "move it aside" in message and "\n" not in message

        for name in ("jobs.sqlite3", "jobs.sqlite3-wal", "jobs.sqlite3-shm"):  # as it says
            if (runs_dir / name).exists():
                (runs_dir / name).rename(runs_dir / f"{name}.bad")
        assert JobRunner(runs_dir, max_cpu_jobs=0).list() == []


def test_delete_refuses_a_run_directory_that_is_a_symlink(runs, tmp_path):
    runner = JobRunner(runs, max_cpu_jobs=0)
    job = runner.cancel(runner.submit(PRESET, TINY, DATA).id)
    precious = tmp_path / "elsewhere"
    precious.mkdir()
    (precious / "keep.txt").write_text("not the job's")
    Path(job.run_dir).symlink_to(precious)
    with pytest.raises(JobError, match="symbolic link"):
        runner.delete(job.id)
    assert (precious / "keep.txt").is_file() and runner.get(job.id).state == CANCELLED


@pytest.mark.slow
def test_cli_store_and_delete_errors_are_one_line(runs, tmp_path):
    JobRunner(runs, max_cpu_jobs=0)
    _damage(runs / "jobs.sqlite3", keep_header=True)
    for args in (("list",), ("submit", "--preset", PRESET, "--data", DATA)):
        result = _cli(*args, runs_dir=runs)
        assert result.returncode == 2 and result.stdout == ""
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert str(runs / "jobs.sqlite3") in result.stderr and "move it aside" in result.stderr

    other = tmp_path / "other-runs"
    runner = JobRunner(other, max_cpu_jobs=0)
    job = runner.cancel(runner.submit(PRESET, TINY, DATA).id)
    (tmp_path / "elsewhere").mkdir()
    Path(job.run_dir).symlink_to(tmp_path / "elsewhere")
    result = _cli("delete", job.id, runs_dir=other)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "symbolic link" in result.stderr and (tmp_path / "elsewhere").is_dir()


def test_submit_takes_a_readable_run_name_once(tmp_path):
    runner = JobRunner(tmp_path)
    for bad in ("../etc", "", "a b", ".hidden", "x" * 81):
        with pytest.raises(JobError, match="name"):
            runner.submit("micro_model", {}, "synthetic:8", device="cpu", name=bad)
    (tmp_path / "taken").mkdir()
    with pytest.raises(JobError, match="taken"):
        runner.submit("micro_model", {}, "synthetic:8", device="cpu", name="taken")
    assert runner.list() == []  # nothing queued half-way


def test_job_niceness_reads_the_environment_and_names_a_bad_value(monkeypatch):
    monkeypatch.delenv("ROASTCORE_JOB_NICE", raising=False)
    assert job_niceness() == DEFAULT_JOB_NICENESS
    monkeypatch.setenv("ROASTCORE_JOB_NICE", "0")
    assert job_niceness() == 0
    for bad in ("-3", "20", "low"):
        monkeypatch.setenv("ROASTCORE_JOB_NICE", bad)
        with pytest.raises(ValueError, match=f"ROASTCORE_JOB_NICE='{bad}': expected a whole number from 0 to 19"):
            job_niceness()


def test_a_job_started_by_another_job_does_not_sink_further():
    # The queue moves on from a finishing job's supervisor, itself already at the job level.
    code = ("import os, sys; os.nice(int(sys.argv[1])); from roastcore.jobs.supervisor import lower_priority; "
            "print(lower_priority(), os.getpriority(os.PRIO_PROCESS, 0))")
    env = {k: v for k, v in os.environ.items() if k != "ROASTCORE_JOB_NICE"}
    for start, expected in ((0, DEFAULT_JOB_NICENESS), (DEFAULT_JOB_NICENESS, DEFAULT_JOB_NICENESS), (15, 15)):
        out = subprocess.run([sys.executable, "-c", code, str(start)], capture_output=True, text=True, env=env,
                             cwd=REPO_ROOT, timeout=60, check=True).stdout.split()
        assert out == [str(expected), str(expected)], (start, out)

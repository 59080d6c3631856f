"""The local job processes: one supervisor per job, and one watchdog per runs directory.

`supervise` is the process-group leader of a local job: it runs the train command, heartbeats
into the store, records the outcome and starts the next queued jobs. `watch` keeps the queue
moving when a supervisor is gone: it sweeps the store every heartbeat while jobs run (dead
ones recorded, queued ones started) and exits when none does. Supervisors and runners restart
the watchdog whenever it is missing, so no single death stalls the queue (docs/architecture.md,
"Who advances the queue").
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from roastcore import liveness
from roastcore.jobs.backends import LocalProcessBackend, pid_alive, process_start_time
from roastcore.jobs.outcome import (
    failure_reason,
    float_or_none,
    int_or_none,
    read_final_result,
    read_json,
    result_values,
)
from roastcore.jobs.resources import Limits
from roastcore.jobs.runner import DEFAULT_GRACE_S, WATCHDOG_LOCK, JobRunner
from roastcore.jobs.store import (
    CANCELLED,
    FAILED,
    HEARTBEAT_INTERVAL_S,
    RUNNING,
    STORE_CANCEL_DELAY_S,
)

# Local jobs run at this niceness at least, so that on a small machine a training job takes the
# idle CPU and the dashboard beside it stays responsive. A level, not an increment: a job started
# by another job's supervisor (the queue moving on) must not sink further.
JOB_NICENESS_ENV = "ROASTCORE_JOB_NICE"
DEFAULT_JOB_NICENESS = 10


def job_niceness() -> int:
    """The niceness of local jobs: ROASTCORE_JOB_NICE (0-19; 0 keeps the starter's priority),
    else DEFAULT_JOB_NICENESS."""
    raw = os.environ.get(JOB_NICENESS_ENV, "").strip()
    if not raw:
        return DEFAULT_JOB_NICENESS
    if not (raw.isdigit() and int(raw) <= 19):
        raise ValueError(f"{JOB_NICENESS_ENV}={raw!r}: expected a whole number from 0 to 19")
    return int(raw)


def lower_priority() -> int:
    """Lower this process to job_niceness() unless it is already that low; returns its niceness.
    Children inherit it (Linux sets it per thread, and a thread inherits its creator's)."""
    try:
        level = job_niceness()
    except ValueError as exc:
        _say(f"{exc}; using {DEFAULT_JOB_NICENESS}")
        level = DEFAULT_JOB_NICENESS
    now = os.nice(0)
    return os.nice(level - now) if level > now else now


def _say(message: str) -> None:
    # These processes' stdout is a log file (the job's train.log, or jobs.watchdog.log).
    print(f"[roastcore jobs] {message}", flush=True)


def supervise(runs_dir: str | os.PathLike[str], job_id: str, *, grace_s: float = DEFAULT_GRACE_S,
              limits: Limits | None = None) -> int:
    """Run job `job_id`'s train command, record its outcome, then start queued jobs within
    `limits` (the starting runner's)."""
    lower_priority()  # before the train command starts, which inherits it
    backend = LocalProcessBackend(limits)
    runner = JobRunner(runs_dir, backend=backend, grace_s=grace_s)
    store = runner.store
    me, my_start = os.getpid(), process_start_time(os.getpid())
    handle = backend.make_handle(me, my_start)
    with store.transaction(write=True) as conn:
        job = store.fetch(conn, job_id)
        if job is None or job.state != RUNNING:
            _say(f"job {job_id} is not running ({job.state if job else 'missing'}); nothing to do")
            return 0
        # Record ourselves before the launcher does, so liveness checks never see a gap.
        store.update(conn, job_id, RUNNING, handle=handle, pid=me, pid_start=my_start,
                     heartbeat_at=time.time())
    if job.cancel_requested_at is not None:
        with store.transaction(write=True) as conn:
            store.update(conn, job_id, RUNNING, state=CANCELLED, ended_at=time.time(),
                         reason="cancelled before its process started")
        runner.refresh()
        return 0

    term_at: list[float] = []
    # The group's SIGTERM also reaches the train process, which stops cooperatively; we only
    # note it and keep waiting so we can record the outcome.
    signal.signal(signal.SIGTERM, lambda *_: term_at.append(time.monotonic()))
    argv = runner.train_argv(job)
    _say(f"job {job_id} on {job.device_assigned}: {shlex.join(argv)}")
    try:
        # If we are killed, this child lives on in our process group and is adopted: the
        # watchdog records its result from the log when it ends (docs/architecture.md).
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **runner.train_env(job)})
    except OSError as exc:
        with store.transaction(write=True) as conn:
            store.update(conn, job_id, RUNNING, state=FAILED, ended_at=time.time(),
                         reason=f"failed to start the train command: {exc}")
        runner.refresh()
        return 1
    with store.transaction(write=True) as conn:
        store.update(conn, job_id, RUNNING, worker_pid=child.pid)

    signalled_child = killed = False
    next_beat = 0.0
    while True:
        try:
            returncode = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if term_at and not signalled_child:
            signalled_child = True
            with store.transaction(write=True) as conn:
                flagged = conn.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone()[0]
                if flagged is None:
                    store.update(conn, job_id, RUNNING, cancel_requested_at=time.time())
            if flagged is None:
                # Not a runner's cancel (those flag the store, then signal the whole group):
                # someone signalled us alone, so pass it on. Never a second SIGTERM otherwise:
                # one landing after train restored its handlers would kill it before it reports.
                child.terminate()
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + HEARTBEAT_INTERVAL_S
            with store.transaction(write=True) as conn:
                store.update(conn, job_id, RUNNING, heartbeat_at=time.time())
                flagged = conn.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone()[0]
            if (flagged is not None and not term_at
                    and time.time() - flagged > STORE_CANCEL_DELAY_S):
                # Cancel requested through the store only (a runner on another host): no group
                # signal is coming, so stop the train process ourselves.
                child.terminate()
                signalled_child = True
                term_at.append(time.monotonic())
            runner.ensure_watchdog()  # if it was killed, the next one starts within a beat
        if term_at and not killed and time.monotonic() - term_at[0] > grace_s:
            _say(f"train process ignored SIGTERM for {grace_s:g}s; killing it")
            child.kill()
            killed = True

    result = read_final_result(Path(job.log_path))
    if result is not None:
        values = result_values(result)
    else:
        manifest = read_json(Path(job.run_dir) / "manifest.json") or {}
        if returncode < 0:
            how = f"killed by signal {signal.Signals(-returncode).name}"
        else:
            how = f"exited with code {returncode}"
        cancelled = bool(term_at)
        values = {
            "state": CANCELLED if cancelled else FAILED,
            "ended_at": time.time(),
            "best_epoch": int_or_none(manifest.get("best_epoch")),
            "best_val_loss": float_or_none(manifest.get("best_val_loss")),
            "device_used": manifest.get("device"),
            "reason": failure_reason(f"{'cancelled' if cancelled else 'failed'}: train process "
                                     f"{how} without reporting a result", Path(job.log_path)),
        }
    if values.get("device_used") is None:
        manifest = read_json(Path(job.run_dir) / "manifest.json") or {}
        values["device_used"] = manifest.get("device")
    values["exit_code"] = returncode
    with store.transaction(write=True) as conn:
        store.update(conn, job_id, RUNNING, **values)
    _say(f"job {job_id} {values['state']} (exit code {returncode})")
    # A late cancel must not interrupt starting the next job. (A Python handler, not SIG_IGN:
    # an ignored signal would stay ignored in the processes we launch.)
    signal.signal(signal.SIGTERM, lambda *_: None)
    runner.refresh()
    return 0


def watch(runs_dir: str | os.PathLike[str], *, grace_s: float = DEFAULT_GRACE_S,
          limits: Limits | None = None, interval_s: float = HEARTBEAT_INTERVAL_S) -> int:
    """The runs directory's watchdog: while jobs run here, sweep the store every `interval_s`
    (record jobs whose processes died, start queued ones); exit when none runs. At most one is
    on duty per runs directory (it holds WATCHDOG_LOCK); a second one exits at once."""
    runs = Path(runs_dir).expanduser().absolute()
    # The wait covers a runner that is just probing the marker (it holds it for microseconds).
    marker = liveness.hold(runs / WATCHDOG_LOCK, wait_s=1.0)
    if marker is None:
        return 0
    _say(f"watchdog {os.getpid()} on duty")
    try:
        runner = JobRunner(runs, backend=LocalProcessBackend(limits), grace_s=grace_s)
        while runner.refresh():
            _stop_adopted_cancels(runner)
            time.sleep(interval_s)
    finally:
        marker.release()
    _say(f"watchdog {os.getpid()} off duty: no job runs")
    return 0


def _stop_adopted_cancels(runner: JobRunner) -> None:
    """A cancel flagged only in the store (from another host) is carried out by a job's
    supervisor; when that supervisor is gone and its train process adopted, we do it."""
    with runner.store.transaction() as conn:
        running = runner.store.in_state(conn, RUNNING)
    overdue = STORE_CANCEL_DELAY_S + runner.grace_s + 2 * HEARTBEAT_INTERVAL_S
    for job in running:
        if (job.cancel_requested_at is None or time.time() - job.cancel_requested_at < overdue
                or job.handle is None or job.backend != runner.local.name
                or job.pid is None or pid_alive(job.pid, job.pid_start)):
            continue
        if runner.local.is_alive(job.handle):
            _say(f"job {job.id}: cancel requested, its supervisor is gone; stopping its group")
            runner.local.terminate(job.handle, runner.grace_s)

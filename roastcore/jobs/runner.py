"""JobRunner: submit, list, cancel and delete training jobs, recover dead ones, fill free slots.

Cheap to construct; make one per request if convenient. Every read (`list`, `get`) first runs
`refresh()`: jobs whose processes died without reporting are recorded, queued jobs start while
slots allow, and the runs directory's watchdog is started if jobs run and none is on duty.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from roastcore import liveness
from roastcore.fsutil import read_jsonl
from roastcore.jobs.backends import Backend, LocalProcessBackend
from roastcore.jobs.outcome import (
    JobProgress,
    failure_reason,
    last_sign_of_life,
    read_final_result,
    read_progress,
    result_values,
    tail_text,
)
from roastcore.jobs.ray_backend import RayJobsBackend
from roastcore.jobs.remote import RemoteJobs
from roastcore.jobs.request import (
    check_run_name,
    config_key,
    data_fingerprint,
    format_value,
    normalize_overrides,
    validate_config,
)
from roastcore.jobs.resources import Limits, demand_for, plan_starts, slot_usage
from roastcore.jobs.store import (
    CANCELLED,
    FAILED,
    HEARTBEAT_INTERVAL_S,
    LAUNCH_TIMEOUT_S,
    QUEUED,
    RUNNING,
    STALE_HEARTBEAT_S,
    STORE_CANCEL_DELAY_S,
    STORE_NAME,
    Job,
    JobError,
    JobNotFound,
    JobStore,
    SweepRecord,
)
from roastcore.jobs.tasks import TASK_KINDS, task_argv

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 10.0
DEFAULT_MIN_FREE_BYTES = 50 * 1024 * 1024
# The watchdog (roastcore.jobs.supervisor.watch) holds this flock while on duty.
WATCHDOG_LOCK = "jobs.watchdog.lock"
WATCHDOG_LOG = "jobs.watchdog.log"
BACKENDS = ("local", "ray")


def default_runs_dir() -> Path:
    return Path(os.environ.get("ROASTCORE_RUNS") or "checkpoints")


def make_backend(name: str | None = None, *, address: str | None = None,
                 limits: Limits | None = None) -> Backend:
    """The backend called `name` (default: $ROASTCORE_BACKEND, else local)."""
    chosen = (name or os.environ.get("ROASTCORE_BACKEND") or "local").strip().lower()
    if chosen == "local":
        return LocalProcessBackend(limits)
    if chosen == "ray":
        return RayJobsBackend(address, limits=limits)
    raise JobError(f"backend: expected one of {', '.join(BACKENDS)}, got {chosen!r} "
                   "(from --backend or ROASTCORE_BACKEND)")


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner:
    """Submit, watch, cancel and delete training jobs stored in `runs_dir/jobs.sqlite3`.

    New jobs go to `backend` (default: $ROASTCORE_BACKEND, else local processes); jobs already
    in the store are followed through the backend that runs them, whatever this runner's is.
    Local limits (see resources.Limits) belong to the runner that starts a job and are handed
    to its supervisor (and to the watchdog), which use them to start the next ones.
    """

    def __init__(self, runs_dir: str | os.PathLike[str], backend: Backend | None = None,
                 max_cpu_jobs: int | None = None, max_gpu_jobs: int | None = None, *,
                 limits: Limits | None = None, grace_s: float = DEFAULT_GRACE_S,
                 min_free_bytes: int = DEFAULT_MIN_FREE_BYTES, python: str | None = None):
        self.runs_dir = Path(runs_dir).expanduser().absolute()
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise JobError(f"runs directory {self.runs_dir} is not a directory")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"runs directory {self.runs_dir} cannot be created: {exc}") from exc
        caps = {"max_cpu_jobs": max_cpu_jobs, "max_gpu_jobs": max_gpu_jobs}
        if limits is None:
            limits = Limits.resolve(self.runs_dir, **caps)
        else:
            limits = dataclasses.replace(limits, **{k: v for k, v in caps.items() if v is not None})
        self.backend: Backend = backend or make_backend(limits=limits)
        if not isinstance(self.backend, Backend):
            raise JobError("backend must implement the Backend protocol, "
                           f"got {type(backend).__name__}")
        if isinstance(self.backend, LocalProcessBackend):
            if self.backend._limits is None:
                self.backend._limits = limits
            self.local = self.backend
        else:
            self.local = LocalProcessBackend(limits)  # for the local jobs already in the store
        if isinstance(self.backend, RayJobsBackend) and self.backend._local_limits is None:
            self.backend._local_limits = limits  # sizes GPU shares (jobs_per_gpu, GPU memory)
        self.grace_s = float(grace_s)
        self.min_free_bytes = int(min_free_bytes)
        self.python = python or sys.executable
        self.db_path = self.runs_dir / STORE_NAME
        self.store = JobStore(self.db_path)
        self.store.init()
        self.remote = RemoteJobs(self.store, limits, self.backend)
        self.refresh()

    @property
    def limits(self) -> Limits:
        """This machine's limits for local jobs."""
        return self.local.limits()

    def _resolve_id(self, job_id: str) -> str:
        """Exact id, or a unique prefix of at least 4 characters (handy in the CLI)."""
        if not isinstance(job_id, str) or not job_id:
            raise JobError(f"job id must be a non-empty string, got {job_id!r}")
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                return job_id
            matches = [] if len(job_id) < 4 else [
                r[0] for r in conn.execute(
                    "SELECT id FROM jobs WHERE substr(id, 1, ?) = ?", (len(job_id), job_id))
            ]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise JobError(f"job id {job_id!r} is ambiguous: {', '.join(sorted(matches))}")
        raise JobNotFound(f"no job {job_id!r} in {self.db_path}")

    # ---- public API

    def submit(self, preset: str, overrides: Mapping[str, Any] | list[str] | None, data: str,
               device: str = "auto", epochs: int | None = None, seed: int | None = None,
               force: bool = False, threads: int | None = None, name: str | None = None) -> Job:
        """Queue a training job (and start it if a slot is free).

        Returns the already queued/running identical job (same preset, overrides, epochs, seed
        and data fingerprint) instead of a new one unless `force`. `threads`: the torch threads
        it runs with (default: 1 for small or sequential models, see resources.default_threads).
        `name` names the run directory (letters, digits, '.', '_', '-'; not yet taken in the runs
        directory); default: `<preset>_<time>_<job id>`.
        """
        job = self.prepare(preset, overrides, data, device=device, epochs=epochs, seed=seed,
                           threads=threads, name=name)
        return self.enqueue([job], force=force)[0]

    def prepare(self, preset: str, overrides: Mapping[str, Any] | list[str] | None, data: str,
                device: str = "auto", epochs: int | None = None, seed: int | None = None,
                threads: int | None = None, name: str | None = None) -> Job:
        """A checked, not yet stored job (no id yet): what `enqueue` stores."""
        if name is not None:
            check_run_name(name)
        if not isinstance(preset, str) or not preset.strip():
            raise JobError(f"preset: expected a preset name, got {preset!r}")
        preset = preset.strip()
        overrides_n = normalize_overrides(overrides)
        for key in ("epochs", "seed", "device"):
            if key in overrides_n:
                raise JobError(f"overrides: set {key!r} with the {key}= argument, "
                               "not as an override")
        experiment = validate_config(preset, overrides_n)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                                   or epochs < 1):
            raise JobError(f"epochs: expected a positive integer, got {epochs!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise JobError(f"seed: expected an integer, got {seed!r}")
        slot, device_n = self._resolve_device(device)
        demand = demand_for(experiment, slot, threads, self.limits)
        fingerprint = data_fingerprint(data)
        data_n = data.strip()
        if not data_n.startswith("synthetic"):
            data_n = str(Path(data_n).expanduser().absolute())  # train may run elsewhere (cwd)
        return Job(
            id="", state=QUEUED, preset=preset, overrides=overrides_n, data=data_n,
            data_fingerprint=fingerprint, config_key=config_key(preset, overrides_n, epochs, seed),
            epochs=epochs, seed=seed, device_requested=device_n, slot=slot, device_assigned=None,
            device_used=None, run_name=name or "", run_dir="", log_path="", backend=self.backend.name,
            threads=demand.threads, gpu_mem_mb=demand.gpu_mem_mb or None,
        )

    def enqueue(self, jobs: Sequence[Job], *, force: bool = False,
                sweep: SweepRecord | None = None) -> list[Job]:
        """Store prepared jobs (with `sweep`, if given) in one transaction and hand them to the
        backend: local jobs start while slots allow; a queueing backend (Ray) gets them all now,
        and if it refuses one, nothing stays queued. Identical queued/running jobs are returned
        instead of new ones unless `force`."""
        self.check_runs_dir()
        backend = self.backend
        if isinstance(backend, RayJobsBackend):
            data = {Path(j.data) for j in jobs if not j.data.startswith("synthetic")}
            backend.prepare(self.runs_dir, sorted(data))
        now = time.time()
        out: list[Job] = []
        new: list[Job] = []
        with self.store.transaction(write=True) as conn:
            if sweep is not None:
                self.store.insert_sweep(conn, sweep)
            for proto in jobs:
                if not force:
                    row = conn.execute(
                        "SELECT * FROM jobs WHERE config_key = ? AND data_fingerprint = ? "
                        "AND state IN (?, ?) ORDER BY created_at LIMIT 1",
                        (proto.config_key, proto.data_fingerprint, QUEUED, RUNNING),
                    ).fetchone()
                    if row is not None:
                        log.info("identical job %s is already %s; not submitting again",
                                 row["id"], row["state"])
                        out.append(Job.from_row(row))
                        continue
                job_id = secrets.token_hex(4)
                while conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                    job_id = secrets.token_hex(4)
                safe_preset = "".join(c if c.isalnum() or c in "-_" else "-" for c in proto.preset)
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
                run_name = proto.run_name or f"{safe_preset}_{stamp}_{job_id}"
                if proto.run_name and ((self.runs_dir / run_name).exists() or conn.execute(
                        "SELECT 1 FROM jobs WHERE run_name = ?", (run_name,)).fetchone()):
                    raise JobError(f"name: {run_name!r} is taken in {self.runs_dir}; choose another")
                run_dir = self.runs_dir / run_name
                job = dataclasses.replace(
                    proto, id=job_id, run_name=run_name, run_dir=str(run_dir),
                    log_path=str(run_dir / "train.log"), backend=backend.name, created_at=now,
                    sweep_id=sweep.id if sweep is not None else None)
                self.store.insert(conn, job)
                out.append(job)
                new.append(job)
                log.info("job %s queued: %s", job_id, run_name)
        if backend.queues:
            python = getattr(backend, "python", None)
            commands = [(self.train_argv(j, python), self.train_env(j)) for j in new]
            self.remote.hand_over(backend, new, commands, sweep)
        else:
            self._advance_queue()
        return [self._get_stored(j.id) for j in out]

    def list(self) -> list[Job]:
        self.refresh()
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY created_at, id").fetchall()
        return [Job.from_row(r) for r in rows]

    def get(self, job_id: str) -> Job:
        job_id = self._resolve_id(job_id)
        self.refresh()
        return self._get_stored(job_id)

    def _get_stored(self, job_id: str) -> Job:
        """The stored record without a refresh (for per-job reads right after a list())."""
        job_id = self._resolve_id(job_id)
        with self.store.transaction() as conn:
            job = self.store.fetch(conn, job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in {self.db_path}")
        return job

    def cancel(self, job_id: str, grace_s: float | None = None) -> Job:
        """Cancel a job: a queued one is just marked cancelled; a running one gets SIGTERM on its
        process group (the train process stops cooperatively and keeps its best checkpoint),
        then SIGKILL after `grace_s`. Cancelling a finished job is a no-op. A Ray job is stopped
        through Ray (queued or running) and recorded from what Ray says."""
        job_id = self._resolve_id(job_id)
        grace = self.grace_s if grace_s is None else float(grace_s)
        job = self._get_stored(job_id)
        if job.backend == RayJobsBackend.name:
            self.remote.cancel(job, grace)
            return self._get_stored(job_id)
        now = time.time()
        with self.store.transaction(write=True) as conn:
            job = self.store.fetch(conn, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.state == QUEUED:
                self.store.update(conn, job_id, QUEUED, state=CANCELLED, ended_at=now,
                                  cancel_requested_at=now, reason="cancelled while queued")
                log.info("job %s cancelled while queued", job_id)
                return self.store.fetch(conn, job_id)  # type: ignore[return-value]
            if job.state != RUNNING:
                return job
            # The supervisor reads this (and the grace) to escalate on its own if we go away.
            self.store.update(conn, job_id, RUNNING, cancel_requested_at=now)
        if job.handle and self.local.is_alive(job.handle) is None:
            # Another host: its supervisor sees cancel_requested_at and stops the job itself.
            deadline = time.monotonic() + grace + STORE_CANCEL_DELAY_S + 2 * HEARTBEAT_INTERVAL_S
            while time.monotonic() < deadline and self._get_stored(job_id).state == RUNNING:
                time.sleep(0.2)
            return self._get_stored(job_id)
        if job.handle:
            self.local.terminate(job.handle, grace)
        # If the supervisor recorded the outcome this is a no-op. If it was gone (killed, its
        # train process adopted), the train command's own result line says how it ended.
        result = read_final_result(Path(job.log_path))
        with self.store.transaction(write=True) as conn:
            if result is not None:
                self.store.update(conn, job_id, RUNNING, **result_values(result))
            elif job.handle is None:
                self.store.update(conn, job_id, RUNNING, state=CANCELLED, ended_at=time.time(),
                                  reason="cancelled before its process started")
            else:
                self.store.update(conn, job_id, RUNNING, state=CANCELLED, ended_at=time.time(),
                                  reason="cancelled; process did not report "
                                         f"(stopped after {grace:g}s grace)")
        self._advance_queue()
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its run directory. Refused for queued/running jobs."""
        job_id = self._resolve_id(job_id)
        self.refresh()
        with self.store.transaction(write=True) as conn:
            job = self.store.fetch(conn, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.is_active:
                raise JobError(f"job {job_id} is {job.state}; cancel it before deleting it")
            run_dir = Path(job.run_dir)
            # Never follow a link or a tampered path out of the runs directory.
            if run_dir.is_symlink():
                raise JobError(f"job {job_id}: run directory {run_dir} is a symbolic link (to "
                               f"{os.readlink(run_dir)}); refusing to delete through it: remove "
                               "the link yourself, then delete the job")
            if (run_dir.parent.resolve() != self.runs_dir.resolve()
                    or run_dir.name != job.run_name):
                raise JobError(f"job {job_id}: run directory {run_dir} is not inside "
                               f"{self.runs_dir}; refusing to delete it")
            if run_dir.exists():
                try:
                    shutil.rmtree(run_dir)
                except OSError as exc:
                    raise JobError(f"job {job_id}: cannot delete {run_dir}: {exc}") from exc
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        log.info("job %s deleted with %s", job_id, run_dir)

    def logs(self, job_id: str, tail: int = 50) -> str:
        job = self._get_stored(job_id)
        if job.backend == RayJobsBackend.name and job.is_active and job.handle:
            text = self.remote.backend_for(job.handle).logs(job.handle)  # live, from Ray
            if text is not None:
                lines = text.splitlines()
                return "\n".join(lines if tail <= 0 else lines[-tail:])
        return tail_text(Path(job.log_path), tail)

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        job = self._get_stored(job_id)
        return read_jsonl(Path(job.run_dir) / "metrics.jsonl")

    def progress(self, job_id: str) -> JobProgress:
        return read_progress(self._get_stored(job_id))

    def slot_usage(self) -> dict[str, Any]:
        """Slots in use and free (what the jobs page shows): local CPU threads and GPUs
        (resources.slot_usage) and, for a Ray backend, the cluster's CPUs and GPUs beside the
        jobs of this store it runs or holds pending."""
        with self.store.transaction() as conn:
            running = self.store.in_state(conn, RUNNING)
            queued = self.store.in_state(conn, QUEUED)
        mine = lambda jobs, name: [j for j in jobs if j.backend == name]  # noqa: E731
        usage = slot_usage(mine(running, self.local.name), mine(queued, self.local.name),
                           self.limits)
        usage["backend"] = self.backend.name
        if isinstance(self.backend, RayJobsBackend):
            ray_running, ray_queued = mine(running, "ray"), mine(queued, "ray")
            cluster: dict[str, Any] = {
                "address": self.backend.address, "running": len(ray_running),
                "pending": len(ray_queued),
                "cpus_used": sum(j.threads or 1 for j in ray_running)}
            try:
                capacity = self.backend.limits()
                cluster.update(cpus=capacity.cpu_threads, gpus=capacity.gpus)
            except JobError as exc:
                cluster["error"] = str(exc)
            usage["cluster"] = cluster
        return usage

    def check_runs_dir(self) -> None:
        """Raise JobError unless the runs directory is writable and has min_free_bytes free."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.runs_dir, prefix=".write-test-") as fh:
                fh.write(b"ok")
                fh.flush()
        except OSError as exc:
            raise JobError(f"runs directory {self.runs_dir} is not writable: {exc}") from exc
        free = shutil.disk_usage(self.runs_dir).free
        if free < self.min_free_bytes:
            raise JobError(
                f"runs directory {self.runs_dir} has only {free / 2**20:.1f} MiB free; "
                f"at least {self.min_free_bytes / 2**20:.0f} MiB is needed to start a job"
            )

    def refresh(self) -> int:
        """Record jobs whose processes died without reporting, follow Ray jobs, start queued
        local jobs, and make sure a watchdog is on duty while any run here. Returns how many
        running local jobs this host watches (alive, or being launched); the watchdog stops
        at 0."""
        self.remote.refresh()
        watched = self._detect_dead() + self._advance_queue()
        if watched:
            self.ensure_watchdog()
        return watched

    def ensure_watchdog(self) -> None:
        """Start the runs directory's watchdog (supervisor.watch) unless one is on duty. It
        keeps the queue moving when every other process is gone: see docs/architecture.md."""
        if liveness.is_held(self.runs_dir / WATCHDOG_LOCK):
            return
        try:
            self.local.spawn(self.watchdog_argv(), self.runs_dir / WATCHDOG_LOG)
        except OSError as exc:
            log.warning("cannot start the jobs watchdog: %s", exc)

    # ---- internals

    def _resolve_device(self, device: str) -> tuple[str, str]:
        choices = "expected one of auto, cpu, cuda, cuda:N"
        if not isinstance(device, str) or not device.strip():
            raise JobError(f"device: {choices}; got {device!r}")
        device = device.strip().lower()
        limits = self.backend.limits() if self.backend.queues else self.limits
        if device == "auto":
            return ("cuda" if limits.gpu_slots > 0 else "cpu"), device
        if device == "cpu":
            return "cpu", device
        if device == "cuda" or device.startswith("cuda:"):
            if device != "cuda" and not device[5:].isdigit():
                raise JobError(f"device: expected cuda:N with an integer N, got {device!r}")
            if limits.gpu_slots <= 0:
                raise JobError(f"device: {device!r} requested but no CUDA GPU slots are "
                               "available (no GPU detected, or max_gpu_jobs=0)")
            if device != "cuda" and self.backend.queues:
                raise JobError(f"device: {device!r}: the {self.backend.name} backend places "
                               "jobs itself; ask for cuda")
            if device != "cuda" and int(device[5:]) >= limits.gpus:
                raise JobError(f"device: {device!r} requested but only {limits.gpus} GPU(s) "
                               "are visible")
            return "cuda", device
        raise JobError(f"device: {choices}; got {device!r}")

    def train_argv(self, job: Job, python: str | None = None) -> list[str]:
        if job.preset in TASK_KINDS:  # a scoring or study job (jobs/tasks.py), not a training
            return task_argv(job, python or self.python)
        argv = [python or self.python, "-m", "roastcore", "train", "--preset", job.preset]
        for key, value in job.overrides.items():
            argv += ["--set", f"{key}={format_value(value)}"]
        argv += ["--data", job.data, "--out", job.run_dir]
        if job.epochs is not None:
            argv += ["--epochs", str(job.epochs)]
        argv += ["--device", "cuda" if job.slot == "cuda" else "cpu"]
        if job.seed is not None:
            argv += ["--seed", str(job.seed)]
        return argv

    def train_env(self, job: Job) -> dict[str, str]:
        # The log should follow the run live; the train process runs on the threads it declared
        # (torch reads OMP_NUM_THREADS at start), so packed jobs do not fight over cores.
        threads = str(job.threads or 1)
        env = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if (job.device_assigned or "").startswith("cuda:"):
            index = int(job.device_assigned.split(":")[1])  # type: ignore[union-attr]
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible:
                ids = [v.strip() for v in visible.split(",") if v.strip()]
                env["CUDA_VISIBLE_DEVICES"] = ids[index] if index < len(ids) else str(index)
            else:
                env["CUDA_VISIBLE_DEVICES"] = str(index)
        return env

    def _limit_args(self) -> list[str]:
        """This runner's limits, for the processes that start jobs after it."""
        return ["--grace", f"{self.grace_s:g}", *self.limits.to_args()]

    def supervisor_argv(self, job_id: str) -> list[str]:
        return [self.python, "-m", "roastcore", "jobs", "--runs", str(self.runs_dir),
                "_supervise", job_id, *self._limit_args()]

    def watchdog_argv(self) -> list[str]:
        return [self.python, "-m", "roastcore", "jobs", "--runs", str(self.runs_dir),
                "_watchdog", *self._limit_args()]

    def _detect_dead(self) -> int:
        """Record running local jobs whose processes are gone; return how many this host
        watches. (Ray jobs are followed by _refresh_remote.)"""
        with self.store.transaction() as conn:
            running = [j for j in self.store.in_state(conn, RUNNING)
                       if j.backend != RayJobsBackend.name]
        now = time.time()
        watched = 0
        for job in running:
            if job.handle is None:
                if job.started_at is not None and now - job.started_at > LAUNCH_TIMEOUT_S:
                    self._finish_dead(job, "its process never started (the launcher died?)")
                elif job.backend == self.local.name:
                    watched += 1  # being launched from this host
                continue
            alive = self.local.is_alive(job.handle) if job.backend == self.local.name else None
            if alive:
                watched += 1
                continue
            if alive is None:
                # Cannot see the process from here: trust only a stale heartbeat.
                beat = job.heartbeat_at or job.started_at or now
                if now - beat <= STALE_HEARTBEAT_S:
                    continue
                self._finish_dead(job, f"no heartbeat for {now - beat:.0f}s")
            else:
                self._finish_dead(job, "its process died without reporting a result")
        return watched

    def _finish_dead(self, job: Job, why: str) -> None:
        """Record the end of a job nobody reported on. The train command may still have
        printed its result before its supervisor died, so look for that first. Either way the
        job ends when it was last seen alive, not now."""
        ended = last_sign_of_life(job)
        result = read_final_result(Path(job.log_path))
        if result is not None:
            values = result_values(result, ended_at=ended)
        else:
            cancelled = job.cancel_requested_at is not None
            values = {"state": CANCELLED if cancelled else FAILED, "ended_at": ended,
                      "reason": failure_reason(f"{'cancelled' if cancelled else 'failed'}: {why}",
                                               Path(job.log_path))}
        with self.store.transaction(write=True) as conn:
            changed = self.store.update(conn, job.id, RUNNING, **values)
        if changed and result is not None:
            log.info("job %s: its processes are gone; recorded the result its train command "
                     "left in %s (%s)", job.id, job.log_path, values["state"])
        elif changed:
            log.warning("job %s: %s", job.id, why)

    def _advance_queue(self) -> int:
        """Start queued local jobs, oldest first, while their pool has room for them
        (resources.plan_starts); return how many were started."""
        with self.store.transaction() as conn:
            if not conn.execute("SELECT 1 FROM jobs WHERE state = ? AND backend = ? LIMIT 1",
                                (QUEUED, self.local.name)).fetchone():
                return 0
        limits = self.limits
        to_launch: list[Job] = []
        with self.store.transaction(write=True) as conn:
            mine = lambda state: [j for j in self.store.in_state(conn, state)  # noqa: E731
                                  if j.backend == self.local.name]
            now = time.time()
            for job, device in plan_starts(mine(RUNNING), mine(QUEUED), limits):
                if self.store.update(conn, job.id, QUEUED, state=RUNNING, started_at=now,
                                     heartbeat_at=now, device_assigned=device):
                    job.state, job.device_assigned, job.started_at = RUNNING, device, now
                    to_launch.append(job)  # type: ignore[arg-type]
        # Launch outside the transaction: a slow backend must not hold the store's write lock.
        for job in to_launch:
            self._launch(job)
        return len(to_launch)

    def _launch(self, job: Job) -> None:
        try:
            Path(job.run_dir).mkdir(parents=True, exist_ok=True)
            handle = self.local.launch(job, self.supervisor_argv(job.id), {})
        except Exception as exc:  # noqa: BLE001 - any launch failure is the job's failure
            log.exception("job %s: launch failed", job.id)
            with self.store.transaction(write=True) as conn:
                self.store.update(conn, job.id, RUNNING, state=FAILED, ended_at=time.time(),
                                  reason=f"failed to launch: {exc}")
            return
        parsed = self.local.parse(handle)
        with self.store.transaction(write=True) as conn:
            # Unconditional on state: a fast job may already have finished and recorded itself.
            self.store.update(conn, job.id, None, handle=handle, pid=parsed.pid,
                              pid_start=parsed.start)

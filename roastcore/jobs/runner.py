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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from roastcore import liveness
from roastcore.fsutil import read_jsonl
from roastcore.jobs.backends import Backend, LocalProcessBackend
from roastcore.jobs.outcome import (
    failure_reason,
    float_or_none,
    int_or_none,
    last_sign_of_life,
    read_final_result,
    read_json,
    result_values,
    tail_text,
)
from roastcore.jobs.request import (
    check_run_name,
    config_key,
    data_fingerprint,
    format_value,
    normalize_overrides,
    validate_config,
)
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
)
from roastcore.jobs.tasks import TASK_KINDS, task_argv

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 10.0
DEFAULT_MIN_FREE_BYTES = 50 * 1024 * 1024
# The watchdog (roastcore.jobs.supervisor.watch) holds this flock while on duty.
WATCHDOG_LOCK = "jobs.watchdog.lock"
WATCHDOG_LOG = "jobs.watchdog.log"


def default_runs_dir() -> Path:
    return Path(os.environ.get("ROASTCORE_RUNS") or "checkpoints")


@dataclasses.dataclass
class JobProgress:
    """A snapshot of a job's training progress, from the store plus metrics.jsonl/progress.json."""

    job_id: str
    state: str
    epoch: int | None = None
    epochs: int | None = None
    batch: int | None = None
    n_batches: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    tf_ratio: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    heartbeat_at: float | None = None  # train process heartbeat (progress.json), else supervisor's
    stalled: bool = False  # running, but no heartbeat for STALE_HEARTBEAT_S

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner:
    """Submit, watch, cancel and delete training jobs stored in `runs_dir/jobs.sqlite3`.

    Limits belong to the runner that starts a job and are handed to its supervisor (and to the
    watchdog), which use them to start the next ones.
    """

    def __init__(self, runs_dir: str | os.PathLike[str], backend: Backend | None = None,
                 max_cpu_jobs: int = 1, max_gpu_jobs: int | None = None, *,
                 grace_s: float = DEFAULT_GRACE_S, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 python: str | None = None):
        self.runs_dir = Path(runs_dir).expanduser().absolute()
        self.backend: Backend = backend or LocalProcessBackend(max_cpu_jobs, max_gpu_jobs)
        if not isinstance(self.backend, Backend):
            raise JobError("backend must implement the Backend protocol, "
                           f"got {type(backend).__name__}")
        self.grace_s = float(grace_s)
        self.min_free_bytes = int(min_free_bytes)
        self.python = python or sys.executable
        self.db_path = self.runs_dir / STORE_NAME
        self.store = JobStore(self.db_path)
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise JobError(f"runs directory {self.runs_dir} is not a directory")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"runs directory {self.runs_dir} cannot be created: {exc}") from exc
        self.store.init()
        self.refresh()

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
               force: bool = False, name: str | None = None) -> Job:
        """Queue a training job (and start it if a slot is free).

        Returns the already queued/running identical job (same preset, overrides, epochs, seed
        and data fingerprint) instead of a new one unless `force`. `name` names the run
        directory (letters, digits, '.', '_', '-'; not yet taken in the runs directory);
        default: `<preset>_<time>_<job id>`.
        """
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
        validate_config(preset, overrides_n)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                                   or epochs < 1):
            raise JobError(f"epochs: expected a positive integer, got {epochs!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise JobError(f"seed: expected an integer, got {seed!r}")
        slot, device_n = self._resolve_device(device)
        fingerprint = data_fingerprint(data)
        data_n = data.strip()
        if not data_n.startswith("synthetic"):
            data_n = str(Path(data_n).expanduser().absolute())  # train may run elsewhere (cwd)
        self.check_runs_dir()
        key = config_key(preset, overrides_n, epochs, seed)

        now = time.time()
        with self.store.transaction(write=True) as conn:
            if not force:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE config_key = ? AND data_fingerprint = ? "
                    "AND state IN (?, ?) ORDER BY created_at LIMIT 1",
                    (key, fingerprint, QUEUED, RUNNING),
                ).fetchone()
                if row is not None:
                    log.info("identical job %s is already %s; not submitting again",
                             row["id"], row["state"])
                    return Job.from_row(row)
            job_id = secrets.token_hex(4)
            while conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                job_id = secrets.token_hex(4)
            safe_preset = "".join(c if c.isalnum() or c in "-_" else "-" for c in preset)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
            run_name = name or f"{safe_preset}_{stamp}_{job_id}"
            if name and ((self.runs_dir / name).exists()
                         or conn.execute("SELECT 1 FROM jobs WHERE run_name = ?", (name,)).fetchone()):
                raise JobError(f"name: {name!r} is taken in {self.runs_dir}; choose another")
            run_dir = self.runs_dir / run_name
            self.store.insert(conn, Job(
                id=job_id, state=QUEUED, preset=preset, overrides=overrides_n, data=data_n,
                data_fingerprint=fingerprint, config_key=key, epochs=epochs, seed=seed,
                device_requested=device_n, slot=slot, device_assigned=None, device_used=None,
                run_name=run_name, run_dir=str(run_dir), log_path=str(run_dir / "train.log"),
                backend=self.backend.name, created_at=now,
            ))
        log.info("job %s queued: %s", job_id, run_name)
        self._advance_queue()
        return self.get(job_id)

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
        then SIGKILL after `grace_s`. Cancelling a finished job is a no-op."""
        job_id = self._resolve_id(job_id)
        grace = self.grace_s if grace_s is None else float(grace_s)
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
        if job.handle and self.backend.is_alive(job.handle) is None:
            # Another host: its supervisor sees cancel_requested_at and stops the job itself.
            deadline = time.monotonic() + grace + STORE_CANCEL_DELAY_S + 2 * HEARTBEAT_INTERVAL_S
            while time.monotonic() < deadline and self._get_stored(job_id).state == RUNNING:
                time.sleep(0.2)
            return self._get_stored(job_id)
        if job.handle:
            self.backend.terminate(job.handle, grace)
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
        return tail_text(Path(job.log_path), tail)

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        job = self._get_stored(job_id)
        return read_jsonl(Path(job.run_dir) / "metrics.jsonl")

    def progress(self, job_id: str) -> JobProgress:
        job = self._get_stored(job_id)
        run_dir = Path(job.run_dir)
        rows = read_jsonl(run_dir / "metrics.jsonl")
        last = rows[-1] if rows else {}
        live = read_json(run_dir / "progress.json") or {}
        prog = JobProgress(job_id=job.id, state=job.state, epochs=job.epochs,
                           best_epoch=job.best_epoch, best_val_loss=job.best_val_loss)
        prog.epoch = int_or_none(live.get("epoch", last.get("epoch")))
        prog.epochs = int_or_none(live.get("epochs", last.get("epochs"))) or job.epochs
        prog.batch = int_or_none(live.get("batch"))
        prog.n_batches = int_or_none(live.get("n_batches"))
        for name in ("train_loss", "val_loss", "lr", "tf_ratio", "eta_s"):
            setattr(prog, name, float_or_none(last.get(name, live.get(name))))
        prog.elapsed_s = float_or_none(
            live.get("elapsed_s", live.get("elapsed", last.get("elapsed_s"))))
        if prog.best_epoch is None and rows:
            # Best so far while running (the store only gets it at the end).
            scored = [r for r in rows if float_or_none(r.get("val_loss")) is not None]
            if scored:
                best = min(scored, key=lambda r: float(r["val_loss"]))
                prog.best_epoch = int_or_none(best.get("epoch"))
                prog.best_val_loss = float(best["val_loss"])
        heartbeat = float_or_none(live.get("heartbeat", live.get("heartbeat_at")))
        prog.heartbeat_at = heartbeat or job.heartbeat_at
        if job.state == RUNNING:
            beat = prog.heartbeat_at or job.started_at or time.time()
            prog.stalled = time.time() - beat > STALE_HEARTBEAT_S
        return prog

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
        """Record jobs whose processes died without reporting, start queued jobs, and make sure
        a watchdog is on duty while any run here. Returns how many running jobs this host
        watches (alive, or being launched); the watchdog stops at 0."""
        watched = self._detect_dead() + self._advance_queue()
        if watched:
            self.ensure_watchdog()
        return watched

    def ensure_watchdog(self) -> None:
        """Start the runs directory's watchdog (supervisor.watch) unless one is on duty. It
        keeps the queue moving when every other process is gone: see docs/architecture.md."""
        if not isinstance(self.backend, LocalProcessBackend):
            return  # the watchdog command runs the local backend only
        if liveness.is_held(self.runs_dir / WATCHDOG_LOCK):
            return
        try:
            self.backend.spawn(self.watchdog_argv(), self.runs_dir / WATCHDOG_LOG)
        except OSError as exc:
            log.warning("cannot start the jobs watchdog: %s", exc)

    # ---- internals

    def _resolve_device(self, device: str) -> tuple[str, str]:
        choices = "expected one of auto, cpu, cuda, cuda:N"
        if not isinstance(device, str) or not device.strip():
            raise JobError(f"device: {choices}; got {device!r}")
        device = device.strip().lower()
        slots = self.backend.slots()
        if device == "auto":
            return ("cuda" if slots.get("cuda", 0) > 0 else "cpu"), device
        if device == "cpu":
            return "cpu", device
        if device == "cuda" or device.startswith("cuda:"):
            if device != "cuda" and not device[5:].isdigit():
                raise JobError(f"device: expected cuda:N with an integer N, got {device!r}")
            gpus = getattr(self.backend, "gpu_count", None)
            if slots.get("cuda", 0) <= 0:
                raise JobError(f"device: {device!r} requested but no CUDA GPU slots are "
                               "available (no GPU detected, or max_gpu_jobs=0)")
            if device != "cuda" and gpus is not None and int(device[5:]) >= gpus:
                raise JobError(f"device: {device!r} requested but only {gpus} GPU(s) "
                               "are visible")
            return "cuda", device
        raise JobError(f"device: {choices}; got {device!r}")

    def train_argv(self, job: Job) -> list[str]:
        if job.preset in TASK_KINDS:  # a scoring or study job (jobs/tasks.py), not a training
            return task_argv(job, self.python)
        argv = [self.python, "-m", "roastcore", "train", "--preset", job.preset]
        for key, value in job.overrides.items():
            argv += ["--set", f"{key}={format_value(value)}"]
        argv += ["--data", job.data, "--out", job.run_dir]
        if job.epochs is not None:
            argv += ["--epochs", str(job.epochs)]
        argv += ["--device", "cuda" if (job.device_assigned or "").startswith("cuda") else "cpu"]
        if job.seed is not None:
            argv += ["--seed", str(job.seed)]
        return argv

    def train_env(self, job: Job) -> dict[str, str]:
        env = {"PYTHONUNBUFFERED": "1"}  # the log should follow the run live
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
        args = ["--grace", f"{self.grace_s:g}"]
        backend = self.backend
        if isinstance(backend, LocalProcessBackend):
            args += ["--max-cpu-jobs", str(backend.max_cpu_jobs), "--gpus", str(backend.gpu_count)]
            if backend.max_gpu_jobs is not None:
                args += ["--max-gpu-jobs", str(backend.max_gpu_jobs)]
        return args

    def supervisor_argv(self, job_id: str) -> list[str]:
        return [self.python, "-m", "roastcore", "jobs", "--runs", str(self.runs_dir),
                "_supervise", job_id, *self._limit_args()]

    def watchdog_argv(self) -> list[str]:
        return [self.python, "-m", "roastcore", "jobs", "--runs", str(self.runs_dir),
                "_watchdog", *self._limit_args()]

    def _detect_dead(self) -> int:
        """Record running jobs whose processes are gone; return how many this host watches."""
        with self.store.transaction() as conn:
            running = self.store.in_state(conn, RUNNING)
        now = time.time()
        watched = 0
        for job in running:
            if job.handle is None:
                if job.started_at is not None and now - job.started_at > LAUNCH_TIMEOUT_S:
                    self._finish_dead(job, "its process never started (the launcher died?)")
                elif job.backend == self.backend.name:
                    watched += 1  # being launched from this host
                continue
            alive = self.backend.is_alive(job.handle) if job.backend == self.backend.name else None
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
        """Start queued jobs, oldest first, while their device pool has free slots; return how
        many were started."""
        with self.store.transaction() as conn:
            if not conn.execute("SELECT 1 FROM jobs WHERE state = ? LIMIT 1",
                                (QUEUED,)).fetchone():
                return 0
        slots = self.backend.slots()
        to_launch: list[Job] = []
        with self.store.transaction(write=True) as conn:
            used: dict[str, int] = {}
            gpu_load: dict[int, int] = {}
            for job in self.store.in_state(conn, RUNNING):
                used[job.slot] = used.get(job.slot, 0) + 1
                if (job.device_assigned or "").startswith("cuda:"):
                    idx = int(job.device_assigned.split(":")[1])  # type: ignore[union-attr]
                    gpu_load[idx] = gpu_load.get(idx, 0) + 1
            gpus = max(1, int(getattr(self.backend, "gpu_count", 1) or 1))
            now = time.time()
            for job in self.store.in_state(conn, QUEUED):
                if used.get(job.slot, 0) >= slots.get(job.slot, 0):
                    continue
                if job.slot == "cuda":
                    if job.device_requested.startswith("cuda:"):
                        index = int(job.device_requested.split(":")[1])
                    else:
                        index = min(range(gpus), key=lambda i: (gpu_load.get(i, 0), i))
                    gpu_load[index] = gpu_load.get(index, 0) + 1
                    assigned = f"cuda:{index}"
                else:
                    assigned = "cpu"
                if self.store.update(conn, job.id, QUEUED, state=RUNNING, started_at=now,
                                     heartbeat_at=now, device_assigned=assigned):
                    used[job.slot] = used.get(job.slot, 0) + 1
                    job.state, job.device_assigned, job.started_at = RUNNING, assigned, now
                    to_launch.append(job)
        # Launch outside the transaction: a slow backend must not hold the store's write lock.
        for job in to_launch:
            self._launch(job)
        return len(to_launch)

    def _launch(self, job: Job) -> None:
        argv = self.supervisor_argv(job.id) if self.backend.supervised else self.train_argv(job)
        env = {} if self.backend.supervised else self.train_env(job)
        try:
            Path(job.run_dir).mkdir(parents=True, exist_ok=True)
            handle = self.backend.launch(job.id, argv, Path(job.log_path), env)
        except Exception as exc:  # noqa: BLE001 - any launch failure is the job's failure
            log.exception("job %s: launch failed", job.id)
            with self.store.transaction(write=True) as conn:
                self.store.update(conn, job.id, RUNNING, state=FAILED, ended_at=time.time(),
                                  reason=f"failed to launch: {exc}")
            return
        pid = start = None
        if isinstance(self.backend, LocalProcessBackend):
            parsed = self.backend.parse(handle)
            pid, start = parsed.pid, parsed.start
        with self.store.transaction(write=True) as conn:
            # Unconditional on state: a fast job may already have finished and recorded itself.
            self.store.update(conn, job.id, None, handle=handle, pid=pid, pid_start=start)

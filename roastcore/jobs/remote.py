"""Jobs a queueing backend runs (Ray): handing them over, following them, stopping them.

No supervisor of ours runs beside a Ray job, so whoever reads the store records its outcome:
`RemoteJobs.refresh` (called by every `JobRunner.refresh`) polls each cluster once for all its
active jobs and maps what it says onto our states: pending stays `queued`, running becomes
`running`, an ended job gets its output copied into RUN_DIR/train.log and its final state from
the train command's result line, else from the cluster's status and message (a job lost with
its node is `failed` with that message).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from roastcore import fsutil
from roastcore.jobs.backends import Backend
from roastcore.jobs.outcome import failure_reason, read_final_result, result_values
from roastcore.jobs.ray_backend import RayJobsBackend, RemoteStatus, parse_handle
from roastcore.jobs.resources import Limits
from roastcore.jobs.store import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    LAUNCH_TIMEOUT_S,
    QUEUED,
    RUNNING,
    Job,
    JobError,
    JobStore,
    SweepRecord,
)

log = logging.getLogger(__name__)


class RemoteJobs:
    """The store's Ray jobs, whichever cluster (address) each was submitted to."""

    def __init__(self, store: JobStore, limits: Limits, backend: Backend | None = None):
        self.store, self.limits = store, limits
        self._backends: dict[str, RayJobsBackend] = {}
        if isinstance(backend, RayJobsBackend):
            self._backends[backend.address] = backend

    def backend_for(self, handle_or_address: str) -> RayJobsBackend:
        address = (parse_handle(handle_or_address)[0] if handle_or_address.startswith("ray|")
                   else handle_or_address)
        if address not in self._backends:
            self._backends[address] = RayJobsBackend(address, limits=self.limits)
        return self._backends[address]

    def hand_over(self, backend: Backend, jobs: list[Job], commands: list[tuple[list[str],
                  dict[str, str]]], sweep: SweepRecord | None) -> None:
        """Submit every new job (with its argv and env); if the cluster refuses one, take back
        those already handed over and delete them all (with their sweep), so nothing is queued
        half-way."""
        handed: list[str] = []
        try:
            for job, (argv, env) in zip(jobs, commands, strict=True):
                handle = backend.launch(job, argv, env)
                handed.append(handle)
                with self.store.transaction(write=True) as conn:
                    self.store.update(conn, job.id, None, handle=handle)
        except JobError as exc:
            for handle in handed:
                with contextlib.suppress(JobError):
                    backend.terminate(handle, 0.0)
            with self.store.transaction(write=True) as conn:
                conn.executemany("DELETE FROM jobs WHERE id = ?", [(j.id,) for j in jobs])
                if sweep is not None:
                    conn.execute("DELETE FROM sweeps WHERE id = ?", (sweep.id,))
            raise JobError(f"{exc}; nothing was queued") from exc

    def refresh(self, only: str | None = None) -> None:
        """Record what each cluster says of this store's active Ray jobs (or of job `only`)."""
        with self.store.transaction() as conn:
            active = [j for state in ACTIVE_STATES for j in self.store.in_state(conn, state)
                      if j.backend == RayJobsBackend.name and (only is None or j.id == only)]
        groups: dict[str, list[Job]] = {}
        for job in active:
            if job.handle is None:
                if time.time() - job.created_at > LAUNCH_TIMEOUT_S:
                    self._finish(job, None, RemoteStatus(
                        "finished", detail="never submitted",
                        message="the job never reached the cluster (its submitter died?)"))
                continue
            groups.setdefault(parse_handle(job.handle)[0], []).append(job)
        for address, jobs in groups.items():
            backend = self.backend_for(address)
            statuses = backend.poll_all([j.handle for j in jobs if j.handle])
            for job in jobs:
                status = statuses.get(job.handle or "")
                if status is None or status.state == QUEUED:
                    continue  # unreachable (keep what we know), or still pending
                if status.state == "missing":
                    if time.time() - job.created_at > LAUNCH_TIMEOUT_S:
                        self._finish(job, None, RemoteStatus(
                            "finished", detail="lost", message=f"the Ray cluster at {address} "
                            "no longer knows this job (was its head restarted?)"))
                    continue
                if status.state == RUNNING:
                    now = time.time()
                    with self.store.transaction(write=True) as conn:
                        if not self.store.update(conn, job.id, QUEUED, state=RUNNING,
                                                 started_at=now, heartbeat_at=now,
                                                 device_assigned=status.where):
                            self.store.update(conn, job.id, RUNNING, heartbeat_at=now)
                    continue
                self._finish(job, backend, status)

    def _finish(self, job: Job, backend: RayJobsBackend | None, status: RemoteStatus) -> None:
        log_path = Path(job.log_path)
        text = backend.logs(job.handle) if backend is not None and job.handle else None
        if text:
            # The run directory keeps the job's whole output, as a local job's does.
            fsutil.atomic_write_text(log_path, text)
        result = read_final_result(log_path)
        ended = status.ended_at or time.time()
        if result is not None:
            values = result_values(result, ended_at=ended)
        else:
            cancelled = status.stopped or job.cancel_requested_at is not None
            state = CANCELLED if cancelled else FAILED
            values = {"state": state, "ended_at": ended, "reason": failure_reason(
                f"{state}: Ray job {status.detail}: {status.message}".rstrip(": "), log_path)}
        values["exit_code"] = status.exit_code
        # Seen running: from then; ended between two looks: from Ray's own start.
        values["started_at"] = job.started_at or status.started_at
        if job.device_assigned is None and status.where:
            values["device_assigned"] = status.where
        with self.store.transaction(write=True) as conn:
            changed = self.store.update(conn, job.id, job.state, **values)
        if changed:
            log.info("job %s (Ray %s): %s", job.id, status.detail, values["state"])

    def cancel(self, job: Job, grace_s: float) -> None:
        """Stop a queued or running Ray job through its cluster and record how it ended."""
        if not job.is_active:
            return
        with self.store.transaction(write=True) as conn:
            self.store.update(conn, job.id, job.state, cancel_requested_at=time.time())
        if job.handle is None:
            with self.store.transaction(write=True) as conn:
                self.store.update(conn, job.id, job.state, state=CANCELLED, ended_at=time.time(),
                                  reason="cancelled before it reached the cluster")
            return
        self.backend_for(job.handle).terminate(job.handle, grace_s)
        self.refresh(only=job.id)

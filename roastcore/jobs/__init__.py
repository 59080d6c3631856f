"""Background training jobs: OS processes whose state lives in a SQLite store.

Streamlit reruns scripts and cannot own long-lived threads, so every training job is its own
process (`python -m roastcore train ... --out RUNS/<run_name>`) in a new process session, and
everything known about it lives in `RUNS/jobs.sqlite3`. The package, bottom up:

    store       the SQLite store: Job records, states, conditional transitions
    backends    the Backend seam, LocalProcessBackend, /proc process utilities
    outcome     reading what a train process left behind (log, result line, progress)
    request     what a submission asks for, checked; when two submissions are one job
    runner      JobRunner: submit, list, cancel, delete, crash recovery, slots
    supervisor  the per-job supervisor and the per-runs-directory watchdog processes
    tasks       job kinds besides training: scoring a run, running a study

See docs/architecture.md ("jobs/" and "Scale-out") for how the queue advances.
"""

from roastcore.jobs.backends import (
    Backend,
    LocalProcessBackend,
    detect_gpu_count,
    group_members,
    pid_alive,
    process_start_time,
)
from roastcore.jobs.outcome import read_final_result, tail_text
from roastcore.jobs.request import data_fingerprint
from roastcore.jobs.runner import (
    DEFAULT_GRACE_S,
    DEFAULT_MIN_FREE_BYTES,
    JobProgress,
    JobRunner,
    default_runs_dir,
)
from roastcore.jobs.store import (
    ACTIVE_STATES,
    CANCELLED,
    DIVERGED,
    FAILED,
    FINAL_STATES,
    HEARTBEAT_INTERVAL_S,
    QUEUED,
    RUNNING,
    STALE_HEARTBEAT_S,
    STORE_NAME,
    SUCCEEDED,
    Job,
    JobError,
    JobNotFound,
)
from roastcore.jobs.supervisor import supervise, watch
from roastcore.jobs.tasks import (
    TASK_KINDS,
    TaskProgress,
    job_kind,
    latest_job,
    read_task_progress,
    submit_score,
    submit_study,
)

__all__ = [
    "ACTIVE_STATES", "CANCELLED", "DEFAULT_GRACE_S", "DEFAULT_MIN_FREE_BYTES", "DIVERGED",
    "FAILED", "FINAL_STATES", "HEARTBEAT_INTERVAL_S", "QUEUED", "RUNNING", "STALE_HEARTBEAT_S",
    "STORE_NAME", "SUCCEEDED", "TASK_KINDS", "Backend", "Job", "JobError", "JobNotFound",
    "JobProgress", "JobRunner", "LocalProcessBackend", "TaskProgress", "data_fingerprint",
    "default_runs_dir", "detect_gpu_count", "group_members", "job_kind", "latest_job",
    "pid_alive", "process_start_time", "read_final_result", "read_task_progress",
    "submit_score", "submit_study", "supervise", "tail_text", "watch",
]

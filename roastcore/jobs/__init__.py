"""Background training jobs: OS processes whose state lives in a SQLite store.

Streamlit reruns scripts and cannot own long-lived threads, so every training job is its own
process (`python -m roastcore train ... --out RUNS/<run_name>`) in a new process session, and
everything known about it lives in `RUNS/jobs.sqlite3`. The package, bottom up:

    store         the SQLite store: Job and sweep records, states, conditional transitions
    resources     what a job asks for (threads, GPU memory), the machine's limits, packing
    backends      the Backend seam, LocalProcessBackend, /proc process utilities
    ray_backend   RayJobsBackend: jobs as Ray Jobs on a cluster (imports ray only when used)
    remote        RemoteJobs: hands jobs to Ray and follows them from the store
    ray_local     LocalRayCluster: a throwaway Ray head on this machine (tests, benchmarks)
    outcome       reading what a train process left behind (log, result line, progress)
    request       what a submission asks for, checked; when two submissions are one job
    runner        JobRunner: submit, list, cancel, delete, crash recovery, slots
    supervisor    the per-job supervisor and the per-runs-directory watchdog processes
    sweep         sweeps: a grid of jobs, launched, followed and compared as one
    tasks         job kinds besides training: scoring a run, running a study

See docs/architecture.md ("jobs/" and "Scale-out") for how the queue advances.
"""

from roastcore.jobs.backends import (
    Backend,
    LocalProcessBackend,
    group_members,
    pid_alive,
    process_start_time,
)
from roastcore.jobs.outcome import JobProgress, read_final_result, tail_text
from roastcore.jobs.ray_backend import RayJobsBackend
from roastcore.jobs.request import data_fingerprint
from roastcore.jobs.resources import Demand, Limits, detect_gpu_count, plan_starts
from roastcore.jobs.runner import (
    DEFAULT_GRACE_S,
    DEFAULT_MIN_FREE_BYTES,
    JobRunner,
    default_runs_dir,
    make_backend,
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
    SweepRecord,
)
from roastcore.jobs.supervisor import supervise, watch
from roastcore.jobs.sweep import (
    NOT_SCORED,
    Sweep,
    SweepTooLarge,
    cancel_sweep,
    chart_records,
    expand_grid,
    get_sweep,
    launch_sweep,
    list_sweeps,
    read_scores,
    sweep_runs,
    sweep_table,
)
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
    "ACTIVE_STATES", "CANCELLED", "NOT_SCORED", "DEFAULT_GRACE_S", "DEFAULT_MIN_FREE_BYTES", "DIVERGED",
    "FAILED", "FINAL_STATES", "HEARTBEAT_INTERVAL_S", "QUEUED", "RUNNING", "STALE_HEARTBEAT_S",
    "STORE_NAME", "SUCCEEDED", "Backend", "Demand", "Job", "JobError", "JobNotFound",
    "JobProgress", "JobRunner", "Limits", "LocalProcessBackend", "RayJobsBackend", "Sweep",
    "SweepRecord", "SweepTooLarge", "cancel_sweep", "chart_records", "data_fingerprint",
    "default_runs_dir", "detect_gpu_count", "expand_grid", "get_sweep", "group_members",
    "launch_sweep", "list_sweeps", "make_backend", "pid_alive", "plan_starts",
    "process_start_time", "read_final_result", "read_scores", "supervise",
    "sweep_runs", "sweep_table", "tail_text", "watch",
    "TASK_KINDS", "TaskProgress", "job_kind", "latest_job", "read_task_progress",
    "submit_score", "submit_study",
]

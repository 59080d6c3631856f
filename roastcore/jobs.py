"""Background training jobs: OS processes whose state lives in a SQLite store.

Streamlit reruns scripts and cannot own long-lived threads, so every training job is its own
process (`python -m roastcore train ... --out RUNS/<run_name>`) in a new process session, and
everything known about it lives in `RUNS/jobs.sqlite3` (WAL). The store is the only source of
truth: any number of processes (two browser tabs, the CLI, the supervisors) may open a
`JobRunner` over the same runs directory at once.

Who advances the queue
    Each local job runs under a tiny supervisor (`python -m roastcore jobs _supervise ID`, the
    process-group leader) that starts the train command, heartbeats, waits, records the final
    state and then starts the next queued jobs. So the queue advances with no UI open.
    `JobRunner.refresh()` (run on every read of the store) also advances it and detects jobs
    whose processes died without reporting. Every state change is a conditional UPDATE
    (`... WHERE state = 'queued'` / `'running'`), so whoever gets there first wins and a
    transition happens exactly once.

Launching goes through a `Backend` (see docs/architecture.md, "Scale-out").
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

log = logging.getLogger(__name__)

STORE_NAME = "jobs.sqlite3"
SCHEMA_VERSION = 1

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, DIVERGED = "succeeded", "failed", "cancelled", "diverged"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED, DIVERGED)
STATES = ACTIVE_STATES + FINAL_STATES

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # plus "cuda:N" to pin a GPU
DEFAULT_GRACE_S = 10.0
DEFAULT_MIN_FREE_BYTES = 50 * 1024 * 1024
STALE_HEARTBEAT_S = 120.0
# A claimed job whose launcher died before the process could record itself.
LAUNCH_TIMEOUT_S = 60.0
HEARTBEAT_INTERVAL_S = 2.0
# A runner's local cancel signals the group right after flagging the store; only a flag older
# than this, with no signal, means the cancel came from somewhere that cannot signal us.
STORE_CANCEL_DELAY_S = 3.0
LOG_TAIL_LINES = 20


class JobError(Exception):
    """A user-facing job error (bad input, refused operation, unusable runs directory)."""


class JobNotFound(JobError):
    pass


# --------------------------------------------------------------------------------------------
# Run names chosen by the user (JobRunner.submit(name=...))
_RUN_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_run_name(name: str) -> None:
    """JobError unless `name` is a plain folder name (no path, no dots-only, no spaces)."""
    if (not isinstance(name, str) or not 1 <= len(name) <= 80 or not set(name) <= _RUN_NAME_CHARS
            or not name[0].isalnum()):
        raise JobError(f"name: {name!r} is not a run name (1-80 letters, digits, '.', '_' or '-', "
                       "starting with a letter or digit)")


# --------------------------------------------------------------------------------------------
# The job record


@dataclasses.dataclass
class Job:
    id: str
    state: str
    preset: str
    overrides: dict[str, Any]
    data: str
    data_fingerprint: str
    config_key: str
    epochs: int | None
    seed: int | None
    device_requested: str
    slot: str  # "cpu" or "cuda": which concurrency pool the job waits in
    device_assigned: str | None  # e.g. "cpu", "cuda:0": what the runner gave it
    device_used: str | None  # what the train process reports it actually ran on
    run_name: str
    run_dir: str
    log_path: str
    backend: str
    handle: str | None = None
    pid: int | None = None  # supervisor pid == process-group id
    pid_start: int | None = None  # /proc/<pid>/stat starttime, guards against pid reuse
    worker_pid: int | None = None  # the train process
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    cancel_requested_at: float | None = None
    exit_code: int | None = None
    best_epoch: int | None = None
    best_val_loss: float | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None  # the train command's final JSON line

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["duration_s"] = self.duration_s
        return out

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(row)
        values["overrides"] = json.loads(values["overrides"] or "{}")
        values["result"] = json.loads(values["result"]) if values["result"] else None
        return cls(**values)


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


_COLUMNS = [f.name for f in dataclasses.fields(Job)]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    preset TEXT NOT NULL,
    overrides TEXT NOT NULL,
    data TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    config_key TEXT NOT NULL,
    epochs INTEGER,
    seed INTEGER,
    device_requested TEXT NOT NULL,
    slot TEXT NOT NULL,
    device_assigned TEXT,
    device_used TEXT,
    run_name TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    log_path TEXT NOT NULL,
    backend TEXT NOT NULL,
    handle TEXT,
    pid INTEGER,
    pid_start INTEGER,
    worker_pid INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    heartbeat_at REAL,
    cancel_requested_at REAL,
    exit_code INTEGER,
    best_epoch INTEGER,
    best_val_loss REAL,
    reason TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_identity ON jobs (config_key, data_fingerprint, state);
"""


# --------------------------------------------------------------------------------------------
# Processes (Linux /proc; degrades to os.kill where /proc is absent)


@dataclasses.dataclass(frozen=True)
class _ProcStat:
    state: str
    pgrp: int
    start: int  # clock ticks since boot


def _proc_stat(pid: int) -> _ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return _ProcStat(state=fields[0], pgrp=int(fields[2]), start=int(fields[19]))
    except (IndexError, ValueError):
        return None


def _have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def process_start_time(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return stat.start if stat else None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if `pid` is a live (non-zombie) process and, if given, started at `start_time`."""
    if not _have_proc():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _proc_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return False
    return start_time is None or stat.start == start_time


def group_members(pgid: int, not_before: int | None = None) -> list[int]:
    """Live (non-zombie) pids in process group `pgid`, started no earlier than `not_before`."""
    if not _have_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is None or stat.pgrp != pgid or stat.state in ("Z", "X"):
            continue
        if not_before is not None and stat.start < not_before:
            continue
        members.append(int(entry.name))
    return members


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


# --------------------------------------------------------------------------------------------
# Backends


@runtime_checkable
class Backend(Protocol):
    """Where job processes run. See docs/architecture.md, "Scale-out: the launcher backend"."""

    name: str
    # True: the launched argv is the local supervisor, which records the final state itself.
    supervised: bool

    def launch(self, job_id: str, argv: list[str], log_path: Path, env: dict[str, str]) -> str:
        """Start `argv`; return a handle (pid or submission id) for is_alive/terminate."""

    def is_alive(self, handle: str) -> bool | None:
        """True/False, or None when this process cannot tell (another host)."""

    def terminate(self, handle: str, grace_s: float) -> None:
        """Ask the job to stop, wait up to grace_s, then force it."""

    def slots(self) -> dict[str, int]:
        """Concurrency per device kind: {"cpu": n, "cuda": m}."""


def detect_gpu_count() -> int:
    """GPUs usable by jobs. ROASTCORE_GPUS overrides; avoids importing torch when there is no
    NVIDIA driver (importing torch costs seconds, and `jobs list` should not)."""
    override = os.environ.get("ROASTCORE_GPUS")
    if override is not None and override.strip() != "":
        try:
            count = int(override)
        except ValueError:
            raise JobError(f"ROASTCORE_GPUS must be an integer GPU count, got {override!r}") from None
        if count < 0:
            raise JobError(f"ROASTCORE_GPUS must be >= 0, got {count}")
        return count
    if not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()):
        return 0
    return _torch_gpu_count()


@functools.lru_cache(maxsize=1)
def _torch_gpu_count() -> int:
    try:
        import torch

        # device_count() uses NVML and does not initialise CUDA, so it is safe before fork.
        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no usable torch/CUDA simply means no GPU slots
        return 0


class _LocalHandle(NamedTuple):
    same_host: bool
    same_boot: bool
    pid: int
    start: int | None


class LocalProcessBackend:
    """Run jobs as local processes, each in a new session (so cancel can signal the group)."""

    name = "local"
    supervised = True

    def __init__(self, max_cpu_jobs: int = 1, max_gpu_jobs: int | None = None,
                 gpu_count: int | None = None):
        if not isinstance(max_cpu_jobs, int) or max_cpu_jobs < 0:
            raise JobError(f"max_cpu_jobs must be an integer >= 0, got {max_cpu_jobs!r}")
        if max_gpu_jobs is not None and (not isinstance(max_gpu_jobs, int) or max_gpu_jobs < 0):
            raise JobError(f"max_gpu_jobs must be None or an integer >= 0, got {max_gpu_jobs!r}")
        self.max_cpu_jobs = max_cpu_jobs
        self.max_gpu_jobs = max_gpu_jobs
        self._gpu_count = gpu_count
        self._host = socket.gethostname()
        self._boot = _boot_id()
        # Children we started: polling them reaps zombies promptly.
        self._children: dict[int, subprocess.Popen] = {}

    @property
    def gpu_count(self) -> int:
        if self._gpu_count is None:
            self._gpu_count = detect_gpu_count()
        return self._gpu_count

    def slots(self) -> dict[str, int]:
        gpu_slots = self.gpu_count if self.max_gpu_jobs is None else self.max_gpu_jobs
        return {"cpu": self.max_cpu_jobs, "cuda": gpu_slots if self.gpu_count else 0}

    def launch(self, job_id: str, argv: list[str], log_path: Path, env: dict[str, str]) -> str:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                close_fds=True,
            )
        self._children[proc.pid] = proc
        start = process_start_time(proc.pid)
        log.debug("job %s: launched pid %s: %s", job_id, proc.pid, shlex.join(argv))
        return self.make_handle(proc.pid, start)

    def make_handle(self, pid: int, start: int | None) -> str:
        return f"{self._host}|{self._boot}|{pid}|{start if start is not None else ''}"

    def _parse(self, handle: str) -> _LocalHandle:
        try:
            host, boot, pid, start = handle.split("|")
            return _LocalHandle(host == self._host, boot == self._boot, int(pid),
                                int(start) if start else None)
        except ValueError:
            raise JobError(f"not a local process handle: {handle!r}") from None

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                self._children.pop(pid, None)  # pop: another thread may reap it too

    def is_alive(self, handle: str) -> bool | None:
        same_host, same_boot, pid, start = self._parse(handle)
        if not same_host:
            return None
        if not same_boot:
            return False  # rebooted since: every process of the old boot is gone
        self._reap()
        if pid_alive(pid, start):
            return True
        stat = _proc_stat(pid)
        if stat is not None and start is not None and stat.start != start:
            return False  # pid reused by an unrelated process; our group is long gone
        # Leader gone (e.g. supervisor killed alone) but the train process may still run.
        return bool(group_members(pid, not_before=start))

    def terminate(self, handle: str, grace_s: float) -> None:
        same_host, same_boot, pid, start = self._parse(handle)
        if not same_host:
            raise JobError(f"job process runs on another host ({handle.split('|')[0]}); "
                           "cancel it there")
        if not same_boot or not self.is_alive(handle):
            return
        self._signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + max(grace_s, 0.0)
        while time.monotonic() < deadline:
            if not self.is_alive(handle):
                return
            time.sleep(0.05)
        log.warning("job group %s ignored SIGTERM for %.1fs; sending SIGKILL", pid, grace_s)
        self._signal_group(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self.is_alive(handle):
            time.sleep(0.05)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


# --------------------------------------------------------------------------------------------
# Helpers


def _normalize_overrides(overrides: Mapping[str, Any] | list[str] | None) -> dict[str, Any]:
    """Overrides as {key: JSON value}. `"k=v"` strings (the CLI's --set) are JSON-decoded when
    they parse (so `lr=0.001` from the CLI and {"lr": 0.001} from the dashboard are one job)."""
    if overrides is None:
        return {}
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    elif isinstance(overrides, (list, tuple)):
        for entry in overrides:
            if not isinstance(entry, str) or "=" not in entry:
                raise JobError(f"overrides: expected 'key=value', got {entry!r}")
            key, value = entry.split("=", 1)
            items.append((key.strip(), _decode_value(value.strip())))
    else:
        raise JobError(f"overrides must be a mapping or a list of 'key=value', got {type(overrides).__name__}")
    out: dict[str, Any] = {}
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise JobError(f"overrides: keys must be non-empty strings, got {key!r}")
        if isinstance(value, str):
            value = _decode_value(value)
        try:
            json.dumps(value)
        except TypeError:
            raise JobError(f"overrides: value of {key!r} is not JSON-serialisable: {value!r}") from None
        out[key] = value
    return dict(sorted(out.items()))


def _decode_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def data_fingerprint(data: str) -> str:
    """A cheap identity for a data source, for duplicate detection only.

    `synthetic[:N]` is its own fingerprint. For a path we hash relative names, sizes and
    mtimes (not the contents): loading and parsing a folder at submit time would block the
    UI, and a changed file changes its mtime anyway.
    """
    if not isinstance(data, str) or not data.strip():
        raise JobError("data: expected 'synthetic', 'synthetic:N' or a path, got an empty value")
    data = data.strip()
    if data == "synthetic" or data.startswith("synthetic:"):
        if data != "synthetic":
            count = data.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise JobError(f"data: 'synthetic:N' needs a positive integer N, got {data!r}")
        return data
    path = Path(data).expanduser()
    if not path.exists():
        raise JobError(f"data: {data!r} does not exist")
    digest = hashlib.sha256()
    if path.is_file():
        files = [path]
        base = path.parent
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        base = path
        if not files:
            raise JobError(f"data: folder {data!r} contains no files")
    for file in files:
        st = file.stat()
        digest.update(f"{file.relative_to(base).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()[:16]


def _config_key(preset: str, overrides: dict[str, Any], epochs: int | None, seed: int | None) -> str:
    canonical = json.dumps(
        {"preset": preset, "overrides": overrides, "epochs": epochs, "seed": seed},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _validate_config(preset: str, overrides: dict[str, Any]) -> None:
    """Reject an unknown preset or a bad override now rather than as a failed job later.
    (Imports roastcore.experiments, hence torch: a second or two on the first submit.)"""
    try:
        from roastcore.experiments import PRESETS
    except ImportError:  # experiments not available in this tree: the train command will check
        return
    if preset not in PRESETS:
        raise JobError(f"preset: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    try:
        PRESETS[preset].experiment.with_overrides(dict(overrides))
    except (ValueError, TypeError) as exc:
        raise JobError(f"overrides: {exc}") from exc


def tail_text(path: Path, lines: int = 50, max_bytes: int = 1 << 20) -> str:
    """The last `lines` lines of a text file (all of it for lines <= 0), reading from the end."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if lines <= 0:
                fh.seek(max(0, size - max_bytes * 16))
                return fh.read().decode("utf-8", "replace")
            chunk = 8192
            data = b""
            pos = size
            while pos > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
                step = min(chunk, pos)
                pos -= step
                fh.seek(pos)
                data = fh.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def read_final_result(log_path: Path) -> dict[str, Any] | None:
    """The train command's final JSON line ({"status": ...}), searched from the log's end
    because stderr shares the file and may follow it."""
    for line in reversed(tail_text(log_path, 200).splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("status") in FINAL_STATES:
            return obj
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl rows; a half-written last line (the run is writing it now) is skipped."""
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def default_runs_dir() -> Path:
    return Path(os.environ.get("ROASTCORE_RUNS") or "checkpoints")


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner:
    """Submit, watch, cancel and delete training jobs stored in `runs_dir/jobs.sqlite3`.

    Cheap to construct; make one per request if convenient. Limits belong to the runner that
    starts a job and are handed to its supervisor, which uses them to start the next ones.
    """

    def __init__(self, runs_dir: str | os.PathLike[str], backend: Backend | None = None,
                 max_cpu_jobs: int = 1, max_gpu_jobs: int | None = None, *,
                 grace_s: float = DEFAULT_GRACE_S, min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
                 python: str | None = None):
        self.runs_dir = Path(runs_dir).expanduser().absolute()
        self.backend: Backend = backend or LocalProcessBackend(max_cpu_jobs, max_gpu_jobs)
        if not isinstance(self.backend, Backend):
            raise JobError(f"backend must implement the Backend protocol, got {type(backend).__name__}")
        self.grace_s = float(grace_s)
        self.min_free_bytes = int(min_free_bytes)
        self.python = python or sys.executable
        self.db_path = self.runs_dir / STORE_NAME
        self._init_store()
        self.refresh()

    # ---- store plumbing

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise JobError(f"cannot open the job store {self.db_path}: {exc} "
                           "(is the runs directory writable?)") from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextlib.contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction. Writers take the lock up front (BEGIN IMMEDIATE) so a
        read-then-write cannot interleave with another process's."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise JobError(f"job store {self.db_path}: {exc}") from exc
        finally:
            conn.close()

    def _init_store(self) -> None:
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise JobError(f"runs directory {self.runs_dir} is not a directory")
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"runs directory {self.runs_dir} cannot be created: {exc}") from exc
        conn = self._connect()
        try:
            # WAL lets readers (dashboards) proceed while a supervisor writes.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise JobError(f"cannot initialise the job store {self.db_path}: {exc} "
                           "(is the runs directory writable?)") from exc
        finally:
            conn.close()

    def _update(self, conn: sqlite3.Connection, job_id: str, expect_state: str | None,
                **values: Any) -> bool:
        """UPDATE one job, only if it is still in `expect_state`; True if it changed."""
        for key in ("overrides", "result"):
            if key in values and values[key] is not None and not isinstance(values[key], str):
                values[key] = json.dumps(values[key])
        sets = ", ".join(f"{k} = ?" for k in values)
        sql = f"UPDATE jobs SET {sets} WHERE id = ?"
        params = [*values.values(), job_id]
        if expect_state is not None:
            sql += " AND state = ?"
            params.append(expect_state)
        return conn.execute(sql, params).rowcount == 1

    def _fetch(self, conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job._from_row(row) if row else None

    def _resolve_id(self, job_id: str) -> str:
        """Exact id, or a unique prefix of at least 4 characters (handy in the CLI)."""
        if not isinstance(job_id, str) or not job_id:
            raise JobError(f"job id must be a non-empty string, got {job_id!r}")
        with self._db() as conn:
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
            _check_run_name(name)
        if not isinstance(preset, str) or not preset.strip():
            raise JobError(f"preset: expected a preset name, got {preset!r}")
        preset = preset.strip()
        overrides_n = _normalize_overrides(overrides)
        for key in ("epochs", "seed", "device"):
            if key in overrides_n:
                raise JobError(f"overrides: set {key!r} with the {key}= argument, not as an override")
        _validate_config(preset, overrides_n)
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise JobError(f"epochs: expected a positive integer, got {epochs!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise JobError(f"seed: expected an integer, got {seed!r}")
        slot, device_n = self._resolve_device(device)
        fingerprint = data_fingerprint(data)
        data_n = data.strip()
        if not data_n.startswith("synthetic"):
            data_n = str(Path(data_n).expanduser().absolute())  # train may run elsewhere (cwd)
        self.check_runs_dir()
        key = _config_key(preset, overrides_n, epochs, seed)

        now = time.time()
        with self._db(write=True) as conn:
            if not force:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE config_key = ? AND data_fingerprint = ? "
                    "AND state IN (?, ?) ORDER BY created_at LIMIT 1",
                    (key, fingerprint, QUEUED, RUNNING),
                ).fetchone()
                if row is not None:
                    log.info("identical job %s is already %s; not submitting again", row["id"], row["state"])
                    return Job._from_row(row)
            job_id = secrets.token_hex(4)
            while conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                job_id = secrets.token_hex(4)
            safe_preset = "".join(c if c.isalnum() or c in "-_" else "-" for c in preset)
            run_name = name or f"{safe_preset}_{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}_{job_id}"
            if name and ((self.runs_dir / name).exists()
                         or conn.execute("SELECT 1 FROM jobs WHERE run_name = ?", (name,)).fetchone()):
                raise JobError(f"name: {name!r} is taken in {self.runs_dir}; choose another")
            run_dir = self.runs_dir / run_name
            job = Job(
                id=job_id, state=QUEUED, preset=preset, overrides=overrides_n, data=data_n,
                data_fingerprint=fingerprint, config_key=key, epochs=epochs, seed=seed,
                device_requested=device_n, slot=slot, device_assigned=None, device_used=None,
                run_name=run_name, run_dir=str(run_dir), log_path=str(run_dir / "train.log"),
                backend=self.backend.name, created_at=now,
            )
            values = job.to_dict()
            values.pop("duration_s")
            values["overrides"] = json.dumps(job.overrides)
            values["result"] = None
            conn.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [values[c] for c in _COLUMNS],
            )
        log.info("job %s queued: %s", job_id, run_name)
        self._advance_queue()
        return self.get(job_id)

    def list(self) -> list[Job]:
        self.refresh()
        with self._db() as conn:
            rows = conn.execute("SELECT * FROM jobs ORDER BY created_at, id").fetchall()
        return [Job._from_row(r) for r in rows]

    def get(self, job_id: str) -> Job:
        job_id = self._resolve_id(job_id)
        self.refresh()
        return self._get_stored(job_id)

    def _get_stored(self, job_id: str) -> Job:
        """The stored record without a refresh (for per-job reads right after a list())."""
        job_id = self._resolve_id(job_id)
        with self._db() as conn:
            job = self._fetch(conn, job_id)
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
        with self._db(write=True) as conn:
            job = self._fetch(conn, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.state == QUEUED:
                self._update(conn, job_id, QUEUED, state=CANCELLED, ended_at=now,
                             cancel_requested_at=now, reason="cancelled while queued")
                log.info("job %s cancelled while queued", job_id)
                return self._fetch(conn, job_id)  # type: ignore[return-value]
            if job.state != RUNNING:
                return job
            # The supervisor reads this (and the grace) to escalate on its own if we go away.
            self._update(conn, job_id, RUNNING, cancel_requested_at=now)
        if job.handle and self.backend.is_alive(job.handle) is None:
            # Another host: its supervisor sees cancel_requested_at and stops the job itself.
            deadline = time.monotonic() + grace + STORE_CANCEL_DELAY_S + 2 * HEARTBEAT_INTERVAL_S
            while time.monotonic() < deadline and self._get_stored(job_id).state == RUNNING:
                time.sleep(0.2)
            return self._get_stored(job_id)
        if job.handle:
            self.backend.terminate(job.handle, grace)
        # If the supervisor recorded the outcome this is a no-op; if it was killed, we record it.
        with self._db(write=True) as conn:
            changed = self._update(conn, job_id, RUNNING, state=CANCELLED, ended_at=time.time(),
                                   reason=f"cancelled; process did not report (stopped after {grace:g}s grace)")
            if changed and job.handle is None:
                self._update(conn, job_id, None, reason="cancelled before its process started")
        self._advance_queue()
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its run directory. Refused for queued/running jobs."""
        job_id = self._resolve_id(job_id)
        self.refresh()
        with self._db(write=True) as conn:
            job = self._fetch(conn, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id!r}")
            if job.is_active:
                raise JobError(f"job {job_id} is {job.state}; cancel it before deleting it")
            run_dir = Path(job.run_dir)
            # Never follow a tampered path out of the runs directory.
            if run_dir.parent.resolve() != self.runs_dir.resolve() or run_dir.name != job.run_name:
                raise JobError(f"job {job_id}: run directory {run_dir} is not inside {self.runs_dir}; refusing to delete it")
            if run_dir.exists():
                shutil.rmtree(run_dir)
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        log.info("job %s deleted with %s", job_id, run_dir)

    def logs(self, job_id: str, tail: int = 50) -> str:
        job = self._get_stored(job_id)
        return tail_text(Path(job.log_path), tail)

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        job = self._get_stored(job_id)
        return read_metrics(Path(job.run_dir) / "metrics.jsonl")

    def progress(self, job_id: str) -> JobProgress:
        job = self._get_stored(job_id)
        run_dir = Path(job.run_dir)
        rows = read_metrics(run_dir / "metrics.jsonl")
        last = rows[-1] if rows else {}
        live = _read_json(run_dir / "progress.json") or {}
        prog = JobProgress(job_id=job.id, state=job.state, epochs=job.epochs,
                           best_epoch=job.best_epoch, best_val_loss=job.best_val_loss)
        prog.epoch = _int_or_none(live.get("epoch", last.get("epoch")))
        prog.epochs = _int_or_none(live.get("epochs", last.get("epochs"))) or job.epochs
        prog.batch = _int_or_none(live.get("batch"))
        prog.n_batches = _int_or_none(live.get("n_batches"))
        for name in ("train_loss", "val_loss", "lr", "tf_ratio", "eta_s"):
            setattr(prog, name, _float_or_none(last.get(name, live.get(name))))
        prog.elapsed_s = _float_or_none(live.get("elapsed_s", live.get("elapsed", last.get("elapsed_s"))))
        if prog.best_epoch is None and rows:
            # Best so far while running (the store only gets it at the end).
            scored = [r for r in rows if _float_or_none(r.get("val_loss")) is not None]
            if scored:
                best = min(scored, key=lambda r: float(r["val_loss"]))
                prog.best_epoch, prog.best_val_loss = _int_or_none(best.get("epoch")), float(best["val_loss"])
        heartbeat = _float_or_none(live.get("heartbeat", live.get("heartbeat_at")))
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

    def refresh(self) -> None:
        """Detect jobs whose processes died without reporting, then start queued jobs."""
        self._detect_dead()
        self._advance_queue()

    # ---- internals

    def _resolve_device(self, device: str) -> tuple[str, str]:
        if not isinstance(device, str) or not device.strip():
            raise JobError(f"device: expected one of auto, cpu, cuda, cuda:N; got {device!r}")
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
                raise JobError(f"device: {device!r} requested but no CUDA GPU slots are available "
                               "(no GPU detected, or max_gpu_jobs=0)")
            if device != "cuda" and gpus is not None and int(device[5:]) >= gpus:
                raise JobError(f"device: {device!r} requested but only {gpus} GPU(s) are visible")
            return "cuda", device
        raise JobError(f"device: expected one of auto, cpu, cuda, cuda:N; got {device!r}")

    def train_argv(self, job: Job) -> list[str]:
        argv = [self.python, "-m", "roastcore", "train", "--preset", job.preset]
        for key, value in job.overrides.items():
            argv += ["--set", f"{key}={_format_value(value)}"]
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

    def supervisor_argv(self, job_id: str) -> list[str]:
        backend = self.backend
        argv = [self.python, "-m", "roastcore", "jobs", "--runs", str(self.runs_dir),
                "_supervise", job_id, "--grace", f"{self.grace_s:g}"]
        if isinstance(backend, LocalProcessBackend):
            argv += ["--max-cpu-jobs", str(backend.max_cpu_jobs), "--gpus", str(backend.gpu_count)]
            if backend.max_gpu_jobs is not None:
                argv += ["--max-gpu-jobs", str(backend.max_gpu_jobs)]
        return argv

    def _detect_dead(self) -> None:
        with self._db() as conn:
            running = [Job._from_row(r) for r in conn.execute(
                "SELECT * FROM jobs WHERE state = ?", (RUNNING,))]
        now = time.time()
        for job in running:
            if job.handle is None:
                if job.started_at is not None and now - job.started_at > LAUNCH_TIMEOUT_S:
                    self._finish_dead(job, "its process never started (the launcher died?)")
                continue
            alive = self.backend.is_alive(job.handle) if job.backend == self.backend.name else None
            if alive:
                continue
            if alive is None:
                # Cannot see the process from here: trust only a stale heartbeat.
                beat = job.heartbeat_at or job.started_at or now
                if now - beat <= STALE_HEARTBEAT_S:
                    continue
                self._finish_dead(job, f"no heartbeat for {now - beat:.0f}s")
            else:
                self._finish_dead(job, "its process died without reporting a result")

    def _finish_dead(self, job: Job, why: str) -> None:
        """Record the end of a job nobody reported on. The train command may still have
        printed its result before its supervisor died, so look for that first."""
        result = read_final_result(Path(job.log_path))
        with self._db(write=True) as conn:
            if result is not None:
                changed = self._update(conn, job.id, RUNNING, **_result_values(result))
            else:
                cancelled = job.cancel_requested_at is not None
                reason = f"{'cancelled' if cancelled else 'failed'}: {why}"
                tail = tail_text(Path(job.log_path), LOG_TAIL_LINES)
                if tail:
                    reason += f"\n--- last log lines ---\n{tail}"
                changed = self._update(conn, job.id, RUNNING, state=CANCELLED if cancelled else FAILED,
                                       ended_at=time.time(), reason=reason)
        if changed:
            log.warning("job %s: %s", job.id, why)

    def _advance_queue(self) -> None:
        """Start queued jobs, oldest first, while their device pool has free slots."""
        with self._db() as conn:
            if not conn.execute("SELECT 1 FROM jobs WHERE state = ? LIMIT 1", (QUEUED,)).fetchone():
                return
        slots = self.backend.slots()
        to_launch: list[Job] = []
        with self._db(write=True) as conn:
            running = [Job._from_row(r) for r in conn.execute(
                "SELECT * FROM jobs WHERE state = ?", (RUNNING,))]
            used: dict[str, int] = {}
            gpu_load: dict[int, int] = {}
            for job in running:
                used[job.slot] = used.get(job.slot, 0) + 1
                if (job.device_assigned or "").startswith("cuda:"):
                    idx = int(job.device_assigned.split(":")[1])  # type: ignore[union-attr]
                    gpu_load[idx] = gpu_load.get(idx, 0) + 1
            queued = [Job._from_row(r) for r in conn.execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY created_at, id", (QUEUED,))]
            gpus = max(1, int(getattr(self.backend, "gpu_count", 1) or 1))
            now = time.time()
            for job in queued:
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
                if self._update(conn, job.id, QUEUED, state=RUNNING, started_at=now,
                                heartbeat_at=now, device_assigned=assigned):
                    used[job.slot] = used.get(job.slot, 0) + 1
                    job.state, job.device_assigned, job.started_at = RUNNING, assigned, now
                    to_launch.append(job)
        # Launch outside the transaction: a slow backend must not hold the store's write lock.
        for job in to_launch:
            self._launch(job)

    def _launch(self, job: Job) -> None:
        argv = self.supervisor_argv(job.id) if self.backend.supervised else self.train_argv(job)
        env = {} if self.backend.supervised else self.train_env(job)
        try:
            Path(job.run_dir).mkdir(parents=True, exist_ok=True)
            handle = self.backend.launch(job.id, argv, Path(job.log_path), env)
        except Exception as exc:  # noqa: BLE001 - any launch failure is the job's failure
            log.exception("job %s: launch failed", job.id)
            with self._db(write=True) as conn:
                self._update(conn, job.id, RUNNING, state=FAILED, ended_at=time.time(),
                             reason=f"failed to launch: {exc}")
            return
        pid = start = None
        if isinstance(self.backend, LocalProcessBackend):
            parsed = self.backend._parse(handle)
            pid, start = parsed.pid, parsed.start
        with self._db(write=True) as conn:
            # Unconditional on state: a fast job may already have finished and recorded itself.
            self._update(conn, job.id, None, handle=handle, pid=pid, pid_start=start)


def _result_values(result: dict[str, Any]) -> dict[str, Any]:
    status = result.get("status")
    state = status if status in FINAL_STATES else FAILED
    reason = result.get("reason")
    return {
        "state": state,
        "ended_at": time.time(),
        "result": result,
        "best_epoch": _int_or_none(result.get("best_epoch")),
        "best_val_loss": _float_or_none(result.get("best_val_loss")),
        "device_used": result.get("device"),
        "reason": None if reason in (None, "") else str(reason),
    }


# --------------------------------------------------------------------------------------------
# The supervisor (one per local job; the process-group leader)


def supervise(runs_dir: str | os.PathLike[str], job_id: str, *, grace_s: float = DEFAULT_GRACE_S,
              max_cpu_jobs: int = 1, max_gpu_jobs: int | None = None, gpu_count: int = 0) -> int:
    """Run job `job_id`'s train command, record its outcome, then start queued jobs."""
    backend = LocalProcessBackend(max_cpu_jobs, max_gpu_jobs, gpu_count=gpu_count)
    runner = JobRunner(runs_dir, backend=backend, grace_s=grace_s)
    me, my_start = os.getpid(), process_start_time(os.getpid())
    handle = backend.make_handle(me, my_start)
    with runner._db(write=True) as conn:
        job = runner._fetch(conn, job_id)
        if job is None or job.state != RUNNING:
            print(f"[roastcore jobs] job {job_id} is not running ({job.state if job else 'missing'}); nothing to do",
                  flush=True)
            return 0
        # Record ourselves before the launcher does, so liveness checks never see a gap.
        runner._update(conn, job_id, RUNNING, handle=handle, pid=me, pid_start=my_start,
                       heartbeat_at=time.time())
    if job.cancel_requested_at is not None:
        with runner._db(write=True) as conn:
            runner._update(conn, job_id, RUNNING, state=CANCELLED, ended_at=time.time(),
                           reason="cancelled before its process started")
        runner.refresh()
        return 0

    term_at: list[float] = []
    # The group's SIGTERM also reaches the train process, which stops cooperatively; we only
    # note it and keep waiting so we can record the outcome.
    signal.signal(signal.SIGTERM, lambda *_: term_at.append(time.monotonic()))
    argv = runner.train_argv(job)
    print(f"[roastcore jobs] job {job_id} on {job.device_assigned}: {shlex.join(argv)}", flush=True)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env={**os.environ, **runner.train_env(job)})
    except OSError as exc:
        with runner._db(write=True) as conn:
            runner._update(conn, job_id, RUNNING, state=FAILED, ended_at=time.time(),
                           reason=f"failed to start the train command: {exc}")
        runner.refresh()
        return 1
    with runner._db(write=True) as conn:
        runner._update(conn, job_id, RUNNING, worker_pid=child.pid)

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
            with runner._db(write=True) as conn:
                flagged = conn.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone()[0]
                if flagged is None:
                    runner._update(conn, job_id, RUNNING, cancel_requested_at=time.time())
            if flagged is None:
                # Not a runner's cancel (those flag the store, then signal the whole group):
                # someone signalled us alone, so pass it on. Never a second SIGTERM otherwise:
                # one landing after train restored its handlers would kill it before it reports.
                child.terminate()
        if time.monotonic() >= next_beat:
            next_beat = time.monotonic() + HEARTBEAT_INTERVAL_S
            with runner._db(write=True) as conn:
                runner._update(conn, job_id, RUNNING, heartbeat_at=time.time())
                flagged = conn.execute("SELECT cancel_requested_at FROM jobs WHERE id = ?",
                                       (job_id,)).fetchone()[0]
            if flagged is not None and not term_at and time.time() - flagged > STORE_CANCEL_DELAY_S:
                # Cancel requested through the store only (a runner on another host): no group
                # signal is coming, so stop the train process ourselves.
                child.terminate()
                signalled_child = True
                term_at.append(time.monotonic())
        if term_at and not killed and time.monotonic() - term_at[0] > grace_s:
            print(f"[roastcore jobs] train process ignored SIGTERM for {grace_s:g}s; killing it",
                  flush=True)
            child.kill()
            killed = True

    result = read_final_result(Path(job.log_path))
    if result is not None:
        values = _result_values(result)
    else:
        manifest = _read_json(Path(job.run_dir) / "manifest.json") or {}
        if returncode < 0:
            how = f"killed by signal {signal.Signals(-returncode).name}"
        else:
            how = f"exited with code {returncode}"
        cancelled = bool(term_at)
        tail = tail_text(Path(job.log_path), LOG_TAIL_LINES)
        values = {
            "state": CANCELLED if cancelled else FAILED,
            "ended_at": time.time(),
            "best_epoch": _int_or_none(manifest.get("best_epoch")),
            "best_val_loss": _float_or_none(manifest.get("best_val_loss")),
            "device_used": manifest.get("device"),
            "reason": f"{'cancelled' if cancelled else 'failed'}: train process {how} without reporting a result"
                      + (f"\n--- last log lines ---\n{tail}" if tail else ""),
        }
    if values.get("device_used") is None:
        manifest = _read_json(Path(job.run_dir) / "manifest.json") or {}
        values["device_used"] = manifest.get("device")
    values["exit_code"] = returncode
    with runner._db(write=True) as conn:
        runner._update(conn, job_id, RUNNING, **values)
    print(f"[roastcore jobs] job {job_id} {values['state']} (exit code {returncode})", flush=True)
    # A late cancel must not interrupt starting the next job. (A Python handler, not SIG_IGN:
    # an ignored signal would stay ignored in the processes we launch.)
    signal.signal(signal.SIGTERM, lambda *_: None)
    runner.refresh()
    return 0

"""The job store: one SQLite file (WAL) per runs directory, the only record of every job.

Any number of processes (dashboard tabs, the CLI, supervisors, the watchdog) open it at once.
Each operation is one short transaction; writers take the lock up front (`BEGIN IMMEDIATE`),
and every state change is a conditional `UPDATE ... WHERE state = <from>`, so when several
processes race for one transition exactly one of them makes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STORE_NAME = "jobs.sqlite3"
SCHEMA_VERSION = 2  # 2: sweeps, and jobs.sweep_id/threads/gpu_mem_mb

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, DIVERGED = "succeeded", "failed", "cancelled", "diverged"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED, DIVERGED)

# Timing shared by everyone who writes the store.
HEARTBEAT_INTERVAL_S = 2.0  # supervisors beat, and the watchdog sweeps, this often
STALE_HEARTBEAT_S = 120.0  # a job on another host is dead after this long without a beat
LAUNCH_TIMEOUT_S = 60.0  # a claimed job whose launcher died before its process recorded itself
# A runner's local cancel signals the group right after flagging the store; only a flag older
# than this, with no signal, means the cancel came from somewhere that cannot signal us.
STORE_CANCEL_DELAY_S = 3.0


class JobError(Exception):
    """A user-facing job error (bad input, refused operation, unusable runs directory)."""


class JobNotFound(JobError):
    pass


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
    sweep_id: str | None = None  # the sweep this job belongs to, if any
    threads: int | None = None  # torch threads it runs with (CPU jobs) / holds (GPU jobs)
    gpu_mem_mb: float | None = None  # estimated peak GPU memory (GPU jobs), for packing

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
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(row)
        values["overrides"] = json.loads(values["overrides"] or "{}")
        values["result"] = json.loads(values["result"]) if values["result"] else None
        return cls(**values)


_COLUMNS = [f.name for f in dataclasses.fields(Job)]


@dataclasses.dataclass
class SweepRecord:
    """A sweep as stored: its jobs are the rows of `jobs` with its id in `sweep_id`."""

    id: str
    name: str
    spec: dict[str, Any]  # what was asked: presets, grid, seeds, data, epochs, device, backend
    spec_key: str  # identity of the asked-for job set: an identical active sweep is reused
    backend: str
    created_at: float
    cancel_requested_at: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SweepRecord:
        values = dict(row)
        values["spec"] = json.loads(values["spec"] or "{}")
        return cls(**values)

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
    result TEXT,
    sweep_id TEXT,
    threads INTEGER,
    gpu_mem_mb REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_identity ON jobs (config_key, data_fingerprint, state);
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    spec_key TEXT NOT NULL,
    backend TEXT NOT NULL,
    created_at REAL NOT NULL,
    cancel_requested_at REAL
);
"""
# Created after the migration below: an old store gains the column first.
_INDEXES = "CREATE INDEX IF NOT EXISTS jobs_sweep ON jobs (sweep_id, created_at);"
# Columns added since version 1, for stores created before them (migrated in place).
_ADDED_COLUMNS = (("sweep_id", "TEXT"), ("threads", "INTEGER"), ("gpu_mem_mb", "REAL"))


class JobStore:
    """`RUNS/jobs.sqlite3`: connections, transactions and the conditional transitions."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _error(self, exc: sqlite3.Error, doing: str) -> JobError:
        """One line naming the file: a corrupt file gets a recovery hint instead of a traceback."""
        name = getattr(exc, "sqlite_errorname", "")
        corrupt = name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or (
            isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError))
        if corrupt:
            return JobError(
                f"job store {self.path} is damaged ({exc}); move it aside with its -wal and -shm "
                f"files (e.g. `mv {self.path} {self.path}.bad`) and a new, empty store is created "
                "on next use; the jobs it recorded are then forgotten, their run directories stay")
        return JobError(f"job store {self.path}: {doing}: {exc}")

    def connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise JobError(f"cannot open the job store {self.path}: {exc} "
                           "(is the runs directory writable?)") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "cannot open it") from exc
        return conn

    def init(self) -> None:
        """Create the file and schema, or bring an older store up to date in place
        (idempotent; safe when several processes open a store at once)."""
        conn = self.connect()
        try:
            # WAL lets readers (dashboards) proceed while a supervisor writes.
            conn.execute("PRAGMA journal_mode = WAL")
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")  # one migrator at a time; others see it done
                try:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    have = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
                    for column, kind in _ADDED_COLUMNS:
                        if column not in have:
                            conn.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                    conn.execute(_INDEXES)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot initialise it (is the runs directory writable?)") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction. Writers take the lock up front (BEGIN IMMEDIATE) so a
        read-then-write cannot interleave with another process's."""
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "write" if write else "read") from exc
        finally:
            conn.close()

    @staticmethod
    def update(conn: sqlite3.Connection, job_id: str, expect_state: str | None,
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

    @staticmethod
    def fetch(conn: sqlite3.Connection, job_id: str) -> Job | None:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    @staticmethod
    def in_state(conn: sqlite3.Connection, state: str) -> list[Job]:
        """Jobs in `state`, oldest first."""
        rows = conn.execute("SELECT * FROM jobs WHERE state = ? ORDER BY created_at, id", (state,))
        return [Job.from_row(r) for r in rows]

    @staticmethod
    def insert(conn: sqlite3.Connection, job: Job) -> None:
        values = dataclasses.asdict(job)
        values["overrides"] = json.dumps(job.overrides)
        values["result"] = None if job.result is None else json.dumps(job.result)
        conn.execute(
            f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            [values[c] for c in _COLUMNS],
        )

    @staticmethod
    def insert_sweep(conn: sqlite3.Connection, sweep: SweepRecord) -> None:
        values = dataclasses.asdict(sweep)
        values["spec"] = json.dumps(sweep.spec, sort_keys=True)
        names = list(values)
        conn.execute(f"INSERT INTO sweeps ({', '.join(names)}) "
                     f"VALUES ({', '.join('?' * len(names))})", [values[n] for n in names])

    @staticmethod
    def fetch_sweep(conn: sqlite3.Connection, sweep_id: str) -> SweepRecord | None:
        row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        return SweepRecord.from_row(row) if row else None

"""Where job processes run: the `Backend` seam, the local-process backend and /proc utilities.

The runner never starts or signals a process itself; it asks a `Backend` (see
docs/architecture.md, "Scale-out"). `LocalProcessBackend` starts each job in a new process
session, so the whole group can be signalled, and names it by a handle that survives pid reuse
and reboots: `host|boot_id|pid|starttime`. Liveness comes from Linux /proc (a zombie or a pid
reused by another process is not alive) and degrades to os.kill where /proc is absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from roastcore.jobs.resources import Limits
from roastcore.jobs.store import Job, JobError

log = logging.getLogger(__name__)


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
    except OSError:
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


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def start_detached(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `argv` in a new session (its own process group), stdout+stderr appended to
    `log_path`, so it outlives the caller and its group can be signalled as one."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
            close_fds=True,
        )


# --------------------------------------------------------------------------------------------
# Backends


@runtime_checkable
class Backend(Protocol):
    """Where job processes run. See docs/architecture.md, "Scale-out: the launcher backend"."""

    name: str
    # True: the launched argv is the local supervisor, which records the final state itself.
    supervised: bool
    # True: the backend queues and places jobs itself (Ray): the runner hands every job over at
    # submit and follows its state with poll(); False: the runner packs jobs into limits().
    queues: bool

    def launch(self, job: Job, argv: list[str], env: dict[str, str]) -> str:
        """Start `argv` for `job`; return a handle (pid or submission id) for the calls below."""

    def is_alive(self, handle: str) -> bool | None:
        """True/False, or None when this process cannot tell (another host, unreachable)."""

    def terminate(self, handle: str, grace_s: float) -> None:
        """Ask the job to stop, wait up to grace_s, then force it."""

    def limits(self) -> Limits:
        """What jobs may use together: CPU threads, GPUs and their memory."""


class LocalHandle(NamedTuple):
    same_host: bool
    same_boot: bool
    pid: int
    start: int | None


class LocalProcessBackend:
    """Run jobs as local processes, each in a new session (so cancel can signal the group)."""

    name = "local"
    supervised = True
    queues = False

    def __init__(self, limits: Limits | None = None):
        self._limits = limits
        self._host = socket.gethostname()
        self._boot = boot_id()
        # Children we started: polling them reaps zombies promptly.
        self._children: dict[int, subprocess.Popen] = {}

    def limits(self) -> Limits:
        if self._limits is None:
            self._limits = Limits.resolve()
        return self._limits

    def launch(self, job: Job, argv: list[str], env: dict[str, str]) -> str:
        pid = self.spawn(argv, Path(job.log_path), env)
        log.debug("job %s: launched pid %s: %s", job.id, pid, shlex.join(argv))
        return self.make_handle(pid, process_start_time(pid))

    def spawn(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
        """Start a detached local process (a supervisor, the watchdog); return its pid."""
        proc = start_detached(argv, log_path, env or {})
        self._children[proc.pid] = proc
        return proc.pid

    def make_handle(self, pid: int, start: int | None) -> str:
        return f"{self._host}|{self._boot}|{pid}|{start if start is not None else ''}"

    def parse(self, handle: str) -> LocalHandle:
        try:
            host, boot, pid, start = handle.split("|")
            return LocalHandle(host == self._host, boot == self._boot, int(pid),
                               int(start) if start else None)
        except ValueError:
            raise JobError(f"not a local process handle: {handle!r}") from None

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                self._children.pop(pid, None)  # pop: another thread may reap it too

    def is_alive(self, handle: str) -> bool | None:
        same_host, same_boot, pid, start = self.parse(handle)
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
        same_host, same_boot, pid, start = self.parse(handle)
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

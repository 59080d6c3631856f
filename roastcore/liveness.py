"""Liveness markers: a process holds an flock on a file for as long as it lives.

The kernel drops an flock when its holder exits, however it exits (kill -9 and the OOM killer
included), so "nobody holds the marker" truthfully means "its process is gone", with no pid to
be reused and no clock to trust. A training run holds `run.lock` in its run directory while it
writes (roastcore.checkpoints), and the jobs watchdog holds one per runs directory
(roastcore.jobs). flock locks belong to an open file, not to a process: two opens in one process
also exclude each other, so a check from the writer's own process is truthful too. Where fcntl
is missing (Windows) nothing is locked and every check answers "cannot tell" (None).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]


class Marker:
    """A held marker; `release()` (or the holder's exit) frees it."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self._fd = fd

    def release(self, unlink: bool = False) -> None:
        """Free the marker; with `unlink`, remove the file first, so that readers who find no
        file know the holder finished (rather than died)."""
        if unlink:
            with contextlib.suppress(OSError):
                self.path.unlink()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __del__(self):
        with contextlib.suppress(Exception):  # at interpreter exit, modules may be gone
            self.release()


def hold(path: str | os.PathLike, *, wait_s: float = 0.0, create: bool = True) -> Marker | None:
    """Hold `path` exclusively (creating it unless `create` is False); None if another live
    process holds it for longer than `wait_s`, or the file is absent and `create` is False."""
    path = Path(path)
    deadline = time.monotonic() + max(wait_s, 0.0)
    while True:
        # A reader taking over a dead holder's marker opens it read-only (flock does not mind),
        # so that works on a read-only copy of a run too.
        flags = os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
        except OSError:
            if create:
                raise
            return None
        if fcntl is None:
            return Marker(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        # The holder we waited for may have removed the file: then we locked a file nobody
        # else can find, and must lock the one at `path` instead.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            if not create:
                return None
            continue
        with contextlib.suppress(OSError):  # who holds it, for a human reading the file
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return Marker(path, fd)


def is_held(path: str | os.PathLike) -> bool | None:
    """True: a live process holds the marker. False: the file exists and nobody holds it (its
    holder died or released it without removing it). None: no such file, or cannot tell."""
    if fcntl is None:
        return None
    try:
        fd = os.open(Path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        return False  # closing the file below drops our shared lock at once
    finally:
        os.close(fd)

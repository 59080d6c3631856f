"""A throwaway Ray head on this machine, loopback only: for tests, benchmarks and trying the Ray
backend on a laptop (docs/scale-out.md).

`LocalRayCluster(num_cpus=2).start()` runs `ray start --head --node-ip-address 127.0.0.1
--dashboard-host 127.0.0.1` on free ports with its own temp directory, waits for the job server,
and `stop()` ends exactly the processes of that head (its process group and everything they
started), not every Ray process of the user as `ray stop` would. Every port it opens (GCS,
raylet, object manager, agents, the Jobs API) listens on 127.0.0.1 only: on Linux Ray replaces a
loopback `--node-ip-address` with the machine's address unless it runs as a single-machine
cluster (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, its macOS/Windows default), which the head and
its jobs are given. `listening()` reports the addresses, so tests can check it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from roastcore.jobs.store import JobError

log = logging.getLogger(__name__)

# The ports a head opens; each gets a free one so several heads (and other programs) coexist.
_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
               "--object-manager-port", "--dashboard-agent-listen-port",
               "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_available() -> bool:
    try:
        import ray  # noqa: F401  # here: only to tell whether it is installed
    except ImportError:
        return False
    return True


def _children_of(pids: set[int]) -> set[int]:
    """Every live descendant of `pids` (by /proc parent links)."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                raw = Path(f"/proc/{entry.name}/stat").read_text()
                parent[int(entry.name)] = int(raw[raw.rfind(")") + 2:].split()[1])
    found, frontier = set(pids), set(pids)
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - found
        found |= frontier
    return found


def _group(pgid: int) -> set[int]:
    members = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                raw = Path(f"/proc/{entry.name}/stat").read_text()
                if int(raw[raw.rfind(")") + 2:].split()[2]) == pgid:
                    members.add(int(entry.name))
    return members


class LocalRayCluster:
    """A Ray head with a job server on 127.0.0.1; `address` is its dashboard URL."""

    def __init__(self, num_cpus: int = 2, num_gpus: int = 0, temp_dir: str | None = None,
                 env: dict[str, str] | None = None):
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        # Short: Ray's socket paths live under it and must stay under 108 characters.
        self._own_temp = temp_dir is None
        self.temp_dir = Path(temp_dir or tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        # Single-machine mode: the only way Ray keeps a loopback node address on Linux.
        self.env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **(env or {})}
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.address = f"http://127.0.0.1:{self.ports['--dashboard-port']}"
        self._pgid: int | None = None

    def start(self, timeout_s: float = 180.0) -> LocalRayCluster:
        argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
                "--include-dashboard", "true", "--disable-usage-stats",
                "--num-cpus", str(self.num_cpus), "--num-gpus", str(self.num_gpus),
                "--object-store-memory", str(100 * 2**20), "--temp-dir", str(self.temp_dir)]
        for flag, port in self.ports.items():
            argv += [flag, str(port)]
        out = self.temp_dir / "ray-start.log"
        with open(out, "ab") as fh:
            # Its own session: every head process joins this group, which stop() ends.
            proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                                    start_new_session=True, stdin=subprocess.DEVNULL)
        self._pgid = proc.pid
        try:
            code = proc.wait(timeout=timeout_s)
            if code != 0:
                raise JobError(f"`ray start --head` failed (exit {code}); see {out}:\n"
                               + "\n".join(out.read_text(errors="replace").splitlines()[-15:]))
            self._wait_ready(time.monotonic() + timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info("local Ray head on %s (temp dir %s)", self.address, self.temp_dir)
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.address}/api/version", timeout=5) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.5)
        raise JobError(f"the local Ray head's job server at {self.address} did not answer")

    def stop(self, grace_s: float = 5.0) -> None:
        """End this head's processes: its group and all their descendants (Ray workers leave
        the group; job entrypoints start sessions of their own)."""
        if self._pgid is None:
            return
        pids = _children_of(_group(self._pgid)) - {os.getpid()}
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                pids = {p for p in pids if _alive(p)}
                if not pids:
                    break
                time.sleep(0.1)
            if not pids:
                break
        self._pgid = None
        if self._own_temp:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) of every TCP socket this head's processes listen on, from /proc."""
        if self._pgid is None:
            return set()
        inodes: set[str] = set()
        for pid in _children_of(_group(self._pgid)) - {os.getpid()}:
            with contextlib.suppress(OSError):
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(fd.path)
                        if target.startswith("socket:["):
                            inodes.add(target[8:-1])
        found = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for row in Path(table).read_text().splitlines()[1:]:
                    cols = row.split()
                    if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                        found.add(_proc_address(cols[1]))
        return found

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _proc_address(field: str) -> tuple[str, int]:
    """/proc/net/tcp{,6}'s "HEXADDR:HEXPORT" (address in host byte order per 32-bit word)."""
    hex_ip, hex_port = field.split(":")
    raw = b"".join(bytes.fromhex(hex_ip[i:i + 8])[::-1] for i in range(0, len(hex_ip), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip), int(hex_port, 16)

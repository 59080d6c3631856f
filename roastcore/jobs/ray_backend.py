"""RayJobsBackend: training jobs as Ray Jobs on a Ray cluster (docs/scale-out.md).

Each job is submitted through the Ray Jobs API (`JobSubmissionClient`, the dashboard's HTTP
address in `RAY_ADDRESS`) with the same `python -m roastcore train ...` command a local job runs,
asking for its resources (`entrypoint_num_cpus` = its threads, a fraction of a GPU for GPU
jobs), so Ray queues and packs them over the cluster. Our SQLite store stays the source of
truth: every runner read polls Ray once for all active jobs (`poll_all`) and records what it
says. The submission id is fixed by the job id (`roastcore-<id>`), so a runner that dies mid-way
or restarts finds its jobs again.

Run directories must live on storage every node mounts: `check_storage` has a tiny Ray task on
every alive node look for a marker the submitter just wrote, and each entrypoint refuses to run
where the runs directory is not visible.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shlex
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from roastcore import fsutil
from roastcore.jobs.resources import GPU_MEM_HEADROOM, Limits
from roastcore.jobs.store import QUEUED, RUNNING, Job, JobError

log = logging.getLogger(__name__)

RUNS_MARKER = ".roastcore-runs"  # in the runs directory; entrypoints check they can see it
STORAGE_CACHE = "jobs.ray-storage.json"  # nodes that passed the storage check, and when
STORAGE_CACHE_S = 3600.0
CHECK_TIMEOUT_S = 120.0
UNREACHABLE_RETRY_S = 15.0
LIMITS_CACHE_S = 10.0  # after a failed connection, reads skip Ray this long
MISSING_EXIT = 97  # the entrypoint's exit code when the runs directory is not visible
_ACTIVE = ("PENDING", "RUNNING")


@dataclasses.dataclass
class RemoteStatus:
    """One job as the cluster sees it, in our terms."""

    state: str  # QUEUED, RUNNING, "finished" or "missing" (the cluster does not know it)
    detail: str = ""  # the cluster's own status name
    message: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    where: str | None = None  # the node the entrypoint runs on
    stopped: bool = False  # ended by a stop request


def submission_id(job: Job) -> str:
    return f"roastcore-{job.id}"


def parse_handle(handle: str) -> tuple[str, str]:
    """(address, submission id) from a Ray job handle `ray|ADDRESS|SUBMISSION_ID`."""
    parts = handle.split("|")
    if len(parts) != 3 or parts[0] != "ray":
        raise JobError(f"not a Ray job handle: {handle!r}")
    return parts[1], parts[2]


def normalize_address(address: str) -> str:
    """The dashboard's HTTP address (what the Jobs API talks to), from RAY_ADDRESS's forms."""
    text = address.strip().rstrip("/")
    if text.startswith("ray://"):
        raise JobError(f"RAY_ADDRESS {address!r} is a Ray Client address; the Jobs API needs the "
                       "dashboard's HTTP address, e.g. http://HEAD:8265")
    if "://" not in text:
        text = "http://" + text
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise JobError(f"RAY_ADDRESS {address!r}: expected the dashboard's address, e.g. "
                       "http://HEAD:8265")
    return text


def gpu_fraction(job: Job, limits: Limits) -> float:
    """The share of one GPU a job asks Ray for: its estimated memory over a GPU's usable memory
    (when known), and never less than 1/jobs_per_gpu, so at most that many share a GPU."""
    share = 1.0 / limits.jobs_per_gpu
    if limits.gpu_mem_mb:
        share = max(share, (job.gpu_mem_mb or 0.0) / (limits.gpu_mem_mb * GPU_MEM_HEADROOM))
    return min(1.0, float(f"{share + 0.005:.2f}"))  # rounded up to a hundredth


class RayJobsBackend:
    """Jobs as Ray Jobs on the cluster at `address` (default: $RAY_ADDRESS)."""

    name = "ray"
    supervised = False
    queues = True

    def __init__(self, address: str | None = None, *, python: str | None = None,
                 limits: Limits | None = None, connect_timeout_s: float = 3.0):
        raw = address if address is not None else os.environ.get("RAY_ADDRESS", "")
        if not raw or not raw.strip():
            raise JobError("the Ray backend needs the cluster's dashboard address: set "
                           "RAY_ADDRESS (e.g. http://HEAD:8265); see docs/scale-out.md")
        self.address = normalize_address(raw)
        # The cluster's python, which must have roastcore installed (docs/scale-out.md).
        self.python = python or os.environ.get("ROASTCORE_RAY_PYTHON") or "python"
        self._local_limits = limits  # jobs_per_gpu, GPU memory: how to size GPU shares
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._down_until = 0.0
        self._limits_cache: tuple[float, Limits] | None = None

    # ---- connection

    def client(self) -> Any:
        """The JobSubmissionClient; JobError naming the address when the cluster is not there."""
        if self._client is not None:
            return self._client
        parsed = urlparse(self.address)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            # A plain connect first: a clear error in seconds instead of a long HTTP retry.
            socket.create_connection((parsed.hostname, port), timeout=self.connect_timeout_s).close()
            # Here, not at the top: ray is only needed (and only installed) for this backend.
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.address)
        except ImportError as exc:
            raise JobError(f"the Ray backend needs ray installed (pip install 'ray[default]'): "
                           f"{exc}") from exc
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the same user error
            self._down_until = time.monotonic() + UNREACHABLE_RETRY_S
            raise JobError(f"cannot reach the Ray cluster at {self.address}: {exc}; is "
                           "`ray start --head --dashboard-host ...` running there with its "
                           "dashboard port open?") from exc
        return self._client

    def _client_or_none(self) -> Any:
        """For reads: None while the cluster is unreachable (jobs then keep their state)."""
        if self._client is None and time.monotonic() < self._down_until:
            return None
        try:
            return self.client()
        except JobError as exc:
            log.warning("%s", exc)
            return None

    def limits(self) -> Limits:
        """The cluster's capacity: CPUs and GPUs of its alive nodes (asked at most every
        LIMITS_CACHE_S: a sweep prepares many jobs in a row)."""
        if self._limits_cache and time.monotonic() - self._limits_cache[0] < LIMITS_CACHE_S:
            return self._limits_cache[1]
        local = self._local_limits or Limits.resolve()
        cpus = gpus = 0.0
        for node in self.nodes():
            cpus += node["resources"].get("CPU", 0.0)
            gpus += node["resources"].get("GPU", 0.0)
        limits = dataclasses.replace(local, cpu_threads=int(cpus), gpus=int(gpus),
                                     max_cpu_jobs=None, max_gpu_jobs=None)
        self._limits_cache = (time.monotonic(), limits)
        return limits

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes: id, ip and total resources (the state API, over the same address)."""
        self.client()
        try:
            from ray.util.state import list_nodes  # here: see client()

            states = list_nodes(address=self.address, timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported as one line naming the address
            raise JobError(f"cannot list the nodes of the Ray cluster at {self.address}: "
                           f"{exc}") from exc
        return [{"id": n.node_id, "ip": n.node_ip, "resources": dict(n.resources_total or {})}
                for n in states if n.state == "ALIVE"]

    # ---- submitting

    def prepare(self, runs_dir: Path, paths: list[Path]) -> None:
        """Before anything is queued: the cluster answers and every node sees the runs
        directory (and `paths`, e.g. the data). Raises JobError otherwise."""
        self.client()
        marker = runs_dir / RUNS_MARKER
        if not marker.is_file():
            fsutil.atomic_write_text(marker, "roastcore runs directory; Ray entrypoints check "
                                             "that they can see this file\n")
        self.check_storage(runs_dir, paths)

    def check_storage(self, runs_dir: Path, paths: list[Path]) -> None:
        """A marker written here must be visible, with its content, on every alive node (a tiny
        Ray task pinned to each); so must `paths`. Cached per set of nodes for an hour."""
        nodes = sorted(n["id"] for n in self.nodes())
        wanted = sorted(str(p) for p in paths)
        cache_path = runs_dir / STORAGE_CACHE
        cached = _read_json(cache_path)
        if (cached.get("address") == self.address and cached.get("nodes") == nodes
                and set(wanted) <= set(cached.get("paths", []))
                and time.time() - float(cached.get("checked_at", 0)) < STORAGE_CACHE_S):
            return
        token = secrets.token_hex(8)
        probe = runs_dir / f".ray-storage-check-{token}"
        fsutil.atomic_write_text(probe, token)
        try:
            report = self._run_check({str(probe): token, **{p: "" for p in wanted}})
        finally:
            probe.unlink(missing_ok=True)
        missing = [f"{r['path']} on node {r['node']}" for r in report if not r["ok"]]
        if missing:
            raise JobError(
                f"run directories must be on storage every Ray node sees, and these are not: "
                f"{'; '.join(missing)} (the runs directory is {runs_dir}); mount it at the same "
                "path on every node (docs/scale-out.md)")
        fsutil.atomic_write_json(cache_path, {"address": self.address, "nodes": nodes,
                                              "paths": wanted, "checked_at": time.time()})

    def _run_check(self, expect: dict[str, str]) -> list[dict[str, Any]]:
        """Submit the storage check as a zero-CPU Ray job and return its per-node report."""
        client = self.client()
        argv = [self.python, "-m", "roastcore", "jobs", "_ray_check", json.dumps(expect)]
        sid = client.submit_job(entrypoint=shlex.join(argv), entrypoint_num_cpus=0,
                                metadata={"roastcore": "storage-check"})
        deadline = time.monotonic() + CHECK_TIMEOUT_S
        while True:
            status = str(client.get_job_status(sid).value)
            if status not in _ACTIVE:
                break
            if time.monotonic() > deadline:
                client.stop_job(sid)
                raise JobError(f"the storage check on the Ray cluster at {self.address} did not "
                               f"finish in {CHECK_TIMEOUT_S:.0f}s (Ray job {sid})")
            time.sleep(0.25)
        logs = client.get_job_logs(sid)
        for line in reversed(logs.splitlines()):
            if line.startswith("ROASTCORE_CHECK "):
                return json.loads(line[len("ROASTCORE_CHECK "):])
        tail = "\n".join(logs.splitlines()[-10:])
        raise JobError(f"the storage check on the Ray cluster at {self.address} failed ({status});"
                       f" is roastcore installed for `{self.python}` on the cluster?\n{tail}")

    def launch(self, job: Job, argv: list[str], env: dict[str, str]) -> str:
        """Submit `argv` as a Ray job asking for the job's resources; return its handle."""
        client = self.client()
        sid = submission_id(job)
        runs_dir = Path(job.run_dir).parent
        guard = (f"test -f {shlex.quote(str(runs_dir / RUNS_MARKER))} || {{ echo \"roastcore: the "
                 f"runs directory {shlex.quote(str(runs_dir))} is not visible on node "
                 f"$(hostname); put it on storage every node mounts (docs/scale-out.md)\" >&2; "
                 f"exit {MISSING_EXIT}; }}")
        kwargs: dict[str, Any] = {"entrypoint_num_cpus": float(job.threads or 1)}
        if job.slot == "cuda":
            kwargs["entrypoint_num_gpus"] = gpu_fraction(job, self._local_limits or Limits.resolve())
        try:
            client.submit_job(entrypoint=f"{guard}; exec {shlex.join(argv)}", submission_id=sid,
                              runtime_env={"env_vars": env}, **kwargs,
                              metadata={"roastcore_job": job.id, "run_dir": job.run_dir,
                                        "sweep": job.sweep_id or ""})
        except Exception as exc:  # noqa: BLE001 - re-raised below unless it is ours already
            if "already exists" not in str(exc):
                raise JobError(f"the Ray cluster at {self.address} refused job {job.id}: "
                               f"{exc}") from exc
            log.info("job %s was already submitted to Ray as %s", job.id, sid)
        return f"ray|{self.address}|{sid}"

    # ---- following

    def poll_all(self, handles: list[str]) -> dict[str, RemoteStatus | None]:
        """Every handle's status from one request; None for all while unreachable."""
        client = self._client_or_none()
        if client is None:
            return dict.fromkeys(handles)
        try:
            known = {j.submission_id: j for j in client.list_jobs() if j.submission_id}
        except Exception as exc:  # noqa: BLE001 - a read must not fail on a flaky cluster
            log.warning("cannot list the jobs of the Ray cluster at %s: %s", self.address, exc)
            self._client, self._down_until = None, time.monotonic() + UNREACHABLE_RETRY_S
            return dict.fromkeys(handles)
        out: dict[str, RemoteStatus | None] = {}
        for handle in handles:
            details = known.get(parse_handle(handle)[1])
            out[handle] = RemoteStatus("missing") if details is None else _status(details)
        return out

    def is_alive(self, handle: str) -> bool | None:
        status = self.poll_all([handle])[handle]
        return None if status is None else status.state in (QUEUED, RUNNING)

    def logs(self, handle: str) -> str | None:
        """The job's output as Ray keeps it; None while unreachable."""
        client = self._client_or_none()
        if client is None:
            return None
        try:
            return client.get_job_logs(parse_handle(handle)[1])
        except Exception as exc:  # noqa: BLE001 - a read must not fail on a flaky cluster
            log.warning("cannot read the logs of %s: %s", handle, exc)
            return None

    def terminate(self, handle: str, grace_s: float) -> None:
        """Ray's stop: SIGTERM to the entrypoint's processes, SIGKILL after the cluster's
        RAY_JOB_STOP_WAIT_TIME_S (3 s by default); a pending job just never starts. Waits for
        the job to end, up to grace_s plus a margin for the cluster's own steps."""
        client = self.client()
        sid = parse_handle(handle)[1]
        try:
            client.stop_job(sid)
        except Exception as exc:  # noqa: BLE001 - one line naming the address
            if "does not exist" in str(exc):
                return
            raise JobError(f"cannot stop Ray job {sid} at {self.address}: {exc}") from exc
        deadline = time.monotonic() + max(grace_s, 0.0) + 15.0
        while time.monotonic() < deadline:
            if str(client.get_job_status(sid).value) not in _ACTIVE:
                return
            time.sleep(0.2)
        log.warning("Ray job %s still not stopped after %.0fs", sid, grace_s + 15)


def _status(details: Any) -> RemoteStatus:
    status = str(getattr(details.status, "value", details.status))
    where = None
    if details.driver_agent_http_address:
        where = "ray@" + (urlparse(details.driver_agent_http_address).hostname or "?")
    started = details.start_time / 1000 if details.start_time else None
    ended = details.end_time / 1000 if details.end_time else None
    state = {"PENDING": QUEUED, "RUNNING": RUNNING}.get(status, "finished")
    return RemoteStatus(state=state, detail=status, message=details.message or "",
                        started_at=started, ended_at=ended, exit_code=details.driver_exit_code,
                        where=where, stopped=status == "STOPPED")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_here(expect: dict[str, str]) -> list[dict[str, Any]]:
    """Run inside a Ray job (`jobs _ray_check`): on every alive node, a zero-CPU task pinned
    there checks each path exists (and, where given, holds the expected text)."""
    import ray  # here: runs on the cluster only
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(logging_level="ERROR", log_to_driver=False)

    @ray.remote(num_cpus=0)
    def look(expected: dict[str, str]) -> list[tuple[str, bool]]:
        seen = []
        for path, text in expected.items():
            try:
                ok = os.path.exists(path) and (not text or Path(path).read_text() == text)
            except OSError:
                ok = False
            seen.append((path, ok))
        return seen

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(expect) for n in nodes]
    report = []
    for node, seen in zip(nodes, ray.get(refs, timeout=CHECK_TIMEOUT_S), strict=True):
        name = f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
        report += [{"node": name, "path": path, "ok": ok} for path, ok in seen]
    return report

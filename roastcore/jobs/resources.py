"""Slots sized by resources: what a job asks for, what a machine has, and which queued jobs fit.

A CPU job declares its torch threads (small and sequential models train fastest on one, so a
2-core laptop runs two of them at once and a 16-core box sixteen). A GPU job shares its GPU
with others, bounded by an estimate of its memory (parameters, batch and length) and by a
maximum number of jobs per GPU; it also holds one CPU thread for its Python loop.

Limits come from, strongest first: arguments, environment variables, `RUNS/jobs.config.json`
(or the file `ROASTCORE_JOBS_CONFIG` names), then defaults from `os.cpu_count()` and the
detected GPUs. See docs/scale-out.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from roastcore.jobs.store import JobError

CONFIG_NAME = "jobs.config.json"
DEFAULT_JOBS_PER_GPU = 8
DEFAULT_MAX_SWEEP_JOBS = 200
GPU_MEM_HEADROOM = 0.9  # jobs may plan on this share of a GPU's memory
CUDA_CONTEXT_MB = 500.0  # what every CUDA process pays before its first tensor (measured ~300-500)
# CPU training of models up to this width, and of any model that steps sequentially, runs on
# one torch thread: thread hand-offs cost more than they give on tiny tensors (train._threads
# measures the same). Wider teacher-forced transformers get BIG_MODEL_THREADS.
SMALL_MODEL_MAX_D_MODEL = 128
BIG_MODEL_THREADS = 4

# (name, env var, type, minimum) of every limit a user can set.
_SETTINGS = (
    ("cpu_threads", "ROASTCORE_CPU_THREADS", int, 0),
    ("gpus", "ROASTCORE_GPUS", int, 0),
    ("jobs_per_gpu", "ROASTCORE_JOBS_PER_GPU", int, 1),
    ("gpu_mem_mb", "ROASTCORE_GPU_MEM_MB", float, 0),
    ("max_cpu_jobs", "ROASTCORE_MAX_CPU_JOBS", int, 0),
    ("max_gpu_jobs", "ROASTCORE_MAX_GPU_JOBS", int, 0),
    ("max_sweep_jobs", "ROASTCORE_MAX_SWEEP_JOBS", int, 1),
)
_SETTING_NAMES = {name for name, *_ in _SETTINGS}


@dataclasses.dataclass(frozen=True)
class Limits:
    """What local jobs may use together on this machine."""

    cpu_threads: int  # torch threads all running jobs may use together
    gpus: int = 0
    jobs_per_gpu: int = DEFAULT_JOBS_PER_GPU
    gpu_mem_mb: float | None = None  # per GPU; None: unknown, only jobs_per_gpu bounds a GPU
    max_cpu_jobs: int | None = None  # an extra cap on concurrent CPU jobs (0: none start)
    max_gpu_jobs: int | None = None  # an extra cap on concurrent GPU jobs, all GPUs together
    max_sweep_jobs: int = DEFAULT_MAX_SWEEP_JOBS  # a bigger sweep needs force

    def __post_init__(self):
        for name, _env, kind, minimum in _SETTINGS:
            value = getattr(self, name)
            if value is None and name in ("gpu_mem_mb", "max_cpu_jobs", "max_gpu_jobs"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    kind is int and not isinstance(value, int)) or value < minimum:
                raise JobError(f"job limits: {name} must be {'an integer' if kind is int else 'a number'}"
                               f" >= {minimum}, got {value!r}")

    @property
    def gpu_slots(self) -> int:
        """How many GPU jobs may run at once, all GPUs together."""
        total = self.gpus * self.jobs_per_gpu
        return total if self.max_gpu_jobs is None else min(total, self.max_gpu_jobs)

    def to_args(self) -> list[str]:
        """These limits as `jobs _supervise/_watchdog` options (see cli/jobs.py)."""
        args = []
        for name, *_ in _SETTINGS:
            value = getattr(self, name)
            if value is not None:
                args += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float)
                         else str(value)]
        return args

    @classmethod
    def resolve(cls, runs_dir: str | os.PathLike[str] | None = None, **given: Any) -> Limits:
        """Limits from `given` (None = not given), else the environment, else the config file,
        else the defaults (all cores, the detected GPUs and their memory)."""
        unknown = set(given) - _SETTING_NAMES
        if unknown:
            raise JobError(f"job limits: unknown setting(s) {', '.join(sorted(unknown))}")
        from_file = _read_config(runs_dir)
        values: dict[str, Any] = {}
        for name, env, kind, _minimum in _SETTINGS:
            if given.get(name) is not None:
                values[name] = given[name]
            elif os.environ.get(env, "").strip():
                values[name] = _parse(env, os.environ[env], kind)
            elif from_file.get(name) is not None:
                values[name] = _parse(f"{from_file['__path__']}: {name}", from_file[name], kind)
        if "cpu_threads" not in values:
            values["cpu_threads"] = os.cpu_count() or 1
        if "gpus" not in values:
            values["gpus"] = detect_gpu_count()
        if "gpu_mem_mb" not in values and values["gpus"]:
            memory = detect_gpu_memory_mb()
            values["gpu_mem_mb"] = min(memory) if memory else None
        return cls(**values)


def _parse(where: str, raw: Any, kind: type) -> int | float:
    try:
        if kind is int and not (isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit())):
            raise ValueError
        return kind(raw)
    except (TypeError, ValueError):
        raise JobError(f"{where}: expected {'an integer' if kind is int else 'a number'}, "
                       f"got {raw!r}") from None


def config_path(runs_dir: str | os.PathLike[str] | None) -> Path | None:
    named = os.environ.get("ROASTCORE_JOBS_CONFIG", "").strip()
    if named:
        return Path(named).expanduser()
    return None if runs_dir is None else Path(runs_dir) / CONFIG_NAME


def _read_config(runs_dir: str | os.PathLike[str] | None) -> dict[str, Any]:
    path = config_path(runs_dir)
    if path is None or not path.is_file():
        if path is not None and os.environ.get("ROASTCORE_JOBS_CONFIG", "").strip():
            raise JobError(f"ROASTCORE_JOBS_CONFIG names {path}, which does not exist")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise JobError(f"job limits file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise JobError(f"job limits file {path}: expected a JSON object of limits")
    unknown = set(data) - _SETTING_NAMES
    if unknown:
        raise JobError(f"job limits file {path}: unknown setting(s) {', '.join(sorted(unknown))};"
                       f" known: {', '.join(sorted(_SETTING_NAMES))}")
    return {**data, "__path__": str(path)}


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
        import torch  # here, not at the top: `jobs list` must not pay for torch

        # device_count() uses NVML and does not initialise CUDA, so it is safe before fork.
        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no usable torch/CUDA simply means no GPU slots
        return 0


@functools.lru_cache(maxsize=1)
def detect_gpu_memory_mb() -> tuple[float, ...]:
    """Total memory of each visible NVIDIA GPU in MiB, from nvidia-smi (no CUDA initialised in
    this process); empty when it cannot tell."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run([smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return tuple(float(line) for line in out.split() if line.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return ()


# --------------------------------------------------------------------------------------------
# What a job asks for


@dataclasses.dataclass(frozen=True)
class Demand:
    threads: int  # torch threads (CPU jobs); GPU jobs hold one thread for their Python loop
    gpu_mem_mb: float  # estimated peak GPU memory; 0 for CPU jobs


def default_threads(experiment: Any, limits: Limits | None = None) -> int:
    """Torch threads a CPU job of `experiment` declares: 1 for small or sequential models (GRUs,
    rollouts, scheduled sampling), else BIG_MODEL_THREADS (at most the machine's)."""
    model, train = experiment.model, experiment.train
    sequential = (model.model_type != "transformer" or train.rollout_weight > 0
                  or train.scheduled_sampling != "none")
    if sequential or model.d_model <= SMALL_MODEL_MAX_D_MODEL:
        return 1
    cap = limits.cpu_threads if limits is not None and limits.cpu_threads > 0 else BIG_MODEL_THREADS
    return max(1, min(BIG_MODEL_THREADS, cap))


def estimate_params(model: Any) -> int:
    """Parameters of a model config, from its shape (the embeddings of metadata are small and
    left out): what the GPU memory estimate needs, without building the model."""
    d, layers = model.d_model, model.n_layers
    if model.model_type == "transformer":
        per_layer = 4 * d * d + 2 * d * model.d_ff + 9 * d + model.d_ff
        return layers * per_layer + model.max_len * d + 4 * d
    return layers * 3 * (2 * d * d + 2 * d) + 4 * d  # GRU: three gates over input and state


def estimate_gpu_mem_mb(experiment: Any) -> float:
    """Peak GPU memory of training `experiment`, roughly: the CUDA context, fp32 weights with
    their gradients and two Adam moments (16 bytes a parameter), and the activations a batch of
    max_len steps keeps for the backward pass (attention scores grow with the square of the
    length; a rollout keeps every step's state). An estimate for packing, not a promise."""
    model, train = experiment.model, experiment.train
    batch, length, d, layers = train.batch_size, model.max_len, model.d_model, model.n_layers
    floats = 0.0
    if model.model_type == "transformer":
        floats += layers * batch * length * (12 * d + 2 * model.d_ff)
        floats += layers * batch * model.n_heads * length * length * 2
    else:
        floats += layers * batch * length * d * 8
    if train.rollout_weight > 0 or train.scheduled_sampling != "none":
        floats *= 2  # a second pass (scheduled sampling) or a rollout's graph over every step
    weights = estimate_params(model) * 16
    return CUDA_CONTEXT_MB + (weights + floats * 4) / 2**20


def demand_for(experiment: Any, slot: str, threads: int | None = None,
               limits: Limits | None = None) -> Demand:
    """What a job of `experiment` in pool `slot` ("cpu" or "cuda") asks for."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise JobError(f"threads: expected a positive integer, got {threads!r}")
    if slot == "cuda":
        return Demand(threads=threads or 1, gpu_mem_mb=round(estimate_gpu_mem_mb(experiment), 1))
    return Demand(threads=threads or default_threads(experiment, limits), gpu_mem_mb=0.0)


# --------------------------------------------------------------------------------------------
# Which queued jobs start


class _JobLike(Protocol):
    slot: str
    threads: int | None
    gpu_mem_mb: float | None
    device_requested: str
    device_assigned: str | None


def _gpu_index(device: str | None) -> int | None:
    if device and device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    return None


@dataclasses.dataclass
class _Usage:
    threads: int = 0
    cpu_jobs: int = 0
    gpu_jobs: int = 0
    gpu_count: dict[int, int] = dataclasses.field(default_factory=dict)
    gpu_mem: dict[int, float] = dataclasses.field(default_factory=dict)

    def add(self, job: _JobLike, device: str | None) -> None:
        self.threads += job.threads or 1
        index = _gpu_index(device)
        if job.slot == "cuda":
            self.gpu_jobs += 1
            if index is not None:
                self.gpu_count[index] = self.gpu_count.get(index, 0) + 1
                self.gpu_mem[index] = self.gpu_mem.get(index, 0.0) + (job.gpu_mem_mb or 0.0)
        else:
            self.cpu_jobs += 1


def _usage(running: Iterable[_JobLike]) -> _Usage:
    usage = _Usage()
    for job in running:
        usage.add(job, job.device_assigned)
    return usage


def _fits_threads(usage: _Usage, want: int, limits: Limits) -> bool:
    # A job asking for more threads than the machine has still runs, alone.
    return usage.threads + want <= limits.cpu_threads or usage.threads == 0


def _pick_gpu(job: _JobLike, usage: _Usage, limits: Limits) -> int | None:
    """The GPU this job fits on (least loaded first), or None when none has room."""
    pinned = _gpu_index(job.device_requested)
    candidates = [pinned] if pinned is not None else range(limits.gpus)
    budget = None if limits.gpu_mem_mb is None else limits.gpu_mem_mb * GPU_MEM_HEADROOM
    best = None
    for index in candidates:
        if index >= limits.gpus:
            continue
        count, mem = usage.gpu_count.get(index, 0), usage.gpu_mem.get(index, 0.0)
        if count >= limits.jobs_per_gpu:
            continue
        # The first job on an empty GPU always starts: the estimate may be pessimistic.
        if budget is not None and count and mem + (job.gpu_mem_mb or 0.0) > budget:
            continue
        key = (mem, count, index)
        if best is None or key < best[0]:
            best = (key, index)
    return None if best is None else best[1]


def plan_starts(running: Sequence[_JobLike], queued: Sequence[_JobLike],
                limits: Limits) -> list[tuple[_JobLike, str]]:
    """(job, device) for the queued jobs (oldest first) that start now beside `running`. Each
    pool is first come, first served: a job that does not fit holds back the younger jobs of
    its pool, so a big job is never starved by a stream of small ones."""
    usage = _usage(running)
    starts: list[tuple[_JobLike, str]] = []
    blocked: set[str] = set()
    for job in queued:
        if job.slot in blocked:
            continue
        want = job.threads or 1
        if job.slot == "cuda":
            index = None
            if usage.gpu_jobs < limits.gpu_slots and _fits_threads(usage, want, limits):
                index = _pick_gpu(job, usage, limits)
            device = None if index is None else f"cuda:{index}"
        else:
            cap = limits.max_cpu_jobs
            ok = (cap is None or usage.cpu_jobs < cap) and limits.cpu_threads > 0
            device = "cpu" if ok and _fits_threads(usage, want, limits) else None
        if device is None:
            blocked.add(job.slot)
            continue
        usage.add(job, device)
        starts.append((job, device))
    return starts


def slot_usage(running: Sequence[_JobLike], queued: Sequence[_JobLike],
               limits: Limits) -> dict[str, Any]:
    """Slots in use and free, for the jobs page: CPU threads and, per GPU, jobs and estimated
    memory."""
    usage = _usage(running)
    gpus = []
    for index in range(limits.gpus):
        count = usage.gpu_count.get(index, 0)
        gpus.append({
            "index": index, "jobs": count, "max_jobs": limits.jobs_per_gpu,
            "free_jobs": max(0, limits.jobs_per_gpu - count),
            "mem_est_mb": round(usage.gpu_mem.get(index, 0.0), 1), "mem_total_mb": limits.gpu_mem_mb,
        })
    return {
        "cpu": {"threads_total": limits.cpu_threads, "threads_used": usage.threads,
                "threads_free": max(0, limits.cpu_threads - usage.threads),
                "jobs": usage.cpu_jobs, "max_jobs": limits.max_cpu_jobs},
        "gpus": gpus,
        "running": usage.cpu_jobs + usage.gpu_jobs,
        "queued": len(queued),
    }

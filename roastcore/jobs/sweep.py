"""Sweeps: presets x a grid of settings x seeds, launched, followed and compared as one.

A sweep is an id, a name and its jobs (rows of `jobs` carrying its `sweep_id`); its state is
read from theirs. Each job scores its own run when it finishes (RUN_DIR/scores.json, written by
the training process), so comparing a sweep only reads (`run_scores.read_scores`, torch-free), and a
run without scores yet shows as "not scored yet".

What the dashboard calls: `launch_sweep` (the "Launch sweep" buttons), `list_sweeps` /
`get_sweep`, `sweep_runs` (one record per job), `sweep_table` (mean ± std over seeds per preset
and setting) and `chart_records` (long-form rows for Altair charts).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import secrets
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from roastcore.jobs.request import normalize_overrides
from roastcore.jobs.runner import JobRunner
from roastcore.jobs.store import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobError,
    JobNotFound,
    SweepRecord,
)
from roastcore.run_scores import read_scores

NOT_SCORED = "not scored yet"
# The sweep table's figures: (key, label). Each model figure sits beside its baseline.
METRICS = (
    ("tf_mae_f", "teacher-forcing MAE °F"),
    ("persistence_mae_f", "persistence MAE °F (same step)"),
    ("free_mae_f", "free-running MAE °F"),
    ("aligned_knn_mae_f", "aligned kNN MAE °F (same roasts)"),
    ("finish_mae_f", "finish temperature MAE °F"),
    ("physics_valid_pct", "physically valid %"),
    ("time_s", "job time s"),
)


class SweepTooLarge(JobError):
    """The grid holds more jobs than the configured limit; launch it with force."""


@dataclasses.dataclass
class Sweep:
    id: str
    name: str
    spec: dict[str, Any]
    backend: str
    created_at: float
    cancel_requested_at: float | None
    jobs: list[Job]

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.jobs:
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts

    @property
    def state(self) -> str:
        """queued (nothing started), running, cancelled (asked, nothing active left) or
        finished (every job ended, whatever their states)."""
        states = {j.state for j in self.jobs}
        if RUNNING in states or (QUEUED in states and len(states) > 1):
            return RUNNING
        if QUEUED in states:
            return QUEUED
        return CANCELLED if self.cancel_requested_at is not None else "finished"

    def to_dict(self, with_jobs: bool = True) -> dict[str, Any]:
        out = {"id": self.id, "name": self.name, "state": self.state, "counts": self.counts,
               "backend": self.backend, "created_at": self.created_at,
               "cancel_requested_at": self.cancel_requested_at, "spec": self.spec}
        if with_jobs:
            out["jobs"] = [j.to_dict() for j in self.jobs]
        return out


# --------------------------------------------------------------------------------------------
# Building the job list


def parse_grid(grid: Mapping[str, Sequence[Any]] | Sequence[str] | None) -> dict[str, list[Any]]:
    """{key: [values]} from a mapping or from `key=v1,v2` strings (the CLI's --grid); values
    are JSON-decoded where they parse, as --set values are."""
    if grid is None:
        return {}
    items: list[tuple[str, list[Any]]] = []
    if isinstance(grid, Mapping):
        items = [(k, list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in grid.items()]
    else:
        for entry in grid:
            if not isinstance(entry, str) or "=" not in entry:
                raise JobError(f"grid: expected 'key=v1,v2,...', got {entry!r}")
            key, raw = entry.split("=", 1)
            values = [v.strip() for v in raw.split(",")]
            if any(not v for v in values):
                raise JobError(f"grid: {entry!r} has an empty value")
            items.append((key.strip(), values))
    out: dict[str, list[Any]] = {}
    for key, values in items:
        if key in out:
            raise JobError(f"grid: {key!r} is given twice; list all its values once")
        if not values:
            raise JobError(f"grid: {key!r} has no values")
        if key in ("epochs", "seed", "device"):
            raise JobError(f"grid: set {key!r} with the sweep's own option, not in the grid")
        decoded = [normalize_overrides({key: v})[key] for v in values]
        if len({json.dumps(v, sort_keys=True) for v in decoded}) != len(decoded):
            raise JobError(f"grid: {key!r} lists a value twice")
        out[key] = decoded
    return out


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """`--seeds N` means seeds 0..N-1; a list is taken as given."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise JobError(f"seeds: expected a positive count, got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) for s in values):
        raise JobError(f"seeds: expected a count or a list of integers, got {seeds!r}")
    if len(set(values)) != len(values):
        raise JobError(f"seeds: {values} lists a seed twice")
    return values


def expand_grid(presets: Sequence[str], grid: Mapping[str, Sequence[Any]] | Sequence[str] | None,
                seeds: int | Sequence[int] = 1) -> list[dict[str, Any]]:
    """Every (preset, setting, seed) of a sweep, in launch order: seeds innermost, so the
    first jobs to start cover the settings rather than repeat one."""
    names = [p.strip() for p in presets if isinstance(p, str) and p.strip()]
    if not names or len(names) != len(list(presets)):
        raise JobError(f"presets: expected one or more preset names, got {list(presets)!r}")
    if len(set(names)) != len(names):
        raise JobError(f"presets: {names} lists a preset twice")
    parsed = parse_grid(grid)
    keys = sorted(parsed)
    settings = [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(parsed[k] for k in keys))]
    return [{"preset": preset, "overrides": setting, "seed": seed}
            for seed in seed_list(seeds) for preset in names for setting in settings]


def launch_sweep(runner: JobRunner, presets: Sequence[str], data: str, *,
                 grid: Mapping[str, Sequence[Any]] | Sequence[str] | None = None,
                 seeds: int | Sequence[int] = 1, epochs: int | None = None,
                 device: str = "auto", name: str | None = None, threads: int | None = None,
                 force: bool = False, max_jobs: int | None = None) -> Sweep:
    """Queue every job of a sweep on the runner's backend, all or nothing.

    A grid of more than `max_jobs` jobs (default: the limits' max_sweep_jobs, 200) raises
    SweepTooLarge unless `force`. An identical sweep (same jobs, data and backend) with jobs
    still queued or running is returned instead of a second one unless `force`."""
    combos = expand_grid(presets, grid, seeds)
    limit = max_jobs if max_jobs is not None else runner.limits.max_sweep_jobs
    if len(combos) > limit and not force:
        raise SweepTooLarge(
            f"sweep: {len(combos)} jobs is more than the limit of {limit}; launch it with "
            "--force (force=True), or raise max_sweep_jobs (ROASTCORE_MAX_SWEEP_JOBS)")
    jobs = [runner.prepare(c["preset"], c["overrides"], data, device=device, epochs=epochs,
                           seed=c["seed"], threads=threads) for c in combos]
    identity = json.dumps({"jobs": sorted(j.config_key for j in jobs),
                           "data": jobs[0].data_fingerprint, "backend": runner.backend.name})
    spec_key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    if not force:
        for existing in list_sweeps(runner):
            if existing.spec.get("key") == spec_key and any(j.is_active for j in existing.jobs):
                return existing
    parsed = parse_grid(grid)
    n_seeds = len(seed_list(seeds))
    spec = {"presets": list(dict.fromkeys(c["preset"] for c in combos)), "grid": parsed,
            "seeds": seed_list(seeds), "data": jobs[0].data, "epochs": epochs, "device": device,
            "key": spec_key}
    default_name = f"{', '.join(spec['presets'])}" + (
        f" x {' x '.join(parsed)}" if parsed else "") + f" x {n_seeds} seed{'s' * (n_seeds > 1)}"
    record = SweepRecord(id=_new_sweep_id(runner), name=(name or default_name).strip(), spec=spec,
                         spec_key=spec_key, backend=runner.backend.name, created_at=time.time())
    runner.enqueue(jobs, force=True, sweep=record)
    return get_sweep(runner, record.id, refresh=False)


def _new_sweep_id(runner: JobRunner) -> str:
    with runner.store.transaction() as conn:
        while True:
            sweep_id = "s" + secrets.token_hex(4)
            if not conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone():
                return sweep_id


# --------------------------------------------------------------------------------------------
# Reading sweeps


def _sweep_jobs(conn: Any, sweep_id: str) -> list[Job]:
    rows = conn.execute("SELECT * FROM jobs WHERE sweep_id = ? ORDER BY created_at, id",
                        (sweep_id,)).fetchall()
    return [Job.from_row(r) for r in rows]


def list_sweeps(runner: JobRunner, refresh: bool = True) -> list[Sweep]:
    """Every sweep in the store, oldest first."""
    if refresh:
        runner.refresh()
    with runner.store.transaction() as conn:
        records = [SweepRecord.from_row(r) for r in
                   conn.execute("SELECT * FROM sweeps ORDER BY created_at, id").fetchall()]
        return [_sweep(r, _sweep_jobs(conn, r.id)) for r in records]


def _sweep(record: SweepRecord, jobs: list[Job]) -> Sweep:
    return Sweep(id=record.id, name=record.name, spec={**record.spec, "key": record.spec_key},
                 backend=record.backend, created_at=record.created_at,
                 cancel_requested_at=record.cancel_requested_at, jobs=jobs)


def _resolve_sweep_id(runner: JobRunner, sweep_id: str) -> str:
    if not isinstance(sweep_id, str) or not sweep_id:
        raise JobError(f"sweep id must be a non-empty string, got {sweep_id!r}")
    with runner.store.transaction() as conn:
        if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone():
            return sweep_id
        matches = [] if len(sweep_id) < 4 else [r[0] for r in conn.execute(
            "SELECT id FROM sweeps WHERE substr(id, 1, ?) = ?", (len(sweep_id), sweep_id))]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise JobError(f"sweep id {sweep_id!r} is ambiguous: {', '.join(sorted(matches))}")
    raise JobNotFound(f"no sweep {sweep_id!r} in {runner.db_path}")


def get_sweep(runner: JobRunner, sweep_id: str, refresh: bool = True) -> Sweep:
    """One sweep (id or a unique prefix of 4+ characters) with its jobs."""
    sweep_id = _resolve_sweep_id(runner, sweep_id)
    if refresh:
        runner.refresh()
    with runner.store.transaction() as conn:
        record = runner.store.fetch_sweep(conn, sweep_id)
        if record is None:
            raise JobNotFound(f"no sweep {sweep_id!r} in {runner.db_path}")
        return _sweep(record, _sweep_jobs(conn, sweep_id))


def cancel_sweep(runner: JobRunner, sweep_id: str, grace_s: float | None = None) -> Sweep:
    """Cancel a sweep's queued and running jobs; finished runs stay as they are. Queued local
    jobs go first, in one transaction, so a running job's end cannot start one of them."""
    sweep_id = _resolve_sweep_id(runner, sweep_id)
    now = time.time()
    with runner.store.transaction(write=True) as conn:
        conn.execute("UPDATE sweeps SET cancel_requested_at = ? WHERE id = ? "
                     "AND cancel_requested_at IS NULL", (now, sweep_id))
        conn.execute("UPDATE jobs SET state = ?, ended_at = ?, cancel_requested_at = ?, "
                     "reason = ? WHERE sweep_id = ? AND state = ? AND backend = ?",
                     (CANCELLED, now, now, "cancelled with its sweep while queued", sweep_id,
                      QUEUED, runner.local.name))
    for _ in range(5):  # a supervisor may have claimed a queued job meanwhile: look again
        with runner.store.transaction() as conn:
            active = [j for j in _sweep_jobs(conn, sweep_id) if j.state in ACTIVE_STATES]
        if not active:
            break
        for job in active:
            runner.cancel(job.id, grace_s=grace_s)
    return get_sweep(runner, sweep_id, refresh=False)


# --------------------------------------------------------------------------------------------
# Comparing a sweep's runs


def _setting(job: Job, keys: Sequence[str]) -> str:
    return " ".join(f"{k}={json.dumps(job.overrides[k])}" for k in keys if k in job.overrides)


def sweep_runs(sweep: Sweep) -> list[dict[str, Any]]:
    """One record per job: its place in the grid, state, time and scores (None until scored)."""
    keys = sorted(sweep.spec.get("grid") or {})
    runs = []
    for job in sweep.jobs:
        scores = read_scores(job.run_dir) if job.is_finished else None
        setting = _setting(job, keys)
        runs.append({
            "job_id": job.id, "state": job.state, "preset": job.preset, "setting": setting,
            "label": f"{job.preset} {setting}".strip(), "seed": job.seed,
            "grid": {k: job.overrides.get(k) for k in keys}, "run_dir": job.run_dir,
            "time_s": job.duration_s if job.is_finished else None,
            "reason": job.reason if job.state == FAILED else None,
            "scores": scores, "scored": scores is not None,
            "verdict": (scores or {}).get("verdict"),
        })
    return runs


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def sweep_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per preset and setting: mean and std over seeds of each figure in METRICS (scored runs
    only), with how many runs there are, how many are scored, and their states and verdicts."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["preset"], run["setting"]), []).append(run)
    rows = []
    for (preset, setting), members in groups.items():
        scored = [r for r in members if r["scored"]]
        row: dict[str, Any] = {
            "preset": preset, "setting": setting, "label": members[0]["label"],
            "n_runs": len(members), "n_scored": len(scored),
            "states": {s: sum(r["state"] == s for r in members) for s in
                       dict.fromkeys(r["state"] for r in members)},
            "verdicts": sorted({r["verdict"] for r in scored if r["verdict"]}),
            "status": None if scored else NOT_SCORED,
        }
        for key, _label in METRICS:
            if key == "time_s":
                values = [r["time_s"] for r in members
                          if r["time_s"] is not None and r["state"] == SUCCEEDED]
            else:
                values = [r["scores"][key] for r in scored if r["scores"].get(key) is not None]
            row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
        rows.append(row)
    return rows


def chart_records(runs: list[dict[str, Any]],
                  metrics: Sequence[str] = ("tf_mae_f", "free_mae_f", "finish_mae_f",
                                            "physics_valid_pct", "time_s")) -> list[dict[str, Any]]:
    """Long-form rows for Altair: one per scored run and figure, with the run's grid values as
    columns (a parallel-coordinates chart of a grid plots them; a suite chart groups by
    label). Selecting by `job_id` links a chart to the table and the curves."""
    out = []
    for run in runs:
        if not run["scored"]:
            continue
        for metric in metrics:
            value = run["time_s"] if metric == "time_s" else run["scores"].get(metric)
            if value is None:
                continue
            out.append({"job_id": run["job_id"], "label": run["label"], "preset": run["preset"],
                        "setting": run["setting"], "seed": run["seed"], "metric": metric,
                        "value": value, **{f"grid.{k}": v for k, v in run["grid"].items()}})
    return out

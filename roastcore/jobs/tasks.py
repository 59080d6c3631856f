"""Job kinds besides training: scoring a run and running a study, as background jobs.

A training job runs `python -m roastcore train ...`. A task job runs another command of the CLI
through `python -m roastcore.jobs KIND --progress FILE -- ARGS` (this module's `main`), which calls that command
in-process, records its progress as it goes (FILE, progress.json in the job's folder: done,
total, stage, heartbeat) and ends with the one-line JSON result a supervisor reads, as a train
command does. Kinds and the command each runs:

    score   python -m roastcore score --checkpoint RUN --if-needed [--data SOURCE]
    study   python -m roastcore study --data SOURCE --out RUNS/NAME --folds K --presets a,b ...

A task job is stored like a training job. Its `preset` holds the kind (no preset has these
names), its `overrides` the command's arguments. Its run directory is its own folder directly
in the runs directory (a study's output folder, or a scoring job's log folder), so
`JobRunner.delete` removes exactly what the job made and never the scored run.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roastcore.fsutil import atomic_write_json
from roastcore.jobs.request import check_run_name, config_key, data_fingerprint, format_value
from roastcore.jobs.store import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobError

log = logging.getLogger(__name__)

SCORE, STUDY = "score", "study"
TASK_KINDS = (SCORE, STUDY)
TASK_PROGRESS = "progress.json"
_STAGE = re.compile(r"^\[(\d+)/(\d+)\]\s*(.*)$")  # the score command's "[2/5] free running"
_STUDY_UNIT = re.compile(r"^(?:\S+ fold \d+|extrapolation \S+): ")  # one line per unit run_study finishes


def job_kind(job) -> str:
    """'train', or the task kind of a job (its `preset` field holds the kind)."""
    preset = getattr(job, "preset", "")
    return preset if preset in TASK_KINDS else "train"


def is_task(job) -> bool:
    return job_kind(job) != "train"


def task_argv(job: Job, python: str | None = None) -> list[str]:
    """The command a task job runs (JobRunner.train_argv hands task jobs here)."""
    args = job.overrides.get("argv")
    if job_kind(job) == "train" or not isinstance(args, list):
        raise JobError(f"job {job.id}: not a task job (kind {job_kind(job)!r})")
    progress = Path(job.run_dir) / TASK_PROGRESS
    units = job.overrides.get("units")
    total = ["--total", str(int(units))] if units else []
    return [python or sys.executable, "-m", "roastcore.jobs", job.preset, "--progress", str(progress),
            *total, "--", *[str(a) for a in args]]


# ----------------------------------------------------------------------------- submitting
def submit_score(runner, run_dir, data: str | None = None) -> Job:
    """Queue `python -m roastcore score --checkpoint RUN --if-needed` (the run's recorded data
    source unless `data`). An identical queued or running scoring job is returned instead."""
    run_dir = Path(run_dir).expanduser().absolute()
    if not (run_dir / "model.safetensors").is_file():
        raise JobError(f"score: {run_dir} is not a run directory with weights (no model.safetensors)")
    args = ["--checkpoint", str(run_dir), "--if-needed"]
    if data:
        args += ["--data", _data_arg(data)]
    recorded = data or _recorded_source(run_dir) or "synthetic"
    name = _free_name(runner, f"score-{run_dir.name}"[:72])
    return _submit(runner, SCORE, args, recorded, name, identity={"checkpoint": str(run_dir), "data": data})


def submit_study(runner, name: str, data: str, presets: Sequence[str], folds: int = 3, seed: int = 0,
                 budget_min: float | None = None, overrides: dict[str, Any] | None = None,
                 extrapolation: bool = True) -> Job:
    """Queue `python -m roastcore study ...` writing into RUNS/NAME (results.json and
    results.md, rewritten after every fold, so a running study already shows results)."""
    check_run_name(name)
    presets = [p.strip() for p in presets if p and p.strip()]
    if not presets:
        raise JobError("study: choose at least one preset")
    # Here, not at the top: experiments imports torch, which listing jobs must not pay.
    from roastcore.experiments import PRESETS

    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        raise JobError(f"study: unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise JobError(f"study: folds must be an integer >= 2, got {folds!r}")
    if budget_min is not None and not budget_min > 0:
        raise JobError(f"study: the time budget must be positive minutes, got {budget_min!r}")
    out = Path(runner.runs_dir) / name
    args = ["--data", _data_arg(data), "--out", str(out), "--folds", str(folds), "--seed", str(int(seed)),
            "--presets", ",".join(presets)]
    if budget_min is not None:
        args += ["--budget-min", f"{float(budget_min):g}"]
    for key, value in sorted((overrides or {}).items()):
        args += ["--set", f"{key}={format_value(value)}"]
    if not extrapolation:
        args.append("--no-extrapolation")
    return _submit(runner, STUDY, args, data, name, total=_study_units(len(presets), folds, extrapolation),
                   identity={"argv": args[2:]})


def _study_units(n_presets: int, folds: int, extrapolation: bool) -> int:
    """How many progress lines `run_study` says: baselines per fold, each preset per fold, and
    each preset's extrapolation check."""
    return folds + n_presets * folds + (n_presets if extrapolation else 0)


def _data_arg(data: str) -> str:
    data = str(data).strip()
    return data if data.startswith("synthetic") else str(Path(data).expanduser().absolute())


def _recorded_source(run_dir: Path) -> str | None:
    try:
        source = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("data_source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) and source.strip() else None


def _free_name(runner, base: str) -> str:
    """`base`, or base-2, base-3...: not a folder in the runs directory nor another job's run."""
    taken = {j.run_name for j in runner.list()}
    name, n = base, 2
    while name in taken or (Path(runner.runs_dir) / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def _submit(runner, kind: str, args: list[str], data: str, run_name: str, identity: dict,
            total: int | None = None) -> Job:
    check_run_name(run_name)
    try:
        fingerprint = data_fingerprint(data)
    except JobError:
        fingerprint = f"{kind}:unchecked"  # the command itself reports bad data, in its log
    key = config_key(kind, {"task": identity}, None, None)
    runner.check_runs_dir()
    now = time.time()
    with runner.store.transaction(write=True) as conn:
        row = conn.execute("SELECT * FROM jobs WHERE config_key = ? AND state IN (?, ?) ORDER BY created_at LIMIT 1",
                           (key, QUEUED, RUNNING)).fetchone()
        if row is not None:
            return Job.from_row(row)
        if (Path(runner.runs_dir) / run_name).exists() or conn.execute(
                "SELECT 1 FROM jobs WHERE run_name = ?", (run_name,)).fetchone():
            raise JobError(f"name: {run_name!r} is taken in {runner.runs_dir}; choose another")
        job_id = secrets.token_hex(4)
        while conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
            job_id = secrets.token_hex(4)
        run_dir = Path(runner.runs_dir) / run_name
        overrides = {"argv": args, **({"units": total} if total else {})}
        runner.store.insert(conn, Job(
            id=job_id, state=QUEUED, preset=kind, overrides=overrides, data=str(data), data_fingerprint=fingerprint,
            config_key=key, epochs=None, seed=None, device_requested="cpu", slot="cpu", device_assigned=None,
            device_used=None, run_name=run_name, run_dir=str(run_dir), log_path=str(run_dir / f"{kind}.log"),
            backend=runner.backend.name, created_at=now))
    log.info("%s job %s queued: %s", kind, job_id, run_name)
    runner.refresh()  # starts it when a slot is free
    return runner.get(job_id)


def latest_job(jobs: Sequence[Job], kind: str, target: str | Path) -> Job | None:
    """The newest job of `kind` whose command names `target` (a run directory or an output
    folder), e.g. the scoring job of a run."""
    target = str(Path(target).expanduser().absolute())
    found = [j for j in jobs if j.preset == kind and target in [str(a) for a in j.overrides.get("argv", [])]]
    return max(found, key=lambda j: j.created_at or 0, default=None)


# ----------------------------------------------------------------------------- progress
@dataclass
class TaskProgress:
    """What a task job has done: `done` of `total` units (stages of a scoring, folds of a
    study), the last stage in words, and when it last said something."""

    done: int = 0
    total: int | None = None
    stage: str = ""
    heartbeat: float | None = None

    @property
    def fraction(self) -> float:
        if not self.total:
            return 0.0
        return min(max(self.done / self.total, 0.0), 1.0)


def read_task_progress(job: Job) -> TaskProgress:
    """The task job's progress.json (absent before it starts)."""
    try:
        raw = json.loads((Path(job.run_dir) / TASK_PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    total = raw.get("total", job.overrides.get("units") if isinstance(job.overrides, dict) else None)
    done = raw.get("done", 0)
    if job.state == SUCCEEDED and total:
        done = total
    return TaskProgress(done=int(done or 0), total=int(total) if total else None, stage=str(raw.get("stage", "")),
                        heartbeat=raw.get("heartbeat"))


class _ProgressTee:
    """stderr for the task's command: passes everything through, and turns its progress lines
    (the score command's "[i/n] stage"; each of run_study's lines is one unit) into
    progress.json. Remembers the last error line for the result."""

    def __init__(self, stream, path: Path, kind: str, total: int | None):
        self.stream, self.path, self.kind = stream, path, kind
        self.done, self.total, self.stage = 0, total, "starting"
        self.last_error = ""
        self._buffer = ""
        self.write_progress()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(line.strip())
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding...: the real stream's
        return getattr(self.stream, name)

    def _line(self, line: str) -> None:
        if not line:
            return
        if ": error: " in line or line.startswith("Traceback"):
            self.last_error = line
        m = _STAGE.match(line)
        if self.kind == SCORE and m:
            self.done, self.total, self.stage = int(m.group(1)), int(m.group(2)), m.group(3)
        elif self.kind == STUDY and _STUDY_UNIT.match(line):
            self.done, self.stage = self.done + 1, line
        else:
            return
        self.write_progress()

    def write_progress(self) -> None:
        try:
            atomic_write_json(self.path, {"kind": self.kind, "done": self.done, "total": self.total,
                                          "stage": self.stage, "heartbeat": time.time()})
        except OSError as exc:  # progress is a courtesy; the command's own result matters
            self.stream.write(f"cannot write {self.path}: {exc}\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m roastcore.jobs",
                                     description="Run a roastcore command as a background job (roastcore/jobs/tasks.py); "
                                                 "the command's arguments follow --.")
    parser.add_argument("kind", choices=TASK_KINDS)
    parser.add_argument("--progress", required=True, type=Path, help="progress.json to keep up to date")
    parser.add_argument("--total", type=int, default=None, help="units of work the command reports")
    ns = parser.parse_args(own)
    total = ns.total
    # Here: the CLI imports its areas lazily; this process is the job and runs one command.
    from roastcore.cli import main as cli_main

    tee = _ProgressTee(sys.stderr, ns.progress, ns.kind, total)
    sys.stderr = tee
    try:
        code = cli_main([ns.kind, *args])
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stderr = tee.stream
    if code == 0:
        tee.done, tee.stage = tee.total or tee.done, "done"
        tee.write_progress()
        result = {"status": SUCCEEDED, "kind": ns.kind}
    else:
        result = {"status": FAILED, "kind": ns.kind,
                  "reason": tee.last_error or f"python -m roastcore {ns.kind} exited with code {code}"}
    print(json.dumps(result), flush=True)  # the result line the supervisor reads (stdout is the job log)
    return 0 if code == 0 else 1

"""What a train process leaves behind, read back: its log, final result line and progress files.

The supervisor (after its child exits) and the runner (after a process died unnoticed) both
turn these into a job's final record, so the reading lives here once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from roastcore.fsutil import read_jsonl
from roastcore.jobs.store import FAILED, FINAL_STATES, RUNNING, STALE_HEARTBEAT_S, Job

LOG_TAIL_LINES = 20


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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def last_sign_of_life(job: Job, now: float | None = None) -> float:
    """When a job whose processes are gone was last seen alive: its supervisor's heartbeat, the
    train process's progress.json heartbeat or the last write to its log, whichever is latest.
    A job found dead long after it died (nobody was watching) thus ends when it died, not when
    someone happened to look."""
    now = time.time() if now is None else now
    seen = [job.heartbeat_at, job.started_at]
    progress = read_json(Path(job.run_dir) / "progress.json") or {}
    seen.append(float_or_none(progress.get("heartbeat")))
    try:
        seen.append(Path(job.log_path).stat().st_mtime)
    except OSError:
        pass
    latest = max((t for t in seen if t is not None), default=now)
    return min(latest, now)


def result_values(result: dict[str, Any], ended_at: float | None = None) -> dict[str, Any]:
    """Store values for a job whose train command printed `result` as its final line."""
    status = result.get("status")
    state = status if status in FINAL_STATES else FAILED
    reason = result.get("reason")
    return {
        "state": state,
        "ended_at": time.time() if ended_at is None else ended_at,
        "result": result,
        "best_epoch": int_or_none(result.get("best_epoch")),
        "best_val_loss": float_or_none(result.get("best_val_loss")),
        "device_used": result.get("device"),
        "reason": None if reason in (None, "") else str(reason),
    }


def failure_reason(prefix: str, log_path: Path) -> str:
    """`prefix`, followed by the log's last lines (what the user needs to see why)."""
    tail = tail_text(log_path, LOG_TAIL_LINES)
    return prefix + (f"\n--- last log lines ---\n{tail}" if tail else "")


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


def read_progress(job: Job) -> JobProgress:
    """The job's progress from what its train process writes into its run directory."""
    run_dir = Path(job.run_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    last = rows[-1] if rows else {}
    live = read_json(run_dir / "progress.json") or {}
    prog = JobProgress(job_id=job.id, state=job.state, epochs=job.epochs,
                       best_epoch=job.best_epoch, best_val_loss=job.best_val_loss)
    prog.epoch = int_or_none(live.get("epoch", last.get("epoch")))
    prog.epochs = int_or_none(live.get("epochs", last.get("epochs"))) or job.epochs
    prog.batch = int_or_none(live.get("batch"))
    prog.n_batches = int_or_none(live.get("n_batches"))
    for name in ("train_loss", "val_loss", "lr", "tf_ratio", "eta_s"):
        setattr(prog, name, float_or_none(last.get(name, live.get(name))))
    prog.elapsed_s = float_or_none(
        live.get("elapsed_s", live.get("elapsed", last.get("elapsed_s"))))
    if prog.best_epoch is None and rows:
        # Best so far while running (the store only gets it at the end).
        scored = [r for r in rows if float_or_none(r.get("val_loss")) is not None]
        if scored:
            best = min(scored, key=lambda r: float(r["val_loss"]))
            prog.best_epoch = int_or_none(best.get("epoch"))
            prog.best_val_loss = float(best["val_loss"])
    heartbeat = float_or_none(live.get("heartbeat", live.get("heartbeat_at")))
    prog.heartbeat_at = heartbeat or job.heartbeat_at
    if job.state == RUNNING:
        beat = prog.heartbeat_at or job.started_at or time.time()
        prog.stalled = time.time() - beat > STALE_HEARTBEAT_S
    return prog

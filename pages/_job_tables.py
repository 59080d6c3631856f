"""The Training jobs page's rows: the job table, progress lines and the loss history frame.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. Reads jobs.Job and
jobs.JobProgress objects by attribute, so any object with those fields works.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import pandas as pd

from pages._format import finite_or_none, fmt_duration

# The presets the "recovery suite" button queues at once.
RECOVERY_SUITE = ("tiny_model", "micro_model", "low_lr", "high_dropout", "combined_fix")


def job_device(job) -> str:
    return str(getattr(job, "device_used", None) or getattr(job, "device_assigned", None)
               or getattr(job, "device_requested", None) or "–")


def jobs_table(jobs: Sequence, progress: Mapping[str, object] | None = None, now: float | None = None) -> pd.DataFrame:
    """One row per job (newest first): id, preset, state, device, epoch, losses, elapsed, ETA."""
    progress = progress or {}
    now = time.time() if now is None else now
    rows = []
    for job in sorted(jobs, key=lambda j: -(getattr(j, "created_at", 0) or 0)):
        prog = progress.get(job.id)
        epoch = getattr(prog, "epoch", None)
        epochs = getattr(prog, "epochs", None) or getattr(job, "epochs", None)
        elapsed = getattr(prog, "elapsed_s", None)
        if elapsed is None and getattr(job, "started_at", None):
            elapsed = (getattr(job, "ended_at", None) or now) - job.started_at
        eta = getattr(prog, "eta_s", None) if job.state == "running" else None
        best = getattr(prog, "best_val_loss", None)
        if best is None:
            best = getattr(job, "best_val_loss", None)
        state = job.state + (" (stalled)" if getattr(prog, "stalled", False) else "")
        rows.append({
            "job": job.id,
            "preset": job.preset,
            "state": state,
            "device": job_device(job),
            "epoch": "–" if epoch is None else (f"{epoch}/{epochs}" if epochs else str(epoch)),
            "train loss": finite_or_none(getattr(prog, "train_loss", None)),
            "val loss": finite_or_none(getattr(prog, "val_loss", None)),
            "best val": finite_or_none(best),
            "elapsed": fmt_duration(elapsed),
            "ETA": fmt_duration(eta) if eta is not None else "–",
            "run": job.run_name,
        })
    cols = ["job", "preset", "state", "device", "epoch", "train loss", "val loss", "best val",
            "elapsed", "ETA", "run"]
    return pd.DataFrame(rows, columns=cols)


def history_frame(metrics_by_run: Mapping[str, Sequence[Mapping]]) -> pd.DataFrame:
    """metrics.jsonl rows per run -> long frame (run, epoch, train_loss, val_loss, tf_ratio).
    Rows without an epoch (e.g. a final summary line) are skipped."""
    rows = []
    for run, metrics in metrics_by_run.items():
        for m in metrics or ():
            epoch = m.get("epoch")
            if epoch is None:
                continue
            rows.append({
                "run": run, "epoch": epoch,
                "train_loss": finite_or_none(m.get("train_loss")),
                "val_loss": finite_or_none(m.get("val_loss")),
                "tf_ratio": finite_or_none(m.get("tf_ratio", m.get("teacher_forcing"))),
            })
    return pd.DataFrame(rows, columns=["run", "epoch", "train_loss", "val_loss", "tf_ratio"])


def job_fraction(prog) -> float:
    """Share of epochs done (0..1) from a jobs.JobProgress."""
    epoch, epochs = getattr(prog, "epoch", None), getattr(prog, "epochs", None)
    if not epoch or not epochs:
        return 0.0
    return float(min(max(epoch / epochs, 0.0), 1.0))


def job_line(job, prog=None) -> str:
    """One line per job for progress bars and logs: preset · id · state · epoch · losses · times."""
    bits = [f"{job.preset} · {job.id} · {job.state}"]
    epoch, epochs = getattr(prog, "epoch", None), getattr(prog, "epochs", None) or getattr(job, "epochs", None)
    if epoch is not None:
        bits.append(f"epoch {epoch}/{epochs}" if epochs else f"epoch {epoch}")
    for label, attr in (("train", "train_loss"), ("val", "val_loss")):
        v = finite_or_none(getattr(prog, attr, None))
        if v is not None:
            bits.append(f"{label} {v:.4g}")
    elapsed = getattr(prog, "elapsed_s", None)
    if elapsed is not None:
        bits.append(f"elapsed {fmt_duration(elapsed)}")
    eta = getattr(prog, "eta_s", None)
    if eta is not None and job.state == "running":
        bits.append(f"ETA {fmt_duration(eta)}")
    if getattr(prog, "stalled", False):
        bits.append("stalled")
    return " · ".join(bits)

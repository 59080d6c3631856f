"""The Training jobs page's rows: the job table, progress lines and the loss history frame.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. Reads jobs.Job and
jobs.JobProgress objects by attribute, so any object with those fields works.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from pages._format import finite_or_none, fmt_duration

# The presets the "recovery suite" button queues at once.
RECOVERY_SUITE = ("tiny_model", "micro_model", "low_lr", "high_dropout", "combined_fix")


def job_device(job) -> str:
    return str(getattr(job, "device_used", None) or getattr(job, "device_assigned", None)
               or getattr(job, "device_requested", None) or "–")


# What a run's "best" figure is, by TrainConfig.select_on: (short label, unit).
SELECTION_LABELS = {"val_loss": ("val loss", ""), "val_free_mae": ("val free-run MAE", " °F")}
# Column tooltips of the job table: what each figure is and in which units.
JOB_COLUMN_HELP = {
    "train objective": "The training objective on the last epoch, in model units. It adds rollout and "
                       "scheduled-sampling terms when the preset uses them, so it is not comparable "
                       "with the validation loss.",
    "val loss": "Teacher-forcing loss on the validation roasts on the last epoch (model units).",
    "val TF MAE °F": "Teacher-forcing MAE on the validation roasts on the last epoch, in °F: the "
                     "figure the sidebar and the Teacher forcing page show.",
    "best": "The best epoch's selection figure: the validation loss, or the free-running MAE in °F "
            "for presets that pick their best epoch free-running (select_on = val_free_mae).",
    "run": "The run directory (the checkpoint's name in the sidebar).",
}


def selection_metric(job) -> str:
    """TrainConfig.select_on of a job's run: from the run's config.json once written, else from
    its preset and overrides; 'val_loss' when neither can be read."""
    config = Path(str(getattr(job, "run_dir", "") or "")) / "config.json"
    try:
        return str(json.loads(config.read_text())["train"]["select_on"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        from roastcore.experiments import get_preset  # only for jobs whose run has no config yet

        experiment = get_preset(job.preset).experiment.with_overrides(dict(getattr(job, "overrides", {}) or {}))
        return experiment.train.select_on
    except (KeyError, ValueError, TypeError, AttributeError):
        return "val_loss"


def best_text(value, epoch, select_on: str) -> str:
    """'12.73 °F val free-run MAE (epoch 5)' or '0.3241 val loss (epoch 3)'; '–' without a value."""
    v = finite_or_none(value)
    if v is None:
        return "–"
    label, unit = SELECTION_LABELS.get(select_on, (select_on, ""))
    number = f"{v:.2f}{unit}" if unit else f"{v:.4g}"
    return f"{number} {label}" + (f" (epoch {epoch})" if epoch is not None else "")


def jobs_table(jobs: Sequence, progress: Mapping[str, object] | None = None, now: float | None = None,
               last_metrics: Mapping[str, Mapping] | None = None,
               tasks: Mapping[str, object] | None = None) -> pd.DataFrame:
    """One row per job (newest first): id, preset (a task job: its kind), state, device, epoch
    (mid-epoch: with the batch; a task: its stage), the last epoch's train objective, val loss
    and val TF MAE (°F), the best epoch's selection figure with its name, elapsed, ETA, run.
    `last_metrics`: the last metrics.jsonl row per job id; `tasks`: jobs.TaskProgress per task
    job id."""
    progress = progress or {}
    last_metrics = last_metrics or {}
    tasks = tasks or {}
    now = time.time() if now is None else now
    rows = []
    for job in sorted(jobs, key=lambda j: -(getattr(j, "created_at", 0) or 0)):
        prog = progress.get(job.id)
        epochs = getattr(prog, "epochs", None) or getattr(job, "epochs", None)
        elapsed = getattr(prog, "elapsed_s", None)
        if elapsed is None and getattr(job, "started_at", None):
            elapsed = (getattr(job, "ended_at", None) or now) - job.started_at
        eta = job_eta(prog) if job.state == "running" else None
        if job.id in tasks:
            rows.append(task_row(job, tasks[job.id], elapsed))
            continue
        best = getattr(prog, "best_val_loss", None)
        best_epoch = getattr(prog, "best_epoch", None)
        if best is None:
            best, best_epoch = getattr(job, "best_val_loss", None), getattr(job, "best_epoch", None)
        state = job.state + (" (stalled)" if getattr(prog, "stalled", False) else "")
        rows.append({
            "job": job.id,
            "preset": job.preset,
            "state": state,
            "device": job_device(job),
            "epoch": epoch_text(prog, epochs),
            "train objective": finite_or_none(getattr(prog, "train_loss", None)),
            "val loss": finite_or_none(getattr(prog, "val_loss", None)),
            "val TF MAE °F": finite_or_none((last_metrics.get(job.id) or {}).get("val_tf_mae_f")),
            "best": best_text(best, best_epoch, selection_metric(job)),
            "elapsed": fmt_duration(elapsed),
            "ETA": fmt_duration(eta) if eta is not None else "–",
            "run": job.run_name,
        })
    cols = ["job", "preset", "state", "device", "epoch", "train objective", "val loss", "val TF MAE °F", "best",
            "elapsed", "ETA", "run"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("train objective", "val loss", "val TF MAE °F"):
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN: a blank cell, not "None"
    return df


def task_row(job, task, elapsed) -> dict:
    """A task job's row (jobs/tasks.py): its kind, and its stage where a training has epochs."""
    stage = "–"
    if getattr(task, "total", None):
        stage = f"{task.done}/{task.total}" + (f" {task.stage}" if getattr(task, "stage", "") else "")
    return {"job": job.id, "preset": f"{job.preset} (task)", "state": job.state, "device": job_device(job),
            "epoch": stage, "train objective": None, "val loss": None, "val TF MAE °F": None, "best": "–",
            "elapsed": fmt_duration(elapsed), "ETA": "–", "run": job.run_name}


def epoch_text(prog, epochs=None) -> str:
    """'3/10', or mid-epoch '1/10 · batch 5/8'; '–' before the first batch."""
    epoch = getattr(prog, "epoch", None)
    epochs = epochs or getattr(prog, "epochs", None)
    if epoch is None:
        return "–"
    text = f"{epoch}/{epochs}" if epochs else str(epoch)
    batch, n_batches = getattr(prog, "batch", None), getattr(prog, "n_batches", None)
    if batch and n_batches and batch < n_batches:
        text += f" · batch {batch}/{n_batches}"
    return text


def epochs_done(prog) -> float | None:
    """Epochs done as a fraction: 2.5 = two epochs and half the batches of the third
    (progress.json's epoch is the one in progress while its batches run)."""
    epoch = getattr(prog, "epoch", None)
    if epoch is None:
        return None
    batch, n_batches = getattr(prog, "batch", None), getattr(prog, "n_batches", None)
    if batch and n_batches and batch < n_batches:
        return max(epoch - 1, 0) + batch / n_batches
    return float(epoch)


def job_eta(prog) -> float | None:
    """Seconds left: from the time per batch so far when an epoch is under way (so the first
    epoch already has one), else the trainer's per-epoch estimate."""
    done, epochs = epochs_done(prog), getattr(prog, "epochs", None)
    elapsed = finite_or_none(getattr(prog, "elapsed_s", None))
    batch, n_batches = getattr(prog, "batch", None), getattr(prog, "n_batches", None)
    if done and epochs and elapsed is not None and batch and n_batches and batch < n_batches:
        return max(elapsed / done * (epochs - done), 0.0)
    return finite_or_none(getattr(prog, "eta_s", None))


def plot_selection(jobs: Sequence, chosen: Sequence[str] | None, seen: Sequence[str] | None,
                   limit: int = 4) -> tuple[list[str], list[str]]:
    """(jobs whose loss curves to draw, jobs considered so far). First time: plot_default. Later:
    the user's choice, minus deleted jobs, plus jobs that started since (a finished job keeps its
    curve and a newly started one joins it)."""
    ids = [j.id for j in jobs]
    if chosen is None:
        picked = plot_default(jobs, limit)
    else:
        new = [i for i in plot_default(jobs, len(ids)) if i not in set(seen or ())]
        picked = [i for i in chosen if i in ids] + new
        picked = list(dict.fromkeys(picked))[: max(limit, len(chosen))]
    started = plot_default(jobs, len(ids)) if ids else []
    return picked, sorted(set(seen or ()) | set(started) | set(picked))


def plot_default(jobs: Sequence, limit: int = 4) -> list[str]:
    """The jobs whose loss curves are drawn by default: the newest `limit` that have started
    (running or finished, so a job that just finished keeps its curve), else the newest one."""
    newest = sorted(jobs, key=lambda j: -(getattr(j, "created_at", 0) or 0))
    started = [j.id for j in newest if getattr(j, "started_at", None) or j.state != "queued"]
    return started[:limit] or [j.id for j in newest[:1]]


def job_signature(jobs: Sequence) -> tuple:
    """(id, state) of every job: when it changes, the page reruns in full (sidebar runs, selectors)."""
    return tuple(sorted((j.id, j.state) for j in jobs))


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
    """Share of the training done (0..1) from a jobs.JobProgress, batches of the epoch under
    way included."""
    done, epochs = epochs_done(prog), getattr(prog, "epochs", None)
    if not done or not epochs:
        return 0.0
    return float(min(max(done / epochs, 0.0), 1.0))


def job_line(job, prog=None, task=None) -> str:
    """One line per job for progress bars and logs: preset · id · state · epoch (and batch) ·
    losses · times. A task job (`task`: jobs.TaskProgress): kind · id · state · stage."""
    if task is not None:
        bits = [f"{job.preset} {job.run_name} · {job.id} · {job.state}"]
        if getattr(task, "total", None):
            bits.append(f"{task.done}/{task.total}" + (f" {task.stage}" if task.stage else ""))
        return " · ".join(bits)
    bits = [f"{job.preset} · {job.id} · {job.state}"]
    epoch, epochs = getattr(prog, "epoch", None), getattr(prog, "epochs", None) or getattr(job, "epochs", None)
    if epoch is not None:
        bits.append(f"epoch {epoch_text(prog, epochs)}")
    elif job.state == "running":
        bits.append("starting (data, model, first batch)")
    for label, attr in (("train objective", "train_loss"), ("val loss", "val_loss")):
        v = finite_or_none(getattr(prog, attr, None))
        if v is not None:
            bits.append(f"{label} {v:.4g}")
    elapsed = getattr(prog, "elapsed_s", None)
    if elapsed is not None:
        bits.append(f"elapsed {fmt_duration(elapsed)}")
    eta = job_eta(prog)
    if eta is not None and job.state == "running":
        bits.append(f"ETA {fmt_duration(eta)}")
    if getattr(prog, "stalled", False):
        bits.append("stalled")
    return " · ".join(bits)

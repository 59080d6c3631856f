"""The checkpoint picker's entries: which runs are listed, in what order, and their labels.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pages._format import finite_or_none, fmt_count
from pages._state import DEFAULT_RUNS_DIR
from roastcore import checkpoints

DEMO_PREFIX = "demo_"


# Where a run's TF MAE comes from (checkpoints.RunInfo.tf_mae_from) -> how the label says it.
TF_SOURCE = {"evaluation": "scored", "last epoch": "last epoch"}


@dataclass
class RunChoice:
    """One entry of the checkpoint picker."""

    name: str
    path: Path
    status: str = ""
    label: str = ""
    metrics: dict = field(default_factory=dict)
    demo: bool = False
    usable: bool = True  # False: listed as not usable, never scored, diagnosed or generated from
    unusable_reason: str = ""


def discover_runs(runs_dir, demo_dir: Path | None = None, info_of=None) -> list[RunChoice]:
    """Runs listed by checkpoints.list_runs in `runs_dir`, plus the shipped demo runs
    (checkpoints/demo_*) that the runs directory does not already hold. Demo runs come first,
    then the others newest first (list_runs' order). A run that is not usable (cancelled or
    failed before its first epoch, no weights) is listed as such; one still training without
    weights is left to the jobs page until it saves an epoch. `info_of`: how each run folder is
    read (checkpoints.list_runs; pages._ui passes a cached one)."""
    demo_dir = DEFAULT_RUNS_DIR if demo_dir is None else Path(demo_dir)
    sources = [Path(runs_dir)]
    if demo_dir.is_dir() and (not Path(runs_dir).exists() or demo_dir.resolve() != Path(runs_dir).resolve()):
        sources.append(demo_dir)
    found: dict[str, RunChoice] = {}
    for k, source in enumerate(sources):
        for info in checkpoints.list_runs(source, info_of=info_of):
            if k > 0 and not info.name.startswith(DEMO_PREFIX):
                continue
            if not info.usable and info.status == "running":
                continue  # still training, nothing saved yet: the jobs page follows it
            found.setdefault(info.name, run_choice(info))
    runs = list(found.values())
    return [r for r in runs if r.demo] + [r for r in runs if not r.demo]


def run_choice(info) -> RunChoice:
    """A checkpoints.RunInfo -> RunChoice with a picker label."""
    metrics = {"preset": info.preset or None, "n_params": info.param_count, "best_epoch": info.best_epoch,
               "best_val_loss": info.best_val_loss, "tf_mae_f": info.tf_mae_f, "tf_mae_from": info.tf_mae_from,
               "verdict": info.verdict, "epochs_run": info.epochs_run, "data_source": info.data_source}
    choice = RunChoice(name=info.name, path=Path(info.path), status=info.status, metrics=metrics,
                       demo=info.name.startswith(DEMO_PREFIX), usable=bool(info.usable),
                       unusable_reason=str(info.unusable_reason or ""))
    choice.label = run_label(choice)
    return choice


def fmt_tf_mae(value) -> str:
    """A TF MAE as every page shows it (2 decimals), so the sidebar and the pages agree."""
    v = finite_or_none(value)
    return "–" if v is None else f"{v:.2f} °F"


def tf_mae_text(run: RunChoice) -> str | None:
    """'TF MAE 0.23 °F (scored)' / '... (last epoch)', or None without a figure."""
    mae = finite_or_none(run.metrics.get("tf_mae_f"))
    if mae is None:
        return None
    source = TF_SOURCE.get(run.metrics.get("tf_mae_from") or "", "")
    return f"TF MAE {fmt_tf_mae(mae)}" + (f" ({source})" if source else "")


def run_label(run: RunChoice) -> str:
    bits = [run.name]
    if not run.usable:
        return " · ".join(bits + ["not usable"])
    if run.status and run.status not in ("succeeded", "done", "completed", "finished"):
        bits.append(f"[{run.status}]")
    val = finite_or_none(run.metrics.get("best_val_loss"))
    tf = tf_mae_text(run)
    if tf is not None:
        bits.append(tf)
    elif val is not None:
        bits.append(f"val loss {val:.3g}")
    return " · ".join(bits)


def run_caption(run: RunChoice) -> str:
    m = run.metrics
    bits = [f"**{run.name}**", f"status **{run.status or 'unknown'}**"]
    if not run.usable:
        bits.append(f"**not usable**: {run.unusable_reason or 'no usable weights'}")
    if m.get("preset"):
        bits.append(f"preset `{m['preset']}`")
    if finite_or_none(m.get("best_val_loss")) is not None:
        bits.append(f"best val loss {float(m['best_val_loss']):.4g}")
    tf = tf_mae_text(run)
    if tf is not None:
        bits.append(tf.replace("TF MAE", "val TF MAE", 1))
    if m.get("verdict"):
        bits.append(f"verdict *{m['verdict']}*")
    if m.get("best_epoch") is not None:
        bits.append(f"epoch {m['best_epoch']}")
    if m.get("n_params") is not None:
        bits.append(f"{fmt_count(m['n_params'])} params")
    return " · ".join(bits)


def discover_studies(runs_dir, demo_dir: Path | None = None) -> list[Path]:
    """Study folders (roastcore.study.list_studies) in `runs_dir`, then the shipped demo studies
    (checkpoints/studies/*) whose names the runs directory does not already hold, so a fresh
    install shows one."""
    from roastcore.study import list_studies

    demo_dir = DEFAULT_RUNS_DIR if demo_dir is None else Path(demo_dir)
    found = list_studies(runs_dir)
    names = {p.name for p in found}
    if Path(demo_dir).is_dir() and (not Path(runs_dir).exists()
                                    or Path(demo_dir).resolve() != Path(runs_dir).resolve()):
        found += [p for p in list_studies(demo_dir) if p.name not in names and p.parent.name == "studies"]
    return found

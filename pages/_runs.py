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


@dataclass
class RunChoice:
    """One entry of the checkpoint picker."""

    name: str
    path: Path
    status: str = ""
    label: str = ""
    metrics: dict = field(default_factory=dict)
    demo: bool = False


def discover_runs(runs_dir, demo_dir: Path | None = None) -> list[RunChoice]:
    """Runs listed by checkpoints.list_runs in `runs_dir` that hold weights, plus the shipped
    demo runs (checkpoints/demo_*) that the runs directory does not already hold. Demo runs
    come first, then the others newest first (list_runs' order)."""
    demo_dir = DEFAULT_RUNS_DIR if demo_dir is None else Path(demo_dir)
    sources = [Path(runs_dir)]
    if demo_dir.is_dir() and (not Path(runs_dir).exists() or demo_dir.resolve() != Path(runs_dir).resolve()):
        sources.append(demo_dir)
    found: dict[str, RunChoice] = {}
    for k, source in enumerate(sources):
        for info in checkpoints.list_runs(source):
            if k > 0 and not info.name.startswith(DEMO_PREFIX):
                continue
            if not (Path(info.path) / "model.safetensors").is_file():
                continue  # a run that has not saved a best epoch yet: nothing to load
            found.setdefault(info.name, run_choice(info))
    runs = list(found.values())
    return [r for r in runs if r.demo] + [r for r in runs if not r.demo]


def run_choice(info) -> RunChoice:
    """A checkpoints.RunInfo -> RunChoice with a picker label."""
    metrics = {"preset": info.preset or None, "n_params": info.param_count, "best_epoch": info.best_epoch,
               "best_val_loss": info.best_val_loss, "val_tf_mae_f": info.last_val_tf_mae_f,
               "epochs_run": info.epochs_run}
    choice = RunChoice(name=info.name, path=Path(info.path), status=info.status, metrics=metrics,
                       demo=info.name.startswith(DEMO_PREFIX))
    choice.label = run_label(choice)
    return choice


def run_label(run: RunChoice) -> str:
    bits = [run.name]
    if run.status and run.status not in ("succeeded", "done", "completed", "finished"):
        bits.append(f"[{run.status}]")
    mae = finite_or_none(run.metrics.get("val_tf_mae_f"))
    val = finite_or_none(run.metrics.get("best_val_loss"))
    if mae is not None:
        bits.append(f"TF MAE {mae:.1f} °F")
    elif val is not None:
        bits.append(f"val loss {val:.3g}")
    return " · ".join(bits)


def run_caption(run: RunChoice) -> str:
    m = run.metrics
    bits = [f"**{run.name}**", f"status **{run.status or 'unknown'}**"]
    if m.get("preset"):
        bits.append(f"preset `{m['preset']}`")
    if finite_or_none(m.get("best_val_loss")) is not None:
        bits.append(f"best val loss {float(m['best_val_loss']):.4g}")
    if finite_or_none(m.get("val_tf_mae_f")) is not None:
        bits.append(f"val TF MAE {float(m['val_tf_mae_f']):.1f} °F")
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

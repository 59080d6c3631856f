"""The Experiment setup form's logic: widget choices, a preset's values, overrides and the diff.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from roastcore.experiments import PRESETS, ExperimentConfig, health_band

MODEL_KEYS = ("model_type", "d_model", "n_layers", "n_heads", "d_ff", "dropout", "pos_encoding", "use_flavors",
              "normalize", "target_mode", "step_s")
TRAIN_KEYS = ("lr", "weight_decay", "epochs", "batch_size", "scheduled_sampling", "ss_max_ratio")

LR_CHOICES = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
D_MODEL_CHOICES = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HEAD_CHOICES = (1, 2, 3, 4, 6, 8, 12, 16)
D_FF_CHOICES = (32, 64, 128, 256, 512, 1024, 2048)
BATCH_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)
# The slider settings offered from a fixed list (every preset's own value is added to it).
SLIDER_CHOICES = {"d_model": D_MODEL_CHOICES, "n_heads": HEAD_CHOICES, "d_ff": D_FF_CHOICES,
                  "lr": LR_CHOICES, "batch_size": BATCH_CHOICES}


def choices_with(options: Iterable, *extra) -> list:
    """Sorted options that always include the given values (a preset's own setting)."""
    return sorted(set(options) | {e for e in extra if e is not None})


def slider_options(key: str) -> list:
    """The options of setting `key` (SLIDER_CHOICES), with every preset's own value."""
    values = [preset_values(p.experiment)[key] for p in PRESETS.values()]
    return choices_with(SLIDER_CHOICES[key], *values)


def preset_values(experiment: ExperimentConfig) -> dict:
    """The form's values (MODEL_KEYS, TRAIN_KEYS) of an experiment, e.g. a preset's."""
    out = {key: getattr(experiment.model, key) for key in MODEL_KEYS}
    out.update({key: getattr(experiment.train, key) for key in TRAIN_KEYS})
    return out


def overrides_from(base: Mapping[str, Mapping], values: Mapping[str, object]) -> dict:
    """Flat --set overrides for the fields of `values` that differ from the base experiment's
    model/train dicts."""
    out = {}
    for key, value in values.items():
        section = "model" if key in base.get("model", {}) else "train"
        old = base.get(section, {}).get(key)
        if _norm_value(old) != _norm_value(value):
            out[key] = value
    return out


def apply_values(base: ExperimentConfig,
                 values: Mapping[str, object]) -> tuple[dict, ExperimentConfig | None, str | None]:
    """(overrides, the experiment they make, None) or (overrides, None, the config's own error)."""
    overrides = overrides_from(base.to_dict(), values)
    try:
        return overrides, base.with_overrides(overrides), None
    except ValueError as exc:
        return overrides, None, str(exc)


def diff_table(base: Mapping, current: Mapping, prefix: str = "") -> pd.DataFrame:
    """Rows (field, preset, current) for every leaf that differs between two nested dicts."""
    rows = []

    def walk(a, b, path):
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            return
        if _norm_value(a) != _norm_value(b):
            rows.append({"field": path, "preset": _show(a), "current": _show(b)})

    walk(base or {}, current or {}, prefix)
    return pd.DataFrame(rows, columns=["field", "preset", "current"])


def _norm_value(v):
    if isinstance(v, float):
        return round(v, 12)
    if isinstance(v, (list, tuple)):
        return tuple(_norm_value(x) for x in v)
    return v


def _show(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v) or "–"
    return str(v)


def training_health(n_params: int, n_profiles: int, val_frac: float) -> tuple[int, float, str]:
    """(training roasts, parameters per training roast, experiments.health_band of that)."""
    n_train = max(1, int(round(n_profiles * (1 - val_frac))))
    per_sample = n_params / n_train
    return n_train, per_sample, health_band(per_sample)


# ---------------------------------------------------------------------------- device
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def device_help(cuda_available: bool | None = None) -> str:
    """The device selector's help, saying whether this machine has a GPU."""
    if cuda_available is None:
        import torch  # the setup page has loaded torch already (parameter counts)

        cuda_available = bool(torch.cuda.is_available())
    where = "A CUDA GPU is available here." if cuda_available else "No CUDA GPU was found here: 'cuda' jobs are refused."
    return f"auto: the GPU when there is one, else the CPU. {where}"


# ---------------------------------------------------------------------------- run names
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def readable_run_name(preset: str, taken) -> str:
    """'combined-fix-2': the preset with dashes and the smallest number not in `taken`."""
    stem = "".join(c if c.isalnum() else "-" for c in preset.lower()).strip("-") or "run"
    taken = set(taken)
    n = 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def taken_run_names(runs_dir, jobs: Sequence = ()) -> set[str]:
    """Names a new run may not take: folders in the runs directory and every job's run name."""
    runs_dir = Path(runs_dir)
    names = {p.name for p in runs_dir.iterdir()} if runs_dir.is_dir() else set()
    return names | {j.run_name for j in jobs}


def check_run_name(name: str, taken) -> str | None:
    """None when `name` can name a new run, else why not (one line)."""
    if not RUN_NAME.match(name or ""):
        return ("Run name: use letters, digits, '.', '_' or '-' (at most 80, starting with a letter "
                "or digit)")
    if name in set(taken):
        return f"Run name: {name!r} is taken in the runs directory; choose another"
    return None

"""Import the original RoastFormer research code's `.pt` checkpoints as normal run directories.

A checkpoint written by the research code's train_transformer.py is `torch.save` of a dict:
model_state_dict, config (its argparse / notebook dict), feature_dims (num_origins,
num_processes, num_roast_levels, num_varieties, num_flavors[, num_continuous]), epoch,
best_val_loss, train_losses, val_losses, optimizer_state_dict, scheduler_state_dict. It stores
no encoders and no temperature convention: the inputs are rebuilt from the dataset package it
was trained on (roastcore.io.roastformer_package), and the convention is given or found
(`units="auto"`: the lower teacher-forcing error on the package's validation roasts).

Only tensors and plain containers are loaded (`torch.load(weights_only=True)`); a file that
needs pickle code execution is refused unread. Each run is built in a temporary folder beside
its destination and renamed into place when every checkpoint given has imported, so a failure
leaves nothing half-written.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from roastcore.architectures import build_model
from roastcore.checkpoints import MANIFEST, read_json, save_checkpoint, write_json
from roastcore.evaluate import teacher_forcing
from roastcore.experiments import ExperimentConfig, TrainConfig
from roastcore.io import dataset_fingerprint
from roastcore.io.roastformer_package import RoastformerPackage, profiles_of, read_package
from roastcore.roastformer_v1 import (
    CONVENTIONS,
    FEATURE_DIM_KEYS,
    MODEL_TYPE,
    ORIGINAL_CLAMP_F,
    V1Encoder,
    model_config,
    scaler_for,
)

log = logging.getLogger(__name__)

UNITS = ("auto", *CONVENTIONS)
REQUIRED_KEYS = ("model_state_dict", "config", "feature_dims")
GENERIC_STEMS = ("best_transformer_model", "best_model", "model", "checkpoint")
LOSS_UNITS = {"raw": "MSE in °F² over all padded steps (the research code's train loss)",
              "normalized": "MSE of (T-100)/400 over all padded steps (the research code's train loss)"}
# The research code's training settings -> TrainConfig fields (kept for reference / retraining).
TRAIN_KEYS = {"learning_rate": "lr", "weight_decay": "weight_decay", "batch_size": "batch_size",
              "grad_clip": "grad_clip", "num_epochs": "epochs", "early_stopping_patience": "patience"}


class CheckpointImportError(ValueError):
    """A checkpoint or package that cannot be imported; the message names the file and why."""


@dataclass
class ImportResult:
    source: str
    run_dir: str
    units: str
    units_choice: str  # "auto" or "given"
    tf_mae_f: dict[str, float | None]  # per convention tried, on the package's validation roasts
    epoch: int | None
    best_val_loss: float | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------- reading a .pt
def read_original_checkpoint(path) -> dict:
    """The checkpoint dict, tensors only; CheckpointImportError for pickles, other shapes, or
    missing keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointImportError(
            f"{path}: refused: loading it needs pickle code execution, which could run arbitrary code; "
            f"only tensors and plain containers are accepted ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - zip / truncated / not a torch file
        raise CheckpointImportError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                                    f"{_first_line(exc)})") from None
    if not isinstance(blob, dict):
        raise CheckpointImportError(f"{path}: holds a {type(blob).__name__}; a RoastFormer checkpoint is a dict "
                                    f"with {', '.join(REQUIRED_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in blob]
    if missing:
        hint = (" (feature_dims gives the vocabulary sizes the model was built with; the research code's "
                "train_transformer.py writes it)") if "feature_dims" in missing else ""
        raise CheckpointImportError(f"{path}: no {', '.join(missing)} in the checkpoint (keys: "
                                    f"{', '.join(sorted(map(str, blob)))}){hint}")
    state = blob["model_state_dict"]
    if not isinstance(state, dict) or not state:
        raise CheckpointImportError(f"{path}: model_state_dict is not a non-empty dict of tensors")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointImportError(f"{path}: model_state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
    if not isinstance(blob["config"], dict):
        raise CheckpointImportError(f"{path}: config is a {type(blob['config']).__name__}, not a dict")
    dims = blob["feature_dims"]
    if not isinstance(dims, dict) or any(not isinstance(dims.get(k), int) or isinstance(dims.get(k), bool)
                                         for k in FEATURE_DIM_KEYS):
        raise CheckpointImportError(f"{path}: feature_dims must map {', '.join(FEATURE_DIM_KEYS)} to integers; "
                                    f"got {dims!r}")
    return blob


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (an empty file raises one with no text)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def load_original_state(model: torch.nn.Module, state: dict, path) -> None:
    """strict=True loading with messages that name the tensor (and both shapes)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} tensor(s) of the original architecture its config describes "
                         f"(first: {missing[0]!r})")
        if extra:
            parts.append(f"has {len(extra)} tensor(s) that architecture does not (first: {extra[0]!r})")
        raise CheckpointImportError(f"{path}: model_state_dict {'; '.join(parts)}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointImportError(
                f"{path}: model_state_dict[{key!r}] has shape {tuple(state[key].shape)}, but the model its "
                f"config and feature_dims describe needs {tuple(tensor.shape)}")
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()},
                          strict=True)


# ----------------------------------------------------------------------------- importing
def import_checkpoints(paths, package, out, units: str = "auto") -> list[ImportResult]:
    """Import each `.pt` in `paths` against the dataset package (a path, or an already read
    RoastformerPackage). One path: `out` is the run directory. Several: `out` is a folder and
    each run goes to out/<experiment name>. All or nothing."""

    if units not in UNITS:
        raise ValueError(f"units {units!r} is not one of {UNITS}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no checkpoint files given")
    pkg = package if isinstance(package, RoastformerPackage) else read_package(package)
    frames = pkg.require_metadata()
    report = profiles_of(pkg)
    val = [p for p in report.profiles if report.membership.get(p.id) == "val"]
    notes = []
    if not val:
        notes.append("the package has no validation roasts; conventions compared on its training roasts")
        val = list(report.profiles)
    if not val:
        raise CheckpointImportError(f"{pkg.location.describe()}: no importable roasts in the package")
    encoders = {c: V1Encoder.from_package(pkg, c, frames) for c in CONVENTIONS}
    blobs = [read_original_checkpoint(p) for p in paths]  # every file checked before anything is written
    out = Path(out)
    created = [d for d in (out, *out.parents) if not d.exists()]  # folders to remove again on failure
    destinations = _destinations(paths, blobs, out)
    staged: list[tuple[Path, Path]] = []
    results = []
    try:
        for path, blob, dest in zip(paths, blobs, destinations, strict=True):
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.import-", dir=dest.parent))
            staged.append((tmp, dest))
            result = _import_one(path, blob, encoders, report, val, tmp, units, notes)
            result.run_dir = str(dest)
            results.append(result)
        for tmp, dest in staged:
            if dest.exists():  # an empty folder (checked in _destinations); anything else refused there
                dest.rmdir()
            os.replace(tmp, dest)
        staged.clear()
    finally:
        for tmp, _ in staged:
            shutil.rmtree(tmp, ignore_errors=True)
        if staged:  # a failure: leave no empty folders behind either
            for folder in created:
                try:
                    folder.rmdir()
                except OSError:
                    pass
    return results


def _destinations(paths: list[Path], blobs: list[dict], out: Path) -> list[Path]:
    """One file: `out` is its run, unless `out` is a folder of other things (a runs directory),
    which then receives the run by name, as it does for several files."""
    is_run = any((out / name).exists() for name in ("model.safetensors", "manifest.json", "config.json"))
    if len(paths) == 1 and not (out.is_dir() and any(out.iterdir()) and not is_run):
        dests = [out]
    else:
        names: list[str] = []
        for path, blob in zip(paths, blobs, strict=True):
            base = _run_name(path, blob)
            name, n = base, 2
            while name in names:
                name, n = f"{base}-{n}", n + 1
            names.append(name)
        dests = [out / n for n in names]
    for dest in dests:
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise CheckpointImportError(f"{dest}: already exists and is not an empty folder; choose a new --out")
        dest.parent.mkdir(parents=True, exist_ok=True)
    return dests


def _run_name(path: Path, blob: dict) -> str:
    """experiment_name from the checkpoint's config, else the file name (or, for the research
    code's generic best_transformer_model.pt, its folder's name)."""
    name = blob["config"].get("experiment_name")
    if not isinstance(name, str) or not name.strip():
        name = path.parent.name if path.stem in GENERIC_STEMS and path.parent.name else path.stem
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name.strip()).strip(".")
    return safe or "roastformer"


def _import_one(path: Path, blob: dict, encoders: dict, report, val, tmp: Path, units: str,
                shared_notes: list[str]) -> ImportResult:

    dims = {k: int(blob["feature_dims"][k]) for k in FEATURE_DIM_KEYS}
    viable = [c for c in CONVENTIONS if encoders[c].feature_dims == dims]
    if not viable:
        where = report.source + (f" ({report.package_root.rstrip('/')})" if report.package_root else "")
        described = "; ".join(f"{c} loader: {_fmt_dims(encoders[c].feature_dims)}" for c in CONVENTIONS)
        raise CheckpointImportError(f"{path}: the package {where} does not match the checkpoint's vocabulary "
                                    f"sizes: checkpoint {_fmt_dims(dims)}; package {described}. Give the "
                                    "package this checkpoint was trained on")
    if units != "auto" and units not in viable:
        raise CheckpointImportError(f"{path}: --units {units}: with the {units} loader's encodings the package "
                                    f"gives {_fmt_dims(encoders[units].feature_dims)}, the checkpoint needs "
                                    f"{_fmt_dims(dims)}")
    original = dict(blob["config"])
    try:
        configs = {c: model_config(original, c) for c in CONVENTIONS}
    except (TypeError, ValueError) as exc:
        raise CheckpointImportError(f"{path}: its config cannot describe the original architecture: {exc}") from None
    models, tf_mae = {}, {c: None for c in CONVENTIONS}
    for c in (viable if units == "auto" else [units]):
        try:
            model = build_model(configs[c], encoders[c], scaler_for(c))
        except ValueError as exc:
            raise CheckpointImportError(f"{path}: {exc}") from None
        load_original_state(model, blob["model_state_dict"], path)
        model.eval()
        models[c] = model
        mae = teacher_forcing(model, val, model.encoder, 1.0, max_len=model.config.max_len).mae_f
        tf_mae[c] = float(mae) if math.isfinite(mae) else None
    if units == "auto":
        scored = [c for c in models if tf_mae[c] is not None]
        chosen = min(scored, key=lambda c: tf_mae[c]) if scored else next(iter(models))
    else:
        chosen = units
    model = models[chosen]
    notes = list(shared_notes) + list(encoders[chosen].notes)
    if not all(abs(p.interval_s - 1.0) < 1e-9 for p in report.profiles):
        notes.append("some roasts are not sampled every 1 s: the research code fed their samples as they are, "
                     "here they are resampled to 1 s")
    experiment = _experiment(original, model.config, _run_name(path, blob), notes)
    val_ids = [pid for pid, split in report.membership.items() if split == "val"]
    metrics = _loss_history(blob, chosen)
    _write_run(tmp, model, experiment, metrics, {
        "data_source": report.source, "dataset_fingerprint": dataset_fingerprint(report.profiles),
        "split": {"val_ids": val_ids, "source": "roastformer package (its own train/val files)",
                  "n_train": len(report.profiles) - len(val_ids), "n_val": len(val_ids)},
    }, legacy={
        "format": "roastformer research checkpoint (train_transformer.py)", "source": str(path),
        "units": chosen, "units_choice": units if units != "auto" else "auto",
        "tf_mae_f": tf_mae, "tf_mae_split": "package validation roasts",
        "conventions_matching_feature_dims": viable,
        "original_config": _jsonable(original), "feature_dims": dims,
        "epoch": _int_or_none(blob.get("epoch")), "best_val_loss": _float_or_none(blob.get("best_val_loss")),
        "best_val_loss_units": LOSS_UNITS[chosen], "original_clamp_f": list(ORIGINAL_CLAMP_F[chosen]),
        "package_root": report.package_root, "notes": notes,
    })
    return ImportResult(source=str(path), run_dir=str(tmp), units=chosen, units_choice=units, tf_mae_f=tf_mae,
                        epoch=_int_or_none(blob.get("epoch")), best_val_loss=_float_or_none(blob.get("best_val_loss")),
                        notes=notes)


def _experiment(original: dict, model_cfg, name: str, notes: list[str]):
    """Our ExperimentConfig: the model config, and the research training settings that map."""

    train_kw = {}
    for key, ours in TRAIN_KEYS.items():
        value = original.get(key)
        if value is None:
            continue
        try:
            TrainConfig(**{ours: value})
        except (TypeError, ValueError):
            notes.append(f"config {key}={value!r} has no equivalent here; left at our default")
            continue
        train_kw[ours] = value
    return ExperimentConfig(name=name, model=model_cfg, train=TrainConfig(**train_kw))


def _loss_history(blob: dict, convention: str) -> list[dict]:
    train = blob.get("train_losses") if isinstance(blob.get("train_losses"), (list, tuple)) else []
    val = blob.get("val_losses") if isinstance(blob.get("val_losses"), (list, tuple)) else []
    lines = []
    for i in range(max(len(train), len(val))):
        lines.append({"epoch": i + 1, "train_loss": _float_or_none(train[i]) if i < len(train) else None,
                      "val_loss": _float_or_none(val[i]) if i < len(val) else None,
                      "loss_units": f"original {convention}"})
    return lines


def _write_run(run_dir: Path, model, experiment, metrics: list[dict], manifest: dict, legacy: dict) -> None:

    save_checkpoint(run_dir, model, experiment, status="imported", manifest=manifest, metrics=metrics)
    final = read_json(run_dir / MANIFEST)
    # The research code's own record of its best epoch, whatever the loss history says.
    final.update(best_epoch=legacy["epoch"], best_val_loss=legacy["best_val_loss"],
                 best_val_loss_units=legacy["best_val_loss_units"], model_type=MODEL_TYPE, legacy=legacy)
    write_json(run_dir / MANIFEST, final)


def _fmt_dims(dims: dict) -> str:
    return ", ".join(f"{k}={dims[k]}" for k in FEATURE_DIM_KEYS)


def _int_or_none(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)

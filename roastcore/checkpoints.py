"""Run directories: the only module that saves or loads trained runs.

A run directory holds

    config.json        ExperimentConfig
    model.safetensors  best weights so far (never a pickle)
    encoder.json       FeatureEncoder (fitted on the training split)
    scaler.json        TemperatureScaler
    metrics.jsonl      one JSON line per epoch, appended
    manifest.json      data source, dataset fingerprint, split (incl. validation ids), code
                       version, status, best epoch / val loss, param count, device, times;
                       `forecast` for a run trained for forecasting (roastcore.forecast_train)
    progress.json      heartbeat for job runners (epoch, batch, elapsed, heartbeat time)
    run.lock           held (flock) by the training process while it writes; removed at the end
    scores.json        the run scored on its validation roasts (written by roastcore.evaluate,
                       read without torch by roastcore.run_scores)
    prior.safetensors  (prior models) the aligned-kNN reference curves, and
    prior.json         their distance metadata and tuned parameters (roastcore.prior)

Every file is replaced atomically (temp + fsync + os.replace), so a crash mid-save leaves the
previous best intact. A run left `running` by a process that is gone (its run.lock is free)
reads as `interrupted`, and manifest.json is repaired to say so on that read. Loading reads
safetensors and JSON only. The original research code's `.pt` files are imported by
`roastformer_import` (`torch.load(weights_only=True)`, which refuses pickles that would run code).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from roastcore import __version__, liveness
from roastcore.architectures import build_model, encoder_from_dict
from roastcore.experiments import ExperimentConfig
from roastcore.features import FeatureEncoder, TemperatureScaler
from roastcore.fsutil import atomic_write_bytes, atomic_write_text, read_jsonl, to_json
from roastcore.model import RoastModel, count_parameters
from roastcore.prior import PriorLibrary
from roastcore.run_scores import read_scores_summary

log = logging.getLogger(__name__)

CONFIG, WEIGHTS, ENCODER, SCALER = "config.json", "model.safetensors", "encoder.json", "scaler.json"
METRICS, MANIFEST, PROGRESS = "metrics.jsonl", "manifest.json", "progress.json"
RUN_LOCK = "run.lock"
STATUSES = ("running", "succeeded", "diverged", "cancelled", "failed", "imported", "interrupted")
# A run without run.lock (written before it existed) that is silent this long is not running.
UNMARKED_STALE_S = 30 * 60
PROGRESS_EVERY_S = 2.0


class RunError(ValueError):
    """A run directory that cannot be read: the message names the file and the problem."""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def code_version() -> str:
    """Package version plus the git commit when the code runs from a clone."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def write_json(path: Path, obj) -> Path:
    return atomic_write_text(path, to_json(obj, indent=2) + "\n")


def read_json(path: Path) -> dict:
    """A run file that must hold a JSON object; RunError naming the file otherwise."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except RecursionError:
        raise RunError(f"{path}: nested too deeply to be a run file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RunError(f"{path}: must hold a JSON object, not a {type(value).__name__}")
    return value


def weights_bytes(model: torch.nn.Module) -> bytes:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return st_save(state)


def save_weights(path: Path, model: torch.nn.Module) -> Path:
    return atomic_write_bytes(path, weights_bytes(model))


# ----------------------------------------------------------------------------- writing a run
class RunWriter:
    """Writes one run directory as training proceeds: a train.Trainer callback (on_batch_end,
    on_epoch_end, on_best, on_train_end), also usable on its own (save_checkpoint)."""

    def __init__(self, run_dir, experiment: ExperimentConfig, encoder: FeatureEncoder,
                 scaler: TemperatureScaler, *, param_count: int, device: str, data_source: str = "",
                 dataset_fingerprint: str = "", split: dict | None = None, prior=None):
        self.run_dir = Path(run_dir)
        if (self.run_dir / WEIGHTS).exists() or (self.run_dir / METRICS).exists():
            raise RunError(f"{self.run_dir}: already holds a run; choose a new --out directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Held until finish(), or until this process dies: then readers see `interrupted`.
        self._marker = liveness.hold(self.run_dir / RUN_LOCK, wait_s=2.0)
        if self._marker is None:
            raise RunError(f"{self.run_dir}: another process is writing a run here")
        write_json(self.run_dir / CONFIG, experiment.to_dict())
        write_json(self.run_dir / ENCODER, encoder.to_dict())
        write_json(self.run_dir / SCALER, scaler.to_dict())
        created = now_iso()
        self.manifest = {
            "name": experiment.name, "data_source": data_source, "dataset_fingerprint": dataset_fingerprint,
            "split": split or {}, "code_version": code_version(), "status": "running", "reason": "",
            "best_epoch": None, "best_val_loss": None, "param_count": int(param_count), "device": device,
            "created": created, "updated": created,
        }
        write_json(self.run_dir / MANIFEST, self.manifest)
        self._last_progress = 0.0
        self._epochs, self._n_batches = experiment.train.epochs, None
        self.started = time.monotonic()
        if prior is not None:  # a cancelled prior run stays loadable with the library it trained on
            self.save_prior(prior)

    def update_manifest(self, **changes) -> None:
        self.manifest.update(changes, updated=now_iso())
        write_json(self.run_dir / MANIFEST, self.manifest)

    def save_best(self, model: torch.nn.Module, epoch: int, val_loss: float) -> Path:
        path = save_weights(self.run_dir / WEIGHTS, model)
        self.update_manifest(best_epoch=epoch, best_val_loss=val_loss)
        return path

    def save_prior(self, library) -> None:
        """The prior library a prior model needs at generation time (safetensors + JSON)."""
        library.save(self.run_dir)

    def append_metrics(self, metrics: dict) -> None:
        line = to_json(metrics) + "\n"
        with open(self.run_dir / METRICS, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def progress(self, force: bool = False, **fields) -> None:
        """Heartbeat for the job runner, at most every PROGRESS_EVERY_S unless forced."""
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        write_json(self.run_dir / PROGRESS, {**fields, "elapsed_s": round(now - self.started, 2),
                                             "heartbeat": time.time(), "heartbeat_iso": now_iso()})

    def finish(self, status: str, reason: str = "", **extra) -> None:
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        self.update_manifest(status=status, reason=reason, **extra)
        self._marker.release(unlink=True)

    # -- the trainer's callbacks ------------------------------------------------------------
    def on_batch_end(self, p: dict) -> None:
        self._n_batches = p["n_batches"]
        self.progress(epoch=p["epoch"], epochs=p["epochs"], batch=p["batch"], n_batches=p["n_batches"],
                      stage=p.get("stage", "train"))

    def on_epoch_end(self, metrics: dict) -> None:
        self.append_metrics(metrics)
        # A later stage's epochs say their own total (stage 1's epochs plus the stage's).
        self.progress(force=True, epoch=metrics["epoch"], epochs=metrics.get("epochs", self._epochs),
                      batch=self._n_batches, n_batches=self._n_batches, stage=metrics.get("stage", "train"))

    def on_best(self, model: torch.nn.Module, epoch: int | None, score: float) -> Path:
        return self.save_best(model, epoch, score)

    def on_stage_best(self, model: torch.nn.Module, stage: str, record: dict) -> Path:
        """A later stage's best weights (forecast_train): saved atomically, the stage's record in
        the manifest (`forecast`: what load_run reads to serve the model with the prefix kNN)."""
        path = save_weights(self.run_dir / WEIGHTS, model)
        self.on_stage_end(stage, record)
        return path

    def on_stage_end(self, stage: str, record: dict) -> None:
        self.update_manifest(**{stage: record})

    def on_train_end(self, result) -> None:
        """Final weights and prior of a finished run, then its status (train.TrainResult)."""
        model = result.model
        if result.correction_scale is not None and model is not None:
            if result.correction_scale != 1.0:
                self.save_best(model, result.best_epoch, result.corrected_score)
            self.update_manifest(correction_scale=result.correction_scale)
        if result.status == "succeeded" and getattr(model, "prior_library", None) is not None:
            self.save_prior(model.prior_library)
        self.finish(result.status, result.reason, epochs_run=result.epochs_run, **_usable_fields(result))
        self.progress(force=True, epoch=result.epochs_run, epochs=self._epochs, done=True, status=result.status)


def _usable_fields(result) -> dict:
    """`usable` (+ why not) for a finished training: weights from no finished epoch are the
    untrained initialisation, not a checkpoint to evaluate or generate from."""
    if result.model is None:
        return {"usable": False, "unusable_reason": f"{result.status} with no saved weights"}
    if result.epochs_run == 0:
        return {"usable": False,
                "unusable_reason": f"{result.status} before its first epoch finished: the weights are untrained"}
    return {"usable": True, "unusable_reason": ""}


def save_checkpoint(run_dir, model: RoastModel, experiment: ExperimentConfig, *, status: str = "succeeded",
                    manifest: dict | None = None, metrics: list[dict] | None = None) -> Path:
    """Write a complete run directory for an in-memory model (imports, tests, notebooks)."""
    writer = RunWriter(run_dir, experiment, model.encoder, model.scaler, param_count=count_parameters(model),
                       device=str(next(model.parameters()).device), **(manifest or {}))
    if getattr(model, "prior_library", None) is not None:
        writer.save_prior(model.prior_library)
    for line in metrics or []:
        writer.append_metrics(line)
    best = [m for m in metrics or [] if m.get("val_loss") is not None]
    best_line = min(best, key=lambda m: m["val_loss"]) if best else {}
    writer.save_best(model, best_line.get("epoch"), best_line.get("val_loss"))
    writer.finish(status)
    return Path(run_dir)


# ----------------------------------------------------------------------------- reading runs
@dataclass
class LoadedRun:
    model: RoastModel
    config: ExperimentConfig
    encoder: FeatureEncoder
    scaler: TemperatureScaler
    manifest: dict
    metrics: list[dict] = field(default_factory=list)
    run_dir: Path | None = None

    def split_profiles(self, profiles):
        """(train, val) rebuilt from the manifest's validation ids, exactly as trained."""
        return split_from_manifest(profiles, self.manifest)


def split_from_manifest(profiles, manifest: dict):
    val_ids = set((manifest.get("split") or {}).get("val_ids") or [])
    if not val_ids:
        raise RunError("manifest.json: split has no val_ids")
    val = [p for p in profiles if p.id in val_ids]
    if len(val) != len(val_ids):
        log.warning("only %d of %d validation profiles found in the data given", len(val), len(val_ids))
    return [p for p in profiles if p.id not in val_ids], val


def read_metrics(run_dir) -> list[dict]:
    """Epoch lines of RUN_DIR/metrics.jsonl; a torn last line (crash mid-append) is skipped."""
    return read_jsonl(Path(run_dir) / METRICS)


def read_manifest(run_dir) -> dict:
    """manifest.json. A run still marked `running` whose process is gone (run.lock free; an
    unmarked run silent for UNMARKED_STALE_S) is `interrupted`: the file is rewritten to say
    so, under the lock, so a writer that finishes meanwhile is never overwritten."""
    run_dir = Path(run_dir)
    manifest = read_json(run_dir / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("status") != "running":
        return manifest
    held = liveness.is_held(run_dir / RUN_LOCK)
    if held or (held is None and _silent_for(run_dir) < UNMARKED_STALE_S):
        return manifest
    marker = liveness.hold(run_dir / RUN_LOCK, create=False) if held is False else None
    if held is False and marker is None:
        return read_json(run_dir / MANIFEST)  # it finished (or restarted) just now
    try:
        manifest = read_json(run_dir / MANIFEST)
        if isinstance(manifest, dict) and manifest.get("status") == "running":
            epoch = manifest.get("best_epoch")
            saved = ("no weights were saved" if not (run_dir / WEIGHTS).exists() else
                     f"the best weights so far (epoch {epoch}) are saved and usable"
                     if epoch is not None else "the weights saved so far are usable")
            manifest.update(status="interrupted", updated=now_iso(), reason=(
                f"the training process ended without recording a result (killed?); {saved}"))
            try:
                write_json(run_dir / MANIFEST, manifest)
            except OSError as exc:  # a read-only copy: report it, leave the file
                log.warning("%s: cannot record that the run was interrupted: %s", run_dir, exc)
    finally:
        if marker is not None:
            marker.release(unlink=True)
    return manifest


def _silent_for(run_dir: Path) -> float:
    """Seconds since the run last wrote its manifest, metrics or progress."""
    times = []
    for name in (MANIFEST, METRICS, PROGRESS):
        with contextlib.suppress(OSError):
            times.append((run_dir / name).stat().st_mtime)
    return time.time() - max(times, default=0.0)


def run_status(run_dir) -> str:
    """The run's status, `interrupted` for a run whose process is gone (see read_manifest)."""
    return str(read_manifest(run_dir).get("status", "unknown"))


def load_config(run_dir) -> ExperimentConfig:
    """The run's ExperimentConfig (config.json) without its weights: what sizes a trace."""
    try:
        return ExperimentConfig.from_dict(read_json(Path(run_dir) / CONFIG))
    except RunError:  # read_json's already names the file
        raise
    except ValueError as exc:
        raise RunError(f"{Path(run_dir) / CONFIG}: {exc}") from None


def load_encoder(run_dir, config: ExperimentConfig | None = None):
    """The run's feature encoder (encoder.json) without building its model: what a request form
    offers (its vocabularies, the mean charge). `config`: the run's, when already loaded."""
    config = load_config(run_dir) if config is None else config
    try:
        return encoder_from_dict(config.model, read_json(Path(run_dir) / ENCODER))
    except RunError:
        raise
    except ValueError as exc:
        raise RunError(f"{Path(run_dir) / ENCODER}: {exc}") from None


def load_run(run_dir, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the best model of a run (eval mode) from JSON + safetensors; never unpickles."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory")
    config = load_config(run_dir)
    encoder = load_encoder(run_dir, config)
    try:
        scaler = TemperatureScaler.from_dict(read_json(run_dir / SCALER))
    except RunError:
        raise
    except ValueError as exc:
        raise RunError(f"{run_dir}: {exc}") from None
    manifest = read_manifest(run_dir) if (run_dir / MANIFEST).exists() else {}
    weights = run_dir / WEIGHTS
    if not weights.exists():
        raise RunError(f"{weights}: missing; the run saved no best weights")
    try:
        state = st_load(weights.read_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise RunError(f"{weights}: not a readable safetensors file ({exc})") from None
    model = build_model(config.model, encoder, scaler)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RunError(f"{weights}: weights do not fit config.json's model ({str(exc).splitlines()[0]})") from None
    if config.model.prior != "none":
        try:
            model.prior_library = PriorLibrary.load(run_dir)
        except ValueError as exc:
            raise RunError(str(exc)) from None
        stage = manifest.get("forecast")
        if isinstance(stage, dict) and stage.get("prior") == "prefix_knn":
            model.forecast_prior = "prefix_knn"  # its weights were tuned to correct the prefix kNN
    model.to(device).eval()
    return LoadedRun(model=model, config=config, encoder=encoder, scaler=scaler, manifest=manifest,
                     metrics=read_metrics(run_dir), run_dir=run_dir)


def run_usability(run_dir, manifest: dict | None = None, n_epochs: int | None = None) -> tuple[bool, str]:
    """(usable, why not): whether a run holds weights worth evaluating or generating from.

    Not usable: no model.safetensors (an archived legacy import, a run that saved nothing yet),
    `usable: false` in the manifest (set when training ends), or, for runs that predate that
    field, a running/cancelled/diverged/failed run with no finished epoch."""
    run_dir = Path(run_dir)
    if manifest is None:
        manifest = read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).exists() else {}
    status = str(manifest.get("status", ""))
    if manifest.get("usable") is False:
        return False, str(manifest.get("unusable_reason") or "marked not usable in manifest.json")
    if not (run_dir / WEIGHTS).is_file():
        if manifest.get("loadable") is False:
            return False, str(manifest.get("reason") or "an archived import that does not load as a model")
        return False, "no saved weights yet" if status == "running" else "no saved weights"
    if manifest.get("usable") is None and status in ("running", "cancelled", "diverged", "failed"):
        epochs = manifest.get("epochs_run") if n_epochs is None else n_epochs
        if epochs is None:
            epochs = len(read_metrics(run_dir))
        if epochs == 0:
            if status == "running":
                return False, "its first epoch has not finished yet"
            return False, f"{status} before its first epoch finished: the weights are untrained"
    return True, ""


@dataclass
class RunInfo:
    name: str
    path: Path
    status: str
    preset: str
    param_count: int | None
    best_epoch: int | None
    best_val_loss: float | None
    last_val_tf_mae_f: float | None  # the last epoch's, from training (not the best epoch's)
    epochs_run: int
    device: str
    data_source: str
    created: str
    updated: str
    usable: bool = True  # False: show as not usable (or hide); unusable_reason says why
    unusable_reason: str = ""
    # The TF MAE to show: the stored evaluation's (scores.json) when the run is scored, else the
    # last epoch's val_tf_mae_f; tf_mae_from says which ("evaluation" | "last epoch" | "").
    tf_mae_f: float | None = None
    tf_mae_from: str = ""
    verdict: str | None = None  # the stored diagnosis, when scored


def list_runs(runs_dir, info_of=None) -> list[RunInfo]:
    """Runs under `runs_dir`, newest first. Broken or partial dirs are skipped with a warning.
    `info_of(path)`: how each run is read (default `run_info`; the dashboard passes a cached one)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    runs = [info for info in map(info_of or run_info, folders) if info is not None]
    runs.sort(key=lambda r: r.updated, reverse=True)
    return runs


def run_info(path) -> RunInfo | None:
    """One run's RunInfo (what list_runs lists), or None for a folder that is not a run or is
    broken (logged). The dashboard caches it per run and reads again only the runs that change."""
    path = Path(path)
    if not (path / CONFIG).exists() and not (path / MANIFEST).exists():
        return None  # not a run at all
    try:
        config = read_json(path / CONFIG)
        manifest = read_manifest(path)
        metrics = read_metrics(path)
        last_mae = next((m.get("val_tf_mae_f") for m in reversed(metrics) if "val_tf_mae_f" in m), None)
        usable, why = run_usability(path, manifest, len(metrics))
        scores = read_scores_summary(path) or {}
        tf_mae, tf_from = scores.get("tf_mae_f"), "evaluation"
        if tf_mae is None:
            tf_mae, tf_from = last_mae, "last epoch" if last_mae is not None else ""
        return RunInfo(
            name=path.name, path=path, status=str(manifest.get("status", "unknown")),
            preset=str(config.get("name", "")), param_count=manifest.get("param_count"),
            best_epoch=manifest.get("best_epoch"), best_val_loss=manifest.get("best_val_loss"),
            last_val_tf_mae_f=last_mae, epochs_run=len(metrics), device=str(manifest.get("device", "")),
            data_source=str(manifest.get("data_source", "")), created=str(manifest.get("created", "")),
            updated=str(manifest.get("updated", "")), usable=usable, unusable_reason=why,
            tf_mae_f=tf_mae, tf_mae_from=tf_from, verdict=scores.get("verdict"),
        )
    except (RunError, AttributeError, TypeError) as exc:
        log.warning("skipping broken run directory %s: %s", path, exc)
        return None


def delete_run(run_dir) -> None:
    """Remove a run directory; refuses folders that are not runs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a directory")
    if not any((run_dir / name).exists() for name in (CONFIG, MANIFEST, WEIGHTS)):
        raise RunError(f"{run_dir}: does not look like a run directory (no {CONFIG} or {MANIFEST}); not deleting")
    shutil.rmtree(run_dir)

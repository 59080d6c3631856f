"""The original RoastFormer's `.pt` checkpoints in the dashboard: which ones the runs directory
holds, what each needs, and importing them (uploaded or found) as runs.

No streamlit import: unit-tested in tests/test_dashboard_helpers.py. The import itself is
roastcore.roastformer_import.import_checkpoints; a checkpoint needs the dataset package it was
trained on (an imported dataset that is a RoastFormer package, with the same vocabulary sizes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roastcore.io.registry import STAGING_PREFIX, clean_leftovers, sanitize_filename

PT_SUFFIXES = (".pt", ".pth")
MAX_PT_UPLOAD_MB = 512  # one original checkpoint with its AdamW state is ~75 MB (d_model 256, 6 layers)
GENERIC_STEMS = ("best_transformer_model", "best_model", "model", "checkpoint")
DIM_LABELS = (("num_origins", "origins"), ("num_processes", "processes"), ("num_roast_levels", "roast levels"),
              ("num_varieties", "varieties"), ("num_flavors", "flavours"))
SKIP_DIRS = ("datasets", "studies")


@dataclass
class PtStatus:
    """A `.pt` in the runs directory: importable with `matches` (dataset keys), or `problem`."""

    path: Path
    name: str  # the run it would become
    dims: dict = field(default_factory=dict)
    matches: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def importable(self) -> bool:
        return not self.problem and bool(self.matches)


# ----------------------------------------------------------------------------- finding them
def find_pt_files(runs_dir) -> list[Path]:
    """`.pt`/`.pth` files directly in the runs directory or one folder down (RUNS/exp1/
    best_transformer_model.pt), outside hidden folders, datasets/ and studies/."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for item in sorted(runs_dir.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_file() and item.suffix.lower() in PT_SUFFIXES:
            found.append(item)
        elif item.is_dir() and item.name not in SKIP_DIRS:
            try:
                found += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in PT_SUFFIXES
                                and not p.name.startswith("."))
            except OSError:
                continue
    return found


def imported_sources(run_dirs: Iterable) -> set[str]:
    """The resolved `.pt` paths the given runs were imported from (manifest legacy.source)."""
    out = set()
    for run_dir in run_dirs:
        try:
            legacy = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8")).get("legacy") or {}
        except (OSError, ValueError, AttributeError):
            continue
        source = legacy.get("source") if isinstance(legacy, dict) else None
        if isinstance(source, str) and source:
            out.add(str(Path(source).resolve()))
    return out


def pending_pt_files(runs_dir, run_dirs: Iterable) -> list[Path]:
    """The runs directory's `.pt` files that no run was imported from yet."""
    found = find_pt_files(runs_dir)
    if not found:
        return []
    done = imported_sources(run_dirs)
    return [p for p in found if str(p.resolve()) not in done]


def run_name_for(path: Path, config: Mapping | None = None) -> str:
    """The run a checkpoint becomes: its config's experiment_name, else the file name, or for
    the research code's generic best_transformer_model.pt its folder's name."""
    name = (config or {}).get("experiment_name")
    if not isinstance(name, str) or not name.strip():
        name = path.stem
        if path.stem in GENERIC_STEMS:
            parent = path.parent.name
            name = parent if parent and not parent.startswith(".") else "roastformer"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name.strip()).strip("._-")
    return safe[:72] or "roastformer"


def own_folder_suffix(path: Path, name: str) -> str:
    """RUNS/exp1/best_transformer_model.pt would become run exp1, the folder it sits in: call
    that run exp1-imported instead."""
    return f"{name}-imported" if path.parent.name == name else name


def unique_run_name(runs_dir, base: str, taken: Iterable[str] = ()) -> str:
    """`base`, or base-2, base-3...: free in the runs directory and not in `taken`."""
    taken = set(taken)
    name, n = base, 2
    while name in taken or (Path(runs_dir) / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def dims_text(dims: Mapping) -> str:
    return ", ".join(f"{label} {dims[key]}" for key, label in DIM_LABELS if key in dims)


# ----------------------------------------------------------------------------- what each needs
def is_package(spec: str) -> bool:
    """Whether a dataset spec is a RoastFormer research package (a folder or zip holding one)."""
    from roastcore.io.roastformer_package import find_package  # only for path specs

    if not spec or spec.startswith("synthetic"):
        return False
    try:
        return find_package(spec) is not None
    except (OSError, ValueError):
        return False


def package_dims(spec: str) -> dict[str, dict]:
    """{convention: feature_dims} the package gives the research code's two loaders (the
    vocabulary sizes a checkpoint trained on it has), or {} when it is no usable package."""
    from roastcore.io.roastformer_package import read_package  # reading a package is seconds
    from roastcore.roastformer_v1 import CONVENTIONS, V1Encoder

    try:
        pkg = read_package(spec)
        frames = pkg.require_metadata()
        return {c: V1Encoder.from_package(pkg, c, frames).feature_dims for c in CONVENTIONS}
    except (OSError, ValueError):
        return {}


def checkpoint_status(path: Path, packages: Mapping[str, Mapping[str, dict]]) -> PtStatus:
    """What a `.pt` needs: read it (tensors only; a pickle payload is refused unread) and find
    the imported packages (dataset key -> package_dims) whose vocabulary sizes it was built with."""
    # torch: only when a .pt exists
    from roastcore.roastformer_import import read_original_checkpoint
    from roastcore.roastformer_v1 import FEATURE_DIM_KEYS

    status = PtStatus(path=Path(path), name=run_name_for(Path(path)))
    try:
        blob = read_original_checkpoint(path)
    except Exception as exc:  # noqa: BLE001 - whatever fails is this file's problem, shown beside it
        status.problem = _one_line(exc)
        return status
    status.name = own_folder_suffix(Path(path), run_name_for(Path(path), blob.get("config")))
    status.dims = {k: int(blob["feature_dims"][k]) for k in FEATURE_DIM_KEYS}
    status.matches = [key for key, by_convention in packages.items()
                      if any(dims == status.dims for dims in by_convention.values())]
    if not status.matches:
        status.problem = (f"needs the dataset package it was trained on: no imported dataset has its vocabulary "
                          f"sizes ({dims_text(status.dims)}). Import that RoastFormer package (its zip) "
                          "on the Import tab, then import this checkpoint")
    return status


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]


# ----------------------------------------------------------------------------- importing
def stage_checkpoints(runs_dir, files: Sequence[tuple[str, bytes]],
                      max_total_bytes: int = MAX_PT_UPLOAD_MB * 2**20) -> tuple[Path, list[tuple[Path, str]]]:
    """Write uploaded (name, bytes) `.pt` files into a staging folder RUNS/.upload-<pid>-*
    (removed by registry.clean_leftovers if this process dies). Returns the folder and each
    staged file with its uploaded name. ValueError for other files."""
    if not files:
        raise ValueError("no checkpoint files were uploaded")
    total = sum(len(b) for _, b in files)
    if total > max_total_bytes:
        raise ValueError(f"the checkpoints are {total / 2**20:.0f} MiB; the limit is {max_total_bytes / 2**20:.0f} MiB")
    clean_leftovers(runs_dir)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=runs_dir))
    used: set[str] = set()
    staged = []
    try:
        for name, data in files:
            safe = sanitize_filename(name, "checkpoint.pt")
            if Path(safe).suffix.lower() not in PT_SUFFIXES:
                raise ValueError(f"{safe}: not a .pt checkpoint")
            # One folder per file: the run name of a generic best_transformer_model.pt comes from
            # its folder, which is then the uploaded name rather than the staging folder's.
            stem, k = Path(safe).stem, 1
            folder = stem
            while folder in used:
                k += 1
                folder = f"{stem}-{k}"
            used.add(folder)
            (staging / folder).mkdir()
            (staging / folder / safe).write_bytes(data)
            staged.append((staging / folder / safe, sanitize_filename(name, "checkpoint.pt")))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, staged


def import_into_runs(paths: Sequence[Path], package_spec: str, runs_dir, taken: Iterable[str] = (),
                     uploaded_names: Sequence[str] | None = None) -> list:
    """Import the `.pt` files against the package into the runs directory, each run under a
    free readable name (run_name_for, then -2, -3...). All or nothing (import_checkpoints);
    the runs are renamed into place at the end. Returns roastformer_import.ImportResult objects
    with their final run_dir. `uploaded_names`: what to record as each file's source instead
    of its staging path."""
    from roastcore.fsutil import atomic_write_json  # with the import below: only when importing
    from roastcore.roastformer_import import import_checkpoints, read_original_checkpoint

    paths = [Path(p) for p in paths]
    runs_dir = Path(runs_dir)
    taken = set(taken)
    names = []
    for p in paths:
        base = run_name_for(p, read_original_checkpoint(p).get("config"))
        if p.parent.resolve() == (runs_dir / base).resolve():
            base = own_folder_suffix(p, base)
        names.append(unique_run_name(runs_dir, base, taken | set(names)))
    work = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=runs_dir))
    try:
        out = work / names[0] if len(paths) == 1 else work / "runs"
        results = import_checkpoints(paths, package_spec, out)
        for i, (result, name) in enumerate(zip(results, names, strict=True)):
            final = runs_dir / name
            if uploaded_names is not None:
                manifest_path = Path(result.run_dir) / "manifest.json"
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                manifest.setdefault("legacy", {})["source"] = f"uploaded {uploaded_names[i]}"
                atomic_write_json(manifest_path, manifest)
            os.rename(result.run_dir, final)  # atomic; refuses a folder that appeared meanwhile
            result.run_dir = str(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


UPLOAD_PACKAGE = "_upload"  # the package picker's "upload it with them" choice


@dataclass
class PtImport:
    """What importing `.pt` files did: the package dataset used, the new runs, the scoring jobs."""

    entry: object  # roastcore.io.registry.DatasetEntry
    run_names: list[str]
    message: str
    warning: str = ""


def import_checkpoints(runs_dir, paths_and_names: Sequence[tuple[Path, str]], package_key: str,
                       package_files: Sequence[tuple[str, bytes]] | None = None,
                       taken: Iterable[str] = ()) -> PtImport:
    """Import staged or found `.pt` files (path, uploaded name or "") against a package dataset
    (or, for UPLOAD_PACKAGE, the package uploaded with them as (name, bytes), registered first
    and kept as uploaded) and queue each new run's scoring. Raises a ValueError (UploadError,
    CheckpointImportError, ImportFailure) naming what is wrong."""
    from roastcore.io import registry  # with jobs: only when importing (the page stays light)
    from roastcore.jobs import JobError, JobRunner, submit_score

    if package_key == UPLOAD_PACKAGE:
        stem = Path(package_files[0][0]).stem if len(package_files) == 1 else "roastformer_package"
        _, entry = registry.import_uploads(runs_dir, stem, list(package_files))
        if entry is None or not is_package(entry.spec):
            raise registry.UploadError("the uploaded files hold no RoastFormer package (train_profiles.json, "
                                       "val_profiles.json and the metadata CSVs, or the zip holding them)")
    else:
        entry = next(e for e in registry.list_datasets(runs_dir) if e.key == package_key)
    paths = [p for p, _ in paths_and_names]
    uploaded = [n for _, n in paths_and_names] if all(n for _, n in paths_and_names) else None
    results = import_into_runs(paths, entry.spec, runs_dir, taken=taken, uploaded_names=uploaded)
    queued, warning = [], ""
    runner = JobRunner(runs_dir)
    for r in results:
        try:
            queued.append(submit_score(runner, r.run_dir).id)
        except JobError as exc:
            warning = f"Scoring could not be queued: {exc}"
    units = ", ".join(f"**{Path(r.run_dir).name}** ({r.units} temperatures)" for r in results)
    message = (f"Imported {units} against **{entry.name}**; selected in the sidebar. "
               f"Each is being scored in the background (jobs {', '.join(queued) or '–'}).")
    return PtImport(entry, [Path(r.run_dir).name for r in results], message, warning)

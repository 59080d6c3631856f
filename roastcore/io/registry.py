"""The imported-datasets registry: uploads staged and checked, datasets saved and listed by name.

A runs directory keeps imported datasets under RUNS/datasets/: `index.json` maps a name to a
spec that `load_source` (and so a training job's subprocess) reads. Uploads and generated sets
are saved there as Onyx-shaped JSON files; a server folder is referenced by its absolute path.
An uploaded RoastFormer research package is kept as uploaded (its zip, or its files), never
re-exported as loose roasts: its own train/val membership and metadata CSVs are what
`roastformer_import` and `--split val` need.

Crash safety: uploads are staged in RUNS/.upload-<pid>-* and a dataset is written into
RUNS/datasets/.partial-<pid>-*, then renamed into place, so a killed import never leaves a
half-written dataset under its name. Those temporary folders are removed by the import that
follows, or by `clean_leftovers` at start, once the process that made them is gone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from roastcore.fsutil import atomic_write_json
from roastcore.io.folder import ImportReport
from roastcore.io.onyx import write_json
from roastcore.io.roastformer_package import find_package
from roastcore.io.sources import import_tree, load_source
from roastcore.profile import Profile

log = logging.getLogger(__name__)

DATASETS_DIRNAME = "datasets"
DATASET_INDEX = "index.json"
STAGING_PREFIX = ".upload-"  # in the runs directory
PARTIAL_PREFIX = ".partial-"  # in RUNS/datasets/
# A temporary folder whose owner cannot be told (no pid in its name) is stale after this long;
# no import takes an hour.
STALE_AFTER_S = 3600.0

UPLOAD_SUFFIXES = (".alog", ".csv", ".json", ".zip")
MAX_UPLOAD_FILES = 2000
MAX_UPLOAD_TOTAL_BYTES = 25 * 1024 * 1024
MAX_ZIP_UNCOMPRESSED_BYTES = 200 * 1024 * 1024

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OWNER = re.compile(r"^\.(?:upload|partial)-(\d+)-")


class UploadError(ValueError):
    """An import refused before any parsing (too big, wrong type, a missing path)."""


@dataclass
class DatasetEntry:
    name: str
    spec: str  # what load_source / a job's --data understands
    kind: str  # 'upload', 'generated' or 'path'
    n_profiles: int = 0
    created: float = 0.0

    @property
    def key(self) -> str:
        return f"ds:{self.name}"


# ---------------------------------------------------------------------------- names
def sanitize_filename(name: str, default: str = "file") -> str:
    """A client-supplied file name reduced to a safe basename: no directories, no dot-files."""
    base = str(name or "").replace("\\", "/").split("/")[-1]
    base = _SAFE_NAME.sub("_", base).strip("._")
    return (base or default)[:120]


def sanitize_dataset_name(name: str) -> str:
    base = _SAFE_NAME.sub("_", str(name or "").strip()).strip("._-")
    return base[:60] or "dataset"


def is_dataset_name(name: str) -> bool:
    """Whether `name` can name a registered dataset (and so appear in a URL)."""
    return bool(_DATASET_NAME.match(name or ""))


# ---------------------------------------------------------------------------- the registry
def datasets_dir(runs_dir) -> Path:
    return Path(runs_dir) / DATASETS_DIRNAME


def _read_index(runs_dir) -> dict:
    try:
        raw = json.loads((datasets_dir(runs_dir) / DATASET_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def list_datasets(runs_dir) -> list[DatasetEntry]:
    """Imported datasets registered under RUNS/datasets/index.json, newest first."""
    out = []
    for name, d in _read_index(runs_dir).items():
        if not isinstance(d, dict) or not is_dataset_name(str(name)):
            continue
        try:
            out.append(DatasetEntry(name=str(name), spec=str(d["spec"]), kind=str(d.get("kind", "path")),
                                    n_profiles=int(d.get("n_profiles", 0)), created=float(d.get("created", 0))))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda e: -e.created)


def register_dataset(runs_dir, name: str, spec: str, kind: str, n_profiles: int) -> DatasetEntry:
    """Add (or replace) an imported dataset in the registry; returns the entry."""
    datasets_dir(runs_dir).mkdir(parents=True, exist_ok=True)
    raw = _read_index(runs_dir)
    name = sanitize_dataset_name(name)
    raw[name] = {"spec": str(spec), "kind": kind, "n_profiles": int(n_profiles), "created": time.time()}
    atomic_write_json(datasets_dir(runs_dir) / DATASET_INDEX, raw)
    return DatasetEntry(name=name, spec=str(spec), kind=kind, n_profiles=int(n_profiles),
                        created=raw[name]["created"])


def unique_dataset_name(runs_dir, name: str) -> str:
    """`name`, sanitised, with a _2, _3... suffix when a dataset or a folder already has it."""
    base = sanitize_dataset_name(name)
    taken = {e.name for e in list_datasets(runs_dir)}
    folder = datasets_dir(runs_dir)
    candidate, i = base, 2
    while candidate in taken or (folder / candidate).exists():
        candidate, i = f"{base}_{i}", i + 1
    return candidate


# ---------------------------------------------------------------------------- uploads
def stage_uploads(files: Sequence[tuple[str, bytes]], dest, max_total_bytes: int = MAX_UPLOAD_TOTAL_BYTES) -> Path:
    """Write uploaded (name, bytes) pairs into `dest` under sanitised, unique names.

    Only .alog/.csv/.json/.zip are accepted; the total size is capped; a zip is checked for its
    declared uncompressed size (zip bombs) before the importer opens it. Returns `dest`.
    """
    if not files:
        raise UploadError("no files were uploaded")
    if len(files) > MAX_UPLOAD_FILES:
        raise UploadError(f"{len(files)} files: at most {MAX_UPLOAD_FILES} per import")
    total = sum(len(b) for _, b in files)
    if total > max_total_bytes:
        raise UploadError(f"upload is {total / 1e6:.1f} MB; the limit is {max_total_bytes / 1e6:.0f} MB")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for name, data in files:
        safe = sanitize_filename(name)
        suffix = Path(safe).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise UploadError(f"{sanitize_filename(name)}: only {', '.join(UPLOAD_SUFFIXES)} files can be imported")
        stem, k = Path(safe).stem, 1
        while safe.lower() in used:
            k += 1
            safe = f"{stem}_{k}{suffix}"
        used.add(safe.lower())
        target = dest / safe
        if suffix == ".zip":
            _check_zip(name, data)
        target.write_bytes(data)
    return dest


def _check_zip(name: str, data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            size = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise UploadError(f"{sanitize_filename(name)}: not a valid zip archive") from None
    if size > MAX_ZIP_UNCOMPRESSED_BYTES:
        raise UploadError(f"{sanitize_filename(name)}: unpacks to {size / 1e6:.0f} MB; the limit is "
                          f"{MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:.0f} MB")


def save_profiles_json(profiles: Sequence[Profile], folder) -> Path:
    """Write profiles as Onyx-shaped JSON (roastcore.io.write_json) into `folder`, one file each,
    so that a job subprocess can load the folder with load_source."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(profiles):
        write_json(p, folder / f"{i:05d}_{sanitize_filename(p.id, 'roast')}.json")
    return folder


# ---------------------------------------------------------------------------- imports
def save_dataset(runs_dir, name: str, profiles: Sequence[Profile], kind: str = "upload") -> DatasetEntry:
    """Save `profiles` as a new dataset RUNS/datasets/<unique name>/ and register it.

    The files are written into a temporary folder that is renamed into place once complete: a
    dataset folder under its own name is never half-written.
    """
    return _save_folder(runs_dir, name, lambda partial: save_profiles_json(profiles, partial), kind,
                        len(profiles))


def _save_folder(runs_dir, name: str, fill, kind: str, n_profiles: int) -> DatasetEntry:
    """A new dataset folder RUNS/datasets/<unique name>/, filled by `fill(partial)` in a
    temporary folder renamed into place once complete, then registered."""
    clean_leftovers(runs_dir)
    folder = datasets_dir(runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{os.getpid()}-", dir=folder))
    try:
        fill(partial)
        for _ in range(100):  # another import may take the name between the check and the rename
            final = folder / unique_dataset_name(runs_dir, name)
            try:
                os.rename(partial, final)  # atomic; refuses a non-empty target
                break
            except OSError:
                if not final.exists():
                    raise
        else:
            raise OSError(f"{folder}: no free dataset name for {name!r}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return register_dataset(runs_dir, final.name, str(final.resolve()), kind, n_profiles)


def save_package(runs_dir, name: str, staging, n_profiles: int) -> DatasetEntry:
    """Keep an uploaded RoastFormer package as it came (the zip holding it, or the staged files
    when they are the package itself) as a new dataset folder, registered by that folder."""
    location = find_package(staging)
    if location is None:
        raise UploadError(f"{Path(staging).name}: no RoastFormer package in the upload")
    keep = [Path(staging) / location.inner_zip] if location.inner_zip else sorted(Path(staging).iterdir())

    def fill(partial: Path) -> None:
        for item in keep:
            if item.is_dir():
                shutil.copytree(item, partial / item.name, symlinks=False)
            else:
                shutil.copy2(item, partial / item.name)

    return _save_folder(runs_dir, name, fill, "package", n_profiles)


def import_uploads(runs_dir, name: str, files: Sequence[tuple[str, bytes]],
                   max_total_bytes: int = MAX_UPLOAD_TOTAL_BYTES) -> tuple[ImportReport, DatasetEntry | None]:
    """Stage uploaded (file name, bytes) pairs, import them, and save the roasts as a dataset
    (a RoastFormer package: the package itself, see save_package).

    Returns the import report and the new entry (None when no file could be imported: nothing
    is saved then). Raises UploadError for an upload refused before parsing.
    """
    clean_leftovers(runs_dir)
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=runs_dir))
    try:
        stage_uploads(files, staging, max_total_bytes=max_total_bytes)
        report = import_tree(staging)
        if not report.profiles:
            entry = None
        elif find_package(staging) is not None:  # kept as uploaded: its membership and metadata matter
            entry = save_package(runs_dir, name, staging, len(report.profiles))
        else:
            entry = save_dataset(runs_dir, name, report.profiles, "upload")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report, entry


def import_path(runs_dir, name: str, path) -> tuple[ImportReport, DatasetEntry | None]:
    """Import a file, folder or zip on this machine and register it by its absolute path (the
    files stay where they are). Returns the report and the entry (None when nothing imported)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UploadError(f"{path} does not exist on the server.")
    report = load_source(str(path))
    if not report.profiles:
        return report, None
    entry = register_dataset(runs_dir, unique_dataset_name(runs_dir, name), str(path.resolve()), "path",
                             len(report.profiles))
    return report, entry


# ---------------------------------------------------------------------------- leftovers
def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _is_stale(path: Path, now: float) -> bool:
    m = _OWNER.match(path.name)
    if m is not None and not _pid_alive(int(m.group(1))):
        return True
    try:
        return now - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def clean_leftovers(runs_dir) -> list[Path]:
    """Remove staging (RUNS/.upload-*) and partial dataset (RUNS/datasets/.partial-*) folders
    left by imports that were killed. A folder whose owning process still runs is kept unless
    it is older than STALE_AFTER_S. Returns the folders removed."""
    now = time.time()
    removed = []
    for parent, prefix in ((Path(runs_dir), STAGING_PREFIX), (datasets_dir(runs_dir), PARTIAL_PREFIX)):
        try:
            children = list(parent.iterdir())
        except OSError:
            continue
        for child in children:
            if child.name.startswith(prefix) and child.is_dir() and not child.is_symlink() \
                    and _is_stale(child, now):
                shutil.rmtree(child, ignore_errors=True)
                if not child.exists():
                    removed.append(child)
                    log.info("removed %s, left by an interrupted import", child)
    return removed
